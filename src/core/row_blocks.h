// Rows of a [N, V] tensor in blocks of a few, spread over the intra-op
// threads: what the vocabulary-wide losses (src/train/loss.cc, AdaMix's
// consistency term) use so that each block's passes stay in cache.
#pragma once

#include <algorithm>
#include <cstdint>

#include <ATen/Parallel.h>

namespace mixpeft {

// Rows per block: 16 rows of a 50k vocabulary in float32 (3 MB) stay in cache
// between a block's passes.
constexpr int64_t kRowsPerBlock = 16;

// Calls fn(first_row, rows) for consecutive blocks of at most kRowsPerBlock
// rows covering [0, N), blocks on different threads in parallel. ATen ops
// inside fn run single-threaded (nested parallelism is serial).
template <typename Fn>
void for_each_row_block(int64_t N, const Fn& fn) {
  at::parallel_for(0, N, kRowsPerBlock, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; r += kRowsPerBlock) fn(r, std::min(kRowsPerBlock, hi - r));
  });
}

}  // namespace mixpeft
