// INT8 convolution, AArch64 NEON (baseline on AArch64), 16-bit formats.
//
// Tile: 6 output pixels x 16 output channels, computed as two register tiles
// of 3 pixels (12 int32x4 accumulators each; 24 at once would spill). Per
// k-pair step: two vld2q_s16 de-interleave the weights of the two input
// channels for 16 output channels (4 registers), each pixel's two int16
// activations are loaded as one 32-bit lane pair, and 8 smlal/smlal2 by
// element per pixel accumulate 32 exact multiply-adds (int16 x int16
// products summed in int32). A 16-bit smlal does 4 multiply-adds, so one
// multiply pipe caps this kernel at 4 per cycle; the byte-format
// conv_u8s8dot_2x16__neon (8-bit smull) reaches 8.
#include <arm_neon.h>

#include "int8_common.h"
#include "mca_markers.h"
#include "static_for.h"

namespace lowbit::kernels {

void conv_u8s8_6x16__neon(const Int8ConvArgs& args) {
  constexpr int T = detail::kInt8Tile, B = kInt8CoutBlock, H = T / 2;
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
    const size_t f_end =
        g0 + kInt8PixelGroup < plan.flat_pixels ? g0 + kInt8PixelGroup : plan.flat_pixels;
    int32_t acc[kInt8PixelGroup * B];
    for (size_t f0 = g0; f0 < f_end; f0 += T) {
      const int pixels = f_end - f0 < size_t(T) ? int(f_end - f0) : T;
      const uint16_t* win[T];
      for (int i = 0; i < T; ++i)
        win[i] = image + detail::window_offset(args, plan, f0 + (i < pixels ? i : pixels - 1));
      int32_t* t = acc + (f0 - g0) * B;
      // Two register tiles of H = 3 pixels (12 accumulators + 4 weight and
      // 3 activation registers; all 6 at once need 34 and spill).
      for (int h0 = 0; h0 < pixels; h0 += H) {
        int32x4_t c[H][4];
        detail::static_for<H>(
            [&](auto i) { detail::static_for<4>([&](auto q) { c[i][q] = vdupq_n_s32(0); }); });
        const int16_t* w = wblock;
        for (int ky = 0; ky < g.kernel_h; ++ky) {
          const size_t ro = plan.row_offset[ky];
          const uint16_t* a[H];
          for (int i = 0; i < H; ++i) a[i] = win[h0 + i] + ro;
          for (int p = 0; p < plan.row_pairs; ++p, w += 2 * B) {
            LOWBIT_MCA_BEGIN("conv_u8s8_16bit_neon");
            const int16x8x2_t wa = vld2q_s16(w);      // channels 0..7: [0] even k, [1] odd k
            const int16x8x2_t wb = vld2q_s16(w + B);  // channels 8..15
            detail::static_for<H>([&](auto i) {
              const int16x4_t x = vreinterpret_s16_u32(
                  vld1_dup_u32(reinterpret_cast<const uint32_t*>(a[i] + 2 * p)));
              c[i][0] = vmlal_lane_s16(c[i][0], vget_low_s16(wa.val[0]), x, 0);
              c[i][0] = vmlal_lane_s16(c[i][0], vget_low_s16(wa.val[1]), x, 1);
              c[i][1] = vmlal_high_lane_s16(c[i][1], wa.val[0], x, 0);
              c[i][1] = vmlal_high_lane_s16(c[i][1], wa.val[1], x, 1);
              c[i][2] = vmlal_lane_s16(c[i][2], vget_low_s16(wb.val[0]), x, 0);
              c[i][2] = vmlal_lane_s16(c[i][2], vget_low_s16(wb.val[1]), x, 1);
              c[i][3] = vmlal_high_lane_s16(c[i][3], wb.val[0], x, 0);
              c[i][3] = vmlal_high_lane_s16(c[i][3], wb.val[1], x, 1);
            });
            LOWBIT_MCA_END();
          }
        }
        const int n_out = pixels - h0 < H ? pixels - h0 : H;
        detail::static_for<H>([&](auto i) {
          if (i < n_out)
            detail::static_for<4>([&](auto q) { vst1q_s32(t + (h0 + i) * B + 4 * q, c[i][q]); });
        });
      }
    }
    detail::store_pixel_major(args.output, g, n, g0, plan.out_width, int(f_end - g0), cb * B, acc);
  }
}

}  // namespace lowbit::kernels
