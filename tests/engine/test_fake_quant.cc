// Fake quantization: the importer's canonical form for ONNX QDQ, Brevitas
// QCDQ and QONNX (import/fake_quant.h), its refusals, constant folding of
// the two ops, and the lowbit.Quantize / lowbit.Dequantize kernels against
// an independent computation (exact ties, odd zero points, every rounding
// mode, per-axis parameters in NCHW and NHWC storage, 1 and 2 threads).
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <limits>

#include <pthreadpool.h>

#include "engine_test_util.h"
#include "ir/quant_ops.h"
#include "lowbit/engine/npy.h"
#include "ops/kernel.h"
#include "passes/passes.h"

namespace lowbit::engine {
namespace {

using testing::OnnxBuilder;

constexpr int kInt4 = 22, kUInt4 = 21, kFloat8E4M3FN = 17, kFloat4E2M1 = 23;

// An integer initializer in int32_data (int8/uint8/int16/uint16/int32) or as
// packed bytes for the sub-byte types (`packed` = the raw bytes / one byte
// per int32_data entry).
void IntInitializer(OnnxBuilder& b, const std::string& name, int type,
                    const std::vector<int64_t>& dims, const std::vector<int32_t>& values) {
  auto* t = b.proto().mutable_graph()->add_initializer();
  t->set_name(name);
  t->set_data_type(type);
  for (int64_t d : dims) t->add_dims(d);
  for (int32_t v : values) t->add_int32_data(v);
}
void RawInitializer(OnnxBuilder& b, const std::string& name, int type,
                    const std::vector<int64_t>& dims, const std::string& raw) {
  auto* t = b.proto().mutable_graph()->add_initializer();
  t->set_name(name);
  t->set_data_type(type);
  for (int64_t d : dims) t->add_dims(d);
  t->set_raw_data(raw);
}
void TypedInput(OnnxBuilder& b, const std::string& name, int type,
                const std::vector<int64_t>& dims) {
  auto* input = b.proto().mutable_graph()->add_input();
  input->set_name(name);
  auto* tensor_type = input->mutable_type()->mutable_tensor_type();
  tensor_type->set_elem_type(type);
  for (int64_t d : dims) tensor_type->mutable_shape()->add_dim()->set_dim_value(d);
}
// A QONNX node in `domain`.
onnx::NodeProto& Qonnx(OnnxBuilder& b, const std::string& op, const std::vector<std::string>& in,
                       const std::string& out, const std::string& domain, const std::string& name) {
  auto& node = b.Node(op, in, {out}, name);
  node.set_domain(domain);
  return node;
}

std::string DumpOf(const OnnxBuilder& builder) {
  auto graph = builder.Import();
  EXPECT_TRUE(graph.ok()) << graph.status().ToString();
  return graph.ok() ? graph->Dump() : "";
}

Status ImportStatus(const OnnxBuilder& builder) {
  auto graph = builder.Import();
  return graph.ok() ? Status::Ok() : graph.status();
}

void ExpectUnimplemented(const Status& status, const std::vector<std::string>& phrases) {
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), StatusCode::kUnimplemented) << status.ToString();
  for (const std::string& phrase : phrases)
    EXPECT_NE(status.message().find(phrase), std::string::npos)
        << "'" << phrase << "' missing from: " << status.message();
}

// ---- importer: canonical form --------------------------------------------

TEST(FakeQuantImportTest, QdqPairBecomesQuantizeCodesDequantize) {
  OnnxBuilder b(13);
  b.Input("x", {1, 4});
  b.Floats("s", {}, {0.5f});
  IntInitializer(b, "z", onnx::TensorProto::UINT8, {}, {3});
  b.Node("QuantizeLinear", {"x", "s", "z"}, {"q"}, "quant");
  b.Node("DequantizeLinear", {"q", "s", "z"}, {"y"}, "dequant");
  b.Output("y");
  EXPECT_EQ(DumpOf(b),
            "graph opset=13\n"
            "input %x: f32[1,4]\n"
            "const %s: f32[]\n"
            "const %z: u8[]\n"
            "%q: u8[?] = lowbit.Quantize(%x, %s, %z) {qmax=255, qmin=0, rounding=\"half_even\"}\n"
            "%y: f32[?] = lowbit.Dequantize(%q, %s, %z) {qmax=255, qmin=0}\n"
            "output %y: f32[?]\n");
}

TEST(FakeQuantImportTest, PerAxisQuantizeLinearKeepsItsAxis) {
  OnnxBuilder b(13);
  b.Input("x", {1, 3, 2, 2});
  b.Floats("s", {3}, {0.5f, 0.25f, 1.0f});
  IntInitializer(b, "z", onnx::TensorProto::INT8, {3}, {-1, 0, 5});
  testing::SetInt(b.Node("QuantizeLinear", {"x", "s", "z"}, {"q"}, "quant"), "axis", 1);
  b.Node("DequantizeLinear", {"q", "s", "z"}, {"y"}, "dequant");
  b.Output("y");
  auto graph = b.Import();
  ASSERT_TRUE(graph.ok()) << graph.status().ToString();
  ASSERT_EQ(graph->nodes.size(), 2u);
  EXPECT_EQ(graph->nodes[0].op_type, ir::kQuantizeOp);
  EXPECT_EQ(graph->nodes[0].GetInt("axis", -9), 1);
  EXPECT_EQ(graph->nodes[0].GetInt("qmin", 0), -128);
  EXPECT_EQ(graph->nodes[0].GetInt("qmax", 0), 127);
  EXPECT_EQ(graph->nodes[1].GetInt("axis", -9), 1);
  // Shape inference: i8 codes carrying per-axis precision.
  ASSERT_TRUE(passes::InferShapes(&*graph).ok());
  const ir::Value& codes = graph->values[graph->FindValue("q")];
  EXPECT_EQ(codes.dtype, ir::DataType::kInt8);
  EXPECT_EQ(codes.precision.ToString(), "i8(axis=1,3 scales)");
  EXPECT_EQ(codes.precision.zero_points, (std::vector<int32_t>{-1, 0, 5}));
}

TEST(FakeQuantImportTest, QcdqClipNarrowsTheQuantizer) {
  // Brevitas: signed 2-bit activations are int8 codes clipped to [-2, 1].
  OnnxBuilder b(13);
  b.Input("x", {1, 4});
  b.Floats("s", {}, {0.1f});
  IntInitializer(b, "z", onnx::TensorProto::INT8, {}, {0});
  IntInitializer(b, "lo", onnx::TensorProto::INT8, {}, {-2});
  IntInitializer(b, "hi", onnx::TensorProto::INT8, {}, {1});
  b.Node("QuantizeLinear", {"x", "s", "z"}, {"q"}, "quant");
  b.Node("Clip", {"q", "lo", "hi"}, {"c"}, "clip");
  b.Node("DequantizeLinear", {"c", "s", "z"}, {"y"}, "dequant");
  b.Output("y");
  EXPECT_EQ(DumpOf(b),
            "graph opset=13\n"
            "input %x: f32[1,4]\n"
            "const %s: f32[]\n"
            "const %z: i8[]\n"
            "%c: i8[?] = lowbit.Quantize(%x, %s, %z) {qmax=1, qmin=-2, rounding=\"half_even\"}\n"
            "%y: f32[?] = lowbit.Dequantize(%c, %s, %z) {qmax=1, qmin=-2}\n"
            "output %y: f32[?]\n");
}

