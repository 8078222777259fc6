// CPU detection and the kernel tables: the only file that knows which ISA
// variants this build carries.
#include "lowbit/kernels/dispatch.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#define LOWBIT_KERNELS_X86 1
#elif defined(__aarch64__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1 << 1)
#endif
// Linux arm64 hwcaps (asm/hwcap.h), for C libraries whose headers predate them.
#ifndef AT_HWCAP2
#define AT_HWCAP2 26
#endif
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)  // sdot / udot
#endif
#ifndef HWCAP2_I8MM
#define HWCAP2_I8MM (1 << 13)  // usdot / sudot, smmla / ummla / usmmla
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

// AVX512_VBMI (vpermb / vpermi2b): CPUID.(EAX=7, ECX=0):ECX bit 1 (ZMM state
// checked by cpu_has_avx512). Ice Lake, Sapphire Rapids, Zen 4 have it;
// Skylake-X / Cascade Lake do not.
bool cpu_has_avx512_vbmi() {
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
  return ecx & (1u << 1);
}
#endif

#if LOWBIT_KERNELS_ARM64
// The kernel of a level runs only where the kernel reports the extension
// (HWCAP bits are set by Linux from the ID registers, per process).
struct ArmFeatures {
  bool neon = false, dotprod = false, i8mm = false;
};
const ArmFeatures& arm_features() {
  static const ArmFeatures f = [] {
    ArmFeatures r;
    const unsigned long hwcap = getauxval(AT_HWCAP), hwcap2 = getauxval(AT_HWCAP2);
    r.neon = hwcap & HWCAP_ASIMD;
    r.dotprod = r.neon && (hwcap & HWCAP_ASIMDDP);
    r.i8mm = r.dotprod && (hwcap2 & HWCAP2_I8MM);
    return r;
  }();
  return f;
}
#endif

// One definition per kernel variant: kernel, name, ISA, tile and cost-model
// rate together (field meanings in dispatch.h). The tables below refer to
// these by name, so a level that inherits a lower level's kernel inherits its
// measured rate too.
//
// Rates (macs_per_cycle, plane_pair_share): x86-64 figures measured with
// bench/kernels on a Sapphire Rapids-class Xeon (AVX2 + AVX-VNNI + AVX-512
// VNNI, clock 2.8 GHz from a dependent-add chain), single thread, 3x3 layers
// with K >= 288 unless stated; output_cycles ~1 cycle per int32 output value
// for the INT8 and bit-serial output stages and ~1.5 for the LUT one (flush
// of 16-bit sums and the padded-row store).
// epilogue_cycles: measured with measure_conv_kernels (kCodes minus kInt32
// time, plus output_cycles) on a Sapphire Rapids Xeon whose dependent-add
// clock read 4.0 GHz (there the rates above reproduce the measured int32
// times of the AVX2 / AVX-VNNI kernels within 5%, of the AVX-512 ones within
// 25%), NanoDet 3x3 and 1x1 layers: the x86 INT8 variants' vector kCodes
// stage adds ~0.5 cycle per value; the LUT and bit-serial kernels write
// through the scalar store_tile (epilogue, lrint and clamp per value): +11-15
// cycles at W2A2, +25-30 at W1A1 (sums centred on zero make the ReLU and
// clamp branches unpredictable); scalar and NEON INT8 take that scalar path
// too (estimated). The exact requantization (Epilogue::sum_offset and
// out_scale, the fake-quantized layers' stage) adds ~0.1 cycle per value to
// the AVX-512 stages and ~0.15-0.35 to the AVX2 ones (measured in one process
// against the multiplier stage, NanoDet shapes, 2.5 GHz; not in the rates
// below). The NEON and scalar rates are estimates, not measurements
// (no ARM hardware here): they only keep the families in their expected
// order (llvm-mca figures in KERNELS.md).
//
// Byte maps (map_bytes__*) carry no rate (nothing chooses between them);
// the figures beside them are single-thread throughput on a Sapphire Rapids
// Xeon (4.0 GHz, imul-chain clock), 16 KB in L1, random table and codes.
//
// The name of a kernel is spelled once, with its function.
#define LOWBIT_KERNEL_FN(kernel) .fn = ::lowbit::kernels::kernel, .name = #kernel

