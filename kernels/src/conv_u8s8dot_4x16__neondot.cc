// INT8 dot-product convolution, Armv8.2 dotprod (sdot by element; Cortex-A55,
// A76 / Neoverse-N1 and later). Formats and work items as the vpdpbusd
// variants (conv.h: u8 byte activations, s8 k-quad weights).
//
// sdot multiplies s8 by s8, but the activations are u8 codes. They are shifted
// to s8 (a ^ 0x80 == a - 128 as a byte) and each output channel's sums start
// from the exact correction 128 * sum_k w[o][k]:
//   sum_k a*w = sum_k (a - 128) * w + 128 * sum_k w.
// |a - 128| <= 128 and |w| <= 128, so every product is exact; the int32 sums
// wrap only where the true sum would not fit either (taps * Cin <= 65793 keeps
// both within 2^31, conv.h). Padded channels and border pixels are zero codes
// (-128 after the shift) against zero weights (padded channels) or real
// weights whose correction includes them (border pixels): exact either way.
// The correction of a block is sum_k w by sdot against a vector of ones,
// computed once per block per call (cached for the first kCachedBlocks blocks,
// recomputed per item beyond).
//
// Register tile: 4 output pixels x 16 output channels = 16 int32x4
// accumulators. Weight rows of one k-quad are 4 x 16 bytes (4 output channels
// x 4 input channels each: exactly the 4 lanes of one sdot by element). Per 4
// k-quads (16 bytes of a pixel's kernel row): one 16-byte load and one eor per
// pixel, 16 weight loads, 64 sdot = 1024 multiply-adds; registers: 16
// accumulators + 4 activations + 4..8 weights (no spills). The k loop runs
// over a whole kernel row (kernel_w * channel_stride contiguous bytes), tail
// quads one at a time.
//
// Compiled for armv8.2-a+dotprod by the pragma below, after the includes, so
// nothing from a shared header is compiled for dotprod (the rest of the
// library runs on Armv8.0); dispatch.cc calls this only where HWCAP_ASIMDDP is
// set. File-local code only.
#include <arm_neon.h>

#include "int8_common.h"
#include "mca_markers.h"

#pragma GCC target("arch=armv8.2-a+dotprod")

