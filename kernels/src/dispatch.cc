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

// AVX-512 level: CPUID.(EAX=7, ECX=0):EBX bits 16 (F), 30 (BW), 31 (VL), ECX
// bit 11 (VNNI); XCR0 bits 1-2 (XMM, YMM) and 5-7 (opmask, ZMM0-15 upper
// halves, ZMM16-31) enabled by the OS. The level's kernels need nothing else,
// except the bit-serial one, which also checks VPOPCNTDQ (avx512_table).
bool cpu_has_avx512() {
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx) || !(ecx & (1u << 27))) return false;  // OSXSAVE
  unsigned xcr0_lo, xcr0_hi;
  __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  if ((xcr0_lo & 0xe6) != 0xe6) return false;
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
  const bool f = ebx & (1u << 16), bw = ebx & (1u << 30), vl = ebx & (1u << 31);
  const bool vnni = ecx & (1u << 11);
  return f && bw && vl && vnni;
}

// AVX512_VPOPCNTDQ: CPUID.(EAX=7, ECX=0):ECX bit 14 (ZMM state checked by
// cpu_has_avx512).
bool cpu_has_avx512_vpopcntdq() {
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
  return ecx & (1u << 14);
}
#endif

#if LOWBIT_KERNELS_ARM64
bool cpu_has_neon() { return getauxval(AT_HWCAP) & HWCAP_ASIMD; }
#endif

// A kernel's function pointer and its name, spelled once so they cannot
// drift apart: the fn / fn_name field pairs of KernelTable.
#define LOWBIT_KERNEL(fn) fn, #fn
#define LOWBIT_SET_KERNEL(table, field, fn) (table.field = fn, table.field##_name = #fn)

const KernelTable kScalarTable = {
    Isa::kScalar,
    LOWBIT_KERNEL(conv_w2a2_lut_64x4__scalar), 64, 4,
    LOWBIT_KERNEL(conv_anybits_bitserial_64x4__scalar), 64, 4,
    LOWBIT_KERNEL(conv_u8s8_6x16__scalar),
    LOWBIT_KERNEL(dwconv_u8s8_1x16__scalar),
    LOWBIT_KERNEL(conv_u8s8dot_6x16__scalar), false,
};
#if LOWBIT_KERNELS_X86
const KernelTable kAvx2Table = {
    Isa::kAvx2,
    LOWBIT_KERNEL(conv_w2a2_lut_64x4__avx2), 64, 4,
    LOWBIT_KERNEL(conv_anybits_bitserial_64x4__avx2), 64, 4,
    LOWBIT_KERNEL(conv_u8s8_6x16__avx2),
    LOWBIT_KERNEL(dwconv_u8s8_1x16__avx2),
    LOWBIT_KERNEL(conv_u8s8dot_6x16__scalar), false,
};
const KernelTable kAvxVnniTable = {
    Isa::kAvxVnni,
    LOWBIT_KERNEL(conv_w2a2_lut_64x4__avx2), 64, 4,
    LOWBIT_KERNEL(conv_anybits_bitserial_64x4__avx2), 64, 4,
    LOWBIT_KERNEL(conv_u8s8_6x16__avxvnni),
    LOWBIT_KERNEL(dwconv_u8s8_1x16__avxvnni),
    LOWBIT_KERNEL(conv_u8s8dot_6x16__avxvnni), true,
};
#endif
#if LOWBIT_KERNELS_ARM64
const KernelTable kNeonTable = {
    Isa::kNeon,
    LOWBIT_KERNEL(conv_w2a2_lut_64x4__neon), 64, 4,
    LOWBIT_KERNEL(conv_anybits_bitserial_64x4__neon), 64, 4,
    LOWBIT_KERNEL(conv_u8s8_6x16__neon),
    LOWBIT_KERNEL(dwconv_u8s8_1x16__neon),
    LOWBIT_KERNEL(conv_u8s8dot_6x16__scalar), false,
};
#endif

