// Lowering of fake-quantized convolutions onto the integer kernels: QDQ /
// QCDQ graphs built here compile to lowbit.QConv and compute what the
// fake-quantized graph computes (checked against an independent float64
// computation in this file), identically on every kernel family.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <set>

#include "engine_test_util.h"

namespace lowbit::engine::testing {
namespace {

struct ConvCase {
  int cin = 8, cout = 12, height = 9, width = 11, kernel = 3, stride = 1;
  int group = 1;  // cin == cout == group: depthwise
  std::vector<int64_t> pads = {1, 1, 1, 1};  // top, left, bottom, right
  int wbits = 8, abits = 8;
  bool binary_weights = false;
  int in_zero_point = 3;   // activation code zero point (odd on purpose)
  int out_zero_point = 5;
  int out_bits = 8;
  float alpha = 0.1f;      // LeakyRelu
  bool quantize_output = true;
};

struct Reference {
  std::vector<double> output;  // NCHW, dequantized output (or float when not quantized)
  double out_step = 0;
};

// Scales that make the chosen bit widths meaningful for inputs in [-1, 1].
struct Scales {
  float in, out;
  std::vector<float> weights;
};

class QuantizedConvModel {
 public:
  explicit QuantizedConvModel(const ConvCase& c) : c_(c), builder_(13) {
    const int levels = (1 << c.abits) - 1;
    scales_.in = 2.0f / levels;
    const int out_levels = (1 << c.out_bits) - 1;
    scales_.out = 4.0f / out_levels;
    for (int o = 0; o < c.cout; ++o) scales_.weights.push_back(0.05f + 0.01f * o);
    std::mt19937 rng(7);
    const int wmin = c.binary_weights ? -1 : -(1 << (c.wbits - 1));
    const int wmax = c.binary_weights ? 1 : (1 << (c.wbits - 1)) - 1;
    std::uniform_int_distribution<int> pick(wmin, wmax);
    weights_.resize(size_t(c.cout) * (c.cin / c.group) * c.kernel * c.kernel);
    for (int32_t& w : weights_) {
      w = pick(rng);
      if (c.binary_weights) w = w < 0 ? -1 : 1;
    }
    bias_ = RandomFloats(c.cout, 11, -0.5f, 0.5f);

    OnnxBuilder& b = builder_;
    b.Input("x", {-1, c.cin, c.height, c.width}).Output("y");
    b.Floats("sa", {}, {scales_.in}).Floats("so", {}, {scales_.out});
    b.IntCodes("za", onnx::TensorProto::UINT8, {}, {c.in_zero_point});
    b.IntCodes("zo", onnx::TensorProto::UINT8, {}, {c.out_zero_point});
    b.Floats("sw", {c.cout}, scales_.weights);
    b.IntCodes("zw", onnx::TensorProto::INT8, {c.cout}, std::vector<int32_t>(c.cout, 0));
    b.IntCodes("w", onnx::TensorProto::INT8, {c.cout, c.cin / c.group, c.kernel, c.kernel},
              weights_);
    b.Floats("bias", {c.cout}, bias_);
    b.Node("QuantizeLinear", {"x", "sa", "za"}, {"xq"});
    std::string xq = "xq";
    if (c.abits < 8) {  // Brevitas QCDQ: the Clip bounds give the bit width
      b.IntCodes("alo", onnx::TensorProto::UINT8, {}, {0});
      b.IntCodes("ahi", onnx::TensorProto::UINT8, {}, {levels});
      b.Node("Clip", {"xq", "alo", "ahi"}, {"xqc"});
      xq = "xqc";
    }
    b.Node("DequantizeLinear", {xq, "sa", "za"}, {"xd"});
    SetInt(b.Node("DequantizeLinear", {"w", "sw", "zw"}, {"wd"}), "axis", 0);
    auto& conv = b.Node("Conv", {"xd", "wd", "bias"}, {"conv"});
    SetInts(conv, "kernel_shape", {c.kernel, c.kernel});
    SetInts(conv, "strides", {c.stride, c.stride});
    SetInts(conv, "pads", c.pads);
    SetInt(conv, "group", c.group);
    SetFloat(b.Node("LeakyRelu", {"conv"}, {"act"}), "alpha", c.alpha);
    if (c.quantize_output) {
      b.Node("QuantizeLinear", {"act", "so", "zo"}, {"yq"});
      std::string yq = "yq";
      if (c.out_bits < 8) {
        b.IntCodes("olo", onnx::TensorProto::UINT8, {}, {0});
        b.IntCodes("ohi", onnx::TensorProto::UINT8, {}, {out_levels});
        b.Node("Clip", {"yq", "olo", "ohi"}, {"yqc"});
        yq = "yqc";
      }
      b.Node("DequantizeLinear", {yq, "so", "zo"}, {"y"});
    } else {
      b.Node("Identity", {"act"}, {"y"});
    }
  }

