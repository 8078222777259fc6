// The one place that knows which ISA variants exist. The CPU is detected once
// (cpuid + xgetbv on x86-64, getauxval on AArch64); LOWBIT_KERNELS_ISA =
// scalar|avx2|avxvnni|avx512|neon forces a lower ISA (a request above what the
// CPU supports falls back to the best supported one). x86-64 levels are
// ordered scalar < avx2 < avxvnni (AVX2 plus 256-bit VEX vpdpbusd / vpdpwssd)
// and scalar < avx2 < avx512 (AVX-512 F+BW+VL+VNNI, with the OS saving
// opmask and ZMM state; its bit-serial variant also needs VPOPCNTDQ and is
// replaced by the level below where the CPU lacks it). Sapphire Rapids has both avxvnni and avx512; Ice
// Lake / Cascade Lake servers have avx512 without AVX-VNNI, so there the
// avx512 table inherits the avx2 kernels instead of the avxvnni ones. A
// forced level the CPU lacks falls back to the best supported level below it.
// A table of a higher level carries the lower level's kernel where it has no
// variant of its own. The engine picks kernels only through
// this table, so no ISA #if appears outside kernels/.
#pragma once

#include "lowbit/kernels/conv.h"

namespace lowbit::kernels {

enum class Isa : uint8_t { kScalar, kAvx2, kAvxVnni, kNeon, kAvx512 };

const char* isa_name(Isa isa);

struct KernelTable {
  Isa isa = Isa::kScalar;
  LutConvFn conv_w2a2_lut = nullptr;
  const char* conv_w2a2_lut_name = "";
  int lut_pixel_tile = 64;
  int lut_cout_tile = 4;
  BitSerialConvFn conv_anybits_bitserial = nullptr;
  const char* conv_anybits_bitserial_name = "";
  int bitserial_pixel_tile = 64;
  int bitserial_cout_tile = 4;
  Int8ConvFn conv_u8s8 = nullptr;
  const char* conv_u8s8_name = "";
  DwConvFn dwconv_u8s8 = nullptr;
  const char* dwconv_u8s8_name = "";
  // INT8 on the byte formats (Int8Dot*Layout). Only a dot-product ISA makes it
  // faster than conv_u8s8; elsewhere this is the scalar variant (correct, for
  // tests and completeness) and int8_dot_native is false.
  Int8DotConvFn conv_u8s8dot = nullptr;
  const char* conv_u8s8dot_name = "";
  bool int8_dot_native = false;
};

// Best ISA this CPU supports (ignores the environment variable).
Isa detect_isa();
// Whether the CPU (and this build) can run kernels of `isa`.
bool isa_supported(Isa isa);
// Table for a specific ISA, or nullptr when unsupported (tests sweep these).
const KernelTable* kernel_table_for(Isa isa);
// The table chosen once per process: detect_isa() lowered by LOWBIT_KERNELS_ISA.
const KernelTable& kernel_table();

}  // namespace lowbit::kernels