namespace variant {

// --- portable scalar: every architecture ---------------------------------
constexpr LutConvEntry conv_w2a2_lut_64x4__scalar = {
    .family = ConvFamily::kLut,
    LOWBIT_KERNEL_FN(conv_w2a2_lut_64x4__scalar),
    .isa = Isa::kScalar,
    .pixel_tile = 64,
    .cout_tile = 4,
    .macs_per_cycle = 0.5,  // estimate: one table byte per multiply-add pair, scalar loads
    .output_cycles = 1.5,
    .epilogue_cycles = 20,  // estimate: scalar output stage
};
constexpr BitSerialConvEntry conv_anybits_bitserial_64x4__scalar = {
    .family = ConvFamily::kBitSerial,
    LOWBIT_KERNEL_FN(conv_anybits_bitserial_64x4__scalar),
    .isa = Isa::kScalar,
    .pixel_tile = 64,
    .cout_tile = 4,
    .macs_per_cycle = 2,
    .plane_pair_share = 0.3,  // estimate: 64-bit AND + popcnt
    .epilogue_cycles = 22,    // estimate: scalar output stage
};
constexpr Int8ConvEntry conv_u8s8_6x16__scalar = {
    .family = ConvFamily::kInt8,
    LOWBIT_KERNEL_FN(conv_u8s8_6x16__scalar),
    .isa = Isa::kScalar,
    .pixel_tile = 6,
    .cout_tile = 16,
    .macs_per_cycle = 1,    // estimate
    .epilogue_cycles = 20,  // estimate: scalar output stage
};
// Stand-in below the dot-product ISAs: the byte formats run everywhere, but
// conv_u8s8 is the faster choice there.
constexpr Int8DotConvEntry conv_u8s8dot_6x16__scalar = {
    .family = ConvFamily::kInt8Dot,
    LOWBIT_KERNEL_FN(conv_u8s8dot_6x16__scalar),
    .isa = Isa::kScalar,
    .pixel_tile = 6,
    .cout_tile = 16,
    .native = false,
    .macs_per_cycle = 1,    // estimate
    .epilogue_cycles = 20,  // estimate: scalar output stage
};
constexpr DwConvEntry dwconv_u8s8_1x16__scalar = {
    .family = ConvFamily::kDepthwiseInt8,
    LOWBIT_KERNEL_FN(dwconv_u8s8_1x16__scalar),
    .isa = Isa::kScalar,
    .pixel_tile = 1,
    .cout_tile = 16,
    .macs_per_cycle = 1,    // estimate
    .epilogue_cycles = 20,  // estimate: scalar output stage
};
// ~4 GB/s (~1.1 bytes per cycle: one table load and one store per byte).
constexpr MapBytesEntry map_bytes__scalar = {
    LOWBIT_KERNEL_FN(map_bytes__scalar),
    .isa = Isa::kScalar,
};

#if LOWBIT_KERNELS_X86
// --- AVX2 (also inherited by the AVX-VNNI and AVX-512 levels) -------------
constexpr LutConvEntry conv_w2a2_lut_64x4__avx2 = {
    .family = ConvFamily::kLut,
    LOWBIT_KERNEL_FN(conv_w2a2_lut_64x4__avx2),
    .isa = Isa::kAvx2,
    .pixel_tile = 64,
    .cout_tile = 4,
    .macs_per_cycle = 55,  // measured, vpshufb weight-pair tables
    .output_cycles = 1.5,
    .epilogue_cycles = 20,  // measured: scalar output stage
};
// Measured time per multiply-add ~ (0.7 + 0.3 * wbits * abits) / 25.
constexpr BitSerialConvEntry conv_anybits_bitserial_64x4__avx2 = {
    .family = ConvFamily::kBitSerial,
    LOWBIT_KERNEL_FN(conv_anybits_bitserial_64x4__avx2),
    .isa = Isa::kAvx2,
    .pixel_tile = 64,
    .cout_tile = 4,
    .macs_per_cycle = 25,
    .plane_pair_share = 0.3,
    .epilogue_cycles = 22,  // as the AVX-512 variant: same scalar output stage
};
constexpr Int8ConvEntry conv_u8s8_6x16__avx2 = {
    .family = ConvFamily::kInt8,
    LOWBIT_KERNEL_FN(conv_u8s8_6x16__avx2),
    .isa = Isa::kAvx2,
    .pixel_tile = 6,
    .cout_tile = 16,
    .macs_per_cycle = 22,    // measured, vpmaddwd on 16-bit operands
    .epilogue_cycles = 1.5,  // vector kCodes stage
};
// MobileNetV2 3x3 depthwise, 144..576 channels, int32 or u8 output.
constexpr DwConvEntry dwconv_u8s8_1x16__avx2 = {
    .family = ConvFamily::kDepthwiseInt8,
    LOWBIT_KERNEL_FN(dwconv_u8s8_1x16__avx2),
    .isa = Isa::kAvx2,
    .pixel_tile = 1,
    .cout_tile = 16,
    .macs_per_cycle = 4.5,   // measured
    .epilogue_cycles = 1.5,  // vector kCodes stage
};
// ~6.5 GB/s (~1.6 bytes per cycle: 46 vector uops per 32 bytes).
constexpr MapBytesEntry map_bytes__avx2 = {
    LOWBIT_KERNEL_FN(map_bytes__avx2),
    .isa = Isa::kAvx2,
};

// --- AVX-VNNI (256-bit VEX vpdpbusd / vpdpwssd) ---------------------------
constexpr Int8ConvEntry conv_u8s8_6x16__avxvnni = {
    .family = ConvFamily::kInt8,
    LOWBIT_KERNEL_FN(conv_u8s8_6x16__avxvnni),
    .isa = Isa::kAvxVnni,
    .pixel_tile = 6,
    .cout_tile = 16,
    .macs_per_cycle = 31,    // measured, vpdpwssd
    .epilogue_cycles = 1.5,  // measured, vector kCodes stage
};
constexpr Int8DotConvEntry conv_u8s8dot_6x16__avxvnni = {
    .family = ConvFamily::kInt8Dot,
    LOWBIT_KERNEL_FN(conv_u8s8dot_6x16__avxvnni),
    .isa = Isa::kAvxVnni,
    .pixel_tile = 6,
    .cout_tile = 16,
    .macs_per_cycle = 61,    // measured, ymm vpdpbusd
    .epilogue_cycles = 1.5,  // vector kCodes stage
};
constexpr DwConvEntry dwconv_u8s8_1x16__avxvnni = {
    .family = ConvFamily::kDepthwiseInt8,
    LOWBIT_KERNEL_FN(dwconv_u8s8_1x16__avxvnni),
    .isa = Isa::kAvxVnni,
    .pixel_tile = 1,
    .cout_tile = 16,
    .macs_per_cycle = 5,     // measured, MobileNetV2 3x3 depthwise as above
    .epilogue_cycles = 1.5,  // vector kCodes stage
};

// --- AVX-512 F+BW+VL+VNNI (bit-serial: + VPOPCNTDQ) -----------------------
constexpr Int8DotConvEntry conv_u8s8dot_8x32__avx512 = {
    .family = ConvFamily::kInt8Dot,
    LOWBIT_KERNEL_FN(conv_u8s8dot_8x32__avx512),
    .isa = Isa::kAvx512,
    .pixel_tile = 8,
    .cout_tile = 32,
    .macs_per_cycle = 118,   // measured, zmm vpdpbusd
    .epilogue_cycles = 1.5,  // measured, vector kCodes stage
};
constexpr DwConvEntry dwconv_u8s8_4x32__avx512 = {
    .family = ConvFamily::kDepthwiseInt8,
    LOWBIT_KERNEL_FN(dwconv_u8s8_4x32__avx512),
    .isa = Isa::kAvx512,
    .pixel_tile = 4,
    .cout_tile = 32,
    .macs_per_cycle = 8,     // measured, zmm vpdpwssd, MobileNetV2 3x3 depthwise as above
    .epilogue_cycles = 1.5,  // vector kCodes stage
};
// vpopcntq, register tile 2 pixels x 16 channels: time per multiply-add ~
// (0.24 + 0.76 * wbits * abits) / 200 (measured 128-224, 42-57, 23-27,
// 14-17 multiply-adds per cycle at W1A1..W4A4, the higher figures at 256+
// input channels).
constexpr BitSerialConvEntry conv_anybits_bitserial_64x4__avx512 = {
    .family = ConvFamily::kBitSerial,
    LOWBIT_KERNEL_FN(conv_anybits_bitserial_64x4__avx512),
    .isa = Isa::kAvx512,
    .pixel_tile = 64,
    .cout_tile = 4,
    .macs_per_cycle = 200,
    .plane_pair_share = 0.76,
    .epilogue_cycles = 22,  // measured: scalar output stage
};

// --- AVX-512 VBMI (only where the CPU has it) ----------------------------
// ~48 GB/s (~12 bytes per cycle; ~27 GB/s on 1 MB to another 1 MB, from L2).
constexpr MapBytesEntry map_bytes__avx512vbmi = {
    LOWBIT_KERNEL_FN(map_bytes__avx512vbmi),
    .isa = Isa::kAvx512,
};
#endif  // LOWBIT_KERNELS_X86

#if LOWBIT_KERNELS_ARM64
// --- NEON (baseline on AArch64); rates are estimates --------------------
constexpr LutConvEntry conv_w2a2_lut_64x4__neon = {
    .family = ConvFamily::kLut,
    LOWBIT_KERNEL_FN(conv_w2a2_lut_64x4__neon),
    .isa = Isa::kNeon,
    .pixel_tile = 64,
    .cout_tile = 4,
    .macs_per_cycle = 16,  // estimate (llvm-mca: 8-15.5 on A53..A72)
    .output_cycles = 1.5,
    .epilogue_cycles = 20,  // estimate: scalar output stage
};
constexpr BitSerialConvEntry conv_anybits_bitserial_64x4__neon = {
    .family = ConvFamily::kBitSerial,
    LOWBIT_KERNEL_FN(conv_anybits_bitserial_64x4__neon),
    .isa = Isa::kNeon,
    .pixel_tile = 64,
    .cout_tile = 4,
    .macs_per_cycle = 60,      // estimate (llvm-mca W1A1: 25 A53, 26 A55, 63 A72)
    .plane_pair_share = 0.8,   // estimate (W2A2: 7.2 A53, 7.1 A55, 18 A72)
    .epilogue_cycles = 22,    // estimate: scalar output stage
};
constexpr Int8ConvEntry conv_u8s8_6x16__neon = {
    .family = ConvFamily::kInt8,
    LOWBIT_KERNEL_FN(conv_u8s8_6x16__neon),
    .isa = Isa::kNeon,
    .pixel_tile = 6,
    .cout_tile = 16,
    .macs_per_cycle = 3.5,  // estimate (llvm-mca 2.2 A53, 3.1 A55, 4.0 A72: smlal limit 4)
    .epilogue_cycles = 20,  // estimate: scalar output stage
};
constexpr Int8DotConvEntry conv_u8s8dot_2x16__neon = {
    .family = ConvFamily::kInt8Dot,
    LOWBIT_KERNEL_FN(conv_u8s8dot_2x16__neon),
    .isa = Isa::kNeon,
    .pixel_tile = 2,
    .cout_tile = 16,
    .macs_per_cycle = 7.5,  // estimate (llvm-mca: 3.0 A53, 3.4 A55, 7.9 A72)
    .epilogue_cycles = 20,  // estimate: scalar output stage
};
constexpr DwConvEntry dwconv_u8s8_1x16__neon = {
    .family = ConvFamily::kDepthwiseInt8,
    LOWBIT_KERNEL_FN(dwconv_u8s8_1x16__neon),
    .isa = Isa::kNeon,
    .pixel_tile = 1,
    .cout_tile = 16,
    .macs_per_cycle = 3,    // estimate
    .epilogue_cycles = 20,  // estimate: scalar output stage
};
// Not measured (no ARM hardware; tested under qemu).
constexpr MapBytesEntry map_bytes__neon = {
    LOWBIT_KERNEL_FN(map_bytes__neon),
    .isa = Isa::kNeon,
};

// --- Armv8.2 dotprod (sdot) ----------------------------------------------
// llvm-mca-19 of the inner loop (4 k-quads, 64 sdot + 4 eor): 30.0 MAC/cycle
// on neoverse-n1 and cortex-a76 (bound: the two vector pipes, 34 cycles per
// 1024 multiply-adds), 11.6 on the in-order cortex-a55 (its model issues
// loads and 128-bit sdot in separate cycles: 68 + 20 per iteration), 19.7 on
// cortex-a510. A static estimate of the inner loop only (no caches, no
// memory stalls).
constexpr Int8DotConvEntry conv_u8s8dot_4x16__neondot = {
    .family = ConvFamily::kInt8Dot,
    LOWBIT_KERNEL_FN(conv_u8s8dot_4x16__neondot),
    .isa = Isa::kNeonDot,
    .pixel_tile = 4,
    .cout_tile = 16,
    .macs_per_cycle = 28,   // estimate (llvm-mca 30 on N1, less the per-item correction add)
    .epilogue_cycles = 20,  // estimate: scalar output stage
};

// --- Armv8.6 i8mm (usmmla) -----------------------------------------------
// llvm-mca-19 of the inner loop (2 k-octets, 32 usmmla + 20 zip): 39.2
// MAC/cycle on neoverse-n2, cortex-a710, cortex-x2 (the sdot variant: 30.0;
// bound: the two vector pipes, 26 cycles per 1024 multiply-adds), 78 on
// neoverse-v1 / v2 (sdot: 60), 27.7 on the in-order cortex-a510 (sdot: 19.7).
// Static estimates, as above.
constexpr Int8DotConvEntry conv_u8s8dot_4x16__neoni8mm = {
    .family = ConvFamily::kInt8Dot,
    LOWBIT_KERNEL_FN(conv_u8s8dot_4x16__neoni8mm),
    .isa = Isa::kNeonI8mm,
    .pixel_tile = 4,
    .cout_tile = 16,
    .macs_per_cycle = 38,   // estimate (llvm-mca 39 on N2 / A710 / X2)
    .epilogue_cycles = 20,  // estimate: scalar output stage
};
#endif  // LOWBIT_KERNELS_ARM64

}  // namespace variant

