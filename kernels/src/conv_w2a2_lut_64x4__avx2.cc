// Weight-pair LUT convolution, AVX2 (compiled with -mavx2 -mfma).
//
// Tile: 64 output pixels (two 32-byte index vectors x0, x1) x 4 output
// channels: 8 byte accumulators acc8[2 * o + half]. Per step (tap, channel
// pair): 2 index loads, 4 table broadcasts (vbroadcasti128), 8 vpshufb,
// 8 vpaddb. Table entries are 0..18, so after kLutWidenSteps = 14 steps a byte
// holds at most 252: it is widened exactly into 16-bit sums by adding it as
// 16-bit lanes (even + 256 * odd, mod 2^16) and adding its odd bytes
// separately (one shift); the even sums are recovered by subtraction when the
// 16-bit sums are flushed to int32, every kLutFlushSteps steps
// (3584 * 18 <= 65535). The epilogue removes kLutBias per step.
//
// Everything here is file-local (tile_codes_avx2.h has internal linkage too;
// from int8_common.h it uses only the small inline code_bounds, as the INT8
// kernels' headers do), so no AVX2 code is shared with baseline callers.
#include <immintrin.h>

#include <cassert>

#include "lowbit/kernels/conv.h"
#include "lut_common.h"
#include "tile_codes_avx2.h"

