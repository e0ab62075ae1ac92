// Reading a method's config with errors that name the field, and refusing
// keys the method does not know (listing the valid ones).
#pragma once

#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace mixpeft::peft {

class ConfigReader {
 public:
  // `where` starts every message (e.g. "out/adapter_config.json").
  // `adapter_keys`: accept the bookkeeping keys every adapter_config.json
  // holds (peft_type, task_type, ...); false for other configs.
  ConfigReader(const nlohmann::json& config, std::string where, bool adapter_keys = true);
  int64_t get_int(const std::string& key, int64_t fallback);
  double get_double(const std::string& key, double fallback);
  bool get_bool(const std::string& key, bool fallback);
  // `allowed` non-empty: the value must be one of them.
  std::string get_string(const std::string& key, const std::string& fallback,
                         const std::vector<std::string>& allowed = {});
  std::vector<std::string> get_strings(const std::string& key);  // absent/null = empty
  // Marks keys as known without reading them (e.g. HF PEFT bookkeeping).
  void accept(const std::vector<std::string>& keys);
  // A key HF PEFT writes whose only supported value is its default
  // (null, false, {}, [] or `expected`): anything else is kUnsupported.
  void require_default(const std::string& key, const nlohmann::json& expected = nullptr);
  // Throws kInvalidArgument for keys nobody read, listing the valid ones.
  void finish();
  const std::string& where() const { return where_; }
  [[noreturn]] void bad(const std::string& key, const std::string& problem) const;

 private:
  const nlohmann::json* find(const std::string& key);
  const nlohmann::json& config_;
  std::string where_;
  std::set<std::string> known_;
};

}  // namespace mixpeft::peft
