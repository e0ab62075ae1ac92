// The LibTorch backend of `mixpeft serve` (backend.h): per-row adapters on one
// frozen model, materialised adapters in an LRU cache.
#include "serve/backend.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>

#include <torch/torch.h>

#include "mixpeft/error.h"
#include "mixpeft/generate.h"
#include "mixpeft/model.h"
#include "mixpeft/nn.h"
#include "mixpeft/peft.h"
#include "mixpeft/tokenizer.h"
#include "peft/xpeft/xpeft.h"
#include "serve/adapter_cache.h"
#include "serve/row_adapters.h"

namespace mixpeft::serve {
namespace torch_backend {

namespace fs = std::filesystem;
using json = nlohmann::json;

// What one profile adds to the model, ready to apply (float32, CPU).
struct Materialized {
  std::string kind;
  std::map<std::string, RowLinearDelta> linears;  // by Linear module name: LoRA pair and/or head weights
  std::vector<RowBottleneck> blocks;              // X-PEFT: one combined adapter per block; empty otherwise
  std::string task_type;                          // the profile's task_type ("" = none)
  int64_t bytes = 0;
};

// The rows of one batch grouped by the profile whose adapters they use, in
// order of first appearance: what the per-row hooks get for one pass.
using Groups = std::vector<std::pair<const Materialized*, std::vector<int64_t>>>;
struct RowGroups {
  Groups groups;
  std::map<const Materialized*, size_t> index;  // profile -> its entry in groups
  void add(const Materialized* m, int64_t row) {
    auto [it, fresh] = index.emplace(m, groups.size());
    if (fresh) groups.push_back({m, {}});
    groups[it->second].second.push_back(row);
  }
};

int64_t tensor_bytes(const at::Tensor& t) { return t.defined() ? t.numel() * int64_t(t.element_size()) : 0; }

// A folder holding one profile as PeftModel::load and activate_profile read
// it; removed when it goes out of scope.
class ProfileFolder {
 public:
  ProfileFolder(const std::string& config, const std::string& tensors) {
    std::string pattern = (fs::temp_directory_path() / "mixpeft-serve-XXXXXX").string();
    MIXPEFT_CHECK(mkdtemp(pattern.data()) != nullptr, ErrorKind::kIO, pattern, ": cannot create a temporary folder");
    path_ = pattern;
    write("adapter_config.json", config);
    write("adapter_model.safetensors", tensors);
  }
  ~ProfileFolder() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  void write(const std::string& name, const std::string& bytes) {
    std::ofstream out(fs::path(path_) / name, std::ios::binary);
    out.write(bytes.data(), std::streamsize(bytes.size()));
    MIXPEFT_CHECK(out.good(), ErrorKind::kIO, path_, "/", name, ": cannot write");
  }
  std::string path_;
};

bool has_tokenizer_files(const std::string& dir) {
  return fs::exists(fs::path(dir) / "tokenizer.json") || fs::exists(fs::path(dir) / "vocab.json") ||
         fs::exists(fs::path(dir) / "vocab.txt");
}

class TorchBackend : public Backend {
 public:
  TorchBackend(const BackendOptions& o, ProfileStore& store)
      : options_(o), store_(store), cache_(o.cache_bytes) {
    model_ = load_model(o.model_dir);
    model_->eval();
    for (auto& p : model_->parameters()) p.set_requires_grad(false);
    MIXPEFT_CHECK(model_->task() != Task::kBase, ErrorKind::kInvalidArgument, o.model_dir, ": a ",
                  model_->architecture(),
                  " has no task head; serve a sequence-classification model (classify) or a causal LM (generate)");
    const std::string tok_dir =
        !o.tokenizer_dir.empty() ? o.tokenizer_dir : (has_tokenizer_files(o.model_dir) ? o.model_dir : "");
    if (!tok_dir.empty()) tokenizer_ = tok::Tokenizer::load(tok_dir);
    peft::Targets all;
    all.regex = ".*";
    for (const auto& t : peft::find_linear_targets(*model_, all, o.model_dir)) {
      auto hook = std::make_shared<RowLinearHook>(t.linear->conv1d);
      MIXPEFT_CHECK(!t.linear->adapter, ErrorKind::kInternal, t.name, ": already has an adapter");
      t.linear->adapter = hook;
      linear_hooks_[t.name] = hook;
    }
    for (const auto& b : model_->blocks()) {
      auto hook = std::make_shared<RowSiteHook>();
      if (b.slots) {
        MIXPEFT_CHECK(!b.slots->after_ffn, ErrorKind::kInternal, b.name, ": already has an adapter");
        b.slots->after_ffn = hook;
      }
      site_hooks_.push_back(b.slots ? hook : nullptr);
    }
    if (!o.bank_dir.empty()) bank_checksum_ = peft::xpeft::load_bank(o.bank_dir).checksum;
    const json& cfg = model_->config();
    if (cfg.contains("pad_token_id") && cfg["pad_token_id"].is_number_integer()) pad_id_ = cfg["pad_token_id"];
    if (cfg.contains("eos_token_id") && cfg["eos_token_id"].is_number_integer()) eos_id_ = cfg["eos_token_id"];
    if (cfg.contains("id2label") && cfg["id2label"].is_object())
      for (auto it = cfg["id2label"].begin(); it != cfg["id2label"].end(); ++it)
        if (it.value().is_string()) id2label_[std::stoll(it.key())] = it.value().get<std::string>();
  }

