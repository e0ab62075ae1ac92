// AdaMix (Wang et al., 2022; official code microsoft/AdaMix): a mixture of M
// adaptation modules per site, trained with stochastic routing and merged by
// averaging into one module, so inference costs one module.
//
// Two variants (config "variant"):
//  - "adapter": bottleneck adapters at the block slots (nn::AdapterSlots);
//    the down and up projections are banks of M experts:
//      <block>.adamix_ffn.down.<i>.weight [m, d], .bias [m]   (i = 0..M-1)
//      <block>.adamix_ffn.up.weight [d, m], .bias [d]         (shared: one module)
//    (adamix_attn.* too with placement "houlsby"; a bank that is shared, or
//    merged, is one module without the index: "...down.weight").
//  - "lora": LoRA on the target Linear layers, A and B banks:
//      <linear>.adamix_A.<i>.weight [r, in]   (i = 0..M-1)
//      <linear>.adamix_B.weight [out, r]      (shared: one module)
//
// Routing (training mode): every forward call, each bank of M > 1 experts
// draws one expert uniformly from the method's own generator (seeded with
// "seed"); one draw serves the whole mini-batch; banks draw independently,
// in forward order. Shared (single-module) banks draw nothing. Eval mode:
// the experts' weights averaged uniformly (or a random per-token /
// per-sequence choice, "eval_routing"). merge() replaces each bank by its
// average; the LoRA variant then also folds s * B A into the base weight.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>

#include "mixpeft/adamix.h"
#include "mixpeft/nn.h"
#include "mixpeft/peft.h"
#include "peft/bottleneck/bottleneck.h"

namespace mixpeft::peft {

enum class EvalRouting { kAverage, kRandomToken, kRandomSequence };
EvalRouting parse_eval_routing(const std::string& mode, const std::string& where);
std::string to_string(EvalRouting mode);

// What every bank of one method shares: the routing generator and mode.
struct RoutingState {
  at::Generator gen;
  EvalRouting eval = EvalRouting::kAverage;
};

// A bank of linear experts registered on `parent` under `name`: with M > 1
// experts a ModuleList ("<name>.<i>.weight"); with one (a shared bank, or
// after merge()) a single Linear ("<name>.weight").
class ExpertBank {
 public:
  // The experts are deep copies of `prototype` (already initialised).
  ExpertBank(torch::nn::Module& parent, std::string name, std::string full_name, const torch::nn::Linear& prototype,
             int64_t num_experts, std::shared_ptr<RoutingState> routing);
  at::Tensor forward(const at::Tensor& x);
  // The one weight [out, in] and bias a forward applies to every row (the
  // single or merged expert; in training a freshly drawn expert, as forward()
  // draws; in eval the average). False, drawing nothing, when eval routing
  // picks an expert per token or per sequence instead.
  bool forward_weights(at::Tensor& weight, at::Tensor& bias);
  int64_t size() const { return static_cast<int64_t>(experts_.size()); }
  bool merged() const { return !merged_.is_empty(); }
  // The uniform average of the experts' weight [out, in] and bias (undefined without bias).
  at::Tensor mean_weight() const;
  at::Tensor mean_bias() const;
  // The module forward() uses when there is one: the single expert or the merged average.
  torch::nn::Linear single() const;
  // merge(): one Linear with the averaged weights replaces the experts
  // (requires_grad as theirs); unmerge() puts the experts back unchanged.
  // No-ops for a single-module bank.
  void merge();
  void unmerge();
  void unregister();
  const std::string& full_name() const { return full_name_; }
  int64_t last_choice() const { return last_; }

 private:
  at::Tensor routed(const at::Tensor& x);

  torch::nn::Module* parent_;
  std::string name_, full_name_;
  std::vector<torch::nn::Linear> experts_;
  torch::nn::ModuleList list_{nullptr};  // registered when M > 1 and not merged
  torch::nn::Linear merged_{nullptr};
  std::shared_ptr<RoutingState> routing_;
  int64_t last_ = -1;
};

// The adapter variant at one site: h + up(act(down(h))) with expert banks.
class AdaMixAdapterImpl : public torch::nn::Module {
 public:
  AdaMixAdapterImpl(const std::string& full_name, const torch::nn::Linear& down, const torch::nn::Linear& up,
                    int64_t down_experts, int64_t up_experts, std::string activation,
                    std::shared_ptr<RoutingState> routing);
  at::Tensor forward(const at::Tensor& h);
  std::unique_ptr<ExpertBank> down, up;
  std::string activation;
};
TORCH_MODULE(AdaMixAdapter);

// The LoRA variant on one Linear: base_out + s * B(A(dropout(x))).
class AdaMixLoraLayer : public nn::LinearAdapter {
 public:
  AdaMixLoraLayer(nn::LinearImpl& base, const std::string& full_name, int64_t r, double scaling, double dropout,
                  int64_t a_experts, int64_t b_experts, at::Generator& init_gen,
                  std::shared_ptr<RoutingState> routing);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& base_out) override;
  // s * mean(B) mean(A) as [out, in]: the eval-mode (and merged) update.
  at::Tensor delta_weight() const;
  void merge();
  void unmerge();
  void unload();

  std::unique_ptr<ExpertBank> A, B;
  double scaling;
  bool merged = false;

 private:
  nn::LinearImpl* base_;
  torch::nn::Dropout dropout_{nullptr};
};

}  // namespace mixpeft::peft
