// CompiledModel's runtime half: validation, the execution plan, layer
// descriptions, and loading a .lbm. The compiler half (Compile, LoadOnnx,
// Load) is in compiler/compile.cc.
#include "runtime/compiled_model.h"

#include "format/lbm.h"
#include "lowbit/kernels/dispatch.h"
#include "ops/kernel.h"
#include "ops/qconv.h"

namespace lowbit::engine {

const ModelOrigin& Model::origin() const {
  static const ModelOrigin kNone;
  return kNone;
}

StatusOr<std::shared_ptr<const Model>> Model::LoadCompiled(const std::string& path) {
  StatusOr<format::LbmFile> file = format::ReadLbm(path);
  if (!file.ok()) {
    Status status = file.status();
    const bool onnx_name = path.size() > 5 && path.compare(path.size() - 5, 5, ".onnx") == 0;
    if (onnx_name && status.message().rfind("not a lowbit model", 0) == 0)
      status = Status(status.code(), status.message() +
                                         "; an ONNX model must be compiled first (`lowbit "
                                         "compile MODEL.onnx -o MODEL.lbm`)");
    return status.WithContext(path);
  }
  ModelOrigin origin;
  origin.path = path;
  origin.precompiled = true;
  origin.source_model = file->metadata.source_model;
  origin.producer = file->metadata.producer;
  origin.kernel_isa = file->metadata.kernel_isa;
  origin.cpu_model = file->metadata.cpu_model;
  // Kernel choices measured on another CPU (or ISA level) are measured
  // again here, once per layer shape, when the weights are packed.
  if (origin.kernel_isa != kernels::isa_name(kernels::kernel_table().isa) ||
      origin.cpu_model != format::HostCpuModel()) {
    for (ir::Node& node : file->graph.nodes)
      if (node.op_type == "lowbit.QConv") {
        node.attributes.erase("lowbit_kernel");
        node.attributes.erase("lowbit_residual_kernel");
      }
  }
  auto model = runtime::CompiledModel::FromGraph(
      std::move(file->graph), std::move(file->metadata.output_names), std::move(origin));
  if (!model.ok()) return model.status().WithContext(path);
  return std::shared_ptr<const Model>(std::move(model).value());
}

namespace runtime {

bool IsRuntimeType(ir::DataType type) {
  return type == ir::DataType::kFloat32 || type == ir::DataType::kInt32 ||
         type == ir::DataType::kInt8 || type == ir::DataType::kUInt8;
}

namespace {

// The graph without the values that no node, graph input or graph output
// refers to (the passes never erase values, so folded-away weights stay
// behind as constants), ids renumbered in their original order.
ir::Graph WithoutUnusedValues(ir::Graph graph) {
  std::vector<int> new_id(graph.values.size(), -1);
  auto mark = [&](int id) {
    if (id >= 0 && id < static_cast<int>(new_id.size())) new_id[id] = 0;
  };
  for (int id : graph.inputs) mark(id);
  for (int id : graph.outputs) mark(id);
  for (const ir::Node& node : graph.nodes) {
    for (int id : node.inputs) mark(id);
    for (int id : node.outputs) mark(id);
  }
  ir::Graph kept;
  kept.opset = graph.opset;
  for (size_t v = 0; v < graph.values.size(); ++v) {
    if (new_id[v] < 0) continue;
    new_id[v] = static_cast<int>(kept.values.size());
    kept.values.push_back(std::move(graph.values[v]));
  }
  auto remap = [&](std::vector<int>* ids) {
    for (int& id : *ids)
      if (id != ir::kNoValue) id = new_id[id];
  };
  kept.nodes = std::move(graph.nodes);
  for (ir::Node& node : kept.nodes) {
    remap(&node.inputs);
    remap(&node.outputs);
  }
  kept.inputs = std::move(graph.inputs);
  kept.outputs = std::move(graph.outputs);
  remap(&kept.inputs);
  remap(&kept.outputs);
  return kept;
}

}  // namespace

StatusOr<std::shared_ptr<const CompiledModel>> CompiledModel::FromGraph(
    ir::Graph graph, std::vector<std::string> output_names, ModelOrigin origin) {
  if (!output_names.empty() && output_names.size() != graph.outputs.size())
    return InvalidArgument(std::to_string(output_names.size()) + " output names for " +
                           std::to_string(graph.outputs.size()) + " graph outputs");
  // A mistyped LOWBIT_KERNELS_ISA must not silently run other kernels.
  if (const char* error = kernels::isa_override_error()) return InvalidArgument(error);
  auto model = std::shared_ptr<CompiledModel>(new CompiledModel());
  model->graph_ = WithoutUnusedValues(std::move(graph));
  model->origin_ = std::move(origin);
  // Kernel-format weights, once per model, shared read-only by every session.
  // They are derived from the stored (compact) weights, so they are values
  // appended here and not part of what a .lbm stores (StoredGraph).
  model->stored_value_count_ = static_cast<int>(model->graph_.values.size());
  LOWBIT_RETURN_IF_ERROR(ops::PrepareQuantizedConvs(&model->graph_));
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
    const std::string& name = output_names.empty() ? v.name : output_names[i];
    if (v.is_constant())
      return Unimplemented("graph output '" + name +
                           "' is a constant; lowbit needs outputs computed from the inputs");
    model->outputs_.push_back({name, v.shape});
  }
  LOWBIT_RETURN_IF_ERROR(model->Validate());
  LOWBIT_RETURN_IF_ERROR(model->BuildPlan());
  model->DescribeLayers();
  return std::shared_ptr<const CompiledModel>(std::move(model));
}

ir::Graph CompiledModel::StoredGraph() const {
  // Derived values are appended after the stored ones and read only as
  // trailing node inputs (ops::PrepareQuantizedConvs).
  ir::Graph stored;
  stored.opset = graph_.opset;
  stored.values.assign(graph_.values.begin(), graph_.values.begin() + stored_value_count_);
  stored.inputs = graph_.inputs;
  stored.outputs = graph_.outputs;
  stored.nodes = graph_.nodes;
  for (ir::Node& node : stored.nodes)
    while (!node.inputs.empty() && node.inputs.back() >= stored_value_count_)
      node.inputs.pop_back();
  return stored;
}

std::vector<std::string> CompiledModel::output_names() const {
  std::vector<std::string> names;
  for (const ValueInfo& output : outputs_) names.push_back(output.name);
  return names;
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

int64_t StoredBytes(const ir::HostTensor& tensor) {
  if (tensor.dtype == ir::DataType::kPacked) return static_cast<int64_t>(tensor.bytes.size());
  return tensor.size() * ir::DataTypeSize(tensor.dtype);
}

namespace {

// Logical [M, C/group, kH, kW] weight shape of a convolution-like node whose
// weights may be packed: attribute `weight_shape`, else the shape of an
// unpacked constant input 1, else kernel_shape with the node's logical input
// and output channels. Empty when none is known.
Shape ConvWeightShape(const ir::Graph& graph, const ir::Node& node) {
  if (node.has("weight_shape")) return node.GetInts("weight_shape");
  if (ir::HasInput(node, 1)) {
    const ir::Value& w = graph.values[node.inputs[1]];
    if (w.dtype != ir::DataType::kPacked && w.shape.size() >= 3) return w.shape;
  }
  const std::vector<int64_t> kernel = node.GetInts("kernel_shape");
  if (kernel.empty() || !ir::HasInput(node, 0)) return {};
  const Shape& x = graph.values[node.inputs[0]].shape;
  const Shape& y = graph.values[node.outputs[0]].shape;
  const int64_t group = node.GetInt("group", 1);
  if (x.size() < 2 || y.size() < 2 || group <= 0) return {};
  Shape w = {y[1], x[1] / group};
  w.insert(w.end(), kernel.begin(), kernel.end());
  return w;
}

// MACs and parameters of a conv-like node from its logical weight shape.
void CountConv(const ir::Graph& graph, const ir::Node& node, const Shape& w, LayerInfo* layer) {
  if (w.size() < 3 || w[0] <= 0) return;
  layer->macs = NumElements(layer->output_shape) * (NumElements(w) / w[0]);
  int64_t bias = 0;
  if (ir::HasInput(node, 2)) bias = NumElements(graph.values[node.inputs[2]].shape);
  layer->params = NumElements(w) + bias;
}

}  // namespace

void DescribeLayerWeights(const ir::Graph& graph, const ir::Node& node, LayerInfo* layer,
                          int stored_value_count) {
  if (node.op_type == "Conv") {
    // XNNPACK's f32 convolution with float weights and bias.
    CountConv(graph, node, graph.values[node.inputs[1]].shape, layer);
    layer->kernel = "xnnpack_f32";
    layer->weight_bytes = layer->params * 4;
    layer->lowering_note = node.GetString(ops::kNotLoweredAttribute, "");
    return;
  }
  if (!node.has("wbits")) return;
  // A quantized layer (lowbit.QConv and its kin): bits and kernel from its
  // attributes; weight bytes are its stored constant operands after the data
  // input (compact weights, bias, requantization multipliers), not the
  // kernel-format copy made at load.
  layer->weight_bits = static_cast<int>(node.GetInt("wbits", 32));
  layer->activation_bits = static_cast<int>(node.GetInt("abits", 32));
  layer->kernel = node.GetString("lowbit_kernel", "");
  // A residual pair (lowbit.QConv inputs 4 and 5: the second tensor's codes
  // and the per-channel multipliers).
  const bool residual = node.has("residual_wbits");
  if (residual) {
    layer->residual_weight_bits = static_cast<int>(node.GetInt("residual_wbits", 0));
    layer->residual_kernel = node.GetString("lowbit_residual_kernel", "");
  }
  for (size_t i = 1; i < node.inputs.size(); ++i) {
    if (!ir::HasInput(node, i) || node.inputs[i] >= stored_value_count) continue;
    const ir::Value& v = graph.values[node.inputs[i]];
    if (!v.is_constant()) continue;
    layer->weight_bytes += StoredBytes(*v.constant);
    if (residual && (i == 4 || i == 5)) layer->residual_weight_bytes += StoredBytes(*v.constant);
  }
  CountConv(graph, node, ConvWeightShape(graph, node), layer);
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
    DescribeLayerWeights(graph_, node, &layer, stored_value_count_);
    layers_.push_back(std::move(layer));
  }
}

}  // namespace runtime
}  // namespace lowbit::engine
