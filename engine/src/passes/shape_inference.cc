// Shape and element-type inference for every op the engine imports.
#include <algorithm>
#include <climits>
#include <cmath>
#include <set>

#include "ir/quant_ops.h"
#include "passes/passes.h"

namespace lowbit::engine::passes {
namespace {

using ir::DataType;
using ir::Graph;
using ir::Node;
using ir::Value;

const std::set<std::string> kUnaryOps = {
    "Relu",        "LeakyRelu", "Sigmoid", "Clip",     "Tanh",    "Exp",
    "Neg",         "Sqrt",      "Abs",     "Identity", "Softmax", "Erf",
    "HardSigmoid", "HardSwish", "Floor",   "Ceil",     "Not",     "lowbit.Relayout",
    "PRelu",       "lowbit.SiLU"};
const std::set<std::string> kBroadcastOps = {"Add",   "Sub", "Mul",   "Div",  "Pow",
                                             "Max",   "Min", "Equal", "Less", "Greater",
                                             "Where", "And", "Or"};
const std::set<std::string> kComparisonOps = {"Equal", "Less", "Greater", "And", "Or", "Not"};

Status ShapeError(const Node& node, const std::string& message) {
  return InvalidArgument(node.Describe() + ": " + message);
}

StatusOr<Shape> BroadcastShapes(const Node& node, const std::vector<Shape>& shapes) {
  size_t rank = 0;
  for (const Shape& s : shapes) rank = std::max(rank, s.size());
  Shape result(rank, 1);
  for (const Shape& s : shapes) {
    for (size_t i = 0; i < s.size(); ++i) {
      int64_t& r = result[rank - s.size() + i];
      int64_t d = s[i];
      if (d == r || d == 1) continue;
      if (r == 1) {
        r = d;
        continue;
      }
      return ShapeError(node, "shapes cannot be broadcast together: " + ShapeToString(s) + " vs " +
                                  ShapeToString(result));
    }
  }
  return result;
}

// Resolves auto_pad into explicit `pads` ([begin..., end...]) and returns the
// output spatial sizes of a conv or pool over `spatial` input sizes.
StatusOr<Shape> WindowOutputSizes(Node* node, const Shape& spatial, const Shape& kernel) {
  const size_t n = spatial.size();
  std::vector<int64_t> strides = node->GetInts("strides", std::vector<int64_t>(n, 1));
  std::vector<int64_t> dilations = node->GetInts("dilations", std::vector<int64_t>(n, 1));
  std::vector<int64_t> pads = node->GetInts("pads", std::vector<int64_t>(2 * n, 0));
  if (strides.size() != n || dilations.size() != n || pads.size() != 2 * n)
    return ShapeError(
        *node, "strides/dilations/pads do not match " + std::to_string(n) + " spatial dimensions");
  const std::string auto_pad = node->GetString("auto_pad", "NOTSET");
  const bool ceil_mode = node->GetInt("ceil_mode", 0) != 0;
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    if (strides[i] < 1 || dilations[i] < 1 || kernel[i] < 1)
      return ShapeError(*node, "strides, dilations and kernel sizes must be >= 1");
    const int64_t extent = (kernel[i] - 1) * dilations[i] + 1;
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      out[i] = (spatial[i] + strides[i] - 1) / strides[i];
      int64_t total = std::max<int64_t>(0, (out[i] - 1) * strides[i] + extent - spatial[i]);
      int64_t small = total / 2, large = total - small;
      pads[i] = auto_pad == "SAME_UPPER" ? small : large;
      pads[i + n] = auto_pad == "SAME_UPPER" ? large : small;
      continue;
    }
    if (auto_pad == "VALID")
      pads[i] = pads[i + n] = 0;
    else if (auto_pad != "NOTSET" && !auto_pad.empty())
      return ShapeError(*node, "unknown auto_pad '" + auto_pad + "'");
    const int64_t span = spatial[i] + pads[i] + pads[i + n] - extent;
    if (span < 0) return ShapeError(*node, "the window is larger than the padded input");
    out[i] = (ceil_mode ? (span + strides[i] - 1) / strides[i] : span / strides[i]) + 1;
    // ONNX/PyTorch: the last window must start inside the input or left pad.
    if (ceil_mode && (out[i] - 1) * strides[i] >= spatial[i] + pads[i]) --out[i];
  }
  node->attributes.erase("auto_pad");
  node->attributes["pads"] = ir::Attribute::Ints(pads);
  node->attributes["strides"] = ir::Attribute::Ints(strides);
  if (node->op_type == "Conv") node->attributes["dilations"] = ir::Attribute::Ints(dilations);
  return out;
}

