// BatchNormalization folding for the float IR (inference form).
//
// BatchNormalization(X, scale, B, mean, var) {epsilon} computes, per channel c
// on axis 1 of X:
//   y = g[c] * (x - mean[c]) + B[c],   g[c] = scale[c] / sqrt(var[c] + epsilon)
// g and every folded value are computed in double and rounded to float once.
//
// Rewrites, for a BatchNormalization whose four parameters are constant:
// - X = Conv(x, W, b) (any group, any spatial rank), W [M, C/group, k...]:
//     W'[o, ...] = W[o, ...] * g[o],   b'[o] = (b[o] - mean[o]) * g[o] + B[o]
//   (b = 0 when the Conv has no bias); the Conv then writes the BN's output.
// - X = Gemm(A, Bm, C) {alpha, beta, transB}: Y is [M, N], so axis 1 is N.
//     Bm' scales output column n (row n when transB) by g[n];
//     C'[n] = (beta * C[n] - mean[n]) * g[n] + B[n], stored as [N], beta = 1.
//   C must be absent, a single value, or [N] / [1, N] (one value per column).
// - X = MatMul(A, Bm) with A and Bm of rank 2 (so Y is [M, N]): Bm' as for
//   Gemm, and the bias becomes Add(Y, b'[N]) in the BN's place.
// The producer must be float (weights dtype f32 with float precision, in
// logical storage order), have no fused activation, and X must have no other
// reader (no other node, not a graph output).
// Any other BatchNormalization with constant parameters and an input of
// known rank r >= 2 becomes Mul(X, g) -> Add(., B - mean * g) with constants
// of shape [C, 1, ..., 1] (r - 2 ones), which broadcast along axis 1.
// Left unchanged: non-constant parameters or input, training_mode != 0,
// spatial = 0 (opset < 9), a used running/saved statistics output, or
// parameters whose length is not the channel count.
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "passes/passes.h"

