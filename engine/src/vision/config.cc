#include "vision/config.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <algorithm>
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

}  // namespace

StatusOr<v1::ModelConfig> ParseModelConfig(const std::string& text,
                                           const std::string& source_name) {
  v1::ModelConfig config;
  FirstErrorCollector errors;
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text, &config)) {
    std::string message = source_name + ":" + errors.error();
    // An unknown block at the top level is most often a head name.
    if (errors.error().find("\"lowbit.v1.ModelConfig\" has no field named") != std::string::npos) {
      std::string known;
      for (const std::string& name : KnownHeadNames()) known += (known.empty() ? "" : ", ") + name;
      message += " (if it is a head: unknown head; the known heads are " + known + ")";
    }
    return InvalidArgument(message);
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
  if (!v1::ResizeMode_IsValid(input.resize())) {
    return InvalidArgument("input.resize must be STRETCH, LETTERBOX or SHORT_SIDE_CROP");
  }
  if (!v1::LetterboxAlign_IsValid(input.letterbox_align())) {
    return InvalidArgument("input.letterbox_align must be CENTER or TOP_LEFT");
  }
  if (!std::isfinite(input.scale()) || input.scale() < 0) {
    return InvalidArgument("input.scale must be finite and >= 0 (0: 1), got " +
                           std::to_string(input.scale()));
  }
  if (!(input.pad_value() >= 0 && input.pad_value() <= 255)) {
    return InvalidArgument("input.pad_value must be a pixel value in [0, 255], got " +
                           std::to_string(input.pad_value()));
  }
  if (input.resize_short_side() != 0 &&
      (input.resize_short_side() < std::max(input.width(), input.height()) ||
       input.resize_short_side() > kMaxInputSide)) {
    return InvalidArgument("input.resize_short_side must be 0 or in [max(width, height), " +
                           std::to_string(kMaxInputSide) +
                           "] (the crop is cut from the resized image), got " +
                           std::to_string(input.resize_short_side()));
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
  {
    // Each head's factory validates its own message.
    LOWBIT_ASSIGN_OR_RETURN(std::unique_ptr<Head> head, MakeHead(config, ""));
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
                               const std::vector<ValueInfo>& model_outputs, const Head& head) {
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

  return head.CheckAgainstModel(input, model_outputs, labels);
}

Status CheckConfigAgainstModel(v1::ModelConfig* config, std::vector<std::string>* labels,
                               const std::vector<ValueInfo>& model_inputs,
                               const std::vector<ValueInfo>& model_outputs) {
  LOWBIT_ASSIGN_OR_RETURN(std::unique_ptr<Head> head, MakeHead(*config, ""));
  return CheckConfigAgainstModel(config, labels, model_inputs, model_outputs, *head);
}

}  // namespace lowbit::engine::vision