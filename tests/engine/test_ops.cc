// Ops through the whole compiler + runtime, against naive loops and
// hand-computed values. Spatial ops run NHWC inside, so these also exercise
// layout assignment and the relayouts at the model's edges.
#include <cmath>

#include "engine_test_util.h"

namespace lowbit::engine {
namespace {

using testing::OnnxBuilder;

struct ConvCase {
  int64_t batch, in_channels, out_channels, groups, height, width, kernel_h, kernel_w;
  int64_t stride_h, stride_w, dilation_h, dilation_w;
  std::vector<int64_t> pads;  // top, left, bottom, right
  bool bias;
  int threads;
};

// Direct convolution over NCHW input and [M][C/group][kH][kW] weights.
std::vector<float> NaiveConv(const ConvCase& c, const std::vector<float>& x,
                             const std::vector<float>& w, const std::vector<float>& b,
                             int64_t out_h, int64_t out_w) {
  const int64_t group_in = c.in_channels / c.groups, group_out = c.out_channels / c.groups;
  std::vector<float> y(c.batch * c.out_channels * out_h * out_w);
  for (int64_t n = 0; n < c.batch; ++n)
    for (int64_t m = 0; m < c.out_channels; ++m)
      for (int64_t oy = 0; oy < out_h; ++oy)
        for (int64_t ox = 0; ox < out_w; ++ox) {
          double sum = c.bias ? b[m] : 0.0;
          const int64_t g = m / group_out;
          for (int64_t ci = 0; ci < group_in; ++ci)
            for (int64_t ky = 0; ky < c.kernel_h; ++ky)
              for (int64_t kx = 0; kx < c.kernel_w; ++kx) {
                const int64_t iy = oy * c.stride_h - c.pads[0] + ky * c.dilation_h;
                const int64_t ix = ox * c.stride_w - c.pads[1] + kx * c.dilation_w;
                if (iy < 0 || iy >= c.height || ix < 0 || ix >= c.width) continue;
                const int64_t channel = g * group_in + ci;
                sum += static_cast<double>(
                           x[((n * c.in_channels + channel) * c.height + iy) * c.width + ix]) *
                       w[((m * group_in + ci) * c.kernel_h + ky) * c.kernel_w + kx];
              }
          y[((n * c.out_channels + m) * out_h + oy) * out_w + ox] = static_cast<float>(sum);
        }
  return y;
}

class ConvTest : public ::testing::TestWithParam<ConvCase> {};

TEST_P(ConvTest, MatchesNaiveLoop) {
  const ConvCase c = GetParam();
  const int64_t group_in = c.in_channels / c.groups;
  const auto w = testing::RandomFloats(c.out_channels * group_in * c.kernel_h * c.kernel_w, 11);
  const auto b = testing::RandomFloats(c.out_channels, 12);
  const auto x = testing::RandomFloats(c.batch * c.in_channels * c.height * c.width, 13);
  OnnxBuilder builder;
  builder.Input("x", {-1, c.in_channels, c.height, c.width});
  builder.Floats("w", {c.out_channels, group_in, c.kernel_h, c.kernel_w}, w);
  builder.Floats("b", {c.out_channels}, b);
  auto& conv = builder.Node(
      "Conv", c.bias ? std::vector<std::string>{"x", "w", "b"} : std::vector<std::string>{"x", "w"},
      {"y"});
  testing::SetInt(conv, "group", c.groups);
  testing::SetInts(conv, "strides", {c.stride_h, c.stride_w});
  testing::SetInts(conv, "dilations", {c.dilation_h, c.dilation_w});
  testing::SetInts(conv, "pads", {c.pads[0], c.pads[1], c.pads[2], c.pads[3]});
  builder.Output("y");
  const int64_t out_h =
      (c.height + c.pads[0] + c.pads[2] - ((c.kernel_h - 1) * c.dilation_h + 1)) / c.stride_h + 1;
  const int64_t out_w =
      (c.width + c.pads[1] + c.pads[3] - ((c.kernel_w - 1) * c.dilation_w + 1)) / c.stride_w + 1;
  auto outputs = testing::RunModel(
      builder, "x", Tensor({c.batch, c.in_channels, c.height, c.width}, x), c.threads);
  ASSERT_EQ(outputs.size(), 1u);
  EXPECT_EQ(outputs[0].tensor.shape(), (Shape{c.batch, c.out_channels, out_h, out_w}));
  testing::ExpectNear(outputs[0].tensor.values(), NaiveConv(c, x, w, b, out_h, out_w), 2e-5f);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, ConvTest,
    ::testing::Values(
        ConvCase{1, 3, 8, 1, 7, 9, 3, 3, 1, 1, 1, 1, {1, 1, 1, 1}, true, 1},  // plain 3x3
        ConvCase{
            2, 4, 6, 2, 8, 8, 3, 3, 2, 2, 1, 1, {1, 0, 0, 1}, true, 2},  // groups, stride, odd pads
        ConvCase{1, 5, 5, 5, 9, 7, 5, 5, 1, 1, 1, 1, {2, 2, 2, 2}, true, 1},      // depthwise 5x5
        ConvCase{3, 4, 8, 4, 10, 10, 3, 3, 2, 2, 1, 1, {0, 0, 1, 1}, false, 2},   // depthwise x2,
                                                                                  // stride 2
        ConvCase{1, 3, 4, 1, 11, 11, 3, 3, 1, 2, 2, 3, {2, 3, 2, 3}, true, 1},    // dilation
        ConvCase{2, 16, 24, 1, 6, 5, 1, 1, 1, 1, 1, 1, {0, 0, 0, 0}, true, 2}));  // 1x1

// Input [[1,2],[3,4]] resized by ONNX Resize.
std::vector<float> Resize2x2(const std::string& mode, const std::string& transform,
                             const std::string& nearest_mode, const std::vector<int64_t>& sizes) {
  OnnxBuilder builder;
  builder.Input("x", {1, 1, 2, 2});
  builder.Ints("sizes", {4}, sizes);
  auto& resize = builder.Node("Resize", {"x", "", "", "sizes"}, {"y"});
  testing::SetString(resize, "mode", mode);
  testing::SetString(resize, "coordinate_transformation_mode", transform);
  if (!nearest_mode.empty()) testing::SetString(resize, "nearest_mode", nearest_mode);
  builder.Output("y");
  auto outputs = testing::RunModel(builder, "x", Tensor({1, 1, 2, 2}, {1, 2, 3, 4}));
  return outputs.empty() ? std::vector<float>{} : outputs[0].tensor.values();
}

TEST(ResizeTest, LinearHalfPixelUpscale) {
  // x source = (x + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25, clamped to [0, 1].
  testing::ExpectNear(
      Resize2x2("linear", "half_pixel", "", {1, 1, 4, 4}),
      {1, 1.25, 1.75, 2, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3, 3.25, 3.75, 4}, 1e-6f);
  // pytorch_half_pixel is the same whenever the output length is > 1.
  testing::ExpectNear(Resize2x2("linear", "pytorch_half_pixel", "", {1, 1, 4, 4}),
                      Resize2x2("linear", "half_pixel", "", {1, 1, 4, 4}), 0);
}

TEST(ResizeTest, LinearAlignCornersAndAsymmetric) {
  // align_corners to 3x3: source = x * (2 - 1) / (3 - 1) = 0, 0.5, 1.
  testing::ExpectNear(Resize2x2("linear", "align_corners", "", {1, 1, 3, 3}),
                      {1, 1.5, 2, 2, 2.5, 3, 3, 3.5, 4}, 1e-6f);
  // asymmetric to 3x3: source = x * 2/3 = 0, 0.667, 1.333 -> clamped 1.
  const float t = 2.0f / 3.0f;
  testing::ExpectNear(Resize2x2("linear", "asymmetric", "", {1, 1, 3, 3}),
                      {1, 1 + t, 2, 1 + 2 * t, 1 + 3 * t, 2 + 2 * t, 3, 3 + t, 4}, 1e-5f);
}

TEST(ResizeTest, NearestModes) {
  // asymmetric + floor: source x / 2 -> 0, 0, 1, 1.
  const std::vector<float> doubled = {1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4};
  testing::ExpectNear(Resize2x2("nearest", "asymmetric", "floor", {1, 1, 4, 4}), doubled, 0);
  // half_pixel + round_prefer_floor: -0.25, 0.25, 0.75, 1.25 round to 0, 0, 1, 1.
  testing::ExpectNear(Resize2x2("nearest", "half_pixel", "round_prefer_floor", {1, 1, 4, 4}),
                      doubled, 0);
  // asymmetric to 3x3: source 0, 0.667, 1.333; ceil -> 0, 1, 2 (clamped 1).
  testing::ExpectNear(Resize2x2("nearest", "asymmetric", "ceil", {1, 1, 3, 3}),
                      {1, 2, 2, 3, 4, 4, 3, 4, 4}, 0);
  // round_prefer_ceil with align_corners to 3x3: source 0, 0.5, 1 -> 0, 1, 1.
  testing::ExpectNear(Resize2x2("nearest", "align_corners", "round_prefer_ceil", {1, 1, 3, 3}),
                      {1, 2, 2, 3, 4, 4, 3, 4, 4}, 0);
  // round_prefer_floor on the same: 0.5 -> 0.
  testing::ExpectNear(Resize2x2("nearest", "align_corners", "round_prefer_floor", {1, 1, 3, 3}),
                      {1, 1, 2, 1, 1, 2, 3, 3, 4}, 0);
}

TEST(PoolTest, MaxPoolIgnoresPadding) {
  OnnxBuilder builder;
  builder.Input("x", {1, 1, 3, 3});
  auto& pool = builder.Node("MaxPool", {"x"}, {"y"});
  testing::SetInts(pool, "kernel_shape", {2, 2});
  testing::SetInts(pool, "strides", {2, 2});
  testing::SetInts(pool, "pads", {1, 1, 0, 0});
  builder.Output("y");
  auto outputs =
      testing::RunModel(builder, "x", Tensor({1, 1, 3, 3}, {-1, -2, -3, -4, -5, -6, -7, -8, -9}));
  ASSERT_EQ(outputs.size(), 1u);
  EXPECT_EQ(outputs[0].tensor.shape(), (Shape{1, 1, 2, 2}));
  // Windows: {x00}, {x01,x02}, {x10,x20}, {x11,x12,x21,x22}.
  testing::ExpectNear(outputs[0].tensor.values(), {-1, -2, -4, -5}, 0);
}

TEST(PoolTest, CeilModeMaxAndAveragePoolCountOnlyRealElements) {
  for (const std::string op : {"MaxPool", "AveragePool"}) {
    OnnxBuilder builder;
    builder.Input("x", {1, 1, 3, 3});
    auto& pool = builder.Node(op, {"x"}, {"y"});
    testing::SetInts(pool, "kernel_shape", {2, 2});
    testing::SetInts(pool, "strides", {2, 2});
    testing::SetInt(pool, "ceil_mode", 1);
    builder.Output("y");
    auto outputs =
        testing::RunModel(builder, "x", Tensor({1, 1, 3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9}));
    ASSERT_EQ(outputs.size(), 1u);
    EXPECT_EQ(outputs[0].tensor.shape(), (Shape{1, 1, 2, 2}));
    // Windows {1,2,4,5}, {3,6}, {7,8}, {9}.
    if (op == "MaxPool")
      testing::ExpectNear(outputs[0].tensor.values(), {5, 6, 8, 9}, 0);
    else
      testing::ExpectNear(outputs[0].tensor.values(), {3, 4.5f, 7.5f, 9}, 1e-6f);
  }
}

// Sub/Mul/Div/Max/Min between two activations and a broadcast constant, and
// Add + Relu fused into one kernel.
TEST(BinaryTest, BroadcastingArithmeticAndFusedAddRelu) {
  OnnxBuilder builder;
  builder.Input("x", {-1, 2, 3});
  builder.Floats("row", {3}, {1, -2, 4});
  builder.Floats("column", {2, 1}, {0.5f, -1});
  builder.Node("Sub", {"x", "row"}, {"sub"});       // x - row
  builder.Node("Mul", {"sub", "column"}, {"mul"});  // * column
  builder.Node("Div", {"mul", "row"}, {"div"});     // / row
  builder.Node("Max", {"div", "x"}, {"max"});
  builder.Node("Min", {"max", "sub"}, {"min"});
  builder.Node("Add", {"min", "x"}, {"sum"});
  builder.Node("Relu", {"sum"}, {"y"});
  builder.Output("y");
  auto model = builder.Compile();
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  int adds = 0, relus = 0;
  for (const LayerInfo& layer : (*model)->layers()) {
    adds += layer.op == "Add+Relu";
    relus += layer.op == "Relu";
  }
  EXPECT_EQ(adds, 1);
  EXPECT_EQ(relus, 0);
  const auto x = testing::RandomFloats(2 * 6, 51, -3, 3);
  auto outputs = testing::RunModel(builder, "x", Tensor({2, 2, 3}, x));
  ASSERT_EQ(outputs.size(), 1u);
  const float row[3] = {1, -2, 4}, column[2] = {0.5f, -1};
  std::vector<float> expected;
  for (int n = 0; n < 2; ++n)
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 3; ++j) {
        const float v = x[(n * 2 + i) * 3 + j];
        const float sub = v - row[j];
        const float div = sub * column[i] / row[j];
        const float min = std::min(std::max(div, v), sub);
        expected.push_back(std::max(0.0f, min + v));
      }
  testing::ExpectNear(outputs[0].tensor.values(), expected, 1e-5f);
}

TEST(UnaryTest, PlainLoopOps) {
  OnnxBuilder builder;
  builder.Input("x", {-1, 5});
  builder.Node("Abs", {"x"}, {"abs"});
  builder.Node("Sqrt", {"abs"}, {"sqrt"});
  builder.Node("Neg", {"sqrt"}, {"neg"});
  builder.Node("Exp", {"neg"}, {"exp"});
  builder.Node("Tanh", {"exp"}, {"y"});
  builder.Output("y");
  const std::vector<float> x = {-4, -0.25f, 0, 1, 9, 2, -2, 0.5f, 16, -1};
  auto outputs = testing::RunModel(builder, "x", Tensor({2, 5}, x), 2);
  ASSERT_EQ(outputs.size(), 1u);
  std::vector<float> expected;
  for (float v : x) expected.push_back(std::tanh(std::exp(-std::sqrt(std::fabs(v)))));
  testing::ExpectNear(outputs[0].tensor.values(), expected, 1e-6f);
}

// The same head pattern executed: outputs equal the NCHW reshape/transpose.
TEST(DataMovementTest, ReshapeTransposeViewsOfNhwcMemory) {
  OnnxBuilder builder;
  builder.Input("x", {-1, 2, 3, 4});
  builder.Floats("w", {2, 2, 1, 1}, {1, 0, 0, 1});  // identity 1x1 conv: NHWC inside
  builder.Ints("shape", {3}, {1, 2, 12});
  builder.Node("Conv", {"x", "w"}, {"c"});
  builder.Node("Reshape", {"c", "shape"}, {"r"});
  testing::SetInts(builder.Node("Transpose", {"r"}, {"y"}), "perm", {0, 2, 1});
  builder.Output("y");
  const auto x = testing::RandomFloats(2 * 24, 41);
  auto outputs = testing::RunModel(builder, "x", Tensor({2, 2, 3, 4}, x));
  ASSERT_EQ(outputs.size(), 1u);
  ASSERT_EQ(outputs[0].tensor.shape(), (Shape{2, 12, 2}));
  std::vector<float> expected;
  for (int n = 0; n < 2; ++n)
    for (int p = 0; p < 12; ++p)
      for (int c = 0; c < 2; ++c) expected.push_back(x[(n * 2 + c) * 12 + p]);
  testing::ExpectNear(outputs[0].tensor.values(), expected, 0);
}

// NHWC data movement: identity 1x1 conv (forces NHWC), then Split on
// channels, Concat in swapped order, per-channel Add, Slice on H, Pad on W,
// Sigmoid and LeakyRelu. Checked against the same steps on NCHW by hand.
TEST(DataMovementTest, SplitConcatSlicePadAddInNhwc) {
  const int64_t batch = 2, channels = 3, height = 4, width = 3;
  std::vector<float> identity(channels * channels, 0.0f);
  for (int64_t c = 0; c < channels; ++c) identity[c * channels + c] = 1.0f;
  OnnxBuilder builder;
  builder.Input("x", {-1, channels, height, width});
  builder.Floats("eye", {channels, channels, 1, 1}, identity);
  builder.Ints("split", {2}, {1, 2});
  builder.Floats("bias", {channels, 1, 1}, {10, 20, 30});
  builder.Ints("starts", {1}, {1});
  builder.Ints("ends", {1}, {3});
  builder.Ints("axes", {1}, {2});
  builder.Ints("pads", {8}, {0, 0, 0, 1, 0, 0, 0, 2});
  builder.Node("Conv", {"x", "eye"}, {"c"});
  auto& split = builder.Node("Split", {"c", "split"}, {"s0", "s1"});
  testing::SetInt(split, "axis", 1);
  testing::SetInt(builder.Node("Concat", {"s1", "s0"}, {"cat"}), "axis", 1);
  builder.Node("Add", {"cat", "bias"}, {"biased"});
  builder.Node("Slice", {"biased", "starts", "ends", "axes"}, {"sliced"});
  builder.Node("Pad", {"sliced", "pads"}, {"padded"});
  builder.Node("Sigmoid", {"padded"}, {"sig"});
  testing::SetFloat(builder.Node("LeakyRelu", {"padded"}, {"leaky"}), "alpha", 0.5f);
  builder.Output("sig");
  builder.Output("leaky");
  const auto x = testing::RandomFloats(batch * channels * height * width, 21, -40, 10);
  auto outputs = testing::RunModel(builder, "x", Tensor({batch, channels, height, width}, x), 2);
  ASSERT_EQ(outputs.size(), 2u);
  const Shape expected_shape = {batch, channels, 2, width + 3};
  ASSERT_EQ(outputs[0].tensor.shape(), expected_shape);
  ASSERT_EQ(outputs[1].tensor.shape(), expected_shape);
  const int64_t source_channel[3] = {1, 2, 0};  // concat(s1 = channels 1..2, s0 = channel 0)
  const float bias[3] = {10, 20, 30};
  size_t i = 0;
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t h = 0; h < 2; ++h)
        for (int64_t w = 0; w < width + 3; ++w, ++i) {
          float v = 0.0f;  // padding
          if (w >= 1 && w < width + 1)
            v = x[((n * channels + source_channel[c]) * height + (h + 1)) * width + (w - 1)] +
                bias[c];
          EXPECT_NEAR(outputs[0].tensor.values()[i], 1.0f / (1.0f + std::exp(-v)), 1e-6f) << i;
          EXPECT_NEAR(outputs[1].tensor.values()[i], v >= 0 ? v : 0.5f * v, 1e-5f) << i;
        }
}

