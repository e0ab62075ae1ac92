// Tokenizers that give the same ids as Hugging Face: byte-level BPE (GPT-2,
// RoBERTa, Llama-3, Qwen2/3) and WordPiece (BERT), loaded from a folder the
// way `AutoTokenizer.from_pretrained(dir)` would.
//
//   auto tok = mixpeft::tok::Tokenizer::load("tests/data/fixtures/tokenizers/gpt2");
//   tok->encode("Hello world");                 // {15496, 995}
//   tok->decode({15496, 995});                  // "Hello world"
//
// Loading (Tokenizer::load) accepts, in this order of preference:
//   - a folder with tokenizer.json (HF "fast" format; model BPE or WordPiece),
//   - a folder with vocab.json + merges.txt (GPT-2 / RoBERTa "slow" format),
//   - a folder with vocab.txt (BERT "slow" format),
//   - or the path of a tokenizer.json / vocab.txt file itself.
// tokenizer_config.json and special_tokens_map.json beside it, when present,
// name the special tokens (bos/eos/unk/sep/pad/cls/mask/additional) and set
// do_lower_case, strip_accents, tokenize_chinese_chars, add_prefix_space,
// model_max_length and clean_up_tokenization_spaces.
//
// All methods are const and safe to call from several threads at once.
// Errors are mixpeft::Error (include/mixpeft/error.h): kNotFound for missing
// files, kCorrupt for malformed ones (the message names file and line or JSON
// field), kUnsupported for tokenizer.json components mixpeft does not
// implement, kInvalidArgument for bad calls (invalid UTF-8, bad options).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mixpeft::tok {

using TokenId = int32_t;

// A token matched in the raw text before any other processing (HF
// AddedToken). Special tokens are the ones decode(..., true) drops.
struct AddedToken {
  TokenId id = -1;
  std::string content;
  bool special = false;
  bool single_word = false;  // match only when not touching a word character
  bool lstrip = false;       // the match also takes the whitespace on its left
  bool rstrip = false;       // ... and on its right
  bool normalized = false;   // kept for tokenizer.json round trips; matching always uses the raw text
};

// One encoded sequence (or pair). All vectors have the same length.
struct Encoding {
  std::vector<TokenId> ids;
  std::vector<int32_t> type_ids;             // 0 for the first text, 1 for the second (per template)
  std::vector<int32_t> attention_mask;       // 1 = real token, 0 = padding
  std::vector<int32_t> special_tokens_mask;  // 1 = added by the template or padding
  size_t size() const { return ids.size(); }
};

enum class Padding {
  kNone,       // default: every row keeps its own length
  kLongest,    // pad to the longest row of the batch
  kMaxLength,  // pad to EncodeOptions::max_length
};

enum class Truncation {
  kNone,         // default: never cut
  kLongestFirst, // cut one token at a time from the longer text (the second on ties), like HF
  kOnlyFirst,    // cut only the first text of a pair (or the single text)
  kOnlySecond,   // cut only the second text of a pair
};

struct EncodeOptions {
  // Add the template's special tokens ([CLS] a [SEP], <s> a </s>, ...). Default true, like HF.
  bool add_special_tokens = true;
  Padding padding = Padding::kNone;  // padding is always on the right
  Truncation truncation = Truncation::kNone;
  // Limit for truncation and kMaxLength padding, special tokens included.
  // 0 (default): the tokenizer's model_max_length; an error when it has none.
  size_t max_length = 0;
  // When > 0, padded lengths are rounded up to a multiple of this. Default 0.
  size_t pad_to_multiple_of = 0;
  // Padding id; -1 (default) uses the tokenizer's pad token (an error when it
  // has none, e.g. GPT-2: pass its eos id here, as HF users set pad = eos).
  TokenId pad_id = -1;
};

struct BatchEncoding {
  std::vector<Encoding> rows;
  // Length of the longest row.
  size_t seq_len() const;
  // Row-major [rows.size(), seq_len()] copies as int64 (LibTorch's index
  // type). Throw kInvalidArgument when rows differ in length (ask for padding).
  std::vector<int64_t> input_ids() const;
  std::vector<int64_t> attention_mask() const;
  std::vector<int64_t> token_type_ids() const;
};

enum class ModelKind { kByteLevelBpe, kWordPiece };

// Ids of the well-known special tokens; -1 when the tokenizer has none.
struct SpecialTokenIds {
  TokenId bos = -1, eos = -1, unk = -1, sep = -1, pad = -1, cls = -1, mask = -1;
};

