// safetensors reader and writer. The header is parsed with a SAX handler that
// validates while it reads: no DOM is built (a 100 MB header of tiny objects
// would otherwise cost gigabytes), duplicate names are caught (a DOM keeps
// one silently) and the first wrong token stops the parse.
#include "mixpeft/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <numeric>
#include <optional>
#include <set>
#include <tuple>

#include <nlohmann/json.hpp>

#include "io/file_util.h"
#include "mixpeft/error.h"

namespace mixpeft::io {

using detail::quote;
using detail::shape_string;

namespace {

struct DTypeEntry {
  DType dtype;
  const char* name;
  std::size_t size;
};

constexpr DTypeEntry kDTypes[] = {
    {DType::kF64, "F64", 8}, {DType::kF32, "F32", 4}, {DType::kF16, "F16", 2},
    {DType::kBF16, "BF16", 2}, {DType::kI64, "I64", 8}, {DType::kI32, "I32", 4},
    {DType::kI16, "I16", 2}, {DType::kI8, "I8", 1}, {DType::kU8, "U8", 1},
    {DType::kBool, "BOOL", 1},
};

// Names the format defines that mixpeft does not handle: kUnsupported, not
// kCorrupt, when a file uses them.
constexpr const char* kForeignDTypes[] = {"U16", "U32", "U64", "C64", "F8_E4M3", "F8_E5M2",
                                          "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4"};

std::optional<DType> find_dtype(const std::string& name) {
  for (const auto& e : kDTypes) {
    if (name == e.name) return e.dtype;
  }
  return std::nullopt;
}

const char* kSupportedList = "F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL";

uint64_t read_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// Elements and bytes of `shape` in `dtype`; nullopt when either overflows
// (elements must fit int64, bytes uint64).
std::optional<std::pair<int64_t, uint64_t>> checked_size(const std::vector<int64_t>& shape,
                                                         DType dtype) {
  uint64_t numel = 1;
  for (int64_t d : shape) {
    if (d < 0) return std::nullopt;
    if (__builtin_mul_overflow(numel, static_cast<uint64_t>(d), &numel)) return std::nullopt;
  }
  if (numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
  uint64_t nbytes = 0;
  if (__builtin_mul_overflow(numel, static_cast<uint64_t>(dtype_size(dtype)), &nbytes)) {
    return std::nullopt;
  }
  return std::make_pair(static_cast<int64_t>(numel), nbytes);
}

using json = nlohmann::json;

// Validating SAX handler for the header object. Expected shape:
//   {"__metadata__": {"k": "v", ...} | null,
//    "<name>": {"dtype": "F32", "shape": [u64...], "data_offsets": [u64, u64]}, ...}
class HeaderSax : public json::json_sax_t {
 public:
  HeaderSax(const std::string& label, std::vector<TensorInfo>& tensors,
            std::map<std::string, std::size_t>& index, std::map<std::string, std::string>& metadata)
      : label_(label), tensors_(tensors), index_(index), metadata_(metadata) {}

  bool done() const { return state_ == State::kDone; }

  bool null() override {
    if (state_ == State::kMeta) {  // the reference reader takes null as "no metadata"
      state_ = State::kTopKey;
      return true;
    }
    return unexpected("null");
  }
  bool boolean(bool v) override { return unexpected(v ? "true" : "false"); }
  bool number_integer(number_integer_t v) override {
    if (v >= 0) return number_unsigned(static_cast<number_unsigned_t>(v));  // "-0"
    return unexpected(std::to_string(v));
  }
  bool number_unsigned(number_unsigned_t v) override {
    if (state_ == State::kShapeItem) {
      if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        corrupt("shape[", current_.shape.size(), "] = ", v, " is too large");
      }
      current_.shape.push_back(static_cast<int64_t>(v));
      return true;
    }
    if (state_ == State::kOffsetsItem) {
      if (offsets_seen_ == 2) corrupt("data_offsets must have exactly 2 entries [begin, end]");
      (offsets_seen_ == 0 ? current_.begin : current_.end) = v;
      ++offsets_seen_;
      return true;
    }
    return unexpected(std::to_string(v));
  }
  bool number_float(number_float_t, const string_t& text) override {
    return unexpected(text.size() > 40 ? text.substr(0, 40) + "..." : text);
  }
  bool string(string_t& s) override {
    if (state_ == State::kDtype) {
      std::optional<DType> dtype = find_dtype(s);
      if (!dtype) {
        bool foreign = std::any_of(std::begin(kForeignDTypes), std::end(kForeignDTypes),
                                   [&](const char* n) { return s == n; });
        if (foreign) {
          fail(ErrorKind::kUnsupported, context(), "dtype ", quote(s, 40), " is not supported (mixpeft reads ",
               kSupportedList, ")");
        }
        corrupt("unknown dtype ", quote(s, 40), " (mixpeft reads ", kSupportedList, ")");
      }
      current_.dtype = *dtype;
      state_ = State::kField;
      return true;
    }
    if (state_ == State::kMetaValue) {
      metadata_[meta_key_] = std::move(s);
      state_ = State::kMetaKey;
      return true;
    }
    return unexpected("a string");
  }
  bool binary(binary_t&) override { return unexpected("binary data"); }

  bool start_object(std::size_t) override {
    switch (state_) {
      case State::kRoot: state_ = State::kTopKey; return true;
      case State::kEntry: state_ = State::kField; return true;
      case State::kMeta: state_ = State::kMetaKey; return true;
      default: return unexpected("an object");
    }
  }
  bool key(string_t& k) override {
    if (state_ == State::kTopKey) {
      if (k == "__metadata__") {
        if (seen_metadata_) fail(ErrorKind::kCorrupt, label_, ": header: \"__metadata__\" appears twice");
        seen_metadata_ = true;
        state_ = State::kMeta;
        return true;
      }
      if (index_.count(k) > 0) {
        fail(ErrorKind::kCorrupt, label_, ": tensor ", quote(k), ": appears twice in the header");
      }
      current_ = TensorInfo{};
      current_.name = std::move(k);
      fields_ = 0;
      state_ = State::kEntry;
      return true;
    }
    if (state_ == State::kField) {
      int bit = k == "dtype" ? 1 : k == "shape" ? 2 : k == "data_offsets" ? 4 : 0;
      if (bit == 0) corrupt("unexpected field ", quote(k, 40), " (allowed: dtype, shape, data_offsets)");
      if (fields_ & bit) corrupt("field ", quote(k), " appears twice");
      fields_ |= bit;
      state_ = bit == 1 ? State::kDtype : bit == 2 ? State::kShape : State::kOffsets;
      return true;
    }
    if (state_ == State::kMetaKey) {
      if (metadata_.count(k) > 0) corrupt("key ", quote(k), " appears twice");
      meta_key_ = std::move(k);
      state_ = State::kMetaValue;
      return true;
    }
    return unexpected("a key");  // not reachable: the parser only sends keys inside objects
  }
  bool end_object() override {
    switch (state_) {
      case State::kTopKey: state_ = State::kDone; return true;
      case State::kMetaKey: state_ = State::kTopKey; return true;
      case State::kField:
        if (fields_ != 7) {
          corrupt("missing field ", !(fields_ & 1) ? "\"dtype\"" : !(fields_ & 2) ? "\"shape\"" : "\"data_offsets\"");
        }
        index_.emplace(current_.name, tensors_.size());
        tensors_.push_back(std::move(current_));
        state_ = State::kTopKey;
        return true;
      default: return unexpected("the end of an object");
    }
  }
  bool start_array(std::size_t) override {
    if (state_ == State::kShape) {
      state_ = State::kShapeItem;
      return true;
    }
    if (state_ == State::kOffsets) {
      state_ = State::kOffsetsItem;
      offsets_seen_ = 0;
      return true;
    }
    return unexpected("an array");
  }
  bool end_array() override {
    if (state_ == State::kShapeItem) {
      state_ = State::kField;
      return true;
    }
    if (state_ == State::kOffsetsItem) {
      if (offsets_seen_ != 2) corrupt("data_offsets must have exactly 2 entries [begin, end]");
      state_ = State::kField;
      return true;
    }
    return unexpected("the end of an array");
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& ex) override {
    fail(ErrorKind::kCorrupt, label_, ": header is not valid JSON: ", ex.what());
  }

 private:
  enum class State {
    kRoot, kTopKey, kEntry, kField, kDtype, kShape, kShapeItem, kOffsets, kOffsetsItem,
    kMeta, kMetaKey, kMetaValue, kDone,
  };

  bool in_tensor() const { return state_ >= State::kEntry && state_ <= State::kOffsetsItem; }
  bool in_metadata() const { return state_ >= State::kMeta && state_ <= State::kMetaValue; }

  std::string context() const {
    if (in_tensor()) return cat(label_, ": tensor ", quote(current_.name), ": ");
    if (in_metadata()) return cat(label_, ": __metadata__: ");
    return cat(label_, ": header: ");
  }

  template <typename... Args>
  [[noreturn]] void corrupt(Args&&... args) const {
    fail(ErrorKind::kCorrupt, context(), std::forward<Args>(args)...);
  }

  // A token that does not fit the current state.
  bool unexpected(const std::string& got) const {
    switch (state_) {
      case State::kRoot: corrupt("must be a JSON object, got ", got);
      case State::kEntry: corrupt("entry must be an object {dtype, shape, data_offsets}, got ", got);
      case State::kDtype: corrupt("dtype must be a string, got ", got);
      case State::kShape: corrupt("shape must be an array, got ", got);
      case State::kShapeItem:
        corrupt("shape[", current_.shape.size(), "] must be a non-negative integer, got ", got);
      case State::kOffsets: corrupt("data_offsets must be an array [begin, end], got ", got);
      case State::kOffsetsItem:
        corrupt("data_offsets[", offsets_seen_, "] must be a non-negative integer, got ", got);
      case State::kMeta: corrupt("must be an object of strings, got ", got);
      case State::kMetaValue: corrupt("value of ", quote(meta_key_), " must be a string, got ", got);
      default: corrupt("unexpected ", got);
    }
  }

  const std::string& label_;
  std::vector<TensorInfo>& tensors_;
  std::map<std::string, std::size_t>& index_;
  std::map<std::string, std::string>& metadata_;
  State state_ = State::kRoot;
  TensorInfo current_;
  int fields_ = 0;  // bits: 1 dtype, 2 shape, 4 data_offsets
  int offsets_seen_ = 0;
  bool seen_metadata_ = false;
  std::string meta_key_;
};

}  // namespace

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "mixpeft reads and writes safetensors data as raw host bytes: little-endian hosts only");

