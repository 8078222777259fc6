#include "ops/qconv_weights.h"

namespace lowbit::engine::ops {

int64_t PackedWeightBytes(int64_t count, int bits) { return (count * bits + 7) / 8; }

ir::AlignedBytes PackWeightValues(const std::vector<int32_t>& values,
                                  const WeightCodeFormat& format) {
  const int64_t count = static_cast<int64_t>(values.size());
  ir::AlignedBytes bytes(static_cast<size_t>(PackedWeightBytes(count, format.bits)));
  uint8_t* out = bytes.data();
  for (int64_t i = 0; i < count; ++i) {
    const uint32_t code = static_cast<uint32_t>((values[i] - format.min_value) / format.step);
    const int64_t bit = i * format.bits;
    for (int b = 0; b < format.bits; ++b)
      if ((code >> b) & 1u) out[(bit + b) / 8] |= static_cast<uint8_t>(1u << ((bit + b) % 8));
  }
  return bytes;
}

std::vector<int8_t> UnpackWeightValues(const uint8_t* packed, int64_t count,
                                       const WeightCodeFormat& format) {
  std::vector<int8_t> values(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    const int64_t bit = i * format.bits;
    uint32_t code = 0;
    for (int b = 0; b < format.bits; ++b)
      code |= static_cast<uint32_t>((packed[(bit + b) / 8] >> ((bit + b) % 8)) & 1u) << b;
    values[i] = static_cast<int8_t>(format.min_value + format.step * static_cast<int32_t>(code));
  }
  return values;
}

}  // namespace lowbit::engine::ops
