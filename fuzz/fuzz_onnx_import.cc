// Fuzz target: the ONNX importer (engine/src/import/onnx_importer.cc) and
// shape inference over what it imports, as Model::LoadOnnx runs them on a
// model file. Input: the bytes of an .onnx file (a serialized ModelProto).
#include <cstddef>
#include <cstdint>

#include "import/onnx_importer.h"
#include "passes/passes.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  lowbit::StatusOr<lowbit::engine::ir::Graph> graph =
      lowbit::engine::ImportOnnxBytes(data, size, "fuzz.onnx");
  if (!graph.ok()) return 0;
  lowbit::engine::ir::Graph& imported = graph.value();
  if (!lowbit::engine::passes::NormalizeGraphInputs(&imported).ok()) return 0;
  (void)lowbit::engine::passes::InferShapes(&imported);
  return 0;
}
