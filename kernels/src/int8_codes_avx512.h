// Vectorised kCodes output stage for the AVX-512 INT8 kernels (included only by
// translation units compiled with -mavx512f -mavx512bw -mavx512vl; everything
// here has internal linkage, so no AVX-512 code can be picked by the linker
// for another ISA's translation unit).
//
// Same arithmetic as apply_epilogue + requantize (epilogue.h), in the same
// order, in float, per lane: y = float(s - sum_offset[c]) * scale[c]
// (+ bias[c]), activation, then the code: v = y * multiplier clamped in float
// to detail::code_bounds and converted (vcvtps2dq, round half to even under
// the default MXCSR, as lrint), plus out_zero_point; in the exact mode
// (out_scale > 0) vectors with a lane near a half-integer are recomputed by
// division (detail::code_bounds states why that equals
// round_half_even(y / out_scale) on every lane). SiLU (exp) has no vector
// path: codes_vectorizable() is false and the caller uses store_pixel_major.
#pragma once

#include <immintrin.h>

#include "int8_common.h"

namespace lowbit::kernels {
namespace {

// detail::code_bounds as vectors: v = clamp(y * multiplier, lo, hi).
struct Requant512 {
  __m512 lo, hi, multiplier;
  __m512 divisor, window;  // exact mode: near-tie vectors use y / divisor
  bool exact;
};

inline Requant512 make_requant512(const detail::CodeBounds& b) {
  Requant512 r;
  r.lo = _mm512_set1_ps(b.lo);
  r.hi = _mm512_set1_ps(b.hi);
  r.multiplier = _mm512_set1_ps(b.multiplier);
  r.divisor = _mm512_set1_ps(b.exact ? b.divisor : 1.0f);
  r.window = _mm512_set1_ps(b.tie_window);
  r.exact = b.exact;
  return r;
}

// The lanes k of y (activation applied unless folded into the bounds) ->
// rne(clamp(v, lo, hi)) as int32 (the code minus the zero point; other lanes 0).
inline __m512i requant_lanes512(const Requant512& r, __mmask16 k, __m512 y) {
  const __m512 v =
      _mm512_maskz_min_ps(k, _mm512_maskz_max_ps(k, _mm512_mul_ps(y, r.multiplier), r.lo), r.hi);
  const __m512i q = _mm512_maskz_cvtps_epi32(k, v);
  if (!r.exact) return q;
  // |v - rne(v)| > window: some lane is near a half-integer, divide.
  const __m512 frac = _mm512_sub_ps(v, _mm512_maskz_cvtepi32_ps(k, q));
  const __mmask16 near = _mm512_mask_cmp_ps_mask(k, _mm512_abs_ps(frac), r.window, _CMP_GT_OQ);
  if (__builtin_expect(near == 0, 1)) return q;
  const __m512 d = _mm512_maskz_div_ps(k, y, r.divisor);
  return _mm512_maskz_cvtps_epi32(k, _mm512_maskz_min_ps(k, _mm512_maskz_max_ps(k, d, r.lo), r.hi));
}

struct Codes512 {
  __m512 scale, bias, alpha, clip_lo, clip_hi;
  __m512i offset;      // Epilogue::sum_offset of the block's channels (0 when absent)
  Requant512 requant;  // detail::code_bounds: code range, folded ReLU / clip
  __m512i zero_point;
  __mmask16 lanes;  // output channels present in this block
  bool has_bias, has_offset;
  Activation activation;
};

// Per-channel constants of the 16 channels cout_begin..+15 (those < cout).
inline Codes512 make_codes512(const Epilogue& e, int cout_begin, int couts) {
  Codes512 c;
  c.lanes = __mmask16((1u << couts) - 1);
  c.scale = _mm512_maskz_loadu_ps(c.lanes, e.scale + cout_begin);
  c.has_bias = e.bias != nullptr;
  c.bias = c.has_bias ? _mm512_maskz_loadu_ps(c.lanes, e.bias + cout_begin) : _mm512_setzero_ps();
  c.has_offset = e.sum_offset != nullptr;
  c.offset = c.has_offset ? _mm512_maskz_loadu_epi32(c.lanes, e.sum_offset + cout_begin)
                          : _mm512_setzero_si512();
  c.alpha = _mm512_set1_ps(e.alpha);
  c.clip_lo = _mm512_set1_ps(e.clip_min);
  c.clip_hi = _mm512_set1_ps(e.clip_max);
  c.zero_point = _mm512_set1_epi32(e.out_zero_point);
  const detail::CodeBounds bounds = detail::code_bounds(e);
  c.requant = make_requant512(bounds);
  // A folded activation is applied by the code clamp alone.
  c.activation = bounds.activation_folded ? Activation::kNone : e.activation;
  return c;
}

// The float part for 16 int32 sums: y = activation(float(s - offset) *
// scale + bias) in epilogue.h's order, lanes outside c.lanes 0; the
// activation as given (requantize512 passes the one not folded into the
// code bounds; kFloat stores pass the epilogue's own).
inline __m512 epilogue_value512(const Codes512& c, Activation activation, __m512i s) {
  // Masked forms (lanes of absent channels zeroed) also keep GCC 12 from
  // warning about the unmasked intrinsics' undefined pass-through operand.
  const __mmask16 k = c.lanes;
  const __m512 zero = _mm512_setzero_ps();
  if (c.has_offset) s = _mm512_sub_epi32(s, c.offset);
  __m512 y = _mm512_mul_ps(_mm512_maskz_cvtepi32_ps(k, s), c.scale);
  if (c.has_bias) y = _mm512_add_ps(y, c.bias);
  switch (activation) {
    case Activation::kNone:
    case Activation::kSilu:  // not vectorised (codes_vectorizable, store_tile_pm512)
      break;
    case Activation::kRelu:
      y = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(y, zero, _CMP_LT_OQ), y, zero);
      break;
    case Activation::kLeakyRelu:
      y = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(y, zero, _CMP_LT_OQ), y,
                               _mm512_mul_ps(y, c.alpha));
      break;
    case Activation::kClip: {
      const __mmask16 lo = _mm512_cmp_ps_mask(y, c.clip_lo, _CMP_LT_OQ);
      const __mmask16 hi = _mm512_cmp_ps_mask(y, c.clip_hi, _CMP_GT_OQ);
      y = _mm512_mask_blend_ps(lo, _mm512_mask_blend_ps(hi, y, c.clip_hi), c.clip_lo);
      break;
    }
    case Activation::kHardSwish: {
      const __m512 six = _mm512_set1_ps(6.0f);
      __m512 t = _mm512_add_ps(y, _mm512_set1_ps(3.0f));
      const __mmask16 lo = _mm512_cmp_ps_mask(t, zero, _CMP_LT_OQ);
      const __mmask16 hi = _mm512_cmp_ps_mask(t, six, _CMP_GT_OQ);
      t = _mm512_mask_blend_ps(lo, _mm512_mask_blend_ps(hi, t, six), zero);
      y = _mm512_div_ps(_mm512_mul_ps(y, t), six);
      break;
    }
  }
  return y;
}

