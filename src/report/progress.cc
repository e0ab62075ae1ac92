// Live training progress: a bar redrawn with '\r', or plain log lines.
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "mixpeft/error.h"
#include "mixpeft/report.h"
#include "report/internal.h"

namespace mixpeft::report {
namespace {

constexpr double kMinRedrawSeconds = 0.1;  // at most 10 bar redraws a second

double now_seconds() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

std::string fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

std::string loss_text(double loss) { return std::isfinite(loss) ? fmt("%.4f", loss) : "-"; }

std::string eta_text(const ProgressState& s, int64_t total) {
  if (total <= 0 || s.step <= 0) return "?";
  if (s.step >= total) return "0s";
  return format_duration(s.elapsed_seconds * static_cast<double>(total - s.step) / static_cast<double>(s.step));
}

int terminal_width(std::FILE* out) {
  struct winsize ws;
  if (::ioctl(::fileno(out), TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20) return ws.ws_col;
  if (const char* cols = std::getenv("COLUMNS")) {
    int n = std::atoi(cols);
    if (n >= 20) return n;
  }
  return 100;
}

// Cuts `s` to `n` code points.
std::string cut(const std::string& s, size_t n) {
  size_t points = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80 && points++ == n) return s.substr(0, i);
  }
  return s;
}

}  // namespace

const char* to_string(ProgressMode mode) {
  switch (mode) {
    case ProgressMode::kAuto: return "auto";
    case ProgressMode::kBar: return "bar";
    case ProgressMode::kPlain: return "plain";
    case ProgressMode::kOff: return "off";
  }
  return "?";
}

ProgressMode parse_progress_mode(const std::string& text) {
  for (ProgressMode m : {ProgressMode::kAuto, ProgressMode::kBar, ProgressMode::kPlain, ProgressMode::kOff}) {
    if (text == to_string(m)) return m;
  }
  fail(ErrorKind::kInvalidArgument, "progress mode \"", text, "\": expected one of auto, bar, plain, off");
}

std::string format_progress_line(const ProgressState& s) {
  std::string line = cat("step ", s.step);
  if (s.total_steps > 0) {
    line += cat("/", s.total_steps, " (", std::clamp<int64_t>(s.step * 100 / s.total_steps, 0, 100), "%)");
  }
  line += " epoch " + fmt("%.2f", s.epoch);
  line += " loss " + loss_text(s.loss);
  line += " lr " + fmt("%.2e", s.lr);
  line += " tok/s " + fmt("%.0f", std::isfinite(s.tokens_per_second) ? s.tokens_per_second : 0.0);
  line += " elapsed " + format_duration(s.elapsed_seconds);
  line += " eta " + eta_text(s, s.total_steps);
  return line;
}

Progress::Progress(std::FILE* out, ProgressMode mode, int64_t total_steps, int64_t plain_every_steps)
    : out_(out), mode_(mode), total_steps_(std::max<int64_t>(total_steps, 0)) {
  MIXPEFT_CHECK(out_ != nullptr, ErrorKind::kInvalidArgument, "Progress: null output stream");
  if (mode_ == ProgressMode::kAuto) {
    const char* term = std::getenv("TERM");
    bool dumb = term != nullptr && std::strcmp(term, "dumb") == 0;
    mode_ = ::isatty(::fileno(out_)) && !dumb ? ProgressMode::kBar : ProgressMode::kPlain;
  }
  plain_every_ = std::max<int64_t>(plain_every_steps, 0);  // 0: from the total, in update()
  if (mode_ == ProgressMode::kBar) width_ = terminal_width(out_);
}

Progress::~Progress() {
  try {
    finish();
  } catch (...) {
  }
}

int64_t Progress::total_of(const ProgressState& s) const { return s.total_steps > 0 ? s.total_steps : total_steps_; }

void Progress::write(const std::string& text) {
  std::fwrite(text.data(), 1, text.size(), out_);
  std::fflush(out_);
}

