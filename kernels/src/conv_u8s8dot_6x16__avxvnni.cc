// INT8 dot-product convolution, AVX-VNNI (compiled with -mavx2 -mfma -mavxvnni;
// 256-bit VEX vpdpbusd, available without AVX-512, e.g. Alder Lake-N).
//
// Register tile: 6 output pixels x 16 output channels = 12 int32
// accumulators. Per k-quad step (four input channels of one tap): 2 weight
// loads (8 channels x 4 s8 each), 6 vpbroadcastd of the pixel's four u8
// codes, 12 vpdpbusd = 384 multiply-adds (2x the vpmaddwd design per
// instruction, and no separate vpaddd). vpdpbusd adds the four full-precision
// u8 x s8 products of a lane to int32: exact. The k loop runs over a whole
// kernel row (kernel_w adjacent pixels x channel_stride bytes are contiguous
// in padded NHWC), so there is no im2col. A kCodes destination is
// requantized with AVX2 from the group's sums in L1 (int8_codes_avx2.h).
// File-local code only.
#include <immintrin.h>

#include "int8_codes_avx2.h"
#include "int8_common.h"

namespace lowbit::kernels {
namespace {

inline __m256i bcast_quad(const uint8_t* p) {
  int32_t v;
  __builtin_memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

#define LOWBIT_DOT(acc, a, w) acc = _mm256_dpbusd_avx_epi32(acc, a, w)

}  // namespace

void conv_u8s8dot_6x16__avxvnni(const Int8DotConvArgs& args) {
  constexpr int T = detail::kInt8Tile, B = kInt8CoutBlock;
  detail::Int8Plan plan;
  detail::make_int8_dot_plan(args, &plan);
  const ConvGeometry& g = args.geometry;
  const Int8DotActivationsLayout& l = args.activation_layout;
  const size_t end = args.work.end < plan.items ? args.work.end : plan.items;
  for (size_t item = args.work.begin; item < end; ++item) {
    const int cb = int(item % plan.cout_blocks);
    const size_t group = item / plan.cout_blocks % plan.pixel_groups;
    const int n = int(item / plan.cout_blocks / plan.pixel_groups);
    const uint8_t* image = args.activations + size_t(n) * l.image_bytes;
    const int8_t* wblock = args.weights + cb * args.weight_layout.block_bytes;
    const size_t g0 = group * kInt8PixelGroup;
    const size_t f_end = g0 + kInt8PixelGroup < plan.flat_pixels ? g0 + kInt8PixelGroup
                                                                 : plan.flat_pixels;
    alignas(32) int32_t acc[kInt8PixelGroup * B];
    for (size_t f0 = g0; f0 < f_end; f0 += T) {
      const int pixels = f_end - f0 < size_t(T) ? int(f_end - f0) : T;
      // Missing pixels of a short tile repeat the last one (computed, dropped).
      const uint8_t* win[T];
      detail::tile_windows(args, plan, image, f0, pixels, T, win);
      __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00, c20 = c00,
              c21 = c00, c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
      const int8_t* w = wblock;
      for (int ky = 0; ky < g.kernel_h; ++ky) {
        const size_t ro = plan.row_offset[ky];
        const uint8_t *a0 = win[0] + ro, *a1 = win[1] + ro, *a2 = win[2] + ro,
                      *a3 = win[3] + ro, *a4 = win[4] + ro, *a5 = win[5] + ro;
        const int bytes = 4 * plan.row_quads;
        for (int k = 0; k < bytes; k += 4, w += 4 * B) {
          const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w));
          const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 2 * B));
          __m256i x = bcast_quad(a0 + k);
          LOWBIT_DOT(c00, x, w0);
          LOWBIT_DOT(c01, x, w1);
          x = bcast_quad(a1 + k);
          LOWBIT_DOT(c10, x, w0);
          LOWBIT_DOT(c11, x, w1);
          x = bcast_quad(a2 + k);
          LOWBIT_DOT(c20, x, w0);
          LOWBIT_DOT(c21, x, w1);
          x = bcast_quad(a3 + k);
          LOWBIT_DOT(c30, x, w0);
          LOWBIT_DOT(c31, x, w1);
          x = bcast_quad(a4 + k);
          LOWBIT_DOT(c40, x, w0);
          LOWBIT_DOT(c41, x, w1);
          x = bcast_quad(a5 + k);
          LOWBIT_DOT(c50, x, w0);
          LOWBIT_DOT(c51, x, w1);
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
    store_block256(args.output, g, n, g0, plan.out_width, int(f_end - g0), cb * B, acc);
  }
}

}  // namespace lowbit::kernels
