// Vectorised kCodes / kFloat (and pair-plane code) output stage for the
// channel-major tiles of the low-bit kernels, AVX2: the LUT and bit-serial
// kernels hand over acc[o * stride + i], the exact sum of output channel
// cout_begin + o (o < 4) at pixel out_x + i of output row out_y (the
// store_tile contract, epilogue.h). Included only by translation units
// compiled with at least -mavx2; internal linkage, so the linker cannot mix
// copies compiled for different ISAs.
//
// Arithmetic: exactly apply_epilogue + requantize (epilogue.h), in the same
// order, in float, per lane, as int8_codes_avx2.h: y = float(s -
// sum_offset[c]) * scale[c] (+ bias[c]), activation, then for codes
// requant_lanes256 (requantize_avx2.h: v = y * multiplier clamped in float to
// detail::code_bounds, the code range with ReLU / clip folded in, q =
// cvtps2dq(v) + zp, round half to even as lrint under the default MXCSR; in
// the exact mode near-tie vectors divide). SiLU (exp) has no vector form:
// such stages go to the scalar store_tile.
//
// Layout work: 8 pixels x 4 channels per step. The four channel vectors are
// requantized with per-channel broadcast constants, packed to bytes
// (vpackusdw, vpackuswb: [channel][4 pixels] per 128-bit lane) and turned
// pixel-major by one vpshufb, then stored 4 bytes per pixel (one 32-byte
// store when Cout == 4). Floats are transposed 4x4 per 128-bit lane and
// stored 16 bytes per pixel. Pixel tails use masked loads; no branch depends
// on a value.
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "int8_common.h"
#include "lowbit/kernels/epilogue.h"
#include "requantize_avx2.h"

