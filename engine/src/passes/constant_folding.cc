// Constant folding: evaluates shape plumbing (Shape/Gather/Slice/Concat/
// ConstantOfShape/Unsqueeze/Squeeze/Cast/Reshape ...) and any node whose
// inputs are all constants, on the compiler's HostTensors. lowbit.Quantize /
// lowbit.Dequantize fold with QuantParams' per-element formulas, the same
// the runtime kernels compute.
#include <algorithm>
#include <cmath>
#include <functional>
#include <set>

#include "ir/quant_ops.h"
#include "passes/passes.h"

namespace lowbit::engine::passes {
namespace {

using ir::DataType;
using ir::Graph;
using ir::HostTensor;
using ir::Node;

std::vector<int64_t> StridesOf(const Shape& shape) {
  std::vector<int64_t> strides(shape.size(), 1);
  for (int d = static_cast<int>(shape.size()) - 2; d >= 0; --d)
    strides[d] = strides[d + 1] * shape[d + 1];
  return strides;
}

HostTensor MakeLike(DataType dtype, const Shape& shape) {
  HostTensor t;
  t.dtype = dtype;
  t.shape = shape;
  if (dtype == DataType::kFloat32)
    t.floats.resize(NumElements(shape));
  else
    t.ints.resize(NumElements(shape));
  return t;
}

void CopyElement(const HostTensor& from, int64_t i, HostTensor* to, int64_t j) {
  if (to->is_float())
    to->floats[j] = static_cast<float>(from.at(i));
  else
    to->ints[j] = from.is_float() ? static_cast<int64_t>(from.floats[i]) : from.ints[i];
}

// Fills `out` by mapping each output multi-index to (input tensor, flat index).
void Gather(
    HostTensor* out,
    const std::function<void(const std::vector<int64_t>&, const HostTensor**, int64_t*)>& source) {
  const int64_t n = out->size();
  std::vector<int64_t> index(out->shape.size(), 0);
  for (int64_t i = 0; i < n; ++i) {
    const HostTensor* from = nullptr;
    int64_t offset = 0;
    source(index, &from, &offset);
    CopyElement(*from, offset, out, i);
    for (int d = static_cast<int>(index.size()) - 1; d >= 0; --d) {
      if (++index[d] < out->shape[d]) break;
      index[d] = 0;
    }
  }
}

// Flat index into `shape` of a broadcast operand for output multi-index.
int64_t BroadcastOffset(const std::vector<int64_t>& index, const Shape& shape) {
  int64_t offset = 0;
  const size_t skip = index.size() - shape.size();
  for (size_t d = 0; d < shape.size(); ++d)
    offset = offset * shape[d] + (shape[d] == 1 ? 0 : index[skip + d]);
  return offset;
}

double ApplyBinary(const std::string& op, double a, double b, bool integer) {
  if (op == "Add") return a + b;
  if (op == "Sub") return a - b;
  if (op == "Mul") return a * b;
  if (op == "Div") return integer ? (b == 0 ? 0 : std::trunc(a / b)) : a / b;
  if (op == "Pow") return std::pow(a, b);
  if (op == "Max") return std::max(a, b);
  if (op == "Min") return std::min(a, b);
  if (op == "Equal") return a == b;
  if (op == "Less") return a < b;
  if (op == "Greater") return a > b;
  if (op == "And") return (a != 0) && (b != 0);
  if (op == "Or") return (a != 0) || (b != 0);
  return 0;
}

const std::set<std::string> kFoldableUnary = {"Relu", "Sigmoid", "Neg",  "Sqrt", "Exp",      "Abs",
                                              "Tanh", "Floor",   "Ceil", "Not",  "LeakyRelu"};
const std::set<std::string> kFoldableBinary = {"Add", "Sub",   "Mul",  "Div",     "Pow", "Max",
                                               "Min", "Equal", "Less", "Greater", "And", "Or"};

}  // namespace

StatusOr<std::vector<HostTensor>> EvaluateConstantNode(const Graph& graph, const Node& node) {
  std::vector<const HostTensor*> in;
  for (int id : node.inputs)
    in.push_back(id == ir::kNoValue ? nullptr : &*graph.values[id].constant);
  std::vector<HostTensor> out;
  for (int id : node.outputs)
    out.push_back(MakeLike(graph.values[id].dtype, graph.values[id].shape));
  const std::string& op = node.op_type;
  HostTensor& y = out[0];

  if (op == "Identity" || op == "Reshape" || op == "Flatten" || op == "Squeeze" ||
      op == "Unsqueeze" || op == "Cast") {
    for (int64_t i = 0; i < y.size(); ++i) CopyElement(*in[0], i, &y, i);
    if (op == "Cast" && y.dtype == DataType::kBool)
      for (auto& v : y.ints) v = v != 0;
  } else if (op == "Shape") {
    const Shape& s = graph.values[node.inputs[0]].shape;
    int64_t rank = static_cast<int64_t>(s.size()), start = node.GetInt("start", 0);
    if (start < 0) start += rank;
    start = std::clamp<int64_t>(start, 0, rank);
    for (int64_t i = 0; i < y.size(); ++i) y.ints[i] = s[start + i];
  } else if (op == "ConstantOfShape") {
    HostTensor fill = HostTensor::Floats({1}, {0.0f});
    if (node.has("value")) fill = node.attributes.at("value").tensor;
    for (int64_t i = 0; i < y.size(); ++i) CopyElement(fill, 0, &y, i);
  } else if (op == "Range") {
    const double start = in[0]->at(0), delta = in[2]->at(0);
    for (int64_t i = 0; i < y.size(); ++i) {
      if (y.is_float())
        y.floats[i] = static_cast<float>(start + i * delta);
      else
        y.ints[i] = static_cast<int64_t>(in[0]->ints[0] + i * in[2]->ints[0]);
    }
  } else if (op == "Gather") {
    const Shape& data_shape = in[0]->shape;
    LOWBIT_ASSIGN_OR_RETURN(int axis,
                            ir::NormalizeAxis(node.GetInt("axis", 0), data_shape.size(), node));
    const size_t index_rank = in[1]->shape.size();
    const auto data_strides = StridesOf(data_shape);
    const auto index_strides = StridesOf(in[1]->shape);
    Status status;
    Gather(&y, [&](const std::vector<int64_t>& idx, const HostTensor** from, int64_t* offset) {
      int64_t index_offset = 0;
      for (size_t k = 0; k < index_rank; ++k) index_offset += idx[axis + k] * index_strides[k];
      int64_t g = static_cast<int64_t>(in[1]->at(index_offset));
      if (g < 0) g += data_shape[axis];
      if (g < 0 || g >= data_shape[axis]) {
        status = InvalidArgument(node.Describe() + ": index out of range");
        g = 0;
      }
      int64_t o = g * data_strides[axis];
      for (int d = 0; d < axis; ++d) o += idx[d] * data_strides[d];
      for (size_t d = axis + 1; d < data_shape.size(); ++d)
        o += idx[d - 1 + index_rank] * data_strides[d];
      *from = in[0];
      *offset = o;
    });
    LOWBIT_RETURN_IF_ERROR(status);
  } else if (op == "Slice") {
    LOWBIT_ASSIGN_OR_RETURN(auto ranges, ResolveSlice(graph, node, in[0]->shape));
    const auto strides = StridesOf(in[0]->shape);
    Gather(&y, [&](const std::vector<int64_t>& idx, const HostTensor** from, int64_t* offset) {
      int64_t o = 0;
      for (size_t d = 0; d < idx.size(); ++d)
        o += (ranges[d][0] + idx[d] * ranges[d][1]) * strides[d];
      *from = in[0];
      *offset = o;
    });
  } else if (op == "Concat") {
    LOWBIT_ASSIGN_OR_RETURN(int axis,
                            ir::NormalizeAxis(node.GetInt("axis", 0), y.shape.size(), node));
    Gather(&y, [&](const std::vector<int64_t>& idx, const HostTensor** from, int64_t* offset) {
      int64_t along = idx[axis];
      size_t k = 0;
      while (along >= in[k]->shape[axis]) along -= in[k++]->shape[axis];
      const auto strides = StridesOf(in[k]->shape);
      int64_t o = 0;
      for (size_t d = 0; d < idx.size(); ++d)
        o += (static_cast<int>(d) == axis ? along : idx[d]) * strides[d];
      *from = in[k];
      *offset = o;
    });
  } else if (op == "Split") {
    LOWBIT_ASSIGN_OR_RETURN(int axis,
                            ir::NormalizeAxis(node.GetInt("axis", 0), in[0]->shape.size(), node));
    const auto strides = StridesOf(in[0]->shape);
    int64_t base = 0;
    for (HostTensor& part : out) {
      Gather(&part, [&](const std::vector<int64_t>& idx, const HostTensor** from, int64_t* offset) {
        int64_t o = 0;
        for (size_t d = 0; d < idx.size(); ++d)
          o += (idx[d] + (static_cast<int>(d) == axis ? base : 0)) * strides[d];
        *from = in[0];
        *offset = o;
      });
      base += part.shape[axis];
    }
  } else if (op == "Transpose") {
    const auto perm = node.GetInts("perm");
    const auto strides = StridesOf(in[0]->shape);
    Gather(&y, [&](const std::vector<int64_t>& idx, const HostTensor** from, int64_t* offset) {
      int64_t o = 0;
      for (size_t d = 0; d < idx.size(); ++d) o += idx[d] * strides[perm[d]];
      *from = in[0];
      *offset = o;
    });
  } else if (op == "Expand") {
    Gather(&y, [&](const std::vector<int64_t>& idx, const HostTensor** from, int64_t* offset) {
      *from = in[0];
      *offset = BroadcastOffset(idx, in[0]->shape);
    });
  } else if (op == "Pad") {
    if (node.GetString("mode", "constant") != "constant")
      return Unimplemented(node.Describe() + ": only constant Pad folds");
    std::vector<int64_t> pads = node.has("pads") ? node.GetInts("pads") : in[1]->ints;
    double fill = node.GetFloat("value", 0);
    if (ir::HasInput(node, 2)) fill = in[2]->at(0);
    const HostTensor fill_tensor = HostTensor::Floats({1}, {static_cast<float>(fill)});
    const auto strides = StridesOf(in[0]->shape);
    const size_t rank = in[0]->shape.size();
    Gather(&y, [&](const std::vector<int64_t>& idx, const HostTensor** from, int64_t* offset) {
      int64_t o = 0;
      for (size_t d = 0; d < rank; ++d) {
        int64_t src = idx[d] - pads[d];
        if (src < 0 || src >= in[0]->shape[d]) {
          *from = &fill_tensor;
          *offset = 0;
          return;
        }
        o += src * strides[d];
      }
      *from = in[0];
      *offset = o;
    });
  } else if (op == ir::kQuantizeOp || op == ir::kDequantizeOp) {
    LOWBIT_ASSIGN_OR_RETURN(ir::QuantParams params, ir::ReadQuantParams(graph, node));
    // Channel of element i along the (logical, row-major) quantization axis.
    const Shape& shape = in[0]->shape;
    int64_t inner = 1, channels = 1;
    if (!params.per_tensor()) {
      channels = shape[params.axis];
      for (size_t d = params.axis + 1; d < shape.size(); ++d) inner *= shape[d];
    }
    for (int64_t i = 0; i < y.size(); ++i) {
      const int64_t channel = (i / inner) % channels;
      if (op == ir::kQuantizeOp)
        y.ints[i] = params.QuantizeValue(static_cast<float>(in[0]->at(i)), channel);
      else
        y.floats[i] = params.DequantizeValue(static_cast<int64_t>(in[0]->at(i)), channel);
    }
  } else if (kFoldableUnary.count(op)) {
    const float alpha = node.GetFloat("alpha", 0.01f);
    for (int64_t i = 0; i < y.size(); ++i) {
      double x = in[0]->at(i), r = 0;
      if (op == "Relu")
        r = std::max(x, 0.0);
      else if (op == "LeakyRelu")
        r = x >= 0 ? x : x * alpha;
      else if (op == "Sigmoid")
        r = 1 / (1 + std::exp(-x));
      else if (op == "Neg")
        r = -x;
      else if (op == "Sqrt")
        r = std::sqrt(x);
      else if (op == "Exp")
        r = std::exp(x);
      else if (op == "Abs")
        r = std::fabs(x);
      else if (op == "Tanh")
        r = std::tanh(x);
      else if (op == "Floor")
        r = std::floor(x);
      else if (op == "Ceil")
        r = std::ceil(x);
      else if (op == "Not")
        r = x == 0;
      if (y.is_float())
        y.floats[i] = static_cast<float>(r);
      else
        y.ints[i] = static_cast<int64_t>(r);
    }
  } else if (kFoldableBinary.count(op) || op == "Where") {
    const bool integer = !y.is_float() && !in[op == "Where" ? 1 : 0]->is_float();
    std::vector<int64_t> index(y.shape.size(), 0);
    for (int64_t i = 0; i < y.size(); ++i) {
      if (op == "Where") {
        bool c = in[0]->at(BroadcastOffset(index, in[0]->shape)) != 0;
        const HostTensor* pick = c ? in[1] : in[2];
        CopyElement(*pick, BroadcastOffset(index, pick->shape), &y, i);
      } else if (integer && y.dtype != DataType::kBool) {
        const int64_t a = in[0]->ints[BroadcastOffset(index, in[0]->shape)];
        const int64_t b = in[1]->ints[BroadcastOffset(index, in[1]->shape)];
        int64_t r = op == "Add"   ? a + b
                    : op == "Sub" ? a - b
                    : op == "Mul" ? a * b
                    : op == "Div" ? (b ? a / b : 0)
                    : op == "Max" ? std::max(a, b)
                    : op == "Min" ? std::min(a, b)
                                  : static_cast<int64_t>(std::pow(a, b));
        y.ints[i] = r;
      } else {
        double a = in[0]->at(BroadcastOffset(index, in[0]->shape));
        double b = in[1]->at(BroadcastOffset(index, in[1]->shape));
        double r = ApplyBinary(op, a, b, integer);
        if (y.is_float())
          y.floats[i] = static_cast<float>(r);
        else
          y.ints[i] = static_cast<int64_t>(r);
      }
      for (int d = static_cast<int>(index.size()) - 1; d >= 0; --d) {
        if (++index[d] < y.shape[d]) break;
        index[d] = 0;
      }
    }
  } else {
    return Unimplemented(node.Describe() +
                         " has only constant inputs, but the constant folder "
                         "cannot evaluate " +
                         op);
  }
  return out;
}

Status FoldConstants(Graph* graph, bool fold_dequantize) {
  LOWBIT_RETURN_IF_ERROR(NormalizeGraphInputs(graph));
  // Values that Identity nodes forward: consumer inputs are rewired to the source.
  std::vector<int> replacement(graph->values.size());
  for (size_t i = 0; i < replacement.size(); ++i) replacement[i] = static_cast<int>(i);
  std::vector<char> is_output(graph->values.size(), 0);
  for (int o : graph->outputs) is_output[o] = 1;

  std::vector<Node> kept;
  for (Node& node : graph->nodes) {
    for (int& in : node.inputs)
      if (in != ir::kNoValue) in = replacement[in];
    if (Status shapes = InferNodeShapes(graph, &node); !shapes.ok()) {
      // Ops made by later passes (lowbit.QConv ...) keep the shapes their
      // pass gave them when FoldConstants runs again after it.
      bool known = shapes.code() == StatusCode::kUnimplemented;
      for (int out : node.outputs) known = known && graph->values[out].shape_known;
      if (!known) return shapes;
    }
    bool all_constant = true;
    for (int in : node.inputs)
      if (in != ir::kNoValue && !graph->values[in].is_constant()) all_constant = false;
    const bool fold_shape = node.op_type == "Shape";
    const bool keep = node.op_type == ir::kDequantizeOp && !fold_dequantize;
    if ((all_constant && !keep) || fold_shape) {
      auto folded = EvaluateConstantNode(*graph, node);
      if (folded.ok()) {
        for (size_t i = 0; i < node.outputs.size(); ++i)
          graph->values[node.outputs[i]].constant = std::move((*folded)[i]);
        continue;
      }
      if (fold_shape || folded.status().code() != StatusCode::kUnimplemented)
        return folded.status();
    }
    if (node.op_type == "Identity" && !is_output[node.outputs[0]]) {
      replacement[node.outputs[0]] = node.inputs[0];
      continue;
    }
    kept.push_back(std::move(node));
  }
  graph->nodes = std::move(kept);
  for (int& o : graph->outputs) o = replacement[o];
  return Status::Ok();
}

Status EliminateDeadNodes(Graph* graph) {
  std::vector<char> live(graph->values.size(), 0);
  for (int o : graph->outputs) live[o] = 1;
  std::vector<char> keep(graph->nodes.size(), 0);
  for (int n = static_cast<int>(graph->nodes.size()) - 1; n >= 0; --n) {
    const Node& node = graph->nodes[n];
    for (int out : node.outputs)
      if (out != ir::kNoValue && live[out]) keep[n] = 1;
    if (!keep[n]) continue;
    for (int in : node.inputs)
      if (in != ir::kNoValue) live[in] = 1;
  }
  std::vector<Node> kept;
  for (size_t n = 0; n < graph->nodes.size(); ++n)
    if (keep[n]) kept.push_back(std::move(graph->nodes[n]));
  graph->nodes = std::move(kept);
  return Status::Ok();
}

}  // namespace lowbit::engine::passes
