// Residual weight pairs: a quantized Conv whose weights are
//   W = Add(DequantizeLinear(Clip(w1), s1), DequantizeLinear(Clip(w2), s2)),
// s1[c] == k[c] * s2[c] exactly (integer k >= 1), the QCDQ form `lowbit
// quantize` writes for layers one low-bit tensor approximates poorly. It
// lowers to one lowbit.QConv running two low-bit convolutions of the same
// codes summed in int32 as k * acc1 + acc2. Checked here: that accumulator is
// exactly the one a single tensor of the merged integers k * q1 + q2 at scale
// s2 gives (so the outputs are bit for bit those of the single-tensor QConv,
// on every kernel family), the result agrees with the float path
// (CompileOptions::lower_quantized = false) as the single-tensor lowering
// does, pairs the integer path cannot run stay in float with the reason, and
// the node survives a .lbm round trip and shows in LayerInfo.
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <set>

#include "engine_test_util.h"
#include "lbm_test_util.h"
#include "ops/qconv_weights.h"

namespace lowbit::engine::testing {
namespace {

enum class BiasKind { kNone, kFloat, kInt32 };

struct PairCase {
  const char* name = "";
  int cin = 16, cout = 12, height = 9, width = 11, kernel = 3, stride = 1, group = 1;
  std::vector<int64_t> pads = {1, 1, 1, 1};  // top, left, bottom, right
  int bits1 = 2, bits2 = 2;                  // narrow signed ranges; bits1 = 1: sign codes -1 / +1
  int abits = 2;
  bool quantize_output = true;
  BiasKind bias = BiasKind::kInt32;
  // 0: multipliers k[c] = 1 + c % 4; else s1 = ratio * s2 on every channel.
  float ratio = 0;
  std::vector<std::string> families;  // LOWBIT_CONV_FAMILY values to run ("" = chosen)
  bool distinct_families = false;     // the forced family runs only one tensor
  bool fine_first = false;            // Add(fine, coarse): the lowering finds the coarse one
};

void PrintTo(const PairCase& c, std::ostream* os) { *os << c.name; }

int NarrowMax(int bits) { return bits == 1 ? 1 : (1 << (bits - 1)) - 1; }

// Integer codes of both tensors, scales and bias of one case (seeded).
class PairData {
 public:
  explicit PairData(const PairCase& c) : c_(c) {
    const int levels = (1 << c.abits) - 1;
    in_scale = 2.0f / levels;
    in_zero_point = c.abits == 1 ? 0 : (1 << (c.abits - 1)) - 1;
    out_scale = 4.0f / levels;
    out_zero_point = c.abits == 1 ? 0 : 1;
    std::mt19937 rng(17);
    const size_t count = size_t(c.cout) * (c.cin / c.group) * c.kernel * c.kernel;
    auto codes = [&](int bits) {
      std::uniform_int_distribution<int> pick(-NarrowMax(bits), NarrowMax(bits));
      std::vector<int32_t> v(count);
      for (int32_t& x : v) {
        x = pick(rng);
        if (bits == 1) x = x < 0 ? -1 : 1;
      }
      return v;
    };
    q1 = codes(c.bits1);
    q2 = codes(c.bits2);
    for (int o = 0; o < c.cout; ++o) {
      s2.push_back(0.004f + 0.0013f * o);
      k.push_back(1 + o % 4);
      s1.push_back(c.ratio > 0 ? c.ratio * s2[o] : float(k[o]) * s2[o]);
      bias_codes.push_back(int32_t(o * 37 % 41) - 20);
      float_bias.push_back(0.03f * float(o % 5) - 0.05f);
    }
  }

