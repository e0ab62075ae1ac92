// The JSONL metrics log: one compact JSON value per line.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "mixpeft/error.h"
#include "mixpeft/report.h"
#include "report/internal.h"

namespace mixpeft::report {

namespace detail {

std::string json_error_description(const std::string& what) {
  size_t column = what.find(", column ");
  size_t colon = column == std::string::npos ? std::string::npos : what.find(": ", column);
  if (colon != std::string::npos) return what.substr(colon + 2);
  size_t bracket = what.find("] ");
  return bracket == std::string::npos ? what : what.substr(bracket + 2);
}

}  // namespace detail

namespace {

[[noreturn]] void fail_io(const std::string& path, const char* what, int err) {
  fail(ErrorKind::kIO, path, ": ", what, ": ", std::strerror(err));
}

// True when the file at `path` is non-empty and its last byte is not '\n'.
bool ends_mid_line(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;  // does not exist yet (or fopen will report why)
  bool mid = false;
  struct stat st;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
    char c = '\n';
    mid = ::pread(fd, &c, 1, st.st_size - 1) == 1 && c != '\n';
  }
  ::close(fd);
  return mid;
}

}  // namespace

JsonlWriter::JsonlWriter(const std::string& path, bool append) : path_(path) {
  bool fix_partial_line = append && ends_mid_line(path_);
  file_ = std::fopen(path_.c_str(), append ? "ae" : "we");
  if (file_ == nullptr) fail_io(path_, append ? "cannot open for appending" : "cannot open for writing", errno);
  if (fix_partial_line && (std::fputc('\n', file_) == EOF || std::fflush(file_) != 0)) {
    int err = errno;
    std::fclose(file_);
    file_ = nullptr;
    fail_io(path_, "write failed", err);
  }
}

JsonlWriter::~JsonlWriter() {
  if (file_ != nullptr) std::fclose(file_);
}

JsonlWriter::JsonlWriter(JsonlWriter&& other) noexcept : path_(std::move(other.path_)), file_(other.file_) {
  other.file_ = nullptr;
}

JsonlWriter& JsonlWriter::operator=(JsonlWriter&& other) noexcept {
  if (this != &other) {
    if (file_ != nullptr) std::fclose(file_);
    path_ = std::move(other.path_);
    file_ = other.file_;
    other.file_ = nullptr;
  }
  return *this;
}

void JsonlWriter::write(const nlohmann::json& record) {
  MIXPEFT_CHECK(file_ != nullptr, ErrorKind::kInternal, path_, ": write to a moved-from JsonlWriter");
  std::string line = record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  line += '\n';
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0) {
    fail_io(path_, "write failed", errno);
  }
}

std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int err = errno;
    struct stat st;
    if (::stat(path.c_str(), &st) != 0 && (errno == ENOENT || errno == ENOTDIR)) {
      fail(ErrorKind::kNotFound, path, ": file not found");
    }
    fail_io(path, "cannot open", err);
  }
  std::vector<nlohmann::json> out;
  std::string line;
  int64_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    try {
      out.push_back(nlohmann::json::parse(line));
    } catch (const nlohmann::json::parse_error& e) {
      fail(ErrorKind::kCorrupt, path, ":", number, ": ", detail::json_error_description(e.what()));
    }
  }
  if (in.bad()) fail(ErrorKind::kIO, path, ": read failed");
  return out;
}

}  // namespace mixpeft::report
