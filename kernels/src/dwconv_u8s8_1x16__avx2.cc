// Depthwise INT8 convolution, AVX2 (compiled with -mavx2 -mfma).
//
// Tile: one output pixel x 16 channels, walking along an output row with the
// weights of the channel block held in registers (up to 5 tap pairs, i.e.
// 3x3). Per tap pair (2q, 2q+1): two 16-channel int16 activation loads,
// vpunpcklwd / vpunpckhwd interleave them per channel, two vpmaddwd against
// the pre-interleaved weights (DwWeightsLayout) give exact int32
// w[2q]*a[2q] + w[2q+1]*a[2q+1] for channels {0-3, 8-11} and {4-7, 12-15}.
// File-local code only.
#include <immintrin.h>

#include "int8_common.h"

namespace lowbit::kernels {
namespace {

constexpr int B = kDwChannelBlock, R = detail::kDwRowChunk;

// kPairs > 0: compile-time tap-pair count (weights in registers); 0: any.
template <int kPairs>
void dw_row(const DwConvArgs& args, const detail::DwPlan& plan, const uint16_t* row_base,
            const int16_t* wb, int n, int oy, int cb) {
  const int pairs = kPairs > 0 ? kPairs : (plan.taps + 1) / 2;
  const int taps = plan.taps;
  constexpr int kMax = kPairs > 0 ? kPairs : 32;
  __m256i wlo[kMax], whi[kMax];
  for (int q = 0; q < pairs; ++q) {
    wlo[q] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb + q * 32));
    whi[q] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb + q * 32 + 16));
  }
  const size_t step = size_t(args.geometry.stride) * args.activation_layout.channel_stride;
  alignas(32) int32_t acc[R * B];
  for (int ox0 = 0; ox0 < plan.out_width; ox0 += R) {
    const int pixels = plan.out_width - ox0 < R ? plan.out_width - ox0 : R;
    const uint16_t* window = row_base + size_t(ox0) * step;
    for (int i = 0; i < pixels; ++i, window += step) {
      __m256i lo = _mm256_setzero_si256(), hi = lo;
      for (int q = 0; q < pairs; ++q) {
        const __m256i x0 =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(window + plan.tap_offset[2 * q]));
        const __m256i x1 =
            2 * q + 1 < taps ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(
                                   window + plan.tap_offset[2 * q + 1]))
                             : _mm256_setzero_si256();
        lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(x0, x1), wlo[q]));
        hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(x0, x1), whi[q]));
      }
      _mm256_store_si256(reinterpret_cast<__m256i*>(acc + i * B),
                         _mm256_permute2x128_si256(lo, hi, 0x20));  // channels 0..7
      _mm256_store_si256(reinterpret_cast<__m256i*>(acc + i * B + 8),
                         _mm256_permute2x128_si256(lo, hi, 0x31));  // channels 8..15
    }
    detail::store_pixel_major(args.output, args.geometry, n, size_t(oy) * plan.out_width + ox0,
                              plan.out_width, pixels, cb * B, acc);
  }
}

}  // namespace

void dwconv_u8s8_1x16__avx2(const DwConvArgs& args) {
  detail::DwPlan plan;
  detail::make_dw_plan(args, &plan);
  const Int8ActivationsLayout& l = args.activation_layout;
  const size_t end = args.work.end < plan.items ? args.work.end : plan.items;
  for (size_t item = args.work.begin; item < end; ++item) {
    const int cb = int(item % plan.channel_blocks);
    const int oy = int(item / plan.channel_blocks % plan.out_height);
    const int n = int(item / plan.channel_blocks / plan.out_height);
    const uint16_t* row_base =
        args.activations + size_t(n) * l.image_elems + l.offset(oy * args.geometry.stride, 0) + cb * B;
    const int16_t* wb = args.weights + cb * args.weight_layout.block_elems;
    const int pairs = (plan.taps + 1) / 2;
    if (pairs == 5) dw_row<5>(args, plan, row_base, wb, n, oy, cb);
    else if (pairs <= 32) dw_row<0>(args, plan, row_base, wb, n, oy, cb);
  }
}

}  // namespace lowbit::kernels
