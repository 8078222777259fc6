// Data formats shared by the low-bit convolution kernels, the packers and the
// engine. Everything here is plain data plus size arithmetic; no allocation.
//
// Conventions used by every family:
// - Activations are unsigned codes a in [0, 2^abits - 1] with zero point 0
//   (the value of a code is the code; the layer's float scale lives in the
//   epilogue). Padded positions hold code 0, i.e. real value 0.
//   Activations with a non-zero zero point are handled by the engine as
//   offset codes plus a per-output-channel correction folded into the bias
//   (sum of weights x zero point), never inside the kernel.
// - Weights are small signed integers ("values") in a WeightDomain, stored
//   packed as unsigned offset codes q with value = step * q + offset, so a
//   kernel computes sum(q * a) with AND/popcount or tables and applies
//   step * sum(q * a) + offset * sum(a) exactly, where sum(a) is the sum of
//   activation codes over the receptive field of the output pixel.
// - Unpacked reference tensors are NHWC: activation codes uint8
//   [N][H][W][C]; weight values int8 [Cout][KH][KW][Cin] (OHWI).
// - Kernel accumulators are exact int32 sums of value(w) * a.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lowbit::kernels {

// Geometry of one convolution. Output size follows the usual
// floor((in + 2*pad - kernel) / stride) + 1. groups divides in_channels and
// out_channels (kernels/ref handles any; the kernels take groups == 1, and
// the depthwise family groups == in_channels == out_channels).
struct ConvGeometry {
  int batch = 1;
  int height = 1;
  int width = 1;
  int in_channels = 1;
  int out_channels = 1;
  int kernel_h = 1;
  int kernel_w = 1;
  int stride = 1;
  int pad = 0;
  int groups = 1;

  int out_height() const { return (height + 2 * pad - kernel_h) / stride + 1; }
  int out_width() const { return (width + 2 * pad - kernel_w) / stride + 1; }
  int taps() const { return kernel_h * kernel_w; }
  // Multiply-adds of the whole convolution (for GOPS = 2 * macs / s).
  double macs() const {
    return double(batch) * out_height() * out_width() * out_channels * (in_channels / groups) *
           taps();
  }
};

// How the integers a weight code stands for are laid out.
enum class WeightDomain : uint8_t {
  kSigned,    // two's-complement range [-2^(b-1), 2^(b-1)-1]; q = value + 2^(b-1)
  kUnsigned,  // [0, 2^b - 1]; q = value
  kBinary,    // b == 1 only: {-1, +1}; q = (value + 1) / 2, value = 2q - 1
};

struct WeightCoding {
  int step;    // value = step * q + offset
  int offset;
  int min_value;
  int max_value;
};

// Coding for bits in 1..4. kSigned with 1 bit is {-1, 0}; kBinary needs bits == 1.
WeightCoding weight_coding(WeightDomain domain, int bits);

// ---------------------------------------------------------------------------
// Channel-pair index planes: the activation format of the weight-pair table
// (LUT) kernels, 1- or 2-bit activations.
//
// One byte per (channel pair, padded pixel): a(2p) | a(2p+1) << 2, values
// 0..15 (a missing odd channel reads 0). Layout per image:
//   [channel_pairs][phase_y][phase_x][plane_bytes]
// where phase = padded coordinate % phase_split, and a plane holds
// [rows][row_pitch] bytes at (y / phase_split, x / phase_split) followed by
// zero bytes up to plane_bytes. With phase_split equal to the consumer's
// stride, every kernel tap (dy, dx) is one contiguous byte offset in one
// phase plane, so the kernel reads 32 consecutive output pixels per load:
// no im2col. plane_bytes >= rows * row_pitch + kPairPlaneSlackBytes so a
// kernel may read up to kPairPlaneSlackBytes - 1 bytes past the last row (a
// 64-pixel tile plus a tap offset; those bytes must be zero; the buffer must
// be zero-initialised once, writers touch only interior pixels). The slack is
// part of plane_bytes and image_bytes, so a buffer of image_bytes holds every
// byte a kernel reads (AddressSanitizer checks it: tests/sanitize.sh).
inline constexpr int kPairPlaneSlackBytes = 128;
struct PairPlanesLayout {
  int channels = 0;       // real channels
  int channel_pairs = 0;  // ceil(channels / 2)
  int height = 0;         // unpadded
  int width = 0;
  int pad = 0;
  int phase_split = 1;    // 1 or 2 (the consumer's stride)
  int rows = 0;           // ceil((height + 2 pad) / phase_split)
  int row_pitch = 0;      // ceil((width + 2 pad) / phase_split)
  size_t plane_bytes = 0;
  size_t image_bytes = 0;  // channel_pairs * phase_split^2 * plane_bytes

