// ONNX / Brevitas / QONNX fake quantization -> lowbit.Quantize and
// lowbit.Dequantize (see fake_quant.h for the formats and ir/quant_ops.h for
// the two ops' formulas).
//
// Trunc (qonnx.custom_op.general.trunc) is decomposed into the canonical
// ops instead of getting a kernel of its own. With R = rounding_mode, T the
// power-of-two truncation scale and codes held as i32:
//   v1 (x, s, z, in_bits, out_bits), T = 2^(in_bits - out_bits):
//     y = (R(round_half_even(x / s + z) / T) - z) * s
//   v2 (x, s, z, in_bits, out_scale, out_bits), T = 2^round(log2(out_scale / s)):
//     y = (R(clamp(round_half_even(x / s + z) / T, min_int, max_int)) - z / T) * out_scale
// become Quantize(x; s, z, half_even, zero_point_first) -> Dequantize(; 1) ->
// Quantize(; T, R [, min_int, max_int]) -> Dequantize(; s or out_scale, z or z / T).
// qonnx keeps the first rounding in float; the i32 codes agree with it while
// |x / s + z| < 2^31 (the codes saturate beyond).
#include "import/fake_quant.h"

#include <algorithm>
#include <cctype>
#include <climits>
#include <cmath>
#include <map>
#include <optional>
#include <set>

#include "ir/quant_ops.h"
#include "lowbit_onnx/onnx.pb.h"

namespace lowbit::engine::import {
namespace {

using ir::Attribute;
using ir::Graph;
using ir::HostTensor;
using ir::Node;
using ir::Value;
namespace t = onnx_type;

struct CodeRange {
  int64_t min = 0, max = 0;
};

// Codes an ONNX integer type holds; nullopt for every other type.
std::optional<CodeRange> IntegerRange(int type) {
  switch (type) {
    case t::kUInt8:
      return CodeRange{0, 255};
    case t::kInt8:
      return CodeRange{-128, 127};
    case t::kUInt16:
      return CodeRange{0, 65535};
    case t::kInt16:
      return CodeRange{-32768, 32767};
    case t::kUInt4:
      return CodeRange{0, 15};
    case t::kInt4:
      return CodeRange{-8, 7};
    case t::kUInt2:
      return CodeRange{0, 3};
    case t::kInt2:
      return CodeRange{-2, 1};
    case t::kInt32:
      return CodeRange{INT32_MIN, INT32_MAX};
    default:
      return std::nullopt;
  }
}

bool IsFloat8Or4(int type) {
  return (type >= t::kFloat8E4M3FN && type <= t::kFloat8E5M2FNUZ) || type == t::kFloat4E2M1 ||
         type == t::kFloat8E8M0;
}
bool IsFloatType(int type) {
  return type == t::kFloat || type == t::kFloat16 || type == t::kDouble || type == t::kBFloat16;
}

constexpr const char* kSupportedCodes =
    "lowbit quantizes to integer codes only (int2/uint2, int4/uint4, int8/uint8, int16/uint16)";

// [min_int, max_int] of qonnx's IntQuant for (signed, narrow, bit width).
CodeRange QonnxRange(bool is_signed, bool narrow, int64_t bits) {
  if (is_signed)
    return {-(int64_t(1) << (bits - 1)) + (narrow ? 1 : 0), (int64_t(1) << (bits - 1)) - 1};
  return {0, (int64_t(1) << bits) - (narrow ? 2 : 1)};
}

StatusOr<ir::Rounding> QonnxRounding(const std::string& what, const std::string& mode) {
  std::string upper = mode;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (upper == "ROUND" || upper == "HALF_EVEN") return ir::Rounding::kHalfEven;
  if (upper == "CEIL") return ir::Rounding::kCeil;
  if (upper == "FLOOR") return ir::Rounding::kFloor;
  if (upper == "UP") return ir::Rounding::kAwayFromZero;
  if (upper == "DOWN") return ir::Rounding::kToZero;
  if (upper == "HALF_UP") return ir::Rounding::kHalfAway;
  if (upper == "HALF_DOWN") return ir::Rounding::kHalfToZero;
  return Status(Unimplemented(what + " has rounding_mode '" + mode +
                              "' (qonnx knows ROUND, HALF_EVEN, CEIL, FLOOR, UP, DOWN, "
                              "HALF_UP, HALF_DOWN)"));
}

// A quantization parameter as the canonical ops hold it: one value, or one
// per index of `axis` (negative: counted from the data's last axis, as
// broadcasting aligns it).
struct AxisVector {
  std::vector<float> values;
  std::optional<int> axis;
  int source = ir::kNoValue;  // the value it was read from
  bool reshaped = false;      // values no longer match `source`'s shape
};

// A broadcastable parameter (QONNX shapes [1,C,1,1], [C,1,1,1], [C], ...).
StatusOr<AxisVector> BroadcastParameter(const Graph& graph, int id, const std::string& what) {
  const HostTensor& tensor = *graph.values[id].constant;
  AxisVector p;
  p.source = id;
  for (int64_t i = 0; i < tensor.size(); ++i) p.values.push_back(static_cast<float>(tensor.at(i)));
  if (tensor.size() == 1) return p;
  if (tensor.size() == 0) return Status(InvalidArgument(what + " is empty"));
  int varying = -1;
  const int rank = static_cast<int>(tensor.shape.size());
  for (int d = 0; d < rank; ++d) {
    if (tensor.shape[d] == 1) continue;
    if (varying >= 0)
      return Status(Unimplemented(what + " has shape " + ShapeToString(tensor.shape) +
                                  ", which varies along more than one axis; lowbit supports "
                                  "per-tensor and per-axis parameters"));
    varying = d;
  }
  p.axis = varying - rank;
  p.reshaped = rank != 1;
  return p;
}

// Makes (scale, zero point) usable by one node: the same axis, and a scale
// with one value per zero point when only the zero point varies.
Status Reconcile(AxisVector* scale, AxisVector* zero, const std::string& what) {
  if (scale->axis && zero->axis && *scale->axis != *zero->axis)
    return Unimplemented(what + ": scale and zero point vary along different axes");
  if (scale->axis && zero->axis && scale->values.size() != zero->values.size())
    return InvalidArgument(what + ": scale and zero point sizes differ");
  if (!scale->axis && zero->axis) {
    scale->values.assign(zero->values.size(), scale->values[0]);
    scale->axis = zero->axis;
    scale->reshaped = true;
  }
  return Status::Ok();
}

class Rewriter {
 public:
  Rewriter(Graph* graph, const ElementTypes& types) : graph_(graph), types_(types) {}

