// Bit-serial convolution, AVX-512 with VPOPCNTDQ (compiled with -mavx512f
// -mavx512bw -mavx512vl -mavx512vnni -mavx512vpopcntdq; dispatch uses it
// only on CPUs that also have VPOPCNTDQ: Ice Lake and later, Zen 4).
//
// Same formats as conv_anybits_bitserial_64x4__avx2 (weights in blocks of 4
// output channels, [cout_blocks][taps][words][wbits][4] uint64) and the same
// work tile (up to 64 output pixels of a row x 4-channel blocks). Register
// tile: 4 output pixels (2 pairs; 1 pair for a row's last 1-2 pixels) x up to
// kBlocks = 4 blocks (16 output channels). A zmm holds one block's 4 weight
// words twice (vbroadcasti64x4, load port only) and an activation word as
// [pixel 0 x 4 | pixel 1 x 4] (a broadcast and a masked broadcast), so one
// vpandq + vpopcntq + vpaddq is 512 binary multiply-adds; each activation
// vector is shared by the blocks and each weight vector by the pairs. The
// (tap, word) steps run as one flat loop over a table of activation offsets
// (W1A1 3x3: 26 vector uops per step, 8 of them vpopcntq on port 5: the loop
// runs at the port 0/5 bound). Plane pairs (i, j) combine by Horner over j
// then i in 64-bit lanes (exact: at most 64 * 15 * 15 per word). value =
// step * sum(q * a) + offset * sum(a) is formed in int32 lanes (vpermt2d +
// vshufi64x2 take the low halves straight into pixel-major rows of 16
// channels) and stored by store_tile_pm512 (tile_codes_avx512.h: vector
// kCodes / kFloat, else store_pixel_major). The common bit-width pairs are
// compiled with constant plane counts.
#include <immintrin.h>

#include <cassert>

#include "bitserial_common.h"
#include "int8_common.h"
#include "lowbit/kernels/conv.h"
#include "tile_codes_avx512.h"

namespace lowbit::kernels {
namespace {

constexpr int kBlocks = 4;  // cout blocks per register tile

// g++ 12's _mm512_broadcast_i64x4 passes an
// _mm*_undefined_*() value as the unused merge source, which
// -Wmaybe-uninitialized reports; nothing is read from it (all-ones mask).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// One block's 4 weight words in both halves (vbroadcasti64x4 from memory).
inline __m512i weights_x2(const uint64_t* w) {
  return _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w)));
}
// 128-bit lanes (a[kLo], a[kLo + 1], b[kLo], b[kLo + 1]) (vshufi64x2).
template <int kLo>
inline __m512i join_lanes(__m512i a, __m512i b) {
  constexpr int imm = kLo | (kLo + 1) << 2 | kLo << 4 | (kLo + 1) << 6;
  return _mm512_shuffle_i64x2(a, b, imm);
}
#pragma GCC diagnostic pop

inline __m512i pixel_pair(const uint64_t* p0, const uint64_t* p1) {
  const __m512i lo = _mm512_set1_epi64(static_cast<long long>(*p0));
  return _mm512_mask_set1_epi64(lo, 0xf0, static_cast<long long>(*p1));
}

// Steps: the (tap, word) pairs in weight order, step = t * words + k, with
// the activation word offset tap_offset[t] + k from the window's top-left
// pixel. One flat loop over steps (no inner loop of 1-2 words per tap); a
// layer with more than kMaxSteps steps runs in chunks of whole taps.
constexpr int kMaxSteps = 2048;

// Builds the offsets of taps [t0, t0 + n) and returns the step count.
inline int build_steps(const detail::BitSerialPlan& plan, int t0, int n, uint32_t* step_offset) {
  int steps = 0;
  for (int t = t0; t < t0 + n; ++t)
    for (int k = 0; k < plan.words; ++k) step_offset[steps++] = uint32_t(plan.tap_offset[t] + k);
  return steps;
}

