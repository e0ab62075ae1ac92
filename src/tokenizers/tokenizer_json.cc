// HF tokenizer.json: reading into Tokenizer::Impl and writing it back.
#include <algorithm>

#include "mixpeft/error.h"
#include "tokenizers/tokenizer_impl.h"

namespace mixpeft::tok::detail {
namespace {

using ojson = nlohmann::ordered_json;

Vocab parse_vocab(const json& model, const std::string& where) {
  const json& v = require(model, "vocab", where);
  const std::string vwhere = where + ".vocab";
  MIXPEFT_CHECK(v.is_object(), ErrorKind::kCorrupt, vwhere, ": expected an object {token: id}");
  Vocab vocab;
  for (auto it = v.begin(); it != v.end(); ++it) {
    MIXPEFT_CHECK(it->is_number_integer() && it->get<int64_t>() >= 0 &&
                      it->get<int64_t>() < (int64_t{1} << 30),
                  ErrorKind::kCorrupt, vwhere, ": token '", it.key(),
                  "' has an id that is not a non-negative integer below 2^30");
    vocab.add(it.key(), it->get<TokenId>());
  }
  return vocab;
}

std::vector<std::pair<std::string, std::string>> parse_merges(const json& model,
                                                              const std::string& where) {
  const json& m = require(model, "merges", where);
  MIXPEFT_CHECK(m.is_array(), ErrorKind::kCorrupt, where, ".merges: expected an array");
  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(m.size());
  for (size_t i = 0; i < m.size(); ++i) {
    const json& e = m[i];
    if (e.is_string()) {
      const std::string s = e.get<std::string>();
      size_t space = s.find(' ');
      MIXPEFT_CHECK(space != std::string::npos && s.find(' ', space + 1) == std::string::npos,
                    ErrorKind::kCorrupt, where, ".merges[", i,
                    "]: expected \"left right\" (two tokens and one space), got '", s, "'");
      merges.emplace_back(s.substr(0, space), s.substr(space + 1));
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      merges.emplace_back(e[0].get<std::string>(), e[1].get<std::string>());
    } else {
      fail(ErrorKind::kCorrupt, where, ".merges[", i,
           "]: expected \"left right\" or [\"left\", \"right\"]");
    }
  }
  return merges;
}

std::string model_type(const json& model, const std::string& where) {
  auto it = model.find("type");
  if (it != model.end()) return type_of(model, where);
  // Files from old tokenizers versions have no model.type.
  if (model.contains("merges")) return "BPE";
  if (model.contains("max_input_chars_per_word")) return "WordPiece";
  fail(ErrorKind::kUnsupported, where, ": no model.type and no BPE/WordPiece fields");
}

void check_unsupported_bpe_fields(const json& model, const std::string& where) {
  auto it = model.find("dropout");
  MIXPEFT_CHECK(it == model.end() || it->is_null() || (it->is_number() && it->get<double>() == 0),
                ErrorKind::kUnsupported, where, ".dropout: BPE dropout is not supported");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    MIXPEFT_CHECK(get_string(model, key, "", where).empty(), ErrorKind::kUnsupported, where, ".",
                  key, ": not supported for byte-level BPE");
  }
  MIXPEFT_CHECK(!get_bool(model, "byte_fallback", false, where), ErrorKind::kUnsupported, where,
                ".byte_fallback: SentencePiece-style byte fallback is not supported");
}

AddedToken parse_added_token(const json& j, const std::string& where) {
  AddedToken t;
  const json& id = require(j, "id", where);
  MIXPEFT_CHECK(id.is_number_integer() && id.get<int64_t>() >= 0, ErrorKind::kCorrupt, where,
                ".id: expected a non-negative integer");
  t.id = id.get<TokenId>();
  t.content = get_string(j, "content", "", where);
  MIXPEFT_CHECK(!t.content.empty(), ErrorKind::kCorrupt, where, ".content: missing or empty");
  t.special = get_bool(j, "special", false, where);
  t.single_word = get_bool(j, "single_word", false, where);
  t.lstrip = get_bool(j, "lstrip", false, where);
  t.rstrip = get_bool(j, "rstrip", false, where);
  t.normalized = get_bool(j, "normalized", !t.special, where);
  return t;
}

ojson to_ordered(const json& j) { return ojson::parse(j.dump()); }

ojson vocab_json(const Vocab& vocab) {
  ojson v = ojson::object();
  // ordered_json's operator[] searches linearly; tokens are unique, so append
  // to the underlying vector directly (O(n) instead of O(n^2)).
  using Base = std::vector<std::pair<const std::string, ojson>>;
  auto& entries = static_cast<Base&>(v.get_ref<ojson::object_t&>());
  entries.reserve(vocab.num_ids());
  for (size_t id = 0; id < vocab.id_end(); ++id) {
    const auto tid = static_cast<TokenId>(id);
    // A token listed twice keeps its last id; write only ids that own their token.
    if (vocab.has_id(tid) && vocab.find(vocab.token(tid)) == tid) {
      entries.emplace_back(vocab.token(tid), ojson(tid));
    }
  }
  return v;
}

}  // namespace

