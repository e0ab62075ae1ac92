// mixpeft env: what decides speed on this machine, and what to fix.
//
//   $ mixpeft env
//   mixpeft            0.1.0 (Release build)
//   libtorch           1.13.0 (CPU only; oneDNN yes; OpenMP yes)
//   cpu                AMD EPYC (2 usable cores of 2 online)
//   ...
//   blas               OpenBLAS: /usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3
//   openblas           core Zen, OpenMP threading (follows --threads)
//   ...
//   gemm fp32          24.4 GFLOP/s (n=1024, median of 5 runs, 0.088 s each)
//   gemm bf16          1.8 GFLOP/s (n=512, median of 5 runs, 0.152 s each)
//   warning: bf16 GEMM runs 14x slower than fp32 here (...): use fp32 on this machine
//
// (2-core dev VM, load average 9 from parallel builds.) --json prints the
// same as one JSON object; --no-bench skips the GEMM measurement (2-6 s).
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <torch/cuda.h>
#include <torch/version.h>

#include "commands.h"
#include "core/blas_info.h"
#include "core/gemm.h"
#include "mixpeft/runtime.h"

#ifndef MIXPEFT_VERSION
#define MIXPEFT_VERSION "unknown"
#endif
#ifndef MIXPEFT_BUILD_TYPE
#define MIXPEFT_BUILD_TYPE "unknown"
#endif

namespace mixpeft::cli {
namespace {

struct EnvOptions {
  bool json = false;      // --json: one JSON object on stdout instead of text
  bool no_bench = false;  // --no-bench: skip the GEMM measurement (saves 2-6 s)
};

// GEMM sizes: fp32 at n = 2048 takes ~0.2 s on 2 AVX2 cores; bf16 without
// AVX-512 is ~50x slower, so each dtype gets a per-run time cap instead.
constexpr int64_t kGemmMaxN = 2048;
constexpr double kGemmSecondsPerRep = 0.5;
constexpr int kGemmReps = 5;
constexpr int kGemmWarmup = 1;

struct CudaInfo {
  bool built = false;      // LibTorch was built with CUDA
  bool available = false;  // ...and sees a usable GPU
  int device_count = 0;
  std::vector<std::string> names;  // from the NVIDIA driver, when it is loaded
};

// GPU names from the driver (/proc/driver/nvidia/gpus/*/information), which
// needs neither the CUDA runtime nor a CUDA build of LibTorch.
std::vector<std::string> nvidia_gpu_names() {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry :
       std::filesystem::directory_iterator("/proc/driver/nvidia/gpus", ec)) {
    std::ifstream in(entry.path() / "information");
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("Model:", 0) == 0) {
        size_t b = line.find_first_not_of(" \t", 6);
        names.push_back(b == std::string::npos ? "" : line.substr(b));
        break;
      }
    }
  }
  return names;
}

CudaInfo detect_cuda() {
  CudaInfo info;
  info.built = at::hasCUDA();
  info.available = torch::cuda::is_available();
  info.device_count = info.available ? static_cast<int>(torch::cuda::device_count()) : 0;
  info.names = nvidia_gpu_names();
  return info;
}

std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

std::string yes_no(bool b) { return b ? "yes" : "no"; }

std::string fixed(double v, int digits) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(digits) << v;
  return os.str();
}

void row(const std::string& key, const std::string& value) {
  std::cout << std::left << std::setw(19) << key << value << "\n";
}

struct Report {
  CpuInfo cpu;
  BlasInfo blas;
  CudaInfo cuda;
  int intra_threads = 0;
  int interop_threads = 0;
  std::vector<GemmResult> gemm;
  std::vector<std::string> warnings;
};

