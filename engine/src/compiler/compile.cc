// The compiler library's entry points: ONNX file -> compiled model, a file
// of either kind by its magic, and compiled model -> .lbm. The runtime
// library never links this file (engine/CMakeLists.txt enforces it).
#include <filesystem>
#include <fstream>

#include "format/lbm.h"
#include "import/onnx_importer.h"
#include "lowbit/engine/detector.h"
#include "passes/passes.h"
#include "runtime/compiled_model.h"
#include "vision/config.h"

namespace lowbit::engine {
namespace runtime {

StatusOr<std::shared_ptr<const CompiledModel>> CompiledModel::Compile(
    ir::Graph graph, ModelOrigin origin, const CompileOptions& options) {
  std::vector<std::string> output_names;
  for (int o : graph.outputs) output_names.push_back(graph.values[o].name);
  LOWBIT_RETURN_IF_ERROR(passes::FixInputShapes(&graph, options.input_shapes));
  LOWBIT_RETURN_IF_ERROR(passes::CompileGraph(&graph, options.lower_quantized));
  return FromGraph(std::move(graph), std::move(output_names), std::move(origin));
}

}  // namespace runtime

StatusOr<std::shared_ptr<const Model>> Model::LoadOnnx(const std::string& path,
                                                       const CompileOptions& options) {
  LOWBIT_ASSIGN_OR_RETURN(ir::Graph graph, ImportOnnxFile(path));
  ModelOrigin origin;
  origin.path = path;
  origin.source_model = path;
  origin.producer = std::string("lowbit ") + format::ProducerVersion();
  origin.kernel_isa = format::HostKernelIsa();
  origin.cpu_model = format::HostCpuModel();
  auto compiled = runtime::CompiledModel::Compile(std::move(graph), std::move(origin), options);
  if (!compiled.ok()) return compiled.status().WithContext(path);
  return std::shared_ptr<const Model>(std::move(compiled).value());
}

StatusOr<std::shared_ptr<const Model>> Model::Load(const std::string& path,
                                                   const CompileOptions& options) {
  uint8_t head[sizeof format::kLbmMagic] = {};
  std::ifstream file(path, std::ios::binary);
  if (!file) return NotFound("cannot read " + path);
  file.read(reinterpret_cast<char*>(head), sizeof head);
  const size_t got = static_cast<size_t>(file.gcount());
  if (format::HasLbmMagic(head, got)) return LoadCompiled(path);
  return LoadOnnx(path, options);
}

Status WriteCompiledModel(const Model& model, const std::string& path) {
  const auto* compiled = dynamic_cast<const runtime::CompiledModel*>(&model);
  if (compiled == nullptr)
    return InvalidArgument("WriteCompiledModel: the model was not loaded by lowbit's engine");
  const ModelOrigin& origin = model.origin();
  format::LbmMetadata metadata;
  metadata.producer = std::string("lowbit ") + format::ProducerVersion();
  metadata.source_model = origin.source_model;
  // A model read from a .lbm keeps the facts of the CPU its kernels were
  // chosen on; one compiled in this process was chosen here.
  metadata.kernel_isa = origin.precompiled ? origin.kernel_isa : format::HostKernelIsa();
  metadata.cpu_model = origin.precompiled ? origin.cpu_model : format::HostCpuModel();
  metadata.output_names = compiled->output_names();
  return format::WriteLbm(compiled->StoredGraph(), metadata, path);
}

StatusOr<std::shared_ptr<const DetectorModel>> DetectorModel::Load(const std::string& model_dir) {
  // A dynamic-shape export (Ultralytics YOLO: images [batch, 3, H, W]) takes
  // its input size from the config: a load refused for symbolic non-batch
  // dimensions (UNIMPLEMENTED) is redone with the config's input shape. A
  // model with fixed dimensions loads as it is, so a config that disagrees
  // with it still gets CheckConfigAgainstModel's message.
  CompileOptions options;
  StatusOr<v1::ModelConfig> config =
      vision::ReadModelConfig((std::filesystem::path(model_dir) / "config.pbtxt").string());
  if (config.ok() && config->has_input() && !config->input().tensor_name().empty()) {
    options.input_shapes[config->input().tensor_name()] = vision::InputShapeFor(config->input(), 1);
  }
  return Load(model_dir, [options](const std::string& path) {
    StatusOr<std::shared_ptr<const Model>> model = Model::Load(path);
    if (model.ok() || model.status().code() != StatusCode::kUnimplemented ||
        options.input_shapes.empty()) {
      return model;
    }
    return Model::Load(path, options);
  });
}

}  // namespace lowbit::engine
