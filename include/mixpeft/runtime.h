// Process-wide runtime settings: device and thread count.
#pragma once

#include <string>

#include <c10/core/Device.h>

namespace mixpeft {

// Parses "cpu", "cuda" or "cuda:N". "cuda" without a CUDA build of LibTorch
// (or without a visible GPU) throws kUnsupported saying so.
c10::Device parse_device(const std::string& spec);

// Number of threads used when the user gives none: every core the process may
// run on (sched_getaffinity), not LibTorch's default of one here.
int default_num_threads();

// Sets LibTorch's intra-op thread count (and OpenMP's); n <= 0 means default.
void set_num_threads(int n);

}  // namespace mixpeft
