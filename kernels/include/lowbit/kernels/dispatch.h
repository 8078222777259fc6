// The one place that knows which ISA variants exist. The CPU is detected once
// (cpuid + xgetbv on x86-64, getauxval on AArch64). x86-64 levels are
// ordered scalar < avx2 < avxvnni (AVX2 plus 256-bit VEX vpdpbusd / vpdpwssd)
// and scalar < avx2 < avx512 (AVX-512 F+BW+VL+VNNI, with the OS saving
// opmask and ZMM state; its bit-serial variant also needs VPOPCNTDQ and is
// replaced by the level below where the CPU lacks it, as is its byte-map
// variant where the CPU lacks AVX512_VBMI). Sapphire Rapids has
// both avxvnni and avx512; Ice Lake / Cascade Lake servers have avx512
// without AVX-VNNI, so there the avx512 table inherits the avx2 kernels
// instead of the avxvnni ones. A table of a higher level carries the lower
// level's kernel where it has no variant of its own. The engine picks
// kernels only through this table, so no ISA #if appears outside kernels/.
// AArch64 levels are ordered scalar < neon (baseline) < neondot (Armv8.2
// dotprod: getauxval(AT_HWCAP) & HWCAP_ASIMDDP; Cortex-A55, A76 / Neoverse-N1
// and later) < neoni8mm (dotprod and i8mm: AT_HWCAP2 & HWCAP2_I8MM; Armv8.6
// cores such as Neoverse-N2 / V1, Cortex-A710 / X2, and later); each carries
// the level below it where it has no variant of its own. Their kernels are
// compiled for their extension per function (a target pragma in the file),
// so the rest of the library runs on any Armv8.0 core.
//
// LOWBIT_KERNELS_ISA = scalar|avx2|avxvnni|avx512|neon|neondot|neoni8mm
// forces a lower level
// (see parse_isa_override). Any other value is an error: kernel_table() then
// keeps the detected level (kernels/ cannot log or fail), and
// isa_override_error() returns the message, which the engine must turn into
// a refusal to load (and lowbitd into an exit). A known level the CPU does
// not run (above the detected one, or of the other architecture) is not an
// error: it falls back to the best supported level at or below it.
#pragma once

#include <cstdint>

#include "lowbit/kernels/bytemap.h"
#include "lowbit/kernels/conv.h"

