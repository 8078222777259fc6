// Weight-pair LUT convolution, AArch64 NEON (baseline on AArch64).
//
// Work item: 64 output pixels (padded-row order, detail::kLutPixelTile) x 4
// output channels, computed as two register tiles of 32 pixels (kHalf) x 4
// output channels, each run over all steps, so every sum stays in a
// register (AArch64 has 32 vector registers):
//   acc8[o][q]   8 byte accumulators: channel o, pixels 16q..16q+15
//   sum16[o][r] 16 16-bit sums: channel o, pixels 8r..8r+7 (pixel order)
//   x0, x1       the step's two 16-byte index vectors; t the channel's table
// (8 + 16 + 2 + 1..4 = 27..30 registers). Per step (tap, channel pair): 2
// index loads, 4 table loads, 8 vqtbl1q_u8, 8 vaddq_u8. Every
// kLutWidenSteps = 14 steps (14 * 18 <= 255) the bytes are widened exactly
// with vaddw_u8 / vaddw_high_u8 into sum16; every kLutFlushSteps steps
// (3584 * 18 <= 65535) and at the end sum16 goes into the int32 tile
// acc32[4][64] on the stack (once per chunk, not per step). The epilogue
// removes kLutBias per step; kCodes / kFloat outputs go through the vector
// stage of tile_codes_neon.h. The second half re-reads the block's tables
// (64 bytes per step, from L1).
#include <arm_neon.h>

#include "lowbit/kernels/conv.h"
#include "lut_common.h"
#include "mca_markers.h"
#include "tile_codes_neon.h"

namespace lowbit::kernels {
namespace {

constexpr int kTile = detail::kLutPixelTile;
constexpr int kHalf = kTile / 2;
static_assert(kHalf == 32, "two 16-byte index vectors per step");

// One 16-byte load as one ldr. gcc pairs adjacent loads into ldp q, which
// the Cortex-A57/A72 issue as 3 micro-ops (llvm's model) against 2 for two
// ldr; the step loop is bound by its micro-ops on those cores (3 a cycle:
// 24 for its 8 tbl, 8 adds, loads and loop).
inline uint8x16_t load_q(const uint8_t* p) {
  uint8x16_t v;
  asm volatile("ldr %q0, %1" : "=w"(v) : "m"(*reinterpret_cast<const uint8x16_t*>(p)));
  return v;
}

// sum16 (pixel order) += the byte accumulators, which restart at 0.
inline void widen(uint16x8_t (&sum16)[kLutCoutBlock][4], uint8x16_t (&acc8)[kLutCoutBlock][2]) {
  for (int o = 0; o < kLutCoutBlock; ++o)
    for (int q = 0; q < 2; ++q) {
      sum16[o][2 * q] = vaddw_u8(sum16[o][2 * q], vget_low_u8(acc8[o][q]));
      sum16[o][2 * q + 1] = vaddw_high_u8(sum16[o][2 * q + 1], acc8[o][q]);
      acc8[o][q] = vdupq_n_u8(0);
    }
}

// acc[o * kTile + i] += sum over steps [0, plan.steps) of the table bytes of
// pixel i < 32 at src_base (its byte in pair plane 0 at tap offset 0).
inline void lut_half(const detail::LutPlan& plan, const uint8_t* src_base, const uint8_t* tables,
                     int32_t* acc) {
  const uint8_t* table = tables;
  const int taps = plan.taps;
  const size_t pairs = plan.steps / size_t(taps);
  uint16x8_t sum16[kLutCoutBlock][4];
  uint8x16_t acc8[kLutCoutBlock][2];
  // Chunks of whole channel pairs, at most kLutFlushSteps steps each: the
  // 16-bit sums go to acc once per chunk, outside the step loops.
  const size_t chunk_pairs = size_t(kLutFlushSteps / taps);
  for (size_t chunk = 0; chunk < pairs; chunk += chunk_pairs) {
    const size_t chunk_end = pairs - chunk < chunk_pairs ? pairs : chunk + chunk_pairs;
    for (int o = 0; o < kLutCoutBlock; ++o) {
      for (int r = 0; r < 4; ++r) sum16[o][r] = vdupq_n_u16(0);
      acc8[o][0] = acc8[o][1] = vdupq_n_u8(0);
    }
    // The step loop runs over taps of one channel pair, at most widen_left
    // of them (steps until the next widening), so it carries no tap / pair
    // bookkeeping and no widening branch.
    int widen_left = kLutWidenSteps;
    for (size_t pair = chunk; pair < chunk_end; ++pair) {
      const uint8_t* pair_src = src_base + pair * plan.pair_stride;
      for (int t0 = 0; t0 < taps;) {
        const int run = taps - t0 < widen_left ? taps - t0 : widen_left;
        const uint32_t* offset = plan.tap_offset + t0;
        const uint32_t* const offset_end = offset + run;
        // The next step's address one step ahead (in-order cores would wait on
        // the offset load); the last step's look-ahead reads tap_offset[run
        // end] <= tap_offset[kLutMaxTaps], which LutPlan keeps (0).
        const uint8_t* next = pair_src + *offset;
        for (; offset != offset_end; table += 64) {
          // bench/arm-sim region: one step, 32 pixels x 4 cout x 2 input channels.
          LOWBIT_MCA_BEGIN("conv_w2a2_lut_neon");
          const uint8_t* src = next;
          next = pair_src + *++offset;
          // All loads first (in-order cores wait on a load's result).
          const uint8x16_t x0 = load_q(src), x1 = load_q(src + 16);
          uint8x16_t t[kLutCoutBlock];
          for (int o = 0; o < kLutCoutBlock; ++o) t[o] = load_q(table + 16 * o);
          for (int o = 0; o < kLutCoutBlock; ++o) {
            acc8[o][0] = vaddq_u8(acc8[o][0], vqtbl1q_u8(t[o], x0));
            acc8[o][1] = vaddq_u8(acc8[o][1], vqtbl1q_u8(t[o], x1));
          }
          LOWBIT_MCA_END();
        }
        t0 += run;
        widen_left -= run;
        if (widen_left == 0) {
          // bench/arm-sim region: the widening, once per kLutWidenSteps steps.
          LOWBIT_MCA_BEGIN("conv_w2a2_lut_neon_widen");
          widen(sum16, acc8);
          LOWBIT_MCA_END();
          widen_left = kLutWidenSteps;
        }
      }
    }
    widen(sum16, acc8);
    for (int o = 0; o < kLutCoutBlock; ++o)
      for (int r = 0; r < 4; ++r) {
        int32_t* d = acc + o * kTile + 8 * r;
        const int32x4_t lo = vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(sum16[o][r])));
        const int32x4_t hi = vreinterpretq_s32_u32(vmovl_high_u16(sum16[o][r]));
        vst1q_s32(d, vaddq_s32(vld1q_s32(d), lo));
        vst1q_s32(d + 4, vaddq_s32(vld1q_s32(d + 4), hi));
      }
  }
}

}  // namespace

