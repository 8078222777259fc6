// Each compiler pass on small graphs, checked before and after.
#include <cmath>
#include <limits>

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

const ir::Node* FindNode(const ir::Graph& graph, const std::string& op) {
  for (const ir::Node& node : graph.nodes)
    if (node.op_type == op) return &node;
  return nullptr;
}

TEST(ShapeInferenceTest, ConvPoolAndBatchDimension) {
  OnnxBuilder builder;
  builder.Input("x", {-1, 4, 9, 11});
  builder.Floats("w", {6, 2, 3, 3}, testing::RandomFloats(108, 2));
  auto& conv = builder.Node("Conv", {"x", "w"}, {"c"});
  testing::SetInt(conv, "group", 2);
  testing::SetInts(conv, "strides", {2, 1});
  testing::SetInts(conv, "dilations", {1, 2});
  testing::SetInts(conv, "pads", {1, 0, 1, 2});
  auto& pool = builder.Node("MaxPool", {"c"}, {"p"});
  testing::SetInts(pool, "kernel_shape", {2, 2});
  testing::SetInts(pool, "strides", {2, 2});
  testing::SetString(pool, "auto_pad", "SAME_UPPER");
  builder.Output("p");
  auto graph = builder.Import();
  ASSERT_TRUE(graph.ok());
  ASSERT_TRUE(passes::InferShapes(&*graph).ok());
  // Batch 1; H: (9 + 2 - 3) / 2 + 1 = 5; W: (11 + 2 - 5) / 1 + 1 = 9.
  EXPECT_EQ(graph->values[graph->FindValue("x")].shape, (Shape{1, 4, 9, 11}));
  EXPECT_EQ(graph->values[graph->FindValue("c")].shape, (Shape{1, 6, 5, 9}));
  // SAME_UPPER: ceil(5/2) = 3, ceil(9/2) = 5; total pad H = 1 (end), W = 1 (end).
  EXPECT_EQ(graph->values[graph->FindValue("p")].shape, (Shape{1, 6, 3, 5}));
  const ir::Node* maxpool = FindNode(*graph, "MaxPool");
  EXPECT_FALSE(maxpool->has("auto_pad"));
  EXPECT_EQ(maxpool->GetInts("pads"), (std::vector<int64_t>{0, 0, 1, 1}));
}

TEST(ShapeInferenceTest, InconsistentShapesNameTheNode) {
  OnnxBuilder builder;
  builder.Input("x", {1, 4, 8, 8});
  builder.Floats("w", {6, 3, 3, 3}, testing::RandomFloats(162, 3));
  builder.Node("Conv", {"x", "w"}, {"y"}, "bad_conv");
  builder.Output("y");
  auto graph = builder.Import();
  ASSERT_TRUE(graph.ok());
  Status status = passes::InferShapes(&*graph);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("bad_conv"), std::string::npos);
}

// Shape inference of the graph `builder` imports, which must import (a
// failed import is a test failure, and comes back as Ok so that a test
// expecting a refusal fails too).
Status InferShapesOf(const OnnxBuilder& builder) {
  auto graph = builder.Import();
  if (!graph.ok()) {
    ADD_FAILURE() << "import failed: " << graph.status().ToString();
    return Status::Ok();
  }
  return passes::InferShapes(&*graph);
}

// fuzz/regressions/onnx_import/pad-pads-float-infinity.onnx: a Pad's pads
// given as a float tensor holding infinity were converted to int64 (UB).
TEST(ShapeInferenceTest, PadsThatAreNotIntegersAreRefused) {
  for (float bad : {std::numeric_limits<float>::infinity(), std::nanf(""), 1e19f}) {
    OnnxBuilder builder;
    builder.Input("x", {1, 4});
    builder.Floats("pads", {4}, {0, 1, 0, bad});
    builder.Node("Pad", {"x", "pads"}, {"y"}, "float_pads");
    builder.Output("y");
    Status status = InferShapesOf(builder);
    ASSERT_FALSE(status.ok()) << bad;
    EXPECT_NE(status.message().find("float_pads"), std::string::npos) << status.message();
    EXPECT_NE(status.message().find("where an integer is expected"), std::string::npos)
        << status.message();
  }
}

