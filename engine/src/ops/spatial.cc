// Pooling and Resize on NHWC activations ([N][H][W][C] floats).
#include <algorithm>
#include <cmath>
#include <limits>

#include "ops/kernel.h"
#include "ops/xnnpack_util.h"

namespace lowbit::engine::ops {
namespace {

struct Nhwc {
  int64_t h = 0, w = 0, c = 0;
  int64_t frame() const { return h * w * c; }
};

Nhwc NhwcOf(const ir::Value& value) { return {value.shape[2], value.shape[3], value.shape[1]}; }

class PoolKernel final : public FloatKernel {
 public:
  PoolKernel(bool is_max, Nhwc in, Nhwc out, std::vector<int64_t> kernel,
             std::vector<int64_t> strides, std::vector<int64_t> pads,
             std::vector<int64_t> dilations, bool count_include_pad)
      : is_max_(is_max),
        in_(in),
        out_(out),
        kernel_(std::move(kernel)),
        strides_(std::move(strides)),
        pads_(std::move(pads)),
        dilations_(std::move(dilations)),
        count_include_pad_(count_include_pad) {}

  Status RunFloat(const KernelContext& context, const float* const* inputs,
             float* const* outputs) override {
    const int64_t c = in_.c;
    ParallelFor(context, static_cast<size_t>(context.batch * out_.h), [&](size_t task) {
      const int64_t n = task / out_.h, oy = task % out_.h;
      const float* in = inputs[0] + n * in_.frame();
      float* row = outputs[0] + n * out_.frame() + oy * out_.w * c;
      std::vector<float> acc(c);
      for (int64_t ox = 0; ox < out_.w; ++ox) {
        std::fill(acc.begin(), acc.end(), is_max_ ? -std::numeric_limits<float>::infinity() : 0.0f);
        int64_t count = 0;
        for (int64_t ky = 0; ky < kernel_[0]; ++ky) {
          const int64_t iy = oy * strides_[0] - pads_[0] + ky * dilations_[0];
          for (int64_t kx = 0; kx < kernel_[1]; ++kx) {
            const int64_t ix = ox * strides_[1] - pads_[1] + kx * dilations_[1];
            const bool inside = iy >= 0 && iy < in_.h && ix >= 0 && ix < in_.w;
            // count_include_pad counts the explicit pad box, not ceil_mode overhang.
            if (count_include_pad_ && iy < in_.h + pads_[2] && ix < in_.w + pads_[3]) ++count;
            if (!inside) continue;
            if (!count_include_pad_) ++count;
            const float* px = in + (iy * in_.w + ix) * c;
            if (is_max_)
              for (int64_t k = 0; k < c; ++k) acc[k] = std::max(acc[k], px[k]);
            else
              for (int64_t k = 0; k < c; ++k) acc[k] += px[k];
          }
        }
        float* dst = row + ox * c;
        if (is_max_)
          std::copy(acc.begin(), acc.end(), dst);
        else
          for (int64_t k = 0; k < c; ++k) dst[k] = count ? acc[k] / count : 0.0f;
      }
    });
    return Status::Ok();
  }

 private:
  bool is_max_;
  Nhwc in_, out_;
  std::vector<int64_t> kernel_, strides_, pads_, dilations_;
  bool count_include_pad_;
};

// MaxPool through XNNPACK (floor-mode output sizes; ceil_mode uses PoolKernel).
class XnnpackMaxPoolKernel final : public FloatKernel {
 public:
  XnnpackMaxPoolKernel(Nhwc in) : in_(in) {}
  Status Create(const std::vector<int64_t>& kernel, const std::vector<int64_t>& strides,
                const std::vector<int64_t>& pads, const std::vector<int64_t>& dilations) {
    LOWBIT_RETURN_IF_ERROR(InitializeXnnpack());
    if (xnn_create_max_pooling2d_nhwc_f32(pads[0], pads[3], pads[2], pads[1], kernel[0], kernel[1],
                                          strides[0], strides[1], dilations[0], dilations[1], in_.c,
                                          in_.c, in_.c, -std::numeric_limits<float>::infinity(),
                                          std::numeric_limits<float>::infinity(), 0,
                                          op_.Receive()) != xnn_status_success)
      return Internal("XNNPACK rejected the max pooling");
    return Status::Ok();
  }
  Status RunFloat(const KernelContext& context, const float* const* inputs,
             float* const* outputs) override {
    return op_.Run(
        {context, inputs[0], outputs[0]},
        [&](xnn_operator_t op) {
          return xnn_setup_max_pooling2d_nhwc_f32(op, context.batch, in_.h, in_.w, inputs[0],
                                                  outputs[0], context.threadpool);
        },
        "max pooling");
  }

