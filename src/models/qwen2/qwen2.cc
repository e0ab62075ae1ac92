// Qwen2 (Qwen2ForCausalLM, Qwen2Model, Qwen2ForSequenceClassification): the
// LLaMA decoder with biases on q_proj, k_proj and v_proj (none on o_proj).
#include "models/llama/llama.h"

namespace mixpeft::models {

std::shared_ptr<Model> make_qwen2(const ConfigView& config, const std::string& architecture) {
  return make_llama_family(config, architecture,
                           {"qwen2", "Qwen2", /*qkv_bias_default=*/true, /*o_bias_follows_qkv=*/false});
}

}  // namespace mixpeft::models