void Progress::update(const ProgressState& state) {
  last_ = state;
  last_.total_steps = total_of(state);
  have_state_ = true;
  pending_ = true;
  const int64_t total = last_.total_steps;
  const bool last_step = total > 0 && last_.step >= total;
  switch (mode_) {
    case ProgressMode::kBar:
      if (last_step || now_seconds() - last_draw_ >= kMinRedrawSeconds) draw_bar();
      break;
    case ProgressMode::kPlain: {
      // A line when the step crosses a multiple of plain_every_. The first
      // update (a fresh or a resumed run) only sets where counting starts.
      const int64_t every = plain_every_ > 0 ? plain_every_ : total > 0 ? (total + 9) / 10 : 100;
      if (last_plain_bucket_ < 0) last_plain_bucket_ = last_.step > 0 ? (last_.step - 1) / every : 0;
      int64_t bucket = last_.step / every;
      if ((last_step && last_.step != last_plain_step_) || bucket > last_plain_bucket_) {
        write(format_progress_line(last_) + "\n");
        last_plain_bucket_ = std::max(bucket, last_plain_bucket_);
        last_plain_step_ = last_.step;
      }
      pending_ = last_.step != last_plain_step_;
      break;
    }
    case ProgressMode::kOff:
    case ProgressMode::kAuto:
      pending_ = false;
      break;
  }
}

void Progress::draw_bar() {
  const ProgressState& s = last_;
  const int64_t total = s.total_steps;
  // " 40/200 (20%) epoch 0.40 loss 0.6931 lr 3.00e-04 1.23k tok/s eta 48s"
  // (about 66 columns). On a narrow terminal lr, then tok/s, then epoch are
  // left out so that the bar keeps 10 cells and the ETA stays visible.
  std::string head;
  if (total > 0) {
    int pct = static_cast<int>(std::clamp<int64_t>(s.step * 100 / total, 0, 100));
    head = cat(" ", s.step, "/", total, " (", pct, "%)");
  } else {
    head = cat("step ", s.step);
  }
  std::string epoch = " epoch " + fmt("%.2f", s.epoch);
  std::string loss = " loss " + loss_text(s.loss);
  std::string lr = " lr " + fmt("%.2e", s.lr);
  std::string tps = " " + format_count(std::isfinite(s.tokens_per_second) ? s.tokens_per_second : 0.0) + " tok/s";
  std::string eta = " eta " + eta_text(s, total);
  const int bar_room = total > 0 ? 12 : 0;  // "[" + at least 10 cells + "]"
  auto fits = [&](const std::string& t) { return static_cast<int>(detail::display_width(t)) + bar_room <= width_ - 1; };
  std::string text = head + epoch + loss + lr + tps + eta;
  if (!fits(text)) text = head + epoch + loss + tps + eta;
  if (!fits(text)) text = head + epoch + loss + eta;
  if (!fits(text)) text = head + loss + eta;
  std::string line;
  if (total > 0) {
    // The bar takes what is left of the width, between 10 and 30 cells.
    int room = width_ - 1 - static_cast<int>(detail::display_width(text)) - 2;
    int cells = std::clamp(room, 10, 30);
    double frac = std::clamp(static_cast<double>(s.step) / static_cast<double>(total), 0.0, 1.0);
    int filled = static_cast<int>(std::floor(frac * cells));
    std::string bar(static_cast<size_t>(filled), '=');
    if (filled < cells) bar += filled > 0 || s.step > 0 ? ">" : " ";
    bar.resize(static_cast<size_t>(cells), ' ');
    line = "[" + bar + "]" + text;
  } else {
    line = text;
  }
  // Never wider than the terminal: a wrapped line cannot be redrawn with '\r'.
  line = cut(line, static_cast<size_t>(std::max(width_ - 1, 10)));
  size_t chars = detail::display_width(line);
  std::string out = "\r" + line;
  if (chars < bar_chars_) out += std::string(bar_chars_ - chars, ' ');  // erase the longer old line
  write(out);
  bar_chars_ = std::max<size_t>(chars, 1);
  last_draw_ = now_seconds();
  pending_ = false;
}

void Progress::clear_bar() {
  if (bar_chars_ == 0) return;
  write("\r" + std::string(bar_chars_, ' ') + "\r");
  bar_chars_ = 0;
}

void Progress::message(const std::string& line) {
  std::string text = line;
  if (text.empty() || text.back() != '\n') text += '\n';
  if (mode_ != ProgressMode::kBar) {
    write(text);
    return;
  }
  clear_bar();
  write(text);
  if (have_state_) draw_bar();
}

void Progress::finish() {
  switch (mode_) {
    case ProgressMode::kBar:
      if (pending_) draw_bar();
      if (bar_chars_ > 0) {
        write("\n");
        bar_chars_ = 0;
      }
      break;
    case ProgressMode::kPlain:
      if (pending_) {
        write(format_progress_line(last_) + "\n");
        last_plain_step_ = last_.step;
        pending_ = false;
      }
      break;
    case ProgressMode::kOff:
    case ProgressMode::kAuto:
      break;
  }
  have_state_ = false;  // message() after finish() does not bring the bar back
}

}  // namespace mixpeft::report
