// The tokenization cache: one safetensors file per (files, tokenizer, spec).
//
// Tensors, for each split S present ("train", "validation", "test"), with n
// examples of T tokens in all:
//   S.offsets I64 [n+1]     example i is tokens offsets[i] .. offsets[i+1]
//   S.input_ids I32 [T]     S.line I64 [n]
//   classification/regression: S.token_type_ids I32 [T]
//   classification: S.label I64 [n]        regression: S.target F32 [n]
//   causal_lm: S.labels I32 [T], S.prompt_length I32 [n],
//              S.reference U8 [bytes], S.reference_offsets I64 [n+1]
// Metadata: format (kCacheFormat), key, task, label_names (JSON array),
// splits (JSON object: split -> source path).
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "data/internal.h"
#include "mixpeft/error.h"
#include "mixpeft/safetensors.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the data cache writes host-order integers: little-endian hosts only"
#endif

namespace mixpeft::data::detail {

namespace {

using io::DType;

// Flat columns of one split, owned until the file is written.
struct Columns {
  std::vector<int64_t> offsets{0}, line, label, reference_offsets{0};
  std::vector<int32_t> input_ids, token_type_ids, labels, prompt_length;
  std::vector<float> target;
  std::string reference;
};

Columns flatten(const Split& s, Task task) {
  Columns c;
  for (const Example& e : s.examples) {
    c.input_ids.insert(c.input_ids.end(), e.input_ids.begin(), e.input_ids.end());
    c.offsets.push_back(static_cast<int64_t>(c.input_ids.size()));
    c.line.push_back(e.line);
    if (task == Task::kCausalLm) {
      c.labels.insert(c.labels.end(), e.labels.begin(), e.labels.end());
      c.prompt_length.push_back(e.prompt_length);
      c.reference += e.reference;
      c.reference_offsets.push_back(static_cast<int64_t>(c.reference.size()));
    } else {
      c.token_type_ids.insert(c.token_type_ids.end(), e.token_type_ids.begin(), e.token_type_ids.end());
      if (task == Task::kClassification) c.label.push_back(e.label);
      if (task == Task::kRegression) c.target.push_back(e.target);
    }
  }
  return c;
}

template <typename T>
io::TensorView view(const std::string& name, DType dtype, const std::vector<T>& v) {
  return io::TensorView{name, dtype, {static_cast<int64_t>(v.size())}, v.data(), v.size() * sizeof(T)};
}

// Copies tensor `name` into `out` when it has `dtype`, one dimension, and
// `expect` elements (or any count when expect < 0).
template <typename T>
bool fetch(const io::SafetensorsFile& f, const std::string& name, DType dtype, int64_t expect,
           std::vector<T>& out) {
  const io::TensorInfo* t = f.find(name);
  if (!t || t->dtype != dtype || t->shape.size() != 1) return false;
  if (expect >= 0 && t->shape[0] != expect) return false;
  out.resize(static_cast<size_t>(t->shape[0]));
  if (!out.empty()) std::memcpy(out.data(), f.data(*t), out.size() * sizeof(T));
  return true;
}

bool monotone(const std::vector<int64_t>& off, int64_t total) {
  if (off.empty() || off.front() != 0 || off.back() != total) return false;
  for (size_t i = 1; i < off.size(); ++i) {
    if (off[i] < off[i - 1]) return false;
  }
  return true;
}

bool read_split(const io::SafetensorsFile& f, const std::string& p, Task task, int64_t num_labels,
                Split& s) {
  std::vector<int64_t> offsets, line, label, ref_off;
  std::vector<int32_t> ids, types, labels, prompt_length;
  std::vector<float> target;
  std::vector<uint8_t> ref;
  if (!fetch(f, p + ".offsets", DType::kI64, -1, offsets) || offsets.empty()) return false;
  int64_t n = static_cast<int64_t>(offsets.size()) - 1;
  if (!fetch(f, p + ".input_ids", DType::kI32, -1, ids)) return false;
  int64_t total = static_cast<int64_t>(ids.size());
  if (!monotone(offsets, total) || !fetch(f, p + ".line", DType::kI64, n, line)) return false;
  if (task == Task::kCausalLm) {
    if (!fetch(f, p + ".labels", DType::kI32, total, labels) ||
        !fetch(f, p + ".prompt_length", DType::kI32, n, prompt_length) ||
        !fetch(f, p + ".reference", DType::kU8, -1, ref) ||
        !fetch(f, p + ".reference_offsets", DType::kI64, n + 1, ref_off) ||
        !monotone(ref_off, static_cast<int64_t>(ref.size()))) {
      return false;
    }
  } else {
    if (!fetch(f, p + ".token_type_ids", DType::kI32, total, types)) return false;
    if (task == Task::kClassification && !fetch(f, p + ".label", DType::kI64, n, label)) return false;
    if (task == Task::kRegression && !fetch(f, p + ".target", DType::kF32, n, target)) return false;
  }
  s.examples.resize(static_cast<size_t>(n));
  for (size_t i = 0; i < s.examples.size(); ++i) {
    Example& e = s.examples[i];
    auto b = offsets[i], en = offsets[i + 1];
    e.input_ids.assign(ids.begin() + b, ids.begin() + en);
    e.line = line[i];
    if (task == Task::kCausalLm) {
      e.labels.assign(labels.begin() + b, labels.begin() + en);
      e.prompt_length = prompt_length[i];
      if (e.prompt_length < 0 || e.prompt_length > en - b) return false;
      e.reference.assign(ref.begin() + ref_off[i], ref.begin() + ref_off[i + 1]);
    } else {
      e.token_type_ids.assign(types.begin() + b, types.begin() + en);
      if (task == Task::kClassification) {
        e.label = label[i];
        if (e.label < -1 || e.label >= num_labels) return false;
      }
      if (task == Task::kRegression) e.target = target[i];
    }
  }
  return true;
}

}  // namespace

void write_cache(const std::string& path, const Dataset& ds) {
  std::vector<Columns> cols;
  std::vector<io::TensorView> views;
  nlohmann::json splits = nlohmann::json::object();
  for (const Split* s : {&ds.train, &ds.validation, &ds.test}) {
    if (s->path.empty()) continue;
    splits[s->name] = s->path;
    cols.push_back(flatten(*s, ds.task));
  }
  size_t k = 0;
  for (const Split* s : {&ds.train, &ds.validation, &ds.test}) {
    if (s->path.empty()) continue;
    const Columns& c = cols[k++];
    const std::string& p = s->name;
    views.push_back(view(p + ".offsets", DType::kI64, c.offsets));
    views.push_back(view(p + ".input_ids", DType::kI32, c.input_ids));
    views.push_back(view(p + ".line", DType::kI64, c.line));
    if (ds.task == Task::kCausalLm) {
      views.push_back(view(p + ".labels", DType::kI32, c.labels));
      views.push_back(view(p + ".prompt_length", DType::kI32, c.prompt_length));
      views.push_back(io::TensorView{p + ".reference", DType::kU8,
                                     {static_cast<int64_t>(c.reference.size())},
                                     c.reference.data(), c.reference.size()});
      views.push_back(view(p + ".reference_offsets", DType::kI64, c.reference_offsets));
    } else {
      views.push_back(view(p + ".token_type_ids", DType::kI32, c.token_type_ids));
      if (ds.task == Task::kClassification) views.push_back(view(p + ".label", DType::kI64, c.label));
      if (ds.task == Task::kRegression) views.push_back(view(p + ".target", DType::kF32, c.target));
    }
  }
  std::map<std::string, std::string> meta = {{"format", kCacheFormat},
                                             {"key", ds.fingerprint},
                                             {"task", to_string(ds.task)},
                                             {"label_names", nlohmann::json(ds.label_names).dump()},
                                             {"splits", splits.dump()}};
  io::write_safetensors(path, views, meta);
}

bool read_cache(const std::string& path, const std::string& key, Dataset& ds) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return false;
  try {
    auto f = io::SafetensorsFile::open(path);
    const auto& m = f->metadata();
    auto get = [&](const char* k) {
      auto it = m.find(k);
      return it == m.end() ? std::string() : it->second;
    };
    if (get("format") != kCacheFormat || get("key") != key || get("task") != to_string(ds.task)) return false;
    nlohmann::json labels = nlohmann::json::parse(get("label_names"));
    nlohmann::json splits = nlohmann::json::parse(get("splits"));
    if (!labels.is_array() || !splits.is_object()) return false;
    Dataset out = ds;
    out.label_names = labels.get<std::vector<std::string>>();
    for (Split* s : {&out.train, &out.validation, &out.test}) {
      if (!splits.contains(s->name)) continue;
      s->path = splits[s->name].get<std::string>();
      if (!read_split(*f, s->name, ds.task, static_cast<int64_t>(out.label_names.size()), *s)) {
        return false;
      }
    }
    if (out.train.path.empty() || out.validation.path.empty()) return false;
    ds = std::move(out);
    return true;
  } catch (const std::exception&) {
    return false;  // unreadable or inconsistent: tokenize again and overwrite it
  }
}

}  // namespace mixpeft::data::detail
