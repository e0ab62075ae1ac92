// The training loop: batches, losses, AdamW, evaluation, checkpoints,
// resume, and data parallelism.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <set>
#include <tuple>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "mixpeft/adamix.h"
#include "mixpeft/error.h"
#include "mixpeft/peft.h"
#include "mixpeft/report.h"
#include "mixpeft/safetensors.h"
#include "mixpeft/tokenizer.h"
#include "mixpeft/train.h"
#include "train/checkpoint.h"
#include "train/distributed.h"
#include "train/internal.h"
#include "train/optim.h"

namespace fs = std::filesystem;

namespace mixpeft::train {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Dropout draws from the default CPU generator; each process gets its own stream.
uint64_t rank_seed(uint64_t seed, int rank) { return rank == 0 ? seed : data::splitmix64(seed ^ rank); }

at::Tensor cpu_generator_state() {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void set_cpu_generator_state(const at::Tensor& state) {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

// Keys of a job that may change between a run and its resumption.
const std::set<std::string> kResumableChanges = {"train.max_steps", "train.epochs", "train.progress",
                                                 "train.early_stopping_patience", "train.keep_checkpoints"};

void check_same_job(const nlohmann::json& saved, const nlohmann::json& now, const std::string& where) {
  std::vector<std::string> differ;
  nlohmann::json a = saved.flatten(), b = now.flatten();
  std::set<std::string> keys;
  for (auto it = a.begin(); it != a.end(); ++it) keys.insert(it.key());
  for (auto it = b.begin(); it != b.end(); ++it) keys.insert(it.key());
  for (const auto& k : keys) {
    std::string dotted = k.substr(1);
    for (char& c : dotted)
      if (c == '/') c = '.';
    if (kResumableChanges.count(dotted)) continue;
    if (!a.contains(k) || !b.contains(k) || a[k] != b[k]) differ.push_back(dotted);
  }
  if (differ.empty()) return;
  std::string list;
  for (size_t i = 0; i < differ.size() && i < 8; ++i) list += (list.empty() ? "" : ", ") + differ[i];
  fail(ErrorKind::kInvalidArgument, where, ": the job differs from the one that wrote this checkpoint in: ", list,
       " (only train.max_steps, train.epochs, train.early_stopping_patience, train.keep_checkpoints and "
       "train.progress may change on --resume; use a new output_dir for a different job)");
}

report::ProgressMode progress_mode(const std::string& s) {
  if (s == "bar") return report::ProgressMode::kBar;
  if (s == "plain") return report::ProgressMode::kPlain;
  if (s == "off") return report::ProgressMode::kOff;
  return report::ProgressMode::kAuto;
}

std::string fmt(double v, const char* format = "%.4f") {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

std::string metrics_line(const nlohmann::json& m) {
  std::string s;
  for (auto it = m.begin(); it != m.end(); ++it) {
    if (it.key() == "examples" || !it->is_number()) continue;
    s += (s.empty() ? "" : " ") + it.key() + " " + fmt(it->get<double>());
  }
  return s;
}

class Run {
 public:
  Run(const JobSpec& job, const RunOptions& options) : job_(job), options_(options), t_(job.train) {}

  RunResult run() {
    comm_ = connect(options_.dist);
    rank0_ = comm_->rank() == 0;
    const auto t_start = Clock::now();
    prepare();
    RunResult result;
    result.trainable = trainable_.num_trainable();
    result.total = trainable_.num_parameters();
    TrainerState st;
    if (options_.resume) st = resume(result);
    if (result.resumed_from_step < 0) start_fresh();
    train_loop(st, result);
    result.seconds = seconds_since(t_start);
    return result;
  }

 private:
  void prepare() {
    const std::string tok_path = job_.model.tokenizer.empty() ? job_.model.path : job_.model.tokenizer;
    tokenizer_ = tok::Tokenizer::load(tok_path);
    // Rank 0 tokenizes (and fills the cache) first; the others then read the cache.
    if (rank0_) dataset_ = data::load_dataset(job_.dataset, *tokenizer_);
    comm_->barrier();
    if (!rank0_) dataset_ = data::load_dataset(job_.dataset, *tokenizer_);
    pad_id_ = data::pad_id_for(*tokenizer_);

    trainable_ = build_trainable(job_, dataset_);
    for (const auto& [name, p] : trainable_.parameters)
      MIXPEFT_CHECK(p.is_floating_point(), ErrorKind::kInternal, "trainable parameter ", name, " is not floating point");
    std::vector<bool> decay;
    for (const auto& [name, p] : trainable_.parameters) decay.push_back(!no_weight_decay(name));
    AdamWOptions ao;
    ao.lr = t_.lr;
    ao.beta1 = t_.adam_beta1;
    ao.beta2 = t_.adam_beta2;
    ao.eps = t_.adam_eps;
    ao.weight_decay = t_.weight_decay;
    optimizer_ = std::make_unique<AdamW>(trainable_.parameters, decay, ao);
    if (trainable_.peft && trainable_.method == "ADAMIX") adamix_ = &peft::adamix_control(*trainable_.peft);

    data::BatchOptions bo;
    bo.batch_size = static_cast<size_t>(t_.batch_size);
    bo.seed = job_.seed;
    bo.group_by_length = t_.group_by_length;
    bo.pad_id = pad_id_;
    batcher_ = std::make_unique<data::Batcher>(dataset_.train, dataset_.task, bo);
    MIXPEFT_CHECK(t_.batch_size >= comm_->world_size(), ErrorKind::kInvalidArgument, "train: \"batch_size\" (",
                  t_.batch_size, ") is the batch of all processes together and must be at least the number of "
                  "processes (", comm_->world_size(), ")");
    const int64_t batches = static_cast<int64_t>(batcher_->num_batches());
    steps_per_epoch_ = (batches + t_.grad_accum - 1) / t_.grad_accum;
    total_steps_ = t_.max_steps > 0 ? t_.max_steps : t_.epochs * steps_per_epoch_;
    warmup_ = t_.warmup_steps > 0 ? t_.warmup_steps
                                  : static_cast<int64_t>(std::ceil(t_.warmup_ratio * static_cast<double>(total_steps_)));
    auto [metric, greater] = default_metric(dataset_.task);
    metric_ = t_.metric.empty() ? metric : t_.metric;
    greater_ = greater_is_better(metric_);
    device_ = trainable_.parameters.empty() ? c10::Device(c10::kCPU) : trainable_.parameters[0].second.device();
    log_path_ = (fs::path(job_.output_dir) / "metrics.jsonl").string();
  }

  void start_fresh() {
    torch::manual_seed(rank_seed(job_.seed, comm_->rank()));
    if (rank0_) {
      fs::create_directories(job_.output_dir);
      io::write_file_atomic((fs::path(job_.output_dir) / "job.json").string(), job_.to_json().dump(2) + "\n");
      log_ = std::make_unique<report::JsonlWriter>(log_path_, false);
    }
  }

  TrainerState resume(RunResult& result) {
    std::string dir = options_.resume_from;
    if (dir.empty()) {
      auto all = list_checkpoints(job_.output_dir);
      if (all.empty()) {
        if (rank0_) std::cerr << "mixpeft: no checkpoint in " << job_.output_dir << "/checkpoints; starting fresh\n";
        return {};
      }
      dir = all.back();
    }
    Checkpoint c = read_checkpoint(dir);
    check_same_job(c.job, job_.to_json(), dir);
    MIXPEFT_CHECK(c.world_size == comm_->world_size(), ErrorKind::kInvalidArgument, dir, ": written by ",
                  c.world_size, " process(es); resume it with the same number (--nproc ", c.world_size, ")");
    torch::NoGradGuard no_grad;
    std::vector<std::pair<std::string, at::Tensor>> optim_state;
    std::set<std::string> restored;
    std::map<std::string, at::Tensor*> params;
    for (auto& [name, p] : trainable_.parameters) params[name] = &p;
    for (auto& [key, tensor] : c.tensors) {
      if (key.rfind("param.", 0) == 0) {
        auto it = params.find(key.substr(6));
        MIXPEFT_CHECK(it != params.end(), ErrorKind::kCorrupt, dir, ": unexpected parameter ", key);
        MIXPEFT_CHECK(it->second->sizes() == tensor.sizes(), ErrorKind::kCorrupt, dir, ": ", key, " has shape ",
                      tensor.sizes(), ", the model ", it->second->sizes());
        it->second->copy_(tensor);
        restored.insert(it->first);
      } else if (key.rfind("optim.", 0) == 0) {
        optim_state.emplace_back(key.substr(6), tensor);
      }
    }
    for (const auto& [name, p] : params)
      MIXPEFT_CHECK(restored.count(name), ErrorKind::kCorrupt, dir, ": missing parameter param.", name);
    optimizer_->load_state(optim_state, c.state.step, dir);
    const std::string r = std::to_string(comm_->rank());
    auto rng = c.tensors.find("rng.cpu." + r);
    MIXPEFT_CHECK(rng != c.tensors.end(), ErrorKind::kCorrupt, dir, ": no generator state for rank ", r);
    set_cpu_generator_state(rng->second);
    if (adamix_) {
      auto routing = c.tensors.find("rng.routing." + r);
      MIXPEFT_CHECK(routing != c.tensors.end(), ErrorKind::kCorrupt, dir, ": no AdaMix routing state for rank ", r);
      adamix_->set_routing_state(routing->second);
    }
    if (rank0_) {
      // The log keeps what happened up to the checkpoint; later records (of
      // the run that was interrupted) are dropped, so it reads as one run.
      std::vector<nlohmann::json> kept;
      if (fs::exists(log_path_))
        for (auto& rec : report::read_jsonl(log_path_))
          if (rec.value("step", int64_t{0}) <= c.state.step) kept.push_back(rec);
      log_ = std::make_unique<report::JsonlWriter>(log_path_, false);
      for (const auto& rec : kept) log_->write(rec);
      log_->write({{"event", "resume"}, {"step", c.state.step}, {"checkpoint", dir}});
      std::cerr << "mixpeft: resuming from " << dir << " (step " << c.state.step << ")\n";
    }
    result.resumed_from_step = c.state.step;
    return c.state;
  }

  void save_checkpoint(const TrainerState& st) {
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    for (const auto& [name, p] : trainable_.parameters) tensors.emplace_back("param." + name, p.detach());
    for (auto& [name, t] : optimizer_->state()) tensors.emplace_back("optim." + name, t);
    auto cpu = comm_->all_gather(cpu_generator_state());
    for (size_t r = 0; r < cpu.size(); ++r) tensors.emplace_back("rng.cpu." + std::to_string(r), cpu[r]);
    if (adamix_) {
      auto routing = comm_->all_gather(adamix_->routing_state());
      for (size_t r = 0; r < routing.size(); ++r) tensors.emplace_back("rng.routing." + std::to_string(r), routing[r]);
    }
    if (rank0_)
      write_checkpoint(job_.output_dir, st, job_.to_json(), comm_->world_size(), tensors,
                       [&](const std::string& dir) { trainable_.save(dir); }, t_.keep_checkpoints);
    comm_->barrier();
  }

  // A copy of the trainable parameters at the best evaluation, for the test split.
  void remember_best() {
    if (!dataset_.has_test()) return;
    at::NoGradGuard no_grad;
    best_params_.clear();
    for (const auto& [name, p] : trainable_.parameters) best_params_.push_back(p.detach().clone());
  }

  bool test_has_labels() const {
    for (const auto& e : dataset_.test.examples)
      if (is_labelled(dataset_.task, e)) return true;
    return false;
  }

  // The test split's metrics with the best weights (the last ones when no
  // evaluation improved this run, e.g. a resumed run), logged as an eval
  // record of split "test". The weights stay the best ones afterwards:
  // final/ was already written.
  void evaluate_test(const TrainerState& st, RunResult& result, report::Progress* progress) {
    if (!dataset_.has_test() || !test_has_labels()) return;
    int64_t step = st.step;
    if (!best_params_.empty()) {
      at::NoGradGuard no_grad;
      for (size_t i = 0; i < best_params_.size(); ++i) trainable_.parameters[i].second.copy_(best_params_[i]);
      step = st.best_step;
    }
    result.test_metrics = evaluate(*trainable_.model, dataset_, dataset_.test, eval_options(t_, pad_id_));
    result.test_step = step;
    log_->write({{"event", "eval"}, {"step", step}, {"split", "test"}, {"metrics", result.test_metrics}});
    if (progress) progress->message("test (weights of step " + std::to_string(step) + "): " +
                                    metrics_line(result.test_metrics));
  }

  // output_dir/result.json: what a report needs about the run, in one file.
  void write_result_json(const RunResult& result, double tokens_per_step) const {
    const std::string artifact = result.best_dir.empty() ? result.final_dir : result.best_dir;
    int64_t bytes = 0;
    for (const auto& entry : fs::directory_iterator(artifact))
      if (entry.is_regular_file() && entry.path().extension() == ".safetensors")
        bytes += static_cast<int64_t>(entry.file_size());
    nlohmann::json r = {{"job", job_.output_dir},
                        {"method", trainable_.method},
                        {"peft", job_.peft},
                        {"task", data::to_string(dataset_.task)},
                        {"seed", job_.seed},
                        {"trainable_parameters", result.trainable},
                        {"total_parameters", result.total},
                        {"steps", result.steps},
                        {"resumed_from_step", result.resumed_from_step},
                        {"train_seconds", result.train_seconds},
                        {"tokens_per_step", tokens_per_step},
                        {"artifact", artifact},
                        {"artifact_bytes", bytes},
                        {"metric", metric_},
                        {"best_step", result.best_step},
                        {"best_metrics", result.best_metrics},
                        {"final_metrics", result.final_metrics},
                        {"test_step", result.test_step},
                        {"test_metrics", result.test_metrics}};
    io::write_file_atomic((fs::path(job_.output_dir) / "result.json").string(), r.dump(2) + "\n");
  }

  // Validation on rank 0; every process learns whether it improved and whether to stop.
  nlohmann::json evaluate_now(TrainerState& st, bool& improved, bool& stop) {
    nlohmann::json m;
    at::Tensor flags = at::zeros({2}, at::kLong);
    if (rank0_) {
      m = evaluate(*trainable_.model, dataset_, dataset_.validation, eval_options(t_, pad_id_));
      const double v = m.value(metric_, std::nan(""));
      improved = st.best_step < 0 || (greater_ ? v > st.best_value : v < st.best_value);
      if (std::isnan(v)) improved = st.best_step < 0;
      if (improved) {
        st.best_value = v;
        st.best_step = st.step;
        st.best_metrics = m;
        st.bad_evals = 0;
      } else {
        ++st.bad_evals;
      }
      stop = t_.early_stopping_patience > 0 && st.bad_evals >= t_.early_stopping_patience;
      flags[0] = improved ? 1 : 0;
      flags[1] = stop ? 1 : 0;
    }
    std::vector<at::Tensor> v{flags};
    comm_->broadcast(v);
    improved = v[0][0].item<int64_t>() != 0;
    stop = v[0][1].item<int64_t>() != 0;
    if (!rank0_) {
      // Keep the bookkeeping the same on every process (checkpoints are rank 0's anyway).
      if (improved) {
        st.best_step = st.step;
        st.bad_evals = 0;
      } else {
        ++st.bad_evals;
      }
    }
    return m;
  }

  void train_loop(TrainerState& st, RunResult& result) {
    trainable_.model->train();
    // bf16 on the CPU: the frozen weights' bf16 copies live for the whole
    // loop (evaluations included); each step nests its own Bf16Guard.
    nn::Bf16MatmulGuard bf16_weights(t_.bf16 && device_.is_cpu());
    std::unique_ptr<report::Progress> progress;
    if (rank0_)
      progress = std::make_unique<report::Progress>(stderr, progress_mode(t_.progress), total_steps_, t_.log_every);
    if (rank0_ && st.step == 0) {
      char line[256];
      std::snprintf(line, sizeof line, "%s on %s: %lld trainable of %lld parameters (%.4f%%), %lld steps, %d process(es)",
                    trainable_.method.c_str(), trainable_.model->architecture().c_str(),
                    static_cast<long long>(result.trainable), static_cast<long long>(result.total),
                    100.0 * static_cast<double>(result.trainable) / static_cast<double>(std::max<int64_t>(1, result.total)),
                    static_cast<long long>(total_steps_), comm_->world_size());
      progress->message(line);
      if (t_.bf16)
        progress->message(bf16_weights.enabled()
                              ? "bf16: frozen products in bf16 with fp32 sums (oneDNN), the rest in fp32"
                              : device_.is_cpu() ? "bf16: LibTorch's autocast (no native bf16 GEMM on this CPU)"
                                                 : "bf16: LibTorch's autocast");
    }
    const auto t0 = Clock::now();
    const int64_t first_step = st.step;
    double run_tokens = 0;
    double tokens = 0, interval_loss = 0;
    int64_t interval_steps = 0;
    bool stop = false;
    std::vector<std::vector<size_t>> plan;
    int64_t plan_epoch = -1;
    const int world = comm_->world_size(), rank = comm_->rank();
    const auto& examples = dataset_.train.examples;
    while (st.step < total_steps_ && !stop) {
      if (plan_epoch != st.epoch) {
        plan = batcher_->plan(static_cast<uint64_t>(st.epoch));
        plan_epoch = st.epoch;
      }
      const size_t first = static_cast<size_t>(st.batch_in_epoch);
      const size_t last = std::min(plan.size(), first + static_cast<size_t>(t_.grad_accum));
      int64_t terms = 0, rows = 0;
      for (size_t b = first; b < last; ++b) {
        terms += loss_terms(dataset_.task, examples, plan[b]);
        rows += static_cast<int64_t>(plan[b].size());
        for (size_t i : plan[b]) {
          tokens += static_cast<double>(examples[i].length());
          run_tokens += static_cast<double>(examples[i].length());
        }
      }
      optimizer_->zero_grad();
      double step_loss = 0;
      for (size_t b = first; b < last; ++b) {
        // This process's share of the micro-batch: a contiguous slice of its rows.
        const auto& all = plan[b];
        const size_t lo = all.size() * rank / world, hi = all.size() * (rank + 1) / world;
        if (lo == hi) continue;
        std::vector<size_t> mine(all.begin() + lo, all.begin() + hi);
        TensorBatch tb = to_tensors(batcher_->collate(mine), dataset_.task, device_);
        // AdaMix's consistency term compares the logits of every position,
        // as it always has: the LM head then runs on all of them.
        if (adamix_ && t_.consistency_weight > 0) tb.inputs.logits_rows = at::Tensor();
        at::Tensor loss;
        {
          Bf16Guard bf16(t_.bf16, device_);
          const auto n_terms = static_cast<double>(std::max<int64_t>(1, terms));
          at::Tensor logits = trainable_.model->forward(tb.inputs).logits;
          if (adamix_ && t_.consistency_weight > 0) {
            at::Tensor logits2 = trainable_.model->forward(tb.inputs).logits;
            at::Tensor task_loss, kl;
            // A causal LM's [B, T, vocabulary] logits: both terms in one pass over them.
            if (dataset_.task == data::Task::kCausalLm) {
              std::tie(task_loss, kl) =
                  causal_lm_loss_sum_and_consistency(logits, logits2, tb.labels, data::kIgnoreIndex);
            } else {
              task_loss = loss_sum(dataset_.task, logits, tb, t_.label_smoothing);
              kl = peft::adamix_consistency_loss(logits, logits2);
            }
            loss = task_loss / n_terms +
                   t_.consistency_weight * (kl * static_cast<double>(tb.rows)) / static_cast<double>(rows);
          } else {
            loss = loss_sum(dataset_.task, logits, tb, t_.label_smoothing) / n_terms;
          }
        }
        loss.backward();
        step_loss += loss.item<double>();
      }
      all_reduce_gradients(*comm_, trainable_.parameters);
      {
        std::vector<at::Tensor> l{at::full({1}, step_loss, at::kDouble)};
        comm_->all_reduce_sum(l);
        step_loss = l[0].item<double>();
      }
      // A non-finite loss or gradient would poison the weights and the
      // optimizer state: stop before the update, so the last checkpoint stays good.
      auto stop_run = [&](const char* what, double value) {
        if (progress) progress->finish();
        const auto all = list_checkpoints(job_.output_dir);
        fail(ErrorKind::kInvalidArgument, "step ", st.step + 1, ": the training ", what, " is ", value,
             "; stopping. ", all.empty() ? std::string("No checkpoint was written yet.")
                                         : "The last good checkpoint is " + all.back() + " (--resume continues from it).",
             " Try a lower train.lr, train.max_grad_norm = 1, or float32 weights.");
      };
      if (!std::isfinite(step_loss)) stop_run("loss", step_loss);
      const double grad_norm = clip_grad_norm(trainable_.parameters, t_.max_grad_norm);
      if (!std::isfinite(grad_norm)) stop_run("gradient norm", grad_norm);
      const double lr = t_.lr * lr_multiplier(t_.schedule, st.step, warmup_, total_steps_);
      optimizer_->step(lr);
      ++st.step;
      st.last_loss = step_loss;
      st.batch_in_epoch = static_cast<int64_t>(last);
      bool epoch_end = false;
      if (last >= plan.size()) {
        ++st.epoch;
        st.batch_in_epoch = 0;
        epoch_end = true;
      }
      interval_loss += step_loss;
      ++interval_steps;
      const double epoch_pos = static_cast<double>(st.epoch) +
                               static_cast<double>(st.batch_in_epoch) / static_cast<double>(std::max<size_t>(1, plan.size()));
      const double elapsed = seconds_since(t0);
      const double tok_s = elapsed > 0 ? tokens / elapsed : 0;
      const bool final_step = st.step == total_steps_;
      if (rank0_) {
        if (st.step % t_.log_every == 0 || final_step) {
          log_->write({{"event", "train"},
                       {"step", st.step},
                       {"epoch", epoch_pos},
                       {"loss", interval_loss / static_cast<double>(interval_steps)},
                       {"lr", lr},
                       {"grad_norm", grad_norm},
                       {"tokens_per_second", tok_s},
                       {"elapsed", elapsed}});
          interval_loss = 0;
          interval_steps = 0;
        }
        report::ProgressState ps;
        ps.step = st.step;
        ps.total_steps = total_steps_;
        ps.epoch = epoch_pos;
        ps.loss = step_loss;
        ps.lr = lr;
        ps.tokens_per_second = tok_s;
        ps.elapsed_seconds = elapsed;
        progress->update(ps);
      }
      const bool eval_now = (t_.eval_every > 0 && st.step % t_.eval_every == 0) ||
                            (t_.eval_every == 0 && epoch_end) || final_step;
      bool improved = false;
      if (eval_now) {
        nlohmann::json m = evaluate_now(st, improved, stop);
        if (rank0_) {
          log_->write({{"event", "eval"}, {"step", st.step}, {"split", "validation"}, {"metrics", m}});
          progress->message("step " + std::to_string(st.step) + " validation: " + metrics_line(m) +
                            (improved ? "  (best)" : ""));
          if (improved) {
            replace_dir((fs::path(job_.output_dir) / "best").string(),
                        [&](const std::string& dir) { trainable_.save(dir); });
            remember_best();
          }
          if (final_step || stop) result.final_metrics = m;
        }
      }
      const bool save_now = (t_.save_every > 0 && st.step % t_.save_every == 0) ||
                            (t_.save_every == 0 && eval_now) || final_step || stop;
      if (save_now) save_checkpoint(st);
      if (options_.stop_after_steps > 0 && st.step >= options_.stop_after_steps && !final_step) {
        if (progress) progress->finish();
        result.steps = st.step;
        result.last_loss = st.last_loss;
        return;
      }
    }
    if (progress) progress->finish();
    result.steps = st.step;
    result.last_loss = st.last_loss;
    result.early_stopped = stop && st.step < total_steps_;
    result.best_step = st.best_step;
    result.best_metrics = st.best_metrics;
    if (rank0_) {
      result.final_dir = (fs::path(job_.output_dir) / "final").string();
      replace_dir(result.final_dir, [&](const std::string& dir) { trainable_.save(dir); });
      if (st.best_step >= 0) result.best_dir = (fs::path(job_.output_dir) / "best").string();
      result.train_seconds = seconds_since(t0);
      evaluate_test(st, result, progress.get());
      log_->write({{"event", "end"},
                   {"step", st.step},
                   {"best_step", st.best_step},
                   {"best_metrics", st.best_metrics},
                   {"early_stopped", result.early_stopped}});
      // Mean tokens (padding excluded) per optimizer step of this process's run.
      write_result_json(result, st.step > first_step ? run_tokens / static_cast<double>(st.step - first_step) : 0.0);
      try {
        report::write_svg(report::training_charts(report::read_jsonl(log_path_)),
                          (fs::path(job_.output_dir) / "curves.svg").string());
      } catch (const Error& e) {
        std::cerr << "mixpeft: warning: could not plot the curves: " << e.what() << "\n";
      }
    }
    comm_->barrier();
  }

  const JobSpec& job_;
  const RunOptions& options_;
  const TrainConfig& t_;
  std::unique_ptr<Communicator> comm_;
  bool rank0_ = true;
  std::unique_ptr<tok::Tokenizer> tokenizer_;
  data::Dataset dataset_;
  int64_t pad_id_ = 0;
  Trainable trainable_;
  std::unique_ptr<AdamW> optimizer_;
  peft::AdaMixControl* adamix_ = nullptr;
  std::vector<at::Tensor> best_params_;  // rank 0, with a test split: the weights of the best evaluation
  std::unique_ptr<data::Batcher> batcher_;
  int64_t steps_per_epoch_ = 0, total_steps_ = 0, warmup_ = 0;
  std::string metric_;
  bool greater_ = true;
  c10::Device device_{c10::kCPU};
  std::string log_path_;
  std::unique_ptr<report::JsonlWriter> log_;
};

}  // namespace

RunResult run_training(const JobSpec& job, const RunOptions& options) { return Run(job, options).run(); }

}  // namespace mixpeft::train
