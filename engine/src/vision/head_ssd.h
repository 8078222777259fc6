// SSD head (TensorFlow object detection / MediaPipe SSD exports): anchors,
// Faster R-CNN box coder, per-class scores.
#pragma once

#include <memory>
#include <vector>

#include "vision/head.h"

namespace lowbit::engine::vision {

// Normalised to the input size, like the box encodings.
struct SsdAnchor {
  float y_center, x_center, height, width;
};

// Anchors of `parameters` for an input_width x input_height input, in output
// order (model_config.proto, SsdAnchorParameters, states the layout).
// Preconditions: validated parameters (MakeSsdHead).
std::vector<SsdAnchor> GenerateSsdAnchors(const v1::SsdAnchorParameters& parameters,
                                          int input_width, int input_height);

// The registry's factory: validates the message; with a model directory
// reads anchors_file.
StatusOr<std::unique_ptr<Head>> MakeSsdHead(const HeadContext& context);

}  // namespace lowbit::engine::vision
