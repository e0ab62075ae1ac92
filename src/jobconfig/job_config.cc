// Job files (TOML or JSON) read into JSON, command-line overrides, and the
// "did you mean" helper.
#include "mixpeft/job_config.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

#include <nlohmann/json.hpp>
#include <toml++/toml.h>

#include "mixpeft/error.h"

namespace mixpeft::config {
namespace {

using nlohmann::json;

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string extension_of(const std::string& path) {
  size_t slash = path.find_last_of('/');
  size_t dot = path.find_last_of('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return "";
  return path.substr(dot);
}

std::string read_text(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    int err = errno;
    if (err == ENOENT || err == ENOTDIR) fail(ErrorKind::kNotFound, path, ": job file not found");
    fail(ErrorKind::kIO, path, ": cannot read the job file: ", std::strerror(err));
  }
  if (S_ISDIR(st.st_mode)) fail(ErrorKind::kInvalidArgument, path, ": is a folder, not a job file");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorKind::kIO, path, ": cannot open the job file: ", std::strerror(errno));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) fail(ErrorKind::kIO, path, ": read failed");
  return text;
}

// "a.b[2].c": the key path used in conversion error messages.
std::string child_path(const std::string& parent, const std::string& key) {
  return parent.empty() ? key : parent + "." + key;
}

template <typename T>
std::string iso(const T& value) {
  std::ostringstream os;
  os << value;
  return os.str();
}

// How conversion errors start: "FILE:" followed by the value's LINE:COL, or
// "--set A=B:" (whose positions would point into a made-up document).
struct Origin {
  std::string where;
  bool positions;
};

json to_json(const toml::node& node, const std::string& key_path, const Origin& origin);

json table_to_json(const toml::table& table, const std::string& key_path, const Origin& origin) {
  json out = json::object();
  for (auto&& [key, value] : table) {
    std::string k(key.str());
    out[k] = to_json(value, child_path(key_path, k), origin);
  }
  return out;
}

json to_json(const toml::node& node, const std::string& key_path, const Origin& origin) {
  switch (node.type()) {
    case toml::node_type::table:
      return table_to_json(*node.as_table(), key_path, origin);
    case toml::node_type::array: {
      json out = json::array();
      const toml::array& arr = *node.as_array();
      for (size_t i = 0; i < arr.size(); ++i) {
        out.push_back(to_json(*arr.get(i), cat(key_path, "[", i, "]"), origin));
      }
      return out;
    }
    case toml::node_type::string:
      return json(node.as_string()->get());
    case toml::node_type::integer:
      return json(static_cast<int64_t>(node.as_integer()->get()));
    case toml::node_type::floating_point: {
      double v = node.as_floating_point()->get();
      if (!std::isfinite(v)) {
        const toml::source_position& at = node.source().begin;
        std::string loc = origin.positions && at ? cat(origin.where, at.line, ":", at.column, ": ")
                                                 : origin.where + " ";
        fail(ErrorKind::kInvalidArgument, loc, key_path.empty() ? "value" : key_path, " is ", v,
             ", which JSON cannot hold (use a finite number, or quote it for a string)");
      }
      return json(v);
    }
    case toml::node_type::boolean:
      return json(node.as_boolean()->get());
    case toml::node_type::date:
      return json(iso(node.as_date()->get()));
    case toml::node_type::time:
      return json(iso(node.as_time()->get()));
    case toml::node_type::date_time:
      return json(iso(node.as_date_time()->get()));
    case toml::node_type::none:
      break;
  }
  fail(ErrorKind::kInternal, origin.where, " ", key_path, ": unexpected TOML node type");
}

json parse_toml(const std::string& text, const std::string& path) {
  toml::table table;
  try {
    table = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    const toml::source_position& at = e.source().begin;
    fail(ErrorKind::kCorrupt, path, ":", at.line, ":", at.column, ": ", e.description());
  }
  return table_to_json(table, "", Origin{path + ":", true});
}

// nlohmann's what() reads "[json.exception.parse_error.101] parse error at
// line 2, column 5: syntax error while parsing ..."; keep what follows the
// position, and compute line:col from the byte offset ourselves.
json parse_json(const std::string& text, const std::string& path) {
  json out;
  try {
    out = json::parse(text, nullptr, /*allow_exceptions=*/true, /*ignore_comments=*/true);
  } catch (const json::parse_error& e) {
    size_t pos = std::min<size_t>(e.byte == 0 ? 0 : e.byte - 1, text.size());
    size_t line = 1 + static_cast<size_t>(std::count(text.begin(), text.begin() + pos, '\n'));
    size_t line_start = text.rfind('\n', pos == 0 ? 0 : pos - 1);
    line_start = (line_start == std::string::npos || pos == 0) ? 0 : line_start + 1;
    size_t col = pos - line_start + 1;
    std::string what = e.what();
    std::string desc = what;
    size_t column = what.find("column ");
    size_t colon = column == std::string::npos ? std::string::npos : what.find(": ", column);
    if (colon != std::string::npos) {
      desc = what.substr(colon + 2);
    } else if (size_t bracket = what.find("] "); bracket != std::string::npos) {
      desc = what.substr(bracket + 2);
    }
    fail(ErrorKind::kCorrupt, path, ":", line, ":", col, ": ", desc);
  }
  if (!out.is_object()) {
    fail(ErrorKind::kInvalidArgument, path, ": a job file must hold a JSON object, not ",
         out.is_null() ? "null" : out.type_name());
  }
  return out;
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

const char* json_kind(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "a table";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float: return "a number";
    default: return "a value";
  }
}

