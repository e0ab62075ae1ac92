// The job spec, task heads, and what trains (JobSpec, Trainable).
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <set>

#include <torch/torch.h>

#include "mixpeft/error.h"
#include "mixpeft/peft.h"
#include "mixpeft/safetensors.h"
#include "mixpeft/train.h"
#include "peft/config_util.h"

namespace fs = std::filesystem;

namespace mixpeft::train {
namespace {

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::string resolve(const std::string& path, const std::string& base_dir) {
  if (path.empty() || base_dir.empty() || fs::path(path).is_absolute()) return path;
  return (fs::path(base_dir) / path).lexically_normal().string();
}

const nlohmann::json& section(const nlohmann::json& job, const char* key, bool required) {
  static const nlohmann::json kEmpty = nlohmann::json::object();
  auto it = job.find(key);
  if (it == job.end() || it->is_null()) {
    MIXPEFT_CHECK(!required, ErrorKind::kInvalidArgument, "job: the [", key, "] section is missing");
    return kEmpty;
  }
  MIXPEFT_CHECK(it->is_object(), ErrorKind::kInvalidArgument, "job: ", key, " must be a table/object, got ",
                it->dump());
  return *it;
}

struct ArchNames {
  const char* model_type;
  const char* prefix;
  const char* causal_lm;        // nullptr: no causal LM head
  const char* classification;
  const char* classifier_weight;  // the head's last weight: [num_labels, hidden]
};

constexpr ArchNames kArchNames[] = {
    {"gpt2", "transformer", "GPT2LMHeadModel", "GPT2ForSequenceClassification", "score.weight"},
    {"bert", "bert", nullptr, "BertForSequenceClassification", "classifier.weight"},
    {"roberta", "roberta", nullptr, "RobertaForSequenceClassification", "classifier.out_proj.weight"},
    {"llama", "model", "LlamaForCausalLM", "LlamaForSequenceClassification", "score.weight"},
    {"qwen2", "model", "Qwen2ForCausalLM", "Qwen2ForSequenceClassification", "score.weight"},
};

const ArchNames& arch_names(const nlohmann::json& config, const std::string& where) {
  const std::string type = config.value("model_type", "");
  for (const auto& a : kArchNames)
    if (type == a.model_type) return a;
  fail(ErrorKind::kUnsupported, where, ": model_type \"", type, "\" has no task heads in mixpeft");
}

// A JSON file, or kCorrupt naming it.
nlohmann::json read_json(const std::string& path) {
  try {
    return nlohmann::json::parse(io::read_file(path));
  } catch (const nlohmann::json::parse_error& e) {
    fail(ErrorKind::kCorrupt, path, ": malformed JSON: ", e.what());
  }
}

int64_t config_num_labels(const nlohmann::json& config) {
  if (config.contains("num_labels") && config["num_labels"].is_number_integer()) return config["num_labels"];
  if (config.contains("id2label") && config["id2label"].is_object()) return config["id2label"].size();
  return 2;  // transformers' default
}

}  // namespace

// ---- JobSpec -----------------------------------------------------------------------

JobSpec JobSpec::from_json(const nlohmann::json& job, const std::string& base_dir) {
  MIXPEFT_CHECK(job.is_object(), ErrorKind::kInvalidArgument, "job: expected a table/object");
  JobSpec spec;
  peft::ConfigReader top(job, "job", false);
  spec.output_dir = resolve(top.get_string("output_dir", ""), base_dir);
  MIXPEFT_CHECK(!spec.output_dir.empty(), ErrorKind::kInvalidArgument,
                "job: \"output_dir\" is required (the folder for checkpoints, logs and the adapter)");
  const int64_t seed = top.get_int("seed", 42);
  if (seed < 0) top.bad("seed", "must be >= 0");
  spec.seed = static_cast<uint64_t>(seed);
  top.accept({"model", "dataset", "peft", "train"});
  top.finish();

  {
    peft::ConfigReader rd(section(job, "model", true), "model", false);
    spec.model.path = resolve(rd.get_string("path", ""), base_dir);
    spec.model.config = resolve(rd.get_string("config", ""), base_dir);
    if (spec.model.path.empty() == spec.model.config.empty())
      rd.bad("path", "or \"config\" is required, not both (path: a Hugging Face model folder; config: a "
                     "config.json to train from scratch)");
    spec.model.tokenizer = resolve(rd.get_string("tokenizer", ""), base_dir);
    if (!spec.model.config.empty() && spec.model.tokenizer.empty())
      rd.bad("tokenizer", "is required with \"config\" (a model from scratch has no tokenizer of its own)");
    spec.model.dtype = rd.get_string("dtype", "float32", {"float32", "bfloat16"});
    rd.finish();
  }
  spec.dataset = data::DatasetSpec::from_json(section(job, "dataset", true), base_dir, "dataset");

  spec.peft = section(job, "peft", true);
  MIXPEFT_CHECK(spec.peft.contains("peft_type") && spec.peft["peft_type"].is_string(), ErrorKind::kInvalidArgument,
                "peft: \"peft_type\" is required: one of FULL, HEAD, ", [] {
                  std::string s;
                  for (const auto& m : peft::supported_methods()) s += (s.empty() ? "" : ", ") + m;
                  return s;
                }());
  const std::string method = spec.method();
  if (!spec.model.config.empty() && method != "FULL")
    fail(ErrorKind::kInvalidArgument, "peft: a model from scratch (model.config) trains with peft_type FULL, not ",
         method);
  if (method == "FULL" || method == "HEAD") {
    peft::ConfigReader rd(spec.peft, "peft", false);
    rd.accept({"peft_type"});
    rd.finish();
  } else {
    auto checked = spec.peft;
    checked.erase("modules_to_save");
    checked.erase("task_type");
    (void)peft::create_method(checked, "peft");  // validates every key now, before any loading
  }

  {
    TrainConfig& t = spec.train;
    peft::ConfigReader rd(section(job, "train", false), "train", false);
    auto positive = [&](const char* key, int64_t fallback, int64_t min) {
      const int64_t v = rd.get_int(key, fallback);
      if (v < min) rd.bad(key, "must be >= " + std::to_string(min) + ", got " + std::to_string(v));
      return v;
    };
    t.epochs = positive("epochs", t.epochs, 1);
    t.max_steps = positive("max_steps", t.max_steps, 0);
    t.batch_size = positive("batch_size", t.batch_size, 1);
    t.grad_accum = positive("grad_accum", t.grad_accum, 1);
    t.eval_batch_size = positive("eval_batch_size", t.eval_batch_size, 0);
    t.lr = rd.get_double("lr", t.lr);
    if (!(t.lr > 0) || !std::isfinite(t.lr)) rd.bad("lr", "must be > 0");
    t.weight_decay = rd.get_double("weight_decay", t.weight_decay);
    if (!(t.weight_decay >= 0)) rd.bad("weight_decay", "must be >= 0");
    t.adam_beta1 = rd.get_double("adam_beta1", t.adam_beta1);
    t.adam_beta2 = rd.get_double("adam_beta2", t.adam_beta2);
    if (!(t.adam_beta1 >= 0 && t.adam_beta1 < 1)) rd.bad("adam_beta1", "must be in [0, 1)");
    if (!(t.adam_beta2 >= 0 && t.adam_beta2 < 1)) rd.bad("adam_beta2", "must be in [0, 1)");
    t.adam_eps = rd.get_double("adam_eps", t.adam_eps);
    if (!(t.adam_eps > 0)) rd.bad("adam_eps", "must be > 0");
    t.max_grad_norm = rd.get_double("max_grad_norm", t.max_grad_norm);
    if (!(t.max_grad_norm >= 0)) rd.bad("max_grad_norm", "must be >= 0 (0 = no clipping)");
    t.schedule = rd.get_string("schedule", t.schedule, {"linear", "cosine", "constant"});
    t.warmup_steps = positive("warmup_steps", t.warmup_steps, 0);
    t.warmup_ratio = rd.get_double("warmup_ratio", t.warmup_ratio);
    if (!(t.warmup_ratio >= 0 && t.warmup_ratio <= 1)) rd.bad("warmup_ratio", "must be in [0, 1]");
    t.label_smoothing = rd.get_double("label_smoothing", t.label_smoothing);
    if (!(t.label_smoothing >= 0 && t.label_smoothing < 1)) rd.bad("label_smoothing", "must be in [0, 1)");
    t.bf16 = rd.get_bool("bf16", t.bf16);
    t.group_by_length = rd.get_bool("group_by_length", t.group_by_length);
    t.consistency_weight = rd.get_double("consistency_weight", t.consistency_weight);
    if (!(t.consistency_weight >= 0)) rd.bad("consistency_weight", "must be >= 0");
    t.log_every = positive("log_every", t.log_every, 1);
    t.eval_every = positive("eval_every", t.eval_every, 0);
    t.save_every = positive("save_every", t.save_every, 0);
    t.keep_checkpoints = positive("keep_checkpoints", t.keep_checkpoints, 1);
    t.metric = rd.get_string("metric", t.metric);
    t.early_stopping_patience = positive("early_stopping_patience", t.early_stopping_patience, 0);
    t.progress = rd.get_string("progress", t.progress, {"auto", "bar", "plain", "off"});
    rd.finish();
    if (!t.metric.empty()) {
      const auto valid = metric_names(spec.dataset.task);
      if (std::find(valid.begin(), valid.end(), t.metric) == valid.end()) {
        std::string list;
        for (const auto& m : valid) list += (list.empty() ? "" : ", ") + m;
        fail(ErrorKind::kInvalidArgument, "train: \"metric\" is \"", t.metric, "\"; a ",
             data::to_string(spec.dataset.task), " job reports: ", list);
      }
    }
    if (spec.dataset.task == data::Task::kCausalLm && method == "HEAD")
      fail(ErrorKind::kInvalidArgument, "peft: peft_type HEAD trains a classification head; a causal_lm job has none");
    if (spec.dataset.task != data::Task::kClassification && t.label_smoothing > 0)
      fail(ErrorKind::kInvalidArgument, "train: \"label_smoothing\" applies to classification only");
  }
  return spec;
}

nlohmann::json JobSpec::to_json() const {
  nlohmann::json j;
  j["output_dir"] = output_dir;
  j["seed"] = seed;
  j["model"] = {{"path", model.path}, {"config", model.config}, {"tokenizer", model.tokenizer}, {"dtype", model.dtype}};
  j["dataset"] = dataset.to_json();
  j["peft"] = peft;
  const TrainConfig& t = train;
  j["train"] = {{"epochs", t.epochs},
                {"max_steps", t.max_steps},
                {"batch_size", t.batch_size},
                {"grad_accum", t.grad_accum},
                {"eval_batch_size", t.eval_batch_size},
                {"lr", t.lr},
                {"weight_decay", t.weight_decay},
                {"adam_beta1", t.adam_beta1},
                {"adam_beta2", t.adam_beta2},
                {"adam_eps", t.adam_eps},
                {"max_grad_norm", t.max_grad_norm},
                {"schedule", t.schedule},
                {"warmup_steps", t.warmup_steps},
                {"warmup_ratio", t.warmup_ratio},
                {"label_smoothing", t.label_smoothing},
                {"bf16", t.bf16},
                {"group_by_length", t.group_by_length},
                {"consistency_weight", t.consistency_weight},
                {"log_every", t.log_every},
                {"eval_every", t.eval_every},
                {"save_every", t.save_every},
                {"keep_checkpoints", t.keep_checkpoints},
                {"metric", t.metric},
                {"early_stopping_patience", t.early_stopping_patience},
                {"progress", t.progress}};
  return j;
}

std::string JobSpec::method() const { return upper(peft.value("peft_type", "")); }

// ---- Task heads ------------------------------------------------------------------------

LoadOptions load_options_for_task(const nlohmann::json& config, data::Task task, int64_t num_labels, uint64_t seed,
                                  const std::string& where) {
  const ArchNames& names = arch_names(config, where);
  std::string current;
  if (config.contains("architectures") && config["architectures"].is_array() && !config["architectures"].empty())
    current = config["architectures"][0].get<std::string>();
  LoadOptions options;
  options.init_seed = seed;
  std::string target;
  if (task == data::Task::kCausalLm) {
    MIXPEFT_CHECK(names.causal_lm != nullptr, ErrorKind::kUnsupported, where, ": a ", names.model_type,
                  " model has no causal LM head in mixpeft; causal_lm jobs need gpt2, llama or qwen2");
    target = names.causal_lm;
  } else {
    target = names.classification;
    if (current == target) {
      const int64_t have = config_num_labels(config);
      MIXPEFT_CHECK(have == num_labels, ErrorKind::kInvalidArgument, where, ": the checkpoint's ", target,
                    " head has ", have, " label(s), the dataset ", num_labels,
                    "; start from the base model (or a checkpoint with the same labels)");
    }
    options.num_labels = num_labels;
  }
  if (current != target) {
    options.architecture = target;
    // The new head starts fresh; the old one (an LM head, another classifier) is left behind.
    const std::string prefix = names.prefix;
    options.allow_missing = {"(?!" + prefix + "\\.).*"};
    options.ignore_unexpected = {"(lm_head|cls|score|classifier)(\\..*)?"};
  }
  return options;
}

std::vector<std::string> head_modules(Model& model) {
  const std::string prefix = model.base_prefix() + ".";
  std::vector<std::string> heads;
  for (auto& p : model.named_parameters()) {
    if (p.key().rfind(prefix, 0) == 0) continue;
    const std::string first = p.key().substr(0, p.key().find('.'));
    if (std::find(heads.begin(), heads.end(), first) == heads.end()) heads.push_back(first);
  }
  return heads;
}

namespace {

c10::ScalarType compute_dtype(const std::string& dtype) { return dtype == "bfloat16" ? c10::kBFloat16 : c10::kFloat; }

// LoadOptions for a task model from `config` (read from `where`).
LoadOptions task_options(const nlohmann::json& config, const std::string& where, data::Task task,
                         const std::vector<std::string>& label_names, uint64_t seed, const std::string& dtype) {
  const int64_t num_labels = task == data::Task::kRegression ? 1 : static_cast<int64_t>(label_names.size());
  LoadOptions options = load_options_for_task(config, task, num_labels, seed, where);
  options.dtype = compute_dtype(dtype);
  return options;
}

// A classifier's config gets the label names; a regressor's its problem type.
std::shared_ptr<Model> name_labels(std::shared_ptr<Model> model, data::Task task,
                                   const std::vector<std::string>& label_names) {
  if (task == data::Task::kClassification) {
    nlohmann::json id2label = nlohmann::json::object(), label2id = nlohmann::json::object();
    for (size_t i = 0; i < label_names.size(); ++i) {
      id2label[std::to_string(i)] = label_names[i];
      label2id[label_names[i]] = i;
    }
    model->mutable_config()["id2label"] = id2label;
    model->mutable_config()["label2id"] = label2id;
  } else if (task == data::Task::kRegression) {
    model->mutable_config()["problem_type"] = "regression";
  }
  return model;
}

}  // namespace

std::shared_ptr<Model> load_task_model(const std::string& path, const std::string& dtype, data::Task task,
                                       const std::vector<std::string>& label_names, uint64_t seed) {
  const std::string config_path = (fs::path(path) / "config.json").string();
  const LoadOptions options = task_options(read_json(config_path), config_path, task, label_names, seed, dtype);
  return name_labels(load_model(path, options), task, label_names);
}

std::shared_ptr<peft::PeftModel> load_adapter(const std::string& model_path, const std::string& adapter_dir,
                                              const std::string& dtype) {
  const std::string config_path = (fs::path(adapter_dir) / "adapter_config.json").string();
  const nlohmann::json adapter = read_json(config_path);
  const std::string task_type = adapter.value("task_type", "");
  if (task_type != "SEQ_CLS") {
    LoadOptions options;
    options.dtype = compute_dtype(dtype);
    return peft::PeftModel::load(load_model(model_path, options), adapter_dir);
  }
  // A classifier: the number of labels is the first dimension of the head's last weight.
  const nlohmann::json config = read_json((fs::path(model_path) / "config.json").string());
  const ArchNames& names = arch_names(config, model_path);
  const std::string weights = (fs::path(adapter_dir) / "adapter_model.safetensors").string();
  auto file = io::SafetensorsFile::open(weights);
  int64_t num_labels = -1;
  for (const auto& info : file->tensors()) {
    const std::string suffix = std::string(".") + names.classifier_weight;
    if (info.name.size() >= suffix.size() &&
        info.name.compare(info.name.size() - suffix.size(), suffix.size(), suffix) == 0 && info.shape.size() == 2)
      num_labels = info.shape[0];
  }
  MIXPEFT_CHECK(num_labels > 0, ErrorKind::kCorrupt, weights, ": task_type SEQ_CLS but no ", names.classifier_weight,
                " tensor for the classification head");
  LoadOptions options =
      load_options_for_task(config, data::Task::kClassification, num_labels, 0, model_path + "/config.json");
  options.dtype = compute_dtype(dtype);
  auto model = load_model(model_path, options);
  if (num_labels == 1) model->mutable_config()["problem_type"] = "regression";
  return peft::PeftModel::load(model, adapter_dir);
}

// ---- Trainable -----------------------------------------------------------------------------

int64_t Trainable::num_trainable() const {
  int64_t n = 0;
  for (const auto& [name, p] : parameters) n += p.numel();
  return n;
}

int64_t Trainable::num_parameters() const {
  int64_t n = 0;
  for (const auto& p : model->parameters()) n += p.numel();
  return n;
}

void Trainable::save(const std::string& dir) const {
  if (peft) {
    peft->save(dir);
    return;
  }
  save_model(*model, dir);
  // The tokenizer files travel with a whole model, so the folder loads on its own.
  copy_tokenizer_files(tokenizer_dir, dir);
}

int copy_tokenizer_files(const std::string& from, const std::string& to) {
  const fs::path src = fs::is_directory(from) ? fs::path(from) : fs::path(from).parent_path();
  int copied = 0;
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
                           "merges.txt", "vocab.txt"}) {
    const fs::path file = src / name;
    if (!fs::exists(file)) continue;
    io::write_file_atomic((fs::path(to) / name).string(), io::read_file(file.string()));
    ++copied;
  }
  return copied;
}

