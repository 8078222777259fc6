// Scale searches of lowbit quantize (scales.h).
//
// Weights, kMse: the error of one channel at scale s,
//   E(s) = sum_i (|w_i| - s * min(rne(|w_i| / s), qmax))^2,
// depends only on |w| (the grid and rne are symmetric) and is continuous and
// piecewise quadratic in s: between two breakpoints s = |w_i| / (j + 0.5) the
// codes are fixed and E(s) = C - 2 s B + s^2 A with A = sum q^2, B = sum |w| q,
// C = sum w^2. The search is
//   1. a geometric grid of clip ratios r (s = r * max|w| / qmax), evaluated
//      from prefix sums over the sorted |w| (few levels) or directly;
//   2. an exact sweep of the breakpoints between the best grid point's
//      neighbours (events sorted by bucket), taking each piece's minimum
//      B / A: within a window this is the true optimum, not a sample of it.
//      When that window holds too many breakpoints (many levels, large
//      channels), a golden-section search in it first, then a narrower
//      window around its optimum;
//   3. further windows over the grid intervals of least error while a
//      per-channel budget of breakpoints lasts (small channels at many bits
//      have narrow minima far from the grid's best point);
//   4. least-squares rescales s = sum |w| q / sum q^2 for the codes of the best
//      s (each is kept only when the re-rounded error is lower);
//   5. the min/max scale as a candidate, so kMse never loses to kMinMax.
// Every returned error is recomputed with the exact codes (float32 w / s,
// rne, clamp) and double accumulators.
//
// Activations, kMse: the histogram's bins are integrated as uniform densities
// through prefix sums of their moments, so one evaluation costs O(levels).
#include "quantize/scales.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <utility>

namespace lowbit::engine::quantize {
namespace {

// rne for |x| < 2^22 in the default rounding mode (what std::nearbyint
// does, written so that the loops vectorize; needs IEEE float arithmetic,
// i.e. no -ffast-math).
constexpr float kRoundMagic = 12582912.0f;  // 1.5 * 2^23
inline float RoundHalfEven(float x) { return (x + kRoundMagic) - kRoundMagic; }

// Search parameters of the weight MSE (see the comment at the top).
struct WeightSearchParams {
  double ratio_min;  // smallest clip ratio of the grid
  int grid_points;
};
WeightSearchParams SearchParams(int qmax) {
  if (qmax <= 7) return {0.005, 96};
  return {0.02, 48};
}
constexpr double kRatioMax = 1.5;
constexpr int kGoldenIterations = 16;
// Work of the exact sweeps per channel (breakpoints plus passes over the
// channel, see SweepCost): kEventsPerWeight per weight, at least kMinEvents.
constexpr int64_t kMinEvents = 2048;
constexpr int64_t kEventsPerWeight = 1;
constexpr int kLeastSquaresIterations = 6;

// The code of w at scale s on a signed grid (bits >= 2): clamp(rne(w / s)).
inline float WeightCode(float w, float s, float qmax) {
  const float x = std::clamp(w / s, -qmax - 1, qmax + 1);
  return std::clamp(RoundHalfEven(x), -qmax, qmax);
}

// Sorts non-negative floats ascending: their bit patterns order as unsigned
// integers, so three 11-bit counting passes (LSD radix) sort them.
void SortMagnitudes(std::vector<float>& a, std::vector<float>& scratch) {
  const size_t n = a.size();
  if (n < 256) {
    std::sort(a.begin(), a.end());
    return;
  }
  scratch.resize(n);
  std::vector<uint32_t> count(2048);
  float* from = a.data();
  float* to = scratch.data();
  for (int shift = 0; shift < 32; shift += 11) {
    std::fill(count.begin(), count.end(), 0);
    auto digit = [&](float x) {
      uint32_t bits;
      std::memcpy(&bits, &x, sizeof bits);
      return (bits >> shift) & 2047u;
    };
    for (size_t i = 0; i < n; ++i) ++count[digit(from[i])];
    uint32_t sum = 0;
    for (uint32_t& c : count) {
      const uint32_t here = c;
      c = sum;
      sum += here;
    }
    for (size_t i = 0; i < n; ++i) to[count[digit(from[i])]++] = from[i];
    std::swap(from, to);
  }
  // Three passes: the sorted values are in `scratch`.
  a.swap(scratch);
}

// The first index in [from, n) of sorted `a` whose value is >= bound
// (branchless binary search).
int64_t LowerBound(const float* a, int64_t from, int64_t n, double bound) {
  if (from >= n) return n;
  const float* base = a + from;
  for (int64_t len = n - from; len > 1;) {
    const int64_t half = len / 2;
    base = static_cast<double>(base[half]) < bound ? base + half : base;
    len -= half;
  }
  return (base - a) + (static_cast<double>(*base) < bound ? 1 : 0);
}

// One channel's MSE search over its magnitudes a_ (sorted when the levels
// are few enough for prefix sums to pay off; max > 0). Holds scratch buffers
// reused across channels.
class ChannelSearch {
 public:
  float Search(const float* w, int64_t n, int qmax);

  // Error of the exact codes at s over a_, and the least-squares sums.
  struct Exact {
    double error = 0, wq = 0, qq = 0;
  };
  Exact ExactAt(float s) const;