// Found reading the code the fuzzer runs: a Range's count and a Resize's
// scaled sizes are floats converted to dimensions; NaN, infinity or a huge
// value has no conversion (UB).
TEST(ShapeInferenceTest, FloatDimensionsThatAreNotCountsAreRefused) {
  const float inf = std::numeric_limits<float>::infinity();
  for (const std::vector<float>& range : std::vector<std::vector<float>>{
           {0, inf, 1}, {0, 1e30f, 1}, {0, std::nanf(""), 1}}) {
    OnnxBuilder builder;
    builder.Input("x", {1, 4});
    builder.Floats("start", {}, {range[0]}).Floats("limit", {}, {range[1]});
    builder.Floats("delta", {}, {range[2]});
    builder.Node("Range", {"start", "limit", "delta"}, {"y"}, "huge_range");
    builder.Node("Add", {"x", "x"}, {"z"});
    builder.Output("z").Output("y");
    Status status = InferShapesOf(builder);
    ASSERT_FALSE(status.ok()) << range[1];
    EXPECT_NE(status.message().find("huge_range"), std::string::npos) << status.message();
  }
  for (float scale : {inf, -2.0f, 1e30f}) {
    OnnxBuilder builder;
    builder.Input("x", {1, 1, 4, 4});
    builder.Floats("scales", {4}, {1, 1, scale, 2});
    builder.Node("Resize", {"x", "", "scales"}, {"y"}, "bad_resize");
    builder.Output("y");
    Status status = InferShapesOf(builder);
    ASSERT_FALSE(status.ok()) << scale;
    EXPECT_NE(status.message().find("bad_resize"), std::string::npos) << status.message();
    EXPECT_NE(status.message().find("a scale makes a dimension"), std::string::npos)
        << status.message();
  }
}

// fuzz/regressions/onnx_import/unary-node-without-outputs.onnx: shape
// inference wrote the output of a node that has none.
TEST(ShapeInferenceTest, NodeWithoutOutputsIsRefused) {
  OnnxBuilder builder;
  builder.Input("x", {1, 4});
  builder.Node("Relu", {"x"}, {"y"});
  builder.Node("Sigmoid", {"x"}, {}, "outputless");
  builder.Output("y");
  Status status = InferShapesOf(builder);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("outputless"), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("no first output"), std::string::npos) << status.message();
}

// fuzz/regressions/onnx_import/reshape-target-overflows-int64.onnx: the
// product of a Reshape's target dimensions overflowed int64.
TEST(ShapeInferenceTest, ReshapeTargetWhoseElementCountOverflowsIsRefused) {
  OnnxBuilder builder;
  builder.Input("x", {1, 4});
  builder.Ints("target", {3}, {2097151, 8796093022207, -1});
  builder.Node("Reshape", {"x", "target"}, {"y"}, "huge_reshape");
  builder.Output("y");
  Status status = InferShapesOf(builder);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("huge_reshape"), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("overflows int64"), std::string::npos) << status.message();
}

TEST(ShapeInferenceTest, FixedBatchAboveOneAndSymbolicSpatialDimsAreRejected) {
  OnnxBuilder fixed;
  fixed.Input("x", {4, 3});
  fixed.Node("Relu", {"x"}, {"y"});
  fixed.Output("y");
  auto graph = fixed.Import();
  ASSERT_TRUE(graph.ok());
  Status status = passes::InferShapes(&*graph);
  EXPECT_EQ(status.code(), StatusCode::kUnimplemented);
  EXPECT_NE(status.message().find("fixed batch of 4"), std::string::npos);
}

