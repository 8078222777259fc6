// Facts about single nodes that both the compiler (passes/) and the runtime
// (ops/) need. Kept in ir/ so the runtime does not depend on the compiler.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "ir/graph.h"
#include "lowbit/engine/status.h"

namespace lowbit::engine::ir {

// Per axis of a Slice's input: {start, step, count} after ONNX clamping.
StatusOr<std::vector<std::array<int64_t, 3>>> ResolveSlice(const Graph& graph, const Node& node,
                                                           const Shape& input_shape);

// Convolutions with few input channels (the first layer on RGB) gather
// kH x kW x C patches themselves and run as a GEMM; they read their input in
// any storage order, so AssignLayouts inserts no relayout in front of them.
bool ConvGathersPatches(const Graph& graph, const Node& node);

}  // namespace lowbit::engine::ir