namespace lowbit::kernels {
namespace {

// Per-call constants of a tile output stage (built once per kernel call).
struct TileEpilogue256 {
  const float* scale = nullptr;     // [Cout]
  const float* bias = nullptr;      // [Cout] or null (then nothing is added)
  const int32_t* offset = nullptr;  // Epilogue::sum_offset [Cout] or null (nothing subtracted)
  __m256 alpha, clip_lo, clip_hi;
  Requant256 requant;  // detail::code_bounds
  __m256i zero_point;
  Activation activation = Activation::kNone;  // for codes: kNone when folded into the bounds
  Destination destination = Destination::kInt32;
  bool vector = false;  // false: the scalar store_tile handles this stage
};

inline TileEpilogue256 make_tile_epilogue256(const OutputStage& out) {
  TileEpilogue256 k;
  const Epilogue& e = out.epilogue;
  k.alpha = k.clip_lo = k.clip_hi = _mm256_setzero_ps();
  k.zero_point = _mm256_setzero_si256();
  k.destination = out.destination;
  const detail::CodeBounds b = detail::code_bounds(e);
  k.requant = make_requant256(b);
  switch (out.destination) {
    case Destination::kFloat:
      k.vector = e.activation != Activation::kSilu;
      k.activation = e.activation;
      break;
    case Destination::kCodes:
    case Destination::kPairPlanes: {
      k.vector = detail::requant_vectorizable(e);
      k.activation = b.activation_folded ? Activation::kNone : e.activation;
      break;
    }
    default:
      break;
  }
  if (!k.vector) return k;
  k.scale = e.scale;
  k.bias = e.bias;
  k.offset = e.sum_offset;
  k.alpha = _mm256_set1_ps(e.alpha);
  k.clip_lo = _mm256_set1_ps(e.clip_min);
  k.clip_hi = _mm256_set1_ps(e.clip_max);
  k.zero_point = _mm256_set1_epi32(e.out_zero_point);
  return k;
}

// Broadcast per-channel constants of one channel (offset 0 when k.offset is null).
struct TileChannel256 {
  __m256 scale, bias;
  __m256i offset;
};
inline TileChannel256 tile_channel256(const TileEpilogue256& k, int channel) {
  return {_mm256_set1_ps(k.scale[channel]),
          k.bias ? _mm256_set1_ps(k.bias[channel]) : _mm256_setzero_ps(),
          k.offset ? _mm256_set1_epi32(k.offset[channel]) : _mm256_setzero_si256()};
}

// y = activation(float(s - offset) * scale + bias) for 8 lanes of one channel.
template <Activation A>
inline __m256 tile_value256(const TileEpilogue256& k, __m256i s, const TileChannel256& c) {
  const __m256 zero = _mm256_setzero_ps();
  if (k.offset) s = _mm256_sub_epi32(s, c.offset);
  __m256 y = _mm256_mul_ps(_mm256_cvtepi32_ps(s), c.scale);
  if (k.bias) y = _mm256_add_ps(y, c.bias);
  if constexpr (A == Activation::kRelu) {
    y = _mm256_blendv_ps(y, zero, _mm256_cmp_ps(y, zero, _CMP_LT_OQ));
  } else if constexpr (A == Activation::kLeakyRelu) {
    y = _mm256_blendv_ps(y, _mm256_mul_ps(y, k.alpha), _mm256_cmp_ps(y, zero, _CMP_LT_OQ));
  } else if constexpr (A == Activation::kClip) {
    const __m256 hi = _mm256_blendv_ps(y, k.clip_hi, _mm256_cmp_ps(y, k.clip_hi, _CMP_GT_OQ));
    y = _mm256_blendv_ps(hi, k.clip_lo, _mm256_cmp_ps(y, k.clip_lo, _CMP_LT_OQ));
  } else if constexpr (A == Activation::kHardSwish) {
    const __m256 six = _mm256_set1_ps(6.0f);
    __m256 t = _mm256_add_ps(y, _mm256_set1_ps(3.0f));
    const __m256 hi = _mm256_blendv_ps(t, six, _mm256_cmp_ps(t, six, _CMP_GT_OQ));
    t = _mm256_blendv_ps(hi, zero, _mm256_cmp_ps(t, zero, _CMP_LT_OQ));
    y = _mm256_div_ps(_mm256_mul_ps(y, t), six);
  }
  return y;
}

// 8 sums of one channel -> 8 codes in [0, 2^out_bits - 1] (int32 lanes).
template <Activation A>
inline __m256i tile_codes256(const TileEpilogue256& k, __m256i s, const TileChannel256& c) {
  return _mm256_add_epi32(requant_lanes256(k.requant, tile_value256<A>(k, s, c)), k.zero_point);
}

// tile_codes256 with the activation chosen at run time (per vector).
inline __m256i tile_codes256(const TileEpilogue256& k, __m256i s, const TileChannel256& c) {
  switch (k.activation) {
    case Activation::kRelu: return tile_codes256<Activation::kRelu>(k, s, c);
    case Activation::kLeakyRelu: return tile_codes256<Activation::kLeakyRelu>(k, s, c);
    case Activation::kClip: return tile_codes256<Activation::kClip>(k, s, c);
    case Activation::kHardSwish: return tile_codes256<Activation::kHardSwish>(k, s, c);
    default: return tile_codes256<Activation::kNone>(k, s, c);
  }
}

// Rows and broadcast constants of the (up to) 4 channels of a tile; channels
// past `couts` repeat channel 0 (computed, never stored).
struct TileChannels256 {
  const int32_t* row[4];
  TileChannel256 channel[4];
};
inline TileChannels256 tile_channels256(const TileEpilogue256& k, int cout_begin, int couts,
                                        const int32_t* acc, int stride) {
  TileChannels256 t;
  for (int o = 0; o < 4; ++o) {
    const int c = o < couts ? o : 0;
    t.row[o] = acc + size_t(c) * stride;
    t.channel[o] = tile_channel256(k, cout_begin + c);
  }
  return t;
}

// Lanes [0, n) of 8.
inline __m256i first_lanes256(int n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// Sums of pixels i..i+7 of channel o (lanes >= n are zero; n <= 8).
inline __m256i tile_sums256(const TileChannels256& t, int o, int i, int n, __m256i mask) {
  const int* p = reinterpret_cast<const int*>(t.row[o] + i);
  return n == 8 ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))
                : _mm256_maskload_epi32(p, mask);
}

// Codes of 8 pixels x 4 channels, pixel-major bytes: byte 4 * i + o is
// channel o of pixel i.
template <Activation A>
inline __m256i tile_code_bytes256(const TileEpilogue256& k, const TileChannels256& t, int i,
                                  int n) {
  const __m256i mask = first_lanes256(n);
  __m256i q[4];
  for (int o = 0; o < 4; ++o)
    q[o] = tile_codes256<A>(k, tile_sums256(t, o, i, n, mask), t.channel[o]);
  // Codes <= 255, so the saturating packs are exact. Per 128-bit lane (pixels
  // 0-3 | 4-7): [q0 x4, q1 x4, q2 x4, q3 x4] bytes, then pixel-major.
  const __m256i b = _mm256_packus_epi16(_mm256_packus_epi32(q[0], q[1]),
                                        _mm256_packus_epi32(q[2], q[3]));
  const __m256i order = _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15, 0,
                                         4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  return _mm256_shuffle_epi8(b, order);
}

// kCodes: uint8 NHWC.
template <Activation A>
void store_codes_cm256(const TileEpilogue256& k, const OutputStage& out, const ConvGeometry& g,
                       int image, int out_y, int out_x, int pixels, int cout_begin, int couts,
                       const int32_t* acc, int stride) {
  const int cout = g.out_channels;
  if (cout_begin + couts > cout) couts = cout - cout_begin;
  const TileChannels256 t = tile_channels256(k, cout_begin, couts, acc, stride);
  uint8_t* dst = static_cast<uint8_t*>(out.data) +
                 ((size_t(image) * g.out_height() + out_y) * g.out_width() + out_x) * cout +
                 cout_begin;
  const size_t step = size_t(cout);
  for (int i = 0; i < pixels; i += 8, dst += 8 * step) {
    const int n = pixels - i < 8 ? pixels - i : 8;
    const __m256i bytes = tile_code_bytes256<A>(k, t, i, n);
    if (n == 8 && couts == 4 && cout == 4) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), bytes);
      continue;
    }
    alignas(32) uint8_t b[32];
    _mm256_store_si256(reinterpret_cast<__m256i*>(b), bytes);
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
void store_floats_cm256(const TileEpilogue256& k, const OutputStage& out, const ConvGeometry& g,
                        int image, int out_y, int out_x, int pixels, int cout_begin, int couts,
                        const int32_t* acc, int stride) {
  const int cout = g.out_channels;
  if (cout_begin + couts > cout) couts = cout - cout_begin;
  const TileChannels256 t = tile_channels256(k, cout_begin, couts, acc, stride);
  float* dst = static_cast<float*>(out.data) +
               ((size_t(image) * g.out_height() + out_y) * g.out_width() + out_x) * cout +
               cout_begin;
  const size_t step = size_t(cout);
  for (int i = 0; i < pixels; i += 8, dst += 8 * step) {
    const int n = pixels - i < 8 ? pixels - i : 8;
    const __m256i mask = first_lanes256(n);
    __m256 y[4];
    for (int o = 0; o < 4; ++o)
      y[o] = tile_value256<A>(k, tile_sums256(t, o, i, n, mask), t.channel[o]);
    // 4x4 transpose per 128-bit lane: r[p] = pixel p | pixel p + 4.
    const __m256 t0 = _mm256_unpacklo_ps(y[0], y[1]), t1 = _mm256_unpackhi_ps(y[0], y[1]);
    const __m256 t2 = _mm256_unpacklo_ps(y[2], y[3]), t3 = _mm256_unpackhi_ps(y[2], y[3]);
    const __m256 r[4] = {_mm256_shuffle_ps(t0, t2, 0x44), _mm256_shuffle_ps(t0, t2, 0xee),
                         _mm256_shuffle_ps(t1, t3, 0x44), _mm256_shuffle_ps(t1, t3, 0xee)};
    if (n == 8 && couts == 4) {
      for (int p = 0; p < 4; ++p) {
        _mm_storeu_ps(dst + p * step, _mm256_castps256_ps128(r[p]));
        _mm_storeu_ps(dst + (p + 4) * step, _mm256_extractf128_ps(r[p], 1));
      }
      continue;
    }
    alignas(32) float b[32];  // pixel-major, 4 floats per pixel
    for (int p = 0; p < 4; ++p) {
      _mm_store_ps(b + 4 * p, _mm256_castps256_ps128(r[p]));
      _mm_store_ps(b + 4 * (p + 4), _mm256_extractf128_ps(r[p], 1));
    }
    for (int p = 0; p < n; ++p)
      for (int o = 0; o < couts; ++o) dst[p * step + o] = b[4 * p + o];
  }
}

