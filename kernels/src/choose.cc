// Cost model behind choose_conv_kernel (choose.h).
//
// Rates: multiply-adds per cycle of the inner loops on the multiply-adds a
// kernel actually computes, single thread. x86-64 figures were measured with
// bench/kernels on a Sapphire Rapids-class Xeon (AVX2 + AVX-VNNI, clock 2.8
// GHz from a dependent-add chain), 3x3 layers with K >= 288:
//   conv_u8s8 (vpmaddwd)        ~22      conv_u8s8 (vpdpwssd)   ~31
//   conv_u8s8dot (vpdpbusd)     ~61      conv_w2a2_lut          ~55
//   conv_u8s8dot (512-bit vpdpbusd, 8x32 tile)                  ~118
//   bit-serial: time per MAC ~ (0.7 + 0.3 * wbits * abits) / 25
//               AVX-512 vpopcntq, 2 pixels x 16 channels per register tile:
//               ~ (0.24 + 0.76 * wbits * abits) / 200 (measured 128-224,
//               42-57, 23-27, 14-17 multiply-adds per cycle at W1A1..W4A4,
//               the higher figures at 256+ input channels); a CPU with
//               AVX-512 but no VPOPCNTDQ runs the AVX2 kernel, which this
//               model then overrates
//   depthwise (1x16, 16-bit)    ~5       AVX-512 (4x32, zmm vpdpwssd) ~8
//   (MobileNetV2 3x3 depthwise, 144..576 channels, int32 or u8 output)
// plus ~1 cycle per output value for the INT8 output stage and ~1.5 for the
// LUT one (flush of 16-bit sums and the padded-row store). The NEON and
// scalar rates are estimates, not measurements (no ARM hardware here): they
// only keep the families in their expected order.
#include "lowbit/kernels/choose.h"

#include <cassert>

#include "int8_common.h"
#include "lut_common.h"

