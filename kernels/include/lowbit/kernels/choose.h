// Per-layer kernel choice by cost model: which convolution family (and hence
// which packed formats) runs a layer, from its geometry, its weight /
// activation bit-widths and the kernel table of this CPU. The fallback of
// the measured choice (measure.h), and what a model compiled elsewhere uses
// when nothing is measured: estimated cycles = multiply-adds actually
// computed (including each family's padding of channels, pixels and
// bit-planes) / the variant's measured multiply-adds per cycle + the
// variant's per-output cost of the output stage (raw int32 sums, or through
// the epilogue: on x86 the INT8 variants requantize in vector registers, the
// LUT and bit-serial ones value by value, which decides many low-bit
// layers). The rates live in the kernel table entries (dispatch.h,
// dispatch.cc) with where they were measured.
#pragma once

#include <cstdint>

#include "lowbit/kernels/dispatch.h"
#include "lowbit/kernels/epilogue.h"
#include "lowbit/kernels/formats.h"

namespace lowbit::kernels {

struct ConvKernelChoice {
  ConvFamily family = ConvFamily::kNone;
  const char* kernel_name = "";   // the table's variant, e.g. "conv_u8s8dot_6x16__avxvnni"
  double estimated_cycles = 0.0;  // of the whole layer on one thread
};

// Value range of weights of `bits` (1..8) in `domain`: kSigned
// [-2^(b-1), 2^(b-1)-1], kUnsigned [0, 2^b - 1], kBinary {-1, +1} (b == 1
// only). False for an impossible combination.
bool weight_value_range(WeightDomain domain, int bits, int* min_value, int* max_value);

// Whether `family`'s formats can hold this layer exactly (bit-widths,
// weight range, groups, kernel size, int32 headroom); independent of ISA.
// wbits and abits in 1..8.
bool conv_family_supports(ConvFamily family, const ConvGeometry& geometry, int wbits, int abits,
                          WeightDomain domain);

// Estimated single-thread cycles of `table`'s variant of `family` for this
// layer writing `destination` (kInt32: output_cycles per value; any other:
// epilogue_cycles, measured with kCodes), or a negative value when the
// family cannot run it (conv_family_supports). Ignores
// ConvKernelEntry::native.
double estimate_conv_cycles(ConvFamily family, const ConvGeometry& geometry, int wbits, int abits,
                            WeightDomain domain, const KernelTable& table,
                            Destination destination = Destination::kCodes);

// The cheapest family for this layer among those `table` carries natively
// (ConvKernelEntry::native). Codes of fewer bits always fit the INT8
// families, so any layer with groups == 1 or depthwise has one (weights
// within s8). The default destination is what a lowered inner layer writes.
ConvKernelChoice choose_conv_kernel(const ConvGeometry& geometry, int wbits, int abits,
                                    WeightDomain domain, const KernelTable& table,
                                    Destination destination = Destination::kCodes);
inline ConvKernelChoice choose_conv_kernel(const ConvGeometry& geometry, int wbits, int abits,
                                           WeightDomain domain = WeightDomain::kSigned) {
  return choose_conv_kernel(geometry, wbits, abits, domain, kernel_table());
}

}  // namespace lowbit::kernels
