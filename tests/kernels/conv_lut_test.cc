// Weight-pair LUT convolution (conv_w2a2_lut_64x4__*) against kernels/ref.
#include "conv_tester.h"
#include "isa_param.h"

namespace lowbit::kernels::testing {
namespace {

class ConvLut : public IsaTest {};

struct LutBits {
  WeightDomain domain;
  int wbits;
  int abits;
};
// Every weight/activation coding the table kernel accepts: weights in [-2, 1].
constexpr LutBits kLutBits[] = {{WeightDomain::kSigned, 2, 2},
                                {WeightDomain::kSigned, 2, 1},
                                {WeightDomain::kBinary, 1, 2},
                                {WeightDomain::kBinary, 1, 1},
                                {WeightDomain::kSigned, 1, 2}};

TEST_P(ConvLut, ChannelsKernelsStridesPads) {
  uint32_t seed = 1;
  for (int k : {1, 3})
    for (int s : {1, 2})
      for (int p : {0, 1})
        for (int cin : {1, 2, 3, 8, 17})
          for (int cout : {1, 4, 5, 11})
            ConvTester().cin(cin).cout(cout).h(7).w(5).kernel(k).stride(s).pad(p).seed(seed++).Test(
                table().conv_w2a2_lut.fn);
}

TEST_P(ConvLut, AllBitWidths) {
  uint32_t seed = 100;
  for (const LutBits& b : kLutBits)
    for (int s : {1, 2})
      ConvTester().domain(b.domain).wbits(b.wbits).abits(b.abits).cin(9).cout(6).h(11).w(10)
          .kernel(3).stride(s).pad(1).seed(seed++).Test(table().conv_w2a2_lut.fn);
}

TEST_P(ConvLut, ManyTilesOddSizesAndBatch) {
  // Several 64-pixel tiles, tiles crossing rows, odd sizes, batch 2.
  for (int s : {1, 2}) {
    ConvTester().batch(2).cin(6).cout(8).h(23).w(29).kernel(3).stride(s).pad(1).seed(7).Test(
        table().conv_w2a2_lut.fn);
    ConvTester().cin(5).cout(9).h(31).w(3).kernel(3).stride(s).pad(0).seed(8).Test(
        table().conv_w2a2_lut.fn);
    ConvTester().cin(64).cout(16).h(14).w(14).kernel(1).stride(s).pad(0).seed(9).Test(
        table().conv_w2a2_lut.fn);
  }
  ConvTester().cin(1).cout(1).h(1).w(1).kernel(1).seed(10).Test(table().conv_w2a2_lut.fn);
  ConvTester().cin(2).cout(3).h(1).w(1).kernel(3).pad(1).seed(11).Test(table().conv_w2a2_lut.fn);
  ConvTester().cin(4).cout(4).h(9).w(9).kernel(5, 3).pad(1).seed(12).Test(table().conv_w2a2_lut.fn);
}

TEST_P(ConvLut, ExtremeValuesAcrossWidenAndFlush) {
  // 1030 channels x 9 taps = 4635 steps: crosses the 14-step byte widening and
  // the 3584-step 16-bit flush with every table entry at 0 or at 18.
  for (Fill fill : {Fill::kMaxCodesMinWeights, Fill::kMaxCodesMaxWeights}) {
    ConvTester().fill(fill).cin(1030).cout(5).h(4).w(3).kernel(3).pad(1).Test(
        table().conv_w2a2_lut.fn);
    ConvTester().fill(fill).cin(29).cout(4).h(8).w(9).kernel(3).stride(2).pad(1).Test(
        table().conv_w2a2_lut.fn);
  }
  ConvTester().fill(Fill::kMaxCodesMaxWeights).domain(WeightDomain::kBinary).wbits(1).cin(64)
      .cout(4).h(6).w(6).kernel(3).pad(1).Test(table().conv_w2a2_lut.fn);
}

TEST_P(ConvLut, FusedEpilogueDestinations) {
  uint32_t seed = 200;
  for (Activation act : {Activation::kNone, Activation::kRelu, Activation::kLeakyRelu,
                         Activation::kClip, Activation::kHardSwish, Activation::kSilu}) {
    for (Destination d : {Destination::kFloat, Destination::kCodes, Destination::kPairPlanes}) {
      ConvTester().destination(d).activation(act).out_bits(2).cin(10).cout(7).h(9).w(12).kernel(3)
          .stride(1).pad(1).seed(seed++).Test(table().conv_w2a2_lut.fn);
    }
    ConvTester().destination(Destination::kPairPlanes).next_stride(2).activation(act).cin(6)
        .cout(12).h(10).w(21).kernel(3).pad(1).seed(seed++).Test(table().conv_w2a2_lut.fn);
    ConvTester().destination(Destination::kBitPlanes).activation(act).out_bits(3).cin(10).cout(70)
        .h(5).w(6).kernel(3).stride(2).pad(1).seed(seed++).Test(table().conv_w2a2_lut.fn);
    ConvTester().destination(Destination::kCodes).activation(act).out_bits(8).cin(10).cout(5)
        .h(5).w(6).kernel(1).seed(seed++).Test(table().conv_w2a2_lut.fn);
  }
}

constexpr Activation kAllActivations[] = {Activation::kNone,      Activation::kRelu,
                                          Activation::kLeakyRelu, Activation::kClip,
                                          Activation::kHardSwish, Activation::kSilu};

TEST_P(ConvLut, VectorCodesAndFloats) {
  // The vector kCodes / kFloat stages: every activation, zero points odd,
  // even, negative and at the top of the code range, Cout not a multiple of 4
  // or 16, rows of 13 pixels (runs of every length inside a 64-pixel tile)
  // and work ranges that end inside a tile's channel blocks.
  constexpr int kZeroPoints[] = {7, 0, -3, 128, 255, 1};
  uint32_t seed = 300;
  int z = 0;
  for (Activation act : kAllActivations)
    for (Destination d : {Destination::kCodes, Destination::kFloat})
      for (int cout : {3, 4, 6, 13, 20}) {
        ConvTester().destination(d).activation(act).out_bits(8).zero_point(kZeroPoints[z++ % 6])
            .cin(6).cout(cout).h(9).w(13).kernel(3).pad(1).splits(cout % 3 + 1).seed(seed++)
            .Test(table().conv_w2a2_lut.fn);
      }
  for (Activation act : kAllActivations)
    for (Destination d : {Destination::kCodes, Destination::kFloat}) {
      // Low-bit codes; one row spanning several tiles, stride 2.
      ConvTester().destination(d).activation(act).out_bits(3).zero_point(3).cin(9).cout(7).h(5)
          .w(70).kernel(3).stride(1).pad(1).seed(seed++).Test(table().conv_w2a2_lut.fn);
      ConvTester().destination(d).activation(act).out_bits(2).zero_point(1).batch(2).cin(4)
          .cout(5).h(12).w(11).kernel(3).stride(2).pad(1).splits(4).seed(seed++)
          .Test(table().conv_w2a2_lut.fn);
      // No bias; a negative multiplier (activation not folded into the code
      // bounds); a huge one (float values beyond the int32 range).
      ConvTester().destination(d).activation(act).out_bits(8).zero_point(9).bias(false).cin(8)
          .cout(8).h(6).w(9).kernel(1).seed(seed++).Test(table().conv_w2a2_lut.fn);
      ConvTester().destination(d).activation(act).out_bits(8).zero_point(200).out_inv_scale(-60.0f)
          .cin(8).cout(12).h(6).w(9).kernel(3).pad(1).seed(seed++).Test(table().conv_w2a2_lut.fn);
      ConvTester().destination(d).activation(act).out_bits(8).zero_point(5).out_inv_scale(3e9f)
          .cin(8).cout(4).h(6).w(9).kernel(3).pad(1).seed(seed++).Test(table().conv_w2a2_lut.fn);
    }
}

TEST_P(ConvLut, VectorPairPlanes) {
  // Codes into the next LUT layer's pair planes (8-pixel vector path and
  // tails), both phase splits, odd zero points.
  uint32_t seed = 400;
  for (Activation act : kAllActivations)
    for (int next : {1, 2})
      ConvTester().destination(Destination::kPairPlanes).next_stride(next).activation(act)
          .out_bits(2).zero_point(act == Activation::kRelu ? 0 : 3).cin(5).cout(10).h(7).w(19)
          .kernel(3).pad(1).seed(seed++).Test(table().conv_w2a2_lut.fn);
}

LOWBIT_INSTANTIATE_ISA_TESTS(ConvLut);

}  // namespace
}  // namespace lowbit::kernels::testing
