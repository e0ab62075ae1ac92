// Run summaries: result.json of finished runs -> the table and charts of
// `mixpeft report`.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <regex>

#include <nlohmann/json.hpp>

#include "mixpeft/error.h"
#include "mixpeft/run_summary.h"
#include "mixpeft/safetensors.h"
#include "report/internal.h"

namespace mixpeft::report {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string fixed(double v, int decimals) {
  if (!std::isfinite(v)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string bytes_text(double b) {
  if (!std::isfinite(b)) return "-";
  if (b < 1e3) return fixed(b, 0) + " B";
  if (b < 1e6) return fixed(b / 1e3, b < 1e4 ? 2 : 1) + " kB";
  return fixed(b / 1e6, b < 1e7 ? 2 : 1) + " MB";
}

int64_t int_of(const json& j, const char* key, int64_t fallback = 0) {
  return j.contains(key) && j[key].is_number() ? j[key].get<int64_t>() : fallback;
}

std::string str_of(const json& j, const char* key, const std::string& fallback = "") {
  return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : fallback;
}

// A column of the table: a name, how to read a number from a run, how to print it.
struct Column {
  std::string name;
  std::function<double(const RunRecord&)> value;
  int decimals = 2;
  bool bytes = false;
  bool seconds = false;
};

// The metrics of a run on the chosen split.
json split_metrics(const RunRecord& run, const std::string& split) {
  const json& r = run.result;
  const bool has_test = r.contains("test_metrics") && r["test_metrics"].is_object() && !r["test_metrics"].empty();
  if (split == "test" || (split == "auto" && has_test)) return has_test ? r["test_metrics"] : json::object();
  return r.contains("best_metrics") && r["best_metrics"].is_object() ? r["best_metrics"] : json::object();
}

double metric(const json& m, const char* key, double scale = 1.0) {
  return m.contains(key) && m[key].is_number() ? m[key].get<double>() * scale : NAN;
}

std::string cell(const Column& c, const std::vector<double>& values, bool grouped) {
  const MeanStd ms = mean_std(values);
  if (ms.n == 0) return "-";
  if (c.bytes) return bytes_text(ms.mean);
  if (c.seconds) return format_duration(ms.mean);
  const bool constant = std::all_of(values.begin(), values.end(), [&](double v) { return v == values.front(); });
  if (!grouped || ms.n < 2 || constant) return fixed(ms.mean, c.decimals);
  return fixed(ms.mean, c.decimals) + " ± " + fixed(ms.std, c.decimals);
}

}  // namespace

RunRecord read_run(const std::string& dir) {
  RunRecord run;
  run.dir = dir;
  fs::path p(dir);
  if (p.has_filename() == false) p = p.parent_path();
  run.name = p.filename().string();
  const std::string result_path = (fs::path(dir) / "result.json").string();
  MIXPEFT_CHECK(fs::exists(result_path), ErrorKind::kNotFound, result_path, ": not found (has the run finished?)");
  try {
    run.result = json::parse(io::read_file(result_path));
  } catch (const json::exception& e) {
    throw Error(ErrorKind::kCorrupt, result_path + ": " + e.what());
  }
  MIXPEFT_CHECK(run.result.is_object(), ErrorKind::kCorrupt, result_path, ": not a JSON object");
  const std::string log_path = (fs::path(dir) / "metrics.jsonl").string();
  if (fs::exists(log_path)) run.log = read_jsonl(log_path);
  return run;
}

std::string method_label(const json& peft) {
  const std::string type = str_of(peft, "peft_type");
  std::string upper = type;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  auto num = [&](const char* key, int64_t fallback) { return std::to_string(int_of(peft, key, fallback)); };
  if (upper == "FULL") return "Full fine-tuning";
  if (upper == "HEAD") return "Head only";
  if (upper == "LORA") return "LoRA r" + num("r", 8);
  if (upper == "MOSLORA") return "MoSLoRA r" + num("r", 8);
  if (upper == "BOTTLENECK")
    return std::string(str_of(peft, "placement", "pfeiffer") == "houlsby" ? "Houlsby" : "Pfeiffer") + " m" +
           num("bottleneck_size", 64);
  if (upper == "ADAMIX") {
    const std::string experts = num("num_experts", 4) + "x";
    if (str_of(peft, "variant", "adapter") == "lora") return "AdaMix-LoRA " + experts + " r" + num("r", 8);
    return "AdaMix-adapter " + experts + " m" + num("bottleneck_size", 16);
  }
  if (upper == "XPEFT") {
    const bool hard = peft.contains("hard") && peft["hard"].is_boolean() && peft["hard"].get<bool>();
    std::string label = hard ? "X-PEFT hard top-" + num("top_k", 0) : "X-PEFT soft";
    const bool trained = peft.contains("bank_adapters") || peft.contains("bank_path");
    if (peft.contains("bank_adapters") && peft["bank_adapters"].is_array())
      return label + " N" + std::to_string(peft["bank_adapters"].size()) + " trained bank";
    return label + " N" + num("num_adapters", 16) + (trained ? " trained bank" : " random bank");
  }
  return type;
}

std::string seed_group(const std::string& name) {
  static const std::regex kSeed("^(.*)-(s|seed)[0-9]+$");
  std::smatch m;
  return std::regex_match(name, m, kSeed) ? m[1].str() : name;
}

MeanStd mean_std(const std::vector<double>& values) {
  MeanStd r;
  double sum = 0;
  for (double v : values)
    if (std::isfinite(v)) sum += v, ++r.n;
  if (r.n == 0) return r;
  r.mean = sum / r.n;
  double ss = 0;
  for (double v : values)
    if (std::isfinite(v)) ss += (v - r.mean) * (v - r.mean);
  r.std = r.n > 1 ? std::sqrt(ss / (r.n - 1)) : 0.0;
  return r;
}

Summary summarize_runs(const std::vector<RunRecord>& runs, const SummaryOptions& options) {
  MIXPEFT_CHECK(options.split == "auto" || options.split == "test" || options.split == "validation",
                ErrorKind::kInvalidArgument, "report: split must be auto, test or validation (got \"",
                options.split, "\")");
  Summary s;
  if (runs.empty()) return s;
  const std::string task = str_of(runs.front().result, "task", "classification");
  const std::string& split = options.split;
  std::vector<Column> cols;
  cols.push_back({"trainable", [](const RunRecord& r) { return double(int_of(r.result, "trainable_parameters")); }, 0});
  cols.push_back({"trainable %",
                  [](const RunRecord& r) {
                    const double total = double(int_of(r.result, "total_parameters"));
                    return total > 0 ? 100.0 * double(int_of(r.result, "trainable_parameters")) / total : NAN;
                  },
                  3});
  if (task == "causal_lm") {
    cols.push_back({"perplexity", [split](const RunRecord& r) { return metric(split_metrics(r, split), "perplexity"); }, 2});
    cols.push_back({"loss", [split](const RunRecord& r) { return metric(split_metrics(r, split), "loss"); }, 4});
  } else if (task == "regression") {
    cols.push_back({"pearson", [split](const RunRecord& r) { return metric(split_metrics(r, split), "pearson"); }, 4});
    cols.push_back({"spearman", [split](const RunRecord& r) { return metric(split_metrics(r, split), "spearman"); }, 4});
  } else {
    cols.push_back({"accuracy %", [split](const RunRecord& r) { return metric(split_metrics(r, split), "accuracy", 100); }, 2});
    cols.push_back({"F1 %", [split](const RunRecord& r) { return metric(split_metrics(r, split), "f1", 100); }, 2});
    cols.push_back({"MCC", [split](const RunRecord& r) { return metric(split_metrics(r, split), "mcc"); }, 3});
  }
  // A head-only run saves the whole model, but a task needs only its head
  // (trained in float32) beside the unchanged base.
  Column bytes{"stored",
               [](const RunRecord& r) {
                 if (str_of(r.result, "method") == "HEAD") return 4.0 * double(int_of(r.result, "trainable_parameters"));
                 const int64_t b = int_of(r.result, "artifact_bytes", -1);
                 return b < 0 ? NAN : double(b);
               },
               0};
  bytes.bytes = true;
  cols.push_back(bytes);
  Column time{"train time", [](const RunRecord& r) {
                return r.result.contains("train_seconds") && r.result["train_seconds"].is_number()
                           ? r.result["train_seconds"].get<double>()
                           : NAN;
              }, 0};
  time.seconds = true;
  cols.push_back(time);

  // Rows: each run, or each seed group in order of first appearance.
  std::vector<std::string> keys;
  std::map<std::string, std::vector<const RunRecord*>> members;
  const bool grouped = options.group_seeds || !options.group_by.empty();
  std::regex group_re;
  if (!options.group_by.empty()) {
    try {
      group_re = std::regex(options.group_by, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      throw Error(ErrorKind::kInvalidArgument, "report: --group-by \"" + options.group_by + "\": " + e.what());
    }
    MIXPEFT_CHECK(group_re.mark_count() >= 1, ErrorKind::kInvalidArgument, "report: --group-by \"",
                  options.group_by, "\" has no capture group (the part that names the group)");
  }
  auto group_of = [&](const std::string& name) {
    if (options.group_by.empty()) return options.group_seeds ? seed_group(name) : name;
    std::smatch m;
    return std::regex_match(name, m, group_re) ? m[1].str() : name;
  };
  for (const auto& r : runs) {
    const std::string key = group_of(r.name);
    if (!members.count(key)) keys.push_back(key);
    members[key].push_back(&r);
  }
  s.header = {grouped ? "runs" : "run", "method"};
  if (grouped) s.header.push_back("n");
  for (const auto& c : cols) s.header.push_back(c.name);
  s.json = json::array();
  for (const auto& key : keys) {
    const auto& group = members[key];
    const std::string label = method_label(group.front()->result.value("peft", json::object()));
    std::vector<std::string> row{key, label};
    json obj = {{"run", key}, {"method", label}, {"task", task}, {"split", split}};
    if (grouped) {
      row.push_back(std::to_string(group.size()));
      obj["n"] = group.size();
    }
    for (const auto& c : cols) {
      std::vector<double> values;
      for (const RunRecord* r : group) values.push_back(c.value(*r));
      row.push_back(cell(c, values, grouped));
      const MeanStd ms = mean_std(values);
      obj[c.name] = ms.n ? json(ms.mean) : json(nullptr);
      if (grouped) obj[c.name + " std"] = ms.n ? json(ms.std) : json(nullptr);
    }
    s.rows.push_back(row);
    s.json.push_back(obj);
  }
  return s;
}

std::string format_markdown_table(const Summary& summary) {
  // A column is right-aligned when every filled cell is a number, as in format_table.
  std::vector<bool> right(summary.header.size(), false);
  for (size_t c = 0; c < summary.header.size(); ++c) {
    bool any = false, all = true;
    for (const auto& row : summary.rows) {
      if (c >= row.size() || row[c].empty() || row[c] == "-") continue;
      any = true;
      all = all && detail::looks_numeric(row[c]);
    }
    right[c] = any && all;
  }
  std::string out = "|";
  for (const auto& h : summary.header) out += " " + h + " |";
  out += "\n|";
  for (size_t c = 0; c < summary.header.size(); ++c) out += right[c] ? " ---: |" : " --- |";
  out += "\n";
  for (const auto& row : summary.rows) {
    out += "|";
    for (size_t c = 0; c < summary.header.size(); ++c) out += " " + (c < row.size() ? row[c] : std::string()) + " |";
    out += "\n";
  }
  return out;
}

std::vector<Chart> comparison_charts(const std::vector<RunRecord>& runs) {
  Chart loss{"training loss", "step", "loss", {}, false};
  const std::string metric_name = runs.empty() ? "" : str_of(runs.front().result, "metric", "loss");
  Chart val{"validation " + metric_name, "step", metric_name, {}, false};
  for (const auto& run : runs) {
    Series tl{run.name, {}}, vm{run.name, {}};
    for (const auto& rec : run.log) {
      const std::string event = str_of(rec, "event");
      if (!rec.contains("step") || !rec["step"].is_number()) continue;
      const double step = rec["step"].get<double>();
      if (event == "train" && rec.contains("loss") && rec["loss"].is_number())
        tl.points.emplace_back(step, rec["loss"].get<double>());
      if (event == "eval" && str_of(rec, "split", "validation") == "validation" && rec.contains("metrics")) {
        const double v = metric(rec["metrics"], metric_name.c_str());
        if (std::isfinite(v)) vm.points.emplace_back(step, v);
      }
    }
    loss.series.push_back(std::move(tl));
    val.series.push_back(std::move(vm));
  }
  return {loss, val};
}

}  // namespace mixpeft::report
