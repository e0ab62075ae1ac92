// mixpeft merge: fold an adapter into its base model and save a plain HF checkpoint.
//
//   $ mixpeft merge --model tests/data/fixtures/llama --adapter tests/data/fixtures/llama/adapter --out /tmp/merged
//   merged LORA adapter (8 tensors) into LlamaForCausalLM: /tmp/merged (config.json, model.safetensors)
#include <iostream>

#include <CLI/CLI.hpp>

#include "commands.h"
#include "mixpeft/model.h"
#include "mixpeft/peft.h"
#include "mixpeft/train.h"

namespace mixpeft::cli {

void add_merge_command(CLI::App& app) {
  static std::string model_dir, adapter_dir, out_dir;
  auto* cmd = app.add_subcommand("merge", "Merge an adapter into its base model and save the result (HF format)");
  cmd->add_option("--model", model_dir, "Base model folder")->required();
  cmd->add_option("--adapter", adapter_dir, "Adapter folder (adapter_config.json + adapter_model.safetensors)")->required();
  cmd->add_option("--out", out_dir, "Output model folder")->required();
  cmd->callback([] {
    // A classification adapter (task_type SEQ_CLS) gets its head back.
    auto peft = train::load_adapter(model_dir, adapter_dir);
    const size_t tensors = peft->trainable_parameters().size();
    const std::string type = peft->method().peft_type();
    auto merged = peft->merge_and_unload();
    save_model(*merged, out_dir);
    // The merged folder loads on its own (eval, generate, another merge).
    const int tokenizer_files = train::copy_tokenizer_files(model_dir, out_dir);
    std::cout << "merged " << type << " adapter (" << tensors << " tensors) into " << merged->architecture() << ": "
              << out_dir << " (config.json, model.safetensors"
              << (tokenizer_files ? ", " + std::to_string(tokenizer_files) + " tokenizer files" : std::string()) << ")\n";
  });
}

}  // namespace mixpeft::cli