 private:
  double Approx(double s) const;
  double ApproxPrefix(double s) const;
  // Approx at every scale of the ascending `s`.
  void GridErrors(const std::vector<double>& s, std::vector<double>& e);
  double ApproxDirect(double s) const;
  // Minimum of E over [sa, sb] by the breakpoint sweep: {error, s}.
  std::pair<double, double> Sweep(double sa, double sb);
  void BuildEvents(double sa, double sb, double* A, double* B);
  // Work of one sweep: its events, plus one pass over the channel unsorted.
  double SweepCost(double sa, double sb) const {
    return p1_[n_] * (1 / sa - 1 / sb) + (use_prefix_ ? qmax_ * 16 : static_cast<double>(n_));
  }

  int64_t n_ = 0;
  int qmax_ = 1;
  bool use_prefix_ = false;
  std::vector<float> a_;         // sorted |w|
  std::vector<double> p1_, p2_;  // p1_[i] = sum a[0..i), p2_[i] = sum a^2
  struct Event {
    double t;  // the breakpoint s = a / (j + 0.5)
    float a;   // below t, a's code goes from j to j + 1
    int j;
  };
  std::vector<Event> events_, sorted_;
  std::vector<int32_t> bucket_, keys_;
  std::vector<int64_t> bounds_;
  std::vector<float> radix_;
};

// Eight lanes of double accumulators (the loop vectorizes).
ChannelSearch::Exact ChannelSearch::ExactAt(float s) const {
  constexpr int kLanes = 8;
  double error[kLanes] = {}, wq[kLanes] = {}, qq[kLanes] = {};
  const float qmax = static_cast<float>(qmax_);
  const float* a = a_.data();
  auto add = [&](int lane, float x) {
    const float q = std::min(RoundHalfEven(std::min(x / s, qmax + 1)), qmax);
    const double d = static_cast<double>(x) - static_cast<double>(q * s);
    error[lane] += d * d;
    wq[lane] += static_cast<double>(x) * q;
    qq[lane] += static_cast<double>(q) * q;
  };
  int64_t i = 0;
  for (; i + kLanes <= n_; i += kLanes)
    for (int l = 0; l < kLanes; ++l) add(l, a[i + l]);
  for (; i < n_; ++i) add(0, a[i]);
  Exact r;
  for (int l = 0; l < kLanes; ++l) r.error += error[l], r.wq += wq[l], r.qq += qq[l];
  return r;
}

double ChannelSearch::Approx(double s) const {
  return use_prefix_ ? ApproxPrefix(s) : ApproxDirect(s);
}

// Bins of code j are [(j - 0.5) s, (j + 0.5) s), the last one open above;
// each contributes sum (a - j s)^2 = S2 - 2 j s S1 + j^2 s^2 count.
double ChannelSearch::ApproxPrefix(double s) const {
  double error = 0;
  int64_t prev = 0;
  const float* a = a_.data();
  for (int j = 0; j <= qmax_ && prev < n_; ++j) {
    int64_t idx = n_;
    if (j < qmax_) {
      const double bound = (j + 0.5) * s;
      idx = LowerBound(a, prev, n_, bound);
    }
    if (idx > prev) {
      const double js = j * s;
      error += (p2_[idx] - p2_[prev]) - 2 * js * (p1_[idx] - p1_[prev]) +
               js * js * static_cast<double>(idx - prev);
    }
    prev = idx;
  }
  return std::max(error, 0.0);
}

// Sorted: the boundary (j + 0.5) s of code j rises with s, so one walk over
// a_ per code places it for every grid scale, O(qmax (n + grid)).
void ChannelSearch::GridErrors(const std::vector<double>& s, std::vector<double>& e) {
  const int64_t count = static_cast<int64_t>(s.size());
  e.resize(count);
  if (!use_prefix_) {
    for (int64_t g = 0; g < count; ++g) e[g] = ApproxDirect(s[g]);
    return;
  }
  bounds_.resize(qmax_ * count);
  const float* a = a_.data();
  for (int j = 0; j < qmax_; ++j) {
    int64_t i = j > 0 ? bounds_[(j - 1) * count] : 0;
    for (int64_t g = 0; g < count; ++g) {
      const double bound = (j + 0.5) * s[g];
      while (i < n_ && static_cast<double>(a[i]) < bound) ++i;
      bounds_[j * count + g] = i;
    }
  }
  for (int64_t g = 0; g < count; ++g) {
    double error = 0;
    int64_t prev = 0;
    for (int j = 0; j <= qmax_ && prev < n_; ++j) {
      const int64_t idx = j < qmax_ ? bounds_[j * count + g] : n_;
      if (idx > prev) {
        const double js = j * s[g];
        error += (p2_[idx] - p2_[prev]) - 2 * js * (p1_[idx] - p1_[prev]) +
                 js * js * static_cast<double>(idx - prev);
      }
      prev = idx;
    }
    e[g] = std::max(error, 0.0);
  }
}

// Float arithmetic in eight lanes (vectorizes), summed in double per block.
double ChannelSearch::ApproxDirect(double s_in) const {
  const float s = static_cast<float>(s_in), inv = 1.0f / s, qmax = static_cast<float>(qmax_);
  constexpr int kLanes = 8, kBlock = 512;
  auto error = [&](float x) {
    const float q = std::min(RoundHalfEven(std::min(x * inv, qmax + 1)), qmax);
    const float d = x - q * s;
    return d * d;
  };
  const float* a = a_.data();
  double total = 0;
  for (int64_t i = 0; i < n_; i += kBlock) {
    const int64_t end = std::min<int64_t>(i + kBlock, n_);
    const int64_t vector_end = i + (end - i) / kLanes * kLanes;
    float acc[kLanes] = {};
    for (int64_t j = i; j < vector_end; j += kLanes)
      for (int l = 0; l < kLanes; ++l) acc[l] += error(a[j + l]);
    for (int64_t j = vector_end; j < end; ++j) acc[0] += error(a[j]);
    for (float v : acc) total += v;
  }
  return total;
}

// The state (A, B) at s = sb and the breakpoints in [sa, sb): element a
// with (j + 0.5) sa <= a < (j + 0.5) sb moves from code j to j + 1 when s
// falls below a / (j + 0.5).
void ChannelSearch::BuildEvents(double sa, double sb, double* A, double* B) {
  events_.clear();
  *A = 0, *B = 0;
  const float* a = a_.data();
  if (use_prefix_) {
    // Sorted: bins and event ranges by binary search, O(qmax log n + events).
    auto lower = [&](int64_t from, double bound) { return LowerBound(a, from, n_, bound); };
    int64_t bin_start = 0;
    for (int j = 0; j <= qmax_; ++j) {
      const int64_t bin_end = j < qmax_ ? lower(bin_start, (j + 0.5) * sb) : n_;
      *A += static_cast<double>(j) * j * static_cast<double>(bin_end - bin_start);
      *B += j * (p1_[bin_end] - p1_[bin_start]);
      if (j < qmax_) {
        const double inv = 1 / (j + 0.5);
        for (int64_t i = lower(0, (j + 0.5) * sa); i < bin_end; ++i)
          events_.push_back({a[i] * inv, a[i], j});
      }
      bin_start = bin_end;
    }
    return;
  }
  // Unsorted: one pass; c0 = ceil(x / sb - 0.5) is the code at sb, and the
  // boundaries j = c0 .. floor(x / sa - 0.5) lie in the window.
  const double inv_sa = 1 / sa, inv_sb = 1 / sb, top = qmax_;
  double a_sum[2] = {0, 0}, b_sum[2] = {0, 0};
  for (int64_t i = 0; i < n_; ++i) {
    const double x = a[i];
    const double u = std::clamp(x * inv_sb - 0.5, 0.0, top);
    const int trunc = static_cast<int>(u);
    const int c0 = trunc + (trunc < u ? 1 : 0);
    a_sum[i & 1] += static_cast<double>(c0) * c0;
    b_sum[i & 1] += c0 * x;
    if (c0 >= qmax_) continue;
    const double v = x * inv_sa - 0.5;
    const int jhi = v < 0 ? -1 : std::min(static_cast<int>(v), qmax_ - 1);
    for (int j = c0; j <= jhi; ++j) events_.push_back({x / (j + 0.5), a[i], j});
  }
  *A = a_sum[0] + a_sum[1];
  *B = b_sum[0] + b_sum[1];
}

std::pair<double, double> ChannelSearch::Sweep(double sa, double sb) {
  double A, B;
  BuildEvents(sa, sb, &A, &B);
  // Bucket sort by descending t, then insertion sort within each bucket.
  const int64_t m = static_cast<int64_t>(events_.size());
  if (m > 0) {
    bucket_.assign(m + 1, 0);
    const double scale = static_cast<double>(m) / (sb - sa);
    auto key = [&](double t) {
      return static_cast<int64_t>(std::clamp((sb - t) * scale, 0.0, static_cast<double>(m - 1)));
    };
    keys_.resize(m);
    for (int64_t i = 0; i < m; ++i) ++bucket_[(keys_[i] = key(events_[i].t)) + 1];
    for (int64_t b = 0; b < m; ++b) bucket_[b + 1] += bucket_[b];
    sorted_.resize(m);
    for (int64_t i = 0; i < m; ++i) sorted_[bucket_[keys_[i]]++] = events_[i];
    // bucket_[b] is now the end of bucket b.
    int64_t start = 0;
    for (int64_t b = 0; b < m; ++b) {
      const int64_t end = bucket_[b];
      for (int64_t i = start + 1; i < end; ++i) {
        const Event e = sorted_[i];
        int64_t k = i;
        for (; k > start && sorted_[k - 1].t < e.t; --k) sorted_[k] = sorted_[k - 1];
        sorted_[k] = e;
      }
      start = end;
    }
  }
  // Each piece between breakpoints: E = C - 2 s B + s^2 A, least at B / A.
  const double C = p2_[n_];
  double best_error = std::numeric_limits<double>::infinity(), best_s = sb;
  auto piece = [&](double lo, double hi) {
    const double s = A > 0 ? std::clamp(B / A, lo, hi) : hi;
    const double e = C - 2 * s * B + s * s * A;
    if (e < best_error) best_error = e, best_s = s;
  };
  double hi = sb;
  for (int64_t i = 0; i < m; ++i) {
    const Event& e = sorted_[i];
    const double t = std::clamp(e.t, sa, hi);
    piece(t, hi);
    A += 2.0 * e.j + 1;
    B += e.a;
    hi = t;
  }
  piece(sa, hi);
  return {std::max(best_error, 0.0), best_s};
}

float ChannelSearch::Search(const float* w, int64_t n, int qmax) {
  n_ = n;
  qmax_ = qmax;
  a_.resize(n);
  for (int64_t i = 0; i < n; ++i) a_[i] = std::fabs(w[i]);
  // Prefix sums over sorted magnitudes pay off when the levels are few.
  const double log_n = std::log2(static_cast<double>(n) + 1);
  use_prefix_ = static_cast<double>(qmax) * (log_n + 1) * 4 < static_cast<double>(n);
  if (use_prefix_) SortMagnitudes(a_, radix_);
  p1_.assign(n + 1, 0);
  p2_.assign(n + 1, 0);
  double amax = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double x = a_[i];
    p1_[i + 1] = p1_[i] + x;
    p2_[i + 1] = p2_[i] + x * x;
    amax = std::max(amax, x);
  }

