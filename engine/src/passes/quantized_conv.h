// Building a lowbit.QConv node (see lower_quantized.cc for its definition)
// from a recognised quantized convolution.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "lowbit/engine/status.h"

namespace lowbit::engine::passes {

struct QuantizedConvSpec {
  std::string name;
  Shape weight_shape;  // [M, C/group, kH, kW]
  Shape input_shape, output_shape;
  int64_t group = 1;
  std::vector<int64_t> strides, pads, dilations;
  float input_scale = 1.0f;
  float input_zero_point = 0.0f;  // code domain (unsigned codes)
  int abits = 8;
  std::vector<int32_t> weight_values;  // OIHW integers (value = code - zero point)
  std::vector<float> weight_scales;    // [M]
  std::vector<float> bias;             // [M], real values
  std::vector<int64_t> bias_codes;     // [M] or empty: the bias as int32 at scale s_in * s_w[m]
  std::map<std::string, ir::Attribute> activation_attributes;  // the Conv's lowbit_* attributes
  bool out_codes = false;
  float out_scale = 1.0f;
  int32_t out_zero_point = 0;
  int out_bits = 8;

  // Filled by BuildQuantizedConv:
  ir::HostTensor packed_weights;       // kPacked compact OHWI codes
  std::vector<float> epilogue_scale;   // [M] input_scale * weight_scales[m] (float product)
  std::vector<float> epilogue_bias;    // [M] bias; the zero point is corrected in int32
};

// The lowbit.QConv node for `spec` (inputs 1..3 left for the caller to add as
// constants from spec's filled fields; input 0 the codes). Unimplemented when
// no integer kernel family can run it (dilation, unequal strides, grouped
// but not depthwise, weights wider than 8 bits).
StatusOr<ir::Node> BuildQuantizedConv(QuantizedConvSpec& spec);

}  // namespace lowbit::engine::passes
