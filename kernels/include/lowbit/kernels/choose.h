// Per-layer kernel choice, made once at model load: which convolution family
// (and hence which packed formats) runs a layer, from its geometry, its
// weight / activation bit-widths and the kernel table of this CPU. A cost
// model, not a calibration run: estimated cycles = multiply-adds actually
// computed (including each family's padding of channels, pixels and
// bit-planes) / the family's measured multiply-adds per cycle on that ISA
// + a per-output cost for the epilogue. The rates live in choose.cc with
// where they were measured.
#pragma once

#include <cstdint>

#include "lowbit/kernels/dispatch.h"
#include "lowbit/kernels/formats.h"

namespace lowbit::kernels {

enum class ConvFamily : uint8_t {
  kNone,           // no kernel for this layer (e.g. grouped, not depthwise)
  kInt8,           // conv_u8s8 (16-bit formats: Int8ActivationsLayout / Int8WeightsLayout)
  kInt8Dot,        // conv_u8s8dot (byte formats: Int8Dot*Layout)
  kDepthwiseInt8,  // dwconv_u8s8
  kLut,            // conv_w2a2_lut (PairPlanesLayout / LutWeightsLayout)
  kBitSerial,      // conv_anybits_bitserial (BitPlanesLayout / BitSerialWeightsLayout)
};

const char* conv_family_name(ConvFamily family);

struct ConvKernelChoice {
  ConvFamily family = ConvFamily::kNone;
  const char* kernel_name = "";   // the table's variant, e.g. "conv_u8s8dot_6x16__avxvnni"
  double estimated_cycles = 0.0;  // of the whole layer on one thread
};

// Estimated single-thread cycles of `family` for this layer on `isa`, or a
// negative value when the family cannot run it (bit-widths, domain, groups).
// wbits and abits in 1..8; weights in `domain` (kSigned for 8 bits).
double estimate_conv_cycles(ConvFamily family, const ConvGeometry& geometry, int wbits, int abits,
                            WeightDomain domain, Isa isa);

// The cheapest family for this layer among those `table` carries natively
// (conv_u8s8dot only where table.int8_dot_native). Codes of fewer bits always
// fit the INT8 families, so any layer with groups == 1 or depthwise has one.
ConvKernelChoice choose_conv_kernel(const ConvGeometry& geometry, int wbits, int abits,
                                    WeightDomain domain, const KernelTable& table);
inline ConvKernelChoice choose_conv_kernel(const ConvGeometry& geometry, int wbits, int abits,
                                           WeightDomain domain = WeightDomain::kSigned) {
  return choose_conv_kernel(geometry, wbits, abits, domain, kernel_table());
}

}  // namespace lowbit::kernels