  // 1. Geometric grid of clip ratios up to kRatioMax (2 for ternary, where
  //    s = 2 max|w| zeroes every code): above 1 the top codes go unused,
  //    which small channels at many bits can still prefer.
  const WeightSearchParams params = SearchParams(qmax);
  const int g_count = params.grid_points;
  const double r_max = qmax == 1 ? 2.0 : kRatioMax;
  const double step = std::pow(r_max / params.ratio_min, 1.0 / (g_count - 1));
  std::vector<double> grid_s(g_count), grid_e(g_count);
  int g_best = 0;
  for (int g = 0; g < g_count; ++g)
    grid_s[g] = g == 0 ? params.ratio_min * amax / qmax : grid_s[g - 1] * step;
  GridErrors(grid_s, grid_e);
  for (int g = 0; g < g_count; ++g)
    if (grid_e[g] < grid_e[g_best]) g_best = g;

  // 2, 3. Exact sweeps. A window [sa, sb] holds about
  //    sum|w| * (1 / sa - 1 / sb) breakpoints (SweepCost). First the bracket
  //    between the best grid point's neighbours: whole when it fits the
  //    budget, otherwise a narrower window around the optimum of a golden-
  //    section search in it. Then the other grid intervals, lowest error
  //    first, while the budget lasts.
  double budget = static_cast<double>(std::max(kMinEvents, kEventsPerWeight * n));
  double best_s = grid_s[g_best], best_e = grid_e[g_best];
  auto sweep = [&](double sa, double sb) {
    const auto [e, s] = Sweep(sa, sb);
    budget -= SweepCost(sa, sb);
    if (e < best_e) best_e = e, best_s = s;
  };
  const int g_lo = std::max(g_best - 1, 0), g_hi = std::min(g_best + 1, g_count - 1);
  const bool bracket_whole = SweepCost(grid_s[g_lo], grid_s[g_hi]) <= budget;
  if (bracket_whole) {
    sweep(grid_s[g_lo], grid_s[g_hi]);
  } else {
    double lo = grid_s[g_lo], hi = grid_s[g_hi];
    double s_local = grid_s[g_best], e_local = grid_e[g_best];
    constexpr double kInvPhi = 0.6180339887498949;
    double x1 = hi - kInvPhi * (hi - lo), x2 = lo + kInvPhi * (hi - lo);
    double f1 = Approx(x1), f2 = Approx(x2);
    for (int it = 0; it < kGoldenIterations; ++it) {
      if (f1 < f2) {
        hi = x2, x2 = x1, f2 = f1;
        x1 = hi - kInvPhi * (hi - lo), f1 = Approx(x1);
      } else {
        lo = x1, x1 = x2, f1 = f2;
        x2 = lo + kInvPhi * (hi - lo), f2 = Approx(x2);
      }
    }
    if (f1 < e_local) s_local = x1, e_local = f1;
    if (f2 < e_local) s_local = x2, e_local = f2;
    if (e_local < best_e) best_e = e_local, best_s = s_local;
    double half = step;  // the window [s / half, s * half]
    const double cost = SweepCost(s_local / half, s_local * half);
    if (cost > budget) half = 1 + (half - 1) * budget / cost;
    sweep(s_local / half, s_local * half);
  }
  std::vector<int> intervals;
  for (int g = 0; g + 1 < g_count; ++g)
    if (!bracket_whole || g < g_lo || g >= g_hi) intervals.push_back(g);
  auto priority = [&](int g) { return std::min(grid_e[g], grid_e[g + 1]); };
  std::sort(intervals.begin(), intervals.end(),
            [&](int x, int y) { return priority(x) < priority(y); });
  for (int g : intervals) {
    if (SweepCost(grid_s[g], grid_s[g + 1]) > budget) break;
    sweep(grid_s[g], grid_s[g + 1]);
  }

