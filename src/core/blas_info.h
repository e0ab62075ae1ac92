// What decides CPU speed here: the CPU's vector units, the BLAS library that
// LibTorch's fp32 matrix multiplies actually call, and a GEMM measurement.
// Used by `mixpeft env` and by benchmarks that record the machine they ran on.
//
//   mixpeft::BlasInfo blas = mixpeft::detect_blas();
//   // blas.library == "/usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3"
//   // blas.openblas_core == "Zen", blas.openblas_threading == "openmp"
//   mixpeft::GemmResult r = mixpeft::measure_gemm(c10::kFloat, 1024);
//   // r.gflops, r.median_seconds: `mixpeft env` prints them
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <c10/core/ScalarType.h>

namespace mixpeft {

// x86 instruction-set level, as far as GEMM kernels care.
enum class IsaLevel { kUnknown = -1, kSse = 0, kAvx = 1, kAvx2 = 2, kAvx512 = 3 };

const char* to_string(IsaLevel level);

struct CpuInfo {
  std::string model;       // /proc/cpuinfo "model name"; "unknown" when absent
  int usable_cores = 0;    // cores this process may run on (sched_getaffinity)
  int online_cores = 0;    // sysconf(_SC_NPROCESSORS_ONLN)
  bool flags_read = false; // /proc/cpuinfo had a "flags" line
  bool avx = false;
  bool avx2 = false;       // with fma: OpenBLAS Haswell/Zen kernels
  bool fma = false;
  bool avx512f = false;    // OpenBLAS SkylakeX kernels: about 2x the AVX2 fp32 GEMM rate
  bool avx512_core = false;  // avx512f + bw + vl + dq: what ATen's AVX-512 kernels need
  bool avx512_bf16 = false;  // native bf16 dot products (Cooper Lake, Zen 4)
  bool amx = false;        // amx_tile + amx_bf16 (Sapphire Rapids)
  // 1-minute load average (/proc/loadavg) when detect_cpu ran; -1 if unknown.
  // Other processes' load makes any GEMM figure measured now too low.
  double load_1min = -1.0;
  IsaLevel level() const;  // the best level the flags allow
};

// Reads /proc/cpuinfo (the first processor's entry). Never throws: fields it
// cannot read stay at their defaults.
CpuInfo detect_cpu();

struct BlasInfo {
  // Real path of the shared object that provides `sgemm_`, the symbol
  // LibTorch calls for fp32 GEMM; empty if no loaded object provides it.
  std::string library;
  // "OpenBLAS", "reference BLAS (netlib)", "Intel MKL", "BLIS", "ATLAS" or "unknown".
  std::string vendor;
  bool is_openblas = false;
  bool is_reference = false;
  // OpenBLAS only (empty/0 otherwise), from the library behind `library`:
  std::string openblas_config;     // openblas_get_config(), e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH ..."
  std::string openblas_core;       // openblas_get_corename(), e.g. "Zen", "Haswell", "SkylakeX"
  std::string openblas_threading;  // "sequential", "pthread" or "openmp"
  int openblas_threads = 0;        // openblas_get_num_threads()
  // $OPENBLAS_CORETYPE (forces OpenBLAS's kernel choice); empty when unset.
  std::string coretype_env;
  // Real paths of every loaded BLAS, LAPACK, oneDNN or OpenMP runtime object.
  std::vector<std::string> loaded;
};

// Finds the BLAS that LibTorch's GEMM calls by resolving `sgemm_` in the
// process and asking the dynamic loader which object holds it. Never throws.
BlasInfo detect_blas();

// The ISA level of an OpenBLAS core name ("Haswell" -> kAvx2); kUnknown for
// names this table does not know. Case-insensitive.
IsaLevel openblas_core_level(const std::string& core);

struct GemmResult {
  c10::ScalarType dtype = c10::kFloat;
  int64_t n = 0;                // C[n,n] = A[n,n] * B[n,n]
  int reps = 0;                 // timed repetitions (after the warm-up runs)
  double median_seconds = 0.0;  // median over the timed repetitions
  double gflops = 0.0;          // 2 n^3 / median_seconds / 1e9
};

// Times torch::mm on n x n matrices of `dtype` on the CPU with the current
// thread settings: `warmup` untimed runs, then the median of `reps` timed
// runs. Cost: (warmup + reps) multiplies, 2 n^3 flops each.
GemmResult measure_gemm(c10::ScalarType dtype, int64_t n, int reps = 5, int warmup = 1);

// measure_gemm at the largest n in {256, 512, ..., max_n} whose single
// multiply is estimated to take at most `seconds_per_rep` (8x the measured
// time at n/2). Bounds the cost of a slow dtype (bf16 without AVX-512 runs on
// a scalar path here) or a slow machine to about
// (1 + warmup + reps) * seconds_per_rep; max_n below 256 is used as is.
GemmResult measure_gemm_within(c10::ScalarType dtype, int64_t max_n, double seconds_per_rep,
                               int reps = 5, int warmup = 1);

// "fp32", "bf16", "fp16", or c10's name for other types.
std::string dtype_name(c10::ScalarType dtype);

// Speed advice for this machine, one sentence each, without a "warning:"
// prefix: reference BLAS, OpenBLAS pthread/serial builds, an OpenBLAS core
// older than the CPU (OPENBLAS_CORETYPE), fewer threads than cores, more
// threads than cores, a busy machine (load average), and bf16 GEMM far
// slower than fp32 (from `gemm`, which may be empty).
std::vector<std::string> speed_warnings(const CpuInfo& cpu, const BlasInfo& blas, int threads,
                                        const std::vector<GemmResult>& gemm);

}  // namespace mixpeft
