#include "import/op_support.h"

#include <set>

#include "import/fake_quant.h"

namespace lowbit::engine::import {
namespace {

// Ops with a kernel, or folded away once shapes are fixed (shape plumbing),
// or rewritten by the importer (fake quantization).
const std::set<std::string> kSupportedOps = {
    // element-wise (ops/elementwise.cc, ops/activation.cc)
    "Relu", "LeakyRelu", "Sigmoid", "Clip", "Tanh", "Exp", "Neg", "Sqrt", "Abs", "Add", "Sub",
    "Mul", "Div", "Max", "Min", "Pow", "HardSigmoid", "HardSwish", "PRelu",
    // data movement and views (ops/data_movement.cc, ops/kernel.cc)
    "Concat", "Split", "Slice", "Pad", "DepthToSpace", "SpaceToDepth", "Reshape", "Flatten",
    "Squeeze", "Unsqueeze", "Identity", "Transpose",
    // convolution, pooling, resize (ops/conv.cc, ops/conv_transpose.cc, ops/spatial.cc)
    "Conv", "ConvTranspose", "MaxPool", "AveragePool", "GlobalAveragePool", "Resize", "Upsample",
    "BatchNormalization",
    // ops/matmul.cc, ops/reduce.cc
    "MatMul", "Gemm", "Softmax", "ReduceMean", "ReduceSum", "ReduceMax",
    // shape plumbing, evaluated by the constant folder (passes/constant_folding.cc)
    "Shape", "Gather", "Cast", "Range", "Expand", "ConstantOfShape", "Equal", "Less", "Greater",
    "Where", "And", "Or", "Not", "Floor", "Ceil",
    // fake quantization (import/fake_quant.h)
    "QuantizeLinear", "DequantizeLinear"};

void CheckOneOf(const ir::Node& node, const std::string& attribute, const std::string& fallback,
                const std::set<std::string>& allowed, std::vector<UnsupportedNode>* problems) {
  const std::string value = node.GetString(attribute, fallback);
  if (allowed.count(value)) return;
  std::string list;
  for (const std::string& a : allowed) list += (list.empty() ? "" : ", ") + a;
  problems->push_back({node.Describe(), attribute + " '" + value + "' (supported: " + list + ")"});
}

void CheckZero(const ir::Node& node, const std::string& attribute,
               std::vector<UnsupportedNode>* problems) {
  if (node.GetInt(attribute, 0) != 0)
    problems->push_back(
        {node.Describe(),
         attribute + " = " + std::to_string(node.GetInt(attribute, 0)) + " (only 0 is supported)"});
}

}  // namespace

std::vector<UnsupportedNode> FindUnsupportedNodes(const ir::Graph& graph) {
  std::vector<UnsupportedNode> problems;
  for (const ir::Node& node : graph.nodes) {
    const std::string& op = node.op_type;
    // QONNX quantizers (rewritten after import) and lowbit's own canonical ops
    // (lowbit.Quantize ..., which an ONNX file may hold and the importer passes through).
    if (op.rfind(kQonnxOpPrefix, 0) == 0 || op.rfind("lowbit.", 0) == 0) continue;
    if (node.has(kUnsupportedDomainAttribute)) {
      problems.push_back({node.Describe(), "domain '" +
                                               node.GetString(kUnsupportedDomainAttribute, "") +
                                               "' (only the default ONNX domain and the QONNX "
                                               "quantizers Quant, IntQuant, BipolarQuant, Trunc)"});
      continue;
    }
    if (!kSupportedOps.count(op)) {
      problems.push_back({node.Describe(), "op '" + op + "' is not supported"});
      continue;
    }
    if (op == "Conv" || op == "ConvTranspose" || op == "MaxPool" || op == "AveragePool")
      CheckOneOf(node, "auto_pad", "NOTSET", {"NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"},
                 &problems);
    if (op == "MaxPool") {
      CheckZero(node, "storage_order", &problems);
      if (node.outputs.size() > 1)
        problems.push_back({node.Describe(), "the Indices output (not supported)"});
    }
    if (op == "Resize") {
      CheckOneOf(node, "mode", "nearest", {"nearest", "linear", "bilinear"}, &problems);
      CheckOneOf(node, "coordinate_transformation_mode", "half_pixel",
                 {"half_pixel", "pytorch_half_pixel", "asymmetric", "align_corners",
                  "tf_half_pixel_for_nn"},
                 &problems);
      CheckOneOf(node, "nearest_mode", "round_prefer_floor",
                 {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"}, &problems);
      CheckOneOf(node, "keep_aspect_ratio_policy", "stretch", {"stretch"}, &problems);
      CheckZero(node, "exclude_outside", &problems);
      CheckZero(node, "antialias", &problems);
      if (node.has("axes")) problems.push_back({node.Describe(), "the axes attribute"});
    }
    if (op == "Pad") CheckOneOf(node, "mode", "constant", {"constant"}, &problems);
    if (op == "Gemm") CheckZero(node, "transA", &problems);
    if (op == "DepthToSpace") CheckOneOf(node, "mode", "DCR", {"DCR", "CRD"}, &problems);
    if (op == "Cast") {
      // float32/16/64, int64, int32, bool (the IR's element types).
      static const std::set<int64_t> kCastTypes = {1, 6, 7, 9, 10, 11};
      if (!kCastTypes.count(node.GetInt("to", 1)))
        problems.push_back(
            {node.Describe(), "to = " + std::to_string(node.GetInt("to", 1)) +
                                  " (casts to float, int32, int64 and bool are supported)"});
    }
  }
  return problems;
}

Status UnsupportedNodesStatus(const std::string& source,
                              const std::vector<UnsupportedNode>& problems) {
  if (problems.empty()) return Status::Ok();
  std::string message = source + ": " + std::to_string(problems.size()) +
                        (problems.size() == 1 ? " node uses" : " nodes use") +
                        " ops or attributes lowbit does not support:";
  for (const UnsupportedNode& p : problems) message += "\n  " + p.node + ": " + p.reason;
  return Unimplemented(message);
}

}  // namespace lowbit::engine::import
