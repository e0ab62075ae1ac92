// Adding a method: a folder under src/peft/, a factory declared in
// registry.h, one line here, one row in tests/conformance, one doc section.
#include "peft/registry.h"

namespace mixpeft::peft {

const std::vector<MethodEntry>& method_registry() {
  static const std::vector<MethodEntry> kRegistry = {
      {"LORA", create_lora},
      {"MOSLORA", create_moslora},
      {"XPEFT", create_xpeft},
      {"BOTTLENECK", create_bottleneck},
      {"ADAMIX", create_adamix},
  };
  return kRegistry;
}

}  // namespace mixpeft::peft
