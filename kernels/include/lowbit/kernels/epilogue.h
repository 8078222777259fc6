// Output stage shared by all convolution kernels: turns exact int32
// accumulators of a finished tile into the destination format while the tile
// is still in L1 (the "fused epilogue"), so two low-bit layers never
// round-trip through a float tensor in memory.
//
// Per output channel c, with accumulator s (exact sum of weight value x
// activation code):
//   d = s - sum_offset[c]                          (int32, exact; d = s without sum_offset)
//   y = float(d) * scale[c] + bias[c]              (float; folded BN, scales)
//   y = activation(y)                              (see Activation)
// then, depending on the destination:
//   kInt32       : s itself (no float math, no sum_offset)  int32 NHWC [N][OH][OW][Cout]
//   kFloat       : y                               float NHWC
//   kCodes       : q = clamp(round_half_even(y / out_scale) + out_zero_point,
//                            0, 2^out_bits - 1)    uint8 NHWC, when out_scale > 0
//                  q = clamp(round_half_even(y * out_inv_scale) + out_zero_point, ...)
//                                                  when out_scale == 0 (the default)
//   kPairPlanes  : q written into a PairPlanesLayout (next LUT layer)
//   kBitPlanes   : q written into a BitPlanesLayout (next bit-serial layer)
// The float expressions are evaluated in exactly this order in float (no
// contraction into FMA; the kernels target is built with -ffp-contract=off)
// so kernels/ref reproduces them bit for bit. y / out_scale is the float
// quotient (IEEE division, rounded to nearest) rounded half to even: exactly
// ONNX QuantizeLinear (ONNX Runtime divides in float32), whatever the
// vector stages compute on the way (they multiply by 1 / out_scale and divide
// only near rounding ties: detail::code_bounds, kernels/src/int8_common.h).
//
// Fake-quantized (QDQ) layers: with activation codes a of zero point zp_a
// and integer weights w, sum(w * (a - zp_a)) = s - zp_a * sum(w[c]); passing
// sum_offset[c] = zp_a * sum(w[c]) makes d that exact difference, so the
// float math never sees the large uncentred s (float(s) rounds above 2^24 and
// a bias of -zp_a * sum(w) * scale[c] folded into float cancels
// catastrophically). d is formed in wrapping int32 arithmetic: exact
// whenever the true difference (the centred sum) fits int32.
#pragma once

#include <cstdint>

#include "lowbit/kernels/formats.h"

namespace lowbit::kernels {

enum class Activation : uint8_t {
  kNone,
  kRelu,
  kLeakyRelu,  // y < 0 ? y * alpha : y
  kClip,       // min(max(y, clip_min), clip_max); ReLU6 is clip(0, 6)
  kHardSwish,  // y * min(max(y + 3, 0), 6) / 6
  kSilu,       // y / (1 + exp(-y))
};

struct Epilogue {
  const float* scale = nullptr;  // [Cout]; required unless destination is kInt32
  const float* bias = nullptr;   // [Cout] or null (0)
  // [Cout] or null (0): subtracted from the int32 sum before the float math
  // (d = s - sum_offset[c], exact; see above). Not applied to kInt32.
  const int32_t* sum_offset = nullptr;
  Activation activation = Activation::kNone;
  float alpha = 0.0f;
  float clip_min = 0.0f;
  float clip_max = 0.0f;
  float out_inv_scale = 1.0f;  // 1 / scale of the next layer's activation codes
  // Scale of the next layer's activation codes. When > 0, codes are
  // round_half_even(y / out_scale) exactly (ONNX QuantizeLinear) and
  // out_inv_scale is ignored; 0 keeps y * out_inv_scale.
  float out_scale = 0.0f;
  int out_zero_point = 0;
  int out_bits = 8;  // 1..8 for kCodes, 1..2 for kPairPlanes, 1..4 for kBitPlanes
};

enum class Destination : uint8_t { kInt32, kFloat, kCodes, kPairPlanes, kBitPlanes };

struct OutputStage {
  Destination destination = Destination::kInt32;
  void* data = nullptr;  // base of the batch; per-image stride from the layout
  Epilogue epilogue;
  PairPlanesLayout pair_planes;  // for kPairPlanes: layout of the next layer's input
  BitPlanesLayout bit_planes;    // for kBitPlanes
};

// The float part of the epilogue for one value (shared by the output stage;
// the reference re-implements it independently): y of the sum of `channel`
// (sum_offset included).
float apply_epilogue(const Epilogue& epilogue, int channel, int32_t sum);
// The code of y: divided by out_scale when > 0, else times out_inv_scale.
uint8_t requantize(const Epilogue& epilogue, float y);

// Stores a tile of `pixels` consecutive output pixels of row out_y (starting at
// column out_x) for output channels [cout_begin, cout_begin + couts).
// acc[o * acc_channel_stride + i] is the sum for channel cout_begin + o and
// pixel out_x + i. couts <= 4 and cout_begin % 2 == 0 (pair writes).
void store_tile(const OutputStage& out, const ConvGeometry& geometry, int image, int out_y,
                int out_x, int pixels, int cout_begin, int couts, const int32_t* acc,
                int acc_channel_stride);

}  // namespace lowbit::kernels
