// The INT8 dot-product family (conv_u8s8dot_*) against kernels/ref on the
// shapes that stress the dot-product variants' own structure, on every level
// this CPU runs (the Arm dotprod and i8mm variants under qemu-aarch64 with a
// QEMU_CPU that has them; CMake runs the suite under several):
//   - kernel rows of 1..9 k-quads: whole 16-byte blocks of a row plus 1-3
//     tail quads (sdot: one lane each; usmmla: k-octets plus an odd quad);
//   - more than 64 output-channel blocks (the sdot variant caches its
//     per-block weight correction 128 * sum(w) for the first 64 only);
//   - codes and weights at the ends of their ranges, where the shifted
//     activations (a - 128) and the correction are largest;
//   - work ranges that start and end inside a pixel group's blocks;
// and that the cost model picks the Arm dot-product kernels where they run.
#include <cstring>

#include "conv_tester.h"
#include "isa_param.h"
#include "lowbit/kernels/choose.h"

namespace lowbit::kernels::testing {
namespace {

class ConvInt8Dot : public IsaTest {};

TEST_P(ConvInt8Dot, RowQuadTails) {
  uint32_t seed = 500;
  // 1x1: a row is channel_stride bytes = cin rounded up to 4.
  for (int cin = 1; cin <= 36; cin += (cin < 8 ? 1 : 5))
    ConvTester().int8().cin(cin).cout(20).h(5).w(7).seed(seed++).Test(table().conv_u8s8dot.fn);
  // kernel_w adjacent pixels form one row: 3 x 4 bytes, 3 x 8, 5 x 12, 2 x 20.
  ConvTester().int8().cin(3).cout(16).h(6).w(6).kernel(3).pad(1).seed(seed++).Test(
      table().conv_u8s8dot.fn);
  ConvTester().int8().cin(7).cout(16).h(6).w(6).kernel(3).pad(1).seed(seed++).Test(
      table().conv_u8s8dot.fn);
  ConvTester().int8().cin(12).cout(33).h(7).w(9).kernel(5).pad(2).seed(seed++).Test(
      table().conv_u8s8dot.fn);
  ConvTester().int8().cin(17).cout(31).h(8).w(5).kernel(3, 2).stride(2).seed(seed++).Test(
      table().conv_u8s8dot.fn);
}

TEST_P(ConvInt8Dot, ManyOutputBlocks) {
  // 67 blocks of 16 output channels (the last one partial).
  ConvTester().int8().cin(9).cout(1070).h(3).w(4).kernel(3).pad(1).seed(600).Test(
      table().conv_u8s8dot.fn);
  ConvTester().int8().cin(32).cout(1030).h(5).w(5).kernel(1).seed(601).splits(3).Test(
      table().conv_u8s8dot.fn);
}

TEST_P(ConvInt8Dot, ExtremeCodesAndWeights) {
  for (Fill fill : {Fill::kMaxCodesMinWeights, Fill::kMaxCodesMaxWeights}) {
    ConvTester().int8().fill(fill).cin(256).cout(20).h(5).w(6).kernel(3).pad(1).Test(
        table().conv_u8s8dot.fn);
    ConvTester().int8().fill(fill).cin(5).cout(16).h(4).w(4).kernel(1).Test(
        table().conv_u8s8dot.fn);
  }
  // Codes all 0 or all 255 with full-range weights (the shift's two ends).
  ConvTester().int8().code_range(0, 0).cin(40).cout(18).h(4).w(5).kernel(3).pad(1).seed(610).Test(
      table().conv_u8s8dot.fn);
  ConvTester().int8().code_range(255, 255).cin(40).cout(18).h(4).w(5).kernel(3).pad(1).seed(611)
      .Test(table().conv_u8s8dot.fn);
  ConvTester().int8().code_range(126, 129).weight_range(-128, -127).cin(21).cout(17).h(3).w(3)
      .kernel(3).pad(1).seed(612).Test(table().conv_u8s8dot.fn);
}

TEST_P(ConvInt8Dot, WorkRangesAndRequantizedCodes) {
  uint32_t seed = 620;
  for (int parts : {2, 5, 7})
    ConvTester().int8().batch(2).cin(19).cout(50).h(9).w(7).kernel(3).stride(2).pad(1)
        .splits(parts).seed(seed++).Test(table().conv_u8s8dot.fn);
  ConvTester().int8().destination(Destination::kCodes).activation(Activation::kRelu).out_bits(8)
      .cin(24).cout(40).h(7).w(7).kernel(3).pad(1).seed(seed++).Test(table().conv_u8s8dot.fn);
  ConvTester().int8().destination(Destination::kCodes).out_bits(8).out_scale(0.25f)
      .activation_zero_point(128).cin(24).cout(24).h(6).w(6).kernel(3).pad(1).seed(seed++)
      .Test(table().conv_u8s8dot.fn);
}

// On the dotprod and i8mm levels the byte-format INT8 kernel is the level's
// own and the cheapest family from W8A8 down to W2A2 (below sdot the LUT and
// bit-serial kernels lose, KERNELS.md); below them (neon) it is not theirs.
TEST_P(ConvInt8Dot, ChosenOnArmDotLevels) {
  const bool dot_level = GetParam() == Isa::kNeonDot || GetParam() == Isa::kNeonI8mm;
  EXPECT_EQ(std::strcmp(table().conv_u8s8dot.name, "conv_u8s8dot_4x16__neondot") == 0,
            GetParam() == Isa::kNeonDot);
  EXPECT_EQ(std::strcmp(table().conv_u8s8dot.name, "conv_u8s8dot_4x16__neoni8mm") == 0,
            GetParam() == Isa::kNeonI8mm);
  if (!dot_level) return;
  for (const ConvGeometry& g : {Conv(128, 128, 20, 3, 1), Conv(96, 192, 10, 1, 1)}) {
    for (int bits : {8, 4, 2}) {
      const ConvKernelChoice c = choose_conv_kernel(g, bits, bits, WeightDomain::kSigned, table());
      EXPECT_EQ(c.family, ConvFamily::kInt8Dot) << bits;
      EXPECT_STREQ(c.kernel_name, table().conv_u8s8dot.name) << bits;
    }
  }
}

LOWBIT_INSTANTIATE_ISA_TESTS(ConvInt8Dot);

}  // namespace
}  // namespace lowbit::kernels::testing
