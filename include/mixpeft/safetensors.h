// safetensors: reader (memory-mapped, validated before use) and writer
// (atomic: temporary file, fsync, rename). Torch-free; see
// mixpeft/checkpoint.h for the bridge to torch::Tensor.
//
// Format: u64 little-endian header length N, N bytes of JSON header
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
//  "__metadata__": {"key": "string value", ...}}, then the data section.
// Offsets are relative to the start of the data section.
//
// Error kinds: a file that breaks the format is kCorrupt; a dtype the format
// defines but mixpeft does not read (F8_E4M3, U32, C64, ...) is kUnsupported;
// a missing file or tensor is kNotFound; an OS failure is kIO. Every message
// starts with the file path and names the tensor where there is one (names
// are quoted with control bytes escaped and cut after 200 bytes).
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
// Throws Error(kUnsupported) naming `context` for an unknown name. (Inside a
// file, a name the format does not define at all is kCorrupt instead.)
DType parse_dtype(const std::string& name, const std::string& context);
std::size_t dtype_size(DType dtype);

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // offsets inside the data section
  uint64_t end = 0;
  // 1 for a 0-d scalar. Throws kInvalidArgument for a negative or overflowing
  // shape (never for an entry of an opened file: open() checked it).
  int64_t numel() const;
};

// Largest header accepted (the format's reference implementation uses 100 MB).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

// One .safetensors file, memory-mapped read-only. open() validates the whole
// header before returning: header length within the file and <= 100 MB,
// well-formed JSON (no duplicate keys), each entry exactly {dtype, shape,
// data_offsets} with known dtypes, shape entries in [0, 2^63) whose product
// (and byte size) does not overflow, begin <= end <= data section size,
// byte length = numel * dtype size, and "__metadata__" an object of strings
// (or null, which the reference reader also accepts, meaning none).
// Like the reference Rust reader, the tensors must tile the data section
// exactly: sorted by offset, each begins where the previous ends (so no
// overlaps, no holes, no trailing bytes). Zero-size tensors may sit at any
// tensor boundary. Any violation throws Error(kCorrupt) (kUnsupported for a
// foreign dtype, see above) whose message names the file and the tensor.
// After open() succeeds, data() never reads out of bounds. The header is
// parsed by a streaming validator: memory stays proportional to the tensors
// kept, and the first bad token stops the parse.
// Limit: the file is mapped, not copied; if another process truncates it
// while it is mapped, reading the lost pages raises SIGBUS (as with any mmap
// reader, the reference one included).
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
  // Tensors in the file's header order (not sorted by name or offset).
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find(const std::string& name) const;  // nullptr if absent
  const TensorInfo& get(const std::string& name) const;   // throws kNotFound
  // Pointer to the tensor's bytes (little-endian), valid while this object
  // lives. Not aligned in general (the data section starts at 8 + header
  // length). `info` may be a copy: throws kInvalidArgument if its offsets do
  // not lie inside this file's data section.
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
// of the directory). Tensors are written in the given order, contiguous from
// offset 0; "__metadata__" comes first and is left out when empty; the
// header JSON is compact and padded with spaces to a multiple of 8 bytes,
// like the reference writer's. Names must be unique, valid UTF-8 and not
// "__metadata__"; shapes non-negative; nbytes must match (kInvalidArgument,
// checked before any file is created). OS failures are kIO. On any failure
// the temporary file is removed and an existing file at `path` is left
// untouched. The new file has mode 0666 & ~umask.
void write_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// A checkpoint folder: model.safetensors, or model.safetensors.index.json
// naming shards ({"metadata": {...}, "weight_map": {"tensor": "file"}}).
// Every shard is validated and opened once; a tensor listed in the index but
// missing from its shard (or present in two shards) is kCorrupt naming the
// index and tensor. Also kCorrupt: a shard name that is not a plain file name
// in the folder (empty, ".", "..", containing '/', '\' or NUL), a tensor
// listed twice in weight_map, and a tensor a shard holds that weight_map does
// not list (transformers would load it anyway, so the index is not to be
// trusted). A shard file that does not exist is kNotFound naming the index.
class ShardedCheckpoint {
 public:
  // `dir` is a folder, a path to a single .safetensors file, or a path to an
  // index .json file. In a folder, model.safetensors wins over the index when
  // both exist (as in transformers); neither is kNotFound naming both.
  // location() is the folder, or the file for a single-file checkpoint.
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