namespace lowbit::kernels {

// Values are bit positions in supported_isas(); new levels are appended.
enum class Isa : uint8_t { kScalar, kAvx2, kAvxVnni, kNeon, kAvx512, kNeonDot, kNeonI8mm };
// Every level, for code that sweeps them (tests, tools).
inline constexpr Isa kEveryIsa[] = {Isa::kScalar, Isa::kAvx2,    Isa::kAvxVnni,  Isa::kAvx512,
                                   Isa::kNeon,   Isa::kNeonDot, Isa::kNeonI8mm};

const char* isa_name(Isa isa);
// Inverse of isa_name; false for any other spelling (names are lower case).
bool isa_from_name(const char* name, Isa* isa);

// Convolution families: one per signature in conv.h.
enum class ConvFamily : uint8_t {
  kNone,           // no kernel for this layer (e.g. grouped, not depthwise)
  kInt8,           // conv_u8s8 (16-bit formats: Int8ActivationsLayout / Int8WeightsLayout)
  kInt8Dot,        // conv_u8s8dot (byte formats: Int8Dot*Layout)
  kDepthwiseInt8,  // dwconv_u8s8
  kLut,            // conv_w2a2_lut (PairPlanesLayout / LutWeightsLayout)
  kBitSerial,      // conv_anybits_bitserial (BitPlanesLayout / BitSerialWeightsLayout)
};
inline constexpr int kConvFamilyCount = 5;  // excluding kNone
// Every family, in the order the choosers consider them (the first of equal
// estimates wins).
inline constexpr ConvFamily kConvFamilies[kConvFamilyCount] = {
    ConvFamily::kInt8, ConvFamily::kInt8Dot, ConvFamily::kDepthwiseInt8, ConvFamily::kLut,
    ConvFamily::kBitSerial};

const char* conv_family_name(ConvFamily family);

// One kernel variant as a table carries it: the function, its name (the
// symbol's spelling), the ISA it is compiled for, its tile and its rate for
// the cost model (choose.h), stated together by name (designated
// initializers in dispatch.cc, one definition per variant).
//   pixel_tile x cout_tile: the tile in the kernel's name (output pixels x
//     output channels of one inner block); the cost model rounds the INT8
//     and LUT pixel counts up to pixel_tile.
//   native: false for a portable stand-in that a table carries only so every
//     table runs every format (the scalar conv_u8s8dot below a dot-product
//     ISA); choose_conv_kernel and measure_conv_kernels skip it.
//   macs_per_cycle: single-thread multiply-adds per cycle on the
//     multiply-adds the kernel actually computes (channels, pixels and
//     output channels padded to its blocks); for bit-serial kernels the rate
//     at W1A1 (one weight plane x one activation plane).
//   plane_pair_share: bit-serial only (0 elsewhere): the share of the W1A1
//     time that repeats per plane pair, so cycles per multiply-add =
//     (1 - share + share * wbits * abits) / macs_per_cycle.
//   output_cycles: cycles per output value for storing raw int32 sums
//     (Destination::kInt32).
//   epilogue_cycles: cycles per output value for an output through the
//     float epilogue, measured with requantized u8 codes (kCodes, ReLU: what
//     a lowered inner layer writes); also used for kFloat and the packed
//     plane destinations, which the x86 INT8 variants do not vectorize (they
//     cost more there than stated).
template <typename Fn>
struct ConvKernelEntry {
  ConvFamily family = ConvFamily::kNone;
  Fn fn = nullptr;
  const char* name = "";
  Isa isa = Isa::kScalar;
  int pixel_tile = 1;
  int cout_tile = 1;
  bool native = true;
  double macs_per_cycle = 1.0;
  double plane_pair_share = 0.0;
  double output_cycles = 1.0;
  double epilogue_cycles = 1.0;
};
using LutConvEntry = ConvKernelEntry<LutConvFn>;
using BitSerialConvEntry = ConvKernelEntry<BitSerialConvFn>;
using Int8ConvEntry = ConvKernelEntry<Int8ConvFn>;
using Int8DotConvEntry = ConvKernelEntry<Int8DotConvFn>;
using DwConvEntry = ConvKernelEntry<DwConvFn>;

// The byte-map variant a table carries (bytemap.h): the function, its name
// (the symbol's spelling) and the ISA it is compiled for. No rate: nothing
// chooses between byte maps (measured throughput beside each definition in
// dispatch.cc).
struct MapBytesEntry {
  MapBytesFn fn = nullptr;
  const char* name = "";
  Isa isa = Isa::kScalar;
};

// The kernels of one ISA level, one entry per convolution family (every
// table has all five; conv_u8s8dot is a non-native scalar stand-in where the
// ISA has no dot-product instruction) and the byte map (every table has one).
struct KernelTable {
  Isa isa = Isa::kScalar;
  LutConvEntry conv_w2a2_lut;
  BitSerialConvEntry conv_anybits_bitserial;
  Int8ConvEntry conv_u8s8;
  Int8DotConvEntry conv_u8s8dot;
  DwConvEntry dwconv_u8s8;
  MapBytesEntry map_bytes;
};

// The family-independent fields of `table`'s entry for `family` (fn left
// out), for code that walks every family; false for kNone.
struct ConvKernelInfo {
  ConvFamily family = ConvFamily::kNone;
  const char* name = "";
  Isa isa = Isa::kScalar;
  int pixel_tile = 1;
  int cout_tile = 1;
  bool native = false;
  double macs_per_cycle = 1.0;
  double plane_pair_share = 0.0;
  double output_cycles = 1.0;
  double epilogue_cycles = 1.0;
};
bool conv_kernel_info(const KernelTable& table, ConvFamily family, ConvKernelInfo* info);

// Best ISA this CPU supports (ignores the environment variable).
Isa detect_isa();
// Whether the CPU (and this build) can run kernels of `isa`.
bool isa_supported(Isa isa);
// The levels this CPU runs, bit (1 << int(isa)) per level.
uint32_t supported_isas();
// Table for a specific ISA, or nullptr when unsupported (tests sweep these).
const KernelTable* kernel_table_for(Isa isa);
// The table chosen once per process: detect_isa() lowered by LOWBIT_KERNELS_ISA.
const KernelTable& kernel_table();

// The level LOWBIT_KERNELS_ISA=`value` selects on a CPU whose best level is
// `detected` and which runs the levels in `supported` (bits as
// supported_isas()). A null or empty value selects `detected`. A known name
// selects that level when supported and not above `detected`; avxvnni on a
// CPU without AVX-VNNI steps down to avx2; any other known level the CPU
// does not run selects `detected`. An unknown name returns false with *out =
// detected. Pure: kernel_table() applies it to the environment once.
bool parse_isa_override(const char* value, Isa detected, uint32_t supported, Isa* out);
// nullptr when LOWBIT_KERNELS_ISA is unset, empty or a known level; else a
// message naming the value and the accepted ones, e.g.
// "LOWBIT_KERNELS_ISA='foo' is not one of scalar, avx2, avxvnni, avx512, neon,
// neondot, neoni8mm".
// Read once per process, like kernel_table().
const char* isa_override_error();

}  // namespace lowbit::kernels
