// INT8 convolution on the byte formats (conv_u8s8dot family), AArch64 NEON
// without the dot-product extension (Cortex-A53/A55/A72): 8-bit widening
// multiplies, 8 multiply-adds per smull.
//
// Arithmetic. Activations a (u8) are recentred to a' = a ^ 0x80 = a - 128
// (s8, in [-128, 127]), so sum(a * w) = sum(a' * w) + 128 * sum(w); the
// second term is per output channel (wsum, computed once per weight block
// and call). When every weight of the block lies in [-127, 127], a product
// is at most 128 * 127 = 16256 in magnitude, so the sum of two (smull +
// smlal of two k-quads) fits int16 exactly (|.| <= 32512) and one sadalp
// adds the pairs into int32: 2 multiplies per sadalp. A block holding a
// -128 weight takes a loop with one product per int16 lane (smull + sadalp
// per k-quad; |a' * w| <= 16384): exact for every s8 weight.
// int32 partial sums: |sum(a' * w)| <= 65793 * 16384 < 2^31.
//
// Register tile: 2 output pixels x 16 output channels. A 16-byte weight row
// of one k-quad step holds channels 4r..4r+3 x 4 input channels (r = 0..3);
// the low half times the pixel's broadcast quad gives channels 4r, 4r+1 x 4
// k as int16, the high half (smull2) channels 4r+2, 4r+3; sadalp folds
// neighbouring lanes, so each int32x4 accumulator holds 2 channels x 2
// partial sums (8 accumulators per pixel, 16 in all), reduced by addp at the
// end. Per two k-quads and pixel: 16 multiplies (128 multiply-adds), 8
// sadalp, 2 ld1r + 2 eor; weights are loaded once per two pixels. Padded
// channels and border pixels are code 0 (a' = -128) against zero weights or
// real weights whose wsum includes them: exact either way.
#include <arm_neon.h>

#include "int8_common.h"
#include "mca_markers.h"

