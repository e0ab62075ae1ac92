#include "peft/moslora/moslora.h"

#include <torch/torch.h>

#include "mixpeft/error.h"
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
  // Reuse the dropout module LoraLayer registered, so train()/eval() reach it.
  for (auto& child : base.named_children())
    if (child.key() == "lora_dropout")
      input_dropout_ = torch::nn::Dropout(std::dynamic_pointer_cast<torch::nn::DropoutImpl>(child.value()));
}

at::Tensor MosloraLayer::forward(const at::Tensor& x, const at::Tensor& base_out) {
  if (merged) return base_out;
  auto h = input_dropout_ ? input_dropout_->forward(x) : x;
  return base_out + lora_B->forward(moslora_mixer->forward(lora_A->forward(h))) * scaling;
}

// In float64, then rounded once: A' is M A correctly rounded to the
// adapter's dtype, the best any export can do.
at::Tensor MosloraLayer::exported_A() const {
  const auto& a = lora_A->weight;
  return torch::matmul(moslora_mixer->weight.to(torch::kDouble), a.to(torch::kDouble)).to(a.scalar_type());
}

at::Tensor MosloraLayer::delta_weight() const { return torch::matmul(lora_B->weight, exported_A()) * scaling; }

void MosloraLayer::merge(nn::LinearImpl& base) {
  if (merged) return;
  add_to_weight(base, delta_weight(), 1.0);
  merged = true;
}

void MosloraLayer::unmerge(nn::LinearImpl& base) {
  if (!merged) return;
  add_to_weight(base, delta_weight(), -1.0);
  merged = false;
}

void MosloraLayer::unload(nn::LinearImpl& base) {
  LoraLayer::unload(base);
  base.unregister_module("moslora_mixer");
}

namespace {

class MosloraMethod : public Method {
 public:
  MosloraMethod(const nlohmann::json& json, const std::string& where) {
    ConfigReader rd(json, where);
    config_ = MosloraConfig::read(rd, json);
    rd.finish();
  }
  std::string peft_type() const override { return "MOSLORA"; }
  nlohmann::json config() const override {
    nlohmann::json j{{"peft_type", "MOSLORA"}};
    config_.write(j);
    j["target_modules"] = resolved_.empty() ? config_.lora.targets.to_json() : nlohmann::json(resolved_);
    j["fan_in_fan_out"] = fan_in_fan_out_;
    return j;
  }
  void attach(Model& model) override {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(config_.lora.seed);
    auto targets = find_linear_targets(model, config_.lora.targets, "MOSLORA");
    if (config_.lora.targets.empty()) resolved_ = model.default_lora_targets();
    for (auto& t : targets) {
      auto layer = std::make_shared<MosloraLayer>(*t.linear, config_, gen);
      t.linear->adapter = layer;
      fan_in_fan_out_ = fan_in_fan_out_ || t.linear->conv1d;
      layers_.push_back({t.linear, layer});
      target_names_.push_back(t.name);
    }
  }
  bool owns(const std::string& name) const override {
    for (const char* p : {".lora_A.", ".lora_B.", ".moslora_mixer."})
      if (name.find(p) != std::string::npos) return true;
    // bias = all | lora_only, as LoRA.
    const bool is_bias = name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
    if (!is_bias || config_.lora.bias == "none") return false;
    if (config_.lora.bias == "all") return true;
    const std::string module = name.substr(0, name.size() - 5);
    for (const auto& t : target_names_)
      if (t == module) return true;
    return false;
  }
  bool mergeable() const override { return true; }
  void merge(Model&) override {
    for (auto& [linear, layer] : layers_) layer->merge(*linear);
  }
  void unmerge(Model&) override {
    for (auto& [linear, layer] : layers_) layer->unmerge(*linear);
  }
  void unload(Model&) override {
    for (auto& [linear, layer] : layers_) {
      layer->unload(*linear);
      linear->adapter.reset();
    }
    layers_.clear();
  }
  // A plain LoRA adapter with A' = M A: exactly the same delta weight
  // s B (M A). The config is LoRA's (peft_type LORA, no mixer_init).
  std::pair<nlohmann::json, std::vector<std::pair<std::string, at::Tensor>>> export_lora(Model&) override {
    nlohmann::json j{{"peft_type", "LORA"}};
    config_.lora.write(j);
    j["target_modules"] = resolved_.empty() ? config_.lora.targets.to_json() : nlohmann::json(resolved_);
    j["fan_in_fan_out"] = fan_in_fan_out_;
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < layers_.size(); ++i) {
      tensors.emplace_back(target_names_[i] + ".lora_A.weight", layers_[i].second->exported_A().contiguous());
      tensors.emplace_back(target_names_[i] + ".lora_B.weight", layers_[i].second->lora_B->weight.detach());
    }
    return {j, tensors};
  }

 private:
  MosloraConfig config_;
  std::vector<std::pair<nn::LinearImpl*, std::shared_ptr<MosloraLayer>>> layers_;
  std::vector<std::string> target_names_;
  std::vector<std::string> resolved_;
  bool fan_in_fan_out_ = false;
};

}  // namespace

std::unique_ptr<Method> create_moslora(const nlohmann::json& config, const std::string& where) {
  return std::make_unique<MosloraMethod>(config, where);
}

}  // namespace mixpeft::peft
