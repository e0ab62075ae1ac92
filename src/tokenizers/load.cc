// Tokenizer::load for the three folder layouts, tokenizer_config.json /
// special_tokens_map.json, in-memory byte-level BPE and save_pretrained.
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "mixpeft/error.h"
#include "mixpeft/safetensors.h"
#include "tokenizers/tokenizer_impl.h"
#include "tokenizers/unicode.h"

namespace mixpeft::tok {

namespace fs = std::filesystem;
using detail::json;

namespace detail {

json byte_level_pre_tokenizer_json(const std::string& split_pattern, bool add_prefix_space) {
  if (split_pattern.empty()) {
    return {{"type", "ByteLevel"}, {"add_prefix_space", add_prefix_space},
            {"trim_offsets", true}, {"use_regex", true}};
  }
  json split = {{"type", "Split"},
                {"pattern", {{"Regex", split_pattern}}},
                {"behavior", "Isolated"},
                {"invert", false}};
  json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", add_prefix_space},
                     {"trim_offsets", false}, {"use_regex", false}};
  return {{"type", "Sequence"}, {"pretokenizers", {split, byte_level}}};
}

std::string read_file(const std::string& path) {
  std::error_code ec;
  MIXPEFT_CHECK(fs::is_regular_file(path, ec), ErrorKind::kNotFound, path,
                ": no such file");
  std::ifstream in(path, std::ios::binary);
  MIXPEFT_CHECK(in.good(), ErrorKind::kIO, path, ": cannot open for reading");
  std::ostringstream ss;
  ss << in.rdbuf();
  MIXPEFT_CHECK(!in.bad(), ErrorKind::kIO, path, ": read failed");
  return ss.str();
}

}  // namespace detail

namespace {

json parse_json_file(const std::string& path) {
  std::string text = detail::read_file(path);
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    fail(ErrorKind::kCorrupt, path, ": invalid JSON: ", e.what());
  }
}

// ---- tokenizer_config.json / special_tokens_map.json ----------------------------

struct HfConfig {
  // nullopt: not mentioned; "": explicitly none (JSON null).
  std::optional<std::string> bos, eos, unk, sep, pad, cls, mask;
  std::vector<std::string> additional;
  std::vector<AddedToken> flagged;  // special tokens given as objects, with their flags
  std::vector<AddedToken> added_tokens_decoder;
  std::optional<bool> do_lower_case, strip_accents, tokenize_chinese_chars, add_prefix_space,
      clean_up;
  size_t model_max_length = 0;
  std::string tokenizer_class;
};

// A special token value: "x", {"content": "x", ...} or null.
std::optional<std::string> special_value(const json& v, const std::string& where,
                                         std::vector<AddedToken>& flagged) {
  if (v.is_null()) return std::string();
  if (v.is_string()) return v.get<std::string>();
  MIXPEFT_CHECK(v.is_object() && v.contains("content") && v["content"].is_string(),
                ErrorKind::kCorrupt, where, ": expected a string, {\"content\": ...} or null");
  AddedToken t;
  t.content = v["content"].get<std::string>();
  t.special = true;
  t.lstrip = detail::get_bool(v, "lstrip", false, where);
  t.rstrip = detail::get_bool(v, "rstrip", false, where);
  t.single_word = detail::get_bool(v, "single_word", false, where);
  t.normalized = detail::get_bool(v, "normalized", false, where);
  flagged.push_back(t);
  return t.content;
}

void read_specials(const json& j, const std::string& file, HfConfig& cfg) {
  std::pair<const char*, std::optional<std::string>*> fields[] = {
      {"bos_token", &cfg.bos}, {"eos_token", &cfg.eos}, {"unk_token", &cfg.unk},
      {"sep_token", &cfg.sep}, {"pad_token", &cfg.pad}, {"cls_token", &cfg.cls},
      {"mask_token", &cfg.mask}};
  for (auto& [key, slot] : fields) {
    auto it = j.find(key);
    if (it != j.end()) *slot = special_value(*it, file + ": " + key, cfg.flagged);
  }
  auto it = j.find("additional_special_tokens");
  if (it != j.end() && !it->is_null()) {
    MIXPEFT_CHECK(it->is_array(), ErrorKind::kCorrupt, file,
                  ": additional_special_tokens: expected an array");
    cfg.additional.clear();
    for (size_t i = 0; i < it->size(); ++i) {
      auto v = special_value((*it)[i], cat(file, ": additional_special_tokens[", i, "]"),
                             cfg.flagged);
      if (v && !v->empty()) cfg.additional.push_back(*v);
    }
  }
}

