// Adding a method: a folder under src/peft/, a factory declared in
// registry.h, one line here, one row in tests/conformance, one doc section.
#include "peft/registry.h"

namespace mixpeft::peft {

const std::vector<MethodEntry>& method_registry() {
  static const std::vector<MethodEntry> kRegistry = {
      {"LORA", create_lora},
  };
  return kRegistry;
}

}  // namespace mixpeft::peft
