// mixpeft generate: continue a prompt with a causal LM (KV cache; greedy,
// temperature, top-k, top-p; stop tokens).
//
//   $ mixpeft generate --model tests/data/fixtures/gpt2 --ids "5 17 42" --max-new-tokens 8
//   prompt ids  5 17 42
//   new ids     ...
//   finish      length (8 tokens, ... tokens/s)
//
// With a tokenizer (in the model folder or --tokenizer), --prompt takes text
// and the continuation is printed as text (streamed with --stream).
#include <chrono>
#include <filesystem>
#include <iostream>
#include <sstream>

#include <CLI/CLI.hpp>

#include "commands.h"
#include "mixpeft/error.h"
#include "mixpeft/generate.h"
#include "mixpeft/model.h"
#include "mixpeft/peft.h"
#include "mixpeft/tokenizer.h"

namespace mixpeft::cli {
namespace {

namespace fs = std::filesystem;

struct GenerateCliOptions {
  std::string model, tokenizer, prompt, ids, adapter;
  GenerateOptions gen;
  std::vector<int64_t> stop_ids;
  bool stream = false, no_eos = false;
};

bool has_tokenizer(const std::string& dir) {
  return fs::exists(fs::path(dir) / "tokenizer.json") || fs::exists(fs::path(dir) / "vocab.json") ||
         fs::exists(fs::path(dir) / "vocab.txt");
}

std::vector<int64_t> parse_ids(const std::string& s) {
  std::vector<int64_t> out;
  std::istringstream in(s);
  std::string tok;
  while (in >> tok) {
    try {
      size_t used = 0;
      out.push_back(std::stoll(tok, &used));
      MIXPEFT_CHECK(used == tok.size(), ErrorKind::kInvalidArgument, "--ids: \"", tok, "\" is not an integer");
    } catch (const std::logic_error&) {
      fail(ErrorKind::kInvalidArgument, "--ids: \"", tok, "\" is not an integer");
    }
  }
  return out;
}

void run(GenerateCliOptions o) {
  LoadOptions lo;
  lo.device = global_options().device;
  auto model = load_model(o.model, lo);
  std::shared_ptr<peft::PeftModel> peft;
  if (!o.adapter.empty()) {
    peft = peft::PeftModel::load(model, o.adapter);
    peft->model().eval();
  }
  std::unique_ptr<tok::Tokenizer> tokenizer;
  const std::string tok_dir = !o.tokenizer.empty() ? o.tokenizer : (has_tokenizer(o.model) ? o.model : "");
  if (!tok_dir.empty()) tokenizer = tok::Tokenizer::load(tok_dir);

  std::vector<int64_t> prompt;
  if (!o.ids.empty()) {
    prompt = parse_ids(o.ids);
  } else {
    MIXPEFT_CHECK(!o.prompt.empty(), ErrorKind::kInvalidArgument, "give --prompt TEXT or --ids \"1 2 3\"");
    MIXPEFT_CHECK(tokenizer != nullptr, ErrorKind::kInvalidArgument, o.model,
                  ": no tokenizer here; pass --tokenizer DIR or token ids with --ids");
    for (auto id : tokenizer->encode(o.prompt, /*add_special_tokens=*/false)) prompt.push_back(id);
  }
  o.gen.stop_token_ids = o.stop_ids;
  if (!o.no_eos) {
    const auto& cfg = model->config();
    auto eos = cfg.find("eos_token_id");
    if (eos != cfg.end() && eos->is_number_integer()) o.gen.stop_token_ids.push_back(eos->get<int64_t>());
    if (eos != cfg.end() && eos->is_array())
      for (const auto& e : *eos) o.gen.stop_token_ids.push_back(e.get<int64_t>());
  }
  if (o.stream && tokenizer) {
    o.gen.on_token = [&](size_t, int64_t id) {
      std::cout << tokenizer->decode({static_cast<tok::TokenId>(id)}) << std::flush;
    };
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto result = generate(*model, {prompt}, o.gen);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto& out = result.tokens[0];
  if (o.stream && tokenizer) std::cout << "\n";
  std::cout << "prompt ids ";
  for (auto id : prompt) std::cout << " " << id;
  std::cout << "\nnew ids    ";
  for (auto id : out) std::cout << " " << id;
  std::cout << "\n";
  if (tokenizer && !o.stream) {
    std::vector<tok::TokenId> ids(out.begin(), out.end());
    std::cout << "text        " << o.prompt << tokenizer->decode(ids, /*skip_special_tokens=*/true) << "\n";
  }
  std::cout << "finish      " << result.finish_reasons[0] << " (" << out.size() << " tokens, "
            << (seconds > 0 ? static_cast<double>(out.size()) / seconds : 0.0) << " tokens/s)\n";
}

}  // namespace

void add_generate_command(CLI::App& app) {
  static GenerateCliOptions o;
  auto* cmd = app.add_subcommand("generate", "Continue a prompt with a causal language model");
  cmd->add_option("--model", o.model, "Model folder (config.json + model.safetensors)")->required();
  cmd->add_option("--adapter", o.adapter, "PEFT adapter folder to apply");
  cmd->add_option("--tokenizer", o.tokenizer, "Tokenizer folder (default: the model folder, when it has one)");
  cmd->add_option("--prompt", o.prompt, "Prompt text (needs a tokenizer)");
  cmd->add_option("--ids", o.ids, "Prompt as token ids, e.g. \"5 17 42\"");
  cmd->add_option("--max-new-tokens", o.gen.max_new_tokens, "Tokens to generate at most (default 32)");
  cmd->add_option("--temperature", o.gen.temperature, "0 = greedy (default); > 0 samples")->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-k", o.gen.top_k, "Sample from the k most likely tokens (0 = all)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-p", o.gen.top_p, "Nucleus sampling threshold in (0, 1] (default 1 = off)");
  cmd->add_option("--seed", o.gen.seed, "Sampling seed (default 0)");
  cmd->add_option("--stop-id", o.stop_ids, "Token id that ends generation (repeatable; eos_token_id is added)");
  cmd->add_flag("--no-eos", o.no_eos, "Do not stop at the config's eos_token_id");
  cmd->add_flag("--stream", o.stream, "Print text as it is generated (needs a tokenizer)");
  cmd->callback([] { run(o); });
}

}  // namespace mixpeft::cli
