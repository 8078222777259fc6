// Image -> one frame of a model's float input tensor.
#pragma once

#include "lowbit/engine/detector.h"
#include "lowbit/v1/model_config.pb.h"
#include "vision/head.h"

namespace lowbit::engine::vision {

// Where `input.resize` places an image_width x image_height image in the
// model input (model pixel = image pixel * scale + offset):
//   STRETCH          scale = input size / image size per axis, offset 0.
//   LETTERBOX        r = min(W / w, H / h); the image is resized to
//                    round(w r) x round(h r) (>= 1), scale = that size / image
//                    size, offset = (W - resized w) / 2 floored (CENTER) or 0
//                    (TOP_LEFT), likewise for y.
//   SHORT_SIDE_CROP  r = S / min(w, h) with S = resize_short_side (0:
//                    max(W, H)); resized to round(w r) x round(h r); offset =
//                    -((resized - input size) / 2 floored), the centred crop.
// Preconditions: a validated config, image sides > 0.
InputTransform ComputeInputTransform(const v1::InputConfig& input, int image_width,
                                     int image_height);

// Resizes `image` as ComputeInputTransform says (cv::resize, INTER_LINEAR;
// skipped when the size already matches), fills what the image does not
// cover with pad_value, reorders channels to input.color_order and writes
// (pixel * scale - mean[c]) / std[c] into `dst`: [3][H][W] for NCHW,
// [H][W][3] for NHWC, 3 * H * W floats.
// Preconditions: a validated config and an image with width, height > 0.
void PreprocessImage(const v1::InputConfig& input, const ImageView& image, float* dst);

}  // namespace lowbit::engine::vision
