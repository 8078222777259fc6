// INT8 dot-product convolution, Armv8.6 i8mm (usmmla: u8 x s8 2x8 by 8x2
// matrix multiply-accumulate; Neoverse-N2 / V1 / V2, Cortex-A710 / X2 and
// later). Formats and work items as the vpdpbusd variants (conv.h: u8 byte
// activations, s8 k-quad weights). usmmla takes the u8 codes and s8 weights as
// they are (no a - 128 shift, no correction) and sums its products straight
// into int32: exact for taps * Cin <= 65793 (conv.h).
//
// One usmmla: A = 2 pixels x 8 k (u8), B = 2 output channels x 8 k (s8),
// C[i][j] += sum_k A[i][k] * B[j][k]: 32 multiply-adds, twice an sdot's.
//   A: zip1 / zip2 (64-bit lanes) of two pixels' 16 activation bytes give
//      the pair's k-octets 0-7 and 8-15.
//   B: a weight row of one k-quad holds 4 channels x 4 k; zip1 / zip2 (32-bit
//      lanes) of the rows of quads q and q + 1 give channels (0, 1) and (2, 3)
//      of the group, 8 k each.
//   C: lanes {p0 c0, p0 c1, p1 c0, p1 c1}; zip1 / zip2 (64-bit) of the
//      accumulators of channels (0, 1) and (2, 3) give each pixel's 4 channels.
// Register tile: 4 output pixels (2 pairs) x 16 output channels (4 groups x 2
// halves) = 16 accumulators. Per 16 bytes of a kernel row (2 k-octets): 4
// activation loads + 4 zips, 16 weight loads + 16 zips, 32 usmmla = 1024
// multiply-adds in 52 vector operations (the sdot variant: 68). Tails of a row:
// one k-octet (2 quads), then one k-quad whose B has zero weights in k 4-7 (A
// reads 4 bytes past the row there: inside the buffer, which ends in
// kInt8DotSlackBytes of slack, and multiplied by zero).
//
// Compiled for armv8.2-a+dotprod+i8mm by the pragma below, after the
// includes (see conv_u8s8dot_4x16__neondot.cc); dispatch.cc calls this only
// where HWCAP2_I8MM is set. File-local code only.
#include <arm_neon.h>

#include "int8_common.h"
#include "mca_markers.h"

#pragma GCC target("arch=armv8.2-a+dotprod+i8mm")

