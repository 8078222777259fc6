// The ops that models from other tool chains need (YOLOv8, PP-LCNet, SSD,
// classifiers), through the whole compiler + runtime, against naive loops in
// double: MatMul, Gemm, Softmax, ReduceMean/Sum/Max, HardSwish, HardSigmoid,
// PRelu, Pow, ConvTranspose, the SiLU fusion, fixed input sizes for a
// dynamic-shape graph, and the one message listing every unsupported node.
#include <cmath>

#include "engine_test_util.h"
#include "passes/passes.h"

namespace lowbit::engine {
namespace {

using testing::OnnxBuilder;

std::vector<NamedTensor> RunOn(const OnnxBuilder& builder, const Shape& shape,
                               const std::vector<float>& x, int threads = 2) {
  return testing::RunModel(builder, "x", Tensor(shape, x), threads);
}

// The op types of the compiled graph, in order.
std::vector<std::string> CompiledOps(const OnnxBuilder& builder,
                                     const CompileOptions& options = {}) {
  auto graph = builder.Import();
  EXPECT_TRUE(graph.ok()) << graph.status().ToString();
  if (!graph.ok()) return {};
  Status status = passes::FixInputShapes(&*graph, options.input_shapes);
  EXPECT_TRUE(status.ok()) << status.ToString();
  status = passes::CompileGraph(&*graph);
  EXPECT_TRUE(status.ok()) << status.ToString();
  std::vector<std::string> ops;
  for (const ir::Node& node : graph->nodes) ops.push_back(node.op_type);
  return ops;
}

TEST(MatMulTest, ActivationTimesConstantAndTwoActivations) {
  // [N,2,3,5] x [5,4]: every row of the activation times the constant.
  const auto w = testing::RandomFloats(5 * 4, 1);
  const auto x = testing::RandomFloats(2 * 2 * 3 * 5, 2);
  OnnxBuilder builder;
  builder.Input("x", {-1, 2, 3, 5});
  builder.Floats("w", {5, 4}, w);
  builder.Node("MatMul", {"x", "w"}, {"y"});
  builder.Output("y");
  auto outputs = RunOn(builder, {2, 2, 3, 5}, x);
  ASSERT_EQ(outputs.size(), 1u);
  EXPECT_EQ(outputs[0].tensor.shape(), (Shape{2, 2, 3, 4}));
  std::vector<float> expected;
  for (int64_t r = 0; r < 12; ++r)
    for (int64_t j = 0; j < 4; ++j) {
      double sum = 0;
      for (int64_t k = 0; k < 5; ++k) sum += double(x[r * 5 + k]) * w[k * 4 + j];
      expected.push_back(static_cast<float>(sum));
    }
  testing::ExpectNear(outputs[0].tensor.values(), expected, 1e-5f);

  // x [N,3,5] times its own transpose-like reshape: two activations.
  OnnxBuilder pair;
  pair.Input("x", {-1, 3, 4});
  testing::SetInts(pair.Node("Transpose", {"x"}, {"xt"}), "perm", {0, 2, 1});
  pair.Node("MatMul", {"x", "xt"}, {"y"});
  pair.Output("y");
  const auto a = testing::RandomFloats(2 * 3 * 4, 3);
  outputs = RunOn(pair, {2, 3, 4}, a);
  ASSERT_EQ(outputs.size(), 1u);
  EXPECT_EQ(outputs[0].tensor.shape(), (Shape{2, 3, 3}));
  expected.clear();
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t i = 0; i < 3; ++i)
      for (int64_t j = 0; j < 3; ++j) {
        double sum = 0;
        for (int64_t k = 0; k < 4; ++k)
          sum += double(a[(n * 3 + i) * 4 + k]) * a[(n * 3 + j) * 4 + k];
        expected.push_back(static_cast<float>(sum));
      }
  testing::ExpectNear(outputs[0].tensor.values(), expected, 1e-5f);
}

TEST(GemmTest, TransposedWeightsAlphaBetaAndRowBias) {
  const auto w = testing::RandomFloats(6 * 7, 4);  // [N=6][K=7] with transB
  const auto c = testing::RandomFloats(6, 5);
  const auto x = testing::RandomFloats(3 * 7, 6);
  OnnxBuilder builder;
  builder.Input("x", {-1, 7});
  builder.Floats("w", {6, 7}, w);
  builder.Floats("c", {6}, c);
  auto& gemm = builder.Node("Gemm", {"x", "w", "c"}, {"y"});
  testing::SetInt(gemm, "transB", 1);
  testing::SetFloat(gemm, "alpha", 0.5f);
  testing::SetFloat(gemm, "beta", 2.0f);
  builder.Output("y");
  auto outputs = RunOn(builder, {3, 7}, x);
  ASSERT_EQ(outputs.size(), 1u);
  EXPECT_EQ(outputs[0].tensor.shape(), (Shape{3, 6}));
  std::vector<float> expected;
  for (int64_t m = 0; m < 3; ++m)
    for (int64_t n = 0; n < 6; ++n) {
      double sum = 0;
      for (int64_t k = 0; k < 7; ++k) sum += double(x[m * 7 + k]) * w[n * 7 + k];
      expected.push_back(static_cast<float>(0.5 * sum + 2.0 * c[n]));
    }
  testing::ExpectNear(outputs[0].tensor.values(), expected, 1e-5f);
}

// Softmax along axis `axis` of a [N, C, H, W] tensor in double.
std::vector<float> NaiveSoftmax(const std::vector<float>& x, const Shape& s, int axis) {
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; ++d) outer *= s[d];
  for (size_t d = axis + 1; d < s.size(); ++d) inner *= s[d];
  std::vector<float> y(x.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      double max = -1e300, sum = 0;
      for (int64_t c = 0; c < s[axis]; ++c)
        max = std::max(max, double(x[(o * s[axis] + c) * inner + i]));
      for (int64_t c = 0; c < s[axis]; ++c) sum += std::exp(x[(o * s[axis] + c) * inner + i] - max);
      for (int64_t c = 0; c < s[axis]; ++c)
        y[(o * s[axis] + c) * inner + i] =
            static_cast<float>(std::exp(x[(o * s[axis] + c) * inner + i] - max) / sum);
    }
  return y;
}

