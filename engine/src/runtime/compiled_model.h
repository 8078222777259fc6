// The FP32 model: a compiled graph plus the batch-independent execution plan
// (step order, buffer aliasing, lifetimes). Sessions add kernels and an arena.
#pragma once

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
  // Compiles an imported graph. `output_names` are the ONNX graph output
  // names in order (kept even when layout assignment re-points outputs).
  static StatusOr<std::shared_ptr<const CompiledModel>> Compile(ir::Graph graph);

  const std::vector<ValueInfo>& inputs() const override { return inputs_; }
  const std::vector<ValueInfo>& outputs() const override { return outputs_; }
  const std::vector<LayerInfo>& layers() const override { return layers_; }
  StatusOr<std::unique_ptr<Session>> CreateSession(const SessionOptions& options) const override;

  const ir::Graph& graph() const { return graph_; }
  const ExecutionPlan& plan() const { return plan_; }

 private:
  Status BuildPlan();
  Status Validate() const;
  void DescribeLayers();

  ir::Graph graph_;
  ExecutionPlan plan_;
  std::vector<ValueInfo> inputs_, outputs_;
  std::vector<LayerInfo> layers_;
};

}  // namespace lowbit::engine::runtime
