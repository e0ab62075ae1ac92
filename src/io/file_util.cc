#include "io/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "mixpeft/error.h"
#include "mixpeft/safetensors.h"

namespace mixpeft::io {
namespace detail {
namespace {

constexpr std::size_t kBufferBytes = 1 << 20;

std::string errno_text(int err) { return std::strerror(err); }

}  // namespace

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  static std::atomic<unsigned> counter{0};
  for (int attempt = 0; attempt < 100; ++attempt) {
    tmp_ = cat(path_, ".tmp-", ::getpid(), "-", counter.fetch_add(1));
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ >= 0) break;
    if (errno != EEXIST) {
      int err = errno;
      tmp_.clear();
      fail(ErrorKind::kIO, path_, ": cannot create a temporary file beside it: ", errno_text(err));
    }
  }
  if (fd_ < 0) {
    tmp_.clear();
    fail(ErrorKind::kIO, path_, ": cannot create a temporary file beside it (100 names taken)");
  }
  buffer_.reserve(kBufferBytes);
}

AtomicFile::~AtomicFile() {
  if (!committed_) discard();
}

void AtomicFile::discard() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (!tmp_.empty()) ::unlink(tmp_.c_str());
  tmp_.clear();
}

void AtomicFile::fail_errno(const char* what, int err) {
  discard();
  fail(ErrorKind::kIO, path_, ": ", what, ": ", errno_text(err));
}

void AtomicFile::write_fully(const uint8_t* data, std::size_t n) {
  while (n > 0) {
    std::size_t chunk = n < (std::size_t{1} << 30) ? n : (std::size_t{1} << 30);
    ssize_t w = ::write(fd_, data, chunk);
    if (w < 0) {
      if (errno == EINTR) continue;
      fail_errno("write failed", errno);
    }
    data += w;
    n -= static_cast<std::size_t>(w);
  }
}

void AtomicFile::flush() {
  write_fully(buffer_.data(), buffer_.size());
  buffer_.clear();
}

void AtomicFile::write(const void* data, std::size_t n) {
  MIXPEFT_CHECK(fd_ >= 0 && !committed_, ErrorKind::kInternal, path_, ": write after commit or failure");
  const auto* bytes = static_cast<const uint8_t*>(data);
  if (buffer_.size() + n <= kBufferBytes) {
    buffer_.insert(buffer_.end(), bytes, bytes + n);
    return;
  }
  flush();
  if (n < kBufferBytes) {
    buffer_.insert(buffer_.end(), bytes, bytes + n);
  } else {
    write_fully(bytes, n);
  }
}

void AtomicFile::commit() {
  MIXPEFT_CHECK(fd_ >= 0 && !committed_, ErrorKind::kInternal, path_, ": commit twice or after failure");
  flush();
  if (::fsync(fd_) != 0) fail_errno("fsync failed", errno);
  int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) fail_errno("close failed", errno);
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) fail_errno("rename of the temporary file failed", errno);
  tmp_.clear();
  committed_ = true;
  // Make the rename itself durable. Some file systems cannot fsync a folder
  // (EINVAL); the file is in place by then, so only real errors are reported.
  int dir_fd = ::open(dir_name(path_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) fail(ErrorKind::kIO, path_, ": written, but cannot open its folder to fsync: ", errno_text(errno));
  int rc = ::fsync(dir_fd);
  int err = errno;
  ::close(dir_fd);
  if (rc != 0 && err != EINVAL && err != EROFS) {
    fail(ErrorKind::kIO, path_, ": written, but fsync of its folder failed: ", errno_text(err));
  }
}

std::string quote(const std::string& s, std::size_t max) {
  std::string out = "\"";
  std::size_t n = s.size() < max ? s.size() : max;
  for (std::size_t i = 0; i < n; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (n < s.size()) out += cat("\"... (", s.size(), " bytes)");
  else out += '"';
  return out;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i == 16) {
      out += cat(", ... (", shape.size(), " dims)");
      break;
    }
    if (i > 0) out += ", ";
    out += std::to_string(shape[i]);
  }
  return out + "]";
}

std::string join_path(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  if (dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

std::string dir_name(const std::string& path) {
  std::size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace detail

void write_file_atomic(const std::string& path, const std::string& contents) {
  detail::AtomicFile file(path);
  file.write(contents.data(), contents.size());
  file.commit();
}

std::string read_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    fail(err == ENOENT ? ErrorKind::kNotFound : ErrorKind::kIO, path, ": cannot open: ",
         detail::errno_text(err));
  }
  std::string out;
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) out.reserve(static_cast<std::size_t>(st.st_size));
  char buf[1 << 16];
  for (;;) {
    ssize_t r = ::read(fd, buf, sizeof buf);
    if (r < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      fail(ErrorKind::kIO, path, ": read failed: ", detail::errno_text(err));
    }
    if (r == 0) break;
    out.append(buf, static_cast<std::size_t>(r));
  }
  ::close(fd);
  return out;
}

}  // namespace mixpeft::io
