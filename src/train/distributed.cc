// ProcessGroupGloo.hpp declares its class only under USE_C10D_GLOO, which
// TorchConfig.cmake defines for Debian's libtorch (built with Gloo; its
// headers come from libgloo-dev).
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif
#include "train/distributed.h"

#include <chrono>
#include <cstdlib>
#include <string>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "mixpeft/error.h"

namespace mixpeft::train {
namespace {

class Single final : public Communicator {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  void all_reduce_sum(std::vector<at::Tensor>&) override {}
  void broadcast(std::vector<at::Tensor>&) override {}
  std::vector<at::Tensor> all_gather(const at::Tensor& t) override { return {t}; }
  void barrier() override {}
};

class Gloo final : public Communicator {
 public:
  explicit Gloo(const DistributedConfig& c) : rank_(c.rank), world_(c.world_size) {
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(c.master_port);
    so.isServer = c.rank == 0;
    so.numWorkers = c.world_size;
    so.waitWorkers = true;
    so.timeout = std::chrono::minutes(5);
    try {
      store_ = c10::make_intrusive<c10d::TCPStore>(c.master_addr, so);
      auto options = c10d::ProcessGroupGloo::Options::create();
      const bool local = c.master_addr == "127.0.0.1" || c.master_addr == "localhost";
      options->devices.push_back(local ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                       : c10d::ProcessGroupGloo::createDefaultDevice());
      options->timeout = std::chrono::minutes(30);
      group_ = c10::make_intrusive<c10d::ProcessGroupGloo>(store_, c.rank, c.world_size, options);
    } catch (const c10::Error& e) {
      fail(ErrorKind::kIO, "rank ", c.rank, " of ", c.world_size, ": cannot join the process group at ",
           c.master_addr, ":", c.master_port, ": ", e.what_without_backtrace());
    } catch (const std::exception& e) {
      fail(ErrorKind::kIO, "rank ", c.rank, " of ", c.world_size, ": cannot join the process group at ",
           c.master_addr, ":", c.master_port, ": ", e.what());
    }
  }
  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  void all_reduce_sum(std::vector<at::Tensor>& tensors) override {
    if (tensors.empty()) return;
    wait(group_->allreduce(tensors), "all-reduce");
  }
  void broadcast(std::vector<at::Tensor>& tensors) override {
    if (tensors.empty()) return;
    wait(group_->broadcast(tensors), "broadcast");
  }
  std::vector<at::Tensor> all_gather(const at::Tensor& t) override {
    std::vector<std::vector<at::Tensor>> out(1);
    for (int i = 0; i < world_; ++i) out[0].push_back(at::empty_like(t));
    std::vector<at::Tensor> in{t.contiguous()};
    wait(group_->allgather(out, in), "all-gather");
    return out[0];
  }
  void barrier() override { wait(group_->barrier(), "barrier"); }

 private:
  void wait(const c10::intrusive_ptr<c10d::Work>& work, const char* what) {
    try {
      work->wait();
    } catch (const std::exception& e) {
      fail(ErrorKind::kIO, "rank ", rank_, ": ", what, " failed (did another process stop?): ", e.what());
    }
  }
  int rank_, world_;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group_;
};

}  // namespace

std::unique_ptr<Communicator> connect(const DistributedConfig& config) {
  MIXPEFT_CHECK(config.world_size >= 1 && config.rank >= 0 && config.rank < config.world_size,
                ErrorKind::kInvalidArgument, "distributed: rank ", config.rank, " is not in [0, ", config.world_size, ")");
  if (config.world_size == 1) return std::make_unique<Single>();
  MIXPEFT_CHECK(config.master_port > 0 && config.master_port < 65536, ErrorKind::kInvalidArgument,
                "distributed: MASTER_PORT must be in 1..65535, got ", config.master_port);
  return std::make_unique<Gloo>(config);
}

void all_reduce_gradients(Communicator& comm, const std::vector<std::pair<std::string, at::Tensor>>& parameters) {
  if (comm.world_size() == 1) return;
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> grads;
  for (const auto& [name, p] : parameters) {
    at::Tensor param = p;  // a handle to the same parameter
    if (!param.grad().defined()) param.mutable_grad() = at::zeros_like(param);
    grads.push_back(param.grad());
  }
  // One flat buffer per dtype: one collective instead of one per tensor.
  std::map<at::ScalarType, std::vector<size_t>> by_dtype;
  for (size_t i = 0; i < grads.size(); ++i) by_dtype[grads[i].scalar_type()].push_back(i);
  for (auto& [dtype, idx] : by_dtype) {
    std::vector<at::Tensor> flat_parts;
    for (size_t i : idx) flat_parts.push_back(grads[i].reshape(-1));
    std::vector<at::Tensor> flat{at::cat(flat_parts)};
    comm.all_reduce_sum(flat);
    int64_t offset = 0;
    for (size_t i : idx) {
      const int64_t n = grads[i].numel();
      grads[i].copy_(flat[0].narrow(0, offset, n).view_as(grads[i]));
      offset += n;
    }
  }
}

DistributedConfig DistributedConfig::from_env() {
  DistributedConfig c;
  auto get = [](const char* name) -> const char* { return std::getenv(name); };
  auto to_int = [](const char* name, const char* value) {
    char* end = nullptr;
    const long v = std::strtol(value, &end, 10);
    MIXPEFT_CHECK(end != value && *end == '\0', ErrorKind::kInvalidArgument, "environment ", name, "=", value,
                  ": not an integer");
    return static_cast<int>(v);
  };
  const char* world = get("WORLD_SIZE");
  if (world == nullptr) return c;
  c.world_size = to_int("WORLD_SIZE", world);
  MIXPEFT_CHECK(c.world_size >= 1, ErrorKind::kInvalidArgument, "environment WORLD_SIZE must be >= 1");
  if (c.world_size == 1) return c;
  const char* rank = get("RANK");
  const char* port = get("MASTER_PORT");
  MIXPEFT_CHECK(rank != nullptr && port != nullptr, ErrorKind::kInvalidArgument,
                "environment WORLD_SIZE=", world, " also needs RANK and MASTER_PORT (and MASTER_ADDR, default 127.0.0.1)");
  c.rank = to_int("RANK", rank);
  c.master_port = to_int("MASTER_PORT", port);
  if (const char* addr = get("MASTER_ADDR")) c.master_addr = addr;
  MIXPEFT_CHECK(c.rank >= 0 && c.rank < c.world_size, ErrorKind::kInvalidArgument, "environment RANK=", c.rank,
                " is not in [0, WORLD_SIZE=", c.world_size, ")");
  return c;
}

}  // namespace mixpeft::train