std::optional<bool> optional_bool(const json& j, const char* key, const std::string& file) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  MIXPEFT_CHECK(it->is_boolean(), ErrorKind::kCorrupt, file, ": ", key,
                ": expected true, false or null");
  return it->get<bool>();
}

HfConfig read_config(const fs::path& dir) {
  HfConfig cfg;
  const std::string config_path = (dir / "tokenizer_config.json").string();
  if (fs::is_regular_file(config_path)) {
    json j = parse_json_file(config_path);
    MIXPEFT_CHECK(j.is_object(), ErrorKind::kCorrupt, config_path, ": expected a JSON object");
    read_specials(j, config_path, cfg);
    cfg.do_lower_case = optional_bool(j, "do_lower_case", config_path);
    cfg.strip_accents = optional_bool(j, "strip_accents", config_path);
    cfg.tokenize_chinese_chars = optional_bool(j, "tokenize_chinese_chars", config_path);
    cfg.add_prefix_space = optional_bool(j, "add_prefix_space", config_path);
    cfg.clean_up = optional_bool(j, "clean_up_tokenization_spaces", config_path);
    auto m = j.find("model_max_length");
    // HF writes a huge float (1e30) for "no limit".
    if (m != j.end() && m->is_number() && m->get<double>() > 0 && m->get<double>() < 1e15) {
      cfg.model_max_length = static_cast<size_t>(m->get<double>());
    }
    cfg.tokenizer_class = detail::get_string(j, "tokenizer_class", "", config_path);
    auto d = j.find("added_tokens_decoder");
    if (d != j.end() && d->is_object()) {
      for (auto it = d->begin(); it != d->end(); ++it) {
        const std::string where = config_path + ": added_tokens_decoder." + it.key();
        json entry = it.value();
        try {
          entry["id"] = std::stoi(it.key());
        } catch (const std::exception&) {
          fail(ErrorKind::kCorrupt, where, ": key is not a token id");
        }
        AddedToken t;
        t.id = entry["id"].get<TokenId>();
        t.content = detail::get_string(entry, "content", "", where);
        t.special = detail::get_bool(entry, "special", false, where);
        t.lstrip = detail::get_bool(entry, "lstrip", false, where);
        t.rstrip = detail::get_bool(entry, "rstrip", false, where);
        t.single_word = detail::get_bool(entry, "single_word", false, where);
        t.normalized = detail::get_bool(entry, "normalized", !t.special, where);
        if (!t.content.empty()) cfg.added_tokens_decoder.push_back(t);
      }
    }
  }
  const std::string map_path = (dir / "special_tokens_map.json").string();
  if (fs::is_regular_file(map_path)) {
    json j = parse_json_file(map_path);
    MIXPEFT_CHECK(j.is_object(), ErrorKind::kCorrupt, map_path, ": expected a JSON object");
    read_specials(j, map_path, cfg);
  }
  return cfg;
}

// Applies the config over `defaults`, then finalizes the tokenizer.
void apply_config(Tokenizer::Impl& impl, const HfConfig& cfg, const SpecialTokenNames& defaults,
                  bool default_clean_up) {
  SpecialTokenNames names = defaults;
  auto over = [](std::string& slot, const std::optional<std::string>& v) {
    if (v) slot = *v;
  };
  over(names.bos, cfg.bos);
  over(names.eos, cfg.eos);
  over(names.unk, cfg.unk);
  over(names.sep, cfg.sep);
  over(names.pad, cfg.pad);
  over(names.cls, cfg.cls);
  over(names.mask, cfg.mask);
  if (!cfg.additional.empty()) names.additional = cfg.additional;
  for (const auto& t : cfg.added_tokens_decoder) {
    if (!impl.added.find(t.content)) impl.added.add(t);
  }
  for (AddedToken t : cfg.flagged) {
    if (impl.added.find(t.content)) continue;
    t.id = impl.model_vocab().find(t.content);
    if (t.id < 0) t.id = impl.id_end();
    impl.added.add(t);
  }
  impl.special_names = names;
  impl.model_max_length = cfg.model_max_length;
  impl.clean_up_spaces = cfg.clean_up.value_or(default_clean_up);
  impl.finalize();
}

