// mixpeft export: write an adapter as a plain HF PEFT LoRA adapter
// (LORA, MOSLORA via A' = M A, merged ADAMIX with LoRA experts).
//
//   $ mixpeft export --model tests/data/fixtures/llama --adapter /tmp/moslora --out /tmp/as-lora
//   exported MOSLORA as HF PEFT LoRA: /tmp/as-lora (adapter_config.json, adapter_model.safetensors)
#include <iostream>

#include <CLI/CLI.hpp>

#include "commands.h"
#include "mixpeft/model.h"
#include "mixpeft/peft.h"
#include "mixpeft/train.h"

namespace mixpeft::cli {

void add_export_command(CLI::App& app) {
  static std::string model_dir, adapter_dir, out_dir;
  auto* cmd = app.add_subcommand("export", "Write an adapter in the HF PEFT LoRA format");
  cmd->add_option("--model", model_dir, "Base model folder")->required();
  cmd->add_option("--adapter", adapter_dir, "Adapter folder")->required();
  cmd->add_option("--out", out_dir, "Output adapter folder")->required();
  cmd->callback([] {
    auto peft = train::load_adapter(model_dir, adapter_dir);
    peft->export_lora(out_dir);
    std::cout << "exported " << peft->method().peft_type() << " as HF PEFT LoRA: " << out_dir
              << " (adapter_config.json, adapter_model.safetensors)\n";
  });
}

}  // namespace mixpeft::cli