  // 4. Least-squares rescales of the exact codes, 5. the min/max scale.
  float s = static_cast<float>(best_s);
  Exact exact = ExactAt(s);
  for (int it = 0; it < kLeastSquaresIterations && exact.qq > 0; ++it) {
    const float s_ls = static_cast<float>(exact.wq / exact.qq);
    if (!(s_ls > 0) || s_ls == s) break;
    const Exact next = ExactAt(s_ls);
    if (!(next.error < exact.error)) break;
    s = s_ls;
    exact = next;
  }
  const float s_minmax = static_cast<float>(amax) / static_cast<float>(qmax);
  if (ExactAt(s_minmax).error < exact.error) s = s_minmax;
  return s;
}

// numpy's default ("linear") quantile of sorted values.
double SortedQuantile(const std::vector<float>& sorted, double percent) {
  const double h = (static_cast<double>(sorted.size()) - 1) * percent / 100;
  const int64_t i = std::clamp<int64_t>(static_cast<int64_t>(std::floor(h)), 0,
                                        static_cast<int64_t>(sorted.size()) - 1);
  const int64_t j = std::min<int64_t>(i + 1, static_cast<int64_t>(sorted.size()) - 1);
  return sorted[i] + (h - static_cast<double>(i)) * (sorted[j] - sorted[i]);
}

// Writes the codes of row `w` at scale s and returns sum (w - q * s)^2.
double QuantizeRow(const float* w, int64_t k, float s, int bits, int8_t* codes) {
  double error = 0;
  const float qmax = static_cast<float>(WeightCodeMax(bits));
  for (int64_t i = 0; i < k; ++i) {
    const float q = bits == 1 ? (w[i] >= 0 ? 1.0f : -1.0f) : WeightCode(w[i], s, qmax);
    codes[i] = static_cast<int8_t>(q);
    const double d = static_cast<double>(w[i]) - static_cast<double>(q * s);
    error += d * d;
  }
  return error;
}

Status CheckWeights(const float* weights, int64_t cout, int64_t k) {
  if (cout < 1 || k < 1)
    return InvalidArgument("weights of " + std::to_string(cout) + " x " + std::to_string(k) +
                           ": every dimension must be at least 1");
  if (weights == nullptr) return InvalidArgument("weights are null");
  for (int64_t i = 0; i < cout * k; ++i)
    if (!std::isfinite(weights[i]))
      return InvalidArgument("weight " + std::to_string(i) + " is not finite");
  return Status::Ok();
}

Status CheckBits(int bits, const char* what) {
  if (bits < 1 || bits > 8)
    return InvalidArgument(std::string(what) + " " + std::to_string(bits) + " is outside 1..8");
  return Status::Ok();
}

void FinishErrors(WeightGrid& grid, double sum_w2) {
  grid.relative_error = sum_w2 > 0 ? grid.squared_error / sum_w2 : 0;
}

}  // namespace

