// Progress: plain lines at the right steps, the redrawn bar, messages.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "mixpeft/error.h"
#include "mixpeft/report.h"

namespace mixpeft::report {
namespace {

// A tmpfile() whose contents can be read back.
class Capture {
 public:
  Capture() : file_(std::tmpfile()) {}
  ~Capture() {
    if (file_) std::fclose(file_);
  }
  std::FILE* file() const { return file_; }
  std::string text() const {
    std::fflush(file_);
    long end = std::ftell(file_);
    std::string out(static_cast<size_t>(end), '\0');
    std::rewind(file_);
    size_t n = std::fread(out.data(), 1, out.size(), file_);
    out.resize(n);
    std::fseek(file_, 0, SEEK_END);
    return out;
  }
  std::vector<std::string> lines() const {
    std::vector<std::string> out;
    std::istringstream in(text());
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  }

 private:
  std::FILE* file_;
};

ProgressState state(int64_t step, int64_t total = 0) {
  ProgressState s;
  s.step = step;
  s.total_steps = total;
  s.epoch = step / 100.0;
  s.loss = 0.6931;
  s.lr = 3e-4;
  s.tokens_per_second = 1234.4;
  s.elapsed_seconds = 0.3 * step;
  return s;
}

TEST(ProgressLine, Content) {
  ProgressState s = state(40, 200);
  s.elapsed_seconds = 12;
  EXPECT_EQ(format_progress_line(s),
            "step 40/200 (20%) epoch 0.40 loss 0.6931 lr 3.00e-04 tok/s 1234 elapsed 12s eta 48s");
  s.loss = NAN;
  s.total_steps = 0;
  EXPECT_EQ(format_progress_line(s), "step 40 epoch 0.40 loss - lr 3.00e-04 tok/s 1234 elapsed 12s eta ?");
  ProgressState zero = state(0, 200);
  EXPECT_NE(format_progress_line(zero).find("(0%)"), std::string::npos);
  EXPECT_NE(format_progress_line(zero).find("eta ?"), std::string::npos);
  ProgressState done = state(200, 200);
  EXPECT_NE(format_progress_line(done).find("(100%)"), std::string::npos);
  EXPECT_NE(format_progress_line(done).find("eta 0s"), std::string::npos);
}

std::vector<int64_t> steps_printed(const std::vector<std::string>& lines) {
  std::vector<int64_t> out;
  for (const std::string& line : lines) {
    EXPECT_EQ(line.rfind("step ", 0), 0u) << line;
    out.push_back(std::stoll(line.substr(5)));
  }
  return out;
}

TEST(Progress, PlainEveryTenPercentAndTheLastStep) {
  Capture cap;
  {
    Progress p(cap.file(), ProgressMode::kPlain, 95);
    EXPECT_EQ(p.mode(), ProgressMode::kPlain);
    for (int64_t step = 0; step <= 95; ++step) p.update(state(step));
    p.finish();
  }
  // ceil(95 / 10) = 10: steps 10, 20, ..., 90, and 95 (the last).
  EXPECT_EQ(steps_printed(cap.lines()), (std::vector<int64_t>{10, 20, 30, 40, 50, 60, 70, 80, 90, 95}));
  EXPECT_EQ(cap.lines()[3], "step 40/95 (42%) epoch 0.40 loss 0.6931 lr 3.00e-04 tok/s 1234 elapsed 12s eta 17s");
  EXPECT_EQ(cap.text().find('\r'), std::string::npos);
}

TEST(Progress, PlainExplicitIntervalAndSkippedSteps) {
  Capture cap;
  Progress p(cap.file(), ProgressMode::kPlain, 200, 25);
  // Updates every 10 steps (e.g. a logging interval): a line when a multiple of 25 is crossed.
  for (int64_t step = 10; step <= 200; step += 10) p.update(state(step));
  p.finish();
  EXPECT_EQ(steps_printed(cap.lines()), (std::vector<int64_t>{30, 50, 80, 100, 130, 150, 180, 200}));
}

TEST(Progress, PlainResumedRunAndEarlyStop) {
  Capture cap;
  Progress p(cap.file(), ProgressMode::kPlain, 100, 10);
  for (int64_t step = 55; step <= 73; ++step) p.update(state(step));  // resumed at 54, stopped at 73
  p.finish();
  p.finish();  // a second finish prints nothing more
  EXPECT_EQ(steps_printed(cap.lines()), (std::vector<int64_t>{60, 70, 73}));
}

TEST(Progress, PlainMessagesAndStateTotalOverride) {
  Capture cap;
  Progress p(cap.file(), ProgressMode::kPlain, 0, 1);
  p.message("eval step 1: accuracy 0.5\n");  // the newline is not doubled
  p.update(state(1, 4));                      // the state's total (4) is used
  p.message("done");
  EXPECT_EQ(cap.lines(), (std::vector<std::string>{
                             "eval step 1: accuracy 0.5",
                             "step 1/4 (25%) epoch 0.01 loss 0.6931 lr 3.00e-04 tok/s 1234 elapsed 0s eta 1s",
                             "done"}));
}

TEST(Progress, PlainTotalFromTheStateAndNoRepeats) {
  Capture cap;
  Progress p(cap.file(), ProgressMode::kPlain, 0);  // total unknown until the first state
  for (int64_t step = 1; step <= 50; ++step) p.update(state(step, 50));
  p.update(state(50, 50));  // the last step again (e.g. after a final evaluation)
  p.finish();
  EXPECT_EQ(steps_printed(cap.lines()), (std::vector<int64_t>{5, 10, 15, 20, 25, 30, 35, 40, 45, 50}));
}

TEST(Progress, PlainWithoutTotalEveryHundredSteps) {
  Capture cap;
  Progress p(cap.file(), ProgressMode::kPlain, 0);
  for (int64_t step = 1; step <= 250; ++step) p.update(state(step));
  p.finish();
  EXPECT_EQ(steps_printed(cap.lines()), (std::vector<int64_t>{100, 200, 250}));
}

TEST(Progress, BarRedrawsInPlaceAndEndsWithNewline) {
  Capture cap;
  {
    Progress p(cap.file(), ProgressMode::kBar, 100);
    EXPECT_EQ(p.mode(), ProgressMode::kBar);
    for (int64_t step = 1; step <= 100; ++step) p.update(state(step));
    p.finish();
  }
  std::string text = cap.text();
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.front(), '\r');
  EXPECT_EQ(text.back(), '\n');
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1);
  // Throttled: 100 updates within far less than 0.1 s give a few redraws, and the last state is drawn.
  size_t redraws = static_cast<size_t>(std::count(text.begin(), text.end(), '\r'));
  EXPECT_GE(redraws, 2u);
  EXPECT_LT(redraws, 20u);
  std::string last = text.substr(text.rfind('\r') + 1);
  EXPECT_NE(last.find("100/100"), std::string::npos) << last;
  ASSERT_EQ(last.front(), '[') << last;
  std::string bar = last.substr(1, last.find(']') - 1);
  EXPECT_GE(bar.size(), 10u) << last;
  EXPECT_EQ(bar, std::string(bar.size(), '=')) << last;  // full
  EXPECT_NE(last.find("loss 0.6931"), std::string::npos) << last;
  EXPECT_NE(last.find("lr 3.00e-04"), std::string::npos) << last;
  EXPECT_NE(last.find("1.23k tok/s"), std::string::npos) << last;
  EXPECT_NE(last.find("epoch 1.00"), std::string::npos) << last;
  EXPECT_NE(last.find("eta 0s"), std::string::npos) << last;
}