  Status Run() {
    std::vector<Node> nodes = std::move(graph_->nodes);
    graph_->nodes.clear();
    producer_.assign(graph_->values.size(), -1);
    for (Node& node : nodes) {
      const Handler handler = HandlerFor(node.op_type);
      if (handler == nullptr) {
        if (node.op_type.rfind(kQonnxOpPrefix, 0) == 0)
          return Internal(What(node) + " was not rewritten");
        Emit(std::move(node));
        continue;
      }
      // Every handler reads input 0 (x) and writes output 0 (y); a model file
      // may omit either.
      if (!ir::HasInput(node, 0) || node.outputs.empty() || node.outputs[0] == ir::kNoValue)
        return InvalidArgument(What(node) + " needs its data input and its output; has " +
                               std::to_string(node.inputs.size()) + " input(s), " +
                               std::to_string(node.outputs.size()) + " output(s)");
      LOWBIT_RETURN_IF_ERROR((this->*handler)(node));
    }
    RemoveNarrowedQuantizers();
    return Status::Ok();
  }

 private:
  // "Quant node 'q' (domain onnx.brevitas)" / "QuantizeLinear node 'q'".
  using Handler = Status (Rewriter::*)(Node&);
  // The rewrite of a fake-quantization op, or null for any other op.
  static Handler HandlerFor(const std::string& op) {
    if (op == "QuantizeLinear") return &Rewriter::QuantizeLinear;
    if (op == "DequantizeLinear") return &Rewriter::DequantizeLinear;
    if (op == "Clip") return &Rewriter::Clip;
    if (op.rfind(kQonnxOpPrefix, 0) != 0) return nullptr;
    const std::string qonnx_op = op.substr(std::string(kQonnxOpPrefix).size());
    if (qonnx_op == "Quant" || qonnx_op == "IntQuant") return &Rewriter::QonnxQuant;
    if (qonnx_op == "BipolarQuant") return &Rewriter::BipolarQuant;
    if (qonnx_op == "Trunc") return &Rewriter::Trunc;
    return nullptr;
  }

  static std::string What(const Node& node) {
    if (node.op_type.rfind(kQonnxOpPrefix, 0) != 0) return node.Describe();
    return node.op_type.substr(std::string(kQonnxOpPrefix).size()) + " node '" + node.name +
           "' (domain " + node.GetString(kQonnxDomainAttribute, "?") + ")";
  }

  int TypeOf(int id) const {
    auto it = types_.find(graph_->values[id].name);
    return it == types_.end() ? 0 : it->second;
  }

  // Integer codes of value `id`: a rewritten Quantize's range, the ONNX
  // type's, or the IR dtype's.
  std::optional<CodeRange> RangeOf(int id) const {
    if (auto it = ranges_.find(id); it != ranges_.end()) return it->second;
    if (auto range = IntegerRange(TypeOf(id))) return range;
    switch (graph_->values[id].dtype) {
      case ir::DataType::kUInt8:
        return CodeRange{0, 255};
      case ir::DataType::kInt8:
        return CodeRange{-128, 127};
      case ir::DataType::kInt32:
        return CodeRange{INT32_MIN, INT32_MAX};
      default:
        return std::nullopt;
    }
  }

