// INT8 dot-product convolution, AVX-512 (compiled with -mavx512f -mavx512bw
// -mavx512vl -mavx512vnni; 512-bit EVEX vpdpbusd, 32 zmm registers).
//
// Same formats as conv_u8s8dot_6x16__avxvnni: one k-quad step of a block of
// 16 output channels is 64 bytes = one zmm (16 channels x 4 s8). Register
// tile: 8 output pixels x 32 output channels (two consecutive cout blocks,
// read at the same offset one block_bytes apart) = 16 zmm accumulators. Per
// k-quad step: 2 weight loads, 8 vpbroadcastd of a pixel's four u8 codes
// (load-port only), 16 vpdpbusd = 1024 multiply-adds; two vpdpbusd per cycle
// would be 128 multiply-adds per cycle. A lone block (odd cout_blocks, or a
// work range that splits a pair) runs the 8 x 16 tile. Loop order per pixel
// group of 24 (three tiles): tile, kernel row, k-quads of the row; or, when
// a pass's weights outgrow L1, kernel row, tile, k-quads. vpdpbusd adds the four
// full-precision u8 x s8 products of a lane to int32: exact. The k loop runs
// over a whole kernel row (kernel_w pixels x channel_stride bytes are
// contiguous in padded NHWC), so there is no im2col. A kCodes destination
// (u8 codes for the next INT8 layer) is requantized with AVX-512 from the
// group's sums while they are in L1 (int8_codes_avx512.h); the others go
// through the shared output stage. File-local code only.
#include <immintrin.h>

#include "int8_codes_avx512.h"
#include "int8_common.h"

namespace lowbit::kernels {
namespace {

constexpr int kPixels = 8;  // output pixels per register tile; divides kInt8PixelGroup
static_assert(kInt8PixelGroup % kPixels == 0);
// Weights of one pass (one or two blocks) above which kernel rows go outermost.
constexpr size_t kL1WeightBytes = 32 * 1024;

inline __m512i bcast_quad(const uint8_t* p) {
  int32_t v;
  __builtin_memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// One register tile over kernel rows [ky_begin, ky_end): kPixels flat output
// pixels whose windows start at win[i] x kBlocks * 16 channels; the weights
// of the first block start at wblock, the second's block_bytes later. The
// sums continue those in acc[b] (pixel-major, 16 int32 per pixel, all kPixels
// rows) unless ky_begin == 0.
template <int kBlocks>
inline void dot_tile_rows(const uint8_t* const* win, const detail::Int8Plan& plan, int ky_begin,
                          int ky_end, const int8_t* wblock, size_t block_bytes, int32_t* acc0,
                          int32_t* acc1) {
  int32_t* acc[2] = {acc0, acc1};
  const bool first = ky_begin == 0;
  __m512i c[kPixels][kBlocks];
#pragma GCC unroll 16
  for (int i = 0; i < kPixels; ++i)
#pragma GCC unroll 2
    for (int b = 0; b < kBlocks; ++b)
      c[i][b] = first ? _mm512_setzero_si512() : _mm512_load_si512(acc[b] + i * kInt8CoutBlock);
  const int bytes = 4 * plan.row_quads;
  const int8_t* w = wblock + size_t(ky_begin) * plan.row_quads * 64;
  for (int ky = ky_begin; ky < ky_end; ++ky) {
    const size_t ro = plan.row_offset[ky];
    const uint8_t* a[kPixels];
#pragma GCC unroll 16
    for (int i = 0; i < kPixels; ++i) a[i] = win[i] + ro;
    for (int k = 0; k < bytes; k += 4, w += 64) {
      __m512i wv[kBlocks];
      wv[0] = _mm512_loadu_si512(w);
      if constexpr (kBlocks == 2) wv[1] = _mm512_loadu_si512(w + block_bytes);
#pragma GCC unroll 16
      for (int i = 0; i < kPixels; ++i) {
        const __m512i x = bcast_quad(a[i] + k);
#pragma GCC unroll 2
        for (int b = 0; b < kBlocks; ++b) c[i][b] = _mm512_dpbusd_epi32(c[i][b], x, wv[b]);
      }
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < kPixels; ++i)
#pragma GCC unroll 2
    for (int b = 0; b < kBlocks; ++b) _mm512_store_si512(acc[b] + i * kInt8CoutBlock, c[i][b]);
}

}  // namespace

void conv_u8s8dot_8x32__avx512(const Int8DotConvArgs& args) {
  constexpr int B = kInt8CoutBlock;
  detail::Int8Plan plan;
  detail::make_int8_dot_plan(args, &plan);
  const ConvGeometry& g = args.geometry;
  const Int8DotActivationsLayout& l = args.activation_layout;
  const size_t block_bytes = args.weight_layout.block_bytes;
  const size_t end = args.work.end < plan.items ? args.work.end : plan.items;
  for (size_t item = args.work.begin; item < end;) {
    const int cb = int(item % plan.cout_blocks);
    const size_t group = item / plan.cout_blocks % plan.pixel_groups;
    const int n = int(item / plan.cout_blocks / plan.pixel_groups);
    // Two blocks of the same pixel group in one pass when both are ours.
    const bool pair = cb + 1 < plan.cout_blocks && item + 1 < end;
    const uint8_t* image = args.activations + size_t(n) * l.image_bytes;
    const int8_t* wblock = args.weights + cb * block_bytes;
    const size_t g0 = group * kInt8PixelGroup;
    const size_t f_end = g0 + kInt8PixelGroup < plan.flat_pixels ? g0 + kInt8PixelGroup
                                                                 : plan.flat_pixels;
    const int pixels = int(f_end - g0);
    alignas(64) int32_t acc0[kInt8PixelGroup * B];
    alignas(64) int32_t acc1[kInt8PixelGroup * B];
    // Window start of every pixel of the group; missing pixels of a short
    // last tile repeat the last one (computed, dropped).
    const uint8_t* win[kInt8PixelGroup];
    detail::tile_windows(args, plan, image, g0, pixels, kInt8PixelGroup, win);
    const int tiles = (pixels + kPixels - 1) / kPixels;
    // A kernel whose weights (per pass) outgrow L1 runs one kernel row at a
    // time over all tiles of the group, so each row's weights are reused from
    // L1 while the sums wait in acc; a smaller one runs whole tiles.
    const int rows_per_pass = block_bytes * (pair ? 2 : 1) > kL1WeightBytes ? 1 : g.kernel_h;
    for (int ky = 0; ky < g.kernel_h; ky += rows_per_pass) {
      const int ky_end = ky + rows_per_pass < g.kernel_h ? ky + rows_per_pass : g.kernel_h;
      for (int t = 0; t < tiles; ++t) {
        int32_t* t0 = acc0 + t * kPixels * B;
        int32_t* t1 = acc1 + t * kPixels * B;
        if (pair)
          dot_tile_rows<2>(win + t * kPixels, plan, ky, ky_end, wblock, block_bytes, t0, t1);
        else
          dot_tile_rows<1>(win + t * kPixels, plan, ky, ky_end, wblock, block_bytes, t0, t1);
      }
    }
    store_block512(args.output, g, n, g0, plan.out_width, pixels, cb * B, acc0);
    if (pair) store_block512(args.output, g, n, g0, plan.out_width, pixels, (cb + 1) * B, acc1);
    item += pair ? 2 : 1;
  }
}

}  // namespace lowbit::kernels
