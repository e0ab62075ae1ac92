// Data parallelism for the trainer on LibTorch's c10d (private to src/train):
// a ProcessGroupGloo over a TCPStore hosted by rank 0.
#pragma once

#include <memory>
#include <vector>

#include <ATen/core/Tensor.h>

#include "mixpeft/train.h"

namespace mixpeft::train {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // In place: every process ends with the element-wise sum over processes.
  virtual void all_reduce_sum(std::vector<at::Tensor>& tensors) = 0;
  // In place: every process ends with rank 0's values.
  virtual void broadcast(std::vector<at::Tensor>& tensors) = 0;
  // Every process's `tensor` (same shape everywhere), in rank order.
  virtual std::vector<at::Tensor> all_gather(const at::Tensor& tensor) = 0;
  virtual void barrier() = 0;
};

// world_size 1: a communicator that does nothing (no store, no sockets).
// Otherwise joins the process group; kIO when the store or a peer cannot be
// reached within the timeout.
std::unique_ptr<Communicator> connect(const DistributedConfig& config);

// Sums the gradients of `parameters` over processes in one flat buffer per
// dtype (a no-op for world_size 1). Parameters without gradients get zeros
// first, so every process reduces the same list.
void all_reduce_gradients(Communicator& comm, const std::vector<std::pair<std::string, at::Tensor>>& parameters);

}  // namespace mixpeft::train