TEST(SoftmaxTest, AnyAxisAndTheLegacyFlattenedForm) {
  const Shape shape = {2, 16, 4, 300};  // YOLOv8's DFL softmax: axis 1, inner 1200
  const auto x = testing::RandomFloats(NumElements(shape), 7, -8, 8);
  for (int axis : {1, 3}) {
    OnnxBuilder builder;
    builder.Input("x", {-1, 16, 4, 300});
    testing::SetInt(builder.Node("Softmax", {"x"}, {"y"}), "axis", axis);
    builder.Output("y");
    auto outputs = RunOn(builder, shape, x);
    ASSERT_EQ(outputs.size(), 1u);
    testing::ExpectNear(outputs[0].tensor.values(), NaiveSoftmax(x, shape, axis), 1e-6f);
  }
  // Opset 11, axis 2: softmax over the flattened [H*W] of each (n, c).
  OnnxBuilder legacy(11);
  legacy.Input("x", {-1, 16, 4, 300});
  testing::SetInt(legacy.Node("Softmax", {"x"}, {"y"}), "axis", 2);
  legacy.Output("y");
  auto outputs = RunOn(legacy, shape, x);
  ASSERT_EQ(outputs.size(), 1u);
  testing::ExpectNear(outputs[0].tensor.values(), NaiveSoftmax(x, {2, 16, 1200}, 2), 1e-6f);
}

