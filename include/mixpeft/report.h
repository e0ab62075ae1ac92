// Training reports: live progress (a redrawn bar on a terminal, plain lines
// in a log), the JSONL metrics log, SVG charts and text tables. Torch-free
// (mixpeft_base).
//
//   using namespace mixpeft::report;
//   Progress progress(stderr, ProgressMode::kAuto, total_steps);
//   JsonlWriter log(out_dir + "/metrics.jsonl", /*append=*/resuming);
//   for (...) {
//     ProgressState s; s.step = step; s.epoch = epoch; s.loss = loss; s.lr = lr;
//     s.tokens_per_second = tps; s.elapsed_seconds = elapsed;
//     progress.update(s);
//     log.write({{"event", "train"}, {"step", step}, {"epoch", epoch}, {"loss", loss}, {"lr", lr}});
//   }
//   progress.message("eval step 200: " + format_table(header, rows));
//   progress.finish();
//   write_svg(training_charts(read_jsonl(out_dir + "/metrics.jsonl")), out_dir + "/training.svg");
//
// Errors are mixpeft::Error (mixpeft/error.h); messages start with the path.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace mixpeft::report {

// ---- Formatting -----------------------------------------------------------------------

// Whole seconds (rounded): "0s", "12s", "3m05s", "1h02m" (minutes rounded),
// "250h00m". Negative, NaN or inf: "?".
std::string format_duration(double seconds);
// Three significant digits with a k/M/G/T suffix from 1000 up: "1.23M",
// "45.6k", "100k"; below 1000, integers as they are ("812", "0") and others
// to three significant digits ("8.12", "0.50"). Negative numbers get a '-';
// NaN and inf print as "nan", "inf".
std::string format_count(double n);

// A text table: a header row, a rule of dashes under it, then the rows.
// Columns are separated by two spaces and as wide as their widest cell
// (counted in UTF-8 code points). A column whose non-empty cells are all
// numbers ("0.8123", "-1", "1e-4", "12.5%") is right-aligned, header
// included; other columns are left-aligned. Rows may be shorter or longer
// than the header (missing cells are empty). Every line ends with '\n' and
// has no trailing spaces.
std::string format_table(const std::vector<std::string>& header,
                         const std::vector<std::vector<std::string>>& rows);

// ---- Progress -------------------------------------------------------------------------

struct ProgressState {
  int64_t step = 0;         // optimizer steps done
  int64_t total_steps = 0;  // 0: use the Progress's total_steps
  double epoch = 0;         // fractional epochs done
  double loss = NAN;        // NaN: shown as "-"
  double lr = 0;
  double tokens_per_second = 0;
  double elapsed_seconds = 0;  // since training (or this resumed run) started
};

enum class ProgressMode {
  kAuto,   // kBar when the stream is a terminal (isatty, and TERM is not "dumb"), else kPlain
  kBar,    // one line redrawn in place with '\r'
  kPlain,  // a full line every so many steps (for logs and CI)
  kOff,    // no progress output; message() still prints its lines
};
const char* to_string(ProgressMode mode);  // "auto", "bar", "plain", "off"
// "auto", "bar", "plain", "off"; anything else: kInvalidArgument listing them.
ProgressMode parse_progress_mode(const std::string& text);

// The kPlain line for `state` (no newline), e.g.
// "step 40/200 (20%) epoch 0.40 loss 0.6931 lr 3.00e-04 tok/s 1234 elapsed 12s eta 48s".
// total_steps <= 0: "step 40 epoch ..." without percentage and "eta ?".
// The ETA is elapsed * (total - step) / step ("?" at step 0).
std::string format_progress_line(const ProgressState& state);

