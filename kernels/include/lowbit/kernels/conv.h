// Convolution kernel families. One signature per family; one function per
// ISA variant, named op_types_tile__isa. Kernels never allocate, log or
// throw; preconditions are asserts. All variants of a family produce
// identical integers.
#pragma once

#include <cstdint>

#include "lowbit/kernels/epilogue.h"
#include "lowbit/kernels/formats.h"

namespace lowbit::kernels {

// Weight-pair lookup-table convolution, weights in [-2, 1], activations 1- or
// 2-bit (KERNELS.md design). Any kernel size, stride 1 or 2, any pad.
//   activations: PairPlanesLayout made with (Cin, H, W, pad, stride), batch
//                images back to back (image_bytes apart)
//   tables:      LutWeightsLayout for (Cout, Cin, KH*KW), see pack.h
// Tile: 64 consecutive output pixels (in padded-row order) x 4 output
// channels; byte accumulators widened exactly to 16 bits every 14 steps,
// 16-bit sums flushed to int32 every kLutFlushSteps steps.
inline constexpr int kLutWidenSteps = 14;     // 14 * 18 <= 255
inline constexpr int kLutFlushSteps = 14 * 256;  // 3584 * 18 <= 65535
struct LutConvArgs {
  ConvGeometry geometry;
  const uint8_t* activations = nullptr;
  PairPlanesLayout activation_layout;
  const uint8_t* tables = nullptr;
  LutWeightsLayout table_layout;
  OutputStage output;
};
using LutConvFn = void (*)(const LutConvArgs&);

void conv_w2a2_lut_64x4__scalar(const LutConvArgs& args);
void conv_w2a2_lut_64x4__avx2(const LutConvArgs& args);
void conv_w2a2_lut_64x4__neon(const LutConvArgs& args);

// Bit-serial convolution, any weight bits in 1..4 and activation bits in 1..4:
// sum over plane pairs (i, j) of 2^(i+j) * popcount(W_i & A_j), then
// value = step * sum(q * a) + offset * sum(a). Any kernel size, stride, pad.
//   activations: BitPlanesLayout (Cin, abits, H, W, pad), batch back to back
//   weights:     BitSerialWeightsLayout (Cout, Cin, KH*KW, wbits, domain)
// Tile: up to 64 output pixels of one row x 4 output channels.
struct BitSerialConvArgs {
  ConvGeometry geometry;
  const uint64_t* activations = nullptr;
  BitPlanesLayout activation_layout;
  const uint64_t* weights = nullptr;
  BitSerialWeightsLayout weight_layout;
  OutputStage output;
};
using BitSerialConvFn = void (*)(const BitSerialConvArgs&);

void conv_anybits_bitserial_64x4__scalar(const BitSerialConvArgs& args);
void conv_anybits_bitserial_64x4__avx2(const BitSerialConvArgs& args);
void conv_anybits_bitserial_64x4__neon(const BitSerialConvArgs& args);

}  // namespace lowbit::kernels
