// FoldBatchNormalization on small graphs: before/after dumps, and the folded
// graphs run through the runtime (or, for Gemm/MatMul, which the runtime
// cannot run, evaluated here) against a plain double-precision reference.
#include <cmath>
#include <map>

#include "engine_test_util.h"
#include "passes/passes.h"

namespace lowbit::engine {
namespace {

using testing::OnnxBuilder;

std::vector<std::string> OpTypes(const ir::Graph& graph) {
  std::vector<std::string> ops;
  for (const ir::Node& node : graph.nodes) ops.push_back(node.op_type);
  return ops;
}

const std::vector<float>& ConstantOf(const ir::Graph& graph, int id) {
  return graph.values[id].constant->floats;
}

// Per-channel parameters of one BatchNormalization.
struct BatchNorm {
  std::vector<float> scale, bias, mean, var;
  float epsilon = 1e-5f;

  void AddTo(OnnxBuilder* builder, const std::string& prefix = "bn_") const {
    const int64_t c = static_cast<int64_t>(scale.size());
    builder->Floats(prefix + "scale", {c}, scale);
    builder->Floats(prefix + "bias", {c}, bias);
    builder->Floats(prefix + "mean", {c}, mean);
    builder->Floats(prefix + "var", {c}, var);
  }
  onnx::NodeProto& Node(OnnxBuilder* builder, const std::string& x, const std::string& y,
                        const std::string& prefix = "bn_") const {
    auto& node = builder->Node(
        "BatchNormalization",
        {x, prefix + "scale", prefix + "bias", prefix + "mean", prefix + "var"}, {y}, "bn");
    testing::SetFloat(node, "epsilon", epsilon);
    return node;
  }
  double Gain(size_t c) const {
    return scale[c] / std::sqrt(static_cast<double>(var[c]) + epsilon);
  }
  double Apply(size_t c, double x) const { return (x - mean[c]) * Gain(c) + bias[c]; }
};

BatchNorm MakeBatchNorm(int channels, uint32_t seed) {
  BatchNorm bn;
  bn.scale = testing::RandomFloats(channels, seed, -1.5f, 1.5f);
  bn.bias = testing::RandomFloats(channels, seed + 1);
  bn.mean = testing::RandomFloats(channels, seed + 2);
  bn.var = testing::RandomFloats(channels, seed + 3, 0.2f, 2.0f);
  bn.epsilon = 1e-3f;
  return bn;
}

// Stride-1 2-D convolution of x [C, H, W] with weights [M, C/group, k, k] and
// symmetric zero padding, in double. Returns [M, H + 2 pad - k + 1, ...].
std::vector<double> ReferenceConv(const std::vector<float>& x, int channels, int height, int width,
                                  const std::vector<float>& weights, int out_channels, int k,
                                  int group, int pad, const std::vector<float>& bias) {
  const int oh = height + 2 * pad - k + 1, ow = width + 2 * pad - k + 1;
  const int in_per_group = channels / group, out_per_group = out_channels / group;
  std::vector<double> y(static_cast<size_t>(out_channels) * oh * ow);
  for (int m = 0; m < out_channels; ++m)
    for (int oy = 0; oy < oh; ++oy)
      for (int ox = 0; ox < ow; ++ox) {
        double sum = bias.empty() ? 0.0 : bias[m];
        for (int ci = 0; ci < in_per_group; ++ci)
          for (int ky = 0; ky < k; ++ky)
            for (int kx = 0; kx < k; ++kx) {
              const int iy = oy + ky - pad, ix = ox + kx - pad;
              if (iy < 0 || iy >= height || ix < 0 || ix >= width) continue;
              const int c = (m / out_per_group) * in_per_group + ci;
              sum += static_cast<double>(x[(c * height + iy) * width + ix]) *
                     weights[((m * in_per_group + ci) * k + ky) * k + kx];
            }
        y[(m * oh + oy) * ow + ox] = sum;
      }
  return y;
}

// BatchNormalization on a [C, inner] tensor.
std::vector<double> ReferenceBatchNorm(const std::vector<double>& x, const BatchNorm& bn) {
  const size_t channels = bn.scale.size(), inner = x.size() / channels;
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = bn.Apply(i / inner, x[i]);
  return y;
}

// y [M, N] = alpha * A [M, K] * op(B) + beta * C, op(B) = B [K, N] or B^T for
// B [N, K]; C has 0 (absent), 1 or N values.
std::vector<double> ReferenceGemm(const std::vector<float>& a, int m, int k,
                                  const std::vector<float>& b, int n, bool trans_b, float alpha,
                                  const std::vector<float>& c, float beta) {
  std::vector<double> y(static_cast<size_t>(m) * n);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      double sum = 0;
      for (int p = 0; p < k; ++p)
        sum += static_cast<double>(a[i * k + p]) * (trans_b ? b[j * k + p] : b[p * n + j]);
      const double bias = c.empty() ? 0.0 : c[c.size() == 1 ? 0 : j];
      y[i * n + j] = alpha * sum + static_cast<double>(beta) * bias;
    }
  return y;
}

// Compiles `graph` and runs it on one input; outputs by name.
std::map<std::string, std::vector<float>> RunGraph(ir::Graph graph, const std::string& input,
                                                   Tensor tensor) {
  std::map<std::string, std::vector<float>> result;
  auto model = runtime::CompiledModel::Compile(std::move(graph));
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  if (!model.ok()) return result;
  auto session = (*model)->CreateSession(SessionOptions{});
  EXPECT_TRUE(session.ok()) << session.status().ToString();
  if (!session.ok()) return result;
  std::vector<NamedTensor> outputs;
  Status status = (*session)->Run({{input, std::move(tensor)}}, &outputs);
  EXPECT_TRUE(status.ok()) << status.ToString();
  for (NamedTensor& out : outputs) result[out.name] = out.tensor.values();
  return result;
}

void ExpectNear(const std::vector<float>& actual, const std::vector<double>& expected,
                double tolerance) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i)
    ASSERT_NEAR(actual[i], expected[i], tolerance) << "element " << i;
}

