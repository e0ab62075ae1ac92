#include <cmath>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/test_util.h"
#include "mixpeft/run_summary.h"

namespace {

using nlohmann::json;
using namespace mixpeft::report;

TEST(RunSummary, MethodLabels) {
  EXPECT_EQ(method_label({{"peft_type", "LORA"}, {"r", 4}}), "LoRA r4");
  EXPECT_EQ(method_label({{"peft_type", "lora"}}), "LoRA r8");
  EXPECT_EQ(method_label({{"peft_type", "MOSLORA"}, {"r", 8}}), "MoSLoRA r8");
  EXPECT_EQ(method_label({{"peft_type", "BOTTLENECK"}, {"placement", "houlsby"}, {"bottleneck_size", 32}}),
            "Houlsby m32");
  EXPECT_EQ(method_label({{"peft_type", "BOTTLENECK"}}), "Pfeiffer m64");
  EXPECT_EQ(method_label({{"peft_type", "ADAMIX"}, {"variant", "lora"}, {"num_experts", 4}, {"r", 8}}),
            "AdaMix-LoRA 4x r8");
  EXPECT_EQ(method_label({{"peft_type", "ADAMIX"}}), "AdaMix-adapter 4x m16");
  EXPECT_EQ(method_label({{"peft_type", "XPEFT"}, {"num_adapters", 8}}), "X-PEFT soft N8 random bank");
  EXPECT_EQ(method_label({{"peft_type", "XPEFT"}, {"hard", true}, {"top_k", 2}, {"bank_adapters", {"a", "b", "c"}}}),
            "X-PEFT hard top-2 N3 trained bank");
  EXPECT_EQ(method_label({{"peft_type", "FULL"}}), "Full fine-tuning");
  EXPECT_EQ(method_label({{"peft_type", "HEAD"}}), "Head only");
  EXPECT_EQ(method_label({{"peft_type", "IA3"}}), "IA3");
}

TEST(RunSummary, SeedGroups) {
  EXPECT_EQ(seed_group("spam-lora-s2"), "spam-lora");
  EXPECT_EQ(seed_group("spam-lora-seed13"), "spam-lora");
  EXPECT_EQ(seed_group("spam-lora"), "spam-lora");
  EXPECT_EQ(seed_group("spam-s"), "spam-s");
  EXPECT_EQ(seed_group("s2"), "s2");
}

TEST(RunSummary, MeanAndSampleStd) {
  MeanStd m = mean_std({1.0, 2.0, 3.0, NAN});
  EXPECT_EQ(m.n, 3);
  EXPECT_DOUBLE_EQ(m.mean, 2.0);
  EXPECT_DOUBLE_EQ(m.std, 1.0);  // sample std: sqrt(2 / 2)
  EXPECT_EQ(mean_std({5.0}).std, 0.0);
  EXPECT_TRUE(std::isnan(mean_std({}).mean));
}

RunRecord run(const std::string& name, const json& peft, double test_acc, double val_acc, double seconds,
              int64_t trainable = 250, int64_t bytes = 4096) {
  RunRecord r;
  r.dir = "runs/" + name;
  r.name = name;
  r.result = {{"peft", peft},
              {"task", "classification"},
              {"trainable_parameters", trainable},
              {"total_parameters", 1000},
              {"artifact_bytes", bytes},
              {"train_seconds", seconds},
              {"metric", "accuracy"},
              {"best_metrics", {{"accuracy", val_acc}, {"f1", val_acc}}},
              {"test_metrics", {{"accuracy", test_acc}, {"f1", test_acc}}}};
  r.log = {{{"event", "train"}, {"step", 1}, {"loss", 0.7}},
           {{"event", "eval"}, {"step", 1}, {"split", "validation"}, {"metrics", {{"accuracy", val_acc}}}},
           {{"event", "eval"}, {"step", 1}, {"split", "test"}, {"metrics", {{"accuracy", 0.0}}}}};
  return r;
}

TEST(RunSummary, GroupsSeedsIntoMeanAndStd) {
  const json lora = {{"peft_type", "LORA"}, {"r", 8}};
  std::vector<RunRecord> runs = {run("t-lora-s1", lora, 0.90, 0.80, 60), run("t-lora-s2", lora, 0.92, 0.81, 62),
                                 run("t-lora-s3", lora, 0.94, 0.82, 64),
                                 run("t-full-s1", {{"peft_type", "FULL"}}, 0.5, 0.5, 100, 1000, 2'500'000)};
  SummaryOptions o;
  o.group_seeds = true;
  Summary s = summarize_runs(runs, o);
  ASSERT_EQ(s.rows.size(), 2u);
  EXPECT_EQ(s.header, (std::vector<std::string>{"runs", "method", "n", "trainable", "trainable %", "accuracy %",
                                                "F1 %", "MCC", "stored", "train time"}));
  EXPECT_EQ(s.rows[0], (std::vector<std::string>{"t-lora", "LoRA r8", "3", "250", "25.000", "92.00 ± 2.00",
                                                 "92.00 ± 2.00", "-", "4.10 kB", "1m02s"}));
  EXPECT_EQ(s.rows[1][0], "t-full");
  EXPECT_EQ(s.rows[1][5], "50.00");  // one seed: no ± part
  EXPECT_EQ(s.rows[1][8], "2.50 MB");
  EXPECT_DOUBLE_EQ(s.json[0]["accuracy %"].get<double>(), 92.0);
  EXPECT_DOUBLE_EQ(s.json[0]["accuracy % std"].get<double>(), 2.0);

  o.group_seeds = false;
  o.split = "validation";
  s = summarize_runs(runs, o);
  ASSERT_EQ(s.rows.size(), 4u);
  EXPECT_EQ(s.rows[1][4], "81.00");

  const std::string md = format_markdown_table(s);
  EXPECT_NE(md.find("| run | method | trainable |"), std::string::npos) << md;
  EXPECT_NE(md.find("| --- | --- | ---: |"), std::string::npos) << md;
  // The aligned text table right-aligns "92.00 ± 2.00" and "4.10 kB" columns too.
  o.group_seeds = true;
  o.split = "auto";
  const std::string text = format_table(summarize_runs(runs, o).header, summarize_runs(runs, o).rows);
  EXPECT_NE(text.find("  92.00 ± 2.00"), std::string::npos) << text;
  EXPECT_NE(text.find("         50.00"), std::string::npos) << text;

  // Any grouping: here by method across "tasks".
  SummaryOptions by;
  by.group_by = "^t-([a-z]+)-s[0-9]$";
  s = summarize_runs(runs, by);
  ASSERT_EQ(s.rows.size(), 2u);
  EXPECT_EQ(s.rows[0][0], "lora");
  EXPECT_EQ(s.rows[0][2], "3");
  by.group_by = "t-lora";
  EXPECT_TRUE(mixpeft::testing::throws_error_starting_with([&] { summarize_runs(runs, by); },
                                                           mixpeft::ErrorKind::kInvalidArgument, "report: --group-by"));

  o.split = "train";
  EXPECT_TRUE(mixpeft::testing::throws_error_starting_with([&] { summarize_runs(runs, o); },
                                                           mixpeft::ErrorKind::kInvalidArgument, "report: split"));
}

TEST(RunSummary, ComparisonChartsUseTheValidationMetric) {
  std::vector<RunRecord> runs = {run("a", {{"peft_type", "LORA"}}, 0.9, 0.8, 1)};
  auto charts = comparison_charts(runs);
  ASSERT_EQ(charts.size(), 2u);
  EXPECT_EQ(charts[1].title, "validation accuracy");
  ASSERT_EQ(charts[1].series.size(), 1u);
  ASSERT_EQ(charts[1].series[0].points.size(), 1u);  // the test record is not a validation point
  EXPECT_DOUBLE_EQ(charts[1].series[0].points[0].second, 0.8);
  EXPECT_EQ(charts[0].series[0].points.size(), 1u);
}

TEST(RunSummary, ReadRunNamesWhatIsMissing) {
  mixpeft::testing::TempDir tmp;
  EXPECT_TRUE(mixpeft::testing::throws_error_exactly([&] { read_run(tmp.path()); }, mixpeft::ErrorKind::kNotFound,
                                                     tmp.path() + "/result.json: not found (has the run finished?)"));
  std::ofstream(tmp.path() + "/result.json") << "{\"task\": ";
  EXPECT_TRUE(mixpeft::testing::throws_error_starting_with([&] { read_run(tmp.path()); },
                                                           mixpeft::ErrorKind::kCorrupt, tmp.path() + "/result.json: "));
  std::ofstream(tmp.path() + "/result.json") << "{\"task\": \"classification\"}";
  RunRecord r = read_run(tmp.path() + "/");
  EXPECT_EQ(r.result["task"], "classification");
  EXPECT_TRUE(r.log.empty());
}

}  // namespace
