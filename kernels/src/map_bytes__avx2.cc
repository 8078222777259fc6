// map_bytes__avx2 (compiled with -mavx2): 32 bytes per step through 16
// vpshufb lookups.
//
// vpshufb maps an index byte x to sub[x & 15] when bit 7 of x is clear and
// to 0 when it is set. For a code c with high nibble h < 8 the indices
// x_j = c - 16 j (signed saturating, j = 0..7) have bit 7 clear exactly for
// j <= h and keep the low nibble there; a code >= 128 is negative as s8 and
// stays negative, so every lookup gives 0. With differential sub-tables
// D_0 = T_0, D_j = T_j ^ T_(j-1) (T_j = table256[16 j .. 16 j + 15]) the XOR of
// the eight lookups telescopes to T_h[c & 15]. The upper half (h >= 8) runs
// the same on c ^ 0x80 with D_8 = T_8, D_(8+j) = T_(8+j) ^ T_(7+j); every
// lookup of the half a code is not in gives 0, so the result is the XOR of
// both halves. Per 32 bytes: 16 vpshufb, 14 vpsubsb, 16 vpxor (~1.6 bytes
// per cycle measured on a Sapphire Rapids Xeon; three vector ports bound
// it). One vector per loop step: with two interleaved, gcc 12 spilled the
// lookups to the stack.
//
// Tail: for count >= 32 the last 32 codes are mapped before the main loop
// and stored after it (correct in place: those codes are read before any
// store); below 32 bytes the scalar loop runs. File-local code only.
#include <immintrin.h>

#include "lowbit/kernels/bytemap.h"

namespace lowbit::kernels {
namespace {

struct SubTables {
  __m256i d[16];  // D_0..D_7 (codes < 128), then D_8..D_15 (codes >= 128), both lanes
};

SubTables make_sub_tables(const uint8_t* table256) {
  SubTables s;
  for (int j = 0; j < 16; ++j) {
    __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(table256 + 16 * j));
    if (j % 8 != 0)
      t = _mm_xor_si128(t,
                        _mm_loadu_si128(reinterpret_cast<const __m128i*>(table256 + 16 * (j - 1))));
    s.d[j] = _mm256_broadcastsi128_si256(t);
  }
  return s;
}

inline __m256i map32(const SubTables& s, __m256i codes) {
  const __m256i step = _mm256_set1_epi8(16);
  __m256i lo = codes;
  __m256i hi = _mm256_xor_si256(codes, _mm256_set1_epi8(char(0x80)));
  __m256i r_lo = _mm256_shuffle_epi8(s.d[0], lo);
  __m256i r_hi = _mm256_shuffle_epi8(s.d[8], hi);
#pragma GCC unroll 8
  for (int j = 1; j < 8; ++j) {
    lo = _mm256_subs_epi8(lo, step);
    hi = _mm256_subs_epi8(hi, step);
    r_lo = _mm256_xor_si256(r_lo, _mm256_shuffle_epi8(s.d[j], lo));
    r_hi = _mm256_xor_si256(r_hi, _mm256_shuffle_epi8(s.d[8 + j], hi));
  }
  return _mm256_xor_si256(r_lo, r_hi);
}

inline __m256i load32(const uint8_t* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}
inline void store32(uint8_t* p, __m256i v) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v);
}

}  // namespace

void map_bytes__avx2(const uint8_t* table256, const uint8_t* in, uint8_t* out, size_t count) {
  if (count < 32) {
    map_bytes__scalar(table256, in, out, count);
    return;
  }
  const SubTables s = make_sub_tables(table256);
  const __m256i last = map32(s, load32(in + count - 32));
  for (size_t i = 0; i + 32 <= count; i += 32) store32(out + i, map32(s, load32(in + i)));
  store32(out + count - 32, last);
}

}  // namespace lowbit::kernels
