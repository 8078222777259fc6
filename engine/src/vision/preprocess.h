// Image -> one frame of a model's float input tensor.
#pragma once

#include "lowbit/engine/detector.h"
#include "lowbit/v1/model_config.pb.h"

namespace lowbit::engine::vision {

// Stretches `image` to input.width x input.height (cv::resize, INTER_LINEAR;
// skipped when the size already matches), reorders channels to
// input.color_order and writes (pixel - mean[c]) / std[c] into `dst`:
// [3][H][W] for NCHW, [H][W][3] for NHWC, 3 * H * W floats.
// Preconditions: a validated config and an image with width, height > 0.
void PreprocessImage(const v1::InputConfig& input, const ImageView& image, float* dst);

}  // namespace lowbit::engine::vision
