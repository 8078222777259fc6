// Bit-serial convolution, AArch64 NEON.
//
// Two 128-bit registers hold the same weight word for the 4 output channels
// of a block ([cout_blocks][taps][words][wbits][4] uint64). Per output pixel,
// tap, word and weight plane i: AND with each broadcast activation plane word
// j, vcntq_u8, Horner over j in bytes (<= 8 * 15 = 120), vpaddlq_u8 to 16-bit
// (<= 240), Horner over i in 16-bit (<= 240 * 15 = 3600), vpadalq_u16 into
// 32-bit lanes (two per output channel; exact for any K below 2^32 / 3600
// words). value = step * sum(q * a) + offset * sum(a). kCodes / kFloat
// outputs go through the vector stage of tile_codes_neon.h.
#include <arm_neon.h>

#include "bitserial_common.h"
#include "lowbit/kernels/conv.h"
#include "tile_codes_neon.h"

namespace lowbit::kernels {

void conv_anybits_bitserial_64x4__neon(const BitSerialConvArgs& args) {
  constexpr int P = detail::kBitSerialPixelTile, B = kBitSerialCoutBlock;
  detail::BitSerialPlan plan;
  detail::make_bit_serial_plan(args, &plan);
  const ConvGeometry& g = args.geometry;
  const BitPlanesLayout& l = args.activation_layout;
  const int s = g.stride;
  const int words = plan.words, wbits = plan.wbits, abits = plan.abits;
  const size_t block_words = size_t(plan.taps) * words * wbits * B;
  const detail::BitSerialWork work = detail::make_bit_serial_work(args);
  const TileEpilogueNeon epilogue = make_tile_epilogue_neon(args.output);
  for (size_t tile = work.tile_begin(); tile < work.tile_end(); ++tile) {
    const detail::BitSerialTile tl = work.tile(tile);
    const int n = tl.image, oy = tl.out_y, ox0 = tl.out_x, pixels = tl.pixels;
    const uint64_t* image = args.activations + size_t(n) * l.image_words;
    int32_t sums[P];
    detail::activation_sums_local(args, plan, image, oy, ox0, pixels, sums);
    for (int cb = tl.cb_begin; cb < tl.cb_end; ++cb) {
      const uint64_t* wblock = args.weights + cb * block_words;
      int32_t acc[B][P];
      for (int i = 0; i < pixels; ++i) {
        const uint64_t* window = image + l.offset_words(oy * s, (ox0 + i) * s);
        uint32x4_t dot01 = vdupq_n_u32(0), dot23 = vdupq_n_u32(0);
        const uint64_t* w = wblock;
        for (int t = 0; t < plan.taps; ++t) {
          const uint64_t* px = window + plan.tap_offset[t];
          for (int k = 0; k < words; ++k, w += size_t(wbits) * B) {
            uint64x2_t act[4];
            for (int j = 0; j < abits; ++j) act[j] = vdupq_n_u64(px[j * words + k]);
            uint16x8_t weighted01 = vdupq_n_u16(0), weighted23 = vdupq_n_u16(0);
            for (int wi = wbits - 1; wi >= 0; --wi) {
              const uint64x2_t w01 = vld1q_u64(w + wi * B), w23 = vld1q_u64(w + wi * B + 2);
              uint8x16_t bytes01 = vdupq_n_u8(0), bytes23 = vdupq_n_u8(0);
              for (int j = abits - 1; j >= 0; --j) {
                const uint8x16_t c01 = vcntq_u8(vreinterpretq_u8_u64(vandq_u64(w01, act[j])));
                const uint8x16_t c23 = vcntq_u8(vreinterpretq_u8_u64(vandq_u64(w23, act[j])));
                bytes01 = vaddq_u8(vaddq_u8(bytes01, bytes01), c01);
                bytes23 = vaddq_u8(vaddq_u8(bytes23, bytes23), c23);
              }
              weighted01 = vaddq_u16(vaddq_u16(weighted01, weighted01), vpaddlq_u8(bytes01));
              weighted23 = vaddq_u16(vaddq_u16(weighted23, weighted23), vpaddlq_u8(bytes23));
            }
            dot01 = vpadalq_u16(dot01, weighted01);
            dot23 = vpadalq_u16(dot23, weighted23);
          }
        }
        const uint64x2_t d01 = vpaddlq_u32(dot01), d23 = vpaddlq_u32(dot23);
        const int64_t dots[B] = {int64_t(vgetq_lane_u64(d01, 0)), int64_t(vgetq_lane_u64(d01, 1)),
                                 int64_t(vgetq_lane_u64(d23, 0)), int64_t(vgetq_lane_u64(d23, 1))};
        for (int o = 0; o < B; ++o)
          acc[o][i] = int32_t(plan.step * dots[o] + int64_t(plan.offset) * sums[i]);
      }
      store_tile_neon(epilogue, args.output, g, n, oy, ox0, pixels, cb * B, B, &acc[0][0], P);
    }
  }
}

}  // namespace lowbit::kernels
