// measure_conv_kernels: the candidate set (the table's native families that
// hold the layer), positive timings, the fastest exact family chosen and able
// to run the layer, and a wrong kernel reported as not exact and never chosen.
#include "lowbit/kernels/measure.h"

#include <string>

#include "conv_tester.h"
#include "isa_param.h"

namespace lowbit::kernels::testing {
namespace {

MeasureOptions Quick() {
  MeasureOptions o;
  o.min_seconds = 0.0005;
  o.min_runs = 2;
  o.max_runs = 5;
  return o;
}

const ConvKernelTiming* Find(const MeasuredConvChoice& m, ConvFamily f) {
  for (int i = 0; i < m.count; ++i)
    if (m.timings[i].family == f) return &m.timings[i];
  return nullptr;
}

// The invariants every measurement keeps; returns the runnable families.
std::vector<ConvFamily> CheckConsistent(const MeasuredConvChoice& m, const ConvGeometry& g,
                                        int wbits, int abits, WeightDomain d, const KernelTable& t,
                                        const MeasureOptions& o) {
  std::vector<ConvFamily> runnable;
  int natives = 0;
  for (ConvFamily f : kConvFamilies) {
    ConvKernelInfo k;
    EXPECT_TRUE(conv_kernel_info(t, f, &k));
    natives += k.native;
    const ConvKernelTiming* timing = Find(m, f);
    EXPECT_EQ(timing != nullptr, k.native) << conv_family_name(f);
    if (!timing) continue;
    SCOPED_TRACE(timing->kernel_name);
    EXPECT_STREQ(timing->kernel_name, k.name);
    EXPECT_EQ(timing->runs, conv_family_supports(f, g, wbits, abits, d));
    EXPECT_DOUBLE_EQ(timing->estimated_cycles, estimate_conv_cycles(f, g, wbits, abits, d, t));
    if (!timing->runs) {
      EXPECT_FALSE(timing->exact);
      EXPECT_LT(timing->ns, 0);
      continue;
    }
    runnable.push_back(f);
    EXPECT_TRUE(timing->exact);  // the real kernels are all exact
    EXPECT_GT(timing->ns, 0);
    EXPECT_GE(timing->timed_runs, o.min_runs);
    EXPECT_LE(timing->timed_runs, o.max_runs);
    if (m.best.family != ConvFamily::kNone) {
      EXPECT_LE(m.best_ns, timing->ns);
    }
  }
  EXPECT_EQ(m.count, natives);
  const ConvKernelChoice modeled = choose_conv_kernel(g, wbits, abits, d, t);
  EXPECT_EQ(m.modeled.family, modeled.family);
  EXPECT_STREQ(m.modeled.kernel_name, modeled.kernel_name);
  if (runnable.empty()) {
    EXPECT_EQ(m.best.family, ConvFamily::kNone);
    return runnable;
  }
  const ConvKernelTiming* best = Find(m, m.best.family);
  EXPECT_NE(best, nullptr) << conv_family_name(m.best.family);
  if (best) {
    EXPECT_TRUE(best->runs && best->exact);
    EXPECT_EQ(best->ns, m.best_ns);
    EXPECT_STREQ(m.best.kernel_name, best->kernel_name);
  }
  return runnable;
}

// The chosen family computes a small version of the layer exactly.
void CheckChosenRuns(const MeasuredConvChoice& m, const KernelTable& t, ConvTester tester) {
  switch (m.best.family) {
    case ConvFamily::kInt8:
      tester.int8().Test(t.conv_u8s8.fn);
      break;
    case ConvFamily::kInt8Dot:
      tester.int8().Test(t.conv_u8s8dot.fn);
      break;
    case ConvFamily::kDepthwiseInt8:
      tester.int8().depthwise().Test(t.dwconv_u8s8.fn);
      break;
    case ConvFamily::kLut:
      tester.Test(t.conv_w2a2_lut.fn);
      break;
    case ConvFamily::kBitSerial:
      tester.Test(t.conv_anybits_bitserial.fn);
      break;
    case ConvFamily::kNone:
      ADD_FAILURE() << "nothing chosen";
      break;
  }
}

class Measure : public IsaTest {};

TEST_P(Measure, W8A8HasOnlyInt8Candidates) {
  const KernelTable& t = table();
  const ConvGeometry g = Conv(32, 32, 12, 3, 1);
  const MeasureOptions o = Quick();
  const MeasuredConvChoice m = measure_conv_kernels(g, 8, 8, WeightDomain::kSigned, t, o);
  const std::vector<ConvFamily> runnable = CheckConsistent(m, g, 8, 8, WeightDomain::kSigned, t, o);
  ASSERT_FALSE(runnable.empty());
  for (ConvFamily f : runnable)
    EXPECT_TRUE(f == ConvFamily::kInt8 || f == ConvFamily::kInt8Dot) << conv_family_name(f);
  EXPECT_NE(Find(m, ConvFamily::kInt8), nullptr);
  EXPECT_EQ(Find(m, ConvFamily::kInt8Dot) != nullptr, t.conv_u8s8dot.native);
  CheckChosenRuns(m, t, ConvTester().cin(32).cout(32).h(7).w(7).kernel(3).pad(1));
}

TEST_P(Measure, W1A1With128ChannelsHasBitSerialCandidate) {
  const KernelTable& t = table();
  const ConvGeometry g = Conv(128, 128, 6, 3, 1);
  const MeasureOptions o = Quick();
  const MeasuredConvChoice m = measure_conv_kernels(g, 1, 1, WeightDomain::kBinary, t, o);
  const std::vector<ConvFamily> runnable = CheckConsistent(m, g, 1, 1, WeightDomain::kBinary, t, o);
  const ConvKernelTiming* bitserial = Find(m, ConvFamily::kBitSerial);
  ASSERT_NE(bitserial, nullptr);
  EXPECT_TRUE(bitserial->runs);
  ASSERT_NE(Find(m, ConvFamily::kLut), nullptr);
  EXPECT_TRUE(Find(m, ConvFamily::kLut)->runs);  // {-1, +1} lies in [-2, 1]
  EXPECT_TRUE(Find(m, ConvFamily::kInt8)->runs);
  EXPECT_FALSE(Find(m, ConvFamily::kDepthwiseInt8)->runs);
  CheckChosenRuns(m, t,
                  ConvTester()
                      .cin(128)
                      .cout(12)
                      .h(5)
                      .w(5)
                      .kernel(3)
                      .pad(1)
                      .domain(WeightDomain::kBinary)
                      .wbits(1)
                      .abits(1));
}

TEST_P(Measure, W2A2StridedHasEveryFullConvFamily) {
  const KernelTable& t = table();
  const ConvGeometry g = Conv(24, 20, 11, 3, 2);
  const MeasureOptions o = Quick();
  const MeasuredConvChoice m = measure_conv_kernels(g, 2, 2, WeightDomain::kSigned, t, o);
  const std::vector<ConvFamily> runnable = CheckConsistent(m, g, 2, 2, WeightDomain::kSigned, t, o);
  EXPECT_EQ(runnable.size(), t.conv_u8s8dot.native ? 4u : 3u);
  CheckChosenRuns(m, t, ConvTester().cin(24).cout(20).h(11).w(11).kernel(3).stride(2).pad(1));
}

TEST_P(Measure, DepthwiseAndGrouped) {
  const KernelTable& t = table();
  const MeasureOptions o = Quick();
  const ConvGeometry dw = Conv(48, 48, 10, 3, 1, 48);
  const MeasuredConvChoice m = measure_conv_kernels(dw, 8, 8, WeightDomain::kSigned, t, o);
  const std::vector<ConvFamily> runnable =
      CheckConsistent(m, dw, 8, 8, WeightDomain::kSigned, t, o);
  EXPECT_EQ(runnable, std::vector<ConvFamily>{ConvFamily::kDepthwiseInt8});
  EXPECT_EQ(m.best.family, ConvFamily::kDepthwiseInt8);
  // Grouped but not depthwise, and 8-bit unsigned weights: nothing runs.
  for (const auto& [g, domain] : {std::make_pair(Conv(32, 32, 8, 3, 1, 4), WeightDomain::kSigned),
                                  std::make_pair(Conv(16, 16, 8, 3, 1), WeightDomain::kUnsigned)}) {
    const MeasuredConvChoice none = measure_conv_kernels(g, 8, 8, domain, t, o);
    EXPECT_TRUE(CheckConsistent(none, g, 8, 8, domain, t, o).empty());
    EXPECT_EQ(none.best.family, ConvFamily::kNone);
    EXPECT_LT(none.best_ns, 0);
  }
}

// A kernel that is wrong in one int32 sum (the real scalar one, then one
// output changed): reported as not exact and never chosen.
void WrongInt8(const Int8ConvArgs& args) {
  kernel_table_for(Isa::kScalar)->conv_u8s8.fn(args);
  const ConvGeometry& g = args.geometry;
  const size_t interior =
      (size_t(1) * g.out_width() + 1) * g.out_channels + 1;  // (1, 1), channel 1
  if (args.output.destination == Destination::kInt32)
    static_cast<int32_t*>(args.output.data)[interior] += 1;
}

TEST(MeasureExactness, WrongKernelIsNeverChosen) {
  KernelTable t = *kernel_table_for(Isa::kScalar);
  t.conv_u8s8.fn = WrongInt8;
  t.conv_u8s8.name = "wrong_int8";
  const MeasureOptions o = Quick();
  // Alone, it leaves no choice (a small layer: every output is checked
  // against direct sums).
  const ConvGeometry small = Conv(16, 8, 6, 3, 1);
  MeasuredConvChoice m = measure_conv_kernels(small, 8, 8, WeightDomain::kSigned, t, o);
  ASSERT_NE(Find(m, ConvFamily::kInt8), nullptr);
  EXPECT_TRUE(Find(m, ConvFamily::kInt8)->runs);
  EXPECT_FALSE(Find(m, ConvFamily::kInt8)->exact);
  EXPECT_GT(Find(m, ConvFamily::kInt8)->ns, 0);  // still timed, for the report
  EXPECT_EQ(m.best.family, ConvFamily::kNone);
  EXPECT_EQ(m.modeled.family, ConvFamily::kInt8);  // the cost model cannot tell
  // Beside a correct family, the correct one is chosen. A larger layer:
  // 13824 outputs, of which only some are sampled, and with this seed not
  // the wrong one, so the full comparison of the candidates finds it.
  const ConvGeometry g = Conv(64, 24, 24, 3, 1);
  t.conv_u8s8dot.native = true;
  m = measure_conv_kernels(g, 8, 8, WeightDomain::kSigned, t, o);
  EXPECT_FALSE(Find(m, ConvFamily::kInt8)->exact);
  ASSERT_NE(Find(m, ConvFamily::kInt8Dot), nullptr);
  EXPECT_TRUE(Find(m, ConvFamily::kInt8Dot)->exact);
  EXPECT_EQ(m.best.family, ConvFamily::kInt8Dot);
  // And at 2 bits beside three correct ones.
  m = measure_conv_kernels(g, 2, 2, WeightDomain::kSigned, t, o);
  EXPECT_FALSE(Find(m, ConvFamily::kInt8)->exact);
  for (ConvFamily f : {ConvFamily::kInt8Dot, ConvFamily::kLut, ConvFamily::kBitSerial})
    EXPECT_TRUE(Find(m, f)->exact) << conv_family_name(f);
  EXPECT_NE(m.best.family, ConvFamily::kInt8);
  EXPECT_NE(m.best.family, ConvFamily::kNone);
}

LOWBIT_INSTANTIATE_ISA_TESTS(Measure);

}  // namespace
}  // namespace lowbit::kernels::testing
