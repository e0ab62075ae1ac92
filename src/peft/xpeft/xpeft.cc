#include "peft/xpeft/xpeft.h"

#include <cctype>
#include <cmath>
#include <set>
#include <filesystem>

#include <torch/torch.h>

#include "mixpeft/checkpoint.h"
#include "mixpeft/error.h"
#include "mixpeft/safetensors.h"
#include "peft/registry.h"

namespace mixpeft::peft {

std::unique_ptr<Method> create_xpeft(const nlohmann::json& config, const std::string& where) {
  return std::make_unique<xpeft::XpeftMethod>(config, where);
}

namespace xpeft {

// ---- config ---------------------------------------------------------------

XpeftConfig XpeftConfig::read(const nlohmann::json& json, const std::string& where) {
  ConfigReader rd(json, where);
  XpeftConfig c;
  auto given = [&](const char* key) { return json.contains(key) && !json[key].is_null(); };
  rd.get_string("placement", "pfeiffer", {"pfeiffer"});  // the only placement: after the FFN output
  c.num_adapters = rd.get_int("num_adapters", c.num_adapters);
  c.bottleneck_size = rd.get_int("bottleneck_size", c.bottleneck_size);
  c.activation = rd.get_string("activation", c.activation);
  nn::check_activation(c.activation, where + ": \"activation\"");
  const int64_t seed = rd.get_int("bank_seed", 0);
  c.bank_init_scale = rd.get_double("bank_init_scale", c.bank_init_scale);
  c.bank_path = rd.get_string("bank_path", "");
  c.bank_adapters = rd.get_strings("bank_adapters");
  c.bank_checksum = rd.get_string("bank_checksum", "");
  c.mask.type = rd.get_string("mask_type", "softmax", {"softmax", "sigmoid"});
  c.mask.hard = rd.get_bool("hard", false);
  c.mask.top_k = rd.get_int("top_k", 0);
  c.mask_dtype = rd.get_string("mask_dtype", "float32", {"float32", "float16"});
  rd.finish();
  c.num_adapters_given = given("num_adapters");
  c.bottleneck_size_given = given("bottleneck_size");
  c.activation_given = given("activation");

  if (c.num_adapters <= 0) rd.bad("num_adapters", "must be positive");
  if (c.bottleneck_size <= 0) rd.bad("bottleneck_size", "must be positive");
  if (seed < 0) rd.bad("bank_seed", "must be >= 0");
  c.bank_seed = static_cast<uint64_t>(seed);
  if (!(c.bank_init_scale >= 0) || !std::isfinite(c.bank_init_scale))
    rd.bad("bank_init_scale", "must be a finite number >= 0");
  if (!c.bank_path.empty() && !c.bank_adapters.empty())
    rd.bad("bank_path", "and \"bank_adapters\" both name a bank; give one of them");
  if (!c.random_bank()) {
    const char* other = c.bank_path.empty() ? "bank_adapters" : "bank_path";
    for (const char* k : {"bank_seed", "bank_init_scale"})
      if (given(k)) rd.bad(k, std::string("only applies to a random bank, but \"") + other + "\" is given");
  }
  if (c.mask.hard) {
    if (!given("top_k"))
      rd.bad("top_k", "is required when \"hard\" is true (how many of the N adapters each layer averages)");
    if (c.mask.top_k < 1) rd.bad("top_k", "must be at least 1");
    if (given("mask_dtype")) rd.bad("mask_dtype", "applies to soft masks only (hard masks are stored as bits)");
  } else if (given("top_k")) {
    rd.bad("top_k", "only applies with \"hard\": true");
  }
  return c;
}

// ---- masks ----------------------------------------------------------------

at::Tensor soft_weights(const at::Tensor& logits, const std::string& type) {
  if (type == "sigmoid") {
    auto s = torch::sigmoid(logits);
    return s / s.sum(-1, /*keepdim=*/true);
  }
  return torch::softmax(logits, -1);
}

at::Tensor top_k_mask(const at::Tensor& logits, int64_t k) {
  // A stable descending sort: among equal logits the lower index wins, so the
  // selection is deterministic (all-zero logits select adapters 0..k-1).
  auto order = std::get<1>(torch::sort(logits.detach(), /*stable=*/true, -1, /*descending=*/true));
  auto mask = torch::zeros_like(logits, logits.options().requires_grad(false));
  return mask.scatter_(-1, order.narrow(-1, 0, k), 1.0);
}

at::Tensor mask_weights(const at::Tensor& logits, const MaskSpec& spec) {
  auto soft = soft_weights(logits, spec.type);
  if (!spec.hard) return soft;
  // Straight-through: the value is top_k / k exactly (soft - soft.detach() is
  // 0), the gradient is that of the soft weighting.
  return top_k_mask(logits, spec.top_k) / static_cast<double>(spec.top_k) + (soft - soft.detach());
}

at::Tensor pack_bits(const at::Tensor& bits) {
  auto flat = bits.detach().reshape({-1}).to(torch::kCPU, torch::kByte).contiguous();
  const int64_t n = flat.numel();
  auto out = torch::zeros({(n + 7) / 8}, torch::kByte);
  const uint8_t* in = flat.data_ptr<uint8_t>();
  uint8_t* o = out.data_ptr<uint8_t>();
  for (int64_t j = 0; j < n; ++j)
    if (in[j]) o[j / 8] |= static_cast<uint8_t>(1u << (j % 8));
  return out;
}

at::Tensor unpack_bits(const at::Tensor& packed, int64_t n) {
  auto p = packed.to(torch::kCPU).contiguous();
  MIXPEFT_CHECK(p.scalar_type() == torch::kByte && p.numel() == (n + 7) / 8, ErrorKind::kInvalidArgument,
                "unpack_bits: expected ", (n + 7) / 8, " U8 bytes for ", n, " bits");
  auto out = torch::zeros({n}, torch::kFloat);
  const uint8_t* in = p.data_ptr<uint8_t>();
  float* o = out.data_ptr<float>();
  for (int64_t j = 0; j < n; ++j) o[j] = (in[j / 8] >> (j % 8)) & 1u ? 1.0f : 0.0f;
  return out;
}

// ---- module ---------------------------------------------------------------

XpeftModuleImpl::XpeftModuleImpl(const Bank& bank, MaskSpec s, const torch::TensorOptions& opts)
    : spec(std::move(s)), activation(bank.activation), num_layers(bank.num_layers), num_adapters(bank.num_adapters) {
  auto f32 = opts.dtype(torch::kFloat);
  // Zero logits: uniform soft weights (the mean of the layer's adapters); hard
  // masks start on adapters 0..k-1 and the straight-through gradient moves them.
  mask_A = register_parameter("mask_A", torch::zeros({num_layers, num_adapters}, f32));
  mask_B = register_parameter("mask_B", torch::zeros({num_layers, num_adapters}, f32));
  bank_down_weight = register_buffer("bank_down_weight", bank.down_weight.to(opts));
  bank_down_bias = register_buffer("bank_down_bias", bank.down_bias.to(opts));
  bank_up_weight = register_buffer("bank_up_weight", bank.up_weight.to(opts));
  bank_up_bias = register_buffer("bank_up_bias", bank.up_bias.to(opts));
}

XpeftModuleImpl::Combined XpeftModuleImpl::compute(int64_t l) {
  const int64_t N = num_adapters;
  auto dtype = bank_down_weight.scalar_type();
  // Row l of the weights: [1, N] @ [N, ...] sums the layer's N adapters.
  auto wa = mask_weights(mask_A, spec).select(0, l).to(dtype).unsqueeze(0);
  auto wb = mask_weights(mask_B, spec).select(0, l).to(dtype).unsqueeze(0);
  auto mix = [&](const at::Tensor& w, const at::Tensor& bank) {
    auto per = bank.select(0, l);  // [N, ...]
    std::vector<int64_t> shape(per.sizes().begin() + 1, per.sizes().end());
    return torch::matmul(w, per.reshape({N, -1})).reshape(shape);
  };
  return {mix(wa, bank_down_weight), mix(wa, bank_down_bias), mix(wb, bank_up_weight), mix(wb, bank_up_bias)};
}

XpeftModuleImpl::Key XpeftModuleImpl::key() const {
  Key k;
  k.a = mask_A.data_ptr();
  k.b = mask_B.data_ptr();
  k.bank = bank_down_weight.data_ptr();
  k.version_a = mask_A._version();
  k.version_b = mask_B._version();
  return k;
}

void XpeftModuleImpl::fill_cache_locked() {
  torch::NoGradGuard no_grad;
  cache_.clear();
  for (int64_t l = 0; l < num_layers; ++l) cache_.push_back(compute(l));
  cached_key_ = key();
  ++materializations_;
}

void XpeftModuleImpl::materialize() {
  std::lock_guard<std::mutex> lock(mutex_);
  fill_cache_locked();
}

XpeftModuleImpl::Combined XpeftModuleImpl::combined(int64_t l) {
  const bool need_graph = at::GradMode::is_enabled() && (mask_A.requires_grad() || mask_B.requires_grad());
  if (need_graph) return compute(l);
  std::lock_guard<std::mutex> lock(mutex_);
  if (cache_.empty() || !(cached_key_ == key())) fill_cache_locked();
  return cache_[l];
}

at::Tensor XpeftModuleImpl::forward(int64_t l, const at::Tensor& h) {
  auto c = combined(l);
  auto z = nn::activation(activation, torch::nn::functional::linear(h, c.down_weight, c.down_bias));
  return h + torch::nn::functional::linear(z, c.up_weight, c.up_bias);
}

namespace {

class XpeftSite : public nn::SiteAdapter {
 public:
  XpeftSite(XpeftModule module, int64_t layer) : module_(std::move(module)), layer_(layer) {}
  at::Tensor forward(const at::Tensor& h) override { return module_->forward(layer_, h); }