const char* dtype_name(DType dtype) {
  for (const auto& e : kDTypes) {
    if (e.dtype == dtype) return e.name;
  }
  fail(ErrorKind::kInternal, "dtype_name: invalid DType ", static_cast<int>(dtype));
}

DType parse_dtype(const std::string& name, const std::string& context) {
  std::optional<DType> dtype = find_dtype(name);
  if (!dtype) {
    fail(ErrorKind::kUnsupported, context, ": unknown dtype ", quote(name, 40), " (mixpeft reads ", kSupportedList,
         ")");
  }
  return *dtype;
}

std::size_t dtype_size(DType dtype) {
  for (const auto& e : kDTypes) {
    if (e.dtype == dtype) return e.size;
  }
  fail(ErrorKind::kInternal, "dtype_size: invalid DType ", static_cast<int>(dtype));
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) {
    MIXPEFT_CHECK(d >= 0 && !__builtin_mul_overflow(n, d, &n), ErrorKind::kInvalidArgument,
                  "tensor ", quote(name), ": shape ", shape_string(shape), " has no valid element count");
  }
  return n;
}

// ---------------------------------------------------------------- reading

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  std::shared_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    fail(err == ENOENT ? ErrorKind::kNotFound : ErrorKind::kIO, path, ": cannot open: ", std::strerror(err));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    fail(ErrorKind::kIO, path, ": cannot stat: ", std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(ErrorKind::kIO, path, ": not a regular file");
  }
  file->size_ = static_cast<uint64_t>(st.st_size);
  if (file->size_ > 0) {
    // MAP_PRIVATE + PROT_READ: nothing we do can change the file. A file
    // truncated by another process while mapped still raises SIGBUS on
    // access; safetensors readers share that limit.
    void* p = ::mmap(nullptr, file->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      fail(ErrorKind::kIO, path, ": mmap failed: ", std::strerror(err));
    }
    file->mapping_ = p;
    file->base_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);  // the mapping keeps the file alive
  file->parse(path);
  return file;
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::from_bytes(const std::string& bytes,
                                                             const std::string& label) {
  std::shared_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = label;
  file->owned_ = bytes;
  file->base_ = reinterpret_cast<const uint8_t*>(file->owned_.data());
  file->size_ = file->owned_.size();
  file->parse(label);
  return file;
}