TEST(FakeQuantImportTest, QcdqTernaryWithClipAttributesAtOpset10) {
  OnnxBuilder b(10);
  b.Input("x", {1, 4});
  b.Floats("s", {}, {0.1f});
  IntInitializer(b, "z", onnx::TensorProto::INT8, {}, {0});
  b.Node("QuantizeLinear", {"x", "s", "z"}, {"q"}, "quant");
  auto& clip = b.Node("Clip", {"q"}, {"c"}, "clip");
  testing::SetFloat(clip, "min", -1.0f);
  testing::SetFloat(clip, "max", 1.0f);
  b.Node("DequantizeLinear", {"c", "s", "z"}, {"y"}, "dequant");
  // The full-range codes are read too: the original Quantize stays for them.
  b.Node("DequantizeLinear", {"q", "s", "z"}, {"y2"}, "dequant2");
  b.Output("y").Output("y2");
  auto graph = b.Import();
  ASSERT_TRUE(graph.ok()) << graph.status().ToString();
  ASSERT_EQ(graph->nodes.size(), 4u);
  const ir::Node& narrowed = graph->nodes[1];
  EXPECT_EQ(narrowed.name, "clip");
  EXPECT_EQ(narrowed.op_type, ir::kQuantizeOp);
  EXPECT_EQ(narrowed.GetInt("qmin", 0), -1);
  EXPECT_EQ(narrowed.GetInt("qmax", 0), 1);
  EXPECT_EQ(graph->nodes[0].GetInt("qmin", 0), -128);
}

TEST(FakeQuantImportTest, IntegerWeightClipFoldsIntoTheConstantAndTheDequantizeStays) {
  OnnxBuilder b(13);
  b.Input("x", {1, 2, 3, 3});
  IntInitializer(b, "w_codes", onnx::TensorProto::INT8, {2, 2, 1, 1}, {-2, 1, 3, -7});
  IntInitializer(b, "lo", onnx::TensorProto::INT8, {}, {-2});
  IntInitializer(b, "hi", onnx::TensorProto::INT8, {}, {1});
  b.Floats("w_scale", {2}, {0.5f, 0.25f});
  IntInitializer(b, "w_zero", onnx::TensorProto::INT8, {2}, {0, 0});
  IntInitializer(b, "b_codes", onnx::TensorProto::INT32, {2}, {40, -8});
  b.Floats("b_scale", {}, {0.125f});
  b.Node("Clip", {"w_codes", "lo", "hi"}, {"w_clipped"}, "wclip");
  testing::SetInt(b.Node("DequantizeLinear", {"w_clipped", "w_scale", "w_zero"}, {"w"}, "wdq"),
                  "axis", 0);
  b.Node("DequantizeLinear", {"b_codes", "b_scale"}, {"bias"}, "bdq");
  b.Node("Conv", {"x", "w", "bias"}, {"y"}, "conv");
  b.Output("y");
  auto graph = b.Import();
  ASSERT_TRUE(graph.ok()) << graph.status().ToString();
  const ir::Value& clipped = graph->values[graph->FindValue("w_clipped")];
  ASSERT_TRUE(clipped.is_constant());
  EXPECT_EQ(clipped.constant->ints, (std::vector<int64_t>{-2, 1, 1, -2}));
  EXPECT_EQ(clipped.dtype, ir::DataType::kInt8);
  ASSERT_EQ(graph->nodes.size(), 3u);  // wdq, bdq, conv: the Clip is gone

  // FoldConstants keeps both Dequantize nodes of integer constants ...
  ASSERT_TRUE(passes::FoldConstants(&*graph).ok());
  int dequantizes = 0;
  for (const ir::Node& node : graph->nodes) dequantizes += node.op_type == ir::kDequantizeOp;
  EXPECT_EQ(dequantizes, 2);
  EXPECT_EQ(clipped.precision.ToString(), "i2(axis=0,2 scales)");
  // ... until asked to fold them.
  ASSERT_TRUE(passes::FoldConstants(&*graph, /*fold_dequantize=*/true).ok());
  ASSERT_EQ(graph->nodes.size(), 1u);
  EXPECT_EQ(graph->values[graph->FindValue("w")].constant->floats,
            (std::vector<float>{-1.0f, 0.5f, 0.25f, -0.5f}));
  EXPECT_EQ(graph->values[graph->FindValue("bias")].constant->floats,
            (std::vector<float>{5.0f, -1.0f}));
}

TEST(FakeQuantImportTest, FloatWeightsQuantizedAsConstantsFoldToCodes) {
  OnnxBuilder b(13);
  b.Input("x", {1, 1, 2, 2});
  b.Floats("w_float", {1, 1, 1, 1}, {0.3f});
  b.Floats("s", {}, {0.25f});
  IntInitializer(b, "z", onnx::TensorProto::INT8, {}, {1});
  b.Node("QuantizeLinear", {"w_float", "s", "z"}, {"wq"}, "wq");
  b.Node("DequantizeLinear", {"wq", "s", "z"}, {"w"}, "wdq");
  b.Node("Conv", {"x", "w"}, {"y"}, "conv");
  b.Output("y");
  auto graph = b.Import();
  ASSERT_TRUE(graph.ok()) << graph.status().ToString();
  ASSERT_TRUE(passes::FoldConstants(&*graph).ok());
  const ir::Value& codes = graph->values[graph->FindValue("wq")];
  ASSERT_TRUE(codes.is_constant());
  EXPECT_EQ(codes.constant->dtype, ir::DataType::kInt8);
  EXPECT_EQ(codes.constant->ints, (std::vector<int64_t>{2}));  // round(1.2) + 1
  ASSERT_EQ(graph->nodes.size(), 2u);
  EXPECT_EQ(graph->nodes[0].op_type, ir::kDequantizeOp);
  // Compiled, the graph runs in float: y = x * (2 - 1) * 0.25.
  auto out = testing::RunModel(b, "x", Tensor({1, 1, 2, 2}, {4, -8, 1, 0}));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].tensor.values(), (std::vector<float>{1, -2, 0.25f, 0}));
}