  StatusOr<int> ConstantInput(const Node& node, size_t index, const std::string& role) const {
    if (!ir::HasInput(node, index))
      return Status(InvalidArgument(What(node) + " has no " + role + " input"));
    const int id = node.inputs[index];
    if (!graph_->values[id].is_constant())
      return Status(Unimplemented(What(node) + ": " + role + " '" + graph_->values[id].name +
                                  "' is computed at run time; lowbit needs quantization "
                                  "parameters as constants (initializers or Constant nodes)"));
    return id;
  }

  int AddConstant(const std::string& base, HostTensor tensor) {
    const int id = graph_->AddConstant(graph_->UniqueName(base), std::move(tensor));
    producer_.resize(graph_->values.size(), -1);
    return id;
  }
  int AddValue(const std::string& base) {
    Value value;
    value.name = graph_->UniqueName(base);
    const int id = graph_->AddValue(std::move(value));
    producer_.resize(graph_->values.size(), -1);
    return id;
  }
  // The constant holding `p`: its source when unchanged, else a new 1-D one.
  int Materialize(const AxisVector& p, const std::string& base) {
    if (!p.reshaped) return p.source;
    return AddConstant(base, HostTensor::Floats({static_cast<int64_t>(p.values.size())}, p.values));
  }

  void Emit(Node node) {
    for (int out : node.outputs)
      if (out != ir::kNoValue) producer_[out] = static_cast<int>(graph_->nodes.size());
    graph_->nodes.push_back(std::move(node));
  }

  Node MakeQuantize(const std::string& name, int x, int scale, int zero, int out, CodeRange range,
                    ir::Rounding rounding, std::optional<int> axis) {
    Node q;
    q.op_type = ir::kQuantizeOp;
    q.name = name;
    q.inputs = {x, scale};
    if (zero != ir::kNoValue) q.inputs.push_back(zero);
    q.outputs = {out};
    q.attributes["qmin"] = Attribute::Int(range.min);
    q.attributes["qmax"] = Attribute::Int(range.max);
    q.attributes["rounding"] = Attribute::String(ir::RoundingName(rounding));
    if (axis) q.attributes["axis"] = Attribute::Int(*axis);
    graph_->values[out].dtype = ir::CodeType(range.min, range.max);
    ranges_[out] = range;
    return q;
  }
  // qmin / qmax record the codes' range when it is known (for precision).
  Node MakeDequantize(const std::string& name, int codes, int scale, int zero, int out,
                      std::optional<int> axis) {
    Node dq;
    dq.op_type = ir::kDequantizeOp;
    dq.name = name;
    dq.inputs = {codes, scale};
    if (zero != ir::kNoValue) dq.inputs.push_back(zero);
    dq.outputs = {out};
    if (axis) dq.attributes["axis"] = Attribute::Int(*axis);
    if (const std::optional<CodeRange> range = RangeOf(codes)) {
      dq.attributes["qmin"] = Attribute::Int(range->min);
      dq.attributes["qmax"] = Attribute::Int(range->max);
    }
    graph_->values[out].dtype = ir::DataType::kFloat32;
    return dq;
  }

  // Scale (input 1) of an ONNX quantizer: positive float32 constant,
  // a scalar or 1-D.
  StatusOr<int> OnnxScale(const Node& node) const {
    LOWBIT_ASSIGN_OR_RETURN(int scale, ConstantInput(node, 1, "scale"));
    const HostTensor& s = *graph_->values[scale].constant;
    if (s.size() > 1 && s.shape.size() != 1)
      return Status(InvalidArgument(What(node) + ": scale of shape " + ShapeToString(s.shape) +
                                    " without block_size; per-axis scales are 1-D"));
    if (!s.is_float())
      return Status(InvalidArgument(What(node) + ": scale '" + graph_->values[scale].name +
                                    "' is not a floating-point tensor"));
    return scale;
  }
  std::optional<int> OnnxAxis(const Node& node, int scale) const {
    if (graph_->values[scale].constant->size() <= 1) return std::nullopt;
    return static_cast<int>(node.GetInt("axis", 1));
  }