TEST(ReduceTest, MeanSumMaxOverSeveralAxesWithAndWithoutKeepdims) {
  const Shape shape = {2, 3, 4, 5};
  const auto x = testing::RandomFloats(NumElements(shape), 8);
  struct Case {
    const char* op;
    std::vector<int64_t> axes;
    int keepdims;
    Shape out;
  };
  for (const Case& c :
       {Case{"ReduceMean", {2, 3}, 1, {2, 3, 1, 1}}, Case{"ReduceSum", {1, -1}, 0, {2, 4}},
        Case{"ReduceMax", {2}, 1, {2, 3, 1, 5}}}) {
    OnnxBuilder builder(13);
    builder.Input("x", {-1, 3, 4, 5});
    std::vector<std::string> inputs = {"x"};
    if (std::string(c.op) == "ReduceSum") {  // axes as an input from opset 13
      builder.Ints("axes", {static_cast<int64_t>(c.axes.size())}, c.axes);
      inputs.push_back("axes");
    }
    auto& node = builder.Node(c.op, inputs, {"y"});
    if (std::string(c.op) != "ReduceSum") testing::SetInts(node, "axes", c.axes);
    testing::SetInt(node, "keepdims", c.keepdims);
    builder.Output("y");
    auto outputs = RunOn(builder, shape, x);
    ASSERT_EQ(outputs.size(), 1u) << c.op;
    EXPECT_EQ(outputs[0].tensor.shape(), c.out) << c.op;
    std::vector<bool> reduced(4, false);
    for (int64_t a : c.axes) reduced[(a + 4) % 4] = true;
    // Expected: every input element folded into its output position.
    std::vector<double> acc(NumElements(c.out), std::string(c.op) == "ReduceMax" ? -1e300 : 0.0);
    int64_t count = 1;
    for (int d = 0; d < 4; ++d)
      if (reduced[d]) count *= shape[d];
    for (int64_t n = 0; n < 2; ++n)
      for (int64_t ch = 0; ch < 3; ++ch)
        for (int64_t h = 0; h < 4; ++h)
          for (int64_t w = 0; w < 5; ++w) {
            const int64_t index[4] = {n, ch, h, w};
            int64_t o = 0;
            for (int d = 0; d < 4; ++d)
              if (!reduced[d]) o = o * shape[d] + index[d];
            const double v = x[((n * 3 + ch) * 4 + h) * 5 + w];
            acc[o] = std::string(c.op) == "ReduceMax" ? std::max(acc[o], v) : acc[o] + v;
          }
    std::vector<float> expected;
    for (double v : acc)
      expected.push_back(static_cast<float>(std::string(c.op) == "ReduceMean" ? v / count : v));
    testing::ExpectNear(outputs[0].tensor.values(), expected, 1e-5f);
  }
}

TEST(ActivationTest, HardSwishHardSigmoidPReluAndPow) {
  const Shape shape = {2, 3, 4, 4};
  auto x = testing::RandomFloats(NumElements(shape), 9, -5, 5);
  x[0] = -3.0f;  // the kinks of HardSwish
  x[1] = 3.0f;
  const std::vector<float> slope = {0.1f, -0.5f, 2.0f};  // per channel, [C,1,1]
  OnnxBuilder builder;
  builder.Input("x", {-1, 3, 4, 4});
  builder.Floats("slope", {3, 1, 1}, slope);
  builder.Floats("two", {}, {2.0f});
  builder.Floats("half", {1, 3, 1, 1}, {0.5f, 1.0f, 3.0f});
  // Conv-free chain: NHWC never appears, so also run one behind a 1x1 conv.
  builder.Node("HardSwish", {"x"}, {"hs"});
  auto& hsig = builder.Node("HardSigmoid", {"x"}, {"hsig"});
  testing::SetFloat(hsig, "alpha", 0.25f);
  testing::SetFloat(hsig, "beta", 0.4f);
  builder.Node("PRelu", {"x", "slope"}, {"pr"});
  builder.Node("Abs", {"x"}, {"ax"});
  builder.Node("Pow", {"ax", "two"}, {"sq"});
  builder.Node("Pow", {"ax", "half"}, {"pw"});
  for (const char* out : {"hs", "hsig", "pr", "sq", "pw"}) builder.Output(out);
  auto outputs = RunOn(builder, shape, x);
  ASSERT_EQ(outputs.size(), 5u);
  std::vector<float> hs, hsig_ref, pr, sq, pw;
  for (int64_t i = 0; i < NumElements(shape); ++i) {
    const double v = x[i];
    const int64_t c = (i / 16) % 3;
    hs.push_back(static_cast<float>(v * std::clamp(v / 6 + 0.5, 0.0, 1.0)));
    hsig_ref.push_back(static_cast<float>(std::clamp(0.25 * v + 0.4, 0.0, 1.0)));
    pr.push_back(static_cast<float>(v < 0 ? slope[c] * v : v));
    sq.push_back(static_cast<float>(v * v));
    pw.push_back(static_cast<float>(std::pow(std::fabs(v), c == 0 ? 0.5 : c == 1 ? 1.0 : 3.0)));
  }
  testing::ExpectNear(outputs[0].tensor.values(), hs, 1e-6f);
  testing::ExpectNear(outputs[1].tensor.values(), hsig_ref, 1e-6f);
  testing::ExpectNear(outputs[2].tensor.values(), pr, 1e-6f);
  testing::ExpectNear(outputs[3].tensor.values(), sq, 1e-5f);
  testing::ExpectNear(outputs[4].tensor.values(), pw, 1e-4f);
}

