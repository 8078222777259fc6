// Exact requantization (Epilogue::sum_offset and Epilogue::out_scale) in
// every kernel family and ISA variant, bit for bit against kernels/ref:
// codes round_half_even(fl(y / out_scale)) as ONNX QuantizeLinear, y from the
// centred sum s - sum_offset[c]. The data is built to reach the cases where
// cheaper arithmetic goes wrong, and each test asserts that it did
// (ConvTester::tie_stats, counted on the reference values):
// - exact ties y / out_scale = k + 1/2 (power-of-two scales, tie_scales);
// - near-ties where y * (1 / out_scale) rounds differently from the quotient
//   (product_differs) and where the real quotient rounds differently from
//   the float one (real_differs: fl(y / s) lands on the tie);
// - zero points 0, 1, 127, 128, 255 on both sides, accumulators above 2^24.
#include "conv_tester.h"
#include "isa_param.h"

namespace lowbit::kernels::testing {
namespace {

class ExactRequant : public IsaTest {};

constexpr int kZeroPoints[] = {0, 1, 127, 128, 255};
constexpr Activation kFoldedAndNot[] = {Activation::kNone, Activation::kRelu, Activation::kClip,
                                        Activation::kLeakyRelu, Activation::kHardSwish};
constexpr float kPowerOfTwoScale = 0x1p-5f;  // y / s exact: ties are reached exactly
constexpr float kOddScale = 0.0371f;         // y / s rounded: near-ties

struct TieTotals {
  size_t ties = 0, product_differs = 0, real_differs = 0;
  void Add(const ConvTester& t) {
    ties += t.tie_stats().ties;
    product_differs += t.tie_stats().product_differs;
    real_differs += t.tie_stats().real_differs;
  }
};

// INT8 conv (both formats) and depthwise: every pair of activation and output
// zero points, folded and applied activations, codes centred on the
// activation zero point so the codes stay in range around the ties.
TEST_P(ExactRequant, Int8ZeroPointsTiesAndNearTies) {
  uint32_t seed = 1;
  TieTotals pow2, odd;
  int a = 0;
  for (int zp_a : kZeroPoints)
    for (int zp : kZeroPoints)
      for (float s : {kPowerOfTwoScale, kOddScale}) {
        const Activation act = kFoldedAndNot[a++ % 5];
        const ConvTester conv = ConvTester()
                                    .int8()
                                    .destination(Destination::kCodes)
                                    .out_bits(8)
                                    .activation(act)
                                    .zero_point(zp)
                                    .out_scale(s)
                                    .tie_scales(2)
                                    .activation_zero_point(zp_a)
                                    .code_range(zp_a - 2, zp_a + 2)
                                    .weight_range(-3, 3)
                                    .cin(10)
                                    .cout(20)
                                    .h(7)
                                    .w(9)
                                    .kernel(3)
                                    .pad(1)
                                    .seed(seed++);
        conv.Test(table().conv_u8s8.fn);
        (s == kOddScale ? odd : pow2).Add(conv);
        conv.Test(table().conv_u8s8dot.fn);
        const ConvTester dw = ConvTester()
                                  .int8()
                                  .destination(Destination::kCodes)
                                  .out_bits(8)
                                  .activation(act)
                                  .zero_point(zp)
                                  .out_scale(s)
                                  .tie_scales(2)
                                  .activation_zero_point(zp_a)
                                  .code_range(zp_a - 40, zp_a + 40)
                                  .weight_range(-3, 3)
                                  .cin(37)
                                  .depthwise()
                                  .h(6)
                                  .w(11)
                                  .kernel(3)
                                  .pad(1)
                                  .seed(seed++);
        dw.Test(table().dwconv_u8s8.fn);
        (s == kOddScale ? odd : pow2).Add(dw);
      }
  // Measured: 3308 exact ties; with the odd scale 4415 quotients rounded onto
  // a tie, 1277 codes where the product rounds differently, 2528 where the
  // real quotient does.
  EXPECT_GT(pow2.ties, 1000u);
  EXPECT_EQ(pow2.product_differs, 0u);  // 1 / 2^-5 is exact
  EXPECT_GT(odd.ties, 1000u);
  EXPECT_GT(odd.product_differs, 300u);
  EXPECT_GT(odd.real_differs, 600u);
}

// Clip bounds that are exact ties in code units (folded as rne(bound / s)),
// and a negative out_inv_scale left over from the multiplier mode (ignored).
TEST_P(ExactRequant, Int8ClipBoundsOnTies) {
  uint32_t seed = 100;
  for (int zp : {0, 127, 128}) {
    const float s = kPowerOfTwoScale;
    ConvTester()
        .int8()
        .destination(Destination::kCodes)
        .out_bits(8)
        .activation(Activation::kClip)
        .clip(-16.5f * s, 33.5f * s)
        .zero_point(zp)
        .out_scale(s)
        .out_inv_scale(-7.0f)
        .tie_scales(2)
        .activation_zero_point(128)
        .code_range(126, 130)
        .weight_range(-3, 3)
        .cin(10)
        .cout(33)
        .h(5)
        .w(8)
        .kernel(3)
        .pad(1)
        .seed(seed++)
        .Test(table().conv_u8s8.fn, table().conv_u8s8dot.fn);
  }
}

// Sums above 2^24 (codes 253..255, weights 96..127; 1x1 x 768 channels:
// every sum is >= 768 x 96 x 253 > 2^24, 3x3 x 160 unpadded: > 2^25):
// float(s) would round, the centred s - sum_offset is exact and small.
TEST_P(ExactRequant, Int8LargeAccumulators) {
  uint32_t seed = 200;
  TieTotals totals;
  for (int zp : {1, 128, 255})
    for (float s : {kPowerOfTwoScale, kOddScale}) {
      const ConvTester t = ConvTester()
                               .int8()
                               .destination(Destination::kCodes)
                               .out_bits(8)
                               .zero_point(zp)
                               .out_scale(s)
                               .tie_scales(32)
                               .activation_zero_point(254)
                               .code_range(253, 255)
                               .weight_range(96, 127)
                               .cin(s == kOddScale ? 160 : 768)
                               .cout(17)
                               .h(s == kOddScale ? 7 : 8)
                               .w(s == kOddScale ? 9 : 8)
                               .kernel(s == kOddScale ? 3 : 1)
                               .seed(seed++);
      t.Test(table().conv_u8s8.fn, table().conv_u8s8dot.fn);
      totals.Add(t);
    }
  EXPECT_GT(totals.ties, 10u);  // measured: 30
  // Large sums without sum_offset: float(s) rounds the same way in both.
  ConvTester()
      .int8()
      .destination(Destination::kFloat)
      .fill(Fill::kMaxCodesMaxWeights)
      .cin(1000)
      .cout(17)
      .h(4)
      .w(3)
      .kernel(3)
      .pad(1)
      .Test(table().conv_u8s8.fn, table().conv_u8s8dot.fn);
}

// Float values with sum_offset, and codes into the next low-bit layer's
// planes (the scalar store_tile of the INT8 kernels).
TEST_P(ExactRequant, Int8FloatsAndPlanes) {
  uint32_t seed = 300;
  TieTotals totals;
  for (Activation act : kFoldedAndNot) {
    ConvTester()
        .int8()
        .destination(Destination::kFloat)
        .activation(act)
        .activation_zero_point(127)
        .cin(12)
        .cout(20)
        .h(5)
        .w(7)
        .kernel(3)
        .pad(1)
        .seed(seed++)
        .Test(table().conv_u8s8.fn, table().conv_u8s8dot.fn);
    ConvTester()
        .int8()
        .destination(Destination::kFloat)
        .activation(act)
        .activation_zero_point(1)
        .cin(20)
        .depthwise()
        .h(5)
        .w(7)
        .kernel(3)
        .pad(1)
        .seed(seed++)
        .Test(table().dwconv_u8s8.fn);
    for (Destination d : {Destination::kPairPlanes, Destination::kBitPlanes}) {
      const ConvTester t = ConvTester()
                               .int8()
                               .destination(d)
                               .activation(act)
                               .out_bits(d == Destination::kPairPlanes ? 2 : 4)
                               .zero_point(d == Destination::kPairPlanes ? 1 : 7)
                               .out_scale(kPowerOfTwoScale)
                               .tie_scales(16)
                               .activation_zero_point(128)
                               .code_range(126, 130)
                               .weight_range(-3, 3)
                               .cin(10)
                               .cout(70)
                               .h(5)
                               .w(6)
                               .kernel(3)
                               .pad(1)
                               .seed(seed++);
      t.Test(table().conv_u8s8.fn, table().conv_u8s8dot.fn);
      totals.Add(t);
    }
  }
  EXPECT_GT(totals.ties, 50u);  // measured: 148
}

// Weight-pair LUT (2-bit codes, zero points 0..3): codes, floats, pair and
// bit planes; rows of 13 and 70 pixels (vector runs and tails), work splits.
TEST_P(ExactRequant, Lut) {
  uint32_t seed = 400;
  TieTotals pow2, odd;
  int z = 0;
  for (int zp_a : {0, 1, 2, 3})
    for (float s : {kPowerOfTwoScale, kOddScale})
      for (Activation act : kFoldedAndNot) {
        const int zp = kZeroPoints[z++ % 5];
        const ConvTester codes = ConvTester()
                                     .destination(Destination::kCodes)
                                     .out_bits(8)
                                     .activation(act)
                                     .zero_point(zp)
                                     .out_scale(s)
                                     .tie_scales(2)
                                     .activation_zero_point(zp_a)
                                     .cin(7)
                                     .cout(13)
                                     .h(6)
                                     .w(zp_a % 2 ? 70 : 13)
                                     .kernel(3)
                                     .pad(1)
                                     .splits(zp_a + 1)
                                     .seed(seed++);
        codes.Test(table().conv_w2a2_lut.fn);
        (s == kOddScale ? odd : pow2).Add(codes);
        const ConvTester pairs = ConvTester()
                                     .destination(Destination::kPairPlanes)
                                     .out_bits(2)
                                     .activation(act)
                                     .zero_point(1 + zp_a % 2)
                                     .out_scale(s)
                                     .tie_scales(8)
                                     .activation_zero_point(zp_a)
                                     .cin(5)
                                     .cout(12)
                                     .h(7)
                                     .w(19)
                                     .kernel(3)
                                     .pad(1)
                                     .seed(seed++);
        pairs.Test(table().conv_w2a2_lut.fn);
        (s == kOddScale ? odd : pow2).Add(pairs);
        ConvTester()
            .destination(Destination::kBitPlanes)
            .out_bits(3)
            .activation(act)
            .zero_point(3)
            .out_scale(s)
            .tie_scales(8)
            .activation_zero_point(zp_a)
            .cin(10)
            .cout(70)
            .h(5)
            .w(6)
            .kernel(3)
            .stride(2)
            .pad(1)
            .seed(seed++)
            .Test(table().conv_w2a2_lut.fn);
        ConvTester()
            .destination(Destination::kFloat)
            .activation(act)
            .activation_zero_point(zp_a)
            .cin(6)
            .cout(5)
            .h(5)
            .w(13)
            .kernel(3)
            .pad(1)
            .seed(seed++)
            .Test(table().conv_w2a2_lut.fn);
      }
  EXPECT_GT(pow2.ties, 1000u);           // measured: LUT 5669, bit-serial 5196
  EXPECT_GT(odd.product_differs, 200u);  // measured: LUT 1030, bit-serial 711
  EXPECT_GT(odd.real_differs, 600u);     // measured: LUT 2112, bit-serial 2246
}

// Bit-serial, several bit widths: codes, floats and planes; Cout 36 (4 + 4 +
// 1 blocks of the AVX-512 register tile), rows with pixel tails.
TEST_P(ExactRequant, BitSerial) {
  struct Bits {
    int wbits, abits;
    WeightDomain domain;
  };
  constexpr Bits kBits[] = {{1, 1, WeightDomain::kBinary},
                            {2, 2, WeightDomain::kSigned},
                            {3, 2, WeightDomain::kUnsigned},
                            {4, 4, WeightDomain::kSigned}};
  uint32_t seed = 600;
  TieTotals pow2, odd;
  int z = 0;
  for (const Bits& b : kBits)
    for (float s : {kPowerOfTwoScale, kOddScale})
      for (Activation act : kFoldedAndNot) {
        const int zp_a = (z + 1) % (1 << b.abits);
        const int zp = kZeroPoints[z++ % 5];
        const ConvTester codes = ConvTester()
                                     .wbits(b.wbits)
                                     .abits(b.abits)
                                     .domain(b.domain)
                                     .destination(Destination::kCodes)
                                     .out_bits(8)
                                     .activation(act)
                                     .zero_point(zp)
                                     .out_scale(s)
                                     .tie_scales(2)
                                     .activation_zero_point(zp_a)
                                     .cin(19)
                                     .cout(36)
                                     .h(3)
                                     .w(zp % 2 ? 71 : 13)
                                     .kernel(3)
                                     .pad(1)
                                     .splits(z % 3 + 1)
                                     .seed(seed++);
        codes.Test(table().conv_anybits_bitserial.fn);
        (s == kOddScale ? odd : pow2).Add(codes);
        for (Destination d : {Destination::kPairPlanes, Destination::kBitPlanes}) {
          const ConvTester planes = ConvTester()
                                        .wbits(b.wbits)
                                        .abits(b.abits)
                                        .domain(b.domain)
                                        .destination(d)
                                        .out_bits(2)
                                        .activation(act)
                                        .zero_point(1)
                                        .out_scale(s)
                                        .tie_scales(8)
                                        .activation_zero_point(zp_a)
                                        .cin(17)
                                        .cout(d == Destination::kBitPlanes ? 66 : 9)
                                        .h(5)
                                        .w(7)
                                        .kernel(3)
                                        .pad(1)
                                        .seed(seed++);
          planes.Test(table().conv_anybits_bitserial.fn);
          (s == kOddScale ? odd : pow2).Add(planes);
        }
        ConvTester()
            .wbits(b.wbits)
            .abits(b.abits)
            .domain(b.domain)
            .destination(Destination::kFloat)
            .activation(act)
            .activation_zero_point(zp_a)
            .cin(19)
            .cout(20)
            .h(3)
            .w(11)
            .kernel(3)
            .pad(1)
            .seed(seed++)
            .Test(table().conv_anybits_bitserial.fn);
      }
  EXPECT_GT(pow2.ties, 1000u);           // measured: LUT 5669, bit-serial 5196
  EXPECT_GT(odd.product_differs, 200u);  // measured: LUT 1030, bit-serial 711
  EXPECT_GT(odd.real_differs, 600u);     // measured: LUT 2112, bit-serial 2246
}

// Scales outside the vector stages' range [2^-100, 2^100] and a zero point
// above 2^20: the scalar store_tile divides.
TEST_P(ExactRequant, ScalarFallbackRanges) {
  uint32_t seed = 800;
  for (float s : {0x1p-110f, 0x1p110f, 3e-38f})
    ConvTester()
        .int8()
        .destination(Destination::kCodes)
        .out_bits(8)
        .zero_point(128)
        .out_scale(s)
        .activation_zero_point(128)
        .cin(8)
        .cout(16)
        .h(4)
        .w(6)
        .kernel(3)
        .pad(1)
        .seed(seed++)
        .Test(table().conv_u8s8.fn, table().conv_u8s8dot.fn);
  ConvTester()
      .int8()
      .destination(Destination::kCodes)
      .out_bits(8)
      .zero_point(-(1 << 21))
      .out_scale(kPowerOfTwoScale)
      .tie_scales(2)
      .cin(8)
      .cout(16)
      .h(4)
      .w(6)
      .kernel(1)
      .seed(seed++)
      .Test(table().conv_u8s8.fn, table().conv_u8s8dot.fn);
}

LOWBIT_INSTANTIATE_ISA_TESTS(ExactRequant);

}  // namespace
}  // namespace lowbit::kernels::testing
