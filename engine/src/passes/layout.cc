// Layout assignment: NHWC storage inside, ONNX (logical) order at the edges.
#include <algorithm>
#include <map>
#include <numeric>
#include <optional>
#include <set>

#include "passes/passes.h"

namespace lowbit::engine::passes {
namespace {

using ir::Graph;
using ir::HostTensor;
using ir::Node;
using ir::Value;
using Perm = std::vector<int>;

const Perm kNhwc = {0, 2, 3, 1};
const std::set<std::string> kSpatialOps = {
    "Conv",   "MaxPool",  "AveragePool",  "GlobalAveragePool",
    "GlobalMaxPool", "Resize", "Upsample", "lowbit.QConv"};
const std::set<std::string> kSameLayoutOps = {
    "Relu", "LeakyRelu",   "Sigmoid",   "Clip",  "Tanh", "Exp",   "Neg",   "Sqrt", "Abs",
    "Erf",  "HardSigmoid", "HardSwish", "Floor", "Ceil", "Split", "Slice", "Pad",
    "lowbit.CodeTable", "lowbit.SiLU",
    // Per-axis parameters index the logical axis; the kernels find it in
    // the storage order (ops/quantize.cc), so any order is kept.
    "lowbit.Quantize", "lowbit.Dequantize"};
const std::set<std::string> kBroadcastOps = {"Add", "Sub", "Mul", "Div", "Max", "Min", "Pow"};
const std::set<std::string> kLogicalViewOps = {"Reshape", "Flatten", "Squeeze", "Unsqueeze",
                                               "Identity"};

Perm Identity(size_t rank) {
  Perm p(rank);
  std::iota(p.begin(), p.end(), 0);
  return p;
}

bool IsIdentity(const Perm& p) { return p == Identity(p.size()); }

Perm StorageOf(const Value& v) {
  return v.storage_perm.empty() ? Identity(v.shape.size()) : v.storage_perm;
}

void SetStorage(Value* v, const Perm& p) { v->storage_perm = IsIdentity(p) ? Perm{} : p; }

// A copy of a logical-order constant, broadcast-expanded to `rank` and stored
// in `storage` order.
HostTensor PermuteConstant(const HostTensor& in, size_t rank, const Perm& storage) {
  Shape logical(rank - in.shape.size(), 1);
  logical.insert(logical.end(), in.shape.begin(), in.shape.end());
  Shape physical(rank);
  for (size_t j = 0; j < rank; ++j) physical[j] = logical[storage[j]];
  std::vector<int64_t> logical_strides(rank, 1);
  for (int d = static_cast<int>(rank) - 2; d >= 0; --d)
    logical_strides[d] = logical_strides[d + 1] * logical[d + 1];
  HostTensor out = in;
  out.shape = logical;
  const int64_t n = in.size();
  std::vector<int64_t> index(rank, 0);  // physical multi-index
  for (int64_t i = 0; i < n; ++i) {
    int64_t source = 0;
    for (size_t j = 0; j < rank; ++j) source += index[j] * logical_strides[storage[j]];
    if (in.is_float())
      out.floats[i] = in.floats[source];
    else
      out.ints[i] = in.ints[source];
    for (int j = static_cast<int>(rank) - 1; j >= 0; --j) {
      if (++index[j] < physical[j]) break;
      index[j] = 0;
    }
  }
  return out;
}

// Storage order for the output of a reshape-like view (Reshape, Flatten,
// Squeeze, Unsqueeze, Identity) of a value stored in `storage`, such that the
// output's memory is the input's unchanged; nullopt when the reshape mixes
// axes that are not adjacent in memory. Axis 0 (the batch) maps to axis 0.
// Example: [1,80,52,52] stored NHWC reshaped to [1,80,2704] gives {0,2,1}.
std::optional<Perm> ViewStorage(const Shape& in, const Perm& storage, const Shape& out) {
  if (in.empty() || out.empty()) return std::nullopt;
  // Rank of each non-batch, non-1 input axis in storage order.
  std::vector<int> packed_position(in.size(), -1);
  int next = 0;
  for (size_t j = 1; j < storage.size(); ++j)
    if (in[storage[j]] != 1) packed_position[storage[j]] = next++;
  std::vector<int> in_axes, out_axes;
  for (size_t i = 1; i < in.size(); ++i)
    if (in[i] != 1) in_axes.push_back(static_cast<int>(i));
  for (size_t j = 1; j < out.size(); ++j)
    if (out[j] != 1) out_axes.push_back(static_cast<int>(j));
  // Groups of consecutive input axes whose product equals that of
  // consecutive output axes; each group must be contiguous, in order, in memory.
  std::vector<std::pair<int, std::vector<int>>> groups;  // (memory position, output axes)
  size_t ii = 0, jj = 0;
  while (ii < in_axes.size() || jj < out_axes.size()) {
    if (ii >= in_axes.size() || jj >= out_axes.size()) return std::nullopt;
    const size_t first_in = ii;
    std::vector<int> group_out = {out_axes[jj]};
    int64_t product_in = in[in_axes[ii++]], product_out = out[out_axes[jj++]];
    while (product_in != product_out) {
      if (product_in < product_out) {
        if (ii >= in_axes.size()) return std::nullopt;
        product_in *= in[in_axes[ii++]];
      } else {
        if (jj >= out_axes.size()) return std::nullopt;
        group_out.push_back(out_axes[jj]);
        product_out *= out[out_axes[jj++]];
      }
    }
    for (size_t k = first_in + 1; k < ii; ++k)
      if (packed_position[in_axes[k]] != packed_position[in_axes[k - 1]] + 1) return std::nullopt;
    groups.emplace_back(packed_position[in_axes[first_in]], std::move(group_out));
  }
  std::sort(groups.begin(), groups.end());
  Perm result = {0};
  for (const auto& group : groups)
    result.insert(result.end(), group.second.begin(), group.second.end());
  // Size-1 output axes do not move memory: place each after its predecessor.
  for (size_t j = 1; j < out.size(); ++j) {
    if (out[j] != 1) continue;
    auto at = std::find(result.begin(), result.end(), static_cast<int>(j) - 1);
    result.insert(at + 1, static_cast<int>(j));
  }
  return result;
}

class LayoutAssigner {
 public:
  explicit LayoutAssigner(Graph* graph) : graph_(graph) {}

