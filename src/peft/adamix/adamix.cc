// The ADAMIX method: config, attach, merge, export. Layers: expert_bank.cc.
#include "peft/adamix/adamix.h"

#include <torch/torch.h>

#include "mixpeft/error.h"
#include "peft/config_util.h"
#include "peft/lora/lora.h"
#include "peft/registry.h"

namespace mixpeft::peft {
namespace {

struct AdaMixConfig {
  std::string variant = "adapter";  // adapter | lora
  int64_t num_experts = 4;          // M; training cost stays one expert per bank, parameters grow ~M x
  // Adapter variant. The published GLUE scripts: sharing_up = 1, sharing_down = 0.
  bool share_up = true, share_down = false;
  // Defaults as the official GLUE expert soup (RobertaOutput): placement
  // after the FFN output (pfeiffer), activation "gelu"; bottleneck 16 as the
  // RoBERTa-large recipe (48 for BERT-base).
  AdapterShape shape = [] {
    AdapterShape s;
    s.bottleneck_size = 16;
    s.activation = "gelu";
    return s;
  }();
  // LoRA variant (official NLG names share_A / share_B; published: B shared).
  bool share_A = false, share_B = true;
  int64_t r = 8;         // as LORA
  double alpha = 8;      // as LORA; scaling alpha / r
  double dropout = 0.0;  // on the LoRA input, training only
  Targets targets;       // empty = the architecture's LoRA defaults
  uint64_t seed = 0;     // initialisation and routing
  EvalRouting eval = EvalRouting::kAverage;

  bool lora() const { return variant == "lora"; }
  int64_t down_experts() const { return share_down ? 1 : num_experts; }
  int64_t up_experts() const { return share_up ? 1 : num_experts; }
  int64_t a_experts() const { return share_A ? 1 : num_experts; }
  int64_t b_experts() const { return share_B ? 1 : num_experts; }
};

const std::vector<std::string> kAdapterKeys = {"share_up", "share_down", "placement", "bottleneck_size", "activation",
                                               "init_scale"};
const std::vector<std::string> kLoraKeys = {"share_A", "share_B", "r", "lora_alpha", "lora_dropout", "target_modules"};

AdaMixConfig read_config(const nlohmann::json& json, const std::string& where) {
  ConfigReader rd(json, where);
  AdaMixConfig c;
  c.variant = rd.get_string("variant", "adapter", {"adapter", "lora"});
  c.num_experts = rd.get_int("num_experts", 4);
  if (c.num_experts < 1) rd.bad("num_experts", "must be at least 1");
  // Keys of the other variant are errors, not silently ignored.
  const auto& foreign = c.lora() ? kAdapterKeys : kLoraKeys;
  for (const auto& k : foreign)
    if (json.contains(k) && !json[k].is_null())
      rd.bad(k, std::string("applies to variant \"") + (c.lora() ? "adapter" : "lora") + "\" only (variant is \"" +
                    c.variant + "\")");
  rd.accept(foreign);
  if (c.lora()) {
    c.share_A = rd.get_bool("share_A", false);
    c.share_B = rd.get_bool("share_B", true);
    c.r = rd.get_int("r", 8);
    c.alpha = rd.get_double("lora_alpha", 8);
    c.dropout = rd.get_double("lora_dropout", 0.0);
    c.targets = Targets::from_json(json, where);
    rd.accept({"target_modules"});
    if (c.r <= 0) rd.bad("r", "must be positive");
    if (c.dropout < 0 || c.dropout >= 1) rd.bad("lora_dropout", "must be in [0, 1)");
  } else {
    c.share_up = rd.get_bool("share_up", true);
    c.share_down = rd.get_bool("share_down", false);
    c.shape.read(rd);
  }
  const int64_t seed = rd.get_int("seed", 0);
  if (seed < 0) rd.bad("seed", "must be >= 0");
  c.seed = static_cast<uint64_t>(seed);
  c.eval = parse_eval_routing(rd.get_string("eval_routing", "average"), where);
  rd.finish();
  return c;
}

class AdaMixMethod : public Method, public AdaMixControl {
 public:
  AdaMixMethod(const nlohmann::json& json, const std::string& where) : config_(read_config(json, where)) {}

  std::string peft_type() const override { return "ADAMIX"; }

  nlohmann::json config() const override {
    nlohmann::json j{{"peft_type", "ADAMIX"}, {"variant", config_.variant}, {"num_experts", config_.num_experts}};
    if (config_.lora()) {
      j["share_A"] = config_.share_A;
      j["share_B"] = config_.share_B;
      j["r"] = config_.r;
      j["lora_alpha"] = config_.alpha;
      j["lora_dropout"] = config_.dropout;
      j["target_modules"] = resolved_.empty() ? config_.targets.to_json() : nlohmann::json(resolved_);
    } else {
      j["share_up"] = config_.share_up;
      j["share_down"] = config_.share_down;
      config_.shape.write(j);
    }
    j["seed"] = config_.seed;
    j["eval_routing"] = to_string(routing_ ? routing_->eval : config_.eval);
    return j;
  }

