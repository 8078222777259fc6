// Shape bookkeeping shared by the bit-serial kernels (baseline translation unit).
#pragma once

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
// column out_x: the correction term for the weight offset.
void activation_sums(const BitSerialConvArgs& args, const BitSerialPlan& plan,
                     const uint64_t* image, int out_y, int out_x, int pixels, int32_t* sums);

}  // namespace lowbit::kernels::detail