int WeightCodeMin(int bits) { return bits == 1 ? -1 : -WeightCodeMax(bits); }
int WeightCodeMax(int bits) {
  if (bits < 1 || bits > 8) return 0;
  return bits == 1 ? 1 : (1 << (bits - 1)) - 1;
}

StatusOr<WeightGrid> QuantizeWeights(const float* weights, int64_t cout, int64_t k, int bits,
                                     RangeMethod method, double percentile) {
  LOWBIT_RETURN_IF_ERROR(CheckBits(bits, "weight bits"));
  if (method == RangeMethod::kPercentile && !(percentile > 0 && percentile <= 100))
    return InvalidArgument("percentile " + std::to_string(percentile) + " is outside (0, 100]");
  LOWBIT_RETURN_IF_ERROR(CheckWeights(weights, cout, k));

  WeightGrid grid;
  grid.bits = bits;
  grid.scale.assign(cout, 1.0f);
  grid.codes.assign(cout * k, 0);
  const int qmax = WeightCodeMax(bits);
  ChannelSearch search;
  std::vector<float> sorted;
  double sum_w2 = 0;
  for (int64_t c = 0; c < cout; ++c) {
    const float* w = weights + c * k;
    double sum_abs = 0;
    float amax = 0;
    for (int64_t i = 0; i < k; ++i) {
      sum_abs += std::fabs(w[i]);
      sum_w2 += static_cast<double>(w[i]) * w[i];
      amax = std::max(amax, std::fabs(w[i]));
    }
    float s = 1;
    if (amax > 0) {
      if (bits == 1) {
        s = static_cast<float>(sum_abs / static_cast<double>(k));
      } else if (method == RangeMethod::kMinMax) {
        s = amax / static_cast<float>(qmax);
      } else if (method == RangeMethod::kPercentile) {
        sorted.resize(k);
        for (int64_t i = 0; i < k; ++i) sorted[i] = std::fabs(w[i]);
        std::sort(sorted.begin(), sorted.end());
        s = static_cast<float>(SortedQuantile(sorted, percentile)) / static_cast<float>(qmax);
        // A quantile of 0 (mostly zeros) leaves no grid: keep nothing clipped.
        if (!(s > 0)) s = amax / static_cast<float>(qmax);
      } else {
        s = search.Search(w, k, qmax);
      }
      if (!(s > 0) || !std::isfinite(s)) s = amax / static_cast<float>(qmax);
      if (!(s > 0)) s = 1;
    }
    grid.scale[c] = s;
    grid.squared_error += QuantizeRow(w, k, s, bits, grid.codes.data() + c * k);
  }
  FinishErrors(grid, sum_w2);
  return grid;
}

