// Shape bookkeeping shared by the INT8 conv and depthwise kernels (compiled
// once, in a baseline translation unit; ISA files call it per tile).
#pragma once

#include <cmath>
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

// Window starts in `image` of `count` consecutive flat output pixels from
// f0, stepping x and y without a division per pixel. Entries from `pixels`
// on repeat the last real pixel's: a short tile is computed whole and its
// extra pixels dropped. Args: Int8ConvArgs or Int8DotConvArgs.
template <typename Args>
inline void tile_windows(const Args& a, const Int8Plan& plan, const uint8_t* image, size_t f0,
                         int pixels, int count, const uint8_t** win) {
  int y = int(f0 / plan.out_width), x = int(f0 % plan.out_width);
  for (int i = 0; i < count; ++i) {
    win[i] = image + a.activation_layout.offset(y * a.geometry.stride, x * a.geometry.stride);
    if (i + 1 < pixels && ++x == plan.out_width) x = 0, ++y;
  }
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

// Whether the vector requantization (int8_codes_*.h, tile_codes_*.h)
// applies to these epilogue parameters: any activation but SiLU (exp stays
// scalar) and a zero point whose code bounds are exact floats; with
// out_scale > 0 (exact division) also a zero point below 2^20 and a scale in
// [2^-100, 2^100] (so 1 / out_scale and the tie window below are normal
// floats). Everything else goes to the scalar store_tile.
inline bool requant_vectorizable(const Epilogue& e) {
  const int zp = e.out_zero_point;
  if (e.activation == Activation::kSilu || zp <= -(1 << 24) || zp >= (1 << 24) - 256) return false;
  if (e.out_scale == 0.0f) return true;
  return zp > -(1 << 20) && zp < (1 << 20) - 256 && e.out_scale >= 0x1p-100f &&
         e.out_scale <= 0x1p100f;
}

// Whether the INT8 kernels' vector kCodes output stage applies.
inline bool codes_vectorizable(const OutputStage& out) {
  return out.destination == Destination::kCodes && requant_vectorizable(out.epilogue);
}

// Constants of the vector requantization: v = y * multiplier, clamped in
// float to [lo, hi], q = rne(v) (cvtps2dq / fcvtns) + out_zero_point.
//
// Multiplier mode (out_scale == 0): multiplier = out_inv_scale and [lo, hi]
// = the code range [-zp, 2^out_bits - 1 - zp], with kRelu / kClip folded in
// when out_inv_scale > 0. Folding is exact: rounding is monotonic, so
// clip(y, a, b) * s == clamp(y * s, a * s, b * s) in float (relu: 0 * s = 0),
// and clamp(clamp(v, a, b), c, d) == clamp(v, clamp(a, c, d), clamp(b, c, d))
// for a <= b, c <= d. The clamp before the conversion equals the clamp of the
// code after it (monotonic rounding, integer code bounds) and keeps the int32
// conversion in range.
//
// Exact mode (out_scale > 0, requant_vectorizable): the code must be
// Q = rne(D), D = fl(y / out_scale) the float quotient. Division is slow in
// vectors, so v = fl(y * inv), inv = fl(1 / out_scale), and only vectors with
// a lane near a rounding boundary divide. With z = y / out_scale (real) and
// u = 2^-24: v = z (1 + e1)(1 + e2) and D = z (1 + e3), |ei| <= u, so
// |v - D| <= 3.01 u |z| < 4 u M = M 2^-22 for |v| <= M = max(|lo|, |hi|)
// (< 2^20). Hence if |v - rne(v)| <= tie_window = 0.5 - (M + 1) 2^-21, D lies
// strictly inside the same unit interval around rne(v) and Q = rne(v); v -
// rne(v) is computed exactly (|v| < 2^22, so the difference of v and an
// integer is a float). Otherwise the vector is recomputed as
// clamp(y / out_scale, lo, hi), i.e. D itself, and rounded. A clamped v is an
// integer (no recomputation) and still right: v < lo means
// z < lo + 2.01 u |lo| < lo + 1/4, so D < lo + 1/2 and Q <= lo (the same
// above hi). A lane within (M + 1) 2^-21 of a half-integer triggers the
// division: about 2^-13..2^-12 of the values for 8-bit codes.
// (A correction by one code from the exact residual fma(q +- 1/2, s, -y)
// would round the real quotient y / s instead of D: they differ where y / s
// lies within half a float ulp of a half-integer, fl(y / s) then being the
// tie itself; on near-tie data that happens about twice as often as y * inv
// and D round differently, tests/kernels/conv_exact_requant_test.cc.)
// The bounds are integers in exact mode: kRelu folds as max(lo, 0), kClip as
// [rne(fl(clip_min / s)), rne(fl(clip_max / s))] clamped to the code range,
// exact because fl(clip(y, a, b) / s) == clamp(fl(y / s), fl(a / s),
// fl(b / s)) and rne commutes with clamps to integers (monotonic).
struct CodeBounds {
  float lo, hi;            // bounds of v, in code units minus the zero point
  bool activation_folded;  // kNone, or kRelu / kClip included in [lo, hi]
  float multiplier;        // out_inv_scale, or fl(1 / out_scale) in exact mode
  bool exact;              // out_scale > 0: near-tie vectors divide
  float divisor;           // exact mode: out_scale
  float tie_window;        // exact mode: |v - rne(v)| above it divides
};
inline CodeBounds code_bounds(const Epilogue& e) {
  const float lo = float(-e.out_zero_point), hi = float((1 << e.out_bits) - 1 - e.out_zero_point);
  const auto clampf = [&](float v) { return v < lo ? lo : (v > hi ? hi : v); };
  CodeBounds b{lo, hi, false, e.out_inv_scale, false, 0.0f, 0.0f};
  if (e.out_scale > 0.0f) {
    const float s = e.out_scale;
    b.exact = true;
    b.multiplier = 1.0f / s;
    b.divisor = s;
    if (e.activation == Activation::kNone) {
      b.activation_folded = true;
    } else if (e.activation == Activation::kRelu) {
      b.lo = clampf(0.0f);
      b.activation_folded = true;
    } else if (e.activation == Activation::kClip && e.clip_min <= e.clip_max) {
      b.lo = std::nearbyint(clampf(e.clip_min / s));
      b.hi = std::nearbyint(clampf(e.clip_max / s));
      b.activation_folded = true;
    }
    const float m = std::fabs(b.lo) > std::fabs(b.hi) ? std::fabs(b.lo) : std::fabs(b.hi);
    b.tie_window = 0.5f - (m + 1.0f) * 0x1p-21f;
    return b;
  }
  const float s = e.out_inv_scale;
  const bool positive = s > 0.0f && s <= 3.4e38f;
  if (e.activation == Activation::kNone) {
    b.activation_folded = true;
  } else if (positive && e.activation == Activation::kRelu) {
    b.lo = clampf(0.0f);
    b.activation_folded = true;
  } else if (positive && e.activation == Activation::kClip && e.clip_min <= e.clip_max) {
    b.lo = clampf(e.clip_min * s);
    b.hi = clampf(e.clip_max * s);
    b.activation_folded = true;
  }
  return b;
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
