// Vector kCodes / kFloat output stage for pixel-major tiles of up to 16
// output channels (acc[i * 16 + o]) in AVX-512 translation units that are not
// INT8 kernels (the bit-serial AVX-512 kernel). kCodes is int8_codes_avx512.h's
// store_codes512; kFloat applies the float part of the same arithmetic
// (epilogue.h order: y = float(s - sum_offset[c]) * scale[c] (+ bias[c]),
// activation; no FMA)
// and stores the channels present with one masked store per pixel. SiLU and
// the plane destinations go to the shared store_pixel_major. Included only by
// translation units compiled with -mavx512f -mavx512bw -mavx512vl; internal
// linkage.
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "int8_codes_avx512.h"
#include "int8_common.h"

namespace lowbit::kernels {
namespace {

// y = activation(float(s - offset) * scale + bias) for the lanes of c.lanes (others 0),
// with the activation as given (not folded into code bounds).
inline __m512 tile_value512(const Codes512& c, Activation activation, __m512i s) {
  const __mmask16 k = c.lanes;
  const __m512 zero = _mm512_setzero_ps();
  if (c.has_offset) s = _mm512_sub_epi32(s, c.offset);
  __m512 y = _mm512_mul_ps(_mm512_maskz_cvtepi32_ps(k, s), c.scale);
  if (c.has_bias) y = _mm512_add_ps(y, c.bias);
  switch (activation) {
    case Activation::kNone:
    case Activation::kSilu:  // never vectorised (store_tile_pm512)
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

// kFloat store of `pixels` consecutive flat pixels from f (one output row or
// more; flat pixels are contiguous in NHWC) for the channels of c.lanes.
inline void store_floats512(const OutputStage& out, const ConvGeometry& g, int image, size_t f,
                            int pixels, int cout_begin, const Codes512& c, const int32_t* acc) {
  const int cout = g.out_channels;
  const Activation activation = out.epilogue.activation;
  float* dst = static_cast<float*>(out.data) +
               (size_t(image) * g.out_height() * g.out_width() + f) * cout + cout_begin;
  for (int i = 0; i < pixels; ++i, dst += cout) {
    const __m512i s = _mm512_loadu_si512(acc + i * kInt8CoutBlock);
    _mm512_mask_storeu_ps(dst, c.lanes, tile_value512(c, activation, s));
  }
}

// Store of a pixel-major tile: `pixels` (any number) flat pixels from f of `image`,
// channels cout_begin.. (at most max_couts of them, and those < Cout).
inline void store_tile_pm512(const OutputStage& out, const ConvGeometry& g, int image, size_t f,
                             int out_width, int pixels, int cout_begin, const int32_t* acc,
                             int max_couts) {
  const Epilogue& e = out.epilogue;
  const int rest = g.out_channels - cout_begin;
  const int couts = rest < max_couts ? rest : max_couts;
  if (detail::codes_vectorizable(out)) {
    store_codes512(out, g, image, f, pixels, cout_begin, make_codes512(e, cout_begin, couts), acc);
  } else if (out.destination == Destination::kFloat && e.activation != Activation::kSilu) {
    store_floats512(out, g, image, f, pixels, cout_begin, make_codes512(e, cout_begin, couts),
                    acc);
  } else {  // store_pixel_major takes at most kInt8PixelGroup pixels per call
    for (int i = 0; i < pixels; i += kInt8PixelGroup)
      detail::store_pixel_major(out, g, image, f + i, out_width,
                                pixels - i < kInt8PixelGroup ? pixels - i : kInt8PixelGroup,
                                cout_begin, acc + i * kInt8CoutBlock, max_couts);
  }
}

}  // namespace
}  // namespace lowbit::kernels
