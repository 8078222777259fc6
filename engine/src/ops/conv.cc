// FP32 2-D convolution on NHWC activations through XNNPACK.
// ONNX weights [M][C/group][kH][kW] are repacked to XNNPACK's
// [group][M/group][kH][kW][C/group]; the bias is [M]. XNNPACK starts each
// accumulator at the bias, so every partial sum rounds at the scale of the
// bias: with biases large against the products (BN-folded exports such as
// YOLOv8) that is 3-5x the rounding error of summing the products first. The
// bias (and a fused Relu/Clip) is therefore applied in one pass over the
// output after XNNPACK's bias-free sum; without a bias the clamp stays
// XNNPACK's. A fused LeakyRelu runs on the output after.
#include <xnnpack.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>
#include <optional>
#include <vector>

#include "ops/kernel.h"
#include "ops/xnnpack_util.h"
#include "ir/node_semantics.h"

namespace lowbit::engine::ops {
namespace {

class XnnpackConv final : public FloatKernel {
 public:
  Status Init(const ir::Graph& graph, const ir::Node& node) {
    LOWBIT_RETURN_IF_ERROR(InitializeXnnpack());
    const ir::Value& input = graph.values[node.inputs[0]];
    const ir::Value& output = graph.values[node.outputs[0]];
    const ir::Value& weights = graph.values[node.inputs[1]];
    if (!weights.is_constant() || !weights.constant->is_float())
      return Unimplemented(node.Describe() + ": weights must be a float32 constant");
    const bool gathers_patches = ir::ConvGathersPatches(graph, node);
    if ((!gathers_patches && input.storage_perm != std::vector<int>{0, 2, 3, 1}) ||
        output.storage_perm != std::vector<int>{0, 2, 3, 1})
      return Internal(node.Describe() + ": convolution expects NHWC activations");
    const Shape& w = weights.shape;  // [M, C/group, kH, kW]
    const int64_t groups = node.GetInt("group", 1);
    const int64_t out_channels = w[0], group_in = w[1], kh = w[2], kw = w[3];
    const int64_t group_out = out_channels / groups;
    in_height_ = input.shape[2];
    in_width_ = input.shape[3];
    in_frame_ = NumElements(input.shape);
    out_frame_ = NumElements(output.shape);
    const std::vector<int64_t> pads = node.GetInts("pads", {0, 0, 0, 0});
    const std::vector<int64_t> strides = node.GetInts("strides", {1, 1});
    const std::vector<int64_t> dilations = node.GetInts("dilations", {1, 1});

    std::vector<float> packed(NumElements(w));
    const std::vector<float>& src = weights.constant->floats;
    for (int64_t o = 0; o < out_channels; ++o)
      for (int64_t c = 0; c < group_in; ++c)
        for (int64_t y = 0; y < kh; ++y)
          for (int64_t x = 0; x < kw; ++x)
            packed[((o * kh + y) * kw + x) * group_in + c] =
                src[((o * group_in + c) * kh + y) * kw + x];
    std::vector<float> bias(out_channels, 0.0f);
    if (ir::HasInput(node, 2)) {
      LOWBIT_ASSIGN_OR_RETURN(bias, ir::ConstantFloats(graph, node, 2));
    }
    const ClampRange clamp = FusedClampRange(node);
    bool any_bias = false;
    for (float v : bias) any_bias = any_bias || v != 0.0f;
    if (any_bias) {
      bias_ = bias;
      clamp_ = clamp;
      out_pixels_ = output.shape[2] * output.shape[3];
      std::fill(bias.begin(), bias.end(), 0.0f);
    }
    const float xnn_min = any_bias ? -std::numeric_limits<float>::infinity() : clamp.min;
    const float xnn_max = any_bias ? std::numeric_limits<float>::infinity() : clamp.max;
    if (node.GetString("lowbit_activation", "") == "leaky_relu") {
      out_pixels_ = output.shape[2] * output.shape[3];
      if (xnn_create_leaky_relu_nc_f32(out_channels, out_channels, out_channels,
                                       node.GetFloat("lowbit_alpha", 0.01f), 0,
                                       leaky_relu_.Receive()) != xnn_status_success)
        return Internal(node.Describe() + ": XNNPACK rejected the fused leaky relu");
    }
    // Few input channels (the first layer on RGB): XNNPACK's direct path runs
    // at ~11 GFLOPS there, so gather patches ourselves and run a 1x1 conv
    // (a GEMM with K = kH * kW * C) at its full speed. The packed
    // [M][kH][kW][C] weights are exactly the 1x1 conv's [M][K].
    xnn_status status;
    if (gathers_patches) {
      // Element strides of the input's logical C, H and W axes in memory.
      const Operand in = DescribeOperand(input);
      patch_ = Patch{kh,
                     kw,
                     strides[0],
                     strides[1],
                     dilations[0],
                     dilations[1],
                     pads[0],
                     pads[1],
                     group_in,
                     output.shape[2],
                     output.shape[3],
                     in.ElementStride(1),
                     in.ElementStride(2),
                     in.ElementStride(3)};
      const int64_t k = kh * kw * group_in;
      status = xnn_create_convolution2d_nhwc_f32(0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, k, out_channels,
                                                 k, out_channels, packed.data(), bias.data(),
                                                 xnn_min, xnn_max, 0, convolution_.Receive());
    } else {
      status = xnn_create_convolution2d_nhwc_f32(
          pads[0], pads[3], pads[2], pads[1], kh, kw, strides[0], strides[1], dilations[0],
          dilations[1], groups, group_in, group_out, group_in * groups, out_channels, packed.data(),
          bias.data(), xnn_min, xnn_max, 0, convolution_.Receive());
    }
    if (status != xnn_status_success)
      return Internal(node.Describe() + ": XNNPACK rejected the convolution (status " +
                      std::to_string(status) + ")");
    return Status::Ok();
  }

