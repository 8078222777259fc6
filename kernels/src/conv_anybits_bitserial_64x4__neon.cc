// Bit-serial convolution, AArch64 NEON (tuned for cores without dotprod:
// Cortex-A53/A55/A72).
//
// One instantiation per (weight bits WB, activation bits AB), so every loop
// over bit planes is unrolled and every accumulator lives in a register.
// Register tile: P output pixels x the 4 output channels of a block (P = 4
// at W1A1, 3 at W1A2/W2A1, 2 at W2A2/W1A3/W3A1, else 1: tile_pixels()).
// Per input word (64 channels of one tap): the block's weight planes are loaded once
// ([taps][words][WB][4] uint64: two 128-bit registers per plane, channels
// 0-1 and 2-3) and each pixel's activation planes are broadcast (ld1r).
// Each plane pair (i, j) costs AND + cnt + one byte add: the cnt bytes go
// straight into the byte accumulator of its weight class c = i + j
// (acc8[pixel][c][half]), so no shifts or widening run per word. Byte
// bound: a class gets at most 8 * min(WB, AB) per word, so the bytes are
// flushed every flush_words() = floor(255 / (8 * min(WB, AB))) words (31 at
// W1A1, 15 at W2A2): s16 = Horner over c of uaddlp(acc8[c]) (exact: at most
// 510 * (2^(WB+AB-1) - 1) <= 64770), then uadalp into 32-bit lanes (two per
// output channel), exact while sum(q * a) < 2^32. At the end of the tile
// value = step * sum(q * a) + offset * sum(a) in int32 (wrapping arithmetic,
// exact because the value fits int32). kCodes / kFloat outputs go through
// the vector stage of tile_codes_neon.h.
//
// Per word and pixel: 2 * WB * AB (AND, cnt, add) triples plus AB ld1r;
// weights loaded once per P pixels. One iteration of the word loop is marked
// for llvm-mca as bitserial_w<WB>a<AB>_neon (P * 4 * 64 multiply-adds).
// W1A1 has its own loop (tile_dots_w1a1: two words per iteration, no
// broadcasts; its region covers 4 * 4 * 128 = 2048 multiply-adds), and so
// has W2A2 (tile_dots_a2: both activation planes of a pixel in one register
// against lane-duplicated weights, no broadcasts; llvm-mca A72 20.5
// MAC/cycle against 18.3 for tile_dots, which remains its fallback beyond
// 128 steps).
#include <arm_neon.h>

#include "bitserial_common.h"
#include "lowbit/kernels/conv.h"
#include "mca_markers.h"
#include "static_for.h"
#include "tile_codes_neon.h"