StatusOr<std::vector<int64_t>> IntsFromAttributeOrInput(const Graph& graph, const Node& node,
                                                        const std::string& attr, size_t input) {
  if (node.has(attr)) return node.GetInts(attr);
  if (ir::HasInput(node, input)) return ir::ConstantInts(graph, node, input);
  return std::vector<int64_t>{};
}

// A dimension computed in floating point from a model's numbers (Range,
// Resize scales): false unless it is a whole number in [0, 2^40] (NaN,
// infinities and huge values have no conversion to int64).
bool DimensionFromFloat(double value, int64_t* dim) {
  if (!(value >= 0 && value <= static_cast<double>(kMaxFileShapeElements))) return false;
  *dim = static_cast<int64_t>(value);
  return true;
}

}  // namespace

Status InferNodeShapes(Graph* graph, Node* node) {
  std::vector<Shape> in;
  for (int id : node->inputs) {
    if (id == ir::kNoValue) {
      in.emplace_back();
      continue;
    }
    const Value& v = graph->values[id];
    if (!v.shape_known)
      return Internal(node->Describe() + ": shape of input '" + v.name + "' is unknown");
    in.push_back(v.shape);
  }
  // An output the node does not have (an omitted optional one) is not set.
  auto set_output = [&](size_t index, Shape shape, DataType dtype) {
    if (index >= node->outputs.size() || node->outputs[index] == ir::kNoValue) return;
    Value& out = graph->values[node->outputs[index]];
    out.shape = std::move(shape);
    out.shape_known = true;
    out.dtype = dtype;
  };
  const std::string& op = node->op_type;
  if (node->inputs.empty() || node->inputs[0] == ir::kNoValue)
    return ShapeError(*node, "has no first input");
  if (node->outputs.empty() || node->outputs[0] == ir::kNoValue)
    return ShapeError(*node, "has no first output");
  const DataType dtype0 = graph->values[node->inputs[0]].dtype;

  if (kUnaryOps.count(op)) {
    set_output(0, in[0], kComparisonOps.count(op) ? DataType::kBool : dtype0);
    return Status::Ok();
  }
  if (kBroadcastOps.count(op)) {
    std::vector<Shape> shapes;
    for (size_t i = 0; i < in.size(); ++i)
      if (ir::HasInput(*node, i)) shapes.push_back(in[i]);
    LOWBIT_ASSIGN_OR_RETURN(Shape out, BroadcastShapes(*node, shapes));
    DataType dtype = op == "Where" ? graph->values[node->inputs[1]].dtype : dtype0;
    set_output(0, out, kComparisonOps.count(op) ? DataType::kBool : dtype);
    return Status::Ok();
  }
  if (op == "Cast") {
    int64_t to = node->GetInt("to", 1);
    DataType dtype = to == 1 || to == 10 || to == 11 ? DataType::kFloat32
                     : to == 9                       ? DataType::kBool
                     : to == 6                       ? DataType::kInt32
                                                     : DataType::kInt64;
    set_output(0, in[0], dtype);
    return Status::Ok();
  }
  if (op == "Conv") {
    const Shape& x = in[0];
    if (!ir::HasInput(*node, 1) || in[1].size() != x.size() || x.size() != 4)
      return ShapeError(*node,
                        "only 2-D convolution on [N,C,H,W] with [M,C/group,kH,kW] weights "
                        "is supported, got input " +
                            ShapeToString(x));
    const Shape& w = in[1];
    const int64_t group = node->GetInt("group", 1);
    if (group < 1 || x[1] != w[1] * group || w[0] % group != 0)
      return ShapeError(*node, "input channels " + std::to_string(x[1]) + " do not match weights " +
                                   ShapeToString(w) + " with group " + std::to_string(group));
    if (ir::HasInput(*node, 2) && NumElements(in[2]) != w[0])
      return ShapeError(*node, "bias has " + std::to_string(NumElements(in[2])) +
                                   " elements, expected " + std::to_string(w[0]));
    Shape kernel(w.begin() + 2, w.end());
    if (node->has("kernel_shape") && node->GetInts("kernel_shape") != kernel)
      return ShapeError(*node, "kernel_shape does not match the weights");
    LOWBIT_ASSIGN_OR_RETURN(Shape spatial, WindowOutputSizes(node, {x[2], x[3]}, kernel));
    set_output(0, {x[0], w[0], spatial[0], spatial[1]}, DataType::kFloat32);
    return Status::Ok();
  }
  if (op == "ConvTranspose") {
    // Output = stride * (in - 1) + output_padding + (k - 1) * dilation + 1
    // - pads; output_shape / auto_pad SAME_* fix the output and imply the
    // pads (SAME_UPPER: the smaller half first). Pads end up explicit.
    const Shape& x = in[0];
    if (!ir::HasInput(*node, 1) || x.size() != 4 || in[1].size() != 4)
      return ShapeError(*node, "only 2-D ConvTranspose on [N,C,H,W] is supported");
    const Shape& w = in[1];  // [C, M/group, kH, kW]
    const int64_t group = node->GetInt("group", 1);
    if (group < 1 || w[0] != x[1] || x[1] % group != 0)
      return ShapeError(*node, "input channels " + std::to_string(x[1]) + " do not match weights " +
                                   ShapeToString(w) + " with group " + std::to_string(group));
    const int64_t out_channels = w[1] * group;
    if (ir::HasInput(*node, 2) && NumElements(in[2]) != out_channels)
      return ShapeError(*node, "bias has " + std::to_string(NumElements(in[2])) +
                                   " elements, expected " + std::to_string(out_channels));
    auto strides = node->GetInts("strides", {1, 1});
    auto dilations = node->GetInts("dilations", {1, 1});
    auto pads = node->GetInts("pads", {0, 0, 0, 0});
    auto output_padding = node->GetInts("output_padding", {0, 0});
    auto output_shape = node->GetInts("output_shape");
    const std::string auto_pad = node->GetString("auto_pad", "NOTSET");
    if (strides.size() != 2 || dilations.size() != 2 || pads.size() != 4 ||
        output_padding.size() != 2)
      return ShapeError(*node, "strides/dilations/pads/output_padding do not match 2-D");
    if (output_shape.size() > 2) output_shape.erase(output_shape.begin(), output_shape.end() - 2);
    if (output_shape.empty() && (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER"))
      output_shape = {x[2] * strides[0], x[3] * strides[1]};
    Shape out = {x[0], out_channels, 0, 0};
    for (int i = 0; i < 2; ++i) {
      if (strides[i] < 1 || dilations[i] < 1)
        return ShapeError(*node, "strides and dilations must be >= 1");
      const int64_t full = strides[i] * (x[2 + i] - 1) + output_padding[i] +
                           (w[2 + i] - 1) * dilations[i] + 1;
      if (!output_shape.empty()) {
        const int64_t total = full - output_shape[i];
        if (total < 0) return ShapeError(*node, "output_shape is larger than the full output");
        pads[i] = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
        pads[i + 2] = total - pads[i];
      } else if (auto_pad == "VALID") {
        pads[i] = pads[i + 2] = 0;
      }
      out[2 + i] = full - pads[i] - pads[i + 2];
      if (out[2 + i] < 1) return ShapeError(*node, "the output would be empty");
    }
    node->attributes.erase("auto_pad");
    node->attributes.erase("output_shape");
    node->attributes["pads"] = ir::Attribute::Ints(pads);
    node->attributes["strides"] = ir::Attribute::Ints(strides);
    node->attributes["dilations"] = ir::Attribute::Ints(dilations);
    set_output(0, out, DataType::kFloat32);
    return Status::Ok();
  }
  if (op == "MatMul") {
    // numpy semantics: [..., M, K] x [..., K, N], leading dimensions broadcast;
    // a rank-1 operand gains (and loses) a dimension of 1.
    Shape a = in[0], b = in[1];
    if (a.empty() || b.empty()) return ShapeError(*node, "operands must have rank >= 1");
    const bool a_vector = a.size() == 1, b_vector = b.size() == 1;
    if (a_vector) a.insert(a.begin(), 1);
    if (b_vector) b.push_back(1);
    if (a.back() != b[b.size() - 2])
      return ShapeError(*node, "cannot multiply " + ShapeToString(in[0]) + " by " +
                                   ShapeToString(in[1]));
    LOWBIT_ASSIGN_OR_RETURN(Shape lead, BroadcastShapes(*node, {Shape(a.begin(), a.end() - 2),
                                                                Shape(b.begin(), b.end() - 2)}));
    Shape out = lead;
    if (!a_vector) out.push_back(a[a.size() - 2]);
    if (!b_vector) out.push_back(b.back());
    set_output(0, out, dtype0);
    return Status::Ok();
  }
  if (op == "Gemm") {
    if (in[0].size() != 2 || in[1].size() != 2)
      return ShapeError(*node, "Gemm needs rank-2 A and B");
    const bool ta = node->GetInt("transA", 0) != 0, tb = node->GetInt("transB", 0) != 0;
    const int64_t m = ta ? in[0][1] : in[0][0], k = ta ? in[0][0] : in[0][1];
    const int64_t kb = tb ? in[1][1] : in[1][0], n = tb ? in[1][0] : in[1][1];
    if (k != kb) return ShapeError(*node, "A and B disagree on K");
    set_output(0, {m, n}, dtype0);
    return Status::Ok();
  }
  if (op == "ReduceMean" || op == "ReduceSum" || op == "ReduceMax") {
    // Axes from the attribute (before opset 18; ReduceSum from 13) or input 1;
    // none: every axis (unless noop_with_empty_axes). Normalised into `axes`.
    LOWBIT_ASSIGN_OR_RETURN(std::vector<int64_t> axes,
                            IntsFromAttributeOrInput(*graph, *node, "axes", 1));
    std::set<int64_t> reduce;
    if (axes.empty() && node->GetInt("noop_with_empty_axes", 0) == 0)
      for (size_t d = 0; d < in[0].size(); ++d) reduce.insert(static_cast<int64_t>(d));
    for (int64_t a : axes) {
      LOWBIT_ASSIGN_OR_RETURN(int axis, ir::NormalizeAxis(a, in[0].size(), *node));
      reduce.insert(axis);
    }
    const bool keep = node->GetInt("keepdims", 1) != 0;
    Shape out;
    for (size_t d = 0; d < in[0].size(); ++d) {
      if (!reduce.count(static_cast<int64_t>(d)))
        out.push_back(in[0][d]);
      else if (keep)
        out.push_back(1);
    }
    node->attributes["axes"] = ir::Attribute::Ints({reduce.begin(), reduce.end()});
    if (node->inputs.size() > 1) node->inputs.resize(1);
    set_output(0, out, dtype0);
    return Status::Ok();
  }
  if (op == "BatchNormalization") {
    // Y has X's shape; scale, B, mean and var hold one value per channel
    // (axis 1), or per element of X[1:] when spatial = 0 (opset < 9). The
    // optional statistics outputs have the parameters' shape.
    if (in[0].size() < 2) return ShapeError(*node, "input must be [N,C,...]");
    int64_t per_frame = 1;
    for (size_t d = 1; d < in[0].size(); ++d) per_frame *= in[0][d];
    const int64_t expected = node->GetInt("spatial", 1) != 0 ? in[0][1] : per_frame;
    for (size_t i = 1; i < 5; ++i)
      if (!ir::HasInput(*node, i) || NumElements(in[i]) != expected)
        return ShapeError(*node, "scale, B, mean and var must each have " +
                                     std::to_string(expected) + " elements");
    set_output(0, in[0], dtype0);
    for (size_t o = 1; o < node->outputs.size(); ++o) set_output(o, in[1], dtype0);
    return Status::Ok();
  }
  if (op == ir::kQuantizeOp || op == ir::kDequantizeOp) {
    // Same shape; Quantize writes the dtype that holds its stored codes
    // (ir/quant_ops.h). The per-axis `axis` is normalised against the rank.
    LOWBIT_ASSIGN_OR_RETURN(ir::QuantParams params, ir::ReadQuantParams(*graph, *node));
    if (!params.per_tensor()) node->attributes["axis"] = ir::Attribute::Int(params.axis);
    Value& codes = graph->values[node->inputs[0]];
    if (op == ir::kQuantizeOp) {
      if (dtype0 != DataType::kFloat32)
        return ShapeError(*node, std::string("quantizes a ") + ir::DataTypeName(dtype0) +
                                     " tensor; the input must be float32");
      set_output(0, in[0], ir::CodeType(params.code_min(), params.code_max()));
      graph->values[node->outputs[0]].precision = ir::CodesPrecision(params);
      return Status::Ok();
    }
    const bool codes_type = dtype0 == DataType::kInt8 || dtype0 == DataType::kUInt8 ||
                            dtype0 == DataType::kInt32 ||
                            (codes.is_constant() && dtype0 == DataType::kInt64);
    if (!codes_type)
      return ShapeError(*node, std::string("dequantizes a ") + ir::DataTypeName(dtype0) +
                                   " tensor; codes must be int8, uint8 or int32");
    if (codes.is_constant() && node->has("qmin") && node->has("qmax"))
      codes.precision = ir::CodesPrecision(params);
    set_output(0, in[0], DataType::kFloat32);
    return Status::Ok();
  }
  if (op == "MaxPool" || op == "AveragePool") {
    const Shape& x = in[0];
    std::vector<int64_t> kernel = node->GetInts("kernel_shape");
    if (x.size() != 4 || kernel.size() != 2)
      return ShapeError(*node, "only 2-D pooling on [N,C,H,W] is supported");
    if (node->outputs.size() > 1) return Unimplemented(node->Describe() + ": Indices output");
    LOWBIT_ASSIGN_OR_RETURN(Shape spatial, WindowOutputSizes(node, {x[2], x[3]}, kernel));
    set_output(0, {x[0], x[1], spatial[0], spatial[1]}, dtype0);  // pools keep codes as codes
    return Status::Ok();
  }
  if (op == "GlobalAveragePool" || op == "GlobalMaxPool") {
    Shape out = in[0];
    for (size_t i = 2; i < out.size(); ++i) out[i] = 1;
    set_output(0, out, dtype0);
    return Status::Ok();
  }
  if (op == "Concat") {
    LOWBIT_ASSIGN_OR_RETURN(int axis,
                            ir::NormalizeAxis(node->GetInt("axis", 0), in[0].size(), *node));
    Shape out = in[0];
    out[axis] = 0;
    for (const Shape& s : in) {
      if (s.size() != out.size()) return ShapeError(*node, "inputs have different ranks");
      for (size_t d = 0; d < s.size(); ++d)
        if (static_cast<int>(d) != axis && s[d] != out[d])
          return ShapeError(*node, "inputs differ outside the concat axis: " + ShapeToString(s) +
                                       " vs " + ShapeToString(in[0]));
      out[axis] += s[axis];
    }
    set_output(0, out, dtype0);
    return Status::Ok();
  }
  if (op == "Split") {
    LOWBIT_ASSIGN_OR_RETURN(int axis,
                            ir::NormalizeAxis(node->GetInt("axis", 0), in[0].size(), *node));
    LOWBIT_ASSIGN_OR_RETURN(std::vector<int64_t> split,
                            IntsFromAttributeOrInput(*graph, *node, "split", 1));
    const int64_t outputs = static_cast<int64_t>(node->outputs.size());
    if (split.empty()) {
      if (in[0][axis] % outputs != 0 && !node->has("num_outputs"))
        return ShapeError(*node, "axis size " + std::to_string(in[0][axis]) +
                                     " does not split evenly into " + std::to_string(outputs));
      const int64_t chunk = (in[0][axis] + outputs - 1) / outputs;
      for (int64_t i = 0; i < outputs; ++i)
        split.push_back(std::min(chunk, in[0][axis] - i * chunk));
    }
    int64_t total = 0;
    for (int64_t s : split) total += s;
    if (static_cast<int64_t>(split.size()) != outputs || total != in[0][axis])
      return ShapeError(*node, "split sizes do not add up to the axis size");
    node->attributes["split"] = ir::Attribute::Ints(split);
    for (int64_t i = 0; i < outputs; ++i) {
      Shape out = in[0];
      out[axis] = split[i];
      set_output(i, out, dtype0);
    }
    return Status::Ok();
  }
  if (op == "Slice") {
    LOWBIT_ASSIGN_OR_RETURN(auto ranges, ResolveSlice(*graph, *node, in[0]));
    Shape out;
    for (const auto& r : ranges) out.push_back(r[2]);
    set_output(0, out, dtype0);
    return Status::Ok();
  }
  if (op == "DepthToSpace" || op == "SpaceToDepth") {
    const int64_t b = node->GetInt("blocksize", 0);
    if (in[0].size() != 4 || b < 1) return ShapeError(*node, "needs a 4-D input and blocksize >= 1");
    const Shape& x = in[0];
    if (op == "DepthToSpace") {
      if (x[1] % (b * b) != 0) return ShapeError(*node, "channels are not a multiple of blocksize^2");
      set_output(0, {x[0], x[1] / (b * b), x[2] * b, x[3] * b}, dtype0);
    } else {
      if (x[2] % b != 0 || x[3] % b != 0)
        return ShapeError(*node, "height and width are not multiples of blocksize");
      set_output(0, {x[0], x[1] * b * b, x[2] / b, x[3] / b}, dtype0);
    }
    return Status::Ok();
  }
  if (op == "Transpose") {
    std::vector<int64_t> perm = node->GetInts("perm");
    if (perm.empty())
      for (int64_t i = static_cast<int64_t>(in[0].size()) - 1; i >= 0; --i) perm.push_back(i);
    if (perm.size() != in[0].size()) return ShapeError(*node, "perm length differs from rank");
    node->attributes["perm"] = ir::Attribute::Ints(perm);
    Shape out;
    std::vector<char> seen(perm.size(), 0);
    for (int64_t p : perm) {
      if (p < 0 || p >= static_cast<int64_t>(perm.size()) || seen[p])
        return ShapeError(*node, "perm is not a permutation");
      seen[p] = 1;
      out.push_back(in[0][p]);
    }
    set_output(0, out, dtype0);
    return Status::Ok();
  }
  if (op == "Reshape") {
    LOWBIT_ASSIGN_OR_RETURN(std::vector<int64_t> target, ir::ConstantInts(*graph, *node, 1));
    const bool allow_zero = node->GetInt("allowzero", 0) != 0;
    Shape out;
    int infer = -1;
    int64_t known = 1;
    for (size_t i = 0; i < target.size(); ++i) {
      int64_t d = target[i];
      if (d == 0 && !allow_zero) {
        if (i >= in[0].size()) return ShapeError(*node, "0 in shape beyond the input's rank");
        d = in[0][i];
      }
      if (d == -1) {
        if (infer >= 0) return ShapeError(*node, "more than one -1 in the target shape");
        infer = static_cast<int>(i);
        out.push_back(1);
        continue;
      }
      if (d < 0) return ShapeError(*node, "negative dimension in the target shape");
      // A model's target shape is any int64s: multiplied with an overflow check.
      if (__builtin_mul_overflow(known, d, &known))
        return ShapeError(*node, "the target shape's element count overflows int64");
      out.push_back(d);
    }
    const int64_t total = NumElements(in[0]);
    if (infer >= 0) {
      if (known == 0 || total % known != 0)
        return ShapeError(*node, "cannot reshape " + ShapeToString(in[0]) + " with a -1 into " +
                                     ShapeToString(target));
      out[infer] = total / known;
    }
    if (NumElements(out) != total)
      return ShapeError(*node,
                        "cannot reshape " + ShapeToString(in[0]) + " into " + ShapeToString(out));
    set_output(0, out, dtype0);
    return Status::Ok();
  }
  if (op == "Flatten") {
    LOWBIT_ASSIGN_OR_RETURN(int axis,
                            ir::NormalizeAxis(node->GetInt("axis", 1), in[0].size() + 1, *node));
    int64_t outer = 1;
    for (int d = 0; d < axis; ++d) outer *= in[0][d];
    set_output(0, {outer, NumElements(in[0]) / std::max<int64_t>(outer, 1)}, dtype0);
    return Status::Ok();
  }
  if (op == "Squeeze" || op == "Unsqueeze") {
    LOWBIT_ASSIGN_OR_RETURN(std::vector<int64_t> axes,
                            IntsFromAttributeOrInput(*graph, *node, "axes", 1));
    Shape out;
    if (op == "Squeeze") {
      std::set<int> drop;
      for (int64_t a : axes) {
        LOWBIT_ASSIGN_OR_RETURN(int axis, ir::NormalizeAxis(a, in[0].size(), *node));
        if (in[0][axis] != 1) return ShapeError(*node, "squeezed axis is not of size 1");
        drop.insert(axis);
      }
      for (size_t d = 0; d < in[0].size(); ++d)
        if (axes.empty() ? in[0][d] != 1 : !drop.count(static_cast<int>(d)))
          out.push_back(in[0][d]);
    } else {
      const size_t rank = in[0].size() + axes.size();
      std::set<int> add;
      for (int64_t a : axes) {
        LOWBIT_ASSIGN_OR_RETURN(int axis, ir::NormalizeAxis(a, rank, *node));
        add.insert(axis);
      }
      size_t next = 0;
      for (size_t d = 0; d < rank; ++d)
        out.push_back(add.count(static_cast<int>(d)) ? 1 : in[0][next++]);
    }
    set_output(0, out, dtype0);
    return Status::Ok();
  }
  if (op == "Shape") {
    int64_t rank = static_cast<int64_t>(in[0].size());
    int64_t start = node->GetInt("start", 0), end = node->GetInt("end", rank);
    if (start < 0) start += rank;
    if (end < 0) end += rank;
    start = std::clamp<int64_t>(start, 0, rank);
    end = std::clamp<int64_t>(end, start, rank);
    set_output(0, {end - start}, DataType::kInt64);
    return Status::Ok();
  }
  if (op == "Gather") {
    LOWBIT_ASSIGN_OR_RETURN(int axis,
                            ir::NormalizeAxis(node->GetInt("axis", 0), in[0].size(), *node));
    Shape out(in[0].begin(), in[0].begin() + axis);
    out.insert(out.end(), in[1].begin(), in[1].end());
    out.insert(out.end(), in[0].begin() + axis + 1, in[0].end());
    set_output(0, out, dtype0);
    return Status::Ok();
  }
  if (op == "ConstantOfShape") {
    LOWBIT_ASSIGN_OR_RETURN(std::vector<int64_t> shape, ir::ConstantInts(*graph, *node, 0));
    DataType dtype =
        node->has("value") ? node->attributes["value"].tensor.dtype : DataType::kFloat32;
    set_output(0, shape, dtype);
    return Status::Ok();
  }
  if (op == "Range") {
    LOWBIT_ASSIGN_OR_RETURN(std::vector<float> start, ir::ConstantFloats(*graph, *node, 0));
    LOWBIT_ASSIGN_OR_RETURN(std::vector<float> limit, ir::ConstantFloats(*graph, *node, 1));
    LOWBIT_ASSIGN_OR_RETURN(std::vector<float> delta, ir::ConstantFloats(*graph, *node, 2));
    if (start.size() != 1 || limit.size() != 1 || delta.size() != 1 || delta[0] == 0)
      return ShapeError(*node, "Range needs scalar start, limit and a non-zero delta");
    double count = std::ceil(static_cast<double>((limit[0] - start[0]) / delta[0]));  // float, as ONNX
    if (count < 0) count = 0;  // an empty range; NaN stays NaN and is refused
    int64_t n = 0;
    if (!DimensionFromFloat(count, &n))
      return ShapeError(*node, "Range's element count is not a number or past 2^40");
    set_output(0, {n}, dtype0);
    return Status::Ok();
  }
  if (op == "Expand") {
    LOWBIT_ASSIGN_OR_RETURN(std::vector<int64_t> shape, ir::ConstantInts(*graph, *node, 1));
    LOWBIT_ASSIGN_OR_RETURN(Shape out, BroadcastShapes(*node, {in[0], shape}));
    set_output(0, out, dtype0);
    return Status::Ok();
  }
  if (op == "Pad") {
    LOWBIT_ASSIGN_OR_RETURN(std::vector<int64_t> pads,
                            IntsFromAttributeOrInput(*graph, *node, "pads", 1));
    if (ir::HasInput(*node, 3)) return Unimplemented(node->Describe() + ": Pad with axes input");
    if (pads.size() != 2 * in[0].size()) return ShapeError(*node, "pads must hold 2 * rank values");
    Shape out = in[0];
    for (size_t d = 0; d < out.size(); ++d) {
      // A model's pads are any int64: added with overflow checks.
      int64_t both = 0;
      if (__builtin_add_overflow(pads[d], pads[d + out.size()], &both) ||
          __builtin_add_overflow(out[d], both, &out[d]))
        return ShapeError(*node, "pads overflow the output dimension");
      if (out[d] < 0) return ShapeError(*node, "negative output dimension");
    }
    set_output(0, out, dtype0);
    return Status::Ok();
  }
  if (op == "Resize" || op == "Upsample") {
    if (in[0].size() != 4) return ShapeError(*node, "only 4-D Resize is supported");
    Shape out = in[0];
    std::vector<int64_t> sizes;
    std::vector<float> scales;
    if (op == "Resize" && graph->opset >= 11) {
      if (ir::HasInput(*node, 3) && NumElements(in[3]) > 0) {
        LOWBIT_ASSIGN_OR_RETURN(sizes, ir::ConstantInts(*graph, *node, 3));
      } else {
        LOWBIT_ASSIGN_OR_RETURN(scales, ir::ConstantFloats(*graph, *node, 2));
      }
    } else if (node->has("scales")) {
      scales = node->attributes["scales"].floats;
    } else {
      LOWBIT_ASSIGN_OR_RETURN(scales, ir::ConstantFloats(*graph, *node, 1));
    }
    if (!sizes.empty()) {
      if (sizes.size() != out.size()) return ShapeError(*node, "sizes length differs from rank");
      // sizes[0] is the batch the model was exported at (shapes here are at
      // batch 1); the batch is never resized.
      sizes[0] = out[0];
      out = sizes;
    } else {
      if (scales.size() != out.size()) return ShapeError(*node, "scales length differs from rank");
      for (size_t d = 0; d < out.size(); ++d)
        if (!DimensionFromFloat(std::floor(in[0][d] * static_cast<double>(scales[d])), &out[d]))
          return ShapeError(*node, "a scale makes a dimension that is negative, not a number "
                                   "or past 2^40");
    }
    if (out[0] != in[0][0] || out[1] != in[0][1])
      return Unimplemented(node->Describe() + ": Resize may only change H and W");
    set_output(0, out, dtype0);
    return Status::Ok();
  }
  return Unimplemented("unsupported op '" + op + "' (node '" + node->name +
                       "'): lowbit cannot infer its shape or run it");
}

Status NormalizeGraphInputs(Graph* graph) {
  for (int id : graph->inputs) {
    Value& v = graph->values[id];
    if (!v.shape_known || v.shape.empty())
      return InvalidArgument("graph input '" + v.name +
                             "' has no declared shape; lowbit needs "
                             "[batch, ...] with fixed non-batch dimensions");
    if (v.shape[0] > 1)
      return Unimplemented("graph input '" + v.name + "' has a fixed batch of " +
                           std::to_string(v.shape[0]) +
                           "; export the model with batch 1 or a symbolic batch dimension");
    v.shape[0] = 1;
    for (size_t d = 1; d < v.shape.size(); ++d)
      if (v.shape[d] < 0)
        return Unimplemented("graph input '" + v.name + "' dimension " + std::to_string(d) +
                             " is symbolic; only the batch (first) dimension may be (give its size: "
                             "`--input-shape " + v.name + "=1x...` on the CLI, "
                             "CompileOptions::input_shapes in the API)");
  }
  return Status::Ok();
}

Status FixInputShapes(Graph* graph, const std::map<std::string, std::vector<int64_t>>& shapes) {
  for (const auto& [name, dims] : shapes) {
    const int id = graph->FindValue(name);
    if (id == ir::kNoValue ||
        std::find(graph->inputs.begin(), graph->inputs.end(), id) == graph->inputs.end())
      return InvalidArgument("an input shape is given for '" + name +
                             "', which is not a graph input of the model");
    Value& v = graph->values[id];
    if (!v.shape_known) {
      v.shape.assign(dims.size(), -1);
      v.shape_known = true;
    }
    if (v.shape.size() != dims.size())
      return InvalidArgument("graph input '" + name + "' has rank " +
                             std::to_string(v.shape.size()) + " but the shape given for it " +
                             ShapeToString(dims) + " has rank " + std::to_string(dims.size()));
    for (size_t d = 1; d < dims.size(); ++d) {
      if (dims[d] < 1)
        return InvalidArgument("the shape given for graph input '" + name + "' " +
                               ShapeToString(dims) + " has a dimension < 1");
      if (v.shape[d] >= 0 && v.shape[d] != dims[d])
        return InvalidArgument("graph input '" + name + "' is " + ShapeToString(v.shape) +
                               " in the model; dimension " + std::to_string(d) +
                               " cannot be given size " + std::to_string(dims[d]));
      v.shape[d] = dims[d];
    }
  }
  return Status::Ok();
}

Status InferShapes(Graph* graph) {
  LOWBIT_RETURN_IF_ERROR(NormalizeGraphInputs(graph));
  for (Node& node : graph->nodes) LOWBIT_RETURN_IF_ERROR(InferNodeShapes(graph, &node));
  return Status::Ok();
}

}  // namespace lowbit::engine::passes