namespace lowbit::kernels {
namespace {

constexpr int kTile = 2;           // output pixels per register tile
constexpr int kCachedBlocks = 64;  // weight sums kept per call (1024 channels)

struct BlockSums {
  int32_t wsum[kInt8CoutBlock];  // 128 * sum of the block's weights, per channel
  bool has_min;                  // some weight is -128: single products per lane
};

// Weight sums (times 128) and the -128 test of one block: `steps` k-quad
// steps of 64 bytes ([16 channels][4] s8).
void block_sums(const int8_t* w, size_t steps, BlockSums* s) {
  int32x4_t sum[4] = {vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0)};
  int8x16_t lo = vdupq_n_s8(0);
  for (size_t k = 0; k < steps; ++k, w += 64) {
    for (int r = 0; r < 4; ++r) {
      const int8x16_t v = vld1q_s8(w + 16 * r);
      lo = vminq_s8(lo, v);
      // channels 4r..4r+3 x 4 k -> int16 pairs -> int32 per channel
      sum[r] = vpadalq_s16(sum[r], vpaddlq_s8(v));
    }
  }
  for (int r = 0; r < 4; ++r) vst1q_s32(s->wsum + 4 * r, vshlq_n_s32(sum[r], 7));
  s->has_min = vminvq_s8(lo) == -128;
}

// The 4 codes at p broadcast to 4 lanes, recentred to s8.
inline int8x16_t load_quad(const uint8_t* p) {
  const uint32x4_t v = vld1q_dup_u32(reinterpret_cast<const uint32_t*>(p));
  return veorq_s8(vreinterpretq_s8_u32(v), vdupq_n_s8(-128));
}

// Sums of one 2-pixel tile into t[i * 16 + o] (pixel-major), wsum added.
// c<i><j>: pixel i, accumulator j (channels 4r, 4r+1 for j = 2r; 4r+2, 4r+3
// for j = 2r+1), named so that gcc keeps all 16 in registers.
template <bool kPairs>
void tile(const Int8DotConvArgs& args, const detail::Int8Plan& plan, const int8_t* wblock,
          const uint8_t* win0, const uint8_t* win1, const int32_t* wsum, int pixels, int32_t* t) {
  int32x4_t c00 = vdupq_n_s32(0), c01 = c00, c02 = c00, c03 = c00, c04 = c00, c05 = c00, c06 = c00,
            c07 = c00, c10 = c00, c11 = c00, c12 = c00, c13 = c00, c14 = c00, c15 = c00, c16 = c00,
            c17 = c00;
  const int8_t* w = wblock;
  const int quads = plan.row_quads;
  const int8x16_t k = vdupq_n_s8(-128);
  for (int ky = 0; ky < args.geometry.kernel_h; ++ky) {
    const uint8_t* a0 = win0 + plan.row_offset[ky];  // advanced by the loops
    const uint8_t* a1 = win1 + plan.row_offset[ky];
    int q = 0;
    if constexpr (kPairs) {
      // One iteration: k-quads q, q+1 of both pixels, hand-scheduled so that
      // in-order cores (A53/A55) never wait on a product: row r+1's
      // multiplies run between row r's multiplies and its sadalp (products
      // alternate between p and s), and each weight row is loaded one row
      // ahead. One asm statement per row (an asm takes at most 30 operands).
      for (; q + 2 <= quads; q += 2, w += 128) {
        LOWBIT_MCA_BEGIN("conv_u8s8_neon");
        int8x16_t x0, x1, y0, y1, u, v;
        int16x8_t p0, p1, p2, p3, s0, s1, s2, s3;
        asm("ld1r {%[x0].4s}, [%[a0]], #4\n\t"
            "ld1r {%[x1].4s}, [%[a1]], #4\n\t"
            "ld1r {%[y0].4s}, [%[a0]], #4\n\t"
            "ld1r {%[y1].4s}, [%[a1]], #4\n\t"
            "ldr %q[u], [%[w]]\n\t"
            "ldr %q[v], [%[w], #64]\n\t"
            "eor %[x0].16b, %[x0].16b, %[k].16b\n\t"
            "eor %[x1].16b, %[x1].16b, %[k].16b\n\t"
            "eor %[y0].16b, %[y0].16b, %[k].16b\n\t"
            "eor %[y1].16b, %[y1].16b, %[k].16b"
            : [x0] "=&w"(x0), [x1] "=&w"(x1), [y0] "=&w"(y0), [y1] "=&w"(y1), [u] "=&w"(u),
              [v] "=&w"(v), [a0] "+r"(a0), [a1] "+r"(a1)
            : [w] "r"(w), [k] "w"(k)
            : "memory");
// smull / smull2 of weight row u by x0, x1 and smlal / smlal2 of row v (the
// next k-quad) by y0, y1 into P0..P3; LOAD_U / LOAD_V fetch the next rows.
#define LOWBIT_PRODUCTS(P0, P1, P2, P3, LOAD_U, LOAD_V)                 \
  "smull %[" #P0                                                        \
  "].8h, %[u].8b, %[x0].8b\n\t"                                         \
  "smull2 %[" #P1                                                       \
  "].8h, %[u].16b, %[x0].16b\n\t"                                       \
  "smull %[" #P2                                                        \
  "].8h, %[u].8b, %[x1].8b\n\t"                                         \
  "smull2 %[" #P3 "].8h, %[u].16b, %[x1].16b\n\t" LOAD_U "smlal %[" #P0 \
  "].8h, %[v].8b, %[y0].8b\n\t"                                         \
  "smlal2 %[" #P1                                                       \
  "].8h, %[v].16b, %[y0].16b\n\t"                                       \
  "smlal %[" #P2                                                        \
  "].8h, %[v].8b, %[y1].8b\n\t"                                         \
  "smlal2 %[" #P3 "].8h, %[v].16b, %[y1].16b\n\t" LOAD_V
#define LOWBIT_SADALP(Q0, Q1, Q2, Q3) \
  "sadalp %[c0].4s, %[" #Q0           \
  "].8h\n\t"                          \
  "sadalp %[c1].4s, %[" #Q1           \
  "].8h\n\t"                          \
  "sadalp %[c2].4s, %[" #Q2           \
  "].8h\n\t"                          \
  "sadalp %[c3].4s, %[" #Q3 "].8h"
#define LOWBIT_ROW_IN [x0] "w"(x0), [x1] "w"(x1), [y0] "w"(y0), [y1] "w"(y1), [w] "r"(w)
        // row 0 -> p
        asm(LOWBIT_PRODUCTS(p0, p1, p2, p3, "ldr %q[u], [%[w], #16]\n\t", "ldr %q[v], [%[w], #80]")
            :
            [p0] "=&w"(p0), [p1] "=&w"(p1), [p2] "=&w"(p2), [p3] "=&w"(p3), [u] "+w"(u), [v] "+w"(v)
            : LOWBIT_ROW_IN
            : "memory");
        // row 1 -> s; row 0 into c00, c01, c10, c11
        asm(LOWBIT_PRODUCTS(s0, s1, s2, s3, "ldr %q[u], [%[w], #32]\n\t",
                            "ldr %q[v], [%[w], #96]\n\t") LOWBIT_SADALP(p0, p1, p2, p3)
            : [s0] "=&w"(s0), [s1] "=&w"(s1), [s2] "=&w"(s2), [s3] "=&w"(s3), [u] "+w"(u),
              [v] "+w"(v), [c0] "+w"(c00), [c1] "+w"(c01), [c2] "+w"(c10), [c3] "+w"(c11)
            : LOWBIT_ROW_IN, [p0] "w"(p0), [p1] "w"(p1), [p2] "w"(p2), [p3] "w"(p3)
            : "memory");
        // row 2 -> p; row 1 into c02, c03, c12, c13
        asm(LOWBIT_PRODUCTS(p0, p1, p2, p3, "ldr %q[u], [%[w], #48]\n\t",
                            "ldr %q[v], [%[w], #112]\n\t") LOWBIT_SADALP(s0, s1, s2, s3)
            : [p0] "=&w"(p0), [p1] "=&w"(p1), [p2] "=&w"(p2), [p3] "=&w"(p3), [u] "+w"(u),
              [v] "+w"(v), [c0] "+w"(c02), [c1] "+w"(c03), [c2] "+w"(c12), [c3] "+w"(c13)
            : LOWBIT_ROW_IN, [s0] "w"(s0), [s1] "w"(s1), [s2] "w"(s2), [s3] "w"(s3)
            : "memory");
        // row 3 -> s; row 2 into c04, c05, c14, c15
        asm(LOWBIT_PRODUCTS(s0, s1, s2, s3, "", "") LOWBIT_SADALP(p0, p1, p2, p3)
            : [s0] "=&w"(s0), [s1] "=&w"(s1), [s2] "=&w"(s2), [s3] "=&w"(s3), [c0] "+w"(c04),
              [c1] "+w"(c05), [c2] "+w"(c14), [c3] "+w"(c15)
            : LOWBIT_ROW_IN, [u] "w"(u), [v] "w"(v), [p0] "w"(p0), [p1] "w"(p1), [p2] "w"(p2),
              [p3] "w"(p3));
        // row 3 into c06, c07, c16, c17
        asm(LOWBIT_SADALP(s0, s1, s2, s3)
            : [c0] "+w"(c06), [c1] "+w"(c07), [c2] "+w"(c16), [c3] "+w"(c17)
            : [s0] "w"(s0), [s1] "w"(s1), [s2] "w"(s2), [s3] "w"(s3));
#undef LOWBIT_ROW_IN
#undef LOWBIT_SADALP
#undef LOWBIT_PRODUCTS
        LOWBIT_MCA_END();
      }
    }
    // Remaining k-quads (all of them in a block with a -128 weight): one
    // product per int16 lane.
    for (; q < quads; ++q, w += 64, a0 += 4, a1 += 4) {
      const int8x16_t x0 = load_quad(a0), x1 = load_quad(a1);
#define LOWBIT_SINGLE_ROW(r, A0, A1, B0, B1)                         \
  {                                                                  \
    const int8x16_t u = vld1q_s8(w + 16 * r);                        \
    A0 = vpadalq_s16(A0, vmull_s8(vget_low_s8(u), vget_low_s8(x0))); \
    A1 = vpadalq_s16(A1, vmull_high_s8(u, x0));                      \
    B0 = vpadalq_s16(B0, vmull_s8(vget_low_s8(u), vget_low_s8(x1))); \
    B1 = vpadalq_s16(B1, vmull_high_s8(u, x1));                      \
  }
      LOWBIT_SINGLE_ROW(0, c00, c01, c10, c11)
      LOWBIT_SINGLE_ROW(1, c02, c03, c12, c13)
      LOWBIT_SINGLE_ROW(2, c04, c05, c14, c15)
      LOWBIT_SINGLE_ROW(3, c06, c07, c16, c17)
#undef LOWBIT_SINGLE_ROW
    }
  }
  const int32x4_t r0[4] = {vpaddq_s32(c00, c01), vpaddq_s32(c02, c03), vpaddq_s32(c04, c05),
                           vpaddq_s32(c06, c07)};
  const int32x4_t r1[4] = {vpaddq_s32(c10, c11), vpaddq_s32(c12, c13), vpaddq_s32(c14, c15),
                           vpaddq_s32(c16, c17)};
  for (int r = 0; r < 4; ++r) {
    const int32x4_t s = vld1q_s32(wsum + 4 * r);
    vst1q_s32(t + 4 * r, vaddq_s32(r0[r], s));
    if (pixels > 1) vst1q_s32(t + kInt8CoutBlock + 4 * r, vaddq_s32(r1[r], s));
  }
}

}  // namespace

