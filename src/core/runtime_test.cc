#include "mixpeft/runtime.h"

#include <cstdlib>
#include <set>
#include <vector>

#include <ATen/ATen.h>
#include <c10/core/CPUAllocator.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include "core/row_blocks.h"
#include "mixpeft/error.h"

namespace mixpeft {
namespace {

TEST(Runtime, ParsesDevices) {
  EXPECT_TRUE(parse_device("cpu").is_cpu());
  try {
    parse_device("tpu");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("tpu"), std::string::npos);
  }
  if (!torch::cuda::is_available()) {
    try {
      parse_device("cuda");
      FAIL();
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kUnsupported);
    }
  }
}

TEST(Runtime, DefaultThreadsUsesEveryCore) {
  EXPECT_GE(default_num_threads(), 1);
  set_num_threads(0);
  EXPECT_EQ(at::get_num_threads(), default_num_threads());
}

TEST(Runtime, CachingCpuAllocatorReusesLargeBlocksWithinItsBound) {
  if (std::getenv("MIXPEFT_CPU_CACHE_MB")) GTEST_SKIP() << "MIXPEFT_CPU_CACHE_MB is set";
  use_caching_cpu_allocator(int64_t(16) << 20);  // 16 MiB held free at most
  const int64_t mib = (1 << 20) / 4;             // floats in a MiB
  auto t = at::full({3 * mib}, 2.5f);
  void* first = t.data_ptr();
  EXPECT_EQ(reinterpret_cast<uintptr_t>(first) % 64, 0u);
  t = at::Tensor();  // freed: kept
  const auto before = cpu_cache_stats();
  EXPECT_GE(before.cached_bytes, int64_t(3) << 20);
  auto u = at::zeros({3 * mib - 1000});  // rounds up to the same 3 MiB block
  EXPECT_EQ(u.data_ptr(), first);
  EXPECT_EQ(cpu_cache_stats().hits, before.hits + 1);
  EXPECT_EQ(u.sum().item<float>(), 0.0f) << "a reused block holds what the new tensor wrote";
  u = at::Tensor();
  // A much smaller request does not take the 3 MiB block (at most 25% bigger).
  auto small = at::empty({1 * mib});
  EXPECT_NE(small.data_ptr(), first);
  // Past the bound, freed blocks go back to the OS: the cache never holds more.
  std::vector<at::Tensor> many;
  for (int i = 0; i < 8; ++i) many.push_back(at::empty({4 * mib}));
  many.clear();
  EXPECT_LE(cpu_cache_stats().cached_bytes, int64_t(16) << 20);
  // raw_allocate (ATen's scratch buffers) needs the data pointer to be the
  // deleter's context.
  auto* allocator = c10::GetCPUAllocator();
  void* raw = allocator->raw_allocate(3 << 20);
  ASSERT_NE(raw, nullptr);
  allocator->raw_deallocate(raw);
  void* raw_small = allocator->raw_allocate(100);
  allocator->raw_deallocate(raw_small);
  // Small tensors are plain malloc, and everything computes as before.
  auto a = at::randn({64, 4096}), b = at::randn({4096, 300});
  EXPECT_TRUE(at::allclose(at::mm(a, b), at::mm(a.to(at::kDouble), b.to(at::kDouble)).to(at::kFloat), 1e-4, 1e-3));
}

// for_each_row_block covers every row once, spread over the intra-op
// threads. at::parallel_for is inline OpenMP code in LibTorch's headers: in
// a file compiled without -fopenmp it quietly runs on one thread, as the
// vocabulary-wide losses did before CMakeLists.txt added OpenMP.
TEST(RowBlocks, CoverEveryRowOnceOnSeveralThreads) {
  const int previous = at::get_num_threads();
  at::set_num_threads(2);
  const int64_t n = 1000;
  std::vector<int> visits(n, 0), thread(n, -1);
  for_each_row_block(n, [&](int64_t r, int64_t k) {
    EXPECT_LE(k, kRowsPerBlock);
    for (int64_t i = r; i < r + k; ++i) {
      ++visits[i];
      thread[i] = at::get_thread_num();
    }
  });
  at::set_num_threads(previous);
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(visits[i], 1) << "row " << i;
  EXPECT_EQ(std::set<int>(thread.begin(), thread.end()).size(), 2u);
}

}  // namespace
}  // namespace mixpeft