// Special tokens a tokenizer.json implies when no config names them.
SpecialTokenNames infer_names(const Tokenizer::Impl& impl) {
  SpecialTokenNames n;
  if (impl.wordpiece) n.unk = impl.wordpiece->unk_token();
  if (impl.bpe) n.unk = impl.bpe->options().unk_token;
  const auto& pp = impl.post_processor;
  auto content = [&](const detail::TemplatePiece& p) {
    const auto& s = pp.specials.at(p.name);
    return s.tokens.empty() ? std::string() : s.tokens[0];
  };
  if (!pp.single.empty() && pp.single.front().special) {
    std::string c = content(pp.single.front());
    (c.find("CLS") != std::string::npos ? n.cls : n.bos) = c;
  }
  if (pp.single.size() > 1 && pp.single.back().special) {
    std::string c = content(pp.single.back());
    (c.find("SEP") != std::string::npos ? n.sep : n.eos) = c;
  }
  if (pp.source.is_object() && pp.source.value("type", "") == "RobertaProcessing") {
    n.cls = n.bos;
    n.sep = n.eos;
  }
  auto first_present = [&](std::initializer_list<const char*> names) {
    for (const char* name : names) {
      if (impl.id_of(name) >= 0) return std::string(name);
    }
    return std::string();
  };
  n.pad = first_present({"[PAD]", "<pad>", "<|pad|>"});
  n.mask = first_present({"[MASK]", "<mask>"});
  if (n.unk.empty()) n.unk = first_present({"[UNK]", "<unk>"});
  return n;
}

// ---- the three layouts ----------------------------------------------------------

std::unique_ptr<Tokenizer::Impl> load_tokenizer_json(const std::string& file, const fs::path& dir) {
  auto impl = detail::impl_from_tokenizer_json(parse_json_file(file), file);
  apply_config(*impl, read_config(dir), infer_names(*impl), impl->wordpiece != nullptr);
  return impl;
}

detail::Vocab read_vocab_json(const std::string& path) {
  json j = parse_json_file(path);
  MIXPEFT_CHECK(j.is_object(), ErrorKind::kCorrupt, path, ": expected a JSON object {token: id}");
  detail::Vocab vocab;
  for (auto it = j.begin(); it != j.end(); ++it) {
    MIXPEFT_CHECK(it->is_number_integer() && it->get<int64_t>() >= 0 &&
                      it->get<int64_t>() < (int64_t{1} << 30),
                  ErrorKind::kCorrupt, path, ": token '", it.key(),
                  "' has an id that is not a non-negative integer below 2^30");
    vocab.add(it.key(), it->get<TokenId>());
  }
  MIXPEFT_CHECK(vocab.num_ids() > 0, ErrorKind::kCorrupt, path, ": empty vocabulary");
  return vocab;
}

