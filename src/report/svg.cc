// Line charts as one self-contained SVG document.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "io/file_util.h"
#include "mixpeft/report.h"
#include "report/internal.h"

namespace mixpeft::report {

namespace detail {

std::string xml_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:
        // XML 1.0 forbids most control characters, even escaped.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r') {
          out += ' ';
        } else {
          out += c;
        }
    }
  }
  return out;
}

}  // namespace detail

namespace {

// Layout of one chart panel, in pixels.
constexpr double kWidth = 520, kHeight = 340;
constexpr double kLeft = 72, kRight = 20, kBottom = 48, kTitleHeight = 28, kLegendRow = 16;
constexpr double kCharWidth = 6.6;  // rough width of an 11px sans-serif character

// Tableau 10: distinguishable, and readable for most colour-blind readers.
const char* const kPalette[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};

// printf's "%.*e" without the exponent's padding: "1e-4", "2.5e6".
std::string scientific(double v, int decimals) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*e", decimals, v);
  std::string s = buf;
  size_t e = s.find('e');
  if (e == std::string::npos) return s;
  std::string mantissa = s.substr(0, e), exponent = s.substr(e + 1);
  bool negative = !exponent.empty() && exponent[0] == '-';
  if (!exponent.empty() && (exponent[0] == '-' || exponent[0] == '+')) exponent.erase(0, 1);
  exponent.erase(0, std::min(exponent.find_first_not_of('0'), exponent.size() - 1));
  return mantissa + "e" + (negative ? "-" : "") + exponent;
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

bool drawable(const Chart& chart, double x, double y) {
  return std::isfinite(x) && std::isfinite(y) && (!chart.log_y || y > 0);
}

// 1, 2, 5 or 10 times a power of ten, near `range` (rounded or at least it).
double nice_number(double range, bool round) {
  double exponent = std::floor(std::log10(range));
  double fraction = range / std::pow(10.0, exponent);
  double nice;
  if (round) {
    nice = fraction < 1.5 ? 1 : fraction < 3 ? 2 : fraction < 7 ? 5 : 10;
  } else {
    nice = fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10;
  }
  return nice * std::pow(10.0, exponent);
}

struct Axis {
  double lo = 0, hi = 1;      // in axis units (log10(y) on a log axis)
  std::vector<double> ticks;  // in axis units
  std::vector<std::string> labels;
};

std::string tick_label(double v, double step) {
  if (std::fabs(v) < step * 1e-9) v = 0;
  char buf[32];
  if (step < 1e-3 && v != 0) return scientific(v, 1);
  int decimals = std::max(0, static_cast<int>(std::ceil(-std::log10(step) - 1e-9)));
  std::snprintf(buf, sizeof buf, "%.*f", std::min(decimals, 6), v);
  return buf;
}

Axis linear_axis(double lo, double hi) {
  if (hi <= lo) {
    double pad = std::max(1.0, std::fabs(lo) * 0.1);
    if (lo == 0 && hi == 0) pad = 1;
    lo -= pad;
    hi += pad;
  }
  Axis axis;
  double step = nice_number(nice_number(hi - lo, false) / 4, true);
  axis.lo = std::floor(lo / step) * step;
  axis.hi = std::ceil(hi / step) * step;
  // Large values get a suffix on every label alike: 0, 5k, 10k, 15k.
  double biggest = std::max(std::fabs(axis.lo), std::fabs(axis.hi));
  double scale = biggest >= 1e7 ? 1e6 : biggest >= 1e4 ? 1e3 : 1;
  const char* suffix = scale == 1e6 ? "M" : scale == 1e3 ? "k" : "";
  for (int i = 0;; ++i) {
    double t = axis.lo + i * step;
    if (t > axis.hi + step * 1e-9 || i > 50) break;
    axis.ticks.push_back(t);
    axis.labels.push_back(tick_label(t / scale, step / scale) + (t == 0 ? "" : suffix));
  }
  return axis;
}

std::string log_label(double value) {
  char buf[32];
  double mag = std::fabs(value);
  if (mag >= 1e4 || mag < 1e-3) {
    return scientific(value, 0);
  } else {
    std::snprintf(buf, sizeof buf, "%g", value);
  }
  return buf;
}

// lo, hi: positive data values. Ticks at powers of ten, plus 2x and 5x when
// the data spans two decades or less.
Axis log_axis(double lo, double hi) {
  Axis axis;
  double a = std::floor(std::log10(lo)), b = std::ceil(std::log10(hi));
  if (b <= a) b = a + 1;
  axis.lo = a;
  axis.hi = b;
  bool minor = b - a <= 2;
  for (double e = a; e <= b + 1e-9; e += 1) {
    for (double m : {1.0, 2.0, 5.0}) {
      if (m != 1 && (!minor || e >= b)) continue;
      double v = m * std::pow(10.0, e);
      axis.ticks.push_back(std::log10(v));
      axis.labels.push_back(log_label(v));
    }
  }
  return axis;
}

struct Legend {
  std::vector<std::pair<double, double>> at;  // (x, y) of each entry, relative to the panel
  double height = 0;
};

std::string series_label(const Series& s, bool empty) {
  std::string name = s.name.empty() ? "(unnamed)" : s.name;
  return empty ? name + " (no data)" : name;
}

Legend layout_legend(const Chart& chart, const std::vector<bool>& empty) {
  Legend legend;
  double x = kLeft, y = kTitleHeight + 4;
  bool row_used = false;
  for (size_t i = 0; i < chart.series.size(); ++i) {
    double w = 22 + kCharWidth * detail::display_width(series_label(chart.series[i], empty[i])) + 14;
    if (row_used && x + w > kWidth - kRight) {
      x = kLeft;
      y += kLegendRow;
    }
    legend.at.emplace_back(x, y);
    x += w;
    row_used = true;
  }
  legend.height = chart.series.empty() ? 0 : (y - kTitleHeight - 4) + kLegendRow + 4;
  return legend;
}

void render_chart(std::string& svg, const Chart& chart, double offset_x) {
  using detail::xml_escape;
  svg += "<g transform=\"translate(" + num(offset_x) + ",0)\">\n";
  svg += "<text x=\"" + num(kWidth / 2) + "\" y=\"20\" text-anchor=\"middle\" font-size=\"14\" "
         "font-weight=\"bold\">" + xml_escape(chart.title) + "</text>\n";

  // Which series have drawable points, and the data ranges.
  std::vector<bool> empty(chart.series.size(), true);
  double x_lo = INFINITY, x_hi = -INFINITY, y_lo = INFINITY, y_hi = -INFINITY;
  for (size_t i = 0; i < chart.series.size(); ++i) {
    for (const auto& [x, y] : chart.series[i].points) {
      if (!drawable(chart, x, y)) continue;
      empty[i] = false;
      x_lo = std::min(x_lo, x);
      x_hi = std::max(x_hi, x);
      y_lo = std::min(y_lo, y);
      y_hi = std::max(y_hi, y);
    }
  }
  bool no_data = !(x_lo <= x_hi);

  Legend legend = layout_legend(chart, empty);
  const double top = kTitleHeight + legend.height + 6;
  const double plot_w = kWidth - kLeft - kRight, plot_h = kHeight - top - kBottom;

  Axis ax = no_data ? linear_axis(0, 1) : linear_axis(x_lo, x_hi);
  Axis ay = no_data ? (chart.log_y ? log_axis(1, 10) : linear_axis(0, 1))
                    : (chart.log_y ? log_axis(y_lo, y_hi) : linear_axis(y_lo, y_hi));
  auto px = [&](double x) { return kLeft + (x - ax.lo) / (ax.hi - ax.lo) * plot_w; };
  auto py = [&](double y) {
    double v = chart.log_y ? std::log10(y) : y;
    return top + plot_h - (v - ay.lo) / (ay.hi - ay.lo) * plot_h;
  };
  auto py_axis = [&](double t) { return top + plot_h - (t - ay.lo) / (ay.hi - ay.lo) * plot_h; };

  // Grid and tick labels.
  svg += "<g stroke=\"#e0e0e0\" stroke-width=\"1\">\n";
  for (double t : ax.ticks) {
    std::string x = num(px(t));
    svg += "<line x1=\"" + x + "\" y1=\"" + num(top) + "\" x2=\"" + x + "\" y2=\"" + num(top + plot_h) + "\"/>\n";
  }
  for (double t : ay.ticks) {
    std::string y = num(py_axis(t));
    svg += "<line x1=\"" + num(kLeft) + "\" y1=\"" + y + "\" x2=\"" + num(kLeft + plot_w) + "\" y2=\"" + y + "\"/>\n";
  }
  svg += "</g>\n<g font-size=\"11\" fill=\"#333\">\n";
  for (size_t i = 0; i < ax.ticks.size(); ++i) {
    svg += "<text x=\"" + num(px(ax.ticks[i])) + "\" y=\"" + num(top + plot_h + 15) +
           "\" text-anchor=\"middle\">" + xml_escape(ax.labels[i]) + "</text>\n";
  }
  for (size_t i = 0; i < ay.ticks.size(); ++i) {
    svg += "<text x=\"" + num(kLeft - 6) + "\" y=\"" + num(py_axis(ay.ticks[i]) + 4) +
           "\" text-anchor=\"end\">" + xml_escape(ay.labels[i]) + "</text>\n";
  }
  svg += "</g>\n";

  // Axes and their labels.
  svg += "<rect x=\"" + num(kLeft) + "\" y=\"" + num(top) + "\" width=\"" + num(plot_w) + "\" height=\"" +
         num(plot_h) + "\" fill=\"none\" stroke=\"#888\" stroke-width=\"1\"/>\n";
  svg += "<text x=\"" + num(kLeft + plot_w / 2) + "\" y=\"" + num(kHeight - 10) +
         "\" text-anchor=\"middle\" font-size=\"12\">" + xml_escape(chart.x_label) + "</text>\n";
  std::string y_label = chart.y_label + (chart.log_y && !chart.y_label.empty() ? " (log)" : "");
  svg += "<text x=\"14\" y=\"" + num(top + plot_h / 2) + "\" text-anchor=\"middle\" font-size=\"12\" " +
         "transform=\"rotate(-90 14 " + num(top + plot_h / 2) + ")\">" + xml_escape(y_label) + "</text>\n";

  if (no_data) {
    svg += "<text x=\"" + num(kLeft + plot_w / 2) + "\" y=\"" + num(top + plot_h / 2) +
           "\" text-anchor=\"middle\" font-size=\"14\" fill=\"#999\">no data</text>\n";
  }

  // Series and legend.
  for (size_t i = 0; i < chart.series.size(); ++i) {
    const Series& s = chart.series[i];
    const char* color = kPalette[i % (sizeof kPalette / sizeof kPalette[0])];
    if (!empty[i]) {
      std::vector<std::pair<double, double>> pts;
      for (const auto& [x, y] : s.points) {
        if (drawable(chart, x, y)) pts.emplace_back(x, y);
      }
      std::stable_sort(pts.begin(), pts.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      svg += "<polyline fill=\"none\" stroke=\"" + std::string(color) +
             "\" stroke-width=\"1.5\" stroke-linejoin=\"round\" points=\"";
      for (size_t k = 0; k < pts.size(); ++k) {
        if (k) svg += ' ';
        svg += num(px(pts[k].first)) + "," + num(py(pts[k].second));
      }
      svg += "\"/>\n";
      if (pts.size() == 1) {
        svg += "<circle cx=\"" + num(px(pts[0].first)) + "\" cy=\"" + num(py(pts[0].second)) + "\" r=\"3\" fill=\"" +
               color + "\"/>\n";
      }
    }
    auto [lx, ly] = legend.at[i];
    svg += "<line x1=\"" + num(lx) + "\" y1=\"" + num(ly + 6) + "\" x2=\"" + num(lx + 16) + "\" y2=\"" + num(ly + 6) +
           "\" stroke=\"" + color + "\" stroke-width=\"2\"" + (empty[i] ? " stroke-dasharray=\"2,2\"" : "") + "/>\n";
    svg += "<text x=\"" + num(lx + 22) + "\" y=\"" + num(ly + 10) + "\" font-size=\"11\">" +
           xml_escape(series_label(s, empty[i])) + "</text>\n";
  }
  svg += "</g>\n";
}

}  // namespace

std::string render_svg(const std::vector<Chart>& charts) {
  size_t panels = std::max<size_t>(charts.size(), 1);
  std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(kWidth * panels) + "\" height=\"" +
                    num(kHeight) + "\" viewBox=\"0 0 " + num(kWidth * panels) + " " + num(kHeight) +
                    "\" font-family=\"sans-serif\">\n";
  svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  if (charts.empty()) {
    svg += "<text x=\"" + num(kWidth / 2) + "\" y=\"" + num(kHeight / 2) +
           "\" text-anchor=\"middle\" font-size=\"14\" fill=\"#999\">no data</text>\n";
  }
  for (size_t i = 0; i < charts.size(); ++i) render_chart(svg, charts[i], kWidth * static_cast<double>(i));
  svg += "</svg>\n";
  return svg;
}

void write_svg(const std::vector<Chart>& charts, const std::string& path) {
  std::string svg = render_svg(charts);
  io::detail::AtomicFile file(path);
  file.write(svg.data(), svg.size());
  file.commit();
}

}  // namespace mixpeft::report
