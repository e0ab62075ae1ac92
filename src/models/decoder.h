// Shared plumbing of the causal decoders (GPT-2, LLaMA, Qwen2): masks,
// positions and the KV cache for one forward call.
#pragma once

#include "mixpeft/model.h"

namespace mixpeft::models {

struct DecoderStep {
  at::Tensor bias;          // additive attention bias [B|1, 1, T, S]
  at::Tensor position_ids;  // [B, T]
  KVCache* cache = nullptr;
  int64_t past = 0;  // cached positions before this call

  // Appends this call's k/v for `layer` to the cache (if any) and returns the
  // full keys/values to attend to.
  std::pair<at::Tensor, at::Tensor> extend(int64_t layer, const at::Tensor& k, const at::Tensor& v) const;
};

DecoderStep prepare_decoder_step(const ModelInputs& inputs, int64_t num_layers,
                                 c10::ScalarType dtype, int64_t max_positions);

// The rows of hidden [B, T, H] whose logits inputs.logits_rows asks for,
// [R, H]; all of hidden when it is undefined. Checks the indices.
at::Tensor lm_head_rows(const at::Tensor& hidden, const ModelInputs& inputs);

// Logits of the last real token of each row (right padding; the mask may be
// undefined): used by the *ForSequenceClassification decoders.
at::Tensor pool_last_token(const at::Tensor& hidden, const at::Tensor& attention_mask);

}  // namespace mixpeft::models
