#include "vision/heads.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

namespace lowbit::engine::vision {
namespace {

// Finds output `name` and returns frame `frame` of it, checking that it is
// [N > frame, dim1, dim2].
StatusOr<const float*> FrameOf(const std::vector<NamedTensor>& outputs, const std::string& name,
                               int frame, int64_t dim1, int64_t dim2) {
  const Tensor* tensor = FindOutput(outputs, name);
  if (tensor == nullptr) return InvalidArgument("missing head output '" + name + "'");
  const Shape& shape = tensor->shape();
  if (shape.size() != 3 || shape[1] != dim1 || shape[2] != dim2 || frame < 0 || frame >= shape[0] ||
      tensor->size() != NumElements(shape)) {
    return InvalidArgument("output '" + name + "' has shape " + ShapeToString(shape) +
                           "; expected [N," + std::to_string(dim1) + "," + std::to_string(dim2) +
                           "] with N > " + std::to_string(frame));
  }
  return tensor->data() + frame * dim1 * dim2;
}

// In int64: size + stride - 1 overflowed int for a config near INT_MAX (UBSan, fuzz_model_config).
int64_t GridSide(int size, int stride) { return (int64_t{size} + stride - 1) / stride; }

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
      detection.box =
          geometry.ToImage(center_x - left, center_y - top, center_x + right, center_y + bottom);
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
      const float input_width = static_cast<float>(geometry.input_width);
      const float input_height = static_cast<float>(geometry.input_height);
      detection.box = geometry.ToImage(
          (center_x - half_width) * input_width, (center_y - half_height) * input_height,
          (center_x + half_width) * input_width, (center_y + half_height) * input_height);
      detection.class_id = 0;
      detection.score = 1.0f / (1.0f + std::exp(-logits[i]));
      detections.push_back(std::move(detection));
    }
  }
  return detections;
}

namespace {

Status CheckStrides(const google::protobuf::RepeatedField<int32_t>& strides, int score_outputs,
                    int box_outputs, const char* head) {
  const std::string prefix = std::string(head) + ".";
  if (strides.empty())
    return InvalidArgument(prefix + "strides is empty; give one per output level");
  for (int stride : strides) {
    if (stride <= 0)
      return InvalidArgument(prefix + "strides must be positive, got " + std::to_string(stride));
  }
  if (score_outputs != strides.size() || box_outputs != strides.size()) {
    return InvalidArgument(
        prefix + "needs one score_outputs and one box_outputs name per stride: " +
        std::to_string(strides.size()) + " strides, " + std::to_string(score_outputs) +
        " score_outputs, " + std::to_string(box_outputs) + " box_outputs");
  }
  return Status::Ok();
}

int64_t Cells(const v1::InputConfig& input, int stride) {
  return GridSide(input.height(), stride) * GridSide(input.width(), stride);
}

class NanoDetDecoder final : public Head {
 public:
  explicit NanoDetDecoder(v1::NanoDetHead head) : head_(std::move(head)) {}

  Status CheckAgainstModel(const v1::InputConfig& input, const std::vector<ValueInfo>& outputs,
                           std::vector<std::string>* labels) const override {
    const ValueInfo* first_scores = FindValueInfo(outputs, head_.score_outputs(0));
    if (first_scores == nullptr || first_scores->shape.size() != 3) {
      return InvalidArgument(
          "nanodet score output '" + head_.score_outputs(0) +
          "' is not a rank-3 output of the model (outputs: " + OutputNames(outputs) + ")");
    }
    const int64_t num_classes = first_scores->shape[2];
    const int64_t box_values = 4 * (int64_t{head_.reg_max()} + 1);
    for (int level = 0; level < head_.strides_size(); ++level) {
      const int64_t cells = Cells(input, head_.strides(level));
      const std::string what = "nanodet stride " + std::to_string(head_.strides(level));
      LOWBIT_RETURN_IF_ERROR(CheckOutputShape(outputs, head_.score_outputs(level),
                                              {1, cells, num_classes}, what + " score"));
      LOWBIT_RETURN_IF_ERROR(CheckOutputShape(outputs, head_.box_outputs(level),
                                              {1, cells, box_values}, what + " box"));
    }
    return CheckLabelCount(*labels, num_classes);
  }