#undef LOWBIT_KERNEL_FN

constexpr KernelTable kScalarTable = {
    .isa = Isa::kScalar,
    .conv_w2a2_lut = variant::conv_w2a2_lut_64x4__scalar,
    .conv_anybits_bitserial = variant::conv_anybits_bitserial_64x4__scalar,
    .conv_u8s8 = variant::conv_u8s8_6x16__scalar,
    .conv_u8s8dot = variant::conv_u8s8dot_6x16__scalar,
    .dwconv_u8s8 = variant::dwconv_u8s8_1x16__scalar,
    .map_bytes = variant::map_bytes__scalar,
};
#if LOWBIT_KERNELS_X86
constexpr KernelTable kAvx2Table = {
    .isa = Isa::kAvx2,
    .conv_w2a2_lut = variant::conv_w2a2_lut_64x4__avx2,
    .conv_anybits_bitserial = variant::conv_anybits_bitserial_64x4__avx2,
    .conv_u8s8 = variant::conv_u8s8_6x16__avx2,
    .conv_u8s8dot = variant::conv_u8s8dot_6x16__scalar,
    .dwconv_u8s8 = variant::dwconv_u8s8_1x16__avx2,
    .map_bytes = variant::map_bytes__avx2,
};
constexpr KernelTable kAvxVnniTable = {
    .isa = Isa::kAvxVnni,
    .conv_w2a2_lut = variant::conv_w2a2_lut_64x4__avx2,
    .conv_anybits_bitserial = variant::conv_anybits_bitserial_64x4__avx2,
    .conv_u8s8 = variant::conv_u8s8_6x16__avxvnni,
    .conv_u8s8dot = variant::conv_u8s8dot_6x16__avxvnni,
    .dwconv_u8s8 = variant::dwconv_u8s8_1x16__avxvnni,
    .map_bytes = variant::map_bytes__avx2,
};
#endif
#if LOWBIT_KERNELS_ARM64
constexpr KernelTable kNeonTable = {
    .isa = Isa::kNeon,
    .conv_w2a2_lut = variant::conv_w2a2_lut_64x4__neon,
    .conv_anybits_bitserial = variant::conv_anybits_bitserial_64x4__neon,
    .conv_u8s8 = variant::conv_u8s8_6x16__neon,
    .conv_u8s8dot = variant::conv_u8s8dot_2x16__neon,
    .dwconv_u8s8 = variant::dwconv_u8s8_1x16__neon,
    .map_bytes = variant::map_bytes__neon,
};
#endif

