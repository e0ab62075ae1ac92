// Typed access to a config.json with errors that name the file and field.
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "mixpeft/model.h"

namespace mixpeft::models {

class ConfigView {
 public:
  ConfigView(const nlohmann::json& json, std::string where) : json_(json), where_(std::move(where)) {}
  bool has(const char* key) const;  // present and not null
  int64_t get_int(const char* key) const;
  int64_t get_int(const char* key, int64_t fallback) const;
  double get_double(const char* key) const;
  double get_double(const char* key, double fallback) const;
  bool get_bool(const char* key, bool fallback) const;
  std::string get_string(const char* key) const;
  std::string get_string(const char* key, const std::string& fallback) const;
  const nlohmann::json& json() const { return json_; }
  const std::string& where() const { return where_; }
  // Throws kCorrupt "<where>: field \"key\" <problem>".
  [[noreturn]] void bad(const char* key, const std::string& problem) const;

 private:
  const nlohmann::json& json_;
  std::string where_;
};

// Builds a model of one model_type for the requested architecture
// (e.g. "LlamaForCausalLM"); num_labels already applied to the config.
using ModelFactory = std::shared_ptr<Model> (*)(const ConfigView& config, const std::string& architecture);

struct ModelTypeEntry {
  const char* model_type;
  ModelFactory factory;
};

// The explicit list of architectures (registry.cc): one line per model_type.
const std::vector<ModelTypeEntry>& model_registry();

std::shared_ptr<Model> make_gpt2(const ConfigView& config, const std::string& architecture);
std::shared_ptr<Model> make_bert(const ConfigView& config, const std::string& architecture);
std::shared_ptr<Model> make_roberta(const ConfigView& config, const std::string& architecture);
std::shared_ptr<Model> make_llama(const ConfigView& config, const std::string& architecture);
std::shared_ptr<Model> make_qwen2(const ConfigView& config, const std::string& architecture);

// "<where>: architecture X is not supported for model_type Y (supported: ...)".
[[noreturn]] void unsupported_architecture(const ConfigView& config, const std::string& architecture,
                                           const std::string& supported);

}  // namespace mixpeft::models