TEST(FoldBatchNormTest, ConvWithBiasFoldsIntoWeightsAndBias) {
  const std::vector<float> w = testing::RandomFloats(3 * 2 * 3 * 3, 11);
  const std::vector<float> b = testing::RandomFloats(3, 12);
  const BatchNorm bn = MakeBatchNorm(3, 13);
  OnnxBuilder builder;
  builder.Input("x", {-1, 2, 5, 5});
  builder.Floats("w", {3, 2, 3, 3}, w);
  builder.Floats("b", {3}, b);
  bn.AddTo(&builder);
  testing::SetInts(builder.Node("Conv", {"x", "w", "b"}, {"c"}, "conv"), "pads", {1, 1, 1, 1});
  bn.Node(&builder, "c", "y");
  builder.Output("y");
  auto graph = builder.Import();
  ASSERT_TRUE(graph.ok()) << graph.status().ToString();
  ASSERT_TRUE(passes::FoldConstants(&*graph).ok());
  EXPECT_EQ(graph->Dump(),
            "graph opset=13\n"
            "input %x: f32[1,2,5,5]\n"
            "const %w: f32[3,2,3,3]\n"
            "const %b: f32[3]\n"
            "const %bn_scale: f32[3]\n"
            "const %bn_bias: f32[3]\n"
            "const %bn_mean: f32[3]\n"
            "const %bn_var: f32[3]\n"
            "%c: f32[1,3,5,5] = Conv(%x, %w, %b) {dilations=[1,1], pads=[1,1,1,1], "
            "strides=[1,1]}\n"
            "%y: f32[1,3,5,5] = BatchNormalization(%c, %bn_scale, %bn_bias, %bn_mean, %bn_var) "
            "{epsilon=0.001}\n"
            "output %y: f32[1,3,5,5]\n");
  ASSERT_TRUE(passes::FoldBatchNormalization(&*graph).ok());
  ASSERT_TRUE(passes::EliminateDeadNodes(&*graph).ok());
  EXPECT_EQ(graph->Dump(),
            "graph opset=13\n"
            "input %x: f32[1,2,5,5]\n"
            "const %w/bn_folded: f32[3,2,3,3]\n"
            "const %b/bn_folded: f32[3]\n"
            "%y: f32[1,3,5,5] = Conv(%x, %w/bn_folded, %b/bn_folded) {dilations=[1,1], "
            "pads=[1,1,1,1], strides=[1,1]}\n"
            "output %y: f32[1,3,5,5]\n");
  // W'[o] = W[o] * g[o] and b' = (b - mean) * g + B, each rounded once.
  const ir::Node& conv = graph->nodes[0];
  const std::vector<float>& folded_w = ConstantOf(*graph, conv.inputs[1]);
  const std::vector<float>& folded_b = ConstantOf(*graph, conv.inputs[2]);
  for (size_t i = 0; i < w.size(); ++i)
    EXPECT_EQ(folded_w[i], static_cast<float>(w[i] * bn.Gain(i / 18))) << i;
  for (size_t o = 0; o < 3; ++o) EXPECT_EQ(folded_b[o], static_cast<float>(bn.Apply(o, b[o])));
  // The original weights are untouched (other readers may share them).
  EXPECT_EQ(ConstantOf(*graph, graph->FindValue("w")), w);

  const std::vector<float> x = testing::RandomFloats(2 * 5 * 5, 14);
  auto outputs = RunGraph(std::move(*graph), "x", Tensor({1, 2, 5, 5}, x));
  ExpectNear(outputs["y"], ReferenceBatchNorm(ReferenceConv(x, 2, 5, 5, w, 3, 3, 1, 1, b), bn),
             1e-5);
}