  Status QuantizeLinear(Node& node) {
    LOWBIT_ASSIGN_OR_RETURN(int scale, OnnxScale(node));
    int zero = ir::kNoValue, type = t::kUInt8;
    if (node.has("output_dtype")) type = static_cast<int>(node.GetInt("output_dtype", type));
    if (ir::HasInput(node, 2)) {
      LOWBIT_ASSIGN_OR_RETURN(zero, ConstantInput(node, 2, "zero point"));
      if (TypeOf(zero) != 0) type = TypeOf(zero);
    }
    const std::optional<CodeRange> range = IntegerRange(type);
    if (!range || type == t::kInt32)
      return Unimplemented(What(node) + " quantizes to " + OnnxTypeName(type) + "; " +
                           kSupportedCodes);
    Emit(MakeQuantize(node.name, node.inputs[0], scale, zero, node.outputs[0], *range,
                      ir::Rounding::kHalfEven, OnnxAxis(node, scale)));
    return Status::Ok();
  }

  Status DequantizeLinear(Node& node) {
    LOWBIT_ASSIGN_OR_RETURN(int scale, OnnxScale(node));
    int zero = ir::kNoValue;
    if (ir::HasInput(node, 2)) {
      LOWBIT_ASSIGN_OR_RETURN(zero, ConstantInput(node, 2, "zero point"));
      const int x_type = TypeOf(node.inputs[0]);
      const bool int32_codes =
          x_type == t::kInt32 || (x_type == 0 && !ranges_.count(node.inputs[0]) &&
                                  graph_->values[node.inputs[0]].dtype == ir::DataType::kInt32);
      const HostTensor& z = *graph_->values[zero].constant;
      if (int32_codes)
        for (int64_t i = 0; i < z.size(); ++i)
          if (z.at(i) != 0)
            return InvalidArgument(What(node) +
                                   ": int32 codes take no zero point (ONNX requires it to be 0)");
    }
    if (!RangeOf(node.inputs[0]) && graph_->values[node.inputs[0]].is_constant())
      return Unimplemented(What(node) + " dequantizes '" + graph_->values[node.inputs[0]].name +
                           "', which is not an integer tensor");
    Emit(MakeDequantize(node.name, node.inputs[0], scale, zero, node.outputs[0],
                        OnnxAxis(node, scale)));
    return Status::Ok();
  }

  // Integer bounds of a Clip: inputs (opset >= 11) or attributes.
  StatusOr<CodeRange> ClipBounds(const Node& node) const {
    CodeRange bounds{INT64_MIN, INT64_MAX};
    auto read = [&](size_t index, const char* attr, int64_t* out) -> Status {
      double v;
      if (ir::HasInput(node, index)) {
        LOWBIT_ASSIGN_OR_RETURN(int id, ConstantInput(node, index, attr));
        const HostTensor& c = *graph_->values[id].constant;
        if (c.size() != 1)
          return InvalidArgument(node.Describe() + ": " + attr + " is not a scalar");
        v = c.at(0);
      } else if (node.has(attr)) {
        v = node.GetFloat(attr, 0);
      } else {
        return Status::Ok();
      }
      if (v != std::floor(v) || std::fabs(v) > 9e18)
        return InvalidArgument(node.Describe() + " clips integer codes at " + attr + " = " +
                               std::to_string(v) + ", which is not an integer");
      *out = static_cast<int64_t>(v);
      return Status::Ok();
    };
    LOWBIT_RETURN_IF_ERROR(read(1, "min", &bounds.min));
    LOWBIT_RETURN_IF_ERROR(read(2, "max", &bounds.max));
    return bounds;
  }

  Status Clip(Node& node) {
    const int x = node.inputs[0];
    const Value& input = graph_->values[x];
    const int p = producer_[x];
    const bool after_quantize = p >= 0 && graph_->nodes[p].op_type == ir::kQuantizeOp;
    const bool integer_constant = input.is_constant() && !input.constant->is_float() &&
                                  input.constant->dtype != ir::DataType::kBool;
    const std::optional<CodeRange> codes = RangeOf(x);
    if ((!after_quantize && !integer_constant) || !codes) {
      Emit(std::move(node));
      return Status::Ok();
    }
    LOWBIT_ASSIGN_OR_RETURN(CodeRange bounds, ClipBounds(node));
    const CodeRange range = *codes;
    const CodeRange narrowed{std::max(range.min, bounds.min), std::min(range.max, bounds.max)};
    if (narrowed.min > narrowed.max)
      return InvalidArgument(node.Describe() + " clips codes in [" + std::to_string(range.min) +
                             ", " + std::to_string(range.max) + "] to the empty range [" +
                             std::to_string(bounds.min) + ", " + std::to_string(bounds.max) + "]");
    const int y = node.outputs[0];
    if (integer_constant) {  // weights -> Clip -> DequantizeLinear
      HostTensor clipped = *input.constant;
      for (int64_t& v : clipped.ints) v = std::clamp(v, narrowed.min, narrowed.max);
      Value& out = graph_->values[y];
      out.dtype = clipped.dtype;
      out.shape = clipped.shape;
      out.shape_known = true;
      out.constant = std::move(clipped);
      ranges_[y] = narrowed;
      return Status::Ok();
    }
    // QuantizeLinear -> Clip: the same Quantize with the narrowed range.
    Node q = graph_->nodes[p];
    q.name = node.name;
    q.outputs = {y};
    q.attributes["qmin"] = Attribute::Int(narrowed.min);
    q.attributes["qmax"] = Attribute::Int(narrowed.max);
    graph_->values[y].dtype = ir::CodeType(narrowed.min, narrowed.max);
    ranges_[y] = narrowed;
    narrowed_.insert(p);
    Emit(std::move(q));
    return Status::Ok();
  }

