#include "mixpeft/checkpoint.h"

#include <cstring>

#include <torch/torch.h>

#include "io/file_util.h"
#include "mixpeft/error.h"

namespace mixpeft::io {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "tensors are copied to and from safetensors' little-endian bytes as raw memory");

c10::ScalarType to_scalar_type(DType dtype) {
  switch (dtype) {
    case DType::kF64: return c10::kDouble;
    case DType::kF32: return c10::kFloat;
    case DType::kF16: return c10::kHalf;
    case DType::kBF16: return c10::kBFloat16;
    case DType::kI64: return c10::kLong;
    case DType::kI32: return c10::kInt;
    case DType::kI16: return c10::kShort;
    case DType::kI8: return c10::kChar;
    case DType::kU8: return c10::kByte;
    case DType::kBool: return c10::kBool;
  }
  fail(ErrorKind::kInternal, "to_scalar_type: invalid DType ", static_cast<int>(dtype));
}

DType from_scalar_type(c10::ScalarType type, const std::string& context) {
  switch (type) {
    case c10::kDouble: return DType::kF64;
    case c10::kFloat: return DType::kF32;
    case c10::kHalf: return DType::kF16;
    case c10::kBFloat16: return DType::kBF16;
    case c10::kLong: return DType::kI64;
    case c10::kInt: return DType::kI32;
    case c10::kShort: return DType::kI16;
    case c10::kChar: return DType::kI8;
    case c10::kByte: return DType::kU8;
    case c10::kBool: return DType::kBool;
    default:
      fail(ErrorKind::kUnsupported, context, ": torch dtype ", c10::toString(type),
           " has no safetensors equivalent that mixpeft writes");
  }
}

at::Tensor read_tensor(const SafetensorsFile& file, const TensorInfo& info) {
  const uint8_t* src = file.data(info);  // checks the offsets against the file
  const std::size_t nbytes = info.end - info.begin;
  at::Tensor out = torch::empty(info.shape, torch::TensorOptions().dtype(to_scalar_type(info.dtype)));
  MIXPEFT_CHECK(static_cast<std::size_t>(out.nbytes()) == nbytes, ErrorKind::kInvalidArgument, file.path(),
                ": tensor ", detail::quote(info.name), ": data_offsets hold ", nbytes, " bytes but ",
                dtype_name(info.dtype), " ", detail::shape_string(info.shape), " needs ", out.nbytes());
  if (info.dtype == DType::kBool) {
    // torch assumes a bool byte is 0 or 1; any other value is undefined behaviour in its kernels.
    for (std::size_t i = 0; i < nbytes; ++i) {
      MIXPEFT_CHECK(src[i] <= 1, ErrorKind::kCorrupt, file.path(), ": tensor ", detail::quote(info.name),
                    ": BOOL element ", i, " is ", static_cast<int>(src[i]), ", not 0 or 1");
    }
  }
  if (nbytes > 0) std::memcpy(out.data_ptr(), src, nbytes);
  return out;
}

std::map<std::string, at::Tensor> load_tensors(const std::string& path) {
  ShardedCheckpoint ckpt = ShardedCheckpoint::open(path);
  std::map<std::string, at::Tensor> out;
  for (const std::string& name : ckpt.names()) {
    auto [file, info] = ckpt.locate(name);
    out.emplace(name, read_tensor(*file, *info));
  }
  return out;
}

void save_tensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                  const std::map<std::string, std::string>& metadata) {
  std::vector<at::Tensor> cpu;  // keeps the copies alive until written
  std::vector<TensorView> views;
  cpu.reserve(tensors.size());
  views.reserve(tensors.size());
  for (const auto& [name, tensor] : tensors) {
    MIXPEFT_CHECK(tensor.defined(), ErrorKind::kInvalidArgument, path, ": tensor ", detail::quote(name),
                  " is undefined");
    TensorView view;
    view.name = name;
    view.dtype = from_scalar_type(tensor.scalar_type(), cat(path, ": tensor ", detail::quote(name)));
    at::Tensor t = tensor.detach();
    if (t.layout() != c10::kStrided) t = t.to_dense();  // sparse, mkldnn
    t = t.to(torch::kCPU).resolve_conj().resolve_neg().contiguous();
    view.shape = t.sizes().vec();
    view.data = t.numel() > 0 ? t.data_ptr() : nullptr;
    view.nbytes = t.nbytes();
    cpu.push_back(std::move(t));
    views.push_back(std::move(view));
  }
  write_safetensors(path, views, metadata);
}

}  // namespace mixpeft::io