StatusOr<ResidualWeightGrid> QuantizeWeightsResidual(const float* weights, int64_t cout, int64_t k,
                                                     int bits1, int bits2) {
  LOWBIT_RETURN_IF_ERROR(CheckBits(bits1, "first weight bits"));
  LOWBIT_RETURN_IF_ERROR(CheckBits(bits2, "residual weight bits"));
  LOWBIT_ASSIGN_OR_RETURN(WeightGrid first,
                          QuantizeWeights(weights, cout, k, bits1, RangeMethod::kMse));
  ResidualWeightGrid pair;
  pair.second.bits = bits2;
  pair.second.scale.assign(cout, 1.0f);
  pair.second.codes.assign(cout * k, 0);
  pair.multiplier.assign(cout, 1);
  first.squared_error = 0;
  const int max_multiplier = 1 << (bits2 + 1);
  std::vector<int8_t> q1_mse(k), q1_moved(k), q2(k);
  std::vector<float> residual(k);
  double sum_w2 = 0, sum_r2 = 0;
  for (int64_t c = 0; c < cout; ++c) {
    const float* w = weights + c * k;
    for (int64_t i = 0; i < k; ++i) sum_w2 += static_cast<double>(w[i]) * w[i];
    const float s1_mse = first.scale[c];
    QuantizeRow(w, k, s1_mse, bits1, q1_mse.data());
    double best = std::numeric_limits<double>::infinity();
    float best_s1 = s1_mse, best_s2 = s1_mse;
    int best_m = 1;
    for (int m = 1; m <= max_multiplier; ++m) {
      // s2 = s1 / m with s2 * m == s1 exactly in float32: a neighbour of
      // s1 / m when one satisfies it, otherwise s1 moves to s2 * m.
      const float mf = static_cast<float>(m);
      float s2 = s1_mse / mf, s1 = s1_mse;
      if (s2 * mf != s1) {
        const float up = std::nextafter(s2, std::numeric_limits<float>::infinity());
        const float down = std::nextafter(s2, 0.0f);
        if (up * mf == s1) {
          s2 = up;
        } else if (down * mf == s1) {
          s2 = down;
        } else {
          s1 = s2 * mf;
        }
      }
      if (!(s2 > 0)) break;
      const int8_t* q1 = q1_mse.data();
      if (s1 != s1_mse) {
        QuantizeRow(w, k, s1, bits1, q1_moved.data());
        q1 = q1_moved.data();
      }
      for (int64_t i = 0; i < k; ++i) residual[i] = w[i] - q1[i] * s1;
      QuantizeRow(residual.data(), k, s2, bits2, q2.data());
      double error = 0;
      for (int64_t i = 0; i < k; ++i) {
        const double value = static_cast<double>(s2) * (m * q1[i] + q2[i]);
        const double d = static_cast<double>(w[i]) - value;
        error += d * d;
      }
      if (error < best) best = error, best_m = m, best_s1 = s1, best_s2 = s2;
    }
    first.scale[c] = best_s1;
    pair.second.scale[c] = best_s2;
    pair.multiplier[c] = best_m;
    first.squared_error += QuantizeRow(w, k, best_s1, bits1, first.codes.data() + c * k);
    for (int64_t i = 0; i < k; ++i) {
      residual[i] = w[i] - first.codes[c * k + i] * best_s1;
      sum_r2 += static_cast<double>(residual[i]) * residual[i];
    }
    pair.second.squared_error +=
        QuantizeRow(residual.data(), k, best_s2, bits2, pair.second.codes.data() + c * k);
    pair.squared_error += best;
  }
  FinishErrors(first, sum_w2);
  FinishErrors(pair.second, sum_r2);
  pair.first = std::move(first);
  pair.relative_error = sum_w2 > 0 ? pair.squared_error / sum_w2 : 0;
  return pair;
}

// ---------------------------------------------------------------------------
// Activations.

Histogram::Histogram(float lo, float hi, int bins)
    : lo_(std::min(lo, hi)), hi_(std::max(lo, hi)), counts_(std::max(bins, 1), 0.0) {}

void Histogram::Add(const float* values, int64_t count) {
  const int64_t bins = static_cast<int64_t>(counts_.size());
  const double width = static_cast<double>(hi_) - lo_;
  const double scale = width > 0 ? static_cast<double>(bins) / width : 0;
  for (int64_t i = 0; i < count; ++i) {
    const float v = values[i];
    if (std::isnan(v)) continue;
    const double t = (static_cast<double>(v) - lo_) * scale;
    const int64_t b = t <= 0                           ? 0
                      : t >= static_cast<double>(bins) ? bins - 1
                                                       : static_cast<int64_t>(t);
    counts_[b] += 1;
    total_ += 1;
  }
}

double Histogram::Quantile(double percent) const {
  const double width = static_cast<double>(hi_) - lo_;
  if (!(total_ > 0) || !(width > 0)) return lo_;
  const double target = std::clamp(percent, 0.0, 100.0) / 100 * total_;
  const double bin_width = width / static_cast<double>(counts_.size());
  double cumulative = 0;
  for (size_t b = 0; b < counts_.size(); ++b) {
    const double c = counts_[b];
    if (c > 0 && cumulative + c >= target) {
      const double fraction = std::clamp((target - cumulative) / c, 0.0, 1.0);
      return std::min<double>(lo_ + (static_cast<double>(b) + fraction) * bin_width, hi_);
    }
    cumulative += c;
  }
  return hi_;
}