// Grouped and depthwise convolutions without a bias: the output channel is
// still axis 0 of the weights, and the fold adds a bias input.
TEST(FoldBatchNormTest, GroupedConvWithoutBiasGainsABias) {
  for (int group : {2, 4}) {
    SCOPED_TRACE("group " + std::to_string(group));
    const int per_group = 4 / group;
    const std::vector<float> w = testing::RandomFloats(4 * per_group * 3 * 3, 21 + group);
    const BatchNorm bn = MakeBatchNorm(4, 31 + group);
    OnnxBuilder builder;
    builder.Input("x", {-1, 4, 6, 6});
    builder.Floats("w", {4, per_group, 3, 3}, w);
    bn.AddTo(&builder);
    auto& conv = builder.Node("Conv", {"x", "w"}, {"c"}, "conv");
    testing::SetInt(conv, "group", group);
    bn.Node(&builder, "c", "y");
    builder.Output("y");
    auto graph = builder.Import();
    ASSERT_TRUE(graph.ok());
    ASSERT_TRUE(passes::FoldConstants(&*graph).ok());
    EXPECT_EQ(OpTypes(*graph), (std::vector<std::string>{"Conv", "BatchNormalization"}));
    ASSERT_TRUE(passes::FoldBatchNormalization(&*graph).ok());
    ASSERT_EQ(OpTypes(*graph), (std::vector<std::string>{"Conv"}));
    const ir::Node& folded = graph->nodes[0];
    ASSERT_EQ(folded.inputs.size(), 3u);
    EXPECT_EQ(graph->values[folded.inputs[2]].name, "w_bias/bn_folded");
    EXPECT_EQ(graph->values[folded.inputs[2]].shape, (Shape{4}));
    EXPECT_EQ(graph->values[folded.outputs[0]].name, "y");
    EXPECT_EQ(folded.GetInt("group", 0), group);

    const std::vector<float> x = testing::RandomFloats(4 * 6 * 6, 41 + group);
    auto outputs = RunGraph(std::move(*graph), "x", Tensor({1, 4, 6, 6}, x));
    ExpectNear(outputs["y"],
               ReferenceBatchNorm(ReferenceConv(x, 4, 6, 6, w, 4, 3, group, 0, {}), bn), 1e-5);
  }
}

