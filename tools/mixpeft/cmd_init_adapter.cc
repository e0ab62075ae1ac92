// mixpeft init-adapter: attach a freshly initialised PEFT method to a model
// and save it (the starting point of a fine-tuning run; also shows the cost).
//
//   $ mixpeft init-adapter --model tests/data/fixtures/llama --config '{"peft_type": "LORA", "r": 4}' --out /tmp/lora
//   LORA on LlamaForCausalLM: 2,048 trainable of 109,632 parameters (1.868%)
//   saved /tmp/lora (adapter_config.json, adapter_model.safetensors)
#include <cstdio>
#include <iostream>

#include <CLI/CLI.hpp>

#include "commands.h"
#include "mixpeft/error.h"
#include "mixpeft/model.h"
#include "mixpeft/peft.h"

namespace mixpeft::cli {

void add_init_adapter_command(CLI::App& app) {
  static std::string model_dir, config_text, out_dir;
  auto* cmd = app.add_subcommand("init-adapter", "Create a fresh adapter for a model and report its trainable parameters");
  cmd->add_option("--model", model_dir, "Base model folder")->required();
  cmd->add_option("--config", config_text,
                  "Adapter config as JSON, e.g. '{\"peft_type\": \"LORA\", \"r\": 8}' (see docs/METHODS.md)")
      ->required();
  cmd->add_option("--out", out_dir, "Output adapter folder")->required();
  cmd->callback([] {
    nlohmann::json config;
    try {
      config = nlohmann::json::parse(config_text);
    } catch (const nlohmann::json::parse_error& e) {
      fail(ErrorKind::kInvalidArgument, "--config: malformed JSON: ", e.what());
    }
    auto peft = peft::PeftModel::create(load_model(model_dir), config);
    const int64_t trainable = peft->num_trainable(), total = peft->num_parameters();
    std::printf("%s on %s: %lld trainable of %lld parameters (%.3f%%)\n", peft->method().peft_type().c_str(),
                peft->model().architecture().c_str(), static_cast<long long>(trainable),
                static_cast<long long>(total), 100.0 * static_cast<double>(trainable) / static_cast<double>(total));
    peft->save(out_dir);
    std::cout << "saved " << out_dir << " (adapter_config.json, adapter_model.safetensors)\n";
  });
}

}  // namespace mixpeft::cli
