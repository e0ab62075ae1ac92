#include "models/decoder.h"

#include <torch/torch.h>

#include "mixpeft/error.h"
#include "mixpeft/nn.h"

namespace mixpeft::models {

DecoderStep prepare_decoder_step(const ModelInputs& in, int64_t num_layers, c10::ScalarType dtype,
                                 int64_t max_positions) {
  MIXPEFT_CHECK(in.input_ids.defined() && in.input_ids.dim() == 2, ErrorKind::kInvalidArgument,
                "input_ids must be [batch, tokens]");
  DecoderStep step;
  step.cache = in.cache;
  const int64_t B = in.input_ids.size(0), T = in.input_ids.size(1);
  step.past = in.cache ? in.cache->length() : 0;
  if (in.cache && in.cache->keys.empty()) {
    in.cache->keys.resize(num_layers);
    in.cache->values.resize(num_layers);
  }
  const int64_t S = step.past + T;
  MIXPEFT_CHECK(max_positions <= 0 || S <= max_positions, ErrorKind::kInvalidArgument, "sequence of ",
                S, " positions exceeds the model's max_position_embeddings ", max_positions);
  auto device = in.input_ids.device();
  step.position_ids = in.position_ids.defined()
                          ? in.position_ids
                          : nn::default_position_ids(in.attention_mask, step.past, T, B, device);
  step.bias = nn::attention_bias(in.attention_mask, T, S, /*causal=*/true, dtype, device);
  return step;
}

std::pair<at::Tensor, at::Tensor> DecoderStep::extend(int64_t layer, const at::Tensor& k,
                                                      const at::Tensor& v) const {
  if (!cache) return {k, v};
  auto& ck = cache->keys[layer];
  auto& cv = cache->values[layer];
  ck = ck.defined() ? torch::cat({ck, k}, 2) : k;
  cv = cv.defined() ? torch::cat({cv, v}, 2) : v;
  return {ck, cv};
}

at::Tensor lm_head_rows(const at::Tensor& hidden, const ModelInputs& inputs) {
  const at::Tensor& rows = inputs.logits_rows;
  if (!rows.defined()) return hidden;
  const int64_t n = hidden.size(0) * hidden.size(1);
  MIXPEFT_CHECK(rows.dim() == 1 && rows.scalar_type() == torch::kLong, ErrorKind::kInvalidArgument,
                "logits_rows must be a 1-D int64 tensor of positions b * T + t, got ", rows.sizes(), " ",
                rows.scalar_type());
  MIXPEFT_CHECK(rows.numel() == 0 || (rows.min().item<int64_t>() >= 0 && rows.max().item<int64_t>() < n),
                ErrorKind::kInvalidArgument, "logits_rows has a position outside [0, ", n, ") for ",
                hidden.size(0), " rows of ", hidden.size(1), " tokens");
  return hidden.reshape({n, hidden.size(2)}).index_select(0, rows.to(hidden.device()));
}

at::Tensor pool_last_token(const at::Tensor& hidden, const at::Tensor& attention_mask) {
  const int64_t B = hidden.size(0), T = hidden.size(1);
  at::Tensor last;
  if (attention_mask.defined()) {
    last = (attention_mask.to(torch::kLong).sum(-1) - 1).clamp_min(0).to(hidden.device());
  } else {
    last = torch::full({B}, T - 1, torch::TensorOptions().dtype(torch::kLong).device(hidden.device()));
  }
  auto rows = torch::arange(B, torch::TensorOptions().dtype(torch::kLong).device(hidden.device()));
  return hidden.index({rows, last});
}

}  // namespace mixpeft::models

namespace mixpeft {

void KVCache::select_rows(const at::Tensor& rows) {
  for (auto& k : keys)
    if (k.defined()) k = k.index_select(0, rows);
  for (auto& v : values)
    if (v.defined()) v = v.index_select(0, rows);
}

}  // namespace mixpeft
