// LLaMA (LlamaForCausalLM, LlamaModel, LlamaForSequenceClassification) as
// transformers 4.40 computes it: RMSNorm in float32, rotary embeddings with
// rope_theta (optional linear / llama3 scaling), grouped-query attention,
// SwiGLU feed-forward, tied or untied lm_head.
#include "models/llama/llama.h"

#include <cmath>

#include <torch/torch.h>

#include "mixpeft/error.h"
#include "mixpeft/nn.h"
#include "models/decoder.h"

namespace mixpeft::models {
namespace {

struct LlamaConfig {
  int64_t vocab_size, hidden, layers, heads, kv_heads, head_dim, intermediate, max_positions;
  double eps, rope_theta;
  std::string activation;
  bool qkv_bias, o_bias, mlp_bias, tie_embeddings;
  int64_t num_labels;
  at::Tensor inv_freq;  // [head_dim / 2], float32
  double position_scale = 1.0;

  LlamaConfig(const ConfigView& c, const LlamaFamily& f)
      : vocab_size(c.get_int("vocab_size")),
        hidden(c.get_int("hidden_size")),
        layers(c.get_int("num_hidden_layers")),
        heads(c.get_int("num_attention_heads")),
        kv_heads(c.get_int("num_key_value_heads", c.get_int("num_attention_heads"))),
        head_dim(c.get_int("head_dim", c.get_int("hidden_size") / c.get_int("num_attention_heads"))),
        intermediate(c.get_int("intermediate_size")),
        max_positions(c.get_int("max_position_embeddings", 0)),
        eps(c.get_double("rms_norm_eps", 1e-6)),
        rope_theta(c.get_double("rope_theta", 10000.0)),
        activation(c.get_string("hidden_act", "silu")),
        qkv_bias(c.get_bool("attention_bias", f.qkv_bias_default)),
        o_bias(f.o_bias_follows_qkv && c.get_bool("attention_bias", false)),
        mlp_bias(c.get_bool("mlp_bias", false)),
        tie_embeddings(c.get_bool("tie_word_embeddings", false)),
        num_labels(c.get_int("num_labels", 2)) {
    if (heads % kv_heads != 0) c.bad("num_key_value_heads", "must divide num_attention_heads");
    if (head_dim % 2 != 0) c.bad("head_dim", "must be even for rotary embeddings");
    nn::check_activation(activation, c.where());
    if (c.get_bool("use_sliding_window", false))
      fail(ErrorKind::kUnsupported, c.where(), ": use_sliding_window = true is not supported");
    inv_freq = 1.0 / torch::pow(rope_theta, torch::arange(0, head_dim, 2, torch::kLong).to(torch::kFloat) /
                                                static_cast<double>(head_dim));
    apply_rope_scaling(c);
  }