namespace {

// A histogram's cumulative moments in bin coordinates (x = lo + width * t,
// t in [0, bins]), each bin's mass uniform over the bin:
//   M_k(t) = integral over [0, t] of density(u) u^k du, k = 0, 1, 2.
class BinMoments {
 public:
  explicit BinMoments(const Histogram& histogram) : counts_(histogram.counts()) {
    lo_ = histogram.lo();
    bins_ = static_cast<int64_t>(counts_.size());
    width_ = (static_cast<double>(histogram.hi()) - lo_) / static_cast<double>(bins_);
    total_ = histogram.total();
    point_ = !(width_ > 0);
    p0_.assign(bins_ + 1, 0);
    p1_.assign(bins_ + 1, 0);
    p2_.assign(bins_ + 1, 0);
    for (int64_t b = 0; b < bins_; ++b) {
      const double c = counts_[b], x = static_cast<double>(b);
      p0_[b + 1] = p0_[b] + c;
      p1_[b + 1] = p1_[b] + c * (x + 0.5);
      p2_[b + 1] = p2_[b] + c * (x * x + x + 1.0 / 3);
    }
  }

  // E[(x - Q(x))^2] of the quantizer (scale, zero_point, codes 0..qmax).
  double Error(float scale, int zero_point, int qmax) const {
    if (!(total_ > 0)) return 0;
    if (point_) {
      const float v = static_cast<float>(lo_);
      float q = RoundHalfEven(std::clamp(v / scale, -2.0f * qmax - 2, 2.0f * qmax + 2)) +
                static_cast<float>(zero_point);
      q = std::clamp(q, 0.0f, static_cast<float>(qmax));
      const double d = static_cast<double>(v) - (q - zero_point) * scale;
      return d * d;
    }
    const double s = scale;
    const double hi = lo_ + width_ * static_cast<double>(bins_);
    auto level = [&](double x) {
      const double q = std::floor(x / s + 0.5) + zero_point;
      return static_cast<int>(std::clamp(q, 0.0, static_cast<double>(qmax)));
    };
    const int q_first = level(lo_), q_last = level(hi);
    Moment start{0, 0, 0};
    double t_start = 0, error = 0;
    for (int q = q_first; q <= q_last; ++q) {
      double t_end = static_cast<double>(bins_);
      if (q < q_last)
        t_end = std::clamp(((q - zero_point + 0.5) * s - lo_) / width_, t_start, t_end);
      const Moment end = At(t_end);
      const double value =
          (static_cast<double>(static_cast<float>(q - zero_point) * scale) - lo_) / width_;
      error += (end.m2 - start.m2) - 2 * value * (end.m1 - start.m1) +
               value * value * (end.m0 - start.m0);
      start = end;
      t_start = t_end;
    }
    return std::max(error, 0.0) * width_ * width_ / total_;
  }

 private:
  struct Moment {
    double m0, m1, m2;
  };
  Moment At(double t) const {
    const int64_t b = std::clamp<int64_t>(static_cast<int64_t>(t), 0, bins_ - 1);
    const double f = t - static_cast<double>(b), x = static_cast<double>(b), c = counts_[b];
    return {p0_[b] + c * f, p1_[b] + c * (x * f + 0.5 * f * f),
            p2_[b] + c * (x * x * f + x * f * f + f * f * f / 3)};
  }

  const std::vector<double>& counts_;
  double lo_ = 0, width_ = 0, total_ = 0;
  int64_t bins_ = 1;
  bool point_ = false;
  std::vector<double> p0_, p1_, p2_;
};

// Ratios 0 < r_min = r[0] < ... < r[count - 1] = 1, geometric; with a leading
// 0 when `with_zero`.
std::vector<double> GeometricRatios(double r_min, int count, bool with_zero) {
  std::vector<double> r;
  if (with_zero) r.push_back(0);
  for (int i = 0; i < count; ++i)
    r.push_back(i + 1 == count ? 1.0
                               : r_min * std::pow(1 / r_min, static_cast<double>(i) / (count - 1)));
  return r;
}

// Activation search parameters: coarse grid sizes, then `kRefineRounds`
// local grids of kRefinePoints per axis, each one step of the last either
// side of its best point.
constexpr int kCoarse1D = 64, kCoarse2D = 24;
constexpr int kRefinePoints1D = 11, kRefinePoints2D = 7, kRefineRounds = 3;

int ClampBits(int bits) { return std::clamp(bits, 1, 8); }

}  // namespace

ActivationGrid ActivationGridForRange(float lo, float hi, int bits) {
  ActivationGrid grid;
  grid.bits = ClampBits(bits);
  const int qmax = (1 << grid.bits) - 1;
  grid.lo = std::min(lo, 0.0f);
  grid.hi = std::max(hi, 0.0f);
  const float scale = (grid.hi - grid.lo) / static_cast<float>(qmax);
  if (!(scale > 0) || !std::isfinite(scale)) {
    grid.scale = 1;
    grid.zero_point = 0;
    return grid;
  }
  grid.scale = scale;
  const float z = std::nearbyint(-grid.lo / scale);
  grid.zero_point = static_cast<int>(std::clamp(z, 0.0f, static_cast<float>(qmax)));
  return grid;
}

