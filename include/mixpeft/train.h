// Fine-tuning: a job (model + dataset + method + training settings), the
// training loop with checkpoints and bit-exact resume, data parallelism on
// c10d, and evaluation.
//
//   auto job = mixpeft::train::JobSpec::from_json(mixpeft::config::read_job_file("job.toml"), ".");
//   mixpeft::train::RunOptions run;          // rank 0 of 1, progress on stderr
//   mixpeft::train::RunResult r = mixpeft::train::run_training(job, run);
//   // job.output_dir/: metrics.jsonl, curves.svg, final/, best/, checkpoints/step-N/
//
// docs/TRAINING.md describes every key of a job, the files a run writes, the
// checkpoint format, resuming, and data parallelism. Errors are
// mixpeft::Error whose message names the key ("train.lr: must be > 0"), the
// file or the step ("step 12: the loss is nan").
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "mixpeft/data.h"
#include "mixpeft/model.h"

namespace mixpeft::peft {
class PeftModel;
}
namespace mixpeft::tok {
class Tokenizer;
}

namespace mixpeft::train {

// ---- The job --------------------------------------------------------------------

// [model]: the pretrained checkpoint and how to load it.
struct ModelSpec {
  std::string path;          // HF folder: config.json + model.safetensors
  // A config.json for a model trained from scratch (pretraining): its
  // weights start from the seeded initialisation. Exactly one of path and
  // config is set; config needs peft_type FULL and a tokenizer.
  std::string config;
  std::string tokenizer;     // folder or tokenizer.json; "" = path
  std::string dtype = "float32";  // "float32" or "bfloat16" (frozen weights and compute)
};

// [train]: the loop. Every key is optional.
struct TrainConfig {
  int64_t epochs = 3;            // passes over the train split (ignored when max_steps > 0)
  int64_t max_steps = 0;         // optimizer steps; 0 = epochs * steps per epoch
  int64_t batch_size = 8;        // rows per micro-batch, over all processes together
  int64_t grad_accum = 1;        // micro-batches per optimizer step
  int64_t eval_batch_size = 0;   // 0 = batch_size
  // AdamW (PyTorch's formula). Biases and norm weights get no weight decay.
  double lr = 3e-4;
  double weight_decay = 0.0;
  double adam_beta1 = 0.9, adam_beta2 = 0.999, adam_eps = 1e-8;
  double max_grad_norm = 1.0;    // clip the global gradient norm; 0 = off
  std::string schedule = "linear";  // "linear", "cosine" or "constant", after warm-up
  int64_t warmup_steps = 0;      // linear warm-up from 0; takes precedence over warmup_ratio
  double warmup_ratio = 0.0;     // fraction of the steps, when warmup_steps is 0
  double label_smoothing = 0.0;  // classification only, in [0, 1)
  bool bf16 = false;             // autocast matrix products to bfloat16 (CPU autocast)
  bool group_by_length = false;  // length-grouped batches (less padding)
  // AdaMix: weight of the consistency loss (a second forward pass); 0 = one pass.
  double consistency_weight = 1.0;
  int64_t log_every = 10;        // steps between metric records / plain progress lines
  int64_t eval_every = 0;        // steps between evaluations; 0 = at the end of each epoch
  int64_t save_every = 0;        // steps between checkpoints; 0 = at each evaluation
  int64_t keep_checkpoints = 2;  // newest checkpoints kept (the best is kept apart)
  // Validation metric that picks the best checkpoint and drives early
  // stopping; "" = the task's default (accuracy, pearson, or loss for causal_lm).
  std::string metric;
  int64_t early_stopping_patience = 0;  // evaluations without improvement; 0 = never stop
  std::string progress = "auto";  // "auto", "bar", "plain", "off"
};

// A whole job (the TOML/JSON file, see docs/TRAINING.md):
//   output_dir = "runs/spam-lora"     seed = 42
//   [model]   path, tokenizer, dtype
//   [dataset] as data::DatasetSpec
//   [peft]    an adapter config (peft_type LORA, ADAMIX, ...) or
//             peft_type "FULL" (every weight trains) / "HEAD" (only the task head)
//   [train]   TrainConfig
struct JobSpec {
  std::string output_dir;  // required
  uint64_t seed = 42;      // head init, data order, dropout
  ModelSpec model;
  data::DatasetSpec dataset;
  nlohmann::json peft;     // object with "peft_type"
  TrainConfig train;

