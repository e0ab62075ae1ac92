// training_charts from a metrics log.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "mixpeft/report.h"

namespace mixpeft::report {
namespace {

using nlohmann::json;
using Points = std::vector<std::pair<double, double>>;

TEST(TrainingCharts, LossAndValidationMetrics) {
  std::vector<json> log = {
      {{"event", "start"}, {"total_steps", 30}},
      {{"event", "train"}, {"step", 10}, {"epoch", 0.3}, {"loss", 0.69}, {"lr", 1e-4}},
      {{"event", "train"}, {"step", 20}, {"epoch", 0.6}, {"loss", nullptr}, {"lr", 1e-4}},  // a NaN loss
      {{"event", "eval"}, {"step", 20}, {"split", "validation"},
       {"metrics", {{"loss", 0.6}, {"accuracy", 0.7}, {"f1", 0.65}, {"confusion", {{1, 2}, {3, 4}}}}}},
      {{"event", "eval"}, {"step", 20}, {"split", "test"}, {"metrics", {{"loss", 9.0}, {"accuracy", 0.1}}}},
      {{"event", "train"}, {"step", 30}, {"epoch", 0.9}, {"loss", 0.5}, {"lr", 5e-5}},
      {{"event", "eval"}, {"step", 30}, {"metrics", {{"loss", 0.55}, {"accuracy", 0.75}, {"mcc", 0.4}}}},
      {{"event", "train"}, {"loss", 0.1}},  // no step: skipped
      json("not an object"),
  };
  std::vector<Chart> charts = training_charts(log);
  ASSERT_EQ(charts.size(), 2u);

  const Chart& loss = charts[0];
  EXPECT_EQ(loss.title, "loss");
  EXPECT_EQ(loss.x_label, "step");
  ASSERT_EQ(loss.series.size(), 2u);
  EXPECT_EQ(loss.series[0].name, "train");
  EXPECT_EQ(loss.series[0].points, (Points{{10, 0.69}, {30, 0.5}}));
  EXPECT_EQ(loss.series[1].name, "validation");
  EXPECT_EQ(loss.series[1].points, (Points{{20, 0.6}, {30, 0.55}}));  // not the test split's 9.0

  const Chart& validation = charts[1];
  EXPECT_EQ(validation.title, "validation");
  ASSERT_EQ(validation.series.size(), 3u);
  EXPECT_EQ(validation.series[0].name, "accuracy");
  EXPECT_EQ(validation.series[0].points, (Points{{20, 0.7}, {30, 0.75}}));
  EXPECT_EQ(validation.series[1].name, "f1");
  EXPECT_EQ(validation.series[1].points, (Points{{20, 0.65}}));
  EXPECT_EQ(validation.series[2].name, "mcc");
  EXPECT_EQ(validation.series[2].points, (Points{{30, 0.4}}));
}

TEST(TrainingCharts, TrainOnlyLogHasNoValidationSeries) {
  std::vector<json> log = {{{"event", "train"}, {"step", 1}, {"loss", 1.0}}};
  std::vector<Chart> charts = training_charts(log);
  ASSERT_EQ(charts.size(), 2u);
  ASSERT_EQ(charts[0].series.size(), 1u);
  EXPECT_TRUE(charts[1].series.empty());
  // Renders: the empty validation chart says so.
  std::string svg = render_svg(charts);
  EXPECT_NE(svg.find(">no data</text>"), std::string::npos);
  EXPECT_EQ(training_charts({}).size(), 2u);
}

}  // namespace
}  // namespace mixpeft::report