void print_text(const Report& r) {
  const CpuInfo& cpu = r.cpu;
  const BlasInfo& blas = r.blas;
  row("mixpeft", std::string(MIXPEFT_VERSION) + " (" + MIXPEFT_BUILD_TYPE + " build)");
  row("libtorch", std::string(TORCH_VERSION) + " (" +
                      (r.cuda.built ? "CUDA build" : "CPU only") + "; oneDNN " +
                      yes_no(at::hasMKLDNN()) + "; OpenMP " + yes_no(at::hasOpenMP()) + ")");
  row("cpu", cpu.model + " (" + std::to_string(cpu.usable_cores) + " usable cores of " +
                 std::to_string(cpu.online_cores) + " online)");
  if (cpu.load_1min >= 0) row("load average", fixed(cpu.load_1min, 2) + " (1 min)");
  row("cpu features", "avx2 " + yes_no(cpu.avx2) + ", avx512f " + yes_no(cpu.avx512f) +
                          ", avx512_bf16 " + yes_no(cpu.avx512_bf16) + ", amx " +
                          yes_no(cpu.amx) + " (best GEMM kernels: " +
                          to_string(cpu.level()) + ")");
  std::string cuda;
  if (r.cuda.available) {
    cuda = "available, " + std::to_string(r.cuda.device_count) + " device(s)";
  } else if (!r.cuda.built) {
    cuda = "not available (LibTorch built without CUDA)";
  } else {
    cuda = "not available (no usable GPU or driver)";
  }
  row("cuda", cuda);
  for (size_t i = 0; i < r.cuda.names.size(); ++i) {
    row(i == 0 ? "gpus" : "", r.cuda.names[i]);
  }
  row("threads", "intra-op " + std::to_string(r.intra_threads) + ", inter-op " +
                     std::to_string(r.interop_threads) + " (--threads; default every core)");
  row("blas", blas.library.empty() ? "none found (no loaded object defines sgemm_)"
                                   : blas.vendor + ": " + blas.library);
  if (blas.is_openblas) {
    std::string threading;
    if (blas.openblas_threading == "openmp") {
      threading = "OpenMP threading (follows --threads)";
    } else if (blas.openblas_threading == "pthread") {
      threading = "pthread threading, " + std::to_string(blas.openblas_threads) +
                  " threads (ignores --threads)";
    } else if (blas.openblas_threading == "sequential") {
      threading = "serial (one thread per call)";
    } else {
      threading = blas.openblas_threading + " threading";
    }
    row("openblas", "core " + blas.openblas_core + ", " + threading);
    row("openblas config", blas.openblas_config);
  }
  row("frozen gemm", std::string(cpu_gemm_backend()) +
                        " (fp32 frozen layers and attention on the CPU; MIXPEFT_GEMM=aten for ATen's)");
  row("bf16 gemm", std::string(cpu_bf16_gemm_backend()) +
                      (onednn_bf16_gemm_available() ? " (frozen layers under --bf16)" : " (--bf16 uses autocast)"));
  const std::string aten_env = env_or_empty("ATEN_CPU_CAPABILITY");
  row("aten kernels", aten_cpu_capability() + (aten_env.empty() ? std::string(" (ATEN_CPU_CAPABILITY unset)")
                                                                : " (ATEN_CPU_CAPABILITY=" + aten_env + ")"));
  row("OPENBLAS_CORETYPE", blas.coretype_env.empty()
                               ? "(unset: OpenBLAS picks the kernels for this CPU)"
                               : blas.coretype_env + " (forces OpenBLAS's kernel choice)");
  for (const char* name : {"OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"}) {
    std::string v = env_or_empty(name);
    if (!v.empty()) row(name, v + " (mixpeft sets threads itself; see --threads)");
  }
  for (size_t i = 0; i < blas.loaded.size(); ++i) {
    row(i == 0 ? "loaded libraries" : "", blas.loaded[i]);
  }
  if (r.gemm.empty()) {
    row("gemm", "not measured (--no-bench)");
  }
  for (const GemmResult& g : r.gemm) {
    row("gemm " + dtype_name(g.dtype),
        fixed(g.gflops, 1) + " GFLOP/s (n=" + std::to_string(g.n) + ", median of " +
            std::to_string(g.reps) + " runs, " + fixed(g.median_seconds, 3) + " s each)");
  }
  for (const std::string& w : r.warnings) std::cout << "warning: " << w << "\n";
}

