// Text generation with a KV cache: greedy, temperature, top-k and top-p
// sampling, stop tokens.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace mixpeft {

class Model;

// How one row samples its next tokens, and how many it may have.
struct RowOptions {
  double temperature = 0.0;  // 0 = greedy (argmax); > 0 samples from softmax(logits / temperature)
  int64_t top_k = 0;         // keep the k most likely tokens when sampling; 0 = all
  double top_p = 1.0;        // keep the smallest set whose probability reaches top_p; 1 = all
  uint64_t seed = 0;         // seeds this row's own random generator
  int64_t max_new_tokens = -1;  // this row's limit; -1 = GenerateOptions::max_new_tokens
};

struct GenerateOptions {
  int64_t max_new_tokens = 32;
  double temperature = 0.0;  // 0 = greedy (argmax); > 0 samples from softmax(logits / temperature)
  int64_t top_k = 0;         // keep the k most likely tokens when sampling; 0 = all
  double top_p = 1.0;        // keep the smallest set whose probability reaches top_p; 1 = all
  std::vector<int64_t> stop_token_ids;  // a generated stop token ends its sequence (and is kept)
  int64_t pad_token_id = 0;  // fills the left padding of shorter prompts (masked out)
  uint64_t seed = 0;         // sampling is reproducible given the seed
  // Per-row settings, one entry per prompt; empty = every row uses the
  // settings above, row b seeded with seed + b. Each row draws from its own
  // generator and ends at its own limit, so a row's tokens do not depend on
  // the other rows of its batch: a prompt in a batch gets what it gets alone.
  std::vector<RowOptions> rows;
  // Called for every generated token: (prompt index, token id).
  std::function<void(size_t, int64_t)> on_token;
  // Asked after each token of a live row (prompt index); true ends that row
  // with finish reason "cancelled" (its client went away) while the others
  // go on. Empty = never.
  std::function<bool(size_t)> cancelled;
};

struct GenerateResult {
  std::vector<std::vector<int64_t>> tokens;  // new tokens per prompt
  std::vector<std::string> finish_reasons;   // "stop", "length" or "cancelled"
};

// Generates continuations of every prompt together (left-padded batch).
// Throws kInvalidArgument for an empty prompt or a model that is not causal.
GenerateResult generate(Model& model, const std::vector<std::vector<int64_t>>& prompts,
                        const GenerateOptions& options);

}  // namespace mixpeft
