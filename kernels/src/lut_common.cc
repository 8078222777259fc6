#include "lut_common.h"

#include <cassert>

#include "int8_common.h"

namespace lowbit::kernels::detail {

void make_lut_plan(const LutConvArgs& a, LutPlan* plan) {
  const ConvGeometry& g = a.geometry;
  const PairPlanesLayout& l = a.activation_layout;
  const LutWeightsLayout& t = a.table_layout;
  assert(g.stride == 1 || g.stride == 2);
  assert(l.phase_split == g.stride && l.pad == g.pad && l.channels == g.in_channels);
  assert(l.height == g.height && l.width == g.width);
  assert(t.out_channels == g.out_channels && t.in_channels == g.in_channels);
  assert(t.taps == g.taps() && g.taps() <= kLutMaxTaps);
  assert(g.out_height() > 0 && g.out_width() > 0);
  const int s = g.stride;
  plan->taps = g.taps();
  plan->steps = t.steps;
  plan->pair_stride = size_t(s) * s * l.plane_bytes;
  plan->flat_pixels = size_t(g.out_height()) * l.row_pitch;
  check_work_range(a.output, a.work, lut_conv_work_items(a), size_t(t.cout_blocks));
  for (int ky = 0; ky < g.kernel_h; ++ky)
    for (int kx = 0; kx < g.kernel_w; ++kx)
      plan->tap_offset[ky * g.kernel_w + kx] = uint32_t(
          size_t((ky % s) * s + kx % s) * l.plane_bytes + size_t(ky / s) * l.row_pitch + kx / s);
}

void store_flat_tile(const LutConvArgs& a, int image, size_t flat_begin, int cout_begin,
                     const int32_t* acc, TileStoreFn store) {
  for_each_flat_run(a, flat_begin, [&](int y, int x, int pixels, int i) {
    store(a.output, a.geometry, image, y, x, pixels, cout_begin, kLutCoutBlock, acc + i,
          kLutPixelTile);
  });
}

}  // namespace lowbit::kernels::detail
