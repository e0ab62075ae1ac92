#include "peft/bottleneck/bottleneck.h"

#include <cmath>

#include <torch/torch.h>

#include "mixpeft/error.h"
#include "peft/lora/lora.h"
#include "peft/registry.h"

namespace mixpeft::peft {

void AdapterShape::read(ConfigReader& rd) {
  placement = rd.get_string("placement", placement, {"houlsby", "pfeiffer"});
  bottleneck_size = rd.get_int("bottleneck_size", bottleneck_size);
  activation = rd.get_string("activation", activation);
  init_scale = rd.get_double("init_scale", init_scale);
  if (bottleneck_size <= 0) rd.bad("bottleneck_size", "must be positive");
  if (!(init_scale >= 0) || !std::isfinite(init_scale)) rd.bad("init_scale", "must be a finite number >= 0");
  nn::check_activation(activation, rd.where() + ": \"activation\"");
}

void AdapterShape::write(nlohmann::json& out) const {
  out["placement"] = placement;
  out["bottleneck_size"] = bottleneck_size;
  out["activation"] = activation;
  out["init_scale"] = init_scale;
}

void init_bottleneck(torch::nn::LinearImpl& down, torch::nn::LinearImpl& up, double init_scale, at::Generator& gen) {
  torch::NoGradGuard no_grad;
  kaiming_uniform_(down.weight, gen);
  down.bias.zero_();
  if (init_scale > 0) {
    up.weight.normal_(0.0, init_scale, gen);
  } else {
    up.weight.zero_();
  }
  up.bias.zero_();
}

void match_block(torch::nn::Module& module, torch::nn::Module& block) {
  auto params = block.parameters();
  MIXPEFT_CHECK(!params.empty(), ErrorKind::kInternal, "a transformer block has no parameters");
  module.to(params.front().device(), params.front().scalar_type());
}

BottleneckAdapterImpl::BottleneckAdapterImpl(int64_t hidden, int64_t bottleneck, std::string act)
    : activation(std::move(act)) {
  down = register_module("down", torch::nn::Linear(hidden, bottleneck));
  up = register_module("up", torch::nn::Linear(bottleneck, hidden));
}

at::Tensor BottleneckAdapterImpl::forward(const at::Tensor& h) {
  return h + nn::linear(nn::activation(activation, nn::linear(h, down->weight, down->bias)), up->weight, up->bias);
}

void check_slot_free(const std::shared_ptr<nn::SiteAdapter>& slot, const BlockRef& block, const char* site,
                     const std::string& where) {
  MIXPEFT_CHECK(!slot, ErrorKind::kInvalidArgument, where, ": block ", block.name, " already has an adapter after ",
                site, " (one method per model)");
}

namespace {

struct BottleneckConfig {
  AdapterShape shape;
  uint64_t seed = 0;  // initialisation seed
};

class BottleneckMethod : public Method {
 public:
  BottleneckMethod(const nlohmann::json& json, const std::string& where) {
    ConfigReader rd(json, where);
    config_.shape.read(rd);
    const int64_t seed = rd.get_int("seed", 0);
    if (seed < 0) rd.bad("seed", "must be >= 0");
    config_.seed = static_cast<uint64_t>(seed);
    rd.finish();
  }
  std::string peft_type() const override { return "BOTTLENECK"; }
  nlohmann::json config() const override {
    nlohmann::json j{{"peft_type", "BOTTLENECK"}};
    config_.shape.write(j);
    j["seed"] = config_.seed;
    return j;
  }
  void attach(Model& model) override {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(config_.seed);
    for (const auto& block : model.blocks()) {
      if (config_.shape.houlsby()) {
        check_slot_free(block.slots->after_attention, block, "attention", "BOTTLENECK");
        block.slots->after_attention = add(block, kAttnSite, gen);
      }
      check_slot_free(block.slots->after_ffn, block, "the feed-forward", "BOTTLENECK");
      block.slots->after_ffn = add(block, kFfnSite, gen);
    }
  }
  bool owns(const std::string& name) const override {
    for (const auto& s : sites_)
      if (name.rfind(s.prefix, 0) == 0) return true;
    return false;
  }
  void unload(Model&) override {
    for (auto& s : sites_) {
      s.block->unregister_module(s.module_name);
      (s.attention ? s.slots->after_attention : s.slots->after_ffn).reset();
    }
    sites_.clear();
  }

 private:
  struct Site {
    torch::nn::Module* block;
    nn::AdapterSlots* slots;
    std::string module_name;  // "adapter_attn" | "adapter_ffn"
    std::string prefix;       // "<block>.adapter_ffn."
    bool attention;
  };

  std::shared_ptr<nn::SiteAdapter> add(const BlockRef& block, const char* site, at::Generator& gen) {
    BottleneckAdapter adapter(block.hidden_size, config_.shape.bottleneck_size, config_.shape.activation);
    init_bottleneck(*adapter->down, *adapter->up, config_.shape.init_scale, gen);
    match_block(*adapter, *block.module);
    const std::string name = std::string("adapter_") + site;
    block.module->register_module(name, adapter);
    sites_.push_back({block.module, block.slots, name, block.name + "." + name + ".", std::string(site) == kAttnSite});
    return std::make_shared<ModuleSite<BottleneckAdapter>>(adapter);
  }

  BottleneckConfig config_;
  std::vector<Site> sites_;
};

}  // namespace

std::unique_ptr<Method> create_bottleneck(const nlohmann::json& config, const std::string& where) {
  return std::make_unique<BottleneckMethod>(config, where);
}

}  // namespace mixpeft::peft
