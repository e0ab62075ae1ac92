#include "peft/moslora/moslora.h"

#include <torch/torch.h>

#include "mixpeft/error.h"
#include "peft/lora/lora_method.h"
#include "peft/registry.h"

namespace mixpeft::peft {

MosloraConfig MosloraConfig::read(ConfigReader& rd, const nlohmann::json& json) {
  MosloraConfig c;
  c.lora = LoraConfig::read(rd, json);
  c.mixer_init = rd.get_string("mixer_init", "kaiming", {"kaiming", "orthogonal", "identity"});
  return c;
}

void MosloraConfig::write(nlohmann::json& out) const {
  lora.write(out);
  out["mixer_init"] = mixer_init;
}

void init_mixer_(at::Tensor& mixer, const std::string& how, at::Generator& gen) {
  torch::NoGradGuard no_grad;
  const int64_t r = mixer.size(0);
  if (how == "identity") {
    mixer.copy_(torch::eye(r, mixer.options()));
  } else if (how == "orthogonal") {
    // Q of the QR decomposition of a Gaussian matrix, with the signs of R's
    // diagonal folded in so that Q is uniformly (Haar) distributed, as
    // torch.nn.init.orthogonal_ does; seeded by `gen`.
    auto g = at::normal(0.0, 1.0, {r, r}, gen, torch::TensorOptions().dtype(torch::kDouble));
    auto [q, rr] = at::linalg_qr(g);
    q = q * rr.diagonal().sign().unsqueeze(0);
    mixer.copy_(q);
  } else if (how == "kaiming") {
    kaiming_uniform_(mixer, gen);
  } else {
    fail(ErrorKind::kInvalidArgument, "mixer_init: \"", how, "\" is not one of kaiming, orthogonal, identity");
  }
}

MosloraLayer::MosloraLayer(nn::LinearImpl& base, const MosloraConfig& c, at::Generator& gen)
    : LoraLayer(base, c.lora, gen) {
  auto opts = base.weight.options();
  moslora_mixer = base.register_module(
      "moslora_mixer", torch::nn::Linear(torch::nn::LinearOptions(c.lora.r, c.lora.r).bias(false)));
  moslora_mixer->to(opts.device(), opts.dtype().toScalarType());
  init_mixer_(moslora_mixer->weight, c.mixer_init, gen);
}

at::Tensor MosloraLayer::forward(const at::Tensor& x, const at::Tensor& base_out) {
  if (merged) return base_out;
  auto h = dropout_ ? dropout_->forward(x) : x;
  auto down = nn::linear(nn::linear(nn::in_dtype_of(h, lora_A->weight), lora_A->weight), moslora_mixer->weight);
  return nn::add_low_rank(base_out, down, lora_B->weight, scaling);
}

// In float64, then rounded once: A' is M A correctly rounded to the
// adapter's dtype, the best any export can do.
at::Tensor MosloraLayer::exported_A() const {
  const auto& a = lora_A->weight;
  return torch::matmul(moslora_mixer->weight.to(torch::kDouble), a.to(torch::kDouble)).to(a.scalar_type());
}

at::Tensor MosloraLayer::delta_weight() const { return torch::matmul(lora_B->weight, exported_A()) * scaling; }

void MosloraLayer::unload(nn::LinearImpl& base) {
  LoraLayer::unload(base);
  base.unregister_module("moslora_mixer");
}

std::unique_ptr<Method> create_moslora(const nlohmann::json& config, const std::string& where) {
  // Exported to plain LoRA (LoraFamilyMethod::export_lora) with A' = M A:
  // exactly the same delta weight s B (M A).
  using MosloraMethod = LoraFamilyMethod<MosloraConfig, MosloraLayer>;
  return std::make_unique<MosloraMethod>("MOSLORA", std::vector<std::string>{".lora_A.", ".lora_B.", ".moslora_mixer."},
                                         config, where);
}

}  // namespace mixpeft::peft