// A Conv whose output is read by someone else (another node, or the graph
// output itself) keeps its weights; the BN becomes Mul + Add with [C,1,1]
// constants, which the runtime runs.
TEST(FoldBatchNormTest, ConvWithAnotherReaderBecomesMulAdd) {
  for (bool second_reader_is_node : {true, false}) {
    SCOPED_TRACE(second_reader_is_node ? "Relu reads the conv" : "the conv is a graph output");
    const std::vector<float> w = testing::RandomFloats(3 * 2 * 3 * 3, 51);
    const BatchNorm bn = MakeBatchNorm(3, 52);
    OnnxBuilder builder;
    builder.Input("x", {-1, 2, 5, 5});
    builder.Floats("w", {3, 2, 3, 3}, w);
    bn.AddTo(&builder);
    builder.Node("Conv", {"x", "w"}, {"c"}, "conv");
    bn.Node(&builder, "c", "y");
    const std::string other = second_reader_is_node ? "r" : "c";
    if (second_reader_is_node) builder.Node("Relu", {"c"}, {"r"});
    builder.Output("y").Output(other);
    auto graph = builder.Import();
    ASSERT_TRUE(graph.ok());
    ASSERT_TRUE(passes::FoldConstants(&*graph).ok());
    ASSERT_TRUE(passes::FoldBatchNormalization(&*graph).ok());
    if (second_reader_is_node) {
      EXPECT_EQ(graph->Dump(),
                "graph opset=13\n"
                "input %x: f32[1,2,5,5]\n"
                "const %w: f32[3,2,3,3]\n"
                "const %bn/gain: f32[3,1,1]\n"
                "const %bn/shift: f32[3,1,1]\n"
                "%c: f32[1,3,3,3] = Conv(%x, %w) {dilations=[1,1], pads=[0,0,0,0], "
                "strides=[1,1]}\n"
                "%bn/scaled: f32[1,3,3,3] = Mul(%c, %bn/gain)\n"
                "%y: f32[1,3,3,3] = Add(%bn/scaled, %bn/shift)\n"
                "%r: f32[1,3,3,3] = Relu(%c)\n"
                "output %y: f32[1,3,3,3]\n"
                "output %r: f32[1,3,3,3]\n");
    } else {
      EXPECT_EQ(OpTypes(*graph), (std::vector<std::string>{"Conv", "Mul", "Add"}));
    }
    const std::vector<float>& gain = ConstantOf(*graph, graph->FindValue("bn/gain"));
    const std::vector<float>& shift = ConstantOf(*graph, graph->FindValue("bn/shift"));
    for (size_t c = 0; c < 3; ++c) {
      EXPECT_EQ(gain[c], static_cast<float>(bn.Gain(c)));
      EXPECT_EQ(shift[c], static_cast<float>(bn.Apply(c, 0.0)));
    }

    const std::vector<float> x = testing::RandomFloats(2 * 5 * 5, 53);
    auto outputs = RunGraph(std::move(*graph), "x", Tensor({1, 2, 5, 5}, x));
    const std::vector<double> conv = ReferenceConv(x, 2, 5, 5, w, 3, 3, 1, 0, {});
    ExpectNear(outputs["y"], ReferenceBatchNorm(conv, bn), 1e-5);
    std::vector<double> expected_other = conv;
    if (second_reader_is_node)
      for (double& v : expected_other) v = std::max(v, 0.0);
    ExpectNear(outputs[other], expected_other, 1e-5);
  }
}

// Gemm output [M, N]: axis 1 is N whatever transB is. alpha stays, beta * C
// folds into the new C ([N]) and beta becomes 1.
TEST(FoldBatchNormTest, GemmFoldsIntoBAndC) {
  const int m = 3, k = 5, n = 4;
  for (bool trans_b : {false, true}) {
    for (int c_size : {0, 1, n}) {
      SCOPED_TRACE("transB " + std::to_string(trans_b) + ", C of " + std::to_string(c_size));
      const std::vector<float> b = testing::RandomFloats(k * n, 61);
      const std::vector<float> c = testing::RandomFloats(c_size, 62);
      const BatchNorm bn = MakeBatchNorm(n, 63);
      OnnxBuilder builder;
      builder.Input("a", {-1, k});
      builder.Floats("b", trans_b ? std::vector<int64_t>{n, k} : std::vector<int64_t>{k, n}, b);
      std::vector<std::string> inputs = {"a", "b"};
      if (c_size) {
        builder.Floats("c", c_size == 1 ? std::vector<int64_t>{} : std::vector<int64_t>{1, n}, c);
        inputs.push_back("c");
      }
      bn.AddTo(&builder);
      auto& gemm = builder.Node("Gemm", inputs, {"g"}, "gemm");
      testing::SetFloat(gemm, "alpha", 0.5f);
      testing::SetFloat(gemm, "beta", 2.0f);
      testing::SetInt(gemm, "transB", trans_b);
      bn.Node(&builder, "g", "y");
      builder.Output("y");
      auto graph = builder.Import();
      ASSERT_TRUE(graph.ok());
      ASSERT_TRUE(passes::FoldBatchNormalization(&*graph).ok());
      ASSERT_EQ(OpTypes(*graph), (std::vector<std::string>{"Gemm"}));
      const ir::Node& folded = graph->nodes[0];
      EXPECT_EQ(graph->values[folded.outputs[0]].name, "y");
      EXPECT_FLOAT_EQ(folded.GetFloat("alpha", 0), 0.5f);
      EXPECT_FLOAT_EQ(folded.GetFloat("beta", 0), 1.0f);
      ASSERT_EQ(folded.inputs.size(), 3u);
      EXPECT_EQ(graph->values[folded.inputs[2]].shape, (Shape{n}));

      const std::vector<float> a = testing::RandomFloats(m * k, 64);
      std::vector<double> expected = ReferenceGemm(a, m, k, b, n, trans_b, 0.5f, c, 2.0f);
      for (size_t i = 0; i < expected.size(); ++i) expected[i] = bn.Apply(i % n, expected[i]);
      const std::vector<double> actual =
          ReferenceGemm(a, m, k, ConstantOf(*graph, folded.inputs[1]), n, trans_b, 0.5f,
                        ConstantOf(*graph, folded.inputs[2]), 1.0f);
      ExpectNear(std::vector<float>(actual.begin(), actual.end()), expected, 1e-5);
    }
  }
}

