// GPT-2 (GPT2LMHeadModel, GPT2ForSequenceClassification), as transformers
// 4.40 computes it. Conv1D weights stay [in, out] as stored; lm_head is tied
// to transformer.wte and has no parameter of its own.
#include <cmath>

#include <torch/torch.h>

#include "mixpeft/error.h"
#include "mixpeft/nn.h"
#include "models/config.h"
#include "models/decoder.h"

namespace mixpeft::models {
namespace {

struct GPT2Config {
  int64_t vocab_size, n_positions, n_embd, n_layer, n_head, n_inner;
  double eps;
  std::string activation;
  bool scale_attn_weights, scale_by_inverse_layer_idx;
  int64_t num_labels, pad_token_id;

  explicit GPT2Config(const ConfigView& c)
      : vocab_size(c.get_int("vocab_size")),
        n_positions(c.get_int("n_positions")),
        n_embd(c.get_int("n_embd")),
        n_layer(c.get_int("n_layer")),
        n_head(c.get_int("n_head")),
        n_inner(c.get_int("n_inner", 4 * c.get_int("n_embd"))),
        eps(c.get_double("layer_norm_epsilon", 1e-5)),
        activation(c.get_string("activation_function", "gelu_new")),
        scale_attn_weights(c.get_bool("scale_attn_weights", true)),
        scale_by_inverse_layer_idx(c.get_bool("scale_attn_by_inverse_layer_idx", false)),
        num_labels(c.get_int("num_labels", 2)),
        pad_token_id(c.get_int("pad_token_id", -1)) {
    if (n_embd % n_head != 0) c.bad("n_embd", "must be divisible by n_head");
    nn::check_activation(activation, c.where());
  }
};

class GPT2AttentionImpl : public torch::nn::Module {
 public:
  GPT2AttentionImpl(const GPT2Config& c, int64_t layer)
      : heads_(c.n_head), head_dim_(c.n_embd / c.n_head), layer_(layer) {
    c_attn = register_module("c_attn", nn::Linear(c.n_embd, 3 * c.n_embd, true, true));
    c_proj = register_module("c_proj", nn::Linear(c.n_embd, c.n_embd, true, true));
    scale_ = c.scale_attn_weights ? 1.0 / std::sqrt(static_cast<double>(head_dim_)) : 1.0;
    if (c.scale_by_inverse_layer_idx) scale_ /= static_cast<double>(layer + 1);
  }
  at::Tensor forward(const at::Tensor& x, const DecoderStep& step) {
    const int64_t B = x.size(0), T = x.size(1);
    auto qkv = c_attn->forward(x).split(heads_ * head_dim_, -1);
    auto heads = [&](const at::Tensor& t) { return t.view({B, T, heads_, head_dim_}).transpose(1, 2); };
    auto [k, v] = step.extend(layer_, heads(qkv[1]), heads(qkv[2]));
    auto out = nn::attention(heads(qkv[0]), k, v, step.bias, scale_);
    return c_proj->forward(out.transpose(1, 2).reshape({B, T, heads_ * head_dim_}));
  }
  nn::Linear c_attn{nullptr}, c_proj{nullptr};

 private:
  int64_t heads_, head_dim_, layer_;
  double scale_;
};
TORCH_MODULE(GPT2Attention);

class GPT2MLPImpl : public torch::nn::Module {
 public:
  explicit GPT2MLPImpl(const GPT2Config& c) : activation_(c.activation) {
    c_fc = register_module("c_fc", nn::Linear(c.n_embd, c.n_inner, true, true));
    c_proj = register_module("c_proj", nn::Linear(c.n_inner, c.n_embd, true, true));
  }
  at::Tensor forward(const at::Tensor& x) {
    return c_proj->forward(nn::activation(activation_, c_fc->forward(x)));
  }
  nn::Linear c_fc{nullptr}, c_proj{nullptr};

 private:
  std::string activation_;
};
TORCH_MODULE(GPT2MLP);

class GPT2BlockImpl : public torch::nn::Module {
 public:
  GPT2BlockImpl(const GPT2Config& c, int64_t layer) {
    auto ln = [&] { return torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.n_embd}).eps(c.eps)); };
    ln_1 = register_module("ln_1", ln());
    attn = register_module("attn", GPT2Attention(c, layer));
    ln_2 = register_module("ln_2", ln());
    mlp = register_module("mlp", GPT2MLP(c));
  }
  at::Tensor forward(at::Tensor x, const DecoderStep& step) {
    x = x + slots.apply_after_attention(attn->forward(ln_1->forward(x), step));
    return x + slots.apply_after_ffn(mlp->forward(ln_2->forward(x)));
  }
  torch::nn::LayerNorm ln_1{nullptr}, ln_2{nullptr};
  GPT2Attention attn{nullptr};
  GPT2MLP mlp{nullptr};
  nn::AdapterSlots slots;
};
TORCH_MODULE(GPT2Block);