namespace lowbit::kernels {
namespace {

constexpr int kTile = detail::kLutPixelTile;

// 16-bit sums of one tile, added into acc32[o][pixel]: sum16[2 * k + 1] holds
// the odd pixels of acc8[k]; sum16[2 * k] holds (even + 256 * odd) mod 2^16,
// from which the even sums (< 2^16) are recovered exactly by subtraction.
inline void flush_sums(const __m256i* sum16, int32_t (*acc32)[kTile]) {
  for (int k = 0; k < 8; ++k) {
    const int o = k >> 1, half = k & 1;
    const __m256i odd = sum16[2 * k + 1];
    const __m256i even = _mm256_sub_epi16(sum16[2 * k], _mm256_slli_epi16(odd, 8));
    const __m256i lo = _mm256_unpacklo_epi16(even, odd);  // pixels 0..7 | 16..23
    const __m256i hi = _mm256_unpackhi_epi16(even, odd);  // pixels 8..15 | 24..31
    const __m256i p0 = _mm256_permute2x128_si256(lo, hi, 0x20);  // pixels 0..15
    const __m256i p1 = _mm256_permute2x128_si256(lo, hi, 0x31);  // pixels 16..31
    const __m128i parts[4] = {_mm256_castsi256_si128(p0), _mm256_extracti128_si256(p0, 1),
                              _mm256_castsi256_si128(p1), _mm256_extracti128_si256(p1, 1)};
    int32_t* dst = acc32[o] + 32 * half;
    for (int q = 0; q < 4; ++q) {
      __m256i* d = reinterpret_cast<__m256i*>(dst + 8 * q);
      _mm256_store_si256(d, _mm256_add_epi32(_mm256_load_si256(d), _mm256_cvtepu16_epi32(parts[q])));
    }
  }
}

constexpr size_t kStepTable = 2048;  // 8 KiB of step offsets on the stack
static_assert(kStepTable >= size_t(detail::kLutMaxTaps) * kLutWidenSteps);

// `steps` (1..14) steps of the inner block: per step 2 index loads, 4 table
// broadcasts, 8 vpshufb, 8 vpaddb. Written as inline assembly because g++ 12
// spills an accumulator and adds register moves to the intrinsic version.
inline void lut_steps(const uint8_t* base, const uint32_t* offsets, const uint8_t* table,
                      size_t steps, __m256i& a0, __m256i& a1, __m256i& a2, __m256i& a3,
                      __m256i& a4, __m256i& a5, __m256i& a6, __m256i& a7) {
  __m256i x0, x1, t, p0, p1;
  uint64_t offset;
  __asm__ volatile(
      ".p2align 5\n"
      "1:\n\t"
      "movl (%[offsets]), %k[offset]\n\t"
      "vmovdqu (%[base],%[offset]), %[x0]\n\t"
      "vmovdqu 32(%[base],%[offset]), %[x1]\n\t"
      "vbroadcasti128 (%[table]), %[t]\n\t"
      "vpshufb %[x0], %[t], %[p0]\n\t"
      "vpshufb %[x1], %[t], %[p1]\n\t"
      "vpaddb %[p0], %[a0], %[a0]\n\t"
      "vpaddb %[p1], %[a1], %[a1]\n\t"
      "vbroadcasti128 16(%[table]), %[t]\n\t"
      "vpshufb %[x0], %[t], %[p0]\n\t"
      "vpshufb %[x1], %[t], %[p1]\n\t"
      "vpaddb %[p0], %[a2], %[a2]\n\t"
      "vpaddb %[p1], %[a3], %[a3]\n\t"
      "vbroadcasti128 32(%[table]), %[t]\n\t"
      "vpshufb %[x0], %[t], %[p0]\n\t"
      "vpshufb %[x1], %[t], %[p1]\n\t"
      "vpaddb %[p0], %[a4], %[a4]\n\t"
      "vpaddb %[p1], %[a5], %[a5]\n\t"
      "vbroadcasti128 48(%[table]), %[t]\n\t"
      "vpshufb %[x0], %[t], %[p0]\n\t"
      "vpshufb %[x1], %[t], %[p1]\n\t"
      "vpaddb %[p0], %[a6], %[a6]\n\t"
      "vpaddb %[p1], %[a7], %[a7]\n\t"
      "add $4, %[offsets]\n\t"
      "add $64, %[table]\n\t"
      "dec %[steps]\n\t"
      "jnz 1b\n"
      : [offsets] "+r"(offsets), [table] "+r"(table), [steps] "+r"(steps),
        [offset] "=&r"(offset), [x0] "=&x"(x0), [x1] "=&x"(x1), [t] "=&x"(t), [p0] "=&x"(p0),
        [p1] "=&x"(p1), [a0] "+x"(a0), [a1] "+x"(a1), [a2] "+x"(a2), [a3] "+x"(a3),
        [a4] "+x"(a4), [a5] "+x"(a5), [a6] "+x"(a6), [a7] "+x"(a7)
      : [base] "r"(base)
      : "cc", "memory");
}

// Exactly kLutWidenSteps steps, fully unrolled (no loop counter, immediate
// displacements for the step offsets and tables).
inline void lut_steps14(const uint8_t* base, const uint32_t* offsets, const uint8_t* table,
                        __m256i& a0, __m256i& a1, __m256i& a2, __m256i& a3, __m256i& a4,
                        __m256i& a5, __m256i& a6, __m256i& a7) {
  static_assert(kLutWidenSteps == 14, "the .irp list below has 14 entries");
  __m256i x0, x1, t, p0, p1;
  uint64_t offset;
  __asm__ volatile(
      ".irp k,0,1,2,3,4,5,6,7,8,9,10,11,12,13\n\t"
      "movl 4*\\k(%[offsets]), %k[offset]\n\t"
      "vmovdqu (%[base],%[offset]), %[x0]\n\t"
      "vmovdqu 32(%[base],%[offset]), %[x1]\n\t"
      "vbroadcasti128 64*\\k(%[table]), %[t]\n\t"
      "vpshufb %[x0], %[t], %[p0]\n\t"
      "vpshufb %[x1], %[t], %[p1]\n\t"
      "vpaddb %[p0], %[a0], %[a0]\n\t"
      "vpaddb %[p1], %[a1], %[a1]\n\t"
      "vbroadcasti128 64*\\k+16(%[table]), %[t]\n\t"
      "vpshufb %[x0], %[t], %[p0]\n\t"
      "vpshufb %[x1], %[t], %[p1]\n\t"
      "vpaddb %[p0], %[a2], %[a2]\n\t"
      "vpaddb %[p1], %[a3], %[a3]\n\t"
      "vbroadcasti128 64*\\k+32(%[table]), %[t]\n\t"
      "vpshufb %[x0], %[t], %[p0]\n\t"
      "vpshufb %[x1], %[t], %[p1]\n\t"
      "vpaddb %[p0], %[a4], %[a4]\n\t"
      "vpaddb %[p1], %[a5], %[a5]\n\t"
      "vbroadcasti128 64*\\k+48(%[table]), %[t]\n\t"
      "vpshufb %[x0], %[t], %[p0]\n\t"
      "vpshufb %[x1], %[t], %[p1]\n\t"
      "vpaddb %[p0], %[a6], %[a6]\n\t"
      "vpaddb %[p1], %[a7], %[a7]\n\t"
      ".endr\n"
      : [offset] "=&r"(offset), [x0] "=&x"(x0), [x1] "=&x"(x1), [t] "=&x"(t), [p0] "=&x"(p0),
        [p1] "=&x"(p1), [a0] "+x"(a0), [a1] "+x"(a1), [a2] "+x"(a2), [a3] "+x"(a3),
        [a4] "+x"(a4), [a5] "+x"(a5), [a6] "+x"(a6), [a7] "+x"(a7)
      : [base] "r"(base), [offsets] "r"(offsets), [table] "r"(table)
      : "memory");
}

// Output stage of one row run, 8 pixels x 4 channels at a time: kCodes and
// kFloat by tile_codes_avx2.h, int32 NHWC stores, and codes into pair planes
// with the same vector arithmetic (tile_codes256, identical to
// output_stage.cc). SiLU, other destinations, partial channel blocks and the
// pixel tails of the int32 / pair-plane paths go to the scalar store_tile.
void store_run(const TileEpilogue256& k, const OutputStage& out, const ConvGeometry& g,
               int image, int out_y, int out_x, int pixels, int cout_begin, int couts,
               const int32_t* acc, int stride) {
  if (out.destination == Destination::kCodes || out.destination == Destination::kFloat) {
    store_tile256(k, out, g, image, out_y, out_x, pixels, cout_begin, couts, acc, stride);
    return;
  }
  const int cout = g.out_channels;
  const bool fast = couts == 4 && cout_begin + 4 <= cout &&
                    (out.destination == Destination::kInt32 ||
                     (out.destination == Destination::kPairPlanes && k.vector));
  if (!fast) {
    store_tile(out, g, image, out_y, out_x, pixels, cout_begin, couts, acc, stride);
    return;
  }
  const int vector_pixels = pixels & ~7;
  const int ow = g.out_width(), oh = g.out_height();
  for (int i = 0; i < vector_pixels; i += 8) {
    const __m256i c0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + i));
    const __m256i c1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + stride + i));
    const __m256i c2 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + 2 * stride + i));
    const __m256i c3 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + 3 * stride + i));
    if (out.destination == Destination::kInt32) {
      // 4 channels x 8 pixels -> 8 pixels x 4 channels (16 bytes per pixel).
      const __m256i t01lo = _mm256_unpacklo_epi32(c0, c1), t01hi = _mm256_unpackhi_epi32(c0, c1);
      const __m256i t23lo = _mm256_unpacklo_epi32(c2, c3), t23hi = _mm256_unpackhi_epi32(c2, c3);
      const __m256i px04 = _mm256_unpacklo_epi64(t01lo, t23lo);  // pixels 0 | 4
      const __m256i px15 = _mm256_unpackhi_epi64(t01lo, t23lo);  // pixels 1 | 5
      const __m256i px26 = _mm256_unpacklo_epi64(t01hi, t23hi);  // pixels 2 | 6
      const __m256i px37 = _mm256_unpackhi_epi64(t01hi, t23hi);  // pixels 3 | 7
      int32_t* dst = static_cast<int32_t*>(out.data) +
                     ((size_t(image) * oh + out_y) * ow + out_x + i) * cout + cout_begin;
      const __m256i rows[4] = {px04, px15, px26, px37};
      for (int r = 0; r < 4; ++r) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + size_t(r) * cout),
                         _mm256_castsi256_si128(rows[r]));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + size_t(r + 4) * cout),
                         _mm256_extracti128_si256(rows[r], 1));
      }
    } else {
      const __m256i c[4] = {c0, c1, c2, c3};
      __m256i q[4];
      for (int o = 0; o < 4; ++o)
        q[o] = tile_codes256(k, c[o], tile_channel256(k, cout_begin + o));
      const __m256i pair0 = _mm256_or_si256(q[0], _mm256_slli_epi32(q[1], 2));
      const __m256i pair1 = _mm256_or_si256(q[2], _mm256_slli_epi32(q[3], 2));
      // int32 lanes (<= 15) -> bytes: [pair0 px0..7, pair1 px0..7].
      const __m256i words = _mm256_packus_epi32(pair0, pair1);  // p0 0-3, p1 0-3 | p0 4-7, p1 4-7
      const __m256i bytes = _mm256_packus_epi16(words, words);
      alignas(16) uint8_t b[16];
      _mm_store_si128(reinterpret_cast<__m128i*>(b),
                      _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(
                          bytes, _mm256_setr_epi32(0, 4, 1, 5, 0, 0, 0, 0))));
      // b = pair0 px0..7, pair1 px0..7
      const PairPlanesLayout& l = out.pair_planes;
      uint8_t* base = static_cast<uint8_t*>(out.data) + size_t(image) * l.image_bytes;
      for (int p = 0; p < 2; ++p) {
        const int pair = cout_begin / 2 + p;
        if (l.phase_split == 1) {
          uint8_t* dst = base + l.offset(pair, out_y + l.pad, out_x + i + l.pad);
          for (int j = 0; j < 8; ++j) dst[j] = b[8 * p + j];
        } else {
          for (int j = 0; j < 8; ++j)
            base[l.offset(pair, out_y + l.pad, out_x + i + j + l.pad)] = b[8 * p + j];
        }
      }
    }
  }
  if (vector_pixels < pixels)
    store_tile(out, g, image, out_y, out_x + vector_pixels, pixels - vector_pixels, cout_begin,
               couts, acc + vector_pixels, stride);
}

}  // namespace

