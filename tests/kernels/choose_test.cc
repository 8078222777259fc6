// choose_conv_kernel: eligibility by bit-widths, domain and groups, the cost
// model's ordering on the layers it was measured on, and that the chosen
// kernel of every runnable ISA computes the layer exactly.
#include "lowbit/kernels/choose.h"

#include <cstring>

#include "conv_tester.h"
#include "isa_param.h"

namespace lowbit::kernels::testing {
namespace {

ConvGeometry Conv(int cin, int cout, int size, int kernel, int stride, int groups = 1) {
  ConvGeometry g;
  g.height = g.width = size;
  g.in_channels = cin;
  g.out_channels = cout;
  g.kernel_h = g.kernel_w = kernel;
  g.stride = stride;
  g.pad = kernel / 2;
  g.groups = groups;
  return g;
}

TEST(ChooseCost, Eligibility) {
  const ConvGeometry g = Conv(64, 64, 28, 3, 1);
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvxVnni, Isa::kAvx512, Isa::kNeon}) {
    SCOPED_TRACE(isa_name(isa));
    auto cost = [&](ConvFamily f, int wbits, int abits, WeightDomain d = WeightDomain::kSigned) {
      return estimate_conv_cycles(f, g, wbits, abits, d, isa);
    };
    EXPECT_GT(cost(ConvFamily::kLut, 2, 2), 0);
    EXPECT_GT(cost(ConvFamily::kLut, 1, 1, WeightDomain::kBinary), 0);
    EXPECT_LT(cost(ConvFamily::kLut, 2, 2, WeightDomain::kUnsigned), 0);  // {0..3} > 1
    EXPECT_LT(cost(ConvFamily::kLut, 3, 3), 0);
    EXPECT_LT(cost(ConvFamily::kLut, 2, 4), 0);
    EXPECT_GT(cost(ConvFamily::kBitSerial, 4, 4), 0);
    EXPECT_LT(cost(ConvFamily::kBitSerial, 8, 8), 0);
    EXPECT_GT(cost(ConvFamily::kInt8, 8, 8), 0);
    EXPECT_GT(cost(ConvFamily::kInt8Dot, 3, 3), 0);  // fewer bits fit u8 / s8
    EXPECT_LT(cost(ConvFamily::kInt8, 8, 8, WeightDomain::kUnsigned), 0);  // 255 > 127
    EXPECT_LT(cost(ConvFamily::kDepthwiseInt8, 8, 8), 0);  // not depthwise
    EXPECT_LT(cost(ConvFamily::kNone, 8, 8), 0);
    const ConvGeometry dw = Conv(32, 32, 28, 3, 1, 32);
    EXPECT_GT(estimate_conv_cycles(ConvFamily::kDepthwiseInt8, dw, 8, 8, WeightDomain::kSigned, isa), 0);
    EXPECT_LT(estimate_conv_cycles(ConvFamily::kInt8, dw, 8, 8, WeightDomain::kSigned, isa), 0);
    const ConvGeometry grouped = Conv(32, 32, 28, 3, 1, 4);
    for (ConvFamily f : {ConvFamily::kInt8, ConvFamily::kInt8Dot, ConvFamily::kDepthwiseInt8,
                         ConvFamily::kLut, ConvFamily::kBitSerial})
      EXPECT_LT(estimate_conv_cycles(f, grouped, 8, 8, WeightDomain::kSigned, isa), 0);
  }
}

