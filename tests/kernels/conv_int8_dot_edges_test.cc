// Edge cases of the byte-format INT8 family (conv_u8s8dot_*) against
// kernels/ref on every ISA. They target conv_u8s8dot_2x16__neon, which
// recentres activations to a - 128 and sums two products per int16 lane in
// weight blocks without a -128 weight (single products in blocks with one):
// symmetric weights reach both int16 pair-sum extremes (+-32512), blocks with
// and without -128 meet in one layer, k-quad counts per kernel row are odd
// and even (pair loop plus tail), pixel counts odd, and layers have more
// blocks than its per-call weight-sum cache (64 blocks).
#include "conv_tester.h"
#include "isa_param.h"

namespace lowbit::kernels::testing {
namespace {

class ConvInt8DotEdges : public IsaTest {};

TEST_P(ConvInt8DotEdges, SymmetricWeightsShapes) {
  const auto fn = table().conv_u8s8dot.fn;
  uint32_t seed = 1;
  // (cin, kernel, stride): k-quads per kernel row 1, 2, 3 x 3, 2 x 1, 4 x 5 ...
  const int shapes[][3] = {{4, 1, 1}, {8, 1, 1},  {12, 3, 1}, {5, 1, 2}, {16, 5, 1},
                           {3, 3, 2}, {33, 3, 1}, {64, 1, 1}, {7, 2, 1}};
  for (const auto& s : shapes)
    for (int cout : {16, 40})
      ConvTester()
          .int8()
          .weight_range(-127, 127)
          .cin(s[0])
          .cout(cout)
          .h(7)
          .w(5)
          .kernel(s[1])
          .stride(s[2])
          .pad(s[1] / 2)
          .seed(seed++)
          .Test(fn);
  ConvTester()
      .int8()
      .weight_range(-127, 127)
      .batch(2)
      .cin(20)
      .cout(24)
      .h(5)
      .w(5)
      .kernel(3)
      .pad(1)
      .seed(seed++)
      .Test(fn);
  ConvTester().int8().weight_range(-127, 127).cin(9).cout(17).h(1).w(1).kernel(1).seed(seed++).Test(
      fn);
}

TEST_P(ConvInt8DotEdges, SymmetricWeightExtremes) {
  const auto fn = table().conv_u8s8dot.fn;
  // a - 128 = -128 or 127 against w = -127 or 127 everywhere: int16 pair sums
  // of +-32512 and +-32258, int32 sums up to 1000 x 9 x 16256 before the
  // 128 * sum(w) correction.
  for (int code : {0, 255})
    for (int w : {-127, 127}) {
      ConvTester()
          .int8()
          .code_range(code, code)
          .weight_range(w, w)
          .cin(1000)
          .cout(17)
          .h(4)
          .w(3)
          .kernel(3)
          .pad(1)
          .Test(fn);
      ConvTester()
          .int8()
          .code_range(code, code)
          .weight_range(w, w)
          .cin(12)
          .cout(16)
          .h(5)
          .w(5)
          .kernel(3)
          .pad(1)
          .Test(fn);
    }
  // Alternating extremes at random.
  ConvTester()
      .int8()
      .code_range(0, 255)
      .weight_range(-127, 127)
      .cin(256)
      .cout(32)
      .h(6)
      .w(6)
      .kernel(3)
      .pad(1)
      .seed(77)
      .Test(fn);
}

TEST_P(ConvInt8DotEdges, BlocksWithAndWithoutMinusOneTwentyEight) {
  const auto fn = table().conv_u8s8dot.fn;
  // 16 channels x 4 inputs per block: about 78% of the blocks hold no -128
  // weight at random, so each layer mixes both paths.
  for (uint32_t seed = 100; seed < 108; ++seed)
    ConvTester().int8().cin(4).cout(80).h(5).w(7).kernel(1).seed(seed).Test(fn);
  // Every weight -128, the path of single products at its extreme.
  ConvTester()
      .int8()
      .fill(Fill::kMaxCodesMinWeights)
      .cin(24)
      .cout(32)
      .h(5)
      .w(5)
      .kernel(3)
      .pad(1)
      .Test(fn);
  ConvTester()
      .int8()
      .code_range(0, 0)
      .weight_range(-128, -128)
      .cin(24)
      .cout(16)
      .h(3)
      .w(3)
      .kernel(3)
      .pad(1)
      .Test(fn);
}

TEST_P(ConvInt8DotEdges, MoreBlocksThanTheCacheAndSplits) {
  const auto fn = table().conv_u8s8dot.fn;
  ConvTester().int8().weight_range(-127, 127).cin(8).cout(1040).h(3).w(3).kernel(1).seed(5).Test(
      fn);
  ConvTester().int8().cin(4).cout(1040).h(2).w(3).kernel(1).seed(6).Test(fn);
  for (int parts : {2, 3, 7})
    ConvTester()
        .int8()
        .weight_range(-127, 127)
        .cin(12)
        .cout(48)
        .h(9)
        .w(7)
        .kernel(3)
        .pad(1)
        .splits(parts)
        .seed(10 + parts)
        .Test(fn);
}

LOWBIT_INSTANTIATE_ISA_TESTS(ConvInt8DotEdges);

}  // namespace
}  // namespace lowbit::kernels::testing