  std::vector<ClassifyOutcome> classify_batch(const std::vector<ClassifyItem>& items) override {
    std::vector<ClassifyOutcome> out(items.size());
    // Per item: its profile's adapters and its rows, or its own error.
    std::vector<std::shared_ptr<const Materialized>> adapters(items.size());
    std::vector<std::vector<std::vector<int64_t>>> rows(items.size());
    for (size_t i = 0; i < items.size(); ++i) {
      try {
        MIXPEFT_CHECK(model_->task() == Task::kSequenceClassification, ErrorKind::kInvalidArgument,
                      "wrong task: this server's model is a causal LM; use /v1/generate");
        adapters[i] = adapters_for(items[i].meta);
        check_task(*adapters[i], items[i].meta, "SEQ_CLS");
        rows[i] = token_rows(items[i].request.texts, items[i].request.input_ids);
      } catch (...) {
        out[i].error = std::current_exception();
      }
    }
    // One forward pass over every good item's rows.
    std::vector<std::vector<int64_t>> batch;
    RowGroups groups;
    for (size_t i = 0; i < items.size(); ++i) {
      if (out[i].error) continue;
      for (auto& r : rows[i]) {
        groups.add(adapters[i].get(), int64_t(batch.size()));
        batch.push_back(r);
      }
    }
    if (batch.empty()) return out;
    try {
      at::Tensor logits = forward_rows(batch, groups.groups);  // [rows, labels]
      int64_t row = 0;
      for (size_t i = 0; i < items.size(); ++i) {
        if (out[i].error) continue;
        for (size_t k = 0; k < rows[i].size(); ++k, ++row) {
          at::Tensor l = logits[row].contiguous();
          out[i].result.logits.emplace_back(l.data_ptr<float>(), l.data_ptr<float>() + l.numel());
          const int64_t label = l.argmax().item<int64_t>();
          out[i].result.labels.push_back(label);
          auto name = id2label_.find(label);
          out[i].result.label_names.push_back(name == id2label_.end() ? "" : name->second);
        }
      }
    } catch (...) {
      for (auto& o : out)
        if (!o.error) o.error = std::current_exception();
    }
    return out;
  }

  // What generate needs, checked: the profile's adapters and the prompt's ids.
  struct PreparedGeneration {
    std::shared_ptr<const Materialized> adapters;
    std::vector<int64_t> prompt;
  };

