// mixpeft tokenizer train: learn a byte-level BPE tokenizer from text files
// and save it as Hugging Face tokenizer.json + tokenizer_config.json.
//
//   $ mixpeft tokenizer train --input corpus.txt --vocab-size 8192 --out runs/tok
//   read     10485760 bytes, 216839 lines, 3008008 words (70127 distinct) in 0.8 s
//   trained  vocab 8192 = 3 special + 256 bytes + 7933 merges (vocab_size reached) in 0.4 s
//   encoded  3362240 tokens for the input: 3.119 bytes per token
//   saved    runs/tok/tokenizer.json, runs/tok/tokenizer_config.json
//
// The algorithm and its tie-break are described in include/mixpeft/bpe_trainer.h.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include <CLI/CLI.hpp>

#include "commands.h"
#include "mixpeft/bpe_trainer.h"
#include "mixpeft/error.h"

namespace mixpeft::cli {
namespace {

struct TokenizerTrainArgs {
  std::vector<std::string> inputs;
  std::string out;
  tok::BpeTrainerOptions options;
  bool no_bos = false;
};

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

void run_tokenizer_train(TokenizerTrainArgs& a) {
  namespace fs = std::filesystem;
  // Check every input before spending time on the first.
  for (const auto& path : a.inputs) {
    std::error_code ec;
    MIXPEFT_CHECK(fs::exists(path, ec), ErrorKind::kNotFound, path,
                  ": no such file (--input takes UTF-8 text files)");
    MIXPEFT_CHECK(!fs::is_directory(path, ec), ErrorKind::kInvalidArgument, path,
                  ": is a folder; give the text files themselves");
  }
  // --special '' means none.
  auto& specials = a.options.special_tokens;
  specials.erase(std::remove(specials.begin(), specials.end(), std::string()), specials.end());
  // --bos "" alone also means no bos in the template.
  a.options.add_bos = !a.no_bos && !a.options.bos_token.empty();
  tok::BpeTrainer trainer(a.options);
  for (const auto& path : a.inputs) {
    if (!trainer.feed_file(path)) break;  // --max-bytes reached
  }
  tok::BpeTrainResult r = trainer.train();
  r.tokenizer->save_pretrained(a.out);

  const tok::BpeTrainStats& s = r.stats;
  const size_t num_specials = specials.size();
  std::cout << "read     " << s.bytes << " bytes, " << s.lines << " lines, " << s.words
            << " words (" << s.distinct_words << " distinct) in " << fixed(s.feed_seconds, 1)
            << " s" << (s.truncated ? " (stopped at --max-bytes)" : "") << "\n";
  std::cout << "trained  vocab " << s.vocab_size << " = " << num_specials << " special + 256 bytes + "
            << s.merges << " merges (" << s.stop_reason << ") in " << fixed(s.train_seconds, 1)
            << " s\n";
  std::cout << "encoded  " << s.tokens << " tokens for the input: "
            << fixed(s.tokens ? static_cast<double>(s.bytes) / static_cast<double>(s.tokens) : 0, 3)
            << " bytes per token\n";
  std::cout << "saved    " << (fs::path(a.out) / "tokenizer.json").string() << ", "
            << (fs::path(a.out) / "tokenizer_config.json").string() << "\n";
}

}  // namespace

void add_tokenizer_command(CLI::App& app) {
  static TokenizerTrainArgs a;
  auto* cmd = app.add_subcommand("tokenizer", "Train tokenizers (subcommand: train)");
  cmd->require_subcommand(1);
  auto* train = cmd->add_subcommand(
      "train", "Learn a byte-level BPE tokenizer from text files (HF tokenizer.json)");
  tok::BpeTrainerOptions& o = a.options;
  train->add_option("--input", a.inputs, "UTF-8 text files, read line by line (one or more)")
      ->required()
      ->expected(1, -1)
      ->type_name("FILE");
  train->add_option("--out", a.out, "Folder for tokenizer.json and tokenizer_config.json")
      ->required()
      ->type_name("DIR");
  train->add_option("--vocab-size", o.vocab_size,
                    "Tokens in all: special + 256 bytes + merges; larger gives shorter sequences "
                    "but a larger embedding table")
      ->capture_default_str()
      ->type_name("N");
  train->add_option("--min-frequency", o.min_frequency,
                    "Never merge a pair seen fewer times; training may stop below --vocab-size")
      ->capture_default_str()
      ->type_name("N");
  train->add_option("--special", o.special_tokens,
                    "Special tokens, ids 0.. in this order (replaces the default list; '' = none)")
      ->capture_default_str()
      ->expected(1, -1)
      ->type_name("TOKEN");
  train->add_option("--bos", o.bos_token, "Beginning-of-sequence token (\"\" = none)")
      ->capture_default_str();
  train->add_option("--eos", o.eos_token, "End-of-sequence token (\"\" = none)")
      ->capture_default_str();
  train->add_option("--pad", o.pad_token, "Padding token (\"\" = none)")->capture_default_str();
  train->add_option("--unk", o.unk_token, "Unknown token (default none: every byte has a token)");
  train->add_flag("--no-bos", a.no_bos, "Do not prepend the bos token to every encoded text");
  train->add_flag("--add-eos", o.add_eos, "Append the eos token to every encoded text");
  train->add_option("--max-length", o.model_max_length,
                    "model_max_length in tokenizer_config.json (the model's context; 0 = none)")
      ->capture_default_str()
      ->type_name("N");
  train->add_option("--max-bytes", o.max_input_bytes,
                    "Read at most this many input bytes, whole lines (0 = everything)")
      ->capture_default_str()
      ->type_name("N");
  train->add_option("--split-pattern", o.split_pattern,
                    "Pre-tokenization regex (python syntax; default GPT-2's)")
      ->type_name("REGEX");
  train->add_flag("--add-prefix-space", o.add_prefix_space,
                  "Read a text's first word as if a space preceded it (GPT-2/RoBERTa style)");
  train->callback([] { run_tokenizer_train(a); });
}

}  // namespace mixpeft::cli
