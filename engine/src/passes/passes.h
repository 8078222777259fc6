// Graph passes of the compiler. Each takes the graph in topological order and
// leaves it in topological order. Run order (CompileGraph, pipeline.cc):
//   FoldConstants (with shape inference; Dequantize of integer weights kept)
//   -> EliminateDeadNodes -> FoldBatchNormalization -> FusePadIntoConsumer
//   -> FuseSiLU -> FuseActivations -> LowerQuantizedOps -> FoldConstants (the rest)
//   -> ChooseQConvKernels -> AssignLayouts -> EliminateDeadNodes
#pragma once

#include <array>
#include <map>
#include <string>
#include <utility>
#include <optional>
#include <vector>

#include "ir/graph.h"
#include "ir/node_semantics.h"
#include "lowbit/engine/status.h"

namespace lowbit::engine::passes {

// Shapes and element types of every value. Graph inputs' first dimension is
// the batch: symbolic or 1 becomes 1 (shapes are stored at batch 1). Every
// other input dimension must be fixed. Conv/pool auto_pad is rewritten into
// explicit pads. Fails naming the node on inconsistent shapes.
// Needs every shape-defining input (Reshape's shape, Slice's starts ...) to
// be constant already; FoldConstants works on unfolded graphs.
Status InferShapes(ir::Graph* graph);
// The graph-input part of InferShapes: batch to 1, other dimensions fixed.
Status NormalizeGraphInputs(ir::Graph* graph);
// Gives graph inputs' symbolic dimensions the sizes in `shapes` (by input
// name; each entry has the input's rank, its batch entry is ignored). A fixed
// dimension given another size, a wrong rank or an unknown name is an error.
Status FixInputShapes(ir::Graph* graph,
                      const std::map<std::string, std::vector<int64_t>>& shapes);
// Infers one node's output shapes from its inputs' (which must be known).
Status InferNodeShapes(ir::Graph* graph, ir::Node* node);

// Evaluates every node whose inputs are all constant (and Shape of any value
// with a known shape), replacing its outputs with constants; removes Identity
// nodes (rewiring their consumers). Normalises graph inputs and infers
// shapes on the way, so it runs on freshly imported graphs. lowbit.Quantize
// of constants folds into integer constants; lowbit.Dequantize of integer
// constants (quantized weights and biases) stays unless `fold_dequantize`,
// so the lowering pass sees the integer weights.
Status FoldConstants(ir::Graph* graph, bool fold_dequantize = false);
// Computes the outputs of `node` from its constant inputs (logical order);
// output shapes must already be inferred. Unimplemented for ops the folder
// cannot evaluate.
StatusOr<std::vector<ir::HostTensor>> EvaluateConstantNode(const ir::Graph& graph,
                                                           const ir::Node& node);

// Removes nodes whose outputs no graph output depends on.
Status EliminateDeadNodes(ir::Graph* graph);

// Inference-mode BatchNormalization with constant parameters, folded in
// double into the float weights and bias of a preceding Conv (any group),
// Gemm, or rank-2 MatMul (bias as an Add) when the BN is that output's only
// reader; otherwise rewritten as Mul + Add with [C,1,...,1] constants. BNs
// with run-time parameters stay (the runtime reports them unsupported). Runs
// after FoldConstants (needs constant parameters and inferred ranks) and
// before FuseActivations and layout assignment.
Status FoldBatchNormalization(ir::Graph* graph);

// Pad (mode constant, pads on H and W of a 4-D NCHW value only, >= 0) whose
// result only feeds one Conv: with value 0 it becomes the Conv's pads. Into a
// MaxPool: with value -inf, or with value 0 when the input is known to be
// >= 0 (Relu/Sigmoid output) and every pooling window still overlaps real data.
Status FusePadIntoConsumer(ir::Graph* graph);

// A Pad that the Pad foldings can move into a convolution or pool: mode
// constant, a 4-D NCHW input, pads >= 0 on H and W only, constant pads and
// fill value. Its pads as [top, left, bottom, right]; nullopt otherwise.
struct SpatialPad {
  std::array<int64_t, 4> pads;
  float fill = 0.0f;
};
std::optional<SpatialPad> ReadSpatialPad(const ir::Graph& graph, const ir::Node& pad);

// Clip's bounds (attributes before opset 11, constant inputs after; absent
// bounds are -inf / +inf), or nullopt when a bound is computed at run time.
std::optional<std::pair<float, float>> ClipBounds(const ir::Graph& graph, const ir::Node& clip);
// The attributes a Relu, LeakyRelu or Clip (constant bounds) becomes when a
// producer takes it over: lowbit_activation and lowbit_alpha / lowbit_min /
// lowbit_max. nullopt for any other node.
std::optional<std::map<std::string, ir::Attribute>> FusedActivationAttributes(
    const ir::Graph& graph, const ir::Node& activation);

// Sigmoid(x) whose only reader is Mul(x, Sigmoid(x)) (either order): the
// pair becomes one lowbit.SiLU(x) node (x * sigmoid(x), ops/activation.cc).
// Float32 only; runs before FuseActivations and the quantized lowering.
Status FuseSiLU(ir::Graph* graph);

// Conv followed by Relu / Clip / LeakyRelu as the conv's only consumer, or
// Add followed by Relu / Clip: the activation moves into the producer as
// internal attributes
// `lowbit_activation` ("relu", "clip", "leaky_relu"), `lowbit_min`,
// `lowbit_max`, `lowbit_alpha`.
Status FuseActivations(ir::Graph* graph);

// Chooses each value's storage order: NHWC for Conv/MaxPool/Resize
// activations, the input's order for element-wise and data-movement ops,
// logical order for Reshape-like ops and graph outputs. Inserts
// `lowbit.Relayout` nodes where a consumer needs another order and permutes
// constants feeding NHWC operations. Transpose becomes a view: its output's
// storage order is chosen so that its memory equals its input's.
Status AssignLayouts(ir::Graph* graph);

// Fake-quantized patterns (Dequantize -> Conv -> Quantize, requantization,
// element-wise ops and Concat between quantizers, Pad before a quantizer)
// become integer ops: lowbit.QConv, lowbit.CodeTable, Concat of codes.
// Definitions in lower_quantized.cc.
Status LowerQuantizedOps(ir::Graph* graph);

// The whole pipeline in order (pipeline.cc).
// lower_quantized = false skips LowerQuantizedOps (CompileOptions).
Status CompileGraph(ir::Graph* graph, bool lower_quantized = true);

}  // namespace lowbit::engine::passes
