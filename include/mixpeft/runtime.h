// Process-wide runtime settings: device, thread count, CPU memory.
#pragma once

#include <cstdint>
#include <string>

#include <c10/core/Device.h>

namespace mixpeft {

// Parses "cpu", "cuda" or "cuda:N". "cuda" without a CUDA build of LibTorch
// (or without a visible GPU) throws kUnsupported saying so.
c10::Device parse_device(const std::string& spec);

// Number of threads used when the user gives none: every core the process may
// run on (sched_getaffinity), not LibTorch's default of one here.
int default_num_threads();

// Sets LibTorch's intra-op thread count (and OpenMP's); n <= 0 means default.
void set_num_threads(int n);

// Has ATen run its AVX-512 kernels on CPUs with AVX-512 (F, BW, VL, DQ):
// Debian's LibTorch 1.13 picks its AVX2 ones there unless told otherwise,
// and the AVX-512 builds of tanh, exp, GELU's derivative and the bf16
// conversions run about twice as fast (docs/PERFORMANCE.md). It sets
// ATEN_CPU_CAPABILITY=avx512 when that variable is unset, so it must run
// before the process's first tensor operation (ATen reads the variable
// once); a value the user set is kept. aten_cpu_capability() tells what
// ATen then uses.
void prefer_avx512_kernels();

// The CPU kernels ATen uses ("AVX512", "AVX2", "DEFAULT"), from at::show_config().
std::string aten_cpu_capability();

// Makes LibTorch's CPU tensors come from an allocator that keeps freed large
// blocks (1 MiB and up) for reuse, up to `max_cached_bytes` held free,
// instead of handing them back to the OS: glibc unmaps every block over its
// mmap threshold (at most 32 MiB) on free, so a training step's [tokens,
// vocabulary] logits and their gradients were page-faulted in afresh on
// every step. Smaller blocks go to malloc, and glibc's malloc is told to
// keep its freed heap too (mallopt: trim threshold = the bound, at most 2
// GiB; mmap threshold 32 MiB, the most its own adaptive one reaches): it had
// given 58 MB back at the end of each AdaMix consistency step and faulted
// it in again during the next. Idempotent; the first call's bound stays.
// Tensors made before the call keep their own deleter. The environment
// variable MIXPEFT_CPU_CACHE_MB overrides the bound; 0 turns the cache (and
// the mallopt) off; MIXPEFT_MALLOC_KEEP=0 skips the mallopt only. Blocks of
// 2 MiB and up ask for transparent huge pages ($MIXPEFT_THP=0: not).
void use_caching_cpu_allocator(int64_t max_cached_bytes = int64_t(4) << 30);

// What the caching allocator has done so far (all zero when it is not in use).
struct CpuCacheStats {
  int64_t hits = 0, misses = 0;   // large allocations served from the cache / from the OS
  int64_t cached_bytes = 0;       // held free now
};
CpuCacheStats cpu_cache_stats();

}  // namespace mixpeft
