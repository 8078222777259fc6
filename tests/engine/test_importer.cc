// ONNX importer: initializers, attributes, opset, symbolic dims and errors.
#include <cstdio>
#include <fstream>

#include "engine_test_util.h"

namespace lowbit::engine {
namespace {

using testing::OnnxBuilder;

TEST(ImporterTest, RejectsBytesThatAreNotAProtobuf) {
  const std::string junk = "this is a JPEG, honestly \xff\xd8\xff\xe0";
  auto graph = ImportOnnxBytes(junk.data(), junk.size(), "junk.onnx");
  ASSERT_FALSE(graph.ok());
  EXPECT_EQ(graph.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(graph.status().message().find("junk.onnx"), std::string::npos);
}

TEST(ImporterTest, RejectsEmptyInputAndGraphWithoutNodes) {
  auto empty = ImportOnnxBytes("", 0, "empty.onnx");
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find("empty"), std::string::npos);
  OnnxBuilder builder;
  builder.Input("x", {1, 2}).Output("x");
  auto graph = builder.Import();
  ASSERT_FALSE(graph.ok());
  EXPECT_NE(graph.status().message().find("no graph nodes"), std::string::npos);
}

TEST(ImporterTest, MissingInitializerNamesTheValueAndNode) {
  OnnxBuilder builder;
  builder.Input("x", {1, 2});
  builder.Node("Add", {"x", "bias_that_does_not_exist"}, {"y"}, "add_bias");
  builder.Output("y");
  auto graph = builder.Import();
  ASSERT_FALSE(graph.ok());
  EXPECT_NE(graph.status().message().find("bias_that_does_not_exist"), std::string::npos);
  EXPECT_NE(graph.status().message().find("add_bias"), std::string::npos);
}

TEST(ImporterTest, UnsupportedOpIsAnErrorNamingOpAndNode) {
  OnnxBuilder builder;
  builder.Input("x", {1, 4});
  builder.Node("Hardmax", {"x"}, {"y"}, "the_hardmax");
  builder.Output("y");
  auto model = builder.Compile();
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(model.status().message().find("'Hardmax'"), std::string::npos);
  EXPECT_NE(model.status().message().find("the_hardmax"), std::string::npos);
}

TEST(ImporterTest, RejectsCustomDomains) {
  OnnxBuilder builder;
  builder.Input("x", {1, 4});
  builder.Node("Quant", {"x"}, {"y"}, "q").set_domain("qonnx.custom_op.general");
  builder.Output("y");
  auto graph = builder.Import();
  ASSERT_FALSE(graph.ok());
  EXPECT_NE(graph.status().message().find("qonnx.custom_op.general"), std::string::npos);
}

TEST(ImporterTest, RawDataSizeMismatchIsReported) {
  OnnxBuilder builder;
  builder.Input("x", {1, 2});
  auto* t = builder.proto().mutable_graph()->add_initializer();
  t->set_name("w");
  t->set_data_type(onnx::TensorProto::FLOAT);
  t->add_dims(4);
  t->set_raw_data(std::string(12, '\0'));  // 3 floats for a shape of 4
  builder.Node("Add", {"x", "w"}, {"y"});
  builder.Output("y");
  auto graph = builder.Import();
  ASSERT_FALSE(graph.ok());
  EXPECT_NE(graph.status().message().find("initializer 'w'"), std::string::npos);
  EXPECT_NE(graph.status().message().find("12 bytes"), std::string::npos);
}

// fuzz_onnx_import found dims whose product overflowed int64 before any
// size check (fuzz/regressions/onnx_import/dims-product-overflows-int64.onnx).
TEST(ImporterTest, InitializerDimsWhoseProductPassesTheBoundAreRejected) {
  const std::vector<std::vector<int64_t>> hostile = {
      {518968951439350, 32767},      // the product overflows int64
      {int64_t{1} << 31, 1 << 30},   // no overflow, but x 4 bytes would
      {int64_t{1} << 40, 2},         // just past the bound
  };
  for (const auto& dims : hostile) {
    OnnxBuilder builder;
    builder.Input("x", {1, 2});
    auto* t = builder.proto().mutable_graph()->add_initializer();
    t->set_name("w");
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (int64_t d : dims) t->add_dims(d);
    t->set_raw_data(std::string(4, '\0'));
    builder.Node("Add", {"x", "w"}, {"y"});
    builder.Output("y");
    auto graph = builder.Import();
    ASSERT_FALSE(graph.ok()) << ShapeToString(dims);
    EXPECT_EQ(graph.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(graph.status().message().find("initializer 'w' has shape " + ShapeToString(dims)),
              std::string::npos)
        << graph.status().message();
  }
}

TEST(ImporterTest, ReadsInitializersInEveryStorageForm) {
  OnnxBuilder builder(12);
  builder.Input("x", {-1, 3, 8, 8});
  builder.Floats("raw_floats", {2}, {1.5f, -2.0f}, /*raw=*/true);
  builder.Floats("typed_floats", {2}, {3.0f, 4.25f}, /*raw=*/false);
  builder.Ints("raw_ints", {2}, {7, -9}, /*raw=*/true);
  builder.Ints("typed_ints", {1}, {42}, /*raw=*/false);
  auto* i32 = builder.proto().mutable_graph()->add_initializer();
  i32->set_name("int32s");
  i32->set_data_type(onnx::TensorProto::INT32);
  i32->add_dims(2);
  i32->add_int32_data(5);
  i32->add_int32_data(-6);
  auto* half = builder.proto().mutable_graph()->add_initializer();
  half->set_name("halves");
  half->set_data_type(onnx::TensorProto::FLOAT16);
  half->add_dims(2);
  const uint16_t half_bits[2] = {0x3C00, 0xC100};  // 1.0, -2.5
  half->set_raw_data(std::string(reinterpret_cast<const char*>(half_bits), 4));
  auto& node = builder.Node("Relu", {"x"}, {"y"}, "relu");
  testing::SetInts(node, "some_ints", {1, 2, 3});
  testing::SetFloat(node, "some_float", 0.25f);
  testing::SetString(node, "some_string", "half_pixel");
  builder.Output("y");
  auto graph = builder.Import();
  ASSERT_TRUE(graph.ok()) << graph.status().ToString();
  EXPECT_EQ(graph->opset, 12);
  auto constant = [&](const char* name) { return *graph->values[graph->FindValue(name)].constant; };
  EXPECT_EQ(constant("raw_floats").floats, (std::vector<float>{1.5f, -2.0f}));
  EXPECT_EQ(constant("typed_floats").floats, (std::vector<float>{3.0f, 4.25f}));
  EXPECT_EQ(constant("raw_ints").ints, (std::vector<int64_t>{7, -9}));
  EXPECT_EQ(constant("typed_ints").ints, (std::vector<int64_t>{42}));
  EXPECT_EQ(constant("int32s").ints, (std::vector<int64_t>{5, -6}));
  EXPECT_EQ(constant("int32s").dtype, ir::DataType::kInt32);
  EXPECT_EQ(constant("halves").floats, (std::vector<float>{1.0f, -2.5f}));
  // Symbolic batch becomes -1 until shape inference.
  ASSERT_EQ(graph->inputs.size(), 1u);
  EXPECT_EQ(graph->values[graph->inputs[0]].shape, (Shape{-1, 3, 8, 8}));
  const ir::Node& relu = graph->nodes.at(0);
  EXPECT_EQ(relu.GetInts("some_ints"), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_FLOAT_EQ(relu.GetFloat("some_float", 0), 0.25f);
  EXPECT_EQ(relu.GetString("some_string", ""), "half_pixel");
}

TEST(ImporterTest, ConstantNodesBecomeConstantsAndUnsortedGraphsAreSorted) {
  OnnxBuilder builder;
  builder.Input("x", {1, 2});
  // Consumer listed before its producer.
  builder.Node("Add", {"t", "c"}, {"y"}, "add");
  builder.Node("Relu", {"x"}, {"t"}, "relu");
  auto& constant = builder.Node("Constant", {}, {"c"}, "const");
  testing::SetFloat(constant, "value_float", 2.0f);
  builder.Output("y");
  auto graph = builder.Import();
  ASSERT_TRUE(graph.ok()) << graph.status().ToString();
  ASSERT_EQ(graph->nodes.size(), 2u);
  EXPECT_EQ(graph->nodes[0].op_type, "Relu");
  EXPECT_EQ(graph->nodes[1].op_type, "Add");
  EXPECT_TRUE(graph->values[graph->FindValue("c")].is_constant());
}

TEST(ImporterTest, LoadOnnxReportsMissingFile) {
  auto model = Model::LoadOnnx("/nonexistent/model.onnx");
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), StatusCode::kNotFound);
  EXPECT_NE(model.status().message().find("/nonexistent/model.onnx"), std::string::npos);
}

TEST(ImporterTest, LoadOnnxReadsAFileAndReportsLayers) {
  OnnxBuilder builder;
  builder.Input("x", {-1, 2, 5, 5});
  builder.Floats("w", {4, 2, 3, 3}, testing::RandomFloats(72, 1));
  builder.Floats("b", {4}, {0, 0, 0, 0});
  auto& conv = builder.Node("Conv", {"x", "w", "b"}, {"y"}, "conv");
  testing::SetInts(conv, "pads", {1, 1, 1, 1});
  builder.Output("y");
  const std::string path = ::testing::TempDir() + "/lowbit_importer_test.onnx";
  {
    std::ofstream file(path, std::ios::binary);
    file << builder.Bytes();
  }
  auto model = Model::LoadOnnx(path);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  ASSERT_EQ((*model)->inputs().size(), 1u);
  EXPECT_EQ((*model)->inputs()[0].shape, (Shape{1, 2, 5, 5}));
  EXPECT_EQ((*model)->outputs()[0].name, "y");
  EXPECT_EQ((*model)->outputs()[0].shape, (Shape{1, 4, 5, 5}));
  bool found_conv = false;
  for (const LayerInfo& layer : (*model)->layers()) {
    if (layer.op != "Conv") continue;
    found_conv = true;
    EXPECT_EQ(layer.name, "conv");
    EXPECT_EQ(layer.output_shape, (Shape{1, 4, 5, 5}));
    EXPECT_EQ(layer.macs, 4 * 5 * 5 * 2 * 3 * 3);  // outputs x Cin/group x kH x kW
    EXPECT_EQ(layer.params, 72 + 4);
  }
  EXPECT_TRUE(found_conv);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace lowbit::engine
