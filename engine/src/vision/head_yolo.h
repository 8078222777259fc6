// YOLO head: one output, anchor-free v8-style [N, 4 + C, A] or objectness
// v5/YOLOX-style [N, A, 5 + C]; boxes decoded already or on a grid.
#pragma once

#include <memory>

#include "vision/head.h"

namespace lowbit::engine::vision {

// Predictions the grid of `head` implies for the input: sum over strides of
// ceil(H / s) * ceil(W / s) * anchors per cell (1 when anchor-free).
int64_t YoloGridPredictions(const v1::YoloHead& head, const v1::InputConfig& input);

// The registry's factory: validates the message.
StatusOr<std::unique_ptr<Head>> MakeYoloHead(const HeadContext& context);

}  // namespace lowbit::engine::vision