SafetensorsFile::~SafetensorsFile() {
  if (mapping_ != nullptr) ::munmap(mapping_, size_);
}

void SafetensorsFile::parse(const std::string& label) {
  MIXPEFT_CHECK(size_ >= 8, ErrorKind::kCorrupt, label, ": file is ", size_,
                " bytes, too short for the 8-byte header length that starts a safetensors file");
  const uint64_t header_len = read_le64(base_);
  MIXPEFT_CHECK(header_len <= kMaxHeaderBytes, ErrorKind::kCorrupt, label, ": header length ", header_len,
                " exceeds the limit of ", kMaxHeaderBytes, " bytes");
  MIXPEFT_CHECK(header_len <= size_ - 8, ErrorKind::kCorrupt, label, ": header length ", header_len,
                " runs past the end of the file (", size_, " bytes)");
  data_start_ = 8 + header_len;
  const uint64_t data_size = size_ - data_start_;

  HeaderSax sax(label, tensors_, index_, metadata_);
  const char* header = reinterpret_cast<const char*>(base_ + 8);
  json::sax_parse(header, header + header_len, &sax);  // errors throw from the handler
  MIXPEFT_CHECK(sax.done(), ErrorKind::kCorrupt, label, ": header ended early");

  for (const TensorInfo& t : tensors_) {
    auto sizes = checked_size(t.shape, t.dtype);
    MIXPEFT_CHECK(sizes.has_value(), ErrorKind::kCorrupt, label, ": tensor ", quote(t.name), ": shape ",
                  shape_string(t.shape), " of ", dtype_name(t.dtype), " is too large (overflows 64 bits)");
    MIXPEFT_CHECK(t.begin <= t.end, ErrorKind::kCorrupt, label, ": tensor ", quote(t.name),
                  ": data_offsets [", t.begin, ", ", t.end, "] are reversed (begin > end)");
    MIXPEFT_CHECK(t.end <= data_size, ErrorKind::kCorrupt, label, ": tensor ", quote(t.name),
                  ": data_offsets [", t.begin, ", ", t.end, "] run past the data section, which holds ",
                  data_size, " bytes");
    MIXPEFT_CHECK(t.end - t.begin == sizes->second, ErrorKind::kCorrupt, label, ": tensor ", quote(t.name),
                  ": data_offsets [", t.begin, ", ", t.end, "] hold ", t.end - t.begin, " bytes but ",
                  dtype_name(t.dtype), " ", shape_string(t.shape), " needs ", sizes->second);
  }

  // Like the reference reader, the tensors must tile the data section
  // exactly: sorted by offset, each starts where the previous one ended.
  std::vector<std::size_t> order(tensors_.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return std::tie(tensors_[a].begin, tensors_[a].end, a) < std::tie(tensors_[b].begin, tensors_[b].end, b);
  });
  uint64_t covered = 0;
  const TensorInfo* prev = nullptr;
  for (std::size_t i : order) {
    const TensorInfo& t = tensors_[i];
    if (t.begin < covered) {
      fail(ErrorKind::kCorrupt, label, ": tensors ", quote(prev->name), " [", prev->begin, ", ", prev->end,
           "] and ", quote(t.name), " [", t.begin, ", ", t.end, "] overlap");
    }
    MIXPEFT_CHECK(t.begin == covered, ErrorKind::kCorrupt, label, ": bytes [", covered, ", ", t.begin,
                  ") of the data section before tensor ", quote(t.name), " belong to no tensor");
    covered = t.end;
    prev = &t;
  }
  MIXPEFT_CHECK(covered == data_size, ErrorKind::kCorrupt, label, ": the data section holds ", data_size,
                " bytes but the tensors cover only ", covered);
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const TensorInfo& SafetensorsFile::get(const std::string& name) const {
  const TensorInfo* info = find(name);
  if (info == nullptr) {
    fail(ErrorKind::kNotFound, path_, ": no tensor ", quote(name), " (the file has ", tensors_.size(),
         " tensors)");
  }
  return *info;
}

