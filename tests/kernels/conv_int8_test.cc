// INT8 conv (conv_u8s8_6x16__* on 16-bit formats and conv_u8s8dot_6x16__* on
// byte formats, every case run through both) and depthwise (dwconv_u8s8_1x16__*) against
// kernels/ref, plus work-range splits (threads) of the LUT, INT8 and
// bit-serial kernels.
#include "conv_tester.h"
#include "isa_param.h"

namespace lowbit::kernels::testing {
namespace {

class ConvInt8 : public IsaTest {};
class DwConvInt8 : public IsaTest {};
class WorkSplit : public IsaTest {};

TEST_P(ConvInt8, ChannelsKernelsStridesPads) {
  uint32_t seed = 1;
  for (int k : {1, 3})
    for (int s : {1, 2})
      for (int p : {0, 1})
        for (int cin : {1, 3, 16, 33})
          for (int cout : {1, 15, 16, 17, 40})
            ConvTester().int8().cin(cin).cout(cout).h(7).w(5).kernel(k).stride(s).pad(p)
                .seed(seed++).Test(table().conv_u8s8.fn, table().conv_u8s8dot.fn);
}

TEST_P(ConvInt8, ManyTilesOddSizesAndBatch) {
  // Pixel groups of 24 and tiles of 6 crossing rows; partial last tiles.
  ConvTester().int8().batch(2).cin(6).cout(24).h(23).w(29).kernel(3).pad(1).seed(7).Test(
      table().conv_u8s8.fn, table().conv_u8s8dot.fn);
  ConvTester().int8().cin(5).cout(9).h(31).w(3).kernel(3).stride(2).seed(8).Test(table().conv_u8s8.fn, table().conv_u8s8dot.fn);
  ConvTester().int8().cin(64).cout(32).h(14).w(14).kernel(1).seed(9).Test(table().conv_u8s8.fn, table().conv_u8s8dot.fn);
  ConvTester().int8().cin(3).cout(32).h(21).w(19).kernel(3).stride(2).pad(1).seed(10).Test(
      table().conv_u8s8.fn, table().conv_u8s8dot.fn);
  ConvTester().int8().cin(1).cout(1).h(1).w(1).kernel(1).seed(11).Test(table().conv_u8s8.fn, table().conv_u8s8dot.fn);
  ConvTester().int8().cin(4).cout(4).h(9).w(9).kernel(5, 3).pad(1).seed(12).Test(table().conv_u8s8.fn, table().conv_u8s8dot.fn);
}

TEST_P(ConvInt8, ExtremeValuesNoSaturation) {
  // 255 x -128 and 255 x 127 everywhere: vpmaddubsw pair sums would saturate
  // (|2 * 255 * 128| > 32767); 1000 x 9 taps x 255 x 128 fits int32.
  for (Fill fill : {Fill::kMaxCodesMinWeights, Fill::kMaxCodesMaxWeights}) {
    ConvTester().int8().fill(fill).cin(1000).cout(17).h(4).w(3).kernel(3).pad(1).Test(
        table().conv_u8s8.fn, table().conv_u8s8dot.fn);
    ConvTester().int8().fill(fill).cin(29).cout(16).h(8).w(9).kernel(3).stride(2).pad(1).Test(
        table().conv_u8s8.fn, table().conv_u8s8dot.fn);
  }
}

TEST_P(ConvInt8, FusedEpilogueDestinations) {
  uint32_t seed = 200;
  for (Activation act : {Activation::kNone, Activation::kRelu, Activation::kLeakyRelu,
                         Activation::kHardSwish, Activation::kSilu}) {
    for (Destination d : {Destination::kFloat, Destination::kCodes, Destination::kPairPlanes})
      ConvTester().int8().destination(d).activation(act).out_bits(d == Destination::kCodes ? 8 : 2)
          .cin(10).cout(18).h(9).w(12).kernel(3).pad(1).seed(seed++).Test(table().conv_u8s8.fn, table().conv_u8s8dot.fn);
    ConvTester().int8().destination(Destination::kBitPlanes).activation(act).out_bits(3).cin(10)
        .cout(70).h(5).w(6).kernel(3).stride(2).pad(1).seed(seed++).Test(table().conv_u8s8.fn, table().conv_u8s8dot.fn);
  }
}

// The ISA kernels' vector kCodes output stage (requantize to u8 in registers)
// against the reference epilogue: every activation, 8- and 3-bit codes, full
// and partial channel blocks, 1x1 and 3x3, conv and depthwise.
TEST_P(ConvInt8, RequantizedCodesEveryActivation) {
  uint32_t seed = 250;
  for (Activation act : {Activation::kNone, Activation::kRelu, Activation::kLeakyRelu,
                         Activation::kClip, Activation::kHardSwish, Activation::kSilu})
    for (int bits : {8, 3})
      for (int cout : {16, 17, 40, 64}) {
        ConvTester().int8().destination(Destination::kCodes).activation(act).out_bits(bits)
            .cin(24).cout(cout).h(7).w(9).kernel(1).seed(seed++)
            .Test(table().conv_u8s8.fn, table().conv_u8s8dot.fn);
        ConvTester().int8().destination(Destination::kCodes).activation(act).out_bits(bits)
            .batch(2).cin(9).cout(cout).h(6).w(11).kernel(3).stride(2).pad(1).seed(seed++)
            .Test(table().conv_u8s8.fn, table().conv_u8s8dot.fn);
        ConvTester().int8().destination(Destination::kCodes).activation(act).out_bits(bits)
            .cin(cout).depthwise().h(7).w(10).kernel(3).pad(1).seed(seed++)
            .Test(table().dwconv_u8s8.fn);
      }
  for (Fill fill : {Fill::kMaxCodesMinWeights, Fill::kMaxCodesMaxWeights})
    ConvTester().int8().fill(fill).destination(Destination::kCodes).out_bits(8).cin(300).cout(33)
        .h(5).w(5).kernel(3).pad(1).Test(table().conv_u8s8.fn, table().conv_u8s8dot.fn);
}

TEST_P(DwConvInt8, ChannelsKernelsStridesPads) {
  uint32_t seed = 300;
  for (int k : {1, 3, 5})
    for (int s : {1, 2})
      for (int p : {0, 1, 2})
        for (int c : {1, 8, 16, 17, 40})
          ConvTester().int8().cin(c).depthwise().h(9).w(11).kernel(k).stride(s).pad(p).seed(seed++)
              .Test(table().dwconv_u8s8.fn);
}

TEST_P(DwConvInt8, OddSizesBatchExtremesAndEpilogue) {
  ConvTester().int8().batch(2).cin(24).depthwise().h(13).w(21).kernel(3).pad(1).seed(1).Test(
      table().dwconv_u8s8.fn);
  ConvTester().int8().cin(32).depthwise().h(1).w(1).kernel(3).pad(1).seed(2).Test(
      table().dwconv_u8s8.fn);
  for (Fill fill : {Fill::kMaxCodesMinWeights, Fill::kMaxCodesMaxWeights})
    ConvTester().int8().fill(fill).cin(33).depthwise().h(6).w(7).kernel(3).pad(1).Test(
        table().dwconv_u8s8.fn);
  ConvTester().int8().destination(Destination::kCodes).activation(Activation::kClip).out_bits(8)
      .cin(20).depthwise().h(6).w(10).kernel(3).stride(2).pad(1).seed(3).Test(table().dwconv_u8s8.fn);
  ConvTester().int8().destination(Destination::kBitPlanes).activation(Activation::kRelu)
      .out_bits(4).cin(70).depthwise().h(5).w(6).kernel(3).pad(1).seed(4).Test(table().dwconv_u8s8.fn);
}

// A convolution computed as several work ranges (in reverse order, or on
// concurrent threads) equals the reference, hence the single-call result.
TEST_P(WorkSplit, RangesEqualSingleRun) {
  uint32_t seed = 700;
  for (int parts : {2, 3, 7}) {
    for (bool threads : {false, true}) {
      ConvTester().splits(parts).threads(threads).cin(17).cout(12).h(23).w(29).kernel(3).pad(1)
          .seed(seed++).Test(table().conv_w2a2_lut.fn);
      ConvTester().splits(parts).threads(threads).int8().cin(19).cout(40).h(15).w(17).kernel(3)
          .stride(2).pad(1).seed(seed++).Test(table().conv_u8s8.fn, table().conv_u8s8dot.fn);
      ConvTester().splits(parts).threads(threads).int8().cin(40).depthwise().h(11).w(9).kernel(3)
          .pad(1).seed(seed++).Test(table().dwconv_u8s8.fn);
    }
    // Bit-serial: items (image, row, 64-pixel tile, 4-channel block); rows
    // wider than one tile, channel blocks split inside a tile.
    for (int bits : {1, 3})
      ConvTester().splits(parts).threads(parts != 3).wbits(bits).abits(bits).batch(2).cin(70)
          .cout(23).h(5).w(67).kernel(3).stride(1).pad(1).seed(seed++)
          .Test(table().conv_anybits_bitserial.fn);
    ConvTester().splits(parts).threads(true).wbits(2).abits(2).destination(Destination::kBitPlanes)
        .out_bits(2).cin(9).cout(70).h(9).w(7).kernel(3).stride(2).pad(1).seed(seed++)
        .Test(table().conv_anybits_bitserial.fn);
    // kBitPlanes destinations: range bounds on whole pixel tiles / rows.
    ConvTester().splits(parts).threads(true).destination(Destination::kBitPlanes).out_bits(2)
        .cin(8).cout(70).h(13).w(11).kernel(3).pad(1).seed(seed++).Test(table().conv_w2a2_lut.fn);
    ConvTester().splits(parts).threads(true).int8().destination(Destination::kBitPlanes)
        .out_bits(4).cin(8).cout(70).h(13).w(11).kernel(3).pad(1).seed(seed++)
        .Test(table().conv_u8s8.fn, table().conv_u8s8dot.fn);
    ConvTester().splits(parts).threads(true).destination(Destination::kPairPlanes).out_bits(2)
        .cin(8).cout(20).h(13).w(11).kernel(3).pad(1).seed(seed++).Test(table().conv_w2a2_lut.fn);
  }
}

TEST(WorkRange, CoversItemsOnGranules) {
  for (size_t items : {size_t(0), size_t(1), size_t(10), size_t(97)})
    for (int parts : {1, 2, 3, 8})
      for (size_t granule : {size_t(1), size_t(4)}) {
        size_t next = 0;
        for (int p = 0; p < parts; ++p) {
          const WorkRange r = work_range(items, parts, p, granule);
          EXPECT_EQ(r.begin, next);
          EXPECT_LE(r.begin, r.end);
          if (p + 1 < parts) {
            EXPECT_EQ(r.end % granule, 0u);
          }
          next = r.end;
        }
        EXPECT_EQ(next, items);
      }
}

LOWBIT_INSTANTIATE_ISA_TESTS(ConvInt8);
LOWBIT_INSTANTIATE_ISA_TESTS(DwConvInt8);
LOWBIT_INSTANTIATE_ISA_TESTS(WorkSplit);

}  // namespace
}  // namespace lowbit::kernels::testing
