// Where an FP32 ONNX graph is quantized, and the QCDQ model that does it.
//
// Sites, as quantization-aware training exports them (Brevitas QuantReLU /
// QuantIdentity): every activation is quantized once where it is made, so
// consecutive quantized convs hand each other integer codes.
// - Activation groups: tensors joined by code-preserving ops (Concat, Split,
//   Slice, MaxPool, a Pad of 0 = code zero_point, edge/reflect Pads, a -inf
//   Pad read only by MaxPools) share one grid, calibrated over the values of
//   the group's sources (its members no code-preserving op makes).
// - A group is quantized at its producers when a source is the graph input
//   or the (activated) output of a Conv that does not make a graph output,
//   and no member is a constant: QuantizeLinear -> Clip -> DequantizeLinear
//   on every source, and in front of every Conv reading a member an identity
//   requantization with the same grid (marks the conv input quantized).
// - A Conv whose input is reached through ops that change values (an Add, a
//   bilinear Resize) gets a quantizer of its own on its input, calibrated on
//   the sources of that input's group.
// - First convs (reading the graph input, through a zero Pad) and last convs
//   (a graph output is reached from them without another Conv) are "edge"
//   layers: their weights, the groups holding the graph input or a first
//   conv's output, and the groups read by an edge conv use first_last_bits.
//   Any other producer group takes the largest activation bits of the convs
//   reading it (of those making it, when no conv reads it).
// Written form (opset max(13, the model's)):
//   activations: QuantizeLinear(s, zp uint8) -> Clip(uint8 0, 2^b - 1) -> DequantizeLinear(s, zp)
//   weights:     int8 codes -> Clip(int8 qmin, qmax) -> DequantizeLinear(s[Cout], int8 0, axis 0)
//   residual:    Add(DequantizeLinear(first), DequantizeLinear(second)), s1 = m * s2
//   bias:        int32 codes rne(b / (s_in * s1)) -> DequantizeLinear(s_in * s1 (float32), int32 0,
//   axis 0)
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "lowbit/engine/status.h"
#include "lowbit_onnx/onnx.pb.h"
#include "quantize/scales.h"

namespace lowbit::engine::quantize {

// An index of one graph: producers, consumers, initializers.
class GraphIndex {
 public:
  explicit GraphIndex(const onnx::GraphProto& graph);

  const onnx::GraphProto& graph() const { return *graph_; }
  const onnx::NodeProto* producer(const std::string& tensor) const;
  const std::vector<const onnx::NodeProto*>& consumers(const std::string& tensor) const;
  const onnx::TensorProto* initializer(const std::string& name) const;
  bool is_graph_input(const std::string& tensor) const { return graph_inputs_.count(tensor) > 0; }
  bool is_graph_output(const std::string& tensor) const { return graph_outputs_.count(tensor) > 0; }
  // The data input of a constant-mode Pad with value 0 that makes `tensor`;
  // empty when `tensor` is not made so.
  std::string ZeroPadInput(const std::string& tensor) const;
  // The inputs whose codes `node` hands to its outputs unchanged (see above).
  std::vector<std::string> CodePreservingInputs(const onnx::NodeProto& node) const;

 private:
  const onnx::GraphProto* graph_;
  std::map<std::string, const onnx::NodeProto*> producer_;
  std::map<std::string, std::vector<const onnx::NodeProto*>> consumers_;
  std::map<std::string, const onnx::TensorProto*> initializers_;
  std::set<std::string> graph_inputs_, graph_outputs_;
};

// Float values of an initializer (FLOAT, raw or typed).
StatusOr<std::vector<float>> FloatValues(const onnx::TensorProto& tensor);

// Bits of one quantized Conv.
struct LayerBits {
  int weight_bits = 8;
  int activation_bits = 8;
  int residual_bits = 0;  // 0: one weight tensor
  bool operator==(const LayerBits&) const = default;
};

// One quantizable Conv: constant 4-D float weights (and bias, if any).
struct ConvLayer {
  const onnx::NodeProto* node = nullptr;
  std::string name;
  bool edge = false;              // first or last conv
  int64_t cout = 0, k = 0;        // weights as [cout][k]
  std::vector<float> weights;     // OIHW
  std::vector<float> bias;        // [cout] or empty
  std::string input;              // conv.input(0)
  std::string input_group;        // the group root its input quantizer is calibrated on
  std::string calibration_input;  // the float tensor in front of its zero Pad (bias correction)
};

class QuantizationSites {
 public:
  // Names every unnamed node of `model` ("<op>_<index>") so layers can be
  // reported, then finds groups, convs and edges.
  static StatusOr<QuantizationSites> Analyze(onnx::ModelProto* model);

  const onnx::ModelProto& model() const { return *model_; }
  const GraphIndex& index() const { return index_; }
  const std::vector<ConvLayer>& convs() const { return convs_; }
  std::string GroupOf(const std::string& tensor) const;
  const std::vector<std::string>& GroupSources(const std::string& root) const;
  // Every group a plan may use (quantized at its producers, or read by a
  // conv's own input quantizer): root -> its source tensors.
  std::map<std::string, std::vector<std::string>> CalibrationGroups() const;
  // The float tensors to calibrate: the groups' sources and each conv's
  // input in front of its zero Pad (its channel means correct the bias).
  std::vector<std::string> CalibrationTensors() const;
  // Groups quantized at their producers, with their bits, for `bits` per conv name.
  std::map<std::string, int> ProducerGroups(const std::map<std::string, LayerBits>& bits,
                                            int first_last_bits) const;

 private:
  QuantizationSites(onnx::ModelProto* model);
  std::string Find(const std::string& tensor) const;
  std::string ProducerOutput(const onnx::NodeProto& conv) const;

  onnx::ModelProto* model_;
  GraphIndex index_;
  std::vector<ConvLayer> convs_;
  mutable std::map<std::string, std::string> parent_;
  std::map<std::string, std::vector<std::string>> members_, sources_;
  std::set<std::string> constant_groups_;
  std::map<std::string, bool>
      sites_;  // producer-side tensor -> made by the graph input / a first conv
  std::map<std::string, std::string> made_by_;  // producer-side tensor -> conv name
};

// Everything a QCDQ model is written from.
struct QuantizedWeights {
  WeightGrid first;
  std::vector<int8_t> second_codes;  // residual codes, empty without
  std::vector<float> second_scale;
  int second_bits = 0;
  std::vector<float> bias;  // the (corrected) float bias, [cout] or empty
};
struct QcdqPlan {
  std::map<std::string, LayerBits> bits;  // per conv name
  int first_last_bits = 8;
  // Grid per (group root, bits), for every group the plan quantizes.
  std::map<std::pair<std::string, int>, ActivationGrid> grids;
  std::map<std::string, QuantizedWeights> weights;  // per conv name
};

// Activation bits each conv input reads under `bits`, and the (group, bits)
// grids a plan with these bits needs.
struct ActivationNeeds {
  std::map<std::string, int> input_bits;                    // per conv name
  std::map<std::string, std::pair<std::string, int>> grid;  // per conv name: (group, bits) read
  std::map<std::string, int> producer_groups;
  std::set<std::pair<std::string, int>> grids;
};
ActivationNeeds NeededGrids(const QuantizationSites& sites,
                            const std::map<std::string, LayerBits>& bits, int first_last_bits);

// The QCDQ model for `plan`. Every conv of `sites` must have bits, weights
// and its grids in `plan`.
StatusOr<onnx::ModelProto> WriteQcdq(const QuantizationSites& sites, const QcdqPlan& plan,
                                     const std::string& description);

}  // namespace lowbit::engine::quantize