TEST(FakeQuantImportTest, QonnxQuantInEveryDomain) {
  for (const char* domain :
       {"qonnx.custom_op.general", "onnx.brevitas", "finn.custom_op.general"}) {
    OnnxBuilder b(11);
    b.Input("x", {1, 4});
    b.Floats("s", {}, {0.5f});
    b.Floats("z", {}, {3.0f});
    b.Floats("bits", {}, {4.0f});
    auto& q = Qonnx(b, "Quant", {"x", "s", "z", "bits"}, "y", domain, "quant");
    testing::SetInt(q, "signed", 1);
    testing::SetInt(q, "narrow", 1);
    testing::SetString(q, "rounding_mode", "HALF_UP");
    b.Output("y");
    EXPECT_EQ(DumpOf(b),
              "graph opset=11\n"
              "input %x: f32[1,4]\n"
              "const %s: f32[]\n"
              "const %z: f32[]\n"
              "%y/codes: i8[?] = lowbit.Quantize(%x, %s, %z) {qmax=7, qmin=-7, "
              "rounding=\"half_away\", zero_point_first=1}\n"
              "%y: f32[?] = lowbit.Dequantize(%y/codes, %s, %z) {qmax=7, qmin=-7}\n"
              "output %y: f32[?]\n")
        << domain;
  }
}

TEST(FakeQuantImportTest, QonnxPerChannelScaleBecomesAnAxis) {
  OnnxBuilder b(11);
  b.Input("x", {1, 2, 3, 3});
  b.Floats("w", {3, 2, 1, 1}, {0.1f, -0.2f, 0.3f, 0.05f, -0.6f, 0.25f});
  b.Floats("ws", {3, 1, 1, 1}, {0.1f, 0.05f, 0.2f});
  b.Floats("z", {}, {0.0f});
  b.Floats("bits", {}, {2.0f});
  auto& q = Qonnx(b, "IntQuant", {"w", "ws", "z", "bits"}, "wq", "onnx.brevitas", "wquant");
  testing::SetInt(q, "signed", 0);
  testing::SetInt(q, "narrow", 0);
  b.Node("Conv", {"x", "wq"}, {"y"}, "conv");
  b.Output("y");
  auto graph = b.Import();
  ASSERT_TRUE(graph.ok()) << graph.status().ToString();
  const ir::Node& quantize = graph->nodes[0];
  EXPECT_EQ(quantize.GetInt("axis", 0), -4);  // from the end, as QONNX broadcasts
  EXPECT_EQ(quantize.GetInt("qmin", -1), 0);
  EXPECT_EQ(quantize.GetInt("qmax", -1), 3);
  const ir::Value& scale = graph->values[quantize.inputs[1]];
  EXPECT_EQ(scale.shape, (Shape{3}));
  EXPECT_EQ(scale.name, "ws/per_axis");
  ASSERT_TRUE(passes::FoldConstants(&*graph).ok());
  EXPECT_EQ(graph->nodes[0].op_type, ir::kDequantizeOp);
  EXPECT_EQ(graph->nodes[0].GetInt("axis", -9), 0);  // normalised by shape inference
  const ir::Value& codes = graph->values[graph->FindValue("wq/codes")];
  // round(w / s) per output channel, clamped to [0, 3].
  EXPECT_EQ(codes.constant->ints, (std::vector<int64_t>{1, 0, 3, 1, 0, 1}));
  EXPECT_EQ(codes.dtype, ir::DataType::kUInt8);
}

TEST(FakeQuantImportTest, BipolarQuantAndOneBitSignedQuantAreBipolar) {
  OnnxBuilder b(11);
  b.Input("x", {1, 4});
  b.Floats("s", {}, {0.5f});
  b.Floats("z", {}, {0.0f});
  b.Floats("one", {}, {1.0f});
  Qonnx(b, "BipolarQuant", {"x", "s"}, "y", "qonnx.custom_op.general", "bipolar");
  auto& q = Qonnx(b, "Quant", {"y", "s", "z", "one"}, "y2", "qonnx.custom_op.general", "q1");
  testing::SetInt(q, "signed", 1);
  testing::SetInt(q, "narrow", 0);
  b.Output("y2");
  EXPECT_EQ(DumpOf(b),
            "graph opset=11\n"
            "input %x: f32[1,4]\n"
            "const %s: f32[]\n"
            "const %z: f32[]\n"
            "%y/codes: i8[?] = lowbit.Quantize(%x, %s) {bipolar=1, qmax=1, qmin=-1, "
            "rounding=\"half_even\"}\n"
            "%y: f32[?] = lowbit.Dequantize(%y/codes, %s) {qmax=1, qmin=-1}\n"
            "%y2/codes: i8[?] = lowbit.Quantize(%y, %s, %z) {bipolar=1, qmax=1, qmin=-1, "
            "rounding=\"half_even\", zero_point_first=1}\n"
            "%y2: f32[?] = lowbit.Dequantize(%y2/codes, %s, %z) {qmax=1, qmin=-1}\n"
            "output %y2: f32[?]\n");
}

TEST(FakeQuantImportTest, SubByteInitializersUnpackLowBitsFirst) {
  OnnxBuilder b(21);
  b.Input("x", {1, 5});
  // int4 [1, -2, 7, -8, 3] as raw bytes: 0xE1, 0x87, 0x03.
  RawInitializer(b, "i4", kInt4, {5}, std::string("\xE1\x87\x03", 3));
  // uint4 [15, 0, 9] as one packed byte per int32_data entry: 0x0F, 0x09.
  IntInitializer(b, "u4", kUInt4, {3}, {0x0F, 0x09});
  RawInitializer(b, "i4_zero", kInt4, {}, std::string("\x01", 1));
  b.Floats("s", {}, {2.0f});
  b.Node("DequantizeLinear", {"i4", "s", "i4_zero"}, {"w"}, "dq4");
  b.Node("DequantizeLinear", {"u4", "s"}, {"u"}, "dqu4");
  b.Node("Add", {"x", "w"}, {"y"}, "add");
  b.Output("y").Output("u");
  auto graph = b.Import();
  ASSERT_TRUE(graph.ok()) << graph.status().ToString();
  const ir::Value& i4 = graph->values[graph->FindValue("i4")];
  EXPECT_EQ(i4.dtype, ir::DataType::kInt8);
  EXPECT_EQ(i4.constant->ints, (std::vector<int64_t>{1, -2, 7, -8, 3}));
  const ir::Value& u4 = graph->values[graph->FindValue("u4")];
  EXPECT_EQ(u4.dtype, ir::DataType::kUInt8);
  EXPECT_EQ(u4.constant->ints, (std::vector<int64_t>{15, 0, 9}));
  EXPECT_EQ(graph->values[graph->FindValue("i4_zero")].constant->ints, (std::vector<int64_t>{1}));
  ASSERT_TRUE(passes::FoldConstants(&*graph).ok());
  EXPECT_EQ(i4.precision.ToString(), "i4(s=2,z=1)");
  EXPECT_EQ(u4.precision.ToString(), "u4(s=2,z=0)");
  ASSERT_TRUE(passes::FoldConstants(&*graph, true).ok());
  EXPECT_EQ(graph->values[graph->FindValue("w")].constant->floats,
            (std::vector<float>{0, -6, 12, -18, 4}));

  // A truncated packed tensor names the initializer and the sizes.
  OnnxBuilder bad(21);
  bad.Input("x", {1, 5});
  RawInitializer(bad, "i4", kInt4, {5}, std::string("\xE1\x87", 2));
  bad.Floats("s", {}, {2.0f});
  bad.Node("DequantizeLinear", {"i4", "s"}, {"w"}, "dq4");
  bad.Node("Add", {"x", "w"}, {"y"}, "add");
  bad.Output("y");
  Status status = ImportStatus(bad);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("initializer 'i4'"), std::string::npos) << status.ToString();
  EXPECT_NE(status.message().find("need 3"), std::string::npos) << status.ToString();
}

