// format_duration, format_count and format_table.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "mixpeft/report.h"

namespace mixpeft::report {
namespace {

TEST(FormatDuration, SecondsMinutesHours) {
  EXPECT_EQ(format_duration(0), "0s");
  EXPECT_EQ(format_duration(0.4), "0s");
  EXPECT_EQ(format_duration(12), "12s");
  EXPECT_EQ(format_duration(12.6), "13s");
  EXPECT_EQ(format_duration(59.4), "59s");
  EXPECT_EQ(format_duration(59.6), "1m00s");  // rounds into the next unit
  EXPECT_EQ(format_duration(185), "3m05s");
  EXPECT_EQ(format_duration(3599), "59m59s");
  EXPECT_EQ(format_duration(3600), "1h00m");
  EXPECT_EQ(format_duration(3720), "1h02m");
  EXPECT_EQ(format_duration(3749), "1h02m");
  EXPECT_EQ(format_duration(3751), "1h03m");  // minutes rounded
  EXPECT_EQ(format_duration(250 * 3600.0), "250h00m");
}

TEST(FormatDuration, NotADuration) {
  EXPECT_EQ(format_duration(-1), "?");
  EXPECT_EQ(format_duration(NAN), "?");
  EXPECT_EQ(format_duration(INFINITY), "?");
}

TEST(FormatCount, Suffixes) {
  EXPECT_EQ(format_count(0), "0");
  EXPECT_EQ(format_count(812), "812");
  EXPECT_EQ(format_count(999), "999");
  EXPECT_EQ(format_count(1000), "1.00k");
  EXPECT_EQ(format_count(1234), "1.23k");
  EXPECT_EQ(format_count(45600), "45.6k");
  EXPECT_EQ(format_count(100000), "100k");
  EXPECT_EQ(format_count(999499), "999k");
  EXPECT_EQ(format_count(999600), "1.00M");  // not "1000k"
  EXPECT_EQ(format_count(1234567), "1.23M");
  EXPECT_EQ(format_count(7.5e9), "7.50G");
  EXPECT_EQ(format_count(2e12), "2.00T");
  EXPECT_EQ(format_count(5e15), "5000T");
}

TEST(FormatCount, FractionsNegativesAndNonFinite) {
  EXPECT_EQ(format_count(8.123), "8.12");
  EXPECT_EQ(format_count(81.26), "81.3");
  EXPECT_EQ(format_count(812.4), "812");
  EXPECT_EQ(format_count(0.5), "0.50");
  EXPECT_EQ(format_count(0.0012), "0.0012");
  EXPECT_EQ(format_count(-45600), "-45.6k");
  EXPECT_EQ(format_count(-3), "-3");
  EXPECT_EQ(format_count(NAN), "nan");
  EXPECT_EQ(format_count(INFINITY), "inf");
  EXPECT_EQ(format_count(-INFINITY), "-inf");
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

TEST(FormatTable, AlignsNumbersRightAndTextLeft) {
  std::string t = format_table({"split", "accuracy", "f1", "n"},
                               {{"validation", "0.8123", "0.8", "872"},
                                {"test", "0.79", "-1", "1821"},
                                {"mnli-mm", "", "12.5%", "9"}});
  EXPECT_EQ(t,
            "split       accuracy     f1     n\n"
            "----------  --------  -----  ----\n"
            "validation    0.8123    0.8   872\n"
            "test            0.79     -1  1821\n"
            "mnli-mm               12.5%     9\n");
}

TEST(FormatTable, MixedColumnIsTextAndRaggedRows) {
  std::string t = format_table({"metric", "value"}, {{"loss", "0.5"}, {"best", "epoch 3"}, {"x"}, {"a", "1", "extra"}});
  std::vector<std::string> lines = lines_of(t);
  ASSERT_EQ(lines.size(), 6u);
  EXPECT_EQ(lines[0], "metric  value");
  EXPECT_EQ(lines[1], "------  -------  -----");  // a third column appears, headed by ""
  EXPECT_EQ(lines[2], "loss    0.5");             // "value" mixes text and numbers: left-aligned
  EXPECT_EQ(lines[3], "best    epoch 3");
  EXPECT_EQ(lines[4], "x");
  EXPECT_EQ(lines[5], "a       1        extra");
  for (const std::string& line : lines) EXPECT_TRUE(line.empty() || line.back() != ' ') << "[" << line << "]";
}

TEST(FormatTable, WidthCountsCodePoints) {
  std::string t = format_table({"name", "n"}, {{"caf\xC3\xA9", "1"}, {"ab", "22"}});
  EXPECT_EQ(t,
            "name   n\n"
            "----  --\n"
            "caf\xC3\xA9   1\n"
            "ab    22\n");
}

TEST(FormatTable, HeaderOnly) {
  EXPECT_EQ(format_table({"a", "bb"}, {}), "a  bb\n-  --\n");
  EXPECT_EQ(format_table({}, {}), "");
}

}  // namespace
}  // namespace mixpeft::report