// The exporter pattern Reshape(x, Concat(Gather(Shape(x), 0), [-1])) plus an
// Identity: all of it folds, leaving Reshape with a constant shape.
TEST(ConstantFoldingTest, FoldsShapeChainsAndRemovesIdentity) {
  OnnxBuilder builder;
  builder.Input("x", {-1, 2, 3, 4});
  builder.Ints("zero", {}, {0});
  builder.Ints("minus_one", {1}, {-1});
  builder.Ints("axes", {1}, {0});
  builder.Node("Identity", {"x"}, {"x_id"});
  builder.Node("Shape", {"x_id"}, {"shape"});
  builder.Node("Gather", {"shape", "zero"}, {"batch"});
  builder.Node("Unsqueeze", {"batch", "axes"}, {"batch_1d"});
  auto& concat = builder.Node("Concat", {"batch_1d", "minus_one"}, {"target"});
  testing::SetInt(concat, "axis", 0);
  builder.Node("Cast", {"target"}, {"target_cast"}).add_attribute()->CopyFrom([] {
    onnx::AttributeProto a;
    a.set_name("to");
    a.set_type(onnx::AttributeProto::INT);
    a.set_i(onnx::TensorProto::INT64);
    return a;
  }());
  builder.Node("Reshape", {"x_id", "target_cast"}, {"y"});
  builder.Output("y");
  auto graph = builder.Import();
  ASSERT_TRUE(graph.ok());
  EXPECT_EQ(OpTypes(*graph), (std::vector<std::string>{"Identity", "Shape", "Gather", "Unsqueeze",
                                                       "Concat", "Cast", "Reshape"}));
  // Reshape's shape is computed, so plain shape inference cannot run yet.
  EXPECT_FALSE(passes::InferShapes(&*graph).ok());
  Status folded = passes::FoldConstants(&*graph);
  ASSERT_TRUE(folded.ok()) << folded.ToString();
  ASSERT_TRUE(passes::EliminateDeadNodes(&*graph).ok());
  EXPECT_EQ(OpTypes(*graph), (std::vector<std::string>{"Reshape"}));
  const ir::Node& reshape = graph->nodes[0];
  EXPECT_EQ(graph->values[reshape.inputs[0]].name, "x");  // Identity bypassed
  const ir::Value& target = graph->values[reshape.inputs[1]];
  ASSERT_TRUE(target.is_constant());
  EXPECT_EQ(target.constant->ints, (std::vector<int64_t>{1, -1}));
  EXPECT_EQ(graph->values[reshape.outputs[0]].shape, (Shape{1, 24}));
  EXPECT_EQ(graph->Dump(),
            "graph opset=13\n"
            "input %x: f32[1,2,3,4]\n"
            "const %target_cast: i64[2]\n"
            "%y: f32[1,24] = Reshape(%x, %target_cast)\n"
            "output %y: f32[1,24]\n");
}

TEST(ConstantFoldingTest, FoldsConstantOfShapeSliceAndArithmetic) {
  OnnxBuilder builder;
  builder.Input("x", {1, 4});
  builder.Ints("shape", {2}, {1, 4});
  builder.Floats("base", {6}, {0, 1, 2, 3, 4, 5});
  builder.Ints("starts", {1}, {1});
  builder.Ints("ends", {1}, {5});
  auto& fill = builder.Node("ConstantOfShape", {"shape"}, {"ones"});
  auto* value = fill.add_attribute();
  value->set_name("value");
  value->set_type(onnx::AttributeProto::TENSOR);
  value->mutable_t()->set_data_type(onnx::TensorProto::FLOAT);
  value->mutable_t()->add_dims(1);
  value->mutable_t()->add_float_data(1.0f);
  builder.Node("Slice", {"base", "starts", "ends"}, {"sliced"});  // [1, 2, 3, 4]
  builder.Node("Add", {"ones", "sliced"}, {"offsets"});           // [[2, 3, 4, 5]]
  builder.Node("Mul", {"x", "offsets"}, {"y"});
  builder.Output("y");
  auto graph = builder.Import();
  ASSERT_TRUE(graph.ok());
  ASSERT_TRUE(passes::InferShapes(&*graph).ok());
  ASSERT_TRUE(passes::FoldConstants(&*graph).ok());
  EXPECT_EQ(OpTypes(*graph), (std::vector<std::string>{"Mul"}));
  const ir::Value& offsets = graph->values[graph->nodes[0].inputs[1]];
  EXPECT_EQ(offsets.constant->floats, (std::vector<float>{2, 3, 4, 5}));
  EXPECT_EQ(offsets.shape, (Shape{1, 4}));
}