TEST(SiluTest, SigmoidTimesItsInputFusesAndMatches) {
  const Shape shape = {2, 4, 5, 5};
  const auto w = testing::RandomFloats(4 * 4, 10);
  const auto x = testing::RandomFloats(NumElements(shape), 11, -6, 6);
  for (bool swapped : {false, true}) {
    OnnxBuilder builder;
    builder.Input("x", {-1, 4, 5, 5});
    builder.Floats("w", {4, 4, 1, 1}, w);
    builder.Node("Conv", {"x", "w"}, {"c"});
    builder.Node("Sigmoid", {"c"}, {"s"});
    builder.Node("Mul",
                 swapped ? std::vector<std::string>{"s", "c"} : std::vector<std::string>{"c", "s"},
                 {"y"});
    builder.Output("y");
    const auto ops = CompiledOps(builder);
    EXPECT_EQ(std::count(ops.begin(), ops.end(), "lowbit.SiLU"), 1);
    EXPECT_EQ(std::count(ops.begin(), ops.end(), "Sigmoid"), 0);
    auto outputs = RunOn(builder, shape, x);
    ASSERT_EQ(outputs.size(), 1u);
    std::vector<float> expected;
    for (int64_t n = 0; n < 2; ++n)
      for (int64_t m = 0; m < 4; ++m)
        for (int64_t p = 0; p < 25; ++p) {
          double c = 0;
          for (int64_t k = 0; k < 4; ++k) c += double(x[(n * 4 + k) * 25 + p]) * w[m * 4 + k];
          expected.push_back(static_cast<float>(c / (1 + std::exp(-c))));
        }
    testing::ExpectNear(outputs[0].tensor.values(), expected, 2e-6f);
  }
  // A Sigmoid read elsewhere too stays a Sigmoid.
  OnnxBuilder shared;
  shared.Input("x", {-1, 4});
  shared.Node("Sigmoid", {"x"}, {"s"});
  shared.Node("Mul", {"x", "s"}, {"y"});
  shared.Output("y");
  shared.Output("s");
  const auto ops = CompiledOps(shared);
  EXPECT_EQ(std::count(ops.begin(), ops.end(), "lowbit.SiLU"), 0);
}

// The vectorised SiLU (a polynomial exp) against float64 from -100 to 100: to
// 4 ulp where the result is normal, through 0, the clamp of exp at -87 and the
// vector loop's tail (1001 elements).
TEST(SiluTest, MatchesFloat64AcrossTheRangeOfFloats) {
  const int64_t count = 1001;
  std::vector<float> x(count);
  for (int64_t i = 0; i < count; ++i) x[i] = -100.0f + 0.2f * static_cast<float>(i);
  x[count / 2] = 0.0f;
  OnnxBuilder builder;
  builder.Input("x", {-1, count});
  builder.Node("Sigmoid", {"x"}, {"s"});
  builder.Node("Mul", {"x", "s"}, {"y"});
  builder.Output("y");
  const auto ops = CompiledOps(builder);
  ASSERT_EQ(std::count(ops.begin(), ops.end(), "lowbit.SiLU"), 1);
  auto outputs = RunOn(builder, {1, count}, x);
  ASSERT_EQ(outputs.size(), 1u);
  const auto& y = outputs[0].tensor.values();
  for (int64_t i = 0; i < count; ++i) {
    const double v = x[i], expected = v / (1.0 + std::exp(-v));
    // ilogb(0) is INT_MIN: the ulp only where the result is normal.
    const double allowed = std::fabs(expected) < 1e-30
                               ? 1e-30
                               : 4 * std::ldexp(1.0, std::ilogb(static_cast<float>(expected)) - 23);
    EXPECT_LE(std::fabs(y[i] - expected), allowed) << "x " << v << " y " << y[i];
  }
}