#if LOWBIT_KERNELS_ARM64
// The dotprod level: the NEON table with the sdot kernel. No dotprod
// depthwise kernel: sdot sums 4 products of one output lane over k, and a
// depthwise output channel's k are its taps, which lie in 4 different pixels
// of the 16-bit DwConv format; per 16 channels x 4 taps that is 4 narrowings
// + 8 byte transposes + 4 sdot (20 vector operations per 64 multiply-adds, and
// 3x3 pads 9 taps to 12): ~5 multiply-adds per cycle on Neoverse-N1's two
// pipes, no better than 16-bit smlal's limit of 8 there.
const KernelTable& neondot_table() {
  static const KernelTable table = [] {
    KernelTable t = kNeonTable;
    t.isa = Isa::kNeonDot;
    t.conv_u8s8dot = variant::conv_u8s8dot_4x16__neondot;
    return t;
  }();
  return table;
}
// The i8mm level: the dotprod table with the usmmla kernel.
const KernelTable& neoni8mm_table() {
  static const KernelTable table = [] {
    KernelTable t = neondot_table();
    t.isa = Isa::kNeonI8mm;
    t.conv_u8s8dot = variant::conv_u8s8dot_4x16__neoni8mm;
    return t;
  }();
  return table;
}
#endif

// Order of the levels for LOWBIT_KERNELS_ISA (x86-64 and AArch64 levels are
// never both supported, so their ranks overlap).
int isa_rank(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return 0;
    case Isa::kAvx2: return 1;
    case Isa::kAvxVnni: return 2;
    case Isa::kAvx512: return 3;
    case Isa::kNeon: return 1;
    case Isa::kNeonDot: return 2;
    case Isa::kNeonI8mm: return 3;
  }
  return 0;
}

