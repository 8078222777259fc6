// Bit-serial convolution, AVX-512 with VPOPCNTDQ (compiled with -mavx512f
// -mavx512bw -mavx512vl -mavx512vnni -mavx512vpopcntdq; dispatch uses it
// only on CPUs that also have VPOPCNTDQ: Ice Lake and later, Zen 4).
//
// Same formats as conv_anybits_bitserial_64x4__avx2 (weights in blocks of 4
// output channels, [cout_blocks][taps][words][wbits][4] uint64) and the same
// work tile (up to 64 output pixels of a row x 4-channel blocks). Register
// tile: 2 output pixels x up to kBlocks = 4 blocks (16 output channels). A
// zmm holds one block's 4 weight words twice (vbroadcasti64x4, load port
// only) and an activation word as [pixel 0 x 4 | pixel 1 x 4] (a broadcast
// and a masked broadcast), so one vpandq + vpopcntq + vpaddq is 512 binary
// multiply-adds, and each activation vector is shared by the blocks. Plane
// pairs (i, j) combine by Horner over j then i in 64-bit lanes (exact: at
// most 64 * 15 * 15 per word). value = step * sum(q * a) + offset * sum(a),
// written pixel-major for 16 channels and stored by store_tile_pm512
// (tile_codes_avx512.h: vector kCodes / kFloat, else store_pixel_major).
// The common bit-width pairs are compiled with constant plane counts.
#include <immintrin.h>

#include "bitserial_common.h"
#include "int8_common.h"
#include "lowbit/kernels/conv.h"
#include "tile_codes_avx512.h"

namespace lowbit::kernels {
namespace {

constexpr int kBlocks = 4;  // cout blocks per register tile

// g++ 12's _mm512_broadcast_i64x4 and _mm512_cvtepi64_epi32 pass an
// _mm*_undefined_*() value as the unused merge source, which
// -Wmaybe-uninitialized reports; nothing is read from it (all-ones mask).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// One block's 4 weight words in both halves (vbroadcasti64x4 from memory).
inline __m512i weights_x2(const uint64_t* w) {
  return _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w)));
}
// 8 int64 lanes truncated to int32 (vpmovqd).
inline __m256i low_halves(__m512i v) { return _mm512_cvtepi64_epi32(v); }
#pragma GCC diagnostic pop

inline __m512i pixel_pair(const uint64_t* p0, const uint64_t* p1) {
  const __m512i lo = _mm512_set1_epi64(static_cast<long long>(*p0));
  return _mm512_mask_set1_epi64(lo, 0xf0, static_cast<long long>(*p1));
}

// kWbits / kAbits: plane counts fixed at compile time, or 0 for plan's.
// Sums of pixels win0, win1 x blocks [0, kNb) of `wblock` (block_words apart)
// into dot[b] (lanes 0-3: pixel 0's channels, 4-7: pixel 1's).
template <int kWbits, int kAbits, int kNb>
inline void pixel_pair_tile(const detail::BitSerialPlan& plan, const uint64_t* win0,
                            const uint64_t* win1, const uint64_t* wblock, size_t block_words,
                            __m512i* dot) {
  constexpr int B = kBitSerialCoutBlock;
  const int words = plan.words;
  const int wbits = kWbits ? kWbits : plan.wbits, abits = kAbits ? kAbits : plan.abits;
  __m512i d[kNb];
#pragma GCC unroll 4
  for (int b = 0; b < kNb; ++b) d[b] = _mm512_setzero_si512();
  const uint64_t* w = wblock;
  for (int t = 0; t < plan.taps; ++t) {
    const uint64_t* px0 = win0 + plan.tap_offset[t];
    const uint64_t* px1 = win1 + plan.tap_offset[t];
    for (int k = 0; k < words; ++k, w += size_t(wbits) * B) {
      __m512i act[4];
      for (int j = 0; j < abits; ++j) act[j] = pixel_pair(px0 + j * words + k, px1 + j * words + k);
#pragma GCC unroll 4
      for (int b = 0; b < kNb; ++b) {
        const uint64_t* wb = w + b * block_words;
        __m512i weighted = _mm512_setzero_si512();  // Horner over weight planes
        for (int wi = wbits - 1; wi >= 0; --wi) {
          const __m512i wv = weights_x2(wb + wi * B);
          __m512i plane = _mm512_setzero_si512();  // Horner over activation planes
          for (int j = abits - 1; j >= 0; --j)
            plane = _mm512_add_epi64(_mm512_add_epi64(plane, plane),
                                     _mm512_popcnt_epi64(_mm512_and_si512(wv, act[j])));
          weighted = _mm512_add_epi64(_mm512_add_epi64(weighted, weighted), plane);
        }
        d[b] = _mm512_add_epi64(d[b], weighted);
      }
    }
  }
#pragma GCC unroll 4
  for (int b = 0; b < kNb; ++b) dot[b] = d[b];
}

