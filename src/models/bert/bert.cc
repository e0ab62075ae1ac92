// BERT (BertModel with pooler, BertForSequenceClassification) and the
// encoder RoBERTa reuses, as transformers 4.40 computes them (eager attention).
#include "models/bert/bert.h"

#include <cmath>

#include <torch/torch.h>

#include "mixpeft/error.h"
#include "mixpeft/nn.h"

namespace mixpeft::models {
namespace {

struct EncoderConfig {
  int64_t vocab_size, hidden, layers, heads, intermediate, max_positions, type_vocab_size, pad_token_id;
  double eps;
  std::string activation;
  int64_t num_labels;

  explicit EncoderConfig(const ConfigView& c)
      : vocab_size(c.get_int("vocab_size")),
        hidden(c.get_int("hidden_size")),
        layers(c.get_int("num_hidden_layers")),
        heads(c.get_int("num_attention_heads")),
        intermediate(c.get_int("intermediate_size")),
        max_positions(c.get_int("max_position_embeddings")),
        type_vocab_size(c.get_int("type_vocab_size", 2)),
        pad_token_id(c.get_int("pad_token_id", 0)),
        eps(c.get_double("layer_norm_eps", 1e-12)),
        activation(c.get_string("hidden_act", "gelu")),
        num_labels(c.get_int("num_labels", 2)) {
    if (hidden % heads != 0) c.bad("hidden_size", "must be divisible by num_attention_heads");
    nn::check_activation(activation, c.where());
    std::string pos = c.get_string("position_embedding_type", "absolute");
    if (pos != "absolute")
      c.bad("position_embedding_type", "\"" + pos + "\" is not supported (only \"absolute\")");
  }
};

torch::nn::LayerNorm layer_norm(const EncoderConfig& c) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.hidden}).eps(c.eps));
}

class EmbeddingsImpl : public torch::nn::Module {
 public:
  EmbeddingsImpl(const EncoderConfig& c, bool roberta) : roberta_(roberta), pad_(c.pad_token_id) {
    word_embeddings = register_module("word_embeddings", torch::nn::Embedding(c.vocab_size, c.hidden));
    position_embeddings = register_module("position_embeddings", torch::nn::Embedding(c.max_positions, c.hidden));
    token_type_embeddings = register_module("token_type_embeddings", torch::nn::Embedding(c.type_vocab_size, c.hidden));
    LayerNorm = register_module("LayerNorm", layer_norm(c));
    max_positions_ = c.max_positions;
  }
  at::Tensor forward(const ModelInputs& in) {
    const auto& ids = in.input_ids;
    const int64_t T = ids.size(1);
    at::Tensor pos = in.position_ids;
    if (!pos.defined()) {
      if (roberta_) {
        // create_position_ids_from_input_ids: padding_idx + running count of real tokens.
        auto real = ids.ne(pad_).to(torch::kLong);
        pos = real.cumsum(1) * real + pad_;
      } else {
        pos = torch::arange(T, ids.options().dtype(torch::kLong)).unsqueeze(0).expand_as(ids);
      }
    }
    MIXPEFT_CHECK(pos.max().item<int64_t>() < max_positions_, ErrorKind::kInvalidArgument, "sequence of ",
                  T, " tokens exceeds max_position_embeddings ", max_positions_);
    auto types = in.token_type_ids.defined() ? in.token_type_ids : torch::zeros_like(ids);
    auto x = word_embeddings->forward(ids) + token_type_embeddings->forward(types) +
             position_embeddings->forward(pos);
    return LayerNorm->forward(x);
  }
  torch::nn::Embedding word_embeddings{nullptr}, position_embeddings{nullptr}, token_type_embeddings{nullptr};
  torch::nn::LayerNorm LayerNorm{nullptr};

 private:
  bool roberta_;
  int64_t pad_, max_positions_;
};
TORCH_MODULE(Embeddings);

class SelfAttentionImpl : public torch::nn::Module {
 public:
  explicit SelfAttentionImpl(const EncoderConfig& c) : heads_(c.heads), head_dim_(c.hidden / c.heads) {
    query = register_module("query", nn::Linear(c.hidden, c.hidden, true));
    key = register_module("key", nn::Linear(c.hidden, c.hidden, true));
    value = register_module("value", nn::Linear(c.hidden, c.hidden, true));
  }
  at::Tensor forward(const at::Tensor& x, const at::Tensor& bias) {
    const int64_t B = x.size(0), T = x.size(1);
    auto heads = [&](const at::Tensor& t) { return t.view({B, T, heads_, head_dim_}).transpose(1, 2); };
    auto out = nn::attention(heads(query->forward(x)), heads(key->forward(x)), heads(value->forward(x)), bias,
                             1.0 / std::sqrt(static_cast<double>(head_dim_)));
    return out.transpose(1, 2).reshape({B, T, heads_ * head_dim_});
  }
  nn::Linear query{nullptr}, key{nullptr}, value{nullptr};