  // Scale and zero point (inputs 1, 2) of a QONNX quantizer as per-axis
  // parameters; zero points must be integers.
  Status QonnxParameters(const Node& node, size_t scale_index, size_t zero_index, AxisVector* scale,
                         AxisVector* zero) const {
    LOWBIT_ASSIGN_OR_RETURN(int s, ConstantInput(node, scale_index, "scale"));
    LOWBIT_ASSIGN_OR_RETURN(*scale, BroadcastParameter(*graph_, s, What(node) + ": scale"));
    if (zero_index == 0) {
      zero->values = {0.0f};
      return Status::Ok();
    }
    LOWBIT_ASSIGN_OR_RETURN(int z, ConstantInput(node, zero_index, "zero point"));
    LOWBIT_ASSIGN_OR_RETURN(*zero, BroadcastParameter(*graph_, z, What(node) + ": zero point"));
    for (float v : zero->values)
      if (v != std::nearbyint(v) || std::fabs(v) > 1e9f)
        return Unimplemented(What(node) + " has a non-integer zero point (" + std::to_string(v) +
                             "); lowbit's integer codes need an integer zero point");
    return Reconcile(scale, zero, What(node));
  }

  StatusOr<int64_t> IntegerScalar(const Node& node, size_t index, const std::string& role) const {
    LOWBIT_ASSIGN_OR_RETURN(int id, ConstantInput(node, index, role));
    const HostTensor& c = *graph_->values[id].constant;
    if (c.size() != 1)
      return Status(InvalidArgument(What(node) + ": " + role + " must be a scalar, has shape " +
                                    ShapeToString(c.shape)));
    const double v = c.at(0);
    if (v != std::floor(v) || std::fabs(v) > 64)
      return Status(Unimplemented(What(node) + " has " + role + " " + std::to_string(v) +
                                  "; lowbit needs an integer bit width"));
    return static_cast<int64_t>(v);
  }

  StatusOr<CodeRange> QonnxBitRange(const Node& node, int64_t bits, bool is_signed, bool narrow,
                                    const std::string& role) const {
    if (bits < 1 || bits > (is_signed ? 32 : 31))
      return Status(Unimplemented(What(node) + " has " + role + " " + std::to_string(bits) +
                                  "; lowbit supports 1-" + (is_signed ? "32" : "31") + " bits"));
    return QonnxRange(is_signed, narrow, bits);
  }

  // Quant / IntQuant (x, scale, zeropt, bitwidth) {signed, narrow, rounding_mode}.
  Status QonnxQuant(Node& node) {
    for (size_t i = 0; i < 4; ++i)
      if (!ir::HasInput(node, i))
        return InvalidArgument(What(node) + " needs 4 inputs (x, scale, zeropt, bitwidth), has " +
                               std::to_string(node.inputs.size()));
    for (const char* attr : {"signed", "narrow"})
      if (!node.has(attr))
        return InvalidArgument(What(node) + " lacks the attribute '" + attr +
                               "', which qonnx requires");
    AxisVector scale, zero;
    LOWBIT_RETURN_IF_ERROR(QonnxParameters(node, 1, 2, &scale, &zero));
    LOWBIT_ASSIGN_OR_RETURN(int64_t bits, IntegerScalar(node, 3, "bitwidth"));
    const bool is_signed = node.GetInt("signed", 1) != 0;
    const bool narrow = node.GetInt("narrow", 0) != 0;
    LOWBIT_ASSIGN_OR_RETURN(ir::Rounding rounding,
                            QonnxRounding(What(node), node.GetString("rounding_mode", "ROUND")));
    LOWBIT_ASSIGN_OR_RETURN(CodeRange range,
                            QonnxBitRange(node, bits, is_signed, narrow, "bitwidth"));
    const bool bipolar = bits == 1 && is_signed;  // qonnx: x / s + z >= 0 ? +1 : -1
    if (bipolar) {
      for (float z : zero.values)
        if (z != 0)
          return Unimplemented(What(node) +
                               " is 1-bit signed (bipolar) with a non-zero zero point");
      range = {-1, 1};
    }
    const int s = Materialize(scale, graph_->values[scale.source].name + "/per_axis");
    const int z = Materialize(zero, graph_->values[zero.source].name + "/per_axis");
    const int codes = AddValue(graph_->values[node.outputs[0]].name + "/codes");
    Node q = MakeQuantize(node.name, node.inputs[0], s, z, codes, range, rounding, scale.axis);
    q.attributes["zero_point_first"] = Attribute::Int(1);
    if (bipolar) q.attributes["bipolar"] = Attribute::Int(1);
    Emit(std::move(q));
    Emit(MakeDequantize(node.name + "/dequantize", codes, s, z, node.outputs[0], scale.axis));
    return Status::Ok();
  }

