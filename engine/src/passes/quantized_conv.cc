#include "passes/quantized_conv.h"

#include <algorithm>
#include <cmath>

#include "ops/qconv_weights.h"

namespace lowbit::engine::passes {

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

  // Weight values: bits and domain from their range.
  int32_t lo = 0, hi = 0;
  for (int32_t v : s.weight_values) lo = std::min(lo, v), hi = std::max(hi, v);
  bool binary = true;
  for (int32_t v : s.weight_values) binary &= v == -1 || v == 1;
  ops::WeightCodeFormat format;
  std::string domain = "signed";
  if (binary) {
    format = {1, -1, 2};
    domain = "binary";
  } else {
    int bits = 1;
    while (bits < 8 && (lo < -(1 << (bits - 1)) || hi > (1 << (bits - 1)) - 1)) ++bits;
    if (lo < -128 || hi > 127) return Unimplemented(s.name + ": weights wider than 8 bits");
    format = {bits, -(1 << (bits - 1)), 1};
  }
  // OIHW -> OHWI.
  const int64_t taps = kh * kw;
  std::vector<int32_t> ohwi(s.weight_values.size());
  for (int64_t o = 0; o < out_channels; ++o)
    for (int64_t c = 0; c < group_in; ++c)
      for (int64_t t = 0; t < taps; ++t) {
        const int32_t v = s.weight_values[(o * group_in + c) * taps + t];
        ohwi[(o * taps + t) * group_in + c] = v;
      }
  s.packed_weights = ir::HostTensor::Packed(ops::PackWeightValues(ohwi, format));
  // The zero-point correction input_zero_point * sum(w[m]) is subtracted
  // from the int32 sums exactly by the kernels (PrepareQuantizedConvs makes
  // the per-channel offsets), so the float epilogue starts from the
  // centred sum: y = float(s - offset[m]) * (s_in * s_w[m]) + b[m], as an
  // integer convolution of the fake-quantized graph computes it.
  s.epilogue_scale.resize(out_channels);
  s.epilogue_bias.resize(out_channels);
  for (int64_t o = 0; o < out_channels; ++o) {
    s.epilogue_scale[o] = s.input_scale * s.weight_scales[o];
    s.epilogue_bias[o] = s.bias_codes.empty() ? s.bias[o] : 0.0f;
  }

  ir::Node node;
  node.op_type = "lowbit.QConv";
  node.name = s.name;
  node.inputs = {ir::kNoValue, ir::kNoValue, ir::kNoValue, ir::kNoValue};
  for (const auto& [key, attribute] : s.activation_attributes)
    if (key.rfind("lowbit_", 0) == 0) node.attributes[key] = attribute;
  node.attributes["kernel_shape"] = ir::Attribute::Ints({kh, kw});
  node.attributes["strides"] = ir::Attribute::Ints(s.strides);
  node.attributes["pads"] = ir::Attribute::Ints(s.pads);
  node.attributes["group"] = ir::Attribute::Int(s.group);
  node.attributes["wbits"] = ir::Attribute::Int(format.bits);
  node.attributes["weight_min"] = ir::Attribute::Int(format.min_value);
  node.attributes["weight_domain"] = ir::Attribute::String(domain);
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