// ---- importer: refusals ---------------------------------------------------

TEST(FakeQuantImportTest, RefusesBlockedFloat8AndFloat4NamingTheNode) {
  {
    OnnxBuilder b(21);
    b.Input("x", {1, 4});
    b.Floats("s", {1, 2}, {0.5f, 0.25f});
    testing::SetInt(b.Node("QuantizeLinear", {"x", "s"}, {"y"}, "blocked_q"), "block_size", 2);
    b.Output("y");
    ExpectUnimplemented(ImportStatus(b), {"QuantizeLinear node 'blocked_q'", "block_size = 2",
                                          "per-tensor and per-axis"});
  }
  {
    OnnxBuilder b(19);
    b.Input("x", {1, 4});
    b.Floats("s", {}, {0.5f});
    RawInitializer(b, "z", kFloat8E4M3FN, {}, std::string(1, '\0'));
    b.Node("QuantizeLinear", {"x", "s", "z"}, {"y"}, "fp8_q");
    b.Output("y");
    ExpectUnimplemented(ImportStatus(b),
                        {"QuantizeLinear node 'fp8_q'", "float8 e4m3fn", "integer codes"});
  }
  {
    OnnxBuilder b(19);
    TypedInput(b, "x", kFloat8E4M3FN, {1, 4});
    b.Floats("s", {}, {0.5f});
    b.Node("DequantizeLinear", {"x", "s"}, {"y"}, "fp8_dq");
    b.Output("y");
    ExpectUnimplemented(ImportStatus(b), {"DequantizeLinear node 'fp8_dq'", "float8 e4m3fn"});
  }
  {
    OnnxBuilder b(23);
    TypedInput(b, "x", kFloat4E2M1, {1, 4});
    b.Floats("s", {}, {0.5f});
    b.Node("DequantizeLinear", {"x", "s"}, {"y"}, "fp4_dq");
    b.Output("y");
    ExpectUnimplemented(ImportStatus(b), {"DequantizeLinear node 'fp4_dq'", "float4 e2m1"});
  }
}

TEST(FakeQuantImportTest, RefusesParametersLowbitCannotHonour) {
  auto quant = [](float bits, float zero, const std::string& scale_name) {
    OnnxBuilder b(11);
    b.Input("x", {1, 4});
    b.Input("runtime_scale", {1});
    b.Floats("s", {}, {0.5f});
    b.Floats("z", {}, {zero});
    b.Floats("bits", {}, {bits});
    auto& q = Qonnx(b, "Quant", {"x", scale_name, "z", "bits"}, "y", "qonnx.custom_op.general",
                    "the_quant");
    testing::SetInt(q, "signed", 1);
    testing::SetInt(q, "narrow", 0);
    b.Output("y");
    return ImportStatus(b);
  };
  ExpectUnimplemented(quant(2.5f, 0, "s"), {"Quant node 'the_quant'", "qonnx.custom_op.general",
                                            "bitwidth", "integer bit width"});
  ExpectUnimplemented(quant(4, 0.5f, "s"), {"the_quant", "non-integer zero point"});
  ExpectUnimplemented(quant(4, 0, "runtime_scale"), {"the_quant", "computed at run time"});
  ExpectUnimplemented(quant(1, 1, "s"), {"the_quant", "bipolar", "zero point"});
  {  // A float16 scale makes ONNX divide in float16.
    OnnxBuilder b(13);
    b.Input("x", {1, 4});
    RawInitializer(b, "s", onnx::TensorProto::FLOAT16, {}, std::string("\x00\x38", 2));
    b.Node("QuantizeLinear", {"x", "s"}, {"y"}, "half_q");
    b.Output("y");
    ExpectUnimplemented(ImportStatus(b), {"half_q", "float16", "float32"});
  }
  {  // QONNX ops outside the quantizers stay refused, naming the domain.
    OnnxBuilder b(11);
    b.Input("x", {1, 4});
    Qonnx(b, "MultiThreshold", {"x"}, "y", "qonnx.custom_op.general", "mt");
    b.Output("y");
    ExpectUnimplemented(ImportStatus(b), {"MultiThreshold", "qonnx.custom_op.general"});
  }
}

TEST(FakeQuantImportTest, RefusesAQuantizerOrClipWithoutItsDataInputOrOutput) {
  // fuzz/regressions/onnx_import/clip-without-inputs.onnx: a Clip with no
  // inputs read input 0 of an empty list.
  auto import = [](const std::string& op, const std::vector<std::string>& in,
                   const std::vector<std::string>& out) {
    OnnxBuilder b(13);
    b.Input("x", {1, 4});
    b.Floats("s", {}, {0.5f});
    b.Node(op, in, out, "the_node");
    b.Output(out.empty() ? "x" : out[0]);
    return ImportStatus(b);
  };
  for (const Status& status :
       {import("Clip", {}, {"y"}), import("QuantizeLinear", {"", "s"}, {"y"}),
        import("Clip", {""}, {"y"})}) {
    ASSERT_FALSE(status.ok());
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status.ToString();
    EXPECT_NE(status.message().find("the_node"), std::string::npos) << status.message();
    EXPECT_NE(status.message().find("needs its data input and its output"), std::string::npos)
        << status.message();
  }
}

// ---- kernels against an independent computation ---------------------------

// Runs `builder`'s graph on the kernels as imported, folded and laid out,
// without the lowering pass (which may replace Quantize / Dequantize by
// integer ops): what the float path computes. One float32 input of `batch`
// frames in logical order; returns output 0 as floats in logical order.
ir::Graph FloatPathGraph(const OnnxBuilder& builder) {
  auto imported = builder.Import();
  EXPECT_TRUE(imported.ok()) << imported.status().ToString();
  if (!imported.ok()) return {};
  ir::Graph graph = std::move(imported).value();
  for (Status status : {passes::FoldConstants(&graph, true), passes::EliminateDeadNodes(&graph),
                        passes::AssignLayouts(&graph), passes::EliminateDeadNodes(&graph)})
    EXPECT_TRUE(status.ok()) << status.ToString();
  return graph;
}