  void apply_rope_scaling(const ConfigView& c) {
    if (!c.has("rope_scaling")) return;
    const auto& s = c.json().at("rope_scaling");
    if (!s.is_object()) c.bad("rope_scaling", "must be an object or null");
    std::string type = s.value("rope_type", s.value("type", std::string("default")));
    ConfigView sv(s, c.where() + ": rope_scaling");
    if (type == "default") return;
    if (type == "linear") {
      position_scale = 1.0 / sv.get_double("factor");
      return;
    }
    if (type == "llama3") {
      const double factor = sv.get_double("factor"), low = sv.get_double("low_freq_factor"),
                   high = sv.get_double("high_freq_factor"),
                   old_len = sv.get_double("original_max_position_embeddings");
      const double low_wavelen = old_len / low, high_wavelen = old_len / high;
      auto f = inv_freq.accessor<float, 1>();
      for (int64_t i = 0; i < inv_freq.size(0); ++i) {
        const double freq = f[i], wavelen = 2 * M_PI / freq;
        if (wavelen < high_wavelen) continue;
        if (wavelen > low_wavelen) {
          f[i] = static_cast<float>(freq / factor);
        } else {
          const double smooth = (old_len / wavelen - low) / (high - low);
          f[i] = static_cast<float>((1 - smooth) * freq / factor + smooth * freq);
        }
      }
      return;
    }
    fail(ErrorKind::kUnsupported, c.where(), ": rope_scaling type \"", type,
         "\" is not supported (supported: linear, llama3)");
  }
};

// cos/sin [B, 1, T, head_dim] for the given positions, in `dtype`.
std::pair<at::Tensor, at::Tensor> rotary(const LlamaConfig& c, const at::Tensor& position_ids,
                                         c10::ScalarType dtype) {
  auto inv = c.inv_freq.to(position_ids.device());
  auto pos = position_ids.to(torch::kFloat) * c.position_scale;    // [B, T]
  auto freqs = pos.unsqueeze(-1) * inv.view({1, 1, -1});          // [B, T, D/2]
  auto emb = torch::cat({freqs, freqs}, -1).unsqueeze(1);         // [B, 1, T, D]
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

at::Tensor rotate_half(const at::Tensor& x) {
  auto halves = x.chunk(2, -1);
  return torch::cat({-halves[1], halves[0]}, -1);
}

class LlamaAttentionImpl : public torch::nn::Module {
 public:
  LlamaAttentionImpl(const LlamaConfig& c, int64_t layer)
      : heads_(c.heads), kv_heads_(c.kv_heads), head_dim_(c.head_dim), layer_(layer) {
    q_proj = register_module("q_proj", nn::Linear(c.hidden, c.heads * c.head_dim, c.qkv_bias));
    k_proj = register_module("k_proj", nn::Linear(c.hidden, c.kv_heads * c.head_dim, c.qkv_bias));
    v_proj = register_module("v_proj", nn::Linear(c.hidden, c.kv_heads * c.head_dim, c.qkv_bias));
    o_proj = register_module("o_proj", nn::Linear(c.heads * c.head_dim, c.hidden, c.o_bias));
  }
  at::Tensor forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                     const DecoderStep& step) {
    const int64_t B = x.size(0), T = x.size(1);
    auto q = q_proj->forward(x).view({B, T, heads_, head_dim_}).transpose(1, 2);
    auto k = k_proj->forward(x).view({B, T, kv_heads_, head_dim_}).transpose(1, 2);
    auto v = v_proj->forward(x).view({B, T, kv_heads_, head_dim_}).transpose(1, 2);
    q = q * cos + rotate_half(q) * sin;
    k = k * cos + rotate_half(k) * sin;
    auto [keys, values] = step.extend(layer_, k, v);
    auto out = nn::attention(q, keys, values, step.bias, 1.0 / std::sqrt(static_cast<double>(head_dim_)));
    return o_proj->forward(out.transpose(1, 2).reshape({B, T, heads_ * head_dim_}));
  }
  nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};

 private:
  int64_t heads_, kv_heads_, head_dim_, layer_;
};
TORCH_MODULE(LlamaAttention);

class LlamaMLPImpl : public torch::nn::Module {
 public:
  explicit LlamaMLPImpl(const LlamaConfig& c) : activation_(c.activation) {
    gate_proj = register_module("gate_proj", nn::Linear(c.hidden, c.intermediate, c.mlp_bias));
    up_proj = register_module("up_proj", nn::Linear(c.hidden, c.intermediate, c.mlp_bias));
    down_proj = register_module("down_proj", nn::Linear(c.intermediate, c.hidden, c.mlp_bias));
  }
  at::Tensor forward(const at::Tensor& x) {
    return down_proj->forward(nn::activation(activation_, gate_proj->forward(x)) * up_proj->forward(x));
  }
  nn::Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};

 private:
  std::string activation_;
};
TORCH_MODULE(LlamaMLP);

class LlamaLayerImpl : public torch::nn::Module {
 public:
  LlamaLayerImpl(const LlamaConfig& c, int64_t layer) {
    self_attn = register_module("self_attn", LlamaAttention(c, layer));
    mlp = register_module("mlp", LlamaMLP(c));
    input_layernorm = register_module("input_layernorm", nn::RMSNorm(c.hidden, c.eps));
    post_attention_layernorm = register_module("post_attention_layernorm", nn::RMSNorm(c.hidden, c.eps));
  }
  at::Tensor forward(at::Tensor x, const at::Tensor& cos, const at::Tensor& sin, const DecoderStep& step) {
    x = x + slots.apply_after_attention(self_attn->forward(input_layernorm->forward(x), cos, sin, step));
    return x + slots.apply_after_ffn(mlp->forward(post_attention_layernorm->forward(x)));
  }
  LlamaAttention self_attn{nullptr};
  LlamaMLP mlp{nullptr};
  nn::RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
  nn::AdapterSlots slots;
};
TORCH_MODULE(LlamaLayer);

