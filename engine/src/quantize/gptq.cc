#include "quantize/gptq.h"

#include <algorithm>
#include <cmath>

namespace lowbit::engine::quantize {
namespace {

// Lower Cholesky factor of the symmetric positive definite [n][n] `a`, in
// place (the upper triangle is left as garbage). False if not definite.
bool CholeskyLower(std::vector<double>* a, int64_t n) {
  double* m = a->data();
  for (int64_t j = 0; j < n; ++j) {
    double d = m[j * n + j];
    for (int64_t p = 0; p < j; ++p) d -= m[j * n + p] * m[j * n + p];
    if (!(d > 0)) return false;
    d = std::sqrt(d);
    m[j * n + j] = d;
    for (int64_t i = j + 1; i < n; ++i) {
      double v = m[i * n + j];
      const double* ri = m + i * n;
      const double* rj = m + j * n;
      for (int64_t p = 0; p < j; ++p) v -= ri[p] * rj[p];
      m[i * n + j] = v / d;
    }
  }
  return true;
}

// The transpose of the inverse of a lower triangular [n][n] matrix (lower
// triangle of `l`): row j of the result is column j of L^-1, by forward
// substitution (contiguous rows throughout).
std::vector<double> InverseLowerTransposed(const std::vector<double>& l, int64_t n) {
  std::vector<double> t(static_cast<size_t>(n * n), 0.0);
  for (int64_t j = 0; j < n; ++j) {
    double* x = t.data() + j * n;  // x[i] = (L^-1)[i][j], zero for i < j
    for (int64_t i = j; i < n; ++i) {
      const double* row = l.data() + i * n;
      double v = i == j ? 1.0 : 0.0;
      for (int64_t p = j; p < i; ++p) v -= row[p] * x[p];
      x[i] = v / row[i];
    }
  }
  return t;
}

int RoundToGrid(double w, float scale, int bits) {
  if (bits == 1) return w >= 0 ? 1 : -1;
  const double q = std::nearbyint(w / scale);
  return static_cast<int>(std::clamp(q, static_cast<double>(WeightCodeMin(bits)),
                                     static_cast<double>(WeightCodeMax(bits))));
}

}  // namespace

PatchMoments::PatchMoments(const PatchGeometry& geometry)
    : geometry_(geometry), h_(static_cast<size_t>(geometry.k() * geometry.k()), 0.0) {}

void PatchMoments::AddFrame(const float* input, int64_t height, int64_t width, int samples,
                            int frame) {
  const PatchGeometry& g = geometry_;
  const int64_t out_h =
      (height + g.pad_top + g.pad_bottom - g.dilation_h * (g.kernel_h - 1) - 1) / g.stride_h + 1;
  const int64_t out_w =
      (width + g.pad_left + g.pad_right - g.dilation_w * (g.kernel_w - 1) - 1) / g.stride_w + 1;
  const int64_t positions = out_h * out_w;
  if (positions <= 0 || samples <= 0) return;
  const int64_t k = g.k();
  const int64_t step = std::max<int64_t>(1, positions / samples);
  const int64_t first = (static_cast<int64_t>(frame) * 7919) % step;
  // The frame's patches as rows of `patches`, then H += patches^T patches
  // (float within a frame, double across frames).
  std::vector<float> patches;
  int64_t rows = 0;
  for (int64_t p = first; p < positions && rows < samples; p += step, ++rows) {
    const int64_t oy = p / out_w, ox = p % out_w;
    for (int64_t c = 0; c < g.channels; ++c)
      for (int64_t ky = 0; ky < g.kernel_h; ++ky)
        for (int64_t kx = 0; kx < g.kernel_w; ++kx) {
          const int64_t iy = oy * g.stride_h - g.pad_top + ky * g.dilation_h;
          const int64_t ix = ox * g.stride_w - g.pad_left + kx * g.dilation_w;
          const bool inside = iy >= 0 && iy < height && ix >= 0 && ix < width;
          patches.push_back(inside ? input[(c * height + iy) * width + ix] : 0.0f);
        }
  }
  std::vector<float> frame_h(static_cast<size_t>(k * k), 0.0f);
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = patches.data() + r * k;
    for (int64_t i = 0; i < k; ++i) {
      const float xi = x[i];
      if (xi == 0.0f) continue;
      float* row = frame_h.data() + i * k;
      for (int64_t j = i; j < k; ++j) row[j] += xi * x[j];
    }
  }
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = i; j < k; ++j) h_[i * k + j] += frame_h[i * k + j];
  count_ += rows;
}