class GPT2ModelImpl : public torch::nn::Module {
 public:
  explicit GPT2ModelImpl(const GPT2Config& c) : n_positions_(c.n_positions) {
    wte = register_module("wte", torch::nn::Embedding(c.vocab_size, c.n_embd));
    wpe = register_module("wpe", torch::nn::Embedding(c.n_positions, c.n_embd));
    h = register_module("h", torch::nn::ModuleList());
    for (int64_t i = 0; i < c.n_layer; ++i) {
      blocks.push_back(GPT2Block(c, i));
      h->push_back(blocks.back());
    }
    ln_f = register_module("ln_f", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.n_embd}).eps(c.eps)));
  }
  at::Tensor forward(const ModelInputs& in, ModelOutputs& out) {
    auto step = prepare_decoder_step(in, static_cast<int64_t>(blocks.size()), wte->weight.scalar_type(),
                                     n_positions_);
    auto x = wte->forward(in.input_ids) + wpe->forward(step.position_ids);
    if (in.output_hidden_states) out.hidden_states.push_back(x);
    for (size_t i = 0; i < blocks.size(); ++i) {
      x = blocks[i]->forward(x, step);
      if (in.output_hidden_states && i + 1 < blocks.size()) out.hidden_states.push_back(x);
    }
    x = ln_f->forward(x);
    if (in.output_hidden_states) out.hidden_states.push_back(x);
    out.last_hidden_state = x;
    return x;
  }
  torch::nn::Embedding wte{nullptr}, wpe{nullptr};
  torch::nn::ModuleList h{nullptr};
  torch::nn::LayerNorm ln_f{nullptr};
  std::vector<GPT2Block> blocks;

 private:
  int64_t n_positions_;
};
TORCH_MODULE(GPT2Model);

class GPT2 : public Model {
 public:
  GPT2(const GPT2Config& c, Task task, const std::string& architecture) : pad_token_id_(c.pad_token_id) {
    model_type_ = "gpt2";
    architecture_ = architecture;
    task_ = task;
    causal_ = true;
    hidden_size_ = c.n_embd;
    num_layers_ = c.n_layer;
    vocab_size_ = c.vocab_size;
    transformer = register_module("transformer", GPT2Model(c));
    if (task == Task::kSequenceClassification)
      score = register_module("score", nn::Linear(c.n_embd, c.num_labels, false));
  }
  ModelOutputs forward(const ModelInputs& in) override {
    ModelOutputs out;
    auto x = transformer->forward(in, out);
    if (task_ == Task::kCausalLM) {
      out.logits = nn::tied_lm_head(lm_head_rows(x, in), transformer->wte->weight);
    } else if (task_ == Task::kSequenceClassification) {
      out.logits = score->forward(pool_last_token(x, in.attention_mask));
    }
    return out;
  }
  std::vector<BlockRef> blocks() override {
    std::vector<BlockRef> refs;
    for (size_t i = 0; i < transformer->blocks.size(); ++i) {
      auto& b = transformer->blocks[i];
      refs.push_back({"transformer.h." + std::to_string(i), b.get(), &b->slots, hidden_size_});
    }
    return refs;
  }
  std::vector<std::string> default_lora_targets() const override { return {"c_attn"}; }
  std::string base_prefix() const override { return "transformer"; }
  bool ignorable_key(const std::string& key) const override {
    // Causal-mask buffers of older checkpoints, and a stored copy of the tied head.
    auto ends_with = [&](const char* s) {
      std::string t(s);
      return key.size() >= t.size() && key.compare(key.size() - t.size(), t.size(), t) == 0;
    };
    return ends_with(".attn.bias") || ends_with(".attn.masked_bias") || key == "lm_head.weight";
  }

  GPT2Model transformer{nullptr};
  nn::Linear score{nullptr};

 private:
  int64_t pad_token_id_;
};

}  // namespace

std::shared_ptr<Model> make_gpt2(const ConfigView& config, const std::string& architecture) {
  GPT2Config c(config);
  if (architecture == "GPT2LMHeadModel") return std::make_shared<GPT2>(c, Task::kCausalLM, architecture);
  if (architecture == "GPT2Model") return std::make_shared<GPT2>(c, Task::kBase, architecture);
  if (architecture == "GPT2ForSequenceClassification")
    return std::make_shared<GPT2>(c, Task::kSequenceClassification, architecture);
  unsupported_architecture(config, architecture, "GPT2LMHeadModel, GPT2Model, GPT2ForSequenceClassification");
}

}  // namespace mixpeft::models
