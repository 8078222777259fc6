// Weight-pair LUT convolution, portable scalar variant: same formats and tile
// as the SIMD variants; table lookups summed straight into int32.
#include "lowbit/kernels/conv.h"
#include "lut_common.h"

namespace lowbit::kernels {

void conv_w2a2_lut_64x4__scalar(const LutConvArgs& args) {
  detail::LutPlan plan;
  detail::make_lut_plan(args, &plan);
  const int cout_blocks = args.table_layout.cout_blocks;
  constexpr int P = detail::kLutPixelTile;
  const size_t tiles = (plan.flat_pixels + P - 1) / P;
  const size_t items = size_t(args.geometry.batch) * tiles * cout_blocks;
  const size_t end = args.work.end < items ? args.work.end : items;
  for (size_t item = args.work.begin; item < end; ++item) {
    {
      const int cb = int(item % cout_blocks);
      const size_t p0 = item / cout_blocks % tiles * P;
      const int n = int(item / cout_blocks / tiles);
      const uint8_t* image = args.activations + size_t(n) * args.activation_layout.image_bytes;
      {
        int32_t acc[kLutCoutBlock][P] = {};
        const uint8_t* table = args.tables + size_t(cb) * plan.steps * 64;
        size_t pair_base = 0;
        int tap = 0;
        for (size_t step = 0; step < plan.steps; ++step, table += 64) {
          const uint8_t* src = image + pair_base + plan.tap_offset[tap] + p0;
          for (int o = 0; o < kLutCoutBlock; ++o)
            for (int i = 0; i < P; ++i) acc[o][i] += table[o * 16 + src[i]];
          if (++tap == plan.taps) {
            tap = 0;
            pair_base += plan.pair_stride;
          }
        }
        const int32_t bias = int32_t(kLutBias * plan.steps);
        for (int o = 0; o < kLutCoutBlock; ++o)
          for (int i = 0; i < P; ++i) acc[o][i] -= bias;
        detail::store_flat_tile(args, n, p0, cb * kLutCoutBlock, &acc[0][0]);
      }
    }
  }
}

}  // namespace lowbit::kernels
