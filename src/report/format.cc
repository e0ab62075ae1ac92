// Durations, counts and text tables.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "mixpeft/report.h"
#include "report/internal.h"

namespace mixpeft::report {

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  char buf[64];
  double whole = std::round(seconds);
  if (whole < 60) {
    std::snprintf(buf, sizeof buf, "%.0fs", whole);
  } else if (whole < 3600) {
    long long s = static_cast<long long>(whole);
    std::snprintf(buf, sizeof buf, "%lldm%02llds", s / 60, s % 60);
  } else {
    double minutes = std::round(seconds / 60);
    if (minutes > 1e15) return "?";
    long long m = static_cast<long long>(minutes);
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", m / 60, m % 60);
  }
  return buf;
}

namespace {

// `v` (0 <= v < 1000 after rounding is checked by the caller) to three
// significant digits.
std::string three_digits(double v) {
  char buf[32];
  int decimals = v >= 99.95 ? 0 : v >= 9.995 ? 1 : 2;
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

}  // namespace

std::string format_count(double n) {
  if (std::isnan(n)) return "nan";
  if (std::isinf(n)) return n < 0 ? "-inf" : "inf";
  if (n < 0) return "-" + format_count(-n);
  if (n < 999.5 && n == std::floor(n)) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.0f", n);
    return buf;
  }
  if (n < 999.5) {
    if (n < 0.01) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.2g", n);
      return buf;
    }
    return three_digits(n);
  }
  static const char* kSuffixes[] = {"k", "M", "G", "T"};
  double scaled = n;
  for (int i = 0; i < 4; ++i) {
    scaled /= 1000;
    // 999.96k rounds to "1000k": move on to "1.00M".
    if (scaled < 999.5 || i == 3) return three_digits(scaled) + kSuffixes[i];
  }
  return "?";
}

namespace detail {

size_t display_width(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) {
    if ((c & 0xC0) != 0x80) ++n;  // count everything but UTF-8 continuation bytes
  }
  return n;
}

bool looks_numeric(const std::string& s) {
  if (s.empty()) return false;
  std::string t = s;
  // "12.5 ± 0.3": both halves; "1.2 MB", "12%": the number before the unit.
  const size_t pm = t.find(" \u00b1 ");
  if (pm != std::string::npos) return looks_numeric(t.substr(0, pm)) && looks_numeric(t.substr(pm + 4));
  for (const char* unit : {" MB", " kB", " B"}) {
    const size_t n = std::strlen(unit);
    if (t.size() > n && t.compare(t.size() - n, n, unit) == 0) t.resize(t.size() - n);
  }
  if (t.back() == '%') t.pop_back();
  if (t.empty() || std::isspace(static_cast<unsigned char>(t.front()))) return false;
  char* end = nullptr;
  std::strtod(t.c_str(), &end);
  return end != t.c_str() && *end == '\0';
}

}  // namespace detail

std::string format_table(const std::vector<std::string>& header,
                         const std::vector<std::vector<std::string>>& rows) {
  size_t columns = header.size();
  for (const auto& row : rows) columns = std::max(columns, row.size());
  if (columns == 0) return "";
  auto cell = [](const std::vector<std::string>& row, size_t c) -> const std::string& {
    static const std::string kEmpty;
    return c < row.size() ? row[c] : kEmpty;
  };
  std::vector<size_t> width(columns, 0);
  std::vector<bool> numeric(columns, false);
  for (size_t c = 0; c < columns; ++c) {
    width[c] = detail::display_width(cell(header, c));
    bool any = false, all = true;
    for (const auto& row : rows) {
      const std::string& v = cell(row, c);
      width[c] = std::max(width[c], detail::display_width(v));
      if (v.empty()) continue;
      any = true;
      all = all && detail::looks_numeric(v);
    }
    numeric[c] = any && all;
  }
  std::string out;
  auto emit = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t c = 0; c < columns; ++c) {
      const std::string& v = cell(row, c);
      std::string pad(width[c] - detail::display_width(v), ' ');
      if (c) line += "  ";
      line += numeric[c] ? pad + v : v + pad;
    }
    line.erase(line.find_last_not_of(' ') + 1);
    out += line + "\n";
  };
  emit(header);
  std::string rule;
  for (size_t c = 0; c < columns; ++c) {
    if (c) rule += "  ";
    rule += std::string(std::max<size_t>(width[c], 1), '-');
  }
  out += rule + "\n";
  for (const auto& row : rows) emit(row);
  return out;
}

}  // namespace mixpeft::report