 private:
  Nhwc in_;
  XnnpackOperator op_;
};

// MaxPool of u8 codes through XNNPACK (the lowering pass pools codes: with a
// positive scale, max commutes with dequantization).
class XnnpackMaxPoolU8Kernel final : public Kernel {
 public:
  XnnpackMaxPoolU8Kernel(Nhwc in) : in_(in) {}
  Status Create(const std::vector<int64_t>& kernel, const std::vector<int64_t>& strides,
                const std::vector<int64_t>& pads, const std::vector<int64_t>& dilations) {
    LOWBIT_RETURN_IF_ERROR(InitializeXnnpack());
    if (xnn_create_max_pooling2d_nhwc_u8(pads[0], pads[3], pads[2], pads[1], kernel[0], kernel[1],
                                         strides[0], strides[1], dilations[0], dilations[1], in_.c,
                                         in_.c, in_.c, 0, 255, 0,
                                         op_.Receive()) != xnn_status_success)
      return Internal("XNNPACK rejected the u8 max pooling");
    return Status::Ok();
  }
  Status Run(const KernelContext& context, const void* const* inputs,
             void* const* outputs) override {
    const auto* in = static_cast<const uint8_t*>(inputs[0]);
    auto* out = static_cast<uint8_t*>(outputs[0]);
    return op_.Run(
        {context, reinterpret_cast<const float*>(in), reinterpret_cast<const float*>(out)},
        [&](xnn_operator_t op) {
          return xnn_setup_max_pooling2d_nhwc_u8(op, context.batch, in_.h, in_.w, in, out,
                                                 context.threadpool);
        },
        "u8 max pooling");
  }

 private:
  Nhwc in_;
  XnnpackOperator op_;
};

// One output coordinate along an axis: two source indices and the weight of
// the second (nearest: weight 0, index0 == index1).
struct Tap {
  int64_t index0 = 0, index1 = 0;
  float weight1 = 0;
};

// Nearest Resize of u8 codes (the lowering pass resizes codes: nearest
// sampling commutes with dequantization). Taps have weight 0.
class NearestCodesKernel final : public Kernel {
 public:
  NearestCodesKernel(Nhwc in, Nhwc out, std::vector<Tap> rows, std::vector<Tap> cols)
      : in_(in), out_(out), rows_(std::move(rows)), cols_(std::move(cols)) {}

  Status Run(const KernelContext& context, const void* const* inputs,
             void* const* outputs) override {
    const int64_t c = in_.c;
    ParallelFor(context, static_cast<size_t>(context.batch * out_.h), [&](size_t task) {
      const int64_t n = task / out_.h, oy = task % out_.h;
      const uint8_t* row = static_cast<const uint8_t*>(inputs[0]) + n * in_.frame() +
                           rows_[oy].index0 * in_.w * c;
      uint8_t* dst = static_cast<uint8_t*>(outputs[0]) + n * out_.frame() + oy * out_.w * c;
      for (int64_t ox = 0; ox < out_.w; ++ox, dst += c)
        std::copy(row + cols_[ox].index0 * c, row + cols_[ox].index0 * c + c, dst);
    });
    return Status::Ok();
  }

 private:
  Nhwc in_, out_;
  std::vector<Tap> rows_, cols_;
};

class ResizeKernel final : public FloatKernel {
 public:
  ResizeKernel(Nhwc in, Nhwc out, std::vector<Tap> rows, std::vector<Tap> cols)
      : in_(in), out_(out), rows_(std::move(rows)), cols_(std::move(cols)) {}

  Status RunFloat(const KernelContext& context, const float* const* inputs,
             float* const* outputs) override {
    const int64_t c = in_.c;
    ParallelFor(context, static_cast<size_t>(context.batch * out_.h), [&](size_t task) {
      const int64_t n = task / out_.h, oy = task % out_.h;
      const Tap& ty = rows_[oy];
      const float* in = inputs[0] + n * in_.frame();
      const float* row0 = in + ty.index0 * in_.w * c;
      const float* row1 = in + ty.index1 * in_.w * c;
      float* dst = outputs[0] + n * out_.frame() + oy * out_.w * c;
      const float wy = ty.weight1;
      for (int64_t ox = 0; ox < out_.w; ++ox, dst += c) {
        const Tap& tx = cols_[ox];
        const float* p00 = row0 + tx.index0 * c;
        const float* p01 = row0 + tx.index1 * c;
        const float* p10 = row1 + tx.index0 * c;
        const float* p11 = row1 + tx.index1 * c;
        const float wx = tx.weight1;
        if (wx == 0.0f && wy == 0.0f) {
          std::copy(p00, p00 + c, dst);
          continue;
        }
        for (int64_t k = 0; k < c; ++k) {
          const float top = p00[k] + (p01[k] - p00[k]) * wx;
          const float bottom = p10[k] + (p11[k] - p10[k]) * wx;
          dst[k] = top + (bottom - top) * wy;
        }
      }
    });
    return Status::Ok();
  }

