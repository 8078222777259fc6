#include "vision/head_ssd.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <string>

#include "lowbit/engine/npy.h"

namespace lowbit::engine::vision {
namespace {

float LayerScale(const v1::SsdAnchorParameters& parameters, int layer) {
  if (parameters.num_layers() == 1) return 0.5f * (parameters.min_scale() + parameters.max_scale());
  return parameters.min_scale() + (parameters.max_scale() - parameters.min_scale()) *
                                      static_cast<float>(layer) /
                                      static_cast<float>(parameters.num_layers() - 1);
}

float Sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

class SsdDecoder final : public Head {
 public:
  SsdDecoder(v1::SsdHead head, std::vector<SsdAnchor> anchors)
      : head_(std::move(head)), anchors_(std::move(anchors)) {
    y_scale_ = head_.y_scale() > 0 ? head_.y_scale() : 10.0f;
    x_scale_ = head_.x_scale() > 0 ? head_.x_scale() : 10.0f;
    h_scale_ = head_.h_scale() > 0 ? head_.h_scale() : 5.0f;
    w_scale_ = head_.w_scale() > 0 ? head_.w_scale() : 5.0f;
    activation_ = head_.score_activation() == v1::SCORE_ACTIVATION_UNSPECIFIED
                      ? v1::SIGMOID
                      : head_.score_activation();
  }

  Status CheckAgainstModel(const v1::InputConfig& input, const std::vector<ValueInfo>& outputs,
                           std::vector<std::string>* labels) const override {
    const ValueInfo* scores = FindValueInfo(outputs, head_.score_output());
    if (scores == nullptr || scores->shape.size() != 3) {
      return InvalidArgument("ssd score output '" + head_.score_output() +
                             "' is not a rank-3 output [1, anchors, classes] of the model "
                             "(outputs: " +
                             OutputNames(outputs) + ")");
    }
    const int64_t count = scores->shape[1];
    const int64_t num_classes = scores->shape[2];
    if (!head_.anchors_output().empty()) {
      const ValueInfo* anchors = FindValueInfo(outputs, head_.anchors_output());
      const bool ok = anchors != nullptr &&
                      (anchors->shape == Shape{1, count, 4} || anchors->shape == Shape{count, 4});
      if (!ok) {
        return InvalidArgument("ssd anchors_output '" + head_.anchors_output() +
                               "' must be an output of shape [1," + std::to_string(count) +
                               ",4] (outputs: " + OutputNames(outputs) + ")");
      }
    } else if (!anchors_.empty() && static_cast<int64_t>(anchors_.size()) != count) {
      return InvalidArgument("ssd: the anchors number " + std::to_string(anchors_.size()) +
                             " but score output '" + head_.score_output() + "' has " +
                             std::to_string(count) + " (check ssd.anchors against the model)");
    }
    LOWBIT_RETURN_IF_ERROR(CheckOutputShape(outputs, head_.box_output(), {1, count, 4}, "ssd box"));
    (void)input;
    return CheckLabelCount(*labels, num_classes);
  }

  StatusOr<std::vector<Detection>> Decode(const std::vector<NamedTensor>& outputs, int frame,
                                          const HeadGeometry& geometry,
                                          float score_threshold) const override {
    const Tensor* score_tensor = FindOutput(outputs, head_.score_output());
    if (score_tensor == nullptr || score_tensor->shape().size() != 3) {
      return InvalidArgument("missing or malformed ssd score output '" + head_.score_output() +
                             "'");
    }
    const int64_t count = score_tensor->shape()[1];
    const int64_t num_classes = score_tensor->shape()[2];
    LOWBIT_ASSIGN_OR_RETURN(const float* scores, OutputFrame(outputs, head_.score_output(), frame,
                                                             {count, num_classes}));
    LOWBIT_ASSIGN_OR_RETURN(const float* boxes,
                            OutputFrame(outputs, head_.box_output(), frame, {count, 4}));
    const SsdAnchor* anchors = anchors_.data();
    if (!head_.anchors_output().empty()) {
      const Tensor* anchor_tensor = FindOutput(outputs, head_.anchors_output());
      if (anchor_tensor == nullptr || anchor_tensor->size() < count * 4) {
        return InvalidArgument("missing or malformed ssd anchors output '" +
                               head_.anchors_output() + "'");
      }
      // [1, A, 4] or [A, 4]: the same for every frame.
      anchors = reinterpret_cast<const SsdAnchor*>(anchor_tensor->data());
    } else if (static_cast<int64_t>(anchors_.size()) != count) {
      return InvalidArgument("ssd: " + std::to_string(anchors_.size()) + " anchors, " +
                             std::to_string(count) + " predictions");
    }
    const int first_class = head_.background_class() ? 1 : 0;
    const float input_width = static_cast<float>(geometry.input_width);
    const float input_height = static_cast<float>(geometry.input_height);
    std::vector<Detection> detections;
    std::vector<float> probabilities(static_cast<size_t>(num_classes));
    for (int64_t i = 0; i < count; ++i) {
      const float* raw = scores + i * num_classes;
      // Sigmoid and identity are monotonic: the best raw score is the best
      // class, and only it is activated. Softmax needs every class.
      const float* ranked = raw;
      if (activation_ == v1::SOFTMAX) {
        SoftmaxScores(raw, num_classes, probabilities.data());
        ranked = probabilities.data();
      }
      int best_class = -1;
      float best_score = -std::numeric_limits<float>::infinity();
      for (int64_t c = first_class; c < num_classes; ++c) {
        if (ranked[c] > best_score) {
          best_score = ranked[c];
          best_class = static_cast<int>(c);
        }
      }
      if (best_class < 0) continue;
      if (activation_ == v1::SIGMOID) best_score = Sigmoid(best_score);
      if (!(best_score >= score_threshold)) continue;
      const float* t = boxes + i * 4;  // ty, tx, th, tw
      const SsdAnchor& anchor = anchors[i];
      const float y_center = t[0] / y_scale_ * anchor.height + anchor.y_center;
      const float x_center = t[1] / x_scale_ * anchor.width + anchor.x_center;
      const float half_height = 0.5f * std::exp(t[2] / h_scale_) * anchor.height;
      const float half_width = 0.5f * std::exp(t[3] / w_scale_) * anchor.width;
      Detection detection;
      detection.box = geometry.ToImage(
          (x_center - half_width) * input_width, (y_center - half_height) * input_height,
          (x_center + half_width) * input_width, (y_center + half_height) * input_height);
      detection.class_id = best_class;
      detection.score = best_score;
      detections.push_back(std::move(detection));
    }
    return detections;
  }