  const OnnxBuilder& builder() const { return builder_; }
  int out_height() const { return (c_.height + int(c_.pads[0] + c_.pads[2]) - c_.kernel) / c_.stride + 1; }
  int out_width() const { return (c_.width + int(c_.pads[1] + c_.pads[3]) - c_.kernel) / c_.stride + 1; }

  // The fake-quantized graph in float64 (ONNX semantics: rne(x / s) + zp).
  Reference Compute(const std::vector<float>& x, int batch) const {
    const int levels = (1 << c_.abits) - 1, out_levels = (1 << c_.out_bits) - 1;
    std::vector<double> xd(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      double q = std::nearbyint(x[i] / scales_.in) + c_.in_zero_point;
      q = std::min<double>(std::max<double>(q, 0), levels);
      xd[i] = (q - c_.in_zero_point) * double(scales_.in);
    }
    const int oh = out_height(), ow = out_width(), k = c_.kernel;
    Reference r;
    r.out_step = c_.quantize_output ? scales_.out : 0;
    r.output.resize(size_t(batch) * c_.cout * oh * ow);
    for (int n = 0; n < batch; ++n)
      for (int o = 0; o < c_.cout; ++o)
        for (int y = 0; y < oh; ++y)
          for (int xo = 0; xo < ow; ++xo) {
            double sum = bias_[o];
            const int group_in = c_.cin / c_.group, first = o / (c_.cout / c_.group) * group_in;
            for (int ci = first; ci < first + group_in; ++ci)
              for (int ky = 0; ky < k; ++ky)
                for (int kx = 0; kx < k; ++kx) {
                  const int iy = y * c_.stride - int(c_.pads[0]) + ky;
                  const int ix = xo * c_.stride - int(c_.pads[1]) + kx;
                  if (iy < 0 || iy >= c_.height || ix < 0 || ix >= c_.width) continue;
                  const double a = xd[((size_t(n) * c_.cin + ci) * c_.height + iy) * c_.width + ix];
                  const double w = weights_[((size_t(o) * group_in + ci - first) * k + ky) * k + kx] *
                                   double(scales_.weights[o]);
                  sum += a * w;
                }
            double v = sum < 0 ? sum * c_.alpha : sum;
            if (c_.quantize_output) {
              double q = std::nearbyint(float(v) / scales_.out) + c_.out_zero_point;
              q = std::min<double>(std::max<double>(q, 0), out_levels);
              v = (q - c_.out_zero_point) * double(scales_.out);
            }
            r.output[((size_t(n) * c_.cout + o) * oh + y) * ow + xo] = v;
          }
    return r;
  }