namespace lowbit::kernels {
namespace {

using detail::static_for;

constexpr int min_bits(int a, int b) { return a < b ? a : b; }
// Weight classes (i + j) of a plane pair.
constexpr int classes(int wb, int ab) { return wb + ab - 1; }
// Pixels per register tile: byte accumulators 2 * classes per pixel plus
// 32-bit sums 2 per pixel within about 18 registers (the rest hold weights
// and activations; 20 spilled at W2A3, W3A2, W1A4 and W4A1).
constexpr int tile_pixels(int wb, int ab) {
  const int p = 18 / (2 * classes(wb, ab) + 2);
  return p < 1 ? 1 : (p > 4 ? 4 : p);
}
constexpr int flush_words(int wb, int ab) { return 255 / (8 * min_bits(wb, ab)); }

// llvm-mca region of one word-loop iteration, named bitserial_w<WB>a<AB>_neon.
#define LOWBIT_BS_MCA_CASE(w, a) \
  else if constexpr (WB == w && AB == a) LOWBIT_MCA_BEGIN("bitserial_w" #w "a" #a "_neon");
template <int WB, int AB>
inline void mca_begin() {
  if constexpr (false) {
  }  // W2A2: tile_dots_a2 marks its own loop (tile_dots is its fallback)
  LOWBIT_BS_MCA_CASE(1, 2)
  LOWBIT_BS_MCA_CASE(2, 1)
  LOWBIT_BS_MCA_CASE(1, 3)
  LOWBIT_BS_MCA_CASE(3, 1)
  LOWBIT_BS_MCA_CASE(2, 3)
  LOWBIT_BS_MCA_CASE(3, 2)
  LOWBIT_BS_MCA_CASE(3, 3) LOWBIT_BS_MCA_CASE(1, 4) LOWBIT_BS_MCA_CASE(4, 1)
      LOWBIT_BS_MCA_CASE(2, 4) LOWBIT_BS_MCA_CASE(4, 2) LOWBIT_BS_MCA_CASE(3, 4)
          LOWBIT_BS_MCA_CASE(4, 3) LOWBIT_BS_MCA_CASE(4, 4)
}
#undef LOWBIT_BS_MCA_CASE

// Both 64-bit lanes = *p (ld1r; gcc would emit ldr + dup, one more vector op).
inline uint8x16_t broadcast_word(const uint64_t* p) {
  uint8x16_t v;
  asm("ld1r {%0.2d}, [%1]" : "=w"(v) : "r"(p), "m"(*p));
  return v;
}

// Sums of the P output pixels whose windows start at win[p], block weights
// at wblock: dots[p][o] = sum(q * a) of channel o.
template <int WB, int AB>
inline void tile_dots(const detail::BitSerialPlan& plan, const uint64_t* wblock,
                      const uint64_t* const* win, uint32_t (*dots)[4]) {
  constexpr int P = tile_pixels(WB, AB), C = classes(WB, AB), L = flush_words(WB, AB);
  const int words = plan.words;
  uint8x16_t acc8[P][C][2];
  uint32x4_t acc32[P][2];
  static_for<P>([&](auto p) {
    acc32[p][0] = acc32[p][1] = vdupq_n_u32(0);
    static_for<C>([&](auto c) { acc8[p][c][0] = acc8[p][c][1] = vdupq_n_u8(0); });
  });
  const auto flush = [&] {
    static_for<P>([&](auto p) {
      static_for<2>([&](auto h) {
        uint16x8_t s = vpaddlq_u8(acc8[p][C - 1][h]);
        static_for<C - 1>([&](auto c) {  // classes C - 2 down to 0
          s = vpadalq_u8(vaddq_u16(s, s), acc8[p][C - 2 - c][h]);
        });
        acc32[p][h] = vpadalq_u16(acc32[p][h], s);
        static_for<C>([&](auto c) { acc8[p][c][h] = vdupq_n_u8(0); });
      });
    });
  };
  const uint64_t* w = wblock;
  int pending = 0;
  for (int t = 0; t < plan.taps; ++t) {
    const int64_t tap = plan.tap_offset[t];
    for (int k = 0; k < words; ++k, w += WB * 4) {
      mca_begin<WB, AB>();
      uint8x16_t wv[WB][2];
      static_for<WB>([&](auto i) {
        wv[i][0] = vreinterpretq_u8_u64(vld1q_u64(w + 4 * i));
        wv[i][1] = vreinterpretq_u8_u64(vld1q_u64(w + 4 * i + 2));
      });
      static_for<P>([&](auto p) {
        const uint64_t* px = win[p] + tap + k;
        static_for<AB>([&](auto j) {
          const uint8x16_t a = broadcast_word(px + j * words);
          static_for<WB>([&](auto i) {
            static_for<2>([&](auto h) {
              acc8[p][i + j][h] = vaddq_u8(acc8[p][i + j][h], vcntq_u8(vandq_u8(wv[i][h], a)));
            });
          });
        });
      });
      if constexpr (!(WB == 2 && AB == 2)) LOWBIT_MCA_END();  // W2A2: tile_dots_a2's region
      if (++pending == L) flush(), pending = 0;
    }
  }
  flush();
  static_for<P>([&](auto p) { vst1q_u32(dots[p], vpaddq_u32(acc32[p][0], acc32[p][1])); });
}

// W1A1 weights regrouped for tile_dots_w1a1<true>: steps (2q, 2q + 1) of
// the block's stream ([steps][4] uint64) become [w0(2q), w0(2q + 1), w1(2q),
// ..., w3(2q + 1)] at out + 8q (a lone last step pairs with zeros). Done once
// per block and pixel tile, so the ld4 that regroups them (4 vector-pipe
// operations on Neoverse-N1) is shared by its 16 tile_dots calls.
inline constexpr size_t kPairedWeightWords = 2048;  // 16 KB of stack
inline void pair_weights(const uint64_t* w, size_t steps, uint64_t* out) {
  size_t q = 0;
  for (; 2 * q + 2 <= steps; ++q) vst1q_u64_x4(out + 8 * q, vld4q_u64(w + 8 * q));
  if (2 * q < steps)
    for (int o = 0; o < 4; ++o) out[8 * q + 2 * o] = w[8 * q + o], out[8 * q + 2 * o + 1] = 0;
}

// W1A1 (tile_pixels = 4): two consecutive words of the weight stream
// ([taps][words][4] uint64, i.e. steps s = t * words + k) per iteration, one
// register per channel: [w_o(s), w_o(s + 1)] (ld4 of the stream, or one
// plain load from its regrouped copy, see kPaired), and the activation
// register holds the same two steps of the pixel ([a(s), a(s + 1)]: one
// 16-byte load when both lie in one tap, else two 8-byte loads). No
// broadcasts: per pixel and two words 4 (AND, cnt, add) on 16 bytes, the
// weight load shared by the 4 pixels. acc8[p][o]: bytes of channel o
// (both lanes); flushed as in tile_dots, every flush_words(1, 1) = 31
// iterations (a byte gets <= 8 per iteration: each lane is one word).
// kPaired: wblock is the block's weights regrouped by pair_weights (one
// plain 64-byte load per iteration) instead of the packed stream (ld4; used
// when the block's steps exceed the regrouping buffer).
template <bool kPaired>
inline void tile_dots_w1a1(const detail::BitSerialPlan& plan, const uint64_t* wblock,
                           const uint64_t* const* win, uint32_t (*dots)[4]) {
  constexpr int P = tile_pixels(1, 1), L = flush_words(1, 1);
  const int words = plan.words;
  const size_t steps = size_t(plan.taps) * words;
  uint8x16_t acc8[P][4];
  uint32_t sums[P][2][4] = {};  // [ch0 ch0 ch1 ch1], [ch2 ch2 ch3 ch3]: touched per flush only
  static_for<P>([&](auto p) { static_for<4>([&](auto o) { acc8[p][o] = vdupq_n_u8(0); }); });
  const auto flush = [&] {
    static_for<P>([&](auto p) {
      const uint16x8_t s01 = vpaddq_u16(vpaddlq_u8(acc8[p][0]), vpaddlq_u8(acc8[p][1]));
      const uint16x8_t s23 = vpaddq_u16(vpaddlq_u8(acc8[p][2]), vpaddlq_u8(acc8[p][3]));
      vst1q_u32(sums[p][0], vpadalq_u16(vld1q_u32(sums[p][0]), s01));
      vst1q_u32(sums[p][1], vpadalq_u16(vld1q_u32(sums[p][1]), s23));
      static_for<4>([&](auto o) { acc8[p][o] = vdupq_n_u8(0); });
    });
  };
  const auto accumulate = [&](const uint64x2x4_t& wq, const uint8x16_t(&a)[P]) {
    static_for<P>([&](auto p) {
      static_for<4>([&](auto o) {
        acc8[p][o] =
            vaddq_u8(acc8[p][o], vcntq_u8(vandq_u8(vreinterpretq_u8_u64(wq.val[o]), a[p])));
      });
    });
  };
  const auto load_pair = [](const uint64_t* w) {
    if constexpr (kPaired)
      return vld1q_u64_x4(w);
    else
      return vld4q_u64(w);
  };
  const uint64_t* w = wblock;
  int pending = 0;
  size_t s = 0;          // steps done
  int t = 0, k = 0;      // (tap, word) of step s
  if (words % 2 == 0) {  // the two words of an iteration always lie in one tap
    for (; t < plan.taps; ++t) {
      const uint64_t* px[P];
      static_for<P>([&](auto p) { px[p] = win[p] + plan.tap_offset[t]; });
      for (int j = 0; j < words; j += 2, w += 8) {
        if constexpr (kPaired) LOWBIT_MCA_BEGIN("bitserial_w1a1_neon");
        const uint64x2x4_t wq = load_pair(w);
        uint8x16_t a[P];
        static_for<P>([&](auto p) { a[p] = vreinterpretq_u8_u64(vld1q_u64(px[p] + j)); });
        accumulate(wq, a);
        if constexpr (kPaired) LOWBIT_MCA_END();
        if (++pending == L) flush(), pending = 0;
      }
    }
    s = steps;
  } else {
    for (; s + 2 <= steps; s += 2, w += 8) {
      uint8x16_t a[P];
      if (k + 1 < words) {
        static_for<P>([&](auto p) {
          a[p] = vreinterpretq_u8_u64(vld1q_u64(win[p] + plan.tap_offset[t] + k));
        });
        k += 2;
      } else {  // (t, words - 1) and (t + 1, 0)
        static_for<P>([&](auto p) {
          a[p] = vreinterpretq_u8_u64(vcombine_u64(vld1_u64(win[p] + plan.tap_offset[t] + k),
                                                   vld1_u64(win[p] + plan.tap_offset[t + 1])));
        });
        ++t, k = 1;
      }
      if (k == words) ++t, k = 0;
      accumulate(load_pair(w), a);
      if (++pending == L) flush(), pending = 0;
    }
  }
  if (s < steps) {  // the last step alone: lane 1 of the activations is zero
    uint64x2x4_t wq;
    if constexpr (kPaired)
      wq = vld1q_u64_x4(w);
    else
      static_for<4>([&](auto o) { wq.val[o] = vdupq_n_u64(w[o]); });
    uint8x16_t a[P];
    static_for<P>([&](auto p) {
      a[p] = vreinterpretq_u8_u64(
          vcombine_u64(vld1_u64(win[p] + plan.tap_offset[t] + k), vdup_n_u64(0)));
    });
    accumulate(wq, a);
  }
  flush();
  static_for<P>([&](auto p) {
    vst1q_u32(dots[p], vpaddq_u32(vld1q_u32(sums[p][0]), vld1q_u32(sums[p][1])));
  });
}

// W2A2 (tile_dots_a2): the block's weights regrouped for it once per block
// and pixel tile, each weight word duplicated into both 64-bit lanes:
// out + ((s * WB + i) * 4 + o) * 2 holds [w_io(s), w_io(s)] for step s,
// plane i, channel o (the stream is [steps][WB][4] uint64).
template <int WB>
inline void duplicate_weights(const uint64_t* w, size_t steps, uint64_t* out) {
  for (size_t e = 0; e < steps * WB * 4; ++e) vst1q_u64(out + 2 * e, vdupq_n_u64(w[e]));
}

// One 16-byte load of [*lo, *hi] (ldr d + ld1 lane: load-pipe work only, no
// vector-pipe insert).
inline uint8x16_t load_pair(const uint64_t* lo, const uint64_t* hi) {
  uint64x2_t v;
  asm("ldr %d0, %1\n\tld1 {%0.d}[1], %2" : "=&w"(v) : "m"(*lo), "Q"(*hi));
  return vreinterpretq_u8_u64(v);
}

// W2A2 without broadcasts (tile_pixels(2, 2) = 2 pixels): per step one
// register per pixel holds both activation planes [a0(s), a1(s)] (one
// 16-byte load when words == 1, as the planes are adjacent, else two 8-byte
// loads), ANDed with the duplicated weight word of plane i and channel o:
// lane j of acc8[p][i][o] counts plane pair (i, j), i.e. weight class i + j.
// Per step and pixel 8 (AND, cnt, add) on 16 bytes and no vector-pipe load.
// A byte gets at most 8 per step, so the bytes are flushed every 31 steps:
// s16 = 2 * uaddlp(acc8[1]) + uaddlp(acc8[0]) per channel (lanes 0-3: class
// i, 4-7: class i + 1; at most 1530), accumulated into the uint32 sums
// sums[p][o][0..3] on the stack; at the end dots = sums[0] + sums[1] + 2 *
// (sums[2] + sums[3]) (exact while sum(q * a) < 2^32).
inline constexpr int kA2Flush = 31;  // 31 * 8 <= 255
inline void tile_dots_a2(const detail::BitSerialPlan& plan, const uint64_t* wdup,
                         const uint64_t* const* win, uint32_t (*dots)[4]) {
  constexpr int WB = 2, P = tile_pixels(2, 2);
  static_assert(P == 2, "26 registers: 16 byte accumulators, 8 weights, 2 activations");
  const int words = plan.words;
  uint8x16_t acc8[P][WB][4];
  uint32_t sums[P][4][4] = {};  // touched per flush only
  static_for<P>([&](auto p) {
    static_for<WB>([&](auto i) { static_for<4>([&](auto o) { acc8[p][i][o] = vdupq_n_u8(0); }); });
  });
  const auto flush = [&] {
    static_for<P>([&](auto p) {
      static_for<4>([&](auto o) {
        const uint16x8_t s = vpadalq_u8(vshlq_n_u16(vpaddlq_u8(acc8[p][1][o]), 1), acc8[p][0][o]);
        vst1q_u32(sums[p][o], vpadalq_u16(vld1q_u32(sums[p][o]), s));
        static_for<WB>([&](auto i) { acc8[p][i][o] = vdupq_n_u8(0); });
      });
    });
  };
  const auto accumulate = [&](const uint64_t* wd, const uint8x16_t(&a)[P]) {
    uint8x16_t wv[WB][4];
    static_for<WB>([&](auto i) {
      static_for<4>(
          [&](auto o) { wv[i][o] = vreinterpretq_u8_u64(vld1q_u64(wd + (i * 4 + o) * 2)); });
    });
    static_for<P>([&](auto p) {
      static_for<WB>([&](auto i) {
        static_for<4>([&](auto o) {
          acc8[p][i][o] = vaddq_u8(acc8[p][i][o], vcntq_u8(vandq_u8(wv[i][o], a[p])));
        });
      });
    });
  };
  const uint64_t* wd = wdup;
  int pending = 0;
  for (int t = 0; t < plan.taps; ++t) {
    const uint64_t* px[P];
    static_for<P>([&](auto p) { px[p] = win[p] + plan.tap_offset[t]; });
    if (words == 1) {  // [a0, a1] adjacent
      uint8x16_t a[P];
      static_for<P>([&](auto p) { a[p] = vreinterpretq_u8_u64(vld1q_u64(px[p])); });
      accumulate(wd, a);
      wd += WB * 8;
      if (++pending == kA2Flush) flush(), pending = 0;
      continue;
    }
    for (int k = 0; k < words; ++k, wd += WB * 8) {
      LOWBIT_MCA_BEGIN("bitserial_w2a2_neon");
      uint8x16_t a[P];
      static_for<P>([&](auto p) { a[p] = load_pair(px[p] + k, px[p] + words + k); });
      accumulate(wd, a);
      LOWBIT_MCA_END();
      if (++pending == kA2Flush) flush(), pending = 0;
    }
  }
  flush();
  static_for<P>([&](auto p) {
    static_for<4>([&](auto o) {
      const uint32x4_t v = vld1q_u32(sums[p][o]);
      dots[p][o] = vgetq_lane_u32(v, 0) + vgetq_lane_u32(v, 1) +
                   2 * (vgetq_lane_u32(v, 2) + vgetq_lane_u32(v, 3));
    });
  });
}

template <int WB, int AB>
void conv_bits(const BitSerialConvArgs& args, const detail::BitSerialPlan& plan) {
  constexpr int P = tile_pixels(WB, AB), T = detail::kBitSerialPixelTile, B = kBitSerialCoutBlock;
  const ConvGeometry& g = args.geometry;
  const BitPlanesLayout& l = args.activation_layout;
  const int s = g.stride;
  const size_t block_words = size_t(plan.taps) * plan.words * WB * B;
  const detail::BitSerialWork work = detail::make_bit_serial_work(args);
  const TileEpilogueNeon epilogue = make_tile_epilogue_neon(args.output);
  const int32x4_t step = vdupq_n_s32(plan.step), offset = vdupq_n_s32(plan.offset);
  for (size_t tile = work.tile_begin(); tile < work.tile_end(); ++tile) {
    const detail::BitSerialTile tl = work.tile(tile);
    const int n = tl.image, oy = tl.out_y, ox0 = tl.out_x, pixels = tl.pixels;
    const uint64_t* image = args.activations + size_t(n) * l.image_words;
    int32_t sums[T];
    detail::activation_sums_local(args, plan, image, oy, ox0, pixels, sums);
    for (int cb = tl.cb_begin; cb < tl.cb_end; ++cb) {
      const uint64_t* wblock = args.weights + cb * block_words;
      // W1A1 / W2A2: the block's weights regrouped once for the tile's pixels.
      constexpr bool kRegroup = (WB == 1 && AB == 1) || (WB == 2 && AB == 2);
      [[maybe_unused]] alignas(16) uint64_t wpaired[kRegroup ? kPairedWeightWords : 1];
      [[maybe_unused]] bool paired = false;
      if constexpr (WB == 1 && AB == 1) {
        const size_t steps = size_t(plan.taps) * plan.words;
        paired = (steps + 1) / 2 * 8 <= kPairedWeightWords;
        if (paired) pair_weights(wblock, steps, wpaired);
      } else if constexpr (WB == 2 && AB == 2) {
        const size_t steps = size_t(plan.taps) * plan.words;
        paired = steps * WB * 8 <= kPairedWeightWords;
        if (paired) duplicate_weights<WB>(wblock, steps, wpaired);
      }
      int32_t acc[B][T];
      for (int i0 = 0; i0 < pixels; i0 += P) {
        const int count = pixels - i0 < P ? pixels - i0 : P;
        const uint64_t* win[P];
        for (int p = 0; p < P; ++p)  // a tail repeats its last pixel (computed, not stored)
          win[p] = image + l.offset_words(oy * s, (ox0 + i0 + (p < count ? p : count - 1)) * s);
        uint32_t dots[P][4];
        if constexpr (WB == 1 && AB == 1) {
          if (paired)
            tile_dots_w1a1<true>(plan, wpaired, win, dots);
          else
            tile_dots_w1a1<false>(plan, wblock, win, dots);
        } else if constexpr (WB == 2 && AB == 2) {
          if (paired)
            tile_dots_a2(plan, wpaired, win, dots);
          else
            tile_dots<WB, AB>(plan, wblock, win, dots);
        } else
          tile_dots<WB, AB>(plan, wblock, win, dots);
        for (int p = 0; p < count; ++p) {
          const int32x4_t d = vreinterpretq_s32_u32(vld1q_u32(dots[p]));
          const int32x4_t v = vmlaq_s32(vmulq_s32(d, step), vdupq_n_s32(sums[i0 + p]), offset);
          acc[0][i0 + p] = vgetq_lane_s32(v, 0);
          acc[1][i0 + p] = vgetq_lane_s32(v, 1);
          acc[2][i0 + p] = vgetq_lane_s32(v, 2);
          acc[3][i0 + p] = vgetq_lane_s32(v, 3);
        }
      }
      store_tile_neon(epilogue, args.output, g, n, oy, ox0, pixels, cb * B, B, &acc[0][0], T);
    }
  }
}

using ConvBits = void (*)(const BitSerialConvArgs&, const detail::BitSerialPlan&);
template <int WB>
constexpr ConvBits kByActivationBits[4] = {conv_bits<WB, 1>, conv_bits<WB, 2>, conv_bits<WB, 3>,
                                           conv_bits<WB, 4>};
constexpr const ConvBits* kByBits[4] = {kByActivationBits<1>, kByActivationBits<2>,
                                        kByActivationBits<3>, kByActivationBits<4>};

}  // namespace

void conv_anybits_bitserial_64x4__neon(const BitSerialConvArgs& args) {
  detail::BitSerialPlan plan;
  detail::make_bit_serial_plan(args, &plan);
  kByBits[plan.wbits - 1][plan.abits - 1](args, plan);
}

}  // namespace lowbit::kernels
