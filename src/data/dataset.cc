// load_dataset: read, check, tokenize (or read the cache), write the cache.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>

#include "data/internal.h"
#include "mixpeft/data.h"
#include "mixpeft/error.h"
#include "mixpeft/safetensors.h"
#include "mixpeft/tokenizer.h"

namespace mixpeft::data {

using detail::quote;

size_t Split::num_tokens() const {
  size_t n = 0;
  for (const auto& e : examples) n += e.length();
  return n;
}

size_t Split::max_length() const {
  size_t n = 0;
  for (const auto& e : examples) n = std::max(n, e.length());
  return n;
}

int64_t pad_id_for(const tok::Tokenizer& tokenizer) {
  const auto& s = tokenizer.special_ids();
  if (s.pad >= 0) return s.pad;
  if (s.eos >= 0) return s.eos;
  fail(ErrorKind::kInvalidArgument, "tokenizer: no pad token and no eos token to pad batches with (",
       tokenizer.description(), "); set BatchOptions::pad_id");
}

namespace {

// One split's file, parsed, with the columns the spec maps resolved.
struct Source {
  std::string name;  // "train", ...
  Table table;
  int text = -1, text_pair = -1, label = -1, prompt = -1, completion = -1;  // column indices
};

// A label as a string key: a string field as is, an integer as its digits.
std::string label_key(const Source& s, const Row& row) {
  const Field& f = row.fields[static_cast<size_t>(s.label)];
  if (f.type != FieldType::kString && f.type != FieldType::kInteger) {
    fail(ErrorKind::kInvalidArgument, s.table.where(row), ": column ", quote(s.table.columns[s.label]),
         ": expected a label (a string or an integer), found ", to_string(f.type), " ", f.text);
  }
  if (f.text.empty()) {
    fail(ErrorKind::kInvalidArgument, s.table.where(row), ": column ", quote(s.table.columns[s.label]),
         ": empty label");
  }
  return f.text;
}

// HF exports the rows of GLUE's test splits with label -1: in the test
// split, a "-1" that is not itself a label marks an unlabeled row.
bool unlabeled(const Source& s, const std::string& key, const std::map<std::string, int64_t>& ids) {
  return s.name == "test" && key == "-1" && ids.count(key) == 0;
}

bool parse_int64(const std::string& s, int64_t& out) {
  if (s.empty() || s.size() > 20) return false;
  size_t i = s[0] == '-' ? 1 : 0;
  if (i == s.size()) return false;
  for (size_t k = i; k < s.size(); ++k) {
    if (s[k] < '0' || s[k] > '9') return false;
  }
  errno = 0;
  long long v = std::strtoll(s.c_str(), nullptr, 10);
  if (errno == ERANGE) return false;
  out = v;
  return true;
}

float regression_target(const Source& s, const Row& row) {
  const Field& f = row.fields[static_cast<size_t>(s.label)];
  const std::string& col = s.table.columns[s.label];
  if (f.type != FieldType::kString && f.type != FieldType::kInteger && f.type != FieldType::kFloat) {
    fail(ErrorKind::kInvalidArgument, s.table.where(row), ": column ", quote(col),
         ": expected a number, found ", to_string(f.type), " ", f.text);
  }
  const char* begin = f.text.c_str();
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(begin, &end);
  bool whole = !f.text.empty() && end == begin + f.text.size();
  if (!whole || errno == ERANGE || !std::isfinite(v)) {
    fail(ErrorKind::kInvalidArgument, s.table.where(row), ": column ", quote(col), ": ", quote(f.text),
         " is not a finite number (a regression label)");
  }
  return static_cast<float>(v);
}

// The text of a string field; other types are an error naming the column.
const std::string& text_of(const Source& s, const Row& row, int col) {
  const Field& f = row.fields[static_cast<size_t>(col)];
  if (f.type != FieldType::kString) {
    fail(ErrorKind::kInvalidArgument, s.table.where(row), ": column ", quote(s.table.columns[col]),
         ": expected a string, found ", to_string(f.type), " ", quote(f.text, 40));
  }
  return f.text;
}

// Resolves the spec's columns in one table. The test split may lack its
// label (completion) column: its rows are then unlabeled.
void resolve_columns(const DatasetSpec& spec, Source& s) {
  const Table& t = s.table;
  if (t.rows.empty()) {
    fail(ErrorKind::kInvalidArgument, t.path, ": the ", s.name, " split has no records",
         t.columns.empty() ? " (the file is empty)" : " (only a header)");
  }
  auto need = [&](const std::string& name, const char* key) {
    return static_cast<int>(t.require_column(name, cat("set dataset.columns.", key)));
  };
  bool test = s.name == "test";
  if (spec.task == Task::kCausalLm) {
    s.prompt = spec.columns.prompt.empty() ? -1 : need(spec.columns.prompt, "prompt");  // "" = no prompt
    s.completion = test ? t.column_index(spec.columns.completion) : need(spec.columns.completion, "completion");
  } else {
    s.text = need(spec.columns.text, "text");
    if (!spec.columns.text_pair.empty()) s.text_pair = need(spec.columns.text_pair, "text_pair");
    s.label = test ? t.column_index(spec.columns.label) : need(spec.columns.label, "label");
  }
  // JSONL records may lack a key that others have.
  for (const Row& row : t.rows) {
    for (int col : {s.text, s.text_pair, s.label, s.prompt, s.completion}) {
      if (col < 0 || row.fields[static_cast<size_t>(col)].type != FieldType::kMissing) continue;
      std::vector<std::string> has;
      for (size_t c = 0; c < t.columns.size(); ++c) {
        if (row.fields[c].type != FieldType::kMissing) has.push_back(t.columns[c]);
      }
      fail(ErrorKind::kNotFound, t.where(row), ": no column ", quote(t.columns[col]),
           " in this record (it has: ", detail::quote_list(has), ")");
    }
  }
}

// The label set: the spec's, or the sorted train labels (numerically when
// all are integers).
std::vector<std::string> label_set(const DatasetSpec& spec, const Source& train) {
  if (!spec.labels.empty()) return spec.labels;
  std::vector<std::string> keys;
  for (const Row& row : train.table.rows) {
    keys.push_back(label_key(train, row));
  }
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  std::vector<std::pair<int64_t, std::string>> numeric;
  for (const auto& k : keys) {
    int64_t v;
    if (!parse_int64(k, v)) return keys;
    numeric.emplace_back(v, k);
  }
  std::sort(numeric.begin(), numeric.end());
  for (size_t i = 0; i < keys.size(); ++i) keys[i] = numeric[i].second;
  return keys;
}

struct Encoder {
  const DatasetSpec& spec;
  const tok::Tokenizer& tok;
  size_t max_length = 0;  // 0 = no limit
  size_t block = 0;       // pack: tokens per block
  bool add_bos = false;
  int32_t bos = -1, eos = -1;
  std::map<std::string, int64_t> label_ids;

