// map_bytes__neon (AArch64, NEON baseline): 16 bytes per step through one
// tbl and three tbx lookups of 64-byte quarters.
//
// tbl (vqtbl4q_u8) maps an index byte x < 64 to quarter[x] and any other to
// 0; tbx (vqtbx4q_u8) leaves the destination byte unchanged for x >= 64.
// Quarter q holds table256[64 q .. 64 q + 63] and is indexed with
// code ^ (64 q), which lands in 0..63 exactly for the codes of that quarter.
//
// Tail: for count >= 16 the last 16 codes are mapped before the main loop
// and stored after it (correct in place: those codes are read before any
// store); below 16 bytes the scalar loop runs. File-local code only.
#include <arm_neon.h>

#include "lowbit/kernels/bytemap.h"
#include "mca_markers.h"

namespace lowbit::kernels {
namespace {

struct Quarters {
  uint8x16x4_t q[4];
};

inline uint8x16_t map16(const Quarters& t, uint8x16_t codes) {
  uint8x16_t r = vqtbl4q_u8(t.q[0], codes);
  r = vqtbx4q_u8(r, t.q[1], veorq_u8(codes, vdupq_n_u8(0x40)));
  r = vqtbx4q_u8(r, t.q[2], veorq_u8(codes, vdupq_n_u8(0x80)));
  r = vqtbx4q_u8(r, t.q[3], veorq_u8(codes, vdupq_n_u8(0xc0)));
  return r;
}

}  // namespace

void map_bytes__neon(const uint8_t* table256, const uint8_t* in, uint8_t* out, size_t count) {
  if (count < 16) {
    map_bytes__scalar(table256, in, out, count);
    return;
  }
  Quarters t;
  for (int q = 0; q < 4; ++q)
    for (int k = 0; k < 4; ++k) t.q[q].val[k] = vld1q_u8(table256 + 64 * q + 16 * k);
  const uint8x16_t last = map16(t, vld1q_u8(in + count - 16));
  size_t i = 0;
  for (; i + 32 <= count; i += 32) {
    // bench/arm-sim region (its KERNEL_TABLE entry): one step: 32 bytes.
    LOWBIT_MCA_BEGIN("map_bytes_neon");
    const uint8x16_t a = map16(t, vld1q_u8(in + i));
    const uint8x16_t b = map16(t, vld1q_u8(in + i + 16));
    vst1q_u8(out + i, a);
    vst1q_u8(out + i + 16, b);
    LOWBIT_MCA_END();
  }
  if (i + 16 <= count) vst1q_u8(out + i, map16(t, vld1q_u8(in + i)));
  vst1q_u8(out + count - 16, last);
}

}  // namespace lowbit::kernels