void conv_w2a2_lut_64x4__neon(const LutConvArgs& args) {
  detail::LutPlan plan;
  detail::make_lut_plan(args, &plan);
  const int cout_blocks = args.table_layout.cout_blocks;
  const TileEpilogueNeon epilogue = make_tile_epilogue_neon(args.output);
  const size_t tiles = (plan.flat_pixels + kTile - 1) / kTile;
  const size_t items = size_t(args.geometry.batch) * tiles * cout_blocks;
  const size_t end = args.work.end < items ? args.work.end : items;
  for (size_t item = args.work.begin; item < end; ++item) {
    const int cb = int(item % cout_blocks);
    const size_t p0 = item / cout_blocks % tiles * kTile;
    const int n = int(item / cout_blocks / tiles);
    const uint8_t* image = args.activations + size_t(n) * args.activation_layout.image_bytes;
    const uint8_t* tables = args.tables + size_t(cb) * plan.steps * 64;
    int32_t acc32[kLutCoutBlock][kTile] = {};
    lut_half(plan, image + p0, tables, &acc32[0][0]);
    if (p0 + kHalf < plan.flat_pixels)  // else the second half holds no output pixel
      lut_half(plan, image + p0 + kHalf, tables, &acc32[0][0] + kHalf);
    const int32x4_t bias = vdupq_n_s32(int32_t(kLutBias * plan.steps));
    for (int o = 0; o < kLutCoutBlock; ++o)
      for (int i = 0; i < kTile; i += 4)
        vst1q_s32(&acc32[o][i], vsubq_s32(vld1q_s32(&acc32[o][i]), bias));
    detail::for_each_flat_run(args, p0, [&](int y, int x, int run, int i) {
      store_tile_neon(epilogue, args.output, args.geometry, n, y, x, run, cb * kLutCoutBlock,
                      kLutCoutBlock, &acc32[0][i], kTile);
    });
  }
}

}  // namespace lowbit::kernels
