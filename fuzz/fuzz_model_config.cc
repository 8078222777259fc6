// Fuzz target: a model repository entry's config.pbtxt, as the server reads
// one (engine/src/vision/config.cc): ParseModelConfig (protobuf text
// format), ValidateModelConfig, then CheckConfigAgainstModel against the
// inputs and outputs of a model that matches what the config describes
// (so the accepting path runs too) and against the real NanoDet-g and
// BlazeFace interfaces. Input: the text of a config.pbtxt.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_check.h"
#include "vision/config.h"

namespace {

using lowbit::engine::Shape;
using lowbit::engine::ValueInfo;
namespace v1 = lowbit::v1;
namespace vision = lowbit::engine::vision;

// Outputs shaped as config.cc's CheckConfigAgainstModel expects them:
// NanoDet [1, cells, classes] scores and [1, cells, 4 * (reg_max + 1)]
// boxes; BlazeFace [1, anchors, 1] scores and [1, anchors, 16] boxes.
std::vector<ValueInfo> MatchingOutputs(const v1::ModelConfig& config, int64_t classes) {
  std::vector<ValueInfo> outputs;
  const v1::InputConfig& input = config.input();
  if (config.has_nanodet()) {
    const v1::NanoDetHead& head = config.nanodet();
    for (int level = 0; level < head.strides_size(); ++level) {
      const int64_t cells = vision::GridCells(input, head.strides(level));
      outputs.push_back({head.score_outputs(level), Shape{1, cells, classes}});
      outputs.push_back({head.box_outputs(level), Shape{1, cells, 4 * (head.reg_max() + 1)}});
    }
  } else if (config.has_blazeface()) {
    const v1::BlazeFaceHead& head = config.blazeface();
    for (int level = 0; level < head.strides_size(); ++level) {
      const int64_t anchors =
          vision::GridCells(input, head.strides(level)) * head.anchors_per_cell(level);
      outputs.push_back({head.score_outputs(level), Shape{1, anchors, 1}});
      outputs.push_back({head.box_outputs(level), Shape{1, anchors, 16}});
    }
  }
  return outputs;
}

std::vector<ValueInfo> NanoDetOutputs() {
  std::vector<ValueInfo> outputs;
  const int strides[] = {8, 16, 32};
  for (int stride : strides) {
    const int64_t cells = (416 / stride) * (416 / stride);
    outputs.push_back({"cls_stride" + std::to_string(stride), Shape{1, cells, 80}});
    outputs.push_back({"box_stride" + std::to_string(stride), Shape{1, cells, 44}});
  }
  return outputs;
}

std::vector<ValueInfo> BlazeFaceOutputs() {
  return {{"Identity:0", Shape{1, 512, 1}},
          {"Identity_1:0", Shape{1, 384, 1}},
          {"Identity_2:0", Shape{1, 512, 16}},
          {"Identity_3:0", Shape{1, 384, 16}}};
}

void Check(v1::ModelConfig config, const std::vector<ValueInfo>& inputs,
           const std::vector<ValueInfo>& outputs) {
  std::vector<std::string> labels(config.labels().begin(), config.labels().end());
  const bool had_labels = !labels.empty();
  if (!vision::CheckConfigAgainstModel(&config, &labels, inputs, outputs).ok()) return;
  FUZZ_CHECK(!config.input().tensor_name().empty());
  FUZZ_CHECK(!labels.empty());
  if (had_labels) FUZZ_CHECK(static_cast<int>(labels.size()) == config.labels_size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  lowbit::StatusOr<v1::ModelConfig> config = vision::ParseModelConfig(text, "config.pbtxt");
  if (!config.ok()) return 0;
  if (!vision::ValidateModelConfig(*config).ok()) return 0;

  const v1::InputConfig& input = config->input();
  const Shape shape = vision::InputShapeFor(input, 1);
  FUZZ_CHECK(shape.size() == 4 && shape[0] == 1);
  const int64_t classes = config->labels_size() > 0 ? config->labels_size() : 80;
  const std::string input_name = input.tensor_name().empty() ? "input" : input.tensor_name();
  Check(*config, {{input_name, shape}}, MatchingOutputs(*config, classes));
  Check(*config, {{"input", Shape{1, 3, 416, 416}}}, NanoDetOutputs());
  Check(*config, {{"input:0", Shape{1, 128, 128, 3}}}, BlazeFaceOutputs());
  return 0;
}