void conv_u8s8dot_2x16__neon(const Int8DotConvArgs& args) {
  constexpr int B = kInt8CoutBlock;
  detail::Int8Plan plan;
  detail::make_int8_dot_plan(args, &plan);
  const ConvGeometry& g = args.geometry;
  const Int8DotActivationsLayout& l = args.activation_layout;
  const size_t steps = size_t(g.taps()) * args.weight_layout.channel_quads;
  const size_t end = args.work.end < plan.items ? args.work.end : plan.items;
  BlockSums cache[kCachedBlocks];
  bool cached[kCachedBlocks] = {};
  BlockSums local;
  for (size_t item = args.work.begin; item < end; ++item) {
    const int cb = int(item % plan.cout_blocks);
    const size_t group = item / plan.cout_blocks % plan.pixel_groups;
    const int n = int(item / plan.cout_blocks / plan.pixel_groups);
    const uint8_t* image = args.activations + size_t(n) * l.image_bytes;
    const int8_t* wblock = args.weights + cb * args.weight_layout.block_bytes;
    const BlockSums* sums = &local;
    if (cb < kCachedBlocks) {
      if (!cached[cb]) block_sums(wblock, steps, &cache[cb]), cached[cb] = true;
      sums = &cache[cb];
    } else {
      block_sums(wblock, steps, &local);
    }
    const size_t g0 = group * kInt8PixelGroup;
    const size_t f_end =
        g0 + kInt8PixelGroup < plan.flat_pixels ? g0 + kInt8PixelGroup : plan.flat_pixels;
    const auto window = [&](size_t f) {
      const int y = int(f / plan.out_width), x = int(f % plan.out_width);
      return image + l.offset(y * g.stride, x * g.stride);
    };
    int32_t acc[kInt8PixelGroup * B];
    for (size_t f0 = g0; f0 < f_end; f0 += kTile) {
      const int pixels = f_end - f0 < size_t(kTile) ? int(f_end - f0) : kTile;
      const uint8_t* win0 = window(f0);
      const uint8_t* win1 = pixels > 1 ? window(f0 + 1) : win0;
      int32_t* t = acc + (f0 - g0) * B;
      if (sums->has_min)
        tile<false>(args, plan, wblock, win0, win1, sums->wsum, pixels, t);
      else
        tile<true>(args, plan, wblock, win0, win1, sums->wsum, pixels, t);
    }
    detail::store_pixel_major(args.output, g, n, g0, plan.out_width, int(f_end - g0), cb * B, acc);
  }
}

}  // namespace lowbit::kernels
