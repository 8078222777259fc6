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
  // OIHW integers (value = code - zero point) of the only weight tensor, or
  // of the first (coarse) tensor q1 of a residual pair.
  std::vector<int32_t> weight_values;
  // [M] scale of one unit of the integer accumulator: s_w[m]; for a
  // residual pair s2[m], the second tensor's scale.
  std::vector<float> weight_scales;
  // A residual pair W = s1 * q1 + s2 * q2 with s1[m] == multiplier[m] * s2[m]
  // exactly in float32 (integer multiplier >= 1): the accumulator is
  // multiplier[m] * sum(q1 * x) + sum(q2 * x) at scale s_in * s2[m].
  // residual_values are q2 (OIHW, like weight_values); both empty for one tensor.
  std::vector<int32_t> residual_values;
  std::vector<int32_t> residual_multiplier;  // [M]
  std::vector<float> bias;                   // [M], real values
  // [M] or empty: the bias as int32 in units of the accumulator (s_in * weight_scales[m]);
  // 0 in a channel whose bias stays float (bias[m]; a bias of code 0 is 0.0 either way)
  std::vector<int64_t> bias_codes;
  std::map<std::string, ir::Attribute> activation_attributes;  // the Conv's lowbit_* attributes
  bool out_codes = false;
  float out_scale = 1.0f;
  int32_t out_zero_point = 0;
  int out_bits = 8;

  bool residual() const { return !residual_values.empty(); }

  // Filled by BuildQuantizedConv:
  ir::HostTensor packed_weights;      // kPacked compact OHWI codes of weight_values
  ir::HostTensor packed_residual;     // kPacked compact OHWI codes of residual_values (pairs)
  std::vector<float> epilogue_scale;  // [M] input_scale * weight_scales[m] (float product)
  std::vector<float> epilogue_bias;   // [M] bias; the zero point is corrected in int32
};

// Reads the integer weights of a quantized convolution from the node that
// produces its weight input (`producers` as ir::Graph::Producers()):
//   Dequantize(integer constant), per tensor or per output channel (axis 0);
//   Add(Dequantize(c1), Dequantize(c2)) of two such tensors of one shape
//     whose scales are integer multiples per channel, s1[m] == k[m] * s2[m]
//     in float32 (either input may be the coarse one): a residual pair.
// Fills spec's weight_shape, weight_values, weight_scales and, for a pair,
// residual_values and residual_multiplier. `first_scales` gets the first
// (or only) tensor's scale per channel. false when the weights are none of
// these patterns; an error (Unimplemented, saying why) for a residual pair
// that cannot be lowered, such as scales that are not integer multiples.
StatusOr<bool> ReadQuantizedWeights(const ir::Graph& graph, const std::vector<int>& producers,
                                    int weights, QuantizedConvSpec* spec,
                                    std::vector<float>* first_scales);

// The lowbit.QConv node for `spec` (inputs 1..3, and 4..5 for a residual
// pair, left for the caller to add as constants from spec's filled fields;
// input 0 the codes). Unimplemented when no integer kernel family can run it
// (dilation, unequal strides, grouped but not depthwise, weights wider than
// 8 bits) or when a residual pair's combined accumulator could leave int32.
StatusOr<ir::Node> BuildQuantizedConv(QuantizedConvSpec& spec);

}  // namespace lowbit::engine::passes