// The parts of an in-memory byte-level BPE tokenizer (for trainers and tests).
struct ByteLevelBpeSpec {
  // Tokens in the byte-level alphabet (the byte 0x20 is "Ġ"); the index is the id.
  // Every one of the 256 byte symbols should be present, or bytes go missing.
  std::vector<std::string> vocab;
  // Merges in priority order; both parts and their concatenation must be in vocab.
  std::vector<std::pair<std::string, std::string>> merges;
  // Special or added tokens; an id of -1 appends the token after the vocabulary.
  std::vector<AddedToken> added_tokens;
  // Pre-tokenization regex (python `regex` syntax). Empty (default): GPT-2's
  // pattern inside ByteLevel; otherwise Split(pattern, Isolated) + ByteLevel.
  std::string split_pattern;
  bool add_prefix_space = false;  // default false: "Hello" is not read as " Hello"
  bool nfc = false;               // default false: no Unicode normalization
  // Special tokens by content ("" = none); each must be in vocab or added_tokens.
  std::string bos_token, eos_token, unk_token, pad_token;
  // Template: prepend bos / append eos when add_special_tokens. Default off (GPT-2).
  bool add_bos = false, add_eos = false;
  // HF model_max_length, written to tokenizer_config.json by save_pretrained.
  // 0 (default): none (no limit; truncation and max-length padding then need
  // EncodeOptions::max_length).
  size_t model_max_length = 0;
};

class Tokenizer {
 public:
  // Loads from a folder or file (see top of file). Throws kNotFound when the
  // path or every known file is missing.
  static std::unique_ptr<Tokenizer> load(const std::string& dir_or_file);
  // Builds a byte-level BPE tokenizer in memory; throws kInvalidArgument on
  // inconsistent parts (unknown merge token, bad regex, unknown special token).
  static std::unique_ptr<Tokenizer> from_byte_level_bpe(const ByteLevelBpeSpec& spec);

  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Ids of one text; with add_special_tokens, the single-text template is applied.
  std::vector<TokenId> encode(std::string_view text, bool add_special_tokens = true) const;
  // A pair through the pair template ([CLS] a [SEP] b [SEP] / <s> a </s></s> b </s>).
  Encoding encode_pair(std::string_view a, std::string_view b, bool add_special_tokens = true) const;
  // One text (or pair, when b != nullptr) with truncation and padding.
  Encoding encode_with(std::string_view a, const std::string_view* b,
                       const EncodeOptions& options) const;
  BatchEncoding encode_batch(const std::vector<std::string>& texts,
                             const EncodeOptions& options = {}) const;
  BatchEncoding encode_batch_pairs(const std::vector<std::pair<std::string, std::string>>& pairs,
                                   const EncodeOptions& options = {}) const;
  // Model tokens of one text, no template (e.g. {"hello", ",", "world"}).
  std::vector<std::string> tokenize(std::string_view text) const;

  // Text of ids. Byte-level BPE: the exact inverse of encode (invalid UTF-8
  // from partial byte sequences becomes U+FFFD). WordPiece: tokens joined with
  // spaces, "##" pieces glued. Ids without a token are skipped (as HF does).
  // HF's clean_up_tokenization_spaces is applied only when tokenizer_config.json
  // sets it, or by default for WordPiece.
  std::string decode(const std::vector<TokenId>& ids, bool skip_special_tokens = false) const;

  TokenId token_to_id(std::string_view token) const;  // -1 when absent
  std::string id_to_token(TokenId id) const;           // throws kInvalidArgument when absent
  // Number of ids with a token: model vocabulary plus added tokens (HF len(tokenizer)).
  size_t vocab_size() const;
  const SpecialTokenIds& special_ids() const;
  const std::vector<AddedToken>& added_tokens() const;
  // HF model_max_length from tokenizer_config.json; 0 when unknown or unlimited.
  size_t model_max_length() const;
  ModelKind kind() const;
  // One line, e.g. "byte-level BPE: 50257 tokens, 50000 merges, 1 added token".
  std::string description() const;

  // HF tokenizer.json text of this tokenizer (loads back through load()).
  std::string to_tokenizer_json() const;
  // Writes tokenizer.json at `path` (a file path), atomically (temporary
  // file, fsync, rename: a crash leaves the old file or the new one).
  void save_tokenizer_json(const std::string& path) const;
  // Writes tokenizer.json and tokenizer_config.json (special tokens,
  // model_max_length) into the folder `dir`, creating it, each atomically;
  // load(dir) gives back an equivalent tokenizer.
  void save_pretrained(const std::string& dir) const;

  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);

 private:
  std::unique_ptr<Impl> impl_;
};

// GPT-2's pre-tokenization pattern (python `regex` syntax).
extern const char* const kGpt2SplitPattern;

}  // namespace mixpeft::tok
