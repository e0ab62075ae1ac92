// The LRU cache of materialised adapters (adapter_cache.h).
#include "serve/adapter_cache.h"

#include <gtest/gtest.h>

#include "mixpeft/error.h"

namespace mixpeft::serve {
namespace {

using Cache = AdapterCache<std::string>;

Cache::Make value(const std::string& v, int64_t bytes, int* made) {
  return [=] {
    ++*made;
    return std::make_pair(std::make_shared<const std::string>(v), bytes);
  };
}

TEST(AdapterCache, HitsMissesAndVersions) {
  Cache cache(100);
  int made = 0;
  EXPECT_EQ(*cache.get_or_make("a", 1, value("a1", 10, &made)), "a1");
  EXPECT_EQ(*cache.get_or_make("a", 1, value("other", 10, &made)), "a1");
  EXPECT_EQ(made, 1);
  // A new version is a miss and replaces the old one.
  EXPECT_EQ(*cache.get_or_make("a", 2, value("a2", 30, &made)), "a2");
  BackendStats s = cache.stats();
  EXPECT_EQ(s.cache_hits, 1);
  EXPECT_EQ(s.cache_misses, 2);
  EXPECT_EQ(s.cache_entries, 1);
  EXPECT_EQ(s.cache_bytes, 30);
  EXPECT_EQ(s.cache_capacity_bytes, 100);
}

TEST(AdapterCache, EvictsLeastRecentlyUsedPastTheBound) {
  Cache cache(100);
  int made = 0;
  cache.get_or_make("a", 1, value("a", 40, &made));
  cache.get_or_make("b", 2, value("b", 40, &made));
  cache.get_or_make("a", 1, value("a", 40, &made));  // a is now the most recent
  auto held = cache.get_or_make("b", 2, value("b", 40, &made));
  cache.get_or_make("a", 1, value("a", 40, &made));
  cache.get_or_make("c", 3, value("c", 40, &made));  // 120 > 100: b goes
  EXPECT_EQ(made, 3);
  EXPECT_EQ(cache.stats().cache_evictions, 1);
  EXPECT_EQ(cache.stats().cache_bytes, 80);
  EXPECT_EQ(*held, "b");  // still usable by whoever holds it
  cache.get_or_make("a", 1, value("a", 40, &made));
  EXPECT_EQ(made, 3);
  cache.get_or_make("b", 2, value("b", 40, &made));
  EXPECT_EQ(made, 4);
  // Larger than the whole bound: returned, not kept.
  EXPECT_EQ(*cache.get_or_make("huge", 9, value("h", 1000, &made)), "h");
  EXPECT_LE(cache.stats().cache_bytes, 100);
  cache.get_or_make("huge", 9, value("h", 1000, &made));
  EXPECT_EQ(made, 6);
}

TEST(AdapterCache, ForgetDropsEveryVersionAndMakeErrorsPropagate) {
  Cache cache(100);
  int made = 0;
  cache.get_or_make("a", 1, value("a", 10, &made));
  cache.forget("a");
  EXPECT_EQ(cache.stats().cache_entries, 0);
  EXPECT_EQ(cache.stats().cache_bytes, 0);
  EXPECT_THROW(cache.get_or_make("b", 1, []() -> std::pair<std::shared_ptr<const std::string>, int64_t> {
    fail(ErrorKind::kCorrupt, "bad");
  }),
               Error);
  EXPECT_EQ(cache.stats().cache_entries, 0);
}

}  // namespace
}  // namespace mixpeft::serve
