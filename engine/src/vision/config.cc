#include "vision/config.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace lowbit::engine::vision {
namespace {

// Keeps the first parse error with its position.
class FirstErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    if (!error_.empty()) return;
    // The parser counts from 0; editors count from 1.
    error_ = std::to_string(line + 1) + ":" + std::to_string(column + 1) + ": " + message;
  }
  const std::string& error() const { return error_; }

 private:
  std::string error_;
};

std::string Join(const std::vector<std::string>& names) {
  std::string joined;
  for (const std::string& name : names) joined += (joined.empty() ? "" : ", ") + name;
  return joined;
}

const ValueInfo* FindValue(const std::vector<ValueInfo>& values, const std::string& name) {
  for (const ValueInfo& value : values) {
    if (value.name == name) return &value;
  }
  return nullptr;
}

std::vector<std::string> Names(const std::vector<ValueInfo>& values) {
  std::vector<std::string> names;
  for (const ValueInfo& value : values) names.push_back(value.name);
  return names;
}

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

// Finds `name` among the outputs and checks it is [1, dim1, dim2].
Status CheckOutput(const std::vector<ValueInfo>& outputs, const std::string& name, int64_t dim1,
                   int64_t dim2, const std::string& what) {
  const ValueInfo* value = FindValue(outputs, name);
  if (value == nullptr) {
    return InvalidArgument(what + " output '" + name +
                           "' is not an output of the model (outputs: " + Join(Names(outputs)) +
                           ")");
  }
  const Shape expected = {1, dim1, dim2};
  if (value->shape != expected) {
    return InvalidArgument(what + " output '" + name + "' has shape " +
                           ShapeToString(value->shape) + "; the config implies " +
                           ShapeToString(expected));
  }
  return Status::Ok();
}

}  // namespace

StatusOr<v1::ModelConfig> ParseModelConfig(const std::string& text,
                                           const std::string& source_name) {
  v1::ModelConfig config;
  FirstErrorCollector errors;
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text, &config)) {
    return InvalidArgument(source_name + ":" + errors.error());
  }
  return config;
}

StatusOr<v1::ModelConfig> ReadModelConfig(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    return NotFound("cannot read model config " + path +
                    " (a model directory needs config.pbtxt beside model.onnx; "
                    "deploy/models/fetch-models.sh installs the project's models)");
  }
  std::stringstream text;
  text << file.rdbuf();
  return ParseModelConfig(text.str(), path);
}

