// ExpertBank and the two AdaMix layers (adapter site, LoRA on a Linear).
#include <torch/torch.h>

#include "mixpeft/error.h"
#include "peft/adamix/adamix.h"
#include "peft/lora/lora.h"

namespace mixpeft::peft {
namespace F = torch::nn::functional;

EvalRouting parse_eval_routing(const std::string& mode, const std::string& where) {
  if (mode == "average") return EvalRouting::kAverage;
  if (mode == "random_token") return EvalRouting::kRandomToken;
  if (mode == "random_sequence") return EvalRouting::kRandomSequence;
  fail(ErrorKind::kInvalidArgument, where, ": \"eval_routing\" is \"", mode,
       "\"; expected one of: average, random_token, random_sequence");
}

std::string to_string(EvalRouting mode) {
  switch (mode) {
    case EvalRouting::kAverage: return "average";
    case EvalRouting::kRandomToken: return "random_token";
    case EvalRouting::kRandomSequence: return "random_sequence";
  }
  return "average";
}

ExpertBank::ExpertBank(torch::nn::Module& parent, std::string name, std::string full_name,
                       const torch::nn::Linear& prototype, int64_t num_experts, std::shared_ptr<RoutingState> routing)
    : parent_(&parent), name_(std::move(name)), full_name_(std::move(full_name)), routing_(std::move(routing)) {
  MIXPEFT_CHECK(num_experts >= 1, ErrorKind::kInternal, full_name_, ": a bank needs at least one expert");
  // Deep copies of one initialised module: identical experts at step 0 (as
  // the official MixtureSoup's copy.deepcopy of one nn.Linear).
  for (int64_t i = 0; i < num_experts; ++i)
    experts_.emplace_back(std::dynamic_pointer_cast<torch::nn::LinearImpl>(prototype->clone()));
  if (num_experts == 1) {
    parent_->register_module(name_, experts_[0]);
  } else {
    list_ = torch::nn::ModuleList();
    for (auto& e : experts_) list_->push_back(e);
    parent_->register_module(name_, list_);
  }
}

torch::nn::Linear ExpertBank::single() const {
  MIXPEFT_CHECK(merged() || experts_.size() == 1, ErrorKind::kInternal, full_name_, ": has ", experts_.size(),
                " experts and is not merged");
  return merged() ? merged_ : experts_[0];
}

at::Tensor ExpertBank::mean_weight() const {
  if (merged() || experts_.size() == 1) return single()->weight;
  std::vector<at::Tensor> ws;
  for (const auto& e : experts_) ws.push_back(e->weight);
  return torch::stack(ws).mean(0);
}

at::Tensor ExpertBank::mean_bias() const {
  if (merged() || experts_.size() == 1) return single()->bias;
  if (!experts_[0]->bias.defined()) return {};
  std::vector<at::Tensor> bs;
  for (const auto& e : experts_) bs.push_back(e->bias);
  return torch::stack(bs).mean(0);
}

bool ExpertBank::forward_weights(at::Tensor& weight, at::Tensor& bias) {
  if (merged() || experts_.size() == 1) {
    weight = single()->weight;
    bias = single()->bias;
    return true;
  }
  const int64_t M = size();
  if (parent_->is_training()) {
    // One uniform draw per forward call serves the whole mini-batch.
    last_ = at::randint(M, {1}, routing_->gen, at::kLong).item<int64_t>();
    // Selecting from the stacked experts (rather than calling experts_[i])
    // gives every expert a gradient, zero for those not drawn. The official
    // code reaches the same state after each expert's first draw (its
    // trainers zero gradients in place), and the conformance table expects
    // every trainable tensor to get a gradient; AdamW then applies its
    // moments and weight decay to every expert each step.
    std::vector<at::Tensor> ws, bs;
    for (const auto& e : experts_) {
      ws.push_back(e->weight);
      if (e->bias.defined()) bs.push_back(e->bias);
    }
    weight = torch::stack(ws).select(0, last_);
    bias = bs.empty() ? at::Tensor() : torch::stack(bs).select(0, last_);
    return true;
  }
  if (routing_->eval == EvalRouting::kAverage) {
    weight = mean_weight();
    bias = mean_bias();
    return true;
  }
  return false;
}

at::Tensor ExpertBank::forward(const at::Tensor& x) {
  at::Tensor w, b;
  if (forward_weights(w, b)) return nn::linear(nn::in_dtype_of(x, w), w, b);
  return routed(x);
}

// The official code's token-level and sentence-level inference: every
// expert's output, one expert picked per token (or per sequence = first
// dimension) uniformly at random.
at::Tensor ExpertBank::routed(const at::Tensor& x) {
  const int64_t M = size();
  std::vector<at::Tensor> outs;
  for (auto& e : experts_) outs.push_back(e->forward(x));
  auto all = torch::stack(outs);  // [M, ..., out]
  auto lead = x.sizes().slice(0, x.dim() - 1).vec();
  at::Tensor pick;
  if (routing_->eval == EvalRouting::kRandomSequence && x.dim() >= 2) {
    std::vector<int64_t> view(lead.size(), 1);
    view[0] = x.size(0);
    pick = at::randint(M, {x.size(0)}, routing_->gen, at::kLong).view(view).expand(lead);
  } else {
    pick = at::randint(M, lead, routing_->gen, at::kLong);
  }
  std::vector<int64_t> sizes = {1};  // [1, ..., out]
  sizes.insert(sizes.end(), lead.begin(), lead.end());
  sizes.push_back(all.size(-1));
  auto index = pick.to(x.device()).unsqueeze(0).unsqueeze(-1).expand(sizes);
  return all.gather(0, index.contiguous()).squeeze(0);
}

void ExpertBank::merge() {
  if (merged() || experts_.size() == 1) return;
  torch::NoGradGuard no_grad;
  const auto& e0 = experts_[0];
  auto w = mean_weight(), b = mean_bias();  // before merged_ is set: mean_weight() then returns it
  merged_ = torch::nn::Linear(torch::nn::LinearOptions(e0->options.in_features(), e0->options.out_features())
                                  .bias(e0->bias.defined()));
  merged_->to(e0->weight.device(), e0->weight.scalar_type());
  merged_->weight.copy_(w);
  merged_->weight.set_requires_grad(e0->weight.requires_grad());
  if (e0->bias.defined()) {
    merged_->bias.copy_(b);
    merged_->bias.set_requires_grad(e0->bias.requires_grad());
  }
  merged_->train(parent_->is_training());
  parent_->unregister_module(name_);
  parent_->register_module(name_, merged_);
}

void ExpertBank::unmerge() {
  if (!merged()) return;
  parent_->unregister_module(name_);
  parent_->register_module(name_, list_);
  merged_ = nullptr;
}

void ExpertBank::unregister() { parent_->unregister_module(name_); }

AdaMixAdapterImpl::AdaMixAdapterImpl(const std::string& full_name, const torch::nn::Linear& down_proto,
                                     const torch::nn::Linear& up_proto, int64_t down_experts, int64_t up_experts,
                                     std::string act, std::shared_ptr<RoutingState> routing)
    : activation(std::move(act)) {
  down = std::make_unique<ExpertBank>(*this, "down", full_name + ".down", down_proto, down_experts, routing);
  up = std::make_unique<ExpertBank>(*this, "up", full_name + ".up", up_proto, up_experts, routing);
}

at::Tensor AdaMixAdapterImpl::forward(const at::Tensor& h) {
  return h + up->forward(nn::activation(activation, down->forward(h)));
}

AdaMixLoraLayer::AdaMixLoraLayer(nn::LinearImpl& base, const std::string& full_name, int64_t r, double s,
                                 double dropout, int64_t a_experts, int64_t b_experts, at::Generator& init_gen,
                                 std::shared_ptr<RoutingState> routing)
    : scaling(s), base_(&base) {
  // LoRA's init: A Kaiming-uniform (a = sqrt 5), B = 0, so the model starts
  // at the base model exactly (official AdamixMergedLinear copies lora_A/B).
  torch::nn::Linear proto_a(torch::nn::LinearOptions(base.in_features, r).bias(false));
  torch::nn::Linear proto_b(torch::nn::LinearOptions(r, base.out_features).bias(false));
  proto_a->to(base.weight.device(), base.weight.scalar_type());
  proto_b->to(base.weight.device(), base.weight.scalar_type());
  {
    torch::NoGradGuard no_grad;
    kaiming_uniform_(proto_a->weight, init_gen);
    proto_b->weight.zero_();
  }
  A = std::make_unique<ExpertBank>(base, "adamix_A", full_name + ".adamix_A", proto_a, a_experts, routing);
  B = std::make_unique<ExpertBank>(base, "adamix_B", full_name + ".adamix_B", proto_b, b_experts, routing);
  if (dropout > 0) dropout_ = base.register_module("adamix_dropout", torch::nn::Dropout(dropout));
}

at::Tensor AdaMixLoraLayer::forward(const at::Tensor& x, const at::Tensor& base_out) {
  if (merged) return base_out;
  auto h = dropout_ ? dropout_->forward(x) : x;
  auto down = A->forward(h);
  at::Tensor w, b;  // the B experts have no bias
  if (B->forward_weights(w, b)) return nn::add_low_rank(base_out, down, w, scaling);
  return base_out + B->forward(down) * scaling;
}

at::Tensor AdaMixLoraLayer::delta_weight() const {
  torch::NoGradGuard no_grad;
  return torch::matmul(B->mean_weight(), A->mean_weight()) * scaling;
}

void AdaMixLoraLayer::merge() {
  if (merged) return;
  A->merge();
  B->merge();
  add_to_weight(*base_, delta_weight(), 1.0);
  merged = true;
}

void AdaMixLoraLayer::unmerge() {
  if (!merged) return;
  add_to_weight(*base_, delta_weight(), -1.0);
  A->unmerge();
  B->unmerge();
  merged = false;
}

void AdaMixLoraLayer::unload() {
  A->unregister();
  B->unregister();
  if (dropout_) base_->unregister_module("adamix_dropout");
}

}  // namespace mixpeft::peft
