// mixpeft report RUN_DIR...: one table over finished training runs (their
// result.json), optionally seeds averaged, and a chart comparing them.
//
//   $ mixpeft report runs/main/spam-lora runs/main/spam-adamix --svg runs/main/compare.svg
//   run          method             trainable  trainable %  accuracy %   F1 %   stored  train time
//   ...
//   $ mixpeft report runs/results/spam-* --group-seeds --markdown
#include <filesystem>
#include <iostream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "mixpeft/error.h"
#include "mixpeft/run_summary.h"

namespace mixpeft::cli {
namespace {

struct ReportArgs {
  std::vector<std::string> runs;
  report::SummaryOptions options;
  bool markdown = false;
  bool json = false;
  bool skip_unfinished = false;
  std::string svg;
};

void run_report(const ReportArgs& a) {
  std::vector<report::RunRecord> runs;
  for (const auto& dir : a.runs) {
    if (a.skip_unfinished && !std::filesystem::exists(std::filesystem::path(dir) / "result.json")) {
      std::cerr << "skipped  " << dir << " (no result.json: not finished)\n";
      continue;
    }
    runs.push_back(report::read_run(dir));
  }
  MIXPEFT_CHECK(!runs.empty(), ErrorKind::kNotFound, "report: none of the ", a.runs.size(),
                " run folder(s) has finished (no result.json)");
  const report::Summary s = report::summarize_runs(runs, a.options);
  if (a.json) {
    std::cout << s.json.dump(2) << "\n";
  } else if (a.markdown) {
    std::cout << report::format_markdown_table(s);
  } else {
    std::cout << report::format_table(s.header, s.rows);
  }
  if (!a.svg.empty()) {
    report::write_svg(report::comparison_charts(runs), a.svg);
    if (!a.json) std::cerr << "chart    " << a.svg << "\n";
  }
}

}  // namespace

void add_report_command(CLI::App& app) {
  static ReportArgs a;
  auto* cmd = app.add_subcommand("report", "Compare finished training runs: one table, optionally a chart");
  cmd->add_option("runs", a.runs, "Run folders (a job's output_dir, holding result.json)")->required();
  cmd->add_option("--split", a.options.split,
                  "Metrics of the test split (with the best weights), of the best validation evaluation, or "
                  "test when a run has it")
      ->check(CLI::IsMember({"auto", "test", "validation"}))
      ->capture_default_str();
  cmd->add_flag("--group-seeds", a.options.group_seeds,
                "One row per run name without its -s<N>/-seed<N> suffix: mean ± sample std over the seeds");
  cmd->add_option("--group-by", a.options.group_by,
                  "Group runs by the first capture group of this regex (matched against the whole run name)")
      ->type_name("REGEX");
  auto* md = cmd->add_flag("--markdown", a.markdown, "Print a Markdown table");
  cmd->add_flag("--json", a.json, "Print the rows as JSON (numbers unformatted)")->excludes(md);
  cmd->add_flag("--skip-unfinished", a.skip_unfinished,
                "Leave out folders without result.json (runs not finished) instead of failing");
  cmd->add_option("--svg", a.svg, "Write training-loss and validation-metric curves of every run here")
      ->type_name("FILE");
  cmd->callback([] { run_report(a); });
}

}  // namespace mixpeft::cli
