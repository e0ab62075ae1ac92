// Errors with a kind. Every error message starts with where it came from
// (a file, a tensor, a config field) so a user can act on it. Only the CLI's
// main and the server's handlers catch these and turn them into an exit code
// or an HTTP status.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace mixpeft {

enum class ErrorKind {
  kInvalidArgument,  // a caller or a user passed something wrong
  kNotFound,         // a file, tensor, key or profile that does not exist
  kCorrupt,          // a file whose contents break its format
  kUnsupported,      // valid input that mixpeft does not handle (yet)
  kIO,               // the operating system refused (open, read, write, rename)
  kInternal,         // a broken invariant: a bug in mixpeft
};

const char* to_string(ErrorKind kind);

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message)
      : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

// Concatenates its arguments with operator<<.
template <typename... Args>
std::string cat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}

template <typename... Args>
[[noreturn]] void fail(ErrorKind kind, Args&&... args) {
  throw Error(kind, cat(std::forward<Args>(args)...));
}

}  // namespace mixpeft

// MIXPEFT_CHECK(cond, kind, message parts...): throws mixpeft::Error when cond is false.
#define MIXPEFT_CHECK(cond, kind, ...)           \
  do {                                           \
    if (!(cond)) ::mixpeft::fail(kind, __VA_ARGS__); \
  } while (0)
