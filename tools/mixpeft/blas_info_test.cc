// Tests for src/core/blas_info (kept here, with the CLI that reports it).
#include "core/blas_info.h"

#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace mixpeft {
namespace {

bool any_contains(const std::vector<std::string>& lines, const std::string& needle) {
  return std::any_of(lines.begin(), lines.end(), [&](const std::string& l) {
    return l.find(needle) != std::string::npos;
  });
}

TEST(BlasInfo, FindsTheLoadedBlasLibrary) {
  BlasInfo blas = detect_blas();
  ASSERT_FALSE(blas.library.empty()) << "no loaded object defines sgemm_";
  EXPECT_EQ(access(blas.library.c_str(), R_OK), 0) << blas.library;
  EXPECT_FALSE(blas.vendor.empty());
  EXPECT_FALSE(blas.loaded.empty());
  if (blas.is_openblas) {
    EXPECT_NE(blas.openblas_config.find("OpenBLAS"), std::string::npos) << blas.openblas_config;
    EXPECT_FALSE(blas.openblas_core.empty());
    EXPECT_FALSE(blas.openblas_threading.empty());
  }
}

TEST(BlasInfo, ReadsTheCpu) {
  CpuInfo cpu = detect_cpu();
  EXPECT_GE(cpu.usable_cores, 1);
  EXPECT_GE(cpu.online_cores, 1);
  EXPECT_FALSE(cpu.model.empty());
}

TEST(BlasInfo, MeasuresGemm) {
  GemmResult fp32 = measure_gemm(c10::kFloat, 64, 3, 1);
  EXPECT_EQ(fp32.n, 64);
  EXPECT_EQ(fp32.reps, 3);
  EXPECT_GT(fp32.median_seconds, 0.0);
  EXPECT_GT(fp32.gflops, 0.0);

  GemmResult bf16 = measure_gemm(c10::kBFloat16, 32, 1, 0);
  EXPECT_GT(bf16.gflops, 0.0);
  EXPECT_EQ(dtype_name(bf16.dtype), "bf16");
}

TEST(BlasInfo, MeasureWithinCapsTheSize) {
  // A tiny time budget keeps the starting size; a small max_n wins over it.
  GemmResult r = measure_gemm_within(c10::kFloat, 4096, 1e-9, 1, 0);
  EXPECT_EQ(r.n, 256);
  EXPECT_GT(r.gflops, 0.0);
  EXPECT_EQ(measure_gemm_within(c10::kFloat, 96, 10.0, 1, 0).n, 96);
}

TEST(BlasInfo, KnowsOpenBlasCores) {
  EXPECT_EQ(openblas_core_level("Haswell"), IsaLevel::kAvx2);
  EXPECT_EQ(openblas_core_level("ZEN"), IsaLevel::kAvx2);
  EXPECT_EQ(openblas_core_level("SkylakeX"), IsaLevel::kAvx512);
  EXPECT_EQ(openblas_core_level("Sandybridge"), IsaLevel::kAvx);
  EXPECT_EQ(openblas_core_level("Nehalem"), IsaLevel::kSse);
  EXPECT_EQ(openblas_core_level("Vortex"), IsaLevel::kUnknown);
}

CpuInfo avx512_cpu() {
  CpuInfo cpu;
  cpu.model = "test";
  cpu.usable_cores = 8;
  cpu.online_cores = 8;
  cpu.flags_read = cpu.avx = cpu.avx2 = cpu.fma = cpu.avx512f = true;
  return cpu;
}

BlasInfo openmp_openblas(const std::string& core) {
  BlasInfo blas;
  blas.library = "/usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3";
  blas.vendor = "OpenBLAS";
  blas.is_openblas = true;
  blas.openblas_core = core;
  blas.openblas_threading = "openmp";
  return blas;
}

TEST(SpeedWarnings, NoneOnAWellSetUpMachine) {
  EXPECT_TRUE(speed_warnings(avx512_cpu(), openmp_openblas("SkylakeX"), 8, {}).empty());
}

TEST(SpeedWarnings, ForcedOlderCoreSaysUnset) {
  BlasInfo blas = openmp_openblas("Haswell");
  blas.coretype_env = "Haswell";
  auto w = speed_warnings(avx512_cpu(), blas, 8, {});
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find("unset OPENBLAS_CORETYPE"), std::string::npos) << w[0];
  EXPECT_NE(w[0].find("AVX-512"), std::string::npos) << w[0];
}

TEST(SpeedWarnings, SameLevelCoreIsFine) {
  // Haswell kernels are the best OpenBLAS has for an AVX2 CPU (Zen uses them too).
  CpuInfo cpu = avx512_cpu();
  cpu.avx512f = false;
  BlasInfo blas = openmp_openblas("Haswell");
  blas.coretype_env = "Haswell";
  EXPECT_TRUE(speed_warnings(cpu, blas, 8, {}).empty());
}

TEST(SpeedWarnings, ReferenceBlasSaysInstallOpenBlas) {
  BlasInfo blas;
  blas.library = "/usr/lib/x86_64-linux-gnu/blas/libblas.so.3.11.0";
  blas.vendor = "reference BLAS (netlib)";
  blas.is_reference = true;
  auto w = speed_warnings(avx512_cpu(), blas, 8, {});
  EXPECT_TRUE(any_contains(w, "libopenblas0-openmp"));
}

TEST(SpeedWarnings, PthreadOpenBlasRecommendsOpenmp) {
  BlasInfo blas = openmp_openblas("SkylakeX");
  blas.openblas_threading = "pthread";
  auto w = speed_warnings(avx512_cpu(), blas, 8, {});
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find("pthread"), std::string::npos);
  EXPECT_NE(w[0].find("openmp"), std::string::npos);
}

TEST(SpeedWarnings, FewerThreadsThanCores) {
  auto w = speed_warnings(avx512_cpu(), openmp_openblas("SkylakeX"), 2, {});
  EXPECT_TRUE(any_contains(w, "using 2 of 8 cores"));
}

TEST(SpeedWarnings, SlowBf16) {
  GemmResult fp32, bf16;
  fp32.dtype = c10::kFloat;
  fp32.gflops = 100;
  bf16.dtype = c10::kBFloat16;
  bf16.gflops = 2;
  auto w = speed_warnings(avx512_cpu(), openmp_openblas("SkylakeX"), 8, {fp32, bf16});
  EXPECT_TRUE(any_contains(w, "bf16 GEMM runs 50x slower"));
}

}  // namespace
}  // namespace mixpeft