  Status Run() {
    std::vector<Node> nodes = std::move(graph_->nodes);
    graph_->nodes.clear();
    for (Node& node : nodes) {
      LOWBIT_RETURN_IF_ERROR(Assign(&node));
      graph_->nodes.push_back(std::move(node));
    }
    for (int& o : graph_->outputs)
      if (!graph_->values[o].is_constant()) o = Ensure(o, Identity(graph_->values[o].shape.size()));
    return Status::Ok();
  }

 private:
  // A value holding `id`'s data in `target` storage order, inserting a
  // lowbit.Relayout node (once per value and order) when needed.
  int Ensure(int id, const Perm& target) {
    const Value& v = graph_->values[id];
    if (StorageOf(v) == target) return id;
    auto key = std::make_pair(id, target);
    if (auto it = relayouts_.find(key); it != relayouts_.end()) return it->second;
    Value copy;
    copy.name = graph_->UniqueName(v.name + "/relayout");
    copy.dtype = v.dtype;
    copy.shape = v.shape;
    copy.shape_known = true;
    copy.precision = v.precision;
    SetStorage(&copy, target);
    int out = graph_->AddValue(std::move(copy));
    Node node;
    node.op_type = "lowbit.Relayout";
    node.name = graph_->values[out].name;
    node.inputs = {id};
    node.outputs = {out};
    graph_->nodes.push_back(std::move(node));
    relayouts_[key] = out;
    return out;
  }

  int PermutedConstant(int id, size_t rank, const Perm& target) {
    const Value& v = graph_->values[id];
    if (v.shape.size() == rank && IsIdentity(target)) return id;
    HostTensor t = PermuteConstant(*v.constant, rank, target);
    int out = graph_->AddConstant(graph_->UniqueName(v.name + "/storage"), std::move(t));
    SetStorage(&graph_->values[out], target);
    return out;
  }