  Status RunFloat(const KernelContext& context, const float* const* inputs,
             float* const* outputs) override {
    const float* input = inputs[0];
    size_t height = in_height_, width = in_width_;
    if (patch_) {
      GatherPatches(context, inputs[0]);
      input = patches_.data();
      height = patch_->out_height;
      width = patch_->out_width;
    }
    LOWBIT_RETURN_IF_ERROR(convolution_.Run(
        {context, input, outputs[0]},
        [&](xnn_operator_t op) {
          return xnn_setup_convolution2d_nhwc_f32(op, context.batch, height, width, input,
                                                  outputs[0], context.threadpool);
        },
        "convolution"));
    if (!bias_.empty()) AddBiasAndClamp(context, outputs[0]);
    if (!leaky_relu_.created()) return Status::Ok();
    // In place on the conv output: [N * OH * OW] pixels of M channels.
    return leaky_relu_.Run(
        {context, outputs[0], outputs[0]},
        [&](xnn_operator_t op) {
          return xnn_setup_leaky_relu_nc_f32(op, context.batch * out_pixels_, outputs[0],
                                             outputs[0], context.threadpool);
        },
        "leaky relu");
  }

 private:
  // im2col geometry: patches are [N][OH][OW][kH][kW][C], zeros outside the input.
  struct Patch {
    int64_t kernel_h, kernel_w, stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left;
    int64_t channels, out_height, out_width;
    int64_t channel_stride, row_stride, column_stride;  // input elements, any storage order
  };

  void GatherPatches(const KernelContext& context, const float* input) {
    const Patch& p = *patch_;
    const int64_t row_elements = p.out_width * p.kernel_h * p.kernel_w * p.channels;
    patches_.resize(context.batch * p.out_height * row_elements);
    ParallelFor(context, static_cast<size_t>(context.batch * p.out_height), [&](size_t task) {
      const int64_t n = task / p.out_height, oy = task % p.out_height;
      const float* frame = input + n * in_frame_;
      float* dst = patches_.data() + task * row_elements;
      for (int64_t ox = 0; ox < p.out_width; ++ox)
        for (int64_t ky = 0; ky < p.kernel_h; ++ky) {
          const int64_t iy = oy * p.stride_h - p.pad_top + ky * p.dilation_h;
          for (int64_t kx = 0; kx < p.kernel_w; ++kx, dst += p.channels) {
            const int64_t ix = ox * p.stride_w - p.pad_left + kx * p.dilation_w;
            if (iy < 0 || iy >= in_height_ || ix < 0 || ix >= in_width_) {
              for (int64_t c = 0; c < p.channels; ++c) dst[c] = 0.0f;
            } else {
              const float* src = frame + iy * p.row_stride + ix * p.column_stride;
              for (int64_t c = 0; c < p.channels; ++c) dst[c] = src[c * p.channel_stride];
            }
          }
        }
    });
  }

  // In place on the NHWC output: y = clamp(y + bias[m]).
  void AddBiasAndClamp(const KernelContext& context, float* output) const {
    const int64_t channels = static_cast<int64_t>(bias_.size());
    const int64_t pixels = context.batch * out_pixels_;
    const float lo = clamp_.min, hi = clamp_.max;
    ParallelForRanges(context, pixels, std::max<int64_t>(1, 16384 / channels),
                      [&](int64_t begin, int64_t end) {
                        for (int64_t p = begin; p < end; ++p) {
                          float* y = output + p * channels;
                          for (int64_t m = 0; m < channels; ++m)
                            y[m] = std::min(std::max(y[m] + bias_[m], lo), hi);
                        }
                      });
  }

  std::optional<Patch> patch_;
  std::vector<float> bias_;  // [M], added after the sum; empty: XNNPACK adds it (all zero)
  ClampRange clamp_{-std::numeric_limits<float>::infinity(),
                    std::numeric_limits<float>::infinity()};
  std::vector<float> patches_;  // grows to the largest batch seen
  XnnpackOperator convolution_;
  int64_t in_height_ = 0, in_width_ = 0, in_frame_ = 0, out_frame_ = 0;
  // Fused LeakyRelu, run in place after the convolution.
  XnnpackOperator leaky_relu_;
  int64_t out_pixels_ = 0;
};

}  // namespace

StatusOr<std::unique_ptr<Kernel>> CreateConvKernel(const ir::Graph& graph, const ir::Node& node) {
  auto kernel = std::make_unique<XnnpackConv>();
  LOWBIT_RETURN_IF_ERROR(kernel->Init(graph, node));
  return std::unique_ptr<Kernel>(std::move(kernel));
}

}  // namespace lowbit::engine::ops
