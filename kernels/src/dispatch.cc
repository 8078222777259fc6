// CPU detection and the kernel tables: the only file that knows which ISA
// variants this build carries.
#include "lowbit/kernels/dispatch.h"

#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#define LOWBIT_KERNELS_X86 1
#elif defined(__aarch64__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1 << 1)
#endif
#define LOWBIT_KERNELS_ARM64 1
#endif

namespace lowbit::kernels {
namespace {

#if LOWBIT_KERNELS_X86
bool cpu_has_avx2() {
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return false;
  const bool osxsave = ecx & (1u << 27), avx = ecx & (1u << 28), fma = ecx & (1u << 12);
  const bool popcnt = ecx & (1u << 23);
  if (!osxsave || !avx || !fma || !popcnt) return false;
  unsigned xcr0_lo, xcr0_hi;
  __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  if ((xcr0_lo & 0x6) != 0x6) return false;  // XMM and YMM state enabled by the OS
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
  return ebx & (1u << 5);
}

// AVX-VNNI: CPUID.(EAX=7, ECX=1):EAX bit 4 (VEX-encoded vpdpbusd / vpdpwssd
// on ymm; only the YMM state checked by cpu_has_avx2 is needed).
bool cpu_has_avx_vnni() {
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx) || eax < 7) return false;
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) || eax < 1) return false;  // max subleaf
  __cpuid_count(7, 1, eax, ebx, ecx, edx);
  return eax & (1u << 4);
}
#endif

#if LOWBIT_KERNELS_ARM64
bool cpu_has_neon() { return getauxval(AT_HWCAP) & HWCAP_ASIMD; }
#endif

const KernelTable kScalarTable = {
    Isa::kScalar,
    conv_w2a2_lut_64x4__scalar, "conv_w2a2_lut_64x4__scalar", 64, 4,
    conv_anybits_bitserial_64x4__scalar, "conv_anybits_bitserial_64x4__scalar", 64, 4,
    conv_u8s8_6x16__scalar, "conv_u8s8_6x16__scalar",
    dwconv_u8s8_1x16__scalar, "dwconv_u8s8_1x16__scalar",
    conv_u8s8dot_6x16__scalar, "conv_u8s8dot_6x16__scalar", false,
};
#if LOWBIT_KERNELS_X86
const KernelTable kAvx2Table = {
    Isa::kAvx2,
    conv_w2a2_lut_64x4__avx2, "conv_w2a2_lut_64x4__avx2", 64, 4,
    conv_anybits_bitserial_64x4__avx2, "conv_anybits_bitserial_64x4__avx2", 64, 4,
    conv_u8s8_6x16__avx2, "conv_u8s8_6x16__avx2",
    dwconv_u8s8_1x16__avx2, "dwconv_u8s8_1x16__avx2",
    conv_u8s8dot_6x16__scalar, "conv_u8s8dot_6x16__scalar", false,
};
const KernelTable kAvxVnniTable = {
    Isa::kAvxVnni,
    conv_w2a2_lut_64x4__avx2, "conv_w2a2_lut_64x4__avx2", 64, 4,
    conv_anybits_bitserial_64x4__avx2, "conv_anybits_bitserial_64x4__avx2", 64, 4,
    conv_u8s8_6x16__avxvnni, "conv_u8s8_6x16__avxvnni",
    dwconv_u8s8_1x16__avxvnni, "dwconv_u8s8_1x16__avxvnni",
    conv_u8s8dot_6x16__avxvnni, "conv_u8s8dot_6x16__avxvnni", true,
};
#endif
#if LOWBIT_KERNELS_ARM64
const KernelTable kNeonTable = {
    Isa::kNeon,
    conv_w2a2_lut_64x4__neon, "conv_w2a2_lut_64x4__neon", 64, 4,
    conv_anybits_bitserial_64x4__neon, "conv_anybits_bitserial_64x4__neon", 64, 4,
    conv_u8s8_6x16__neon, "conv_u8s8_6x16__neon",
    dwconv_u8s8_1x16__neon, "dwconv_u8s8_1x16__neon",
    conv_u8s8dot_6x16__scalar, "conv_u8s8dot_6x16__scalar", false,
};
#endif

const KernelTable& choose_table() {
  Isa isa = detect_isa();
  if (const char* forced = std::getenv("LOWBIT_KERNELS_ISA")) {
    Isa wanted = isa;
    if (std::strcmp(forced, "scalar") == 0) wanted = Isa::kScalar;
    else if (std::strcmp(forced, "avx2") == 0) wanted = Isa::kAvx2;
    else if (std::strcmp(forced, "avxvnni") == 0) wanted = Isa::kAvxVnni;
    else if (std::strcmp(forced, "neon") == 0) wanted = Isa::kNeon;
    if (isa_supported(wanted)) isa = wanted;
  }
  return *kernel_table_for(isa);
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return "scalar";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvxVnni: return "avxvnni";
    case Isa::kNeon: return "neon";
  }
  return "unknown";
}

Isa detect_isa() {
  static const Isa detected = [] {
#if LOWBIT_KERNELS_X86
    if (cpu_has_avx2()) return cpu_has_avx_vnni() ? Isa::kAvxVnni : Isa::kAvx2;
#elif LOWBIT_KERNELS_ARM64
    if (cpu_has_neon()) return Isa::kNeon;
#endif
    return Isa::kScalar;
  }();
  return detected;
}

bool isa_supported(Isa isa) {
  if (isa == Isa::kScalar) return true;
  return kernel_table_for(isa) != nullptr;
}

const KernelTable* kernel_table_for(Isa isa) {
  switch (isa) {
    case Isa::kScalar:
      return &kScalarTable;
    case Isa::kAvx2:
#if LOWBIT_KERNELS_X86
      if (detect_isa() == Isa::kAvx2 || detect_isa() == Isa::kAvxVnni) return &kAvx2Table;
#endif
      return nullptr;
    case Isa::kAvxVnni:
#if LOWBIT_KERNELS_X86
      if (detect_isa() == Isa::kAvxVnni) return &kAvxVnniTable;
#endif
      return nullptr;
    case Isa::kNeon:
#if LOWBIT_KERNELS_ARM64
      if (detect_isa() == Isa::kNeon) return &kNeonTable;
#endif
      return nullptr;
  }
  return nullptr;
}

const KernelTable& kernel_table() {
  static const KernelTable& table = choose_table();
  return table;
}

}  // namespace lowbit::kernels