// The override's value: a TOML value when the text is one, else the text.
json parse_override_value(const std::string& text, const std::string& key, const std::string& where) {
  if (text.empty() || text.find_first_of("\r\n") != std::string::npos) return json(text);
  toml::table doc;
  try {
    doc = toml::parse("v = " + text);
  } catch (const toml::parse_error&) {
    return json(text);
  }
  if (doc.size() != 1 || !doc.contains("v")) return json(text);
  return to_json(*doc.get("v"), key, Origin{where, false});
}

}  // namespace

nlohmann::json read_job_file(const std::string& path) {
  std::string ext = lower(extension_of(path));
  if (ext != ".toml" && ext != ".json") {
    fail(ErrorKind::kInvalidArgument, path, ": unknown job file extension",
         ext.empty() ? std::string(" (none)") : " \"" + ext + "\"", "; accepted: .toml, .json");
  }
  std::string text = read_text(path);
  return ext == ".toml" ? parse_toml(text, path) : parse_json(text, path);
}

void apply_override(nlohmann::json& job, const std::string& assignment) {
  const std::string where = "--set " + assignment + ":";
  size_t eq = assignment.find('=');
  if (eq == std::string::npos) {
    fail(ErrorKind::kInvalidArgument, where, " expected KEY=VALUE (e.g. train.learning_rate=3e-4)");
  }
  std::string key = trim(assignment.substr(0, eq));
  if (key.empty()) fail(ErrorKind::kInvalidArgument, where, " empty key before '='");
  std::vector<std::string> segments;
  size_t start = 0;
  while (true) {
    size_t dot = key.find('.', start);
    std::string seg = key.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (trim(seg).empty()) {
      fail(ErrorKind::kInvalidArgument, where, " empty key segment in \"", key,
           "\" (segments are separated by single dots)");
    }
    segments.push_back(trim(seg));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  if (job.is_null()) job = json::object();
  if (!job.is_object()) {
    fail(ErrorKind::kInvalidArgument, where, " the job is ", json_kind(job), ", not a table");
  }
  json value = parse_override_value(trim(assignment.substr(eq + 1)), key, where);

  json* node = &job;
  std::string walked;
  for (size_t i = 0; i + 1 < segments.size(); ++i) {
    walked = child_path(walked, segments[i]);
    json& child = (*node)[segments[i]];
    if (child.is_null()) child = json::object();
    if (!child.is_object()) {
      fail(ErrorKind::kInvalidArgument, where, " ", walked, " is ", json_kind(child),
           ", not a table, so it cannot hold ", segments[i + 1]);
    }
    node = &child;
  }
  (*node)[segments.back()] = std::move(value);
}

int edit_distance(const std::string& a, const std::string& b) {
  const size_t n = a.size(), m = b.size();
  std::vector<std::vector<int>> d(n + 1, std::vector<int>(m + 1, 0));
  for (size_t i = 0; i <= n; ++i) d[i][0] = static_cast<int>(i);
  for (size_t j = 0; j <= m; ++j) d[0][j] = static_cast<int>(j);
  for (size_t i = 1; i <= n; ++i) {
    for (size_t j = 1; j <= m; ++j) {
      int cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[n][m];
}

std::string closest_match(const std::string& key, const std::vector<std::string>& candidates) {
  if (key.empty()) return "";
  constexpr size_t kMinPrefix = 3;
  const std::string* best = nullptr;
  int best_distance = 0;
  for (const std::string& c : candidates) {
    if (c.empty()) continue;
    int d = edit_distance(key, c);
    bool close = d <= 2 && d < static_cast<int>(key.size());
    bool prefix = (key.size() >= kMinPrefix && c.compare(0, key.size(), key) == 0) ||
                  (c.size() >= kMinPrefix && key.compare(0, c.size(), c) == 0);
    if (!close && !prefix) continue;
    if (best == nullptr || d < best_distance) {
      best = &c;
      best_distance = d;
    }
  }
  return best ? *best : "";
}

}  // namespace mixpeft::config
