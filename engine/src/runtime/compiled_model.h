// A compiled model: a compiled graph plus the batch-independent execution
// plan (step order, buffer aliasing, lifetimes). Sessions add kernels and an
// arena. Built from a graph the compiler produced, either just now
// (CompiledModel::Compile, compiler library) or read from a .lbm
// (CompiledModel::FromGraph, runtime library).
#pragma once

#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "lowbit/engine/model.h"

namespace lowbit::engine::runtime {

// Element types a run-time buffer may hold (activations, graph inputs and
// outputs). The public Tensor is float32: integer inputs and outputs cross
// the Session boundary as float32 tensors holding the exact integers.
bool IsRuntimeType(ir::DataType type);

// Batch-independent schedule. Each runtime value lives in a buffer; view ops
// (Reshape, Transpose after layout assignment, ...) share their input's buffer.
struct ExecutionPlan {
  std::vector<int> steps;                   // node indices that run a kernel, in order
  std::vector<int> buffer_of_value;         // per value id; -1 for constants / unused
  std::vector<int64_t> buffer_frame_bytes;  // per buffer, bytes of one frame
  std::vector<int> buffer_first_step;       // -1 for graph inputs
  std::vector<int> buffer_last_step;        // inclusive; steps.size() for graph outputs
};

class CompiledModel final : public Model {
 public:
  // Compiler library: runs the passes (passes::CompileGraph) on an imported
  // graph, then FromGraph. The graph's output names before the passes become
  // the model's output names.
  static StatusOr<std::shared_ptr<const CompiledModel>> Compile(
      ir::Graph graph, ModelOrigin origin = {}, const CompileOptions& options = {});

  // Runtime library: a model from an already compiled graph. Drops the
  // values nothing refers to (renumbering the rest), derives kernel-format
  // weights, validates it (run-time types, batch axis, a kernel for every
  // node), plans buffers and describes the layers. `output_names` are the model's public output
  // names in graph.outputs order (the compiler may re-point an output to a value it renamed); empty
  // means the output values' own names.
  static StatusOr<std::shared_ptr<const CompiledModel>> FromGraph(
      ir::Graph graph, std::vector<std::string> output_names = {}, ModelOrigin origin = {});

  const std::vector<ValueInfo>& inputs() const override { return inputs_; }
  const std::vector<ValueInfo>& outputs() const override { return outputs_; }
  const std::vector<LayerInfo>& layers() const override { return layers_; }
  const ModelOrigin& origin() const override { return origin_; }
  StatusOr<std::unique_ptr<Session>> CreateSession(const SessionOptions& options) const override;

  const ir::Graph& graph() const { return graph_; }
  const ExecutionPlan& plan() const { return plan_; }
  // Public output names in graph().outputs order.
  std::vector<std::string> output_names() const;
  // The graph as compiled, without what FromGraph derived from it at load
  // (kernel-format weights appended as trailing node inputs): what a .lbm
  // stores. A copy.
  ir::Graph StoredGraph() const;

 private:
  Status BuildPlan();
  Status Validate() const;
  void DescribeLayers();

  ir::Graph graph_;
  ExecutionPlan plan_;
  std::vector<ValueInfo> inputs_, outputs_;
  std::vector<LayerInfo> layers_;
  ModelOrigin origin_;
  // Values [0, stored_value_count_) are the compiled graph's; later ones
  // were derived at load.
  int stored_value_count_ = 0;
};

// The bits, kernel, weight bytes, parameters and MACs of one node (the
// weighted ops: float Conv, and any quantized op that states `wbits`, such as
// lowbit.QConv); other nodes keep LayerInfo's defaults. Weight bytes count
// the constant inputs with value ids below `stored_value_count` (what the
// compiled model stores, not copies derived at load).
void DescribeLayerWeights(const ir::Graph& graph, const ir::Node& node, LayerInfo* layer,
                          int stored_value_count = std::numeric_limits<int>::max());

// Bytes a constant takes as stored: 4 per f32 element, DataTypeSize per
// integer element, the raw size of packed bytes.
int64_t StoredBytes(const ir::HostTensor& tensor);

}  // namespace lowbit::engine::runtime