std::vector<float> RunKernels(const OnnxBuilder& builder, const std::vector<float>& input,
                              int64_t batch, int threads = 1) {
  ir::Graph graph = FloatPathGraph(builder);
  if (graph.inputs.empty()) return {};
  std::vector<std::shared_ptr<std::vector<uint8_t>>> buffers(graph.values.size());
  auto buffer = [&](int id) {
    if (!buffers[id]) {
      const ir::Value& v = graph.values[id];
      buffers[id] = std::make_shared<std::vector<uint8_t>>(
          static_cast<size_t>(NumElements(v.shape) * batch * ir::DataTypeSize(v.dtype)) + 64);
    }
    return buffers[id]->data();
  };
  const ir::Value& in = graph.values[graph.inputs.at(0)];
  EXPECT_EQ(in.dtype, ir::DataType::kFloat32);
  EXPECT_EQ(static_cast<int64_t>(input.size()), NumElements(in.shape) * batch);
  std::memcpy(buffer(graph.inputs[0]), input.data(), input.size() * sizeof(float));
  pthreadpool_t pool = threads > 1 ? pthreadpool_create(threads) : nullptr;
  for (const ir::Node& node : graph.nodes) {
    if (ops::IsViewOp(node)) {
      buffers[node.outputs[0]] = buffers[node.inputs[0]];
      continue;
    }
    auto kernel = ops::CreateKernel(graph, node);
    EXPECT_TRUE(kernel.ok()) << kernel.status().ToString();
    if (!kernel.ok()) break;
    std::vector<const void*> ins;
    std::vector<void*> outs;
    for (int id : node.inputs) {
      const ir::Value* v = id == ir::kNoValue ? nullptr : &graph.values[id];
      ins.push_back(v == nullptr              ? nullptr
                    : !v->is_constant()       ? buffer(id)
                    : v->constant->is_float() ? v->constant->floats.data()
                    : v->constant->dtype == ir::DataType::kPacked
                        ? static_cast<const void*>(v->constant->bytes.data())
                        : nullptr);
    }
    for (int id : node.outputs) outs.push_back(buffer(id));
    std::vector<uint8_t> workspace((*kernel)->workspace_bytes(batch) + 64);
    ops::KernelContext context;
    context.batch = batch;
    context.threadpool = pool;
    context.workspace = workspace.data();
    Status status = (*kernel)->Run(context, ins.data(), outs.data());
    EXPECT_TRUE(status.ok()) << status.ToString();
  }
  if (pool != nullptr) pthreadpool_destroy(pool);
  const int out = graph.outputs.at(0);
  const ir::Value& v = graph.values[out];
  EXPECT_TRUE(v.storage_perm.empty());
  std::vector<float> result(NumElements(v.shape) * batch);
  const uint8_t* data = buffer(out);
  for (size_t i = 0; i < result.size(); ++i) {
    switch (v.dtype) {
      case ir::DataType::kFloat32:
        result[i] = reinterpret_cast<const float*>(data)[i];
        break;
      case ir::DataType::kInt32:
        result[i] = reinterpret_cast<const int32_t*>(data)[i];
        break;
      case ir::DataType::kInt8:
        result[i] = reinterpret_cast<const int8_t*>(data)[i];
        break;
      case ir::DataType::kUInt8:
        result[i] = data[i];
        break;
      default:
        ADD_FAILURE() << "output dtype " << ir::DataTypeName(v.dtype);
    }
  }
  return result;
}

// Rounds a tie-free or exactly-tied double the way each mode defines it.
double Reference(ir::Rounding mode, double v) {
  const double fl = std::floor(v), frac = v - fl;
  const bool tie = frac == 0.5;
  switch (mode) {
    case ir::Rounding::kHalfEven:
      return tie ? (std::fmod(fl, 2) == 0 ? fl : fl + 1) : std::floor(v + 0.5);
    case ir::Rounding::kHalfUp:
      return tie ? fl + 1 : std::floor(v + 0.5);
    case ir::Rounding::kHalfDown:
      return tie ? fl : std::floor(v + 0.5);
    case ir::Rounding::kHalfAway:
      return tie ? (v > 0 ? fl + 1 : fl) : std::floor(v + 0.5);
    case ir::Rounding::kHalfToZero:
      return tie ? (v > 0 ? fl : fl + 1) : std::floor(v + 0.5);
    case ir::Rounding::kFloor:
      return fl;
    case ir::Rounding::kCeil:
      return std::ceil(v);
    case ir::Rounding::kToZero:
      return std::trunc(v);
    case ir::Rounding::kAwayFromZero:
      return v > 0 ? std::ceil(v) : std::floor(v);
  }
  return 0;
}

// The float path's kernels (RunKernels) and the whole compiled pipeline
// (lowering included) on the same input; both must agree exactly. Returns
// the kernels' output.
std::vector<float> RunBothWays(const OnnxBuilder& builder, const Shape& shape,
                               const std::vector<float>& input, int threads = 1) {
  const std::vector<float> kernels = RunKernels(builder, input, shape[0], threads);
  auto compiled = testing::RunModel(builder, "x", Tensor(shape, input), threads);
  EXPECT_EQ(compiled.size(), 1u);
  if (compiled.size() == 1) {
    EXPECT_EQ(compiled[0].tensor.values().size(), kernels.size());
    for (size_t i = 0; i < kernels.size() && i < compiled[0].tensor.values().size(); ++i)
      if (kernels[i] != compiled[0].tensor.values()[i]) {
        ADD_FAILURE() << "compiled output " << compiled[0].tensor.values()[i]
                      << " differs from the float path's " << kernels[i] << " at " << i;
        break;
      }
  }
  return kernels;
}

struct QonnxMode {
  const char* name;
  ir::Rounding rounding;
};
constexpr QonnxMode kQonnxModes[] = {
    {"ROUND", ir::Rounding::kHalfEven},   {"HALF_EVEN", ir::Rounding::kHalfEven},
    {"HALF_UP", ir::Rounding::kHalfAway}, {"HALF_DOWN", ir::Rounding::kHalfToZero},
    {"UP", ir::Rounding::kAwayFromZero},  {"DOWN", ir::Rounding::kToZero},
    {"FLOOR", ir::Rounding::kFloor},      {"CEIL", ir::Rounding::kCeil},
};

// Inputs x = (k + 0.5) * s (exact ties: s is a power of two) and a few
// non-ties, for k across and beyond the code range.
std::vector<float> TieInputs(float scale, int count) {
  std::vector<float> x;
  for (int i = 0; i < count; ++i) {
    const int k = i - count / 2;
    x.push_back(i % 4 == 3 ? (k + 0.3f) * scale : (k + 0.5f) * scale);
  }
  return x;
}

TEST(QuantizeKernelTest, QonnxEveryRoundingModeOnTiesWithAnOddZeroPoint) {
  const float scale = 0.25f, zero = 3.0f;
  const int64_t qmin = -8, qmax = 7;  // signed 4 bits
  const std::vector<float> x = TieInputs(scale, 48);
  for (const QonnxMode& mode : kQonnxModes) {
    for (int threads : {1, 2}) {
      OnnxBuilder b(11);
      b.Input("x", {1, 48});
      b.Floats("s", {}, {scale});
      b.Floats("z", {}, {zero});
      b.Floats("bits", {}, {4.0f});
      auto& q = Qonnx(b, "Quant", {"x", "s", "z", "bits"}, "y", "qonnx.custom_op.general", "q");
      testing::SetInt(q, "signed", 1);
      testing::SetInt(q, "narrow", 0);
      testing::SetString(q, "rounding_mode", mode.name);
      b.Output("y");
      const std::vector<float> out = RunBothWays(b, {1, 48}, x, threads);
      ASSERT_EQ(out.size(), x.size());
      for (size_t i = 0; i < x.size(); ++i) {
        // QONNX: clamp(x / s + z), rounded, minus z, times s.
        const double v = std::clamp(static_cast<double>(x[i]) / scale + zero,
                                    static_cast<double>(qmin), static_cast<double>(qmax));
        const double expected = (Reference(mode.rounding, v) - zero) * scale;
        ASSERT_EQ(out[i], static_cast<float>(expected))
            << mode.name << " x=" << x[i] << " threads=" << threads;
      }
    }
  }
}

