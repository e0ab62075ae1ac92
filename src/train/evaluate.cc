// Evaluation of a model on a split, and the tensors/losses the trainer shares.
#include <cmath>

#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include "mixpeft/error.h"
#include "mixpeft/metrics.h"
#include "mixpeft/train.h"
#include "train/internal.h"
#include "train/loss.h"

namespace mixpeft::train {
namespace {

at::Tensor from_vector(const std::vector<int64_t>& v, int64_t rows, int64_t cols, c10::Device device) {
  auto t = torch::from_blob(const_cast<int64_t*>(v.data()), {rows, cols}, torch::kInt64).clone();
  return t.to(device);
}

}  // namespace

TensorBatch to_tensors(const data::Batch& b, data::Task task, c10::Device device) {
  TensorBatch t;
  t.rows = b.rows;
  t.inputs.input_ids = from_vector(b.input_ids, b.rows, b.cols, device);
  t.inputs.attention_mask = from_vector(b.attention_mask, b.rows, b.cols, device);
  if (!b.token_type_ids.empty()) t.inputs.token_type_ids = from_vector(b.token_type_ids, b.rows, b.cols, device);
  if (task == data::Task::kCausalLm) {
    t.labels = from_vector(b.labels, b.rows, b.cols, device);
    std::vector<int64_t> rows, targets;
    for (int64_t r = 0; r < b.rows; ++r)
      for (int64_t c = 0; c + 1 < b.cols; ++c) {
        const int64_t next = b.labels[static_cast<size_t>(r * b.cols + c + 1)];
        if (next == data::kIgnoreIndex) continue;
        rows.push_back(r * b.cols + c);
        targets.push_back(next);
      }
    t.inputs.logits_rows = from_vector(rows, static_cast<int64_t>(rows.size()), 1, device).view({-1});
    t.lm_targets = from_vector(targets, static_cast<int64_t>(targets.size()), 1, device).view({-1});
  } else if (task == data::Task::kClassification) {
    t.labels = from_vector(b.labels, b.rows, 1, device).view({b.rows});
  } else {
    t.targets = torch::from_blob(const_cast<float*>(b.targets.data()), {b.rows}, torch::kFloat).clone().to(device);
  }
  return t;
}

at::Tensor loss_sum(data::Task task, const at::Tensor& logits_in, const TensorBatch& batch, double label_smoothing) {
  switch (task) {
    case data::Task::kClassification:
      return at::cross_entropy_loss(logits_in.to(at::kFloat), batch.labels, {}, at::Reduction::Sum,
                                    data::kIgnoreIndex, label_smoothing);
    case data::Task::kRegression:
      return (logits_in.to(at::kFloat).view({batch.rows}) - batch.targets).pow(2).sum();
    case data::Task::kCausalLm:
      if (logits_in.dim() == 2) return cross_entropy_sum(logits_in, batch.lm_targets, data::kIgnoreIndex);
      return causal_lm_loss_sum(logits_in, batch.labels, data::kIgnoreIndex);
  }
  fail(ErrorKind::kInternal, "loss_sum: unknown task");
}

int64_t loss_terms(data::Task task, const std::vector<data::Example>& examples, const std::vector<size_t>& indices) {
  if (task != data::Task::kCausalLm) return static_cast<int64_t>(indices.size());
  int64_t n = 0;
  for (size_t i : indices) {
    const auto& labels = examples[i].labels;
    for (size_t j = 1; j < labels.size(); ++j) n += labels[j] != data::kIgnoreIndex;
  }
  return n;
}

AutocastGuard::AutocastGuard(bool enabled) : enabled_(enabled) {
  if (!enabled_) return;
  was_enabled_ = at::autocast::is_cpu_enabled();
  previous_dtype_ = at::autocast::get_autocast_cpu_dtype();
  at::autocast::set_cpu_enabled(true);
  at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
  at::autocast::increment_nesting();
}

AutocastGuard::~AutocastGuard() {
  if (!enabled_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  at::autocast::set_cpu_enabled(was_enabled_);
  at::autocast::set_autocast_cpu_dtype(previous_dtype_);
}

Bf16Guard::Bf16Guard(bool enabled, c10::Device device)
    : matmul_(enabled && device.is_cpu()), autocast_(enabled && !matmul_.enabled()) {}

std::vector<std::string> metric_names(data::Task task) {
  switch (task) {
    case data::Task::kClassification:
      return {"loss", "accuracy", "f1", "mcc"};
    case data::Task::kRegression:
      return {"loss", "pearson", "spearman"};
    case data::Task::kCausalLm:
      return {"loss", "perplexity"};
  }
  return {};
}

bool greater_is_better(const std::string& metric) { return metric != "loss" && metric != "perplexity"; }

std::pair<std::string, bool> default_metric(data::Task task) {
  switch (task) {
    case data::Task::kClassification:
      return {"accuracy", true};
    case data::Task::kRegression:
      return {"pearson", true};
    case data::Task::kCausalLm:
      return {"loss", false};
  }
  return {"loss", false};
}

bool is_labelled(data::Task task, const data::Example& e) {
  return task == data::Task::kClassification ? e.label >= 0
         : task == data::Task::kRegression   ? !std::isnan(e.target)
                                             : !e.labels.empty();
}

EvalOptions eval_options(const TrainConfig& train, int64_t pad_id) {
  EvalOptions eo;
  eo.batch_size = train.eval_batch_size > 0 ? train.eval_batch_size : train.batch_size;
  eo.pad_id = pad_id;
  eo.bf16 = train.bf16;
  return eo;
}

nlohmann::json evaluate(Model& model, const data::Dataset& dataset, const data::Split& split,
                        const EvalOptions& options) {
  const data::Task task = dataset.task;
  // Only labelled rows count.
  std::vector<size_t> labelled;
  for (size_t i = 0; i < split.examples.size(); ++i)
    if (is_labelled(task, split.examples[i])) labelled.push_back(i);
  MIXPEFT_CHECK(!labelled.empty(), ErrorKind::kInvalidArgument, split.path, ": the ", split.name,
                " split has no labelled rows to evaluate");
  data::BatchOptions bo;
  bo.batch_size = static_cast<size_t>(std::max<int64_t>(1, options.batch_size));
  bo.shuffle = false;
  bo.pad_id = options.pad_id;
  data::Batcher batcher(split.examples, task, bo);

  const bool was_training = model.is_training();
  model.eval();
  torch::NoGradGuard no_grad;
  const c10::Device device = model.parameters().empty() ? c10::Device(c10::kCPU) : model.parameters()[0].device();
  Bf16Guard bf16(options.bf16, device);
  double total = 0;
  int64_t terms = 0;
  std::vector<int64_t> predictions, references;
  std::vector<double> scores, targets;
  for (size_t start = 0; start < labelled.size(); start += bo.batch_size) {
    std::vector<size_t> idx(labelled.begin() + start,
                            labelled.begin() + std::min(labelled.size(), start + bo.batch_size));
    data::Batch batch = batcher.collate(idx);
    TensorBatch tb = to_tensors(batch, task, device);
    at::Tensor logits = model.forward(tb.inputs).logits.to(at::kFloat);
    total += loss_sum(task, logits, tb, 0.0).item<double>();
    terms += loss_terms(task, split.examples, idx);
    if (task == data::Task::kClassification) {
      at::Tensor pred = logits.argmax(-1).to(at::kCPU);
      for (int64_t r = 0; r < batch.rows; ++r) {
        predictions.push_back(pred[r].item<int64_t>());
        references.push_back(batch.labels[r]);
      }
    } else if (task == data::Task::kRegression) {
      at::Tensor s = logits.view({batch.rows}).to(at::kCPU).to(at::kDouble);
      for (int64_t r = 0; r < batch.rows; ++r) {
        scores.push_back(s[r].item<double>());
        targets.push_back(batch.targets[r]);
      }
    }
  }
  if (was_training) model.train();
  nlohmann::json m;
  m["loss"] = total / static_cast<double>(std::max<int64_t>(1, terms));
  if (task == data::Task::kClassification) {
    m["accuracy"] = metrics::accuracy(predictions, references);
    m["f1"] = dataset.label_names.size() == 2 ? metrics::f1_binary(predictions, references, 1)
                                              : metrics::f1_macro(predictions, references);
    m["mcc"] = metrics::matthews_corrcoef(predictions, references);
  } else if (task == data::Task::kRegression) {
    m["pearson"] = metrics::pearson(scores, targets);
    m["spearman"] = metrics::spearman(scores, targets);
  } else {
    m["perplexity"] = metrics::perplexity(total, static_cast<double>(terms));
  }
  m["examples"] = labelled.size();
  return m;
}

}  // namespace mixpeft::train
