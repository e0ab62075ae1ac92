// safetensors: reader (memory-mapped, validated before use) and writer
// (atomic: temporary file, fsync, rename). Torch-free; see
// mixpeft/checkpoint.h for the bridge to torch::Tensor.
//
// Format: u64 little-endian header length N, N bytes of JSON header
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
//  "__metadata__": {"key": "string value", ...}}, then the data section.
// Offsets are relative to the start of the data section.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace mixpeft::io {

enum class DType { kF64, kF32, kF16, kBF16, kI64, kI32, kI16, kI8, kU8, kBool };

// "F32" etc. as the format spells it.
const char* dtype_name(DType dtype);
// Throws Error(kUnsupported) naming `context` for an unknown name.
DType parse_dtype(const std::string& name, const std::string& context);
std::size_t dtype_size(DType dtype);

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // offsets inside the data section
  uint64_t end = 0;
  int64_t numel() const;
};

// Largest header accepted (the format's reference implementation uses 100 MB).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

// One .safetensors file, memory-mapped read-only. open() validates the whole
// header before returning: header length within the file and <= 100 MB,
// well-formed JSON, known dtypes, non-negative shapes, offsets inside the data
// section, byte length = numel * dtype size, no two tensors overlapping.
// Any violation throws Error(kCorrupt) whose message names the file and the
// tensor. After open() succeeds, data() never reads out of bounds.
class SafetensorsFile {
 public:
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);
  // Validates an in-memory buffer the same way (used by tests and fuzzers).
  // `label` stands for the file name in messages. The buffer is copied.
  static std::shared_ptr<SafetensorsFile> from_bytes(const std::string& bytes,
                                                     const std::string& label);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  // Tensor names in header order.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find(const std::string& name) const;  // nullptr if absent
  const TensorInfo& get(const std::string& name) const;   // throws kNotFound
  // Pointer to the tensor's bytes (little-endian), valid while this object lives.
  const uint8_t* data(const TensorInfo& info) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  SafetensorsFile() = default;
  void parse(const std::string& label);

  std::string path_;
  const uint8_t* base_ = nullptr;  // whole file
  uint64_t size_ = 0;
  uint64_t data_start_ = 0;
  void* mapping_ = nullptr;  // mmap'ed region, or nullptr
  std::string owned_;        // from_bytes copy
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// A tensor to write: `data` points at numel * dtype_size bytes, little-endian.
struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  std::size_t nbytes = 0;
};

// Writes a .safetensors file atomically (PATH.tmp-XXXX, fsync, rename, fsync
// of the directory). Tensors are written in the given order; names must be
// unique and nbytes must match. On any failure the temporary file is removed
// and an existing file at `path` is left untouched.
void write_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// A checkpoint folder: model.safetensors, or model.safetensors.index.json
// naming shards ({"metadata": {...}, "weight_map": {"tensor": "file"}}).
// Every shard is validated; a tensor listed in the index but missing from its
// shard (or present in two shards) is kCorrupt naming the index and tensor.
class ShardedCheckpoint {
 public:
  // `dir` is a folder, or a path to a single .safetensors file.
  static ShardedCheckpoint open(const std::string& dir);
  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const;
  // The file and entry holding `name`; throws kNotFound naming the checkpoint.
  std::pair<const SafetensorsFile*, const TensorInfo*> locate(const std::string& name) const;
  const std::string& location() const { return location_; }

 private:
  std::string location_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, std::size_t> owner_;  // tensor -> index in files_
};

// Atomically writes `contents` to `path` (temporary file, fsync, rename).
void write_file_atomic(const std::string& path, const std::string& contents);
// Reads a whole file; kNotFound / kIO name the path.
std::string read_file(const std::string& path);

}  // namespace mixpeft::io