 private:
  Nhwc in_, out_;
  std::vector<Tap> rows_, cols_;
};

// Source coordinate of output index `x` per ONNX coordinate_transformation_mode.
StatusOr<float> SourceCoordinate(const std::string& mode, int64_t x, int64_t in_size,
                                 int64_t out_size, float scale) {
  if (mode == "half_pixel") return (x + 0.5f) / scale - 0.5f;
  if (mode == "pytorch_half_pixel") return out_size > 1 ? (x + 0.5f) / scale - 0.5f : 0.0f;
  if (mode == "asymmetric") return x / scale;
  if (mode == "align_corners")
    return out_size == 1 ? 0.0f : x * static_cast<float>(in_size - 1) / (out_size - 1);
  if (mode == "tf_half_pixel_for_nn") return (x + 0.5f) / scale;
  return Unimplemented("Resize coordinate_transformation_mode '" + mode + "'");
}

StatusOr<std::vector<Tap>> MakeTaps(const ir::Node& node, bool linear, int64_t in_size,
                                    int64_t out_size, float scale) {
  const std::string mode = node.GetString("coordinate_transformation_mode", "half_pixel");
  const std::string nearest_mode = node.GetString("nearest_mode", "round_prefer_floor");
  std::vector<Tap> taps(out_size);
  for (int64_t x = 0; x < out_size; ++x) {
    LOWBIT_ASSIGN_OR_RETURN(float source, SourceCoordinate(mode, x, in_size, out_size, scale));
    Tap& tap = taps[x];
    if (linear) {
      source = std::clamp(source, 0.0f, static_cast<float>(in_size - 1));
      tap.index0 = static_cast<int64_t>(std::floor(source));
      tap.index1 = std::min(tap.index0 + 1, in_size - 1);
      tap.weight1 = source - tap.index0;
      continue;
    }
    float rounded;
    if (nearest_mode == "round_prefer_floor")
      rounded = source == std::floor(source) + 0.5f ? std::floor(source) : std::round(source);
    else if (nearest_mode == "round_prefer_ceil")
      rounded = std::round(source);
    else if (nearest_mode == "floor")
      rounded = std::floor(source);
    else if (nearest_mode == "ceil")
      rounded = std::ceil(source);
    else
      return Unimplemented(node.Describe() + ": nearest_mode '" + nearest_mode + "'");
    tap.index0 = tap.index1 = std::clamp<int64_t>(static_cast<int64_t>(rounded), 0, in_size - 1);
  }
  return taps;
}

}  // namespace

StatusOr<std::unique_ptr<Kernel>> CreateSpatialKernel(const ir::Graph& graph,
                                                      const ir::Node& node) {
  const ir::Value& input = graph.values[node.inputs[0]];
  const ir::Value& output = graph.values[node.outputs[0]];
  if (input.storage_perm != std::vector<int>{0, 2, 3, 1})
    return Internal(node.Describe() + ": expects an NHWC input");
  const Nhwc in = NhwcOf(input), out = NhwcOf(output);
  const std::string& op = node.op_type;
  if (op == "MaxPool" || op == "AveragePool") {
    if (node.GetInt("storage_order", 0) != 0)
      return Unimplemented(node.Describe() + ": storage_order 1");
    const std::vector<int64_t> kernel = node.GetInts("kernel_shape");
    if (input.dtype == ir::DataType::kUInt8) {
      if (op != "MaxPool" || node.GetInt("ceil_mode", 0) != 0)
        return Unimplemented(node.Describe() + ": only floor-mode MaxPool runs on u8 codes");
      auto pool = std::make_unique<XnnpackMaxPoolU8Kernel>(in);
      LOWBIT_RETURN_IF_ERROR(pool->Create(kernel, node.GetInts("strides", {1, 1}),
                                          node.GetInts("pads", {0, 0, 0, 0}),
                                          node.GetInts("dilations", {1, 1}))
                                 .WithContext(node.Describe()));
      return std::unique_ptr<Kernel>(std::move(pool));
    }
    if (input.dtype != ir::DataType::kFloat32)
      return Unimplemented(node.Describe() + ": " + ir::DataTypeName(input.dtype) + " input");
    if (op == "MaxPool" && node.GetInt("ceil_mode", 0) == 0 && kernel[0] * kernel[1] > 1) {
      auto xnnpack = std::make_unique<XnnpackMaxPoolKernel>(in);
      if (xnnpack
              ->Create(kernel, node.GetInts("strides", {1, 1}), node.GetInts("pads", {0, 0, 0, 0}),
                       node.GetInts("dilations", {1, 1}))
              .ok())
        return std::unique_ptr<Kernel>(std::move(xnnpack));
    }
    return std::unique_ptr<Kernel>(new PoolKernel(
        op == "MaxPool", in, out, node.GetInts("kernel_shape"), node.GetInts("strides", {1, 1}),
        node.GetInts("pads", {0, 0, 0, 0}), node.GetInts("dilations", {1, 1}),
        node.GetInt("count_include_pad", 0) != 0));
  }
  if (op == "GlobalAveragePool") {
    return std::unique_ptr<Kernel>(
        new PoolKernel(false, in, out, {in.h, in.w}, {1, 1}, {0, 0, 0, 0}, {1, 1}, false));
  }
  // Resize / Upsample.
  const std::string mode = node.GetString("mode", "nearest");
  const bool linear = mode == "linear" || mode == "bilinear";
  if (!linear && mode != "nearest")
    return Unimplemented(node.Describe() + ": Resize mode '" + mode +
                         "' (nearest and linear only)");
  if (node.GetInt("exclude_outside", 0) != 0 || node.GetInt("antialias", 0) != 0)
    return Unimplemented(node.Describe() + ": exclude_outside/antialias");
  // Scales as ONNX uses them for coordinates: the given scales, else out/in.
  float scale_h = static_cast<float>(out.h) / in.h, scale_w = static_cast<float>(out.w) / in.w;
  std::vector<float> scales;
  if (op == "Upsample" || graph.opset < 11) {
    if (node.has("scales"))
      scales = node.attributes.at("scales").floats;
    else if (ir::HasInput(node, 1)) {
      LOWBIT_ASSIGN_OR_RETURN(scales, ir::ConstantFloats(graph, node, 1));
    }
  } else if (ir::HasInput(node, 2) && NumElements(graph.values[node.inputs[2]].shape) > 0) {
    LOWBIT_ASSIGN_OR_RETURN(scales, ir::ConstantFloats(graph, node, 2));
  }
  if (scales.size() == 4) {
    scale_h = scales[2];
    scale_w = scales[3];
  }
  if (graph.opset < 11 && !node.has("coordinate_transformation_mode")) {
    // Upsample / Resize-10 semantics.
    ir::Node legacy = node;
    legacy.attributes["coordinate_transformation_mode"] = ir::Attribute::String("asymmetric");
    legacy.attributes["nearest_mode"] = ir::Attribute::String("floor");
    LOWBIT_ASSIGN_OR_RETURN(auto rows, MakeTaps(legacy, linear, in.h, out.h, scale_h));
    LOWBIT_ASSIGN_OR_RETURN(auto cols, MakeTaps(legacy, linear, in.w, out.w, scale_w));
    if (input.dtype == ir::DataType::kUInt8 && !linear)
      return std::unique_ptr<Kernel>(
          new NearestCodesKernel(in, out, std::move(rows), std::move(cols)));
    return std::unique_ptr<Kernel>(new ResizeKernel(in, out, std::move(rows), std::move(cols)));
  }
  if (node.GetString("coordinate_transformation_mode", "half_pixel") == "tf_crop_and_resize")
    return Unimplemented(node.Describe() + ": tf_crop_and_resize");
  LOWBIT_ASSIGN_OR_RETURN(auto rows, MakeTaps(node, linear, in.h, out.h, scale_h));
  LOWBIT_ASSIGN_OR_RETURN(auto cols, MakeTaps(node, linear, in.w, out.w, scale_w));
  if (input.dtype == ir::DataType::kUInt8) {
    if (linear) return Unimplemented(node.Describe() + ": only nearest Resize runs on u8 codes");
    return std::unique_ptr<Kernel>(
        new NearestCodesKernel(in, out, std::move(rows), std::move(cols)));
  }
  return std::unique_ptr<Kernel>(new ResizeKernel(in, out, std::move(rows), std::move(cols)));
}

}  // namespace lowbit::engine::ops
