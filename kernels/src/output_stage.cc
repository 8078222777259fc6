// Scalar output stage (see epilogue.h for the exact arithmetic).
#include <cassert>
#include <cmath>

#include "lowbit/kernels/epilogue.h"

namespace lowbit::kernels {

float apply_epilogue(const Epilogue& e, int channel, int32_t sum) {
  // Wrapping int32 subtraction (no signed overflow): exact for any true
  // difference that fits int32.
  const int32_t d = e.sum_offset ? int32_t(uint32_t(sum) - uint32_t(e.sum_offset[channel])) : sum;
  float y = float(d) * e.scale[channel];
  if (e.bias) y = y + e.bias[channel];
  switch (e.activation) {
    case Activation::kNone:
      break;
    case Activation::kRelu:
      y = y < 0.0f ? 0.0f : y;
      break;
    case Activation::kLeakyRelu:
      y = y < 0.0f ? y * e.alpha : y;
      break;
    case Activation::kClip:
      y = y < e.clip_min ? e.clip_min : (y > e.clip_max ? e.clip_max : y);
      break;
    case Activation::kHardSwish: {
      float t = y + 3.0f;
      t = t < 0.0f ? 0.0f : (t > 6.0f ? 6.0f : t);
      y = y * t / 6.0f;
      break;
    }
    case Activation::kSilu:
      y = y / (1.0f + std::exp(-y));
      break;
  }
  return y;
}

uint8_t requantize(const Epilogue& e, float y) {
  const int max_code = (1 << e.out_bits) - 1;
  // v = y / out_scale (IEEE float division: QuantizeLinear) or y *
  // out_inv_scale, limited to +-2^30 before rounding: no out-of-range
  // conversion for huge or infinite y, and the same code for any zero point
  // below 2^29 (rounding is monotonic; the final clamp decides).
  float v = e.out_scale > 0.0f ? y / e.out_scale : y * e.out_inv_scale;
  constexpr float kLimit = 1073741824.0f;  // 2^30
  v = v < -kLimit ? -kLimit : (v > kLimit ? kLimit : v);
  long q = std::lrint(v) + e.out_zero_point;
  q = q < 0 ? 0 : (q > max_code ? max_code : q);
  return uint8_t(q);
}

void store_tile(const OutputStage& out, const ConvGeometry& g, int image, int out_y, int out_x,
                int pixels, int cout_begin, int couts, const int32_t* acc, int stride) {
  const int oh = g.out_height(), ow = g.out_width(), cout = g.out_channels;
  assert(couts <= 4 && cout_begin % 2 == 0 && out_x + pixels <= ow && out_y < oh);
  assert(out.destination == Destination::kInt32 || out.epilogue.scale != nullptr);
  if (cout_begin + couts > cout) couts = cout - cout_begin;
  const size_t pixel0 = (size_t(image) * oh + out_y) * ow + out_x;
  switch (out.destination) {
    case Destination::kInt32: {
      int32_t* dst = static_cast<int32_t*>(out.data) + pixel0 * cout + cout_begin;
      for (int i = 0; i < pixels; ++i)
        for (int o = 0; o < couts; ++o) dst[size_t(i) * cout + o] = acc[o * stride + i];
      break;
    }
    case Destination::kFloat: {
      float* dst = static_cast<float*>(out.data) + pixel0 * cout + cout_begin;
      for (int i = 0; i < pixels; ++i)
        for (int o = 0; o < couts; ++o)
          dst[size_t(i) * cout + o] = apply_epilogue(out.epilogue, cout_begin + o, acc[o * stride + i]);
      break;
    }
    case Destination::kCodes: {
      uint8_t* dst = static_cast<uint8_t*>(out.data) + pixel0 * cout + cout_begin;
      for (int i = 0; i < pixels; ++i)
        for (int o = 0; o < couts; ++o)
          dst[size_t(i) * cout + o] = requantize(
              out.epilogue, apply_epilogue(out.epilogue, cout_begin + o, acc[o * stride + i]));
      break;
    }
    case Destination::kPairPlanes: {
      const PairPlanesLayout& l = out.pair_planes;
      assert(l.channels == cout && l.height == oh && l.width == ow && out.epilogue.out_bits <= 2);
      uint8_t* base = static_cast<uint8_t*>(out.data) + size_t(image) * l.image_bytes;
      for (int i = 0; i < pixels; ++i) {
        for (int o = 0; o < couts; o += 2) {
          uint8_t byte = requantize(
              out.epilogue, apply_epilogue(out.epilogue, cout_begin + o, acc[o * stride + i]));
          if (o + 1 < couts)
            byte |= uint8_t(requantize(out.epilogue,
                                       apply_epilogue(out.epilogue, cout_begin + o + 1,
                                                      acc[(o + 1) * stride + i]))
                            << 2);
          base[l.offset((cout_begin + o) / 2, out_y + l.pad, out_x + i + l.pad)] = byte;
        }
      }
      break;
    }
    case Destination::kBitPlanes: {
      const BitPlanesLayout& l = out.bit_planes;
      assert(l.channels == cout && l.height == oh && l.width == ow && out.epilogue.out_bits == l.bits);
      uint64_t* base = static_cast<uint64_t*>(out.data) + size_t(image) * l.image_words;
      for (int i = 0; i < pixels; ++i) {
        uint64_t* px = base + l.offset_words(out_y + l.pad, out_x + i + l.pad);
        for (int o = 0; o < couts; ++o) {
          const int c = cout_begin + o;
          const unsigned q =
              requantize(out.epilogue, apply_epilogue(out.epilogue, c, acc[o * stride + i]));
          const uint64_t bit = uint64_t(1) << (c % 64);
          for (int j = 0; j < l.bits; ++j) {
            uint64_t& word = px[size_t(j) * l.words + c / 64];
            word = ((q >> j) & 1) ? (word | bit) : (word & ~bit);
          }
        }
      }
      break;
    }
  }
}

}  // namespace lowbit::kernels
