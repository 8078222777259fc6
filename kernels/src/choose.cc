// Cost model behind choose_conv_kernel (choose.h). The rates are fields of
// the kernel table entries (dispatch.cc, with where each was measured).
#include "lowbit/kernels/choose.h"

#include "int8_common.h"
#include "lut_common.h"

namespace lowbit::kernels {
namespace {

double round_up(double v, double to) { return double(int64_t((v + to - 1) / to)) * to; }

bool is_depthwise(const ConvGeometry& g) {
  return g.groups == g.in_channels && g.groups == g.out_channels && g.groups > 1;
}

}  // namespace

bool weight_value_range(WeightDomain domain, int bits, int* min_value, int* max_value) {
  if (bits < 1 || bits > 8) return false;
  if (domain == WeightDomain::kBinary) {
    if (bits != 1) return false;
    *min_value = -1, *max_value = 1;
  } else if (domain == WeightDomain::kUnsigned) {
    *min_value = 0, *max_value = (1 << bits) - 1;
  } else {
    *min_value = -(1 << (bits - 1)), *max_value = (1 << (bits - 1)) - 1;
  }
  return true;
}

bool conv_family_supports(ConvFamily family, const ConvGeometry& g, int wbits, int abits,
                          WeightDomain domain) {
  int wmin = 0, wmax = 0;
  if (!weight_value_range(domain, wbits, &wmin, &wmax) || abits < 1 || abits > 8) return false;
  if (g.out_height() <= 0 || g.out_width() <= 0) return false;
  const bool depthwise = is_depthwise(g);
  if (g.groups != 1 && !depthwise) return false;
  if (depthwise != (family == ConvFamily::kDepthwiseInt8)) return false;
  const bool int8_weights = wmin >= -128 && wmax <= 127;
  switch (family) {
    case ConvFamily::kNone:
      return false;
    case ConvFamily::kDepthwiseInt8:
      return int8_weights && g.taps() <= detail::kDwMaxTaps;
    case ConvFamily::kInt8:
    case ConvFamily::kInt8Dot:
      return int8_weights && g.kernel_h <= detail::kInt8MaxKernelH &&
             double(g.taps()) * g.in_channels <= 65793;  // exact int32 sums
    case ConvFamily::kLut:
      return abits <= 2 && wmin >= -2 && wmax <= 1 && (g.stride == 1 || g.stride == 2) &&
             g.taps() <= detail::kLutMaxTaps;
    case ConvFamily::kBitSerial:
      return wbits <= 4 && abits <= 4;
  }
  return false;
}

double estimate_conv_cycles(ConvFamily family, const ConvGeometry& g, int wbits, int abits,
                            WeightDomain domain, const KernelTable& table,
                            Destination destination) {
  ConvKernelInfo k;
  if (!conv_kernel_info(table, family, &k) ||
      !conv_family_supports(family, g, wbits, abits, domain))
    return -1;
  const double oh = g.out_height(), ow = g.out_width(), batch = g.batch;
  const double pixels = batch * oh * ow, outputs = pixels * g.out_channels;
  const double output_cycles =
      destination == Destination::kInt32 ? k.output_cycles : k.epilogue_cycles;
  switch (family) {
    case ConvFamily::kNone:
      return -1;
    case ConvFamily::kDepthwiseInt8:
      return g.macs() / k.macs_per_cycle + output_cycles * outputs;
    case ConvFamily::kInt8:
    case ConvFamily::kInt8Dot: {
      const bool dot = family == ConvFamily::kInt8Dot;
      const double depth =
          g.taps() * round_up(g.in_channels, dot ? kInt8DotChannelAlign : kInt8ChannelAlign);
      const double tiles = batch * round_up(oh * ow, k.pixel_tile);
      const double macs = tiles * round_up(g.out_channels, kInt8CoutBlock) * depth;
      return macs / k.macs_per_cycle + output_cycles * outputs;
    }
    case ConvFamily::kLut: {
      const double row_pitch = round_up(g.width + 2 * g.pad, g.stride) / g.stride;
      const double flat = batch * round_up(oh * row_pitch, k.pixel_tile);
      const double macs = flat * round_up(g.out_channels, kLutCoutBlock) * g.taps() *
                          round_up(g.in_channels, 2);
      return macs / k.macs_per_cycle + output_cycles * outputs;
    }
    case ConvFamily::kBitSerial: {
      const double macs = pixels * round_up(g.out_channels, kBitSerialCoutBlock) * g.taps() *
                          round_up(g.in_channels, 64);
      const double share = k.plane_pair_share;
      return macs * (1.0 - share + share * wbits * abits) / k.macs_per_cycle +
             output_cycles * outputs;
    }
  }
  return -1;
}

ConvKernelChoice choose_conv_kernel(const ConvGeometry& g, int wbits, int abits,
                                    WeightDomain domain, const KernelTable& table,
                                    Destination destination) {
  ConvKernelChoice best;
  for (ConvFamily family : kConvFamilies) {
    ConvKernelInfo k;
    if (!conv_kernel_info(table, family, &k) || !k.native) continue;
    const double cycles = estimate_conv_cycles(family, g, wbits, abits, domain, table, destination);
    if (cycles < 0) continue;
    if (best.family == ConvFamily::kNone || cycles < best.estimated_cycles) {
      best.family = family;
      best.kernel_name = k.name;
      best.estimated_cycles = cycles;
    }
  }
  return best;
}

}  // namespace lowbit::kernels
