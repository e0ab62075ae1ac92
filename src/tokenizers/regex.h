// Pre-tokenization regexes: PCRE2 (UTF + UCP, JIT when available) made to
// behave like Python's `regex` module, which produced the HF reference ids.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mixpeft/error.h"

namespace mixpeft::tok::detail {

// A [begin, end) byte range of a text.
using Span = std::pair<size_t, size_t>;

class Regex {
 public:
  // Compiles `pattern` (python `regex` syntax). Throws `kind` with a message
  // that starts with `where` and gives PCRE2's complaint and offset.
  Regex(std::string pattern, const std::string& where, ErrorKind kind);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Appends every non-overlapping, non-empty match of the pattern in `text`
  // (valid UTF-8), left to right, like python's regex.finditer.
  void find_all(std::string_view text, std::vector<Span>& out) const;

  // The pattern as given (python syntax), for saving.
  const std::string& pattern() const { return pattern_; }

 private:
  struct Code;
  std::string pattern_;
  std::unique_ptr<Code> code_;
};

// Rewrites `\s` / `\S` to `\p{White_Space}` / `\P{White_Space}`: python
// `regex` matches exactly the White_Space property (U+0085 yes, U+180E and
// U+FEFF no), while PCRE2's \s with UCP also takes U+180E.
std::string python_to_pcre2(std::string_view pattern);

// `literal` with every regex metacharacter escaped.
std::string escape_regex(std::string_view literal);

}  // namespace mixpeft::tok::detail