  // Byte offset (within one image) of channel pair p at padded coordinate
  // (y, x), 0 <= y < height + 2 pad.
  size_t offset(int pair, int padded_y, int padded_x) const {
    const int s = phase_split;
    const int phase = (padded_y % s) * s + (padded_x % s);
    return (size_t(pair) * s * s + phase) * plane_bytes + size_t(padded_y / s) * row_pitch +
           size_t(padded_x / s);
  }
};
PairPlanesLayout make_pair_planes_layout(int channels, int height, int width, int pad,
                                         int phase_split);

// ---------------------------------------------------------------------------
// Activation bit-planes: the activation format of the bit-serial kernels.
// Per image: [padded_height][padded_width][bits][words] uint64, where
// words = ceil(channels / 64) and bit (c % 64) of word (c / 64) of plane j is
// bit j of the code of channel c. Spatial border and channel tail bits are
// zero (zero-initialise the buffer once; writers touch only interior pixels).
struct BitPlanesLayout {
  int channels = 0;
  int bits = 0;  // 1..4
  int height = 0;
  int width = 0;
  int pad = 0;
  int words = 0;           // uint64 words per plane per pixel
  int padded_height = 0;
  int padded_width = 0;
  size_t pixel_words = 0;  // bits * words
  size_t image_words = 0;

  size_t offset_words(int padded_y, int padded_x) const {
    return (size_t(padded_y) * padded_width + padded_x) * pixel_words;
  }
};
BitPlanesLayout make_bit_planes_layout(int channels, int bits, int height, int width, int pad);

// ---------------------------------------------------------------------------
// Weight-pair tables: the weight format of the LUT kernels.
// For each block of 4 output channels, each channel pair p, each tap t and
// each channel o of the block, 16 bytes T[i] = w(2p)*(i & 3) + w(2p+1)*(i >> 2)
// + kLutBias, i.e. [cout_blocks][channel_pairs][taps][4][16] uint8
// (steps = channel_pairs * taps per block, 64 bytes per step). Weight values
// must lie in [-2, 1] (signed 2-bit, or binary {-1, +1}); activation codes in
// 0..3, so every entry is 0..18. Output channels beyond out_channels and the
// missing odd input channel have weight 0.
inline constexpr int kLutBias = 12;
inline constexpr int kLutCoutBlock = 4;
struct LutWeightsLayout {
  int out_channels = 0;
  int in_channels = 0;
  int taps = 0;
  int cout_blocks = 0;
  int channel_pairs = 0;
  size_t steps = 0;  // channel_pairs * taps
  size_t bytes = 0;
};
LutWeightsLayout make_lut_weights_layout(int out_channels, int in_channels, int taps);

// ---------------------------------------------------------------------------
// Bit-serial weights: [cout_blocks][taps][words][bits][4] uint64 offset codes
// (blocks of 4 output channels; bit c%64 of word c/64 of plane i is bit i of
// q for input channel c). Output channels beyond out_channels and channel
// tail bits are zero.
inline constexpr int kBitSerialCoutBlock = 4;
struct BitSerialWeightsLayout {
  int out_channels = 0;
  int in_channels = 0;
  int taps = 0;
  int bits = 0;
  int words = 0;
  int cout_blocks = 0;
  WeightDomain domain = WeightDomain::kSigned;
  size_t total_words = 0;
};
BitSerialWeightsLayout make_bit_serial_weights_layout(int out_channels, int in_channels,
                                                      int taps, int bits, WeightDomain domain);

// ---------------------------------------------------------------------------
// INT8 activations: the activation format of the INT8 conv and depthwise
// kernels. Codes are u8 (0..255, zero point 0 as everywhere here) stored
// zero-extended to uint16 so that the AVX2 kernels can use the exact
// vpmaddwd (int16 x int16 -> int32 pair sums, no saturation), NHWC with a
// zero border: per image [padded_height][padded_width][channel_stride]
// uint16, channel_stride = channels rounded up to kInt8ChannelAlign (tail
// channels are zero). image_elems includes kInt8SlackElems zero elements at
// the end so a kernel may read one 16-channel vector past the last pixel.
// Zero-initialise the buffer once; writers touch only interior pixels.
inline constexpr int kInt8ChannelAlign = 2;
inline constexpr int kInt8SlackElems = 16;
struct Int8ActivationsLayout {
  int channels = 0;
  int height = 0;
  int width = 0;
  int pad = 0;
  int channel_stride = 0;  // elements between neighbouring pixels
  int padded_height = 0;
  int padded_width = 0;
  size_t image_elems = 0;  // uint16 elements per image (with slack)

