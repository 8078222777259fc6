// choose_conv_kernel: eligibility by bit-widths, domain and groups, the cost
// model's ordering on the layers it was measured on (from the rates in the
// table entries), and that the chosen kernel of every runnable ISA computes
// the layer exactly.
#include "lowbit/kernels/choose.h"

#include <cstring>

#include "conv_tester.h"
#include "isa_param.h"

namespace lowbit::kernels::testing {
namespace {

// Which formats hold which layers: ISA-independent.
TEST(ChooseCost, FamilySupport) {
  const ConvGeometry g = Conv(64, 64, 28, 3, 1);
  auto runs = [&](ConvFamily f, int wbits, int abits, WeightDomain d = WeightDomain::kSigned) {
    return conv_family_supports(f, g, wbits, abits, d);
  };
  EXPECT_TRUE(runs(ConvFamily::kLut, 2, 2));
  EXPECT_TRUE(runs(ConvFamily::kLut, 1, 1, WeightDomain::kBinary));
  EXPECT_FALSE(runs(ConvFamily::kLut, 2, 2, WeightDomain::kUnsigned));  // {0..3} > 1
  EXPECT_FALSE(runs(ConvFamily::kLut, 3, 3));
  EXPECT_FALSE(runs(ConvFamily::kLut, 2, 4));
  EXPECT_TRUE(runs(ConvFamily::kBitSerial, 4, 4));
  EXPECT_FALSE(runs(ConvFamily::kBitSerial, 8, 8));
  EXPECT_TRUE(runs(ConvFamily::kInt8, 8, 8));
  EXPECT_TRUE(runs(ConvFamily::kInt8Dot, 3, 3));                         // fewer bits fit u8 / s8
  EXPECT_FALSE(runs(ConvFamily::kInt8, 8, 8, WeightDomain::kUnsigned));  // 255 > 127
  EXPECT_FALSE(runs(ConvFamily::kDepthwiseInt8, 8, 8));                  // not depthwise
  EXPECT_FALSE(runs(ConvFamily::kNone, 8, 8));
  EXPECT_FALSE(runs(ConvFamily::kInt8, 2, 2, WeightDomain::kBinary));  // binary is 1 bit only
  const ConvGeometry dw = Conv(32, 32, 28, 3, 1, 32);
  EXPECT_TRUE(conv_family_supports(ConvFamily::kDepthwiseInt8, dw, 8, 8, WeightDomain::kSigned));
  EXPECT_FALSE(conv_family_supports(ConvFamily::kInt8, dw, 8, 8, WeightDomain::kSigned));
  const ConvGeometry grouped = Conv(32, 32, 28, 3, 1, 4);
  for (ConvFamily f : kConvFamilies)
    EXPECT_FALSE(conv_family_supports(f, grouped, 8, 8, WeightDomain::kSigned));
  int lo = 0, hi = 0;
  ASSERT_TRUE(weight_value_range(WeightDomain::kSigned, 3, &lo, &hi));
  EXPECT_EQ(lo, -4);
  EXPECT_EQ(hi, 3);
  EXPECT_FALSE(weight_value_range(WeightDomain::kBinary, 2, &lo, &hi));
}

// Orderings measured on this project's x86 machines (bench/kernels, and
// measure_conv_kernels on a Sapphire Rapids Xeon), which the model must
// reproduce from the rates in the table entries: with raw int32 outputs
// (Sums) and with requantized u8 codes (Codes, what lowered layers write).
// Each part needs the level's table, i.e. a CPU that runs it; otherwise
// skipped.
double Sums(ConvFamily f, const ConvGeometry& g, int bits, const KernelTable& t,
            WeightDomain d = WeightDomain::kSigned) {
  return estimate_conv_cycles(f, g, bits, bits, d, t, Destination::kInt32);
}
double Codes(ConvFamily f, const ConvGeometry& g, int bits, const KernelTable& t,
             WeightDomain d = WeightDomain::kSigned) {
  return estimate_conv_cycles(f, g, bits, bits, d, t, Destination::kCodes);
}
const ConvGeometry kResnet = Conv(64, 64, 56, 3, 1);

TEST(ChooseCost, MeasuredOrderingsAvx2) {
  const KernelTable* avx2 = kernel_table_for(Isa::kAvx2);
  if (!avx2) GTEST_SKIP() << "this CPU does not run avx2";
  // The LUT beats INT8 (vpmaddwd) more than 2x on W2A2 3x3 layers' sums.
  EXPECT_LT(2 * Sums(ConvFamily::kLut, kResnet, 2, *avx2),
            Sums(ConvFamily::kInt8, kResnet, 2, *avx2));
  // Bit-serial at 3 and 4 bits loses to INT8; W1A1 beats vpmaddwd INT8.
  EXPECT_GT(Sums(ConvFamily::kBitSerial, kResnet, 3, *avx2),
            Sums(ConvFamily::kInt8, kResnet, 3, *avx2));
  EXPECT_LT(Sums(ConvFamily::kBitSerial, kResnet, 1, *avx2),
            Sums(ConvFamily::kInt8, kResnet, 1, *avx2));
  // Three input channels: bit-serial pads them to 64 and is far behind.
  const ConvGeometry first = Conv(3, 32, 416, 3, 2);
  EXPECT_GT(Sums(ConvFamily::kBitSerial, first, 1, *avx2),
            5 * Sums(ConvFamily::kInt8, first, 1, *avx2));
  // Padded-row waste: a 13x13 LUT layer computes 256 of every 169 pixels.
  const ConvGeometry small = Conv(128, 128, 13, 3, 1), big = Conv(128, 128, 52, 3, 1);
  EXPECT_GT(Sums(ConvFamily::kLut, small, 2, *avx2) / small.macs(),
            1.3 * Sums(ConvFamily::kLut, big, 2, *avx2) / big.macs());
  // Requantized: the LUT's value-by-value output stage (~20 cycles per
  // value against ~1.5 for INT8's vector one) loses a 32-channel layer
  // (measured on a Sapphire Rapids Xeon at the avx2 level: 1586 us against
  // 1270 us at 104x104), and its lead on 64 channels shrinks below 2x
  // (1180 us against 1454 us at 56x56).
  const ConvGeometry nanodet32 = Conv(32, 32, 104, 3, 1);
  EXPECT_GT(Codes(ConvFamily::kLut, nanodet32, 2, *avx2),
            Codes(ConvFamily::kInt8, nanodet32, 2, *avx2));
  EXPECT_GT(2 * Codes(ConvFamily::kLut, kResnet, 2, *avx2),
            Codes(ConvFamily::kInt8, kResnet, 2, *avx2));
}

TEST(ChooseCost, MeasuredOrderingsAvxVnni) {
  const KernelTable* vnni = kernel_table_for(Isa::kAvxVnni);
  if (!vnni) GTEST_SKIP() << "this CPU does not run avxvnni";
  // vpdpbusd beats vpdpwssd; and it edges out the LUT even at 2 bits.
  for (auto cost : {Sums, Codes}) {
    EXPECT_LT(cost(ConvFamily::kInt8Dot, kResnet, 8, *vnni, WeightDomain::kSigned),
              cost(ConvFamily::kInt8, kResnet, 8, *vnni, WeightDomain::kSigned));
    EXPECT_LT(cost(ConvFamily::kInt8Dot, kResnet, 2, *vnni, WeightDomain::kSigned),
              cost(ConvFamily::kLut, kResnet, 2, *vnni, WeightDomain::kSigned));
  }
}

TEST(ChooseCost, MeasuredOrderingsAvx512) {
  const KernelTable* avx512 = kernel_table_for(Isa::kAvx512);
  if (!avx512) GTEST_SKIP() << "this CPU does not run avx512";
  // 512-bit vpdpbusd (~2x the AVX-VNNI rate) beats the 256-bit LUT at 2 bits.
  if (const KernelTable* vnni = kernel_table_for(Isa::kAvxVnni)) {
    EXPECT_LT(2 * Sums(ConvFamily::kInt8Dot, kResnet, 8, *avx512),
              1.2 * Sums(ConvFamily::kInt8Dot, kResnet, 8, *vnni));
  }
  EXPECT_LT(Sums(ConvFamily::kInt8Dot, kResnet, 2, *avx512),
            Sums(ConvFamily::kLut, kResnet, 2, *avx512));
  // W1A1 bit-serial (vpopcntq, 2 x 16 register tile) beats 512-bit INT8 on
  // the sums from 64 input channels (measured 154 us against 284 us at
  // 128 x 128 channels, 26x26); at 2 bits and more INT8 wins. Requantized,
  // bit-serial's value-by-value output stage makes it lose (805 us against
  // 286 us).
  if (std::strstr(avx512->conv_anybits_bitserial.name, "avx512") == nullptr)
    GTEST_SKIP() << "no VPOPCNTDQ: the avx512 table carries "
                 << avx512->conv_anybits_bitserial.name;
  const ConvGeometry nanodet128 = Conv(128, 128, 26, 3, 1);
  EXPECT_LT(Sums(ConvFamily::kBitSerial, nanodet128, 1, *avx512, WeightDomain::kBinary),
            Sums(ConvFamily::kInt8Dot, nanodet128, 1, *avx512));
  EXPECT_GT(Sums(ConvFamily::kBitSerial, nanodet128, 2, *avx512),
            Sums(ConvFamily::kInt8Dot, nanodet128, 2, *avx512));
  EXPECT_GT(Codes(ConvFamily::kBitSerial, nanodet128, 1, *avx512, WeightDomain::kBinary),
            Codes(ConvFamily::kInt8Dot, nanodet128, 1, *avx512));
}

// NEON: estimated rates (no ARM hardware measured; llvm-mca in KERNELS.md):
// without a dot-product instruction the LUT and W1A1 bit-serial beat INT8,
// whose fastest NEON variant is conv_u8s8dot (8-bit smull, native).
TEST(ChooseCost, ExpectedOrderingsNeon) {
  const KernelTable* neon = kernel_table_for(Isa::kNeon);
  if (!neon) GTEST_SKIP() << "this CPU does not run neon";
  for (auto cost : {Sums, Codes}) {
    EXPECT_LT(1.5 * cost(ConvFamily::kLut, kResnet, 2, *neon, WeightDomain::kSigned),
              cost(ConvFamily::kInt8, kResnet, 2, *neon, WeightDomain::kSigned));
    EXPECT_LT(cost(ConvFamily::kBitSerial, kResnet, 1, *neon, WeightDomain::kBinary),
              cost(ConvFamily::kInt8Dot, kResnet, 1, *neon, WeightDomain::kBinary));
    EXPECT_LT(cost(ConvFamily::kInt8Dot, kResnet, 8, *neon, WeightDomain::kSigned),
              cost(ConvFamily::kInt8, kResnet, 8, *neon, WeightDomain::kSigned));
  }
  EXPECT_TRUE(neon->conv_u8s8dot.native);
}

// The model reads the rates of the table's entry, not per-ISA constants.
TEST(ChooseCost, RatesComeFromTheEntry) {
  KernelTable t = *kernel_table_for(Isa::kScalar);
  const ConvGeometry g = Conv(64, 64, 28, 3, 1);
  const double outputs = double(g.out_height()) * g.out_width() * g.out_channels;
  const double base = Sums(ConvFamily::kInt8, g, 8, t) - t.conv_u8s8.output_cycles * outputs;
  EXPECT_DOUBLE_EQ(Codes(ConvFamily::kInt8, g, 8, t), base + t.conv_u8s8.epilogue_cycles * outputs);
  EXPECT_DOUBLE_EQ(estimate_conv_cycles(ConvFamily::kInt8, g, 8, 8, WeightDomain::kSigned, t),
                   Codes(ConvFamily::kInt8, g, 8, t));  // kCodes is the default
  t.conv_u8s8.macs_per_cycle *= 4;
  t.conv_u8s8.output_cycles = 2;
  t.conv_u8s8.epilogue_cycles = 3;
  EXPECT_DOUBLE_EQ(Sums(ConvFamily::kInt8, g, 8, t), base / 4 + 2 * outputs);
  EXPECT_DOUBLE_EQ(Codes(ConvFamily::kInt8, g, 8, t), base / 4 + 3 * outputs);
  // W2A2 bit-serial: (1 - share + share * 4) / rate per multiply-add.
  const double w1 =
      Sums(ConvFamily::kBitSerial, g, 1, t) - t.conv_anybits_bitserial.output_cycles * outputs;
  const double w2 =
      Sums(ConvFamily::kBitSerial, g, 2, t) - t.conv_anybits_bitserial.output_cycles * outputs;
  const double share = t.conv_anybits_bitserial.plane_pair_share;
  EXPECT_NEAR(w2 / w1, 1 - share + 4 * share, 1e-9);
  // A faster rate makes the family the choice.
  t.conv_w2a2_lut.macs_per_cycle = 1e6;
  t.conv_w2a2_lut.epilogue_cycles = 0;
  EXPECT_EQ(choose_conv_kernel(g, 2, 2, WeightDomain::kSigned, t).family, ConvFamily::kLut);
  t.conv_w2a2_lut.macs_per_cycle = 1e-6;
  EXPECT_NE(choose_conv_kernel(g, 2, 2, WeightDomain::kSigned, t).family, ConvFamily::kLut);
  // The destination alone can decide.
  t = *kernel_table_for(Isa::kScalar);
  t.conv_anybits_bitserial.macs_per_cycle = 1e6;
  t.conv_anybits_bitserial.epilogue_cycles = 1e6;
  EXPECT_EQ(choose_conv_kernel(g, 1, 1, WeightDomain::kBinary, t, Destination::kInt32).family,
            ConvFamily::kBitSerial);
  EXPECT_NE(choose_conv_kernel(g, 1, 1, WeightDomain::kBinary, t, Destination::kCodes).family,
            ConvFamily::kBitSerial);
}

class Choose : public IsaTest {};

TEST_P(Choose, EstimatesExactlyWhereTheFamilyRuns) {
  const KernelTable& t = table();
  for (const ConvGeometry& g : {Conv(64, 64, 28, 3, 1), Conv(32, 32, 28, 3, 1, 32),
                                Conv(32, 32, 28, 3, 1, 4), Conv(3, 16, 15, 5, 2)})
    for (int bits : {1, 2, 3, 4, 8})
      for (WeightDomain d : {WeightDomain::kSigned, WeightDomain::kUnsigned, WeightDomain::kBinary})
        for (ConvFamily f : kConvFamilies) {
          const double cycles = estimate_conv_cycles(f, g, bits, bits, d, t);
          EXPECT_EQ(cycles > 0, conv_family_supports(f, g, bits, bits, d))
              << conv_family_name(f) << " bits " << bits << " domain " << int(d);
          if (cycles > 0) {
            EXPECT_GT(cycles, g.macs() / 1000.0);  // no rate above 1000 MAC/cycle
          }
        }
  EXPECT_LT(
      estimate_conv_cycles(ConvFamily::kNone, Conv(8, 8, 8, 3, 1), 8, 8, WeightDomain::kSigned, t),
      0);
}

TEST_P(Choose, PicksTheCheapestAvailableFamily) {
  const KernelTable& t = table();
  for (int bits : {1, 2, 3, 4, 8})
    for (const ConvGeometry& g : {Conv(64, 64, 56, 3, 1), Conv(3, 32, 416, 3, 2), Conv(576, 96, 14, 1, 1),
                                  Conv(144, 144, 56, 3, 1, 144), Conv(32, 32, 8, 3, 1, 2)}) {
      const WeightDomain d = bits == 1 ? WeightDomain::kBinary : WeightDomain::kSigned;
      const ConvKernelChoice c = choose_conv_kernel(g, bits, bits, d, t);
      SCOPED_TRACE(std::string(conv_family_name(c.family)) + " bits " + std::to_string(bits) +
                   " cin " + std::to_string(g.in_channels) + " groups " + std::to_string(g.groups));
      if (g.groups != 1 && g.groups != g.in_channels) {
        EXPECT_EQ(c.family, ConvFamily::kNone);
        continue;
      }
      ASSERT_NE(c.family, ConvFamily::kNone);
      EXPECT_EQ(c.family == ConvFamily::kDepthwiseInt8, g.groups > 1);
      EXPECT_NE(std::strstr(c.kernel_name, "__"), nullptr);
      EXPECT_GT(c.estimated_cycles, 0);
      if (c.family == ConvFamily::kInt8Dot) {
        EXPECT_TRUE(t.conv_u8s8dot.native);
      }
      for (ConvFamily f : kConvFamilies) {
        ConvKernelInfo k;
        ASSERT_TRUE(conv_kernel_info(t, f, &k));
        const double other = estimate_conv_cycles(f, g, bits, bits, d, t);
        if (k.native && other >= 0) {
          EXPECT_LE(c.estimated_cycles, other) << conv_family_name(f);
        }
      }
    }
}

// The chosen family runs the layer exactly (small versions of the layers).
TEST_P(Choose, ChosenKernelIsExact) {
  const KernelTable& t = table();
  struct Case {
    int cin, cout, size, kernel, stride, bits;
  };
  for (const Case& k : {Case{16, 20, 9, 3, 1, 2}, Case{8, 17, 10, 3, 2, 1}, Case{12, 16, 7, 1, 1, 3},
                        Case{20, 24, 9, 3, 1, 8}, Case{5, 16, 11, 3, 2, 4}}) {
    const ConvGeometry g = Conv(k.cin, k.cout, k.size, k.kernel, k.stride);
    const WeightDomain d = k.bits == 1 ? WeightDomain::kBinary : WeightDomain::kSigned;
    const ConvKernelChoice c = choose_conv_kernel(g, k.bits, k.bits, d, t);
    SCOPED_TRACE(c.kernel_name);
    ConvTester tester;
    tester.cin(k.cin).cout(k.cout).h(k.size).w(k.size).kernel(k.kernel).stride(k.stride)
        .pad(k.kernel / 2).domain(d).wbits(k.bits).abits(k.bits).seed(uint32_t(k.cin));
    switch (c.family) {
      case ConvFamily::kInt8: tester.int8().Test(t.conv_u8s8.fn); break;
      case ConvFamily::kInt8Dot: tester.int8().Test(t.conv_u8s8dot.fn); break;
      case ConvFamily::kLut: tester.Test(t.conv_w2a2_lut.fn); break;
      case ConvFamily::kBitSerial: tester.Test(t.conv_anybits_bitserial.fn); break;
      default: ADD_FAILURE() << conv_family_name(c.family);
    }
  }
}

LOWBIT_INSTANTIATE_ISA_TESTS(Choose);

}  // namespace
}  // namespace lowbit::kernels::testing
