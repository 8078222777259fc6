// The NanoDet and BlazeFace heads: raw output tensors of one frame ->
// candidate detections (before NMS) in original image pixels.
#pragma once

#include <vector>

#include "lowbit/engine/detector.h"
#include "lowbit/engine/status.h"
#include "lowbit/engine/tensor.h"
#include "lowbit/v1/model_config.pb.h"
#include "vision/head.h"

namespace lowbit::engine::vision {

// Registry factories (head_registry.cc): validate the head's message.
StatusOr<std::unique_ptr<Head>> MakeNanoDetHead(const HeadContext& context);
StatusOr<std::unique_ptr<Head>> MakeBlazeFaceHead(const HeadContext& context);

// NanoDet GFL head. Per stride s: scores [N, cells, classes] (sigmoid-ed) and
// boxes [N, cells, 4 * (reg_max + 1)] (per side l, t, r, b: logits over bins
// 0..reg_max). Cells are row-major over a ceil(H/s) x ceil(W/s) grid. A cell
// scoring below `score_threshold` is skipped before its box is decoded;
// otherwise side distance = stride * sum_k k * softmax(bins)_k around the
// centre ((col + 0.5) * s, (row + 0.5) * s), scaled to the image and clipped
// to it. Label strings are left empty.
StatusOr<std::vector<Detection>> DecodeNanoDet(const v1::NanoDetHead& head,
                                               const std::vector<NamedTensor>& outputs, int frame,
                                               const HeadGeometry& geometry, float score_threshold);

struct Anchor {
  float x_center;  // normalised to [0, 1] of the input width
  float y_center;  // normalised to [0, 1] of the input height
};

// SSD-style anchors in output order: for each stride, rows, then columns,
// then anchors_per_cell copies of ((col + 0.5) / cols, (row + 0.5) / rows)
// with cols = ceil(W / s), rows = ceil(H / s).
std::vector<Anchor> BlazeFaceAnchors(const v1::BlazeFaceHead& head, int input_width,
                                     int input_height);

// BlazeFace head. Per stride: score logits [N, anchors, 1] and regressors
// [N, anchors, K >= 4] (dx, dy, w, h in pixels of box_scale, then keypoints).
// Box centre = anchor + (dx, dy) / box_scale, size = (w, h) / box_scale,
// normalised, then scaled to the image and clipped to it; score = sigmoid.
StatusOr<std::vector<Detection>> DecodeBlazeFace(const v1::BlazeFaceHead& head,
                                                 const std::vector<NamedTensor>& outputs, int frame,
                                                 const HeadGeometry& geometry,
                                                 float score_threshold);

}  // namespace lowbit::engine::vision
