// Formats, packing and dispatch.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <vector>

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
  EXPECT_GE(l.plane_bytes, size_t(9 + 128));
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

TEST(Dispatch, DetectsAndBuildsTables) {
  const Isa best = detect_isa();
  EXPECT_TRUE(isa_supported(Isa::kScalar));
  EXPECT_TRUE(isa_supported(best));
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvxVnni, Isa::kAvx512, Isa::kNeon}) {
    const KernelTable* t = kernel_table_for(isa);
    if (!t) continue;
    EXPECT_EQ(t->isa, isa);
    EXPECT_NE(t->conv_w2a2_lut, nullptr);
    EXPECT_NE(t->conv_anybits_bitserial, nullptr);
    EXPECT_NE(t->conv_u8s8dot, nullptr);
    // Every level has its own variant of one INT8 family (other families
    // may be inherited): conv_u8s8, or conv_u8s8dot from AVX-512 on.
    EXPECT_NE(std::strstr(isa == Isa::kAvx512 ? t->conv_u8s8dot_name : t->conv_u8s8_name,
                          isa_name(isa)),
              nullptr);
    EXPECT_EQ(t->int8_dot_native, isa == Isa::kAvxVnni || isa == Isa::kAvx512);
  }
#if defined(__x86_64__)
  EXPECT_EQ(kernel_table_for(Isa::kNeon), nullptr);
  // A higher x86 level implies the lower ones.
  if (best == Isa::kAvxVnni || best == Isa::kAvx512) {
    EXPECT_NE(kernel_table_for(Isa::kAvx2), nullptr);
  }
  if (best == Isa::kAvx512) {
    // The AVX-512 table inherits the AVX-VNNI kernels where the CPU has them.
    const KernelTable* t = kernel_table_for(Isa::kAvx512);
    const bool vnni = kernel_table_for(Isa::kAvxVnni) != nullptr;
    EXPECT_NE(std::strstr(t->conv_u8s8_name, vnni ? "avxvnni" : "avx2"), nullptr);
  }
#elif defined(__aarch64__)
  EXPECT_EQ(kernel_table_for(Isa::kAvx2), nullptr);
  EXPECT_EQ(kernel_table_for(Isa::kAvxVnni), nullptr);
  EXPECT_EQ(kernel_table_for(Isa::kAvx512), nullptr);
  EXPECT_EQ(best, Isa::kNeon);
#endif
}

// Registered again by CMake with LOWBIT_KERNELS_ISA=scalar, =avx2, =avxvnni
// and =avx512.
TEST(Dispatch, EnvironmentForcesLowerIsa) {
  const char* forced = std::getenv("LOWBIT_KERNELS_ISA");
  const KernelTable& t = kernel_table();
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
  } else if (!forced) {
    EXPECT_EQ(t.isa, detect_isa());
  }
}

}  // namespace
}  // namespace lowbit::kernels