 private:
  int64_t heads_, head_dim_;
};
TORCH_MODULE(SelfAttention);

// dense -> (adapter) -> LayerNorm(h + residual): BertSelfOutput and BertOutput.
class OutputImpl : public torch::nn::Module {
 public:
  OutputImpl(const EncoderConfig& c, int64_t in_features) {
    dense = register_module("dense", nn::Linear(in_features, c.hidden, true));
    LayerNorm = register_module("LayerNorm", layer_norm(c));
  }
  at::Tensor forward(const at::Tensor& h, const at::Tensor& residual,
                     const std::shared_ptr<nn::SiteAdapter>& adapter) {
    auto y = dense->forward(h);
    if (adapter) y = adapter->forward(y);
    return LayerNorm->forward(y + residual);
  }
  nn::Linear dense{nullptr};
  torch::nn::LayerNorm LayerNorm{nullptr};
};
TORCH_MODULE(Output);

class AttentionImpl : public torch::nn::Module {
 public:
  explicit AttentionImpl(const EncoderConfig& c) {
    self = register_module("self", SelfAttention(c));
    output = register_module("output", Output(c, c.hidden));
  }
  SelfAttention self{nullptr};
  Output output{nullptr};
};
TORCH_MODULE(Attention);

class IntermediateImpl : public torch::nn::Module {
 public:
  explicit IntermediateImpl(const EncoderConfig& c) : activation_(c.activation) {
    dense = register_module("dense", nn::Linear(c.hidden, c.intermediate, true));
  }
  at::Tensor forward(const at::Tensor& x) { return nn::activation(activation_, dense->forward(x)); }
  nn::Linear dense{nullptr};

 private:
  std::string activation_;
};
TORCH_MODULE(Intermediate);

class LayerImpl : public torch::nn::Module {
 public:
  explicit LayerImpl(const EncoderConfig& c) {
    attention = register_module("attention", Attention(c));
    intermediate = register_module("intermediate", Intermediate(c));
    output = register_module("output", Output(c, c.intermediate));
  }
  at::Tensor forward(const at::Tensor& x, const at::Tensor& bias) {
    auto a = attention->output->forward(attention->self->forward(x, bias), x, slots.after_attention);
    return output->forward(intermediate->forward(a), a, slots.after_ffn);
  }
  Attention attention{nullptr};
  Intermediate intermediate{nullptr};
  Output output{nullptr};
  nn::AdapterSlots slots;
};
TORCH_MODULE(Layer);

class EncoderImpl : public torch::nn::Module {
 public:
  explicit EncoderImpl(const EncoderConfig& c) {
    layer = register_module("layer", torch::nn::ModuleList());
    for (int64_t i = 0; i < c.layers; ++i) {
      blocks.push_back(Layer(c));
      layer->push_back(blocks.back());
    }
  }
  torch::nn::ModuleList layer{nullptr};
  std::vector<Layer> blocks;
};
TORCH_MODULE(Encoder);

class PoolerImpl : public torch::nn::Module {
 public:
  explicit PoolerImpl(const EncoderConfig& c) { dense = register_module("dense", nn::Linear(c.hidden, c.hidden, true)); }
  at::Tensor forward(const at::Tensor& h) { return torch::tanh(dense->forward(h.select(1, 0))); }
  nn::Linear dense{nullptr};
};
TORCH_MODULE(Pooler);

class EncoderModelImpl : public torch::nn::Module {
 public:
  EncoderModelImpl(const EncoderConfig& c, bool roberta, bool with_pooler) {
    embeddings = register_module("embeddings", Embeddings(c, roberta));
    encoder = register_module("encoder", Encoder(c));
    if (with_pooler) pooler = register_module("pooler", Pooler(c));
  }
  at::Tensor forward(const ModelInputs& in, ModelOutputs& out) {
    MIXPEFT_CHECK(in.input_ids.defined() && in.input_ids.dim() == 2, ErrorKind::kInvalidArgument,
                  "input_ids must be [batch, tokens]");
    MIXPEFT_CHECK(in.cache == nullptr, ErrorKind::kInvalidArgument, "encoders take no KV cache");
    auto x = embeddings->forward(in);
    const int64_t T = x.size(1);
    auto bias = nn::attention_bias(in.attention_mask, T, T, /*causal=*/false, x.scalar_type(), x.device());
    if (in.output_hidden_states) out.hidden_states.push_back(x);
    for (auto& block : encoder->blocks) {
      x = block->forward(x, bias);
      if (in.output_hidden_states) out.hidden_states.push_back(x);
    }
    out.last_hidden_state = x;
    if (pooler) out.pooler_output = pooler->forward(x);
    return x;
  }
  Embeddings embeddings{nullptr};
  Encoder encoder{nullptr};
  Pooler pooler{nullptr};
};
TORCH_MODULE(EncoderModel);

