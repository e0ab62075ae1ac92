// Run summaries for `mixpeft report`: the result.json of finished training
// runs -> one table (optionally seeds or any grouping averaged: mean ±
// sample std) and comparison charts. Torch-free (mixpeft_base).
//
//   std::vector<RunRecord> runs = {read_run("runs/a"), read_run("runs/b")};
//   SummaryOptions o; o.group_seeds = true;
//   Summary s = summarize_runs(runs, o);
//   std::cout << format_table(s.header, s.rows);
//   write_svg(comparison_charts(runs), "compare.svg");
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mixpeft/report.h"

namespace mixpeft::report {

// One finished training run: output_dir/result.json (written by the trainer
// at the end of a run) and output_dir/metrics.jsonl.
struct RunRecord {
  std::string dir;                      // as given
  std::string name;                     // the folder's last component
  nlohmann::json result;                // result.json
  std::vector<nlohmann::json> log;      // metrics.jsonl ({} when absent)
};

// Reads DIR/result.json (kNotFound naming it when the run has not finished:
// "runs/x/result.json: not found (has the run finished?)") and, when
// present, DIR/metrics.jsonl.
RunRecord read_run(const std::string& dir);

// A short name for an adapter config (result.json's "peft"), e.g. "LoRA r8",
// "MoSLoRA r8", "Houlsby m64", "Pfeiffer m64", "AdaMix-LoRA 4x r8",
// "AdaMix-adapter 4x m16", "X-PEFT soft N16", "X-PEFT hard top-4 N16",
// "Full fine-tuning", "Head only". Unknown types: the peft_type as is.
std::string method_label(const nlohmann::json& peft);

// The group a run belongs to when seeds are averaged: `name` with a trailing
// "-s<digits>" or "-seed<digits>" removed ("spam-lora-s2" -> "spam-lora").
std::string seed_group(const std::string& name);

// Mean and sample standard deviation (n - 1; 0 for one value) of the finite
// values; n counts them. All NaN for no finite value.
struct MeanStd {
  double mean = NAN, std = NAN;
  int n = 0;
};
MeanStd mean_std(const std::vector<double>& values);

struct SummaryOptions {
  // Metrics come from result.json's "test_metrics" ("test"), "best_metrics"
  // (the validation evaluation that was kept, "validation"), or test when
  // the run has them and validation otherwise ("auto").
  std::string split = "auto";
  bool group_seeds = false;  // one row per seed_group, cells "mean ± std"
  // Or any grouping: a regex (ECMAScript) whose first capture group, matched
  // against the whole run name, is the group (a run that does not match is
  // its own group). Takes precedence over group_seeds.
  std::string group_by;
};

// The table of `mixpeft report`: run (or group, with its number of runs "n"),
// method, trainable parameters and % of the model, the task's metrics
// (classification: accuracy and F1 in %, and MCC; regression: Pearson and Spearman;
// causal LM: perplexity), the bytes a task stores (the artifact's
// safetensors; for a head-only run its head in float32, since the rest of
// the saved folder is the unchanged base), and training time. Grouped cells
// are "mean ± std", or the value alone when every run has the same one.
struct Summary {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  nlohmann::json json;  // one object per row, numbers unformatted
};
Summary summarize_runs(const std::vector<RunRecord>& runs, const SummaryOptions& options);

// Markdown table of a Summary (numeric columns right-aligned).
std::string format_markdown_table(const Summary& summary);

// Two charts over the runs: the training loss, and the validation metric the
// runs select checkpoints by (result.json "metric"), one series per run.
std::vector<Chart> comparison_charts(const std::vector<RunRecord>& runs);

}  // namespace mixpeft::report