const std::vector<double>& PatchMoments::InverseFactor() const {
  if (!inverse_factor_.empty() || count_ == 0) return inverse_factor_;
  const int64_t k = geometry_.k();
  // H, symmetric and damped, with its indices reversed: H~ = J H J. Inputs
  // that never vary get a unit diagonal.
  std::vector<double> reversed(static_cast<size_t>(k * k), 0.0);
  double diagonal = 0;
  for (int64_t i = 0; i < k; ++i) diagonal += h_[i * k + i];
  const double damp = 0.01 * diagonal / static_cast<double>(k) + 1e-12;
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = i; j < k; ++j) {
      double v = h_[i * k + j];
      if (i == j) v = (v > 0 ? v : 1.0) + damp;
      reversed[(k - 1 - i) * k + (k - 1 - j)] = reversed[(k - 1 - j) * k + (k - 1 - i)] = v;
    }
  // H~ = L L^T gives H = R R^T with R = J L J upper triangular, so
  // H^-1 = R^-T R^-1 = U^T U with U = R^-1, the upper Cholesky factor of
  // H^-1 that the rounding needs. R^-1 = ((R^T)^-1)^T: InverseLowerTransposed of R^T.
  if (!CholeskyLower(&reversed, k)) return inverse_factor_;
  std::vector<double> r_transposed(static_cast<size_t>(k * k), 0.0);
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j <= i; ++j)
      r_transposed[i * k + j] = reversed[(k - 1 - j) * k + (k - 1 - i)];
  inverse_factor_ = InverseLowerTransposed(r_transposed, k);
  return inverse_factor_;
}

Status RoundWithMoments(const float* weights, int64_t cout, int64_t k, const PatchMoments& moments,
                        WeightGrid* grid) {
  if (moments.count() == 0)
    return InvalidArgument("no calibration patches for error-compensating rounding");
  if (moments.geometry().k() != k || static_cast<int64_t>(grid->scale.size()) != cout)
    return InvalidArgument(
        "error-compensating rounding: weights, grid and patches disagree in size");
  const std::vector<double>& u = moments.InverseFactor();  // row i: U[i][j], j >= i
  if (u.empty()) return Internal("error-compensating rounding: the input moments are not definite");

  std::vector<double> w(weights, weights + cout * k);
  grid->codes.assign(static_cast<size_t>(cout * k), 0);
  for (int64_t i = 0; i < k; ++i) {
    const double* ui = u.data() + i * k;
    for (int64_t c = 0; c < cout; ++c) {
      double* wc = w.data() + c * k;
      const int q = RoundToGrid(wc[i], grid->scale[c], grid->bits);
      grid->codes[c * k + i] = static_cast<int8_t>(q);
      const double error = (wc[i] - q * static_cast<double>(grid->scale[c])) / ui[i];
      for (int64_t j = i + 1; j < k; ++j) wc[j] -= error * ui[j];
    }
  }
  double squared = 0, energy = 0;
  for (int64_t c = 0; c < cout; ++c)
    for (int64_t i = 0; i < k; ++i) {
      const double v = weights[c * k + i];
      const double d = v - grid->codes[c * k + i] * static_cast<double>(grid->scale[c]);
      squared += d * d;
      energy += v * v;
    }
  grid->squared_error = squared;
  grid->relative_error = energy > 0 ? squared / energy : 0;
  return Status::Ok();
}

}  // namespace lowbit::engine::quantize
