// map_bytes__scalar: the portable byte-table loop (every architecture), also
// the reference the vector variants are tested against. Each byte is read
// before its output is written, so in == out is safe. (Packing eight lookups
// into one 8-byte store measured no faster on a Sapphire Rapids Xeon: both
// ~1.1 bytes per cycle, bound by one table load and one store per byte.)
#include "lowbit/kernels/bytemap.h"

namespace lowbit::kernels {

void map_bytes__scalar(const uint8_t* table256, const uint8_t* in, uint8_t* out, size_t count) {
  for (size_t i = 0; i < count; ++i) out[i] = table256[in[i]];
}

}  // namespace lowbit::kernels
