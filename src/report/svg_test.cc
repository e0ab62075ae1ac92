// render_svg and write_svg.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>

#include "data/test_util.h"
#include "mixpeft/report.h"
#include "report/internal.h"

namespace mixpeft::report {
namespace {

using data::testing::TempDir;
using data::testing::throws_error_starting_with;

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

// Checks that every tag is closed in order, that '&' starts an entity, and
// that no '<' or '>' appears in text: enough of XML to catch a broken
// document or unescaped text.
::testing::AssertionResult well_formed(const std::string& svg) {
  std::vector<std::string> open;
  size_t i = 0;
  while (i < svg.size()) {
    char c = svg[i];
    if (c == '>') return ::testing::AssertionFailure() << "stray '>' at " << i;
    if (c == '&') {
      static const std::regex entity("^&(amp|lt|gt|quot|apos);");
      if (!std::regex_search(svg.substr(i, 8), entity)) return ::testing::AssertionFailure() << "bare '&' at " << i;
      ++i;
      continue;
    }
    if (c != '<') {
      ++i;
      continue;
    }
    size_t end = svg.find('>', i);
    if (end == std::string::npos) return ::testing::AssertionFailure() << "unclosed tag at " << i;
    std::string tag = svg.substr(i + 1, end - i - 1);
    if (tag.find('<') != std::string::npos) return ::testing::AssertionFailure() << "'<' inside a tag at " << i;
    // Inside attribute values, '>' would have ended the tag early; a '"' count checks that.
    if (count(tag, "\"") % 2 != 0) return ::testing::AssertionFailure() << "odd quotes in <" << tag << ">";
    if (tag.empty()) return ::testing::AssertionFailure() << "empty tag at " << i;
    if (tag[0] == '/') {
      std::string name = tag.substr(1);
      if (open.empty() || open.back() != name) {
        return ::testing::AssertionFailure() << "</" << name << "> closes " << (open.empty() ? "nothing" : open.back());
      }
      open.pop_back();
    } else if (tag.back() != '/') {
      open.push_back(tag.substr(0, tag.find(' ')));
    }
    i = end + 1;
  }
  if (!open.empty()) return ::testing::AssertionFailure() << "<" << open.back() << "> never closed";
  return ::testing::AssertionSuccess();
}

Chart sample() {
  Chart c;
  c.title = "loss";
  c.x_label = "step";
  c.y_label = "loss";
  c.series.push_back({"train", {{0, 0.9}, {10, 0.7}, {20, NAN}, {30, 0.5}, {INFINITY, 0.4}, {40, 0.45}}});
  c.series.push_back({"validation", {{20, 0.65}, {40, 0.55}}});
  return c;
}

TEST(Svg, Document) {
  std::string svg = render_svg({sample()});
  EXPECT_EQ(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
  EXPECT_EQ(svg.substr(svg.size() - 7), "</svg>\n");
  EXPECT_TRUE(well_formed(svg));
  EXPECT_EQ(count(svg, "<polyline"), 2u);
  EXPECT_EQ(count(svg, "<script"), 0u);
  EXPECT_EQ(count(svg, "<image"), 0u);
  EXPECT_EQ(count(svg, "http"), 1u);  // only the namespace: nothing fetched from elsewhere
  EXPECT_NE(svg.find(">loss</text>"), std::string::npos);
  EXPECT_NE(svg.find(">step</text>"), std::string::npos);
  EXPECT_NE(svg.find(">train</text>"), std::string::npos);
  EXPECT_NE(svg.find(">validation</text>"), std::string::npos);
  EXPECT_EQ(svg.find("no data"), std::string::npos);
  EXPECT_EQ(svg.find("nan"), std::string::npos);
  EXPECT_EQ(svg.find("inf"), std::string::npos);
}

std::vector<std::pair<double, double>> polyline_points(const std::string& svg, size_t which) {
  size_t at = 0;
  for (size_t i = 0; i <= which; ++i) {
    at = svg.find("<polyline", at);
    if (at == std::string::npos) return {};
    at += 9;
  }
  size_t begin = svg.find("points=\"", at) + 8;
  std::string list = svg.substr(begin, svg.find('"', begin) - begin);
  std::vector<std::pair<double, double>> out;
  std::istringstream in(list);
  for (std::string pair; in >> pair;) {
    size_t comma = pair.find(',');
    out.emplace_back(std::stod(pair.substr(0, comma)), std::stod(pair.substr(comma + 1)));
  }
  return out;
}

TEST(Svg, NonFinitePointsAreSkippedAndTheRestFitThePlot) {
  std::string svg = render_svg({sample()});
  auto train = polyline_points(svg, 0);
  ASSERT_EQ(train.size(), 4u);  // 6 points, one NaN y and one inf x dropped
  for (size_t i = 1; i < train.size(); ++i) EXPECT_GT(train[i].first, train[i - 1].first);  // x order
  // A lower loss is drawn lower (a larger SVG y); every point inside the 520 x 340 panel.
  EXPECT_GT(train[2].second, train[0].second);
  for (auto [x, y] : train) {
    EXPECT_GT(x, 0);
    EXPECT_LT(x, 520);
    EXPECT_GT(y, 0);
    EXPECT_LT(y, 340);
  }
  // Both series share the axes: validation's x=40 is train's x=40.
  auto validation = polyline_points(svg, 1);
  ASSERT_EQ(validation.size(), 2u);
  EXPECT_DOUBLE_EQ(validation[1].first, train[3].first);
}

TEST(Svg, NiceTicks) {
  Chart c;
  c.series.push_back({"s", {{0, 0.31}, {200, 0.69}}});
  std::string svg = render_svg({c});
  for (const char* label : {">0</text>", ">50</text>", ">100</text>", ">150</text>", ">200</text>", ">0.3</text>",
                            ">0.5</text>", ">0.7</text>"}) {
    EXPECT_NE(svg.find(label), std::string::npos) << label;
  }
  Chart big;
  big.series.push_back({"s", {{0, 1}, {20000, 2}}});
  std::string svg2 = render_svg({big});
  EXPECT_NE(svg2.find(">10k</text>"), std::string::npos);
  EXPECT_NE(svg2.find(">20k</text>"), std::string::npos);
}

TEST(Svg, TextIsEscaped) {
  Chart c;
  c.title = "loss & <accuracy> \"q\"";
  c.x_label = "a<b";
  c.series.push_back({"x&y", {{1, 1}, {2, 2}}});
  std::string svg = render_svg({c});
  EXPECT_TRUE(well_formed(svg));
  EXPECT_NE(svg.find(">loss &amp; &lt;accuracy&gt; &quot;q&quot;</text>"), std::string::npos);
  EXPECT_NE(svg.find(">a&lt;b</text>"), std::string::npos);
  EXPECT_NE(svg.find(">x&amp;y</text>"), std::string::npos);
  EXPECT_EQ(svg.find("<accuracy>"), std::string::npos);
  EXPECT_EQ(detail::xml_escape(std::string("a\x01z")), "a z");  // control characters are not XML
}

TEST(Svg, EmptySeriesAndChartsStillRender) {
  Chart empty_series = sample();
  empty_series.series.push_back({"test", {}});
  empty_series.series.push_back({"all-nan", {{1, NAN}}});
  Chart no_series;
  no_series.title = "validation";
  Chart nothing_drawable;
  nothing_drawable.series.push_back({"s", {{NAN, 1}, {2, INFINITY}}});
  std::string svg = render_svg({empty_series, no_series, nothing_drawable});
  EXPECT_TRUE(well_formed(svg));
  EXPECT_EQ(count(svg, "<polyline"), 2u);  // only the two series with points
  EXPECT_NE(svg.find(">test (no data)</text>"), std::string::npos);
  EXPECT_NE(svg.find(">all-nan (no data)</text>"), std::string::npos);
  EXPECT_EQ(count(svg, ">no data</text>"), 2u);  // the second and third charts
  EXPECT_NE(svg.find("width=\"1560.00\""), std::string::npos);  // three panels side by side

  std::string none = render_svg({});
  EXPECT_TRUE(well_formed(none));
  EXPECT_NE(none.find(">no data</text>"), std::string::npos);
}

TEST(Svg, SinglePointGetsADot) {
  Chart c;
  c.series.push_back({"one", {{5, 5}}});
  std::string svg = render_svg({c});
  EXPECT_EQ(count(svg, "<polyline"), 1u);
  EXPECT_EQ(count(svg, "<circle"), 1u);
  EXPECT_TRUE(well_formed(svg));
}

TEST(Svg, LogAxisSkipsNonPositive) {
  Chart c;
  c.log_y = true;
  c.y_label = "loss";
  c.series.push_back({"s", {{1, 10}, {2, 0}, {3, -1}, {4, 0.01}}});
  std::string svg = render_svg({c});
  EXPECT_EQ(polyline_points(svg, 0).size(), 2u);
  EXPECT_NE(svg.find(">0.01</text>"), std::string::npos);
  EXPECT_NE(svg.find(">10</text>"), std::string::npos);
  EXPECT_NE(svg.find(">loss (log)</text>"), std::string::npos);
  Chart tiny;
  tiny.log_y = true;
  tiny.series.push_back({"lr", {{0, 1e-6}, {1, 3e-4}}});
  std::string svg2 = render_svg({tiny});
  EXPECT_NE(svg2.find(">1e-6</text>"), std::string::npos);  // not "1e-06"
  EXPECT_NE(svg2.find(">1e-4</text>"), std::string::npos);
  EXPECT_NE(svg2.find(">0.001</text>"), std::string::npos);
  EXPECT_TRUE(well_formed(svg));
}

TEST(Svg, WriteIsAtomic) {
  TempDir dir;
  std::string path = dir.file("training.svg");
  write_svg({sample()}, path);
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, render_svg({sample()}));
  size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    (void)entry;
    ++files;
  }
  EXPECT_EQ(files, 1u);  // no temporary file left behind
  std::string bad = dir.file("missing/training.svg");
  EXPECT_TRUE(throws_error_starting_with([&] { write_svg({sample()}, bad); }, ErrorKind::kIO, bad + ": "));
}

}  // namespace
}  // namespace mixpeft::report