  void attach(Model& model) override {
    routing_ = std::make_shared<RoutingState>(
        RoutingState{at::make_generator<at::CPUGeneratorImpl>(config_.seed), config_.eval});
    auto init_gen = at::make_generator<at::CPUGeneratorImpl>(config_.seed);
    if (config_.lora()) {
      attach_lora(model, init_gen);
    } else {
      for (const auto& block : model.blocks()) {
        if (config_.shape.houlsby()) {
          check_slot_free(block.slots->after_attention, block, "attention", "ADAMIX");
          block.slots->after_attention = add_site(block, kAttnSite, init_gen);
        }
        check_slot_free(block.slots->after_ffn, block, "the feed-forward", "ADAMIX");
        block.slots->after_ffn = add_site(block, kFfnSite, init_gen);
      }
    }
  }

  bool owns(const std::string& name) const override {
    for (const auto& p : prefixes_)
      if (name.rfind(p, 0) == 0) return true;
    return false;
  }

  bool mergeable() const override { return true; }

  // Averages every bank into one module (the model then has one adapter's
  // parameters and FLOPs); the LoRA variant also adds s * B A to the base
  // weight and skips its branch, like LORA. unmerge() reverses both, giving
  // back the experts exactly as they were.
  void merge(Model&) override {
    for (auto& s : sites_) {
      s.adapter->down->merge();
      s.adapter->up->merge();
    }
    for (auto& l : lora_) l.layer->merge();
    merged_ = true;
  }
  void unmerge(Model&) override {
    for (auto& s : sites_) {
      s.adapter->down->unmerge();
      s.adapter->up->unmerge();
    }
    for (auto& l : lora_) l.layer->unmerge();
    merged_ = false;
  }

  // A merged adapter holds averaged modules under names an unmerged ADAMIX
  // config does not have; saving it would write a file nothing can load.
  std::vector<std::pair<std::string, at::Tensor>> saved_tensors(Model& model) override {
    MIXPEFT_CHECK(!merged_, ErrorKind::kInvalidArgument,
                  "ADAMIX: cannot save a merged adapter (its experts are averaged into one module); save before "
                  "merge() or after unmerge(), or use export_lora() for the LoRA variant");
    return Method::saved_tensors(model);
  }

  // LoRA variant: removes the modules (after merge the base weights keep the
  // update: a plain model). Adapter variant: a bottleneck adapter is
  // nonlinear and cannot fold into the base weights, so after merge() the
  // single averaged adapter per site stays in the blocks (merge_and_unload
  // then returns the base model plus one fixed adapter per site, with the
  // merged outputs); without merge() everything is removed.
  void unload(Model&) override {
    for (auto& l : lora_) {
      l.layer->unload();
      l.linear->adapter.reset();
    }
    lora_.clear();
    if (!merged_) {
      for (auto& s : sites_) {
        s.block->unregister_module(s.module_name);
        (s.attention ? s.slots->after_attention : s.slots->after_ffn).reset();
      }
    }
    sites_.clear();
    banks_.clear();
  }

  // The LoRA variant as plain LoRA: A = mean of the A experts, B = mean of
  // the B experts (the shared B by default), the same config r / lora_alpha:
  // exactly the eval-mode (and merged) model. Works merged or not.
  std::pair<nlohmann::json, std::vector<std::pair<std::string, at::Tensor>>> export_lora(Model&) override {
    if (!config_.lora())
      fail(ErrorKind::kUnsupported, "ADAMIX: export_lora needs variant \"lora\"; the adapter variant (bottleneck "
                                    "experts) has no plain-LoRA form");
    LoraConfig lc;
    lc.r = config_.r;
    lc.alpha = config_.alpha;
    lc.dropout = config_.dropout;
    lc.targets = config_.targets;
    nlohmann::json j{{"peft_type", "LORA"}};
    lc.write(j);
    bool conv1d = false;
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    for (const auto& l : lora_) {
      torch::NoGradGuard no_grad;
      tensors.emplace_back(l.name + ".lora_A.weight", l.layer->A->mean_weight().detach().clone());
      tensors.emplace_back(l.name + ".lora_B.weight", l.layer->B->mean_weight().detach().clone());
      conv1d = conv1d || l.linear->conv1d;
    }
    j["target_modules"] = resolved_.empty() ? config_.targets.to_json() : nlohmann::json(resolved_);
    j["fan_in_fan_out"] = conv1d;
    return {j, tensors};
  }