// Orderings measured on this project's x86 machine (bench/kernels), which
// the model must reproduce.
TEST(ChooseCost, MeasuredOrderings) {
  const ConvGeometry resnet = Conv(64, 64, 56, 3, 1);
  auto cost = [](ConvFamily f, const ConvGeometry& g, int bits, Isa isa) {
    return estimate_conv_cycles(f, g, bits, bits, WeightDomain::kSigned, isa);
  };
  // AVX2: the LUT beats INT8 (vpmaddwd) more than 2x on W2A2 3x3 layers.
  EXPECT_LT(2 * cost(ConvFamily::kLut, resnet, 2, Isa::kAvx2),
            cost(ConvFamily::kInt8, resnet, 2, Isa::kAvx2));
  // AVX-VNNI: vpdpbusd beats vpdpwssd; and it edges out the LUT even at 2 bits.
  EXPECT_LT(cost(ConvFamily::kInt8Dot, resnet, 8, Isa::kAvxVnni),
            cost(ConvFamily::kInt8, resnet, 8, Isa::kAvxVnni));
  EXPECT_LT(cost(ConvFamily::kInt8Dot, resnet, 2, Isa::kAvxVnni),
            cost(ConvFamily::kLut, resnet, 2, Isa::kAvxVnni));
  // AVX-512: 512-bit vpdpbusd (~2x the AVX-VNNI rate) beats the 256-bit LUT at 2 bits.
  EXPECT_LT(2 * cost(ConvFamily::kInt8Dot, resnet, 8, Isa::kAvx512),
            1.2 * cost(ConvFamily::kInt8Dot, resnet, 8, Isa::kAvxVnni));
  EXPECT_LT(cost(ConvFamily::kInt8Dot, resnet, 2, Isa::kAvx512),
            cost(ConvFamily::kLut, resnet, 2, Isa::kAvx512));
  // AVX-512: W1A1 bit-serial (vpopcntq, 2 x 16 register tile) beats 512-bit
  // INT8 from 64 input channels; at 2 bits and more INT8 wins.
  const ConvGeometry resnet128 = Conv(128, 128, 28, 3, 1);
  EXPECT_LT(estimate_conv_cycles(ConvFamily::kBitSerial, resnet128, 1, 1, WeightDomain::kBinary,
                                 Isa::kAvx512),
            cost(ConvFamily::kInt8Dot, resnet128, 1, Isa::kAvx512));
  EXPECT_GT(cost(ConvFamily::kBitSerial, resnet128, 2, Isa::kAvx512),
            cost(ConvFamily::kInt8Dot, resnet128, 2, Isa::kAvx512));
  // Bit-serial at 3 and 4 bits loses to INT8 on x86; W1A1 beats vpmaddwd INT8.
  EXPECT_GT(cost(ConvFamily::kBitSerial, resnet, 3, Isa::kAvx2), cost(ConvFamily::kInt8, resnet, 3, Isa::kAvx2));
  EXPECT_LT(cost(ConvFamily::kBitSerial, resnet, 1, Isa::kAvx2), cost(ConvFamily::kInt8, resnet, 1, Isa::kAvx2));
  // Three input channels: bit-serial pads them to 64 and is far behind.
  const ConvGeometry first = Conv(3, 32, 416, 3, 2);
  EXPECT_GT(cost(ConvFamily::kBitSerial, first, 1, Isa::kAvx2), 5 * cost(ConvFamily::kInt8, first, 1, Isa::kAvx2));
  // Padded-row waste: a 13x13 LUT layer computes 256 of every 169 pixels.
  const ConvGeometry small = Conv(128, 128, 13, 3, 1), big = Conv(128, 128, 52, 3, 1);
  EXPECT_GT(cost(ConvFamily::kLut, small, 2, Isa::kAvx2) / small.macs(),
            1.3 * cost(ConvFamily::kLut, big, 2, Isa::kAvx2) / big.macs());
}

class Choose : public IsaTest {};

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
        EXPECT_TRUE(t.int8_dot_native);
      }
      for (ConvFamily f : {ConvFamily::kInt8, ConvFamily::kLut, ConvFamily::kBitSerial,
                           ConvFamily::kDepthwiseInt8}) {
        const double other = estimate_conv_cycles(f, g, bits, bits, d, t.isa);
        if (other >= 0) {
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
      case ConvFamily::kInt8: tester.int8().Test(t.conv_u8s8); break;
      case ConvFamily::kInt8Dot: tester.int8().Test(t.conv_u8s8dot); break;
      case ConvFamily::kLut: tester.Test(t.conv_w2a2_lut); break;
      case ConvFamily::kBitSerial: tester.Test(t.conv_anybits_bitserial); break;
      default: ADD_FAILURE() << conv_family_name(c.family);
    }
  }
}

LOWBIT_INSTANTIATE_ISA_TESTS(Choose);

}  // namespace
}  // namespace lowbit::kernels::testing