 private:
  XpeftModule module_;
  int64_t layer_;
};

}  // namespace

// ---- method ---------------------------------------------------------------

XpeftMethod::XpeftMethod(const nlohmann::json& json, const std::string& where)
    : config_(XpeftConfig::read(json, where)), where_(where) {}

nlohmann::json XpeftMethod::config() const {
  nlohmann::json j{{"peft_type", "XPEFT"}, {"placement", "pfeiffer"}};
  const bool built = bank_.num_layers > 0;
  j["num_adapters"] = built ? bank_.num_adapters : config_.num_adapters;
  j["bottleneck_size"] = built ? bank_.bottleneck_size : config_.bottleneck_size;
  j["activation"] = built ? bank_.activation : config_.activation;
  if (config_.random_bank()) {
    j["bank_seed"] = config_.bank_seed;
    j["bank_init_scale"] = config_.bank_init_scale;
  }
  if (!config_.bank_path.empty()) j["bank_path"] = config_.bank_path;
  if (!config_.bank_adapters.empty()) j["bank_adapters"] = config_.bank_adapters;
  j["bank_checksum"] = built ? bank_.checksum : config_.bank_checksum;
  j["mask_type"] = config_.mask.type;
  j["hard"] = config_.mask.hard;
  if (config_.mask.hard) {
    j["top_k"] = config_.mask.top_k;
  } else {
    j["mask_dtype"] = config_.mask_dtype;
  }
  return j;
}

void XpeftMethod::attach(Model& model) {
  auto blocks = model.blocks();
  MIXPEFT_CHECK(!blocks.empty(), ErrorKind::kUnsupported, where_, ": ", model.architecture(), " has no transformer blocks");
  const int64_t L = static_cast<int64_t>(blocks.size());
  const int64_t d = blocks.front().hidden_size;
  for (auto& c : model.named_children())
    if (c.key() == model.base_prefix()) base_ = c.value().get();
  MIXPEFT_CHECK(base_ != nullptr, ErrorKind::kInternal, where_, ": ", model.architecture(), " has no \"",
                model.base_prefix(), "\" module");
  MIXPEFT_CHECK(!base_->named_children().contains("xpeft"), ErrorKind::kInvalidArgument, where_,
                ": the model already carries an X-PEFT profile (one method per model)");
  for (const auto& b : blocks)
    MIXPEFT_CHECK(!b.slots->after_ffn, ErrorKind::kInvalidArgument, where_, ": block ", b.name,
                  " already has an adapter after the feed-forward (one method per model)");

  // Build the bank.
  if (!config_.bank_path.empty()) {
    bank_ = load_bank(config_.bank_path);
  } else if (!config_.bank_adapters.empty()) {
    std::vector<std::string> names;
    for (const auto& b : blocks) names.push_back(b.name);
    bank_ = bank_from_bottleneck(config_.bank_adapters, names, model.base_prefix(), d);
  } else {
    bank_ = random_bank(L, config_.num_adapters, d, config_.bottleneck_size, config_.activation,
                        config_.bank_init_scale, config_.bank_seed);
  }
  if (!config_.bank_checksum.empty() && config_.bank_checksum != bank_.checksum)
    fail(ErrorKind::kInvalidArgument, where_, ": \"bank_checksum\" ", config_.bank_checksum,
         " is the bank this profile was trained on, but the bank from ", bank_.source, " (", bank_.shape_string(),
         ") is ", bank_.checksum, "; a profile only works on its own bank: load it with that bank");
  MIXPEFT_CHECK(bank_.num_layers == L && bank_.hidden_size == d, ErrorKind::kInvalidArgument, where_, ": the bank from ",
                bank_.source, " (", bank_.shape_string(), ") does not fit ", model.architecture(), " (", L,
                " layers, hidden size ", d, ")");
  if (!config_.random_bank()) {
    // Keys given next to a bank folder or adapter list must describe it.
    auto agree = [&](const char* key, const nlohmann::json& given, const nlohmann::json& actual, bool was_given) {
      MIXPEFT_CHECK(!was_given || given == actual, ErrorKind::kInvalidArgument, where_, ": \"", key, "\" is ",
                    given.dump(), " but the bank from ", bank_.source, " has ", actual.dump());
    };
    agree("num_adapters", config_.num_adapters, bank_.num_adapters, config_.num_adapters_given);
    agree("bottleneck_size", config_.bottleneck_size, bank_.bottleneck_size, config_.bottleneck_size_given);
    agree("activation", config_.activation, bank_.activation, config_.activation_given);
  }
  if (config_.mask.hard)
    MIXPEFT_CHECK(config_.mask.top_k <= bank_.num_adapters, ErrorKind::kInvalidArgument, where_, ": \"top_k\" ",
                  config_.mask.top_k, " exceeds num_adapters ", bank_.num_adapters);

  auto p = blocks.front().module->parameters();
  MIXPEFT_CHECK(!p.empty(), ErrorKind::kInternal, where_, ": a transformer block has no parameters");
  module_ = XpeftModule(bank_, config_.mask, torch::TensorOptions().dtype(p.front().scalar_type()).device(p.front().device()));
  base_->register_module("xpeft", module_);
  prefix_ = model.base_prefix() + ".xpeft.";
  for (int64_t l = 0; l < L; ++l) {
    blocks[l].slots->after_ffn = std::make_shared<XpeftSite>(module_, l);
    slots_.push_back(blocks[l].slots);
  }
}

bool XpeftMethod::owns(const std::string& name) const {
  return !prefix_.empty() && (name == prefix_ + "mask_A" || name == prefix_ + "mask_B");
}

void XpeftMethod::unload(Model&) {
  for (auto* s : slots_) s->after_ffn.reset();
  slots_.clear();
  if (base_) base_->unregister_module("xpeft");
  base_ = nullptr;
  prefix_.clear();
}

int64_t XpeftMethod::mask_bytes() const {
  const int64_t n = 2 * bank_.num_layers * bank_.num_adapters;
  if (config_.mask.hard) return (n + 7) / 8;
  return n * (config_.mask_dtype == "float16" ? 2 : 4);
}

std::vector<std::pair<std::string, at::Tensor>> XpeftMethod::saved_tensors(Model&) {
  MIXPEFT_CHECK(module_, ErrorKind::kInternal, where_, ": saved_tensors before attach");
  if (config_.mask.hard) {
    auto bits = torch::cat({top_k_mask(module_->mask_A, config_.mask.top_k),
                            top_k_mask(module_->mask_B, config_.mask.top_k)});
    return {{prefix_ + "mask_bits", pack_bits(bits)}};
  }
  auto dtype = config_.mask_dtype == "float16" ? torch::kHalf : torch::kFloat;
  return {{prefix_ + "mask_A", module_->mask_A.detach().to(torch::kCPU, dtype)},
          {prefix_ + "mask_B", module_->mask_B.detach().to(torch::kCPU, dtype)}};
}

void XpeftMethod::set_mask_format(const MaskSpec& spec, const std::string& mask_dtype) {
  MIXPEFT_CHECK(module_, ErrorKind::kInternal, where_, ": set_mask_format before attach");
  config_.mask = spec;
  config_.mask_dtype = mask_dtype;
  module_->spec = spec;
}

void XpeftMethod::load_saved(Model&, const std::map<std::string, at::Tensor>& tensors) {
  torch::NoGradGuard no_grad;
  const int64_t L = module_->num_layers, N = module_->num_adapters;
  if (!config_.mask.hard) {
    // Check both before changing either.
    for (auto* which : {"mask_A", "mask_B"}) {
      const std::string name = prefix_ + which;
      const auto& t = tensors.at(name);
      MIXPEFT_CHECK(t.is_floating_point(), ErrorKind::kCorrupt, name, ": dtype ", t.scalar_type(),
                    ", expected float mask logits");
      MIXPEFT_CHECK(torch::isfinite(t).all().item<bool>(), ErrorKind::kCorrupt, name, ": non-finite mask logits");
    }
    module_->mask_A.copy_(tensors.at(prefix_ + "mask_A"));
    module_->mask_B.copy_(tensors.at(prefix_ + "mask_B"));
    return;
  }
  const std::string name = prefix_ + "mask_bits";
  const auto& t = tensors.at(name);
  MIXPEFT_CHECK(t.scalar_type() == torch::kByte, ErrorKind::kCorrupt, name, ": dtype ", t.scalar_type(),
                ", expected U8 (hard masks are stored bit-packed)");
  const int64_t n = 2 * L * N;
  auto bits = unpack_bits(t, n).view({2, L, N});
  MIXPEFT_CHECK(n % 8 == 0 || (t[t.numel() - 1].item<int64_t>() >> (n % 8)) == 0, ErrorKind::kCorrupt, name,
                ": padding bits after the ", n, " mask bits are set");
  auto ones = bits.sum(-1);  // [2, L]
  for (int64_t m = 0; m < 2; ++m)
    for (int64_t l = 0; l < L; ++l) {
      const auto count = static_cast<int64_t>(ones[m][l].item<float>());
      MIXPEFT_CHECK(count == config_.mask.top_k, ErrorKind::kCorrupt, name, ": row ", l, " of mask ",
                    m == 0 ? "A" : "B", " selects ", count, " adapters, top_k is ", config_.mask.top_k);
    }
  // Logits 1 on the selected adapters and 0 elsewhere reproduce the masks
  // exactly; training can continue from them (the original logits are not stored).
  module_->mask_A.copy_(bits[0]);
  module_->mask_B.copy_(bits[1]);
}

void activate_profile(PeftModel& peft, const std::string& dir) {
  auto* method = dynamic_cast<XpeftMethod*>(&peft.method());
  MIXPEFT_CHECK(method != nullptr, ErrorKind::kInvalidArgument, "activate_profile: the model carries a ",
                peft.method().peft_type(), " adapter, not XPEFT");
  const std::string config_path = (std::filesystem::path(dir) / "adapter_config.json").string();
  const std::string weights_path = (std::filesystem::path(dir) / "adapter_model.safetensors").string();
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(io::read_file(config_path));
  } catch (const nlohmann::json::parse_error& e) {
    fail(ErrorKind::kCorrupt, config_path, ": malformed JSON: ", e.what());
  }
  std::string type = json.is_object() && json.contains("peft_type") && json["peft_type"].is_string()
                         ? json["peft_type"].get<std::string>()
                         : "(none)";
  for (auto& c : type) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  MIXPEFT_CHECK(type == "XPEFT", ErrorKind::kInvalidArgument, config_path, ": peft_type ", type,
                " is not an X-PEFT profile");
  const auto cfg = XpeftConfig::read(json, config_path);
  const auto& bank = method->bank();
  MIXPEFT_CHECK(cfg.bank_checksum == bank.checksum, ErrorKind::kInvalidArgument, config_path, ": \"bank_checksum\" ",
                cfg.bank_checksum.empty() ? std::string("(none)") : cfg.bank_checksum,
                " is the bank this profile was trained on, but this model's bank (", bank.source, ", ",
                bank.shape_string(), ") is ", bank.checksum, "; load the profile with PeftModel::load and its own bank");
  MIXPEFT_CHECK(!cfg.mask.hard || cfg.mask.top_k <= bank.num_adapters, ErrorKind::kInvalidArgument, config_path,
                ": \"top_k\" ", cfg.mask.top_k, " exceeds num_adapters ", bank.num_adapters);
  std::vector<std::string> heads;
  if (json.contains("modules_to_save") && json["modules_to_save"].is_array())
    heads = json["modules_to_save"].get<std::vector<std::string>>();
  MIXPEFT_CHECK(heads == peft.modules_to_save(), ErrorKind::kInvalidArgument, config_path, ": modules_to_save ",
                nlohmann::json(heads).dump(), " differs from this model's ", nlohmann::json(peft.modules_to_save()).dump());