#if LOWBIT_KERNELS_X86
struct X86Features {
  bool avx2 = false, avx_vnni = false, avx512 = false, avx512_vpopcntdq = false;
  bool avx512_vbmi = false;
};
const X86Features& x86_features() {
  static const X86Features f = [] {
    X86Features r;
    r.avx2 = cpu_has_avx2();
    r.avx_vnni = r.avx2 && cpu_has_avx_vnni();
    r.avx512 = r.avx2 && cpu_has_avx512();
    r.avx512_vpopcntdq = r.avx512 && cpu_has_avx512_vpopcntdq();
    r.avx512_vbmi = r.avx512 && cpu_has_avx512_vbmi();
    return r;
  }();
  return f;
}

// The AVX-512 level: its own variants over the next level down, which is
// AVX-VNNI where the CPU has it (Sapphire Rapids, Zen 5) and AVX2 otherwise
// (Ice Lake / Cascade Lake servers, Zen 4); the bit-serial variant only with
// VPOPCNTDQ and the byte-map variant only with VBMI (neither on Skylake-X /
// Cascade Lake).
const KernelTable& avx512_table() {
  static const KernelTable table = [] {
    const X86Features& f = x86_features();
    KernelTable t = f.avx_vnni ? kAvxVnniTable : kAvx2Table;
    t.isa = Isa::kAvx512;
    t.conv_u8s8dot = variant::conv_u8s8dot_8x32__avx512;
    t.dwconv_u8s8 = variant::dwconv_u8s8_4x32__avx512;
    if (f.avx512_vpopcntdq) t.conv_anybits_bitserial = variant::conv_anybits_bitserial_64x4__avx512;
    if (f.avx512_vbmi) t.map_bytes = variant::map_bytes__avx512vbmi;
    return t;
  }();
  return table;
}
#endif