constexpr ir::Rounding kAllModes[] = {
    ir::Rounding::kHalfEven, ir::Rounding::kHalfUp,     ir::Rounding::kHalfDown,
    ir::Rounding::kHalfAway, ir::Rounding::kFloor,      ir::Rounding::kCeil,
    ir::Rounding::kToZero,   ir::Rounding::kHalfToZero, ir::Rounding::kAwayFromZero};

// x -> lowbit.Quantize -> [lowbit.Dequantize] with the canonical ops written
// straight into the file (the importer passes lowbit.* ops through).
OnnxBuilder CanonicalModel(int64_t n, float scale, int32_t zero, int64_t qmin, int64_t qmax,
                           ir::Rounding rounding, bool zero_point_first, int64_t code_offset,
                           bool dequantize) {
  OnnxBuilder b(13);
  b.Input("x", {1, n});
  b.Floats("s", {}, {scale});
  b.Floats("z", {}, {static_cast<float>(zero)});
  auto attributes = [&](onnx::NodeProto& node, bool quantize) {
    if (quantize) {
      testing::SetInt(node, "qmin", qmin);
      testing::SetInt(node, "qmax", qmax);
      testing::SetString(node, "rounding", ir::RoundingName(rounding));
      testing::SetInt(node, "zero_point_first", zero_point_first);
    }
    testing::SetInt(node, "code_offset", code_offset);
  };
  attributes(b.Node(ir::kQuantizeOp, {"x", "s", "z"}, {"q"}, "quantize"), true);
  if (dequantize)
    attributes(b.Node(ir::kDequantizeOp, {"q", "s", "z"}, {"y"}, "dequantize"), false);
  b.Output(dequantize ? "y" : "q");
  return b;
}

TEST(QuantizeKernelTest, CanonicalOpsEveryRoundingModeZeroPointOrderAndCodeOffset) {
  const float scale = 0.125f;
  const int32_t zero = -5;
  const int64_t qmin = -16, qmax = 15;
  std::vector<float> x = TieInputs(scale, 80);
  x.push_back(std::numeric_limits<float>::quiet_NaN());  // -> code of 0
  for (ir::Rounding mode : kAllModes)
    for (bool first : {false, true})
      for (int64_t offset : {int64_t{0}, qmin}) {
        const std::string what = std::string(ir::RoundingName(mode)) +
                                 " zero_point_first=" + std::to_string(first) +
                                 " code_offset=" + std::to_string(offset);
        auto expected_code = [&](float v) -> double {
          if (std::isnan(v)) return std::clamp<double>(0, qmin, qmax) - offset;
          const double t = static_cast<double>(v) / scale;
          const double r = first ? Reference(mode, t + zero) : Reference(mode, t) + zero;
          return std::clamp<double>(r, qmin, qmax) - offset;
        };
        const std::vector<float> codes = RunKernels(
            CanonicalModel(81, scale, zero, qmin, qmax, mode, first, offset, false), x, 1, 2);
        const std::vector<float> values = RunKernels(
            CanonicalModel(81, scale, zero, qmin, qmax, mode, first, offset, true), x, 1);
        ASSERT_EQ(codes.size(), x.size());
        ASSERT_EQ(values.size(), x.size());
        for (size_t i = 0; i < x.size(); ++i) {
          const double code = expected_code(x[i]);
          ASSERT_EQ(codes[i], static_cast<float>(code)) << what << " x=" << x[i];
          ASSERT_EQ(values[i], static_cast<float>((code + offset - zero) * scale))
              << what << " x=" << x[i];
        }
      }
}

TEST(QuantizeKernelTest, WideCodeRangesTakeTheReferencePathWithTheSameResults) {
  // i32 codes over the whole int32 range (as Trunc makes) against the same
  // graph at 16 bits, which runs the float fast path.
  const float scale = 0.25f;
  std::vector<float> x = TieInputs(scale, 64);
  x.push_back(3e9f);
  x.push_back(-3e9f);
  for (ir::Rounding mode : kAllModes) {
    const std::vector<float> wide =
        RunKernels(CanonicalModel(66, scale, 9, INT32_MIN, INT32_MAX, mode, true, 0, false), x, 1);
    const std::vector<float> narrow =
        RunKernels(CanonicalModel(66, scale, 9, -32768, 32767, mode, true, 0, false), x, 1);
    ASSERT_EQ(wide.size(), x.size());
    ASSERT_EQ(narrow.size(), x.size());
    for (size_t i = 0; i + 2 < x.size(); ++i)
      ASSERT_EQ(wide[i], narrow[i]) << ir::RoundingName(mode) << " x=" << x[i];
    EXPECT_EQ(wide[x.size() - 2], static_cast<float>(INT32_MAX));
    EXPECT_EQ(wide[x.size() - 1], static_cast<float>(INT32_MIN));
  }
}

TEST(QuantizeKernelTest, HalfAwayFollowsQonnxFloat32Arithmetic) {
  // qonnx's HALF_UP is sign(v) * floor(|v| + 0.5) in float32: the sum
  // rounds 0.5 - 2^-25 up to 1.
  const float just_below_half = std::nextafter(0.5f, 0.0f);
  const std::vector<float> x = {just_below_half, -just_below_half, 0.5f, -0.5f, 0.25f, -1.5f};
  const std::vector<float> codes =
      RunKernels(CanonicalModel(6, 1.0f, 0, -8, 7, ir::Rounding::kHalfAway, true, 0, false), x, 1);
  EXPECT_EQ(codes, (std::vector<float>{1, -1, 1, -1, 0, -2}));
  ir::QuantParams params;
  params.scales = {1.0f};
  params.zero_points = {0.0f};
  params.qmin = -8;
  params.qmax = 7;
  params.rounding = ir::Rounding::kHalfAway;
  params.zero_point_first = true;
  EXPECT_EQ(params.QuantizeValue(just_below_half, 0), 1);
}

