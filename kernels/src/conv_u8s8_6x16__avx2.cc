// INT8 convolution, AVX2 (compiled with -mavx2 -mfma).
//
// Register tile: 6 output pixels x 16 output channels = 12 int32
// accumulators. Per k-pair step (two input channels of one tap): 2 weight
// loads (8 channels x 2 int16 each), 6 broadcasts of the pixel's two int16
// activations, 12 vpmaddwd + 12 vpaddd = 192 multiply-adds. vpmaddwd on
// zero-extended u8 and sign-extended s8 is exact (|pair sum| <= 65280 fits
// int32), unlike vpmaddubsw whose int16 pair sums saturate. The k loop runs
// over a whole kernel row (kernel_w adjacent pixels x channel_stride are
// contiguous in padded NHWC), so there is no im2col.
// File-local code only (no shared inline helpers compiled with AVX2 flags).
#define LOWBIT_INT8_KERNEL conv_u8s8_6x16__avx2
#define LOWBIT_INT8_MAC(acc, a, w) acc = _mm256_add_epi32(acc, _mm256_madd_epi16(a, w))
#include "conv_u8s8_6x16_x86.inc"
