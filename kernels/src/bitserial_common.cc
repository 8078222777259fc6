#include "bitserial_common.h"

#include "int8_common.h"

#include <bit>
#include <cassert>

namespace lowbit::kernels::detail {

void make_bit_serial_plan(const BitSerialConvArgs& a, BitSerialPlan* plan) {
  const ConvGeometry& g = a.geometry;
  const BitPlanesLayout& l = a.activation_layout;
  const BitSerialWeightsLayout& w = a.weight_layout;
  assert(l.channels == g.in_channels && l.height == g.height && l.width == g.width &&
         l.pad == g.pad);
  assert(w.out_channels == g.out_channels && w.in_channels == g.in_channels &&
         w.taps == g.taps() && g.taps() <= kBitSerialMaxTaps);
  assert(g.out_height() > 0 && g.out_width() > 0 && g.stride >= 1);
  const WeightCoding coding = weight_coding(w.domain, w.bits);
  plan->taps = g.taps();
  plan->words = l.words;
  plan->wbits = w.bits;
  plan->abits = l.bits;
  plan->step = coding.step;
  plan->offset = coding.offset;
  for (int ky = 0; ky < g.kernel_h; ++ky)
    for (int kx = 0; kx < g.kernel_w; ++kx)
      plan->tap_offset[ky * g.kernel_w + kx] =
          int64_t(l.offset_words(ky, kx));  // (ky * padded_width + kx) * pixel_words
}

BitSerialWork make_bit_serial_work(const BitSerialConvArgs& a) {
  BitSerialWork w;
  w.cout_blocks = a.weight_layout.cout_blocks;
  w.out_height = a.geometry.out_height();
  w.out_width = a.geometry.out_width();
  w.row_tiles = (w.out_width + kBitSerialPixelTile - 1) / kBitSerialPixelTile;
  const size_t items = bitserial_conv_work_items(a);
  check_work_range(a.output, a.work, items, size_t(w.cout_blocks));
  w.end = a.work.end < items ? a.work.end : items;
  w.begin = a.work.begin < w.end ? a.work.begin : w.end;
  return w;
}

void activation_sums(const BitSerialConvArgs& a, const BitSerialPlan& plan,
                     const uint64_t* image, int out_y, int out_x, int pixels, int32_t* sums) {
  activation_sums_local(a, plan, image, out_y, out_x, pixels, sums);
}

}  // namespace lowbit::kernels::detail

namespace lowbit::kernels {

size_t bitserial_conv_work_items(const BitSerialConvArgs& a) {
  const size_t row_tiles =
      (size_t(a.geometry.out_width()) + detail::kBitSerialPixelTile - 1) / detail::kBitSerialPixelTile;
  return size_t(a.geometry.batch) * a.geometry.out_height() * row_tiles *
         a.weight_layout.cout_blocks;
}

}  // namespace lowbit::kernels
