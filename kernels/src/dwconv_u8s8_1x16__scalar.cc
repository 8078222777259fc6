// Depthwise INT8 convolution, portable scalar variant (same formats and work
// items as the SIMD variants).
#include "int8_common.h"

namespace lowbit::kernels {

void dwconv_u8s8_1x16__scalar(const DwConvArgs& args) {
  constexpr int B = kDwChannelBlock, R = detail::kDwRowChunk;
  detail::DwPlan plan;
  detail::make_dw_plan(args, &plan);
  const ConvGeometry& g = args.geometry;
  const Int8ActivationsLayout& l = args.activation_layout;
  const size_t end = args.work.end < plan.items ? args.work.end : plan.items;
  for (size_t item = args.work.begin; item < end; ++item) {
    const int cb = int(item % plan.channel_blocks);
    const int oy = int(item / plan.channel_blocks % plan.out_height);
    const int n = int(item / plan.channel_blocks / plan.out_height);
    const uint16_t* image = args.activations + size_t(n) * l.image_elems + cb * B;
    const int16_t* wb = args.weights + cb * args.weight_layout.block_elems;
    // Unscramble the vpunpck order of the layout (formats.h) once per item.
    int16_t w[detail::kDwMaxTaps][B];
    for (int t = 0; t < plan.taps; ++t)
      for (int c = 0; c < B; ++c)
        w[t][c] = wb[(size_t(t / 2) * 2 + (c % 8) / 4) * 16 + ((c / 8) * 4 + c % 4) * 2 + t % 2];
    for (int ox0 = 0; ox0 < plan.out_width; ox0 += R) {
      const int pixels = plan.out_width - ox0 < R ? plan.out_width - ox0 : R;
      int32_t acc[R * B];
      for (int i = 0; i < pixels; ++i) {
        const uint16_t* window = image + l.offset(oy * g.stride, (ox0 + i) * g.stride);
        for (int c = 0; c < B; ++c) {
          int32_t s = 0;
          for (int t = 0; t < plan.taps; ++t) s += int32_t(w[t][c]) * window[plan.tap_offset[t] + c];
          acc[i * B + c] = s;
        }
      }
      detail::store_pixel_major(args.output, g, n, size_t(oy) * plan.out_width + ox0,
                                plan.out_width, pixels, cb * B, acc);
    }
  }
}

}  // namespace lowbit::kernels
