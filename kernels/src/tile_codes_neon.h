// Vectorised kCodes / kFloat output stage for the channel-major tiles of the
// low-bit kernels, AArch64 NEON: acc[o * stride + i] is the exact sum of
// output channel cout_begin + o (o < 4) at pixel out_x + i of output row
// out_y (the store_tile contract, epilogue.h). Same arithmetic and order as
// tile_codes_avx2.h / epilogue.h, 4 lanes at a time: y = float(s -
// sum_offset[c]) * scale[c] (+ bias[c]), activation; codes: v = y *
// multiplier clamped in float to detail::code_bounds (activation folded in
// where exact), q = fcvtns(v) + zp (round half to even, as lrint in the
// default rounding mode); in the exact mode (out_scale > 0) vectors with a
// lane near a half-integer are recomputed by division (detail::code_bounds
// states why that is round_half_even(y / out_scale) on every lane). No FMA:
// the kernels target is built with -ffp-contract=off. SiLU has no vector form
// (exp) and goes to the scalar store_tile.
//
// Layout work: 4 pixels x 4 channels per step. Codes are narrowed to bytes
// ([channel][4 pixels]) and made pixel-major by one vqtbl1q_u8, then stored 4
// bytes per pixel (one 16-byte store when Cout == 4); floats are transposed
// 4x4 (trn1/trn2) and stored 16 bytes per pixel. Pixel tails are read from a
// zero-padded copy; no branch depends on a value.
#pragma once

#include <arm_neon.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "int8_common.h"
#include "lowbit/kernels/epilogue.h"