const uint8_t* SafetensorsFile::data(const TensorInfo& info) const {
  // `info` may be a caller's copy: check it still lies inside the data section.
  MIXPEFT_CHECK(info.begin <= info.end && info.end <= size_ - data_start_, ErrorKind::kInvalidArgument,
                path_, ": tensor ", quote(info.name), ": data_offsets [", info.begin, ", ", info.end,
                "] are not inside this file's data section");
  return base_ + data_start_ + info.begin;
}

// ---------------------------------------------------------------- writing

void write_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  auto json_string = [&](const std::string& s, const char* what) {
    try {
      return json(s).dump(-1, ' ', false, json::error_handler_t::strict);
    } catch (const json::exception&) {
      fail(ErrorKind::kInvalidArgument, path, ": ", what, " ", quote(s), " is not valid UTF-8");
    }
  };

  std::string header = "{";
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [k, v] : metadata) {
      if (!first) header += ',';
      first = false;
      header += json_string(k, "metadata key");
      header += ':';
      header += json_string(v, "metadata value");
    }
    header += '}';
  }
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const TensorView& t : tensors) {
    MIXPEFT_CHECK(t.name != "__metadata__", ErrorKind::kInvalidArgument, path,
                  ": \"__metadata__\" is reserved and cannot name a tensor");
    MIXPEFT_CHECK(names.insert(t.name).second, ErrorKind::kInvalidArgument, path, ": tensor ", quote(t.name),
                  " is given twice");
    auto sizes = checked_size(t.shape, t.dtype);
    MIXPEFT_CHECK(sizes.has_value(), ErrorKind::kInvalidArgument, path, ": tensor ", quote(t.name),
                  ": shape ", shape_string(t.shape), " has a negative or overflowing size");
    MIXPEFT_CHECK(sizes->second == t.nbytes, ErrorKind::kInvalidArgument, path, ": tensor ", quote(t.name),
                  ": nbytes is ", t.nbytes, " but ", dtype_name(t.dtype), " ", shape_string(t.shape),
                  " needs ", sizes->second);
    MIXPEFT_CHECK(t.data != nullptr || t.nbytes == 0, ErrorKind::kInvalidArgument, path, ": tensor ",
                  quote(t.name), ": data is null");
    if (header.size() > 1) header += ',';
    header += json_string(t.name, "tensor name");
    header += cat(":{\"dtype\":\"", dtype_name(t.dtype), "\",\"shape\":[");
    for (std::size_t i = 0; i < t.shape.size(); ++i) header += cat(i ? "," : "", t.shape[i]);
    uint64_t end = 0;
    MIXPEFT_CHECK(!__builtin_add_overflow(offset, t.nbytes, &end), ErrorKind::kInvalidArgument, path,
                  ": the tensors' total size overflows 64 bits");
    header += cat("],\"data_offsets\":[", offset, ",", end, "]}");
    offset = end;
  }
  header += '}';
  header.append((8 - header.size() % 8) % 8, ' ');  // like the reference writer
  MIXPEFT_CHECK(header.size() <= kMaxHeaderBytes, ErrorKind::kInvalidArgument, path, ": header would be ",
                header.size(), " bytes, over the ", kMaxHeaderBytes, "-byte limit readers accept");

  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(static_cast<uint64_t>(header.size()) >> (8 * i));
  detail::AtomicFile file(path);
  file.write(len, sizeof len);
  file.write(header.data(), header.size());
  for (const TensorView& t : tensors) file.write(t.data, t.nbytes);
  file.commit();
}

}  // namespace mixpeft::io
