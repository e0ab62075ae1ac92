// mixpeft convert: re-save a model folder with its weights in another dtype.
//
//   $ mixpeft convert --model runs/pretrain/final --out models/mixpeft-base --dtype bfloat16
//   converted LlamaForCausalLM (6843648 parameters) to bfloat16: models/mixpeft-base
//   (config.json, model.safetensors 13.7 MB, 2 tokenizer files)
//
// The tokenizer files beside the model travel with it. Stored F32/F16/BF16
// weights all load; the output is written atomically (see save_model).
#include <filesystem>
#include <iomanip>
#include <iostream>

#include <CLI/CLI.hpp>

#include "commands.h"
#include "mixpeft/error.h"
#include "mixpeft/model.h"
#include "mixpeft/train.h"

namespace mixpeft::cli {

namespace fs = std::filesystem;

void add_convert_command(CLI::App& app) {
  static std::string model_dir, out_dir, dtype = "bfloat16";
  auto* cmd = app.add_subcommand("convert", "Re-save a model folder (weights and tokenizer) in another dtype");
  cmd->add_option("--model", model_dir, "Model folder (config.json + model.safetensors)")->required();
  cmd->add_option("--out", out_dir, "Output model folder")->required();
  cmd->add_option("--dtype", dtype, "Stored dtype of the weights")
      ->check(CLI::IsMember({"float32", "bfloat16"}))
      ->capture_default_str();
  cmd->callback([] {
    MIXPEFT_CHECK(fs::weakly_canonical(model_dir) != fs::weakly_canonical(out_dir), ErrorKind::kInvalidArgument,
                  "convert: --out must differ from --model (", out_dir, ")");
    LoadOptions options;
    options.dtype = dtype == "bfloat16" ? c10::kBFloat16 : c10::kFloat;
    auto model = load_model(model_dir, options);
    save_model(*model, out_dir);
    const int tokenizer_files = train::copy_tokenizer_files(model_dir, out_dir);
    int64_t params = 0;
    for (const auto& p : model->parameters()) params += p.numel();
    const double mb = static_cast<double>(fs::file_size(fs::path(out_dir) / "model.safetensors")) / 1e6;
    std::cout << "converted " << model->architecture() << " (" << params << " parameters) to " << dtype << ": "
              << out_dir << " (config.json, model.safetensors " << std::fixed << std::setprecision(1) << mb
              << " MB, " << tokenizer_files << " tokenizer files)\n";
  });
}

}  // namespace mixpeft::cli
