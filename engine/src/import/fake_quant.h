// Fake quantization in ONNX files -> the engine's canonical ops
// lowbit.Quantize / lowbit.Dequantize (ir/quant_ops.h). Formats read:
//
//   ONNX QuantizeLinear / DequantizeLinear (opsets 10-25): int2/uint2,
//     int4/uint4, int8/uint8, int16/uint16 codes (int16/uint16 held as i32),
//     int32 for DequantizeLinear; per tensor or per axis. QuantizeLinear
//     rounds x / s half to even, then adds the zero point.
//   Brevitas QCDQ: QuantizeLinear -> Clip(lo, hi) -> DequantizeLinear. The
//     integer Clip narrows the Quantize's [qmin, qmax]; a Clip of an integer
//     constant is folded into the constant.
//   QONNX Quant / IntQuant, BipolarQuant, Trunc in the domains
//     qonnx.custom_op.general, onnx.brevitas and finn.custom_op.general, with
//     qonnx's definitions: Quant adds the zero point before rounding
//     (zero_point_first = 1), clamps to [min_int, max_int] of (bitwidth,
//     signed, narrow) and rounds with rounding_mode; 1-bit signed Quant and
//     BipolarQuant are bipolar. Scales broadcast against the data (shape
//     [1,C,1,1] or [C,1,1,1]) become per-axis parameters.
//   Trunc is decomposed (see fake_quant.cc): Quantize(x; s, z, half_even) ->
//     Dequantize(1) -> Quantize(; 2^k, rounding_mode) -> Dequantize(s', z').
//
// Refused with UNIMPLEMENTED naming the node: blocked quantization
// (block_size != 0), float8 / float4 codes, non-float32 scales where ONNX
// divides in the scale's precision, a `precision` attribute other than
// float32, quantization parameters computed at run time, non-integer QONNX
// bit widths or zero points, scales that vary along more than one axis.
#pragma once

#include <string>
#include <unordered_map>

#include "ir/graph.h"
#include "lowbit/engine/status.h"

namespace onnx {
class GraphProto;
}

namespace lowbit::engine::import {

// ONNX TensorProto.DataType numbers the importer reads. The onnx.proto
// lowbit compiles may predate the low-bit and float8 types, so they are
// spelled here (the field is a plain int32 on the wire).
namespace onnx_type {
constexpr int kFloat = 1, kUInt8 = 2, kInt8 = 3, kUInt16 = 4, kInt16 = 5, kInt32 = 6, kInt64 = 7,
              kBool = 9, kFloat16 = 10, kDouble = 11, kBFloat16 = 16, kFloat8E4M3FN = 17,
              kFloat8E4M3FNUZ = 18, kFloat8E5M2 = 19, kFloat8E5M2FNUZ = 20, kUInt4 = 21, kInt4 = 22,
              kFloat4E2M1 = 23, kFloat8E8M0 = 24, kUInt2 = 25, kInt2 = 26;
}  // namespace onnx_type

// Bits per element of the packed sub-byte integer types (int2/uint2: 2,
// int4/uint4: 4), 0 for every other type. TensorProto packs them low bits
// first: element 2k of int4 is the low nibble of byte k.
int PackedIntBits(int onnx_type);
// "float8 e4m3fn", "int4", ... for messages.
std::string OnnxTypeName(int onnx_type);

// ONNX element type of every named tensor the file declares: initializers,
// Constant node outputs, graph inputs / outputs and value_info.
using ElementTypes = std::unordered_map<std::string, int>;
ElementTypes CollectElementTypes(const onnx::GraphProto& graph);

// True for the domains QONNX, Brevitas and FINN write their quantizers in.
bool IsQonnxDomain(const std::string& domain);
// Quant, IntQuant, BipolarQuant or Trunc. The importer gives such nodes the
// op type kQonnxOpPrefix + op_type and their domain in the attribute
// kQonnxDomainAttribute until RewriteFakeQuantization replaces them.
bool IsQonnxQuantizer(const std::string& op_type);
inline constexpr const char* kQonnxOpPrefix = "qonnx.";
inline constexpr const char* kQonnxDomainAttribute = "lowbit_onnx_domain";

// Runs on the ONNX graph before its tensors are converted: refuses the
// QuantizeLinear / DequantizeLinear nodes whose types or attributes lowbit
// cannot honour, naming the node (before a float8 initializer or graph
// input fails to convert with a message that does not).
Status CheckFakeQuantNodes(const onnx::GraphProto& graph, const ElementTypes& types);

// Runs on the imported, topologically sorted graph: replaces every ONNX and
// QONNX quantizer by lowbit.Quantize / lowbit.Dequantize nodes and folds
// integer Clips into them (see the file comment).
Status RewriteFakeQuantization(ir::Graph* graph, const ElementTypes& types);

}  // namespace lowbit::engine::import
