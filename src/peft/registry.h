// The explicit list of PEFT methods (registry.cc): one line per method.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mixpeft/peft.h"

namespace mixpeft::peft {

using MethodFactory = std::unique_ptr<Method> (*)(const nlohmann::json& config, const std::string& where);

struct MethodEntry {
  const char* peft_type;
  MethodFactory create;
};

const std::vector<MethodEntry>& method_registry();

// One factory per method folder.
std::unique_ptr<Method> create_lora(const nlohmann::json& config, const std::string& where);
std::unique_ptr<Method> create_moslora(const nlohmann::json& config, const std::string& where);
std::unique_ptr<Method> create_xpeft(const nlohmann::json& config, const std::string& where);
std::unique_ptr<Method> create_bottleneck(const nlohmann::json& config, const std::string& where);
std::unique_ptr<Method> create_adamix(const nlohmann::json& config, const std::string& where);

}  // namespace mixpeft::peft