Trainable build_trainable(const JobSpec& job, const data::Dataset& dataset) {
  Trainable t;
  t.method = job.method();
  t.tokenizer_dir = job.model.tokenizer.empty() ? job.model.path : job.model.tokenizer;
  if (!job.model.config.empty()) {
    const nlohmann::json config = read_json(job.model.config);
    const LoadOptions options =
        task_options(config, job.model.config, dataset.task, dataset.label_names, job.seed, job.model.dtype);
    t.model = name_labels(create_model(config, options), dataset.task, dataset.label_names);
  } else {
    t.model = load_task_model(job.model.path, job.model.dtype, dataset.task, dataset.label_names, job.seed);
  }
  const bool classifier = dataset.task != data::Task::kCausalLm;
  if (t.method == "FULL" || t.method == "HEAD") {
    std::set<std::string> head;
    for (const auto& h : head_modules(*t.model)) head.insert(h);
    for (auto& p : t.model->named_parameters()) {
      const bool train = t.method == "FULL" || head.count(p.key().substr(0, p.key().find('.')));
      p.value().set_requires_grad(train);
      if (train) t.parameters.emplace_back(p.key(), p.value());
    }
    MIXPEFT_CHECK(!t.parameters.empty(), ErrorKind::kInvalidArgument, "peft: HEAD: ", t.model->architecture(),
                  " has no head parameters");
    return t;
  }
  nlohmann::json config = job.peft;
  config["peft_type"] = t.method;
  if (classifier && (!config.contains("modules_to_save") || config["modules_to_save"].is_null()))
    config["modules_to_save"] = head_modules(*t.model);
  config["task_type"] = classifier ? "SEQ_CLS" : "CAUSAL_LM";
  try {
    t.peft = peft::PeftModel::create(t.model, config);
  } catch (const Error& e) {
    throw Error(e.kind(), std::string("peft: ") + e.what());
  }
  t.parameters = t.peft->trainable_parameters();
  return t;
}

}  // namespace mixpeft::train
