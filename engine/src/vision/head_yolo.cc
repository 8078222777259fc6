#include "vision/head_yolo.h"

#include <cmath>
#include <string>

namespace lowbit::engine::vision {
namespace {

float Sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

int64_t GridSide(int size, int stride) { return (int64_t{size} + stride - 1) / stride; }

int AnchorsPerCell(const v1::YoloHead& head) {
  return head.grid() == v1::YoloHead::ANCHORED ? head.anchors_per_cell() : 1;
}

// Where prediction i sits: grid cell (col, row), stride, anchor index.
struct GridPosition {
  float col, row, stride;
  int anchor;  // index into the stride's anchors
};

class YoloDecoder final : public Head {
 public:
  explicit YoloDecoder(v1::YoloHead head, const v1::InputConfig& input) : head_(std::move(head)) {
    sigmoid_ = head_.score_activation() == v1::SIGMOID;
    if (head_.grid() == v1::YoloHead::DECODED) return;
    // Prediction order: strides, rows, columns, anchors of the cell.
    const int per_cell = AnchorsPerCell(head_);
    for (int level = 0; level < head_.strides_size(); ++level) {
      const int stride = head_.strides(level);
      const int64_t rows = GridSide(input.height(), stride);
      const int64_t cols = GridSide(input.width(), stride);
      for (int64_t row = 0; row < rows; ++row) {
        for (int64_t col = 0; col < cols; ++col) {
          for (int k = 0; k < per_cell; ++k) {
            positions_.push_back({static_cast<float>(col), static_cast<float>(row),
                                  static_cast<float>(stride), level * per_cell + k});
          }
        }
      }
    }
  }

  Status CheckAgainstModel(const v1::InputConfig& input, const std::vector<ValueInfo>& outputs,
                           std::vector<std::string>* labels) const override {
    const ValueInfo* output = FindValueInfo(outputs, head_.output());
    const int64_t extra = head_.format() == v1::YoloHead::V8 ? 4 : 5;
    const char* layout = head_.format() == v1::YoloHead::V8 ? "[1, 4 + classes, predictions]"
                                                            : "[1, predictions, 5 + classes]";
    if (output == nullptr || output->shape.size() != 3 || output->shape[0] != 1) {
      return InvalidArgument("yolo output '" + head_.output() + "' is not an output " + layout +
                             " of the model (outputs: " + OutputNames(outputs) + ")");
    }
    const bool v8 = head_.format() == v1::YoloHead::V8;
    const int64_t values = v8 ? output->shape[1] : output->shape[2];
    const int64_t predictions = v8 ? output->shape[2] : output->shape[1];
    if (values <= extra) {
      return InvalidArgument("yolo output '" + head_.output() + "' has shape " +
                             ShapeToString(output->shape) + "; expected " + layout +
                             " with at least one class");
    }
    if (head_.grid() != v1::YoloHead::DECODED) {
      const int64_t expected = YoloGridPredictions(head_, input);
      if (predictions != expected) {
        return InvalidArgument(
            "yolo output '" + head_.output() + "' has " + std::to_string(predictions) +
            " predictions; the grid of yolo.strides implies " + std::to_string(expected));
      }
    }
    return CheckLabelCount(*labels, values - extra);
  }

  StatusOr<std::vector<Detection>> Decode(const std::vector<NamedTensor>& outputs, int frame,
                                          const HeadGeometry& geometry,
                                          float score_threshold) const override {
    const Tensor* tensor = FindOutput(outputs, head_.output());
    if (tensor == nullptr || tensor->shape().size() != 3) {
      return InvalidArgument("missing or malformed yolo output '" + head_.output() + "'");
    }
    const bool v8 = head_.format() == v1::YoloHead::V8;
    const int64_t dim1 = tensor->shape()[1];
    const int64_t dim2 = tensor->shape()[2];
    LOWBIT_ASSIGN_OR_RETURN(const float* data,
                            OutputFrame(outputs, head_.output(), frame, {dim1, dim2}));
    const int64_t predictions = v8 ? dim2 : dim1;
    const int64_t values = v8 ? dim1 : dim2;
    const int64_t first_class = v8 ? 4 : 5;
    const int64_t num_classes = values - first_class;
    if (num_classes <= 0 ||
        (!positions_.empty() && static_cast<int64_t>(positions_.size()) != predictions)) {
      return InvalidArgument("yolo output '" + head_.output() + "' has shape " +
                             ShapeToString(tensor->shape()) + ", not what the config implies");
    }
    // Value v of prediction i: v8 [values][predictions], v5 [predictions][values].
    const auto value = [&](int64_t i, int64_t v) {
      const float raw = v8 ? data[v * predictions + i] : data[i * values + v];
      return raw;
    };
    std::vector<Detection> detections;
    for (int64_t i = 0; i < predictions; ++i) {
      float objectness = 1.0f;
      if (!v8) {
        objectness = sigmoid_ ? Sigmoid(value(i, 4)) : value(i, 4);
        // Class scores are <= 1, so score < objectness: skip early.
        if (!(objectness >= score_threshold)) continue;
      }
      int best_class = 0;
      float best = value(i, first_class);
      for (int64_t c = 1; c < num_classes; ++c) {
        const float score = value(i, first_class + c);
        if (score > best) {
          best = score;
          best_class = static_cast<int>(c);
        }
      }
      const float score = (sigmoid_ ? Sigmoid(best) : best) * objectness;
      if (!(score >= score_threshold)) continue;
      float cx = value(i, 0), cy = value(i, 1), w = value(i, 2), h = value(i, 3);
      if (head_.grid() == v1::YoloHead::ANCHOR_FREE) {
        const GridPosition& p = positions_[i];
        cx = (cx + p.col) * p.stride;
        cy = (cy + p.row) * p.stride;
        w = std::exp(w) * p.stride;
        h = std::exp(h) * p.stride;
      } else if (head_.grid() == v1::YoloHead::ANCHORED) {
        const GridPosition& p = positions_[i];
        if (sigmoid_) {
          cx = Sigmoid(cx), cy = Sigmoid(cy), w = Sigmoid(w), h = Sigmoid(h);
        }
        cx = (2 * cx - 0.5f + p.col) * p.stride;
        cy = (2 * cy - 0.5f + p.row) * p.stride;
        w = (2 * w) * (2 * w) * head_.anchors(2 * p.anchor);
        h = (2 * h) * (2 * h) * head_.anchors(2 * p.anchor + 1);
      }
      Detection detection;
      detection.box = geometry.ToImage(cx - 0.5f * w, cy - 0.5f * h, cx + 0.5f * w, cy + 0.5f * h);
      detection.class_id = best_class;
      detection.score = score;
      detections.push_back(std::move(detection));
    }
    return detections;
  }

