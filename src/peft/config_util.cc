#include "peft/config_util.h"

#include "mixpeft/error.h"

namespace mixpeft::peft {

ConfigReader::ConfigReader(const nlohmann::json& config, std::string where, bool adapter_keys)
    : config_(config), where_(std::move(where)) {
  MIXPEFT_CHECK(config_.is_object(), ErrorKind::kInvalidArgument, where_, ": expected a JSON object");
  // Present in every adapter_config.json; read by the framework, not the method.
  if (adapter_keys) accept({"peft_type", "modules_to_save", "base_model_name_or_path", "task_type", "inference_mode",
          "revision", "auto_mapping", "mixpeft_version"});
}

void ConfigReader::bad(const std::string& key, const std::string& problem) const {
  fail(ErrorKind::kInvalidArgument, where_, ": \"", key, "\" ", problem);
}

const nlohmann::json* ConfigReader::find(const std::string& key) {
  known_.insert(key);
  auto it = config_.find(key);
  return it == config_.end() || it->is_null() ? nullptr : &*it;
}

int64_t ConfigReader::get_int(const std::string& key, int64_t fallback) {
  const auto* v = find(key);
  if (!v) return fallback;
  if (v->is_number_integer()) return v->get<int64_t>();
  if (v->is_number_float() && v->get<double>() == static_cast<double>(static_cast<int64_t>(v->get<double>())))
    return static_cast<int64_t>(v->get<double>());
  bad(key, "must be an integer, got " + v->dump());
}

double ConfigReader::get_double(const std::string& key, double fallback) {
  const auto* v = find(key);
  if (!v) return fallback;
  if (!v->is_number()) bad(key, "must be a number, got " + v->dump());
  return v->get<double>();
}

bool ConfigReader::get_bool(const std::string& key, bool fallback) {
  const auto* v = find(key);
  if (!v) return fallback;
  if (!v->is_boolean()) bad(key, "must be true or false, got " + v->dump());
  return v->get<bool>();
}

std::string ConfigReader::get_string(const std::string& key, const std::string& fallback,
                                     const std::vector<std::string>& allowed) {
  const auto* v = find(key);
  std::string s = fallback;
  if (v) {
    if (!v->is_string()) bad(key, "must be a string, got " + v->dump());
    s = v->get<std::string>();
  }
  if (!allowed.empty()) {
    bool ok = false;
    std::string list;
    for (const auto& a : allowed) {
      ok = ok || a == s;
      list += (list.empty() ? "" : ", ") + a;
    }
    if (!ok) bad(key, "is \"" + s + "\"; expected one of: " + list);
  }
  return s;
}

std::vector<std::string> ConfigReader::get_strings(const std::string& key) {
  const auto* v = find(key);
  std::vector<std::string> out;
  if (!v) return out;
  if (!v->is_array()) bad(key, "must be a list of strings, got " + v->dump());
  for (const auto& e : *v) {
    if (!e.is_string()) bad(key, "must be a list of strings, got " + v->dump());
    out.push_back(e.get<std::string>());
  }
  return out;
}

void ConfigReader::accept(const std::vector<std::string>& keys) {
  for (const auto& k : keys) known_.insert(k);
}

void ConfigReader::require_default(const std::string& key, const nlohmann::json& expected) {
  const auto* v = find(key);
  if (!v) return;
  const bool empty = (v->is_object() || v->is_array()) && v->empty();
  if (empty || *v == false || *v == expected) return;
  fail(ErrorKind::kUnsupported, where_, ": \"", key, "\" = ", v->dump(), " is not supported by mixpeft");
}

void ConfigReader::finish() {
  std::string unknown;
  for (auto it = config_.begin(); it != config_.end(); ++it)
    if (!known_.count(it.key())) unknown += (unknown.empty() ? "" : ", ") + std::string("\"") + it.key() + "\"";
  if (unknown.empty()) return;
  std::string valid;
  for (const auto& k : known_) valid += (valid.empty() ? "" : ", ") + k;
  fail(ErrorKind::kInvalidArgument, where_, ": unknown key(s) ", unknown, " (valid keys: ", valid, ")");
}

}  // namespace mixpeft::peft
