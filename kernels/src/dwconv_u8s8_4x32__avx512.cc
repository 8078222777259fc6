// Depthwise INT8 convolution, AVX-512 (compiled with -mavx512f -mavx512bw
// -mavx512vl -mavx512vnni; 512-bit EVEX vpdpwssd, 32 zmm registers).
//
// Same formats as dwconv_u8s8_1x16__*: 16-bit activation codes, weights of
// a 16-channel block interleaved per tap pair for vpunpcklwd / vpunpckhwd
// (DwWeightsLayout). One zmm holds 32 channels: two consecutive channel
// blocks of the same output row (work items (image, row, block) item and
// item + 1), their weight rows joined as the two 256-bit halves; a lone block
// (odd channel_blocks, or a work range that splits a pair) runs the same code
// with the upper half masked off (masked loads never fault). Register tile:
// 4 output pixels x 32 channels, the weights of up to 5 tap pairs (3x3) held
// in 10 zmm along the row. Per tap pair and pixel: two activation loads,
// vpunpcklwd + vpunpckhwd (per 128-bit lane, matching the weight
// interleave), two vpdpwssd giving exact int32 w[2q]*a[2q] + w[2q+1]*a[2q+1]
// (|products| <= 255 * 128, two of them fit easily). Four independent pixels
// hide vpdpwssd's latency. One vpermt2q per block restores channel order.
// File-local code only.
#include <immintrin.h>

#include "int8_codes_avx512.h"
#include "int8_common.h"