  // BipolarQuant (x, scale): y = (x >= 0 ? +1 : -1) * scale.
  Status BipolarQuant(Node& node) {
    if (!ir::HasInput(node, 0) || !ir::HasInput(node, 1))
      return InvalidArgument(What(node) + " needs 2 inputs (x, scale)");
    AxisVector scale, zero;
    LOWBIT_RETURN_IF_ERROR(QonnxParameters(node, 1, 0, &scale, &zero));
    const int s = Materialize(scale, graph_->values[scale.source].name + "/per_axis");
    const int codes = AddValue(graph_->values[node.outputs[0]].name + "/codes");
    Node q = MakeQuantize(node.name, node.inputs[0], s, ir::kNoValue, codes, {-1, 1},
                          ir::Rounding::kHalfEven, scale.axis);
    q.attributes["bipolar"] = Attribute::Int(1);
    Emit(std::move(q));
    Emit(MakeDequantize(node.name + "/dequantize", codes, s, ir::kNoValue, node.outputs[0],
                        scale.axis));
    return Status::Ok();
  }

  Status Trunc(Node& node) {
    const bool v2 = node.inputs.size() == 6;
    if (node.inputs.size() != 5 && !v2)
      return InvalidArgument(What(node) +
                             " needs 5 inputs (x, scale, zeropt, input_bit_width, "
                             "output_bit_width) or 6 (with output_scale before "
                             "output_bit_width), has " +
                             std::to_string(node.inputs.size()));
    for (size_t i = 0; i < node.inputs.size(); ++i)
      if (!ir::HasInput(node, i)) return InvalidArgument(What(node) + " has an omitted input");
    if (!node.has("rounding_mode"))
      return InvalidArgument(What(node) +
                             " lacks the attribute 'rounding_mode', which qonnx "
                             "requires");
    LOWBIT_ASSIGN_OR_RETURN(ir::Rounding rounding,
                            QonnxRounding(What(node), node.GetString("rounding_mode", "FLOOR")));
    AxisVector scale, zero;
    LOWBIT_RETURN_IF_ERROR(QonnxParameters(node, 1, 2, &scale, &zero));
    LOWBIT_ASSIGN_OR_RETURN(int64_t in_bits, IntegerScalar(node, 3, "input_bit_width"));
    LOWBIT_ASSIGN_OR_RETURN(int64_t out_bits, IntegerScalar(node, v2 ? 5 : 4, "output_bit_width"));
    const CodeRange wide{INT32_MIN, INT32_MAX};

    // Truncation scale T per channel, and the final scale / zero point.
    AxisVector trunc, out_scale = scale, out_zero = zero;
    trunc.reshaped = true;
    CodeRange out_range = wide;
    if (!v2) {
      if (std::abs(in_bits - out_bits) > 100)
        return InvalidArgument(What(node) + ": bit widths too far apart");
      trunc.values = {std::ldexp(1.0f, static_cast<int>(in_bits - out_bits))};
    } else {
      LOWBIT_ASSIGN_OR_RETURN(int os, ConstantInput(node, 4, "output_scale"));
      const HostTensor& o = *graph_->values[os].constant;
      if (o.size() != 1)
        return Unimplemented(What(node) + ": a per-channel output_scale is not supported");
      const float output_scale = static_cast<float>(o.at(0));
      for (float s : scale.values)  // 2^round(log2(output_scale / scale)), in float32
        trunc.values.push_back(std::exp2(std::nearbyint(std::log2(output_scale / s))));
      if (trunc.values.size() > 1) trunc.axis = scale.axis;
      out_scale.values.assign(scale.values.size(), output_scale);
      out_scale.reshaped = true;
      out_zero.values.clear();
      for (size_t c = 0; c < trunc.values.size(); ++c) {
        const float z = zero.values[zero.values.size() == 1 ? 0 : c] / trunc.values[c];
        if (z != std::nearbyint(z))
          return Unimplemented(What(node) + ": the output zero point zeropt / 2^k = " +
                               std::to_string(z) + " is not an integer");
        out_zero.values.push_back(z);
      }
      out_zero.axis = scale.axis;
      out_zero.reshaped = true;
      const bool is_signed = node.GetInt("signed", 1) != 0;
      const bool narrow = node.GetInt("narrow", 0) != 0;
      LOWBIT_ASSIGN_OR_RETURN(out_range,
                              QonnxBitRange(node, out_bits, is_signed, narrow, "output_bit_width"));
    }
    const std::string base = graph_->values[node.outputs[0]].name;
    const int s = Materialize(scale, graph_->values[scale.source].name + "/per_axis");
    const int z = Materialize(zero, graph_->values[zero.source].name + "/per_axis");
    const int t_scale = Materialize(trunc, node.name + "/trunc_scale");
    const int s_out = v2 ? Materialize(out_scale, node.name + "/output_scale") : s;
    const int z_out = v2 ? Materialize(out_zero, node.name + "/output_zero_point") : z;
    const int unit = AddConstant(node.name + "/unit_scale", HostTensor::Floats({}, {1.0f}));
    const int rounded = AddValue(base + "/rounded_codes");
    const int rounded_float = AddValue(base + "/rounded");
    const int truncated = AddValue(base + "/codes");

    Node q1 = MakeQuantize(node.name + "/round", node.inputs[0], s, z, rounded, wide,
                           ir::Rounding::kHalfEven, scale.axis);
    q1.attributes["zero_point_first"] = Attribute::Int(1);
    Emit(std::move(q1));
    Emit(MakeDequantize(node.name + "/round_value", rounded, unit, ir::kNoValue, rounded_float,
                        std::nullopt));
    Emit(MakeQuantize(node.name, rounded_float, t_scale, ir::kNoValue, truncated, out_range,
                      rounding, trunc.axis));
    Emit(MakeDequantize(node.name + "/dequantize", truncated, s_out, z_out, node.outputs[0],
                        scale.axis));
    return Status::Ok();
  }

