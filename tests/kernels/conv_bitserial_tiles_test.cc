// Bit-serial convolution (conv_anybits_bitserial_64x4__*) against kernels/ref
// at the limits of the NEON variant's register tiles: every pixel count
// modulo its pixel tile (4 at W1A1, 3 at W1A2 / W2A1, 2 at W2A2, ...), and
// all-ones planes (maximum codes and weights) over words-per-pixel counts
// around the byte accumulators' flush interval floor(255 / (8 min(WB, AB)))
// (31, 15, 10 or 7 words; at W1A1 31 iterations of two words), where a late
// flush would wrap a byte; word counts per tap odd and even (W1A1 pairs words
// within a tap, across two taps, or leaves one alone).
#include "conv_tester.h"
#include "isa_param.h"

namespace lowbit::kernels::testing {
namespace {

class ConvBitSerialTiles : public IsaTest {};

TEST_P(ConvBitSerialTiles, EveryPixelTail) {
  uint32_t seed = 1;
  for (int wb = 1; wb <= 4; ++wb)
    for (int ab = 1; ab <= 4; ++ab)
      for (int width : {1, 2, 3, 5, 6, 7, 9, 66, 67})
        ConvTester()
            .wbits(wb)
            .abits(ab)
            .cin(70)
            .cout(5)
            .h(2)
            .w(width)
            .kernel(3)
            .pad(1)
            .seed(seed++)
            .Test(table().conv_anybits_bitserial.fn);
}

TEST_P(ConvBitSerialTiles, AllOnesAcrossTheFlushInterval) {
  for (int wb = 1; wb <= 4; ++wb)
    for (int ab = 1; ab <= 4; ++ab) {
      const int m = wb < ab ? wb : ab;
      const int interval = 255 / (8 * m);
      for (int words : {interval - 1, interval, interval + 1, 2 * interval + 1}) {
        // kernel 1: the words of one tap; kernel 3 (interior pixel): 9 taps.
        ConvTester()
            .fill(Fill::kMaxCodesMaxWeights)
            .wbits(wb)
            .abits(ab)
            .domain(WeightDomain::kUnsigned)
            .cin(64 * words)
            .cout(4)
            .h(1)
            .w(5)
            .kernel(1)
            .Test(table().conv_anybits_bitserial.fn);
        ConvTester()
            .fill(Fill::kMaxCodesMaxWeights)
            .wbits(wb)
            .abits(ab)
            .domain(WeightDomain::kSigned)
            .cin(64 * words - 3)
            .cout(6)
            .h(3)
            .w(3)
            .kernel(3)
            .pad(0)
            .Test(table().conv_anybits_bitserial.fn);
      }
    }
}

TEST_P(ConvBitSerialTiles, W2A2PlanePairsAcrossTheirFlushInterval) {
  // The NEON W2A2 path with both activation planes in one register flushes
  // its bytes every 31 steps (steps = taps x words), and falls back to the
  // broadcast loop beyond 128 steps: all-ones planes on both sides of 31 and
  // 62 steps, with one word per pixel (the planes adjacent: one load) and
  // with several, and past 128 steps.
  struct Case {
    int words, kernel;
  };
  for (Case c : {Case{30, 1}, Case{31, 1}, Case{32, 1}, Case{63, 1}, Case{1, 5}, Case{1, 7},
                 Case{3, 3}, Case{4, 3}, Case{7, 3}, Case{15, 3}})
    for (WeightDomain domain : {WeightDomain::kUnsigned, WeightDomain::kSigned})
      ConvTester()
          .fill(Fill::kMaxCodesMaxWeights)
          .wbits(2)
          .abits(2)
          .domain(domain)
          .cin(64 * c.words - (domain == WeightDomain::kSigned ? 5 : 0))
          .cout(6)
          .h(c.kernel + 1)
          .w(c.kernel + 2)
          .kernel(c.kernel)
          .pad(0)
          .Test(table().conv_anybits_bitserial.fn);
}

LOWBIT_INSTANTIATE_ISA_TESTS(ConvBitSerialTiles);

}  // namespace
}  // namespace lowbit::kernels::testing