Status ValidateModelConfig(const v1::ModelConfig& config) {
  if (!config.has_input()) return InvalidArgument("input { ... } is missing");
  const v1::InputConfig& input = config.input();
  constexpr int kMaxInputSide = 8192;
  if (input.width() <= 0 || input.height() <= 0 || input.width() > kMaxInputSide ||
      input.height() > kMaxInputSide) {
    return InvalidArgument("input.width and input.height must be in [1, " +
                           std::to_string(kMaxInputSide) + "], got " +
                           std::to_string(input.width()) + "x" + std::to_string(input.height()));
  }
  if (input.layout() != v1::NCHW && input.layout() != v1::NHWC) {
    return InvalidArgument("input.layout must be NCHW or NHWC");
  }
  if (input.color_order() != v1::BGR && input.color_order() != v1::RGB) {
    return InvalidArgument("input.color_order must be BGR or RGB");
  }
  if (input.resize() != v1::STRETCH && input.resize() != v1::RESIZE_MODE_UNSPECIFIED) {
    return InvalidArgument("input.resize must be STRETCH (the only mode implemented)");
  }
  if (input.mean_size() != 3 || input.std_size() != 3) {
    return InvalidArgument(
        "input.mean and input.std need 3 values each (one per channel, in "
        "color_order), got " +
        std::to_string(input.mean_size()) + " and " + std::to_string(input.std_size()));
  }
  for (int c = 0; c < 3; ++c) {
    if (!std::isfinite(input.mean(c)) || !std::isfinite(input.std(c)) || input.std(c) == 0) {
      return InvalidArgument(
          "input.mean must be finite and input.std finite and nonzero; channel " +
          std::to_string(c) + " has mean " + std::to_string(input.mean(c)) + ", std " +
          std::to_string(input.std(c)));
    }
  }
  switch (config.head_case()) {
    case v1::ModelConfig::kNanodet: {
      const v1::NanoDetHead& head = config.nanodet();
      LOWBIT_RETURN_IF_ERROR(CheckStrides(head.strides(), head.score_outputs_size(),
                                          head.box_outputs_size(), "nanodet"));
      if (head.reg_max() < 1 || head.reg_max() > 64) {
        return InvalidArgument("nanodet.reg_max must be in [1, 64] (bins per side - 1), got " +
                               std::to_string(head.reg_max()));
      }
      break;
    }
    case v1::ModelConfig::kBlazeface: {
      const v1::BlazeFaceHead& head = config.blazeface();
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
      break;
    }
    case v1::ModelConfig::HEAD_NOT_SET:
      return InvalidArgument("no detection head: set nanodet { ... } or blazeface { ... }");
  }
  if (!(config.score_threshold() > 0 && config.score_threshold() <= 1)) {
    return InvalidArgument("score_threshold must be in (0, 1], got " +
                           std::to_string(config.score_threshold()) +
                           " (e.g. score_threshold: 0.35)");
  }
  if (!(config.iou_threshold() > 0 && config.iou_threshold() <= 1)) {
    return InvalidArgument("iou_threshold must be in (0, 1], got " +
                           std::to_string(config.iou_threshold()) + " (e.g. iou_threshold: 0.5)");
  }
  if (config.max_detections() < 0) {
    return InvalidArgument("max_detections must be >= 0 (0 keeps all), got " +
                           std::to_string(config.max_detections()));
  }
  if (config.labels_size() > 0 && !config.labels_file().empty()) {
    return InvalidArgument("set either labels or labels_file, not both");
  }
  return Status::Ok();
}

StatusOr<std::vector<std::string>> LoadLabels(const v1::ModelConfig& config,
                                              const std::string& model_dir) {
  if (config.labels_size() > 0) {
    return std::vector<std::string>(config.labels().begin(), config.labels().end());
  }
  std::filesystem::path path = std::filesystem::path(model_dir) / config.labels_file();
  if (config.labels_file().empty()) {
    path = std::filesystem::path(model_dir) / "labels.txt";
    std::error_code error;
    if (!std::filesystem::exists(path, error)) return std::vector<std::string>{};
  }
  std::ifstream file(path);
  if (!file) return NotFound("cannot read labels file " + path.string());
  std::vector<std::string> labels;
  std::string line;
  int blank_line = 0;
  for (int line_number = 1; std::getline(file, line); ++line_number) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) {
      line.pop_back();
    }
    if (line.empty()) {
      if (blank_line == 0) blank_line = line_number;
      continue;
    }
    if (blank_line != 0) {
      return InvalidArgument(path.string() + ": line " + std::to_string(blank_line) +
                             " is blank; one label per line, class id = line number - 1");
    }
    labels.push_back(line);
  }
  return labels;
}

Shape InputShapeFor(const v1::InputConfig& input, int batch) {
  if (input.layout() == v1::NHWC) return {batch, input.height(), input.width(), 3};
  return {batch, 3, input.height(), input.width()};
}

int64_t GridCells(const v1::InputConfig& input, int stride) {
  // In int64: a stride near INT_MAX plus the side overflows int.
  const int64_t rows = (int64_t{input.height()} + stride - 1) / stride;
  const int64_t cols = (int64_t{input.width()} + stride - 1) / stride;
  return rows * cols;
}