class LlamaModelImpl : public torch::nn::Module {
 public:
  explicit LlamaModelImpl(const LlamaConfig& c) : config_(c) {
    embed_tokens = register_module("embed_tokens", torch::nn::Embedding(c.vocab_size, c.hidden));
    layers = register_module("layers", torch::nn::ModuleList());
    for (int64_t i = 0; i < c.layers; ++i) {
      blocks.push_back(LlamaLayer(c, i));
      layers->push_back(blocks.back());
    }
    norm = register_module("norm", nn::RMSNorm(c.hidden, c.eps));
  }
  at::Tensor forward(const ModelInputs& in, ModelOutputs& out) {
    auto dtype = embed_tokens->weight.scalar_type();
    // HF does not bound positions by max_position_embeddings for rotary models.
    auto step = prepare_decoder_step(in, static_cast<int64_t>(blocks.size()), dtype, /*max_positions=*/0);
    auto x = embed_tokens->forward(in.input_ids);
    auto [cos, sin] = rotary(config_, step.position_ids, dtype);
    if (in.output_hidden_states) out.hidden_states.push_back(x);
    for (size_t i = 0; i < blocks.size(); ++i) {
      x = blocks[i]->forward(x, cos, sin, step);
      if (in.output_hidden_states && i + 1 < blocks.size()) out.hidden_states.push_back(x);
    }
    x = norm->forward(x);
    if (in.output_hidden_states) out.hidden_states.push_back(x);
    out.last_hidden_state = x;
    return x;
  }
  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  nn::RMSNorm norm{nullptr};
  std::vector<LlamaLayer> blocks;

 private:
  LlamaConfig config_;
};
TORCH_MODULE(LlamaModel);

class Llama : public Model {
 public:
  Llama(const LlamaConfig& c, Task task, const std::string& model_type, const std::string& architecture)
      : tied_(c.tie_embeddings) {
    model_type_ = model_type;
    architecture_ = architecture;
    task_ = task;
    causal_ = true;
    hidden_size_ = c.hidden;
    num_layers_ = c.layers;
    vocab_size_ = c.vocab_size;
    model = register_module("model", LlamaModel(c));
    if (task == Task::kCausalLM && !tied_)
      lm_head = register_module("lm_head", nn::Linear(c.hidden, c.vocab_size, false));
    if (task == Task::kSequenceClassification)
      score = register_module("score", nn::Linear(c.hidden, c.num_labels, false));
  }
  ModelOutputs forward(const ModelInputs& in) override {
    ModelOutputs out;
    auto x = model->forward(in, out);
    if (task_ == Task::kCausalLM) {
      const at::Tensor h = lm_head_rows(x, in);
      out.logits = tied_ ? nn::tied_lm_head(h, model->embed_tokens->weight) : lm_head->forward(h);
    } else if (task_ == Task::kSequenceClassification) {
      out.logits = score->forward(pool_last_token(x, in.attention_mask));
    }
    return out;
  }
  std::vector<BlockRef> blocks() override {
    std::vector<BlockRef> refs;
    for (size_t i = 0; i < model->blocks.size(); ++i) {
      auto& b = model->blocks[i];
      refs.push_back({"model.layers." + std::to_string(i), b.get(), &b->slots, hidden_size_});
    }
    return refs;
  }
  std::vector<std::string> default_lora_targets() const override { return {"q_proj", "v_proj"}; }
  std::string base_prefix() const override { return "model"; }
  bool ignorable_key(const std::string& key) const override {
    auto ends_with = [&](const std::string& t) {
      return key.size() >= t.size() && key.compare(key.size() - t.size(), t.size(), t) == 0;
    };
    return ends_with(".rotary_emb.inv_freq") || (tied_ && key == "lm_head.weight");
  }

  LlamaModel model{nullptr};
  nn::Linear lm_head{nullptr}, score{nullptr};

 private:
  bool tied_;
};

}  // namespace

std::shared_ptr<Model> make_llama_family(const ConfigView& config, const std::string& architecture,
                                         const LlamaFamily& f) {
  LlamaConfig c(config, f);
  if (architecture == f.class_prefix + "ForCausalLM")
    return std::make_shared<Llama>(c, Task::kCausalLM, f.model_type, architecture);
  if (architecture == f.class_prefix + "Model")
    return std::make_shared<Llama>(c, Task::kBase, f.model_type, architecture);
  if (architecture == f.class_prefix + "ForSequenceClassification")
    return std::make_shared<Llama>(c, Task::kSequenceClassification, f.model_type, architecture);
  unsupported_architecture(config, architecture,
                           f.class_prefix + "ForCausalLM, " + f.class_prefix + "Model, " + f.class_prefix +
                               "ForSequenceClassification");
}

std::shared_ptr<Model> make_llama(const ConfigView& config, const std::string& architecture) {
  return make_llama_family(config, architecture, {"llama", "Llama", false, true});
}

}  // namespace mixpeft::models
