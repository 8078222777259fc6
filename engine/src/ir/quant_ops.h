// The engine's two canonical quantization ops. Every fake-quantization format
// the importer reads (ONNX QuantizeLinear/DequantizeLinear, Brevitas QCDQ,
// QONNX Quant/IntQuant/BipolarQuant) becomes a pair of these with an integer
// value in between, so the lowering pass sees one pattern:
//
//   %codes: i8|u8|i32 = lowbit.Quantize(%x: f32, %scale, %zero_point)
//   %y: f32           = lowbit.Dequantize(%codes, %scale, %zero_point)
//
// lowbit.Quantize, per element (scale and zero point per tensor, or per index
// of logical axis `axis` when they have more than one element):
//   t    = x / scale                                   (float division)
//   r    = zero_point_first ? R(t + zero_point) : R(t) + zero_point
//   q    = clamp(r, qmin, qmax)
//   code = q - code_offset                             (stored in the output dtype)
// with R the rounding mode (attribute `rounding`), applied to a float32 v:
//   "half_even"     ties to even (ONNX QuantizeLinear; QONNX "ROUND", "HALF_EVEN")
//   "half_up"       ties towards +inf
//   "half_down"     ties towards -inf
//   "half_away"     sign(v) * floor(|v| + 0.5) evaluated in float32 (QONNX
//                   "HALF_UP"): ties away from zero, except that the float32
//                   sum makes |v| = 0.5 - 2^-25 round to 1 and odd |v| in
//                   (2^23, 2^24) round up to even, exactly as qonnx computes it
//   "half_to_zero"  sign(v) * ceil(|v| - 0.5) in float32 (QONNX "HALF_DOWN"):
//                   ties towards zero (exact for |v| < 2^23)
//   "away"          sign(v) * ceil(|v|), away from zero (QONNX "UP")
//   "floor", "ceil", "to_zero" (QONNX "FLOOR", "CEIL", "DOWN")
// `bipolar` = 1 replaces all of it by q = x >= 0 ? +1 : -1 (QONNX
// BipolarQuant; qmin = -1, qmax = 1).
// lowbit.Dequantize, per element:
//   y = float(code + code_offset - zero_point) * scale
// (the integer sum is exact; one rounding to float, then a float multiply).
// Inputs 1 and 2 are constants (float32 scale > 0; zero point of any numeric
// type, integer-valued). Attributes (all optional but qmin/qmax):
//   axis (int, default 1), qmin, qmax (int; required by Quantize; on a
//   Dequantize, when present, the range of the codes it reads, which gives
//   their precision: e.g. [-2, 1] for Brevitas' clipped 2-bit weights),
//   rounding (string, default "half_even"), zero_point_first (int, 0/1),
//   code_offset (int, default 0), bipolar (int, 0/1).
// The output dtype of Quantize holds [qmin - code_offset, qmax - code_offset]:
// u8 when that range is within [0, 255], i8 within [-128, 127], else i32.
//
// ONNX QuantizeLinear rounds then adds the zero point (zero_point_first = 0);
// QONNX Quant adds it first (zero_point_first = 1). With an odd zero point
// and a tie the two give different codes, which is why the attribute exists.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "lowbit/engine/status.h"

namespace lowbit::engine::ir {

inline constexpr const char* kQuantizeOp = "lowbit.Quantize";
inline constexpr const char* kDequantizeOp = "lowbit.Dequantize";

enum class Rounding : uint8_t {
  kHalfEven,
  kHalfUp,
  kHalfDown,
  kHalfAway,
  kFloor,
  kCeil,
  kToZero,
  kHalfToZero,
  kAwayFromZero,
};

// A Quantize / Dequantize node's parameters, read from its attributes and
// constant inputs. scales / zero_points have one element (per tensor) or one
// per index of `axis`.
struct QuantParams {
  std::vector<float> scales;
  std::vector<float> zero_points;
  int axis = 1;  // normalised against the data rank
  int64_t qmin = 0, qmax = 0;
  int64_t code_offset = 0;
  Rounding rounding = Rounding::kHalfEven;
  bool zero_point_first = false;
  bool bipolar = false;

  bool per_tensor() const { return scales.size() == 1; }
  float scale(int64_t channel) const { return scales[per_tensor() ? 0 : channel]; }
  float zero_point(int64_t channel) const {
    return zero_points[zero_points.size() == 1 ? 0 : channel];
  }
  // Stored code range.
  int64_t code_min() const { return qmin - code_offset; }
  int64_t code_max() const { return qmax - code_offset; }
  // Bits needed for the stored codes when code_min() == 0: ceil(log2(levels)).
  int code_bits() const;
  // Quantize of one value for channel `channel` (the formula above), as the
  // stored code.
  int64_t QuantizeValue(float x, int64_t channel) const;
  float DequantizeValue(int64_t code, int64_t channel) const;
};

StatusOr<Rounding> ParseRounding(const std::string& name);
const char* RoundingName(Rounding rounding);
// Rounds a float32 `value` (passed widened) with `mode`: exact for every
// mode but half_away / half_to_zero, which follow their float32 formulas above.
double RoundWith(Rounding mode, double value);

// Reads a lowbit.Quantize or lowbit.Dequantize node (rank = its data input's
// rank, for axis normalisation).
StatusOr<QuantParams> ReadQuantParams(const Graph& graph, const Node& node);
// Precision of the codes a Quantize writes or a Dequantize reads: the bits
// and sign of the stored code range, the zero point in stored codes.
Precision CodesPrecision(const QuantParams& params);
// The dtype that holds codes [lo, hi].
DataType CodeType(int64_t lo, int64_t hi);

}  // namespace lowbit::engine::ir
