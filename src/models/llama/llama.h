// LLaMA-family decoder shared by llama and qwen2 (which is LLaMA plus q/k/v
// biases).
#pragma once

#include <memory>
#include <string>

#include "mixpeft/model.h"
#include "models/config.h"

namespace mixpeft::models {

struct LlamaFamily {
  std::string model_type;     // "llama", "qwen2"
  std::string class_prefix;   // "Llama", "Qwen2"
  bool qkv_bias_default;      // qwen2: true
  bool o_bias_follows_qkv;    // llama's attention_bias adds an o_proj bias too
};

std::shared_ptr<Model> make_llama_family(const ConfigView& config, const std::string& architecture,
                                         const LlamaFamily& family);

}  // namespace mixpeft::models
