// Transformer models loaded from Hugging Face checkpoints.
//
//   auto model = mixpeft::load_model("tests/data/fixtures/llama");
//   mixpeft::ModelInputs in;  in.input_ids = ids;  in.attention_mask = mask;
//   mixpeft::ModelOutputs out = model->forward(in);   // out.logits [B, T, V]
//
// Parameters are registered under Hugging Face's own names, so
// model->named_parameters() equals the checkpoint's keys
// ("model.layers.0.self_attn.q_proj.weight", ...).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/nn/module.h>

namespace mixpeft {

namespace nn {
class AdapterSlots;
}

// Keys and values of every layer for incremental decoding (causal LMs).
struct KVCache {
  std::vector<at::Tensor> keys;    // per layer [B, kv_heads, S, head_dim]
  std::vector<at::Tensor> values;  // same
  int64_t length() const { return keys.empty() || !keys[0].defined() ? 0 : keys[0].size(2); }
  void clear() { keys.clear(); values.clear(); }
  // Keeps only the given batch rows (after some sequences finished).
  void select_rows(const at::Tensor& rows);
};

struct ModelInputs {
  at::Tensor input_ids;       // [B, T] int64
  at::Tensor attention_mask;  // [B, S] 1 = real token, 0 = padding; S = cached + T.
                              // Undefined: every position is real.
  at::Tensor token_type_ids;  // [B, T] (BERT-style encoders); undefined = zeros
  at::Tensor position_ids;    // [B, T]; undefined = derived from the mask
  KVCache* cache = nullptr;   // causal LMs: read and extended when set
  bool output_hidden_states = false;
  // Causal LMs: only these positions' logits, as flat indices b * T + t
  // into [B, T] (int64 [R]); logits are then [R, V]. Undefined: every
  // position, [B, T, V]. The LM head costs 2 x hidden x vocab FLOPs per
  // position, and generation wants only each row's last, a loss only the
  // positions that have a target.
  at::Tensor logits_rows;
};

struct ModelOutputs {
  at::Tensor logits;             // [B, T, V] (LM; [R, V] with logits_rows) or [B, num_labels] (classifier)
  at::Tensor last_hidden_state;  // [B, T, H] after the final norm where there is one
  at::Tensor pooler_output;      // [B, H] (BERT with pooler)
  // hidden_states[0] = embedding output, [i] = output of layer i-1; for
  // pre-norm models the last entry is after the final norm (as in HF).
  std::vector<at::Tensor> hidden_states;
};

enum class Task { kBase, kCausalLM, kSequenceClassification };

// A transformer block, as PEFT methods see it: its name in the model and the
// slots where bottleneck adapters attach.
struct BlockRef {
  std::string name;  // e.g. "model.layers.3"
  torch::nn::Module* module = nullptr;
  nn::AdapterSlots* slots = nullptr;
  int64_t hidden_size = 0;
};

class Model : public torch::nn::Module {
 public:
  virtual ModelOutputs forward(const ModelInputs& inputs) = 0;

  const std::string& model_type() const { return model_type_; }
  const std::string& architecture() const { return architecture_; }
  Task task() const { return task_; }
  bool is_causal() const { return task_ == Task::kCausalLM || causal_; }
  int64_t hidden_size() const { return hidden_size_; }
  int64_t num_layers() const { return num_layers_; }
  int64_t vocab_size() const { return vocab_size_; }
  // The config.json this model was built from (updated on save).
  const nlohmann::json& config() const { return config_; }
  nlohmann::json& mutable_config() { return config_; }

  // Transformer blocks in order, for adapters that attach by position.
  virtual std::vector<BlockRef> blocks() = 0;
  // HF PEFT's default target_modules for this architecture.
  virtual std::vector<std::string> default_lora_targets() const = 0;
  // Name prefix of the base model inside task models ("model", "bert", ...).
  virtual std::string base_prefix() const = 0;
  // Checkpoint keys that are not parameters and are skipped on load
  // (e.g. GPT-2's old "attn.bias" mask buffers, a tied lm_head copy).
  virtual bool ignorable_key(const std::string& key) const { return false; }

 protected:
  std::string model_type_, architecture_;
  Task task_ = Task::kBase;
  bool causal_ = false;
  int64_t hidden_size_ = 0, num_layers_ = 0, vocab_size_ = 0;
  nlohmann::json config_;
};

struct LoadOptions {
  // Overrides config.json's "architectures"[0], e.g. to put a fresh
  // classification head on a base checkpoint.
  std::string architecture;
  // Sets num_labels (and id2label) for a classification architecture; 0 = keep.
  int64_t num_labels = 0;
  // Parameters that may be absent from the checkpoint (regexes, full match);
  // they keep their fresh initialisation. Every other missing tensor is an error.
  std::vector<std::string> allow_missing;
  // Checkpoint keys that may be present without a parameter to go to
  // (regexes, full match), e.g. "lm_head\\..*" when a causal LM checkpoint
  // becomes a classifier. Every other unused tensor is an error.
  std::vector<std::string> ignore_unexpected;
  // Compute dtype: kFloat or kBFloat16. Stored F16/BF16/F32 weights convert.
  c10::ScalarType dtype = c10::kFloat;
  c10::Device device = c10::Device(c10::kCPU);
  uint64_t init_seed = 0;  // for parameters the checkpoint does not have
};

// Loads config.json + model.safetensors (or a sharded index) from `dir`.
// Strict: a missing, unexpected or wrongly shaped tensor is Error(kCorrupt)
// naming it and both shapes; an unknown model_type names the supported ones.
std::shared_ptr<Model> load_model(const std::string& dir, const LoadOptions& options = {});

// Builds a model from a config with fresh weights (N(0, initializer_range)
// for matrices and embeddings, zero biases, unit norms), seeded.
std::shared_ptr<Model> create_model(const nlohmann::json& config, const LoadOptions& options = {});

// Writes config.json and model.safetensors (HF layout and names; the dtype of
// the parameters as they are) atomically into `dir`, created if needed.
void save_model(Model& model, const std::string& dir);

// model_type values load_model accepts.
std::vector<std::string> supported_model_types();

}  // namespace mixpeft