TEST(DeadNodeEliminationTest, RemovesBranchesNoOutputNeeds) {
  OnnxBuilder builder;
  builder.Input("x", {1, 4});
  builder.Node("Relu", {"x"}, {"used"});
  builder.Node("Sigmoid", {"x"}, {"unused"});
  builder.Node("Neg", {"unused"}, {"unused2"});
  builder.Output("used");
  auto graph = builder.Import();
  ASSERT_TRUE(graph.ok());
  EXPECT_EQ(OpTypes(*graph), (std::vector<std::string>{"Relu", "Sigmoid", "Neg"}));
  ASSERT_TRUE(passes::EliminateDeadNodes(&*graph).ok());
  EXPECT_EQ(OpTypes(*graph), (std::vector<std::string>{"Relu"}));
}

// Pad -> Conv: zero padding on H/W moves into the Conv's pads.
TEST(PadFusionTest, ZeroPadFoldsIntoConv) {
  OnnxBuilder builder;
  builder.Input("x", {1, 2, 6, 6});
  builder.Ints("pads", {8}, {0, 0, 1, 2, 0, 0, 3, 0});
  builder.Floats("w", {3, 2, 3, 3}, testing::RandomFloats(54, 4));
  builder.Node("Pad", {"x", "pads"}, {"padded"});
  auto& conv = builder.Node("Conv", {"padded", "w"}, {"y"});
  testing::SetInts(conv, "pads", {1, 1, 1, 1});
  builder.Output("y");
  auto graph = builder.Import();
  ASSERT_TRUE(graph.ok());
  ASSERT_TRUE(passes::InferShapes(&*graph).ok());
  const Shape before = graph->values[graph->FindValue("y")].shape;
  ASSERT_TRUE(passes::FusePadIntoConsumer(&*graph).ok());
  EXPECT_EQ(OpTypes(*graph), (std::vector<std::string>{"Conv"}));
  const ir::Node& fused = graph->nodes[0];
  EXPECT_EQ(graph->values[fused.inputs[0]].name, "x");
  // [top, left, bottom, right] = conv [1,1,1,1] + pad [1,2,3,0].
  EXPECT_EQ(fused.GetInts("pads"), (std::vector<int64_t>{2, 3, 4, 1}));
  ASSERT_TRUE(passes::InferShapes(&*graph).ok());
  EXPECT_EQ(graph->values[graph->FindValue("y")].shape, before);
}

TEST(PadFusionTest, NonZeroPadValueAndChannelPadsStay) {
  for (int variant = 0; variant < 2; ++variant) {
    OnnxBuilder builder;
    builder.Input("x", {1, 2, 6, 6});
    builder.Ints("pads", {8},
                 variant == 0 ? std::vector<int64_t>{0, 0, 1, 1, 0, 0, 1, 1}
                              : std::vector<int64_t>{0, 1, 0, 0, 0, 0, 0, 0});
    builder.Floats("value", {}, {variant == 0 ? 0.5f : 0.0f});
    builder.Floats("w", {3, variant == 0 ? 2 : 3, 3, 3},
                   testing::RandomFloats(variant == 0 ? 54 : 81, 5));
    builder.Node("Pad", {"x", "pads", "value"}, {"padded"});
    builder.Node("Conv", {"padded", "w"}, {"y"});
    builder.Output("y");
    auto graph = builder.Import();
    ASSERT_TRUE(graph.ok());
    ASSERT_TRUE(passes::InferShapes(&*graph).ok());
    ASSERT_TRUE(passes::FusePadIntoConsumer(&*graph).ok());
    EXPECT_EQ(OpTypes(*graph), (std::vector<std::string>{"Pad", "Conv"})) << "variant " << variant;
  }
}

