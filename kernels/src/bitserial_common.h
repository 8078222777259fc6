// Shape bookkeeping shared by the bit-serial kernels (baseline translation unit).
#pragma once

#include <bit>
#include <cstdint>

#include "lowbit/kernels/conv.h"

namespace lowbit::kernels::detail {

inline constexpr int kBitSerialPixelTile = 64;
inline constexpr int kBitSerialMaxTaps = 64;

struct BitSerialPlan {
  int taps = 0;
  int words = 0;
  int wbits = 0;
  int abits = 0;
  int step = 1;    // weight value = step * q + offset
  int offset = 0;
  // Word offset of tap t relative to the top-left input pixel of the window.
  int64_t tap_offset[kBitSerialMaxTaps] = {};
};

void make_bit_serial_plan(const BitSerialConvArgs& args, BitSerialPlan* plan);

// The pixel tiles a work range touches, each with its range of channel
// blocks: item = ((image * out_height + row) * row_tiles + tile) * cout_blocks
// + block.
struct BitSerialTile {
  int image, out_y, out_x, pixels;
  int cb_begin, cb_end;  // channel blocks of this tile inside the range
};
struct BitSerialWork {
  size_t begin = 0, end = 0;  // items, clamped
  int cout_blocks = 1, row_tiles = 1, out_height = 1, out_width = 1;
  size_t tile_begin() const { return begin / size_t(cout_blocks); }
  size_t tile_end() const { return end <= begin ? tile_begin() : (end - 1) / cout_blocks + 1; }
  BitSerialTile tile(size_t t) const {
    BitSerialTile r;
    const size_t first = t * cout_blocks;
    r.cb_begin = begin > first ? int(begin - first) : 0;
    r.cb_end = end - first < size_t(cout_blocks) ? int(end - first) : cout_blocks;
    const int x_tile = int(t % row_tiles);
    r.out_y = int(t / row_tiles % out_height);
    r.image = int(t / row_tiles / out_height);
    r.out_x = x_tile * kBitSerialPixelTile;
    r.pixels = out_width - r.out_x < kBitSerialPixelTile ? out_width - r.out_x : kBitSerialPixelTile;
    return r;
  }
};
// Also asserts the kBitPlanes range rule (WorkRange, conv.h).
BitSerialWork make_bit_serial_work(const BitSerialConvArgs& args);

// sum(a) over the receptive field for `pixels` outputs of row out_y starting at
// column out_x: the correction term for the weight offset (all 0 when the
// weight coding has no offset: then nothing reads them).
void activation_sums(const BitSerialConvArgs& args, const BitSerialPlan& plan,
                     const uint64_t* image, int out_y, int out_x, int pixels, int32_t* sums);

namespace {
// activation_sums for ISA translation units: internal linkage, so each
// compiles it with its own popcount (x86-64 baseline has no popcnt
// instruction and calls libgcc's __popcountdi2, which cost as much as the
// convolution itself on narrow layers). Each input pixel of the tile's
// receptive field is counted once: col[c] = sum over kernel rows of
// sum_j 2^j * popcount(plane j of input column c), then sums[i] = sum over
// kx of col[i * stride + kx] (exact int32: at most taps * 64 * words * 15).
inline constexpr int kActivationSumColumns = 4 * kBitSerialPixelTile + 64;
inline void activation_sums_local(const BitSerialConvArgs& a, const BitSerialPlan& plan,
                                  const uint64_t* image, int out_y, int out_x, int pixels,
                                  int32_t* sums) {
  if (plan.offset == 0) {  // value = step * sum(q * a): the sums are not used
    for (int i = 0; i < pixels; ++i) sums[i] = 0;
    return;
  }
  const ConvGeometry& g = a.geometry;
  const BitPlanesLayout& l = a.activation_layout;
  const int s = g.stride, words = plan.words, abits = plan.abits;
  const size_t pixel_words = l.pixel_words;
  const auto pixel_count = [&](const uint64_t* px) {
    int32_t total = 0;
    for (int j = 0; j < abits; ++j) {
      int32_t count = 0;
      for (int k = 0; k < words; ++k) count += std::popcount(px[j * words + k]);
      total += count << j;
    }
    return total;
  };
  const int cols = (pixels - 1) * s + g.kernel_w;
  if (cols > kActivationSumColumns) {  // very large strides: per window
    for (int i = 0; i < pixels; ++i) {
      const uint64_t* window = image + l.offset_words(out_y * s, (out_x + i) * s);
      int32_t total = 0;
      for (int t = 0; t < plan.taps; ++t) total += pixel_count(window + plan.tap_offset[t]);
      sums[i] = total;
    }
    return;
  }
  int32_t col[kActivationSumColumns];
  for (int c = 0; c < cols; ++c) col[c] = 0;
  for (int ky = 0; ky < g.kernel_h; ++ky) {
    const uint64_t* row = image + l.offset_words(out_y * s + ky, out_x * s);
    if (pixel_words == 1) {  // one plane of one word per pixel: contiguous words
      for (int c = 0; c < cols; ++c) col[c] += std::popcount(row[c]);
    } else if (words == 1) {
      for (int c = 0; c < cols; ++c) {
        const uint64_t* px = row + size_t(c) * pixel_words;
        int32_t total = 0;
        for (int j = 0; j < abits; ++j) total += std::popcount(px[j]) << j;
        col[c] += total;
      }
    } else {
      for (int c = 0; c < cols; ++c) col[c] += pixel_count(row + size_t(c) * pixel_words);
    }
  }
  for (int i = 0; i < pixels; ++i) {
    int32_t total = 0;
    for (int kx = 0; kx < g.kernel_w; ++kx) total += col[i * s + kx];
    sums[i] = total;
  }
}
}  // namespace

}  // namespace lowbit::kernels::detail
