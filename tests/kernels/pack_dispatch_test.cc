// Formats, packing and dispatch.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#if defined(__aarch64__)
#include <sys/auxv.h>
#endif

#include "lowbit/kernels/dispatch.h"
#include "lowbit/kernels/pack.h"

namespace lowbit::kernels {
namespace {

TEST(Pack, QuantizeToCodesRoundsHalfEvenAndClamps) {
  const float x[] = {-1.0f, 0.0f, 0.24f, 0.25f, 0.75f, 1.0f, 1.25f, 100.0f};
  uint8_t codes[8];
  quantize_to_codes(x, 8, 0.5f, 0, 2, codes);
  const uint8_t want[] = {0, 0, 0, 0, 2, 2, 2, 3};  // 0.5 -> 0, 1.5 -> 2, 2.5 -> 2
  EXPECT_EQ(0, std::memcmp(codes, want, 8));
  quantize_to_codes(x, 8, 0.5f, 1, 4, codes);
  const uint8_t want_zp[] = {0, 1, 1, 1, 3, 3, 3, 15};
  EXPECT_EQ(0, std::memcmp(codes, want_zp, 8));
}

TEST(Pack, QuantizeWeightsPerChannelAndDomains) {
  const float w[] = {-5.0f, -0.4f, 0.6f, 5.0f, -0.2f, 0.2f, 1.0f, -1.0f};
  const float scale[] = {1.0f, 0.5f};
  int8_t v[8];
  quantize_weights(w, 2, 4, scale, WeightDomain::kSigned, 2, v);
  const int8_t want[] = {-2, 0, 1, 1, 0, 0, 1, -2};
  EXPECT_EQ(0, std::memcmp(v, want, 8));
  quantize_weights(w, 2, 4, scale, WeightDomain::kBinary, 1, v);
  const int8_t want_binary[] = {-1, -1, 1, 1, -1, 1, 1, -1};
  EXPECT_EQ(0, std::memcmp(v, want_binary, 8));
}

TEST(Formats, WeightCoding) {
  EXPECT_EQ(weight_coding(WeightDomain::kSigned, 2).min_value, -2);
  EXPECT_EQ(weight_coding(WeightDomain::kSigned, 4).max_value, 7);
  EXPECT_EQ(weight_coding(WeightDomain::kUnsigned, 3).max_value, 7);
  EXPECT_EQ(weight_coding(WeightDomain::kBinary, 1).step, 2);
}

TEST(Pack, PairPlanesPhaseSplitAndPadding) {
  // 3 channels, 3x4 image, pad 1, stride 2: padded 5x6 -> phases of 3x3.
  const PairPlanesLayout l = make_pair_planes_layout(3, 3, 4, 1, 2);
  EXPECT_EQ(l.channel_pairs, 2);
  EXPECT_EQ(l.rows, 3);
  EXPECT_EQ(l.row_pitch, 3);
  EXPECT_GE(l.plane_bytes, size_t(9 + kPairPlaneSlackBytes));
  EXPECT_EQ(l.plane_bytes % 64, 0u);
  std::vector<uint8_t> codes(3 * 4 * 3);
  for (size_t i = 0; i < codes.size(); ++i) codes[i] = uint8_t(i % 4);
  std::vector<uint8_t> planes(l.image_bytes, 0);
  pack_pair_planes(codes.data(), 1, l, planes.data());
  size_t nonzero_expected = 0;
  for (int y = 0; y < 3; ++y)
    for (int x = 0; x < 4; ++x) {
      const uint8_t* px = &codes[(y * 4 + x) * 3];
      EXPECT_EQ(planes[l.offset(0, y + 1, x + 1)], px[0] | (px[1] << 2));
      EXPECT_EQ(planes[l.offset(1, y + 1, x + 1)], px[2]);
      nonzero_expected += (px[0] | (px[1] << 2)) != 0;
      nonzero_expected += px[2] != 0;
    }
  size_t nonzero = 0;
  for (uint8_t b : planes) nonzero += b != 0;
  EXPECT_EQ(nonzero, nonzero_expected);  // border and tails stay zero
}

TEST(Pack, BitPlanes) {
  const BitPlanesLayout l = make_bit_planes_layout(70, 3, 2, 2, 1);
  EXPECT_EQ(l.words, 2);
  std::vector<uint8_t> codes(2 * 2 * 70);
  for (size_t i = 0; i < codes.size(); ++i) codes[i] = uint8_t((i * 5) % 8);
  std::vector<uint64_t> planes(l.image_words, 0);
  pack_bit_planes(codes.data(), 1, l, planes.data());
  for (int y = 0; y < 2; ++y)
    for (int x = 0; x < 2; ++x)
      for (int c = 0; c < 70; ++c)
        for (int j = 0; j < 3; ++j) {
          const uint64_t word = planes[l.offset_words(y + 1, x + 1) + j * l.words + c / 64];
          EXPECT_EQ((word >> (c % 64)) & 1, uint64_t((codes[(y * 2 + x) * 70 + c] >> j) & 1));
        }
  for (int j = 0; j < 3; ++j)  // channel tail bits 70..127 stay zero
    EXPECT_EQ(planes[l.offset_words(1, 1) + j * l.words + 1] >> 6, 0u);
}

TEST(Pack, LutTables) {
  const int8_t w[] = {-2, 1, 1};  // 1 output channel, 1 tap, 3 input channels
  const LutWeightsLayout l = make_lut_weights_layout(1, 3, 1);
  EXPECT_EQ(l.steps, 2u);
  std::vector<uint8_t> t(l.bytes);
  pack_lut_weights(w, l, t.data());
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(t[i], -2 * (i & 3) + 1 * (i >> 2) + kLutBias);       // step 0, channel 0
    EXPECT_EQ(t[16 + i], kLutBias);                                // channel 1: padding
    EXPECT_EQ(t[64 + i], 1 * (i & 3) + kLutBias);                  // step 1: odd channel missing
  }
}

// Op and types part of a family's kernel names.
const char* OpPrefix(ConvFamily f) {
  switch (f) {
    case ConvFamily::kInt8: return "conv_u8s8_";
    case ConvFamily::kInt8Dot: return "conv_u8s8dot_";
    case ConvFamily::kDepthwiseInt8: return "dwconv_u8s8_";
    case ConvFamily::kLut: return "conv_w2a2_lut_";
    case ConvFamily::kBitSerial: return "conv_anybits_bitserial_";
    case ConvFamily::kNone: break;
  }
  return "?";
}

TEST(Dispatch, DetectsAndBuildsTables) {
  const Isa best = detect_isa();
  EXPECT_TRUE(isa_supported(Isa::kScalar));
  EXPECT_TRUE(isa_supported(best));
  for (Isa isa : kEveryIsa) {
    SCOPED_TRACE(isa_name(isa));
    EXPECT_EQ((supported_isas() >> int(isa)) & 1u, isa_supported(isa) ? 1u : 0u);
    const KernelTable* t = kernel_table_for(isa);
    if (!t) continue;
    EXPECT_EQ(t->isa, isa);
    EXPECT_NE(t->conv_w2a2_lut.fn, nullptr);
    EXPECT_NE(t->conv_anybits_bitserial.fn, nullptr);
    EXPECT_NE(t->conv_u8s8.fn, nullptr);
    EXPECT_NE(t->conv_u8s8dot.fn, nullptr);
    EXPECT_NE(t->dwconv_u8s8.fn, nullptr);
    // Every level has its own variant of one INT8 family (other families
    // may be inherited): conv_u8s8, or conv_u8s8dot from AVX-512 and on the
    // Arm dot-product levels.
    const bool dot_level =
        isa == Isa::kAvx512 || isa == Isa::kNeonDot || isa == Isa::kNeonI8mm;
    EXPECT_NE(std::strstr(dot_level ? t->conv_u8s8dot.name : t->conv_u8s8.name,
                          (std::string("__") + isa_name(isa)).c_str()),
              nullptr);
    EXPECT_EQ(t->conv_u8s8dot.native, isa == Isa::kAvxVnni || isa == Isa::kAvx512 ||
                                          isa == Isa::kNeon || isa == Isa::kNeonDot ||
                                          isa == Isa::kNeonI8mm);
    // Each entry states its family, its variant's ISA (spelled in its name;
    // one this CPU runs), its tile (spelled in its name) and a rate.
    for (ConvFamily f : kConvFamilies) {
      ConvKernelInfo k;
      ASSERT_TRUE(conv_kernel_info(*t, f, &k));
      SCOPED_TRACE(k.name);
      EXPECT_EQ(k.family, f);
      const std::string name = k.name;
      EXPECT_EQ(name.rfind(OpPrefix(f), 0), 0u) << OpPrefix(f);
      const std::string suffix = std::string("__") + isa_name(k.isa);
      ASSERT_GE(name.size(), suffix.size());
      EXPECT_EQ(name.substr(name.size() - suffix.size()), suffix);
      EXPECT_TRUE(isa_supported(k.isa));
      char tile[32];
      std::snprintf(tile, sizeof tile, "_%dx%d__", k.pixel_tile, k.cout_tile);
      EXPECT_NE(name.find(tile), std::string::npos) << tile;
      EXPECT_GT(k.macs_per_cycle, 0);
      EXPECT_GT(k.output_cycles, 0);
      EXPECT_GE(k.epilogue_cycles, k.output_cycles);
      EXPECT_GE(k.plane_pair_share, 0);
      EXPECT_LE(k.plane_pair_share, 1);
      EXPECT_EQ(k.plane_pair_share > 0, f == ConvFamily::kBitSerial);
    }
    EXPECT_EQ(t->conv_u8s8.family, ConvFamily::kInt8);
    EXPECT_EQ(t->conv_u8s8dot.family, ConvFamily::kInt8Dot);
    EXPECT_EQ(t->dwconv_u8s8.family, ConvFamily::kDepthwiseInt8);
    EXPECT_EQ(t->conv_w2a2_lut.family, ConvFamily::kLut);
    EXPECT_EQ(t->conv_anybits_bitserial.family, ConvFamily::kBitSerial);
  }
  ConvKernelInfo none;
  EXPECT_FALSE(conv_kernel_info(kernel_table(), ConvFamily::kNone, &none));
#if defined(__x86_64__)
  EXPECT_EQ(kernel_table_for(Isa::kNeon), nullptr);
  EXPECT_EQ(kernel_table_for(Isa::kNeonDot), nullptr);
  EXPECT_EQ(kernel_table_for(Isa::kNeonI8mm), nullptr);
  // A higher x86 level implies the lower ones.
  if (best == Isa::kAvxVnni || best == Isa::kAvx512) {
    EXPECT_NE(kernel_table_for(Isa::kAvx2), nullptr);
  }
  if (best == Isa::kAvx512) {
    // The AVX-512 table inherits the AVX-VNNI kernels where the CPU has them.
    const KernelTable* t = kernel_table_for(Isa::kAvx512);
    const bool vnni = kernel_table_for(Isa::kAvxVnni) != nullptr;
    EXPECT_NE(std::strstr(t->conv_u8s8.name, vnni ? "avxvnni" : "avx2"), nullptr);
    EXPECT_EQ(t->conv_u8s8.isa, vnni ? Isa::kAvxVnni : Isa::kAvx2);
  }
#elif defined(__aarch64__)
  EXPECT_EQ(kernel_table_for(Isa::kAvx2), nullptr);
  EXPECT_EQ(kernel_table_for(Isa::kAvxVnni), nullptr);
  EXPECT_EQ(kernel_table_for(Isa::kAvx512), nullptr);
  // The Arm levels follow the hwcaps the kernel reports (under qemu-aarch64:
  // those of QEMU_CPU); a higher level implies the lower ones and inherits
  // their kernels where it has none of its own.
  const bool dotprod = getauxval(AT_HWCAP) & (1ul << 20);             // HWCAP_ASIMDDP
  const bool i8mm = dotprod && (getauxval(AT_HWCAP2) & (1ul << 13));  // HWCAP2_I8MM
  EXPECT_NE(kernel_table_for(Isa::kNeon), nullptr);
  EXPECT_EQ(kernel_table_for(Isa::kNeonDot) != nullptr, dotprod);
  EXPECT_EQ(kernel_table_for(Isa::kNeonI8mm) != nullptr, i8mm);
  EXPECT_EQ(best, i8mm ? Isa::kNeonI8mm : dotprod ? Isa::kNeonDot : Isa::kNeon);
  for (Isa level : {Isa::kNeonDot, Isa::kNeonI8mm}) {
    const KernelTable* t = kernel_table_for(level);
    if (!t) continue;
    EXPECT_STREQ(t->conv_u8s8dot.name, level == Isa::kNeonDot ? "conv_u8s8dot_4x16__neondot"
                                                               : "conv_u8s8dot_4x16__neoni8mm");
    EXPECT_EQ(t->conv_u8s8.fn, kernel_table_for(Isa::kNeon)->conv_u8s8.fn);
    EXPECT_EQ(t->dwconv_u8s8.fn, kernel_table_for(Isa::kNeon)->dwconv_u8s8.fn);
    EXPECT_EQ(t->conv_anybits_bitserial.fn,
              kernel_table_for(Isa::kNeon)->conv_anybits_bitserial.fn);
  }
  // LOWBIT_EXPECT_BEST_ISA (set by CMake beside QEMU_CPU): the level that
  // emulated core must reach.
  if (const char* expected = std::getenv("LOWBIT_EXPECT_BEST_ISA")) {
    EXPECT_STREQ(isa_name(best), expected);
  }
#endif
}

TEST(Dispatch, IsaNames) {
  for (Isa isa : kEveryIsa) {
    Isa back = Isa::kScalar;
    ASSERT_TRUE(isa_from_name(isa_name(isa), &back));
    EXPECT_EQ(back, isa);
  }
  Isa unused;
  EXPECT_FALSE(isa_from_name("AVX2", &unused));
  EXPECT_FALSE(isa_from_name("", &unused));
  EXPECT_FALSE(isa_from_name(nullptr, &unused));
}

uint32_t Levels(std::initializer_list<Isa> isas) {
  uint32_t mask = 0;
  for (Isa isa : isas) mask |= 1u << int(isa);
  return mask;
}

TEST(Dispatch, ParseIsaOverride) {
  const uint32_t spr = Levels({Isa::kScalar, Isa::kAvx2, Isa::kAvxVnni, Isa::kAvx512});
  const uint32_t zen4 = Levels({Isa::kScalar, Isa::kAvx2, Isa::kAvx512});  // no AVX-VNNI
  const uint32_t zen3 = Levels({Isa::kScalar, Isa::kAvx2});
  const uint32_t arm = Levels({Isa::kScalar, Isa::kNeon});
  const uint32_t arm_dot = Levels({Isa::kScalar, Isa::kNeon, Isa::kNeonDot});  // A76 / N1
  const uint32_t arm_i8mm = Levels({Isa::kScalar, Isa::kNeon, Isa::kNeonDot, Isa::kNeonI8mm});
  auto parse = [](const char* value, Isa detected, uint32_t supported) {
    Isa out = Isa::kNeon;
    const bool ok = parse_isa_override(value, detected, supported, &out);
    return std::make_pair(ok, out);
  };
  using P = std::pair<bool, Isa>;
  // Unset or empty: the detected level.
  EXPECT_EQ(parse(nullptr, Isa::kAvx512, spr), P(true, Isa::kAvx512));
  EXPECT_EQ(parse("", Isa::kAvx512, spr), P(true, Isa::kAvx512));
  // A lower supported level is taken.
  EXPECT_EQ(parse("scalar", Isa::kAvx512, spr), P(true, Isa::kScalar));
  EXPECT_EQ(parse("avx2", Isa::kAvx512, spr), P(true, Isa::kAvx2));
  EXPECT_EQ(parse("avxvnni", Isa::kAvx512, spr), P(true, Isa::kAvxVnni));
  EXPECT_EQ(parse("avx512", Isa::kAvx512, spr), P(true, Isa::kAvx512));
  EXPECT_EQ(parse("scalar", Isa::kNeon, arm), P(true, Isa::kScalar));
  EXPECT_EQ(parse("neon", Isa::kNeonDot, arm_dot), P(true, Isa::kNeon));
  EXPECT_EQ(parse("neondot", Isa::kNeonDot, arm_dot), P(true, Isa::kNeonDot));
  EXPECT_EQ(parse("neon", Isa::kNeonI8mm, arm_i8mm), P(true, Isa::kNeon));
  EXPECT_EQ(parse("neondot", Isa::kNeonI8mm, arm_i8mm), P(true, Isa::kNeonDot));
  EXPECT_EQ(parse("scalar", Isa::kNeonI8mm, arm_i8mm), P(true, Isa::kScalar));
  // avxvnni where the AVX-512 CPU lacks AVX-VNNI: the level below it.
  EXPECT_EQ(parse("avxvnni", Isa::kAvx512, zen4), P(true, Isa::kAvx2));
  EXPECT_EQ(parse("avxvnni", Isa::kAvx2, zen3), P(true, Isa::kAvx2));
  // Known levels the CPU does not run fall back to the detected level.
  EXPECT_EQ(parse("avx512", Isa::kAvx2, zen3), P(true, Isa::kAvx2));
  EXPECT_EQ(parse("neon", Isa::kAvx512, spr), P(true, Isa::kAvx512));
  EXPECT_EQ(parse("avx2", Isa::kNeon, arm), P(true, Isa::kNeon));
  EXPECT_EQ(parse("neondot", Isa::kNeon, arm), P(true, Isa::kNeon));
  EXPECT_EQ(parse("neoni8mm", Isa::kNeonDot, arm_dot), P(true, Isa::kNeonDot));
  EXPECT_EQ(parse("neoni8mm", Isa::kNeon, arm), P(true, Isa::kNeon));
  EXPECT_EQ(parse("avx512", Isa::kNeonDot, arm_dot), P(true, Isa::kNeonDot));
  EXPECT_EQ(parse("neondot", Isa::kAvx512, spr), P(true, Isa::kAvx512));
  EXPECT_EQ(parse("avx2", Isa::kScalar, Levels({Isa::kScalar})), P(true, Isa::kScalar));
  // Anything else is an error (and leaves the detected level).
  for (const char* bad :
       {"foo", "AVX2", "avx", "avx-512", " avx2", "avx2 ", "sse4", "neon-dot", "dotprod", "i8mm"})
    EXPECT_EQ(parse(bad, Isa::kAvx512, spr), P(false, Isa::kAvx512)) << bad;
}

// Registered again by CMake with LOWBIT_KERNELS_ISA=scalar, =avx2, =avxvnni,
// =avx512, =neon, =neondot and an unknown value.
TEST(Dispatch, EnvironmentForcesLowerIsa) {
  const char* forced = std::getenv("LOWBIT_KERNELS_ISA");
  const KernelTable& t = kernel_table();
  Isa named = Isa::kScalar;
  const bool known = forced == nullptr || *forced == '\0' || isa_from_name(forced, &named);
  if (known) {
    EXPECT_EQ(isa_override_error(), nullptr);
  } else {
    ASSERT_NE(isa_override_error(), nullptr);
    const std::string message = isa_override_error();
    EXPECT_NE(message.find(std::string("'") + forced + "'"), std::string::npos) << message;
    EXPECT_NE(message.find("scalar, avx2, avxvnni, avx512, neon"), std::string::npos) << message;
    EXPECT_EQ(t.isa, detect_isa());  // the table stays usable; the engine refuses
  }
  if (forced && std::strcmp(forced, "scalar") == 0) {
    EXPECT_EQ(t.isa, Isa::kScalar);
  } else if (forced && std::strcmp(forced, "avx2") == 0) {
    EXPECT_EQ(t.isa, isa_supported(Isa::kAvx2) ? Isa::kAvx2 : detect_isa());
  } else if (forced && std::strcmp(forced, "avxvnni") == 0) {
    const Isa expected = isa_supported(Isa::kAvxVnni) ? Isa::kAvxVnni
                         : isa_supported(Isa::kAvx2)  ? Isa::kAvx2
                                                      : detect_isa();
    EXPECT_EQ(t.isa, expected);
  } else if (forced && std::strcmp(forced, "avx512") == 0) {
    EXPECT_EQ(t.isa, isa_supported(Isa::kAvx512) ? Isa::kAvx512 : detect_isa());
  } else if (forced && std::strcmp(forced, "neon") == 0) {
    EXPECT_EQ(t.isa, isa_supported(Isa::kNeon) ? Isa::kNeon : detect_isa());
  } else if (forced && std::strcmp(forced, "neondot") == 0) {
    EXPECT_EQ(t.isa, isa_supported(Isa::kNeonDot) ? Isa::kNeonDot : detect_isa());
  } else if (!forced) {
    EXPECT_EQ(t.isa, detect_isa());
  }
}

}  // namespace
}  // namespace lowbit::kernels
