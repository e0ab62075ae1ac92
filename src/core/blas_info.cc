#include "core/blas_info.h"

#include <dlfcn.h>
#include <limits.h>
#include <link.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include <torch/torch.h>

#include "mixpeft/runtime.h"

namespace mixpeft {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

std::string real_path(const char* path) {
  if (path == nullptr || *path == '\0') return "";
  char buf[PATH_MAX];
  if (realpath(path, buf) != nullptr) return buf;
  return path;
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

// Loaded objects whose file name marks them as BLAS, LAPACK, oneDNN or an
// OpenMP runtime: these decide where GEMM time goes.
int collect_loaded(struct dl_phdr_info* info, size_t, void* data) {
  auto* out = static_cast<std::vector<std::string>*>(data);
  if (info->dlpi_name == nullptr || *info->dlpi_name == '\0') return 0;
  std::string name = info->dlpi_name;
  std::string base = lower(name.substr(name.find_last_of('/') + 1));
  static const char* const kMarks[] = {"blas", "lapack", "mkl", "blis", "atlas",
                                       "dnnl", "gomp",   "iomp", "libomp"};
  for (const char* mark : kMarks) {
    if (contains(base, mark)) {
      out->push_back(real_path(info->dlpi_name));
      break;
    }
  }
  return 0;
}

std::string vendor_from_path(const std::string& path) {
  std::string p = lower(path);
  if (contains(p, "openblas")) return "OpenBLAS";
  if (contains(p, "mkl")) return "Intel MKL";
  if (contains(p, "blis")) return "BLIS";
  if (contains(p, "atlas")) return "ATLAS";
  // Debian's netlib reference implementation: /usr/lib/<triplet>/blas/libblas.so.3.
  if (contains(p, "/blas/libblas.so")) return "reference BLAS (netlib)";
  return "unknown";
}

}  // namespace

const char* to_string(IsaLevel level) {
  switch (level) {
    case IsaLevel::kSse: return "SSE";
    case IsaLevel::kAvx: return "AVX";
    case IsaLevel::kAvx2: return "AVX2";
    case IsaLevel::kAvx512: return "AVX-512";
    case IsaLevel::kUnknown: break;
  }
  return "unknown";
}

IsaLevel CpuInfo::level() const {
  if (avx512f) return IsaLevel::kAvx512;
  if (avx2 && fma) return IsaLevel::kAvx2;
  if (avx) return IsaLevel::kAvx;
  return flags_read ? IsaLevel::kSse : IsaLevel::kUnknown;
}

CpuInfo detect_cpu() {
  CpuInfo cpu;
  cpu.model = "unknown";
  cpu.usable_cores = default_num_threads();
  long online = sysconf(_SC_NPROCESSORS_ONLN);
  cpu.online_cores = online > 0 ? static_cast<int>(online) : cpu.usable_cores;

  {
    std::ifstream load("/proc/loadavg");
    double l = 0;
    if (load >> l) cpu.load_1min = l;
  }

  std::ifstream in("/proc/cpuinfo");
  std::string line;
  bool have_model = false, have_flags = false;
  while ((!have_model || !have_flags) && std::getline(in, line)) {
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = trim(line.substr(0, colon));
    std::string value = trim(line.substr(colon + 1));
    if (!have_model && key == "model name") {
      cpu.model = value;
      have_model = true;
    } else if (!have_flags && key == "flags") {
      std::set<std::string> flags;
      std::istringstream words(value);
      for (std::string w; words >> w;) flags.insert(w);
      cpu.flags_read = true;
      cpu.avx = flags.count("avx") > 0;
      cpu.avx2 = flags.count("avx2") > 0;
      cpu.fma = flags.count("fma") > 0;
      cpu.avx512f = flags.count("avx512f") > 0;
      cpu.avx512_core = cpu.avx512f && flags.count("avx512bw") > 0 && flags.count("avx512vl") > 0 &&
                        flags.count("avx512dq") > 0;
      cpu.avx512_bf16 = flags.count("avx512_bf16") > 0;
      cpu.amx = flags.count("amx_tile") > 0 && flags.count("amx_bf16") > 0;
      have_flags = true;
    }
  }
  return cpu;
}

IsaLevel openblas_core_level(const std::string& core) {
  static const std::pair<const char*, IsaLevel> kCores[] = {
      {"prescott", IsaLevel::kSse},      {"core2", IsaLevel::kSse},
      {"penryn", IsaLevel::kSse},        {"dunnington", IsaLevel::kSse},
      {"nehalem", IsaLevel::kSse},       {"atom", IsaLevel::kSse},
      {"nano", IsaLevel::kSse},          {"opteron", IsaLevel::kSse},
      {"opteron_sse3", IsaLevel::kSse},  {"barcelona", IsaLevel::kSse},
      {"bobcat", IsaLevel::kSse},        {"katmai", IsaLevel::kSse},
      {"coppermine", IsaLevel::kSse},    {"northwood", IsaLevel::kSse},
      {"banias", IsaLevel::kSse},        {"athlon", IsaLevel::kSse},
      {"sandybridge", IsaLevel::kAvx},   {"bulldozer", IsaLevel::kAvx},
      {"piledriver", IsaLevel::kAvx},    {"steamroller", IsaLevel::kAvx},
      {"excavator", IsaLevel::kAvx},     {"haswell", IsaLevel::kAvx2},
      {"zen", IsaLevel::kAvx2},          {"skylakex", IsaLevel::kAvx512},
      {"cooperlake", IsaLevel::kAvx512}, {"sapphirerapids", IsaLevel::kAvx512},
  };
  std::string key = lower(trim(core));
  for (const auto& [name, level] : kCores) {
    if (key == name) return level;
  }
  return IsaLevel::kUnknown;
}

BlasInfo detect_blas() {
  BlasInfo info;
  if (const char* env = std::getenv("OPENBLAS_CORETYPE")) info.coretype_env = env;
  dl_iterate_phdr(collect_loaded, &info.loaded);

  // The object that defines sgemm_ in the global scope is the one LibTorch's
  // fp32 GEMM binds to, whatever else is loaded (libtorch_cpu links both
  // libblas.so.3 and libopenblas.so.0 on Debian).
  void* sgemm = dlsym(RTLD_DEFAULT, "sgemm_");
  Dl_info where{};
  void* handle = nullptr;
  if (sgemm != nullptr && dladdr(sgemm, &where) != 0 && where.dli_fname != nullptr) {
    info.library = real_path(where.dli_fname);
    handle = dlopen(where.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
  } else {
    for (const std::string& path : info.loaded) {
      if (contains(lower(path), "blas")) {
        info.library = path;
        handle = dlopen(path.c_str(), RTLD_LAZY | RTLD_NOLOAD);
        break;
      }
    }
  }
  info.vendor = info.library.empty() ? "none" : vendor_from_path(info.library);

  // Searched in `handle` and its dependencies only: Debian's OpenBLAS
  // libblas.so.3 is a thin wrapper over libopenblas.so.0, while the reference
  // libblas.so.3 has no OpenBLAS below it even when libopenblas.so.0 is loaded.
  if (handle != nullptr) {
    using StrFn = char* (*)();
    using IntFn = int (*)();
    auto config = reinterpret_cast<StrFn>(dlsym(handle, "openblas_get_config"));
    auto core = reinterpret_cast<StrFn>(dlsym(handle, "openblas_get_corename"));
    auto parallel = reinterpret_cast<IntFn>(dlsym(handle, "openblas_get_parallel"));
    auto threads = reinterpret_cast<IntFn>(dlsym(handle, "openblas_get_num_threads"));
    if (config != nullptr) {
      info.is_openblas = true;
      info.vendor = "OpenBLAS";
      if (const char* c = config()) info.openblas_config = trim(c);
      if (core != nullptr) {
        if (const char* c = core()) info.openblas_core = trim(c);
      }
      if (parallel != nullptr) {
        switch (parallel()) {
          case 0: info.openblas_threading = "sequential"; break;
          case 1: info.openblas_threading = "pthread"; break;
          case 2: info.openblas_threading = "openmp"; break;
          default: info.openblas_threading = "unknown"; break;
        }
      }
      if (threads != nullptr) info.openblas_threads = threads();
    }
    dlclose(handle);  // balances the RTLD_NOLOAD reference; the object stays loaded
  }
  info.is_reference = !info.is_openblas && contains(info.vendor, "reference");
  return info;
}

std::string dtype_name(c10::ScalarType dtype) {
  switch (dtype) {
    case c10::kFloat: return "fp32";
    case c10::kBFloat16: return "bf16";
    case c10::kHalf: return "fp16";
    case c10::kDouble: return "fp64";
    default: return c10::toString(dtype);
  }
}

GemmResult measure_gemm(c10::ScalarType dtype, int64_t n, int reps, int warmup) {
  torch::NoGradGuard no_grad;
  if (n < 1) n = 1;
  if (reps < 1) reps = 1;
  auto opts = torch::TensorOptions().dtype(torch::kFloat);
  torch::Tensor a = torch::randn({n, n}, opts).to(dtype);
  torch::Tensor b = torch::randn({n, n}, opts).to(dtype);
  torch::Tensor c = torch::empty({n, n}, opts.dtype(dtype));
  for (int i = 0; i < warmup; ++i) torch::mm_out(c, a, b);

  std::vector<double> seconds;
  seconds.reserve(reps);
  for (int i = 0; i < reps; ++i) {
    auto start = std::chrono::steady_clock::now();
    torch::mm_out(c, a, b);
    seconds.push_back(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(seconds.begin(), seconds.end());
  double median = reps % 2 == 1 ? seconds[reps / 2]
                                : 0.5 * (seconds[reps / 2 - 1] + seconds[reps / 2]);
  GemmResult r;
  r.dtype = dtype;
  r.n = n;
  r.reps = reps;
  r.median_seconds = median;
  double flops = 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n);
  r.gflops = median > 0 ? flops / median / 1e9 : 0.0;
  return r;
}

GemmResult measure_gemm_within(c10::ScalarType dtype, int64_t max_n, double seconds_per_rep,
                               int reps, int warmup) {
  // Grow n from 256 while one multiply at 2n (8x the flops of n, measured)
  // still fits the budget; each step also warms up the next.
  int64_t n = std::min<int64_t>(256, max_n);
  double t = measure_gemm(dtype, n, 1, 1).median_seconds;
  while (n * 2 <= max_n && t * 8 <= seconds_per_rep) {
    n *= 2;
    t = measure_gemm(dtype, n, 1, 0).median_seconds;
  }
  return measure_gemm(dtype, n, reps, warmup);
}

std::vector<std::string> speed_warnings(const CpuInfo& cpu, const BlasInfo& blas, int threads,
                                        const std::vector<GemmResult>& gemm) {
  std::vector<std::string> out;
  const std::string kSelectOpenmp =
      "apt-get install libopenblas0-openmp && update-alternatives --set "
      "libblas.so.3-x86_64-linux-gnu /usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3 "
      "(scripts/setup.sh does both)";

  if (blas.library.empty()) {
    out.push_back("no BLAS library provides sgemm_: LibTorch's fp32 matrix multiplies have no "
                  "fast path; " + kSelectOpenmp);
  } else if (blas.is_reference) {
    out.push_back("the reference BLAS (" + blas.library +
                  ") is loaded: fp32 GEMM runs 10-50x slower than with OpenBLAS; " +
                  kSelectOpenmp);
  }
  if (blas.is_openblas && blas.openblas_threading == "pthread") {
    out.push_back("OpenBLAS is the pthread build: it ignores --threads and LibTorch's thread "
                  "limit and oversubscribes the cores when LibTorch runs in parallel; " +
                  kSelectOpenmp);
  } else if (blas.is_openblas && blas.openblas_threading == "sequential") {
    out.push_back("OpenBLAS is the serial build: each matrix multiply uses one core; " +
                  kSelectOpenmp);
  }

  IsaLevel cpu_level = cpu.level();
  IsaLevel core_level = openblas_core_level(blas.openblas_core);
  if (blas.is_openblas && core_level != IsaLevel::kUnknown && cpu_level != IsaLevel::kUnknown) {
    if (core_level < cpu_level) {
      std::string what = "OpenBLAS runs its " + blas.openblas_core + " kernels (" +
                         to_string(core_level) + ") on a CPU with " + to_string(cpu_level);
      if (!blas.coretype_env.empty()) {
        out.push_back(what + " because OPENBLAS_CORETYPE=" + blas.coretype_env +
                      " forces them: fp32 GEMM runs at about half speed or less; "
                      "unset OPENBLAS_CORETYPE");
      } else {
        out.push_back(what + ": this OpenBLAS does not know this CPU, so fp32 GEMM runs below "
                             "its peak; a newer OpenBLAS would be faster");
      }
    } else if (core_level > cpu_level && !blas.coretype_env.empty()) {
      out.push_back("OPENBLAS_CORETYPE=" + blas.coretype_env + " selects " +
                    to_string(core_level) + " kernels but this CPU only has " +
                    to_string(cpu_level) + ": expect crashes (illegal instruction); "
                    "unset OPENBLAS_CORETYPE");
    }
  }

  if (cpu.usable_cores > 0 && threads > 0 && threads < cpu.usable_cores) {
    out.push_back("using " + std::to_string(threads) + " of " +
                  std::to_string(cpu.usable_cores) +
                  " cores: GEMM speed scales with threads; drop --threads (default: every core)");
  } else if (cpu.usable_cores > 0 && threads > cpu.usable_cores) {
    out.push_back(std::to_string(threads) + " threads on " + std::to_string(cpu.usable_cores) +
                  " cores: oversubscription slows GEMM; drop --threads (default: every core)");
  }

  if (cpu.load_1min >= 0 && cpu.usable_cores > 0 &&
      cpu.load_1min >= std::max(1.0, 0.5 * cpu.usable_cores)) {
    std::ostringstream os;
    os.precision(1);
    os << std::fixed << "the machine is busy (load average " << cpu.load_1min << " on "
       << cpu.usable_cores << " cores): other processes slow every matrix multiply, and GEMM "
       << "figures measured now are lower than this machine can do";
    out.push_back(os.str());
  }

  const GemmResult* fp32 = nullptr;
  const GemmResult* bf16 = nullptr;
  for (const GemmResult& r : gemm) {
    if (r.dtype == c10::kFloat) fp32 = &r;
    if (r.dtype == c10::kBFloat16) bf16 = &r;
  }
  if (fp32 != nullptr && bf16 != nullptr && bf16->gflops > 0 &&
      bf16->gflops * 2 < fp32->gflops) {
    std::ostringstream os;
    os.precision(0);
    os << std::fixed << "bf16 GEMM runs " << fp32->gflops / bf16->gflops
       << "x slower than fp32 here (LibTorch 1.13 multiplies bf16 through oneDNN only on "
          "AVX-512 CPUs, with a scalar loop elsewhere): use fp32 on this machine";
    out.push_back(os.str());
  }
  return out;
}

}  // namespace mixpeft
