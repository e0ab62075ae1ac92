// The cache of materialised adapters of `mixpeft serve`: least recently used
// entries go first once the bytes held pass a bound. Keyed on (profile name,
// store version): a replaced or re-created profile has a new version, so it
// can never be answered from a stale entry. Values are shared_ptr<const V>:
// a batch that holds one keeps it alive after an eviction or a forget(), so
// deleting a profile never disturbs a request already running. Torch-free.
//
//   AdapterCache<Adapters> cache(256 << 20);
//   auto a = cache.get_or_make("alice", 7, [&] { return std::make_pair(make(), bytes); });
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "mixpeft/serve.h"

namespace mixpeft::serve {

template <typename V>
class AdapterCache {
 public:
  using Make = std::function<std::pair<std::shared_ptr<const V>, int64_t>()>;  // value and its bytes

  // capacity_bytes: the bound (an entry larger than it is still returned,
  // just not kept).
  explicit AdapterCache(int64_t capacity_bytes) : capacity_(capacity_bytes) {}

  // The entry for (name, version), made with `make` on a miss. `make` runs
  // without the cache's lock (two threads missing the same key may both
  // make it; the second result is dropped). Exceptions from make propagate.
  std::shared_ptr<const V> get_or_make(const std::string& name, int64_t version, const Make& make) {
    const Key key{name, version};
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = index_.find(key);
      if (it != index_.end()) {
        order_.splice(order_.begin(), order_, it->second);
        ++stats_.cache_hits;
        return it->second->value;
      }
      ++stats_.cache_misses;
    }
    auto [value, bytes] = make();
    std::lock_guard<std::mutex> lock(mutex_);
    if (index_.count(key)) return index_[key]->value;
    if (bytes > capacity_) return value;
    // Older versions of the same name are dead: drop them first.
    erase_name_locked(name);
    order_.push_front(Entry{key, value, bytes});
    index_[key] = order_.begin();
    stats_.cache_bytes += bytes;
    while (stats_.cache_bytes > capacity_ && !order_.empty()) {
      auto last = std::prev(order_.end());
      stats_.cache_bytes -= last->bytes;
      index_.erase(last->key);
      order_.erase(last);
      ++stats_.cache_evictions;
    }
    return value;
  }

  // Drops every version of `name`.
  void forget(const std::string& name) {
    std::lock_guard<std::mutex> lock(mutex_);
    erase_name_locked(name);
  }

  BackendStats stats() const {
    std::lock_guard<std::mutex> lock(mutex_);
    BackendStats s = stats_;
    s.cache_entries = int64_t(order_.size());
    s.cache_capacity_bytes = capacity_;
    return s;
  }

 private:
  using Key = std::pair<std::string, int64_t>;
  struct Entry {
    Key key;
    std::shared_ptr<const V> value;
    int64_t bytes;
  };

  void erase_name_locked(const std::string& name) {
    auto it = index_.lower_bound(Key{name, INT64_MIN});
    while (it != index_.end() && it->first.first == name) {
      stats_.cache_bytes -= it->second->bytes;
      order_.erase(it->second);
      it = index_.erase(it);
    }
  }

  const int64_t capacity_;
  mutable std::mutex mutex_;
  std::list<Entry> order_;  // most recently used first
  std::map<Key, typename std::list<Entry>::iterator> index_;
  BackendStats stats_;
};

}  // namespace mixpeft::serve