namespace lowbit::kernels {
namespace {

constexpr int B = kDwChannelBlock;  // 16
constexpr int kTile = 4;            // output pixels per register tile
constexpr int kChunk = 16;          // output pixels per store call

struct Row {
  const uint16_t* base;  // top-left window element of output pixel 0, channel cb * 16
  size_t step;           // elements between windows of neighbouring output pixels
  __mmask32 lanes;       // 32 channels (pair) or the lower 16 (lone block)
};

inline __m512i load_tap(const Row& r, const uint16_t* p) {
  return _mm512_maskz_loadu_epi16(r.lanes, p);
}

// Sums of kPixels output pixels (from ox) x 32 channels, written
// pixel-major to acc0 (channels 0-15) and acc1 (16-31) at row i.
template <int kTaps, int kPixels>
inline void dw_pixels(const Row& r, const size_t* tap_offset, int taps, const __m512i* wlo,
                      const __m512i* whi, int ox, int32_t* acc0, int32_t* acc1) {
  const int n = kTaps > 0 ? kTaps : taps;
  const int pairs = (n + 1) / 2;
  __m512i lo[kPixels], hi[kPixels];
  const uint16_t* win[kPixels];
#pragma GCC unroll 4
  for (int i = 0; i < kPixels; ++i) {
    lo[i] = hi[i] = _mm512_setzero_si512();
    win[i] = r.base + size_t(ox + i) * r.step;
  }
#pragma GCC unroll 16
  for (int q = 0; q < pairs; ++q) {
#pragma GCC unroll 4
    for (int i = 0; i < kPixels; ++i) {
      const __m512i x0 = load_tap(r, win[i] + tap_offset[2 * q]);
      const __m512i x1 =
          2 * q + 1 < n ? load_tap(r, win[i] + tap_offset[2 * q + 1]) : _mm512_setzero_si512();
      lo[i] = _mm512_dpwssd_epi32(lo[i], _mm512_unpacklo_epi16(x0, x1), wlo[q]);
      hi[i] = _mm512_dpwssd_epi32(hi[i], _mm512_unpackhi_epi16(x0, x1), whi[q]);
    }
  }
  // lo: 128-bit lanes hold channels {0-3, 8-11, 16-19, 24-27}, hi {4-7, ...}.
  const __m512i first = _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0);
  const __m512i second = _mm512_set_epi64(15, 14, 7, 6, 13, 12, 5, 4);
#pragma GCC unroll 4
  for (int i = 0; i < kPixels; ++i) {
    _mm512_store_si512(acc0 + i * B, _mm512_permutex2var_epi64(lo[i], first, hi[i]));
    _mm512_store_si512(acc1 + i * B, _mm512_permutex2var_epi64(lo[i], second, hi[i]));
  }
}

// One output row of one or two channel blocks (pair).
template <int kTaps>
void dw_row(const DwConvArgs& args, const detail::DwPlan& plan, const Row& r, const int16_t* wb0,
            const int16_t* wb1, bool pair, int n, int oy, int cb) {
  constexpr int kMaxPairs = kTaps > 0 ? (kTaps + 1) / 2 : detail::kDwMaxTaps / 2;
  const int pairs = (plan.taps + 1) / 2;
  __m512i wlo[kMaxPairs], whi[kMaxPairs];
  // maskz_ form: GCC 12 warns about the plain one's undefined pass-through.
  for (int q = 0; q < pairs; ++q) {
    const __m256i zero = _mm256_setzero_si256();
    const auto row = [&](const int16_t* p) {
      return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    };
    wlo[q] = _mm512_maskz_inserti64x4(0xff, _mm512_castsi256_si512(row(wb0 + q * 32)),
                                pair ? row(wb1 + q * 32) : zero, 1);
    whi[q] = _mm512_maskz_inserti64x4(0xff, _mm512_castsi256_si512(row(wb0 + q * 32 + 16)),
                                pair ? row(wb1 + q * 32 + 16) : zero, 1);
  }
  // kCodes constants of the row's blocks, built once per row.
  const bool codes = detail::codes_vectorizable(args.output);
  const ConvGeometry& g = args.geometry;
  Codes512 c0, c1;
  if (codes) {
    c0 = make_codes512(args.output.epilogue, cb * B, block_couts(g, cb * B));
    if (pair) c1 = make_codes512(args.output.epilogue, (cb + 1) * B, block_couts(g, (cb + 1) * B));
  }
  alignas(64) int32_t acc0[kChunk * B];
  alignas(64) int32_t acc1[kChunk * B];
  for (int ox0 = 0; ox0 < plan.out_width; ox0 += kChunk) {
    const int pixels = plan.out_width - ox0 < kChunk ? plan.out_width - ox0 : kChunk;
    int i = 0;
    for (; i + kTile <= pixels; i += kTile)
      dw_pixels<kTaps, kTile>(r, plan.tap_offset, plan.taps, wlo, whi, ox0 + i, acc0 + i * B,
                              acc1 + i * B);
    for (; i < pixels; ++i)
      dw_pixels<kTaps, 1>(r, plan.tap_offset, plan.taps, wlo, whi, ox0 + i, acc0 + i * B,
                          acc1 + i * B);
    const size_t f = size_t(oy) * plan.out_width + ox0;
    if (codes) {
      store_codes512(args.output, g, n, f, pixels, cb * B, c0, acc0);
      if (pair) store_codes512(args.output, g, n, f, pixels, (cb + 1) * B, c1, acc1);
    } else {
      detail::store_pixel_major(args.output, g, n, f, plan.out_width, pixels, cb * B, acc0);
      if (pair)
        detail::store_pixel_major(args.output, g, n, f, plan.out_width, pixels, (cb + 1) * B, acc1);
    }
  }
}

}  // namespace

void dwconv_u8s8_4x32__avx512(const DwConvArgs& args) {
  detail::DwPlan plan;
  detail::make_dw_plan(args, &plan);
  const Int8ActivationsLayout& l = args.activation_layout;
  const size_t end = args.work.end < plan.items ? args.work.end : plan.items;
  for (size_t item = args.work.begin; item < end;) {
    const int cb = int(item % plan.channel_blocks);
    const int oy = int(item / plan.channel_blocks % plan.out_height);
    const int n = int(item / plan.channel_blocks / plan.out_height);
    const bool pair = cb + 1 < plan.channel_blocks && item + 1 < end;
    Row r;
    r.base = args.activations + size_t(n) * l.image_elems + l.offset(oy * args.geometry.stride, 0) +
             cb * B;
    r.step = size_t(args.geometry.stride) * l.channel_stride;
    r.lanes = pair ? ~__mmask32(0) : __mmask32(0xffff);
    const int16_t* wb0 = args.weights + cb * args.weight_layout.block_elems;
    const int16_t* wb1 = pair ? wb0 + args.weight_layout.block_elems : wb0;
    if (plan.taps == 9)
      dw_row<9>(args, plan, r, wb0, wb1, pair, n, oy, cb);
    else
      dw_row<0>(args, plan, r, wb0, wb1, pair, n, oy, cb);
    item += pair ? 2 : 1;
  }
}

}  // namespace lowbit::kernels
