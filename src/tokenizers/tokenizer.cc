// Encoding (templates, truncation, padding) and decoding.
#include <algorithm>

#include "mixpeft/error.h"
#include "mixpeft/safetensors.h"
#include "tokenizers/tokenizer_impl.h"
#include "tokenizers/unicode.h"

namespace mixpeft::tok {

using detail::AddedVocab;

// ---- Impl ---------------------------------------------------------------------

TokenId Tokenizer::Impl::id_end() const {
  TokenId end = static_cast<TokenId>(model_vocab().id_end());
  for (const auto& t : added.tokens()) end = std::max(end, t.id + 1);
  return end;
}

const std::string* Tokenizer::Impl::token_of(TokenId id) const {
  const auto& v = model_vocab();
  if (v.has_id(id)) return &v.token(id);
  const AddedToken* t = added.find_id(id);
  return t ? &t->content : nullptr;
}

TokenId Tokenizer::Impl::id_of(std::string_view token) const {
  if (const AddedToken* t = added.find(token)) return t->id;
  return model_vocab().find(std::string(token));
}

void Tokenizer::Impl::encode_text(std::string_view text, std::vector<TokenId>& ids) const {
  detail::check_utf8(text, "Tokenizer::encode");
  std::vector<AddedVocab::Segment> segments;
  added.split(text, segments);
  std::vector<std::string> words;
  for (const auto& seg : segments) {
    if (seg.is_token) {
      ids.push_back(seg.id);
      continue;
    }
    std::string_view piece = text.substr(seg.begin, seg.end - seg.begin);
    std::string normalized = normalizer.apply(piece);
    words.clear();
    pre_tokenizer.apply(normalized, words);
    for (const auto& w : words) {
      if (bpe) {
        bpe->tokenize(w, ids);
      } else {
        wordpiece->tokenize(w, ids);
      }
    }
  }
}

void Tokenizer::Impl::finalize() {
  MIXPEFT_CHECK(bpe || wordpiece, ErrorKind::kInternal, "tokenizer: no model");
  if (bpe) {
    MIXPEFT_CHECK(pre_tokenizer.byte_level(), ErrorKind::kUnsupported, origin,
                  ": pre_tokenizer: a BPE model needs a ByteLevel pre-tokenizer as its last step "
                  "(SentencePiece-style BPE with Metaspace/byte_fallback is not supported)");
  } else {
    MIXPEFT_CHECK(!pre_tokenizer.byte_level(), ErrorKind::kUnsupported, origin,
                  ": pre_tokenizer: ByteLevel with a WordPiece model is not supported");
  }
  auto resolve = [&](const std::string& name) -> TokenId {
    if (name.empty()) return -1;
    AddedToken t;
    if (const AddedToken* existing = added.find(name)) {
      t = *existing;
    } else {
      t.content = name;
      t.id = model_vocab().find(name);
      if (t.id < 0) t.id = id_end();
    }
    t.special = true;
    added.add(t);
    return t.id;
  };
  special_ids.bos = resolve(special_names.bos);
  special_ids.eos = resolve(special_names.eos);
  special_ids.unk = resolve(special_names.unk);
  special_ids.sep = resolve(special_names.sep);
  special_ids.pad = resolve(special_names.pad);
  special_ids.cls = resolve(special_names.cls);
  special_ids.mask = resolve(special_names.mask);
  for (const auto& name : special_names.additional) resolve(name);

  special_by_id.assign(id_end(), 0);
  for (const auto& t : added.tokens()) {
    if (t.special) special_by_id[t.id] = 1;
  }
}

// ---- truncation and padding ------------------------------------------------------

namespace {

size_t resolve_max_length(const EncodeOptions& o, size_t model_max, const char* what) {
  size_t m = o.max_length ? o.max_length : model_max;
  MIXPEFT_CHECK(m > 0, ErrorKind::kInvalidArgument, "EncodeOptions: ", what,
                " needs max_length (none given and the tokenizer has no model_max_length)");
  return m;
}

// Shortens a (and b) so that their lengths add up to at most `budget`.
void truncate(std::vector<TokenId>& a, std::vector<TokenId>* b, size_t budget, Truncation how) {
  size_t total = a.size() + (b ? b->size() : 0);
  if (total <= budget) return;
  size_t excess = total - budget;
  switch (how) {
    case Truncation::kNone:
      return;
    case Truncation::kLongestFirst:
      if (!b) {
        a.resize(a.size() - excess);
      } else {
        // HF: one token at a time from the longer one, from the second on ties.
        size_t la = a.size(), lb = b->size();
        while (excess > 0) {
          if (la > lb) {
            --la;
          } else {
            --lb;
          }
          --excess;
        }
        a.resize(la);
        b->resize(lb);
      }
      return;
    case Truncation::kOnlyFirst:
      MIXPEFT_CHECK(a.size() >= excess, ErrorKind::kInvalidArgument,
                    "EncodeOptions: truncation only_first cannot remove ", excess,
                    " tokens from a first text of ", a.size());
      a.resize(a.size() - excess);
      return;
    case Truncation::kOnlySecond:
      MIXPEFT_CHECK(b && b->size() >= excess, ErrorKind::kInvalidArgument,
                    "EncodeOptions: truncation only_second cannot remove ", excess,
                    " tokens from the second text", b ? "" : " (there is none)");
      b->resize(b->size() - excess);
      return;
  }
}

void pad_to(Encoding& e, size_t length, TokenId pad_id) {
  if (e.size() >= length) return;
  size_t n = length - e.size();
  e.ids.insert(e.ids.end(), n, pad_id);
  e.type_ids.insert(e.type_ids.end(), n, 0);
  e.attention_mask.insert(e.attention_mask.end(), n, 0);
  e.special_tokens_mask.insert(e.special_tokens_mask.end(), n, 1);
}

size_t round_up(size_t n, size_t multiple) {
  return multiple ? (n + multiple - 1) / multiple * multiple : n;
}

std::vector<int64_t> flatten(const BatchEncoding& batch,
                             const std::vector<int32_t>& (*field)(const Encoding&)) {
  size_t len = batch.seq_len();
  std::vector<int64_t> out;
  out.reserve(batch.rows.size() * len);
  for (size_t r = 0; r < batch.rows.size(); ++r) {
    const auto& v = field(batch.rows[r]);
    MIXPEFT_CHECK(v.size() == len, ErrorKind::kInvalidArgument, "BatchEncoding: row ", r,
                  " has ", v.size(), " tokens but the longest has ", len,
                  "; encode with padding to get a rectangular batch");
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

}  // namespace

size_t BatchEncoding::seq_len() const {
  size_t n = 0;
  for (const auto& r : rows) n = std::max(n, r.size());
  return n;
}

std::vector<int64_t> BatchEncoding::input_ids() const {
  return flatten(*this, [](const Encoding& e) -> const std::vector<int32_t>& { return e.ids; });
}
std::vector<int64_t> BatchEncoding::attention_mask() const {
  return flatten(*this,
                 [](const Encoding& e) -> const std::vector<int32_t>& { return e.attention_mask; });
}
std::vector<int64_t> BatchEncoding::token_type_ids() const {
  return flatten(*this, [](const Encoding& e) -> const std::vector<int32_t>& { return e.type_ids; });
}

// ---- Tokenizer --------------------------------------------------------------------

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;

std::vector<TokenId> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  std::vector<TokenId> ids;
  impl_->encode_text(text, ids);
  if (!add_special_tokens || impl_->post_processor.added(false) == 0) return ids;
  Encoding e;
  impl_->post_processor.apply(ids, nullptr, true, e);
  return std::move(e.ids);
}

Encoding Tokenizer::encode_pair(std::string_view a, std::string_view b,
                                bool add_special_tokens) const {
  EncodeOptions o;
  o.add_special_tokens = add_special_tokens;
  return encode_with(a, &b, o);
}

Encoding Tokenizer::encode_with(std::string_view a, const std::string_view* b,
                                const EncodeOptions& o) const {
  std::vector<TokenId> ia, ib;
  impl_->encode_text(a, ia);
  if (b) impl_->encode_text(*b, ib);
  if (o.truncation != Truncation::kNone) {
    size_t max_len = resolve_max_length(o, impl_->model_max_length, "truncation");
    size_t added = o.add_special_tokens ? impl_->post_processor.added(b != nullptr) : 0;
    MIXPEFT_CHECK(max_len >= added, ErrorKind::kInvalidArgument, "EncodeOptions: max_length ",
                  max_len, " is smaller than the ", added, " special tokens the template adds");
    truncate(ia, b ? &ib : nullptr, max_len - added, o.truncation);
  }
  Encoding e;
  impl_->post_processor.apply(ia, b ? &ib : nullptr, o.add_special_tokens, e);
  if (o.padding == Padding::kMaxLength) {
    size_t len = round_up(resolve_max_length(o, impl_->model_max_length, "padding"),
                          o.pad_to_multiple_of);
    TokenId pad = o.pad_id >= 0 ? o.pad_id : impl_->special_ids.pad;
    MIXPEFT_CHECK(pad >= 0, ErrorKind::kInvalidArgument,
                  "EncodeOptions: padding needs a pad token; this tokenizer has none "
                  "(set EncodeOptions::pad_id, e.g. to the eos id)");
    pad_to(e, len, pad);
  }
  return e;
}

namespace {

BatchEncoding finish_batch(BatchEncoding batch, const EncodeOptions& o, TokenId tokenizer_pad) {
  if (o.padding == Padding::kLongest) {
    TokenId pad = o.pad_id >= 0 ? o.pad_id : tokenizer_pad;
    MIXPEFT_CHECK(pad >= 0, ErrorKind::kInvalidArgument,
                  "EncodeOptions: padding needs a pad token; this tokenizer has none "
                  "(set EncodeOptions::pad_id, e.g. to the eos id)");
    size_t len = round_up(batch.seq_len(), o.pad_to_multiple_of);
    for (auto& row : batch.rows) pad_to(row, len, pad);
  }
  return batch;
}

}  // namespace

BatchEncoding Tokenizer::encode_batch(const std::vector<std::string>& texts,
                                      const EncodeOptions& options) const {
  BatchEncoding batch;
  batch.rows.reserve(texts.size());
  for (const auto& t : texts) batch.rows.push_back(encode_with(t, nullptr, options));
  return finish_batch(std::move(batch), options, impl_->special_ids.pad);
}

BatchEncoding Tokenizer::encode_batch_pairs(
    const std::vector<std::pair<std::string, std::string>>& pairs,
    const EncodeOptions& options) const {
  BatchEncoding batch;
  batch.rows.reserve(pairs.size());
  for (const auto& [a, b] : pairs) {
    std::string_view second(b);
    batch.rows.push_back(encode_with(a, &second, options));
  }
  return finish_batch(std::move(batch), options, impl_->special_ids.pad);
}

std::vector<std::string> Tokenizer::tokenize(std::string_view text) const {
  std::vector<TokenId> ids;
  impl_->encode_text(text, ids);
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (TokenId id : ids) tokens.push_back(id_to_token(id));
  return tokens;
}

std::string Tokenizer::decode(const std::vector<TokenId>& ids, bool skip_special_tokens) const {
  std::vector<std::string_view> tokens;
  tokens.reserve(ids.size());
  const auto& special = impl_->special_by_id;
  for (TokenId id : ids) {
    if (skip_special_tokens && id >= 0 && static_cast<size_t>(id) < special.size() && special[id]) {
      continue;
    }
    if (const std::string* t = impl_->token_of(id)) tokens.emplace_back(*t);
  }
  std::string text = impl_->decoder.apply(tokens);
  const bool decoder_cleaned = impl_->decoder.type == detail::Decoder::kWordPiece &&
                               impl_->decoder.cleanup;
  if (impl_->clean_up_spaces && !decoder_cleaned) text = detail::clean_up_tokenization(text);
  return text;
}

TokenId Tokenizer::token_to_id(std::string_view token) const { return impl_->id_of(token); }

std::string Tokenizer::id_to_token(TokenId id) const {
  const std::string* t = impl_->token_of(id);
  MIXPEFT_CHECK(t, ErrorKind::kInvalidArgument, "Tokenizer::id_to_token: id ", id,
                " has no token (ids run from 0 to ", impl_->id_end() - 1, ")");
  return *t;
}

size_t Tokenizer::vocab_size() const {
  size_t n = impl_->model_vocab().num_ids();
  for (const auto& t : impl_->added.tokens()) {
    if (!impl_->model_vocab().has_id(t.id)) ++n;
  }
  return n;
}

const SpecialTokenIds& Tokenizer::special_ids() const { return impl_->special_ids; }
const std::vector<AddedToken>& Tokenizer::added_tokens() const { return impl_->added.tokens(); }
size_t Tokenizer::model_max_length() const { return impl_->model_max_length; }
ModelKind Tokenizer::kind() const { return impl_->kind; }

std::string Tokenizer::description() const {
  size_t added = impl_->added.tokens().size();
  std::string s = impl_->bpe ? cat("byte-level BPE: ", vocab_size(), " tokens, ",
                                   impl_->bpe->merges().size(), " merges")
                             : cat("WordPiece: ", vocab_size(), " tokens");
  s += cat(", ", added, added == 1 ? " added token" : " added tokens");
  if (!impl_->origin.empty()) s += " (" + impl_->origin + ")";
  return s;
}

std::string Tokenizer::to_tokenizer_json() const {
  return detail::impl_to_tokenizer_json(*impl_).dump(2);
}

void Tokenizer::save_tokenizer_json(const std::string& path) const {
  io::write_file_atomic(path, to_tokenizer_json());
}

}  // namespace mixpeft::tok