TEST(Progress, BarHalfwayIsHalfFull) {
  Capture cap;
  Progress p(cap.file(), ProgressMode::kBar, 10);
  p.update(state(5));
  std::string text = cap.text();
  ASSERT_EQ(text.substr(0, 2), "\r[") << text;
  std::string bar = text.substr(2, text.find(']') - 2);
  size_t filled = static_cast<size_t>(std::count(bar.begin(), bar.end(), '='));
  EXPECT_EQ(filled, bar.size() / 2) << text;
  EXPECT_EQ(bar[filled], '>') << text;
  EXPECT_NE(text.find(" 5/10 (50%) epoch 0.05 loss 0.6931 lr 3.00e-04 1.23k tok/s eta 2s"), std::string::npos)
      << text;
}

TEST(Progress, BarFitsANarrowTerminalAndKeepsTheEta) {
  const char* old = std::getenv("COLUMNS");
  std::string saved = old ? old : "";
  ::setenv("COLUMNS", "60", 1);  // a file has no window size: $COLUMNS is used
  Capture cap;
  {
    Progress p(cap.file(), ProgressMode::kBar, 1000);
    p.update(state(500));
  }
  if (old) ::setenv("COLUMNS", saved.c_str(), 1); else ::unsetenv("COLUMNS");
  std::string text = cap.text();
  std::string line = text.substr(1, text.find('\n') - 1);
  EXPECT_LE(line.size(), 59u) << line;
  EXPECT_NE(line.find(" eta "), std::string::npos) << line;
  EXPECT_NE(line.find(" 500/1000 (50%)"), std::string::npos) << line;
  EXPECT_EQ(line.find(" lr "), std::string::npos) << line;  // left out first
}