// MatMul of rank-2 A: B's columns scale and the bias becomes an Add. With
// A [N, 3, 5] the BN's axis 1 is MatMul's rows, not B's columns: no fold
// (and the output rank is not inferred, so no Mul/Add either).
TEST(FoldBatchNormTest, MatMulFoldsOnlyForRankTwoInput) {
  const int m = 2, k = 5, n = 3;
  const std::vector<float> b = testing::RandomFloats(k * n, 71);
  const BatchNorm bn = MakeBatchNorm(n, 72);
  for (bool rank_two : {true, false}) {
    SCOPED_TRACE(rank_two ? "A [N,5]" : "A [N,3,5]");
    OnnxBuilder builder;
    builder.Input("a", rank_two ? std::vector<int64_t>{-1, k} : std::vector<int64_t>{-1, 3, k});
    builder.Floats("b", {k, n}, b);
    bn.AddTo(&builder);
    builder.Node("MatMul", {"a", "b"}, {"p"}, "matmul");
    bn.Node(&builder, "p", "y");
    builder.Output("y");
    auto graph = builder.Import();
    ASSERT_TRUE(graph.ok());
    const std::string before = graph->Dump();
    ASSERT_TRUE(passes::FoldBatchNormalization(&*graph).ok());
    if (!rank_two) {
      EXPECT_EQ(graph->Dump(), before);
      continue;
    }
    ASSERT_TRUE(passes::EliminateDeadNodes(&*graph).ok());
    EXPECT_EQ(graph->Dump(),
              "graph opset=13\n"
              "input %a: f32[-1,5]\n"
              "const %b/bn_folded: f32[5,3]\n"
              "const %b_bias/bn_folded: f32[3]\n"
              "%p: f32[?] = MatMul(%a, %b/bn_folded)\n"
              "%y: f32[?] = Add(%p, %b_bias/bn_folded)\n"
              "output %y: f32[?]\n");
    const std::vector<float> a = testing::RandomFloats(m * k, 73);
    std::vector<double> expected = ReferenceGemm(a, m, k, b, n, false, 1.0f, {}, 0.0f);
    for (size_t i = 0; i < expected.size(); ++i) expected[i] = bn.Apply(i % n, expected[i]);
    const ir::Node& matmul = graph->nodes[0];
    const ir::Node& add = graph->nodes[1];
    const std::vector<double> actual =
        ReferenceGemm(a, m, k, ConstantOf(*graph, matmul.inputs[1]), n, false, 1.0f,
                      ConstantOf(*graph, add.inputs[1]), 1.0f);
    ExpectNear(std::vector<float>(actual.begin(), actual.end()), expected, 1e-5);
  }
}

// Two Convs share one weight tensor; folding into one of them must leave
// the other's weights alone.
TEST(FoldBatchNormTest, SharedWeightsAreCopiedNotChanged) {
  const std::vector<float> w = testing::RandomFloats(2 * 2, 81);
  OnnxBuilder builder;
  builder.Input("x", {-1, 2, 3, 3});
  builder.Floats("w", {2, 2, 1, 1}, w);
  MakeBatchNorm(2, 82).AddTo(&builder);
  builder.Node("Conv", {"x", "w"}, {"c1"});
  builder.Node("Conv", {"x", "w"}, {"c2"});
  MakeBatchNorm(2, 82).Node(&builder, "c1", "y1");
  builder.Output("y1").Output("c2");
  auto graph = builder.Import();
  ASSERT_TRUE(graph.ok());
  ASSERT_TRUE(passes::FoldConstants(&*graph).ok());
  ASSERT_TRUE(passes::FoldBatchNormalization(&*graph).ok());
  ASSERT_EQ(OpTypes(*graph), (std::vector<std::string>{"Conv", "Conv"}));
  EXPECT_EQ(graph->values[graph->nodes[0].inputs[1]].name, "w/bn_folded");
  EXPECT_EQ(graph->values[graph->nodes[1].inputs[1]].name, "w");
  EXPECT_EQ(ConstantOf(*graph, graph->FindValue("w")), w);
}

