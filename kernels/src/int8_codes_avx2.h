// Vectorised kCodes output stage for the 256-bit INT8 kernels (included only by
// translation units compiled with at least -mavx2; internal linkage, so the
// linker cannot mix variants compiled for different ISAs). Same arithmetic and
// order as int8_codes_avx512.h (see there and epilogue.h), 8 lanes at a time;
// the requantization is requantize_avx2.h's.
#pragma once

#include <immintrin.h>

#include <cstring>

#include "int8_common.h"
#include "requantize_avx2.h"

namespace lowbit::kernels {
namespace {

struct Codes256 {
  __m256 scale[2], bias[2], alpha, clip_lo, clip_hi;
  __m256i offset[2];   // Epilogue::sum_offset of the block's channels
  Requant256 requant;  // detail::code_bounds: code range, folded ReLU / clip
  __m256i zero_point;
  int couts;
  bool has_bias, has_offset;
  Activation activation;
};

inline Codes256 make_codes256(const Epilogue& e, int cout_begin, int couts) {
  Codes256 c;
  alignas(32) float s[16] = {}, b[16] = {};
  alignas(32) int32_t d[16] = {};
  for (int o = 0; o < couts; ++o) {
    s[o] = e.scale[cout_begin + o];
    b[o] = e.bias ? e.bias[cout_begin + o] : 0.0f;
    d[o] = e.sum_offset ? e.sum_offset[cout_begin + o] : 0;
  }
  for (int h = 0; h < 2; ++h) {
    c.scale[h] = _mm256_load_ps(s + 8 * h);
    c.bias[h] = _mm256_load_ps(b + 8 * h);
    c.offset[h] = _mm256_load_si256(reinterpret_cast<const __m256i*>(d + 8 * h));
  }
  c.couts = couts;
  c.has_bias = e.bias != nullptr;
  c.has_offset = e.sum_offset != nullptr;
  c.alpha = _mm256_set1_ps(e.alpha);
  c.clip_lo = _mm256_set1_ps(e.clip_min);
  c.clip_hi = _mm256_set1_ps(e.clip_max);
  c.zero_point = _mm256_set1_epi32(e.out_zero_point);
  const detail::CodeBounds bounds = detail::code_bounds(e);
  c.requant = make_requant256(bounds);
  // A folded activation is applied by the code clamp alone.
  c.activation = bounds.activation_folded ? Activation::kNone : e.activation;
  return c;
}

// cond ? b : a, per lane.
inline __m256 select256(__m256 cond, __m256 a, __m256 b) { return _mm256_blendv_ps(a, b, cond); }

inline __m256i requantize256(const Codes256& c, int h, __m256i s) {
  const __m256 zero = _mm256_setzero_ps();
  if (c.has_offset) s = _mm256_sub_epi32(s, c.offset[h]);
  __m256 y = _mm256_mul_ps(_mm256_cvtepi32_ps(s), c.scale[h]);
  if (c.has_bias) y = _mm256_add_ps(y, c.bias[h]);
  switch (c.activation) {
    case Activation::kNone:
    case Activation::kSilu:  // not vectorised (see codes_vectorizable)
      break;
    case Activation::kRelu:
      y = select256(_mm256_cmp_ps(y, zero, _CMP_LT_OQ), y, zero);
      break;
    case Activation::kLeakyRelu:
      y = select256(_mm256_cmp_ps(y, zero, _CMP_LT_OQ), y, _mm256_mul_ps(y, c.alpha));
      break;
    case Activation::kClip: {
      const __m256 lo = _mm256_cmp_ps(y, c.clip_lo, _CMP_LT_OQ);
      const __m256 hi = _mm256_cmp_ps(y, c.clip_hi, _CMP_GT_OQ);
      y = select256(lo, select256(hi, y, c.clip_hi), c.clip_lo);
      break;
    }
    case Activation::kHardSwish: {
      const __m256 six = _mm256_set1_ps(6.0f);
      __m256 t = _mm256_add_ps(y, _mm256_set1_ps(3.0f));
      const __m256 lo = _mm256_cmp_ps(t, zero, _CMP_LT_OQ);
      const __m256 hi = _mm256_cmp_ps(t, six, _CMP_GT_OQ);
      t = select256(lo, select256(hi, t, six), zero);
      y = _mm256_div_ps(_mm256_mul_ps(y, t), six);
      break;
    }
  }
  return _mm256_add_epi32(requant_lanes256(c.requant, y), c.zero_point);
}

// Channel count of the block at cout_begin.
inline int block_couts(const ConvGeometry& g, int cout_begin) {
  const int rest = g.out_channels - cout_begin;
  return rest < kInt8CoutBlock ? rest : kInt8CoutBlock;
}

// kCodes store, as store_codes512 (int8_codes_avx512.h).
inline void store_codes256(const OutputStage& out, const ConvGeometry& g, int image, size_t f,
                           int pixels, int cout_begin, const Codes256& c, const int32_t* acc) {
  const int cout = g.out_channels;
  const int couts = cout - cout_begin < kInt8CoutBlock ? cout - cout_begin : kInt8CoutBlock;
  uint8_t* dst = static_cast<uint8_t*>(out.data) +
                 (size_t(image) * g.out_height() * g.out_width() + f) * cout + cout_begin;
  for (int i = 0; i < pixels; ++i, dst += cout) {
    const int32_t* a = acc + i * kInt8CoutBlock;
    const __m256i q0 = requantize256(c, 0, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a)));
    const __m256i q1 =
        requantize256(c, 1, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + 8)));
    // Codes <= 255: the saturating packs are exact; packus works per 128-bit
    // lane, the permute restores channel order.
    const __m256i w = _mm256_permute4x64_epi64(_mm256_packus_epi32(q0, q1), 0xd8);
    const __m128i b = _mm_packus_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
    if (couts == kInt8CoutBlock) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), b);
    } else {
      alignas(16) uint8_t t[16];
      _mm_store_si128(reinterpret_cast<__m128i*>(t), b);
      std::memcpy(dst, t, size_t(couts));
    }
  }
}

inline void store_block256(const OutputStage& out, const ConvGeometry& g, int image, size_t f,
                           int out_width, int pixels, int cout_begin, const int32_t* acc) {
  if (detail::codes_vectorizable(out))
    store_codes256(out, g, image, f, pixels, cout_begin,
                  make_codes256(out.epilogue, cout_begin, block_couts(g, cout_begin)), acc);
  else
    detail::store_pixel_major(out, g, image, f, out_width, pixels, cout_begin, acc);
}

}  // namespace
}  // namespace lowbit::kernels
