#include "conv_ref.h"

#include <cmath>

namespace lowbit::kernels::ref {

void conv(const ConvGeometry& g, const uint8_t* activations, const int8_t* weights,
          int64_t* out) {
  const int oh = g.out_height(), ow = g.out_width();
  const int cin_g = g.in_channels / g.groups, cout_g = g.out_channels / g.groups;
  for (int n = 0; n < g.batch; ++n)
    for (int oy = 0; oy < oh; ++oy)
      for (int ox = 0; ox < ow; ++ox)
        for (int o = 0; o < g.out_channels; ++o) {
          const int c0 = (o / cout_g) * cin_g;  // first input channel of o's group
          int64_t sum = 0;
          for (int ky = 0; ky < g.kernel_h; ++ky)
            for (int kx = 0; kx < g.kernel_w; ++kx) {
              const int y = oy * g.stride + ky - g.pad, x = ox * g.stride + kx - g.pad;
              if (y < 0 || y >= g.height || x < 0 || x >= g.width) continue;
              for (int c = 0; c < cin_g; ++c) {
                const int64_t a = activations[((int64_t(n) * g.height + y) * g.width + x) *
                                                  g.in_channels + c0 + c];
                const int64_t w =
                    weights[((int64_t(o) * g.kernel_h + ky) * g.kernel_w + kx) * cin_g + c];
                sum += w * a;
              }
            }
          out[((int64_t(n) * oh + oy) * ow + ox) * g.out_channels + o] = sum;
        }
}

float epilogue_value(const Epilogue& e, int channel, int64_t sum) {
  // The centred sum in int64 (exact), then one rounding to float.
  if (e.sum_offset) sum -= e.sum_offset[channel];
  float y = float(sum) * e.scale[channel];
  if (e.bias) y = y + e.bias[channel];
  if (e.activation == Activation::kRelu) {
    if (y < 0.0f) y = 0.0f;
  } else if (e.activation == Activation::kLeakyRelu) {
    if (y < 0.0f) y = y * e.alpha;
  } else if (e.activation == Activation::kClip) {
    if (y < e.clip_min) y = e.clip_min;
    if (y > e.clip_max) y = e.clip_max;
  } else if (e.activation == Activation::kHardSwish) {
    float t = y + 3.0f;
    if (t < 0.0f) t = 0.0f;
    if (t > 6.0f) t = 6.0f;
    y = y * t / 6.0f;
  } else if (e.activation == Activation::kSilu) {
    y = y / (1.0f + std::exp(-y));
  }
  return y;
}

uint8_t epilogue_code(const Epilogue& e, int channel, int64_t sum) {
  const float y = epilogue_value(e, channel, sum);
  // ONNX QuantizeLinear: the float32 quotient (one IEEE division, as ONNX
  // Runtime computes it; a double quotient would round differently where
  // y / out_scale lies within half a float ulp of a half-integer), rounded
  // half to even. Rounding and clamping in double: exact for any float.
  const float v = e.out_scale > 0.0f ? y / e.out_scale : y * e.out_inv_scale;
  double q = std::nearbyint(double(v)) + e.out_zero_point;
  const double max_code = double((1 << e.out_bits) - 1);
  if (q < 0.0) q = 0.0;
  if (q > max_code) q = max_code;
  return uint8_t(q);
}

}  // namespace lowbit::kernels::ref