std::unique_ptr<Tokenizer::Impl> load_vocab_merges(const fs::path& dir) {
  const std::string vocab_path = (dir / "vocab.json").string();
  const std::string merges_path = (dir / "merges.txt").string();
  detail::Vocab vocab = read_vocab_json(vocab_path);
  std::string text = detail::read_file(merges_path);
  std::vector<std::pair<std::string, std::string>> merges;
  std::vector<size_t> line_of;
  size_t line_no = 0, pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (line_no == 1 && line.rfind("#version", 0) == 0)) continue;
    size_t space = line.find(' ');
    MIXPEFT_CHECK(space != std::string::npos && space > 0 && space + 1 < line.size() &&
                      line.find(' ', space + 1) == std::string::npos,
                  ErrorKind::kCorrupt, merges_path, ":", line_no,
                  ": expected two tokens separated by one space, got '", line, "'");
    merges.emplace_back(line.substr(0, space), line.substr(space + 1));
    line_of.push_back(line_no);
  }
  auto impl = std::make_unique<Tokenizer::Impl>();
  impl->origin = dir.string();
  impl->kind = ModelKind::kByteLevelBpe;
  impl->bpe = std::make_unique<detail::BpeModel>(
      std::move(vocab), merges, detail::BpeOptions{},
      [&](size_t i) { return cat(merges_path, ":", i < line_of.size() ? line_of[i] : line_no); });

  HfConfig cfg = read_config(dir);
  const detail::Vocab& v = impl->bpe->vocab();
  // RoBERTa-style when the config says so, or (no class given) its tokens are there.
  bool roberta = cfg.tokenizer_class.rfind("Roberta", 0) == 0 ||
                 (cfg.tokenizer_class.empty() && v.find("<s>") >= 0 && v.find("</s>") >= 0 &&
                  v.find("<mask>") >= 0);
  SpecialTokenNames names;
  if (roberta) {
    names = {"<s>", "</s>", "<unk>", "</s>", "<pad>", "<s>", "<mask>", {}};
    if (!cfg.mask) {
      AddedToken mask;
      mask.content = "<mask>";
      mask.special = true;
      mask.lstrip = true;  // RobertaTokenizer's default mask token
      cfg.flagged.push_back(mask);
    }
  } else if (v.find("<|endoftext|>") >= 0) {
    names.bos = names.eos = names.unk = "<|endoftext|>";  // GPT2Tokenizer's defaults
  }
  const bool aps = cfg.add_prefix_space.value_or(false);
  json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", aps}, {"trim_offsets", true},
                     {"use_regex", true}};
  impl->pre_tokenizer = detail::parse_pre_tokenizer(byte_level, vocab_path);
  impl->decoder = detail::parse_decoder(byte_level, vocab_path);
  json post = byte_level;
  if (roberta) {
    std::string cls = cfg.cls.value_or(names.cls), sep = cfg.sep.value_or(names.sep);
    TokenId cls_id = v.find(cls), sep_id = v.find(sep);
    if (cls_id >= 0 && sep_id >= 0) {
      post = {{"type", "RobertaProcessing"}, {"sep", {sep, sep_id}}, {"cls", {cls, cls_id}},
              {"trim_offsets", true}, {"add_prefix_space", aps}};
    }
  }
  impl->post_processor = detail::parse_post_processor(post, vocab_path);
  apply_config(*impl, cfg, names, false);
  return impl;
}

