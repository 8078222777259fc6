// Scale searches of lowbit quantize (quantize/scales.h) against independent
// computations: the weight MSE search against a brute-force sweep over a fine
// grid of scales, the activation MSE search against brute-force (lo, hi)
// pairs evaluated on the raw samples, the residual pair against one grid,
// and the min/max, percentile, 1-bit and degenerate cases as specified.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "quantize/scales.h"

namespace lowbit::engine::quantize {
namespace {

// ---------------------------------------------------------------------------
// Independent references (std::nearbyint, double where it does not matter).

int RefCode(float w, float s, int bits) {
  if (bits == 1) return w >= 0 ? 1 : -1;
  const int qmax = (1 << (bits - 1)) - 1;
  const float q = std::nearbyint(w / s);
  return static_cast<int>(std::clamp(q, static_cast<float>(-qmax), static_cast<float>(qmax)));
}

double RefRowError(const float* w, int64_t k, float s, int bits) {
  double e = 0;
  for (int64_t i = 0; i < k; ++i) {
    const double d = static_cast<double>(w[i]) - static_cast<double>(RefCode(w[i], s, bits) * s);
    e += d * d;
  }
  return e;
}

// The least error of the row over `points` scales spaced geometrically from
// 0.001 to 2.5 times max|w| / qmax.
double BruteForceRowError(const float* w, int64_t k, int bits, int points) {
  float amax = 0;
  for (int64_t i = 0; i < k; ++i) amax = std::max(amax, std::fabs(w[i]));
  const int qmax = (1 << (bits - 1)) - 1;
  const double base = amax / qmax, r0 = 0.001, r1 = 2.5;
  double best = std::numeric_limits<double>::infinity();
  for (int p = 0; p < points; ++p) {
    const float s = static_cast<float>(base * r0 * std::pow(r1 / r0, p / (points - 1.0)));
    best = std::min(best, RefRowError(w, k, s, bits));
  }
  return best;
}

enum class Dist { kGaussian, kLaplace, kGaussianOutliers, kLaplaceOutliers };
const char* DistName(Dist d) {
  switch (d) {
    case Dist::kGaussian:
      return "gaussian";
    case Dist::kLaplace:
      return "laplace";
    case Dist::kGaussianOutliers:
      return "gaussian+outliers";
    case Dist::kLaplaceOutliers:
      return "laplace+outliers";
  }
  return "?";
}
bool HeavyTailed(Dist d) { return d != Dist::kGaussian; }

std::vector<float> RandomWeights(Dist dist, int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  std::exponential_distribution<float> exponential(1 / 0.04f);
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  std::vector<float> w(n);
  for (auto& x : w) {
    if (dist == Dist::kGaussian || dist == Dist::kGaussianOutliers)
      x = normal(rng);
    else
      x = (uniform(rng) < 0.5f ? -1 : 1) * exponential(rng);
    // 1% outliers at 6 to 12 times the spread.
    if ((dist == Dist::kGaussianOutliers || dist == Dist::kLaplaceOutliers) && uniform(rng) < 0.01f)
      x *= 6 + 6 * uniform(rng);
  }
  return w;
}

// Checks the grid's codes and errors against the references; returns the
// per-channel errors.
std::vector<double> CheckGrid(const WeightGrid& grid, const std::vector<float>& w, int64_t cout,
                              int64_t k, int bits) {
  EXPECT_EQ(grid.bits, bits);
  EXPECT_EQ(grid.scale.size(), static_cast<size_t>(cout));
  EXPECT_EQ(grid.codes.size(), static_cast<size_t>(cout * k));
  std::vector<double> errors(cout);
  double total = 0, sum_w2 = 0;
  for (int64_t c = 0; c < cout; ++c) {
    const float s = grid.scale[c];
    EXPECT_GT(s, 0.0f);
    for (int64_t i = 0; i < k; ++i) {
      const float x = w[c * k + i];
      const int q = grid.codes[c * k + i];
      EXPECT_EQ(q, RefCode(x, s, bits)) << "channel " << c << " element " << i;
      EXPECT_GE(q, WeightCodeMin(bits));
      EXPECT_LE(q, WeightCodeMax(bits));
      sum_w2 += static_cast<double>(x) * x;
    }
    errors[c] = RefRowError(w.data() + c * k, k, s, bits);
    total += errors[c];
  }
  EXPECT_NEAR(grid.squared_error, total, 1e-9 * total + 1e-30);
  EXPECT_NEAR(grid.relative_error, sum_w2 > 0 ? total / sum_w2 : 0, 1e-9);
  return errors;
}

// ---------------------------------------------------------------------------
// Weights.

TEST(QuantizeWeightsTest, CodeRanges) {
  EXPECT_EQ(WeightCodeMin(1), -1);
  EXPECT_EQ(WeightCodeMax(1), 1);
  EXPECT_EQ(WeightCodeMin(2), -1);
  EXPECT_EQ(WeightCodeMax(2), 1);
  EXPECT_EQ(WeightCodeMin(3), -3);
  EXPECT_EQ(WeightCodeMax(4), 7);
  EXPECT_EQ(WeightCodeMin(8), -127);
  EXPECT_EQ(WeightCodeMax(8), 127);
}

// The MSE scale of every channel is at least as good as the best of a
// 20000-point sweep of scales (within 1e-3), never worse than min/max, and
// strictly better than min/max on heavy-tailed data at 2-4 bits.
TEST(QuantizeWeightsTest, MseMatchesBruteForce) {
  const int64_t cout = 3;
  for (int64_t k : {48, 256}) {
    for (Dist dist :
         {Dist::kGaussian, Dist::kLaplace, Dist::kGaussianOutliers, Dist::kLaplaceOutliers}) {
      for (int bits : {2, 3, 4, 8}) {
        const auto w =
            RandomWeights(dist, cout * k, 1000 + k * 17 + bits * 3 + static_cast<int>(dist));
        auto mse = QuantizeWeights(w.data(), cout, k, bits, RangeMethod::kMse);
        auto minmax = QuantizeWeights(w.data(), cout, k, bits, RangeMethod::kMinMax);
        ASSERT_TRUE(mse.ok()) << mse.status().ToString();
        ASSERT_TRUE(minmax.ok());
        SCOPED_TRACE(std::string(DistName(dist)) + " k=" + std::to_string(k) +
                     " bits=" + std::to_string(bits));
        const auto errors = CheckGrid(*mse, w, cout, k, bits);
        const auto minmax_errors = CheckGrid(*minmax, w, cout, k, bits);
        double worst_ratio = 0;
        for (int64_t c = 0; c < cout; ++c) {
          const double brute = BruteForceRowError(w.data() + c * k, k, bits, 20000);
          EXPECT_LE(errors[c], brute * (1 + 1e-3)) << "channel " << c;
          EXPECT_LE(errors[c], minmax_errors[c]) << "channel " << c;
          worst_ratio = std::max(worst_ratio, errors[c] / brute);
        }
        if (HeavyTailed(dist) && bits <= 4) {
          EXPECT_LT(mse->squared_error, minmax->squared_error);
        }
        std::printf("  %-18s k=%-3lld bits=%d  mse/brute worst %.6f  mse/minmax %.3f\n",
                    DistName(dist), static_cast<long long>(k), bits, worst_ratio,
                    mse->squared_error / minmax->squared_error);
      }
    }
  }
}

// The 34 convolutions of NanoDet-g (models/nanodet-g: [cout, k = cin * kh * kw],
// 3.78M weights): time of the MSE search over all of them, and over its
// largest layer alone (256 x 2304, 590k weights).
TEST(QuantizeWeightsTest, MseSpeedOnNanoDetShapes) {
  const std::vector<std::pair<int64_t, int64_t>> layers = {
      {32, 27},    {32, 288},   {16, 288},   {16, 144},   {32, 288},   {64, 576},   {32, 576},
      {32, 288},   {32, 576},   {32, 288},   {64, 576},   {128, 128},  {128, 1152}, {64, 1152},
      {64, 576},   {64, 1152},  {64, 576},   {128, 1152}, {128, 256},  {256, 2304}, {128, 2304},
      {128, 1152}, {128, 2304}, {128, 1152}, {128, 2304}, {128, 1152}, {256, 2304}, {128, 512},
      {128, 1152}, {128, 1152}, {124, 128},  {128, 1152}, {124, 128},  {124, 128}};
  std::vector<std::vector<float>> weights;
  int64_t total = 0;
  for (size_t l = 0; l < layers.size(); ++l) {
    weights.push_back(RandomWeights(l % 2 ? Dist::kLaplaceOutliers : Dist::kGaussianOutliers,
                                    layers[l].first * layers[l].second, 100 + l));
    total += layers[l].first * layers[l].second;
  }
  EXPECT_EQ(total, 3782752);
  for (int bits : {2, 3, 4, 8}) {
    double mse_error = 0, minmax_error = 0, largest_ms = 0;
    const auto start = std::chrono::steady_clock::now();
    for (size_t l = 0; l < layers.size(); ++l) {
      const auto layer_start = std::chrono::steady_clock::now();
      auto mse = QuantizeWeights(weights[l].data(), layers[l].first, layers[l].second, bits,
                                 RangeMethod::kMse);
      const double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - layer_start)
              .count();
      if (layers[l].second == 2304 && layers[l].first == 256) largest_ms = std::max(largest_ms, ms);
      ASSERT_TRUE(mse.ok());
      mse_error += mse->relative_error;
    }
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    for (size_t l = 0; l < layers.size(); ++l) {
      auto minmax = QuantizeWeights(weights[l].data(), layers[l].first, layers[l].second, bits,
                                    RangeMethod::kMinMax);
      ASSERT_TRUE(minmax.ok());
      minmax_error += minmax->relative_error;
    }
    EXPECT_LT(mse_error, minmax_error);
    std::printf(
        "  bits=%d: QuantizeWeights(kMse) on NanoDet's 34 layers in %.0f ms (256 x 2304 "
        "in %.1f ms); mean relative error %.5f (min/max %.5f)\n",
        bits, ms, largest_ms, mse_error / layers.size(), minmax_error / layers.size());
  }
}

TEST(QuantizeWeightsTest, MinMaxAndPercentile) {
  // Row 0: 1..100 with alternating signs; row 1: a single outlier.
  const int64_t k = 100;
  std::vector<float> w(2 * k, 0.01f);
  for (int i = 0; i < k; ++i) w[i] = (i % 2 ? -1.0f : 1.0f) * static_cast<float>(i + 1);
  w[k + 7] = -5.0f;
  for (int bits : {2, 4, 8}) {
    const int qmax = WeightCodeMax(bits);
    auto minmax = QuantizeWeights(w.data(), 2, k, bits, RangeMethod::kMinMax);
    ASSERT_TRUE(minmax.ok());
    CheckGrid(*minmax, w, 2, k, bits);
    EXPECT_EQ(minmax->scale[0], 100.0f / static_cast<float>(qmax));
    EXPECT_EQ(minmax->scale[1], 5.0f / static_cast<float>(qmax));
    EXPECT_EQ(minmax->codes[k - 1], -qmax);  // -100
    EXPECT_EQ(minmax->codes[k + 7], -qmax);

    // numpy.percentile(|row0|, 50) = 50.5; (|row0|, 90) = 90.1.
    auto p50 = QuantizeWeights(w.data(), 2, k, bits, RangeMethod::kPercentile, 50);
    ASSERT_TRUE(p50.ok());
    CheckGrid(*p50, w, 2, k, bits);
    EXPECT_FLOAT_EQ(p50->scale[0], 50.5f / static_cast<float>(qmax));
    auto p90 = QuantizeWeights(w.data(), 2, k, bits, RangeMethod::kPercentile, 90);
    ASSERT_TRUE(p90.ok());
    EXPECT_FLOAT_EQ(p90->scale[0], 90.1f / static_cast<float>(qmax));
    EXPECT_FLOAT_EQ(p90->scale[1], 0.01f / static_cast<float>(qmax));  // the outlier clips
    auto p100 = QuantizeWeights(w.data(), 2, k, bits, RangeMethod::kPercentile, 100);
    ASSERT_TRUE(p100.ok());
    EXPECT_EQ(p100->scale[0], minmax->scale[0]);
    EXPECT_EQ(p100->scale[1], minmax->scale[1]);
  }
}

// 1 bit: sign codes (w >= 0 -> +1) and s = mean|w| for every method.
TEST(QuantizeWeightsTest, OneBitIsSignTimesMeanMagnitude) {
  const int64_t cout = 4, k = 77;
  auto w = RandomWeights(Dist::kLaplaceOutliers, cout * k, 3);
  w[5] = 0.0f;  // a zero is +1
  for (RangeMethod method : {RangeMethod::kMinMax, RangeMethod::kPercentile, RangeMethod::kMse}) {
    auto grid = QuantizeWeights(w.data(), cout, k, 1, method, 99);
    ASSERT_TRUE(grid.ok());
    CheckGrid(*grid, w, cout, k, 1);
    EXPECT_EQ(grid->codes[5], 1);
    for (int64_t c = 0; c < cout; ++c) {
      double sum = 0;
      for (int64_t i = 0; i < k; ++i) {
        sum += std::fabs(w[c * k + i]);
        EXPECT_EQ(grid->codes[c * k + i], w[c * k + i] >= 0 ? 1 : -1);
      }
      EXPECT_FLOAT_EQ(grid->scale[c], static_cast<float>(sum / k));
    }
  }
}

TEST(QuantizeWeightsTest, AllZeroChannelGetsScaleOneAndNoError) {
  const int64_t cout = 3, k = 40;
  auto w = RandomWeights(Dist::kGaussian, cout * k, 11);
  std::fill(w.begin() + k, w.begin() + 2 * k, 0.0f);
  for (int bits : {2, 3, 4, 8}) {
    for (RangeMethod method : {RangeMethod::kMinMax, RangeMethod::kPercentile, RangeMethod::kMse}) {
      auto grid = QuantizeWeights(w.data(), cout, k, bits, method);
      ASSERT_TRUE(grid.ok());
      const auto errors = CheckGrid(*grid, w, cout, k, bits);
      EXPECT_EQ(grid->scale[1], 1.0f);
      EXPECT_EQ(errors[1], 0.0);
      for (int64_t i = 0; i < k; ++i) EXPECT_EQ(grid->codes[k + i], 0);
    }
  }
  std::vector<float> zeros(2 * 8, 0.0f);
  auto grid = QuantizeWeights(zeros.data(), 2, 8, 4, RangeMethod::kMse);
  ASSERT_TRUE(grid.ok());
  EXPECT_EQ(grid->squared_error, 0.0);
  EXPECT_EQ(grid->relative_error, 0.0);
  EXPECT_EQ(grid->scale, std::vector<float>(2, 1.0f));
}

TEST(QuantizeWeightsTest, InvalidArguments) {
  std::vector<float> w(16, 0.5f);
  auto invalid = [](const auto& result) {
    return !result.ok() && result.status().code() == StatusCode::kInvalidArgument;
  };
  EXPECT_TRUE(invalid(QuantizeWeights(w.data(), 2, 8, 0, RangeMethod::kMse)));
  EXPECT_TRUE(invalid(QuantizeWeights(w.data(), 2, 8, 9, RangeMethod::kMinMax)));
  EXPECT_TRUE(invalid(QuantizeWeights(w.data(), 0, 8, 4, RangeMethod::kMse)));
  EXPECT_TRUE(invalid(QuantizeWeights(w.data(), 2, 0, 4, RangeMethod::kMse)));
  EXPECT_TRUE(invalid(QuantizeWeights(w.data(), 2, 8, 4, RangeMethod::kPercentile, 0)));
  EXPECT_TRUE(invalid(QuantizeWeights(w.data(), 2, 8, 4, RangeMethod::kPercentile, 100.5)));
  EXPECT_TRUE(invalid(QuantizeWeights(w.data(), 2, 8, 4, RangeMethod::kPercentile, std::nan(""))));
  EXPECT_TRUE(QuantizeWeights(w.data(), 2, 8, 4, RangeMethod::kPercentile, 100).ok());
  EXPECT_TRUE(invalid(QuantizeWeightsResidual(w.data(), 2, 8, 0, 2)));
  EXPECT_TRUE(invalid(QuantizeWeightsResidual(w.data(), 2, 8, 2, 9)));
  EXPECT_TRUE(invalid(QuantizeWeightsResidual(w.data(), 2, 0, 2, 2)));
  w[3] = std::nanf("");
  EXPECT_TRUE(invalid(QuantizeWeights(w.data(), 2, 8, 4, RangeMethod::kMse)));
}

// ---------------------------------------------------------------------------
// The residual pair.

TEST(QuantizeWeightsResidualTest, PairBeatsOneGridAndTiesItsScales) {
  const int64_t cout = 6, k = 288;
  for (Dist dist : {Dist::kGaussian, Dist::kLaplaceOutliers}) {
    const auto w = RandomWeights(dist, cout * k, 21 + static_cast<int>(dist));
    for (auto [bits1, bits2] : std::vector<std::pair<int, int>>{
             {1, 1}, {1, 2}, {2, 1}, {2, 2}, {2, 4}, {3, 3}, {4, 2}, {4, 4}}) {
      SCOPED_TRACE(std::string(DistName(dist)) + " bits " + std::to_string(bits1) + "+" +
                   std::to_string(bits2));
      auto pair = QuantizeWeightsResidual(w.data(), cout, k, bits1, bits2);
      ASSERT_TRUE(pair.ok()) << pair.status().ToString();
      auto single = QuantizeWeights(w.data(), cout, k, bits1, RangeMethod::kMse);
      ASSERT_TRUE(single.ok());
      const int sum_bits = std::min(bits1 + bits2, 8);
      auto wide = QuantizeWeights(w.data(), cout, k, sum_bits, RangeMethod::kMse);
      ASSERT_TRUE(wide.ok());
      ASSERT_EQ(pair->multiplier.size(), static_cast<size_t>(cout));
      double error = 0, first_error = 0, sum_w2 = 0;
      for (int64_t c = 0; c < cout; ++c) {
        const int m = pair->multiplier[c];
        const float s1 = pair->first.scale[c], s2 = pair->second.scale[c];
        EXPECT_GE(m, 1);
        EXPECT_LE(m, 1 << (bits2 + 1));
        EXPECT_GT(s2, 0.0f);
        EXPECT_EQ(s2 * static_cast<float>(m), s1) << "channel " << c;
        // s1 is the MSE scale or moved by the float rounding of s1 / m * m.
        EXPECT_NEAR(s1, single->scale[c], 4e-7 * single->scale[c]);
        for (int64_t i = 0; i < k; ++i) {
          const float x = w[c * k + i];
          const int q1 = pair->first.codes[c * k + i], q2 = pair->second.codes[c * k + i];
          EXPECT_EQ(q1, RefCode(x, s1, bits1));
          EXPECT_EQ(q2, RefCode(x - q1 * s1, s2, bits2));
          EXPECT_GE(q2, WeightCodeMin(bits2));
          EXPECT_LE(q2, WeightCodeMax(bits2));
          const double d = x - static_cast<double>(s2) * (m * q1 + q2);
          error += d * d;
          const double d1 = x - static_cast<double>(q1 * s1);
          first_error += d1 * d1;
          sum_w2 += static_cast<double>(x) * x;
        }
      }
      EXPECT_NEAR(pair->squared_error, error, 1e-9 * error);
      EXPECT_NEAR(pair->relative_error, error / sum_w2, 1e-9);
      EXPECT_NEAR(pair->first.squared_error, first_error, 1e-9 * first_error);
      // With a zero code the residual never hurts; sign codes (bits2 = 1)
      // move every weight, and the multipliers 1..4 may be too coarse.
      if (bits2 >= 2) {
        EXPECT_LT(pair->squared_error, single->squared_error);
      }
      int at_bound = 0;
      for (int m : pair->multiplier) at_bound += m == 1 << (bits2 + 1);
      // Against one grid of bits1 + bits2: the pair's levels m * q1 + q2 are
      // a subset of a (bits1 + bits2)-bit grid's, so it is not expected to win.
      std::printf(
          "  %-18s W%d+W%d: pair %.5f  one W%d %.5f  one W%d %.5f  (%d of %d multipliers "
          "at the bound)\n",
          DistName(dist), bits1, bits2, pair->relative_error, bits1, single->relative_error,
          sum_bits, wide->relative_error, at_bound, static_cast<int>(cout));
    }
  }
}

// ---------------------------------------------------------------------------
// Activations.

// Exact E[(x - Q(x))^2] over samples with ONNX QuantizeLinear semantics.
double SampleMse(const std::vector<float>& x, float s, int zp, int bits) {
  const int qmax = (1 << bits) - 1;
  double e = 0;
  for (float v : x) {
    const float q =
        std::clamp(std::nearbyint(v / s) + static_cast<float>(zp), 0.0f, static_cast<float>(qmax));
    const double d = static_cast<double>(v) - static_cast<double>((q - zp) * s);
    e += d * d;
  }
  return e / static_cast<double>(x.size());
}

// The reference grid of a range (as scales.h's top comment computes it).
void RefGrid(float lo, float hi, int bits, float* s, int* zp) {
  const int qmax = (1 << bits) - 1;
  lo = std::min(lo, 0.0f), hi = std::max(hi, 0.0f);
  *s = (hi - lo) / static_cast<float>(qmax);
  *zp = static_cast<int>(std::clamp(std::nearbyint(-lo / *s), 0.0f, static_cast<float>(qmax)));
}

Histogram HistogramOf(const std::vector<float>& x, int bins = 2048) {
  const auto [lo, hi] = std::minmax_element(x.begin(), x.end());
  Histogram h(*lo, *hi, bins);
  h.Add(x.data(), static_cast<int64_t>(x.size()));
  return h;
}

enum class ActDist { kRelu, kSkewed, kOutliers, kNegative };
const char* ActDistName(ActDist d) {
  switch (d) {
    case ActDist::kRelu:
      return "relu";
    case ActDist::kSkewed:
      return "skewed";
    case ActDist::kOutliers:
      return "outliers";
    case ActDist::kNegative:
      return "negative";
  }
  return "?";
}
std::vector<float> RandomActivations(ActDist dist, int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::exponential_distribution<float> exponential(0.7f);
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  std::vector<float> x(n);
  for (auto& v : x) {
    switch (dist) {
      case ActDist::kRelu:
        v = std::max(0.0f, normal(rng) + 0.3f);
        break;
      case ActDist::kSkewed:  // SiLU-like: a short negative side, a long positive tail
        v = uniform(rng) < 0.7f ? 0.4f * normal(rng) : exponential(rng);
        break;
      case ActDist::kOutliers:
        v = normal(rng) * (uniform(rng) < 0.005f ? 8.0f : 1.0f);
        break;
      case ActDist::kNegative:
        v = -std::fabs(normal(rng)) - 0.1f;
        break;
    }
  }
  return x;
}

// The MSE grid against brute-force (lo, hi) pairs on the raw samples, and the
// histogram's error against the samples' exact error.
TEST(ChooseActivationGridTest, MseMatchesBruteForceOnSamples) {
  for (ActDist dist : {ActDist::kRelu, ActDist::kSkewed, ActDist::kOutliers, ActDist::kNegative}) {
    const auto x = RandomActivations(dist, 12000, 5 + static_cast<int>(dist));
    const Histogram h = HistogramOf(x);
    const float dmin = h.lo(), dmax = h.hi();
    for (int bits : {1, 2, 3, 4, 8}) {
      SCOPED_TRACE(std::string(ActDistName(dist)) + " bits=" + std::to_string(bits));
      const ActivationGrid grid = ChooseActivationGrid(h, bits, RangeMethod::kMse);
      float s;
      int zp;
      RefGrid(grid.lo, grid.hi, bits, &s, &zp);
      EXPECT_EQ(grid.scale, s);
      EXPECT_EQ(grid.zero_point, zp);
      EXPECT_LE(grid.lo, 0.0f);
      EXPECT_GE(grid.hi, 0.0f);
      EXPECT_GE(grid.lo, std::min(dmin, 0.0f));
      EXPECT_LE(grid.hi, std::max(dmax, 0.0f));
      if (dmin >= 0) {
        EXPECT_EQ(grid.lo, 0.0f);
      }
      if (dmax <= 0) {
        EXPECT_EQ(grid.hi, 0.0f);
      }
      EXPECT_DOUBLE_EQ(grid.mean_squared_error, ActivationError(h, grid));
      const double mine = SampleMse(x, grid.scale, grid.zero_point, bits);
      // The histogram's error is the samples' to within 2%, once the values
      // at exactly 0 (ReLU), which the first bin spreads over its width w
      // (E = w^2 / 3 while w < s / 2), are accounted for.
      const double w = (dmax - dmin) / 2048.0;
      const double zeros =
          static_cast<double>(std::count(x.begin(), x.end(), 0.0f)) / static_cast<double>(x.size());
      const double spread = dmin == 0 && w < grid.scale / 2 ? zeros * w * w / 3 : 0;
      EXPECT_NEAR(grid.mean_squared_error - spread, mine, 0.02 * mine);

      // Brute force: 48 x 48 ranges (one axis when the data has one sign),
      // and the ranges around the brute-force best, on the samples.
      const int n = 48;
      const float lo_end = std::min(dmin, 0.0f), hi_end = std::max(dmax, 0.0f);
      double brute = std::numeric_limits<double>::infinity();
      for (int i = 0; i <= (lo_end < 0 ? n : 0); ++i)
        for (int j = 0; j <= (hi_end > 0 ? n : 0); ++j) {
          if (i == 0 && j == 0) continue;
          RefGrid(lo_end * i / n, hi_end * j / n, bits, &s, &zp);
          brute = std::min(brute, SampleMse(x, s, zp, bits));
        }
      const ActivationGrid minmax = ChooseActivationGrid(h, bits, RangeMethod::kMinMax);
      const double minmax_mse = SampleMse(x, minmax.scale, minmax.zero_point, bits);
      EXPECT_LE(mine, brute * 1.02);
      EXPECT_LE(grid.mean_squared_error, minmax.mean_squared_error);
      std::printf(
          "  %-8s bits=%d  [%.3f, %.3f] mse/brute %.4f  hist/samples %.4f  "
          "mse/minmax %.3f\n",
          ActDistName(dist), bits, grid.lo, grid.hi, mine / brute,
          (grid.mean_squared_error - spread) / mine, mine / minmax_mse);
    }
  }
}

// The search against a dense grid of ranges in the histogram's own metric.
TEST(ChooseActivationGridTest, MseMatchesDenseSearchOnTheHistogram) {
  for (ActDist dist : {ActDist::kRelu, ActDist::kSkewed, ActDist::kOutliers}) {
    const auto x = RandomActivations(dist, 20000, 50 + static_cast<int>(dist));
    const Histogram h = HistogramOf(x);
    const float lo_end = std::min(h.lo(), 0.0f), hi_end = std::max(h.hi(), 0.0f);
    for (int bits : {2, 4, 8}) {
      SCOPED_TRACE(std::string(ActDistName(dist)) + " bits=" + std::to_string(bits));
      const ActivationGrid grid = ChooseActivationGrid(h, bits, RangeMethod::kMse);
      const int n = lo_end < 0 ? 160 : 4000;
      double dense = std::numeric_limits<double>::infinity();
      for (int i = 0; i <= (lo_end < 0 ? n : 0); ++i)
        for (int j = 1; j <= n; ++j)
          dense = std::min(dense, ActivationError(h, ActivationGridForRange(lo_end * i / n,
                                                                            hi_end * j / n, bits)));
      EXPECT_LE(grid.mean_squared_error, dense * (1 + 1e-3));
      std::printf("  %-8s bits=%d  search/dense %.5f\n", ActDistName(dist), bits,
                  grid.mean_squared_error / dense);
    }
  }
}

TEST(ChooseActivationGridTest, SpeedOn2048Bins) {
  for (ActDist dist : {ActDist::kRelu, ActDist::kSkewed}) {
    const auto x = RandomActivations(dist, 100000, 9);
    const Histogram h = HistogramOf(x);
    for (int bits : {2, 4, 8}) {
      const int reps = 20;
      ActivationGrid grid;
      const auto start = std::chrono::steady_clock::now();
      for (int r = 0; r < reps; ++r) grid = ChooseActivationGrid(h, bits, RangeMethod::kMse);
      const double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
              .count() /
          reps;
      EXPECT_LE(grid.mean_squared_error,
                ChooseActivationGrid(h, bits, RangeMethod::kMinMax).mean_squared_error);
      std::printf("  %-8s bits=%d: ChooseActivationGrid(kMse) on 2048 bins in %.2f ms\n",
                  ActDistName(dist), bits, ms);
    }
  }
}

TEST(ActivationGridTest, RangeToScaleAndZeroPoint) {
  ActivationGrid g = ActivationGridForRange(-1.0f, 3.0f, 8);
  EXPECT_EQ(g.scale, 4.0f / 255.0f);
  EXPECT_EQ(g.zero_point, 64);  // rne(63.75)
  EXPECT_EQ(g.lo, -1.0f);
  EXPECT_EQ(g.hi, 3.0f);
  g = ActivationGridForRange(0.5f, 2.0f, 4);  // widened to [0, 2]
  EXPECT_EQ(g.lo, 0.0f);
  EXPECT_EQ(g.scale, 2.0f / 15.0f);
  EXPECT_EQ(g.zero_point, 0);
  g = ActivationGridForRange(-2.0f, -1.0f, 2);  // widened to [-2, 0]
  EXPECT_EQ(g.hi, 0.0f);
  EXPECT_EQ(g.scale, 2.0f / 3.0f);
  EXPECT_EQ(g.zero_point, 3);
  g = ActivationGridForRange(-1.5f, 1.5f, 2);  // s = 1, rne(1.5) = 2
  EXPECT_EQ(g.scale, 1.0f);
  EXPECT_EQ(g.zero_point, 2);
  g = ActivationGridForRange(-2.5f, 0.5f, 2);  // rne(2.5) = 2
  EXPECT_EQ(g.zero_point, 2);
  g = ActivationGridForRange(0.0f, 0.0f, 8);
  EXPECT_EQ(g.scale, 1.0f);
  EXPECT_EQ(g.zero_point, 0);
  EXPECT_EQ(g.bits, 8);
}

// Uniform mass on [0, 1] with step s has E = s^2 / 12 (the end cells are half
// cells, each with one side's error), whatever the bin count.
TEST(ActivationGridTest, ErrorIntegratesBinsAsUniform) {
  for (int bins : {1, 7, 1000}) {
    Histogram h(0.0f, 1.0f, bins);
    std::vector<float> centers(bins);
    for (int b = 0; b < bins; ++b) centers[b] = (b + 0.5f) / bins;
    h.Add(centers.data(), bins);
    const ActivationGrid g = ActivationGridForRange(0.0f, 1.0f, 2);
    const double s = g.scale;
    EXPECT_NEAR(ActivationError(h, g), s * s / 12, 1e-9) << bins << " bins";
  }
  // Clipping: uniform on [0, 1] into [0, 0.5] at 1 bit (levels 0, 0.5): the
  // cells [0, .25) and [.25, .5) give 2 * .25^3 / 3, the clipped [.5, 1]
  // gives .5^3 / 3.
  Histogram h(0.0f, 1.0f, 4);
  const float quarter[] = {0.1f, 0.3f, 0.6f, 0.9f};
  h.Add(quarter, 4);
  const ActivationGrid g = ActivationGridForRange(0.0f, 0.5f, 1);
  EXPECT_NEAR(ActivationError(h, g), 2 * 0.015625 / 3 + 0.125 / 3, 1e-12);
  // A tensor of one value: exact.
  Histogram point(2.0f, 2.0f);
  const float twos[] = {2.0f, 2.0f, 2.0f};
  point.Add(twos, 3);
  const ActivationGrid pg = ChooseActivationGrid(point, 8, RangeMethod::kMse);
  EXPECT_EQ(pg.lo, 0.0f);
  EXPECT_EQ(pg.hi, 2.0f);
  EXPECT_LT(pg.mean_squared_error, 1e-12);
  const ActivationGrid off = ActivationGridForRange(0.0f, 3.0f, 1);  // levels 0, 3
  EXPECT_NEAR(ActivationError(point, off), 1.0, 1e-12);
}

TEST(ActivationGridTest, MinMaxAndPercentile) {
  const auto x = RandomActivations(ActDist::kOutliers, 50000, 77);
  const Histogram h = HistogramOf(x);
  const ActivationGrid minmax = ChooseActivationGrid(h, 8, RangeMethod::kMinMax);
  EXPECT_EQ(minmax.lo, h.lo());
  EXPECT_EQ(minmax.hi, h.hi());
  const ActivationGrid p = ChooseActivationGrid(h, 8, RangeMethod::kPercentile, 99.9);
  EXPECT_FLOAT_EQ(p.lo, static_cast<float>(h.Quantile(0.1)));
  EXPECT_FLOAT_EQ(p.hi, static_cast<float>(h.Quantile(99.9)));
  EXPECT_GT(p.lo, minmax.lo);
  EXPECT_LT(p.hi, minmax.hi);
  EXPECT_DOUBLE_EQ(p.mean_squared_error, ActivationError(h, p));
  // The sample quantile and the histogram's agree to a bin.
  std::vector<float> sorted = x;
  std::sort(sorted.begin(), sorted.end());
  const double bin = (h.hi() - h.lo()) / 2048.0;
  EXPECT_NEAR(h.Quantile(99.9), sorted[static_cast<size_t>(0.999 * sorted.size())], bin);
  EXPECT_NEAR(h.Quantile(50), sorted[sorted.size() / 2], bin);
  // Min/max of a ReLU tensor starts at 0; percentile keeps lo = 0 too.
  const Histogram relu = HistogramOf(RandomActivations(ActDist::kRelu, 5000, 1));
  EXPECT_EQ(ChooseActivationGrid(relu, 4, RangeMethod::kPercentile).lo, 0.0f);
  EXPECT_EQ(ChooseActivationGrid(relu, 4, RangeMethod::kMinMax).zero_point, 0);
}

TEST(HistogramTest, BinsAndQuantiles) {
  Histogram h(0.0f, 10.0f, 10);
  std::vector<float> v;
  for (int b = 0; b < 10; ++b) v.push_back(b + 0.5f);
  h.Add(v.data(), static_cast<int64_t>(v.size()));
  EXPECT_EQ(h.total(), 10.0);
  EXPECT_DOUBLE_EQ(h.Quantile(0), 0.0);
  EXPECT_DOUBLE_EQ(h.Quantile(25), 2.5);
  EXPECT_DOUBLE_EQ(h.Quantile(50), 5.0);
  EXPECT_DOUBLE_EQ(h.Quantile(100), 10.0);
  // Outside [lo, hi]: the first or last bin; the upper edge is in the last.
  const float outside[] = {-3.0f, 25.0f, 10.0f, 0.0f};
  h.Add(outside, 4);
  EXPECT_EQ(h.counts()[0], 3.0);
  EXPECT_EQ(h.counts()[9], 3.0);
  EXPECT_EQ(h.total(), 14.0);
  // Bins 0..3 hold 3 + 1 + 1 + 1 = 6 of 14; the 7th is all of bin 4.
  EXPECT_DOUBLE_EQ(h.Quantile(50), 5.0);
  // A tensor of one value.
  Histogram point(1.5f, 1.5f, 16);
  const float ones[] = {1.5f, 1.5f};
  point.Add(ones, 2);
  EXPECT_EQ(point.total(), 2.0);
  EXPECT_EQ(point.counts()[0], 2.0);
  EXPECT_EQ(point.Quantile(50), 1.5);
  // Empty.
  Histogram empty(-1.0f, 1.0f);
  EXPECT_EQ(empty.total(), 0.0);
  EXPECT_EQ(empty.counts().size(), 2048u);
  EXPECT_EQ(ChooseActivationGrid(empty, 8, RangeMethod::kMse).mean_squared_error, 0.0);
}

}  // namespace
}  // namespace lowbit::engine::quantize