namespace lowbit::kernels {
namespace {

struct Rates {
  double int8;       // conv_u8s8
  double int8_dot;   // conv_u8s8dot
  double lut;        // conv_w2a2_lut
  double bitserial;  // bit-serial W1A1 (one plane pair)
  double depthwise;  // dwconv_u8s8
  // Bit-serial cycles per multiply-add = (base + pair * wbits * abits) /
  // bitserial: the share of the work that does not grow with the plane pairs.
  double bitserial_base;
  double bitserial_pair;
};

Rates rates_for(Isa isa) {
  switch (isa) {
    case Isa::kAvx2: return {22, 1, 55, 25, 4.5, 0.7, 0.3};
    case Isa::kAvxVnni: return {31, 61, 55, 25, 5, 0.7, 0.3};
    case Isa::kAvx512: return {31, 118, 55, 200, 8, 0.24, 0.76};
    case Isa::kNeon: return {8, 1, 16, 16, 3, 0.7, 0.3};
    case Isa::kScalar: break;
  }
  return {1, 1, 0.5, 2, 1, 0.7, 0.3};
}

constexpr double kInt8OutputCycles = 1.0;
constexpr double kLutOutputCycles = 1.5;
constexpr double kBitSerialOutputCycles = 1.0;

double round_up(double v, double to) { return double(int64_t((v + to - 1) / to)) * to; }

// Value range of weights of `bits` in `domain`, bits in 1..8.
bool weight_range(WeightDomain domain, int bits, int* lo, int* hi) {
  if (bits < 1 || bits > 8) return false;
  if (domain == WeightDomain::kBinary) {
    if (bits != 1) return false;
    *lo = -1, *hi = 1;
  } else if (domain == WeightDomain::kUnsigned) {
    *lo = 0, *hi = (1 << bits) - 1;
  } else {
    *lo = -(1 << (bits - 1)), *hi = (1 << (bits - 1)) - 1;
  }
  return true;
}

}  // namespace

const char* conv_family_name(ConvFamily family) {
  switch (family) {
    case ConvFamily::kNone: return "none";
    case ConvFamily::kInt8: return "int8";
    case ConvFamily::kInt8Dot: return "int8dot";
    case ConvFamily::kDepthwiseInt8: return "dwint8";
    case ConvFamily::kLut: return "lut";
    case ConvFamily::kBitSerial: return "bitserial";
  }
  return "unknown";
}

double estimate_conv_cycles(ConvFamily family, const ConvGeometry& g, int wbits, int abits,
                            WeightDomain domain, Isa isa) {
  int wmin = 0, wmax = 0;
  if (!weight_range(domain, wbits, &wmin, &wmax) || abits < 1 || abits > 8) return -1;
  if (g.out_height() <= 0 || g.out_width() <= 0) return -1;
  const bool depthwise = g.groups == g.in_channels && g.groups == g.out_channels && g.groups > 1;
  if (g.groups != 1 && !depthwise) return -1;
  if (depthwise != (family == ConvFamily::kDepthwiseInt8)) return -1;
  const Rates r = rates_for(isa);
  const double oh = g.out_height(), ow = g.out_width(), batch = g.batch;
  const double pixels = batch * oh * ow, outputs = pixels * g.out_channels;
  const bool int8_weights = wmin >= -128 && wmax <= 127;
  switch (family) {
    case ConvFamily::kNone:
      return -1;
    case ConvFamily::kDepthwiseInt8:
      if (!int8_weights || g.taps() > detail::kDwMaxTaps) return -1;
      return g.macs() / r.depthwise + kInt8OutputCycles * outputs;
    case ConvFamily::kInt8:
    case ConvFamily::kInt8Dot: {
      if (!int8_weights || g.kernel_h > detail::kInt8MaxKernelH ||
          double(g.taps()) * g.in_channels > 65793)  // exact int32 sums
        return -1;
      const bool dot = family == ConvFamily::kInt8Dot;
      const double k = g.taps() * round_up(g.in_channels, dot ? kInt8DotChannelAlign : kInt8ChannelAlign);
      const double tile = dot && isa == Isa::kAvx512 ? 8 : detail::kInt8Tile;
      const double tiles = batch * round_up(oh * ow, tile);
      const double macs = tiles * round_up(g.out_channels, kInt8CoutBlock) * k;
      return macs / (dot ? r.int8_dot : r.int8) + kInt8OutputCycles * outputs;
    }
    case ConvFamily::kLut: {
      if (abits > 2 || wmin < -2 || wmax > 1 || (g.stride != 1 && g.stride != 2) ||
          g.taps() > detail::kLutMaxTaps)
        return -1;
      const double row_pitch = round_up(g.width + 2 * g.pad, g.stride) / g.stride;
      const double flat = batch * round_up(oh * row_pitch, detail::kLutPixelTile);
      const double macs = flat * round_up(g.out_channels, kLutCoutBlock) * g.taps() *
                          round_up(g.in_channels, 2);
      return macs / r.lut + kLutOutputCycles * outputs;
    }
    case ConvFamily::kBitSerial: {
      if (wbits > 4 || abits > 4) return -1;
      const double macs = pixels * round_up(g.out_channels, kBitSerialCoutBlock) * g.taps() *
                          round_up(g.in_channels, 64);
      return macs * (r.bitserial_base + r.bitserial_pair * wbits * abits) / r.bitserial +
             kBitSerialOutputCycles * outputs;
    }
  }
  return -1;
}

ConvKernelChoice choose_conv_kernel(const ConvGeometry& g, int wbits, int abits,
                                    WeightDomain domain, const KernelTable& table) {
  struct Candidate {
    ConvFamily family;
    const char* name;
    bool available;
  };
  const Candidate candidates[] = {
      {ConvFamily::kInt8, table.conv_u8s8_name, table.conv_u8s8 != nullptr},
      {ConvFamily::kInt8Dot, table.conv_u8s8dot_name, table.int8_dot_native},
      {ConvFamily::kDepthwiseInt8, table.dwconv_u8s8_name, table.dwconv_u8s8 != nullptr},
      {ConvFamily::kLut, table.conv_w2a2_lut_name, table.conv_w2a2_lut != nullptr},
      {ConvFamily::kBitSerial, table.conv_anybits_bitserial_name,
       table.conv_anybits_bitserial != nullptr},
  };
  ConvKernelChoice best;
  for (const Candidate& c : candidates) {
    if (!c.available) continue;
    const double cycles = estimate_conv_cycles(c.family, g, wbits, abits, domain, table.isa);
    if (cycles < 0) continue;
    if (best.family == ConvFamily::kNone || cycles < best.estimated_cycles) {
      best.family = c.family;
      best.kernel_name = c.name;
      best.estimated_cycles = cycles;
    }
  }
  return best;
}

}  // namespace lowbit::kernels
