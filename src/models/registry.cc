// The architectures mixpeft loads, keyed by config.json's model_type.
// Adding one: a folder under src/models/, a factory declared in config.h, one line here.
#include "models/config.h"

namespace mixpeft::models {

const std::vector<ModelTypeEntry>& model_registry() {
  static const std::vector<ModelTypeEntry> kRegistry = {
      {"gpt2", make_gpt2},
      {"bert", make_bert},
      {"roberta", make_roberta},
      {"llama", make_llama},
      {"qwen2", make_qwen2},
  };
  return kRegistry;
}

}  // namespace mixpeft::models