  // The pair as `lowbit quantize` writes it.
  OnnxBuilder Pair() const {
    OnnxBuilder b(13);
    Begin(b);
    auto tensor = [&](const std::string& name, const std::vector<int32_t>& q, int bits,
                      const std::vector<float>& scales) {
      b.IntCodes(name, onnx::TensorProto::INT8, WeightDims(), q);
      b.IntCodes(name + "_lo", onnx::TensorProto::INT8, {}, {-NarrowMax(bits)});
      b.IntCodes(name + "_hi", onnx::TensorProto::INT8, {}, {NarrowMax(bits)});
      b.Node("Clip", {name, name + "_lo", name + "_hi"}, {name + "_c"});
      b.Floats(name + "_s", {c_.cout}, scales);
      b.IntCodes(name + "_z", onnx::TensorProto::INT8, {c_.cout}, std::vector<int32_t>(c_.cout, 0));
      SetInt(b.Node("DequantizeLinear", {name + "_c", name + "_s", name + "_z"}, {name + "_dq"}),
             "axis", 0);
    };
    tensor("w1", q1, c_.bits1, s1);
    tensor("w2", q2, c_.bits2, s2);
    if (c_.fine_first)
      b.Node("Add", {"w2_dq", "w1_dq"}, {"w"});
    else
      b.Node("Add", {"w1_dq", "w2_dq"}, {"w"});
    End(b, "w", s1, bias_codes);
    return b;
  }

  // One tensor of the merged integers k * q1 + q2 at scale s2 (bias codes
  // k * b at s_in * s2): the accumulator of the pair, as one convolution.
  OnnxBuilder Merged() const {
    OnnxBuilder b(13);
    Begin(b);
    std::vector<int32_t> merged(q1.size());
    const size_t per_channel = q1.size() / c_.cout;
    for (size_t i = 0; i < q1.size(); ++i) merged[i] = k[i / per_channel] * q1[i] + q2[i];
    b.IntCodes("wm", onnx::TensorProto::INT8, WeightDims(), merged);
    b.Floats("wm_s", {c_.cout}, s2);
    b.IntCodes("wm_z", onnx::TensorProto::INT8, {c_.cout}, std::vector<int32_t>(c_.cout, 0));
    SetInt(b.Node("DequantizeLinear", {"wm", "wm_s", "wm_z"}, {"w"}), "axis", 0);
    std::vector<int32_t> scaled(bias_codes.size());
    for (size_t o = 0; o < scaled.size(); ++o) scaled[o] = k[o] * bias_codes[o];
    End(b, "w", s2, scaled);
    return b;
  }

  Shape InputShape(int batch) const { return {batch, c_.cin, c_.height, c_.width}; }
  // Output step of a quantized output (0 for float).
  double out_step() const { return c_.quantize_output ? out_scale : 0; }

  float in_scale, out_scale;
  int in_zero_point, out_zero_point;
  std::vector<int32_t> q1, q2, k, bias_codes;
  std::vector<float> s1, s2, float_bias;

 private:
  std::vector<int64_t> WeightDims() const {
    return {c_.cout, c_.cin / c_.group, c_.kernel, c_.kernel};
  }

  // Input quantizer (Q -> Clip -> DQ).
  void Begin(OnnxBuilder& b) const {
    const int levels = (1 << c_.abits) - 1;
    b.Input("x", {-1, c_.cin, c_.height, c_.width}).Output("y");
    b.Floats("sa", {}, {in_scale}).Floats("so", {}, {out_scale});
    b.IntCodes("za", onnx::TensorProto::UINT8, {}, {in_zero_point});
    b.IntCodes("zo", onnx::TensorProto::UINT8, {}, {out_zero_point});
    b.IntCodes("lo", onnx::TensorProto::UINT8, {}, {0});
    b.IntCodes("hi", onnx::TensorProto::UINT8, {}, {levels});
    b.Node("QuantizeLinear", {"x", "sa", "za"}, {"xq"});
    b.Node("Clip", {"xq", "lo", "hi"}, {"xqc"});
    b.Node("DequantizeLinear", {"xqc", "sa", "za"}, {"xd"});
  }