namespace lowbit::kernels {
namespace {

constexpr int kTile = 4;

// Inner steps in inline asm, as in the sdot variant (g++ 12's intrinsics
// code spills or adds moves); an asm statement takes at most 30 operands, so
// a step is two statements: channel groups 0-1 (weight bytes 0-31 of each
// quad row), then 2-3 (bytes 32-63). Accumulator operands c<pair><g><h>:
// pixel pair, group within the half, channel half of the group.
//
// One k-octet: weight quads at w + off and w + 64 + off (2 groups each),
// activation pairs a0 (pixels 0, 1) and a1 (pixels 2, 3).
// clang-format off
#define LOWBIT_OCTET_ASM(off, a0, a1)                  \
  "ldp q24, q25, [%[w], #" #off "]\n\t"                \
  "ldp q26, q27, [%[w], #64 + " #off "]\n\t"           \
  "zip1 v28.4s, v24.4s, v26.4s\n\t"                    \
  "zip2 v29.4s, v24.4s, v26.4s\n\t"                    \
  "zip1 v30.4s, v25.4s, v27.4s\n\t"                    \
  "zip2 v31.4s, v25.4s, v27.4s\n\t"                    \
  "usmmla %[c000].4s, %[" #a0 "].16b, v28.16b\n\t"     \
  "usmmla %[c100].4s, %[" #a1 "].16b, v28.16b\n\t"     \
  "usmmla %[c001].4s, %[" #a0 "].16b, v29.16b\n\t"     \
  "usmmla %[c101].4s, %[" #a1 "].16b, v29.16b\n\t"     \
  "usmmla %[c010].4s, %[" #a0 "].16b, v30.16b\n\t"     \
  "usmmla %[c110].4s, %[" #a1 "].16b, v30.16b\n\t"     \
  "usmmla %[c011].4s, %[" #a0 "].16b, v31.16b\n\t"     \
  "usmmla %[c111].4s, %[" #a1 "].16b, v31.16b\n\t"
// Two k-octets (weight quads 0-1 at w + off, 2-3 at w + 128 + off) for the
// 16-byte step, ordered for in-order cores (A510): all 4 weight loads first
// (the second octet's rows in v20-v23), then both octets' zips (the second
// octet's B in v24-v27), then the 16 usmmla, so only the first zip waits for
// a load and the first usmmla for a zip.
#define LOWBIT_MMLA8(o, b0, b1, b2, b3)                 \
  "usmmla %[c000].4s, %[a0" #o "].16b, " b0 ".16b\n\t"  \
  "usmmla %[c100].4s, %[a1" #o "].16b, " b0 ".16b\n\t"  \
  "usmmla %[c001].4s, %[a0" #o "].16b, " b1 ".16b\n\t"  \
  "usmmla %[c101].4s, %[a1" #o "].16b, " b1 ".16b\n\t"  \
  "usmmla %[c010].4s, %[a0" #o "].16b, " b2 ".16b\n\t"  \
  "usmmla %[c110].4s, %[a1" #o "].16b, " b2 ".16b\n\t"  \
  "usmmla %[c011].4s, %[a0" #o "].16b, " b3 ".16b\n\t"  \
  "usmmla %[c111].4s, %[a1" #o "].16b, " b3 ".16b\n\t"
#define LOWBIT_BLOCK_ASM(off)                           \
  "ldp q24, q25, [%[w], #" #off "]\n\t"                 \
  "ldp q26, q27, [%[w], #64 + " #off "]\n\t"            \
  "ldp q20, q21, [%[w], #128 + " #off "]\n\t"           \
  "ldp q22, q23, [%[w], #192 + " #off "]\n\t"           \
  "zip1 v28.4s, v24.4s, v26.4s\n\t"                     \
  "zip2 v29.4s, v24.4s, v26.4s\n\t"                     \
  "zip1 v30.4s, v25.4s, v27.4s\n\t"                     \
  "zip2 v31.4s, v25.4s, v27.4s\n\t"                     \
  "zip1 v24.4s, v20.4s, v22.4s\n\t"                     \
  "zip2 v25.4s, v20.4s, v22.4s\n\t"                     \
  "zip1 v26.4s, v21.4s, v23.4s\n\t"                     \
  "zip2 v27.4s, v21.4s, v23.4s\n\t"                     \
  LOWBIT_MMLA8(0, "v28", "v29", "v30", "v31")           \
  LOWBIT_MMLA8(1, "v24", "v25", "v26", "v27")
#define LOWBIT_BLOCK_CLOBBERS LOWBIT_CLOBBERS, "v20", "v21", "v22", "v23"
// One k-quad at w + off, k 4-7 of B zero (v26 / v27 cleared).
#define LOWBIT_QUAD_ASM(off)                           \
  "ldp q24, q25, [%[w], #" #off "]\n\t"                \
  "movi v26.16b, #0\n\t"                               \
  "zip1 v28.4s, v24.4s, v26.4s\n\t"                    \
  "zip2 v29.4s, v24.4s, v26.4s\n\t"                    \
  "zip1 v30.4s, v25.4s, v26.4s\n\t"                    \
  "zip2 v31.4s, v25.4s, v26.4s\n\t"                    \
  "usmmla %[c000].4s, %[a00].16b, v28.16b\n\t"         \
  "usmmla %[c100].4s, %[a10].16b, v28.16b\n\t"         \
  "usmmla %[c001].4s, %[a00].16b, v29.16b\n\t"         \
  "usmmla %[c101].4s, %[a10].16b, v29.16b\n\t"         \
  "usmmla %[c010].4s, %[a00].16b, v30.16b\n\t"         \
  "usmmla %[c110].4s, %[a10].16b, v30.16b\n\t"         \
  "usmmla %[c011].4s, %[a00].16b, v31.16b\n\t"         \
  "usmmla %[c111].4s, %[a10].16b, v31.16b\n\t"
// Groups G0 and G1 (0-1 or 2-3) of both pixel pairs.
#define LOWBIT_HALF_OPERANDS(G0, G1)                                                          \
  [c000] "+w"(p0g##G0##h0), [c001] "+w"(p0g##G0##h1), [c010] "+w"(p0g##G1##h0),                \
      [c011] "+w"(p0g##G1##h1), [c100] "+w"(p1g##G0##h0), [c101] "+w"(p1g##G0##h1),            \
      [c110] "+w"(p1g##G1##h0), [c111] "+w"(p1g##G1##h1)
#define LOWBIT_CLOBBERS "v24", "v25", "v26", "v27", "v28", "v29", "v30", "v31"
// clang-format on

// Activation pairs of one 16-byte k block: [pair][octet].
struct Pairs {
  uint8x16_t a00, a01, a10, a11;
};
inline Pairs make_pairs(uint8x16_t r0, uint8x16_t r1, uint8x16_t r2, uint8x16_t r3) {
  const auto lo = [](uint8x16_t x, uint8x16_t y) {
    return vreinterpretq_u8_u64(vzip1q_u64(vreinterpretq_u64_u8(x), vreinterpretq_u64_u8(y)));
  };
  const auto hi = [](uint8x16_t x, uint8x16_t y) {
    return vreinterpretq_u8_u64(vzip2q_u64(vreinterpretq_u64_u8(x), vreinterpretq_u64_u8(y)));
  };
  return {lo(r0, r1), hi(r0, r1), lo(r2, r3), hi(r2, r3)};
}

// 8 bytes at p in the low half (an octet's A rows are the low halves).
inline uint8x16_t load8(const uint8_t* p) { return vcombine_u8(vld1_u8(p), vdup_n_u8(0)); }

// Pixel-major rows of one pixel pair: accumulators of channels (0, 1) and
// (2, 3) of group g -> 4 channels of the pair's first and second pixel.
inline void store_pair(int32x4_t h0, int32x4_t h1, int32_t* first, int32_t* second) {
  vst1q_s32(first, vreinterpretq_s32_s64(
                       vzip1q_s64(vreinterpretq_s64_s32(h0), vreinterpretq_s64_s32(h1))));
  vst1q_s32(second, vreinterpretq_s32_s64(
                        vzip2q_s64(vreinterpretq_s64_s32(h0), vreinterpretq_s64_s32(h1))));
}

}  // namespace

void conv_u8s8dot_4x16__neoni8mm(const Int8DotConvArgs& args) {
  constexpr int T = kTile, B = kInt8CoutBlock;
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
    const size_t f_end =
        g0 + kInt8PixelGroup < plan.flat_pixels ? g0 + kInt8PixelGroup : plan.flat_pixels;
    alignas(16) int32_t acc[kInt8PixelGroup * B];
    for (size_t f0 = g0; f0 < f_end; f0 += T) {
      const int pixels = f_end - f0 < size_t(T) ? int(f_end - f0) : T;
      // Missing pixels of a short tile repeat the last one (computed, dropped).
      const uint8_t* win[T];
      detail::tile_windows(args, plan, image, f0, pixels, T, win);
      const int32x4_t z = vdupq_n_s32(0);
      int32x4_t p0g0h0 = z, p0g0h1 = z, p0g1h0 = z, p0g1h1 = z, p0g2h0 = z, p0g2h1 = z, p0g3h0 = z,
                p0g3h1 = z, p1g0h0 = z, p1g0h1 = z, p1g1h0 = z, p1g1h1 = z, p1g2h0 = z, p1g2h1 = z,
                p1g3h0 = z, p1g3h1 = z;
      const int8_t* w = wblock;
      const int bytes = 4 * plan.row_quads;
      for (int ky = 0; ky < g.kernel_h; ++ky) {
        const size_t ro = plan.row_offset[ky];
        const uint8_t *r0 = win[0] + ro, *r1 = win[1] + ro, *r2 = win[2] + ro, *r3 = win[3] + ro;
        int k = 0;
        for (; k + 16 <= bytes; k += 16, w += 16 * B) {
          LOWBIT_MCA_BEGIN("conv_u8s8mmla_neon");
          const Pairs p =
              make_pairs(vld1q_u8(r0 + k), vld1q_u8(r1 + k), vld1q_u8(r2 + k), vld1q_u8(r3 + k));
          // 2 k-octets: weight quads 0-1, then 2-3 (bytes 128-255).
          asm(LOWBIT_BLOCK_ASM(0)
              : LOWBIT_HALF_OPERANDS(0, 1)
              : [a00] "w"(p.a00), [a01] "w"(p.a01), [a10] "w"(p.a10), [a11] "w"(p.a11), [w] "r"(w),
                "m"(*reinterpret_cast<const int8_t(*)[16 * B]>(w))
              : LOWBIT_BLOCK_CLOBBERS);
          asm(LOWBIT_BLOCK_ASM(32)
              : LOWBIT_HALF_OPERANDS(2, 3)
              : [a00] "w"(p.a00), [a01] "w"(p.a01), [a10] "w"(p.a10), [a11] "w"(p.a11), [w] "r"(w),
                "m"(*reinterpret_cast<const int8_t(*)[16 * B]>(w))
              : LOWBIT_BLOCK_CLOBBERS);
          LOWBIT_MCA_END();
        }
        if (k + 8 <= bytes) {  // one k-octet
          const Pairs p = make_pairs(load8(r0 + k), load8(r1 + k), load8(r2 + k), load8(r3 + k));
          asm(LOWBIT_OCTET_ASM(0, a00, a10)
              : LOWBIT_HALF_OPERANDS(0, 1)
              : [a00] "w"(p.a00), [a10] "w"(p.a10), [w] "r"(w),
                "m"(*reinterpret_cast<const int8_t(*)[8 * B]>(w))
              : LOWBIT_CLOBBERS);
          asm(LOWBIT_OCTET_ASM(32, a00, a10)
              : LOWBIT_HALF_OPERANDS(2, 3)
              : [a00] "w"(p.a00), [a10] "w"(p.a10), [w] "r"(w),
                "m"(*reinterpret_cast<const int8_t(*)[8 * B]>(w))
              : LOWBIT_CLOBBERS);
          k += 8, w += 8 * B;
        }
        if (k < bytes) {  // one k-quad; A's bytes 4-7 meet zero weights
          const Pairs p = make_pairs(load8(r0 + k), load8(r1 + k), load8(r2 + k), load8(r3 + k));
          asm(LOWBIT_QUAD_ASM(0)
              : LOWBIT_HALF_OPERANDS(0, 1)
              : [a00] "w"(p.a00), [a10] "w"(p.a10), [w] "r"(w),
                "m"(*reinterpret_cast<const int8_t(*)[4 * B]>(w))
              : LOWBIT_CLOBBERS);
          asm(LOWBIT_QUAD_ASM(32)
              : LOWBIT_HALF_OPERANDS(2, 3)
              : [a00] "w"(p.a00), [a10] "w"(p.a10), [w] "r"(w),
                "m"(*reinterpret_cast<const int8_t(*)[4 * B]>(w))
              : LOWBIT_CLOBBERS);
          k += 4, w += 4 * B;
        }
      }
      // acc is pixel-major [pixel][16]; the tile goes through `rows` so a
      // short tile stores only its own pixels.
      int32_t* t = acc + (f0 - g0) * B;
      alignas(16) int32_t rows[T * B];
      store_pair(p0g0h0, p0g0h1, rows + 0, rows + B + 0);
      store_pair(p0g1h0, p0g1h1, rows + 4, rows + B + 4);
      store_pair(p0g2h0, p0g2h1, rows + 8, rows + B + 8);
      store_pair(p0g3h0, p0g3h1, rows + 12, rows + B + 12);
      store_pair(p1g0h0, p1g0h1, rows + 2 * B + 0, rows + 3 * B + 0);
      store_pair(p1g1h0, p1g1h1, rows + 2 * B + 4, rows + 3 * B + 4);
      store_pair(p1g2h0, p1g2h1, rows + 2 * B + 8, rows + 3 * B + 8);
      store_pair(p1g3h0, p1g3h1, rows + 2 * B + 12, rows + 3 * B + 12);
      for (int i = 0; i < pixels; ++i)
        for (int q = 0; q < 4; ++q) vst1q_s32(t + i * B + 4 * q, vld1q_s32(rows + i * B + 4 * q));
    }
    detail::store_pixel_major(args.output, g, n, g0, plan.out_width, int(f_end - g0), cb * B, acc);
  }
}

#undef LOWBIT_CLOBBERS
#undef LOWBIT_HALF_OPERANDS
#undef LOWBIT_QUAD_ASM
#undef LOWBIT_OCTET_ASM
#undef LOWBIT_BLOCK_CLOBBERS
#undef LOWBIT_BLOCK_ASM
#undef LOWBIT_MMLA8

}  // namespace lowbit::kernels