  // Read and check everything under the profile's mask format, then apply.
  const MaskSpec old_spec = method->settings().mask;
  const std::string old_dtype = method->settings().mask_dtype;
  method->set_mask_format(cfg.mask, cfg.mask_dtype);
  try {
    auto file = io::SafetensorsFile::open(weights_path);
    std::map<std::string, at::Tensor> expected;  // by saved name
    for (auto& [name, t] : peft.saved_tensors()) expected.emplace(name, t);
    std::set<std::string> mask_names;  // by parameter name
    for (auto& [name, t] : method->saved_tensors(peft.model())) mask_names.insert(name);
    std::map<std::string, at::Tensor> masks, head;  // by parameter name
    std::vector<std::string> problems;
    for (const auto& info : file->tensors()) {
      auto it = expected.find(info.name);
      if (it == expected.end()) {
        problems.push_back("unexpected tensor " + info.name);
        continue;
      }
      if (at::IntArrayRef(info.shape) != it->second.sizes()) {
        problems.push_back(cat(info.name, ": file has ", at::IntArrayRef(info.shape), ", expected ", it->second.sizes()));
        continue;
      }
      const std::string name = peft.parameter_name(info.name);
      (mask_names.count(name) ? masks : head)[name] = io::read_tensor(*file, info);
      expected.erase(it);
    }
    for (const auto& [name, t] : expected) problems.push_back("missing tensor " + name);
    if (!problems.empty()) {
      std::string list;
      for (const auto& p : problems) list += "\n  " + p;
      fail(ErrorKind::kCorrupt, weights_path, ": is not a profile for this model:", list);
    }
    try {
      method->load_saved(peft.model(), masks);
    } catch (const Error& e) {
      throw Error(e.kind(), weights_path + ": " + e.what());
    }
    torch::NoGradGuard no_grad;
    auto params = peft.model().named_parameters();
    for (auto& [name, t] : head) params[name].copy_(t);
  } catch (...) {
    method->set_mask_format(old_spec, old_dtype);
    throw;
  }
  method->module()->materialize();
}

int64_t profile_bytes(PeftModel& peft) {
  int64_t n = 0;
  for (auto& [name, t] : peft.saved_tensors()) n += t.numel() * static_cast<int64_t>(t.element_size());
  return n;
}

}  // namespace xpeft
}  // namespace mixpeft::peft