template <int kWbits, int kAbits>
void bitserial_vpopcnt(const BitSerialConvArgs& args, const detail::BitSerialPlan& plan) {
  constexpr int P = detail::kBitSerialPixelTile, B = kBitSerialCoutBlock;
  const ConvGeometry& g = args.geometry;
  const BitPlanesLayout& l = args.activation_layout;
  const int ow = g.out_width(), s = g.stride;
  const int wbits = kWbits ? kWbits : plan.wbits;
  const size_t block_words = size_t(plan.taps) * plan.words * wbits * B;
  const detail::BitSerialWork work = detail::make_bit_serial_work(args);
  for (size_t tile = work.tile_begin(); tile < work.tile_end(); ++tile) {
    const detail::BitSerialTile tl = work.tile(tile);
    const int n = tl.image, oy = tl.out_y, ox0 = tl.out_x, pixels = tl.pixels;
    const uint64_t* image = args.activations + size_t(n) * l.image_words;
    int32_t sums[P];
    detail::activation_sums(args, plan, image, oy, ox0, pixels, sums);
    for (int cb0 = tl.cb_begin; cb0 < tl.cb_end; cb0 += kBlocks) {
      const int nb = tl.cb_end - cb0 < kBlocks ? tl.cb_end - cb0 : kBlocks;
      const uint64_t* wblock = args.weights + cb0 * block_words;
      for (int c0 = 0; c0 < pixels; c0 += kInt8PixelGroup) {
        const int chunk = pixels - c0 < kInt8PixelGroup ? pixels - c0 : kInt8PixelGroup;
        // Pixel-major [pixel][16 channels] (blocks >= nb unused), as
        // store_pixel_major takes it; one spare row for a lone last pixel.
        alignas(64) int32_t acc[(kInt8PixelGroup + 1) * kBlocks * B];
        for (int i = c0; i < c0 + chunk; i += 2) {
          // A lone last pixel is computed twice (second copy dropped).
          const int i1 = i + 1 < pixels ? i + 1 : i;
          const uint64_t* win0 = image + l.offset_words(oy * s, (ox0 + i) * s);
          const uint64_t* win1 = image + l.offset_words(oy * s, (ox0 + i1) * s);
          __m512i dot[kBlocks];
          switch (nb) {
            case 4: pixel_pair_tile<kWbits, kAbits, 4>(plan, win0, win1, wblock, block_words, dot); break;
            case 3: pixel_pair_tile<kWbits, kAbits, 3>(plan, win0, win1, wblock, block_words, dot); break;
            case 2: pixel_pair_tile<kWbits, kAbits, 2>(plan, win0, win1, wblock, block_words, dot); break;
            default: pixel_pair_tile<kWbits, kAbits, 1>(plan, win0, win1, wblock, block_words, dot); break;
          }
          // value = step * dot + offset * sum(a), in int32 lanes: the
          // true value fits int32 and wrapping arithmetic is exact mod 2^32.
          const __m256i corr = _mm256_mullo_epi32(
              _mm256_set1_epi32(plan.offset),
              _mm256_setr_epi32(sums[i], sums[i], sums[i], sums[i], sums[i1], sums[i1],
                                sums[i1], sums[i1]));
          const __m256i step = _mm256_set1_epi32(plan.step);
          int32_t* row0 = acc + (i - c0) * kBlocks * B;
          for (int b = 0; b < nb; ++b) {
            const __m256i v =
                _mm256_add_epi32(_mm256_mullo_epi32(step, low_halves(dot[b])), corr);
            _mm_store_si128(reinterpret_cast<__m128i*>(row0 + b * B), _mm256_castsi256_si128(v));
            _mm_store_si128(reinterpret_cast<__m128i*>(row0 + kBlocks * B + b * B),
                            _mm256_extracti128_si256(v, 1));
          }
        }
        // Only the nb blocks of this range (the next may belong to another).
        store_tile_pm512(args.output, g, n, size_t(oy) * ow + ox0 + c0, ow, chunk, cb0 * B, acc,
                         nb * B);
      }
    }
  }
}

}  // namespace

void conv_anybits_bitserial_64x4__avx512(const BitSerialConvArgs& args) {
  detail::BitSerialPlan plan;
  detail::make_bit_serial_plan(args, &plan);
  if (plan.wbits == 1 && plan.abits == 1) return bitserial_vpopcnt<1, 1>(args, plan);
  if (plan.wbits == 2 && plan.abits == 2) return bitserial_vpopcnt<2, 2>(args, plan);
  if (plan.wbits == 3 && plan.abits == 3) return bitserial_vpopcnt<3, 3>(args, plan);
  if (plan.wbits == 4 && plan.abits == 4) return bitserial_vpopcnt<4, 4>(args, plan);
  bitserial_vpopcnt<0, 0>(args, plan);
}

}  // namespace lowbit::kernels
