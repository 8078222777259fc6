// ConvTranspose (2-D, float32) on NCHW activations in logical order.
// Weights are the ONNX [C][M/group][kH][kW]; `pads` ([top, left, bottom,
// right]) are explicit after shape inference (output_shape and auto_pad are
// resolved there). Each task writes one output channel plane of one frame:
// it starts from the bias and scatters every input pixel of the channel's
// group through the kernel window.
#include <algorithm>

#include "ops/kernel.h"

namespace lowbit::engine::ops {
namespace {

struct ConvTransposeGeometry {
  int64_t in_channels, in_h, in_w, out_channels, out_h, out_w, kh, kw, group;
  int64_t stride_h, stride_w, pad_top, pad_left, dilation_h, dilation_w;
};

class ConvTransposeKernel final : public FloatKernel {
 public:
  ConvTransposeKernel(ConvTransposeGeometry g, std::vector<float> weights, std::vector<float> bias)
      : g_(g), weights_(std::move(weights)), bias_(std::move(bias)) {}

  Status RunFloat(const KernelContext& context, const float* const* inputs,
                  float* const* outputs) override {
    const ConvTransposeGeometry& g = g_;
    const int64_t in_plane = g.in_h * g.in_w, out_plane = g.out_h * g.out_w;
    const int64_t group_in = g.in_channels / g.group, group_out = g.out_channels / g.group;
    ParallelFor(context, static_cast<size_t>(context.batch * g.out_channels), [&](size_t task) {
      const int64_t n = static_cast<int64_t>(task) / g.out_channels;
      const int64_t m = static_cast<int64_t>(task) % g.out_channels;
      const int64_t group = m / group_out, m_in_group = m % group_out;
      float* y = outputs[0] + (n * g.out_channels + m) * out_plane;
      std::fill(y, y + out_plane, bias_.empty() ? 0.0f : bias_[m]);
      for (int64_t ci = 0; ci < group_in; ++ci) {
        const int64_t c = group * group_in + ci;
        const float* x = inputs[0] + (n * g.in_channels + c) * in_plane;
        const float* w = weights_.data() + (c * group_out + m_in_group) * g.kh * g.kw;
        for (int64_t iy = 0; iy < g.in_h; ++iy)
          for (int64_t ix = 0; ix < g.in_w; ++ix) {
            const float v = x[iy * g.in_w + ix];
            for (int64_t ky = 0; ky < g.kh; ++ky) {
              const int64_t oy = iy * g.stride_h - g.pad_top + ky * g.dilation_h;
              if (oy < 0 || oy >= g.out_h) continue;
              for (int64_t kx = 0; kx < g.kw; ++kx) {
                const int64_t ox = ix * g.stride_w - g.pad_left + kx * g.dilation_w;
                if (ox < 0 || ox >= g.out_w) continue;
                y[oy * g.out_w + ox] += v * w[ky * g.kw + kx];
              }
            }
          }
      }
    });
    return Status::Ok();
  }

 private:
  ConvTransposeGeometry g_;
  std::vector<float> weights_;
  std::vector<float> bias_;
};

}  // namespace

StatusOr<std::unique_ptr<Kernel>> CreateConvTransposeKernel(const ir::Graph& graph,
                                                            const ir::Node& node) {
  const ir::Value& input = graph.values[node.inputs.at(0)];
  const ir::Value& output = graph.values[node.outputs[0]];
  const ir::Value& weights = graph.values[node.inputs.at(1)];
  if (input.dtype != ir::DataType::kFloat32 || !weights.is_constant() ||
      !weights.constant->is_float())
    return Unimplemented(node.Describe() + ": needs a float32 input and constant float32 weights");
  if (!input.storage_perm.empty() || !output.storage_perm.empty())
    return Internal(node.Describe() + ": expects NCHW activations in logical order");
  ConvTransposeGeometry g{};
  g.in_channels = input.shape[1];
  g.in_h = input.shape[2];
  g.in_w = input.shape[3];
  g.out_channels = output.shape[1];
  g.out_h = output.shape[2];
  g.out_w = output.shape[3];
  g.kh = weights.shape[2];
  g.kw = weights.shape[3];
  g.group = node.GetInt("group", 1);
  const auto strides = node.GetInts("strides", {1, 1});
  const auto pads = node.GetInts("pads", {0, 0, 0, 0});
  const auto dilations = node.GetInts("dilations", {1, 1});
  g.stride_h = strides[0];
  g.stride_w = strides[1];
  g.pad_top = pads[0];
  g.pad_left = pads[1];
  g.dilation_h = dilations[0];
  g.dilation_w = dilations[1];
  std::vector<float> bias;
  if (ir::HasInput(node, 2)) {
    LOWBIT_ASSIGN_OR_RETURN(bias, ir::ConstantFloats(graph, node, 2));
  }
  return std::unique_ptr<Kernel>(
      new ConvTransposeKernel(g, weights.constant->floats, std::move(bias)));
}

}  // namespace lowbit::engine::ops
