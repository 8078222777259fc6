// INT8 convolution, portable scalar variant: same formats, work items and
// register tile shape (6 output pixels x 16 output channels) as the SIMD
// variants; products summed straight into int32.
#include "int8_common.h"

namespace lowbit::kernels {

void conv_u8s8_6x16__scalar(const Int8ConvArgs& args) {
  constexpr int T = detail::kInt8Tile, B = kInt8CoutBlock;
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
    const size_t f_end = (group + 1) * kInt8PixelGroup < plan.flat_pixels
                             ? (group + 1) * kInt8PixelGroup : plan.flat_pixels;
    int32_t acc[kInt8PixelGroup * B];
    for (size_t f0 = group * kInt8PixelGroup; f0 < f_end; f0 += T) {
      const int pixels = f_end - f0 < size_t(T) ? int(f_end - f0) : T;
      for (int i = 0; i < pixels; ++i) {
        const uint16_t* window = image + detail::window_offset(args, plan, f0 + i);
        int32_t* sum = acc + (f0 - group * kInt8PixelGroup + i) * B;
        for (int o = 0; o < B; ++o) sum[o] = 0;
        const int16_t* w = wblock;
        for (int ky = 0; ky < g.kernel_h; ++ky) {
          const uint16_t* a = window + plan.row_offset[ky];
          for (int p = 0; p < plan.row_pairs; ++p, w += 2 * B)
            for (int o = 0; o < B; ++o)
              sum[o] += int32_t(w[2 * o]) * a[2 * p] + int32_t(w[2 * o + 1]) * a[2 * p + 1];
        }
      }
    }
    detail::store_pixel_major(args.output, g, n, group * kInt8PixelGroup, plan.out_width,
                              int(f_end - group * kInt8PixelGroup), cb * B, acc);
  }
}

}  // namespace lowbit::kernels
