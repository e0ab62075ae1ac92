// AdaMix (Wang et al., 2022): what a trainer and an analysis need beyond the
// generic PEFT interface. The method itself is peft_type "ADAMIX"
// (src/peft/adamix/, docs/methods/adamix.md).
//
//   auto peft = PeftModel::create(model, {{"peft_type", "ADAMIX"}, {"num_experts", 4}});
//   peft->model().train();
//   auto logits1 = peft->forward(batch).logits;   // every bank draws an expert
//   auto logits2 = peft->forward(batch).logits;   // and draws again
//   auto loss = cross_entropy(logits1, labels) + w * adamix_consistency_loss(logits1, logits2);
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "mixpeft/peft.h"

namespace mixpeft::peft {

// AdaMix's consistency regulariser, as the official RoBERTa code computes it
// (symmetric_KL_loss): 0.5 * (KL(p2 || p1) + KL(p1 || p2)) with p = softmax
// over the last dimension, computed in float32. In each KL the target
// distribution is detached, so KL(p2 || p1) trains pass 1 and KL(p1 || p2)
// trains pass 2. Reduction "batchmean": the sum over all elements divided by
// logits.size(0). Zero for identical logits; symmetric in its arguments.
// The caller adds w * this (official default w = 1) to the cross-entropy of
// pass 1. Shapes must match; kInvalidArgument otherwise.
at::Tensor adamix_consistency_loss(const at::Tensor& logits1, const at::Tensor& logits2);

// One stochastic routing decision: which expert a bank of M > 1 experts used
// in its most recent training-mode forward (-1 before the first one).
struct AdaMixRoute {
  std::string bank;  // e.g. "bert.encoder.layer.0.adamix_ffn.down", "model.layers.1.self_attn.q_proj.adamix_A"
  int64_t expert = -1;
};

// Routing controls of an attached ADAMIX method.
class AdaMixControl {
 public:
  virtual ~AdaMixControl() = default;
  virtual int64_t num_experts() const = 0;
  // Eval-mode routing of an unmerged model (config key "eval_routing"):
  // "average" (default; the experts' uniformly averaged weights, exactly
  // what merge() computes), "random_token" (each token of each bank picks
  // a uniformly random expert), "random_sequence" (each sequence of the
  // batch picks one per bank). The random modes draw from the routing generator.
  virtual void set_eval_routing(const std::string& mode) = 0;
  virtual std::string eval_routing() const = 0;
  // Restarts the routing generator (initially seeded with the config's "seed").
  virtual void seed_routing(uint64_t seed) = 0;
  // The routing generator's state (a CPU generator state, uint8), for
  // checkpoints: set_routing_state(routing_state()) continues the same draws.
  virtual at::Tensor routing_state() const = 0;
  virtual void set_routing_state(const at::Tensor& state) = 0;
  // One entry per bank with more than one expert, in forward order.
  virtual std::vector<AdaMixRoute> last_routing() const = 0;
};

// The AdaMix controls of `peft`; kInvalidArgument when its method is not ADAMIX.
AdaMixControl& adamix_control(PeftModel& peft);

}  // namespace mixpeft::peft
