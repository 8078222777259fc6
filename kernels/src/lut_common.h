// Shape bookkeeping shared by the weight-pair LUT kernels (compiled once, in
// a baseline translation unit; ISA files call it per tile, never per step).
#pragma once

#include <cstddef>
#include <cstdint>

#include "lowbit/kernels/conv.h"

namespace lowbit::kernels::detail {

inline constexpr int kLutMaxTaps = 64;
inline constexpr int kLutPixelTile = 64;

// Output pixels are enumerated in "padded-row order": flat index f = y * row_pitch + x
// over [0, out_height * row_pitch); columns x >= out_width are computed and dropped.
// Step s = pair * taps + tap reads bytes at
//   image + pair * pair_stride + tap_offset[tap] + f.
struct LutPlan {
  int taps = 0;
  size_t steps = 0;
  size_t pair_stride = 0;
  size_t flat_pixels = 0;
  // One entry more than taps: the NEON kernel reads tap_offset[taps] (0) as
  // the look-ahead of a tap run's last step.
  uint32_t tap_offset[kLutMaxTaps + 1] = {};
};

void make_lut_plan(const LutConvArgs& args, LutPlan* plan);

// Signature of store_tile (epilogue.h); ISA files may pass a faster variant.
using TileStoreFn = void (*)(const OutputStage& out, const ConvGeometry& geometry, int image,
                             int out_y, int out_x, int pixels, int cout_begin, int couts,
                             const int32_t* acc, int acc_channel_stride);

// Calls run(out_y, out_x, pixels, i) for the valid output pixels of the 64
// flat pixels flat_begin..+63, one call per output row they touch: tile
// pixel i is output (out_y, out_x), pixels consecutive columns. Inline
// template: ISA files instantiate it with their own (file-local) callables.
template <class Run>
inline void for_each_flat_run(const LutConvArgs& a, size_t flat_begin, Run&& run) {
  const int pitch = a.activation_layout.row_pitch;
  const int oh = a.geometry.out_height(), ow = a.geometry.out_width();
  int i = 0;
  while (i < kLutPixelTile) {
    const size_t f = flat_begin + i;
    const int y = int(f / pitch), x = int(f % pitch);
    if (y >= oh) break;
    if (x >= ow) {  // skip the dropped columns up to the next row
      i += pitch - x;
      continue;
    }
    const int pixels = ow - x < kLutPixelTile - i ? ow - x : kLutPixelTile - i;
    run(y, x, pixels, i);
    i += pixels;
  }
}

// acc is [4][64] exact sums for output channels cout_begin..+3 and flat pixels
// flat_begin..+63; forwards the valid pixels to `store` row by row.
void store_flat_tile(const LutConvArgs& args, int image, size_t flat_begin, int cout_begin,
                     const int32_t* acc, TileStoreFn store = store_tile);

}  // namespace lowbit::kernels::detail