TEST(Progress, BarFinishDrawsASkippedState) {
  Capture cap;
  Progress p(cap.file(), ProgressMode::kBar, 1000);
  p.update(state(1));
  p.update(state(2));  // within 0.1 s: not drawn yet
  p.finish();
  std::string text = cap.text();
  std::string last = text.substr(text.rfind('\r') + 1);
  EXPECT_NE(last.find(" 2/1000 "), std::string::npos) << text;
  EXPECT_EQ(text.back(), '\n');
}

TEST(Progress, BarMessageGoesAboveTheBar) {
  Capture cap;
  Progress p(cap.file(), ProgressMode::kBar, 10);
  p.update(state(3));
  p.message("eval: accuracy 0.9");
  p.finish();
  std::string text = cap.text();
  size_t msg = text.find("eval: accuracy 0.9\n");
  ASSERT_NE(msg, std::string::npos) << text;
  // The bar was cleared before the message (spaces after a '\r') and redrawn after it.
  std::string before = text.substr(0, msg);
  EXPECT_EQ(before.back(), '\r');
  EXPECT_NE(before.find("\r   "), std::string::npos);
  std::string after = text.substr(msg + 19);
  EXPECT_NE(after.find("\r["), std::string::npos) << after;
  EXPECT_NE(after.find(" 3/10 "), std::string::npos) << after;
  EXPECT_EQ(text.back(), '\n');
}

TEST(Progress, OffPrintsOnlyMessages) {
  Capture cap;
  {
    Progress p(cap.file(), ProgressMode::kOff, 10);
    for (int64_t step = 1; step <= 10; ++step) p.update(state(step));
    p.message("hello");
    p.finish();
  }
  EXPECT_EQ(cap.text(), "hello\n");
}

TEST(Progress, AutoOnAFileIsPlain) {
  Capture cap;
  Progress p(cap.file(), ProgressMode::kAuto, 10);
  EXPECT_EQ(p.mode(), ProgressMode::kPlain);
}

TEST(Progress, ModeNames) {
  EXPECT_EQ(parse_progress_mode("bar"), ProgressMode::kBar);
  EXPECT_EQ(parse_progress_mode("plain"), ProgressMode::kPlain);
  EXPECT_EQ(parse_progress_mode("off"), ProgressMode::kOff);
  EXPECT_EQ(parse_progress_mode("auto"), ProgressMode::kAuto);
  EXPECT_STREQ(to_string(ProgressMode::kPlain), "plain");
  try {
    parse_progress_mode("fancy");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("auto, bar, plain, off"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace mixpeft::report
