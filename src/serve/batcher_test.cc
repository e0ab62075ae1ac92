// Request batching (batcher.h).
#include "serve/batcher.h"

#include <atomic>
#include <string>

#include <gtest/gtest.h>

namespace mixpeft::serve {
namespace {

using B = Batcher<int, int>;

TEST(Batcher, CollectsConcurrentItemsIntoOneBatchWithinTheWindow) {
  std::mutex m;
  std::vector<std::vector<int>> batches;
  B b({/*window_us=*/300000, /*max_rows=*/100}, [&](std::vector<int>& items) {
    std::lock_guard<std::mutex> lock(m);
    batches.push_back(items);
    std::vector<int> out;
    for (int x : items) out.push_back(x * 10);
    return out;
  });
  std::vector<std::thread> threads;
  std::vector<int> got(4);
  for (int i = 0; i < 4; ++i) threads.emplace_back([&, i] { got[i] = b.submit(i, 1); });
  for (auto& t : threads) t.join();
  for (int i = 0; i < 4; ++i) EXPECT_EQ(got[i], i * 10);
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0].size(), 4u);
}

TEST(Batcher, RespectsMaxRowsAndStartsAFullBatchAtOnce) {
  std::mutex m;
  std::vector<size_t> sizes;
  // A long window: only max_rows can start these batches quickly.
  B b({/*window_us=*/30000000, /*max_rows=*/4}, [&](std::vector<int>& items) {
    std::lock_guard<std::mutex> lock(m);
    sizes.push_back(items.size());
    return std::vector<int>(items.size(), 1);
  });
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) threads.emplace_back([&] { b.submit(0, 2); });
  for (auto& t : threads) t.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
  ASSERT_EQ(sizes.size(), 2u);
  EXPECT_EQ(sizes[0], 2u);
  EXPECT_EQ(sizes[1], 2u);
}

TEST(Batcher, AnErrorReachesEveryItemOfItsBatchAndStopRefusesNewWork) {
  B b({0, 8}, [](std::vector<int>& items) -> std::vector<int> {
    if (items[0] < 0) fail(ErrorKind::kInvalidArgument, "negative");
    return std::vector<int>(items.size(), 7);
  });
  EXPECT_THROW(b.submit(-1, 1), Error);
  EXPECT_EQ(b.submit(1, 1), 7);
  b.stop();
  EXPECT_THROW(b.submit(1, 1), Error);
}

}  // namespace
}  // namespace mixpeft::serve
