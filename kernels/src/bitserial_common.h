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

// sum(a) over the receptive field for `pixels` outputs of row out_y starting at
// column out_x: the correction term for the weight offset.
void activation_sums(const BitSerialConvArgs& args, const BitSerialPlan& plan,
                     const uint64_t* image, int out_y, int out_x, int pixels, int32_t* sums);

}  // namespace lowbit::kernels::detail