  size_t offset(int padded_y, int padded_x) const {
    return (size_t(padded_y) * padded_width + padded_x) * channel_stride;
  }
};
Int8ActivationsLayout make_int8_activations_layout(int channels, int height, int width, int pad);

// INT8 conv weights (groups = 1), s8 values stored sign-extended to int16:
// [cout_blocks][taps][channel_pairs][kInt8CoutBlock][2] int16, where element
// [b][t][p][o][j] is the weight of output channel b*16+o, tap t, input
// channel 2p+j (zero beyond out_channels / in_channels). One k-pair step of a
// block is 64 bytes: two 256-bit rows of 8 channels x 2 input channels.
inline constexpr int kInt8CoutBlock = 16;
struct Int8WeightsLayout {
  int out_channels = 0;
  int in_channels = 0;
  int taps = 0;
  int cout_blocks = 0;
  int channel_pairs = 0;  // channel_stride / 2 of the activations
  size_t block_elems = 0;  // taps * channel_pairs * 32
  size_t elems = 0;
};
Int8WeightsLayout make_int8_weights_layout(int out_channels, int in_channels, int taps);

// INT8 dot-product activations (the format of the conv_u8s8dot family, for
// 4-way u8 x s8 dot-product instructions: AVX-VNNI / AVX-512 VNNI vpdpbusd,
// Arm usdot). u8 codes as bytes, NHWC with a zero border: per image
// [padded_height][padded_width][channel_stride] uint8, channel_stride =
// channels rounded up to kInt8DotChannelAlign (tail channels are zero), so a
// kernel row of kernel_w pixels is kernel_w * channel_stride / 4 whole k-quads.
// image_bytes includes kInt8DotSlackBytes zero bytes at the end.
// Zero-initialise the buffer once; writers touch only interior pixels.
inline constexpr int kInt8DotChannelAlign = 4;
inline constexpr int kInt8DotSlackBytes = 64;
struct Int8DotActivationsLayout {
  int channels = 0;
  int height = 0;
  int width = 0;
  int pad = 0;
  int channel_stride = 0;  // bytes between neighbouring pixels, multiple of 4
  int padded_height = 0;
  int padded_width = 0;
  size_t image_bytes = 0;  // per image (with slack)

  size_t offset(int padded_y, int padded_x) const {
    return (size_t(padded_y) * padded_width + padded_x) * channel_stride;
  }
};
Int8DotActivationsLayout make_int8_dot_activations_layout(int channels, int height, int width,
                                                          int pad);

// INT8 dot-product conv weights (groups = 1), s8 values:
// [cout_blocks][taps][channel_quads][kInt8CoutBlock][4] int8, where element
// [b][t][q][o][j] is the weight of output channel b*16+o, tap t, input channel
// 4q+j (zero beyond out_channels / in_channels). One k-quad step of a block is
// 64 bytes: two 256-bit rows of 8 channels x 4 input channels.
struct Int8DotWeightsLayout {
  int out_channels = 0;
  int in_channels = 0;
  int taps = 0;
  int cout_blocks = 0;
  int channel_quads = 0;   // channel_stride / 4 of the activations
  size_t block_bytes = 0;  // taps * channel_quads * 64
  size_t bytes = 0;
};
Int8DotWeightsLayout make_int8_dot_weights_layout(int out_channels, int in_channels, int taps);

// Depthwise INT8 weights: per block of 16 channels, taps grouped in pairs
// (2q, 2q+1) (a missing last tap has weight 0), each pair stored as two
// 16-element int16 rows interleaved the way vpunpck{lo,hi}wd interleaves two
// 16-channel activation vectors:
//   row 0 = w[c][2q], w[c][2q+1] for c = 0,1,2,3, 8,9,10,11  (unpacklo order)
//   row 1 = same for c = 4,5,6,7, 12,13,14,15                  (unpackhi order)
// i.e. [channel_blocks][tap_pairs][2][16] int16; channels beyond `channels`
// are zero.
inline constexpr int kDwChannelBlock = 16;
struct DwWeightsLayout {
  int channels = 0;
  int taps = 0;
  int channel_blocks = 0;
  int tap_pairs = 0;
  size_t block_elems = 0;  // tap_pairs * 32
  size_t elems = 0;
};
DwWeightsLayout make_dw_weights_layout(int channels, int taps);

}  // namespace lowbit::kernels
