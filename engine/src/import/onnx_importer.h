// ONNX (protobuf) -> graph IR. Supports the default domain (ai.onnx) and
// the QONNX quantizers (import/fake_quant.h), initializers with raw_data or
// typed fields (float32, float16, float64, int64, int32, int16/uint16 and
// int8/uint8 and packed int4/uint4, int2/uint2 (held widened), bool),
// Constant nodes, typed attributes, opset and graph inputs/outputs with
// symbolic dimensions. Fake quantization becomes lowbit.Quantize /
// lowbit.Dequantize (ir/quant_ops.h).
#pragma once

#include <cstddef>
#include <string>

#include "ir/graph.h"
#include "lowbit/engine/status.h"

namespace onnx {
class TensorProto;
}  // namespace onnx

namespace lowbit::engine {

// `source` names the model in error messages (usually the file path).
StatusOr<ir::Graph> ImportOnnxBytes(const void* data, size_t size, const std::string& source);
StatusOr<ir::Graph> ImportOnnxFile(const std::string& path);
// One tensor (an initializer or a tensor attribute), read as the importer
// reads every initializer; `what` names it in error messages.
StatusOr<ir::HostTensor> ImportOnnxTensor(const onnx::TensorProto& tensor, const std::string& what);

}  // namespace lowbit::engine
