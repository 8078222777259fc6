// Error-compensating rounding (quantize/gptq.h): the patch moments are the
// conv's input second moments, U is the Cholesky factor of their inverse,
// and the rounding lowers the conv's output error below nearest rounding's.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "quantize/gptq.h"
#include "quantize/scales.h"

namespace lowbit::engine::quantize {
namespace {

// Channels correlated through a shared component, as real feature maps are.
std::vector<float> CorrelatedInput(int64_t channels, int64_t h, int64_t w, std::mt19937* rng) {
  std::normal_distribution<float> normal(0, 1);
  std::vector<float> shared(h * w), input(channels * h * w);
  for (auto& v : shared) v = normal(*rng);
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t i = 0; i < h * w; ++i)
      input[c * h * w + i] = 0.8f * shared[i] + 0.6f * normal(*rng) + 0.1f * c;
  return input;
}

PatchGeometry Geometry3x3(int64_t channels) {
  PatchGeometry g;
  g.channels = channels;
  g.kernel_h = g.kernel_w = 3;
  g.pad_top = g.pad_left = g.pad_bottom = g.pad_right = 1;
  return g;
}

// sum over patches ||(W - W_q) x||^2 = sum_c d_c^T H d_c.
double OutputError(const std::vector<float>& w, const WeightGrid& grid,
                   const std::vector<double>& h, int64_t cout, int64_t k) {
  double total = 0;
  std::vector<double> d(k);
  for (int64_t c = 0; c < cout; ++c) {
    for (int64_t i = 0; i < k; ++i)
      d[i] = w[c * k + i] - grid.codes[c * k + i] * double{grid.scale[c]};
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j < k; ++j) total += d[i] * d[j] * h[std::min(i, j) * k + std::max(i, j)];
  }
  return total;
}

TEST(PatchMoments, AreTheSumOfPatchOuterProducts) {
  std::mt19937 rng(3);
  const PatchGeometry g = Geometry3x3(3);
  const int64_t height = 6, width = 5, k = g.k();
  PatchMoments moments(g);
  const auto input = CorrelatedInput(3, height, width, &rng);
  moments.AddFrame(input.data(), height, width, /*samples=*/1000, /*frame=*/0);  // every position
  ASSERT_EQ(moments.count(), height * width);
  std::vector<double> expected(k * k, 0.0);
  for (int64_t oy = 0; oy < height; ++oy)
    for (int64_t ox = 0; ox < width; ++ox) {
      std::vector<double> x;
      for (int64_t c = 0; c < 3; ++c)
        for (int64_t ky = 0; ky < 3; ++ky)
          for (int64_t kx = 0; kx < 3; ++kx) {
            const int64_t iy = oy - 1 + ky, ix = ox - 1 + kx;
            x.push_back(iy >= 0 && iy < height && ix >= 0 && ix < width
                            ? input[(c * height + iy) * width + ix]
                            : 0);
          }
      for (int64_t i = 0; i < k; ++i)
        for (int64_t j = i; j < k; ++j) expected[i * k + j] += x[i] * x[j];
    }
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = i; j < k; ++j)
      EXPECT_NEAR(moments.h()[i * k + j], expected[i * k + j],
                  1e-4 * (1 + std::fabs(expected[i * k + j])));
}

TEST(PatchMoments, InverseFactorIsTheCholeskyFactorOfTheDampedInverse) {
  std::mt19937 rng(5);
  const PatchGeometry g = Geometry3x3(4);
  const int64_t k = g.k();
  PatchMoments moments(g);
  for (int frame = 0; frame < 4; ++frame) {
    const auto input = CorrelatedInput(4, 12, 12, &rng);
    moments.AddFrame(input.data(), 12, 12, 64, frame);
  }
  const auto& u = moments.InverseFactor();
  ASSERT_EQ(static_cast<int64_t>(u.size()), k * k);
  std::vector<double> h(k * k);
  double diagonal = 0;
  for (int64_t i = 0; i < k; ++i) diagonal += moments.h()[i * k + i];
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < k; ++j) h[i * k + j] = moments.h()[std::min(i, j) * k + std::max(i, j)];
  for (int64_t i = 0; i < k; ++i) h[i * k + i] += 0.01 * diagonal / k + 1e-12;
  // (H + damp) U^T U = I, U upper triangular.
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < i; ++j) EXPECT_EQ(u[i * k + j], 0.0);
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < k; ++j) {
      double v = 0;
      for (int64_t p = 0; p < k; ++p) {
        double inverse_pj = 0;  // (U^T U)[p][j]
        for (int64_t q = 0; q <= std::min(p, j); ++q) inverse_pj += u[q * k + p] * u[q * k + j];
        v += h[i * k + p] * inverse_pj;
      }
      EXPECT_NEAR(v, i == j ? 1.0 : 0.0, 1e-8) << i << "," << j;
    }
}

TEST(RoundWithMoments, LowersTheOutputErrorBelowNearestRounding) {
  std::mt19937 rng(9);
  const int64_t channels = 8, cout = 16;
  const PatchGeometry g = Geometry3x3(channels);
  const int64_t k = g.k();
  PatchMoments moments(g);
  for (int frame = 0; frame < 8; ++frame) {
    const auto input = CorrelatedInput(channels, 16, 16, &rng);
    moments.AddFrame(input.data(), 16, 16, 128, frame);
  }
  std::normal_distribution<float> normal(0, 0.1f);
  std::vector<float> w(cout * k);
  for (auto& v : w) v = normal(rng);
  for (int bits : {2, 3, 4}) {
    auto nearest = QuantizeWeights(w.data(), cout, k, bits, RangeMethod::kMse);
    ASSERT_TRUE(nearest.ok());
    WeightGrid compensated = *nearest;
    ASSERT_TRUE(RoundWithMoments(w.data(), cout, k, moments, &compensated).ok());
    for (int8_t q : compensated.codes) {
      EXPECT_GE(q, WeightCodeMin(bits));
      EXPECT_LE(q, WeightCodeMax(bits));
    }
    const double before = OutputError(w, *nearest, moments.h(), cout, k);
    const double after = OutputError(w, compensated, moments.h(), cout, k);
    EXPECT_LT(after, 0.8 * before)
        << bits << " bits: output error " << after << " vs nearest " << before;
    // The weights themselves move further from W: the error went where the inputs do not look.
    EXPECT_GT(compensated.squared_error, nearest->squared_error);
  }
}

TEST(RoundWithMoments, RefusesMismatchedSizesAndEmptyMoments) {
  PatchMoments moments(Geometry3x3(2));
  std::vector<float> w(4 * 18, 0.1f);
  auto grid = QuantizeWeights(w.data(), 4, 18, 4, RangeMethod::kMse);
  ASSERT_TRUE(grid.ok());
  EXPECT_FALSE(RoundWithMoments(w.data(), 4, 18, moments, &*grid).ok());  // no patches
  std::vector<float> input(2 * 4 * 4, 1.0f);
  moments.AddFrame(input.data(), 4, 4, 16, 0);
  EXPECT_FALSE(RoundWithMoments(w.data(), 2, 36, moments, &*grid).ok());  // k differs
}

}  // namespace
}  // namespace lowbit::engine::quantize
