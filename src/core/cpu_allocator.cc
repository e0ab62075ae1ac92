// The caching CPU allocator of include/mixpeft/runtime.h.
//
// Every block carries a 64-byte header, before the data, holding its
// capacity, so the deleter (a plain function given the data pointer: c10's
// raw_allocate wants data == context) knows what it frees. Large blocks are rounded up to whole MiB and kept in a
// size-ordered free list; a request takes the smallest free block that is
// big enough and at most 25% bigger, so one kept block does not pin much
// more memory than asked for.
//
// Blocks of 2 MiB and up are 2 MiB-aligned and marked MADV_HUGEPAGE (Linux
// transparent huge pages, where the system leaves them to madvise, as
// Debian does): AdaMix's consistency step, which streams two [tokens,
// vocabulary] logits and their gradients, ran 5-8% faster on this machine,
// the LoRA step the same (docs/PERFORMANCE.md). $MIXPEFT_THP=0 turns it off.
#include <malloc.h>
#include <sys/mman.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <string_view>

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include "mixpeft/runtime.h"

namespace mixpeft {
namespace {

constexpr size_t kHeader = 64;            // keeps the data 64-byte aligned, as LibTorch's own allocator does
constexpr size_t kLarge = size_t(1) << 20;  // blocks from here on are cached
constexpr size_t kHuge = size_t(2) << 20;   // blocks from here on ask for transparent huge pages

bool huge_pages_wanted() {
  static const bool on = [] {
    const char* env = std::getenv("MIXPEFT_THP");
    return env == nullptr || std::string_view(env) != "0";
  }();
  return on;
}

void* allocate_block(size_t bytes) {
  void* block = nullptr;
  const bool huge = bytes >= kHuge && huge_pages_wanted();
  if (posix_memalign(&block, huge ? kHuge : kHeader, bytes) != 0) return nullptr;
  if (huge && block != nullptr) {
    const auto lo = reinterpret_cast<uintptr_t>(block);
    const uintptr_t begin = (lo + kHuge - 1) / kHuge * kHuge, end = (lo + bytes) / kHuge * kHuge;
    if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
  }
  return block;
}

struct Cache {
  std::mutex mutex;
  std::multimap<size_t, void*> free;  // capacity -> block (header address)
  size_t cached = 0, limit = 0;
  int64_t hits = 0, misses = 0;
};

Cache& cache() {
  static Cache* c = new Cache();  // never destroyed: tensors may be freed during static destruction
  return *c;
}

size_t& capacity_of(void* block) { return *static_cast<size_t*>(block); }

void release(void* data) {
  if (data == nullptr) return;
  void* block = static_cast<char*>(data) - kHeader;
  const size_t capacity = capacity_of(block);
  if (capacity >= kLarge) {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    if (c.cached + capacity <= c.limit) {
      c.free.emplace(capacity, block);
      c.cached += capacity;
      return;
    }
  }
  std::free(block);
}

class CachingCpuAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t n) const override {
    size_t capacity = n;
    void* block = nullptr;
    if (n >= kLarge) {
      capacity = (n + kLarge - 1) / kLarge * kLarge;
      Cache& c = cache();
      std::lock_guard<std::mutex> lock(c.mutex);
      auto it = c.free.lower_bound(capacity);
      if (it != c.free.end() && it->first <= capacity + capacity / 4) {
        block = it->second;
        capacity = it->first;
        c.cached -= capacity;
        c.free.erase(it);
        ++c.hits;
      } else {
        ++c.misses;
      }
    }
    if (block == nullptr) {
      if ((block = allocate_block(capacity + kHeader)) == nullptr) {
        // Out of memory: give the cache back to the OS and try once more.
        {
          Cache& c = cache();
          std::lock_guard<std::mutex> lock(c.mutex);
          for (auto& [size, b] : c.free) std::free(b);
          c.free.clear();
          c.cached = 0;
        }
        if ((block = allocate_block(capacity + kHeader)) == nullptr)
          throw std::bad_alloc();
      }
      capacity_of(block) = capacity;
    }
    void* data = static_cast<char*>(block) + kHeader;
    return {data, data, &release, c10::Device(c10::kCPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &release; }
};

}  // namespace

void use_caching_cpu_allocator(int64_t max_cached_bytes) {
  static std::once_flag once;
  std::call_once(once, [&] {
    if (const char* env = std::getenv("MIXPEFT_CPU_CACHE_MB")) max_cached_bytes = std::atoll(env) << 20;
    if (max_cached_bytes <= 0) return;
    cache().limit = size_t(max_cached_bytes);
#ifdef __GLIBC__
    // $MIXPEFT_MALLOC_KEEP=0 leaves glibc's adaptive thresholds alone.
    // Blocks under kLarge stay with malloc. glibc's adaptive thresholds trim
    // the top of its heap whenever more than twice the largest block it has
    // unmapped lies free there; AdaMix's consistency step freed 58 MB there
    // and page-faulted it back in every step (brk up and down, 15k minor
    // faults per step, its forwards 6% slower than LoRA's). Fixed thresholds
    // keep that heap: mmap for blocks of 32 MiB and up (where the adaptive one
    // ends; those this cache keeps), and trim only past the cache's bound.
    const char* keep = std::getenv("MIXPEFT_MALLOC_KEEP");
    if (keep == nullptr || std::string_view(keep) != "0") {
      mallopt(M_MMAP_THRESHOLD, 32 << 20);
      mallopt(M_TRIM_THRESHOLD, static_cast<int>(std::min<int64_t>(max_cached_bytes, INT_MAX)));
    }
#endif
    static CachingCpuAllocator allocator;
    // Priority 1: above LibTorch's default CPU allocator (0).
    c10::SetCPUAllocator(&allocator, /*priority=*/1);
  });
}

CpuCacheStats cpu_cache_stats() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return {c.hits, c.misses, int64_t(c.cached)};
}

}  // namespace mixpeft