TEST(PadFusionTest, ZeroPadFoldsIntoMaxPoolOnlyAfterRelu) {
  for (bool after_relu : {true, false}) {
    OnnxBuilder builder;
    builder.Input("x", {1, 2, 6, 6});
    builder.Ints("pads", {8}, {0, 0, 0, 0, 0, 0, 1, 1});
    builder.Node(after_relu ? "Relu" : "Neg", {"x"}, {"a"});
    builder.Node("Pad", {"a", "pads"}, {"padded"});
    auto& pool = builder.Node("MaxPool", {"padded"}, {"y"});
    testing::SetInts(pool, "kernel_shape", {2, 2});
    testing::SetInts(pool, "strides", {2, 2});
    builder.Output("y");
    auto graph = builder.Import();
    ASSERT_TRUE(graph.ok());
    ASSERT_TRUE(passes::InferShapes(&*graph).ok());
    ASSERT_TRUE(passes::FusePadIntoConsumer(&*graph).ok());
    if (after_relu) {
      EXPECT_EQ(OpTypes(*graph), (std::vector<std::string>{"Relu", "MaxPool"}));
      EXPECT_EQ(graph->nodes[1].GetInts("pads"), (std::vector<int64_t>{0, 0, 1, 1}));
    } else {
      EXPECT_EQ(OpTypes(*graph), (std::vector<std::string>{"Neg", "Pad", "MaxPool"}));
    }
  }
}

TEST(ActivationFusionTest, ReluAndLeakyReluMoveIntoConv) {
  OnnxBuilder builder;
  builder.Input("x", {1, 2, 4, 4});
  builder.Floats("w", {2, 2, 1, 1}, {1, 0, 0, 1});
  builder.Node("Conv", {"x", "w"}, {"c1"});
  builder.Node("Relu", {"c1"}, {"r1"});
  builder.Node("Conv", {"r1", "w"}, {"c2"});
  testing::SetFloat(builder.Node("LeakyRelu", {"c2"}, {"y"}), "alpha", 0.125f);
  builder.Output("y");
  auto graph = builder.Import();
  ASSERT_TRUE(graph.ok());
  ASSERT_TRUE(passes::InferShapes(&*graph).ok());
  ASSERT_TRUE(passes::FuseActivations(&*graph).ok());
  EXPECT_EQ(OpTypes(*graph), (std::vector<std::string>{"Conv", "Conv"}));
  EXPECT_EQ(graph->nodes[0].GetString("lowbit_activation", ""), "relu");
  EXPECT_EQ(graph->values[graph->nodes[0].outputs[0]].name, "r1");
  EXPECT_EQ(graph->nodes[1].GetString("lowbit_activation", ""), "leaky_relu");
  EXPECT_FLOAT_EQ(graph->nodes[1].GetFloat("lowbit_alpha", 0), 0.125f);
  EXPECT_EQ(graph->values[graph->nodes[1].outputs[0]].name, "y");
}