void conv_w2a2_lut_64x4__avx2(const LutConvArgs& args) {
  detail::LutPlan plan;
  detail::make_lut_plan(args, &plan);
  const int cout_blocks = args.table_layout.cout_blocks;
  const TileEpilogue256 epilogue = make_tile_epilogue256(args.output);
  // Byte offset of step s (channel pair s / taps, tap s % taps) from the tile
  // base, for the first `window` steps; step s reads
  //   tile_base + (s / window) * window_advance + step_offset[s % window].
  // window is a multiple of taps and of kLutWidenSteps, so a widening group
  // never straddles two windows.
  const size_t group_taps = size_t(plan.taps) * kLutWidenSteps;
  const size_t window = group_taps * (kStepTable / group_taps);
  const size_t window_advance = (window / plan.taps) * plan.pair_stride;
  assert(window_advance < (size_t(1) << 32));
  uint32_t step_offset[kStepTable];
  for (size_t s = 0; s < window && s < plan.steps; ++s)
    step_offset[s] = uint32_t((s / plan.taps) * plan.pair_stride + plan.tap_offset[s % plan.taps]);
  const size_t tiles = (plan.flat_pixels + kTile - 1) / kTile;
  const size_t items = size_t(args.geometry.batch) * tiles * cout_blocks;
  const size_t end = args.work.end < items ? args.work.end : items;
  for (size_t item = args.work.begin; item < end; ++item) {
    {
      const int cb = int(item % cout_blocks);
      const size_t p0 = item / cout_blocks % tiles * kTile;
      const int n = int(item / cout_blocks / tiles);
      const uint8_t* image = args.activations + size_t(n) * args.activation_layout.image_bytes;
      const uint8_t* tile_base = image + p0;
      {
        alignas(32) int32_t acc32[kLutCoutBlock][kTile] = {};
        const uint8_t* table = args.tables + size_t(cb) * plan.steps * 64;
        for (size_t chunk = 0; chunk < plan.steps; chunk += kLutFlushSteps) {
          const size_t chunk_end =
              plan.steps - chunk < size_t(kLutFlushSteps) ? plan.steps : chunk + kLutFlushSteps;
          __m256i sum16[16];
          for (int k = 0; k < 16; ++k) sum16[k] = _mm256_setzero_si256();
          for (size_t group = chunk; group < chunk_end; group += kLutWidenSteps) {
            const size_t group_end =
                chunk_end - group < size_t(kLutWidenSteps) ? chunk_end : group + kLutWidenSteps;
            __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0,
                    a6 = a0, a7 = a0;
            const uint32_t* offsets = step_offset + (group % window);
            const uint8_t* base = tile_base + (group / window) * window_advance;
            if (group_end - group == size_t(kLutWidenSteps))
              lut_steps14(base, offsets, table, a0, a1, a2, a3, a4, a5, a6, a7);
            else
              lut_steps(base, offsets, table, group_end - group, a0, a1, a2, a3, a4, a5, a6, a7);
            table += 64 * (group_end - group);
            const __m256i acc8[8] = {a0, a1, a2, a3, a4, a5, a6, a7};
            for (int k = 0; k < 8; ++k) {
              sum16[2 * k] = _mm256_add_epi16(sum16[2 * k], acc8[k]);  // even + 256 * odd
              sum16[2 * k + 1] = _mm256_add_epi16(sum16[2 * k + 1], _mm256_srli_epi16(acc8[k], 8));
            }
          }
          flush_sums(sum16, acc32);
        }
        const int32_t bias = int32_t(kLutBias * plan.steps);
        const __m256i vbias = _mm256_set1_epi32(bias);
        for (int o = 0; o < kLutCoutBlock; ++o)
          for (int i = 0; i < kTile; i += 8) {
            __m256i* d = reinterpret_cast<__m256i*>(&acc32[o][i]);
            _mm256_store_si256(d, _mm256_sub_epi32(_mm256_load_si256(d), vbias));
          }
        detail::for_each_flat_run(args, p0, [&](int y, int x, int run, int i) {
          store_run(epilogue, args.output, args.geometry, n, y, x, run, cb * kLutCoutBlock,
                    kLutCoutBlock, &acc32[0][i], kTile);
        });
      }
    }
  }
}

}  // namespace lowbit::kernels
