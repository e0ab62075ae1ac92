// mixpeft check MODEL: compare a model (and optionally a PEFT adapter) with a
// reference dump made by Hugging Face.
//
//   $ mixpeft check tests/data/fixtures/llama --adapter tests/data/fixtures/llama/adapter
//   output                     max |mixpeft - HF|   values
//   hidden_states.0            0                    1600
//   ...
//   logits_lora                0                    6400
//   all 12 outputs within 1e-04
//
// The reference (default MODEL/reference.safetensors) holds input_ids,
// attention_mask and the outputs, named as in tests/data/fixtures/README.txt.
#include <cstdio>
#include <filesystem>
#include <iostream>

#include <CLI/CLI.hpp>

#include "commands.h"
#include "mixpeft/checkpoint.h"
#include "mixpeft/error.h"
#include "mixpeft/model.h"
#include "mixpeft/peft.h"
#include "mixpeft/reference.h"

namespace mixpeft::cli {
namespace {

struct CheckOptions {
  std::string model, reference, adapter;
  double tolerance = 1e-4;
};

void print(const std::vector<ReferenceCheck>& rows, int* bad, double tolerance) {
  for (const auto& r : rows) {
    const bool ok = r.max_abs_error <= tolerance;
    if (!ok) ++*bad;
    std::printf("%-26s %-20.3g %-8lld%s\n", r.name.c_str(), r.max_abs_error, static_cast<long long>(r.values),
                ok ? "" : "  <-- over tolerance");
  }
}

void run(const CheckOptions& o) {
  const std::string ref_path =
      o.reference.empty() ? (std::filesystem::path(o.model) / "reference.safetensors").string() : o.reference;
  auto ref = io::load_tensors(ref_path);
  LoadOptions lo;
  lo.device = global_options().device;
  auto model = load_model(o.model, lo);
  std::printf("%-26s %-20s %s\n", "output", "max |mixpeft - HF|", "values");
  int bad = 0;
  auto rows = check_against_reference(*model, ref);
  size_t total = rows.size();
  print(rows, &bad, o.tolerance);
  if (!o.adapter.empty()) {
    auto peft = peft::PeftModel::load(model, o.adapter);
    auto lora = check_against_reference(peft->model(), ref, "logits_lora");
    // Only the adapted logits (and loss) are in the reference for the PEFT model.
    std::vector<ReferenceCheck> keep;
    for (auto& r : lora)
      if (r.name == "logits_lora" || r.name == "loss_lora") keep.push_back(r);
    print(keep, &bad, o.tolerance);
    peft->merge();
    auto merged = check_against_reference(peft->model(), ref, "logits_merged");
    for (auto& r : merged)
      if (r.name == "logits_merged") {
        print({r}, &bad, o.tolerance);
        ++total;
      }
    total += keep.size();
  }
  MIXPEFT_CHECK(total > 0, ErrorKind::kInvalidArgument, ref_path, ": no outputs to compare");
  MIXPEFT_CHECK(bad == 0, ErrorKind::kInvalidArgument, o.model, ": ", bad, " of ", total,
                " outputs differ from the reference by more than ", o.tolerance);
  std::printf("all %zu outputs within %.0e\n", total, o.tolerance);
}

}  // namespace

void add_check_command(CLI::App& app) {
  static CheckOptions o;
  auto* cmd = app.add_subcommand("check", "Compare a model's outputs with a Hugging Face reference dump");
  cmd->add_option("model", o.model, "Model folder (config.json + model.safetensors)")->required();
  cmd->add_option("--reference", o.reference, "Reference .safetensors (default MODEL/reference.safetensors)");
  cmd->add_option("--adapter", o.adapter, "HF PEFT adapter folder: also compare logits_lora and logits_merged");
  cmd->add_option("--tolerance", o.tolerance, "Largest accepted absolute error (default 1e-4)");
  cmd->callback([] { run(o); });
}

}  // namespace mixpeft::cli
