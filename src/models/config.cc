#include "models/config.h"

#include "mixpeft/error.h"

namespace mixpeft::models {

bool ConfigView::has(const char* key) const {
  auto it = json_.find(key);
  return it != json_.end() && !it->is_null();
}

void ConfigView::bad(const char* key, const std::string& problem) const {
  fail(ErrorKind::kCorrupt, where_, ": field \"", key, "\" ", problem);
}

int64_t ConfigView::get_int(const char* key) const {
  if (!has(key)) bad(key, "is missing");
  const auto& v = json_.at(key);
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float() && v.get<double>() == static_cast<double>(static_cast<int64_t>(v.get<double>())))
    return static_cast<int64_t>(v.get<double>());
  bad(key, "must be an integer, got " + v.dump());
}

int64_t ConfigView::get_int(const char* key, int64_t fallback) const {
  return has(key) ? get_int(key) : fallback;
}

double ConfigView::get_double(const char* key) const {
  if (!has(key)) bad(key, "is missing");
  const auto& v = json_.at(key);
  if (!v.is_number()) bad(key, "must be a number, got " + v.dump());
  return v.get<double>();
}

double ConfigView::get_double(const char* key, double fallback) const {
  return has(key) ? get_double(key) : fallback;
}

bool ConfigView::get_bool(const char* key, bool fallback) const {
  if (!has(key)) return fallback;
  const auto& v = json_.at(key);
  if (!v.is_boolean()) bad(key, "must be true or false, got " + v.dump());
  return v.get<bool>();
}

std::string ConfigView::get_string(const char* key) const {
  if (!has(key)) bad(key, "is missing");
  const auto& v = json_.at(key);
  if (!v.is_string()) bad(key, "must be a string, got " + v.dump());
  return v.get<std::string>();
}

std::string ConfigView::get_string(const char* key, const std::string& fallback) const {
  return has(key) ? get_string(key) : fallback;
}

void unsupported_architecture(const ConfigView& config, const std::string& architecture,
                              const std::string& supported) {
  fail(ErrorKind::kUnsupported, config.where(), ": architecture \"", architecture,
       "\" is not supported for model_type \"", config.get_string("model_type", "?"),
       "\" (supported: ", supported, ")");
}

}  // namespace mixpeft::models
