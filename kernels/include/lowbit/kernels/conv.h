// Convolution kernel families. One signature per family; one function per
// ISA variant, named op_types_tile__isa. Kernels never allocate, log or
// throw; preconditions are asserts. All variants of a family produce
// identical integers.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lowbit/kernels/epilogue.h"
#include "lowbit/kernels/formats.h"

namespace lowbit::kernels {

// Threads. Each family enumerates its work items (see *_work_items); a call
// computes the items [work.begin, work.end) (default: all of them), so the
// engine's thread pool splits one convolution into ranges and runs them
// concurrently on the same args. Items of LUT and INT8 convs are ordered
// (image, pixel tile, output-channel block); disjoint ranges write disjoint
// outputs, except that a kBitPlanes destination packs 64 channels into one
// word: there, range bounds must be multiples of cout_blocks (whole pixel
// tiles; see work_range()).
struct WorkRange {
  size_t begin = 0;
  size_t end = ~size_t(0);  // clamped to the number of items
};
// Part `part` of `parts` near-equal ranges of `items`, bounds multiples of
// `granule` (the last range ends at items).
WorkRange work_range(size_t items, int parts, int part, size_t granule = 1);

// Weight-pair lookup-table convolution, weights in [-2, 1], activations 1- or
// 2-bit (weight-pair table design). Any kernel size, stride 1 or 2, any pad.
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
  WorkRange work;
};
// Items: batch x ceil(out_height * row_pitch / 64) pixel tiles x cout_blocks.
size_t lut_conv_work_items(const LutConvArgs& args);
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
// Work items: (image, output row, tile of 64 pixels of the row, block of
// kBitSerialCoutBlock output channels); the activation sums of a pixel tile
// are recomputed by each call that touches it.
struct BitSerialConvArgs {
  ConvGeometry geometry;
  const uint64_t* activations = nullptr;
  BitPlanesLayout activation_layout;
  const uint64_t* weights = nullptr;
  BitSerialWeightsLayout weight_layout;
  OutputStage output;
  WorkRange work;
};
// Items: batch x out_height x ceil(out_width / 64) x cout_blocks.
size_t bitserial_conv_work_items(const BitSerialConvArgs& args);
using BitSerialConvFn = void (*)(const BitSerialConvArgs&);

void conv_anybits_bitserial_64x4__scalar(const BitSerialConvArgs& args);
void conv_anybits_bitserial_64x4__avx2(const BitSerialConvArgs& args);
void conv_anybits_bitserial_64x4__neon(const BitSerialConvArgs& args);
// Same formats and work tile; AVX-512 VPOPCNTDQ (vpopcntq on zmm), register
// tile 2 output pixels x 16 output channels (4 blocks).
void conv_anybits_bitserial_64x4__avx512(const BitSerialConvArgs& args);

// INT8 convolution: u8 activation codes x s8 weights, exact int32 sums
// (groups = 1, any kernel size, stride, pad).
//   activations: Int8ActivationsLayout (Cin, H, W, pad), batch back to back
//   weights:     Int8WeightsLayout (Cout, Cin, KH*KW), int16 k-pairs
// Exactness: u8 x s8 pairs summed by vpmaddubsw can exceed int16
// (2 * 255 * 128 = 65280) and saturate, so the AVX2 kernel widens both
// operands to 16 bits (done once: the formats store them as 16-bit) and uses
// vpmaddwd, whose int16 x int16 pair sums are exact in int32. Sums are exact
// for taps * Cin <= 2^31 / (255 * 128) = 65793.
// Work items: (image, group of kInt8PixelGroup flat output pixels, block of
// kInt8CoutBlock output channels). Tiles: AVX2 6 pixels x 16 channels,
// NEON 4 x 16, scalar 1 x 16.
inline constexpr int kInt8PixelGroup = 24;
struct Int8ConvArgs {
  ConvGeometry geometry;
  const uint16_t* activations = nullptr;
  Int8ActivationsLayout activation_layout;
  const int16_t* weights = nullptr;
  Int8WeightsLayout weight_layout;
  OutputStage output;
  WorkRange work;
};
size_t int8_conv_work_items(const Int8ConvArgs& args);
using Int8ConvFn = void (*)(const Int8ConvArgs&);

