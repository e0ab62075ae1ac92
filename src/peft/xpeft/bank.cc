#include "peft/xpeft/bank.h"

#include <array>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include <torch/torch.h>

#include "mixpeft/checkpoint.h"
#include "mixpeft/error.h"
#include "mixpeft/nn.h"
#include "mixpeft/safetensors.h"

namespace mixpeft::peft::xpeft {
namespace {

namespace fs = std::filesystem;
constexpr const char* kFormat = "mixpeft-xpeft-bank";
constexpr int kVersion = 1;
const char* const kNames[] = {"down.weight", "down.bias", "up.weight", "up.bias"};

std::string shape_str(at::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

std::vector<int64_t> expected_shape(const Bank& b, int which) {
  const int64_t L = b.num_layers, N = b.num_adapters, d = b.hidden_size, m = b.bottleneck_size;
  switch (which) {
    case 0: return {L, N, m, d};
    case 1: return {L, N, m};
    case 2: return {L, N, d, m};
    default: return {L, N, d};
  }
}

at::Tensor& tensor_of(Bank& b, int which) {
  switch (which) {
    case 0: return b.down_weight;
    case 1: return b.down_bias;
    case 2: return b.up_weight;
    default: return b.up_bias;
  }
}

// splitmix64's finalizer: a bijection on 64-bit words with full avalanche.
uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// h <- mix64(h ^ w) for every little-endian 64-bit word of `data`, the last
// one zero-padded.
uint64_t hash_bytes(uint64_t h, const uint8_t* data, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, data + i, 8);
    h = mix64(h ^ w);
  }
  if (i < n) {
    uint64_t w = 0;
    std::memcpy(&w, data + i, n - i);
    h = mix64(h ^ w);
  }
  return h;
}

nlohmann::json parse_json(const std::string& path) {
  try {
    return nlohmann::json::parse(io::read_file(path));
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorKind::kCorrupt, path, ": malformed JSON: ", e.what());
  }
}

std::string upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

std::string Bank::shape_string() const {
  return cat("L=", num_layers, " N=", num_adapters, " d=", hidden_size, " m=", bottleneck_size, " ", activation);
}

