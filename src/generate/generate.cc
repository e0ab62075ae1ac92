#include "mixpeft/generate.h"

#include <algorithm>

#include <torch/torch.h>

#include "mixpeft/error.h"
#include "mixpeft/model.h"

namespace mixpeft {
namespace {

// Next token of one row from its last-position logits [V].
int64_t pick(const at::Tensor& logits_in, const RowOptions& o, at::Generator& gen) {
  auto logits = logits_in.to(torch::kFloat);
  if (o.temperature <= 0) return logits.argmax(-1).item<int64_t>();
  logits = logits / o.temperature;
  const double neg_inf = -std::numeric_limits<double>::infinity();
  if (o.top_k > 0 && o.top_k < logits.size(-1)) {
    auto kth = std::get<0>(logits.topk(o.top_k, -1)).select(-1, o.top_k - 1).unsqueeze(-1);
    logits = logits.masked_fill(logits < kth, neg_inf);
  }
  if (o.top_p < 1.0) {
    // As HF's TopPLogitsWarper: drop the least likely tokens whose cumulative
    // probability stays within 1 - top_p, always keeping the most likely one.
    auto [sorted, order] = logits.sort(-1, /*descending=*/false);
    auto cumulative = sorted.softmax(-1).cumsum(-1);
    auto remove = cumulative <= (1.0 - o.top_p);
    remove.select(-1, remove.size(-1) - 1).fill_(false);
    logits = logits.masked_fill(remove.scatter(-1, order, remove), neg_inf);
  }
  return torch::multinomial(logits.softmax(-1).unsqueeze(0), 1, /*replacement=*/false, gen).item<int64_t>();
}

void check_row(const RowOptions& s, const std::string& where) {
  MIXPEFT_CHECK(s.temperature >= 0 && s.top_p > 0 && s.top_p <= 1 && s.top_k >= 0 && s.max_new_tokens >= 0,
                ErrorKind::kInvalidArgument, "generate: ", where,
                "need temperature >= 0, 0 < top_p <= 1, top_k >= 0, max_new_tokens >= 0");
}

}  // namespace

GenerateResult generate(Model& model, const std::vector<std::vector<int64_t>>& prompts,
                        const GenerateOptions& o) {
  MIXPEFT_CHECK(model.is_causal() && model.task() == Task::kCausalLM, ErrorKind::kInvalidArgument,
                "generate: ", model.architecture(), " is not a causal language model");
  MIXPEFT_CHECK(!prompts.empty(), ErrorKind::kInvalidArgument, "generate: no prompts");
  MIXPEFT_CHECK(o.max_new_tokens >= 0, ErrorKind::kInvalidArgument, "generate: need max_new_tokens >= 0");
  MIXPEFT_CHECK(o.rows.empty() || o.rows.size() == prompts.size(), ErrorKind::kInvalidArgument, "generate: ",
                o.rows.size(), " per-row sampling settings for ", prompts.size(), " prompts");
  std::vector<RowOptions> rows = o.rows;
  if (rows.empty()) {
    check_row({o.temperature, o.top_k, o.top_p, o.seed, o.max_new_tokens}, "");
    for (size_t i = 0; i < prompts.size(); ++i)
      rows.push_back({o.temperature, o.top_k, o.top_p, o.seed + i, o.max_new_tokens});
  }
  int64_t steps = 0;  // the longest row's limit
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i].max_new_tokens < 0) rows[i].max_new_tokens = o.max_new_tokens;
    check_row(rows[i], "row " + std::to_string(i) + ": ");
    steps = std::max(steps, rows[i].max_new_tokens);
  }
  size_t longest = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    MIXPEFT_CHECK(!prompts[i].empty(), ErrorKind::kInvalidArgument, "generate: prompt ", i, " is empty");
    longest = std::max(longest, prompts[i].size());
  }
  const int64_t B = static_cast<int64_t>(prompts.size()), T = static_cast<int64_t>(longest);
  auto device = model.parameters().front().device();
  auto ids = torch::full({B, T}, o.pad_token_id, torch::kLong);
  auto mask = torch::zeros({B, T}, torch::kLong);
  for (int64_t b = 0; b < B; ++b) {
    const auto& p = prompts[b];
    const int64_t off = T - static_cast<int64_t>(p.size());
    for (size_t t = 0; t < p.size(); ++t) ids[b][off + static_cast<int64_t>(t)] = p[t];
    mask[b].narrow(0, off, static_cast<int64_t>(p.size())).fill_(1);
  }
  ids = ids.to(device);
  mask = mask.to(device);

  GenerateResult result;
  result.tokens.resize(B);
  result.finish_reasons.assign(B, "length");
  std::vector<bool> done(B, false);
  for (int64_t b = 0; b < B; ++b) done[b] = rows[size_t(b)].max_new_tokens == 0;
  std::vector<at::Generator> gens;
  for (const auto& r : rows) gens.push_back(at::make_generator<at::CPUGeneratorImpl>(r.seed));
  torch::NoGradGuard no_grad;
  KVCache cache;
  ModelInputs in;
  in.input_ids = ids;
  in.attention_mask = mask;
  in.cache = &cache;
  for (int64_t step = 0; step < steps && !std::all_of(done.begin(), done.end(), [](bool d) { return d; }); ++step) {
    // Only each row's last position goes through the LM head.
    const int64_t t = in.input_ids.size(1);
    in.logits_rows = torch::arange(B, torch::TensorOptions().dtype(torch::kLong).device(device)) * t + (t - 1);
    auto logits = model.forward(in).logits.cpu();  // [B, V]
    auto next = torch::empty({B}, torch::kLong);
    auto next_acc = next.accessor<int64_t, 1>();
    auto alive = torch::ones({B, 1}, torch::kLong);
    for (int64_t b = 0; b < B; ++b) {
      if (done[b]) {
        next_acc[b] = o.pad_token_id;
        alive[b][0] = 0;
        continue;
      }
      const int64_t tok = pick(logits[b], rows[size_t(b)], gens[size_t(b)]);
      next_acc[b] = tok;
      result.tokens[b].push_back(tok);
      if (o.on_token) o.on_token(static_cast<size_t>(b), tok);
      if (std::find(o.stop_token_ids.begin(), o.stop_token_ids.end(), tok) != o.stop_token_ids.end()) {
        done[b] = true;
        result.finish_reasons[b] = "stop";
      } else if (int64_t(result.tokens[b].size()) >= rows[size_t(b)].max_new_tokens) {
        done[b] = true;  // "length"
      } else if (o.cancelled && o.cancelled(static_cast<size_t>(b))) {
        done[b] = true;
        result.finish_reasons[b] = "cancelled";
      }
    }
    in.input_ids = next.view({B, 1}).to(device);
    in.attention_mask = torch::cat({in.attention_mask, alive.to(device)}, 1);
  }
  return result;
}

}  // namespace mixpeft