  Encoder(const DatasetSpec& s, const tok::Tokenizer& t) : spec(s), tok(t) {
    max_length = spec.max_length ? spec.max_length : tok.model_max_length();
    if (spec.task != Task::kCausalLm) return;
    if (spec.pack) {
      MIXPEFT_CHECK(max_length > 0, ErrorKind::kInvalidArgument,
                    "dataset.pack: needs a block length: set dataset.max_length (the tokenizer has no model_max_length)");
      block = max_length;
      max_length = 0;  // documents are cut into blocks, not truncated
    }
    bos = tok.special_ids().bos;
    eos = tok.special_ids().eos;
    std::vector<tok::TokenId> tmpl = tok.encode("", true);
    add_bos = bos >= 0 && !tmpl.empty() && tmpl[0] == bos;
    if (spec.add_eos && eos < 0) {
      fail(ErrorKind::kInvalidArgument, "dataset.add_eos: the tokenizer has no eos token (",
           tok.description(), "); set add_eos to false");
    }
    size_t fixed = add_bos ? 1 : 0;
    if (max_length > 0 && max_length <= fixed) {
      fail(ErrorKind::kInvalidArgument, "dataset.max_length: ", max_length,
           " leaves no room for the completion after the bos token");
    }
  }

  Example encode(const Source& s, const Row& row) const {
    Example ex;
    ex.line = row.line;
    try {
      if (spec.task == Task::kCausalLm) {
        encode_causal(s, row, ex);
      } else {
        encode_sequence(s, row, ex);
      }
    } catch (const Error& e) {
      std::string msg = e.what();
      std::string where = s.table.where(row);
      if (msg.rfind(where + ":", 0) == 0) throw;
      fail(e.kind(), where, ": ", msg);
    }
    if (ex.input_ids.empty()) {
      fail(ErrorKind::kInvalidArgument, s.table.where(row),
           ": the text gives no tokens (empty text, and the tokenizer adds no special tokens)");
    }
    return ex;
  }

