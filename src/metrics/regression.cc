// Pearson and Spearman (as SciPy), perplexity.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "mixpeft/error.h"
#include "mixpeft/metrics.h"

namespace mixpeft::metrics {

namespace {

void check_inputs(const char* metric, size_t nx, size_t ny) {
  MIXPEFT_CHECK(nx == ny, ErrorKind::kInvalidArgument, metric, ": ", nx, " values against ", ny,
                " (the two inputs must have the same length)");
  MIXPEFT_CHECK(nx >= 2, ErrorKind::kInvalidArgument, metric, ": needs at least 2 values, got ", nx);
}

bool constant(const std::vector<double>& v) {
  for (double x : v) {
    if (!(x == v[0])) return false;
  }
  return true;
}

// scipy.stats.pearsonr: centre, scale by the largest magnitude, normalise,
// dot, clip to [-1, 1].
double pearson_unchecked(const std::vector<double>& x, const std::vector<double>& y) {
  if (constant(x) || constant(y)) return std::numeric_limits<double>::quiet_NaN();
  const size_t n = x.size();
  auto centred = [n](const std::vector<double>& v) {
    double mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(n);
    std::vector<double> c(n);
    double max_abs = 0.0;
    for (size_t i = 0; i < n; ++i) {
      c[i] = v[i] - mean;
      max_abs = std::max(max_abs, std::fabs(c[i]));
    }
    if (max_abs > 0) {
      for (double& d : c) d /= max_abs;
    }
    double norm = 0.0;
    for (double d : c) norm += d * d;
    norm = std::sqrt(norm);
    for (double& d : c) d /= norm;
    return c;
  };
  std::vector<double> cx = centred(x), cy = centred(y);
  double r = 0.0;
  for (size_t i = 0; i < n; ++i) r += cx[i] * cy[i];
  return std::max(-1.0, std::min(1.0, r));
}

}  // namespace

double pearson(const std::vector<double>& x, const std::vector<double>& y) {
  check_inputs("pearson", x.size(), y.size());
  return pearson_unchecked(x, y);
}

std::vector<double> average_ranks(const std::vector<double>& x) {
  for (size_t i = 0; i < x.size(); ++i) {
    MIXPEFT_CHECK(!std::isnan(x[i]), ErrorKind::kInvalidArgument, "average_ranks: value ", i, " is NaN");
  }
  std::vector<size_t> order(x.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return x[a] < x[b]; });
  std::vector<double> ranks(x.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i + 1;
    while (j < order.size() && x[order[j]] == x[order[i]]) ++j;
    // positions i..j-1 share the mean of the ranks i+1..j
    double rank = 0.5 * static_cast<double>(i + 1 + j);
    for (size_t k = i; k < j; ++k) ranks[order[k]] = rank;
    i = j;
  }
  return ranks;
}

double spearman(const std::vector<double>& x, const std::vector<double>& y) {
  check_inputs("spearman", x.size(), y.size());
  auto has_nan = [](const std::vector<double>& v) {
    return std::any_of(v.begin(), v.end(), [](double d) { return std::isnan(d); });
  };
  if (has_nan(x) || has_nan(y)) return std::numeric_limits<double>::quiet_NaN();  // scipy: propagate
  return pearson_unchecked(average_ranks(x), average_ranks(y));
}

double perplexity(double nll_sum, double token_count) {
  MIXPEFT_CHECK(token_count > 0, ErrorKind::kInvalidArgument, "perplexity: token_count is ", token_count,
                " (needs at least one predicted token)");
  MIXPEFT_CHECK(nll_sum >= 0, ErrorKind::kInvalidArgument, "perplexity: nll_sum is ", nll_sum,
                " (a summed negative log-likelihood is >= 0)");
  return std::exp(nll_sum / token_count);
}

}  // namespace mixpeft::metrics