// Run-time parameters and training mode leave the BN as it is; the runtime
// then names it as unsupported.
TEST(FoldBatchNormTest, NonConstantParametersAndTrainingModeAreLeftAlone) {
  for (bool training : {false, true}) {
    SCOPED_TRACE(training ? "training_mode=1" : "scale is a graph input");
    const BatchNorm bn = MakeBatchNorm(1, 91);
    OnnxBuilder builder(training ? 15 : 13);
    builder.Input("x", {-1, 1, 4, 4});
    builder.Floats("w", {1, 1, 3, 3}, testing::RandomFloats(9, 92));
    bn.AddTo(&builder);
    builder.Node("Conv", {"x", "w"}, {"c"}, "conv");
    if (training) {
      auto& node =
          builder.Node("BatchNormalization", {"c", "bn_scale", "bn_bias", "bn_mean", "bn_var"},
                       {"y", "running_mean", "running_var"}, "bn");
      testing::SetInt(node, "training_mode", 1);
    } else {
      builder.Input("s", {-1});
      builder.Node("BatchNormalization", {"c", "s", "bn_bias", "bn_mean", "bn_var"}, {"y"}, "bn");
    }
    builder.Output("y");
    auto graph = builder.Import();
    ASSERT_TRUE(graph.ok());
    ASSERT_TRUE(passes::FoldConstants(&*graph).ok());
    const std::string before = graph->Dump();
    ASSERT_TRUE(passes::FoldBatchNormalization(&*graph).ok());
    EXPECT_EQ(graph->Dump(), before);
    EXPECT_EQ(OpTypes(*graph), (std::vector<std::string>{"Conv", "BatchNormalization"}));

    auto model = runtime::CompiledModel::Compile(std::move(*graph));
    ASSERT_FALSE(model.ok());
    EXPECT_EQ(model.status().code(), StatusCode::kUnimplemented) << model.status().ToString();
    EXPECT_NE(model.status().message().find("BatchNormalization"), std::string::npos)
        << model.status().ToString();
    EXPECT_NE(model.status().message().find("'bn'"), std::string::npos)
        << model.status().ToString();
  }
}

TEST(FoldBatchNormTest, NonPositiveVarianceIsAnErrorNamingTheNode) {
  BatchNorm bn = MakeBatchNorm(2, 101);
  bn.var[1] = 0.0f;
  bn.epsilon = 0.0f;
  OnnxBuilder builder;
  builder.Input("x", {-1, 2, 3, 3});
  builder.Floats("w", {2, 2, 1, 1}, testing::RandomFloats(4, 102));
  bn.AddTo(&builder);
  builder.Node("Conv", {"x", "w"}, {"c"});
  bn.Node(&builder, "c", "y");
  builder.Output("y");
  auto graph = builder.Import();
  ASSERT_TRUE(graph.ok());
  ASSERT_TRUE(passes::FoldConstants(&*graph).ok());
  Status status = passes::FoldBatchNormalization(&*graph);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("'bn'"), std::string::npos) << status.ToString();
  EXPECT_NE(status.message().find("channel 1"), std::string::npos) << status.ToString();
}

TEST(FoldBatchNormTest, ShapeInferenceKeepsTheInputShapeAndChecksParameters) {
  for (int channels : {3, 4}) {
    OnnxBuilder builder;
    builder.Input("x", {-1, 3, 2, 5});
    MakeBatchNorm(channels, 111).AddTo(&builder);
    MakeBatchNorm(channels, 111).Node(&builder, "x", "y");
    builder.Output("y");
    auto graph = builder.Import();
    ASSERT_TRUE(graph.ok());
    Status status = passes::InferShapes(&*graph);
    if (channels == 3) {
      ASSERT_TRUE(status.ok()) << status.ToString();
      EXPECT_EQ(graph->values[graph->FindValue("y")].shape, (Shape{1, 3, 2, 5}));
    } else {
      EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
      EXPECT_NE(status.message().find("'bn'"), std::string::npos) << status.ToString();
    }
  }
}

}  // namespace
}  // namespace lowbit::engine
