// Shape bookkeeping shared by the INT8 conv and depthwise kernels (compiled
// once, in a baseline translation unit; ISA files call it per tile).
#pragma once

#include <cstddef>
#include <cstdint>

#include "lowbit/kernels/conv.h"

namespace lowbit::kernels::detail {

inline constexpr int kInt8Tile = 6;  // output pixels per register tile
inline constexpr int kInt8MaxKernelH = 64;

// Output pixels are enumerated flat per image: f = y * out_width + x. Work
// item i = (image * pixel_groups + group) * cout_blocks + block.
struct Int8Plan {
  int out_height = 0, out_width = 0;
  size_t flat_pixels = 0;
  size_t pixel_groups = 0;
  int cout_blocks = 0;
  size_t items = 0;
  int row_pairs = 0;  // k-pairs along one kernel row: kernel_w * channel_stride / 2
  int row_quads = 0;  // conv_u8s8dot: k-quads along one kernel row (kernel_w * channel_stride / 4)
  // Element offset of kernel row ky from the window's top-left pixel.
  size_t row_offset[kInt8MaxKernelH] = {};
};
void make_int8_plan(const Int8ConvArgs& args, Int8Plan* plan);
// Same plan for the dot-product family (row_offset in bytes, row_quads set).
void make_int8_dot_plan(const Int8DotConvArgs& args, Int8Plan* plan);

// Element offset (within one image) of the top-left input pixel of the window
// of flat output pixel f.
inline size_t window_offset(const Int8ConvArgs& a, const Int8Plan& plan, size_t f) {
  const int y = int(f / plan.out_width), x = int(f % plan.out_width);
  return a.activation_layout.offset(y * a.geometry.stride, x * a.geometry.stride);
}

// Stores `pixels` (<= kInt8PixelGroup) consecutive flat output pixels starting
// at flat pixel f of `image` for the 16 output channels cout_begin..+15 (those
// < out_channels). acc is pixel-major: acc[i * 16 + o]. Runs that cross an
// output row are split; kInt32 with a full block is a straight copy, other
// destinations go through store_tile in 4-channel groups.
// max_couts (a multiple of 4) stores fewer channels of the block.
void store_pixel_major(const OutputStage& out, const ConvGeometry& geometry, int image, size_t f,
                       int out_width, int pixels, int cout_begin, const int32_t* acc,
                       int max_couts = kInt8CoutBlock);

// Whether the ISA files' vector kCodes output stage (int8_codes_*.h) applies:
// kCodes destinations with any activation but SiLU (exp stays scalar) and a
// zero point whose code bounds are exact floats.
inline bool codes_vectorizable(const OutputStage& out) {
  const int zp = out.epilogue.out_zero_point;
  return out.destination == Destination::kCodes && out.epilogue.activation != Activation::kSilu &&
         zp > -(1 << 24) && zp < (1 << 24) - 256;
}

// Bounds of v = y * out_inv_scale before the vector kCodes stage converts it:
// the code range [-zp, 2^out_bits - 1 - zp] (see int8_codes_avx512.h), with
// kRelu / kClip folded in when out_inv_scale > 0. Folding is exact: rounding
// is monotonic, so clip(y, lo, hi) * s == clamp(y * s, lo * s, hi * s) in
// float (relu: lo * s = 0), and clamp(clamp(v, a, b), c, d) ==
// clamp(v, clamp(a, c, d), clamp(b, c, d)) for a <= b, c <= d.
struct CodeBounds {
  float lo, hi;
  bool activation_folded;  // kNone, or kRelu / kClip included in [lo, hi]
};
inline CodeBounds code_bounds(const Epilogue& e) {
  const float lo = float(-e.out_zero_point), hi = float((1 << e.out_bits) - 1 - e.out_zero_point);
  const auto clampf = [&](float v) { return v < lo ? lo : (v > hi ? hi : v); };
  const float s = e.out_inv_scale;
  const bool positive = s > 0.0f && s <= 3.4e38f;
  if (e.activation == Activation::kNone) return {lo, hi, true};
  if (positive && e.activation == Activation::kRelu) return {clampf(0.0f), hi, true};
  if (positive && e.activation == Activation::kClip && e.clip_min <= e.clip_max)
    return {clampf(e.clip_min * s), clampf(e.clip_max * s), true};
  return {lo, hi, false};
}

// Asserts the kBitPlanes range rule of WorkRange (conv.h).
void check_work_range(const OutputStage& out, const WorkRange& range, size_t items,
                      size_t granule);

}  // namespace lowbit::kernels::detail

namespace lowbit::kernels::detail {

inline constexpr int kDwMaxTaps = 64;
inline constexpr int kDwRowChunk = 8;  // output pixels stored per store call

struct DwPlan {
  int out_height = 0, out_width = 0;
  int channel_blocks = 0;
  size_t items = 0;
  int taps = 0;
  // Element offset of tap t from the window's top-left pixel.
  size_t tap_offset[kDwMaxTaps] = {};
};
void make_dw_plan(const DwConvArgs& args, DwPlan* plan);

}  // namespace lowbit::kernels::detail