// LOWBIT_KERNELS_ISA, read once: the level it selects and, for an unknown
// value, the message isa_override_error() returns.
struct Override {
  Isa isa = Isa::kScalar;
  bool valid = true;
  char message[160] = {};
};
const Override& isa_override() {
  static const Override o = [] {
    Override r;
    const char* value = std::getenv("LOWBIT_KERNELS_ISA");
    r.valid = parse_isa_override(value, detect_isa(), supported_isas(), &r.isa);
    if (!r.valid)
      std::snprintf(r.message, sizeof r.message,
                    "LOWBIT_KERNELS_ISA='%.64s' is not one of scalar, avx2, avxvnni, avx512, neon, "
                    "neondot, neoni8mm",
                    value);
    return r;
  }();
  return o;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return "scalar";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvxVnni: return "avxvnni";
    case Isa::kNeon: return "neon";
    case Isa::kAvx512: return "avx512";
    case Isa::kNeonDot: return "neondot";
    case Isa::kNeonI8mm: return "neoni8mm";
  }
  return "unknown";
}

bool isa_from_name(const char* name, Isa* isa) {
  if (!name) return false;
  for (Isa i : kEveryIsa) {
    if (std::strcmp(name, isa_name(i)) == 0) {
      *isa = i;
      return true;
    }
  }
  return false;
}

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

