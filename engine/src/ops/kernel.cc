#include "ops/kernel.h"

#include <limits>
#include <set>
#include <string>

namespace lowbit::engine::ops {

int Operand::PhysicalAxis(int logical) const {
  if (storage_perm.empty()) return logical;
  for (size_t j = 0; j < storage_perm.size(); ++j)
    if (storage_perm[j] == logical) return static_cast<int>(j);
  return logical;
}

int64_t Operand::ElementStride(int logical) const {
  int64_t stride = 1;
  for (size_t j = physical.size(); j-- > static_cast<size_t>(PhysicalAxis(logical)) + 1;)
    stride *= physical[j];
  return stride;
}

Operand DescribeOperand(const ir::Value& value) {
  Operand operand;
  operand.batched = !value.is_constant();
  operand.storage_perm = value.storage_perm;
  operand.physical = value.shape;
  if (!value.storage_perm.empty())
    for (size_t j = 0; j < value.storage_perm.size(); ++j)
      operand.physical[j] = value.shape[value.storage_perm[j]];
  return operand;
}

bool IsViewOp(const ir::Node& node) {
  static const std::set<std::string> kViews = {"Reshape",   "Flatten",  "Squeeze",
                                               "Unsqueeze", "Identity", "Transpose"};
  return kViews.count(node.op_type) != 0;
}

StatusOr<std::unique_ptr<Kernel>> CreateKernel(const ir::Graph& graph, const ir::Node& node) {
  const std::string& op = node.op_type;
  if (op == "Conv") return CreateConvKernel(graph, node);
  if (op == "lowbit.Quantize" || op == "lowbit.Dequantize") return CreateQuantizeKernel(graph, node);
  if (op == "lowbit.QConv") return CreateQConvKernel(graph, node);
  if (op == "lowbit.CodeTable") return CreateCodeTableKernel(graph, node);
  if (op == "lowbit.QAdd") return CreateQAddKernel(graph, node);
  static const std::set<std::string> kElementwise = {"Relu", "LeakyRelu", "Sigmoid", "Clip", "Tanh",
                                                     "Exp",  "Neg",       "Sqrt",    "Abs",  "Add",
                                                     "Sub",  "Mul",       "Div",     "Max",  "Min"};
  if (kElementwise.count(op)) return CreateElementwiseKernel(graph, node);
  static const std::set<std::string> kDataMovement = {"Concat", "Split", "Slice", "Pad",
                                                      "DepthToSpace", "SpaceToDepth",
                                                      "lowbit.Relayout"};
  if (kDataMovement.count(op)) return CreateDataMovementKernel(graph, node);
  static const std::set<std::string> kSpatial = {"MaxPool", "AveragePool", "GlobalAveragePool",
                                                 "Resize", "Upsample"};
  if (kSpatial.count(op)) return CreateSpatialKernel(graph, node);
  static const std::set<std::string> kActivation = {"HardSigmoid", "HardSwish", "PRelu", "Pow",
                                                    "lowbit.SiLU"};
  if (kActivation.count(op)) return CreateActivationKernel(graph, node);
  if (op == "MatMul" || op == "Gemm") return CreateMatMulKernel(graph, node);
  static const std::set<std::string> kReduce = {"Softmax", "ReduceMean", "ReduceSum", "ReduceMax"};
  if (kReduce.count(op)) return CreateReduceKernel(graph, node);
  if (op == "ConvTranspose") return CreateConvTransposeKernel(graph, node);
  return Unimplemented("unsupported op '" + op + "' (node '" + node.name +
                       "'): lowbit has no kernel for it");
}

ClampRange FusedClampRange(const ir::Node& node) {
  ClampRange range{-std::numeric_limits<float>::infinity(), std::numeric_limits<float>::infinity()};
  const std::string activation = node.GetString("lowbit_activation", "");
  if (activation == "relu") range.min = 0.0f;
  if (activation == "clip") {
    range.min = node.GetFloat("lowbit_min", range.min);
    range.max = node.GetFloat("lowbit_max", range.max);
  }
  return range;
}

}  // namespace lowbit::engine::ops
