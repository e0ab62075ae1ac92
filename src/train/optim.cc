#include "train/optim.h"

#include <cmath>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/generated/variable_factories.h>

#include "mixpeft/error.h"

namespace mixpeft::train {

AdamW::AdamW(std::vector<std::pair<std::string, at::Tensor>> parameters, std::vector<bool> decay, AdamWOptions options)
    : params_(std::move(parameters)), decay_(std::move(decay)), options_(options) {
  MIXPEFT_CHECK(decay_.size() == params_.size(), ErrorKind::kInternal, "AdamW: one decay flag per parameter");
  exp_avg_.resize(params_.size());
  exp_avg_sq_.resize(params_.size());
}

void AdamW::zero_grad() {
  for (auto& [name, p] : params_) {
    at::Tensor& g = p.mutable_grad();
    if (g.defined()) g.zero_();
  }
}

void AdamW::step(double lr) {
  at::NoGradGuard no_grad;
  ++steps_;
  const double b1 = options_.beta1, b2 = options_.beta2;
  const double bias1 = 1.0 - std::pow(b1, static_cast<double>(steps_));
  const double bias2_sqrt = std::sqrt(1.0 - std::pow(b2, static_cast<double>(steps_)));
  const double step_size = lr / bias1;
  for (size_t i = 0; i < params_.size(); ++i) {
    at::Tensor& p = params_[i].second;
    const at::Tensor& g = p.grad();
    if (!g.defined()) continue;
    if (!exp_avg_[i].defined()) {
      exp_avg_[i] = at::zeros_like(p, at::MemoryFormat::Preserve);
      exp_avg_sq_[i] = at::zeros_like(p, at::MemoryFormat::Preserve);
    }
    if (decay_[i] && options_.weight_decay != 0) p.mul_(1.0 - lr * options_.weight_decay);
    exp_avg_[i].mul_(b1).add_(g, 1.0 - b1);
    exp_avg_sq_[i].mul_(b2).addcmul_(g, g, 1.0 - b2);
    at::Tensor denom = (exp_avg_sq_[i].sqrt() / bias2_sqrt).add_(options_.eps);
    p.addcdiv_(exp_avg_[i], denom, -step_size);
  }
}

std::vector<std::pair<std::string, at::Tensor>> AdamW::state() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!exp_avg_[i].defined()) continue;
    out.emplace_back("exp_avg." + params_[i].first, exp_avg_[i]);
    out.emplace_back("exp_avg_sq." + params_[i].first, exp_avg_sq_[i]);
  }
  return out;
}

void AdamW::load_state(const std::vector<std::pair<std::string, at::Tensor>>& state, int64_t steps,
                       const std::string& where) {
  std::map<std::string, at::Tensor> by_name(state.begin(), state.end());
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto& [name, p] = params_[i];
    auto m = by_name.find("exp_avg." + name), v = by_name.find("exp_avg_sq." + name);
    if (m == by_name.end() && v == by_name.end()) {
      exp_avg_[i] = at::Tensor();
      exp_avg_sq_[i] = at::Tensor();
      continue;
    }
    MIXPEFT_CHECK(m != by_name.end() && v != by_name.end(), ErrorKind::kCorrupt, where,
                  ": optimizer state of ", name, " is incomplete");
    MIXPEFT_CHECK(m->second.sizes() == p.sizes() && v->second.sizes() == p.sizes(), ErrorKind::kCorrupt, where,
                  ": optimizer state of ", name, " has shape ", m->second.sizes(), ", the parameter ", p.sizes());
    exp_avg_[i] = m->second.to(p.options()).clone();
    exp_avg_sq_[i] = v->second.to(p.options()).clone();
    by_name.erase(m);
    by_name.erase(v);
  }
  MIXPEFT_CHECK(by_name.empty(), ErrorKind::kCorrupt, where, ": optimizer state for an unknown parameter: ",
                by_name.begin()->first);
  steps_ = steps;
}

bool no_weight_decay(const std::string& name) {
  auto ends_with = [&](const std::string& s) {
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  return ends_with("bias") || name.find("norm") != std::string::npos ||
         name.find("LayerNorm") != std::string::npos || name.find("ln_") != std::string::npos;
}

double lr_multiplier(const std::string& schedule, int64_t step, int64_t warmup, int64_t total) {
  if (step < warmup) return static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup));
  if (schedule == "constant") return 1.0;
  const double span = static_cast<double>(std::max<int64_t>(1, total - warmup));
  const double progress = static_cast<double>(step - warmup) / span;
  if (schedule == "cosine") return std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * progress)));
  return std::max(0.0, static_cast<double>(total - step) / span);  // linear
}

double clip_grad_norm(const std::vector<std::pair<std::string, at::Tensor>>& parameters, double max_norm) {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> norms;
  for (const auto& [name, p] : parameters)
    if (p.grad().defined()) norms.push_back(p.grad().detach().norm(2).to(at::kFloat));
  if (norms.empty()) return 0.0;
  at::Tensor total = at::stack(norms).norm(2);
  const double norm = total.item<double>();
  if (max_norm > 0) {
    at::Tensor coef = (max_norm / (total + 1e-6)).clamp_max(1.0);
    for (const auto& [name, p] : parameters)
      if (p.grad().defined()) p.grad().detach().mul_(coef.to(p.grad().scalar_type()));
  }
  return norm;
}

}  // namespace mixpeft::train
