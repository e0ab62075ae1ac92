// Bridge between safetensors files and torch tensors.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "mixpeft/safetensors.h"

namespace mixpeft::io {

c10::ScalarType to_scalar_type(DType dtype);
// Throws kUnsupported naming `context` for a scalar type safetensors lacks.
DType from_scalar_type(c10::ScalarType type, const std::string& context);

// Copies a stored tensor into a new contiguous CPU tensor of its stored dtype
// (little-endian hosts only, checked at compile time). A BOOL byte other than
// 0 or 1 is kCorrupt (torch kernels assume 0/1).
at::Tensor read_tensor(const SafetensorsFile& file, const TensorInfo& info);
// Every tensor of a file (or a checkpoint folder, or an index .json; see
// ShardedCheckpoint::open), by name.
std::map<std::string, at::Tensor> load_tensors(const std::string& path);

// Writes tensors (any device, any layout; copied to contiguous CPU) atomically,
// in the given order (see write_safetensors). Sparse/mkldnn tensors are
// densified, conjugate/negative views resolved, autograd detached. A dtype
// safetensors lacks (complex, quantized) is kUnsupported naming the tensor.
void save_tensors(const std::string& path,
                  const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                  const std::map<std::string, std::string>& metadata = {});

}  // namespace mixpeft::io