  PreparedGeneration prepare_generation(const ProfileMeta& meta, const GenerateRequest& r) {
    MIXPEFT_CHECK(model_->task() == Task::kCausalLM, ErrorKind::kInvalidArgument,
                  "wrong task: this server's model is a classifier; use /v1/classify");
    PreparedGeneration p;
    p.adapters = adapters_for(meta);
    check_task(*p.adapters, meta, "CAUSAL_LM");
    p.prompt = r.input_ids;
    if (p.prompt.empty()) {
      MIXPEFT_CHECK(tokenizer_ != nullptr, ErrorKind::kInvalidArgument,
                    "this server has no tokenizer; send \"input_ids\" instead of \"prompt\"");
      for (auto id : tokenizer_->encode(r.prompt, true)) p.prompt.push_back(id);
      MIXPEFT_CHECK(!p.prompt.empty(), ErrorKind::kInvalidArgument, "field \"prompt\" encodes to no tokens");
    }
    check_ids(p.prompt);
    MIXPEFT_CHECK(int64_t(p.prompt.size()) + r.max_new_tokens <= options_.max_seq_len, ErrorKind::kInvalidArgument,
                  "prompt (", p.prompt.size(), " tokens) + max_new_tokens (", r.max_new_tokens,
                  ") exceed the sequence limit of ", options_.max_seq_len);
    return p;
  }

  void check_generate(const ProfileMeta& meta, const GenerateRequest& r) override { prepare_generation(meta, r); }

  std::vector<GenerateOutcome> generate_batch(const std::vector<GenerateItem>& items) override {
    std::vector<GenerateOutcome> out(items.size());
    std::vector<PreparedGeneration> prepared(items.size());
    std::vector<size_t> valid;
    for (size_t i = 0; i < items.size(); ++i) {
      try {
        prepared[i] = prepare_generation(items[i].meta, items[i].request);
        valid.push_back(i);
      } catch (...) {
        out[i].error = std::current_exception();
      }
    }
    if (!valid.empty()) run_generation(items, prepared, valid, out);
    return out;
  }

  // One generation over the items `which` (left-padded prompts, each row with
  // its profile's adapters, sampling settings, random generator and limit):
  // rows do not see each other, so each gets what it gets alone. A row ends
  // at a stop token, at its own max_new_tokens or when its client goes away.
  void run_generation(const std::vector<GenerateItem>& items, const std::vector<PreparedGeneration>& prepared,
                      const std::vector<size_t>& which, std::vector<GenerateOutcome>& out) {
    try {
      GenerateOptions g;
      g.pad_token_id = pad_id_;
      if (eos_id_ >= 0) g.stop_token_ids.push_back(eos_id_);
      std::vector<std::vector<int64_t>> prompts;
      RowGroups groups;
      for (size_t k = 0; k < which.size(); ++k) {
        const GenerateRequest& r = items[which[k]].request;
        g.rows.push_back({r.temperature, r.top_k, r.top_p, r.seed, r.max_new_tokens});
        prompts.push_back(prepared[which[k]].prompt);
        groups.add(prepared[which[k]].adapters.get(), int64_t(k));
      }
      g.on_token = [&](size_t k, int64_t token) {
        if (items[which[k]].request.on_token) items[which[k]].request.on_token(token);
      };
      g.cancelled = [&](size_t k) {
        const GenerateRequest& r = items[which[k]].request;
        return r.cancelled && r.cancelled();
      };
      mixpeft::GenerateResult res;
      {
        std::lock_guard<std::mutex> lock(model_mutex_);
        Installed installed(*this, groups.groups);
        torch::NoGradGuard no_grad;
        res = mixpeft::generate(*model_, prompts, g);
      }
      for (size_t k = 0; k < which.size(); ++k) {
        GenerateResult& r = out[which[k]].result;
        r.tokens = res.tokens[k];
        r.finish_reason = res.finish_reasons[k];
        if (tokenizer_) r.text = tokenizer_->decode(std::vector<tok::TokenId>(r.tokens.begin(), r.tokens.end()), true);
      }
    } catch (...) {
      for (size_t i : which) out[i].error = std::current_exception();
    }
  }

  void check_servable(const Profile& p) override { materialize(p); }

  void forget(const std::string& name) override { cache_.forget(name); }

  BackendStats stats() const override { return cache_.stats(); }

  std::string describe_json() const override {
    return json{{"model", options_.model_dir},
                {"architecture", model_->architecture()},
                {"task", model_->task() == Task::kCausalLM ? "generate" : "classify"},
                {"tokenizer", tokenizer_ != nullptr},
                {"bank_checksum", bank_checksum_.empty() ? json(nullptr) : json(bank_checksum_)}}
        .dump();
  }

