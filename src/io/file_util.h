// Private helpers of src/io: atomic file writes and message formatting.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace mixpeft::io::detail {

// Writes a file atomically: the bytes go to a new temporary file beside
// `path` (PATH.tmp-PID-N, created with O_EXCL and mode 0666 & ~umask);
// commit() fsyncs it, renames it over `path` and fsyncs the folder. If the
// object is destroyed without a successful commit() (an exception, an early
// return), the temporary file is removed and `path` is left untouched.
// Every failure throws Error(kIO) naming `path` and the OS reason.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // Small writes are coalesced in a 1 MiB buffer; large ones go straight out.
  void write(const void* data, std::size_t n);
  void commit();

 private:
  void flush();
  void write_fully(const uint8_t* data, std::size_t n);
  [[noreturn]] void fail_errno(const char* what, int err);
  void discard() noexcept;

  std::string path_;
  std::string tmp_;
  int fd_ = -1;
  bool committed_ = false;
  std::vector<uint8_t> buffer_;
};

// `s` in double quotes, control and non-ASCII bytes escaped (\xNN), cut to
// about `max` bytes with "..." so that a hostile 100 MB tensor name cannot
// flood an error message or a terminal.
std::string quote(const std::string& s, std::size_t max = 200);
// "[2, 3]"; shapes of more than 16 dimensions are cut with ", ...".
std::string shape_string(const std::vector<int64_t>& shape);
// `dir` + "/" + `name`, without doubling a trailing slash.
std::string join_path(const std::string& dir, const std::string& name);
// The folder part of `path` ("." when it has none).
std::string dir_name(const std::string& path);

}  // namespace mixpeft::io::detail