  // Conv(xd, weights, bias) -> LeakyRelu [-> Q -> Clip -> DQ]; an int32
  // bias is DequantizeLinear(codes, s_in * bias_scales, axis 0).
  void End(OnnxBuilder& b, const std::string& weights, const std::vector<float>& bias_scales,
           const std::vector<int32_t>& codes) const {
    std::vector<std::string> inputs = {"xd", weights};
    if (c_.bias == BiasKind::kFloat) {
      b.Floats("bias", {c_.cout}, float_bias);
      inputs.push_back("bias");
    } else if (c_.bias == BiasKind::kInt32) {
      std::vector<float> scales;
      for (float s : bias_scales) scales.push_back(in_scale * s);
      b.IntCodes("bq", onnx::TensorProto::INT32, {c_.cout}, codes);
      b.Floats("bs", {c_.cout}, scales);
      b.IntCodes("bz", onnx::TensorProto::INT32, {c_.cout}, std::vector<int32_t>(c_.cout, 0));
      SetInt(b.Node("DequantizeLinear", {"bq", "bs", "bz"}, {"bias"}), "axis", 0);
      inputs.push_back("bias");
    }
    auto& conv = b.Node("Conv", inputs, {"conv"}, "conv");
    SetInts(conv, "kernel_shape", {c_.kernel, c_.kernel});
    SetInts(conv, "strides", {c_.stride, c_.stride});
    SetInts(conv, "pads", c_.pads);
    SetInt(conv, "group", c_.group);
    SetFloat(b.Node("LeakyRelu", {"conv"}, {"act"}), "alpha", 0.1f);
    if (c_.quantize_output) {
      b.Node("QuantizeLinear", {"act", "so", "zo"}, {"yq"});
      b.Node("Clip", {"yq", "lo", "hi"}, {"yqc"});
      b.Node("DequantizeLinear", {"yqc", "so", "zo"}, {"y"});
    } else {
      b.Node("Identity", {"act"}, {"y"});
    }
  }

