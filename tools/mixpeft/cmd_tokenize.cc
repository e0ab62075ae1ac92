// mixpeft tokenize: ids and tokens of a text, as the tokenizer of a folder gives them.
//
//   $ mixpeft tokenize --tokenizer tests/data/fixtures/tokenizers/gpt2 "Hello world"
//   ids     15496 995
//   tokens  Hello Ġworld
//   decoded Hello world
#include <iostream>

#include <CLI/CLI.hpp>

#include "commands.h"
#include "mixpeft/tokenizer.h"

namespace mixpeft::cli {
namespace {

struct TokenizeOptions {
  std::string tokenizer, text, pair;
  bool no_special = false;
};

void run(const TokenizeOptions& o) {
  auto tok = tok::Tokenizer::load(o.tokenizer);
  std::vector<tok::TokenId> ids;
  if (o.pair.empty()) {
    ids = tok->encode(o.text, !o.no_special);
  } else {
    ids = tok->encode_pair(o.text, o.pair, !o.no_special).ids;
  }
  std::cout << "ids    ";
  for (auto id : ids) std::cout << " " << id;
  std::cout << "\ntokens ";
  for (auto id : ids) std::cout << " " << tok->id_to_token(id);
  std::cout << "\ndecoded " << tok->decode(ids, /*skip_special_tokens=*/false) << "\n";
}

}  // namespace

void add_tokenize_command(CLI::App& app) {
  static TokenizeOptions o;
  auto* cmd = app.add_subcommand("tokenize", "Show the token ids of a text");
  cmd->add_option("--tokenizer", o.tokenizer,
                  "Folder with tokenizer.json, vocab.json + merges.txt, or vocab.txt (or one of those files)")
      ->required();
  cmd->add_option("text", o.text, "The text")->required();
  cmd->add_option("--pair", o.pair, "A second text, encoded as a pair ([CLS] a [SEP] b [SEP] ...)");
  cmd->add_flag("--no-special", o.no_special, "Do not add special tokens");
  cmd->callback([] { run(o); });
}

}  // namespace mixpeft::cli
