// ONNX (protobuf) -> graph IR. Supports the default domain (ai.onnx),
// initializers with raw_data or typed fields (float32, float16, float64,
// int64, int32, int8, uint8, bool), Constant nodes, typed attributes, opset
// and graph inputs/outputs with symbolic dimensions.
#pragma once

#include <cstddef>
#include <string>

#include "ir/graph.h"
#include "lowbit/engine/status.h"

namespace lowbit::engine {

// `source` names the model in error messages (usually the file path).
StatusOr<ir::Graph> ImportOnnxBytes(const void* data, size_t size, const std::string& source);
StatusOr<ir::Graph> ImportOnnxFile(const std::string& path);

}  // namespace lowbit::engine
