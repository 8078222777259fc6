#include "vision/heads.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

namespace lowbit::engine::vision {
namespace {

// The output named `name`, or nullptr.
const Tensor* FindOutput(const std::vector<NamedTensor>& outputs, const std::string& name) {
  for (const NamedTensor& output : outputs) {
    if (output.name == name) return &output.tensor;
  }
  return nullptr;
}

// Finds output `name` and returns frame `frame` of it, checking that it is
// [N > frame, dim1, dim2].
StatusOr<const float*> FrameOf(const std::vector<NamedTensor>& outputs, const std::string& name,
                               int frame, int64_t dim1, int64_t dim2) {
  const Tensor* tensor = FindOutput(outputs, name);
  if (tensor == nullptr) return InvalidArgument("missing head output '" + name + "'");
  const Shape& shape = tensor->shape();
  if (shape.size() != 3 || shape[1] != dim1 || shape[2] != dim2 || frame < 0 ||
      frame >= shape[0] || tensor->size() != NumElements(shape)) {
    return InvalidArgument("output '" + name + "' has shape " + ShapeToString(shape) +
                           "; expected [N," + std::to_string(dim1) + "," + std::to_string(dim2) +
                           "] with N > " + std::to_string(frame));
  }
  return tensor->data() + frame * dim1 * dim2;
}

int64_t GridSide(int size, int stride) { return (size + stride - 1) / stride; }

Box ScaleAndClip(float x_min, float y_min, float x_max, float y_max, float scale_x, float scale_y,
                 const HeadGeometry& geometry) {
  const float width = static_cast<float>(geometry.image_width);
  const float height = static_cast<float>(geometry.image_height);
  return {std::clamp(x_min * scale_x, 0.0f, width), std::clamp(y_min * scale_y, 0.0f, height),
          std::clamp(x_max * scale_x, 0.0f, width), std::clamp(y_max * scale_y, 0.0f, height)};
}

// Expected bin index under softmax(logits[0..bins)).
float DistributionExpectation(const float* logits, int bins) {
  const float max_logit = *std::max_element(logits, logits + bins);
  float weight_sum = 0;
  float weighted_index_sum = 0;
  for (int k = 0; k < bins; ++k) {
    const float weight = std::exp(logits[k] - max_logit);
    weight_sum += weight;
    weighted_index_sum += weight * static_cast<float>(k);
  }
  return weighted_index_sum / weight_sum;
}

}  // namespace

StatusOr<std::vector<Detection>> DecodeNanoDet(const v1::NanoDetHead& head,
                                               const std::vector<NamedTensor>& outputs, int frame,
                                               const HeadGeometry& geometry,
                                               float score_threshold) {
  std::vector<Detection> detections;
  const int bins = head.reg_max() + 1;
  const float scale_x = static_cast<float>(geometry.image_width) / geometry.input_width;
  const float scale_y = static_cast<float>(geometry.image_height) / geometry.input_height;
  for (int level = 0; level < head.strides_size(); ++level) {
    const int stride = head.strides(level);
    const int64_t rows = GridSide(geometry.input_height, stride);
    const int64_t cols = GridSide(geometry.input_width, stride);
    const int64_t cells = rows * cols;
    // The class count is whatever the score tensor carries.
    const Tensor* score_tensor = FindOutput(outputs, head.score_outputs(level));
    const int64_t num_classes =
        score_tensor != nullptr && score_tensor->shape().size() == 3 ? score_tensor->shape()[2] : 0;
    if (num_classes <= 0) {
      return InvalidArgument("missing or malformed nanodet score output '" +
                             head.score_outputs(level) + "'");
    }
    LOWBIT_ASSIGN_OR_RETURN(const float* scores,
                            FrameOf(outputs, head.score_outputs(level), frame, cells, num_classes));
    LOWBIT_ASSIGN_OR_RETURN(const float* boxes,
                            FrameOf(outputs, head.box_outputs(level), frame, cells, 4 * bins));
    for (int64_t cell = 0; cell < cells; ++cell) {
      const float* cell_scores = scores + cell * num_classes;
      const float* best = std::max_element(cell_scores, cell_scores + num_classes);
      if (!(*best >= score_threshold)) continue;
      const float* sides = boxes + cell * 4 * bins;
      const float left = DistributionExpectation(sides + 0 * bins, bins) * stride;
      const float top = DistributionExpectation(sides + 1 * bins, bins) * stride;
      const float right = DistributionExpectation(sides + 2 * bins, bins) * stride;
      const float bottom = DistributionExpectation(sides + 3 * bins, bins) * stride;
      const float center_x = (static_cast<float>(cell % cols) + 0.5f) * stride;
      const float center_y = (static_cast<float>(cell / cols) + 0.5f) * stride;
      Detection detection;
      detection.box = ScaleAndClip(center_x - left, center_y - top, center_x + right,
                                   center_y + bottom, scale_x, scale_y, geometry);
      detection.class_id = static_cast<int>(best - cell_scores);
      detection.score = *best;
      detections.push_back(std::move(detection));
    }
  }
  return detections;
}

std::vector<Anchor> BlazeFaceAnchors(const v1::BlazeFaceHead& head, int input_width,
                                     int input_height) {
  std::vector<Anchor> anchors;
  for (int level = 0; level < head.strides_size(); ++level) {
    const int64_t rows = GridSide(input_height, head.strides(level));
    const int64_t cols = GridSide(input_width, head.strides(level));
    for (int64_t row = 0; row < rows; ++row) {
      for (int64_t col = 0; col < cols; ++col) {
        const Anchor anchor{(static_cast<float>(col) + 0.5f) / static_cast<float>(cols),
                            (static_cast<float>(row) + 0.5f) / static_cast<float>(rows)};
        anchors.insert(anchors.end(), head.anchors_per_cell(level), anchor);
      }
    }
  }
  return anchors;
}

StatusOr<std::vector<Detection>> DecodeBlazeFace(const v1::BlazeFaceHead& head,
                                                 const std::vector<NamedTensor>& outputs, int frame,
                                                 const HeadGeometry& geometry,
                                                 float score_threshold) {
  // sigmoid(logit) >= t  <=>  logit >= log(t / (1 - t)), so cells are
  // rejected without an exp.
  const float logit_threshold = score_threshold <= 0 ? -std::numeric_limits<float>::infinity()
                                : score_threshold >= 1
                                    ? std::numeric_limits<float>::infinity()
                                    : std::log(score_threshold / (1 - score_threshold));
  const std::vector<Anchor> anchors =
      BlazeFaceAnchors(head, geometry.input_width, geometry.input_height);
  const float inverse_box_scale = 1.0f / head.box_scale();
  std::vector<Detection> detections;
  size_t anchor_index = 0;
  for (int level = 0; level < head.strides_size(); ++level) {
    const int64_t count = GridSide(geometry.input_height, head.strides(level)) *
                          GridSide(geometry.input_width, head.strides(level)) *
                          head.anchors_per_cell(level);
    int64_t box_values = 0;
    for (const NamedTensor& output : outputs) {
      if (output.name == head.box_outputs(level) && output.tensor.shape().size() == 3) {
        box_values = output.tensor.shape()[2];
      }
    }
    if (box_values < 4) {
      return InvalidArgument("missing or malformed blazeface box output '" +
                             head.box_outputs(level) + "' (needs [N," + std::to_string(count) +
                             ",K>=4])");
    }
    LOWBIT_ASSIGN_OR_RETURN(const float* logits,
                            FrameOf(outputs, head.score_outputs(level), frame, count, 1));
    LOWBIT_ASSIGN_OR_RETURN(const float* regressors,
                            FrameOf(outputs, head.box_outputs(level), frame, count, box_values));
    for (int64_t i = 0; i < count; ++i, ++anchor_index) {
      if (!(logits[i] >= logit_threshold)) continue;
      const float* r = regressors + i * box_values;
      const Anchor& anchor = anchors[anchor_index];
      const float center_x = anchor.x_center + r[0] * inverse_box_scale;
      const float center_y = anchor.y_center + r[1] * inverse_box_scale;
      const float half_width = 0.5f * r[2] * inverse_box_scale;
      const float half_height = 0.5f * r[3] * inverse_box_scale;
      Detection detection;
      detection.box =
          ScaleAndClip(center_x - half_width, center_y - half_height, center_x + half_width,
                       center_y + half_height, static_cast<float>(geometry.image_width),
                       static_cast<float>(geometry.image_height), geometry);
      detection.class_id = 0;
      detection.score = 1.0f / (1.0f + std::exp(-logits[i]));
      detections.push_back(std::move(detection));
    }
  }
  return detections;
}

}  // namespace lowbit::engine::vision
