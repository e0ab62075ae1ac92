#include "mixpeft/reference.h"

#include <torch/torch.h>

#include "mixpeft/error.h"
#include "mixpeft/model.h"

namespace mixpeft {
namespace {

// Max |a - b| where mask [B, T] is 1 (a, b are [B, T, ...]); over everything
// when the shapes have no token axis.
ReferenceCheck diff(const std::string& name, const at::Tensor& a, const at::Tensor& b, const at::Tensor& mask) {
  MIXPEFT_CHECK(a.sizes() == b.sizes(), ErrorKind::kInvalidArgument, name, ": model gives shape ", a.sizes(),
                ", reference has ", b.sizes());
  auto x = a.to(torch::kFloat), y = b.to(torch::kFloat);
  if (mask.defined() && a.dim() >= 2 && a.size(0) == mask.size(0) && a.size(1) == mask.size(1)) {
    auto keep = mask.to(torch::kBool);
    x = x.index({keep});
    y = y.index({keep});
  }
  return {name, (x - y).abs().max().item<double>(), x.numel()};
}

}  // namespace

at::Tensor causal_lm_loss(const at::Tensor& logits, const at::Tensor& labels) {
  const int64_t T = labels.size(1);
  return torch::nn::functional::cross_entropy(
      logits.narrow(1, 0, T - 1).reshape({-1, logits.size(-1)}).to(torch::kFloat),
      labels.narrow(1, 1, T - 1).reshape({-1}),
      torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100));
}

std::vector<ReferenceCheck> check_against_reference(Model& model, const std::map<std::string, at::Tensor>& ref,
                                                    const std::string& logits_key) {
  auto ids = ref.find("input_ids");
  MIXPEFT_CHECK(ids != ref.end(), ErrorKind::kInvalidArgument, "reference has no input_ids tensor");
  ModelInputs in;
  in.input_ids = ids->second;
  if (auto m = ref.find("attention_mask"); m != ref.end()) in.attention_mask = m->second;
  in.output_hidden_states = true;
  torch::NoGradGuard no_grad;
  auto out = model.forward(in);
  std::vector<ReferenceCheck> rows;
  for (size_t i = 0;; ++i) {
    auto it = ref.find("hidden_states." + std::to_string(i));
    if (it == ref.end()) break;
    MIXPEFT_CHECK(i < out.hidden_states.size(), ErrorKind::kInvalidArgument, "reference has hidden_states.", i,
                  " but the model produces ", out.hidden_states.size(), " hidden states");
    rows.push_back(diff(it->first, out.hidden_states[i], it->second, in.attention_mask));
  }
  if (auto it = ref.find("last_hidden_state"); it != ref.end())
    rows.push_back(diff(it->first, out.last_hidden_state, it->second, in.attention_mask));
  if (auto it = ref.find("pooler_output"); it != ref.end() && out.pooler_output.defined())
    rows.push_back(diff(it->first, out.pooler_output, it->second, at::Tensor()));
  if (auto it = ref.find(logits_key); it != ref.end() && out.logits.defined())
    rows.push_back(diff(it->first, out.logits, it->second, in.attention_mask));
  const std::string loss_key = logits_key == "logits" ? "loss_base" : "loss_" + logits_key.substr(7);
  if (auto it = ref.find(loss_key); it != ref.end() && ref.count("labels") && model.task() == Task::kCausalLM) {
    auto loss = causal_lm_loss(out.logits, ref.at("labels"));
    rows.push_back({loss_key, std::abs(loss.item<double>() - it->second.item<double>()), 1});
  }
  return rows;
}

}  // namespace mixpeft
