#include "tokenizers/pipeline.h"

#include <algorithm>

#include "mixpeft/error.h"
#include "tokenizers/byte_level.h"
#include "tokenizers/unicode.h"

namespace mixpeft::tok {

const char* const kGpt2SplitPattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

namespace detail {
namespace {

std::string at(const std::string& where, const char* key) { return where + "." + key; }
std::string at(const std::string& where, const char* key, size_t i) {
  return where + "." + key + "[" + std::to_string(i) + "]";
}

[[noreturn]] void unsupported(const std::string& where, const std::string& type,
                              const char* supported) {
  fail(ErrorKind::kUnsupported, where, ": type '", type, "' is not supported (supported: ",
       supported, ")");
}

const json& require_array(const json& obj, const char* key, const std::string& where) {
  const json& v = require(obj, key, where);
  MIXPEFT_CHECK(v.is_array(), ErrorKind::kCorrupt, at(where, key), ": expected an array");
  return v;
}

std::shared_ptr<const Regex> gpt2_regex() {
  static const auto re = std::make_shared<const Regex>(kGpt2SplitPattern, "ByteLevel",
                                                       ErrorKind::kInternal);
  return re;
}

}  // namespace

const json& require(const json& obj, const char* key, const std::string& where) {
  MIXPEFT_CHECK(obj.is_object(), ErrorKind::kCorrupt, where, ": expected an object");
  auto it = obj.find(key);
  MIXPEFT_CHECK(it != obj.end(), ErrorKind::kCorrupt, where, ": missing field '", key, "'");
  return *it;
}

bool get_bool(const json& obj, const char* key, bool fallback, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  MIXPEFT_CHECK(it->is_boolean(), ErrorKind::kCorrupt, at(where, key), ": expected true or false");
  return it->get<bool>();
}

std::string get_string(const json& obj, const char* key, const std::string& fallback,
                       const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  MIXPEFT_CHECK(it->is_string(), ErrorKind::kCorrupt, at(where, key), ": expected a string");
  return it->get<std::string>();
}

int64_t get_int(const json& obj, const char* key, int64_t fallback, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  MIXPEFT_CHECK(it->is_number_integer(), ErrorKind::kCorrupt, at(where, key),
                ": expected an integer");
  return it->get<int64_t>();
}

std::string type_of(const json& obj, const std::string& where) {
  const json& t = require(obj, "type", where);
  MIXPEFT_CHECK(t.is_string(), ErrorKind::kCorrupt, at(where, "type"), ": expected a string");
  return t.get<std::string>();
}

// ---- normalizer -------------------------------------------------------------

namespace {

void parse_normalizer_into(const json& j, const std::string& where,
                           std::vector<NormalizerStep>& steps) {
  std::string type = type_of(j, where);
  using T = NormalizerStep;
  if (type == "Sequence") {
    const json& list = require_array(j, "normalizers", where);
    for (size_t i = 0; i < list.size(); ++i) {
      parse_normalizer_into(list[i], at(where, "normalizers", i), steps);
    }
  } else if (type == "NFC") {
    steps.push_back({T::kNFC, {}});
  } else if (type == "NFD") {
    steps.push_back({T::kNFD, {}});
  } else if (type == "NFKC") {
    steps.push_back({T::kNFKC, {}});
  } else if (type == "NFKD") {
    steps.push_back({T::kNFKD, {}});
  } else if (type == "Lowercase") {
    steps.push_back({T::kLowercase, {}});
  } else if (type == "StripAccents") {
    steps.push_back({T::kStripAccents, {}});
  } else if (type == "BertNormalizer") {
    BertNormalizerOptions o;
    o.clean_text = get_bool(j, "clean_text", true, where);
    o.handle_chinese_chars = get_bool(j, "handle_chinese_chars", true, where);
    o.lowercase = get_bool(j, "lowercase", true, where);
    auto it = j.find("strip_accents");
    if (it != j.end() && !it->is_null()) o.strip_accents = get_bool(j, "strip_accents", false, where);
    steps.push_back({T::kBert, o});
  } else {
    unsupported(where, type,
                "NFC, NFD, NFKC, NFKD, Lowercase, StripAccents, BertNormalizer, Sequence");
  }
}

}  // namespace

Normalizer parse_normalizer(const json& j, const std::string& where) {
  Normalizer n;
  n.source = j;
  if (!j.is_null()) parse_normalizer_into(j, where, n.steps);
  return n;
}

std::string Normalizer::apply(std::string_view text) const {
  std::string s(text);
  for (const auto& step : steps) {
    switch (step.type) {
      case NormalizerStep::kNFC: s = normalize(s, NormForm::kNFC); break;
      case NormalizerStep::kNFD: s = normalize(s, NormForm::kNFD); break;
      case NormalizerStep::kNFKC: s = normalize(s, NormForm::kNFKC); break;
      case NormalizerStep::kNFKD: s = normalize(s, NormForm::kNFKD); break;
      case NormalizerStep::kLowercase: s = lowercase_chars(s); break;
      case NormalizerStep::kStripAccents: s = strip_accents(s); break;
      case NormalizerStep::kBert: s = bert_normalize(s, step.bert); break;
    }
  }
  return s;
}

// ---- pre-tokenizer ------------------------------------------------------------

namespace {

SplitBehavior parse_behavior(const json& j, const std::string& where) {
  std::string b = get_string(j, "behavior", "", where);
  if (b == "Removed") return SplitBehavior::kRemoved;
  if (b == "Isolated") return SplitBehavior::kIsolated;
  if (b == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (b == "Contiguous") return SplitBehavior::kContiguous;
  fail(ErrorKind::kCorrupt, at(where, "behavior"), ": unknown split behavior '", b,
       "' (expected Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous)");
}

void parse_pre_tokenizer_into(const json& j, const std::string& where,
                              std::vector<PreTokenizerStep>& steps) {
  std::string type = type_of(j, where);
  if (type == "Sequence") {
    const json& list = require_array(j, "pretokenizers", where);
    for (size_t i = 0; i < list.size(); ++i) {
      parse_pre_tokenizer_into(list[i], at(where, "pretokenizers", i), steps);
    }
    return;
  }
  MIXPEFT_CHECK(steps.empty() || steps.back().type != PreTokenizerStep::kByteLevel,
                ErrorKind::kUnsupported, where, ": a '", type,
                "' step after ByteLevel is not supported");
  PreTokenizerStep step{};
  if (type == "ByteLevel") {
    step.type = PreTokenizerStep::kByteLevel;
    step.add_prefix_space = get_bool(j, "add_prefix_space", true, where);
    if (get_bool(j, "use_regex", true, where)) step.regex = gpt2_regex();
  } else if (type == "Split") {
    step.type = PreTokenizerStep::kSplit;
    const json& pattern = require(j, "pattern", where);
    const std::string pwhere = at(where, "pattern");
    if (pattern.is_object() && pattern.contains("Regex") && pattern["Regex"].is_string()) {
      step.regex = std::make_shared<const Regex>(pattern["Regex"].get<std::string>(), pwhere,
                                                 ErrorKind::kUnsupported);
    } else if (pattern.is_object() && pattern.contains("String") && pattern["String"].is_string()) {
      step.regex = std::make_shared<const Regex>(
          escape_regex(pattern["String"].get<std::string>()), pwhere, ErrorKind::kCorrupt);
    } else {
      fail(ErrorKind::kCorrupt, pwhere, ": expected {\"Regex\": ...} or {\"String\": ...}");
    }
    step.behavior = parse_behavior(j, where);
    step.invert = get_bool(j, "invert", false, where);
  } else if (type == "BertPreTokenizer") {
    step.type = PreTokenizerStep::kBert;
  } else {
    unsupported(where, type, "ByteLevel, Split, BertPreTokenizer, Sequence");
  }
  steps.push_back(std::move(step));
}

// HF NormalizedString::split on one word: matches and gaps, then `behavior`.
void split_word(const PreTokenizerStep& step, std::string_view w, std::vector<std::string>& out) {
  thread_local std::vector<Span> matches;
  matches.clear();
  step.regex->find_all(w, matches);
  struct Piece {
    size_t b, e;
    bool match;
  };
  std::vector<Piece> pieces;
  size_t prev = 0;
  for (auto [b, e] : matches) {
    if (b > prev) pieces.push_back({prev, b, false});
    pieces.push_back({b, e, true});
    prev = e;
  }
  if (prev < w.size()) pieces.push_back({prev, w.size(), false});
  if (step.invert) {
    for (auto& p : pieces) p.match = !p.match;
  }
  std::vector<Span> kept;
  bool previous_match = false;
  switch (step.behavior) {
    case SplitBehavior::kIsolated:
      for (auto& p : pieces) kept.emplace_back(p.b, p.e);
      break;
    case SplitBehavior::kRemoved:
      for (auto& p : pieces) {
        if (!p.match) kept.emplace_back(p.b, p.e);
      }
      break;
    case SplitBehavior::kContiguous:
      for (auto& p : pieces) {
        if (p.match == previous_match && !kept.empty()) {
          kept.back().second = p.e;
        } else {
          kept.emplace_back(p.b, p.e);
        }
        previous_match = p.match;
      }
      break;
    case SplitBehavior::kMergedWithPrevious:
      for (auto& p : pieces) {
        if (p.match && !previous_match && !kept.empty()) {
          kept.back().second = p.e;
        } else {
          kept.emplace_back(p.b, p.e);
        }
        previous_match = p.match;
      }
      break;
    case SplitBehavior::kMergedWithNext:
      for (size_t i = pieces.size(); i-- > 0;) {
        const Piece& p = pieces[i];
        if (p.match && !previous_match && !kept.empty()) {
          kept.back().first = p.b;
        } else {
          kept.emplace_back(p.b, p.e);
        }
        previous_match = p.match;
      }
      std::reverse(kept.begin(), kept.end());
      break;
  }
  for (auto [b, e] : kept) {
    if (e > b) out.emplace_back(w.substr(b, e - b));
  }
}

}  // namespace

PreTokenizer parse_pre_tokenizer(const json& j, const std::string& where) {
  PreTokenizer p;
  p.source = j;
  if (!j.is_null()) parse_pre_tokenizer_into(j, where, p.steps);
  return p;
}

bool PreTokenizer::byte_level() const {
  return !steps.empty() && steps.back().type == PreTokenizerStep::kByteLevel;
}

void PreTokenizer::apply(std::string_view text, std::vector<std::string>& words) const {
  if (steps.empty()) {
    if (!text.empty()) words.emplace_back(text);
    return;
  }
  std::vector<std::string> current{std::string(text)}, next;
  for (const auto& step : steps) {
    next.clear();
    for (auto& w : current) {
      switch (step.type) {
        case PreTokenizerStep::kByteLevel:
          if (step.add_prefix_space && (w.empty() || w[0] != ' ')) w.insert(w.begin(), ' ');
          if (step.regex) {
            split_word(step, w, next);
          } else if (!w.empty()) {
            next.push_back(std::move(w));
          }
          break;
        case PreTokenizerStep::kSplit:
          split_word(step, w, next);
          break;
        case PreTokenizerStep::kBert:
          bert_pre_tokenize(w, next);
          break;
      }
    }
    current.swap(next);
  }
  for (auto& w : current) words.push_back(std::move(w));
}

// ---- post-processor -------------------------------------------------------------

namespace {

// [token, id] as in BertProcessing / RobertaProcessing.
std::pair<std::string, TokenId> token_and_id(const json& j, const char* key,
                                             const std::string& where) {
  const json& v = require(j, key, where);
  MIXPEFT_CHECK(v.is_array() && v.size() == 2 && v[0].is_string() && v[1].is_number_integer(),
                ErrorKind::kCorrupt, at(where, key), ": expected [token, id]");
  return {v[0].get<std::string>(), v[1].get<TokenId>()};
}

std::vector<TemplatePiece> parse_template(const json& j, const char* key,
                                          const std::string& where) {
  const json& list = require_array(j, key, where);
  std::vector<TemplatePiece> pieces;
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string w = at(where, key, i);
    const json& item = list[i];
    if (item.is_object() && item.contains("SpecialToken")) {
      const json& s = item["SpecialToken"];
      pieces.push_back({true, 0, get_string(s, "id", "", w),
                        static_cast<int32_t>(get_int(s, "type_id", 0, w))});
    } else if (item.is_object() && item.contains("Sequence")) {
      const json& s = item["Sequence"];
      std::string id = get_string(s, "id", "", w);
      MIXPEFT_CHECK(id == "A" || id == "B", ErrorKind::kCorrupt, w,
                    ": sequence id must be 'A' or 'B', got '", id, "'");
      pieces.push_back({false, id == "A" ? 0 : 1, id,
                        static_cast<int32_t>(get_int(s, "type_id", 0, w))});
    } else {
      fail(ErrorKind::kCorrupt, w, ": expected {\"SpecialToken\": ...} or {\"Sequence\": ...}");
    }
  }
  return pieces;
}

void parse_post_processor_into(const json& j, const std::string& where, PostProcessor& p,
                               bool& have_template) {
  std::string type = type_of(j, where);
  auto set_template = [&](std::vector<TemplatePiece> single, std::vector<TemplatePiece> pair) {
    MIXPEFT_CHECK(!have_template, ErrorKind::kUnsupported, where,
                  ": more than one special-token template in a Sequence");
    p.single = std::move(single);
    p.pair = std::move(pair);
    have_template = true;
  };
  if (type == "Sequence") {
    const json& list = require_array(j, "processors", where);
    for (size_t i = 0; i < list.size(); ++i) {
      parse_post_processor_into(list[i], at(where, "processors", i), p, have_template);
    }
  } else if (type == "ByteLevel") {
    // Only adjusts offsets, which mixpeft does not produce.
  } else if (type == "BertProcessing" || type == "RobertaProcessing") {
    auto [cls, cls_id] = token_and_id(j, "cls", where);
    auto [sep, sep_id] = token_and_id(j, "sep", where);
    p.specials[cls] = {{cls_id}, {cls}};
    p.specials[sep] = {{sep_id}, {sep}};
    const bool bert = type == "BertProcessing";
    // RoBERTa has one token type: every type id stays 0.
    const int32_t second = bert ? 1 : 0;
    std::vector<TemplatePiece> single = {{true, 0, cls, 0}, {false, 0, "A", 0}, {true, 0, sep, 0}};
    std::vector<TemplatePiece> pair = single;
    if (!bert) pair.push_back({true, 0, sep, 0});
    pair.push_back({false, 1, "B", second});
    pair.push_back({true, 0, sep, second});
    set_template(std::move(single), std::move(pair));
  } else if (type == "TemplateProcessing") {
    auto single = parse_template(j, "single", where);
    auto pair = parse_template(j, "pair", where);
    const json& specials = require(j, "special_tokens", where);
    MIXPEFT_CHECK(specials.is_object(), ErrorKind::kCorrupt, at(where, "special_tokens"),
                  ": expected an object");
    for (auto it = specials.begin(); it != specials.end(); ++it) {
      const std::string w = at(where, "special_tokens") + "." + it.key();
      const json& ids = require_array(it.value(), "ids", w);
      const json& tokens = require_array(it.value(), "tokens", w);
      PostProcessor::Special s;
      for (const auto& id : ids) {
        MIXPEFT_CHECK(id.is_number_integer(), ErrorKind::kCorrupt, w, ".ids: expected integers");
        s.ids.push_back(id.get<TokenId>());
      }
      for (const auto& t : tokens) {
        MIXPEFT_CHECK(t.is_string(), ErrorKind::kCorrupt, w, ".tokens: expected strings");
        s.tokens.push_back(t.get<std::string>());
      }
      p.specials[it.key()] = std::move(s);
    }
    for (const auto* list : {&single, &pair}) {
      for (const auto& piece : *list) {
        MIXPEFT_CHECK(!piece.special || p.specials.count(piece.name), ErrorKind::kCorrupt, where,
                      ": template uses special token '", piece.name,
                      "' that special_tokens does not define");
      }
    }
    set_template(std::move(single), std::move(pair));
  } else {
    unsupported(where, type,
                "TemplateProcessing, BertProcessing, RobertaProcessing, ByteLevel, Sequence");
  }
}

}  // namespace

PostProcessor parse_post_processor(const json& j, const std::string& where) {
  PostProcessor p;
  p.source = j;
  bool have_template = false;
  if (!j.is_null()) parse_post_processor_into(j, where, p, have_template);
  if (!have_template) {
    p.single = {{false, 0, "A", 0}};
    p.pair = {{false, 0, "A", 0}, {false, 1, "B", 1}};
  }
  return p;
}

size_t PostProcessor::added(bool with_pair) const {
  size_t n = 0;
  for (const auto& piece : with_pair ? pair : single) {
    if (piece.special) n += specials.at(piece.name).ids.size();
  }
  return n;
}

void PostProcessor::apply(const std::vector<TokenId>& a, const std::vector<TokenId>* b,
                          bool add_special, Encoding& out) const {
  auto push = [&](TokenId id, int32_t type_id, int32_t special) {
    out.ids.push_back(id);
    out.type_ids.push_back(type_id);
    out.attention_mask.push_back(1);
    out.special_tokens_mask.push_back(special);
  };
  if (!add_special) {
    for (TokenId id : a) push(id, 0, 0);
    if (b) {
      for (TokenId id : *b) push(id, 1, 0);
    }
    return;
  }
  for (const auto& piece : b ? pair : single) {
    if (piece.special) {
      for (TokenId id : specials.at(piece.name).ids) push(id, piece.type_id, 1);
    } else {
      for (TokenId id : piece.seq == 0 ? a : *b) push(id, piece.type_id, 0);
    }
  }
}

// ---- decoder ----------------------------------------------------------------------

Decoder parse_decoder(const json& j, const std::string& where) {
  Decoder d;
  d.source = j;
  if (j.is_null()) return d;
  std::string type = type_of(j, where);
  if (type == "ByteLevel") {
    d.type = Decoder::kByteLevel;
  } else if (type == "WordPiece") {
    d.type = Decoder::kWordPiece;
    d.prefix = get_string(j, "prefix", "##", where);
    d.cleanup = get_bool(j, "cleanup", true, where);
  } else {
    unsupported(where, type, "ByteLevel, WordPiece");
  }
  return d;
}

std::string Decoder::apply(const std::vector<std::string_view>& tokens) const {
  std::string out;
  switch (type) {
    case kByteLevel: {
      std::string bytes;
      for (auto t : tokens) append_token_bytes(t, bytes);
      return utf8_lossy(bytes);
    }
    case kWordPiece:
      for (size_t i = 0; i < tokens.size(); ++i) {
        std::string_view t = tokens[i];
        if (i > 0) {
          if (!prefix.empty() && t.substr(0, prefix.size()) == prefix) {
            t.remove_prefix(prefix.size());
          } else {
            out += ' ';
          }
        }
        out.append(t);
      }
      return cleanup ? clean_up_tokenization(std::move(out)) : out;
    case kNone:
      for (size_t i = 0; i < tokens.size(); ++i) {
        if (i > 0) out += ' ';
        out.append(tokens[i]);
      }
      return out;
  }
  return out;
}

std::string clean_up_tokenization(std::string text) {
  static const std::pair<const char*, const char*> kRules[] = {
      {" .", "."},     {" ?", "?"},     {" !", "!"},     {" ,", ","},     {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"},   {" 's", "'s"},   {" 've", "'ve"}, {" 're", "'re"},
  };
  for (const auto& [from, to] : kRules) {
    const std::string_view f(from), t(to);
    std::string out;
    out.reserve(text.size());
    size_t pos = 0;
    for (size_t hit; (hit = text.find(f, pos)) != std::string::npos; pos = hit + f.size()) {
      out.append(text, pos, hit - pos);
      out.append(t);
    }
    out.append(text, pos, std::string::npos);
    text.swap(out);
  }
  return text;
}

}  // namespace detail
}  // namespace mixpeft::tok