  // A QuantizeLinear that only fed Clips has been replaced by their narrowed
  // copies; drop it unless something else still reads its codes.
  void RemoveNarrowedQuantizers() {
    if (narrowed_.empty()) return;
    const std::vector<int> uses = graph_->UseCounts();
    std::vector<Node> kept;
    for (size_t n = 0; n < graph_->nodes.size(); ++n)
      if (!narrowed_.count(static_cast<int>(n)) || uses[graph_->nodes[n].outputs[0]] > 0)
        kept.push_back(std::move(graph_->nodes[n]));
    graph_->nodes = std::move(kept);
  }

  Graph* graph_;
  const ElementTypes& types_;
  std::vector<int> producer_;        // value id -> index in graph_->nodes, or -1
  std::map<int, CodeRange> ranges_;  // integer values made by the rewrite
  std::set<int> narrowed_;           // Quantize nodes copied into a Clip
};

std::string NodeLabel(const onnx::NodeProto& node, int index) {
  const std::string name =
      node.name().empty() ? node.op_type() + "_" + std::to_string(index) : node.name();
  return node.op_type() + " node '" + name + "'";
}

}  // namespace

int PackedIntBits(int type) {
  if (type == t::kInt4 || type == t::kUInt4) return 4;
  if (type == t::kInt2 || type == t::kUInt2) return 2;
  return 0;
}

std::string OnnxTypeName(int type) {
  switch (type) {
    case t::kFloat:
      return "float32";
    case t::kUInt8:
      return "uint8";
    case t::kInt8:
      return "int8";
    case t::kUInt16:
      return "uint16";
    case t::kInt16:
      return "int16";
    case t::kInt32:
      return "int32";
    case t::kInt64:
      return "int64";
    case t::kBool:
      return "bool";
    case t::kFloat16:
      return "float16";
    case t::kDouble:
      return "float64";
    case t::kBFloat16:
      return "bfloat16";
    case t::kFloat8E4M3FN:
      return "float8 e4m3fn";
    case t::kFloat8E4M3FNUZ:
      return "float8 e4m3fnuz";
    case t::kFloat8E5M2:
      return "float8 e5m2";
    case t::kFloat8E5M2FNUZ:
      return "float8 e5m2fnuz";
    case t::kUInt4:
      return "uint4";
    case t::kInt4:
      return "int4";
    case t::kFloat4E2M1:
      return "float4 e2m1";
    case t::kFloat8E8M0:
      return "float8 e8m0";
    case t::kUInt2:
      return "uint2";
    case t::kInt2:
      return "int2";
    default:
      return "ONNX type " + std::to_string(type);
  }
}

ElementTypes CollectElementTypes(const onnx::GraphProto& graph) {
  ElementTypes types;
  auto declare = [&](const onnx::ValueInfoProto& info) {
    if (info.type().has_tensor_type() && info.type().tensor_type().elem_type() != 0)
      types[info.name()] = info.type().tensor_type().elem_type();
  };
  for (const auto& info : graph.value_info()) declare(info);
  for (const auto& info : graph.output()) declare(info);
  for (const auto& info : graph.input()) declare(info);
  for (const auto& init : graph.initializer()) types[init.name()] = init.data_type();
  for (const auto& node : graph.node()) {
    if (node.op_type() != "Constant" || node.output_size() != 1) continue;
    for (const auto& attr : node.attribute()) {
      if (attr.name() == "value") types[node.output(0)] = attr.t().data_type();
      if (attr.name() == "value_float" || attr.name() == "value_floats")
        types[node.output(0)] = t::kFloat;
      if (attr.name() == "value_int" || attr.name() == "value_ints")
        types[node.output(0)] = t::kInt64;
    }
  }
  return types;
}

bool IsQonnxDomain(const std::string& domain) {
  return domain == "qonnx.custom_op.general" || domain == "onnx.brevitas" ||
         domain == "finn.custom_op.general";
}

bool IsQonnxQuantizer(const std::string& op_type) {
  return op_type == "Quant" || op_type == "IntQuant" || op_type == "BipolarQuant" ||
         op_type == "Trunc";
}

Status CheckFakeQuantNodes(const onnx::GraphProto& graph, const ElementTypes& types) {
  auto type_of = [&](const std::string& name) {
    auto it = types.find(name);
    return name.empty() || it == types.end() ? 0 : it->second;
  };
  for (int n = 0; n < graph.node_size(); ++n) {
    const onnx::NodeProto& node = graph.node(n);
    const bool quantize = node.op_type() == "QuantizeLinear";
    if (!(quantize || node.op_type() == "DequantizeLinear") ||
        !(node.domain().empty() || node.domain() == "ai.onnx"))
      continue;
    const std::string what = NodeLabel(node, n);
    int64_t block_size = 0, precision = 0, output_dtype = 0;
    for (const auto& attr : node.attribute()) {
      if (attr.name() == "block_size") block_size = attr.i();
      if (attr.name() == "precision") precision = attr.i();
      if (attr.name() == "output_dtype") output_dtype = attr.i();
    }
    if (block_size != 0)
      return Unimplemented(
          what + " uses blocked quantization (block_size = " + std::to_string(block_size) +
          "); lowbit supports per-tensor and per-axis quantization only");
    const int x = node.input_size() > 0 ? type_of(node.input(0)) : 0;
    const int scale = node.input_size() > 1 ? type_of(node.input(1)) : 0;
    const int zero = node.input_size() > 2 ? type_of(node.input(2)) : 0;
    if (scale != 0 && !IsFloatType(scale))
      return InvalidArgument(what + ": the scale is " + OnnxTypeName(scale) +
                             ", not a floating-point type");
    if (quantize) {
      const int codes = zero != 0 ? zero : output_dtype != 0 ? output_dtype : t::kUInt8;
      if (zero != 0 && output_dtype != 0 && zero != output_dtype)
        return InvalidArgument(what + ": output_dtype " + OnnxTypeName(output_dtype) +
                               " differs from the zero point's type " + OnnxTypeName(zero));
      if (IsFloat8Or4(codes) || !IntegerRange(codes) || codes == t::kInt32)
        return Unimplemented(what + " quantizes to " + OnnxTypeName(codes) + "; " +
                             kSupportedCodes);
      if (precision != 0 && precision != t::kFloat)
        return Unimplemented(what + " asks for a " + OnnxTypeName(static_cast<int>(precision)) +
                             " division (precision attribute); lowbit divides in float32");
      if (precision == 0 && scale != 0 && scale != t::kFloat)
        return Unimplemented(what + ": the scale is " + OnnxTypeName(scale) +
                             ", so ONNX divides in " + OnnxTypeName(scale) +
                             "; lowbit quantizes in float32 (use a float32 scale)");
      if (x != 0 && !IsFloatType(x))
        return InvalidArgument(what + " quantizes a " + OnnxTypeName(x) + " tensor");
    } else {
      for (int codes : {x, zero}) {
        if (codes == 0) continue;
        if (IsFloat8Or4(codes) || !IntegerRange(codes))
          return Unimplemented(what + " dequantizes " + OnnxTypeName(codes) +
                               " codes; lowbit dequantizes integer codes only (int2/uint2, "
                               "int4/uint4, int8/uint8, int16/uint16, int32)");
      }
      if (x != 0 && zero != 0 && x != zero)
        return InvalidArgument(what + ": the zero point is " + OnnxTypeName(zero) +
                               " but the codes are " + OnnxTypeName(x));
      if (output_dtype != 0 && !IsFloatType(static_cast<int>(output_dtype)))
        return Unimplemented(what + " outputs " + OnnxTypeName(static_cast<int>(output_dtype)) +
                             "; lowbit dequantizes to float");
    }
  }
  return Status::Ok();
}

Status RewriteFakeQuantization(ir::Graph* graph, const ElementTypes& types) {
  return Rewriter(graph, types).Run();
}

}  // namespace lowbit::engine::import