 private:
  // Puts each group's adapters on the hooks for one forward pass and takes
  // them off again, also when the pass throws.
  class Installed {
   public:
    Installed(TorchBackend& b, const Groups& groups) : b_(b) {
      for (const auto& [m, rows] : groups) {
        at::Tensor index = torch::tensor(rows, torch::kLong);
        for (const auto& [name, delta] : m->linears) b_.linear_hooks_.at(name)->groups.push_back({index, delta});
        for (size_t l = 0; l < m->blocks.size(); ++l) b_.site_hooks_[l]->groups.push_back({index, m->blocks[l]});
      }
    }
    ~Installed() {
      for (auto& [name, hook] : b_.linear_hooks_) hook->groups.clear();
      for (auto& hook : b_.site_hooks_)
        if (hook) hook->groups.clear();
    }

   private:
    TorchBackend& b_;
  };

  at::Tensor forward_rows(const std::vector<std::vector<int64_t>>& batch, const Groups& groups) {
    size_t longest = 0;
    for (const auto& r : batch) longest = std::max(longest, r.size());
    const int64_t B = int64_t(batch.size()), T = int64_t(longest);
    at::Tensor ids = torch::full({B, T}, pad_id_, torch::kLong);
    at::Tensor mask = torch::zeros({B, T}, torch::kLong);
    for (int64_t i = 0; i < B; ++i) {
      const auto& r = batch[size_t(i)];
      ids[i].narrow(0, 0, int64_t(r.size())).copy_(torch::tensor(r, torch::kLong));
      mask[i].narrow(0, 0, int64_t(r.size())).fill_(1);
    }
    std::lock_guard<std::mutex> lock(model_mutex_);
    Installed installed(*this, groups);
    torch::NoGradGuard no_grad;
    ModelInputs in;
    in.input_ids = ids;
    in.attention_mask = mask;
    return model_->forward(in).logits.to(torch::kFloat);
  }

  std::vector<std::vector<int64_t>> token_rows(const std::vector<std::string>& texts,
                                               const std::vector<std::vector<int64_t>>& input_ids) {
    std::vector<std::vector<int64_t>> rows = input_ids;
    if (!texts.empty()) {
      MIXPEFT_CHECK(tokenizer_ != nullptr, ErrorKind::kInvalidArgument,
                    "this server has no tokenizer; send \"input_ids\" instead of text");
      for (const auto& t : texts) {
        std::vector<int64_t> r;
        for (auto id : tokenizer_->encode(t, true)) r.push_back(id);
        MIXPEFT_CHECK(!r.empty(), ErrorKind::kInvalidArgument, "a text encodes to no tokens");
        MIXPEFT_CHECK(int64_t(r.size()) <= options_.max_seq_len, ErrorKind::kInvalidArgument, "a text has ", r.size(),
                      " tokens, more than the limit of ", options_.max_seq_len);
        rows.push_back(std::move(r));
      }
    }
    for (const auto& r : rows) check_ids(r);
    return rows;
  }

  void check_ids(const std::vector<int64_t>& ids) const {
    for (auto id : ids)
      MIXPEFT_CHECK(id >= 0 && id < model_->vocab_size(), ErrorKind::kInvalidArgument, "token id ", id,
                    " is outside the model's vocabulary (", model_->vocab_size(), " tokens)");
  }

  static void check_task(const Materialized& m, const ProfileMeta& meta, const std::string& want) {
    MIXPEFT_CHECK(m.task_type.empty() || m.task_type == want, ErrorKind::kInvalidArgument, "profile \"", meta.name,
                  "\" was trained for task_type ", m.task_type, ", not ", want, " (wrong task)");
  }

  std::shared_ptr<const Materialized> adapters_for(const ProfileMeta& meta) {
    return cache_.get_or_make(meta.name, meta.version, [&] {
      Profile p = store_.get(meta.name);  // kNotFound when deleted meanwhile
      auto m = std::make_shared<const Materialized>(materialize(p));
      return std::make_pair(std::shared_ptr<const Materialized>(m), m->bytes);
    });
  }