 private:
  ConvCase c_;
  OnnxBuilder builder_;
  Scales scales_;
  std::vector<int32_t> weights_;
  std::vector<float> bias_;
};

std::set<std::string> OpTypes(const runtime::CompiledModel& model) {
  std::set<std::string> ops;
  for (const ir::Node& node : model.graph().nodes) ops.insert(node.op_type);
  return ops;
}

std::string KernelOf(const runtime::CompiledModel& model) {
  for (const ir::Node& node : model.graph().nodes)
    if (node.op_type == "lowbit.QConv") return node.GetString("lowbit_kernel", "");
  return "";
}

// Compiles with LOWBIT_CONV_FAMILY = family ("" = the chooser's pick).
std::shared_ptr<const runtime::CompiledModel> CompileWith(const QuantizedConvModel& m,
                                                          const std::string& family) {
  if (family.empty())
    unsetenv("LOWBIT_CONV_FAMILY");
  else
    setenv("LOWBIT_CONV_FAMILY", family.c_str(), 1);
  auto compiled = m.builder().Compile();
  unsetenv("LOWBIT_CONV_FAMILY");
  EXPECT_TRUE(compiled.ok()) << compiled.status().ToString();
  return compiled.ok() ? *compiled : nullptr;
}

std::vector<float> RunOnce(const runtime::CompiledModel& model, const std::vector<float>& x,
                       const Shape& shape, int threads = 1) {
  SessionOptions options;
  options.threads = threads;
  auto session = model.CreateSession(options);
  EXPECT_TRUE(session.ok()) << session.status().ToString();
  std::vector<NamedTensor> outputs;
  const Status status = (*session)->Run({{"x", Tensor(shape, x)}}, &outputs);
  EXPECT_TRUE(status.ok()) << status.ToString();
  return outputs.empty() ? std::vector<float>() : outputs[0].tensor.values();
}

// Checks every element within one output step of the reference, and (for a
// quantized output) at least 97% of them equal to it.
void ExpectMatches(const std::vector<float>& got, const Reference& ref, const std::string& what) {
  ASSERT_EQ(got.size(), ref.output.size()) << what;
  size_t exact = 0, worst = 0;
  double worst_diff = 0;
  const double tolerance = ref.out_step > 0 ? ref.out_step * 1.001 : 1e-4;
  for (size_t i = 0; i < got.size(); ++i) {
    const double diff = std::abs(got[i] - ref.output[i]);
    if (diff > worst_diff) worst_diff = diff, worst = i;
    if (diff <= (ref.out_step > 0 ? ref.out_step * 1e-3 : 1e-5)) ++exact;
  }
  EXPECT_LE(worst_diff, tolerance) << what << ": element " << worst << " is " << got[worst]
                                   << ", reference " << ref.output[worst];
  if (ref.out_step > 0) {
    EXPECT_GE(double(exact) / got.size(), 0.97) << what << ": " << exact << " of " << got.size()
                                                << " equal the reference";
  }
}

struct FamilyCase {
  const char* name;
  ConvCase conv;
  std::vector<std::string> families;  // each must be the one that runs
};

void PrintTo(const FamilyCase& c, std::ostream* os) { *os << c.name; }

// The graph as written, every Quantize / Dequantize on the float path
// (CompileOptions::lower_quantized = false): the reference for the lowering.
StatusOr<std::shared_ptr<const runtime::CompiledModel>> CompileOnFloatPath(const OnnxBuilder& b) {
  LOWBIT_ASSIGN_OR_RETURN(ir::Graph graph, b.Import());
  CompileOptions options;
  options.lower_quantized = false;
  return runtime::CompiledModel::Compile(std::move(graph), {}, options);
}

class QuantizedConvTest : public ::testing::TestWithParam<FamilyCase> {};

TEST_P(QuantizedConvTest, EveryFamilyComputesTheFakeQuantizedGraph) {
  const FamilyCase& p = GetParam();
  QuantizedConvModel model(p.conv);
  const int batch = 2;
  const Shape shape = {batch, p.conv.cin, p.conv.height, p.conv.width};
  const std::vector<float> x = RandomFloats(NumElements(shape), 5, -1.2f, 1.2f);
  const Reference ref = model.Compute(x, batch);
  std::vector<float> first;
  for (const std::string& family : p.families) {
    auto compiled = CompileWith(model, family);
    ASSERT_NE(compiled, nullptr);
    const auto ops = OpTypes(*compiled);
    EXPECT_TRUE(ops.count("lowbit.QConv")) << family;
    EXPECT_FALSE(ops.count("Conv")) << family << ": the float convolution is still there";
    EXPECT_EQ(KernelOf(*compiled), family);
    const std::vector<float> got = RunOnce(*compiled, x, shape);
    ExpectMatches(got, ref, family);
    if (first.empty())
      first = got;
    else
      EXPECT_EQ(got, first) << family << " differs from " << p.families[0];
    // Two threads split the work items; the result must not change.
    EXPECT_EQ(RunOnce(*compiled, x, shape, 2), got) << family << " with 2 threads";
  }
}

ConvCase Bits(int wbits, int abits, ConvCase c = {}) {
  c.wbits = wbits;
  c.abits = abits;
  c.out_bits = abits;
  c.in_zero_point = abits == 1 ? 0 : (1 << (abits - 1)) - 1;
  c.out_zero_point = abits == 1 ? 0 : 1;
  return c;
}

ConvCase Asymmetric(ConvCase c) {  // TF-SAME stride 2: no pad at the top and left
  c.stride = 2;
  c.pads = {0, 0, 1, 1};
  return c;
}

ConvCase Binary(ConvCase c) {
  c.binary_weights = true;
  return c;
}

ConvCase Depthwise(ConvCase c) {
  c.cin = c.cout = c.group = 24;
  return c;
}

ConvCase FloatOutput(ConvCase c) {
  c.quantize_output = false;
  return c;
}

INSTANTIATE_TEST_SUITE_P(
    Families, QuantizedConvTest,
    ::testing::Values(
        FamilyCase{"W8A8", Bits(8, 8), {"int8dot", "int8"}},
        FamilyCase{"W8A8_stride2_asymmetric_pads", Asymmetric(Bits(8, 8)), {"int8dot", "int8"}},
        FamilyCase{"W4A4", Bits(4, 4), {"int8dot", "int8", "bitserial"}},
        FamilyCase{"W2A2", Bits(2, 2), {"int8dot", "int8", "bitserial", "lut"}},
        FamilyCase{"W2A2_stride2_asymmetric_pads", Asymmetric(Bits(2, 2)),
                   {"int8dot", "int8", "bitserial", "lut"}},
        FamilyCase{"W1A1_binary", Binary(Bits(1, 1)), {"int8dot", "bitserial", "lut"}},
        FamilyCase{"W3A2_float_output", FloatOutput(Bits(3, 2)), {"int8dot", "bitserial"}},
        FamilyCase{"W8A8_depthwise", Depthwise(Bits(8, 8)), {"dwint8"}},
        FamilyCase{"W4A4_depthwise_stride2_asymmetric_pads", Asymmetric(Depthwise(Bits(4, 4))),
                   {"dwint8"}}),
    [](const ::testing::TestParamInfo<FamilyCase>& info) { return std::string(info.param.name); });

// Two quantized convs with a MaxPool and a Concat between them (QCDQ, one
// quantizer per tensor, shared by the Concat's inputs as QAT exports do):
// the codes go from one conv to the next without a float tensor between.
TEST(QuantizedChainTest, ConsecutiveLayersPassCodes) {
  OnnxBuilder b(13);
  b.Input("x", {-1, 4, 12, 12}).Output("y");
  b.Floats("s", {}, {0.05f}).Floats("sw", {}, {0.02f});
  b.IntCodes("z", onnx::TensorProto::UINT8, {}, {1});
  b.IntCodes("lo", onnx::TensorProto::UINT8, {}, {0});
  b.IntCodes("hi", onnx::TensorProto::UINT8, {}, {3});
  b.IntCodes("zw", onnx::TensorProto::INT8, {}, {0});
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> pick(-2, 1);
  auto weights = [&](const std::string& name, int cout, int cin) {
    std::vector<int32_t> w(size_t(cout) * cin * 9);
    for (int32_t& v : w) v = pick(rng);
    b.IntCodes(name, onnx::TensorProto::INT8, {cout, cin, 3, 3}, w);
    b.Node("DequantizeLinear", {name, "sw", "zw"}, {name + "_dq"});
  };
  // A2 quantizer: Q -> Clip[0,3] -> DQ, on `in`, named `out`.
  auto quantize = [&](const std::string& in, const std::string& out) {
    b.Node("QuantizeLinear", {in, "s", "z"}, {out + "_q"});
    b.Node("Clip", {out + "_q", "lo", "hi"}, {out + "_c"});
    b.Node("DequantizeLinear", {out + "_c", "s", "z"}, {out});
  };
  auto conv = [&](const std::string& in, const std::string& w, const std::string& out) {
    auto& node = b.Node("Conv", {in, w + "_dq"}, {out + "_conv"});
    SetInts(node, "pads", {1, 1, 1, 1});
    SetFloat(b.Node("LeakyRelu", {out + "_conv"}, {out}), "alpha", 0.1f);
  };
  weights("w1", 8, 4);
  weights("w2", 8, 16);
  quantize("x", "xq");
  conv("xq", "w1", "a");
  quantize("a", "aq");
  auto& pool = b.Node("MaxPool", {"aq"}, {"p"});
  SetInts(pool, "kernel_shape", {2, 2});
  SetInts(pool, "strides", {2, 2});
  auto& pool2 = b.Node("MaxPool", {"aq"}, {"p2"});
  SetInts(pool2, "kernel_shape", {3, 3});
  SetInts(pool2, "strides", {2, 2});
  SetInts(pool2, "pads", {0, 0, 1, 1});
  SetInt(b.Node("Concat", {"p", "p2"}, {"cat"}), "axis", 1);
  quantize("cat", "catq");
  conv("catq", "w2", "y_float");
  quantize("y_float", "y");

  const Shape shape = {2, 4, 12, 12};
  const std::vector<float> x = RandomFloats(NumElements(shape), 9, -0.2f, 0.3f);
  std::vector<float> first;
  for (const std::string family : {"int8dot", "bitserial", "lut", "int8"}) {
    setenv("LOWBIT_CONV_FAMILY", family.c_str(), 1);
    auto compiled = b.Compile();
    unsetenv("LOWBIT_CONV_FAMILY");
    ASSERT_TRUE(compiled.ok()) << compiled.status().ToString();
    std::vector<std::string> ops;
    for (const ir::Node& node : (*compiled)->graph().nodes) ops.push_back(node.op_type);
    const auto last_qconv = std::find(ops.rbegin(), ops.rend(), "lowbit.QConv");
    ASSERT_NE(last_qconv, ops.rend());
    EXPECT_EQ(std::count(ops.begin(), ops.end(), "lowbit.QConv"), 2);
    EXPECT_EQ(std::find(ops.begin(), last_qconv.base(), "lowbit.Dequantize"), last_qconv.base())
        << "a float tensor between the quantized layers (" << family << ")";
    EXPECT_EQ(std::find(ops.begin(), ops.end(), "Conv"), ops.end());
    const std::vector<float> y = RunOnce(**compiled, x, shape);
    if (first.empty())
      first = y;
    else
      EXPECT_EQ(y, first) << family;
  }
  // The float path (CompileOptions::lower_quantized = false) computes the
  // same codes: every output within one step, nearly all equal.
  auto reference = CompileOnFloatPath(b);
  ASSERT_TRUE(reference.ok()) << reference.status().ToString();
  const std::vector<float> want = RunOnce(**reference, x, shape);
  ASSERT_EQ(want.size(), first.size());
  size_t equal = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_LE(std::abs(want[i] - first[i]), 0.05f * 1.001f) << i;
    equal += want[i] == first[i];
  }
  EXPECT_GE(double(equal) / want.size(), 0.99);
}

// An int32 bias at the accumulator's scale stays integer channel by channel:
// one channel of near-zero weights, whose bias codes reach 2^30, keeps a
// float bias while the others are added to the exact sums. It used to send
// the whole layer's bias to float, float(s) * scale + bias, whose cancellation
// flipped codes at rounding ties (SSD-MobileNetV2's first depthwise conv).
TEST(QuantizedBiasTest, AChannelWithHugeBiasCodesKeepsTheOthersInteger) {
  OnnxBuilder b(13);
  b.Input("x", {-1, 2, 3, 3}).Output("y");
  const float sa = 0.02f;
  const std::vector<float> sw = {0.01f, 1e-9f, 0.03f};
  std::vector<float> sb;
  for (float s : sw) sb.push_back(sa * s);  // the float32 product, as quantizers write it
  const std::vector<int32_t> bias = {5, (1 << 30) + 7, -9};
  b.Floats("sa", {}, {sa}).Floats("sw", {3}, sw).Floats("sb", {3}, sb);
  b.IntCodes("za", onnx::TensorProto::UINT8, {}, {3});
  b.IntCodes("zw", onnx::TensorProto::INT8, {3}, {0, 0, 0});
  b.IntCodes("zb", onnx::TensorProto::INT32, {3}, {0, 0, 0});
  const std::vector<int32_t> w = {1, -2, 3, 4, -5, 6};
  b.IntCodes("w", onnx::TensorProto::INT8, {3, 2, 1, 1}, w);
  b.IntCodes("b", onnx::TensorProto::INT32, {3}, bias);
  b.Node("QuantizeLinear", {"x", "sa", "za"}, {"xq"});
  b.Node("DequantizeLinear", {"xq", "sa", "za"}, {"xd"});
  SetInt(b.Node("DequantizeLinear", {"w", "sw", "zw"}, {"wd"}), "axis", 0);
  SetInt(b.Node("DequantizeLinear", {"b", "sb", "zb"}, {"bd"}), "axis", 0);
  b.Node("Conv", {"xd", "wd", "bd"}, {"y"});
  auto compiled = b.Compile();
  ASSERT_TRUE(compiled.ok()) << compiled.status().ToString();
  const ir::Node* qconv = nullptr;
  for (const ir::Node& node : (*compiled)->graph().nodes)
    if (node.op_type == "lowbit.QConv") qconv = &node;
  ASSERT_NE(qconv, nullptr);
  EXPECT_EQ(qconv->GetInts("bias_codes"), (std::vector<int64_t>{5, 0, -9}));
  // And the output is the fake-quantized graph's: codes of x, exact sums, the bias.
  const Shape shape = {1, 2, 3, 3};
  const std::vector<float> x = RandomFloats(NumElements(shape), 4, -0.05f, 0.05f);
  const std::vector<float> y = RunOnce(**compiled, x, shape);
  ASSERT_EQ(y.size(), 27u);
  for (int o = 0; o < 3; ++o)
    for (int p = 0; p < 9; ++p) {
      double sum = 0;
      for (int c = 0; c < 2; ++c) {
        const double code = std::clamp(double(std::nearbyint(x[c * 9 + p] / sa)) + 3, 0.0, 255.0);
        sum += (code - 3) * w[o * 2 + c];
      }
      const double want = (sum + bias[o]) * double(sa) * double(sw[o]);
      EXPECT_NEAR(y[o * 9 + p], want, 1e-6 + 1e-6 * std::abs(want)) << o << "," << p;
    }
}

// A residual block: Quantize(Relu(Add(Dequantize(skip), Dequantize(conv))))
// becomes one lowbit.QAdd over the codes, with the same result as the float
// path element for element.
TEST(QuantizedAddTest, ResidualAddRunsOnCodes) {
  OnnxBuilder b(13);
  b.Input("x", {-1, 8, 10, 10}).Output("y");
  b.Floats("sx", {}, {0.03f}).Floats("sc", {}, {0.045f}).Floats("sy", {}, {0.05f});
  b.Floats("sw", {}, {0.01f});
  b.IntCodes("zx", onnx::TensorProto::UINT8, {}, {131});
  b.IntCodes("zc", onnx::TensorProto::UINT8, {}, {120});
  b.IntCodes("zy", onnx::TensorProto::UINT8, {}, {3});
  b.IntCodes("zw", onnx::TensorProto::INT8, {}, {0});
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> pick(-100, 100);
  std::vector<int32_t> w(8 * 8 * 9);
  for (int32_t& v : w) v = pick(rng);
  b.IntCodes("w", onnx::TensorProto::INT8, {8, 8, 3, 3}, w);
  b.Node("QuantizeLinear", {"x", "sx", "zx"}, {"xq"});
  b.Node("DequantizeLinear", {"xq", "sx", "zx"}, {"xd"});
  b.Node("DequantizeLinear", {"w", "sw", "zw"}, {"wd"});
  SetInts(b.Node("Conv", {"xd", "wd"}, {"c"}), "pads", {1, 1, 1, 1});
  b.Node("QuantizeLinear", {"c", "sc", "zc"}, {"cq"});
  b.Node("DequantizeLinear", {"cq", "sc", "zc"}, {"cd"});
  b.Node("Add", {"xd", "cd"}, {"sum"});
  b.Node("Relu", {"sum"}, {"r"});
  b.Node("QuantizeLinear", {"r", "sy", "zy"}, {"yq"});
  b.Node("DequantizeLinear", {"yq", "sy", "zy"}, {"y"});

  auto compiled = b.Compile();
  ASSERT_TRUE(compiled.ok()) << compiled.status().ToString();
  const auto ops = OpTypes(**compiled);
  EXPECT_TRUE(ops.count("lowbit.QAdd"));
  EXPECT_FALSE(ops.count("Add"));
  auto reference = CompileOnFloatPath(b);
  ASSERT_TRUE(reference.ok()) << reference.status().ToString();
  const Shape shape = {2, 8, 10, 10};
  const std::vector<float> x = RandomFloats(NumElements(shape), 4, -3.0f, 3.0f);
  for (int threads : {1, 2}) {
    const std::vector<float> got = RunOnce(**compiled, x, shape, threads);
    const std::vector<float> want = RunOnce(**reference, x, shape, threads);
    ASSERT_EQ(got.size(), want.size());
    size_t equal = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_LE(std::abs(got[i] - want[i]), 0.05f * 1.001f) << i;
      equal += got[i] == want[i];
    }
    EXPECT_GE(double(equal) / got.size(), 0.999) << threads << " threads";
  }
}

}  // namespace
}  // namespace lowbit::engine::testing
