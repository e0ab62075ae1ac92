// Tokenizer::Impl: the model plus its tokenizer.json components, shared by
// encoding (tokenizer.cc), tokenizer.json reading/writing (tokenizer_json.cc)
// and the folder loaders (load.cc).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "mixpeft/tokenizer.h"
#include "tokenizers/added_vocab.h"
#include "tokenizers/bpe.h"
#include "tokenizers/pipeline.h"
#include "tokenizers/wordpiece.h"

namespace mixpeft::tok {

// Contents of the named special tokens ("" = none).
struct SpecialTokenNames {
  std::string bos, eos, unk, sep, pad, cls, mask;
  std::vector<std::string> additional;
};

struct Tokenizer::Impl {
  ModelKind kind = ModelKind::kByteLevelBpe;
  std::unique_ptr<detail::BpeModel> bpe;             // kByteLevelBpe
  std::unique_ptr<detail::WordPieceModel> wordpiece;  // kWordPiece
  detail::Normalizer normalizer;
  detail::PreTokenizer pre_tokenizer;
  detail::PostProcessor post_processor;
  detail::Decoder decoder;
  detail::AddedVocab added;
  SpecialTokenNames special_names;
  SpecialTokenIds special_ids;
  size_t model_max_length = 0;   // 0 = unknown / unlimited
  bool clean_up_spaces = false;  // HF clean_up_tokenization_spaces on decode
  std::string origin;            // where it was loaded from, for description()
  std::vector<char> special_by_id;  // set by finalize()

  const detail::Vocab& model_vocab() const {
    return bpe ? bpe->vocab() : wordpiece->vocab();
  }
  // One past the largest id of the model vocabulary and the added tokens.
  TokenId id_end() const;
  // Token of id (model vocabulary first, then added tokens); nullptr if none.
  const std::string* token_of(TokenId id) const;
  TokenId id_of(std::string_view token) const;

  // Ids of one text, no template.
  void encode_text(std::string_view text, std::vector<TokenId>& ids) const;

  // Checks the model and the components fit together, turns special_names
  // into ids (a name missing from the vocabulary gets the next free id, as
  // HF's add_special_tokens does) and registers them as special added tokens.
  void finalize();
};

namespace detail {

// Builds an Impl from a parsed tokenizer.json document; `file` prefixes errors.
std::unique_ptr<Tokenizer::Impl> impl_from_tokenizer_json(const json& doc,
                                                          const std::string& file);

// The tokenizer.json document of impl.
nlohmann::ordered_json impl_to_tokenizer_json(const Tokenizer::Impl& impl);

// Reads a whole file; kNotFound / kIO name the path.
std::string read_file(const std::string& path);

// The tokenizer.json pre_tokenizer of a byte-level BPE: ByteLevel with GPT-2's
// regex when split_pattern is empty, else Split(split_pattern, Isolated) then
// ByteLevel without regex. Shared by Tokenizer::from_byte_level_bpe and the
// BPE trainer, so that training splits words exactly as encoding will.
json byte_level_pre_tokenizer_json(const std::string& split_pattern, bool add_prefix_space);

}  // namespace detail
}  // namespace mixpeft::tok