std::unique_ptr<Tokenizer::Impl> load_vocab_txt(const std::string& path, const fs::path& dir) {
  std::string text = detail::read_file(path);
  detail::Vocab vocab;
  size_t pos = 0;
  TokenId id = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string token = text.substr(pos, end - pos);
    if (!token.empty() && token.back() == '\r') token.pop_back();
    vocab.add(token, id++);
    pos = end + 1;
  }
  MIXPEFT_CHECK(id > 0, ErrorKind::kCorrupt, path, ": empty vocabulary");

  HfConfig cfg = read_config(dir);
  SpecialTokenNames names{"", "", "[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]", {}};
  const std::string unk = cfg.unk.value_or(names.unk);
  const std::string cls = cfg.cls.value_or(names.cls), sep = cfg.sep.value_or(names.sep);
  const TokenId cls_id = vocab.find(cls), sep_id = vocab.find(sep);
  MIXPEFT_CHECK(cls_id >= 0 && sep_id >= 0, ErrorKind::kCorrupt, path, ": '", cls, "' or '", sep,
                "' is not in the vocabulary");

  auto impl = std::make_unique<Tokenizer::Impl>();
  impl->origin = dir.string();
  impl->kind = ModelKind::kWordPiece;
  impl->wordpiece =
      std::make_unique<detail::WordPieceModel>(std::move(vocab), unk, "##", 100, path,
                                               ErrorKind::kCorrupt);
  json normalizer = {{"type", "BertNormalizer"},
                     {"clean_text", true},
                     {"handle_chinese_chars", cfg.tokenize_chinese_chars.value_or(true)},
                     {"strip_accents", cfg.strip_accents ? json(*cfg.strip_accents) : json()},
                     {"lowercase", cfg.do_lower_case.value_or(true)}};
  impl->normalizer = detail::parse_normalizer(normalizer, path);
  impl->normalizer.steps.at(0).bert.nfc = true;  // the slow BasicTokenizer's NFC step
  impl->pre_tokenizer = detail::parse_pre_tokenizer({{"type", "BertPreTokenizer"}}, path);
  impl->post_processor = detail::parse_post_processor(
      {{"type", "BertProcessing"}, {"sep", {sep, sep_id}}, {"cls", {cls, cls_id}}}, path);
  impl->decoder =
      detail::parse_decoder({{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", true}}, path);
  apply_config(*impl, cfg, names, true);
  return impl;
}

}  // namespace

std::unique_ptr<Tokenizer> Tokenizer::load(const std::string& dir_or_file) {
  std::error_code ec;
  const fs::path path(dir_or_file);
  MIXPEFT_CHECK(fs::exists(path, ec), ErrorKind::kNotFound, dir_or_file,
                ": no such file or folder");
  std::unique_ptr<Impl> impl;
  if (fs::is_directory(path, ec)) {
    const bool has_vocab_json = fs::is_regular_file(path / "vocab.json", ec);
    const bool has_merges = fs::is_regular_file(path / "merges.txt", ec);
    if (fs::is_regular_file(path / "tokenizer.json", ec)) {
      impl = load_tokenizer_json((path / "tokenizer.json").string(), path);
    } else if (has_vocab_json || has_merges) {
      MIXPEFT_CHECK(has_vocab_json && has_merges, ErrorKind::kNotFound, dir_or_file, ": has ",
                    has_vocab_json ? "vocab.json but no merges.txt" : "merges.txt but no vocab.json");
      impl = load_vocab_merges(path);
    } else if (fs::is_regular_file(path / "vocab.txt", ec)) {
      impl = load_vocab_txt((path / "vocab.txt").string(), path);
    } else {
      fail(ErrorKind::kNotFound, dir_or_file,
           ": no tokenizer.json, vocab.json + merges.txt or vocab.txt in this folder");
    }
  } else {
    const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
    const std::string name = path.filename().string();
    const std::string ext = path.extension().string();
    if (name == "vocab.json" || name == "merges.txt") {
      impl = load_vocab_merges(dir);
    } else if (ext == ".json") {
      impl = load_tokenizer_json(dir_or_file, dir);
    } else if (ext == ".txt") {
      impl = load_vocab_txt(dir_or_file, dir);
    } else {
      fail(ErrorKind::kInvalidArgument, dir_or_file,
           ": expected a folder, a tokenizer.json, vocab.json, merges.txt or vocab.txt");
    }
  }
  return std::make_unique<Tokenizer>(std::move(impl));
}

std::unique_ptr<Tokenizer> Tokenizer::from_byte_level_bpe(const ByteLevelBpeSpec& spec) {
  const std::string where = "ByteLevelBpeSpec";
  detail::Vocab vocab;
  for (size_t i = 0; i < spec.vocab.size(); ++i) {
    const std::string& t = spec.vocab[i];
    MIXPEFT_CHECK(detail::find_invalid_utf8(t) == std::string::npos && !t.empty(),
                  ErrorKind::kInvalidArgument, where, ".vocab[", i, "]: empty or not UTF-8");
    MIXPEFT_CHECK(vocab.find(t) < 0, ErrorKind::kInvalidArgument, where, ".vocab[", i,
                  "]: token '", t, "' is listed twice");
    vocab.add(t, static_cast<TokenId>(i));
  }
  auto impl = std::make_unique<Impl>();
  impl->origin = "in memory";
  impl->kind = ModelKind::kByteLevelBpe;
  detail::BpeOptions options;
  options.unk_token = spec.unk_token;
  impl->bpe = std::make_unique<detail::BpeModel>(
      std::move(vocab), spec.merges, options,
      [&](size_t i) { return cat(where, ".merges[", i, "]"); }, ErrorKind::kInvalidArgument);

  for (AddedToken t : spec.added_tokens) {
    MIXPEFT_CHECK(!t.content.empty() && detail::find_invalid_utf8(t.content) == std::string::npos,
                  ErrorKind::kInvalidArgument, where, ".added_tokens: empty or not UTF-8 content");
    if (t.id < 0) t.id = impl->model_vocab().find(t.content);
    if (t.id < 0) t.id = impl->id_end();
    impl->added.add(t);
  }
  auto id_of = [&](const std::string& name, const char* field) {
    TokenId id = impl->id_of(name);
    MIXPEFT_CHECK(id >= 0, ErrorKind::kInvalidArgument, where, ".", field, ": '", name,
                  "' is neither in vocab nor in added_tokens");
    return id;
  };
  for (auto [name, field] : {std::pair{&spec.bos_token, "bos_token"}, {&spec.eos_token, "eos_token"},
                             {&spec.unk_token, "unk_token"}, {&spec.pad_token, "pad_token"}}) {
    if (!name->empty()) id_of(*name, field);
  }

  impl->normalizer = detail::parse_normalizer(spec.nfc ? json{{"type", "NFC"}} : json(), where);
  const bool aps = spec.add_prefix_space;
  if (!spec.split_pattern.empty()) {
    detail::Regex check(spec.split_pattern, where + ".split_pattern", ErrorKind::kInvalidArgument);
  }
  impl->pre_tokenizer = detail::parse_pre_tokenizer(
      detail::byte_level_pre_tokenizer_json(spec.split_pattern, aps), where);
  json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", aps}, {"trim_offsets", false},
                     {"use_regex", false}};
  impl->decoder = detail::parse_decoder(byte_level, where);
  json post = byte_level;
  if (spec.add_bos || spec.add_eos) {
    MIXPEFT_CHECK(!spec.add_bos || !spec.bos_token.empty(), ErrorKind::kInvalidArgument, where,
                  ".add_bos: no bos_token");
    MIXPEFT_CHECK(!spec.add_eos || !spec.eos_token.empty(), ErrorKind::kInvalidArgument, where,
                  ".add_eos: no eos_token");
    json single = json::array(), pair = json::array(), specials = json::object();
    auto special = [&](const std::string& name, int type_id) {
      specials[name] = {{"id", name}, {"ids", {id_of(name, "template")}}, {"tokens", {name}}};
      return json{{"SpecialToken", {{"id", name}, {"type_id", type_id}}}};
    };
    auto sequence = [](const char* id, int type_id) {
      return json{{"Sequence", {{"id", id}, {"type_id", type_id}}}};
    };
    for (int s = 0; s < 2; ++s) {
      if (spec.add_bos) pair.push_back(special(spec.bos_token, s));
      pair.push_back(sequence(s == 0 ? "A" : "B", s));
      if (spec.add_eos) pair.push_back(special(spec.eos_token, s));
      if (s == 0) single = pair;
    }
    post = {{"type", "TemplateProcessing"},
            {"single", single},
            {"pair", pair},
            {"special_tokens", specials}};
  }
  impl->post_processor = detail::parse_post_processor(post, where);
  impl->special_names.bos = spec.bos_token;
  impl->special_names.eos = spec.eos_token;
  impl->special_names.unk = spec.unk_token;
  impl->special_names.pad = spec.pad_token;
  impl->model_max_length = spec.model_max_length;
  impl->finalize();
  return std::make_unique<Tokenizer>(std::move(impl));
}