namespace lowbit::kernels {
namespace {

// detail::code_bounds as vectors: v = clamp(y * multiplier, lo, hi).
struct RequantNeon {
  float32x4_t lo, hi, multiplier;
  float32x4_t divisor, window;  // exact mode: near-tie vectors use y / divisor
  bool exact;
};

inline RequantNeon make_requant_neon(const detail::CodeBounds& b) {
  RequantNeon r;
  r.lo = vdupq_n_f32(b.lo);
  r.hi = vdupq_n_f32(b.hi);
  r.multiplier = vdupq_n_f32(b.multiplier);
  r.divisor = vdupq_n_f32(b.exact ? b.divisor : 1.0f);
  r.window = vdupq_n_f32(b.tie_window);
  r.exact = b.exact;
  return r;
}

// The 4 lanes of y -> rne(clamp(v, lo, hi)) as int32 (the code minus the zero point).
inline int32x4_t requant_lanes_neon(const RequantNeon& r, float32x4_t y) {
  const float32x4_t v = vminq_f32(vmaxq_f32(vmulq_f32(y, r.multiplier), r.lo), r.hi);
  const int32x4_t q = vcvtnq_s32_f32(v);
  if (!r.exact) return q;
  // |v - rne(v)| > window: some lane is near a half-integer, divide.
  const uint32x4_t near = vcagtq_f32(vsubq_f32(v, vcvtq_f32_s32(q)), r.window);
  if (__builtin_expect(vmaxvq_u32(near) == 0, 1)) return q;
  return vcvtnq_s32_f32(vminq_f32(vmaxq_f32(vdivq_f32(y, r.divisor), r.lo), r.hi));
}

// Per-call constants of a tile output stage (built once per kernel call).
struct TileEpilogueNeon {
  const float* scale = nullptr;     // [Cout]
  const float* bias = nullptr;      // [Cout] or null (then nothing is added)
  const int32_t* offset = nullptr;  // Epilogue::sum_offset [Cout] or null (nothing subtracted)
  float32x4_t alpha, clip_lo, clip_hi;
  RequantNeon requant;  // detail::code_bounds
  int32x4_t zero_point;
  Activation activation = Activation::kNone;  // for codes: kNone when folded into the bounds
  Destination destination = Destination::kInt32;
  bool vector = false;  // false: the scalar store_tile handles this stage
};

inline TileEpilogueNeon make_tile_epilogue_neon(const OutputStage& out) {
  TileEpilogueNeon k;
  const Epilogue& e = out.epilogue;
  k.alpha = k.clip_lo = k.clip_hi = vdupq_n_f32(0.0f);
  k.zero_point = vdupq_n_s32(0);
  k.destination = out.destination;
  const int zp = e.out_zero_point;
  const detail::CodeBounds b = detail::code_bounds(e);
  k.requant = make_requant_neon(b);
  if (out.destination == Destination::kFloat) {
    k.vector = e.activation != Activation::kSilu;
    k.activation = e.activation;
  } else if (out.destination == Destination::kCodes) {
    k.vector = detail::requant_vectorizable(e);
    k.activation = b.activation_folded ? Activation::kNone : e.activation;
  }
  if (!k.vector) return k;
  k.scale = e.scale;
  k.bias = e.bias;
  k.offset = e.sum_offset;
  k.alpha = vdupq_n_f32(e.alpha);
  k.clip_lo = vdupq_n_f32(e.clip_min);
  k.clip_hi = vdupq_n_f32(e.clip_max);
  k.zero_point = vdupq_n_s32(zp);
  return k;
}

// y = activation(float(s - offset) * scale + bias) for 4 lanes of one channel.
template <Activation A>
inline float32x4_t tile_value_neon(const TileEpilogueNeon& k, int32x4_t s, float32x4_t scale,
                                   float32x4_t bias, int32x4_t offset) {
  const float32x4_t zero = vdupq_n_f32(0.0f);
  if (k.offset) s = vsubq_s32(s, offset);
  float32x4_t y = vmulq_f32(vcvtq_f32_s32(s), scale);
  if (k.bias) y = vaddq_f32(y, bias);
  if constexpr (A == Activation::kRelu) {
    y = vbslq_f32(vcltq_f32(y, zero), zero, y);
  } else if constexpr (A == Activation::kLeakyRelu) {
    y = vbslq_f32(vcltq_f32(y, zero), vmulq_f32(y, k.alpha), y);
  } else if constexpr (A == Activation::kClip) {
    const float32x4_t hi = vbslq_f32(vcgtq_f32(y, k.clip_hi), k.clip_hi, y);
    y = vbslq_f32(vcltq_f32(y, k.clip_lo), k.clip_lo, hi);
  } else if constexpr (A == Activation::kHardSwish) {
    const float32x4_t six = vdupq_n_f32(6.0f);
    float32x4_t t = vaddq_f32(y, vdupq_n_f32(3.0f));
    const float32x4_t hi = vbslq_f32(vcgtq_f32(t, six), six, t);
    t = vbslq_f32(vcltq_f32(t, zero), zero, hi);
    y = vdivq_f32(vmulq_f32(y, t), six);
  }
  return y;
}

// 4 sums of one channel -> 4 codes in [0, 2^out_bits - 1].
template <Activation A>
inline int32x4_t tile_codes_neon(const TileEpilogueNeon& k, int32x4_t s, float32x4_t scale,
                                 float32x4_t bias, int32x4_t offset) {
  return vaddq_s32(requant_lanes_neon(k.requant, tile_value_neon<A>(k, s, scale, bias, offset)),
                   k.zero_point);
}

// Rows and broadcast constants of the (up to) 4 channels of a tile; channels
// past `couts` repeat channel 0 (computed, never stored).
struct TileChannelsNeon {
  const int32_t* row[4];
  float32x4_t scale[4], bias[4];
  int32x4_t offset[4];
};
inline TileChannelsNeon tile_channels_neon(const TileEpilogueNeon& k, int cout_begin, int couts,
                                           const int32_t* acc, int stride) {
  TileChannelsNeon t;
  for (int o = 0; o < 4; ++o) {
    const int c = o < couts ? o : 0;
    t.row[o] = acc + size_t(c) * stride;
    t.scale[o] = vdupq_n_f32(k.scale[cout_begin + c]);
    t.bias[o] = vdupq_n_f32(k.bias ? k.bias[cout_begin + c] : 0.0f);
    t.offset[o] = vdupq_n_s32(k.offset ? k.offset[cout_begin + c] : 0);
  }
  return t;
}

// Sums of pixels i..i+3 of channel o; lanes >= n (n <= 4) are zero.
inline int32x4_t tile_sums_neon(const TileChannelsNeon& t, int o, int i, int n) {
  if (n == 4) return vld1q_s32(t.row[o] + i);
  int32_t pad[4] = {0, 0, 0, 0};
  for (int p = 0; p < n; ++p) pad[p] = t.row[o][i + p];
  return vld1q_s32(pad);
}

// kCodes: uint8 NHWC.
template <Activation A>
void store_codes_cm_neon(const TileEpilogueNeon& k, const OutputStage& out, const ConvGeometry& g,
                         int image, int out_y, int out_x, int pixels, int cout_begin, int couts,
                         const int32_t* acc, int stride) {
  const int cout = g.out_channels;
  if (cout_begin + couts > cout) couts = cout - cout_begin;
  const TileChannelsNeon t = tile_channels_neon(k, cout_begin, couts, acc, stride);
  uint8_t* dst = static_cast<uint8_t*>(out.data) +
                 ((size_t(image) * g.out_height() + out_y) * g.out_width() + out_x) * cout +
                 cout_begin;
  const size_t step = size_t(cout);
  // [q0 x4, q1 x4, q2 x4, q3 x4] -> pixel-major.
  static constexpr uint8_t kOrder[16] = {0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15};
  const uint8x16_t order = vld1q_u8(kOrder);
  for (int i = 0; i < pixels; i += 4, dst += 4 * step) {
    const int n = pixels - i < 4 ? pixels - i : 4;
    int32x4_t q[4];
    for (int o = 0; o < 4; ++o)
      q[o] = tile_codes_neon<A>(k, tile_sums_neon(t, o, i, n), t.scale[o], t.bias[o], t.offset[o]);
    // Codes <= 255: the saturating narrowings are exact.
    const uint16x8_t w01 = vcombine_u16(vqmovun_s32(q[0]), vqmovun_s32(q[1]));
    const uint16x8_t w23 = vcombine_u16(vqmovun_s32(q[2]), vqmovun_s32(q[3]));
    const uint8x16_t bytes = vqtbl1q_u8(vcombine_u8(vqmovn_u16(w01), vqmovn_u16(w23)), order);
    if (n == 4 && couts == 4 && cout == 4) {
      vst1q_u8(dst, bytes);
      continue;
    }
    uint8_t b[16];
    vst1q_u8(b, bytes);
    if (couts == 4) {
      for (int p = 0; p < n; ++p) std::memcpy(dst + p * step, b + 4 * p, 4);
    } else {
      for (int p = 0; p < n; ++p)
        for (int o = 0; o < couts; ++o) dst[p * step + o] = b[4 * p + o];
    }
  }
}

// kFloat: float NHWC.
template <Activation A>
void store_floats_cm_neon(const TileEpilogueNeon& k, const OutputStage& out,
                          const ConvGeometry& g, int image, int out_y, int out_x, int pixels,
                          int cout_begin, int couts, const int32_t* acc, int stride) {
  const int cout = g.out_channels;
  if (cout_begin + couts > cout) couts = cout - cout_begin;
  const TileChannelsNeon t = tile_channels_neon(k, cout_begin, couts, acc, stride);
  float* dst = static_cast<float*>(out.data) +
               ((size_t(image) * g.out_height() + out_y) * g.out_width() + out_x) * cout +
               cout_begin;
  const size_t step = size_t(cout);
  for (int i = 0; i < pixels; i += 4, dst += 4 * step) {
    const int n = pixels - i < 4 ? pixels - i : 4;
    float32x4_t y[4];
    for (int o = 0; o < 4; ++o)
      y[o] = tile_value_neon<A>(k, tile_sums_neon(t, o, i, n), t.scale[o], t.bias[o], t.offset[o]);
    // 4x4 transpose: r[p] = the 4 channels of pixel p.
    const float64x2_t t0 = vreinterpretq_f64_f32(vtrn1q_f32(y[0], y[1]));
    const float64x2_t t1 = vreinterpretq_f64_f32(vtrn2q_f32(y[0], y[1]));
    const float64x2_t t2 = vreinterpretq_f64_f32(vtrn1q_f32(y[2], y[3]));
    const float64x2_t t3 = vreinterpretq_f64_f32(vtrn2q_f32(y[2], y[3]));
    const float32x4_t r[4] = {vreinterpretq_f32_f64(vtrn1q_f64(t0, t2)),
                              vreinterpretq_f32_f64(vtrn1q_f64(t1, t3)),
                              vreinterpretq_f32_f64(vtrn2q_f64(t0, t2)),
                              vreinterpretq_f32_f64(vtrn2q_f64(t1, t3))};
    if (couts == 4) {
      for (int p = 0; p < n; ++p) vst1q_f32(dst + p * step, r[p]);
    } else {
      float b[16];
      for (int p = 0; p < 4; ++p) vst1q_f32(b + 4 * p, r[p]);
      for (int p = 0; p < n; ++p)
        for (int o = 0; o < couts; ++o) dst[p * step + o] = b[4 * p + o];
    }
  }
}

template <Activation A>
inline void store_tile_cm_neon(const TileEpilogueNeon& k, const OutputStage& out,
                               const ConvGeometry& g, int image, int out_y, int out_x, int pixels,
                               int cout_begin, int couts, const int32_t* acc, int stride) {
  if (k.destination == Destination::kCodes)
    store_codes_cm_neon<A>(k, out, g, image, out_y, out_x, pixels, cout_begin, couts, acc, stride);
  else
    store_floats_cm_neon<A>(k, out, g, image, out_y, out_x, pixels, cout_begin, couts, acc,
                            stride);
}

// store_tile (epilogue.h) with the vector kCodes / kFloat stage where it
// applies (k from make_tile_epilogue_neon(out)); everything else, and SiLU,
// goes to the scalar store_tile.
inline void store_tile_neon(const TileEpilogueNeon& k, const OutputStage& out,
                            const ConvGeometry& g, int image, int out_y, int out_x, int pixels,
                            int cout_begin, int couts, const int32_t* acc, int stride) {
  if (!k.vector) {
    store_tile(out, g, image, out_y, out_x, pixels, cout_begin, couts, acc, stride);
    return;
  }
  switch (k.activation) {
    case Activation::kRelu:
      return store_tile_cm_neon<Activation::kRelu>(k, out, g, image, out_y, out_x, pixels,
                                                   cout_begin, couts, acc, stride);
    case Activation::kLeakyRelu:
      return store_tile_cm_neon<Activation::kLeakyRelu>(k, out, g, image, out_y, out_x, pixels,
                                                        cout_begin, couts, acc, stride);
    case Activation::kClip:
      return store_tile_cm_neon<Activation::kClip>(k, out, g, image, out_y, out_x, pixels,
                                                   cout_begin, couts, acc, stride);
    case Activation::kHardSwish:
      return store_tile_cm_neon<Activation::kHardSwish>(k, out, g, image, out_y, out_x, pixels,
                                                        cout_begin, couts, acc, stride);
    default:  // kNone (kSilu never gets here)
      return store_tile_cm_neon<Activation::kNone>(k, out, g, image, out_y, out_x, pixels,
                                                   cout_begin, couts, acc, stride);
  }
}

}  // namespace
}  // namespace lowbit::kernels
