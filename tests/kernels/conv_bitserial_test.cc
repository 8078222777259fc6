// Bit-serial convolution (conv_anybits_bitserial_64x4__*) against kernels/ref.
#include "conv_tester.h"
#include "isa_param.h"

namespace lowbit::kernels::testing {
namespace {

class ConvBitSerial : public IsaTest {};

TEST_P(ConvBitSerial, AllBitWidthsAndDomains) {
  uint32_t seed = 1;
  for (int wb = 1; wb <= 4; ++wb)
    for (int ab = 1; ab <= 4; ++ab)
      for (WeightDomain d : {WeightDomain::kSigned, WeightDomain::kUnsigned, WeightDomain::kBinary}) {
        if (d == WeightDomain::kBinary && wb != 1) continue;
        for (int cin : {5, 64, 65, 130})
          ConvTester().wbits(wb).abits(ab).domain(d).cin(cin).cout(cin == 5 ? 9 : 4).h(5).w(6)
              .kernel(3).stride(1).pad(1).seed(seed++).Test(table().conv_anybits_bitserial.fn);
      }
}

TEST_P(ConvBitSerial, ChannelsKernelsStridesPads) {
  uint32_t seed = 500;
  for (int k : {1, 3})
    for (int s : {1, 2})
      for (int p : {0, 1})
        for (int cin : {1, 3, 63, 64, 65})
          for (int cout : {1, 4, 5, 11})
            ConvTester().wbits(2).abits(2).cin(cin).cout(cout).h(7).w(5).kernel(k).stride(s).pad(p)
                .seed(seed++).Test(table().conv_anybits_bitserial.fn);
}

TEST_P(ConvBitSerial, ManyTilesOddSizesAndBatch) {
  ConvTester().batch(2).wbits(3).abits(2).cin(20).cout(8).h(9).w(70).kernel(3).pad(1).seed(3).Test(
      table().conv_anybits_bitserial.fn);
  ConvTester().wbits(1).abits(1).domain(WeightDomain::kBinary).cin(129).cout(6).h(9).w(11)
      .kernel(3).stride(2).pad(1).seed(4).Test(table().conv_anybits_bitserial.fn);
  ConvTester().wbits(4).abits(4).cin(7).cout(3).h(1).w(1).kernel(3).pad(1).seed(5).Test(
      table().conv_anybits_bitserial.fn);
  // Register tiles of 2 pixels x 4 blocks (AVX-512): 9 blocks (4 + 4 + 1), an
  // odd row of 53 pixels in chunks of 24, every constant bit-width pair.
  for (int bits = 1; bits <= 4; ++bits)
    ConvTester().wbits(bits).abits(bits)
        .domain(bits == 1 ? WeightDomain::kBinary : WeightDomain::kSigned).cin(70).cout(36).h(3)
        .w(53).kernel(3).pad(1).seed(uint32_t(6 + bits)).Test(table().conv_anybits_bitserial.fn);
}

TEST_P(ConvBitSerial, LongStepListsAndWideStrides) {
  // 49 taps x 43 words = 2107 (tap, word) steps: more than one step table
  // (kMaxSteps = 2048, AVX-512), in chunks of whole taps.
  ConvTester().wbits(1).abits(1).domain(WeightDomain::kBinary).cin(2700).cout(5).h(3).w(4)
      .kernel(7).pad(3).seed(40).Test(table().conv_anybits_bitserial.fn);
  ConvTester().wbits(2).abits(2).cin(2700).cout(4).h(2).w(3).kernel(7).pad(3).seed(41).Test(
      table().conv_anybits_bitserial.fn);
  // Stride 6 over a 64-pixel row tile: the receptive field spans more input
  // columns than the per-column activation sums hold (per-window path).
  for (Destination d : {Destination::kInt32, Destination::kCodes})
    ConvTester().destination(d).out_bits(8).wbits(2).abits(3).cin(5).cout(6).h(8).w(400)
        .kernel(3).stride(6).pad(1).seed(42).Test(table().conv_anybits_bitserial.fn);
}

TEST_P(ConvBitSerial, ExtremeValues) {
  for (Fill fill : {Fill::kMaxCodesMinWeights, Fill::kMaxCodesMaxWeights})
    for (int wb : {1, 2, 4})
      for (WeightDomain d : {WeightDomain::kSigned, WeightDomain::kUnsigned}) {
        ConvTester().fill(fill).wbits(wb).abits(4).domain(d).cin(1000).cout(4).h(3).w(4).kernel(3)
            .pad(1).Test(table().conv_anybits_bitserial.fn);
      }
  ConvTester().fill(Fill::kMaxCodesMinWeights).wbits(1).abits(1).domain(WeightDomain::kBinary)
      .cin(1000).cout(5).h(3).w(3).kernel(3).pad(1).Test(table().conv_anybits_bitserial.fn);
}

TEST_P(ConvBitSerial, FusedEpilogueDestinations) {
  uint32_t seed = 900;
  for (Activation act : {Activation::kRelu, Activation::kLeakyRelu, Activation::kClip,
                         Activation::kSilu}) {
    ConvTester().destination(Destination::kBitPlanes).activation(act).out_bits(4).wbits(4).abits(4)
        .cin(33).cout(66).h(5).w(7).kernel(3).pad(1).seed(seed++).Test(table().conv_anybits_bitserial.fn);
    ConvTester().destination(Destination::kPairPlanes).activation(act).out_bits(2).wbits(3).abits(3)
        .cin(17).cout(9).h(6).w(5).kernel(3).stride(2).pad(1).seed(seed++)
        .Test(table().conv_anybits_bitserial.fn);
    ConvTester().destination(Destination::kCodes).activation(act).out_bits(8).wbits(2).abits(2)
        .cin(17).cout(9).h(6).w(5).kernel(1).seed(seed++).Test(table().conv_anybits_bitserial.fn);
  }
}

constexpr Activation kAllActivations[] = {Activation::kNone,      Activation::kRelu,
                                          Activation::kLeakyRelu, Activation::kClip,
                                          Activation::kHardSwish, Activation::kSilu};

TEST_P(ConvBitSerial, VectorCodesAndFloats) {
  // The vector kCodes / kFloat stages: every activation, zero points odd,
  // even, negative and at the top of the code range, Cout not a multiple of 4
  // or 16 (36 = 4 + 4 + 1 blocks of the AVX-512 register tile), row lengths
  // with pixel tails of every length (1..8 after the 8-pixel groups, 24-pixel
  // chunks, 64-pixel row tiles) and work ranges that start and end inside a
  // pixel tile's channel blocks.
  constexpr int kZeroPoints[] = {7, 0, -3, 128, 255, 1};
  uint32_t seed = 1000;
  int z = 0;
  for (Activation act : kAllActivations)
    for (Destination d : {Destination::kCodes, Destination::kFloat}) {
      for (int cout : {3, 4, 6, 13, 20, 36})
        ConvTester().destination(d).activation(act).out_bits(8).zero_point(kZeroPoints[z++ % 6])
            .wbits(1).abits(1).domain(WeightDomain::kBinary).cin(70).cout(cout).h(4)
            .w(cout + 7).kernel(3).pad(1).splits(cout % 4 + 2).seed(seed++)
            .Test(table().conv_anybits_bitserial.fn);
      // W2A2, long rows (a 64-pixel tile and a tail), stride 2, batch.
      ConvTester().destination(d).activation(act).out_bits(8).zero_point(33).wbits(2).abits(2)
          .cin(33).cout(19).h(3).w(71).kernel(3).pad(1).splits(5).seed(seed++)
          .Test(table().conv_anybits_bitserial.fn);
      ConvTester().destination(d).activation(act).out_bits(4).zero_point(5).batch(2).wbits(3)
          .abits(2).cin(17).cout(10).h(9).w(9).kernel(3).stride(2).pad(1).seed(seed++)
          .Test(table().conv_anybits_bitserial.fn);
      // No bias; a negative multiplier (activation not folded into the code
      // bounds); a huge one (float values beyond the int32 range).
      ConvTester().destination(d).activation(act).out_bits(8).zero_point(9).bias(false).wbits(2)
          .abits(2).cin(20).cout(16).h(3).w(10).kernel(1).seed(seed++)
          .Test(table().conv_anybits_bitserial.fn);
      ConvTester().destination(d).activation(act).out_bits(8).zero_point(200)
          .out_inv_scale(-60.0f).wbits(1).abits(1).domain(WeightDomain::kBinary).cin(64).cout(12)
          .h(3).w(9).kernel(3).pad(1).seed(seed++).Test(table().conv_anybits_bitserial.fn);
      ConvTester().destination(d).activation(act).out_bits(8).zero_point(5).out_inv_scale(3e9f)
          .wbits(4).abits(4).cin(9).cout(8).h(3).w(9).kernel(3).pad(1).seed(seed++)
          .Test(table().conv_anybits_bitserial.fn);
    }
}

LOWBIT_INSTANTIATE_ISA_TESTS(ConvBitSerial);

}  // namespace
}  // namespace lowbit::kernels::testing