TEST(ConvTransposeTest, MatchesNaiveGatherForm) {
  struct Case {
    int64_t c, m, group, h, w, k, stride, dilation;
    std::vector<int64_t> pads, output_padding;
  };
  for (const Case& t : {Case{4, 6, 2, 5, 4, 3, 2, 1, {1, 0, 2, 1}, {1, 0}},
                        Case{3, 2, 1, 4, 4, 2, 2, 1, {0, 0, 0, 0}, {0, 0}},
                        Case{2, 4, 1, 3, 5, 3, 1, 2, {1, 1, 1, 1}, {0, 0}}}) {
    const int64_t group_out = t.m / t.group, group_in = t.c / t.group;
    const auto w = testing::RandomFloats(t.c * group_out * t.k * t.k, 12);
    const auto b = testing::RandomFloats(t.m, 13);
    const auto x = testing::RandomFloats(2 * t.c * t.h * t.w, 14);
    OnnxBuilder builder;
    builder.Input("x", {-1, t.c, t.h, t.w});
    builder.Floats("w", {t.c, group_out, t.k, t.k}, w);
    builder.Floats("b", {t.m}, b);
    auto& node = builder.Node("ConvTranspose", {"x", "w", "b"}, {"y"});
    testing::SetInt(node, "group", t.group);
    testing::SetInts(node, "strides", {t.stride, t.stride});
    testing::SetInts(node, "dilations", {t.dilation, t.dilation});
    testing::SetInts(node, "pads", t.pads);
    testing::SetInts(node, "output_padding", t.output_padding);
    builder.Output("y");
    const int64_t extent = (t.k - 1) * t.dilation + 1;
    const int64_t oh = t.stride * (t.h - 1) + t.output_padding[0] + extent - t.pads[0] - t.pads[2];
    const int64_t ow = t.stride * (t.w - 1) + t.output_padding[1] + extent - t.pads[1] - t.pads[3];
    auto outputs = RunOn(builder, {2, t.c, t.h, t.w}, x);
    ASSERT_EQ(outputs.size(), 1u);
    ASSERT_EQ(outputs[0].tensor.shape(), (Shape{2, t.m, oh, ow}));
    // Gather form: output (oy, ox) reads input (iy, ix) where
    // iy * stride - pad_top + ky * dilation == oy.
    std::vector<float> expected;
    for (int64_t n = 0; n < 2; ++n)
      for (int64_t m = 0; m < t.m; ++m)
        for (int64_t oy = 0; oy < oh; ++oy)
          for (int64_t ox = 0; ox < ow; ++ox) {
            const int64_t g = m / group_out;
            double sum = b[m];
            for (int64_t ci = 0; ci < group_in; ++ci)
              for (int64_t ky = 0; ky < t.k; ++ky)
                for (int64_t kx = 0; kx < t.k; ++kx) {
                  const int64_t ny = oy + t.pads[0] - ky * t.dilation;
                  const int64_t nx = ox + t.pads[1] - kx * t.dilation;
                  if (ny < 0 || nx < 0 || ny % t.stride || nx % t.stride) continue;
                  const int64_t iy = ny / t.stride, ix = nx / t.stride;
                  if (iy >= t.h || ix >= t.w) continue;
                  const int64_t c = g * group_in + ci;
                  sum += double(x[((n * t.c + c) * t.h + iy) * t.w + ix]) *
                         w[((c * group_out + m % group_out) * t.k + ky) * t.k + kx];
                }
            expected.push_back(static_cast<float>(sum));
          }
    testing::ExpectNear(outputs[0].tensor.values(), expected, 1e-5f);
  }
}