namespace {
template <typename Fn>
ConvKernelInfo info_of(const ConvKernelEntry<Fn>& e) {
  ConvKernelInfo i;
  i.family = e.family;
  i.name = e.name;
  i.isa = e.isa;
  i.pixel_tile = e.pixel_tile;
  i.cout_tile = e.cout_tile;
  i.native = e.native && e.fn != nullptr;
  i.macs_per_cycle = e.macs_per_cycle;
  i.plane_pair_share = e.plane_pair_share;
  i.output_cycles = e.output_cycles;
  i.epilogue_cycles = e.epilogue_cycles;
  return i;
}
}  // namespace

bool conv_kernel_info(const KernelTable& table, ConvFamily family, ConvKernelInfo* info) {
  switch (family) {
    case ConvFamily::kInt8: *info = info_of(table.conv_u8s8); return true;
    case ConvFamily::kInt8Dot: *info = info_of(table.conv_u8s8dot); return true;
    case ConvFamily::kDepthwiseInt8: *info = info_of(table.dwconv_u8s8); return true;
    case ConvFamily::kLut: *info = info_of(table.conv_w2a2_lut); return true;
    case ConvFamily::kBitSerial: *info = info_of(table.conv_anybits_bitserial); return true;
    case ConvFamily::kNone: break;
  }
  return false;
}

Isa detect_isa() {
  static const Isa detected = [] {
#if LOWBIT_KERNELS_X86
    const X86Features& f = x86_features();
    if (f.avx512) return Isa::kAvx512;
    if (f.avx_vnni) return Isa::kAvxVnni;
    if (f.avx2) return Isa::kAvx2;
#elif LOWBIT_KERNELS_ARM64
    const ArmFeatures& f = arm_features();
    if (f.i8mm) return Isa::kNeonI8mm;
    if (f.dotprod) return Isa::kNeonDot;
    if (f.neon) return Isa::kNeon;
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
      if (arm_features().neon) return &kNeonTable;
#endif
      return nullptr;
    case Isa::kNeonDot:
#if LOWBIT_KERNELS_ARM64
      if (arm_features().dotprod) return &neondot_table();
#endif
      return nullptr;
    case Isa::kNeonI8mm:
#if LOWBIT_KERNELS_ARM64
      if (arm_features().i8mm) return &neoni8mm_table();
#endif
      return nullptr;
  }
  return nullptr;
}

uint32_t supported_isas() {
  uint32_t mask = 0;
  for (Isa i : kEveryIsa)
    if (kernel_table_for(i) != nullptr) mask |= 1u << int(i);
  return mask;
}

const KernelTable& kernel_table() {
  static const KernelTable& table = *kernel_table_for(isa_override().isa);
  return table;
}

bool parse_isa_override(const char* value, Isa detected, uint32_t supported, Isa* out) {
  *out = detected;
  if (value == nullptr || *value == '\0') return true;
  Isa wanted;
  if (!isa_from_name(value, &wanted)) return false;
  const auto runs = [supported](Isa isa) { return ((supported >> int(isa)) & 1u) != 0; };
  // avxvnni on an AVX-512 CPU without AVX-VNNI (Ice Lake, Zen 4): the level below it.
  if (wanted == Isa::kAvxVnni && !runs(wanted)) wanted = Isa::kAvx2;
  if (runs(wanted) && isa_rank(wanted) <= isa_rank(detected)) *out = wanted;
  return true;
}

const char* isa_override_error() {
  const Override& o = isa_override();
  return o.valid ? nullptr : o.message;
}

}  // namespace lowbit::kernels