// Order of the levels for LOWBIT_KERNELS_ISA (NEON is the AArch64 top level).
int isa_rank(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return 0;
    case Isa::kAvx2: return 1;
    case Isa::kAvxVnni: return 2;
    case Isa::kAvx512: return 3;
    case Isa::kNeon: return 1;
  }
  return 0;
}

#if LOWBIT_KERNELS_X86
struct X86Features {
  bool avx2 = false, avx_vnni = false, avx512 = false, avx512_vpopcntdq = false;
};
const X86Features& x86_features() {
  static const X86Features f = [] {
    X86Features r;
    r.avx2 = cpu_has_avx2();
    r.avx_vnni = r.avx2 && cpu_has_avx_vnni();
    r.avx512 = r.avx2 && cpu_has_avx512();
    r.avx512_vpopcntdq = r.avx512 && cpu_has_avx512_vpopcntdq();
    return r;
  }();
  return f;
}

// The AVX-512 level: its own variants over the next level down, which is
// AVX-VNNI where the CPU has it (Sapphire Rapids, Zen 5) and AVX2 otherwise
// (Ice Lake / Cascade Lake servers, Zen 4); the bit-serial variant only with
// VPOPCNTDQ (not on Skylake-X / Cascade Lake).
const KernelTable& avx512_table() {
  static const KernelTable table = [] {
    const X86Features& f = x86_features();
    KernelTable t = f.avx_vnni ? kAvxVnniTable : kAvx2Table;
    t.isa = Isa::kAvx512;
    LOWBIT_SET_KERNEL(t, conv_u8s8dot, conv_u8s8dot_8x32__avx512);
    t.int8_dot_native = true;
    LOWBIT_SET_KERNEL(t, dwconv_u8s8, dwconv_u8s8_4x32__avx512);
    if (f.avx512_vpopcntdq)
      LOWBIT_SET_KERNEL(t, conv_anybits_bitserial, conv_anybits_bitserial_64x4__avx512);
    return t;
  }();
  return table;
}
#endif

const KernelTable& choose_table() {
  Isa isa = detect_isa();
  if (const char* forced = std::getenv("LOWBIT_KERNELS_ISA")) {
    Isa wanted = isa;
    if (std::strcmp(forced, "scalar") == 0) wanted = Isa::kScalar;
    else if (std::strcmp(forced, "avx2") == 0) wanted = Isa::kAvx2;
    else if (std::strcmp(forced, "avxvnni") == 0) wanted = Isa::kAvxVnni;
    else if (std::strcmp(forced, "avx512") == 0) wanted = Isa::kAvx512;
    else if (std::strcmp(forced, "neon") == 0) wanted = Isa::kNeon;
    // Never above the detected level; an unsupported level below it (avxvnni
    // on an AVX-512 CPU without AVX-VNNI) steps down to avx2.
    if (wanted == Isa::kAvxVnni && !isa_supported(wanted)) wanted = Isa::kAvx2;
    if (isa_supported(wanted) && isa_rank(wanted) <= isa_rank(isa)) isa = wanted;
  }
  return *kernel_table_for(isa);
}

#undef LOWBIT_SET_KERNEL
#undef LOWBIT_KERNEL

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return "scalar";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvxVnni: return "avxvnni";
    case Isa::kNeon: return "neon";
    case Isa::kAvx512: return "avx512";
  }
  return "unknown";
}

Isa detect_isa() {
  static const Isa detected = [] {
#if LOWBIT_KERNELS_X86
    const X86Features& f = x86_features();
    if (f.avx512) return Isa::kAvx512;
    if (f.avx_vnni) return Isa::kAvxVnni;
    if (f.avx2) return Isa::kAvx2;
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
      if (x86_features().avx2) return &kAvx2Table;
#endif
      return nullptr;
    case Isa::kAvxVnni:
#if LOWBIT_KERNELS_X86
      if (x86_features().avx_vnni) return &kAvxVnniTable;
#endif
      return nullptr;
    case Isa::kAvx512:
#if LOWBIT_KERNELS_X86
      if (x86_features().avx512) return &avx512_table();
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
