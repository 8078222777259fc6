#include "int8_common.h"

#include <cassert>
#include <cstring>

#include "lut_common.h"

namespace lowbit::kernels {

WorkRange work_range(size_t items, int parts, int part, size_t granule) {
  assert(parts > 0 && part >= 0 && part < parts && granule > 0);
  const size_t units = (items + granule - 1) / granule;
  WorkRange r;
  r.begin = units * size_t(part) / size_t(parts) * granule;
  r.end = part + 1 == parts ? items : units * size_t(part + 1) / size_t(parts) * granule;
  if (r.begin > items) r.begin = items;
  if (r.end > items) r.end = items;
  return r;
}

size_t lut_conv_work_items(const LutConvArgs& a) {
  const size_t flat = size_t(a.geometry.out_height()) * a.activation_layout.row_pitch;
  const size_t tiles = (flat + detail::kLutPixelTile - 1) / detail::kLutPixelTile;
  return size_t(a.geometry.batch) * tiles * a.table_layout.cout_blocks;
}

namespace {
// Items of the INT8 conv families (both formats): item = (image * pixel_groups
// + group) * cout_blocks + block, groups of kInt8PixelGroup flat output pixels.
size_t int8_items(const ConvGeometry& g, int cout_blocks) {
  const size_t flat = size_t(g.out_height()) * g.out_width();
  return size_t(g.batch) * ((flat + kInt8PixelGroup - 1) / kInt8PixelGroup) * cout_blocks;
}
}  // namespace

size_t int8_conv_work_items(const Int8ConvArgs& a) {
  return int8_items(a.geometry, a.weight_layout.cout_blocks);
}

size_t int8_dot_conv_work_items(const Int8DotConvArgs& a) {
  return int8_items(a.geometry, a.weight_layout.cout_blocks);
}

size_t dw_conv_work_items(const DwConvArgs& a) {
  return size_t(a.geometry.batch) * a.geometry.out_height() * a.weight_layout.channel_blocks;
}

namespace detail {

namespace {
// The plan of both INT8 conv formats. A k-step is kChannelsPerStep input
// channels of one pixel (2 for the int16 pair format, 4 for the byte quad
// format); steps_per_row = kernel_w * channel_stride / kChannelsPerStep, and
// the weight layout holds channel_stride / kChannelsPerStep steps per tap
// (weight_steps).
template <int kChannelsPerStep, class Args>
void make_plan(const Args& a, int weight_steps, Int8Plan* plan, int* steps_per_row) {
  const ConvGeometry& g = a.geometry;
  const auto& l = a.activation_layout;
  const auto& w = a.weight_layout;
  assert(g.groups == 1 && g.stride >= 1);
  assert(l.channels == g.in_channels && l.height == g.height && l.width == g.width &&
         l.pad == g.pad);
  assert(w.out_channels == g.out_channels && w.in_channels == g.in_channels &&
         w.taps == g.taps() && weight_steps * kChannelsPerStep == l.channel_stride);
  (void)weight_steps;
  assert(g.kernel_h <= kInt8MaxKernelH && g.out_height() > 0 && g.out_width() > 0);
  assert(size_t(g.taps()) * g.in_channels <= 65793);  // exact int32 sums
  plan->out_height = g.out_height();
  plan->out_width = g.out_width();
  plan->flat_pixels = size_t(plan->out_height) * plan->out_width;
  plan->pixel_groups = (plan->flat_pixels + kInt8PixelGroup - 1) / kInt8PixelGroup;
  plan->cout_blocks = w.cout_blocks;
  plan->items = size_t(g.batch) * plan->pixel_groups * plan->cout_blocks;
  *steps_per_row = g.kernel_w * l.channel_stride / kChannelsPerStep;
  for (int ky = 0; ky < g.kernel_h; ++ky) plan->row_offset[ky] = l.offset(ky, 0);
  check_work_range(a.output, a.work, plan->items, size_t(plan->cout_blocks));
}
}  // namespace

void make_int8_plan(const Int8ConvArgs& a, Int8Plan* plan) {
  make_plan<2>(a, a.weight_layout.channel_pairs, plan, &plan->row_pairs);
}

void make_int8_dot_plan(const Int8DotConvArgs& a, Int8Plan* plan) {
  make_plan<4>(a, a.weight_layout.channel_quads, plan, &plan->row_quads);
}

void make_dw_plan(const DwConvArgs& a, DwPlan* plan) {
  const ConvGeometry& g = a.geometry;
  const Int8ActivationsLayout& l = a.activation_layout;
  const DwWeightsLayout& w = a.weight_layout;
  assert(g.groups == g.in_channels && g.in_channels == g.out_channels && g.stride >= 1);
  assert(l.channels == g.in_channels && l.height == g.height && l.width == g.width &&
         l.pad == g.pad);
  assert(w.channels == g.in_channels && w.taps == g.taps() && g.taps() <= kDwMaxTaps);
  assert(g.out_height() > 0 && g.out_width() > 0);
  plan->out_height = g.out_height();
  plan->out_width = g.out_width();
  plan->channel_blocks = w.channel_blocks;
  plan->items = size_t(g.batch) * plan->out_height * plan->channel_blocks;
  plan->taps = g.taps();
  for (int ky = 0; ky < g.kernel_h; ++ky)
    for (int kx = 0; kx < g.kernel_w; ++kx) plan->tap_offset[ky * g.kernel_w + kx] = l.offset(ky, kx);
  // Rows of one image are separate items; a kBitPlanes word holds 64 channels
  // (4 blocks), so such ranges must cover whole rows.
  check_work_range(a.output, a.work, plan->items, size_t(plan->channel_blocks));
}

void check_work_range(const OutputStage& out, const WorkRange& r, size_t items, size_t granule) {
  (void)out, (void)r, (void)items, (void)granule;
  assert(out.destination != Destination::kBitPlanes ||
         ((r.begin % granule == 0 || r.begin >= items) && (r.end >= items || r.end % granule == 0)));
}

void store_pixel_major(const OutputStage& out, const ConvGeometry& g, int image, size_t f,
                       int ow, int pixels, int cout_begin, const int32_t* acc, int max_couts) {
  constexpr int B = kInt8CoutBlock;
  const int cout = g.out_channels;
  const int limit = max_couts < B ? max_couts : B;
  const int couts = cout - cout_begin < limit ? cout - cout_begin : limit;
  int i = 0;
  while (i < pixels) {
    const int y = int((f + i) / ow), x = int((f + i) % ow);
    const int run = ow - x < pixels - i ? ow - x : pixels - i;
    if (out.destination == Destination::kInt32) {
      int32_t* dst = static_cast<int32_t*>(out.data) +
                     ((size_t(image) * g.out_height() + y) * ow + x) * cout + cout_begin;
      if (couts == B) {  // fixed-size copies, inlined
        for (int k = 0; k < run; ++k)
          std::memcpy(dst + size_t(k) * cout, acc + (i + k) * B, sizeof(int32_t) * B);
      } else {
        for (int k = 0; k < run; ++k)
          std::memcpy(dst + size_t(k) * cout, acc + (i + k) * B, sizeof(int32_t) * couts);
      }
    } else {
      int32_t t[4 * kInt8PixelGroup];  // channel-major for store_tile
      for (int o0 = 0; o0 < couts; o0 += 4) {
        const int n = couts - o0 < 4 ? couts - o0 : 4;
        for (int o = 0; o < n; ++o)
          for (int k = 0; k < run; ++k) t[o * kInt8PixelGroup + k] = acc[(i + k) * B + o0 + o];
        store_tile(out, g, image, y, x, run, cout_begin + o0, n, t, kInt8PixelGroup);
      }
    }
    i += run;
  }
}

}  // namespace detail
}  // namespace lowbit::kernels
