// DatasetSpec: JSON in and out, validation.
#include <set>
#include <nlohmann/json.hpp>

#include "data/internal.h"
#include "mixpeft/data.h"
#include "mixpeft/error.h"

namespace mixpeft::data {

using detail::quote;
using nlohmann::json;

const char* to_string(Task task) {
  switch (task) {
    case Task::kClassification: return "classification";
    case Task::kRegression: return "regression";
    case Task::kCausalLm: return "causal_lm";
  }
  return "?";
}

namespace {

const std::vector<std::string> kTopKeys = {"task",   "train",  "validation", "test",
                                           "format", "quoting", "header",    "columns",
                                           "labels", "max_length", "add_eos", "pack", "cache_dir"};

std::vector<std::string> column_keys(Task task) {
  if (task == Task::kCausalLm) return {"prompt", "completion"};
  return {"text", "text_pair", "label"};
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + v[i];
  return out;
}

const char* json_type(const json& j) {
  switch (j.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    case json::value_t::number_float: return "a non-integer number";
    default: return "a number";
  }
}

std::string get_string(const json& j, const std::string& where) {
  if (!j.is_string()) fail(ErrorKind::kInvalidArgument, where, ": expected a string, found ", json_type(j));
  return j.get<std::string>();
}

bool get_bool(const json& j, const std::string& where) {
  if (!j.is_boolean()) fail(ErrorKind::kInvalidArgument, where, ": expected true or false, found ", json_type(j));
  return j.get<bool>();
}

std::string resolve(const std::string& path, const std::string& base_dir) {
  if (path.empty() || base_dir.empty() || path[0] == '/') return path;
  return base_dir.back() == '/' ? base_dir + path : base_dir + "/" + path;
}

template <typename Enum>
Enum parse_enum(const json& j, const std::string& where,
                const std::vector<std::pair<const char*, Enum>>& names) {
  std::string s = get_string(j, where);
  std::vector<std::string> valid;
  for (const auto& [name, value] : names) {
    if (s == name) return value;
    valid.push_back(name);
  }
  fail(ErrorKind::kInvalidArgument, where, ": unknown value ", quote(s), " (valid: ", join(valid), ")");
}

}  // namespace

DatasetSpec DatasetSpec::from_json(const json& j, const std::string& base_dir, const std::string& where) {
  if (!j.is_object()) fail(ErrorKind::kInvalidArgument, where, ": expected an object, found ", json_type(j));
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool known = false;
    for (const auto& k : kTopKeys) known = known || it.key() == k;
    if (!known) {
      fail(ErrorKind::kInvalidArgument, where, ": unknown key ", quote(it.key()),
           " (valid keys: ", join(kTopKeys), ")");
    }
  }
  DatasetSpec s;
  auto key = [&](const char* k) { return where + "." + k; };
  if (!j.contains("task")) {
    fail(ErrorKind::kInvalidArgument, where, ": missing key \"task\" (classification, regression or causal_lm)");
  }
  s.task = parse_enum<Task>(j["task"], key("task"),
                            {{"classification", Task::kClassification},
                             {"regression", Task::kRegression},
                             {"causal_lm", Task::kCausalLm}});
  for (auto [split, member] : {std::pair{"train", &s.train}, std::pair{"validation", &s.validation},
                                std::pair{"test", &s.test}}) {
    if (j.contains(split)) *member = resolve(get_string(j[split], key(split)), base_dir);
  }
  if (j.contains("format")) {
    s.read.format = parse_enum<Format>(j["format"], key("format"),
                                       {{"auto", Format::kAuto},
                                        {"jsonl", Format::kJsonl},
                                        {"csv", Format::kCsv},
                                        {"tsv", Format::kTsv},
                                        {"text", Format::kText}});
  }
  if (j.contains("quoting")) {
    s.read.quoting = parse_enum<Quoting>(
        j["quoting"], key("quoting"),
        {{"auto", Quoting::kAuto}, {"csv", Quoting::kCsv}, {"none", Quoting::kNone}});
  }
  if (j.contains("header")) s.read.header = get_bool(j["header"], key("header"));
  if (j.contains("columns")) {
    const json& c = j["columns"];
    std::string w = key("columns");
    if (!c.is_object()) fail(ErrorKind::kInvalidArgument, w, ": expected an object, found ", json_type(c));
    std::vector<std::string> valid = column_keys(s.task);
    for (auto it = c.begin(); it != c.end(); ++it) {
      const std::string& k = it.key();
      bool ok = false;
      for (const auto& v : valid) ok = ok || v == k;
      if (!ok) {
        bool other = k == "text" || k == "text_pair" || k == "label" || k == "prompt" || k == "completion";
        if (other) {
          fail(ErrorKind::kInvalidArgument, w, ".", k, ": not used by task ", to_string(s.task),
               " (its columns: ", join(valid), ")");
        }
        fail(ErrorKind::kInvalidArgument, w, ": unknown key ", quote(k), " (valid for task ",
             to_string(s.task), ": ", join(valid), ")");
      }
      if (k == "text_pair" && it.value().is_null()) continue;
      std::string name = get_string(it.value(), w + "." + k);
      if (k == "text") s.columns.text = name;
      if (k == "text_pair") s.columns.text_pair = name;
      if (k == "label") s.columns.label = name;
      if (k == "prompt") s.columns.prompt = name;
      if (k == "completion") s.columns.completion = name;
    }
  }
  if (j.contains("labels")) {
    const json& l = j["labels"];
    std::string w = key("labels");
    if (s.task != Task::kClassification) {
      fail(ErrorKind::kInvalidArgument, w, ": only a classification task has labels (this task is ",
           to_string(s.task), ")");
    }
    if (!l.is_array()) fail(ErrorKind::kInvalidArgument, w, ": expected an array, found ", json_type(l));
    for (size_t i = 0; i < l.size(); ++i) {
      const json& v = l[i];
      if (v.is_string()) {
        s.labels.push_back(v.get<std::string>());
      } else if (v.is_number_integer()) {
        s.labels.push_back(v.dump());
      } else {
        fail(ErrorKind::kInvalidArgument, w, "[", i, "]: expected a string or an integer, found ", json_type(v));
      }
    }
  }
  if (j.contains("max_length")) {
    const json& m = j["max_length"];
    if (!m.is_number_integer() || m.get<int64_t>() < 0) {
      fail(ErrorKind::kInvalidArgument, key("max_length"),
           ": expected a non-negative integer (0 = the tokenizer's limit), found ", m.dump());
    }
    s.max_length = m.get<size_t>();
  }
  if (j.contains("add_eos")) {
    if (s.task != Task::kCausalLm) {
      fail(ErrorKind::kInvalidArgument, key("add_eos"), ": only a causal_lm task adds eos (this task is ",
           to_string(s.task), ")");
    }
    s.add_eos = get_bool(j["add_eos"], key("add_eos"));
  }
  if (j.contains("pack")) {
    if (s.task != Task::kCausalLm) {
      fail(ErrorKind::kInvalidArgument, key("pack"), ": only a causal_lm task packs examples (this task is ",
           to_string(s.task), ")");
    }
    s.pack = get_bool(j["pack"], key("pack"));
  }
  if (j.contains("cache_dir")) s.cache_dir = resolve(get_string(j["cache_dir"], key("cache_dir")), base_dir);
  s.validate(where);
  return s;
}

