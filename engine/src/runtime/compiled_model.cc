#include "runtime/compiled_model.h"

#include "import/onnx_importer.h"
#include "ops/kernel.h"
#include "passes/passes.h"

namespace lowbit::engine {

StatusOr<std::shared_ptr<const Model>> Model::LoadOnnx(const std::string& path,
                                                       const CompileOptions& options) {
  LOWBIT_ASSIGN_OR_RETURN(ir::Graph graph, ImportOnnxFile(path));
  auto compiled = runtime::CompiledModel::Compile(std::move(graph));
  if (!compiled.ok()) return compiled.status().WithContext(path);
  return std::shared_ptr<const Model>(std::move(compiled).value());
}

namespace runtime {

bool IsRuntimeType(ir::DataType type) {
  return type == ir::DataType::kFloat32 || type == ir::DataType::kInt32 ||
         type == ir::DataType::kInt8 || type == ir::DataType::kUInt8;
}

StatusOr<std::shared_ptr<const CompiledModel>> CompiledModel::Compile(ir::Graph graph) {
  auto model = std::shared_ptr<CompiledModel>(new CompiledModel());
  std::vector<std::string> output_names;
  for (int o : graph.outputs) output_names.push_back(graph.values[o].name);
  LOWBIT_RETURN_IF_ERROR(passes::CompileGraph(&graph));
  model->graph_ = std::move(graph);
  const ir::Graph& g = model->graph_;
  for (int id : g.inputs) {
    if (!IsRuntimeType(g.values[id].dtype))
      return Unimplemented("graph input '" + g.values[id].name + "' is " +
                           ir::DataTypeName(g.values[id].dtype) +
                           "; inputs must be float32, int32, int8 or uint8");
    model->inputs_.push_back({g.values[id].name, g.values[id].shape});
  }
  for (size_t i = 0; i < g.outputs.size(); ++i) {
    const ir::Value& v = g.values[g.outputs[i]];
    if (v.is_constant())
      return Unimplemented("graph output '" + output_names[i] +
                           "' is a constant; lowbit needs outputs computed from the inputs");
    model->outputs_.push_back({output_names[i], v.shape});
  }
  LOWBIT_RETURN_IF_ERROR(model->Validate());
  LOWBIT_RETURN_IF_ERROR(model->BuildPlan());
  model->DescribeLayers();
  return std::shared_ptr<const CompiledModel>(std::move(model));
}

Status CompiledModel::Validate() const {
  for (const ir::Node& node : graph_.nodes) {
    bool has_runtime_input = false;
    for (int in : node.inputs)
      if (in != ir::kNoValue && !graph_.values[in].is_constant()) has_runtime_input = true;
    if (!has_runtime_input)
      return Unimplemented(node.Describe() +
                           " computes from constants only, but the constant "
                           "folder cannot evaluate " +
                           node.op_type);
    for (int out : node.outputs) {
      const ir::Value& v = graph_.values[out];
      if (!IsRuntimeType(v.dtype))
        return Unimplemented(node.Describe() + " produces " + ir::DataTypeName(v.dtype) +
                             " tensor '" + v.name +
                             "' at run time; activations must be float32, int32, int8 or uint8");
      if (v.shape.empty() || v.shape[0] != 1)
        return Unimplemented(node.Describe() + " output '" + v.name + "' has shape " +
                             ShapeToString(v.shape) + ": the batch must stay the first dimension");
    }
    if (node.op_type == "Flatten" && node.GetInt("axis", 1) == 0)
      return Unimplemented(node.Describe() + " flattens the batch axis");
    if ((node.op_type == "Squeeze" || node.op_type == "Unsqueeze") && node.has("axes"))
      for (int64_t axis : node.GetInts("axes"))
        if (axis == 0) return Unimplemented(node.Describe() + " changes the batch axis");
    if (!ops::IsViewOp(node)) {
      // Building a kernel checks attributes and support once, at load time.
      auto kernel = ops::CreateKernel(graph_, node);
      if (!kernel.ok()) return kernel.status();
    }
  }
  return Status::Ok();
}

Status CompiledModel::BuildPlan() {
  ExecutionPlan& plan = plan_;
  plan.buffer_of_value.assign(graph_.values.size(), -1);
  auto new_buffer = [&](int value, int first_step) {
    plan.buffer_of_value[value] = static_cast<int>(plan.buffer_frame_bytes.size());
    const ir::Value& v = graph_.values[value];
    plan.buffer_frame_bytes.push_back(NumElements(v.shape) * ir::DataTypeSize(v.dtype));
    plan.buffer_first_step.push_back(first_step);
    plan.buffer_last_step.push_back(first_step);
  };
  for (int in : graph_.inputs) new_buffer(in, -1);
  for (size_t n = 0; n < graph_.nodes.size(); ++n) {
    const ir::Node& node = graph_.nodes[n];
    const int step = static_cast<int>(plan.steps.size());
    for (int in : node.inputs) {
      if (in == ir::kNoValue || graph_.values[in].is_constant()) continue;
      const int buffer = plan.buffer_of_value[in];
      if (buffer < 0) return Internal(node.Describe() + " reads a value with no buffer");
      plan.buffer_last_step[buffer] = std::max(plan.buffer_last_step[buffer], step);
    }
    if (ops::IsViewOp(node)) {
      plan.buffer_of_value[node.outputs[0]] = plan.buffer_of_value[node.inputs[0]];
      continue;
    }
    for (int out : node.outputs) new_buffer(out, step);
    plan.steps.push_back(static_cast<int>(n));
  }
  const int end = static_cast<int>(plan.steps.size());
  for (int out : graph_.outputs) plan.buffer_last_step[plan.buffer_of_value[out]] = end;
  return Status::Ok();
}

void CompiledModel::DescribeLayers() {
  for (const ir::Node& node : graph_.nodes) {
    LayerInfo layer;
    layer.name = node.name;
    layer.op = node.op_type;
    const std::string activation = node.GetString("lowbit_activation", "");
    if (activation == "relu") layer.op += "+Relu";
    if (activation == "leaky_relu") layer.op += "+LeakyRelu";
    if (activation == "clip") layer.op += "+Clip";
    layer.output_shape = graph_.values[node.outputs[0]].shape;
    if (node.op_type == "Conv") {
      const Shape& w = graph_.values[node.inputs[1]].shape;  // [M, C/group, kH, kW]
      layer.macs = NumElements(layer.output_shape) * w[1] * w[2] * w[3];
      layer.params = NumElements(w) + (ir::HasInput(node, 2) ? w[0] : 0);
    }
    layers_.push_back(std::move(layer));
  }
}

}  // namespace runtime
}  // namespace lowbit::engine
