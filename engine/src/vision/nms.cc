// Class-wise greedy non-maximum suppression.
#include <algorithm>
#include <numeric>

#include "lowbit/engine/detector.h"

namespace lowbit::engine {
namespace {

float Area(const Box& box) {
  return std::max(0.0f, box.x_max - box.x_min) * std::max(0.0f, box.y_max - box.y_min);
}

// Intersection over union; 0 when both boxes are empty.
float IntersectionOverUnion(const Box& a, const Box& b) {
  const float width = std::min(a.x_max, b.x_max) - std::max(a.x_min, b.x_min);
  const float height = std::min(a.y_max, b.y_max) - std::max(a.y_min, b.y_min);
  if (width <= 0 || height <= 0) return 0;
  const float intersection = width * height;
  const float union_area = Area(a) + Area(b) - intersection;
  return union_area > 0 ? intersection / union_area : 0;
}

}  // namespace

// Candidates are visited by descending score (ties keep input order); one is
// kept unless a kept detection of the same class overlaps it with IoU above
// `iou_threshold`. Whether a candidate survives depends only on higher-scored
// ones, so stopping at `max_detections` survivors equals truncating the full
// result.
std::vector<Detection> NonMaxSuppression(std::vector<Detection> detections, float iou_threshold,
                                         int max_detections) {
  std::stable_sort(detections.begin(), detections.end(),
                   [](const Detection& a, const Detection& b) { return a.score > b.score; });
  const size_t limit = max_detections > 0 ? static_cast<size_t>(max_detections) : detections.size();
  std::vector<Detection> kept;
  for (Detection& candidate : detections) {
    if (kept.size() >= limit) break;
    bool suppressed = false;
    for (const Detection& survivor : kept) {
      if (survivor.class_id == candidate.class_id &&
          IntersectionOverUnion(survivor.box, candidate.box) > iou_threshold) {
        suppressed = true;
        break;
      }
    }
    if (!suppressed) kept.push_back(std::move(candidate));
  }
  return kept;
}

}  // namespace lowbit::engine
