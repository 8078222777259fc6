#include "lowbit/kernels/pack.h"

#include <cassert>
#include <cmath>
#include <cstring>

namespace lowbit::kernels {

void quantize_to_codes(const float* x, size_t count, float scale, int zero_point, int bits,
                       uint8_t* codes) {
  assert(bits >= 1 && bits <= 8 && scale > 0.0f);
  const long max_code = (1L << bits) - 1;
  for (size_t i = 0; i < count; ++i) {
    long q = std::lrint(x[i] / scale) + zero_point;
    q = q < 0 ? 0 : (q > max_code ? max_code : q);
    codes[i] = uint8_t(q);
  }
}

void quantize_weights(const float* w, int out_channels, size_t per_channel, const float* scale,
                      WeightDomain domain, int bits, int8_t* values) {
  const WeightCoding coding = weight_coding(domain, bits);
  for (int c = 0; c < out_channels; ++c) {
    for (size_t i = 0; i < per_channel; ++i) {
      const float x = w[size_t(c) * per_channel + i];
      long v;
      if (domain == WeightDomain::kBinary) {
        v = x >= 0.0f ? 1 : -1;
      } else {
        v = std::lrint(x / scale[c]);
        v = v < coding.min_value ? coding.min_value : (v > coding.max_value ? coding.max_value : v);
      }
      values[size_t(c) * per_channel + i] = int8_t(v);
    }
  }
}

void pack_pair_planes(const uint8_t* codes, int batch, const PairPlanesLayout& l,
                      uint8_t* planes) {
  for (int n = 0; n < batch; ++n) {
    uint8_t* image = planes + size_t(n) * l.image_bytes;
    for (int y = 0; y < l.height; ++y) {
      for (int x = 0; x < l.width; ++x) {
        const uint8_t* px = codes + ((size_t(n) * l.height + y) * l.width + x) * l.channels;
        for (int p = 0; p < l.channel_pairs; ++p) {
          const int c0 = 2 * p, c1 = 2 * p + 1;
          assert(px[c0] <= 3);
          uint8_t byte = px[c0];
          if (c1 < l.channels) {
            assert(px[c1] <= 3);
            byte |= uint8_t(px[c1] << 2);
          }
          image[l.offset(p, y + l.pad, x + l.pad)] = byte;
        }
      }
    }
  }
}

void pack_bit_planes(const uint8_t* codes, int batch, const BitPlanesLayout& l,
                     uint64_t* planes) {
  for (int n = 0; n < batch; ++n) {
    uint64_t* image = planes + size_t(n) * l.image_words;
    for (int y = 0; y < l.height; ++y) {
      for (int x = 0; x < l.width; ++x) {
        const uint8_t* px = codes + ((size_t(n) * l.height + y) * l.width + x) * l.channels;
        uint64_t* dst = image + l.offset_words(y + l.pad, x + l.pad);
        for (size_t i = 0; i < l.pixel_words; ++i) dst[i] = 0;
        for (int c = 0; c < l.channels; ++c) {
          assert(px[c] < (1u << l.bits));
          for (int j = 0; j < l.bits; ++j) {
            dst[size_t(j) * l.words + c / 64] |= uint64_t((px[c] >> j) & 1) << (c % 64);
          }
        }
      }
    }
  }
}

void pack_lut_weights(const int8_t* values, const LutWeightsLayout& l, uint8_t* tables) {
  const int cin = l.in_channels;
  auto weight = [&](int o, int tap, int c) -> int {
    if (o >= l.out_channels || c >= cin) return 0;
    const int v = values[(size_t(o) * l.taps + tap) * cin + c];
    assert(v >= -2 && v <= 1);
    return v;
  };
  uint8_t* t = tables;
  for (int b = 0; b < l.cout_blocks; ++b) {
    for (int p = 0; p < l.channel_pairs; ++p) {
      for (int tap = 0; tap < l.taps; ++tap) {
        for (int o = 0; o < kLutCoutBlock; ++o) {
          const int w0 = weight(b * kLutCoutBlock + o, tap, 2 * p);
          const int w1 = weight(b * kLutCoutBlock + o, tap, 2 * p + 1);
          for (int i = 0; i < 16; ++i) {
            *t++ = uint8_t(w0 * (i & 3) + w1 * (i >> 2) + kLutBias);
          }
        }
      }
    }
  }
}

void pack_bit_serial_weights(const int8_t* values, const BitSerialWeightsLayout& l,
                             uint64_t* planes) {
  const WeightCoding coding = weight_coding(l.domain, l.bits);
  for (size_t i = 0; i < l.total_words; ++i) planes[i] = 0;
  for (int o = 0; o < l.out_channels; ++o) {
    const int b = o / kBitSerialCoutBlock, lane = o % kBitSerialCoutBlock;
    for (int tap = 0; tap < l.taps; ++tap) {
      for (int c = 0; c < l.in_channels; ++c) {
        const int v = values[(size_t(o) * l.taps + tap) * l.in_channels + c];
        assert(v >= coding.min_value && v <= coding.max_value);
        assert((v - coding.offset) % coding.step == 0);
        const unsigned q = unsigned((v - coding.offset) / coding.step);
        for (int i = 0; i < l.bits; ++i) {
          const size_t word =
              ((((size_t(b) * l.taps + tap) * l.words + c / 64) * l.bits + i) *
               kBitSerialCoutBlock) + lane;
          planes[word] |= uint64_t((q >> i) & 1) << (c % 64);
        }
      }
    }
  }
}

void pack_int8_activations(const uint8_t* codes, int batch, const Int8ActivationsLayout& l,
                           uint16_t* activations) {
  for (int n = 0; n < batch; ++n) {
    uint16_t* image = activations + size_t(n) * l.image_elems;
    for (int y = 0; y < l.height; ++y)
      for (int x = 0; x < l.width; ++x) {
        const uint8_t* px = codes + ((size_t(n) * l.height + y) * l.width + x) * l.channels;
        uint16_t* dst = image + l.offset(y + l.pad, x + l.pad);
        for (int c = 0; c < l.channels; ++c) dst[c] = px[c];
      }
  }
}

void pack_int8_weights(const int8_t* values, const Int8WeightsLayout& l, int16_t* weights) {
  for (size_t i = 0; i < l.elems; ++i) weights[i] = 0;
  for (int o = 0; o < l.out_channels; ++o) {
    const int b = o / kInt8CoutBlock, lane = o % kInt8CoutBlock;
    for (int t = 0; t < l.taps; ++t)
      for (int c = 0; c < l.in_channels; ++c)
        weights[b * l.block_elems + ((size_t(t) * l.channel_pairs + c / 2) * kInt8CoutBlock + lane) * 2 +
                c % 2] = values[(size_t(o) * l.taps + t) * l.in_channels + c];
  }
}

void pack_int8_dot_activations(const uint8_t* codes, int batch, const Int8DotActivationsLayout& l,
                               uint8_t* activations) {
  for (int n = 0; n < batch; ++n) {
    uint8_t* image = activations + size_t(n) * l.image_bytes;
    for (int y = 0; y < l.height; ++y)
      for (int x = 0; x < l.width; ++x) {
        const uint8_t* px = codes + ((size_t(n) * l.height + y) * l.width + x) * l.channels;
        std::memcpy(image + l.offset(y + l.pad, x + l.pad), px, size_t(l.channels));
      }
  }
}

void pack_int8_dot_weights(const int8_t* values, const Int8DotWeightsLayout& l, int8_t* weights) {
  std::memset(weights, 0, l.bytes);
  for (int o = 0; o < l.out_channels; ++o) {
    const int b = o / kInt8CoutBlock, lane = o % kInt8CoutBlock;
    for (int t = 0; t < l.taps; ++t)
      for (int c = 0; c < l.in_channels; ++c)
        weights[b * l.block_bytes + ((size_t(t) * l.channel_quads + c / 4) * kInt8CoutBlock + lane) * 4 +
                c % 4] = values[(size_t(o) * l.taps + t) * l.in_channels + c];
  }
}

void pack_dw_weights(const int8_t* values, const DwWeightsLayout& l, int16_t* weights) {
  for (size_t i = 0; i < l.elems; ++i) weights[i] = 0;
  for (int c = 0; c < l.channels; ++c) {
    const int b = c / kDwChannelBlock, lane = c % kDwChannelBlock;
    // unpacklo/hi order: lane l of 8-channel half h goes to row (l % 8) / 4,
    // position (h * 4 + l % 4) of that row.
    const int row = (lane % 8) / 4, pos = (lane / 8) * 4 + lane % 4;
    for (int t = 0; t < l.taps; ++t)
      weights[b * l.block_elems + (size_t(t / 2) * 2 + row) * 16 + pos * 2 + t % 2] =
          values[size_t(c) * l.taps + t];
  }
}

}  // namespace lowbit::kernels
