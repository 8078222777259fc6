// Quantization grids for `lowbit quantize`: how each weight channel and each
// activation tensor is mapped onto integer codes, and the searches that
// choose the grid (minimum mean-squared error, min/max, percentile).
//
// Every grid here is one the ONNX operators express exactly, so the QCDQ
// model lowbit quantize writes computes the same values in ONNX Runtime:
//
// Weights: signed, symmetric, per output channel (a row of `k` values):
//   codes q = clamp(rne(w / s), qmin, qmax) with s > 0, stored as int8;
//   bits >= 2: narrow range qmin = -(2^(b-1) - 1), qmax = 2^(b-1) - 1
//              (bits 2 is ternary, {-1, 0, 1});
//   bits 1:    binary sign codes {-1, +1} (w >= 0 -> +1), qmin = -1, qmax = 1.
//   The value of a code is q * s (DequantizeLinear, zero point 0, axis 0).
// Activations: asymmetric unsigned per tensor, codes 0 .. 2^b - 1 over a range
// [lo, hi] with lo <= 0 <= hi (real 0 is exactly code zero_point, so zero
// padding stays exact):
//   s = (hi - lo) / (2^b - 1) (float32), zero_point = clamp(rne(-lo / s), 0, 2^b - 1),
//   q = clamp(rne(x / s) + zero_point, 0, 2^b - 1), value (q - zero_point) * s
//   (QuantizeLinear -> Clip -> DequantizeLinear).
// rne is round half to even, as ONNX QuantizeLinear rounds.
#pragma once

#include <cstdint>
#include <vector>

#include "lowbit/engine/status.h"

namespace lowbit::engine::quantize {

// How a clipping range is chosen.
enum class RangeMethod {
  kMinMax,      // the observed extremes: nothing clips
  kPercentile,  // the `percentile` and (100 - percentile) quantiles of the values
  kMse,         // the range whose fake quantization has the least E[(x - Q(x))^2]
};

// Smallest and largest code of a signed weight grid (see above).
int WeightCodeMin(int bits);
int WeightCodeMax(int bits);

// One weight tensor [cout][k] (row-major: a conv's OIHW weights with
// k = I * H * W) quantized per output channel.
struct WeightGrid {
  int bits = 8;
  std::vector<float> scale;   // [cout], every scale > 0 (an all-zero row gets 1)
  std::vector<int8_t> codes;  // [cout][k], within [WeightCodeMin(bits), WeightCodeMax(bits)]
  // Sum over the tensor of (w - q * s)^2, and the same divided by sum of w^2
  // (0 for an all-zero tensor).
  double squared_error = 0;
  double relative_error = 0;
};

// Quantizes `weights` [cout][k] at `bits` (1..8) per output channel.
//   kMinMax:     s = max|w| / qmax (bits 1: s = mean|w|, the L2-optimal scale
//                of sign codes, for every method).
//   kPercentile: s = quantile_p(|w|) / qmax, `percentile` in (0, 100].
//   kMse:        the s minimising sum (w - q * s)^2 per channel: a search over
//                clipping ratios of max|w| refined around the best (the error
//                is piecewise smooth in s, so a grid alone misses the optimum
//                by up to a grid step), then the least-squares s for the
//                chosen codes when that lowers the error further.
// Invalid arguments (bits outside 1..8, cout or k < 1, percentile outside
// (0, 100]) are an InvalidArgument status.
StatusOr<WeightGrid> QuantizeWeights(const float* weights, int64_t cout, int64_t k, int bits,
                                     RangeMethod method, double percentile = 99.99);

// The residual pair of the MMSE paper: W ~ s1 * q1 + s2 * q2 with q1 = the
// `bits1` grid of W (kMse) and q2 a `bits2` grid of the residual
// R = W - s1 * q1. The two scales of a channel are tied by an integer
// s1 = multiplier * s2 (multiplier >= 1), so a convolution with both is
//   s2 * (multiplier * sum(q1 * x) + sum(q2 * x))
// in one int32 accumulator. The multiplier per channel is the one in
// [1, 2^(bits2 + 1)] whose pair has the least squared error.
struct ResidualWeightGrid {
  WeightGrid first;   // q1, s1
  WeightGrid second;  // q2, s2 (second.scale[c] * multiplier[c] == first.scale[c] in float32)
  std::vector<int32_t> multiplier;  // [cout]
  double squared_error = 0;         // of the pair
  double relative_error = 0;
};
StatusOr<ResidualWeightGrid> QuantizeWeightsResidual(const float* weights, int64_t cout, int64_t k,
                                                     int bits1, int bits2);

// Values of one activation tensor over the calibration frames, binned: bin i
// of `bins` covers [lo + i * width, lo + (i + 1) * width), width = (hi - lo) /
// bins; values outside [lo, hi] count in the first or last bin. Built in two
// passes (the observed min/max first, then Add), so every frame lands in one
// fixed binning.
class Histogram {
 public:
  // lo <= hi; a tensor whose values are all equal has lo == hi (one value).
  Histogram(float lo, float hi, int bins = 2048);
  void Add(const float* values, int64_t count);

  float lo() const { return lo_; }
  float hi() const { return hi_; }
  const std::vector<double>& counts() const { return counts_; }
  double total() const { return total_; }
  // The value below which `percent` of the values lie (linear within a bin).
  double Quantile(double percent) const;

 private:
  float lo_, hi_;
  std::vector<double> counts_;
  double total_ = 0;
};

// An activation grid (see above).
struct ActivationGrid {
  int bits = 8;
  float lo = 0, hi = 0;  // the clipping range, lo <= 0 <= hi
  float scale = 1;
  int zero_point = 0;
  // E[(x - Q(x))^2] over the histogram (each bin's values taken as spread
  // uniformly over the bin).
  double mean_squared_error = 0;
};

// scale and zero point for [lo, hi] (widened to include 0) at `bits`, exactly
// as the comment at the top computes them; a zero-width range gets scale 1.
ActivationGrid ActivationGridForRange(float lo, float hi, int bits);
// E[(x - Q(x))^2] of `grid` over `histogram`.
double ActivationError(const Histogram& histogram, const ActivationGrid& grid);
// Chooses the clipping range of one tensor at `bits` (1..8):
//   kMinMax:     [min, max] observed;
//   kPercentile: [quantile(100 - p), quantile(p)];
//   kMse:        the [lo, hi] within [min, max] of least ActivationError: lo
//                and hi searched jointly (a tensor with min >= 0 keeps lo = 0).
ActivationGrid ChooseActivationGrid(const Histogram& histogram, int bits, RangeMethod method,
                                    double percentile = 99.99);

}  // namespace lowbit::engine::quantize