  // Reads a profile's adapters off a scratch copy of the model (never the
  // serving one): kInvalidArgument / kCorrupt / kUnsupported naming the profile.
  Materialized materialize(const Profile& p) {
    try {
      return materialize_unnamed(p);
    } catch (const Error& e) {
      throw Error(e.kind(), "profile \"" + p.name + "\": " + e.what());
    }
  }

  Materialized materialize_unnamed(const Profile& p) {
    json config = json::parse(p.config);
    Materialized m;
    m.kind = p.kind;
    if (config.contains("task_type") && config["task_type"].is_string()) m.task_type = config["task_type"];
    std::lock_guard<std::mutex> lock(scratch_mutex_);
    if (p.kind == "XPEFT") {
      materialize_xpeft(p, config, m);
    } else {
      MIXPEFT_CHECK(!config.contains("bias") || config["bias"] == "none", ErrorKind::kUnsupported,
                    "\"bias\": ", config.value("bias", json()).dump(),
                    " trains the base biases, which the server cannot apply per row; train with bias \"none\"");
      materialize_lora(p, config, m);
    }
    for (const auto& [name, d] : m.linears)
      m.bytes += tensor_bytes(d.A) + tensor_bytes(d.B) + tensor_bytes(d.weight) + tensor_bytes(d.bias);
    for (const auto& b : m.blocks)
      m.bytes += tensor_bytes(b.down_weight) + tensor_bytes(b.down_bias) + tensor_bytes(b.up_weight) +
                 tensor_bytes(b.up_bias);
    return m;
  }

  void materialize_lora(const Profile& p, const json& config, Materialized& m) {
    if (!lora_scratch_) lora_scratch_ = load_model(options_.model_dir);
    ProfileFolder folder(p.config, p.tensors);
    std::shared_ptr<peft::PeftModel> peft;
    try {
      peft = peft::PeftModel::load(lora_scratch_, folder.path());
      torch::NoGradGuard no_grad;
      auto [lora_config, tensors] = peft->method().export_lora(peft->model());
      const double r = lora_config.value("r", 0.0), alpha = lora_config.value("lora_alpha", 0.0);
      MIXPEFT_CHECK(r > 0, ErrorKind::kInternal, "export_lora gave r = ", r);
      const double scaling = lora_config.value("use_rslora", false) ? alpha / std::sqrt(r) : alpha / r;
      std::map<std::string, at::Tensor> by_name(tensors.begin(), tensors.end());
      const std::string a_suffix = ".lora_A.weight", b_suffix = ".lora_B.weight";
      for (const auto& [name, t] : by_name) {
        if (name.size() <= a_suffix.size() || name.compare(name.size() - a_suffix.size(), a_suffix.size(), a_suffix))
          continue;
        const std::string module = name.substr(0, name.size() - a_suffix.size());
        auto b = by_name.find(module + b_suffix);
        MIXPEFT_CHECK(b != by_name.end(), ErrorKind::kInternal, module, ": lora_A without lora_B");
        MIXPEFT_CHECK(linear_hooks_.count(module), ErrorKind::kUnsupported, module, " is not a Linear of the model");
        auto& d = m.linears[module];
        d.A = t.detach().to(torch::kFloat).clone();
        d.B = (b->second.detach().to(torch::kFloat) * scaling).contiguous();
      }
      read_heads(*peft, m);
      peft->method().unload(peft->model());
    } catch (...) {
      // The scratch model may carry half a method now: start over next time.
      lora_scratch_.reset();
      throw;
    }
  }

