// INT8 dot-product family, portable scalar variant: same formats and work
// items as the vpdpbusd variants (u8 byte activations, s8 k-quad weights);
// products summed straight into int32, one output pixel at a time.
#include "int8_common.h"

namespace lowbit::kernels {

void conv_u8s8dot_6x16__scalar(const Int8DotConvArgs& args) {
  constexpr int B = kInt8CoutBlock;
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
    const size_t f_end = g0 + kInt8PixelGroup < plan.flat_pixels ? g0 + kInt8PixelGroup
                                                                 : plan.flat_pixels;
    int32_t acc[kInt8PixelGroup * B];
    for (size_t f = g0; f < f_end; ++f) {
      const int y = int(f / plan.out_width), x = int(f % plan.out_width);
      const uint8_t* window = image + l.offset(y * g.stride, x * g.stride);
      int32_t* sum = acc + (f - g0) * B;
      for (int o = 0; o < B; ++o) sum[o] = 0;
      const int8_t* w = wblock;
      for (int ky = 0; ky < g.kernel_h; ++ky) {
        const uint8_t* a = window + plan.row_offset[ky];
        for (int q = 0; q < plan.row_quads; ++q, w += 4 * B)
          for (int o = 0; o < B; ++o)
            for (int j = 0; j < 4; ++j) sum[o] += int32_t(w[4 * o + j]) * a[4 * q + j];
      }
    }
    detail::store_pixel_major(args.output, g, n, g0, plan.out_width, int(f_end - g0), cb * B, acc);
  }
}

}  // namespace lowbit::kernels
