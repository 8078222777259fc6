// INT8 convolution, AVX2 (compiled with -mavx2 -mfma).
//
// Register tile: 6 output pixels x 16 output channels = 12 int32
// accumulators. Per k-pair step (two input channels of one tap): 2 weight
// loads (8 channels x 2 int16 each), 6 broadcasts of the pixel's two int16
// activations, 12 vpmaddwd + 12 vpaddd = 192 multiply-adds. vpmaddwd on
// zero-extended u8 and sign-extended s8 is exact (|pair sum| <= 65280 fits
// int32), unlike vpmaddubsw whose int16 pair sums saturate. The k loop runs
// over a whole kernel row (kernel_w adjacent pixels x channel_stride are
// contiguous in padded NHWC), so there is no im2col.
// File-local code only (no shared inline helpers compiled with AVX2 flags).
#include <immintrin.h>

#include "int8_common.h"

namespace lowbit::kernels {
namespace {

inline __m256i bcast_pair(const uint16_t* p) {
  int32_t v;
  __builtin_memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

#define LOWBIT_MADD(acc, a, w) acc = _mm256_add_epi32(acc, _mm256_madd_epi16(a, w))

}  // namespace

void conv_u8s8_6x16__avx2(const Int8ConvArgs& args) {
  constexpr int T = detail::kInt8Tile, B = kInt8CoutBlock;
  detail::Int8Plan plan;
  detail::make_int8_plan(args, &plan);
  const ConvGeometry& g = args.geometry;
  const size_t end = args.work.end < plan.items ? args.work.end : plan.items;
  for (size_t item = args.work.begin; item < end; ++item) {
    const int cb = int(item % plan.cout_blocks);
    const size_t group = item / plan.cout_blocks % plan.pixel_groups;
    const int n = int(item / plan.cout_blocks / plan.pixel_groups);
    const uint16_t* image = args.activations + size_t(n) * args.activation_layout.image_elems;
    const int16_t* wblock = args.weights + cb * args.weight_layout.block_elems;
    const size_t g0 = group * kInt8PixelGroup;
    const size_t f_end = g0 + kInt8PixelGroup < plan.flat_pixels ? g0 + kInt8PixelGroup
                                                                 : plan.flat_pixels;
    alignas(32) int32_t acc[kInt8PixelGroup * B];
    for (size_t f0 = g0; f0 < f_end; f0 += T) {
      const int pixels = f_end - f0 < size_t(T) ? int(f_end - f0) : T;
      // Missing pixels of a short tile repeat the last one (computed, dropped).
      // One division per tile; the next pixels step along the output row.
      const uint16_t* win[T];
      {
        int y = int(f0 / plan.out_width), x = int(f0 % plan.out_width);
        const Int8ActivationsLayout& l = args.activation_layout;
        for (int i = 0; i < T; ++i) {
          win[i] = image + l.offset(y * g.stride, x * g.stride);
          if (i + 1 < pixels && ++x == plan.out_width) x = 0, ++y;
        }
      }
      __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00, c20 = c00,
              c21 = c00, c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
      const int16_t* w = wblock;
      for (int ky = 0; ky < g.kernel_h; ++ky) {
        const size_t ro = plan.row_offset[ky];
        const uint16_t *a0 = win[0] + ro, *a1 = win[1] + ro, *a2 = win[2] + ro,
                       *a3 = win[3] + ro, *a4 = win[4] + ro, *a5 = win[5] + ro;
        const int pairs = plan.row_pairs;
        for (int p = 0; p < pairs; ++p, w += 2 * B) {
          const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w));
          const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + B));
          __m256i x = bcast_pair(a0 + 2 * p);
          LOWBIT_MADD(c00, x, w0);
          LOWBIT_MADD(c01, x, w1);
          x = bcast_pair(a1 + 2 * p);
          LOWBIT_MADD(c10, x, w0);
          LOWBIT_MADD(c11, x, w1);
          x = bcast_pair(a2 + 2 * p);
          LOWBIT_MADD(c20, x, w0);
          LOWBIT_MADD(c21, x, w1);
          x = bcast_pair(a3 + 2 * p);
          LOWBIT_MADD(c30, x, w0);
          LOWBIT_MADD(c31, x, w1);
          x = bcast_pair(a4 + 2 * p);
          LOWBIT_MADD(c40, x, w0);
          LOWBIT_MADD(c41, x, w1);
          x = bcast_pair(a5 + 2 * p);
          LOWBIT_MADD(c50, x, w0);
          LOWBIT_MADD(c51, x, w1);
        }
      }
      // acc is pixel-major [pixel][16]; rows beyond `pixels` are scratch.
      int32_t* t = acc + (f0 - g0) * B;
      const __m256i rows[2 * T] = {c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51};
      for (int i = 0; i < pixels; ++i) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(t + i * B), rows[2 * i]);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(t + i * B + 8), rows[2 * i + 1]);
      }
    }
    detail::store_pixel_major(args.output, g, n, g0, plan.out_width, int(f_end - g0), cb * B, acc);
  }
}

}  // namespace lowbit::kernels
