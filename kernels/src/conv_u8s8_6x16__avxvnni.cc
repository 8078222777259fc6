// INT8 convolution on the 16-bit formats, AVX-VNNI (compiled with -mavx2
// -mfma -mavxvnni): the AVX2 kernel's tile with vpdpwssd, which fuses
// vpmaddwd + vpaddd (same exact int16 x int16 pair sums into int32), halving
// the arithmetic instructions. conv_u8s8dot_6x16__avxvnni (byte formats,
// vpdpbusd) does twice the multiply-adds per instruction again.
#define LOWBIT_INT8_KERNEL conv_u8s8_6x16__avxvnni
#define LOWBIT_INT8_MAC(acc, a, w) acc = _mm256_dpwssd_avx_epi32(acc, a, w)
#include "conv_u8s8_6x16_x86.inc"