void print_json(const Report& r) {
  using nlohmann::json;
  const CpuInfo& cpu = r.cpu;
  const BlasInfo& blas = r.blas;
  json j;
  j["mixpeft"] = {{"version", MIXPEFT_VERSION}, {"build_type", MIXPEFT_BUILD_TYPE}};
  j["libtorch"] = {{"version", TORCH_VERSION},
                   {"cuda_build", r.cuda.built},
                   {"onednn", at::hasMKLDNN()},
                   {"openmp", at::hasOpenMP()}};
  j["cpu"] = {{"model", cpu.model},
              {"usable_cores", cpu.usable_cores},
              {"online_cores", cpu.online_cores},
              {"avx2", cpu.avx2},
              {"fma", cpu.fma},
              {"avx512f", cpu.avx512f},
              {"avx512_bf16", cpu.avx512_bf16},
              {"amx", cpu.amx},
              {"load_1min", cpu.load_1min},
              {"gemm_isa", to_string(cpu.level())}};
  j["cuda"] = {{"available", r.cuda.available},
               {"device_count", r.cuda.device_count},
               {"devices", r.cuda.names}};
  j["threads"] = {{"intra_op", r.intra_threads}, {"inter_op", r.interop_threads}};
  json jb = {{"library", blas.library}, {"vendor", blas.vendor}, {"loaded", blas.loaded}};
  if (blas.is_openblas) {
    jb["openblas"] = {{"config", blas.openblas_config},
                      {"core", blas.openblas_core},
                      {"threading", blas.openblas_threading},
                      {"threads", blas.openblas_threads}};
  } else {
    jb["openblas"] = nullptr;
  }
  jb["frozen_gemm"] = cpu_gemm_backend();
  jb["bf16_gemm"] = cpu_bf16_gemm_backend();
  jb["aten_cpu_capability"] = aten_cpu_capability();
  j["blas"] = jb;
  json env = json::object();
  for (const char* name : {"OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"}) {
    const char* v = std::getenv(name);
    env[name] = v == nullptr ? json(nullptr) : json(v);
  }
  j["env"] = env;
  json gemm = json::array();
  for (const GemmResult& g : r.gemm) {
    gemm.push_back({{"dtype", dtype_name(g.dtype)},
                    {"n", g.n},
                    {"reps", g.reps},
                    {"median_seconds", g.median_seconds},
                    {"gflops", g.gflops}});
  }
  j["gemm"] = gemm;
  j["warnings"] = r.warnings;
  std::cout << j.dump(2) << "\n";
}

void run_env(const EnvOptions& opts) {
  Report r;
  r.cpu = detect_cpu();
  r.blas = detect_blas();
  r.cuda = detect_cuda();
  r.intra_threads = at::get_num_threads();
  r.interop_threads = at::get_num_interop_threads();
  if (!opts.no_bench) {
    for (c10::ScalarType dtype : {c10::kFloat, c10::kBFloat16}) {
      r.gemm.push_back(
          measure_gemm_within(dtype, kGemmMaxN, kGemmSecondsPerRep, kGemmReps, kGemmWarmup));
    }
  }
  r.warnings = speed_warnings(r.cpu, r.blas, r.intra_threads, r.gemm);
  if (opts.json) {
    print_json(r);
  } else {
    print_text(r);
  }
}

}  // namespace

void add_env_command(CLI::App& app) {
  auto opts = std::make_shared<EnvOptions>();
  CLI::App* cmd = app.add_subcommand(
      "env", "Show versions, CPU, BLAS, threads and measured GEMM speed, with advice");
  cmd->add_flag("--json", opts->json, "Print one JSON object instead of text");
  cmd->add_flag("--no-bench", opts->no_bench,
                "Skip the fp32/bf16 GEMM measurement (it takes about 2-6 s)");
  cmd->callback([opts] { run_env(*opts); });
}

}  // namespace mixpeft::cli