// 16 int32 sums -> 16 codes in [0, 2^out_bits - 1] (int32 lanes).
inline __m512i requantize512(const Codes512& c, __m512i s) {
  const __m512 y = epilogue_value512(c, c.activation, s);
  return _mm512_add_epi32(requant_lanes512(c.requant, c.lanes, y), c.zero_point);
}

// Channel count of the block at cout_begin.
inline int block_couts(const ConvGeometry& g, int cout_begin) {
  const int rest = g.out_channels - cout_begin;
  return rest < kInt8CoutBlock ? rest : kInt8CoutBlock;
}

// kCodes store of `pixels` consecutive flat output pixels from f of `image`,
// 16 channels from cout_begin; acc pixel-major (acc[i * 16 + o]). Flat pixels
// are contiguous in NHWC, so rows need no splitting.
inline void store_codes512(const OutputStage& out, const ConvGeometry& g, int image, size_t f,
                           int pixels, int cout_begin, const Codes512& c, const int32_t* acc) {
  const int cout = g.out_channels;  // c.lanes masks the channels of a short block
  uint8_t* dst = static_cast<uint8_t*>(out.data) +
                 (size_t(image) * g.out_height() * g.out_width() + f) * cout + cout_begin;
  for (int i = 0; i < pixels; ++i, dst += cout) {
    const __m512i q = requantize512(c, _mm512_loadu_si512(acc + i * kInt8CoutBlock));
    _mm_mask_storeu_epi8(dst, c.lanes, _mm512_maskz_cvtepi32_epi8(c.lanes, q));
  }
}

// Store of a finished block: the vector kCodes path or the shared one.
inline void store_block512(const OutputStage& out, const ConvGeometry& g, int image, size_t f,
                           int out_width, int pixels, int cout_begin, const int32_t* acc) {
  if (detail::codes_vectorizable(out))
    store_codes512(out, g, image, f, pixels, cout_begin,
                  make_codes512(out.epilogue, cout_begin, block_couts(g, cout_begin)), acc);
  else
    detail::store_pixel_major(out, g, image, f, out_width, pixels, cout_begin, acc);
}

}  // namespace
}  // namespace lowbit::kernels
