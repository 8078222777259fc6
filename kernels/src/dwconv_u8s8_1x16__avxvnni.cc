// Depthwise INT8 convolution, AVX-VNNI (compiled with -mavx2 -mfma
// -mavxvnni): the AVX2 kernel with vpdpwssd fusing vpmaddwd + vpaddd.
#define LOWBIT_DW_KERNEL dwconv_u8s8_1x16__avxvnni
#define LOWBIT_DW_MAC(acc, a, w) acc = _mm256_dpwssd_avx_epi32(acc, a, w)
#include "dwconv_u8s8_1x16_x86.inc"
