#include "passes/quantized_conv.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <optional>

#include "ir/quant_ops.h"
#include "ops/qconv_weights.h"

namespace lowbit::engine::passes {
namespace {

// A Dequantize of an integer constant with per-tensor or axis-0 parameters.
struct DequantizedConstant {
  const ir::Value* codes = nullptr;
  ir::QuantParams params;
};

std::optional<DequantizedConstant> ReadDequantizedConstant(const ir::Graph& graph,
                                                           const std::vector<int>& producers,
                                                           int value) {
  if (producers[value] < 0) return std::nullopt;
  const ir::Node& dq = graph.nodes[producers[value]];
  if (dq.op_type != ir::kDequantizeOp) return std::nullopt;
  const ir::Value& codes = graph.values[dq.inputs[0]];
  if (!codes.is_constant() || codes.constant->is_float()) return std::nullopt;
  auto params = ir::ReadQuantParams(graph, dq);
  if (!params.ok()) return std::nullopt;
  if (!params->per_tensor() && params->axis != 0) return std::nullopt;
  return DequantizedConstant{&codes, *std::move(params)};
}

// The integer values code + code_offset - zero_point[m] (OIHW) and the
// scale per output channel; false for a non-integer zero point.
bool IntegerValues(const DequantizedConstant& w, std::vector<int32_t>* values,
                   std::vector<float>* scales) {
  const ir::HostTensor& codes = *w.codes->constant;
  const int64_t out_channels = w.codes->shape.at(0);
  const int64_t per_channel = codes.size() / std::max<int64_t>(out_channels, 1);
  values->resize(codes.size());
  scales->resize(out_channels);
  for (int64_t o = 0; o < out_channels; ++o) {
    const float zp = w.params.zero_point(o);
    (*scales)[o] = w.params.scale(o);
    for (int64_t i = 0; i < per_channel; ++i) {
      const double v =
          static_cast<double>(codes.ints[o * per_channel + i] + w.params.code_offset) - zp;
      if (v != std::floor(v)) return false;
      (*values)[o * per_channel + i] = static_cast<int32_t>(v);
    }
  }
  return true;
}

// k[m] with coarse[m] == k[m] * fine[m] exactly in float32, k >= 1 an
// integer; empty when some channel has no such k (`channel` says which).
std::vector<int32_t> IntegerRatios(const std::vector<float>& coarse, const std::vector<float>& fine,
                                   size_t* channel) {
  std::vector<int32_t> ratios(coarse.size());
  for (size_t o = 0; o < coarse.size(); ++o) {
    const double k = std::nearbyint(static_cast<double>(coarse[o]) / fine[o]);
    if (!(k >= 1 && k < double(1 << 30)) || static_cast<float>(k) * fine[o] != coarse[o]) {
      *channel = o;
      return {};
    }
    ratios[o] = static_cast<int32_t>(k);
  }
  return ratios;
}

// Bits and domain of a tensor's integer values: binary when every value is
// -1 or +1, else the narrowest signed width holding them.
StatusOr<ops::WeightCodeFormat> FormatOf(const std::string& name,
                                         const std::vector<int32_t>& values, std::string* domain) {
  int32_t lo = 0, hi = 0;
  bool binary = true;
  for (int32_t v : values) {
    lo = std::min(lo, v), hi = std::max(hi, v);
    binary &= v == -1 || v == 1;
  }
  if (binary) {
    *domain = "binary";
    return ops::WeightCodeFormat{1, -1, 2};
  }
  if (lo < -128 || hi > 127) return Unimplemented(name + ": weights wider than 8 bits");
  int bits = 1;
  while (bits < 8 && (lo < -(1 << (bits - 1)) || hi > (1 << (bits - 1)) - 1)) ++bits;
  *domain = "signed";
  return ops::WeightCodeFormat{bits, -(1 << (bits - 1)), 1};
}

// OIHW values -> the compact OHWI codes of lowbit.QConv's weight inputs.
ir::HostTensor PackOhwi(const std::vector<int32_t>& oihw, const Shape& w,
                        const ops::WeightCodeFormat& format) {
  const int64_t out_channels = w[0], group_in = w[1], taps = w[2] * w[3];
  std::vector<int32_t> ohwi(oihw.size());
  for (int64_t o = 0; o < out_channels; ++o)
    for (int64_t c = 0; c < group_in; ++c)
      for (int64_t t = 0; t < taps; ++t)
        ohwi[(o * taps + t) * group_in + c] = oihw[(o * group_in + c) * taps + t];
  return ir::HostTensor::Packed(ops::PackWeightValues(ohwi, format));
}

int32_t MaxMagnitude(const std::vector<int32_t>& values) {
  int32_t m = 0;
  for (int32_t v : values) m = std::max(m, std::abs(v));
  return m;
}

}  // namespace

StatusOr<bool> ReadQuantizedWeights(const ir::Graph& graph, const std::vector<int>& producers,
                                    int weights, QuantizedConvSpec* spec,
                                    std::vector<float>* first_scales) {
  if (auto single = ReadDequantizedConstant(graph, producers, weights)) {
    spec->weight_shape = single->codes->shape;
    if (!IntegerValues(*single, &spec->weight_values, &spec->weight_scales)) return false;
    *first_scales = spec->weight_scales;
    return true;
  }
  if (producers[weights] < 0) return false;
  const ir::Node& add = graph.nodes[producers[weights]];
  if (add.op_type != "Add" || add.inputs.size() != 2 || add.has("lowbit_activation")) return false;
  auto a = ReadDequantizedConstant(graph, producers, add.inputs[0]);
  auto b = ReadDequantizedConstant(graph, producers, add.inputs[1]);
  if (!a || !b) return false;
  const std::string what =
      spec->name + ": residual weight pair " + a->codes->name + " + " + b->codes->name;
  if (a->codes->shape != b->codes->shape || a->codes->shape.size() != 4)
    return Unimplemented(what + " of different shapes");
  std::vector<int32_t> values_a, values_b;
  std::vector<float> scales_a, scales_b;
  if (!IntegerValues(*a, &values_a, &scales_a) || !IntegerValues(*b, &values_b, &scales_b))
    return Unimplemented(what + ": a zero point is not an integer");
  // The coarse tensor is the one whose scales are multiples of the other's.
  size_t channel_ab = 0, channel_ba = 0;
  std::vector<int32_t> ratios = IntegerRatios(scales_a, scales_b, &channel_ab);
  const bool a_first = !ratios.empty();
  if (!a_first) ratios = IntegerRatios(scales_b, scales_a, &channel_ba);
  if (ratios.empty()) {
    const size_t o = channel_ab;
    return Unimplemented(what + ": scales are not integer multiples per output channel (channel " +
                         std::to_string(o) + ": " + std::to_string(scales_a[o]) + " / " +
                         std::to_string(scales_b[o]) + " = " +
                         std::to_string(double(scales_a[o]) / scales_b[o]) +
                         "), so no int32 accumulator sums the two convolutions exactly");
  }
  spec->weight_shape = a->codes->shape;
  spec->weight_values = a_first ? std::move(values_a) : std::move(values_b);
  spec->residual_values = a_first ? std::move(values_b) : std::move(values_a);
  *first_scales = a_first ? scales_a : scales_b;
  spec->weight_scales = a_first ? std::move(scales_b) : std::move(scales_a);
  spec->residual_multiplier = std::move(ratios);
  return true;
}

StatusOr<ir::Node> BuildQuantizedConv(QuantizedConvSpec& s) {
  const Shape& w = s.weight_shape;
  if (w.size() != 4) return Unimplemented(s.name + ": only 2-D convolutions are lowered");
  const int64_t out_channels = w[0], group_in = w[1], kh = w[2], kw = w[3];
  const int64_t in_channels = s.input_shape.at(1);
  const bool depthwise = s.group > 1 && s.group == in_channels && s.group == out_channels;
  if (s.group != 1 && !depthwise)
    return Unimplemented(s.name + ": grouped convolution that is not depthwise");
  if (s.dilations != std::vector<int64_t>{1, 1}) return Unimplemented(s.name + ": dilation");
  if (s.strides.size() != 2 || s.strides[0] != s.strides[1])
    return Unimplemented(s.name + ": unequal strides");
  if (s.abits < 1 || s.abits > 8) return Unimplemented(s.name + ": activations wider than 8 bits");
  if (s.input_zero_point != std::floor(s.input_zero_point))
    return Unimplemented(s.name + ": non-integer activation zero point");

  std::string domain, residual_domain;
  LOWBIT_ASSIGN_OR_RETURN(ops::WeightCodeFormat format, FormatOf(s.name, s.weight_values, &domain));
  s.packed_weights = PackOhwi(s.weight_values, w, format);
  ops::WeightCodeFormat residual_format;
  if (s.residual()) {
    if (s.residual_values.size() != s.weight_values.size() ||
        static_cast<int64_t>(s.residual_multiplier.size()) != out_channels)
      return InvalidArgument(s.name + ": residual tensor does not match the weights");
    LOWBIT_ASSIGN_OR_RETURN(residual_format, FormatOf(s.name, s.residual_values, &residual_domain));
    s.packed_residual = PackOhwi(s.residual_values, w, residual_format);
    // The runtime forms k[m] * sum(q1 * a) + sum(q2 * a) - sum_offset[m] in
    // wrapping int32 arithmetic (ops/qconv.cc): exact, as arithmetic mod
    // 2^32, whenever the true result, k[m] * sum(q1 * (a - zp)) +
    // sum(q2 * (a - zp)) + bias_codes[m], fits int32. It is at most
    // (k * |q1| + |q2|) * taps * max|a - zp| + |bias| in magnitude.
    const double zp = s.input_zero_point, top = double((1 << s.abits) - 1);
    const double centred = std::max(std::abs(zp), std::abs(top - zp));
    const double taps = double(group_in) * kh * kw;
    int32_t k = 0;
    for (int32_t m : s.residual_multiplier) k = std::max(k, m);
    double bias = 0;
    for (int64_t b : s.bias_codes) bias = std::max(bias, std::abs(double(b)));
    const double bound =
        (double(k) * MaxMagnitude(s.weight_values) + MaxMagnitude(s.residual_values)) * taps *
            centred +
        bias;
    if (bound > double(std::numeric_limits<int32_t>::max()))
      return Unimplemented(s.name + ": the residual pair's accumulator (multiplier up to " +
                           std::to_string(k) + ") could exceed int32");
  }
  // The zero-point correction input_zero_point * sum(w[m]) is subtracted
  // from the int32 sums exactly by the kernels (PrepareQuantizedConvs makes
  // the per-channel offsets), so the float epilogue starts from the
  // centred sum: y = float(s - offset[m]) * (s_in * s_w[m]) + b[m], as an
  // integer convolution of the fake-quantized graph computes it.
  s.epilogue_scale.resize(out_channels);
  s.epilogue_bias.resize(out_channels);
  for (int64_t o = 0; o < out_channels; ++o) {
    s.epilogue_scale[o] = s.input_scale * s.weight_scales[o];
    // A bias code of 0 stands for a float bias (a zero code's bias is 0.0).
    s.epilogue_bias[o] = s.bias_codes.empty() || s.bias_codes[o] == 0 ? s.bias[o] : 0.0f;
  }

  ir::Node node;
  node.op_type = "lowbit.QConv";
  node.name = s.name;
  node.inputs.assign(s.residual() ? 6 : 4, ir::kNoValue);
  for (const auto& [key, attribute] : s.activation_attributes)
    if (key.rfind("lowbit_", 0) == 0) node.attributes[key] = attribute;
  node.attributes["kernel_shape"] = ir::Attribute::Ints({kh, kw});
  node.attributes["strides"] = ir::Attribute::Ints(s.strides);
  node.attributes["pads"] = ir::Attribute::Ints(s.pads);
  node.attributes["group"] = ir::Attribute::Int(s.group);
  node.attributes["wbits"] = ir::Attribute::Int(format.bits);
  node.attributes["weight_min"] = ir::Attribute::Int(format.min_value);
  node.attributes["weight_domain"] = ir::Attribute::String(domain);
  if (s.residual()) {
    node.attributes["residual_wbits"] = ir::Attribute::Int(residual_format.bits);
    node.attributes["residual_weight_min"] = ir::Attribute::Int(residual_format.min_value);
    node.attributes["residual_weight_domain"] = ir::Attribute::String(residual_domain);
  }
  node.attributes["abits"] = ir::Attribute::Int(s.abits);
  if (!s.bias_codes.empty()) node.attributes["bias_codes"] = ir::Attribute::Ints(s.bias_codes);
  node.attributes["input_zero_point"] =
      ir::Attribute::Int(static_cast<int64_t>(s.input_zero_point));
  node.attributes["out_codes"] = ir::Attribute::Int(s.out_codes ? 1 : 0);
  if (s.out_codes) {
    node.attributes["out_scale"] = ir::Attribute::Float(s.out_scale);
    node.attributes["out_zero_point"] = ir::Attribute::Int(s.out_zero_point);
    node.attributes["out_bits"] = ir::Attribute::Int(s.out_bits);
  }
  return node;
}

}  // namespace lowbit::engine::passes