void Tokenizer::save_pretrained(const std::string& dir) const {
  std::error_code ec;
  fs::create_directories(dir, ec);
  MIXPEFT_CHECK(!ec, ErrorKind::kIO, dir, ": cannot create folder: ", ec.message());
  save_tokenizer_json((fs::path(dir) / "tokenizer.json").string());
  nlohmann::ordered_json cfg;
  cfg["tokenizer_class"] = "PreTrainedTokenizerFast";
  const SpecialTokenNames& n = impl_->special_names;
  for (auto [key, value] : {std::pair{"bos_token", &n.bos}, {"eos_token", &n.eos},
                            {"unk_token", &n.unk}, {"sep_token", &n.sep}, {"pad_token", &n.pad},
                            {"cls_token", &n.cls}, {"mask_token", &n.mask}}) {
    cfg[key] = value->empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(*value);
  }
  if (!n.additional.empty()) cfg["additional_special_tokens"] = n.additional;
  if (impl_->model_max_length > 0) cfg["model_max_length"] = impl_->model_max_length;
  cfg["clean_up_tokenization_spaces"] = impl_->clean_up_spaces;
  io::write_file_atomic((fs::path(dir) / "tokenizer_config.json").string(), cfg.dump(2) + "\n");
}

}  // namespace mixpeft::tok