// A batch of N frames equals N single-frame runs (the batch is the outer dim),
// also after the session's XNNPACK operators were set up for another batch.
TEST(BatchTest, BatchedRunEqualsFrameByFrame) {
  OnnxBuilder builder;
  builder.Input("x", {-1, 2, 5, 5});
  builder.Floats("w", {4, 2, 3, 3}, testing::RandomFloats(72, 31));
  builder.Floats("b", {4}, testing::RandomFloats(4, 32));
  builder.Floats("zeros", {1, 2, 3, 3}, std::vector<float>(18, 0.0f));
  auto& conv = builder.Node("Conv", {"x", "w", "b"}, {"c"});
  testing::SetInts(conv, "strides", {2, 2});
  testing::SetInts(conv, "pads", {1, 1, 1, 1});
  builder.Node("Relu", {"c"}, {"r"});
  // A batch-1 constant concatenated on channels is reused for every frame.
  testing::SetInt(builder.Node("Concat", {"r", "zeros"}, {"y"}), "axis", 1);
  builder.Output("y");
  // Fused into the convolution as a second XNNPACK operator run in place.
  builder.Node("Conv", {"x", "w", "b"}, {"c2"});
  testing::SetFloat(builder.Node("LeakyRelu", {"c2"}, {"z"}), "alpha", 0.25f);
  builder.Output("z");
  auto model = builder.Compile();
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  SessionOptions options;
  options.threads = 2;
  auto session = (*model)->CreateSession(options);
  ASSERT_TRUE(session.ok());
  const auto x = testing::RandomFloats(3 * 50, 33);
  std::vector<NamedTensor> batched;
  ASSERT_TRUE((*session)->Run({{"x", Tensor({3, 2, 5, 5}, x)}}, &batched).ok());
  ASSERT_EQ(batched[0].tensor.shape(), (Shape{3, 6, 3, 3}));
  for (int n = 0; n < 3; ++n) {
    std::vector<NamedTensor> single;
    std::vector<float> frame(x.begin() + n * 50, x.begin() + (n + 1) * 50);
    ASSERT_TRUE((*session)->Run({{"x", Tensor({1, 2, 5, 5}, frame)}}, &single).ok());
    std::vector<float> slice(batched[0].tensor.values().begin() + n * 54,
                             batched[0].tensor.values().begin() + (n + 1) * 54);
    testing::ExpectNear(slice, single[0].tensor.values(), 0);
    for (int i = 36; i < 54; ++i) EXPECT_EQ(slice[i], 0.0f);
    std::vector<float> leaky(batched[1].tensor.values().begin() + n * 36,
                             batched[1].tensor.values().begin() + (n + 1) * 36);
    testing::ExpectNear(leaky, single[1].tensor.values(), 0);
  }
}

}  // namespace
}  // namespace lowbit::engine