template <Activation A>
inline void store_tile_cm256(const TileEpilogue256& k, const OutputStage& out,
                             const ConvGeometry& g, int image, int out_y, int out_x, int pixels,
                             int cout_begin, int couts, const int32_t* acc, int stride) {
  if (k.destination == Destination::kCodes)
    store_codes_cm256<A>(k, out, g, image, out_y, out_x, pixels, cout_begin, couts, acc, stride);
  else
    store_floats_cm256<A>(k, out, g, image, out_y, out_x, pixels, cout_begin, couts, acc, stride);
}

// store_tile (epilogue.h) with the vector kCodes / kFloat stage where it
// applies (k from make_tile_epilogue256(out)); everything else, and SiLU,
// goes to the scalar store_tile.
inline void store_tile256(const TileEpilogue256& k, const OutputStage& out, const ConvGeometry& g,
                          int image, int out_y, int out_x, int pixels, int cout_begin, int couts,
                          const int32_t* acc, int stride) {
  if (!k.vector || (k.destination != Destination::kCodes && k.destination != Destination::kFloat)) {
    store_tile(out, g, image, out_y, out_x, pixels, cout_begin, couts, acc, stride);
    return;
  }
  switch (k.activation) {
    case Activation::kRelu:
      return store_tile_cm256<Activation::kRelu>(k, out, g, image, out_y, out_x, pixels,
                                                 cout_begin, couts, acc, stride);
    case Activation::kLeakyRelu:
      return store_tile_cm256<Activation::kLeakyRelu>(k, out, g, image, out_y, out_x, pixels,
                                                      cout_begin, couts, acc, stride);
    case Activation::kClip:
      return store_tile_cm256<Activation::kClip>(k, out, g, image, out_y, out_x, pixels,
                                                 cout_begin, couts, acc, stride);
    case Activation::kHardSwish:
      return store_tile_cm256<Activation::kHardSwish>(k, out, g, image, out_y, out_x, pixels,
                                                      cout_begin, couts, acc, stride);
    default:  // kNone (kSilu never gets here)
      return store_tile_cm256<Activation::kNone>(k, out, g, image, out_y, out_x, pixels,
                                                 cout_begin, couts, acc, stride);
  }
}

}  // namespace
}  // namespace lowbit::kernels