  // Validates everything a run needs before anything runs; unknown keys are
  // kInvalidArgument naming them and listing the valid ones. Relative paths
  // are taken relative to `base_dir` (the job file's folder).
  static JobSpec from_json(const nlohmann::json& job, const std::string& base_dir = "");
  nlohmann::json to_json() const;
  std::string method() const;  // peft.peft_type upper-cased
};

// ---- Building what trains ------------------------------------------------------

// The model a job trains, its trainable parameters and how to save them.
struct Trainable {
  std::shared_ptr<Model> model;
  std::shared_ptr<peft::PeftModel> peft;  // null for FULL and HEAD
  std::string method;                      // "LORA", ..., "FULL", "HEAD"
  std::vector<std::pair<std::string, at::Tensor>> parameters;  // those that train, in model order
  std::string tokenizer_dir;  // copied beside FULL / HEAD models, so they load on their own
  int64_t num_trainable() const;
  int64_t num_parameters() const;
  // PEFT: adapter_config.json + adapter_model.safetensors; FULL / HEAD: an HF
  // model folder (config.json, model.safetensors, and the tokenizer files).
  void save(const std::string& dir) const;
};

// LoadOptions that give `config` (a config.json) the head `task` needs:
// *ForSequenceClassification with num_labels (1 for regression) or the
// causal-LM architecture; a head absent from the checkpoint is allowed and
// freshly initialised (seeded). kInvalidArgument when the checkpoint's own
// classification head has another number of labels.
LoadOptions load_options_for_task(const nlohmann::json& config, data::Task task, int64_t num_labels,
                                  uint64_t seed, const std::string& where);

// Loads `path` with the head `task` needs (see load_options_for_task); a
// classifier's config gets the label names as id2label / label2id.
std::shared_ptr<Model> load_task_model(const std::string& path, const std::string& dtype, data::Task task,
                                       const std::vector<std::string>& label_names, uint64_t seed);

// Loads an adapter onto its base model. An adapter whose adapter_config.json
// says task_type "SEQ_CLS" gets the base model's classification architecture,
// with num_labels read from the saved head (its last weight's first dimension).
std::shared_ptr<peft::PeftModel> load_adapter(const std::string& model_path, const std::string& adapter_dir,
                                              const std::string& dtype = "float32");

// Copies the tokenizer files found in `from` (a folder, or a file whose
// folder is used) into the folder `to`, each atomically, so a saved model
// folder loads on its own. Returns how many files were copied.
int copy_tokenizer_files(const std::string& from, const std::string& to);

// Loads the job's model with its task head and attaches the method.
Trainable build_trainable(const JobSpec& job, const data::Dataset& dataset);

// Names of the parameters outside the base model (the task head), e.g.
// {"classifier"} or {"score"}: what PEFT keeps trainable as modules_to_save.
std::vector<std::string> head_modules(Model& model);

// ---- Evaluation ----------------------------------------------------------------

struct EvalOptions {
  int64_t batch_size = 16;
  int64_t pad_id = 0;
  bool bf16 = false;
};

// The evaluation options a job's [train] table gives: eval_batch_size (else
// batch_size) and bf16, with the tokenizer's pad id.
EvalOptions eval_options(const TrainConfig& train, int64_t pad_id);

// Metrics of `model` (eval mode, no gradients) on `split`:
//   classification: loss, accuracy, f1 (binary with 2 labels, else macro), mcc
//   regression:     loss (MSE), pearson, spearman
//   causal_lm:      loss (mean per completion token), perplexity
// Rows without a label (test splits) are skipped; no labelled row is an error.
nlohmann::json evaluate(Model& model, const data::Dataset& dataset, const data::Split& split,
                        const EvalOptions& options);

// The metric a task selects checkpoints by, and whether larger is better.
std::pair<std::string, bool> default_metric(data::Task task);
// The metrics evaluate() reports for a task ("loss", "accuracy", ...).
std::vector<std::string> metric_names(data::Task task);
// Whether a larger value of `metric` is better (false for loss, perplexity).
bool greater_is_better(const std::string& metric);

// ---- Running -----------------------------------------------------------------

// The process group a run joins. world_size 1 needs nothing else. For
// more, every process gets the same master_addr:master_port (rank 0 hosts
// the c10d TCPStore there) and its own rank.
struct DistributedConfig {
  int rank = 0;
  int world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 0;
  // Reads RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT (torchrun's names);
  // world_size 1 when WORLD_SIZE is unset. kInvalidArgument for bad values.
  static DistributedConfig from_env();
};

struct RunOptions {
  // Continue from the newest complete checkpoint in output_dir/checkpoints
  // (or resume_from, a checkpoint folder); with none there, start fresh.
  bool resume = false;
  std::string resume_from;
  DistributedConfig dist;
  // For tests and tools: stop (as if killed) after this many optimizer
  // steps, without the final evaluation and save; 0 = off.
  int64_t stop_after_steps = 0;
};

struct RunResult {
  int64_t steps = 0;                 // optimizer steps done in total
  int64_t resumed_from_step = -1;    // -1 when the run started fresh
  double last_loss = 0;              // mean train loss of the last step
  nlohmann::json final_metrics;      // validation metrics at the end (empty when stopped early)
  nlohmann::json best_metrics;       // of the best evaluation
  int64_t best_step = -1;
  bool early_stopped = false;
  double seconds = 0;                // wall time of this process's run (loading included)
  double train_seconds = 0;          // wall time of the training loop (evaluations included)
  nlohmann::json test_metrics;       // test split with the best weights (empty without a labelled test split)
  int64_t test_step = -1;            // the step whose weights test_metrics measured
  int64_t trainable = 0, total = 0;  // parameters
  std::string final_dir, best_dir;   // artifacts written ("" when none)
};

// Runs a job to the end: trains, evaluates, checkpoints, writes
// output_dir/{job.json, metrics.jsonl, curves.svg, final/, best/} and, when
// the dataset has a labelled test split, evaluates it with the best weights.
// Last, output_dir/result.json sums the run up: method, peft config, task,
// seed, trainable/total parameters, steps, train_seconds, artifact (best/
// or final/) and its safetensors bytes, metric, best_step/best_metrics,
// final_metrics, test_step/test_metrics.
// A NaN or infinite loss stops the run with kInvalidArgument ("step N:
// the training loss is nan ...") and leaves the last checkpoint in place.
RunResult run_training(const JobSpec& job, const RunOptions& options);

// The checkpoint folders of a run, oldest first (complete ones only).
std::vector<std::string> list_checkpoints(const std::string& output_dir);

}  // namespace mixpeft::train
