// Pad -> Conv/MaxPool folding and Conv + activation fusion.
#include <algorithm>
#include <cmath>
#include <limits>

#include "passes/passes.h"

namespace lowbit::engine::passes {
namespace {

using ir::Graph;
using ir::Node;

// Index of the only node reading `value` (and only through input 0), or -1.
int SoleConsumer(const Graph& graph, int value, const std::vector<int>& uses) {
  if (uses[value] != 1) return -1;
  for (size_t n = 0; n < graph.nodes.size(); ++n) {
    const Node& node = graph.nodes[n];
    for (size_t i = 0; i < node.inputs.size(); ++i)
      if (node.inputs[i] == value) return i == 0 ? static_cast<int>(n) : -1;
  }
  return -1;  // read by a graph output
}

// True when every element of `value` is known to be >= 0.
bool IsNonNegative(const Graph& graph, int value, const std::vector<int>& producers) {
  int p = producers[value];
  if (p < 0) return false;
  const Node& node = graph.nodes[p];
  if (node.op_type == "Relu" || node.op_type == "Sigmoid") return true;
  if (node.op_type == "Clip" && ir::HasInput(node, 1)) {
    auto min = ir::ConstantFloats(graph, node, 1);
    return min.ok() && !min->empty() && (*min)[0] >= 0;
  }
  if (node.has("lowbit_activation")) {  // a Conv or Add with a fused activation
    const std::string act = node.GetString("lowbit_activation", "");
    return act == "relu" || (act == "clip" && node.GetFloat("lowbit_min", -1) >= 0);
  }
  return false;
}

}  // namespace

std::optional<std::pair<float, float>> ClipBounds(const Graph& graph, const Node& clip) {
  float bounds[2] = {clip.GetFloat("min", -std::numeric_limits<float>::infinity()),
                     clip.GetFloat("max", std::numeric_limits<float>::infinity())};
  for (size_t i = 0; i < 2; ++i) {
    if (!ir::HasInput(clip, i + 1)) continue;
    auto v = ir::ConstantFloats(graph, clip, i + 1);
    if (!v.ok() || v->size() != 1) return std::nullopt;
    bounds[i] = (*v)[0];
  }
  return std::make_pair(bounds[0], bounds[1]);
}

std::optional<std::map<std::string, ir::Attribute>> FusedActivationAttributes(
    const Graph& graph, const Node& act) {
  if (act.op_type == "Relu") return {{{"lowbit_activation", ir::Attribute::String("relu")}}};
  if (act.op_type == "LeakyRelu")
    return {{{"lowbit_activation", ir::Attribute::String("leaky_relu")},
             {"lowbit_alpha", ir::Attribute::Float(act.GetFloat("alpha", 0.01f))}}};
  if (act.op_type == "Clip") {
    const auto bounds = ClipBounds(graph, act);
    if (!bounds) return std::nullopt;
    return {{{"lowbit_activation", ir::Attribute::String("clip")},
             {"lowbit_min", ir::Attribute::Float(bounds->first)},
             {"lowbit_max", ir::Attribute::Float(bounds->second)}}};
  }
  return std::nullopt;
}

std::optional<SpatialPad> ReadSpatialPad(const Graph& graph, const Node& pad) {
  if (pad.GetString("mode", "constant") != "constant") return std::nullopt;
  if (graph.values[pad.inputs[0]].shape.size() != 4) return std::nullopt;
  std::vector<int64_t> pads = pad.GetInts("pads");
  if (!pad.has("pads")) {
    auto from_input = ir::ConstantInts(graph, pad, 1);
    if (!from_input.ok()) return std::nullopt;
    pads = *from_input;
  }
  SpatialPad spatial;
  spatial.fill = pad.GetFloat("value", 0.0f);
  if (ir::HasInput(pad, 2)) {
    auto value = ir::ConstantFloats(graph, pad, 2);
    if (!value.ok() || value->size() != 1) return std::nullopt;
    spatial.fill = (*value)[0];
  }
  // ONNX pads [N, C, H, W begins, N, C, H, W ends].
  if (pads.size() != 8 || pads[0] || pads[1] || pads[4] || pads[5]) return std::nullopt;
  for (int64_t p : pads)
    if (p < 0) return std::nullopt;
  spatial.pads = {pads[2], pads[3], pads[6], pads[7]};
  return spatial;
}

Status FusePadIntoConsumer(Graph* graph) {
  bool changed = true;
  while (changed) {
    changed = false;
    const std::vector<int> uses = graph->UseCounts();
    const std::vector<int> producers = graph->Producers();
    for (size_t n = 0; n < graph->nodes.size() && !changed; ++n) {
      const Node& pad = graph->nodes[n];
      if (pad.op_type != "Pad") continue;
      const std::optional<SpatialPad> spatial = ReadSpatialPad(*graph, pad);
      if (!spatial) continue;
      const float fill = spatial->fill;
      const int consumer_index = SoleConsumer(*graph, pad.outputs[0], uses);
      if (consumer_index < 0) continue;
      Node& consumer = graph->nodes[consumer_index];
      std::vector<int64_t> merged = consumer.GetInts("pads", {0, 0, 0, 0});
      if (merged.size() != 4) continue;
      for (int i = 0; i < 4; ++i) merged[i] += spatial->pads[i];
      if (consumer.op_type == "Conv") {
        if (fill != 0.0f) continue;
      } else if (consumer.op_type == "MaxPool") {
        const bool minus_infinity = std::isinf(fill) && fill < 0;
        const bool zero_is_safe = fill == 0.0f && IsNonNegative(*graph, pad.inputs[0], producers);
        if (!minus_infinity && !zero_is_safe) continue;
        if (consumer.GetInt("ceil_mode", 0) != 0) continue;
        // Every window must still overlap real input, so the padded border
        // never decides a maximum on its own.
        const std::vector<int64_t> kernel = consumer.GetInts("kernel_shape");
        bool overlaps = kernel.size() == 2;
        for (int i = 0; i < 4 && overlaps; ++i) overlaps = merged[i] <= kernel[i % 2] - 1;
        if (!overlaps) continue;
      } else {
        continue;
      }
      consumer.attributes["pads"] = ir::Attribute::Ints(merged);
      consumer.inputs[0] = pad.inputs[0];
      graph->nodes.erase(graph->nodes.begin() + n);
      changed = true;
    }
  }
  return Status::Ok();
}

Status FuseSiLU(Graph* graph) {
  const std::vector<int> uses = graph->UseCounts();
  std::vector<char> removed(graph->nodes.size(), 0);
  for (size_t n = 0; n < graph->nodes.size(); ++n) {
    const Node& sigmoid = graph->nodes[n];
    if (sigmoid.op_type != "Sigmoid" || sigmoid.inputs.size() != 1) continue;
    const int x = sigmoid.inputs[0], s = sigmoid.outputs[0];
    if (graph->values[x].dtype != ir::DataType::kFloat32 || uses[s] != 1) continue;
    for (size_t m = n + 1; m < graph->nodes.size(); ++m) {
      Node& mul = graph->nodes[m];
      const auto& in = mul.inputs;
      if (std::find(in.begin(), in.end(), s) == in.end()) continue;
      const bool silu = mul.op_type == "Mul" && in.size() == 2 &&
                        ((in[0] == x && in[1] == s) || (in[0] == s && in[1] == x));
      if (silu) {
        mul.op_type = "lowbit.SiLU";
        mul.inputs = {x};
        mul.attributes.clear();
        removed[n] = 1;
      }
      break;
    }
  }
  std::vector<Node> kept;
  for (size_t n = 0; n < graph->nodes.size(); ++n)
    if (!removed[n]) kept.push_back(std::move(graph->nodes[n]));
  graph->nodes = std::move(kept);
  return Status::Ok();
}

Status FuseActivations(Graph* graph) {
  const std::vector<int> uses = graph->UseCounts();
  std::vector<char> removed(graph->nodes.size(), 0);
  for (size_t n = 0; n < graph->nodes.size(); ++n) {
    Node& conv = graph->nodes[n];  // a Conv, or an Add (XNNPACK clamps its output)
    const bool is_add = conv.op_type == "Add";
    if ((conv.op_type != "Conv" && !is_add) || conv.has("lowbit_activation")) continue;
    const int consumer_index = SoleConsumer(*graph, conv.outputs[0], uses);
    if (consumer_index < 0) continue;
    const Node& act = graph->nodes[consumer_index];
    if (is_add && act.op_type == "LeakyRelu") continue;  // XNNPACK's Add only clamps
    auto fused = FusedActivationAttributes(*graph, act);
    if (!fused) continue;
    for (auto& [key, attribute] : *fused) conv.attributes[key] = std::move(attribute);
    conv.outputs[0] = act.outputs[0];
    removed[consumer_index] = 1;
  }
  std::vector<Node> kept;
  for (size_t n = 0; n < graph->nodes.size(); ++n)
    if (!removed[n]) kept.push_back(std::move(graph->nodes[n]));
  graph->nodes = std::move(kept);
  return Status::Ok();
}

}  // namespace lowbit::engine::passes