double ActivationError(const Histogram& histogram, const ActivationGrid& grid) {
  return BinMoments(histogram).Error(grid.scale, grid.zero_point, (1 << ClampBits(grid.bits)) - 1);
}

ActivationGrid ChooseActivationGrid(const Histogram& histogram, int bits, RangeMethod method,
                                    double percentile) {
  bits = ClampBits(bits);
  const int qmax = (1 << bits) - 1;
  const BinMoments moments(histogram);
  auto finish = [&](ActivationGrid grid) {
    grid.mean_squared_error = moments.Error(grid.scale, grid.zero_point, qmax);
    return grid;
  };
  const float dmin = histogram.lo(), dmax = histogram.hi();
  if (method == RangeMethod::kPercentile) {
    const double p = std::isnan(percentile) ? 100.0 : std::clamp(percentile, 0.0, 100.0);
    const double p_lo = std::min(p, 100 - p), p_hi = std::max(p, 100 - p);
    return finish(ActivationGridForRange(static_cast<float>(histogram.Quantile(p_lo)),
                                         static_cast<float>(histogram.Quantile(p_hi)), bits));
  }
  ActivationGrid best = finish(ActivationGridForRange(dmin, dmax, bits));
  if (method == RangeMethod::kMinMax || !(histogram.total() > 0) || !(dmax > dmin)) return best;

  // Candidates lo = alpha * min(dmin, 0), hi = beta * max(dmax, 0).
  const double lo_end = std::min(dmin, 0.0f), hi_end = std::max(dmax, 0.0f);
  auto eval = [&](double alpha, double beta) {
    if (!(alpha > 0) && !(beta > 0)) return std::numeric_limits<double>::infinity();
    ActivationGrid grid = finish(ActivationGridForRange(static_cast<float>(alpha * lo_end),
                                                        static_cast<float>(beta * hi_end), bits));
    if (grid.mean_squared_error < best.mean_squared_error) best = grid;
    return grid.mean_squared_error;
  };
  const int bins = static_cast<int>(histogram.counts().size());
  // Ratios down to one bin of the histogram's span.
  const double r_min = std::min(0.5, 1.0 / bins);
  // Refines one coordinate (or both) on local grids around the best ratio.
  auto neighbours = [](const std::vector<double>& r, size_t i) {
    return std::pair<double, double>{r[i > 0 ? i - 1 : 0], r[std::min(i + 1, r.size() - 1)]};
  };
  const bool search_lo = lo_end<0, search_hi = hi_end> 0;
  if (search_lo != search_hi) {
    // One sign only: the other end stays at 0.
    const std::vector<double> r = GeometricRatios(r_min, kCoarse1D, false);
    auto f = [&](double x) { return search_lo ? eval(x, 0) : eval(0, x); };
    size_t i_best = 0;
    double f_best = std::numeric_limits<double>::infinity();
    for (size_t i = 0; i < r.size(); ++i) {
      const double v = f(r[i]);
      if (v < f_best) f_best = v, i_best = i;
    }
    auto [a, b] = neighbours(r, i_best);
    double x_best = r[i_best];
    for (int round = 0; round < kRefineRounds; ++round) {
      const double h = (b - a) / (kRefinePoints1D - 1);
      for (int i = 0; i < kRefinePoints1D; ++i) {
        const double x = a + h * i;
        if (!(x > 0)) continue;
        const double v = f(x);
        if (v < f_best) f_best = v, x_best = x;
      }
      a = std::max(x_best - h, 0.0), b = std::min(x_best + h, 1.0);
    }
    return best;
  }
  // Both signs: lo and hi jointly, lo = 0 or hi = 0 included.
  const std::vector<double> r = GeometricRatios(r_min, kCoarse2D, true);
  size_t ia = r.size() - 1, ib = r.size() - 1;
  double f_best = std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < r.size(); ++i)
    for (size_t j = 0; j < r.size(); ++j) {
      const double v = eval(r[i], r[j]);
      if (v < f_best) f_best = v, ia = i, ib = j;
    }
  auto [a0, a1] = neighbours(r, ia);
  auto [b0, b1] = neighbours(r, ib);
  double alpha = r[ia], beta = r[ib];
  for (int round = 0; round < kRefineRounds; ++round) {
    const double ha = (a1 - a0) / (kRefinePoints2D - 1), hb = (b1 - b0) / (kRefinePoints2D - 1);
    double next_alpha = alpha, next_beta = beta;
    for (int i = 0; i < kRefinePoints2D; ++i)
      for (int j = 0; j < kRefinePoints2D; ++j) {
        const double v = eval(a0 + ha * i, b0 + hb * j);
        if (v < f_best) f_best = v, next_alpha = a0 + ha * i, next_beta = b0 + hb * j;
      }
    alpha = next_alpha, beta = next_beta;
    a0 = std::max(alpha - ha, 0.0), a1 = std::min(alpha + ha, 1.0);
    b0 = std::max(beta - hb, 0.0), b1 = std::min(beta + hb, 1.0);
  }
  return best;
}

}  // namespace lowbit::engine::quantize
