// Weight-pair LUT convolution, AArch64 NEON (baseline on AArch64).
//
// Tile: 64 output pixels (four 16-byte index vectors) x 4 output channels:
// 16 byte accumulators acc8[4 * o + q]. Per step (tap, channel pair): 4 index
// loads, 4 table loads, 16 vqtbl1q_u8, 16 vaddq_u8. Every kLutWidenSteps = 14
// steps (14 * 18 <= 255) the bytes are widened exactly with vaddw_u8 /
// vaddw_high_u8 into 16-bit sums kept in pixel order, flushed to int32 every
// kLutFlushSteps steps. The epilogue removes kLutBias per step; kCodes /
// kFloat outputs go through the vector stage of tile_codes_neon.h.
#include <arm_neon.h>

#include "lowbit/kernels/conv.h"
#include "lut_common.h"
#include "mca_markers.h"
#include "tile_codes_neon.h"

namespace lowbit::kernels {

void conv_w2a2_lut_64x4__neon(const LutConvArgs& args) {
  constexpr int kTile = detail::kLutPixelTile;
  detail::LutPlan plan;
  detail::make_lut_plan(args, &plan);
  const int cout_blocks = args.table_layout.cout_blocks;
  const TileEpilogueNeon epilogue = make_tile_epilogue_neon(args.output);
  const size_t tiles = (plan.flat_pixels + kTile - 1) / kTile;
  const size_t items = size_t(args.geometry.batch) * tiles * cout_blocks;
  const size_t end = args.work.end < items ? args.work.end : items;
  for (size_t item = args.work.begin; item < end; ++item) {
    {
      const int cb = int(item % cout_blocks);
      const size_t p0 = item / cout_blocks % tiles * kTile;
      const int n = int(item / cout_blocks / tiles);
      const uint8_t* image = args.activations + size_t(n) * args.activation_layout.image_bytes;
      const uint8_t* tile_base = image + p0;
      {
        int32_t acc32[kLutCoutBlock][kTile] = {};
        const uint8_t* table = args.tables + size_t(cb) * plan.steps * 64;
        size_t pair_base = 0;
        int tap = 0;
        for (size_t chunk = 0; chunk < plan.steps; chunk += kLutFlushSteps) {
          const size_t chunk_end =
              plan.steps - chunk < size_t(kLutFlushSteps) ? plan.steps : chunk + kLutFlushSteps;
          uint16x8_t sum16[kLutCoutBlock][8];  // [o][8 pixels each], pixel order
          for (int o = 0; o < kLutCoutBlock; ++o)
            for (int q = 0; q < 8; ++q) sum16[o][q] = vdupq_n_u16(0);
          for (size_t group = chunk; group < chunk_end; group += kLutWidenSteps) {
            const size_t group_end =
                chunk_end - group < size_t(kLutWidenSteps) ? chunk_end : group + kLutWidenSteps;
            uint8x16_t acc8[kLutCoutBlock][4];
            for (int o = 0; o < kLutCoutBlock; ++o)
              for (int q = 0; q < 4; ++q) acc8[o][q] = vdupq_n_u8(0);
            for (size_t step = group; step < group_end; ++step, table += 64) {
              // bench/arm-sim region: one step, 64 pixels x 4 cout x 2 input channels.
              LOWBIT_MCA_BEGIN("conv_w2a2_lut_neon");
              const uint8_t* src = tile_base + pair_base + plan.tap_offset[tap];
              if (++tap == plan.taps) {
                tap = 0;
                pair_base += plan.pair_stride;
              }
              const uint8x16_t x0 = vld1q_u8(src), x1 = vld1q_u8(src + 16);
              const uint8x16_t x2 = vld1q_u8(src + 32), x3 = vld1q_u8(src + 48);
              for (int o = 0; o < kLutCoutBlock; ++o) {
                const uint8x16_t t = vld1q_u8(table + 16 * o);
                acc8[o][0] = vaddq_u8(acc8[o][0], vqtbl1q_u8(t, x0));
                acc8[o][1] = vaddq_u8(acc8[o][1], vqtbl1q_u8(t, x1));
                acc8[o][2] = vaddq_u8(acc8[o][2], vqtbl1q_u8(t, x2));
                acc8[o][3] = vaddq_u8(acc8[o][3], vqtbl1q_u8(t, x3));
              }
              LOWBIT_MCA_END();
            }
            // bench/arm-sim region: the widening, once per kLutWidenSteps steps.
            LOWBIT_MCA_BEGIN("conv_w2a2_lut_neon_widen");
            for (int o = 0; o < kLutCoutBlock; ++o)
              for (int q = 0; q < 4; ++q) {
                sum16[o][2 * q] = vaddw_u8(sum16[o][2 * q], vget_low_u8(acc8[o][q]));
                sum16[o][2 * q + 1] = vaddw_high_u8(sum16[o][2 * q + 1], acc8[o][q]);
              }
            LOWBIT_MCA_END();
          }
          for (int o = 0; o < kLutCoutBlock; ++o)
            for (int q = 0; q < 8; ++q) {
              int32_t* d = &acc32[o][8 * q];
              const int32x4_t lo = vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(sum16[o][q])));
              const int32x4_t hi = vreinterpretq_s32_u32(vmovl_high_u16(sum16[o][q]));
              vst1q_s32(d, vaddq_s32(vld1q_s32(d), lo));
              vst1q_s32(d + 4, vaddq_s32(vld1q_s32(d + 4), hi));
            }
        }
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
  }
}

}  // namespace lowbit::kernels