  PairCase c_;
};

// Compiles with LOWBIT_CONV_FAMILY = family ("" = the chooser's pick).
std::shared_ptr<const runtime::CompiledModel> CompileWith(const OnnxBuilder& b,
                                                          const std::string& family) {
  if (family.empty())
    unsetenv("LOWBIT_CONV_FAMILY");
  else
    setenv("LOWBIT_CONV_FAMILY", family.c_str(), 1);
  auto compiled = b.Compile();
  unsetenv("LOWBIT_CONV_FAMILY");
  EXPECT_TRUE(compiled.ok()) << compiled.status().ToString();
  return compiled.ok() ? *compiled : nullptr;
}

// The graph as written, on the float path: the reference for the lowering.
std::shared_ptr<const runtime::CompiledModel> CompileOnFloatPath(const OnnxBuilder& b) {
  auto graph = b.Import();
  EXPECT_TRUE(graph.ok()) << graph.status().ToString();
  if (!graph.ok()) return nullptr;
  CompileOptions options;
  options.lower_quantized = false;
  auto compiled = runtime::CompiledModel::Compile(std::move(graph).value(), {}, options);
  EXPECT_TRUE(compiled.ok()) << compiled.status().ToString();
  return compiled.ok() ? *compiled : nullptr;
}

std::vector<float> RunOnce(const Model& model, const std::vector<float>& x, const Shape& shape,
                           int threads = 1) {
  SessionOptions options;
  options.threads = threads;
  auto session = model.CreateSession(options);
  EXPECT_TRUE(session.ok()) << session.status().ToString();
  if (!session.ok()) return {};
  std::vector<NamedTensor> outputs;
  const Status status = (*session)->Run({{"x", Tensor(shape, x)}}, &outputs);
  EXPECT_TRUE(status.ok()) << status.ToString();
  return outputs.empty() ? std::vector<float>() : outputs[0].tensor.values();
}

const ir::Node* FindNode(const runtime::CompiledModel& model, const std::string& op) {
  for (const ir::Node& node : model.graph().nodes)
    if (node.op_type == op) return &node;
  return nullptr;
}

const LayerInfo* FindLayer(const Model& model, const std::string& op_prefix) {
  for (const LayerInfo& layer : model.layers())
    if (layer.op.rfind(op_prefix, 0) == 0) return &layer;
  return nullptr;
}

// The tolerance the single-tensor lowering is held to against the float
// path: every element within one output step (1e-4 relative for float
// outputs, the float path summing in float), nearly all equal.
void ExpectNearFloatPath(const std::vector<float>& got, const std::vector<float>& want, double step,
                         const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  size_t equal = 0, worst = 0;
  double worst_excess = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double diff = std::abs(double(got[i]) - want[i]);
    const double allowed =
        step > 0 ? step * 1.001 : 1e-4 * std::max(1.0, std::abs(double(want[i])));
    if (diff - allowed > worst_excess) worst_excess = diff - allowed, worst = i;
    equal += step > 0 ? got[i] == want[i] : diff <= 1e-5 * std::max(1.0, std::abs(double(want[i])));
  }
  EXPECT_EQ(worst_excess, 0) << what << ": element " << worst << " is " << got[worst]
                             << ", float path " << want[worst];
  EXPECT_GE(double(equal) / got.size(), 0.97) << what << ": " << equal << " of " << got.size();
}

class ResidualPairTest : public ::testing::TestWithParam<PairCase> {};

TEST_P(ResidualPairTest, LowersToOneQConvWithTheMergedAccumulator) {
  const PairCase& c = GetParam();
  const PairData data(c);
  const int batch = 2;
  const Shape shape = data.InputShape(batch);
  const std::vector<float> x = RandomFloats(NumElements(shape), 5, -1.2f, 1.2f);

  auto merged = CompileWith(data.Merged(), "");
  ASSERT_NE(merged, nullptr);
  ASSERT_NE(FindNode(*merged, "lowbit.QConv"), nullptr) << "the merged single tensor must lower";
  const std::vector<float> want = RunOnce(*merged, x, shape);
  auto reference = CompileOnFloatPath(data.Pair());
  ASSERT_NE(reference, nullptr);
  ASSERT_NE(FindNode(*reference, "Conv"), nullptr);
  const std::vector<float> float_path = RunOnce(*reference, x, shape);

  for (const std::string& family : c.families) {
    const std::string what = std::string(c.name) + " on " + (family.empty() ? "chosen" : family);
    auto compiled = CompileWith(data.Pair(), family);
    ASSERT_NE(compiled, nullptr) << what;
    EXPECT_EQ(FindNode(*compiled, "Conv"), nullptr) << what << ": the float convolution remains";
    const ir::Node* qconv = FindNode(*compiled, "lowbit.QConv");
    ASSERT_NE(qconv, nullptr) << what;
    EXPECT_EQ(qconv->GetInt("wbits", 0), c.bits1) << what;
    EXPECT_EQ(qconv->GetInt("residual_wbits", 0), c.bits2) << what;
    EXPECT_EQ(qconv->GetString("weight_domain", ""), c.bits1 == 1 ? "binary" : "signed") << what;
    if (!family.empty()) {
      // A family forced where it can run; the other tensor is measured.
      const bool forced_first = qconv->GetString("lowbit_kernel_choice", "") == "forced";
      const bool forced_second = qconv->GetString("lowbit_residual_kernel_choice", "") == "forced";
      EXPECT_TRUE(forced_first || forced_second) << what;
      if (forced_first) {
        EXPECT_EQ(qconv->GetString("lowbit_kernel", ""), family) << what;
      }
      if (forced_second) {
        EXPECT_EQ(qconv->GetString("lowbit_residual_kernel", ""), family) << what;
      }
    }
    if (c.distinct_families) {
      EXPECT_NE(qconv->GetString("lowbit_kernel", ""),
                qconv->GetString("lowbit_residual_kernel", ""))
          << what;
    }
    // Stored inputs 0..5, then the first tensor's kernel weights, the
    // zero-point sums and the residual's kernel weights.
    EXPECT_EQ(qconv->inputs.size(), 9u) << what;
    const std::vector<float> got = RunOnce(*compiled, x, shape);
    EXPECT_EQ(got, want) << what << ": differs from one tensor of the merged integers";
    ExpectNearFloatPath(got, float_path, data.out_step(), what);
    EXPECT_EQ(RunOnce(*compiled, x, shape, 2), got) << what << " with 2 threads";
  }
}

PairCase Case(const char* name, int bits1, int bits2, int abits,
              std::vector<std::string> families) {
  PairCase c;
  c.name = name;
  c.bits1 = bits1;
  c.bits2 = bits2;
  c.abits = abits;
  c.families = std::move(families);
  return c;
}

PairCase Strided(PairCase c) {  // TF-SAME stride 2: no pad at the top and left
  c.stride = 2;
  c.pads = {0, 0, 1, 1};
  return c;
}

PairCase FloatOutput(PairCase c) {
  c.quantize_output = false;
  return c;
}

PairCase WithBias(BiasKind bias, PairCase c) {
  c.bias = bias;
  return c;
}

PairCase TwoFamilies(PairCase c) {
  c.distinct_families = true;
  return c;
}

PairCase FineFirst(PairCase c) {
  c.fine_first = true;
  return c;
}

PairCase Depthwise(PairCase c) {
  c.cin = c.cout = c.group = 24;
  return c;
}

INSTANTIATE_TEST_SUITE_P(
    Pairs, ResidualPairTest,
    ::testing::Values(
        Case("W2p2A2", 2, 2, 2, {"", "int8dot", "int8", "bitserial", "lut"}),
        Strided(Case("W2p2A2_stride2_asymmetric_pads", 2, 2, 2, {"int8dot", "bitserial", "lut"})),
        Case("W4p2A4", 4, 2, 4, {"", "int8dot", "int8", "bitserial"}),
        FineFirst(Case("W4p2A4_fine_tensor_first", 4, 2, 4, {""})),
        Strided(Case("W4p2A4_stride2_asymmetric_pads", 4, 2, 4, {"int8dot", "bitserial"})),
        // LUT runs only the 2-bit residual: two activation formats packed.
        TwoFamilies(Case("W4p2A2_two_families", 4, 2, 2, {"lut"})),
        Case("W1p2A2_sign_codes_first", 1, 2, 2, {"", "int8dot", "bitserial", "lut"}),
        FloatOutput(Case("W2p2A4_float_output", 2, 2, 4, {"", "int8dot", "bitserial"})),
        WithBias(BiasKind::kFloat, Case("W2p2A8_float_bias", 2, 2, 8, {"", "int8dot", "int8"})),
        WithBias(BiasKind::kNone,
                 FloatOutput(Case("W4p2A8_no_bias_float_output", 4, 2, 8, {"int8dot", "int8"}))),
        Depthwise(Case("W4p2A4_depthwise", 4, 2, 4, {"", "dwint8"})),
        Strided(Depthwise(Case("W2p2A2_depthwise_stride2", 2, 2, 2, {"dwint8"})))),
    [](const ::testing::TestParamInfo<PairCase>& info) { return std::string(info.param.name); });

// Pairs the integer path cannot run exactly stay in float, say why, and
// still compute what the float path computes.
void ExpectKeptInFloat(const PairCase& c, const std::string& reason) {
  const PairData data(c);
  auto compiled = CompileWith(data.Pair(), "");
  ASSERT_NE(compiled, nullptr);
  EXPECT_EQ(FindNode(*compiled, "lowbit.QConv"), nullptr);
  ASSERT_NE(FindNode(*compiled, "Conv"), nullptr);
  const LayerInfo* layer = FindLayer(*compiled, "Conv");
  ASSERT_NE(layer, nullptr);
  EXPECT_NE(layer->lowering_note.find(reason), std::string::npos) << layer->lowering_note;
  EXPECT_EQ(layer->residual_weight_bits, 0);
  auto reference = CompileOnFloatPath(data.Pair());
  ASSERT_NE(reference, nullptr);
  const Shape shape = data.InputShape(2);
  const std::vector<float> x = RandomFloats(NumElements(shape), 8, -1.2f, 1.2f);
  ExpectNearFloatPath(RunOnce(*compiled, x, shape), RunOnce(*reference, x, shape), data.out_step(),
                      c.name);
}

TEST(ResidualPairFallbackTest, ScalesThatAreNoIntegerMultipleStayInFloat) {
  PairCase c = Case("ratio_2.5", 2, 2, 2, {});
  c.ratio = 2.5f;
  ExpectKeptInFloat(c, "scales are not integer multiples");
}

TEST(ResidualPairFallbackTest, AnAccumulatorThatCouldLeaveInt32StaysInFloat) {
  // k = 2^20 on every channel with 8-bit activations: (2^20 + 1) * 144 taps
  // * 128 exceeds int32.
  PairCase c = Case("ratio_2^20", 2, 2, 8, {});
  c.ratio = 1048576.0f;
  ExpectKeptInFloat(c, "could exceed int32");
}

TEST(ResidualPairFallbackTest, GroupedButNotDepthwiseStaysInFloat) {
  PairCase c = Case("grouped", 2, 2, 2, {});
  c.group = 2;
  ExpectKeptInFloat(c, "grouped convolution that is not depthwise");
}

TEST(ResidualPairLayerInfoTest, ReportsBothTensorsBitsKernelsAndBytes) {
  const PairCase c = Case("W4p2A4", 4, 2, 4, {});
  const PairData data(c);
  auto compiled = CompileWith(data.Pair(), "");
  ASSERT_NE(compiled, nullptr);
  const LayerInfo* layer = FindLayer(*compiled, "lowbit.QConv");
  ASSERT_NE(layer, nullptr);
  const ir::Node* qconv = FindNode(*compiled, "lowbit.QConv");
  EXPECT_EQ(layer->weight_bits, 4);
  EXPECT_EQ(layer->residual_weight_bits, 2);
  EXPECT_EQ(layer->activation_bits, 4);
  EXPECT_EQ(layer->kernel, qconv->GetString("lowbit_kernel", ""));
  EXPECT_EQ(layer->residual_kernel, qconv->GetString("lowbit_residual_kernel", ""));
  EXPECT_FALSE(layer->residual_kernel.empty());
  EXPECT_TRUE(layer->lowering_note.empty());
  // The residual: its 2-bit codes and one int32 multiplier per channel.
  const int64_t count = int64_t(c.cout) * c.cin * c.kernel * c.kernel;
  EXPECT_EQ(layer->residual_weight_bytes, ops::PackedWeightBytes(count, 2) + 4 * c.cout);
  // The first tensor's 4-bit codes, epilogue scale and bias beside it.
  EXPECT_EQ(layer->weight_bytes - layer->residual_weight_bytes,
            ops::PackedWeightBytes(count, 4) + 2 * 4 * c.cout);
  // One convolution's worth of MACs and parameters.
  EXPECT_EQ(layer->params, count + c.cout);
  EXPECT_EQ(layer->macs, int64_t(c.cout) * 9 * 11 * c.cin * 9);

  // A single tensor reports no residual.
  auto merged = CompileWith(data.Merged(), "");
  ASSERT_NE(merged, nullptr);
  const LayerInfo* single = FindLayer(*merged, "lowbit.QConv");
  ASSERT_NE(single, nullptr);
  EXPECT_EQ(single->residual_weight_bits, 0);
  EXPECT_TRUE(single->residual_kernel.empty());
  EXPECT_EQ(single->residual_weight_bytes, 0);
}

TEST(ResidualPairLbmTest, ACompiledPairThroughAFileRunsBitForBitTheSame) {
  const std::filesystem::path directory =
      std::filesystem::temp_directory_path() / ("residual_lbm_" + std::to_string(::getpid()));
  std::filesystem::create_directories(directory);
  const std::string path = (directory / "pair.lbm").string();
  for (const PairCase& c : {Case("W2p2A2", 2, 2, 2, {}), Case("W4p2A2_two_families", 4, 2, 2, {}),
                            FloatOutput(Case("W1p2A4", 1, 2, 4, {}))}) {
    const PairData data(c);
    // Two families in one node: LUT for the 2-bit residual where it can.
    auto compiled = CompileWith(data.Pair(), c.bits1 == 4 ? "lut" : "");
    ASSERT_NE(compiled, nullptr) << c.name;
    ASSERT_TRUE(WriteCompiledModel(*compiled, path).ok()) << c.name;
    auto loaded = Model::LoadCompiled(path);
    ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
    const auto& from_file = dynamic_cast<const runtime::CompiledModel&>(**loaded);
    ExpectSameGraph(compiled->graph(), from_file.graph());
    const ir::Node* qconv = FindNode(from_file, "lowbit.QConv");
    ASSERT_NE(qconv, nullptr) << c.name;
    EXPECT_EQ(qconv->GetInt("residual_wbits", 0), c.bits2) << c.name;
    const Shape shape = data.InputShape(2);
    const std::vector<float> x = RandomFloats(NumElements(shape), 6, -1.2f, 1.2f);
    EXPECT_EQ(RunOnce(**loaded, x, shape), RunOnce(*compiled, x, shape)) << c.name;
    const LayerInfo* a = FindLayer(*compiled, "lowbit.QConv");
    const LayerInfo* b = FindLayer(**loaded, "lowbit.QConv");
    ASSERT_TRUE(a != nullptr && b != nullptr) << c.name;
    EXPECT_EQ(a->residual_weight_bits, b->residual_weight_bits) << c.name;
    EXPECT_EQ(a->kernel, b->kernel) << c.name;
    EXPECT_EQ(a->residual_kernel, b->residual_kernel) << c.name;
    EXPECT_EQ(a->weight_bytes, b->weight_bytes) << c.name;
    EXPECT_EQ(a->residual_weight_bytes, b->residual_weight_bytes) << c.name;
  }
  std::filesystem::remove_all(directory);
}

}  // namespace
}  // namespace lowbit::engine::testing
