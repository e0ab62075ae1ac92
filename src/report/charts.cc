// Charts of the trainer's metrics log.
#include <algorithm>

#include <nlohmann/json.hpp>

#include "mixpeft/report.h"

namespace mixpeft::report {
namespace {

bool number(const nlohmann::json& record, const char* key, double& out) {
  auto it = record.find(key);
  if (it == record.end() || !it->is_number()) return false;
  out = it->get<double>();
  return true;
}

bool is_validation(const nlohmann::json& record) {
  auto split = record.find("split");
  return split == record.end() || split->is_null() || (split->is_string() && split->get<std::string>() == "validation");
}

}  // namespace

std::vector<Chart> training_charts(const std::vector<nlohmann::json>& log_records) {
  Chart loss{"loss", "step", "loss", {Series{"train", {}}}, false};
  Series validation_loss{"validation", {}};
  Chart metrics{"validation", "step", "metric", {}, false};

  for (const nlohmann::json& r : log_records) {
    if (!r.is_object()) continue;
    auto event = r.find("event");
    if (event == r.end() || !event->is_string()) continue;
    double step = 0;
    if (!number(r, "step", step)) continue;
    if (*event == "train") {
      double l = 0;
      if (number(r, "loss", l)) loss.series[0].points.emplace_back(step, l);
    } else if (*event == "eval" && is_validation(r)) {
      auto m = r.find("metrics");
      if (m == r.end() || !m->is_object()) continue;
      for (auto it = m->begin(); it != m->end(); ++it) {
        if (!it->is_number()) continue;
        double v = it->get<double>();
        if (it.key() == "loss") {
          validation_loss.points.emplace_back(step, v);
          continue;
        }
        auto s = std::find_if(metrics.series.begin(), metrics.series.end(),
                              [&](const Series& x) { return x.name == it.key(); });
        if (s == metrics.series.end()) {
          metrics.series.push_back(Series{it.key(), {}});
          s = metrics.series.end() - 1;
        }
        s->points.emplace_back(step, v);
      }
    }
  }
  if (!validation_loss.points.empty()) loss.series.push_back(std::move(validation_loss));
  return {std::move(loss), std::move(metrics)};
}

}  // namespace mixpeft::report