// kWbits / kAbits: plane counts fixed at compile time, or 0 for plan's.
// Adds the sums of kPairs pixel pairs (windows win[2p], win[2p + 1]) x blocks
// [0, kNb) of w (block_words apart) over `steps` steps into dot[p][b]
// (lanes 0-3: the first pixel's 4 channels, 4-7: the second's).
template <int kWbits, int kAbits, int kNb, int kPairs>
inline void pixel_tile(const detail::BitSerialPlan& plan, const uint32_t* step_offset, int steps,
                       const uint64_t* const* win, const uint64_t* w, size_t block_words,
                       __m512i (*dot)[kBlocks]) {
  constexpr int B = kBitSerialCoutBlock;
  const int words = plan.words;
  const int wbits = kWbits ? kWbits : plan.wbits, abits = kAbits ? kAbits : plan.abits;
  __m512i d[kPairs][kNb];
#pragma GCC unroll 4
  for (int p = 0; p < kPairs; ++p)
#pragma GCC unroll 4
    for (int b = 0; b < kNb; ++b) d[p][b] = dot[p][b];
  for (int st = 0; st < steps; ++st, w += size_t(wbits) * B) {
    const uint32_t off = step_offset[st];
    __m512i act[kPairs][4];
#pragma GCC unroll 4
    for (int p = 0; p < kPairs; ++p)
      for (int j = 0; j < abits; ++j)
        act[p][j] = pixel_pair(win[2 * p] + off + j * words, win[2 * p + 1] + off + j * words);
#pragma GCC unroll 4
    for (int b = 0; b < kNb; ++b) {
      const uint64_t* wb = w + b * block_words;
      __m512i wv[4];
      for (int i = 0; i < wbits; ++i) wv[i] = weights_x2(wb + i * B);
#pragma GCC unroll 4
      for (int p = 0; p < kPairs; ++p) {
        __m512i weighted = _mm512_setzero_si512();  // Horner over weight planes
        for (int i = wbits - 1; i >= 0; --i) {
          __m512i plane = _mm512_setzero_si512();  // Horner over activation planes
          for (int j = abits - 1; j >= 0; --j)
            plane = _mm512_add_epi64(_mm512_add_epi64(plane, plane),
                                     _mm512_popcnt_epi64(_mm512_and_si512(wv[i], act[p][j])));
          weighted = _mm512_add_epi64(_mm512_add_epi64(weighted, weighted), plane);
        }
        d[p][b] = _mm512_add_epi64(d[p][b], weighted);
      }
    }
  }
#pragma GCC unroll 4
  for (int p = 0; p < kPairs; ++p)
#pragma GCC unroll 4
    for (int b = 0; b < kNb; ++b) dot[p][b] = d[p][b];
}

// Sums of 2 * kPairs pixels from tile pixel i (windows of pixels past the
// row's `pixels` repeat the last one; their rows are dropped) x the nb
// blocks from wblock, written pixel-major to acc rows i.. (16 int32 per
// row): value = step * dot + corr[pixel], corr = offset * sum(a). int32 lanes
// wrap, which is exact because the true value fits int32.
template <int kWbits, int kAbits, int kPairs>
inline void pixel_group(const detail::BitSerialPlan& plan, const uint64_t* row_window,
                        size_t pixel_delta, int i, int pixels, int nb, const uint64_t* wblock,
                        size_t block_words, size_t tap_words, int chunk_taps,
                        uint32_t* step_offset, bool one_chunk, const int32_t* corr,
                        int32_t* acc) {
  const uint64_t* win[2 * kPairs];
  for (int q = 0; q < 2 * kPairs; ++q)
    win[q] = row_window + size_t(i + q < pixels ? i + q : pixels - 1) * pixel_delta;
  __m512i dot[kPairs][kBlocks];
  for (int p = 0; p < kPairs; ++p)
    for (int b = 0; b < kBlocks; ++b) dot[p][b] = _mm512_setzero_si512();
  for (int t0 = 0; t0 < plan.taps; t0 += chunk_taps) {
    const int n = plan.taps - t0 < chunk_taps ? plan.taps - t0 : chunk_taps;
    const int steps = one_chunk ? n * plan.words : build_steps(plan, t0, n, step_offset);
    const uint64_t* w = wblock + size_t(t0) * tap_words;
    switch (nb) {
      case 4:
        pixel_tile<kWbits, kAbits, 4, kPairs>(plan, step_offset, steps, win, w, block_words, dot);
        break;
      case 3:
        pixel_tile<kWbits, kAbits, 3, kPairs>(plan, step_offset, steps, win, w, block_words, dot);
        break;
      case 2:
        pixel_tile<kWbits, kAbits, 2, kPairs>(plan, step_offset, steps, win, w, block_words, dot);
        break;
      default:
        pixel_tile<kWbits, kAbits, 1, kPairs>(plan, step_offset, steps, win, w, block_words, dot);
        break;
    }
  }
  // [p0 | p1] int64 lanes of 4 blocks -> two pixel-major rows of 16 int32:
  // vpermt2d takes the low halves of two blocks ([p0 b | p0 b+1 | p1 b |
  // p1 b+1] per 128-bit lane), vshufi64x2 joins the block pairs per pixel.
  const __m512i pick =
      _mm512_setr_epi32(0, 2, 4, 6, 16, 18, 20, 22, 8, 10, 12, 14, 24, 26, 28, 30);
  const __m512i step = _mm512_set1_epi32(plan.step);
  for (int p = 0; p < kPairs; ++p) {
    const __m512i x01 = _mm512_permutex2var_epi32(dot[p][0], pick, dot[p][1]);
    const __m512i x23 = _mm512_permutex2var_epi32(dot[p][2], pick, dot[p][3]);
    __m512i r0 = join_lanes<0>(x01, x23), r1 = join_lanes<2>(x01, x23);
    if (plan.step == 2) {  // binary weights
      r0 = _mm512_add_epi32(r0, r0);
      r1 = _mm512_add_epi32(r1, r1);
    } else if (plan.step != 1) {
      r0 = _mm512_mullo_epi32(r0, step);
      r1 = _mm512_mullo_epi32(r1, step);
    }
    const int i0 = i + 2 * p;
    _mm512_store_si512(acc + i0 * kInt8CoutBlock,
                       _mm512_add_epi32(r0, _mm512_set1_epi32(corr[i0])));
    _mm512_store_si512(acc + (i0 + 1) * kInt8CoutBlock,
                       _mm512_add_epi32(r1, _mm512_set1_epi32(corr[i0 + 1])));
  }
}