  void materialize_xpeft(const Profile& p, json config, Materialized& m) {
    MIXPEFT_CHECK(config.contains("bank_checksum") && config["bank_checksum"].is_string(), ErrorKind::kInvalidArgument,
                  "X-PEFT config lacks \"bank_checksum\" (the bank it was trained on)");
    const std::string checksum = config["bank_checksum"];
    if (!options_.bank_dir.empty()) {
      MIXPEFT_CHECK(checksum == bank_checksum_, ErrorKind::kInvalidArgument, "\"bank_checksum\" ", checksum,
                    " is not this server's bank (", options_.bank_dir, ", ", bank_checksum_, ")");
      // The server's bank replaces however the profile's was made (a seed, a
      // folder, BOTTLENECK adapters); the checksum above says it is the same.
      config["bank_path"] = options_.bank_dir;
      for (const char* key : {"bank_adapters", "bank_seed", "bank_init_scale"}) config.erase(key);
    }
    const std::string key = checksum + " " + config.value("modules_to_save", json()).dump();
    auto& scratch = xpeft_scratch_[key];
    ProfileFolder folder(config.dump(), p.tensors);
    try {
      if (!scratch)
        scratch = peft::PeftModel::load(load_model(options_.model_dir), folder.path());
      else
        peft::xpeft::activate_profile(*scratch, folder.path());
      auto* method = dynamic_cast<peft::xpeft::XpeftMethod*>(&scratch->method());
      MIXPEFT_CHECK(method != nullptr, ErrorKind::kInternal, "X-PEFT scratch model carries ", scratch->method().peft_type());
      auto& module = method->module();
      MIXPEFT_CHECK(module->num_layers == int64_t(site_hooks_.size()), ErrorKind::kInternal, "bank has ",
                    module->num_layers, " layers, model ", site_hooks_.size());
      torch::NoGradGuard no_grad;
      for (int64_t l = 0; l < module->num_layers; ++l) {
        MIXPEFT_CHECK(site_hooks_[size_t(l)] != nullptr, ErrorKind::kUnsupported, model_->architecture(),
                      " has no adapter slot in block ", l);
        auto c = module->compute(l);
        m.blocks.push_back({c.down_weight.detach().to(torch::kFloat).clone(), c.down_bias.detach().to(torch::kFloat).clone(),
                            c.up_weight.detach().to(torch::kFloat).clone(), c.up_bias.detach().to(torch::kFloat).clone(),
                            module->activation});
      }
      read_heads(*scratch, m);
    } catch (...) {
      xpeft_scratch_.erase(key);
      throw;
    }
  }

  // modules_to_save parameters (a classification head): per-row weights of
  // their Linear layers.
  void read_heads(peft::PeftModel& peft, Materialized& m) {
    for (auto& [name, t] : peft.trainable_parameters()) {
      if (peft.method().owns(name)) continue;
      const auto dot = name.rfind('.');
      const std::string module = name.substr(0, dot), leaf = name.substr(dot + 1);
      auto hook = linear_hooks_.find(module);
      MIXPEFT_CHECK(hook != linear_hooks_.end() && (leaf == "weight" || leaf == "bias"), ErrorKind::kUnsupported,
                    "modules_to_save parameter ", name,
                    " is not a Linear layer's weight or bias; only Linear heads can be served per row");
      auto& d = m.linears[module];
      at::Tensor v = t.detach().to(torch::kFloat).clone();
      if (leaf == "weight") {
        d.weight = hook->second->conv1d() ? v.t().contiguous() : v;  // as [out, in]
      } else {
        d.bias = v;
      }
    }
    for (auto& [module, d] : m.linears)
      if (d.bias.defined() && !d.weight.defined())
        fail(ErrorKind::kUnsupported, "modules_to_save gives ", module, ".bias without its weight");
  }

  BackendOptions options_;
  ProfileStore& store_;
  AdapterCache<Materialized> cache_;
  std::shared_ptr<Model> model_;
  std::unique_ptr<tok::Tokenizer> tokenizer_;
  std::map<std::string, std::shared_ptr<RowLinearHook>> linear_hooks_;
  std::vector<std::shared_ptr<RowSiteHook>> site_hooks_;  // per block; null without adapter slots
  std::mutex model_mutex_;    // one forward pass at a time (hooks hold per-pass state)
  std::mutex scratch_mutex_;  // materialisation
  std::shared_ptr<Model> lora_scratch_;
  std::map<std::string, std::shared_ptr<peft::PeftModel>> xpeft_scratch_;  // by bank checksum + modules_to_save
  std::string bank_checksum_;
  int64_t pad_id_ = 0, eos_id_ = -1;
  std::map<int64_t, std::string> id2label_;
};

}  // namespace torch_backend

std::unique_ptr<Backend> make_torch_backend(const BackendOptions& options, ProfileStore& store) {
  return std::make_unique<torch_backend::TorchBackend>(options, store);
}

}  // namespace mixpeft::serve
