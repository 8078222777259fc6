// Compact storage of quantized convolution weights (the form a compiled model
// keeps, in lowbit.QConv's input 1): integer weight values in OHWI order
// ([Cout][KH][KW][Cin/group]), each stored as the unsigned offset code
// q = value - weight_min in `bits` bits, packed LSB first into bytes (value i
// occupies bits [i * bits, (i + 1) * bits) of the byte stream). Binary
// weights {-1, +1} are 1-bit codes with weight_min -1 and step 2.
#pragma once

#include <cstdint>
#include <vector>

#include "ir/graph.h"

namespace lowbit::engine::ops {

struct WeightCodeFormat {
  int bits = 8;           // 1..8
  int32_t min_value = 0;  // value of code 0
  int32_t step = 1;       // value = min_value + step * code (2 for binary weights)
};

// Bytes needed for `count` values.
int64_t PackedWeightBytes(int64_t count, int bits);
ir::AlignedBytes PackWeightValues(const std::vector<int32_t>& values, const WeightCodeFormat& format);
std::vector<int8_t> UnpackWeightValues(const uint8_t* packed, int64_t count,
                                       const WeightCodeFormat& format);

}  // namespace lowbit::engine::ops