// YOLOv8-style plumbing on a dynamic-shape input: the grid size comes from
// Shape -> Gather -> Cast -> Range -> Expand -> ConstantOfShape; with the size
// fixed it all folds to constants, and the result is the right grid.
TEST(DynamicShapeTest, PlumbingFoldsOnceTheInputSizeIsFixed) {
  OnnxBuilder builder(17);
  builder.Input("x", {-1, 2, -1, -1});
  builder.Ints("axis3", {}, {3});
  builder.Ints("zero", {}, {0});
  builder.Ints("one", {}, {1});
  builder.Node("Shape", {"x"}, {"shape"});
  builder.Node("Gather", {"shape", "axis3"}, {"width"});
  testing::SetInt(builder.Node("Cast", {"width"}, {"width_f"}), "to", 1);
  builder.Floats("zero_f", {}, {0.0f});
  builder.Floats("one_f", {}, {1.0f});
  builder.Node("Range", {"zero_f", "width_f", "one_f"}, {"columns"});  // [W]
  builder.Node("Mul", {"x", "columns"}, {"scaled"});                   // x * column index
  // Expand's target [1, W]: ConstantOfShape([1]) of int64 1, concatenated with W.
  builder.Ints("one_dim", {1}, {1});
  auto& ones = builder.Node("ConstantOfShape", {"one_dim"}, {"leading"});
  auto* value = ones.add_attribute();
  value->set_name("value");
  value->set_type(onnx::AttributeProto::TENSOR);
  value->mutable_t()->set_data_type(onnx::TensorProto::INT64);
  value->mutable_t()->add_dims(1);
  value->mutable_t()->add_int64_data(1);
  builder.Ints("axes0", {1}, {0});
  builder.Node("Unsqueeze", {"width", "axes0"}, {"width_1"});
  testing::SetInt(builder.Node("Concat", {"leading", "width_1"}, {"target"}), "axis", 0);
  builder.Node("Expand", {"columns", "target"}, {"expanded"});  // [1, W]
  builder.Node("Add", {"scaled", "expanded"}, {"y"});
  builder.Output("y");

  auto unfixed = builder.Compile();
  ASSERT_FALSE(unfixed.ok());
  EXPECT_NE(unfixed.status().message().find("input_shapes"), std::string::npos)
      << unfixed.status().ToString();

  CompileOptions options;
  options.input_shapes["x"] = {1, 2, 3, 4};
  const auto ops = CompiledOps(builder, options);
  for (const char* plumbing : {"Shape", "Gather", "Cast", "Range", "Expand", "ConstantOfShape"})
    EXPECT_EQ(std::count(ops.begin(), ops.end(), plumbing), 0) << plumbing;

  auto graph = builder.Import();
  ASSERT_TRUE(graph.ok());
  auto model = runtime::CompiledModel::Compile(std::move(*graph), {}, options);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  auto session = (*model)->CreateSession({});
  ASSERT_TRUE(session.ok());
  const auto x = testing::RandomFloats(2 * 2 * 3 * 4, 15);
  std::vector<NamedTensor> outputs;
  ASSERT_TRUE((*session)->Run({{"x", Tensor({2, 2, 3, 4}, x)}}, &outputs).ok());
  ASSERT_EQ(outputs.size(), 1u);
  std::vector<float> expected;
  for (size_t i = 0; i < x.size(); ++i) {
    const float column = static_cast<float>(i % 4);
    expected.push_back(x[i] * column + column);
  }
  testing::ExpectNear(outputs[0].tensor.values(), expected, 1e-6f);

  // A size that contradicts a fixed dimension is refused, naming it.
  options.input_shapes["x"] = {1, 5, 3, 4};
  auto contradicting = builder.Import();
  ASSERT_TRUE(contradicting.ok());
  Status status = passes::FixInputShapes(&*contradicting, options.input_shapes);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("dimension 1"), std::string::npos) << status.ToString();
}

TEST(UnsupportedTest, OneMessageListsEveryUnsupportedNode) {
  OnnxBuilder builder;
  builder.Input("x", {-1, 3, 8, 8});
  builder.Node("Hardmax", {"x"}, {"a"}, "first_hardmax");
  auto& resize = builder.Node("Resize", {"a", "", "scales"}, {"b"}, "cubic_resize");
  testing::SetString(resize, "mode", "cubic");
  builder.Floats("scales", {4}, {1, 1, 2, 2});
  auto& pad = builder.Node("Pad", {"b", "pads"}, {"c"}, "reflect_pad");
  testing::SetString(pad, "mode", "reflect");
  builder.Ints("pads", {8}, {0, 0, 1, 1, 0, 0, 1, 1});
  builder.Node("Relu", {"c"}, {"d"}, "fine_relu");
  builder.Node("MyOp", {"d"}, {"e"}, "custom").set_domain("com.example");
  builder.Node("Einsum", {"e"}, {"y"}, "second_op");
  builder.Output("y");
  auto graph = builder.Import();
  ASSERT_FALSE(graph.ok());
  EXPECT_EQ(graph.status().code(), StatusCode::kUnimplemented);
  const std::string& message = graph.status().message();
  for (const char* expected :
       {"5 nodes", "first_hardmax", "'Hardmax'", "cubic_resize", "mode 'cubic'", "reflect_pad",
        "mode 'reflect'", "custom", "com.example", "second_op", "'Einsum'"})
    EXPECT_NE(message.find(expected), std::string::npos) << expected << " in:\n" << message;
  EXPECT_EQ(message.find("fine_relu"), std::string::npos) << message;
}

}  // namespace
}  // namespace lowbit::engine