namespace lowbit::kernels {
namespace {

constexpr int kTile = 4;
constexpr int kCachedBlocks = 64;  // 1024 output channels: 4 KB of corrections on the stack

// 128 * sum_k w[o][k] for the 16 output channels of a block (quads k-quads of
// 64 bytes each), as 4 vectors of 4 channels.
void block_correction(const int8_t* w, int quads, int32_t* out) {
  const int8x16_t ones = vdupq_n_s8(1);
  int32x4_t s0 = vdupq_n_s32(0), s1 = s0, s2 = s0, s3 = s0;
  for (int q = 0; q < quads; ++q, w += 64) {
    s0 = vdotq_s32(s0, vld1q_s8(w), ones);
    s1 = vdotq_s32(s1, vld1q_s8(w + 16), ones);
    s2 = vdotq_s32(s2, vld1q_s8(w + 32), ones);
    s3 = vdotq_s32(s3, vld1q_s8(w + 48), ones);
  }
  vst1q_s32(out, vshlq_n_s32(s0, 7));
  vst1q_s32(out + 4, vshlq_n_s32(s1, 7));
  vst1q_s32(out + 8, vshlq_n_s32(s2, 7));
  vst1q_s32(out + 12, vshlq_n_s32(s3, 7));
}

// 0x80 in every byte. Made by asm: g++ prints the constant of vdupq_n_u8(0x80)
// as "movi v.16b, 0xffffffffffffff80", which GNU as takes but llvm-mca (the
// simulator bench/arm-sim runs on these files) rejects.
inline uint8x16_t bytes_0x80() {
  uint8x16_t k;
  asm("movi %0.16b, #0x80" : "=w"(k));
  return k;
}

// The u8 codes of 16 bytes as s8 (a - 128); k80 = bytes_0x80().
inline int8x16_t shifted(uint8x16_t a, uint8x16_t k80) {
  return vreinterpretq_s8_u8(veorq_u8(a, k80));
}

// The inner steps are inline asm: from intrinsics, g++ 12 hoists all 16
// weight loads of a step ahead of the sdots and then spills accumulators or
// inserts register moves (36-39 cycles per step on Neoverse-N1 in llvm-mca
// instead of the 34 of its 68 vector operations). The accumulators and
// activation vectors are compiler-allocated operands; an asm statement
// takes at most 30 operands (a "+w" counts twice), so each step is two
// statements of 8 accumulators (channel groups 0-1, then 2-3), each loading
// its own weight registers from v24-v31.
//
// sdot of weight register `wreg` (4 output channels x 4 input channels)
// against lane `lane` of each pixel's activations into channel group `ch`
// (accumulator operands c<pixel><h>, h = ch % 2: the half's two groups).
// clang-format off
#define LOWBIT_SDOT4(wreg, lane, h)                         \
  "sdot %[c0" #h "].4s, " wreg ".16b, %[x0].4b[" #lane "]\n\t" \
  "sdot %[c1" #h "].4s, " wreg ".16b, %[x1].4b[" #lane "]\n\t" \
  "sdot %[c2" #h "].4s, " wreg ".16b, %[x2].4b[" #lane "]\n\t" \
  "sdot %[c3" #h "].4s, " wreg ".16b, %[x3].4b[" #lane "]\n\t"
// Channel groups G and G + 1 of the 4 pixels.
#define LOWBIT_HALF_OPERANDS(G0, G1)                                                           \
  [c00] "+w"(c0##G0), [c01] "+w"(c0##G1), [c10] "+w"(c1##G0), [c11] "+w"(c1##G1),              \
      [c20] "+w"(c2##G0), [c21] "+w"(c2##G1), [c30] "+w"(c3##G0), [c31] "+w"(c3##G1)
#define LOWBIT_INPUT_OPERANDS(bytes)                                                         \
  [x0] "w"(x0), [x1] "w"(x1), [x2] "w"(x2), [x3] "w"(x3), [w] "r"(w),                         \
      "m"(*reinterpret_cast<const int8_t(*)[bytes]>(w))
// LOWBIT_SDOT4 with the load `ld` between its second and third sdot (in-order
// cores such as the A55 issue a load and a 128-bit sdot in different cycles,
// and the first use of a load waits for it: one weight load per 4 sdots, each
// issued one sdot group ahead of its use).
#define LOWBIT_SDOT4_LD(wreg, lane, h, ld)                     \
  "sdot %[c0" #h "].4s, " wreg ".16b, %[x0].4b[" #lane "]\n\t" \
  "sdot %[c1" #h "].4s, " wreg ".16b, %[x1].4b[" #lane "]\n\t" \
  ld                                                           \
  "sdot %[c2" #h "].4s, " wreg ".16b, %[x2].4b[" #lane "]\n\t" \
  "sdot %[c3" #h "].4s, " wreg ".16b, %[x3].4b[" #lane "]\n\t"
#define LOWBIT_LDQ(reg, off) "ldr " reg ", [%[w], #" off "]\n\t"
// 4 k-quads (weights [4][16 channels][4] s8 at w, 256 bytes) for the channel
// groups at byte offset `off` (0: groups 0-1, 32: groups 2-3) of each quad:
// quad j's two weight rows in v24 + 2j, v25 + 2j.
#define LOWBIT_BLOCK_ASM(off)                                                 \
  LOWBIT_LDQ("q24", #off) LOWBIT_LDQ("q25", #off " + 16")                     \
  LOWBIT_LDQ("q26", #off " + 64")                                             \
  LOWBIT_SDOT4_LD("v24", 0, 0, LOWBIT_LDQ("q27", #off " + 80"))              \
  LOWBIT_SDOT4_LD("v25", 0, 1, LOWBIT_LDQ("q28", #off " + 128"))             \
  LOWBIT_SDOT4_LD("v26", 1, 0, LOWBIT_LDQ("q29", #off " + 144"))             \
  LOWBIT_SDOT4_LD("v27", 1, 1, LOWBIT_LDQ("q30", #off " + 192"))             \
  LOWBIT_SDOT4_LD("v28", 2, 0, LOWBIT_LDQ("q31", #off " + 208"))             \
  LOWBIT_SDOT4("v29", 2, 1) LOWBIT_SDOT4("v30", 3, 0) LOWBIT_SDOT4("v31", 3, 1)
// One k-quad (weights [16 channels][4] s8 at w, 64 bytes), lane 0.
#define LOWBIT_QUAD_ASM(off) \
  "ldp q24, q25, [%[w], #" #off "]\n\t" LOWBIT_SDOT4("v24", 0, 0) LOWBIT_SDOT4("v25", 0, 1)
// clang-format on

// The 4 u8 codes at p as s8 in lane 0 (and copies in the other lanes).
inline int8x16_t shifted_quad(const uint8_t* p, uint8x16_t k80) {
  uint32_t v;
  __builtin_memcpy(&v, p, 4);
  return shifted(vreinterpretq_u8_u32(vdupq_n_u32(v)), k80);
}

}  // namespace

void conv_u8s8dot_4x16__neondot(const Int8DotConvArgs& args) {
  constexpr int T = kTile, B = kInt8CoutBlock;
  detail::Int8Plan plan;
  detail::make_int8_dot_plan(args, &plan);
  const ConvGeometry& g = args.geometry;
  const Int8DotActivationsLayout& l = args.activation_layout;
  const int block_quads = g.kernel_h * plan.row_quads;
  const size_t end = args.work.end < plan.items ? args.work.end : plan.items;
  alignas(16) int32_t corrections[kCachedBlocks * B];
  uint64_t cached = 0;  // bit cb: corrections of block cb computed
  alignas(16) int32_t uncached[B];
  const uint8x16_t k80 = bytes_0x80();
  for (size_t item = args.work.begin; item < end; ++item) {
    const int cb = int(item % plan.cout_blocks);
    const size_t group = item / plan.cout_blocks % plan.pixel_groups;
    const int n = int(item / plan.cout_blocks / plan.pixel_groups);
    const uint8_t* image = args.activations + size_t(n) * l.image_bytes;
    const int8_t* wblock = args.weights + cb * args.weight_layout.block_bytes;
    const int32_t* correction = uncached;
    if (cb < kCachedBlocks) {
      correction = corrections + cb * B;
      if (!((cached >> cb) & 1u)) {
        block_correction(wblock, block_quads, corrections + cb * B);
        cached |= uint64_t(1) << cb;
      }
    } else {
      block_correction(wblock, block_quads, uncached);
    }
    const size_t g0 = group * kInt8PixelGroup;
    const size_t f_end =
        g0 + kInt8PixelGroup < plan.flat_pixels ? g0 + kInt8PixelGroup : plan.flat_pixels;
    alignas(16) int32_t acc[kInt8PixelGroup * B];
    for (size_t f0 = g0; f0 < f_end; f0 += T) {
      const int pixels = f_end - f0 < size_t(T) ? int(f_end - f0) : T;
      // Missing pixels of a short tile repeat the last one (computed, dropped).
      const uint8_t* win[T];
      detail::tile_windows(args, plan, image, f0, pixels, T, win);
      // Sums start at zero (the correction is added per item below: keeping it
      // in registers across the k loop would cost 4 of the 32).
      const int32x4_t z = vdupq_n_s32(0);
      int32x4_t c00 = z, c01 = z, c02 = z, c03 = z, c10 = z, c11 = z, c12 = z, c13 = z, c20 = z,
                c21 = z, c22 = z, c23 = z, c30 = z, c31 = z, c32 = z, c33 = z;
      const int8_t* w = wblock;
      const int bytes = 4 * plan.row_quads;
      for (int ky = 0; ky < g.kernel_h; ++ky) {
        const size_t ro = plan.row_offset[ky];
        const uint8_t *a0 = win[0] + ro, *a1 = win[1] + ro, *a2 = win[2] + ro, *a3 = win[3] + ro;
        int k = 0;
        for (; k + 16 <= bytes; k += 16, w += 16 * B) {
          LOWBIT_MCA_BEGIN("conv_u8s8dot_neon");
          const int8x16_t x0 = shifted(vld1q_u8(a0 + k), k80), x1 = shifted(vld1q_u8(a1 + k), k80),
                          x2 = shifted(vld1q_u8(a2 + k), k80), x3 = shifted(vld1q_u8(a3 + k), k80);
          asm(LOWBIT_BLOCK_ASM(0)
              : LOWBIT_HALF_OPERANDS(0, 1)
              : LOWBIT_INPUT_OPERANDS(16 * B)
              : "v24", "v25", "v26", "v27", "v28", "v29", "v30", "v31");
          asm(LOWBIT_BLOCK_ASM(32)
              : LOWBIT_HALF_OPERANDS(2, 3)
              : LOWBIT_INPUT_OPERANDS(16 * B)
              : "v24", "v25", "v26", "v27", "v28", "v29", "v30", "v31");
          LOWBIT_MCA_END();
        }
        // Tail quads of the row: 4 bytes per pixel, used from lane 0.
        for (; k < bytes; k += 4, w += 4 * B) {
          const int8x16_t x0 = shifted_quad(a0 + k, k80), x1 = shifted_quad(a1 + k, k80),
                          x2 = shifted_quad(a2 + k, k80), x3 = shifted_quad(a3 + k, k80);
          asm(LOWBIT_QUAD_ASM(0)
              : LOWBIT_HALF_OPERANDS(0, 1)
              : LOWBIT_INPUT_OPERANDS(4 * B)
              : "v24", "v25");
          asm(LOWBIT_QUAD_ASM(32)
              : LOWBIT_HALF_OPERANDS(2, 3)
              : LOWBIT_INPUT_OPERANDS(4 * B)
              : "v24", "v25");
        }
      }
      // acc is pixel-major [pixel][16]; rows beyond `pixels` are not stored.
      int32_t* t = acc + (f0 - g0) * B;
      const int32x4_t rows[T][4] = {
          {c00, c01, c02, c03}, {c10, c11, c12, c13}, {c20, c21, c22, c23}, {c30, c31, c32, c33}};
      for (int i = 0; i < pixels; ++i)
        for (int q = 0; q < 4; ++q) vst1q_s32(t + i * B + 4 * q, rows[i][q]);
    }
    const int32x4_t k0 = vld1q_s32(correction), k1 = vld1q_s32(correction + 4),
                    k2 = vld1q_s32(correction + 8), k3 = vld1q_s32(correction + 12);
    for (size_t i = 0; i < f_end - g0; ++i) {
      int32_t* r = acc + i * B;
      vst1q_s32(r, vaddq_s32(vld1q_s32(r), k0));
      vst1q_s32(r + 4, vaddq_s32(vld1q_s32(r + 4), k1));
      vst1q_s32(r + 8, vaddq_s32(vld1q_s32(r + 8), k2));
      vst1q_s32(r + 12, vaddq_s32(vld1q_s32(r + 12), k3));
    }
    detail::store_pixel_major(args.output, g, n, g0, plan.out_width, int(f_end - g0), cb * B, acc);
  }
}

#undef LOWBIT_QUAD_ASM
#undef LOWBIT_BLOCK_ASM
#undef LOWBIT_INPUT_OPERANDS
#undef LOWBIT_HALF_OPERANDS
#undef LOWBIT_SDOT4

}  // namespace lowbit::kernels