  // AdaMixControl.
  int64_t num_experts() const override { return config_.num_experts; }
  void set_eval_routing(const std::string& mode) override {
    config_.eval = parse_eval_routing(mode, "ADAMIX");
    if (routing_) routing_->eval = config_.eval;
  }
  std::string eval_routing() const override { return to_string(config_.eval); }
  void seed_routing(uint64_t seed) override {
    MIXPEFT_CHECK(routing_ != nullptr, ErrorKind::kInvalidArgument, "ADAMIX: seed_routing before attach");
    routing_->gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  }
  at::Tensor routing_state() const override {
    MIXPEFT_CHECK(routing_ != nullptr, ErrorKind::kInvalidArgument, "ADAMIX: routing_state before attach");
    std::lock_guard<std::mutex> lock(routing_->gen.mutex());
    return routing_->gen.get_state();
  }
  void set_routing_state(const at::Tensor& state) override {
    MIXPEFT_CHECK(routing_ != nullptr, ErrorKind::kInvalidArgument, "ADAMIX: set_routing_state before attach");
    std::lock_guard<std::mutex> lock(routing_->gen.mutex());
    try {
      routing_->gen.set_state(state);
    } catch (const c10::Error& e) {
      fail(ErrorKind::kCorrupt, "ADAMIX: invalid routing generator state: ", e.what_without_backtrace());
    }
  }
  std::vector<AdaMixRoute> last_routing() const override {
    std::vector<AdaMixRoute> out;
    for (const auto* b : banks_)
      if (b->size() > 1 && !b->merged()) out.push_back({b->full_name(), b->last_choice()});
    return out;
  }

 private:
  struct Site {
    torch::nn::Module* block;
    nn::AdapterSlots* slots;
    std::string module_name;
    bool attention;
    AdaMixAdapter adapter;
  };
  struct LoraTarget {
    std::string name;
    nn::LinearImpl* linear;
    std::shared_ptr<AdaMixLoraLayer> layer;
  };

  std::shared_ptr<nn::SiteAdapter> add_site(const BlockRef& block, const char* site, at::Generator& gen) {
    // One initialised bottleneck adapter; every expert is a copy of it.
    BottleneckAdapter proto(block.hidden_size, config_.shape.bottleneck_size, config_.shape.activation);
    init_bottleneck(*proto->down, *proto->up, config_.shape.init_scale, gen);
    match_block(*proto, *block.module);
    const std::string name = std::string("adamix_") + site;
    const std::string full = block.name + "." + name;
    AdaMixAdapter adapter(full, proto->down, proto->up, config_.down_experts(), config_.up_experts(),
                          config_.shape.activation, routing_);
    block.module->register_module(name, adapter);
    sites_.push_back({block.module, block.slots, name, std::string(site) == kAttnSite, adapter});
    prefixes_.push_back(full + ".");
    banks_.push_back(adapter->down.get());
    banks_.push_back(adapter->up.get());
    return std::make_shared<ModuleSite<AdaMixAdapter>>(adapter);
  }

  void attach_lora(Model& model, at::Generator& gen) {
    auto targets = find_linear_targets(model, config_.targets, "ADAMIX");
    if (config_.targets.empty()) resolved_ = model.default_lora_targets();
    const double scaling = config_.alpha / static_cast<double>(config_.r);
    for (auto& t : targets) {
      MIXPEFT_CHECK(!t.linear->adapter, ErrorKind::kInvalidArgument, "ADAMIX: ", t.name,
                    " already carries an adapter (one method per model)");
      auto layer = std::make_shared<AdaMixLoraLayer>(*t.linear, t.name, config_.r, scaling, config_.dropout,
                                                     config_.a_experts(), config_.b_experts(), gen, routing_);
      t.linear->adapter = layer;
      lora_.push_back({t.name, t.linear, layer});
      prefixes_.push_back(t.name + ".adamix_A.");
      prefixes_.push_back(t.name + ".adamix_B.");
      banks_.push_back(layer->A.get());
      banks_.push_back(layer->B.get());
    }
  }

  AdaMixConfig config_;
  std::shared_ptr<RoutingState> routing_;
  std::vector<Site> sites_;
  std::vector<LoraTarget> lora_;
  std::vector<const ExpertBank*> banks_;  // forward order within a block, blocks in order
  std::vector<std::string> prefixes_;     // "<module>.adamix_ffn." / "<linear>.adamix_A." ...
  std::vector<std::string> resolved_;
  bool merged_ = false;
};

}  // namespace

std::unique_ptr<Method> create_adamix(const nlohmann::json& config, const std::string& where) {
  return std::make_unique<AdaMixMethod>(config, where);
}

AdaMixControl& adamix_control(PeftModel& peft) {
  auto* control = dynamic_cast<AdaMixControl*>(&peft.method());
  MIXPEFT_CHECK(control != nullptr, ErrorKind::kInvalidArgument, "adamix_control: the model's method is ",
                peft.method().peft_type(), ", not ADAMIX");
  return *control;
}

}  // namespace mixpeft::peft