 private:
  v1::YoloHead head_;
  bool sigmoid_ = false;
  std::vector<GridPosition> positions_;  // per prediction; empty for DECODED
};

}  // namespace

int64_t YoloGridPredictions(const v1::YoloHead& head, const v1::InputConfig& input) {
  int64_t predictions = 0;
  for (int stride : head.strides()) {
    predictions += GridSide(input.height(), stride) * GridSide(input.width(), stride);
  }
  return predictions * AnchorsPerCell(head);
}

StatusOr<std::unique_ptr<Head>> MakeYoloHead(const HeadContext& context) {
  const auto& head = static_cast<const v1::YoloHead&>(context.params);
  if (head.output().empty()) return InvalidArgument("yolo.output must name the model's output");
  if (head.format() != v1::YoloHead::V8 && head.format() != v1::YoloHead::V5) {
    return InvalidArgument("yolo.format must be V8 ([N, 4 + C, A]) or V5 ([N, A, 5 + C])");
  }
  if (!v1::YoloHead::Grid_IsValid(head.grid())) {
    return InvalidArgument("yolo.grid must be DECODED, ANCHOR_FREE or ANCHORED");
  }
  if (head.score_activation() == v1::SOFTMAX ||
      !v1::ScoreActivation_IsValid(head.score_activation())) {
    return InvalidArgument("yolo.score_activation must be NO_ACTIVATION or SIGMOID");
  }
  if (head.grid() != v1::YoloHead::DECODED) {
    if (head.strides().empty()) {
      return InvalidArgument("yolo.grid " + v1::YoloHead::Grid_Name(head.grid()) +
                             " needs yolo.strides (e.g. [8, 16, 32])");
    }
    for (int stride : head.strides()) {
      if (stride <= 0) return InvalidArgument("yolo.strides must be positive");
    }
  }
  if (head.grid() == v1::YoloHead::ANCHORED) {
    const int64_t expected = int64_t{head.anchors_per_cell()} * head.strides_size() * 2;
    if (head.anchors_per_cell() <= 0 || head.anchors_per_cell() > 64 ||
        head.anchors_size() != expected) {
      return InvalidArgument(
          "yolo.grid ANCHORED needs anchors_per_cell in [1, 64] and anchors_per_cell (w, h) pairs "
          "per "
          "stride in yolo.anchors: " +
          std::to_string(expected) + " values, got " + std::to_string(head.anchors_size()));
    }
    for (float anchor : head.anchors()) {
      if (!(anchor > 0) || !std::isfinite(anchor))
        return InvalidArgument("yolo.anchors must be positive (input pixels)");
    }
  }
  if (head.grid() != v1::YoloHead::DECODED) {
    // Grid positions are made per prediction: bound them (int64, before).
    constexpr int64_t kMaxPredictions = int64_t{1} << 22;
    const int64_t predictions = YoloGridPredictions(head, context.config.input());
    if (predictions > kMaxPredictions) {
      return InvalidArgument("yolo grid would have over " + std::to_string(kMaxPredictions) +
                             " predictions (" + std::to_string(predictions) + "); check strides");
    }
  }
  return std::unique_ptr<Head>(std::make_unique<YoloDecoder>(head, context.config.input()));
}

}  // namespace lowbit::engine::vision