  Status Assign(Node* node) {
    const std::string& op = node->op_type;
    std::vector<Value>& values = graph_->values;
    auto set_outputs = [&](const Perm& p) {
      for (int o : node->outputs) SetStorage(&values[o], p);
    };
    auto check_batched = [&](int id) -> Status {
      if (values[id].shape.empty())
        return Unimplemented(node->Describe() + ": input '" + values[id].name +
                             "' is a scalar computed at run time; lowbit needs the batch as the "
                             "first dimension of every activation");
      return Status::Ok();
    };
    for (int in : node->inputs)
      if (in != ir::kNoValue && !values[in].is_constant())
        LOWBIT_RETURN_IF_ERROR(check_batched(in));

    if ((op == "Conv" && ConvGathersPatches(*graph_, *node)) || op == "lowbit.QConv") {
      // These read their input in any storage order (their packing gathers).
      set_outputs(kNhwc);
    } else if (kSpatialOps.count(op)) {
      node->inputs[0] = Ensure(node->inputs[0], kNhwc);
      set_outputs(kNhwc);
    } else if (op == "lowbit.QAdd") {
      // Two codes tensors of one shape: the second follows the first.
      const Perm target = StorageOf(values[node->inputs[0]]);
      node->inputs[1] = Ensure(node->inputs[1], target);
      set_outputs(target);
    } else if (kSameLayoutOps.count(op)) {
      set_outputs(StorageOf(values[node->inputs[0]]));
    } else if (kBroadcastOps.count(op) || op == "Concat") {
      const size_t rank = values[node->outputs[0]].shape.size();
      int primary = -1;
      bool lower_rank_activation = false;
      for (int in : node->inputs) {
        if (in == ir::kNoValue || values[in].is_constant()) continue;
        if (values[in].shape.size() == rank && primary < 0) primary = in;
        if (values[in].shape.size() != rank) lower_rank_activation = true;
      }
      if (primary < 0) return Unimplemented(node->Describe() + ": no full-rank activation input");
      const Perm target = lower_rank_activation ? Identity(rank) : StorageOf(values[primary]);
      for (int& in : node->inputs) {
        if (in == ir::kNoValue) continue;
        if (values[in].is_constant())
          in = PermutedConstant(in, rank, target);
        else if (values[in].shape.size() == rank)
          in = Ensure(in, target);
        else
          in = Ensure(in, Identity(values[in].shape.size()));
      }
      set_outputs(target);
    } else if (op == "Transpose") {
      const std::vector<int64_t> perm = node->GetInts("perm");
      if (perm.empty() || perm[0] != 0)
        return Unimplemented(node->Describe() +
                             " moves the batch (first) dimension; lowbit "
                             "keeps the batch outermost");
      // Output logical axis i is input logical axis perm[i]. Storage q for
      // the output with the same memory as input storage s: perm[q[j]] = s[j].
      const Perm s = StorageOf(values[node->inputs[0]]);
      Perm inverse(perm.size());
      for (size_t i = 0; i < perm.size(); ++i) inverse[perm[i]] = static_cast<int>(i);
      Perm q(perm.size());
      for (size_t j = 0; j < perm.size(); ++j) q[j] = inverse[s[j]];
      set_outputs(q);
    } else if (kLogicalViewOps.count(op)) {
      const Value& input = values[node->inputs[0]];
      std::optional<Perm> view =
          ViewStorage(input.shape, StorageOf(input), values[node->outputs[0]].shape);
      if (view) {
        set_outputs(*view);
      } else {
        node->inputs[0] = Ensure(node->inputs[0], Identity(input.shape.size()));
        set_outputs({});
      }
    } else {
      for (int& in : node->inputs)
        if (in != ir::kNoValue && !values[in].is_constant())
          in = Ensure(in, Identity(values[in].shape.size()));
      set_outputs({});
    }
    return Status::Ok();
  }

  Graph* graph_;
  std::map<std::pair<int, Perm>, int> relayouts_;
};

}  // namespace

Status AssignLayouts(Graph* graph) { return LayoutAssigner(graph).Run(); }

}  // namespace lowbit::engine::passes
