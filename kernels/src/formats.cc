#include "lowbit/kernels/formats.h"

#include <cassert>

namespace lowbit::kernels {
namespace {
constexpr size_t round_up(size_t x, size_t m) { return (x + m - 1) / m * m; }
}  // namespace

WeightCoding weight_coding(WeightDomain domain, int bits) {
  assert(bits >= 1 && bits <= 4);
  switch (domain) {
    case WeightDomain::kSigned:
      return {1, -(1 << (bits - 1)), -(1 << (bits - 1)), (1 << (bits - 1)) - 1};
    case WeightDomain::kUnsigned:
      return {1, 0, 0, (1 << bits) - 1};
    case WeightDomain::kBinary:
      assert(bits == 1);
      return {2, -1, -1, 1};
  }
  return {1, 0, 0, 0};
}

PairPlanesLayout make_pair_planes_layout(int channels, int height, int width, int pad,
                                         int phase_split) {
  assert(channels > 0 && height > 0 && width > 0 && pad >= 0);
  assert(phase_split == 1 || phase_split == 2);
  PairPlanesLayout l;
  l.channels = channels;
  l.channel_pairs = (channels + 1) / 2;
  l.height = height;
  l.width = width;
  l.pad = pad;
  l.phase_split = phase_split;
  l.rows = (height + 2 * pad + phase_split - 1) / phase_split;
  l.row_pitch = (width + 2 * pad + phase_split - 1) / phase_split;
  l.plane_bytes = round_up(size_t(l.rows) * l.row_pitch + kPairPlaneSlackBytes, 64);
  l.image_bytes = size_t(l.channel_pairs) * phase_split * phase_split * l.plane_bytes;
  return l;
}

BitPlanesLayout make_bit_planes_layout(int channels, int bits, int height, int width, int pad) {
  assert(channels > 0 && bits >= 1 && bits <= 4 && height > 0 && width > 0 && pad >= 0);
  BitPlanesLayout l;
  l.channels = channels;
  l.bits = bits;
  l.height = height;
  l.width = width;
  l.pad = pad;
  l.words = (channels + 63) / 64;
  l.padded_height = height + 2 * pad;
  l.padded_width = width + 2 * pad;
  l.pixel_words = size_t(bits) * l.words;
  l.image_words = size_t(l.padded_height) * l.padded_width * l.pixel_words;
  return l;
}

LutWeightsLayout make_lut_weights_layout(int out_channels, int in_channels, int taps) {
  assert(out_channels > 0 && in_channels > 0 && taps > 0);
  LutWeightsLayout l;
  l.out_channels = out_channels;
  l.in_channels = in_channels;
  l.taps = taps;
  l.cout_blocks = (out_channels + kLutCoutBlock - 1) / kLutCoutBlock;
  l.channel_pairs = (in_channels + 1) / 2;
  l.steps = size_t(l.channel_pairs) * taps;
  l.bytes = size_t(l.cout_blocks) * l.steps * kLutCoutBlock * 16;
  return l;
}

BitSerialWeightsLayout make_bit_serial_weights_layout(int out_channels, int in_channels,
                                                      int taps, int bits, WeightDomain domain) {
  assert(out_channels > 0 && in_channels > 0 && taps > 0 && bits >= 1 && bits <= 4);
  assert(domain != WeightDomain::kBinary || bits == 1);
  BitSerialWeightsLayout l;
  l.out_channels = out_channels;
  l.in_channels = in_channels;
  l.taps = taps;
  l.bits = bits;
  l.words = (in_channels + 63) / 64;
  l.cout_blocks = (out_channels + kBitSerialCoutBlock - 1) / kBitSerialCoutBlock;
  l.domain = domain;
  l.total_words = size_t(l.cout_blocks) * taps * l.words * bits * kBitSerialCoutBlock;
  return l;
}

namespace {
// Fields common to both INT8 activation formats: padded NHWC with
// channel_stride = channels rounded up to channel_align. The caller sets the
// per-image size (format-specific name and slack).
template <class Layout>
Layout padded_nhwc_layout(int channels, int height, int width, int pad, int channel_align) {
  assert(channels > 0 && height > 0 && width > 0 && pad >= 0);
  Layout l;
  l.channels = channels;
  l.height = height;
  l.width = width;
  l.pad = pad;
  l.channel_stride = int(round_up(size_t(channels), size_t(channel_align)));
  l.padded_height = height + 2 * pad;
  l.padded_width = width + 2 * pad;
  return l;
}

// Fields common to both INT8 conv weight formats (blocks of kInt8CoutBlock
// output channels); returns the k-steps per tap: in_channels rounded up to
// channels_per_step, divided by it (channel pairs or quads).
template <class Layout>
int int8_weights_common(int out_channels, int in_channels, int taps, int channels_per_step,
                        Layout* l) {
  assert(out_channels > 0 && in_channels > 0 && taps > 0);
  l->out_channels = out_channels;
  l->in_channels = in_channels;
  l->taps = taps;
  l->cout_blocks = (out_channels + kInt8CoutBlock - 1) / kInt8CoutBlock;
  return int(round_up(size_t(in_channels), size_t(channels_per_step))) / channels_per_step;
}
}  // namespace

Int8ActivationsLayout make_int8_activations_layout(int channels, int height, int width,
                                                   int pad) {
  Int8ActivationsLayout l = padded_nhwc_layout<Int8ActivationsLayout>(channels, height, width,
                                                                      pad, kInt8ChannelAlign);
  l.image_elems = size_t(l.padded_height) * l.padded_width * l.channel_stride + kInt8SlackElems;
  return l;
}

Int8WeightsLayout make_int8_weights_layout(int out_channels, int in_channels, int taps) {
  Int8WeightsLayout l;
  l.channel_pairs = int8_weights_common(out_channels, in_channels, taps, kInt8ChannelAlign, &l);
  l.block_elems = size_t(taps) * l.channel_pairs * 2 * kInt8CoutBlock;
  l.elems = l.block_elems * l.cout_blocks;
  return l;
}

Int8DotActivationsLayout make_int8_dot_activations_layout(int channels, int height, int width,
                                                          int pad) {
  Int8DotActivationsLayout l = padded_nhwc_layout<Int8DotActivationsLayout>(
      channels, height, width, pad, kInt8DotChannelAlign);
  l.image_bytes = size_t(l.padded_height) * l.padded_width * l.channel_stride + kInt8DotSlackBytes;
  return l;
}

Int8DotWeightsLayout make_int8_dot_weights_layout(int out_channels, int in_channels, int taps) {
  Int8DotWeightsLayout l;
  l.channel_quads =
      int8_weights_common(out_channels, in_channels, taps, kInt8DotChannelAlign, &l);
  l.block_bytes = size_t(taps) * l.channel_quads * 4 * kInt8CoutBlock;
  l.bytes = l.block_bytes * l.cout_blocks;
  return l;
}

DwWeightsLayout make_dw_weights_layout(int channels, int taps) {
  assert(channels > 0 && taps > 0);
  DwWeightsLayout l;
  l.channels = channels;
  l.taps = taps;
  l.channel_blocks = (channels + kDwChannelBlock - 1) / kDwChannelBlock;
  l.tap_pairs = (taps + 1) / 2;
  l.block_elems = size_t(l.tap_pairs) * 2 * kDwChannelBlock;  // 2 rows of 16 int16
  l.elems = l.block_elems * l.channel_blocks;
  return l;
}

}  // namespace lowbit::kernels
