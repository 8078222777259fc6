#include "ir/node_semantics.h"

#include <algorithm>
#include <climits>

namespace lowbit::engine::ir {

StatusOr<std::vector<std::array<int64_t, 3>>> ResolveSlice(const Graph& graph, const Node& node,
                                                           const Shape& input_shape) {
  std::vector<int64_t> starts, ends, axes, steps;
  if (graph.opset < 10) {
    starts = node.GetInts("starts");
    ends = node.GetInts("ends");
    axes = node.GetInts("axes");
  } else {
    LOWBIT_ASSIGN_OR_RETURN(starts, ConstantInts(graph, node, 1));
    LOWBIT_ASSIGN_OR_RETURN(ends, ConstantInts(graph, node, 2));
    if (HasInput(node, 3)) {
      LOWBIT_ASSIGN_OR_RETURN(axes, ConstantInts(graph, node, 3));
    }
    if (HasInput(node, 4)) {
      LOWBIT_ASSIGN_OR_RETURN(steps, ConstantInts(graph, node, 4));
    }
  }
  if (axes.empty())
    for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
  if (steps.empty()) steps.assign(starts.size(), 1);
  if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size())
    return InvalidArgument(node.Describe() + ": " + "starts/ends/axes/steps have different lengths");
  // Per axis: start, step, count.
  std::vector<std::array<int64_t, 3>> ranges(input_shape.size());
  for (size_t d = 0; d < input_shape.size(); ++d) ranges[d] = {0, 1, input_shape[d]};
  for (size_t i = 0; i < starts.size(); ++i) {
    LOWBIT_ASSIGN_OR_RETURN(int axis, NormalizeAxis(axes[i], input_shape.size(), node));
    const int64_t dim = input_shape[axis], step = steps[i];
    if (step == 0) return InvalidArgument(node.Describe() + ": " + "slice step 0");
    int64_t start = starts[i], end = ends[i];
    if (start < 0) start += dim;
    if (end < 0 && end > INT64_MIN / 2) end += dim;
    int64_t count;
    if (step > 0) {
      start = std::clamp<int64_t>(start, 0, dim);
      end = std::clamp<int64_t>(end, 0, dim);
      count = end > start ? (end - start + step - 1) / step : 0;
    } else {
      start = std::clamp<int64_t>(start, 0, dim - 1);
      end = std::clamp<int64_t>(end, -1, dim - 1);
      count = start > end ? (start - end - step - 1) / -step : 0;
    }
    ranges[axis] = {start, step, count};
  }
  return ranges;
}

bool ConvGathersPatches(const Graph& graph, const Node& node) {
  if (node.op_type != "Conv" || !HasInput(node, 1)) return false;
  const Shape& w = graph.values[node.inputs[1]].shape;  // [M, C/group, kH, kW]
  const int64_t window = w.size() == 4 ? w[2] * w[3] : 0;
  return node.GetInt("group", 1) == 1 && w.size() == 4 && w[1] <= 4 && window > 1 &&
         w[1] * window <= 64;
}

}  // namespace lowbit::engine::ir