TEST(QuantizeKernelTest, OnnxRoundsBeforeAddingTheZeroPoint) {
  // An odd zero point on a tie: ONNX gives round_half_even(k + 0.5) + z,
  // QONNX's ROUND round_half_even(k + 0.5 + z); lone QuantizeLinear codes.
  const float scale = 0.5f;
  const std::vector<float> x = TieInputs(scale, 40);
  OnnxBuilder b(13);
  b.Input("x", {1, 40});
  b.Floats("s", {}, {scale});
  IntInitializer(b, "z", onnx::TensorProto::UINT8, {}, {7});
  b.Node("QuantizeLinear", {"x", "s", "z"}, {"q"}, "quant");
  b.Output("q");
  const std::vector<float> out = RunBothWays(b, {1, 40}, x);
  ASSERT_EQ(out.size(), x.size());
  int differs_from_qonnx = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double t = static_cast<double>(x[i]) / scale;
    const double onnx = std::clamp(Reference(ir::Rounding::kHalfEven, t) + 7, 0.0, 255.0);
    const double qonnx = std::clamp(Reference(ir::Rounding::kHalfEven, t + 7), 0.0, 255.0);
    ASSERT_EQ(out[i], static_cast<float>(onnx)) << "x=" << x[i];
    differs_from_qonnx += onnx != qonnx;
  }
  EXPECT_GT(differs_from_qonnx, 10);  // the ties tell the two conventions apart
}

// x -> MaxPool(1x1) [NHWC storage] -> per-channel Quantize -> Dequantize.
OnnxBuilder PerChannelModel(int64_t channels, int64_t h, int64_t w, bool nhwc,
                            const std::vector<float>& scales, const std::vector<int32_t>& zeros,
                            int code_type) {
  OnnxBuilder b(13);
  b.Input("x", {-1, channels, h, w});
  std::string source = "x";
  if (nhwc) {
    auto& pool = b.Node("MaxPool", {"x"}, {"pooled"}, "pool");
    testing::SetInts(pool, "kernel_shape", {1, 1});
    source = "pooled";
  }
  b.Floats("s", {channels}, scales);
  IntInitializer(b, "z", code_type, {channels}, zeros);
  testing::SetInt(b.Node("QuantizeLinear", {source, "s", "z"}, {"q"}, "quant"), "axis", 1);
  testing::SetInt(b.Node("DequantizeLinear", {"q", "s", "z"}, {"y"}, "dequant"), "axis", 1);
  b.Output("y");
  return b;
}

TEST(QuantizeKernelTest, PerAxisInNchwAndNhwcStorageAndABatch) {
  const int64_t c = 5, h = 3, w = 2, batch = 2;
  const std::vector<float> scales = {0.5f, 0.25f, 1.0f, 0.125f, 2.0f};
  const std::vector<int32_t> zeros = {-3, 0, 5, 127, -128};
  const int64_t frame = c * h * w;
  std::vector<float> x;
  for (int64_t i = 0; i < batch * frame; ++i) {
    const int64_t channel = (i / (h * w)) % c;
    x.push_back((static_cast<float>(i % 23) - 11.5f) * scales[channel]);  // ties and saturation
  }
  x[3] = std::numeric_limits<float>::infinity();
  x[4] = -std::numeric_limits<float>::infinity();
  for (bool nhwc : {false, true}) {
    for (int threads : {1, 2}) {
      OnnxBuilder b = PerChannelModel(c, h, w, nhwc, scales, zeros, onnx::TensorProto::INT8);
      // The Quantize really runs on NHWC storage when a MaxPool precedes it.
      const ir::Graph graph = FloatPathGraph(b);
      int quantizers = 0;
      for (const ir::Node& node : graph.nodes) {
        if (node.op_type != ir::kQuantizeOp) continue;
        ++quantizers;
        EXPECT_EQ(graph.values[node.inputs[0]].storage_perm,
                  nhwc ? (std::vector<int>{0, 2, 3, 1}) : std::vector<int>{});
      }
      EXPECT_EQ(quantizers, 1);
      const std::vector<float> out = RunBothWays(b, {batch, c, h, w}, x, threads);
      ASSERT_EQ(out.size(), x.size());
      for (int64_t i = 0; i < batch * frame; ++i) {
        const int64_t channel = (i / (h * w)) % c;
        const double t = static_cast<double>(x[i]) / scales[channel];
        const double q = std::clamp(
            Reference(ir::Rounding::kHalfEven, std::clamp(t, -1e9, 1e9)) + zeros[channel], -128.0,
            127.0);
        ASSERT_EQ(out[i], static_cast<float>((q - zeros[channel]) * scales[channel]))
            << "i=" << i << " nhwc=" << nhwc << " threads=" << threads;
      }
    }
  }
}

TEST(QuantizeKernelTest, WideChannelsAndLongSpansMatchTheReferenceFormula) {
  // 40 channels of 16x16 (span mode in NCHW, table mode in NHWC) with uint8
  // codes; compared with QuantParams' per-element reference formula.
  const int64_t c = 40, h = 16, w = 16;
  std::vector<float> scales;
  std::vector<int32_t> zeros;
  for (int64_t i = 0; i < c; ++i) {
    scales.push_back(0.01f * static_cast<float>(i + 1));
    zeros.push_back(static_cast<int32_t>((i * 37) % 256));
  }
  const std::vector<float> x = testing::RandomFloats(c * h * w, 7, -3, 3);
  ir::QuantParams reference;
  reference.scales = scales;
  reference.zero_points.assign(zeros.begin(), zeros.end());
  reference.qmin = 0;
  reference.qmax = 255;
  for (bool nhwc : {false, true}) {
    OnnxBuilder b = PerChannelModel(c, h, w, nhwc, scales, zeros, onnx::TensorProto::UINT8);
    const std::vector<float> out = RunBothWays(b, {1, c, h, w}, x, 2);
    ASSERT_EQ(out.size(), x.size());
    for (int64_t i = 0; i < c * h * w; ++i) {
      const int64_t channel = i / (h * w);
      const float expected =
          reference.DequantizeValue(reference.QuantizeValue(x[i], channel), channel);
      ASSERT_EQ(out[i], expected) << "i=" << i << " nhwc=" << nhwc;
    }
  }
}

TEST(QuantizeKernelTest, BipolarSignsAndTernaryCodes) {
  const std::vector<float> x = {-2.0f, -0.0f, 0.0f, 1e-30f, -1e-30f, 0.7f, -0.2f, 3.0f};
  OnnxBuilder b(11);
  b.Input("x", {1, 8});
  b.Floats("s", {}, {0.75f});
  Qonnx(b, "BipolarQuant", {"x", "s"}, "y", "finn.custom_op.general", "bipolar");
  b.Output("y");
  EXPECT_EQ(RunBothWays(b, {1, 8}, x),
            (std::vector<float>{-0.75f, 0.75f, 0.75f, 0.75f, -0.75f, 0.75f, -0.75f, 0.75f}));

  // Ternary (signed 2-bit narrow): codes -1, 0, 1 only.
  OnnxBuilder t(11);
  t.Input("x", {1, 8});
  t.Floats("s", {}, {0.5f});
  t.Floats("z", {}, {0.0f});
  t.Floats("bits", {}, {2.0f});
  auto& q = Qonnx(t, "Quant", {"x", "s", "z", "bits"}, "y", "qonnx.custom_op.general", "ternary");
  testing::SetInt(q, "signed", 1);
  testing::SetInt(q, "narrow", 1);
  t.Output("y");
  EXPECT_EQ(RunBothWays(t, {1, 8}, x), (std::vector<float>{-0.5f, 0, 0, 0, 0, 0.5f, 0, 0.5f}));
}