 private:
  // Softmax over the classes of one anchor.
  static void SoftmaxScores(const float* raw, int64_t num_classes, float* out) {
    float max_score = raw[0];
    for (int64_t c = 1; c < num_classes; ++c) max_score = std::max(max_score, raw[c]);
    float sum = 0;
    for (int64_t c = 0; c < num_classes; ++c) sum += out[c] = std::exp(raw[c] - max_score);
    for (int64_t c = 0; c < num_classes; ++c) out[c] /= sum;
  }

  v1::SsdHead head_;
  std::vector<SsdAnchor> anchors_;  // empty with anchors_output
  float y_scale_, x_scale_, h_scale_, w_scale_;
  v1::ScoreActivation activation_;
};

Status ValidateAnchorParameters(const v1::SsdAnchorParameters& parameters, int input_width,
                                int input_height) {
  if (parameters.num_layers() < 1 || parameters.num_layers() > 16) {
    return InvalidArgument("ssd.anchors.num_layers must be in [1, 16], got " +
                           std::to_string(parameters.num_layers()));
  }
  if (parameters.strides_size() != parameters.num_layers()) {
    return InvalidArgument("ssd.anchors.strides needs one stride per layer: " +
                           std::to_string(parameters.num_layers()) + " layers, " +
                           std::to_string(parameters.strides_size()) + " strides");
  }
  for (int stride : parameters.strides()) {
    if (stride <= 0) return InvalidArgument("ssd.anchors.strides must be positive");
  }
  if (!(parameters.min_scale() > 0) || !(parameters.max_scale() >= parameters.min_scale()) ||
      !std::isfinite(parameters.max_scale())) {
    return InvalidArgument("ssd.anchors needs 0 < min_scale <= max_scale, got " +
                           std::to_string(parameters.min_scale()) + ", " +
                           std::to_string(parameters.max_scale()));
  }
  if (parameters.aspect_ratios().empty()) {
    return InvalidArgument("ssd.anchors.aspect_ratios is empty (e.g. [1, 2, 0.5, 3, 0.3333])");
  }
  for (float ratio : parameters.aspect_ratios()) {
    if (!(ratio > 0) || !std::isfinite(ratio))
      return InvalidArgument("ssd.anchors.aspect_ratios must be positive");
  }
  // Anchors in int64 before any is made: a stride of 1 on an 8192x8192
  // input with many ratios would be billions.
  constexpr int64_t kMaxAnchors = int64_t{1} << 22;
  const int64_t per_cell = parameters.aspect_ratios_size() + 1;
  int64_t count = 0;
  for (int stride : parameters.strides()) {
    count += ((int64_t{input_height} + stride - 1) / stride) *
             ((int64_t{input_width} + stride - 1) / stride) * per_cell;
  }
  if (count > kMaxAnchors) {
    return InvalidArgument("ssd.anchors would make over " + std::to_string(kMaxAnchors) +
                           " anchors (" + std::to_string(count) + "); check strides");
  }
  if (!(parameters.interpolated_scale_aspect_ratio() >= 0) ||
      !std::isfinite(parameters.interpolated_scale_aspect_ratio())) {
    return InvalidArgument("ssd.anchors.interpolated_scale_aspect_ratio must be >= 0 (0: none)");
  }
  return Status::Ok();
}

}  // namespace

std::vector<SsdAnchor> GenerateSsdAnchors(const v1::SsdAnchorParameters& parameters,
                                          int input_width, int input_height) {
  const float offset_x = parameters.has_anchor_offset_x() ? parameters.anchor_offset_x() : 0.5f;
  const float offset_y = parameters.has_anchor_offset_y() ? parameters.anchor_offset_y() : 0.5f;
  std::vector<SsdAnchor> anchors;
  const int num_layers = parameters.num_layers();
  int layer = 0;
  while (layer < num_layers) {
    // Consecutive layers of one stride share a feature map: their anchors
    // are interleaved per cell.
    std::vector<float> scales, ratios;
    int last = layer;
    for (; last < num_layers && parameters.strides(last) == parameters.strides(layer); ++last) {
      const float scale = LayerScale(parameters, last);
      if (last == 0 && parameters.reduce_boxes_in_lowest_layer()) {
        ratios.insert(ratios.end(), {1.0f, 2.0f, 0.5f});
        scales.insert(scales.end(), {0.1f, scale, scale});
        continue;
      }
      for (float ratio : parameters.aspect_ratios()) {
        ratios.push_back(ratio);
        scales.push_back(scale);
      }
      if (parameters.interpolated_scale_aspect_ratio() > 0) {
        const float next = last == num_layers - 1 ? 1.0f : LayerScale(parameters, last + 1);
        scales.push_back(std::sqrt(scale * next));
        ratios.push_back(parameters.interpolated_scale_aspect_ratio());
      }
    }
    const int stride = parameters.strides(layer);
    const int64_t rows = (int64_t{input_height} + stride - 1) / stride;
    const int64_t cols = (int64_t{input_width} + stride - 1) / stride;
    for (int64_t row = 0; row < rows; ++row) {
      for (int64_t col = 0; col < cols; ++col) {
        for (size_t k = 0; k < scales.size(); ++k) {
          SsdAnchor anchor;
          anchor.y_center = (static_cast<float>(row) + offset_y) / static_cast<float>(rows);
          anchor.x_center = (static_cast<float>(col) + offset_x) / static_cast<float>(cols);
          if (parameters.fixed_anchor_size()) {
            anchor.height = anchor.width = 1.0f;
          } else {
            const float ratio_root = std::sqrt(ratios[k]);
            anchor.height = scales[k] / ratio_root;
            anchor.width = scales[k] * ratio_root;
          }
          anchors.push_back(anchor);
        }
      }
    }
    layer = last;
  }
  return anchors;
}

StatusOr<std::unique_ptr<Head>> MakeSsdHead(const HeadContext& context) {
  const auto& head = static_cast<const v1::SsdHead&>(context.params);
  if (head.box_output().empty() || head.score_output().empty()) {
    return InvalidArgument("ssd.box_output and ssd.score_output must name the model's outputs");
  }
  for (float scale : {head.y_scale(), head.x_scale(), head.h_scale(), head.w_scale()}) {
    if (!(scale >= 0) || !std::isfinite(scale)) {
      return InvalidArgument(
          "ssd.y_scale, x_scale, h_scale, w_scale must be >= 0 (0: 10, 10, 5, 5)");
    }
  }
  if (!v1::ScoreActivation_IsValid(head.score_activation())) {
    return InvalidArgument("ssd.score_activation is not a ScoreActivation");
  }
  const int sources = int{head.has_anchors()} + int{!head.anchors_file().empty()} +
                      int{!head.anchors_output().empty()};
  if (sources != 1) {
    return InvalidArgument(
        "ssd needs exactly one anchor source: anchors { ... }, anchors_file or anchors_output; "
        "got " +
        std::to_string(sources));
  }
  std::vector<SsdAnchor> anchors;
  if (head.has_anchors()) {
    const v1::InputConfig& input = context.config.input();
    LOWBIT_RETURN_IF_ERROR(ValidateAnchorParameters(head.anchors(), input.width(), input.height()));
    anchors = GenerateSsdAnchors(head.anchors(), input.width(), input.height());
  } else if (!head.anchors_file().empty() && !context.model_dir.empty()) {
    const std::string path =
        (std::filesystem::path(context.model_dir) / head.anchors_file()).string();
    StatusOr<Tensor> tensor = ReadNpy(path);
    if (!tensor.ok()) return tensor.status().WithContext("ssd.anchors_file");
    const Shape& shape = tensor->shape();
    if (shape.size() != 2 || shape[1] != 4) {
      return InvalidArgument("ssd.anchors_file " + path + " has shape " + ShapeToString(shape) +
                             "; expected [anchors, 4] (y_center, x_center, h, w)");
    }
    for (int64_t i = 0; i < shape[0]; ++i) {
      const float* row = tensor->data() + i * 4;
      anchors.push_back({row[0], row[1], row[2], row[3]});
    }
  }
  return std::unique_ptr<Head>(std::make_unique<SsdDecoder>(head, std::move(anchors)));
}

}  // namespace lowbit::engine::vision
