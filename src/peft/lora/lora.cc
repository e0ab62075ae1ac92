#include "peft/lora/lora.h"

#include <cmath>

#include <torch/torch.h>

#include "mixpeft/error.h"
#include "peft/lora/lora_method.h"
#include "peft/registry.h"

namespace mixpeft::peft {

LoraConfig LoraConfig::read(ConfigReader& rd, const nlohmann::json& json) {
  LoraConfig c;
  c.r = rd.get_int("r", 8);
  c.alpha = rd.get_double("lora_alpha", 8);
  c.dropout = rd.get_double("lora_dropout", 0.0);
  c.use_rslora = rd.get_bool("use_rslora", false);
  c.bias = rd.get_string("bias", "none", {"none", "all", "lora_only"});
  // HF PEFT writes init_lora_weights as true (Kaiming) or "gaussian".
  if (json.contains("init_lora_weights") && json["init_lora_weights"].is_string()) {
    c.init = rd.get_string("init_lora_weights", "gaussian", {"gaussian"});
  } else {
    if (!rd.get_bool("init_lora_weights", true)) rd.bad("init_lora_weights", "false (no init) is not supported");
    c.init = "kaiming";
  }
  c.seed = static_cast<uint64_t>(rd.get_int("init_seed", 0));
  c.targets = Targets::from_json(json, rd.where());
  rd.accept({"target_modules", "fan_in_fan_out"});  // fan_in_fan_out follows the layer's own layout
  if (c.r <= 0) rd.bad("r", "must be positive");
  if (c.dropout < 0 || c.dropout >= 1) rd.bad("lora_dropout", "must be in [0, 1)");
  // HF PEFT options mixpeft does not implement: only their defaults are accepted.
  for (const char* k : {"use_dora", "layers_to_transform", "layers_pattern", "rank_pattern", "alpha_pattern",
                        "megatron_config", "loftq_config", "layer_replication"})
    rd.require_default(k);
  rd.accept({"megatron_core"});
  return c;
}

void LoraConfig::write(nlohmann::json& out) const {
  out["r"] = r;
  out["lora_alpha"] = alpha;
  out["lora_dropout"] = dropout;
  out["use_rslora"] = use_rslora;
  out["bias"] = bias;
  out["init_lora_weights"] = init == "gaussian" ? nlohmann::json("gaussian") : nlohmann::json(true);
  out["target_modules"] = targets.empty() ? nlohmann::json(nullptr) : targets.to_json();
  out["use_dora"] = false;
}

double LoraConfig::scaling() const {
  return use_rslora ? alpha / std::sqrt(static_cast<double>(r)) : alpha / static_cast<double>(r);
}

void kaiming_uniform_(at::Tensor& weight, at::Generator& gen) {
  torch::NoGradGuard no_grad;
  const double bound = 1.0 / std::sqrt(static_cast<double>(weight.size(1)));
  weight.uniform_(-bound, bound, gen);
}

LoraLayer::LoraLayer(nn::LinearImpl& base, const LoraConfig& c, at::Generator& gen)
    : scaling(c.scaling()), base_(&base) {
  auto opts = base.weight.options();
  lora_A = base.register_module("lora_A", torch::nn::Linear(torch::nn::LinearOptions(base.in_features, c.r).bias(false)));
  lora_B = base.register_module("lora_B", torch::nn::Linear(torch::nn::LinearOptions(c.r, base.out_features).bias(false)));
  {
    // Initialised on the CPU (the seeded generator is a CPU one), then moved
    // to the base layer's device and dtype.
    torch::NoGradGuard no_grad;
    if (c.init == "gaussian") {
      lora_A->weight.normal_(0.0, 1.0 / static_cast<double>(c.r), gen);
    } else {
      kaiming_uniform_(lora_A->weight, gen);
    }
    lora_B->weight.zero_();
  }
  lora_A->to(opts.device(), opts.dtype().toScalarType());
  lora_B->to(opts.device(), opts.dtype().toScalarType());
  if (c.dropout > 0) dropout_ = base.register_module("lora_dropout", torch::nn::Dropout(c.dropout));
}

at::Tensor LoraLayer::forward(const at::Tensor& x, const at::Tensor& base_out) {
  if (merged) return base_out;
  auto h = dropout_ ? dropout_->forward(x) : x;
  return nn::add_low_rank(base_out, nn::linear(nn::in_dtype_of(h, lora_A->weight), lora_A->weight), lora_B->weight,
                           scaling);
}

at::Tensor LoraLayer::delta_weight() const { return torch::matmul(lora_B->weight, lora_A->weight) * scaling; }

at::Tensor LoraLayer::exported_A() const { return lora_A->weight.detach(); }

void add_to_weight(nn::LinearImpl& linear, const at::Tensor& delta, double sign) {
  torch::NoGradGuard no_grad;
  auto d = delta.to(linear.weight.scalar_type());
  linear.weight.add_(linear.conv1d ? d.t() : d, sign);
}

void LoraLayer::merge(nn::LinearImpl& base) {
  if (merged) return;
  add_to_weight(base, delta_weight(), 1.0);
  merged = true;
}

void LoraLayer::unmerge(nn::LinearImpl& base) {
  if (!merged) return;
  add_to_weight(base, delta_weight(), -1.0);
  merged = false;
}

void LoraLayer::unload(nn::LinearImpl& base) {
  base.unregister_module("lora_A");
  base.unregister_module("lora_B");
  if (dropout_) base.unregister_module("lora_dropout");
}

std::unique_ptr<Method> create_lora(const nlohmann::json& config, const std::string& where) {
  using LoraMethod = LoraFamilyMethod<LoraConfig, LoraLayer>;
  return std::make_unique<LoraMethod>("LORA", std::vector<std::string>{".lora_A.", ".lora_B."}, config, where);
}

}  // namespace mixpeft::peft
