#include "mixpeft/error.h"

namespace mixpeft {

const char* to_string(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kInvalidArgument: return "invalid argument";
    case ErrorKind::kNotFound: return "not found";
    case ErrorKind::kCorrupt: return "corrupt";
    case ErrorKind::kUnsupported: return "unsupported";
    case ErrorKind::kIO: return "I/O error";
    case ErrorKind::kInternal: return "internal error";
  }
  return "error";
}

}  // namespace mixpeft