std::unique_ptr<Tokenizer::Impl> impl_from_tokenizer_json(const json& doc,
                                                          const std::string& file) {
  MIXPEFT_CHECK(doc.is_object(), ErrorKind::kCorrupt, file, ": expected a JSON object");
  auto impl = std::make_unique<Tokenizer::Impl>();
  impl->origin = file;
  const std::string mwhere = file + ": model";
  const json& model = require(doc, "model", file);
  MIXPEFT_CHECK(model.is_object(), ErrorKind::kCorrupt, mwhere, ": expected an object");
  const std::string type = model_type(model, mwhere);
  if (type == "BPE") {
    check_unsupported_bpe_fields(model, mwhere);
    BpeOptions options;
    options.unk_token = get_string(model, "unk_token", "", mwhere);
    options.fuse_unk = get_bool(model, "fuse_unk", false, mwhere);
    options.ignore_merges = get_bool(model, "ignore_merges", false, mwhere);
    auto merges = parse_merges(model, mwhere);
    impl->bpe = std::make_unique<BpeModel>(
        parse_vocab(model, mwhere), merges, options,
        [&](size_t i) { return cat(mwhere, ".merges[", i, "]"); });
    impl->kind = ModelKind::kByteLevelBpe;
  } else if (type == "WordPiece") {
    impl->wordpiece = std::make_unique<WordPieceModel>(
        parse_vocab(model, mwhere), get_string(model, "unk_token", "[UNK]", mwhere),
        get_string(model, "continuing_subword_prefix", "##", mwhere),
        static_cast<size_t>(get_int(model, "max_input_chars_per_word", 100, mwhere)),
        mwhere + ".unk_token", ErrorKind::kCorrupt);
    impl->kind = ModelKind::kWordPiece;
  } else {
    fail(ErrorKind::kUnsupported, mwhere, ".type: model type '", type,
         "' is not supported (supported: BPE, WordPiece)");
  }

  auto component = [&](const char* key) -> const json& {
    static const json null_json;
    auto it = doc.find(key);
    return it == doc.end() ? null_json : *it;
  };
  impl->normalizer = parse_normalizer(component("normalizer"), file + ": normalizer");
  impl->pre_tokenizer = parse_pre_tokenizer(component("pre_tokenizer"), file + ": pre_tokenizer");
  impl->post_processor =
      parse_post_processor(component("post_processor"), file + ": post_processor");
  impl->decoder = parse_decoder(component("decoder"), file + ": decoder");

  const json& added = component("added_tokens");
  if (!added.is_null()) {
    MIXPEFT_CHECK(added.is_array(), ErrorKind::kCorrupt, file, ": added_tokens: expected an array");
    for (size_t i = 0; i < added.size(); ++i) {
      impl->added.add(parse_added_token(added[i], cat(file, ": added_tokens[", i, "]")));
    }
  }
  return impl;
}

nlohmann::ordered_json impl_to_tokenizer_json(const Tokenizer::Impl& impl) {
  ojson doc;
  doc["version"] = "1.0";
  doc["truncation"] = nullptr;
  doc["padding"] = nullptr;
  std::vector<AddedToken> added = impl.added.tokens();
  std::sort(added.begin(), added.end(),
            [](const AddedToken& a, const AddedToken& b) { return a.id < b.id; });
  ojson list = ojson::array();
  for (const auto& t : added) {
    ojson e;
    e["id"] = t.id;
    e["content"] = t.content;
    e["single_word"] = t.single_word;
    e["lstrip"] = t.lstrip;
    e["rstrip"] = t.rstrip;
    e["normalized"] = t.normalized;
    e["special"] = t.special;
    list.push_back(std::move(e));
  }
  doc["added_tokens"] = std::move(list);
  doc["normalizer"] = to_ordered(impl.normalizer.source);
  doc["pre_tokenizer"] = to_ordered(impl.pre_tokenizer.source);
  doc["post_processor"] = to_ordered(impl.post_processor.source);
  doc["decoder"] = to_ordered(impl.decoder.source);

  ojson model;
  if (impl.bpe) {
    const BpeModel& bpe = *impl.bpe;
    const Vocab& vocab = bpe.vocab();
    model["type"] = "BPE";
    model["dropout"] = nullptr;
    model["unk_token"] = bpe.options().unk_token.empty() ? ojson(nullptr)
                                                         : ojson(bpe.options().unk_token);
    model["continuing_subword_prefix"] = nullptr;
    model["end_of_word_suffix"] = nullptr;
    model["fuse_unk"] = bpe.options().fuse_unk;
    model["byte_fallback"] = false;
    model["ignore_merges"] = bpe.options().ignore_merges;
    model["vocab"] = vocab_json(vocab);
    // "left right" strings are readable by every tokenizers version; pairs
    // only by >= 0.20, so they are used only when a token has a space.
    bool has_space = false;
    for (auto [a, b] : bpe.merges()) {
      has_space = has_space || vocab.token(a).find(' ') != std::string::npos ||
                  vocab.token(b).find(' ') != std::string::npos;
    }
    ojson merges = ojson::array();
    for (auto [a, b] : bpe.merges()) {
      if (has_space) {
        merges.push_back(ojson::array({vocab.token(a), vocab.token(b)}));
      } else {
        merges.push_back(vocab.token(a) + " " + vocab.token(b));
      }
    }
    model["merges"] = std::move(merges);
  } else {
    const WordPieceModel& wp = *impl.wordpiece;
    model["type"] = "WordPiece";
    model["unk_token"] = wp.unk_token();
    model["continuing_subword_prefix"] = wp.prefix();
    model["max_input_chars_per_word"] = wp.max_input_chars_per_word();
    model["vocab"] = vocab_json(wp.vocab());
  }
  doc["model"] = std::move(model);
  return doc;
}

}  // namespace mixpeft::tok::detail
