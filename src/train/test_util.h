// Inputs for trainer tests: a 256-token byte-level tokenizer (the fixtures'
// vocabulary size) and small generated datasets with a learnable signal.
#pragma once

#include <fstream>
#include <random>
#include <string>

#include <nlohmann/json.hpp>

#include "mixpeft/tokenizer.h"

namespace mixpeft::testing {

// Byte-level BPE without merges: ids 0..255 are the 256 byte symbols in
// GPT-2's order (taken from the GPT-2 tokenizer fixture); the last one (id
// 255, a byte that never occurs in ASCII text) serves as eos and pad.
inline void write_byte_tokenizer(const std::string& dir) {
  auto gpt2 = tok::Tokenizer::load(std::string(MIXPEFT_TEST_DATA) + "/fixtures/tokenizers/gpt2");
  tok::ByteLevelBpeSpec spec;
  for (int id = 0; id < 256; ++id) spec.vocab.push_back(gpt2->id_to_token(id));
  spec.eos_token = spec.vocab[255];
  spec.pad_token = spec.vocab[255];
  tok::Tokenizer::from_byte_level_bpe(spec)->save_pretrained(dir);
}

// Sentences of random lower-case words; label "pos" when the sentence
// starts with "good", "neg" when it starts with "bad".
inline void write_classification_jsonl(const std::string& path, int rows, uint32_t seed) {
  std::mt19937 rng(seed);
  const char* words[] = {"the", "cat", "sat", "on", "mat", "a", "dog", "ran", "far", "away", "sun", "sky"};
  std::ofstream out(path);
  for (int i = 0; i < rows; ++i) {
    const bool pos = (rng() & 1u) != 0;
    std::string text = pos ? "good" : "bad";
    const int n = 2 + static_cast<int>(rng() % 5);
    for (int w = 0; w < n; ++w) text += std::string(" ") + words[rng() % 12];
    out << nlohmann::json{{"text", text}, {"label", pos ? "pos" : "neg"}}.dump() << "\n";
  }
}

// Prompt/completion pairs: the completion repeats the prompt's word.
inline void write_causal_jsonl(const std::string& path, int rows, uint32_t seed) {
  std::mt19937 rng(seed);
  const char* words[] = {"red", "blue", "green", "gold"};
  std::ofstream out(path);
  for (int i = 0; i < rows; ++i) {
    const std::string w = words[rng() % 4];
    out << nlohmann::json{{"prompt", "say " + w + ":"}, {"completion", " " + w + " " + w}}.dump() << "\n";
  }
}

}  // namespace mixpeft::testing
