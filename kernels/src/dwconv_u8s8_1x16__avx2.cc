// Depthwise INT8 convolution, AVX2 (compiled with -mavx2 -mfma).
//
// Tile: one output pixel x 16 channels, walking along an output row with the
// weights of the channel block held in registers (up to 5 tap pairs, i.e.
// 3x3). Per tap pair (2q, 2q+1): two 16-channel int16 activation loads,
// vpunpcklwd / vpunpckhwd interleave them per channel, two vpmaddwd against
// the pre-interleaved weights (DwWeightsLayout) give exact int32
// w[2q]*a[2q] + w[2q+1]*a[2q+1] for channels {0-3, 8-11} and {4-7, 12-15}.
// File-local code only.
#define LOWBIT_DW_KERNEL dwconv_u8s8_1x16__avx2
#define LOWBIT_DW_MAC(acc, a, w) acc = _mm256_add_epi32(acc, _mm256_madd_epi16(a, w))
#include "dwconv_u8s8_1x16_x86.inc"