TEST(QuantizeKernelTest, DequantizesIntegerGraphInputs) {
  // int32 codes (a bias) and int16 codes (held as i32) from graph inputs.
  OnnxBuilder b(13);
  TypedInput(b, "codes", onnx::TensorProto::INT16, {1, 4});
  b.Floats("s", {}, {0.5f});
  IntInitializer(b, "z", onnx::TensorProto::INT16, {}, {-1024});
  b.Node("DequantizeLinear", {"codes", "s", "z"}, {"y"}, "dq16");
  b.Output("y");
  auto out = testing::RunModel(b, "codes", Tensor({1, 4}, {-300, -30, -1025, 1270}));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].tensor.values(), (std::vector<float>{362, 497, -0.5f, 1147}));

  OnnxBuilder u(13);
  TypedInput(u, "codes", onnx::TensorProto::UINT8, {1, 3});
  u.Floats("s", {}, {2.0f});
  IntInitializer(u, "z", onnx::TensorProto::UINT8, {}, {128});
  u.Node("DequantizeLinear", {"codes", "s", "z"}, {"y"}, "dq8");
  u.Output("y");
  auto out8 = testing::RunModel(u, "codes", Tensor({1, 3}, {0, 127, 255}));
  ASSERT_EQ(out8.size(), 1u);
  EXPECT_EQ(out8[0].tensor.values(), (std::vector<float>{-256, -2, 254}));
}

TEST(QuantizeKernelTest, Int16QuantizeLinearWritesWideCodes) {
  OnnxBuilder b(21);
  b.Input("x", {1, 6});
  b.Floats("s", {}, {2.0f});
  IntInitializer(b, "z", onnx::TensorProto::INT16, {}, {256});
  b.Node("QuantizeLinear", {"x", "s", "z"}, {"q"}, "q16");
  b.Output("q");
  EXPECT_EQ(RunBothWays(b, {1, 6}, {0, -514, 3, -3, 1e6f, -1e6f}),
            (std::vector<float>{256, -1, 258, 254, 32767, -32768}));
}

TEST(QuantizeKernelTest, TruncFollowsQonnxBothVersions) {
  // Trunc v1: (R(round(x / s + z) / 2^(in - out)) - z) * s, here R = FLOOR,
  // 8 -> 4 bits; v2 also clamps to the output bits and rescales.
  const float scale = 0.5f, zero = 0.0f;
  std::vector<float> x;
  for (int k = -40; k < 40; ++k) x.push_back(static_cast<float>(k) * 1.75f);
  for (bool v2 : {false, true}) {
    OnnxBuilder b(11);
    b.Input("x", {1, 80});
    b.Floats("s", {}, {scale});
    b.Floats("z", {}, {zero});
    b.Floats("in_bits", {}, {8.0f});
    b.Floats("out_bits", {}, {4.0f});
    b.Floats("out_scale", {}, {8.0f});  // 2^round(log2(8 / 0.5)) = 16
    std::vector<std::string> inputs = {"x", "s", "z", "in_bits", "out_bits"};
    if (v2) inputs = {"x", "s", "z", "in_bits", "out_scale", "out_bits"};
    auto& trunc = Qonnx(b, "Trunc", inputs, "y", "qonnx.custom_op.general", "trunc");
    testing::SetString(trunc, "rounding_mode", "FLOOR");
    b.Output("y");
    const std::vector<float> out = RunBothWays(b, {1, 80}, x);
    ASSERT_EQ(out.size(), x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      const double rounded = Reference(ir::Rounding::kHalfEven, x[i] / scale + zero) / 16;
      const double expected = v2 ? (std::floor(std::clamp(rounded, -8.0, 7.0)) - zero) * 8.0
                                 : (std::floor(rounded) - zero) * scale;
      ASSERT_EQ(out[i], static_cast<float>(expected)) << "x=" << x[i] << " v2=" << v2;
    }
  }
}

// ---- .npy of integer codes (lowbit tensors' inputs) ------------------------

void WriteRawNpy(const std::string& path, const std::string& descr, const std::string& shape,
                 const std::string& data) {
  std::string header =
      "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  header.append(63 - (10 + header.size()) % 64, ' ');
  header += '\n';
  std::ofstream file(path, std::ios::binary);
  file.write("\x93NUMPY\x01\x00", 8);
  const char length[2] = {static_cast<char>(header.size() & 0xff),
                          static_cast<char>(header.size() >> 8)};
  file.write(length, 2);
  file << header << data;
}

TEST(NpyCodesTest, ReadsIntegerArraysExactlyAndRefusesWhatFloat32CannotHold) {
  const std::string path = ::testing::TempDir() + "/lowbit_npy_codes.npy";
  WriteRawNpy(path, "|u1", "(1, 3)", std::string("\x00\x80\xff", 3));
  auto u8 = ReadNpy(path);
  ASSERT_TRUE(u8.ok()) << u8.status().ToString();
  EXPECT_EQ(u8->shape(), (Shape{1, 3}));
  EXPECT_EQ(u8->values(), (std::vector<float>{0, 128, 255}));
  WriteRawNpy(path, "|i1", "(2,)", std::string("\x80\x7f", 2));
  EXPECT_EQ(ReadNpy(path)->values(), (std::vector<float>{-128, 127}));
  const int16_t i16[2] = {-32768, 1270};
  WriteRawNpy(path, "<i2", "(2,)", std::string(reinterpret_cast<const char*>(i16), 4));
  EXPECT_EQ(ReadNpy(path)->values(), (std::vector<float>{-32768, 1270}));
  WriteRawNpy(path, ">u2", "(1,)", std::string("\x80\x01", 2));  // big-endian 0x8001
  EXPECT_EQ(ReadNpy(path)->values(), (std::vector<float>{32769}));
  const int64_t i64[2] = {-(int64_t(1) << 24), 7};
  WriteRawNpy(path, "<i8", "(2,)", std::string(reinterpret_cast<const char*>(i64), 16));
  EXPECT_EQ(ReadNpy(path)->values(), (std::vector<float>{-16777216.0f, 7}));
  const int32_t too_big[1] = {(1 << 24) + 1};
  WriteRawNpy(path, "<i4", "(1,)", std::string(reinterpret_cast<const char*>(too_big), 4));
  auto refused = ReadNpy(path);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("2^24"), std::string::npos);
  WriteRawNpy(path, "<f2", "(2,)", std::string("\x00\x3c\x00\xc1", 4));  // 1.0, -2.5
  EXPECT_EQ(ReadNpy(path)->values(), (std::vector<float>{1.0f, -2.5f}));
  WriteRawNpy(path, "<c8", "(1,)", std::string(8, '\0'));
  auto complex = ReadNpy(path);
  ASSERT_FALSE(complex.ok());
  EXPECT_NE(complex.status().message().find("not supported"), std::string::npos);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace lowbit::engine