std::string bank_checksum(const Bank& b) {
  const std::string head =
      cat("xpeft-bank/v1 ", b.num_layers, " ", b.num_adapters, " ", b.hidden_size, " ", b.bottleneck_size, " ",
          b.activation, "\n");
  uint64_t h = hash_bytes(0, reinterpret_cast<const uint8_t*>(head.data()), head.size());
  for (const at::Tensor* t : {&b.down_weight, &b.down_bias, &b.up_weight, &b.up_bias}) {
    auto c = t->to(torch::kFloat).contiguous().cpu();
    h = hash_bytes(h, static_cast<const uint8_t*>(c.data_ptr()), c.numel() * sizeof(float));
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return std::string("mix64:") + hex;
}

Bank random_bank(int64_t layers, int64_t adapters, int64_t hidden, int64_t bottleneck, const std::string& activation,
                 double init_scale, uint64_t seed) {
  Bank b;
  b.num_layers = layers;
  b.num_adapters = adapters;
  b.hidden_size = hidden;
  b.bottleneck_size = bottleneck;
  b.activation = activation;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto f32 = torch::TensorOptions().dtype(torch::kFloat);
  // Drawn in this order (down, then up) from one generator: part of the bank's definition.
  b.down_weight = torch::empty({layers, adapters, bottleneck, hidden}, f32);
  b.down_weight.normal_(0.0, std::sqrt(2.0 / static_cast<double>(hidden)), gen);
  b.up_weight = torch::empty({layers, adapters, hidden, bottleneck}, f32);
  if (init_scale > 0) {
    b.up_weight.normal_(0.0, init_scale / std::sqrt(static_cast<double>(bottleneck)), gen);
  } else {
    b.up_weight.zero_();
  }
  b.down_bias = torch::zeros({layers, adapters, bottleneck}, f32);
  b.up_bias = torch::zeros({layers, adapters, hidden}, f32);
  b.checksum = bank_checksum(b);
  b.source = cat("seed ", seed);
  return b;
}

void save_bank(const Bank& b, const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  MIXPEFT_CHECK(!ec, ErrorKind::kIO, dir, ": cannot create folder: ", ec.message());
  io::save_tensors((fs::path(dir) / "bank.safetensors").string(),
                   {{kNames[0], b.down_weight}, {kNames[1], b.down_bias}, {kNames[2], b.up_weight}, {kNames[3], b.up_bias}},
                   {{"format", kFormat}, {"checksum", b.checksum}});
  nlohmann::json config{{"format", kFormat},
                        {"version", kVersion},
                        {"num_layers", b.num_layers},
                        {"num_adapters", b.num_adapters},
                        {"hidden_size", b.hidden_size},
                        {"bottleneck_size", b.bottleneck_size},
                        {"activation", b.activation},
                        {"checksum", b.checksum},
                        {"source", b.source}};
  io::write_file_atomic((fs::path(dir) / "bank_config.json").string(), config.dump(2) + "\n");
}

Bank load_bank(const std::string& dir) {
  const std::string config_path = (fs::path(dir) / "bank_config.json").string();
  const std::string tensors_path = (fs::path(dir) / "bank.safetensors").string();
  auto config = parse_json(config_path);
  auto get_int = [&](const char* key) -> int64_t {
    auto it = config.find(key);
    MIXPEFT_CHECK(it != config.end() && it->is_number_integer() && it->get<int64_t>() > 0, ErrorKind::kCorrupt,
                  config_path, ": \"", key, "\" must be a positive integer");
    return it->get<int64_t>();
  };
  auto get_string = [&](const char* key) -> std::string {
    auto it = config.find(key);
    MIXPEFT_CHECK(it != config.end() && it->is_string(), ErrorKind::kCorrupt, config_path, ": \"", key,
                  "\" must be a string");
    return it->get<std::string>();
  };
  MIXPEFT_CHECK(config.is_object() && config.value("format", "") == kFormat, ErrorKind::kCorrupt, config_path,
                ": not an X-PEFT bank config (\"format\" must be \"", kFormat, "\")");
  MIXPEFT_CHECK(config.value("version", 0) == kVersion, ErrorKind::kUnsupported, config_path, ": bank version ",
                config.value("version", 0), " is not supported (mixpeft reads version ", kVersion, ")");
  Bank b;
  b.num_layers = get_int("num_layers");
  b.num_adapters = get_int("num_adapters");
  b.hidden_size = get_int("hidden_size");
  b.bottleneck_size = get_int("bottleneck_size");
  b.activation = get_string("activation");
  nn::check_activation(b.activation, config_path + ": \"activation\"");
  const std::string recorded = get_string("checksum");

  auto file = io::SafetensorsFile::open(tensors_path);
  std::vector<std::string> problems;
  for (int i = 0; i < 4; ++i) {
    const auto* info = file->find(kNames[i]);
    const auto shape = expected_shape(b, i);
    if (!info) {
      problems.push_back(cat("missing tensor ", kNames[i], " ", shape_str(shape)));
      continue;
    }
    if (at::IntArrayRef(info->shape) != at::IntArrayRef(shape)) {
      problems.push_back(cat(kNames[i], ": file has ", shape_str(info->shape), ", ", config_path, " says ",
                             shape_str(shape)));
      continue;
    }
    tensor_of(b, i) = io::read_tensor(*file, *info).to(torch::kFloat).contiguous();
  }
  if (file->tensors().size() > 4)
    problems.push_back("unexpected tensors (a bank holds exactly down.weight, down.bias, up.weight, up.bias)");
  if (!problems.empty()) {
    std::string list;
    for (const auto& p : problems) list += "\n  " + p;
    fail(ErrorKind::kCorrupt, tensors_path, ": is not the bank its bank_config.json describes:", list);
  }
  b.checksum = bank_checksum(b);
  MIXPEFT_CHECK(b.checksum == recorded, ErrorKind::kCorrupt, tensors_path, ": contents hash to ", b.checksum,
                " but ", config_path, " records ", recorded, " (the bank was damaged or edited after it was saved)");
  b.source = "bank folder " + dir;
  return b;
}

Bank bank_from_bottleneck(const std::vector<std::string>& folders, const std::vector<std::string>& block_names,
                          const std::string& base_prefix, int64_t hidden) {
  MIXPEFT_CHECK(!folders.empty(), ErrorKind::kInvalidArgument, "bank_adapters: the list is empty");
  const int64_t L = static_cast<int64_t>(block_names.size());
  const int64_t N = static_cast<int64_t>(folders.size());
  Bank b;
  b.num_layers = L;
  b.num_adapters = N;
  b.hidden_size = hidden;
  // [adapter][layer][which]
  std::vector<std::vector<std::array<at::Tensor, 4>>> parts(N);
  for (int64_t i = 0; i < N; ++i) {
    const std::string& dir = folders[i];
    const std::string where = cat("bank_adapters[", i, "] (", dir, ")");
    const std::string config_path = (fs::path(dir) / "adapter_config.json").string();
    const std::string weights_path = (fs::path(dir) / "adapter_model.safetensors").string();
    auto config = parse_json(config_path);
    MIXPEFT_CHECK(config.is_object() && config.contains("peft_type") && config["peft_type"].is_string(),
                  ErrorKind::kCorrupt, config_path, ": no \"peft_type\"");
    const std::string type = config["peft_type"].get<std::string>();
    MIXPEFT_CHECK(upper(type) == "BOTTLENECK", ErrorKind::kInvalidArgument, where, ": peft_type is \"", type,
                  "\"; an X-PEFT bank is built from BOTTLENECK adapters");
    const auto placement = config.value("placement", std::string("pfeiffer"));
    MIXPEFT_CHECK(placement == "pfeiffer", ErrorKind::kUnsupported, where, ": placement \"", placement,
                  "\"; X-PEFT banks hold one adapter per layer after the feed-forward output (placement pfeiffer)");
    const auto activation = config.value("activation", std::string("relu"));
    if (i == 0) {
      b.activation = activation;
      nn::check_activation(activation, config_path + ": \"activation\"");
    }
    MIXPEFT_CHECK(activation == b.activation, ErrorKind::kInvalidArgument, where, ": activation \"", activation,
                  "\" differs from bank_adapters[0]'s \"", b.activation, "\" (all adapters of a bank share it)");
    auto file = io::SafetensorsFile::open(weights_path);
    parts[i].resize(L);
    for (int64_t l = 0; l < L; ++l) {
      // Saved from a task model: "base_model.model.bert.encoder.layer.0...";
      // from a base model: "base_model.model.encoder.layer.0...".
      std::vector<std::string> stems = {block_names[l]};
      const std::string dotted = base_prefix + ".";
      if (block_names[l].rfind(dotted, 0) == 0) stems.push_back(block_names[l].substr(dotted.size()));
      for (int w = 0; w < 4; ++w) {
        const io::TensorInfo* info = nullptr;
        std::string name;
        for (const auto& stem : stems) {
          name = "base_model.model." + stem + ".adapter_ffn." + kNames[w];
          if ((info = file->find(name))) break;
        }
        MIXPEFT_CHECK(info != nullptr, ErrorKind::kCorrupt, weights_path, ": missing tensor ", name,
                      " (", where, " must be a BOTTLENECK adapter of this architecture, ", L, " layers)");
        auto t = io::read_tensor(*file, *info).to(torch::kFloat);
        if (b.bottleneck_size == 0 && w == 0 && t.dim() == 2) b.bottleneck_size = t.size(0);
        auto full = expected_shape(b, w);
        std::vector<int64_t> want(full.begin() + 2, full.end());
        MIXPEFT_CHECK(t.sizes() == at::IntArrayRef(want), ErrorKind::kInvalidArgument, weights_path, ": ", name,
                      " is ", shape_str(t.sizes()), ", expected ", shape_str(want),
                      " (hidden size ", hidden, ", bottleneck_size ", b.bottleneck_size,
                      " of bank_adapters[0]; all adapters of a bank share one bottleneck_size)");
        parts[i][l][w] = t;
      }
    }
  }
  for (int w = 0; w < 4; ++w) {
    std::vector<at::Tensor> layers;
    for (int64_t l = 0; l < L; ++l) {
      std::vector<at::Tensor> adapters;
      for (int64_t i = 0; i < N; ++i) adapters.push_back(parts[i][l][w]);
      layers.push_back(torch::stack(adapters));
    }
    tensor_of(b, w) = torch::stack(layers).contiguous();
  }
  b.checksum = bank_checksum(b);
  b.source = cat(N, " BOTTLENECK adapters");
  return b;
}

}  // namespace mixpeft::peft::xpeft
