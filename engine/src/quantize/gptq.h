// Error-compensating rounding of a conv's weights on a fixed grid (the
// optimal-brain-quantization / GPTQ method): the codes are chosen input by
// input, and each input's rounding error is spread over the inputs not yet
// rounded, weighted by the calibration inputs' second moments, so that the
// conv's outputs on calibration data, not its weights, stay close:
//   min over codes of  sum over samples ||(W - s Q) x||^2,   H = sum x x^T.
// Per output channel the grid (scale, bits) is the one QuantizeWeights chose.
#pragma once

#include <cstdint>
#include <vector>

#include "lowbit/engine/status.h"
#include "quantize/scales.h"

namespace lowbit::engine::quantize {

// The conv geometry input patches are read with (ONNX Conv attributes).
struct PatchGeometry {
  int64_t channels = 0;  // input channels (group 1)
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  int64_t k() const { return channels * kernel_h * kernel_w; }
};

// H = sum of x x^T over sampled input patches x (k = channels * kh * kw
// values, in the weights' [channel][kh][kw] order; zero padding included).
class PatchMoments {
 public:
  explicit PatchMoments(const PatchGeometry& geometry);
  // One frame of the conv's input, [channels][height][width]: `samples`
  // output positions spread evenly over the output (shifted by `frame`).
  void AddFrame(const float* input, int64_t height, int64_t width, int samples, int frame);

  const PatchGeometry& geometry() const { return geometry_; }
  const std::vector<double>& h() const { return h_; }  // [k][k], upper triangle valid
  int64_t count() const { return count_; }
  // U, the upper Cholesky factor of (H + damping)^-1 ([k][k], row i holds
  // U[i][j] for j >= i), computed once; empty when H is not definite. The
  // damping is 1% of H's mean diagonal.
  const std::vector<double>& InverseFactor() const;

 private:
  PatchGeometry geometry_;
  std::vector<double> h_;
  int64_t count_ = 0;
  mutable std::vector<double> inverse_factor_;
};

// Replaces grid->codes (and its errors) by error-compensated codes of
// `weights` [cout][k] on grid->scale / grid->bits. `moments.count()` must be
// > 0.
Status RoundWithMoments(const float* weights, int64_t cout, int64_t k, const PatchMoments& moments,
                        WeightGrid* grid);

}  // namespace lowbit::engine::quantize
