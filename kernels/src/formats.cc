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
  l.plane_bytes = round_up(size_t(l.rows) * l.row_pitch + 128, 64);
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

}  // namespace lowbit::kernels
