#include "tokenizers/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "tokenizers/unicode.h"

namespace mixpeft::tok::detail {

struct Regex::Code {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Code() {
    if (code) pcre2_code_free(code);
  }
};

namespace {

// Per-thread JIT stack and match context: PCRE2's default 32 KiB JIT stack
// can run out on long runs of one class; 8 MiB never does for our patterns.
struct JitState {
  pcre2_jit_stack* stack = nullptr;
  pcre2_match_context* context = nullptr;
  JitState() {
    stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
    context = pcre2_match_context_create(nullptr);
    if (stack && context) pcre2_jit_stack_assign(context, nullptr, stack);
  }
  ~JitState() {
    if (context) pcre2_match_context_free(context);
    if (stack) pcre2_jit_stack_free(stack);
  }
};

pcre2_match_context* thread_match_context() {
  thread_local JitState state;
  return state.context;
}

struct MatchData {
  pcre2_match_data* data;
  explicit MatchData(const pcre2_code* code)
      : data(pcre2_match_data_create_from_pattern(code, nullptr)) {}
  ~MatchData() { pcre2_match_data_free(data); }
};

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  int n = pcre2_get_error_message(code, buffer, sizeof(buffer));
  return n < 0 ? std::string("error ") + std::to_string(code)
               : std::string(reinterpret_cast<const char*>(buffer), n);
}

}  // namespace

Regex::Regex(std::string pattern, const std::string& where, ErrorKind kind)
    : pattern_(std::move(pattern)), code_(std::make_unique<Code>()) {
  std::string translated = python_to_pcre2(pattern_);
  int error = 0;
  PCRE2_SIZE offset = 0;
  code_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                              PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
  if (!code_->code) {
    fail(kind, where, ": regex '", pattern_, "' does not compile with PCRE2: ",
         pcre2_message(error), " (at offset ", offset, " of '", translated, "')");
  }
  uint32_t has_jit = 0;
  pcre2_config(PCRE2_CONFIG_JIT, &has_jit);
  code_->jit = has_jit && pcre2_jit_compile(code_->code, PCRE2_JIT_COMPLETE) == 0;
}

Regex::~Regex() = default;

void Regex::find_all(std::string_view text, std::vector<Span>& out) const {
  MatchData md(code_->code);
  MIXPEFT_CHECK(md.data, ErrorKind::kInternal, "regex: out of memory for match data");
  auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  while (pos < text.size()) {
    int rc = code_->jit ? pcre2_jit_match(code_->code, subject, text.size(), pos, 0, md.data,
                                          thread_match_context())
                        : pcre2_match(code_->code, subject, text.size(), pos,
                                      PCRE2_NO_UTF_CHECK, md.data, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    MIXPEFT_CHECK(rc >= 0, ErrorKind::kInternal, "regex '", pattern_,
                  "': match failed: ", pcre2_message(rc));
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.data);
    size_t begin = ov[0], end = ov[1];
    if (end > begin) {
      out.emplace_back(begin, end);
      pos = end;
    } else {
      // An empty match: step over one character, as python's finditer does.
      if (begin >= text.size()) break;
      pos = begin + utf8_length(static_cast<unsigned char>(text[begin]));
    }
  }
}

std::string python_to_pcre2(std::string_view pattern) {
  std::string out;
  out.reserve(pattern.size() + 32);
  for (size_t i = 0; i < pattern.size(); ++i) {
    char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      char next = pattern[++i];
      if (next == 's') {
        out += "\\p{White_Space}";
      } else if (next == 'S') {
        out += "\\P{White_Space}";
      } else {
        out += c;
        out += next;
      }
    } else {
      out += c;
    }
  }
  return out;
}

std::string escape_regex(std::string_view literal) {
  std::string out;
  for (char c : literal) {
    if (std::string_view("\\^$.|?*+()[]{}-#&~ ").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

}  // namespace mixpeft::tok::detail
