#include "ir/quant_ops.h"

#include <cmath>

namespace lowbit::engine::ir {
namespace {

struct RoundingNameEntry {
  Rounding mode;
  const char* name;
};
constexpr RoundingNameEntry kRoundingNames[] = {
    {Rounding::kHalfEven, "half_even"}, {Rounding::kHalfUp, "half_up"},
    {Rounding::kHalfDown, "half_down"}, {Rounding::kHalfAway, "half_away"},
    {Rounding::kFloor, "floor"},        {Rounding::kCeil, "ceil"},
    {Rounding::kToZero, "to_zero"},     {Rounding::kHalfToZero, "half_to_zero"},
    {Rounding::kAwayFromZero, "away"},
};

}  // namespace

StatusOr<Rounding> ParseRounding(const std::string& name) {
  for (const RoundingNameEntry& e : kRoundingNames)
    if (name == e.name) return e.mode;
  return InvalidArgument("unknown rounding mode '" + name + "'");
}

const char* RoundingName(Rounding rounding) {
  for (const RoundingNameEntry& e : kRoundingNames)
    if (rounding == e.mode) return e.name;
  return "?";
}

double RoundWith(Rounding mode, double v) {
  const double down = std::floor(v), up = std::ceil(v);
  const double frac = v - down;  // exact for |v| < 2^52
  switch (mode) {
    case Rounding::kFloor: return down;
    case Rounding::kCeil: return up;
    case Rounding::kToZero: return std::trunc(v);
    case Rounding::kHalfEven: return std::nearbyint(v);  // default FP mode: ties to even
    case Rounding::kHalfUp: return frac >= 0.5 ? up : down;
    case Rounding::kHalfDown: return frac > 0.5 ? up : down;
    case Rounding::kHalfAway: {  // QONNX HALF_UP, in float32 as qonnx evaluates it
      const float magnitude = std::floor(std::fabs(static_cast<float>(v)) + 0.5f);
      return std::copysign(static_cast<double>(magnitude), v);
    }
    case Rounding::kHalfToZero: {  // QONNX HALF_DOWN, in float32
      const float magnitude = std::ceil(std::fabs(static_cast<float>(v)) - 0.5f);
      return std::copysign(static_cast<double>(magnitude), v);
    }
    case Rounding::kAwayFromZero: return std::copysign(std::ceil(std::fabs(v)), v);
  }
  return v;
}

int QuantParams::code_bits() const {
  const int64_t levels = code_max() - code_min() + 1;
  int bits = 0;
  while ((int64_t(1) << bits) < levels) ++bits;
  return bits < 1 ? 1 : bits;
}

int64_t QuantParams::QuantizeValue(float x, int64_t channel) const {
  int64_t q;
  if (bipolar) {
    q = x >= 0.0f ? 1 : -1;
  } else {
    const float t = x / scale(channel);
    const float zp = zero_point(channel);
    double r = zero_point_first ? RoundWith(rounding, static_cast<double>(t + zp))
                                : RoundWith(rounding, static_cast<double>(t)) + zp;
    if (std::isnan(r)) r = 0;  // NaN saturates to the zero code like ONNX's cast
    r = r < static_cast<double>(qmin) ? static_cast<double>(qmin)
                                      : (r > static_cast<double>(qmax) ? static_cast<double>(qmax) : r);
    q = static_cast<int64_t>(r);
  }
  q = q < qmin ? qmin : (q > qmax ? qmax : q);
  return q - code_offset;
}

float QuantParams::DequantizeValue(int64_t code, int64_t channel) const {
  const int64_t zero = static_cast<int64_t>(zero_point(channel));  // integer-valued
  return static_cast<float>(code + code_offset - zero) * scale(channel);
}

DataType CodeType(int64_t lo, int64_t hi) {
  if (lo >= 0 && hi <= 255) return DataType::kUInt8;
  if (lo >= -128 && hi <= 127) return DataType::kInt8;
  return DataType::kInt32;
}

StatusOr<QuantParams> ReadQuantParams(const Graph& graph, const Node& node) {
  QuantParams p;
  if (node.inputs.size() < 2 || !HasInput(node, 1))
    return InvalidArgument(node.Describe() + " has no scale input");
  LOWBIT_ASSIGN_OR_RETURN(p.scales, ConstantFloats(graph, node, 1));
  if (HasInput(node, 2)) {
    LOWBIT_ASSIGN_OR_RETURN(p.zero_points, ConstantFloats(graph, node, 2));
  } else {
    p.zero_points = {0.0f};
  }
  if (p.scales.empty()) return InvalidArgument(node.Describe() + " has an empty scale");
  for (float s : p.scales)
    if (!(s > 0.0f) || !std::isfinite(s))
      return InvalidArgument(node.Describe() + " has a scale that is not a positive number (" +
                             std::to_string(s) + ")");
  if (p.zero_points.size() != 1 && p.zero_points.size() != p.scales.size())
    return InvalidArgument(node.Describe() + ": zero point and scale sizes differ");
  for (float z : p.zero_points)
    if (z != std::nearbyint(z) || std::fabs(z) > 2147483647.0f)
      return InvalidArgument(node.Describe() + " has a zero point that is not an integer (" +
                             std::to_string(z) + ")");
  const ir::Value& data = graph.values[node.inputs[0]];
  const int64_t axis = node.GetInt("axis", 1);
  if (p.scales.size() > 1) {
    LOWBIT_ASSIGN_OR_RETURN(p.axis, NormalizeAxis(axis, data.shape.size(), node));
    if (data.shape_known && data.shape[p.axis] != static_cast<int64_t>(p.scales.size()))
      return InvalidArgument(node.Describe() + ": " + std::to_string(p.scales.size()) +
                             " scales for an axis of size " +
                             std::to_string(data.shape[p.axis]));
  } else {
    p.axis = static_cast<int>(axis);
  }
  p.qmin = node.GetInt("qmin", 0);
  p.qmax = node.GetInt("qmax", 0);
  p.code_offset = node.GetInt("code_offset", 0);
  LOWBIT_ASSIGN_OR_RETURN(p.rounding, ParseRounding(node.GetString("rounding", "half_even")));
  p.zero_point_first = node.GetInt("zero_point_first", 0) != 0;
  p.bipolar = node.GetInt("bipolar", 0) != 0;
  if (node.op_type == kQuantizeOp && p.qmin > p.qmax)
    return InvalidArgument(node.Describe() + ": qmin > qmax");
  return p;
}

Precision CodesPrecision(const QuantParams& p) {
  Precision precision;
  precision.kind = Precision::Kind::kIntegerCodes;
  precision.is_signed = p.code_min() < 0;
  int bits = 1;
  if (precision.is_signed)
    while (bits < 64 && (p.code_min() < -(int64_t(1) << (bits - 1)) ||
                         p.code_max() > (int64_t(1) << (bits - 1)) - 1))
      ++bits;
  else
    while (bits < 64 && p.code_max() > (int64_t(1) << bits) - 1) ++bits;
  precision.bits = bits;
  auto stored_zero = [&](int64_t c) {
    return static_cast<int32_t>(static_cast<int64_t>(p.zero_point(c)) - p.code_offset);
  };
  if (p.per_tensor()) {
    precision.scale = p.scales[0];
    precision.zero_point = stored_zero(0);
  } else {
    precision.axis = p.axis;
    precision.scales = p.scales;
    for (size_t c = 0; c < p.scales.size(); ++c) precision.zero_points.push_back(stored_zero(c));
  }
  return precision;
}

}  // namespace lowbit::engine::ir