void conv_u8s8_6x16__scalar(const Int8ConvArgs& args);
void conv_u8s8_6x16__avx2(const Int8ConvArgs& args);
void conv_u8s8_6x16__neon(const Int8ConvArgs& args);
// Same formats and tile; vpdpwssd (AVX-VNNI) fuses vpmaddwd + vpaddd.
void conv_u8s8_6x16__avxvnni(const Int8ConvArgs& args);

// INT8 convolution for 4-way dot-product instructions: u8 activation codes
// x s8 weights, exact int32 sums (groups = 1, any kernel size, stride, pad).
//   activations: Int8DotActivationsLayout (Cin, H, W, pad), batch back to back
//   weights:     Int8DotWeightsLayout (Cout, Cin, KH*KW), s8 k-quads
// Exactness: vpdpbusd forms the four u8 x s8 products of each 32-bit lane at
// full precision and adds them straight to the int32 accumulator (no int16
// intermediate that could saturate, unlike vpmaddubsw), so sums are exact for
// taps * Cin <= 65793 as in the family above.
// Work items as conv_u8s8 (image, group of kInt8PixelGroup flat output
// pixels, block of kInt8CoutBlock output channels). Tile: 6 pixels x 16
// channels (AVX-VNNI), 8 pixels x 32 channels (AVX-512: two consecutive
// blocks of one pixel group in one pass when both are in the work range,
// else 8 x 16), scalar 1 x 16.
struct Int8DotConvArgs {
  ConvGeometry geometry;
  const uint8_t* activations = nullptr;
  Int8DotActivationsLayout activation_layout;
  const int8_t* weights = nullptr;
  Int8DotWeightsLayout weight_layout;
  OutputStage output;
  WorkRange work;
};
size_t int8_dot_conv_work_items(const Int8DotConvArgs& args);
using Int8DotConvFn = void (*)(const Int8DotConvArgs&);

void conv_u8s8dot_6x16__scalar(const Int8DotConvArgs& args);
void conv_u8s8dot_6x16__avxvnni(const Int8DotConvArgs& args);
void conv_u8s8dot_8x32__avx512(const Int8DotConvArgs& args);
// Same formats and work items; AArch64 NEON without dotprod: 8-bit smull /
// smlal + sadalp on recentred activations (a - 128), tile 2 pixels x 16
// channels.
void conv_u8s8dot_2x16__neon(const Int8DotConvArgs& args);
// Same formats and work items; Armv8.2 dotprod: sdot by element on shifted
// activations (a - 128) from a per-channel correction 128 * sum(w), tile 4
// pixels x 16 channels.
void conv_u8s8dot_4x16__neondot(const Int8DotConvArgs& args);
// Same formats and work items; Armv8.6 i8mm: usmmla (u8 x s8 2x8 by 8x2
// matrix multiply-accumulate, no correction), tile 4 pixels x 16 channels.
void conv_u8s8dot_4x16__neoni8mm(const Int8DotConvArgs& args);

// Depthwise INT8 convolution (groups == in_channels == out_channels), u8
// codes x s8 weights, exact int32 sums; any kernel size, stride, pad.
//   activations: Int8ActivationsLayout (C, H, W, pad)
//   weights:     DwWeightsLayout (C, KH*KW)
// Work items: (image, output row, block of 16 channels). Tile: one output
// pixel x 16 channels (AVX-512: 4 pixels x 32 channels, two blocks of a row
// in one pass when both are in the work range), weights held in registers
// along the row.
struct DwConvArgs {
  ConvGeometry geometry;
  const uint16_t* activations = nullptr;
  Int8ActivationsLayout activation_layout;
  const int16_t* weights = nullptr;
  DwWeightsLayout weight_layout;
  OutputStage output;
  WorkRange work;
};
size_t dw_conv_work_items(const DwConvArgs& args);
using DwConvFn = void (*)(const DwConvArgs&);

void dwconv_u8s8_1x16__scalar(const DwConvArgs& args);
void dwconv_u8s8_1x16__avx2(const DwConvArgs& args);
void dwconv_u8s8_1x16__neon(const DwConvArgs& args);
// Same formats and tile; vpdpwssd (AVX-VNNI) fuses vpmaddwd + vpaddd.
void dwconv_u8s8_1x16__avxvnni(const DwConvArgs& args);
// Same formats and work items; AVX-512: 32 channels (two blocks of one row,
// when both are in the work range) x 4 output pixels per register tile.
void dwconv_u8s8_4x32__avx512(const DwConvArgs& args);

}  // namespace lowbit::kernels