// NCHW model: the first Conv's input gets an NHWC relayout, activations stay
// NHWC, the Transpose to NHWC becomes a view whose storage is logical order,
// and the graph output is in logical order.
TEST(LayoutTest, NhwcInsideLogicalAtTheEdges) {
  OnnxBuilder builder;
  builder.Input("x", {-1, 8, 4, 4});
  builder.Floats("w", {8, 8, 3, 3}, testing::RandomFloats(576, 6));
  builder.Floats("bias", {8, 1, 1}, testing::RandomFloats(8, 7));
  builder.Ints("shape", {3}, {1, -1, 8});
  auto& conv = builder.Node("Conv", {"x", "w"}, {"c"});
  testing::SetInts(conv, "pads", {1, 1, 1, 1});
  builder.Node("Add", {"c", "bias"}, {"a"});
  auto& transpose = builder.Node("Transpose", {"a"}, {"t"});
  testing::SetInts(transpose, "perm", {0, 2, 3, 1});
  builder.Node("Reshape", {"t", "shape"}, {"y"});
  builder.Output("y");
  auto graph = builder.Import();
  ASSERT_TRUE(graph.ok());
  ASSERT_TRUE(passes::CompileGraph(&*graph).ok());
  EXPECT_EQ(OpTypes(*graph),
            (std::vector<std::string>{"lowbit.Relayout", "Conv", "Add", "Transpose", "Reshape"}));
  auto storage = [&](const std::string& name) {
    return graph->values[graph->FindValue(name)].storage_perm;
  };
  EXPECT_EQ(storage("x"), std::vector<int>{});
  EXPECT_EQ(storage("c"), (std::vector<int>{0, 2, 3, 1}));
  EXPECT_EQ(storage("a"), (std::vector<int>{0, 2, 3, 1}));
  EXPECT_EQ(storage("t"), std::vector<int>{});  // same memory as NHWC "a"
  // The [8,1,1] bias became a rank-4 constant stored NHWC: [1,1,1,8] in memory.
  const ir::Value& bias = graph->values[graph->nodes[2].inputs[1]];
  EXPECT_EQ(bias.shape, (Shape{1, 8, 1, 1}));
  EXPECT_EQ(bias.storage_perm, (std::vector<int>{0, 2, 3, 1}));
  EXPECT_EQ(graph->values[graph->outputs[0]].shape, (Shape{1, 16, 8}));
}

// Detection-head pattern: NHWC conv output -> Reshape [N,C,H*W] ->
// Transpose [N,H*W,C]. Both are views of the NHWC memory: no relayout at all.
TEST(LayoutTest, ReshapeOfNhwcValueIsAViewWhenAxesStayContiguous) {
  OnnxBuilder builder;
  builder.Input("x", {-1, 8, 4, 5});
  builder.Floats("w", {6, 8, 1, 1}, testing::RandomFloats(48, 9));
  builder.Ints("shape", {3}, {1, 6, 20});
  builder.Node("Conv", {"x", "w"}, {"c"});
  builder.Node("Reshape", {"c", "shape"}, {"r"});
  testing::SetInts(builder.Node("Transpose", {"r"}, {"y"}), "perm", {0, 2, 1});
  builder.Output("y");
  auto graph = builder.Import();
  ASSERT_TRUE(graph.ok());
  ASSERT_TRUE(passes::CompileGraph(&*graph).ok());
  EXPECT_EQ(OpTypes(*graph), (std::vector<std::string>{"lowbit.Relayout", "Conv", "Reshape",
                                                       "Transpose"}));
  EXPECT_EQ(graph->values[graph->FindValue("r")].storage_perm, (std::vector<int>{0, 2, 1}));
  EXPECT_EQ(graph->values[graph->FindValue("y")].storage_perm, std::vector<int>{});
  EXPECT_EQ(graph->outputs[0], graph->FindValue("y"));
}

// A conv on few input channels gathers its patches from any storage order:
// no relayout in front of it, even on an NCHW graph input.
TEST(LayoutTest, FewChannelConvReadsLogicalInputDirectly) {
  OnnxBuilder builder;
  builder.Input("x", {-1, 3, 6, 6});
  builder.Floats("w", {4, 3, 3, 3}, testing::RandomFloats(108, 8));
  builder.Node("Conv", {"x", "w"}, {"y"});
  builder.Output("y");
  auto graph = builder.Import();
  ASSERT_TRUE(graph.ok());
  ASSERT_TRUE(passes::CompileGraph(&*graph).ok());
  EXPECT_TRUE(ir::ConvGathersPatches(*graph, graph->nodes[0]));
  EXPECT_EQ(OpTypes(*graph), (std::vector<std::string>{"Conv", "lowbit.Relayout"}));
  EXPECT_EQ(graph->values[graph->nodes[0].inputs[0]].name, "x");
}

}  // namespace
}  // namespace lowbit::engine
