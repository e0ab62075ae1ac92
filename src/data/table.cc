// Readers: JSONL, CSV (RFC 4180) and TSV (GLUE layout, no quoting by default).
#include <map>
#include <nlohmann/json.hpp>

#include "data/internal.h"
#include "mixpeft/data.h"
#include "mixpeft/error.h"
#include "mixpeft/safetensors.h"

namespace mixpeft::data {

const char* to_string(Format format) {
  switch (format) {
    case Format::kAuto: return "auto";
    case Format::kJsonl: return "jsonl";
    case Format::kCsv: return "csv";
    case Format::kTsv: return "tsv";
    case Format::kText: return "text";
  }
  return "?";
}

const char* to_string(Quoting quoting) {
  switch (quoting) {
    case Quoting::kAuto: return "auto";
    case Quoting::kCsv: return "csv";
    case Quoting::kNone: return "none";
  }
  return "?";
}

const char* to_string(FieldType type) {
  switch (type) {
    case FieldType::kMissing: return "missing";
    case FieldType::kNull: return "null";
    case FieldType::kString: return "string";
    case FieldType::kInteger: return "integer";
    case FieldType::kFloat: return "number";
    case FieldType::kBool: return "boolean";
    case FieldType::kOther: return "array or object";
  }
  return "?";
}

namespace detail {

std::string quote(std::string_view s, size_t max) {
  static const char* hex = "0123456789abcdef";
  std::string out = "\"";
  size_t n = std::min(s.size(), max);
  for (size_t i = 0; i < n; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (n < s.size()) out += "...";
  return out + "\"";
}

std::string quote_list(const std::vector<std::string>& items, size_t max_items) {
  std::string out;
  for (size_t i = 0; i < items.size() && i < max_items; ++i) {
    if (i) out += ", ";
    out += quote(items[i], 60);
  }
  if (items.size() > max_items) out += cat(", ... (", items.size(), " in all)");
  if (items.empty()) out = "none";
  return out;
}

}  // namespace detail

using detail::quote;

int Table::column_index(std::string_view name) const {
  for (size_t i = 0; i < columns.size(); ++i) {
    if (columns[i] == name) return static_cast<int>(i);
  }
  return -1;
}

size_t Table::require_column(std::string_view name, std::string_view hint) const {
  int i = column_index(name);
  if (i < 0) {
    fail(ErrorKind::kNotFound, path, ": no column ", quote(name), " (columns: ",
         detail::quote_list(columns), ")", hint.empty() ? "" : "; ", hint);
  }
  return static_cast<size_t>(i);
}

std::string Table::where(const Row& row) const { return cat(path, ":", row.line); }

Format detect_format(const std::string& path) {
  auto ends_with = [&](const char* ext) {
    std::string e = ext;
    if (path.size() < e.size()) return false;
    for (size_t i = 0; i < e.size(); ++i) {
      char c = path[path.size() - e.size() + i];
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      if (c != e[i]) return false;
    }
    return true;
  };
  if (ends_with(".jsonl") || ends_with(".json")) return Format::kJsonl;
  if (ends_with(".csv")) return Format::kCsv;
  if (ends_with(".tsv")) return Format::kTsv;
  if (ends_with(".txt")) return Format::kText;
  size_t slash = path.find_last_of('/');
  size_t dot = path.find_last_of('.');
  std::string ext = (dot == std::string::npos || (slash != std::string::npos && dot < slash))
                        ? std::string("(none)")
                        : path.substr(dot);
  fail(ErrorKind::kInvalidArgument, path, ": cannot tell the format from the extension ", ext,
       " (known: .jsonl, .json, .csv, .tsv, .txt); set dataset.format to \"jsonl\", \"csv\", \"tsv\" or \"text\"");
}

namespace {

// Splits `text` into lines ('\n'; a '\r' before it is dropped). Calls
// fn(line_number, line) for each, the last one included when not empty.
template <typename Fn>
void for_each_line(std::string_view text, Fn&& fn) {
  int64_t line = 1;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    size_t end = nl == std::string_view::npos ? text.size() : nl;
    std::string_view s = text.substr(pos, end - pos);
    if (!s.empty() && s.back() == '\r') s.remove_suffix(1);
    fn(line, s);
    if (nl == std::string_view::npos) break;
    pos = nl + 1;
    ++line;
  }
}

// nlohmann's message without its "[json.exception...] parse error at line 1, " prefix.
std::string json_reason(const std::exception& e) {
  std::string msg = e.what();
  size_t col = msg.find("column ");
  if (col != std::string::npos) return msg.substr(col);
  size_t br = msg.find("] ");
  return br == std::string::npos ? msg : msg.substr(br + 2);
}

// Keys keep their order in the file (ordered_json), so JSONL columns are
// listed in order of first appearance.
using Json = nlohmann::ordered_json;

Field to_field(const Json& v) {
  Field f;
  switch (v.type()) {
    case Json::value_t::string:
      f.type = FieldType::kString;
      f.text = v.get<std::string>();
      break;
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
      f.type = FieldType::kInteger;
      f.text = v.dump();
      break;
    case Json::value_t::number_float:
      f.type = FieldType::kFloat;
      f.text = v.dump();
      break;
    case Json::value_t::boolean:
      f.type = FieldType::kBool;
      f.text = v.get<bool>() ? "true" : "false";
      break;
    case Json::value_t::null:
      f.type = FieldType::kNull;
      f.text = "null";
      break;
    default:
      f.type = FieldType::kOther;
      f.text = v.dump();
      break;
  }
  return f;
}

void parse_jsonl(std::string_view text, Table& t) {
  std::map<std::string, size_t, std::less<>> index;
  for_each_line(text, [&](int64_t line, std::string_view s) {
    if (s.find_first_not_of(" \t\r\f\v") == std::string_view::npos) return;
    Json j;
    try {
      j = Json::parse(s);
    } catch (const Json::exception& e) {
      fail(ErrorKind::kCorrupt, t.path, ":", line, ": malformed JSON: ", json_reason(e));
    }
    if (!j.is_object()) {
      fail(ErrorKind::kCorrupt, t.path, ":", line, ": expected a JSON object, found ",
           j.is_array() ? "an array" : "a single value", " (JSONL holds one object per line)");
    }
    Row row;
    row.line = line;
    row.fields.resize(t.columns.size());
    for (auto it = j.begin(); it != j.end(); ++it) {
      auto found = index.find(it.key());
      size_t col;
      if (found == index.end()) {
        col = t.columns.size();
        index.emplace(it.key(), col);
        t.columns.push_back(it.key());
        row.fields.resize(t.columns.size());
      } else {
        col = found->second;
      }
      row.fields[col] = to_field(it.value());
    }
    t.rows.push_back(std::move(row));
  });
  for (Row& r : t.rows) r.fields.resize(t.columns.size());
}

struct RawRecord {
  int64_t line;
  std::vector<std::string> fields;
};

// RFC 4180 with `delim`: a field that starts with '"' runs to the next lone
// '"' ("" is a quote; newlines are kept). A quote inside an unquoted field is
// data (as Python's csv module reads it).
std::vector<RawRecord> split_quoted(std::string_view text, char delim, const std::string& path) {
  std::vector<RawRecord> out;
  size_t i = 0, n = text.size();
  int64_t line = 1;
  auto at_record_end = [&](size_t k) {
    return k >= n || text[k] == '\n' || (text[k] == '\r' && (k + 1 == n || text[k + 1] == '\n'));
  };
  while (i < n) {
    if (text[i] == '\n' || (text[i] == '\r' && i + 1 < n && text[i + 1] == '\n')) {
      i += text[i] == '\r' ? 2 : 1;  // blank line
      ++line;
      continue;
    }
    RawRecord rec{line, {}};
    for (;;) {
      std::string f;
      if (i < n && text[i] == '"') {
        int64_t open_line = line;
        ++i;
        for (;;) {
          if (i >= n) {
            fail(ErrorKind::kCorrupt, path, ":", open_line, ": field ", rec.fields.size() + 1,
                 ": quoted field is never closed (a quote inside a quoted field is written \"\")");
          }
          char c = text[i];
          if (c == '"') {
            if (i + 1 < n && text[i + 1] == '"') {
              f += '"';
              i += 2;
              continue;
            }
            ++i;
            break;
          }
          if (c == '\n') ++line;
          f += c;
          ++i;
        }
        if (!at_record_end(i) && text[i] != delim) {
          fail(ErrorKind::kCorrupt, path, ":", line, ": field ", rec.fields.size() + 1,
               ": unexpected ", quote(text.substr(i, 1)),
               " after a closing quote (a quote inside a quoted field is written \"\")");
        }
      } else {
        while (i < n && text[i] != delim && text[i] != '\n') f += text[i++];
        if (!f.empty() && f.back() == '\r' && (i >= n || text[i] == '\n')) f.pop_back();
      }
      rec.fields.push_back(std::move(f));
      if (i < n && text[i] == delim) {
        ++i;
        continue;
      }
      if (i < n && text[i] == '\r') ++i;
      if (i < n && text[i] == '\n') {
        ++i;
        ++line;
      }
      break;
    }
    out.push_back(std::move(rec));
  }
  return out;
}

// One record per non-empty line, fields split at every `delim`.
std::vector<RawRecord> split_unquoted(std::string_view text, char delim) {
  std::vector<RawRecord> out;
  for_each_line(text, [&](int64_t line, std::string_view s) {
    if (s.empty()) return;
    RawRecord rec{line, {}};
    size_t pos = 0;
    for (;;) {
      size_t d = s.find(delim, pos);
      if (d == std::string_view::npos) {
        rec.fields.emplace_back(s.substr(pos));
        break;
      }
      rec.fields.emplace_back(s.substr(pos, d - pos));
      pos = d + 1;
    }
    out.push_back(std::move(rec));
  });
  return out;
}

void parse_delimited(std::string_view text, char delim, bool quoted, bool header, Table& t) {
  std::vector<RawRecord> recs = quoted ? split_quoted(text, delim, t.path) : split_unquoted(text, delim);
  if (recs.empty()) return;
  size_t first = 0;
  if (header) {
    t.columns = std::move(recs[0].fields);
    std::map<std::string, size_t, std::less<>> seen;
    for (size_t c = 0; c < t.columns.size(); ++c) {
      auto [it, fresh] = seen.emplace(t.columns[c], c);
      if (!fresh) {
        fail(ErrorKind::kCorrupt, t.path, ":", recs[0].line, ": header: column ",
             quote(t.columns[c]), " appears twice (fields ", it->second + 1, " and ", c + 1, ")");
      }
    }
    first = 1;
  } else {
    for (size_t c = 0; c < recs[0].fields.size(); ++c) t.columns.push_back(std::to_string(c));
  }
  t.rows.reserve(recs.size() - first);
  for (size_t r = first; r < recs.size(); ++r) {
    RawRecord& rec = recs[r];
    if (rec.fields.size() != t.columns.size()) {
      fail(ErrorKind::kCorrupt, t.path, ":", rec.line, ": expected ", t.columns.size(),
           " fields, found ", rec.fields.size(),
           delim == '\t' && !quoted ? " (fields are separated by tabs)" : "");
    }
    Row row;
    row.line = rec.line;
    row.fields.reserve(rec.fields.size());
    for (std::string& f : rec.fields) row.fields.push_back(Field{FieldType::kString, std::move(f)});
    t.rows.push_back(std::move(row));
  }
}

// Documents separated by one or more blank lines (lines of only spaces or
// tabs count as blank); each keeps its inner line breaks.
void parse_text(std::string_view text, Table& t) {
  t.columns = {"text"};
  std::string doc;
  int64_t line = 0, doc_line = 0;
  auto flush = [&] {
    if (doc.empty()) return;
    Row row;
    row.line = doc_line;
    row.fields.push_back(Field{FieldType::kString, std::move(doc)});
    t.rows.push_back(std::move(row));
    doc.clear();
  };
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view l = text.substr(pos, end - pos);
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    ++line;
    if (l.find_first_not_of(" \t") == std::string_view::npos) {
      flush();
    } else {
      if (doc.empty()) doc_line = line;
      else doc += '\n';
      doc.append(l);
    }
    pos = end + 1;
  }
  flush();
}

}  // namespace

Table parse_table(std::string_view text, const std::string& path, const ReadOptions& options) {
  Table t;
  t.path = path;
  t.format = options.format == Format::kAuto ? detect_format(path) : options.format;
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
  if (t.format == Format::kJsonl) {
    parse_jsonl(text, t);
    return t;
  }
  if (t.format == Format::kText) {
    parse_text(text, t);
    return t;
  }
  Quoting q = options.quoting;
  if (q == Quoting::kAuto) q = t.format == Format::kCsv ? Quoting::kCsv : Quoting::kNone;
  parse_delimited(text, t.format == Format::kCsv ? ',' : '\t', q == Quoting::kCsv, options.header, t);
  return t;
}

Table read_table(const std::string& path, const ReadOptions& options) {
  ReadOptions o = options;
  if (o.format == Format::kAuto) o.format = detect_format(path);  // before opening: a clearer error
  return parse_table(io::read_file(path), path, o);
}

}  // namespace mixpeft::data