json DatasetSpec::to_json() const {
  json j;
  j["task"] = to_string(task);
  j["train"] = train;
  j["validation"] = validation;
  if (!test.empty()) j["test"] = test;
  j["format"] = to_string(read.format);
  j["quoting"] = to_string(read.quoting);
  j["header"] = read.header;
  json c = json::object();
  if (task == Task::kCausalLm) {
    c["prompt"] = columns.prompt;
    c["completion"] = columns.completion;
    j["add_eos"] = add_eos;
    j["pack"] = pack;
  } else {
    c["text"] = columns.text;
    if (!columns.text_pair.empty()) c["text_pair"] = columns.text_pair;
    c["label"] = columns.label;
  }
  j["columns"] = c;
  if (task == Task::kClassification && !labels.empty()) j["labels"] = labels;
  j["max_length"] = max_length;
  if (!cache_dir.empty()) j["cache_dir"] = cache_dir;
  return j;
}

void DatasetSpec::validate(const std::string& where) const {
  auto key = [&](const char* k) { return where + "." + k; };
  MIXPEFT_CHECK(!train.empty(), ErrorKind::kInvalidArgument, key("train"),
                ": missing (the training file: .jsonl, .csv or .tsv)");
  MIXPEFT_CHECK(!validation.empty(), ErrorKind::kInvalidArgument, key("validation"),
                ": missing (the validation file: .jsonl, .csv or .tsv)");
  if (task == Task::kCausalLm) {
    MIXPEFT_CHECK(!columns.completion.empty(), ErrorKind::kInvalidArgument, key("columns.completion"),
                  ": empty");
    MIXPEFT_CHECK(columns.prompt != columns.completion, ErrorKind::kInvalidArgument,
                  key("columns.completion"), ": the same column as columns.prompt (",
                  quote(columns.prompt), ")");
  } else {
    MIXPEFT_CHECK(!columns.text.empty(), ErrorKind::kInvalidArgument, key("columns.text"), ": empty");
    MIXPEFT_CHECK(!columns.label.empty(), ErrorKind::kInvalidArgument, key("columns.label"), ": empty");
    MIXPEFT_CHECK(columns.text_pair != columns.text, ErrorKind::kInvalidArgument, key("columns.text_pair"),
                  ": the same column as columns.text (", quote(columns.text), ")");
    MIXPEFT_CHECK(columns.label != columns.text && columns.label != columns.text_pair,
                  ErrorKind::kInvalidArgument, key("columns.label"),
                  ": the same column as a text column (", quote(columns.label), ")");
  }
  if (task != Task::kClassification) {
    MIXPEFT_CHECK(labels.empty(), ErrorKind::kInvalidArgument, key("labels"),
                  ": only a classification task has labels (this task is ", to_string(task), ")");
  }
  std::set<std::string> seen;
  for (size_t i = 0; i < labels.size(); ++i) {
    MIXPEFT_CHECK(!labels[i].empty(), ErrorKind::kInvalidArgument, key("labels"), "[", i, "]: empty label");
    MIXPEFT_CHECK(seen.insert(labels[i]).second, ErrorKind::kInvalidArgument, key("labels"), "[", i,
                  "]: ", quote(labels[i]), " is listed twice");
  }
}

}  // namespace mixpeft::data
