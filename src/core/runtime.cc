#include "mixpeft/runtime.h"

#include <sched.h>

#include <cstdlib>

#include <thread>

#include <ATen/Parallel.h>
#include <ATen/Context.h>
#include <ATen/Version.h>
#include <torch/cuda.h>

#include "core/blas_info.h"
#include "mixpeft/error.h"

namespace mixpeft {

c10::Device parse_device(const std::string& spec) {
  if (spec == "cpu") return c10::Device(c10::kCPU);
  if (spec.rfind("cuda", 0) == 0) {
    MIXPEFT_CHECK(torch::cuda::is_available(), ErrorKind::kUnsupported, "--device ", spec,
                  ": this LibTorch has no usable CUDA (built for CPU, or no GPU is visible); "
                  "build mixpeft against a CUDA LibTorch or use --device cpu");
    try {
      return c10::Device(spec);
    } catch (const std::exception&) {
      fail(ErrorKind::kInvalidArgument, "--device ", spec, ": expected cpu, cuda or cuda:N");
    }
  }
  fail(ErrorKind::kInvalidArgument, "--device ", spec, ": expected cpu, cuda or cuda:N");
}

int default_num_threads() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  unsigned hw = std::thread::hardware_concurrency();
  return hw > 0 ? static_cast<int>(hw) : 1;
}

std::string aten_cpu_capability() {
  const std::string config = at::show_config();
  const std::string key = "CPU capability usage: ";
  const size_t at = config.find(key);
  if (at == std::string::npos) return "unknown";
  const size_t from = at + key.size();
  return config.substr(from, config.find_first_of("\r\n", from) - from);
}

void prefer_avx512_kernels() {
  if (detect_cpu().avx512_core) setenv("ATEN_CPU_CAPABILITY", "avx512", /*overwrite=*/0);
}

void set_num_threads(int n) {
  if (n <= 0) n = default_num_threads();
  at::set_num_threads(n);
}

}  // namespace mixpeft