// Not thread-safe: call it from the training loop's thread.
class Progress {
 public:
  // Writes to `out` (normally stderr), flushing after each write.
  // kBar: one line redrawn in place with '\r' (at most 10 redraws a second;
  //   the last step, message() and finish() always draw) showing a bar,
  //   step/total (percent), epoch, loss, lr, tokens/s and the ETA within
  //   the terminal's width (ioctl, else $COLUMNS, else 100): on a narrow
  //   one lr, then tokens/s, then epoch are left out before the line is cut.
  // kPlain: format_progress_line() on its own line whenever the step crosses
  //   a multiple of `plain_every_steps`, and at the last step.
  //   plain_every_steps 0 = ceil(total / 10) (about every 10%), or every
  //   100 steps while the total is unknown. A step is printed once, even if
  //   update() is called with it again.
  // kOff: nothing but message() lines.
  // total_steps: the steps of the whole run; a state's own total_steps > 0
  // overrides it. A null `out`: kInvalidArgument.
  Progress(std::FILE* out, ProgressMode mode, int64_t total_steps, int64_t plain_every_steps = 0);
  ~Progress();  // finish()
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void update(const ProgressState& state);
  // A line printed above the bar (the bar is cleared, the line printed, the
  // bar redrawn) or as-is in plain and off modes, e.g. evaluation results.
  // A trailing newline in `line` is not doubled; inner newlines are kept.
  void message(const std::string& line);
  // kBar: draws the latest state if a redraw was skipped, and ends the bar
  // line with a newline. kPlain: prints the latest state if it was not
  // printed (e.g. a run stopped early). Calling it again does nothing until
  // the next update().
  void finish();
  // The resolved mode: never kAuto.
  ProgressMode mode() const { return mode_; }

 private:
  void draw_bar();
  void clear_bar();
  void write(const std::string& text);
  int64_t total_of(const ProgressState& s) const;

  std::FILE* out_;
  ProgressMode mode_;
  int64_t total_steps_;
  int64_t plain_every_;  // 0: about 10% of the total
  ProgressState last_{};
  bool have_state_ = false;
  bool pending_ = false;          // the latest state is not on screen / in the log
  size_t bar_chars_ = 0;          // width of the bar line now on screen (0: none)
  int64_t last_plain_bucket_ = -1;
  int64_t last_plain_step_ = -1;  // the step of the last plain line
  double last_draw_ = -1e300;     // steady-clock seconds of the last bar redraw
  int width_ = 100;
};

// ---- JSONL ----------------------------------------------------------------------------

// Appends one compact JSON object (or any value) per line; each write is
// flushed (fflush, not fsync). append=false truncates the file; append=true
// keeps it, and first ends a partial last line (a crash mid-write) with a
// newline so that the new records stay readable. Strings that are not valid
// UTF-8 are written with U+FFFD; NaN and inf numbers as null (JSON has no
// such numbers). Errors: kIO naming the path and the OS reason.
class JsonlWriter {
 public:
  JsonlWriter(const std::string& path, bool append);
  ~JsonlWriter();
  JsonlWriter(JsonlWriter&& other) noexcept;
  JsonlWriter& operator=(JsonlWriter&& other) noexcept;
  JsonlWriter(const JsonlWriter&) = delete;
  JsonlWriter& operator=(const JsonlWriter&) = delete;

  void write(const nlohmann::json& record);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
};

// Reads a JSONL file: one JSON value per line, blank lines skipped, '\r\n'
// accepted. Errors: kNotFound for a missing file, kCorrupt
// "PATH:LINE: <the parser's description>" for a bad line, kIO.
std::vector<nlohmann::json> read_jsonl(const std::string& path);

// ---- Charts ---------------------------------------------------------------------------

struct Series {
  std::string name;
  std::vector<std::pair<double, double>> points;  // (x, y), drawn in x order
};

struct Chart {
  std::string title, x_label, y_label;
  std::vector<Series> series;
  bool log_y = false;  // log10 y axis; points with y <= 0 are skipped
};

// A self-contained SVG document (no external fonts, images or scripts):
// the charts side by side (520 x 340 px each), each with axes, "nice" tick
// labels (1, 2, 5 x 10^k; powers of ten on a log axis), a grid, its title,
// axis labels and a legend. Each series with at least one drawable point is
// one <polyline> (a single point also gets a dot); NaN/inf points are
// skipped. A chart without drawable points, and a series without any, still
// render, marked "no data". Text is XML-escaped.
std::string render_svg(const std::vector<Chart>& charts);
// render_svg written atomically (temporary file, fsync, rename). Errors: kIO.
void write_svg(const std::vector<Chart>& charts, const std::string& path);

// The trainer's metrics log -> two charts:
//   "loss": series "train" (records {"event":"train","step":N,"loss":L,...})
//     and, when present, "validation" (metrics.loss of
//     {"event":"eval","step":N,"split":"validation","metrics":{...}}; a
//     record without "split" counts as validation);
//   "validation": one series per other numeric validation metric (accuracy,
//     f1, ...), in order of first appearance (by name within a record).
// Records of other events or splits, and values that are not numbers (null
// for a NaN loss, nested objects), are skipped.
std::vector<Chart> training_charts(const std::vector<nlohmann::json>& log_records);

}  // namespace mixpeft::report
