#include "vision/head_classification.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

namespace lowbit::engine::vision {
namespace {

// Classes of an output [1, C] or [1, C, 1, 1]; 0 when it is neither.
int64_t ClassCount(const Shape& shape) {
  if (shape.size() == 2) return shape[1];
  if (shape.size() == 4 && shape[2] == 1 && shape[3] == 1) return shape[1];
  return 0;
}

class ClassificationDecoder final : public Head {
 public:
  explicit ClassificationDecoder(v1::ClassificationHead head)
      : head_(std::move(head)), top_k_(head_.top_k() > 0 ? head_.top_k() : 1) {}

  bool is_classifier() const override { return true; }

  Status CheckAgainstModel(const v1::InputConfig&, const std::vector<ValueInfo>& outputs,
                           std::vector<std::string>* labels) const override {
    const ValueInfo* output = FindValueInfo(outputs, head_.output());
    const int64_t num_classes = output != nullptr && !output->shape.empty() && output->shape[0] == 1
                                    ? ClassCount(output->shape)
                                    : 0;
    if (num_classes <= 0) {
      return InvalidArgument("classification output '" + head_.output() +
                             "' is not an output [1, classes] (or [1, classes, 1, 1]) of the "
                             "model (outputs: " +
                             OutputNames(outputs) + ")");
    }
    return CheckLabelCount(*labels, num_classes);
  }

  StatusOr<std::vector<Detection>> Decode(const std::vector<NamedTensor>& outputs, int frame,
                                          const HeadGeometry& geometry,
                                          float score_threshold) const override {
    const Tensor* tensor = FindOutput(outputs, head_.output());
    const int64_t num_classes = tensor != nullptr ? ClassCount(tensor->shape()) : 0;
    if (num_classes <= 0) {
      return InvalidArgument("missing or malformed classification output '" + head_.output() + "'");
    }
    Shape frame_dims(tensor->shape().begin() + 1, tensor->shape().end());
    LOWBIT_ASSIGN_OR_RETURN(const float* raw,
                            OutputFrame(outputs, head_.output(), frame, frame_dims));
    std::vector<float> scores(raw, raw + num_classes);
    if (head_.logits()) {
      const float max_logit = *std::max_element(scores.begin(), scores.end());
      float sum = 0;
      for (float& score : scores) sum += score = std::exp(score - max_logit);
      for (float& score : scores) score /= sum;
    }
    std::vector<int> order(static_cast<size_t>(num_classes));
    std::iota(order.begin(), order.end(), 0);
    const size_t keep = std::min<size_t>(order.size(), static_cast<size_t>(top_k_));
    // Highest first; ties keep the lower class id first.
    std::partial_sort(order.begin(), order.begin() + keep, order.end(), [&](int a, int b) {
      return scores[a] > scores[b] || (scores[a] == scores[b] && a < b);
    });
    std::vector<Detection> classes;
    for (size_t k = 0; k < keep; ++k) {
      const int class_id = order[k];
      if (!(scores[class_id] >= score_threshold)) break;
      Detection detection;
      detection.box = {0, 0, static_cast<float>(geometry.image_width),
                       static_cast<float>(geometry.image_height)};
      detection.class_id = class_id;
      detection.score = scores[class_id];
      detection.whole_image = true;
      classes.push_back(std::move(detection));
    }
    return classes;
  }

 private:
  v1::ClassificationHead head_;
  int top_k_;
};

}  // namespace

StatusOr<std::unique_ptr<Head>> MakeClassificationHead(const HeadContext& context) {
  const auto& head = static_cast<const v1::ClassificationHead&>(context.params);
  if (head.output().empty()) {
    return InvalidArgument("classification.output must name the model's score output");
  }
  if (head.top_k() < 0) {
    return InvalidArgument("classification.top_k must be >= 0 (0: 1), got " +
                           std::to_string(head.top_k()));
  }
  return std::unique_ptr<Head>(std::make_unique<ClassificationDecoder>(head));
}

}  // namespace lowbit::engine::vision