template <int kWbits, int kAbits>
void bitserial_vpopcnt(const BitSerialConvArgs& args, const detail::BitSerialPlan& plan) {
  constexpr int P = detail::kBitSerialPixelTile, B = kBitSerialCoutBlock;
  constexpr int kGroup = 4;  // pixels per register tile (2 pairs)
  const ConvGeometry& g = args.geometry;
  const BitPlanesLayout& l = args.activation_layout;
  const int ow = g.out_width(), s = g.stride;
  const int wbits = kWbits ? kWbits : plan.wbits;
  const size_t tap_words = size_t(plan.words) * wbits * B;
  const size_t block_words = size_t(plan.taps) * tap_words;
  const size_t pixel_delta = size_t(s) * l.pixel_words;
  assert(plan.words <= kMaxSteps);
  const int chunk_taps = plan.taps * plan.words <= kMaxSteps ? plan.taps : kMaxSteps / plan.words;
  const bool one_chunk = chunk_taps == plan.taps;
  uint32_t step_offset[kMaxSteps];
  if (one_chunk) build_steps(plan, 0, plan.taps, step_offset);
  const detail::BitSerialWork work = detail::make_bit_serial_work(args);
  for (size_t tile = work.tile_begin(); tile < work.tile_end(); ++tile) {
    const detail::BitSerialTile tl = work.tile(tile);
    const int n = tl.image, oy = tl.out_y, ox0 = tl.out_x, pixels = tl.pixels;
    const uint64_t* image = args.activations + size_t(n) * l.image_words;
    const uint64_t* row_window = image + l.offset_words(oy * s, ox0 * s);
    alignas(64) int32_t corr[P + kGroup];
    detail::activation_sums_local(args, plan, image, oy, ox0, pixels, corr);
    for (int i = 0; i < pixels; ++i) corr[i] = int32_t(int64_t(plan.offset) * corr[i]);
    for (int i = pixels; i < P + kGroup; ++i) corr[i] = 0;
    for (int cb0 = tl.cb_begin; cb0 < tl.cb_end; cb0 += kBlocks) {
      const int nb = tl.cb_end - cb0 < kBlocks ? tl.cb_end - cb0 : kBlocks;
      const uint64_t* wblock = args.weights + cb0 * block_words;
      // Pixel-major [pixel][16 channels] (blocks >= nb unused, rows past
      // `pixels` scratch), as store_tile_pm512 takes it.
      alignas(64) int32_t acc[(P + kGroup) * kBlocks * B];
      int i = 0;
      for (; i + 2 < pixels; i += kGroup)  // 3 or 4 pixels left: a 4-pixel group
        pixel_group<kWbits, kAbits, 2>(plan, row_window, pixel_delta, i, pixels, nb, wblock,
                                       block_words, tap_words, chunk_taps, step_offset,
                                       one_chunk, corr, acc);
      if (i < pixels)  // 1 or 2 pixels left
        pixel_group<kWbits, kAbits, 1>(plan, row_window, pixel_delta, i, pixels, nb, wblock,
                                       block_words, tap_words, chunk_taps, step_offset,
                                       one_chunk, corr, acc);
      // Only the nb blocks of this range (the next may belong to another).
      store_tile_pm512(args.output, g, n, size_t(oy) * ow + ox0, ow, pixels, cb0 * B, acc,
                       nb * B);
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
