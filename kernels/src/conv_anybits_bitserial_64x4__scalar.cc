// Bit-serial convolution, portable scalar variant: for every output pixel and
// output channel, sum over taps, 64-channel words and plane pairs (i, j) of
// popcount(W_i & A_j) << (i + j); value = step * that + offset * sum(a).
#include <bit>

#include "bitserial_common.h"
#include "lowbit/kernels/conv.h"

namespace lowbit::kernels {

void conv_anybits_bitserial_64x4__scalar(const BitSerialConvArgs& args) {
  constexpr int P = detail::kBitSerialPixelTile, B = kBitSerialCoutBlock;
  detail::BitSerialPlan plan;
  detail::make_bit_serial_plan(args, &plan);
  const ConvGeometry& g = args.geometry;
  const BitPlanesLayout& l = args.activation_layout;
  const int s = g.stride;
  const size_t block_words = size_t(plan.taps) * plan.words * plan.wbits * B;
  const detail::BitSerialWork work = detail::make_bit_serial_work(args);
  for (size_t tile = work.tile_begin(); tile < work.tile_end(); ++tile) {
    const detail::BitSerialTile tl = work.tile(tile);
    const int n = tl.image, oy = tl.out_y, ox0 = tl.out_x, pixels = tl.pixels;
    const uint64_t* image = args.activations + size_t(n) * l.image_words;
    int32_t sums[P];
    detail::activation_sums(args, plan, image, oy, ox0, pixels, sums);
    for (int cb = tl.cb_begin; cb < tl.cb_end; ++cb) {
      const uint64_t* wblock = args.weights + cb * block_words;
      int32_t acc[B][P];
      for (int i = 0; i < pixels; ++i) {
        const uint64_t* window = image + l.offset_words(oy * s, (ox0 + i) * s);
        int64_t dot[B] = {};
        const uint64_t* w = wblock;
        for (int t = 0; t < plan.taps; ++t) {
          const uint64_t* px = window + plan.tap_offset[t];
          for (int k = 0; k < plan.words; ++k)
            for (int wi = 0; wi < plan.wbits; ++wi, w += B)
              for (int j = 0; j < plan.abits; ++j) {
                const uint64_t act = px[j * plan.words + k];
                for (int o = 0; o < B; ++o)
                  dot[o] += int64_t(std::popcount(w[o] & act)) << (wi + j);
              }
        }
        for (int o = 0; o < B; ++o)
          acc[o][i] = int32_t(plan.step * dot[o] + int64_t(plan.offset) * sums[i]);
      }
      store_tile(args.output, g, n, oy, ox0, pixels, cb * B, B, &acc[0][0], P);
    }
  }
}

}  // namespace lowbit::kernels