  void encode_sequence(const Source& s, const Row& row, Example& ex) const {
    tok::EncodeOptions o;
    o.add_special_tokens = true;
    o.truncation = max_length ? tok::Truncation::kLongestFirst : tok::Truncation::kNone;
    o.max_length = max_length;
    std::string_view a = text_of(s, row, s.text);
    std::string_view b;
    if (s.text_pair >= 0) b = text_of(s, row, s.text_pair);
    tok::Encoding e = tok.encode_with(a, s.text_pair >= 0 ? &b : nullptr, o);
    ex.input_ids = std::move(e.ids);
    ex.token_type_ids = std::move(e.type_ids);
    if (spec.task == Task::kClassification) {
      if (s.label < 0) return;  // a test split without labels
      std::string key = label_key(s, row);
      if (!unlabeled(s, key, label_ids)) ex.label = label_ids.at(key);  // checked in load_dataset
    } else {
      ex.target = s.label < 0 ? std::numeric_limits<float>::quiet_NaN() : regression_target(s, row);
    }
  }

  // input = [bos] + prompt + completion + [eos]; labels = -100 on [bos] + prompt.
  // Over max_length: the prompt loses tokens from its start, then the
  // completion (with its eos) from its end.
  void encode_causal(const Source& s, const Row& row, Example& ex) const {
    std::vector<tok::TokenId> prompt;
    if (s.prompt >= 0) prompt = tok.encode(text_of(s, row, s.prompt), false);
    std::vector<tok::TokenId> tail;
    if (s.completion >= 0) {
      ex.reference = text_of(s, row, s.completion);
      tail = tok.encode(ex.reference, false);
      if (spec.add_eos) tail.push_back(eos);
      if (tail.empty()) {
        fail(ErrorKind::kInvalidArgument, s.table.where(row),
             ": empty completion and add_eos is false: no token to learn from");
      }
    }
    size_t fixed = add_bos ? 1 : 0;
    size_t total = fixed + prompt.size() + tail.size();
    if (max_length > 0 && total > max_length) {
      size_t excess = total - max_length;
      size_t cut = std::min(excess, prompt.size());
      prompt.erase(prompt.begin(), prompt.begin() + static_cast<std::ptrdiff_t>(cut));
      tail.resize(tail.size() - (excess - cut));  // max_length > fixed: tail keeps >= 1 token
    }
    if (add_bos) ex.input_ids.push_back(bos);
    ex.input_ids.insert(ex.input_ids.end(), prompt.begin(), prompt.end());
    ex.prompt_length = static_cast<int32_t>(ex.input_ids.size());
    ex.input_ids.insert(ex.input_ids.end(), tail.begin(), tail.end());
    ex.labels.assign(static_cast<size_t>(ex.prompt_length), kIgnoreIndex);
    ex.labels.insert(ex.labels.end(), tail.begin(), tail.end());
  }
};

// HF group_texts: the examples' tokens (and labels) end to end, cut into
// blocks of `block` tokens; the last block may be shorter. A block's line is
// the line of the record it starts in.
std::vector<Example> pack_examples(const std::vector<Example>& examples, size_t block) {
  std::vector<Example> out;
  Example cur;
  for (const Example& e : examples) {
    for (size_t i = 0; i < e.input_ids.size(); ++i) {
      if (cur.input_ids.empty()) cur.line = e.line;
      cur.input_ids.push_back(e.input_ids[i]);
      cur.labels.push_back(e.labels[i]);
      if (cur.input_ids.size() == block) {
        out.push_back(std::move(cur));
        cur = Example();
      }
    }
  }
  if (!cur.input_ids.empty()) out.push_back(std::move(cur));
  return out;
}

std::string cache_key(const DatasetSpec& spec, const tok::Tokenizer& tok,
                      const std::vector<std::pair<std::string, std::string>>& files) {
  DatasetSpec keyed = spec;
  keyed.cache_dir.clear();
  detail::Sha256 h;
  h.update_framed(detail::kCacheFormat);
  h.update_framed(keyed.to_json().dump());
  h.update_framed(tok.to_tokenizer_json());
  for (const auto& [name, bytes] : files) {
    h.update_framed(name);
    h.update_framed(bytes);
  }
  return h.hex_digest();
}

}  // namespace

Dataset load_dataset(const DatasetSpec& spec, const tok::Tokenizer& tokenizer) {
  spec.validate();
  std::vector<std::pair<std::string, std::string>> names = {{"train", spec.train},
                                                            {"validation", spec.validation}};
  if (!spec.test.empty()) names.emplace_back("test", spec.test);

  // Read every file once: its bytes feed the cache key and the parser.
  std::vector<std::pair<std::string, std::string>> files;
  for (const auto& [name, path] : names) {
    if (spec.read.format == Format::kAuto) detect_format(path);  // fails before reading
    files.emplace_back(name, io::read_file(path));
  }

  Dataset ds;
  ds.task = spec.task;
  ds.train.name = "train";
  ds.validation.name = "validation";
  ds.test.name = "test";
  ds.fingerprint = cache_key(spec, tokenizer, files);
  if (!spec.cache_dir.empty()) {
    ds.cache_path = cat(spec.cache_dir, spec.cache_dir.back() == '/' ? "" : "/", "dataset-",
                        ds.fingerprint, ".safetensors");
    if (detail::read_cache(ds.cache_path, ds.fingerprint, ds)) {
      ds.from_cache = true;
      return ds;
    }
  }

  // Parse and check everything before tokenizing anything.
  std::vector<Source> sources;
  for (size_t i = 0; i < names.size(); ++i) {
    Source s;
    s.name = names[i].first;
    s.table = parse_table(files[i].second, names[i].second, spec.read);
    std::string().swap(files[i].second);
    resolve_columns(spec, s);
    sources.push_back(std::move(s));
  }
  Encoder enc(spec, tokenizer);
  if (spec.task == Task::kClassification) {
    ds.label_names = label_set(spec, sources[0]);
    for (size_t i = 0; i < ds.label_names.size(); ++i) enc.label_ids[ds.label_names[i]] = static_cast<int64_t>(i);
    for (const Source& s : sources) {
      if (s.label < 0) continue;
      for (const Row& row : s.table.rows) {
        std::string k = label_key(s, row);
        if (enc.label_ids.count(k) || unlabeled(s, k, enc.label_ids)) continue;
        fail(ErrorKind::kInvalidArgument, s.table.where(row), ": label ", quote(k), " is not a known label (",
             spec.labels.empty() ? "labels seen in the train split: " : "dataset.labels: ",
             detail::quote_list(ds.label_names), ")");
      }
    }
  } else if (spec.task == Task::kRegression) {
    for (const Source& s : sources) {
      if (s.label < 0) continue;
      for (const Row& row : s.table.rows) regression_target(s, row);
    }
  }

  for (Source& s : sources) {
    Split& split = s.name == "train" ? ds.train : s.name == "validation" ? ds.validation : ds.test;
    split.name = s.name;
    split.path = s.table.path;
    split.examples.reserve(s.table.rows.size());
    for (const Row& row : s.table.rows) split.examples.push_back(enc.encode(s, row));
    if (spec.pack) split.examples = pack_examples(split.examples, enc.block);
  }
  if (!spec.cache_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(spec.cache_dir, ec);
    if (ec) fail(ErrorKind::kIO, spec.cache_dir, ": cannot create the cache folder: ", ec.message());
    detail::write_cache(ds.cache_path, ds);
  }
  return ds;
}

}  // namespace mixpeft::data