namespace lowbit::engine::passes {
namespace {

using ir::Graph;
using ir::HostTensor;
using ir::Node;
using ir::Value;

// The per-channel affine form of one BatchNormalization, in double.
struct ChannelAffine {
  std::vector<double> gain;  // g[c] = scale[c] / sqrt(var[c] + epsilon)
  std::vector<double> mean;  // mean[c]
  std::vector<double> bias;  // B[c]
  size_t channels() const { return gain.size(); }
  // y for an input value x in channel c.
  double Apply(size_t c, double x) const { return (x - mean[c]) * gain[c] + bias[c]; }
};

// The affine form of `bn`, or nullopt when the node is not an inference-mode
// BatchNormalization with constant, equal-length parameters. Fails when a
// variance plus epsilon is not positive (the model is broken).
StatusOr<std::optional<ChannelAffine>> ReadChannelAffine(const Graph& graph, const Node& bn,
                                                         const std::vector<int>& uses) {
  if (bn.inputs.size() != 5 || bn.outputs.empty()) return std::optional<ChannelAffine>();
  if (bn.GetInt("training_mode", 0) != 0 || bn.GetInt("spatial", 1) == 0)
    return std::optional<ChannelAffine>();
  for (size_t o = 1; o < bn.outputs.size(); ++o)
    if (bn.outputs[o] != ir::kNoValue && uses[bn.outputs[o]] != 0)
      return std::optional<ChannelAffine>();
  std::vector<std::vector<float>> params;  // scale, B, mean, var
  for (size_t i = 1; i < 5; ++i) {
    if (!ir::HasInput(bn, i) || !graph.values[bn.inputs[i]].is_constant())
      return std::optional<ChannelAffine>();
    LOWBIT_ASSIGN_OR_RETURN(std::vector<float> values, ir::ConstantFloats(graph, bn, i));
    if (values.empty() || (!params.empty() && values.size() != params[0].size()))
      return std::optional<ChannelAffine>();
    params.push_back(std::move(values));
  }
  const double epsilon = bn.GetFloat("epsilon", 1e-5f);
  ChannelAffine affine;
  for (size_t c = 0; c < params[0].size(); ++c) {
    const double variance = static_cast<double>(params[3][c]) + epsilon;
    if (!(variance > 0))
      return InvalidArgument(bn.Describe() + ": variance + epsilon is " + std::to_string(variance) +
                             " in channel " + std::to_string(c) + "; it must be positive");
    affine.gain.push_back(params[0][c] / std::sqrt(variance));
    affine.mean.push_back(params[2][c]);
    affine.bias.push_back(params[1][c]);
  }
  return std::optional<ChannelAffine>(std::move(affine));
}

// A float32 constant in logical order with float precision, or nullptr.
const HostTensor* FloatConstant(const Graph& graph, int id) {
  if (id == ir::kNoValue) return nullptr;
  const Value& v = graph.values[id];
  if (!v.is_constant() || !v.constant->is_float() || v.dtype != ir::DataType::kFloat32 ||
      v.precision.kind != ir::Precision::Kind::kFloat || !v.storage_perm.empty())
    return nullptr;
  return &*v.constant;
}

// Rank of a value whose shape is known (dimensions may still be -1), or -1.
int KnownRank(const Value& v) { return v.shape_known ? static_cast<int>(v.shape.size()) : -1; }

// `weights` (row-major) with every element multiplied by the gain of its
// output channel, which for flat element i is (i / inner) % channels:
// [channels, inner...] weights (Conv, transposed Gemm B) pass the product of
// the trailing dimensions, [K, channels] weights (Gemm / MatMul B) pass 1.
HostTensor ScaleByChannel(const HostTensor& weights, const ChannelAffine& affine, int64_t inner) {
  HostTensor scaled = weights;
  const int64_t channels = static_cast<int64_t>(affine.channels());
  for (int64_t i = 0; i < weights.size(); ++i)
    scaled.floats[i] = static_cast<float>(static_cast<double>(weights.floats[i]) *
                                          affine.gain[(i / inner) % channels]);
  return scaled;
}

// b'[c] = (b[c] - mean[c]) * g[c] + B[c] as a [C] tensor; b[c] = 0 when
// `bias` is empty.
HostTensor FoldedBias(const std::vector<double>& bias, const ChannelAffine& affine) {
  std::vector<float> folded(affine.channels());
  for (size_t c = 0; c < folded.size(); ++c)
    folded[c] = static_cast<float>(affine.Apply(c, bias.empty() ? 0.0 : bias[c]));
  const Shape shape = {static_cast<int64_t>(folded.size())};
  return HostTensor::Floats(shape, std::move(folded));
}

int AddFolded(Graph* graph, const std::string& base, HostTensor tensor) {
  return graph->AddConstant(graph->UniqueName(base + "/bn_folded"), std::move(tensor));
}

// Folds into Conv(x, W, b); false (graph untouched) when not provable.
bool FoldIntoConv(Graph* graph, Node* conv, const ChannelAffine& affine) {
  const HostTensor* weights =
      FloatConstant(*graph, ir::HasInput(*conv, 1) ? conv->inputs[1] : ir::kNoValue);
  if (!weights || weights->shape.size() < 3 ||
      weights->shape[0] != static_cast<int64_t>(affine.channels()))
    return false;
  std::vector<double> bias;
  if (ir::HasInput(*conv, 2)) {
    const HostTensor* b = FloatConstant(*graph, conv->inputs[2]);
    if (!b || b->size() != static_cast<int64_t>(affine.channels())) return false;
    bias.assign(b->floats.begin(), b->floats.end());
  }
  const int64_t inner = weights->size() / weights->shape[0];
  const std::string weight_name = graph->values[conv->inputs[1]].name;
  const std::string bias_name =
      bias.empty() ? weight_name + "_bias" : graph->values[conv->inputs[2]].name;
  HostTensor scaled = ScaleByChannel(*weights, affine, inner);
  HostTensor folded_bias = FoldedBias(bias, affine);
  conv->inputs.resize(3, ir::kNoValue);
  conv->inputs[1] = AddFolded(graph, weight_name, std::move(scaled));
  conv->inputs[2] = AddFolded(graph, bias_name, std::move(folded_bias));
  return true;
}

// Scales the rank-2 constant B of a Gemm / MatMul (input 1) per output
// column; false when B is not a float constant with `channels` columns.
bool ScaleMatrixColumns(Graph* graph, Node* node, bool transposed, const ChannelAffine& affine) {
  const HostTensor* b =
      FloatConstant(*graph, ir::HasInput(*node, 1) ? node->inputs[1] : ir::kNoValue);
  if (!b || b->shape.size() != 2) return false;
  const int64_t columns = transposed ? b->shape[0] : b->shape[1];
  if (columns != static_cast<int64_t>(affine.channels())) return false;
  // Transposed B is [N, K]: channel = i / K. Plain B is [K, N]: channel = i % N.
  HostTensor scaled = ScaleByChannel(*b, affine, transposed ? b->shape[1] : 1);
  const std::string name = graph->values[node->inputs[1]].name;
  node->inputs[1] = AddFolded(graph, name, std::move(scaled));
  return true;
}

bool FoldIntoGemm(Graph* graph, Node* gemm, const ChannelAffine& affine) {
  const int64_t channels = static_cast<int64_t>(affine.channels());
  std::vector<double> c_values;  // beta * C per column, empty when C is absent
  if (ir::HasInput(*gemm, 2)) {
    const HostTensor* c = FloatConstant(*graph, gemm->inputs[2]);
    if (!c) return false;
    const Shape& s = c->shape;
    const bool single = c->size() == 1;
    const bool per_column =
        (s.size() == 1 && s[0] == channels) || (s.size() == 2 && s[0] == 1 && s[1] == channels);
    if (!single && !per_column) return false;
    const double beta = gemm->GetFloat("beta", 1.0f);
    for (int64_t n = 0; n < channels; ++n) c_values.push_back(beta * c->floats[single ? 0 : n]);
  }
  const bool transposed = gemm->GetInt("transB", 0) != 0;
  const std::string c_name = ir::HasInput(*gemm, 2)   ? graph->values[gemm->inputs[2]].name
                             : ir::HasInput(*gemm, 1) ? graph->values[gemm->inputs[1]].name + "_c"
                                                      : std::string();
  if (!ScaleMatrixColumns(graph, gemm, transposed, affine)) return false;
  gemm->inputs.resize(3, ir::kNoValue);
  gemm->inputs[2] = AddFolded(graph, c_name, FoldedBias(c_values, affine));
  gemm->attributes["beta"] = ir::Attribute::Float(1.0f);
  return true;
}

// Folds the scale into MatMul's B; returns the Add node that applies the
// folded bias to the MatMul's output, or nullopt (graph untouched).
std::optional<Node> FoldIntoMatMul(Graph* graph, Node* matmul, const Node& bn,
                                   const ChannelAffine& affine) {
  if (!ir::HasInput(*matmul, 0) || !ir::HasInput(*matmul, 1) ||
      KnownRank(graph->values[matmul->inputs[0]]) != 2)
    return std::nullopt;
  const std::string bias_name = graph->values[matmul->inputs[1]].name + "_bias";
  if (!ScaleMatrixColumns(graph, matmul, /*transposed=*/false, affine)) return std::nullopt;
  Node add;
  add.op_type = "Add";
  add.name = bn.name;
  add.inputs = {matmul->outputs[0], AddFolded(graph, bias_name, FoldedBias({}, affine))};
  add.outputs = {bn.outputs[0]};
  return add;
}

// Mul(X, g) -> Add(., B - mean * g) in place of `bn`, or nothing when the
// rank or channel count of X is not known to match.
std::vector<Node> AsMulAdd(Graph* graph, const Node& bn, const ChannelAffine& affine) {
  // Copied: adding constants below may move graph->values.
  const Value& x = graph->values[bn.inputs[0]];
  const Value& y = graph->values[bn.outputs[0]];
  if (x.is_constant()) return {};
  const Shape shape = KnownRank(x) >= 0 ? x.shape : y.shape;
  const bool shape_known = x.shape_known || y.shape_known;
  const int rank = shape_known ? static_cast<int>(shape.size()) : -1;
  const int64_t channels = static_cast<int64_t>(affine.channels());
  if (rank < 2 || (shape[1] >= 0 && shape[1] != channels)) return {};
  Shape param_shape(rank - 1, 1);
  param_shape[0] = channels;
  std::vector<float> gain(channels), shift(channels);
  for (int64_t c = 0; c < channels; ++c) {
    gain[c] = static_cast<float>(affine.gain[c]);
    shift[c] = static_cast<float>(affine.Apply(c, 0.0));  // B - mean * g
  }
  const int gain_id = graph->AddConstant(graph->UniqueName(bn.name + "/gain"),
                                         HostTensor::Floats(param_shape, gain));
  const int shift_id = graph->AddConstant(graph->UniqueName(bn.name + "/shift"),
                                          HostTensor::Floats(param_shape, shift));
  Value scaled;
  scaled.name = graph->UniqueName(bn.name + "/scaled");
  scaled.dtype = ir::DataType::kFloat32;
  scaled.shape = shape;
  scaled.shape_known = true;
  const int scaled_id = graph->AddValue(std::move(scaled));
  Node mul;
  mul.op_type = "Mul";
  mul.name = bn.name + "/mul";
  mul.inputs = {bn.inputs[0], gain_id};
  mul.outputs = {scaled_id};
  Node add;
  add.op_type = "Add";
  add.name = bn.name + "/add";
  add.inputs = {scaled_id, shift_id};
  add.outputs = {bn.outputs[0]};
  return {std::move(mul), std::move(add)};
}

}  // namespace

Status FoldBatchNormalization(Graph* graph) {
  const std::vector<int> uses = graph->UseCounts();
  // Nodes are rebuilt in order into `result`; producer[v] is the index in
  // `result` of the node writing value v (-1: graph input, constant, none).
  std::vector<Node> result;
  result.reserve(graph->nodes.size());
  std::vector<int> producer(graph->values.size(), -1);
  auto emit = [&](Node node) {
    for (int out : node.outputs)
      if (out != ir::kNoValue) {
        if (out >= static_cast<int>(producer.size())) producer.resize(out + 1, -1);
        producer[out] = static_cast<int>(result.size());
      }
    result.push_back(std::move(node));
  };
  for (Node& node : graph->nodes) {
    if (node.op_type != "BatchNormalization") {
      emit(std::move(node));
      continue;
    }
    LOWBIT_ASSIGN_OR_RETURN(std::optional<ChannelAffine> affine,
                            ReadChannelAffine(*graph, node, uses));
    if (!affine || !ir::HasInput(node, 0)) {
      emit(std::move(node));
      continue;
    }
    const int x = node.inputs[0];
    const int p = x < static_cast<int>(producer.size()) ? producer[x] : -1;
    Node* source = p >= 0 ? &result[p] : nullptr;
    const bool sole_reader = uses[x] == 1 && source && source->outputs.size() == 1 &&
                             source->outputs[0] == x && !source->has("lowbit_activation");
    if (sole_reader && ((source->op_type == "Conv" && FoldIntoConv(graph, source, *affine)) ||
                        (source->op_type == "Gemm" && FoldIntoGemm(graph, source, *affine)))) {
      source->outputs[0] = node.outputs[0];
      producer[node.outputs[0]] = p;
      continue;
    }
    if (sole_reader && source->op_type == "MatMul") {
      if (std::optional<Node> add = FoldIntoMatMul(graph, source, node, *affine)) {
        emit(std::move(*add));
        continue;
      }
    }
    std::vector<Node> mul_add = AsMulAdd(graph, node, *affine);
    if (mul_add.empty()) {
      emit(std::move(node));
      continue;
    }
    for (Node& n : mul_add) emit(std::move(n));
  }
  graph->nodes = std::move(result);
  return Status::Ok();
}

}  // namespace lowbit::engine::passes
