// Bit-serial convolution, AVX2 (compiled with -mavx2 -mfma).
//
// One 256-bit register holds the same weight word for the 4 output channels of
// a block ([cout_blocks][taps][words][wbits][4] uint64). Per output pixel, tap,
// word and weight plane i: AND with each broadcast activation plane word j,
// byte popcount by two nibble-table vpshufb, Horner over j in bytes
// (sum_j 2^j * popcount <= 8 * 15 = 120 per byte), vpsadbw to 64-bit lanes,
// Horner over i in 64-bit lanes. value = step * sum(q * a) + offset * sum(a).
// kCodes / kFloat outputs go through the vector stage of tile_codes_avx2.h.
#include <immintrin.h>

#include "bitserial_common.h"
#include "lowbit/kernels/conv.h"
#include "tile_codes_avx2.h"

namespace lowbit::kernels {

void conv_anybits_bitserial_64x4__avx2(const BitSerialConvArgs& args) {
  constexpr int P = detail::kBitSerialPixelTile, B = kBitSerialCoutBlock;
  detail::BitSerialPlan plan;
  detail::make_bit_serial_plan(args, &plan);
  const ConvGeometry& g = args.geometry;
  const BitPlanesLayout& l = args.activation_layout;
  const int s = g.stride;
  const int words = plan.words, wbits = plan.wbits, abits = plan.abits;
  const size_t block_words = size_t(plan.taps) * words * wbits * B;
  const __m256i nibble_counts =
      _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1,
                       2, 2, 3, 2, 3, 3, 4);
  const __m256i low_nibble = _mm256_set1_epi8(0x0f);
  const __m256i zero = _mm256_setzero_si256();
  const detail::BitSerialWork work = detail::make_bit_serial_work(args);
  const TileEpilogue256 epilogue = make_tile_epilogue256(args.output);
  for (size_t tile = work.tile_begin(); tile < work.tile_end(); ++tile) {
    const detail::BitSerialTile tl = work.tile(tile);
    const int n = tl.image, oy = tl.out_y, ox0 = tl.out_x, pixels = tl.pixels;
    const uint64_t* image = args.activations + size_t(n) * l.image_words;
    int32_t sums[P];
    detail::activation_sums_local(args, plan, image, oy, ox0, pixels, sums);
    for (int cb = tl.cb_begin; cb < tl.cb_end; ++cb) {
      const uint64_t* wblock = args.weights + cb * block_words;
      alignas(32) int32_t acc[B][P];
      for (int i = 0; i < pixels; ++i) {
        const uint64_t* window = image + l.offset_words(oy * s, (ox0 + i) * s);
        __m256i dot = zero;  // 4 x int64, one per output channel
        const uint64_t* w = wblock;
        for (int t = 0; t < plan.taps; ++t) {
          const uint64_t* px = window + plan.tap_offset[t];
          for (int k = 0; k < words; ++k, w += size_t(wbits) * B) {
            __m256i act[4];
            for (int j = 0; j < abits; ++j)
              act[j] = _mm256_set1_epi64x(static_cast<long long>(px[j * words + k]));
            __m256i weighted = zero;  // Horner over weight planes, 64-bit lanes
            for (int wi = wbits - 1; wi >= 0; --wi) {
              const __m256i wv =
                  _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + wi * B));
              __m256i bytes = zero;  // Horner over activation planes, bytes
              for (int j = abits - 1; j >= 0; --j) {
                const __m256i x = _mm256_and_si256(wv, act[j]);
                const __m256i lo = _mm256_and_si256(x, low_nibble);
                const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), low_nibble);
                const __m256i count = _mm256_add_epi8(_mm256_shuffle_epi8(nibble_counts, lo),
                                                      _mm256_shuffle_epi8(nibble_counts, hi));
                bytes = _mm256_add_epi8(_mm256_add_epi8(bytes, bytes), count);
              }
              weighted = _mm256_add_epi64(_mm256_add_epi64(weighted, weighted),
                                          _mm256_sad_epu8(bytes, zero));
            }
            dot = _mm256_add_epi64(dot, weighted);
          }
        }
        alignas(32) int64_t lanes[B];
        _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), dot);
        for (int o = 0; o < B; ++o)
          acc[o][i] = int32_t(plan.step * lanes[o] + int64_t(plan.offset) * sums[i]);
      }
      store_tile256(epilogue, args.output, g, n, oy, ox0, pixels, cb * B, B, &acc[0][0], P);
    }
  }
}

}  // namespace lowbit::kernels