  StatusOr<std::vector<Detection>> Decode(const std::vector<NamedTensor>& outputs, int frame,
                                          const HeadGeometry& geometry,
                                          float score_threshold) const override {
    return DecodeNanoDet(head_, outputs, frame, geometry, score_threshold);
  }

 private:
  v1::NanoDetHead head_;
};

class BlazeFaceDecoder final : public Head {
 public:
  explicit BlazeFaceDecoder(v1::BlazeFaceHead head) : head_(std::move(head)) {}

  Status CheckAgainstModel(const v1::InputConfig& input, const std::vector<ValueInfo>& outputs,
                           std::vector<std::string>* labels) const override {
    for (int level = 0; level < head_.strides_size(); ++level) {
      const int64_t anchors = Cells(input, head_.strides(level)) * head_.anchors_per_cell(level);
      const std::string what = "blazeface stride " + std::to_string(head_.strides(level));
      LOWBIT_RETURN_IF_ERROR(
          CheckOutputShape(outputs, head_.score_outputs(level), {1, anchors, 1}, what + " score"));
      const ValueInfo* boxes = FindValueInfo(outputs, head_.box_outputs(level));
      const int64_t box_values = boxes && boxes->shape.size() == 3 ? boxes->shape[2] : 0;
      if (box_values < 4) {
        return InvalidArgument(what + " box output '" + head_.box_outputs(level) +
                               "' must be an output of shape [1," + std::to_string(anchors) +
                               ",K] with K >= 4 (outputs: " + OutputNames(outputs) + ")");
      }
      LOWBIT_RETURN_IF_ERROR(CheckOutputShape(outputs, head_.box_outputs(level),
                                              {1, anchors, box_values}, what + " box"));
    }
    if (labels->empty()) labels->push_back("face");
    if (labels->size() != 1) {
      return InvalidArgument("a BlazeFace model has one class but " +
                             std::to_string(labels->size()) + " labels are configured");
    }
    return Status::Ok();
  }

  StatusOr<std::vector<Detection>> Decode(const std::vector<NamedTensor>& outputs, int frame,
                                          const HeadGeometry& geometry,
                                          float score_threshold) const override {
    return DecodeBlazeFace(head_, outputs, frame, geometry, score_threshold);
  }

 private:
  v1::BlazeFaceHead head_;
};

}  // namespace

StatusOr<std::unique_ptr<Head>> MakeNanoDetHead(const HeadContext& context) {
  const auto& head = static_cast<const v1::NanoDetHead&>(context.params);
  LOWBIT_RETURN_IF_ERROR(
      CheckStrides(head.strides(), head.score_outputs_size(), head.box_outputs_size(), "nanodet"));
  if (head.reg_max() < 1 || head.reg_max() > 64) {
    return InvalidArgument("nanodet.reg_max must be in [1, 64] (bins per side - 1), got " +
                           std::to_string(head.reg_max()));
  }
  return std::unique_ptr<Head>(std::make_unique<NanoDetDecoder>(head));
}

StatusOr<std::unique_ptr<Head>> MakeBlazeFaceHead(const HeadContext& context) {
  const auto& head = static_cast<const v1::BlazeFaceHead&>(context.params);
  LOWBIT_RETURN_IF_ERROR(CheckStrides(head.strides(), head.score_outputs_size(),
                                      head.box_outputs_size(), "blazeface"));
  if (head.anchors_per_cell_size() != head.strides_size()) {
    return InvalidArgument("blazeface.anchors_per_cell needs one value per stride: " +
                           std::to_string(head.strides_size()) + " strides, " +
                           std::to_string(head.anchors_per_cell_size()) + " values");
  }
  for (int anchors : head.anchors_per_cell()) {
    if (anchors <= 0) return InvalidArgument("blazeface.anchors_per_cell must be positive");
  }
  if (!(head.box_scale() > 0) || !std::isfinite(head.box_scale())) {
    return InvalidArgument(
        "blazeface.box_scale must be positive (the regressors' pixel "
        "scale, usually the input size), got " +
        std::to_string(head.box_scale()));
  }
  return std::unique_ptr<Head>(std::make_unique<BlazeFaceDecoder>(head));
}

}  // namespace lowbit::engine::vision
