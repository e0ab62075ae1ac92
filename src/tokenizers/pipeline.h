// The tokenizer.json components around the model: normalizer, pre-tokenizer,
// post-processor (templates) and decoder. Each is parsed from its
// tokenizer.json object, which is also kept verbatim for saving.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "mixpeft/tokenizer.h"
#include "tokenizers/regex.h"
#include "tokenizers/wordpiece.h"

namespace mixpeft::tok::detail {

using json = nlohmann::json;

// ---- JSON field access with errors that name the field -------------------
// `where` is "<file>: <path>", e.g. "tokenizer.json: model". All failures are
// kCorrupt.
const json& require(const json& obj, const char* key, const std::string& where);
bool get_bool(const json& obj, const char* key, bool fallback, const std::string& where);
std::string get_string(const json& obj, const char* key, const std::string& fallback,
                       const std::string& where);
int64_t get_int(const json& obj, const char* key, int64_t fallback, const std::string& where);
std::string type_of(const json& obj, const std::string& where);  // obj["type"], required

// ---- normalizer -----------------------------------------------------------
struct NormalizerStep {
  enum Type { kNFC, kNFD, kNFKC, kNFKD, kLowercase, kStripAccents, kBert } type;
  BertNormalizerOptions bert;  // kBert only
};

struct Normalizer {
  std::vector<NormalizerStep> steps;  // empty: identity
  json source;                        // the tokenizer.json object (null for none)
  std::string apply(std::string_view text) const;
};
Normalizer parse_normalizer(const json& j, const std::string& where);

// ---- pre-tokenizer ----------------------------------------------------------
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct PreTokenizerStep {
  enum Type { kByteLevel, kSplit, kBert } type;
  bool add_prefix_space = false;  // kByteLevel
  std::shared_ptr<const Regex> regex;  // kByteLevel with use_regex (GPT-2's), or kSplit
  SplitBehavior behavior = SplitBehavior::kIsolated;  // kSplit
  bool invert = false;                                 // kSplit
};

struct PreTokenizer {
  std::vector<PreTokenizerStep> steps;
  json source;
  bool byte_level() const;  // has a ByteLevel step (its words go to a byte-level model)
  // Splits `text` into words (appended); a ByteLevel step's byte mapping is
  // left to the BPE model, so words stay raw UTF-8.
  void apply(std::string_view text, std::vector<std::string>& words) const;
};
PreTokenizer parse_pre_tokenizer(const json& j, const std::string& where);

// ---- post-processor (special-token templates) -----------------------------
struct TemplatePiece {
  bool special;      // a special token entry, else the sequence `seq`
  int seq;           // 0 = A, 1 = B
  std::string name;  // key into PostProcessor::specials
  int32_t type_id;
};

struct PostProcessor {
  std::vector<TemplatePiece> single, pair;
  struct Special {
    std::vector<TokenId> ids;
    std::vector<std::string> tokens;
  };
  std::unordered_map<std::string, Special> specials;
  json source;

  // Number of ids the template adds around one text (pair=false) or two.
  size_t added(bool pair) const;
  // a (and b, when not null) through the template into out (ids, type_ids,
  // special_tokens_mask; attention_mask all ones). Without add_special the
  // texts are concatenated with type ids 0 and 1.
  void apply(const std::vector<TokenId>& a, const std::vector<TokenId>* b, bool add_special,
             Encoding& out) const;
};
PostProcessor parse_post_processor(const json& j, const std::string& where);

// ---- decoder ----------------------------------------------------------------
struct Decoder {
  enum Type { kNone, kByteLevel, kWordPiece } type = kNone;
  std::string prefix = "##";  // kWordPiece
  bool cleanup = true;        // kWordPiece: HF clean_up_tokenization
  json source;
  // Tokens to text (kNone: joined with spaces, as HF does without a decoder).
  std::string apply(const std::vector<std::string_view>& tokens) const;
};
Decoder parse_decoder(const json& j, const std::string& where);

// HF's clean_up_tokenization (" ." -> ".", " n't" -> "n't", ...).
std::string clean_up_tokenization(std::string text);

}  // namespace mixpeft::tok::detail
