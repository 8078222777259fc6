// Depthwise INT8 convolution, AArch64 NEON (baseline on AArch64).
//
// Tile: one output pixel x 16 channels along an output row. Per tap: two
// 8-channel int16 activation loads and 4 smlal/smlal2 against the tap's
// weights, which vld2q_s16 recovers from the interleaved DwWeightsLayout rows
// (row 0 de-interleaves to channels {0-3, 8-11}, row 1 to {4-7, 12-15}).
#include <arm_neon.h>

#include "int8_common.h"
#include "mca_markers.h"

namespace lowbit::kernels {

void dwconv_u8s8_1x16__neon(const DwConvArgs& args) {
  constexpr int B = kDwChannelBlock, R = detail::kDwRowChunk;
  detail::DwPlan plan;
  detail::make_dw_plan(args, &plan);
  const Int8ActivationsLayout& l = args.activation_layout;
  const size_t step = size_t(args.geometry.stride) * l.channel_stride;
  const size_t end = args.work.end < plan.items ? args.work.end : plan.items;
  for (size_t item = args.work.begin; item < end; ++item) {
    const int cb = int(item % plan.channel_blocks);
    const int oy = int(item / plan.channel_blocks % plan.out_height);
    const int n = int(item / plan.channel_blocks / plan.out_height);
    const uint16_t* row_base =
        args.activations + size_t(n) * l.image_elems + l.offset(oy * args.geometry.stride, 0) + cb * B;
    const int16_t* wb = args.weights + cb * args.weight_layout.block_elems;
    int32_t acc[R * B];
    for (int ox0 = 0; ox0 < plan.out_width; ox0 += R) {
      const int pixels = plan.out_width - ox0 < R ? plan.out_width - ox0 : R;
      for (int i = 0; i < pixels; ++i) {
        const uint16_t* window = row_base + size_t(ox0 + i) * step;
        int32x4_t c0 = vdupq_n_s32(0), c1 = c0, c2 = c0, c3 = c0;  // channels 0-3, 4-7, 8-11, 12-15
        for (int q = 0; 2 * q < plan.taps; ++q) {
          // bench/arm-sim region (its KERNEL_TABLE entry): one tap pair: 2 taps x 16 channels.
          LOWBIT_MCA_BEGIN("dwconv_u8s8_neon");
          const int16x8x2_t r0 = vld2q_s16(wb + q * 32);       // [j]: tap 2q+j, ch 0-3 | 8-11
          const int16x8x2_t r1 = vld2q_s16(wb + q * 32 + 16);  // [j]: tap 2q+j, ch 4-7 | 12-15
          for (int j = 0; j < 2 && 2 * q + j < plan.taps; ++j) {
            const int16_t* a = reinterpret_cast<const int16_t*>(window + plan.tap_offset[2 * q + j]);
            const int16x8_t x0 = vld1q_s16(a), x1 = vld1q_s16(a + 8);
            c0 = vmlal_s16(c0, vget_low_s16(x0), vget_low_s16(r0.val[j]));
            c1 = vmlal_s16(c1, vget_high_s16(x0), vget_low_s16(r1.val[j]));
            c2 = vmlal_s16(c2, vget_low_s16(x1), vget_high_s16(r0.val[j]));
            c3 = vmlal_high_s16(c3, x1, r1.val[j]);
          }
          LOWBIT_MCA_END();
        }
        vst1q_s32(acc + i * B, c0);
        vst1q_s32(acc + i * B + 4, c1);
        vst1q_s32(acc + i * B + 8, c2);
        vst1q_s32(acc + i * B + 12, c3);
      }
      detail::store_pixel_major(args.output, args.geometry, n, size_t(oy) * plan.out_width + ox0,
                                plan.out_width, pixels, cb * B, acc);
    }
  }
}

}  // namespace lowbit::kernels