Status CheckConfigAgainstModel(v1::ModelConfig* config, std::vector<std::string>* labels,
                               const std::vector<ValueInfo>& model_inputs,
                               const std::vector<ValueInfo>& model_outputs) {
  v1::InputConfig& input = *config->mutable_input();
  if (input.tensor_name().empty()) {
    if (model_inputs.size() != 1) {
      return InvalidArgument("input.tensor_name is empty and the model has " +
                             std::to_string(model_inputs.size()) + " inputs (" +
                             Join(Names(model_inputs)) + "); name one");
    }
    input.set_tensor_name(model_inputs[0].name);
  }
  const ValueInfo* model_input = FindValue(model_inputs, input.tensor_name());
  if (model_input == nullptr) {
    return InvalidArgument("input.tensor_name '" + input.tensor_name() +
                           "' is not an input of the model (inputs: " + Join(Names(model_inputs)) +
                           ")");
  }
  if (model_inputs.size() != 1) {
    return InvalidArgument("the model has " + std::to_string(model_inputs.size()) +
                           " inputs; a detector takes exactly one image tensor");
  }
  const Shape expected_input = InputShapeFor(input, 1);
  if (model_input->shape != expected_input) {
    return InvalidArgument("model input '" + input.tensor_name() + "' has shape " +
                           ShapeToString(model_input->shape) + " but the config's input (" +
                           std::to_string(input.width()) + "x" + std::to_string(input.height()) +
                           ", " + v1::TensorLayout_Name(input.layout()) + ") implies " +
                           ShapeToString(expected_input));
  }

  if (config->has_nanodet()) {
    const v1::NanoDetHead& head = config->nanodet();
    const ValueInfo* first_scores = FindValue(model_outputs, head.score_outputs(0));
    if (first_scores == nullptr || first_scores->shape.size() != 3) {
      return InvalidArgument(
          "nanodet score output '" + head.score_outputs(0) +
          "' is not a rank-3 output of the model (outputs: " + Join(Names(model_outputs)) + ")");
    }
    const int64_t num_classes = first_scores->shape[2];
    const int64_t box_values = 4 * (int64_t{head.reg_max()} + 1);
    for (int level = 0; level < head.strides_size(); ++level) {
      const int64_t cells = GridCells(input, head.strides(level));
      const std::string what = "nanodet stride " + std::to_string(head.strides(level));
      LOWBIT_RETURN_IF_ERROR(CheckOutput(model_outputs, head.score_outputs(level), cells,
                                         num_classes, what + " score"));
      LOWBIT_RETURN_IF_ERROR(
          CheckOutput(model_outputs, head.box_outputs(level), cells, box_values, what + " box"));
    }
    if (static_cast<int64_t>(labels->size()) != num_classes) {
      return InvalidArgument("the model has " + std::to_string(num_classes) + " classes but " +
                             std::to_string(labels->size()) +
                             " labels are configured (labels / labels_file / labels.txt)");
    }
  } else {
    const v1::BlazeFaceHead& head = config->blazeface();
    for (int level = 0; level < head.strides_size(); ++level) {
      const int64_t anchors = GridCells(input, head.strides(level)) * head.anchors_per_cell(level);
      const std::string what = "blazeface stride " + std::to_string(head.strides(level));
      LOWBIT_RETURN_IF_ERROR(
          CheckOutput(model_outputs, head.score_outputs(level), anchors, 1, what + " score"));
      const ValueInfo* boxes = FindValue(model_outputs, head.box_outputs(level));
      const int64_t box_values = boxes && boxes->shape.size() == 3 ? boxes->shape[2] : 0;
      if (box_values < 4) {
        return InvalidArgument(what + " box output '" + head.box_outputs(level) +
                               "' must be an output of shape [1," + std::to_string(anchors) +
                               ",K] with K >= 4 (outputs: " + Join(Names(model_outputs)) + ")");
      }
      LOWBIT_RETURN_IF_ERROR(
          CheckOutput(model_outputs, head.box_outputs(level), anchors, box_values, what + " box"));
    }
    if (labels->empty()) labels->push_back("face");
    if (labels->size() != 1) {
      return InvalidArgument("a BlazeFace model has one class but " +
                             std::to_string(labels->size()) + " labels are configured");
    }
  }
  return Status::Ok();
}

}  // namespace lowbit::engine::vision