// RobertaClassificationHead: dense -> tanh -> out_proj on the first token.
class RobertaHeadImpl : public torch::nn::Module {
 public:
  explicit RobertaHeadImpl(const EncoderConfig& c) {
    dense = register_module("dense", nn::Linear(c.hidden, c.hidden, true));
    out_proj = register_module("out_proj", nn::Linear(c.hidden, c.num_labels, true));
  }
  at::Tensor forward(const at::Tensor& h) { return out_proj->forward(torch::tanh(dense->forward(h.select(1, 0)))); }
  nn::Linear dense{nullptr}, out_proj{nullptr};
};
TORCH_MODULE(RobertaHead);

class EncoderTaskModel : public Model {
 public:
  EncoderTaskModel(const EncoderConfig& c, const EncoderFamily& f, Task task, const std::string& architecture)
      : family_(f) {
    model_type_ = f.model_type;
    architecture_ = architecture;
    task_ = task;
    hidden_size_ = c.hidden;
    num_layers_ = c.layers;
    vocab_size_ = c.vocab_size;
    const bool classify = task == Task::kSequenceClassification;
    // BertForSequenceClassification classifies the pooler output; RoBERTa's
    // classifier has its own dense layer and its model no pooler.
    const bool with_pooler = f.roberta ? !classify : true;
    base = register_module(f.base_prefix, EncoderModel(c, f.roberta, with_pooler));
    if (classify) {
      if (f.roberta) {
        roberta_head = register_module("classifier", RobertaHead(c));
      } else {
        classifier = register_module("classifier", nn::Linear(c.hidden, c.num_labels, true));
      }
    }
  }
  ModelOutputs forward(const ModelInputs& in) override {
    ModelOutputs out;
    auto x = base->forward(in, out);
    if (task_ == Task::kSequenceClassification)
      out.logits = family_.roberta ? roberta_head->forward(x) : classifier->forward(out.pooler_output);
    return out;
  }
  std::vector<BlockRef> blocks() override {
    std::vector<BlockRef> refs;
    auto& layers = base->encoder->blocks;
    for (size_t i = 0; i < layers.size(); ++i)
      refs.push_back({family_.base_prefix + ".encoder.layer." + std::to_string(i), layers[i].get(),
                      &layers[i]->slots, hidden_size_});
    return refs;
  }
  std::vector<std::string> default_lora_targets() const override { return {"query", "value"}; }
  std::string base_prefix() const override { return family_.base_prefix; }
  bool ignorable_key(const std::string& key) const override {
    // Non-persistent buffers some older checkpoints still carry.
    auto ends_with = [&](const std::string& t) {
      return key.size() >= t.size() && key.compare(key.size() - t.size(), t.size(), t) == 0;
    };
    return ends_with("embeddings.position_ids") || ends_with("embeddings.token_type_ids") ||
           (task_ != Task::kBase && key.rfind("cls.", 0) == 0) || (!base->pooler && key.find("pooler.") != std::string::npos);
  }

  EncoderModel base{nullptr};
  nn::Linear classifier{nullptr};
  RobertaHead roberta_head{nullptr};

 private:
  EncoderFamily family_;
};

}  // namespace

std::shared_ptr<Model> make_encoder(const ConfigView& config, const std::string& architecture,
                                    const EncoderFamily& f) {
  EncoderConfig c(config);
  if (architecture == f.class_prefix + "Model")
    return std::make_shared<EncoderTaskModel>(c, f, Task::kBase, architecture);
  if (architecture == f.class_prefix + "ForSequenceClassification")
    return std::make_shared<EncoderTaskModel>(c, f, Task::kSequenceClassification, architecture);
  unsupported_architecture(config, architecture,
                           f.class_prefix + "Model, " + f.class_prefix + "ForSequenceClassification");
}

std::shared_ptr<Model> make_bert(const ConfigView& config, const std::string& architecture) {
  return make_encoder(config, architecture, {"bert", "Bert", "bert", /*roberta=*/false});
}

}  // namespace mixpeft::models
