// lowbit inspect MODEL_DIR|MODEL.onnx: per-layer op, output shape, MACs, params.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "cli_util.h"
#include "commands.h"
#include "lowbit/engine/detector.h"

namespace lowbit::cli {
namespace {

constexpr const char* kInspectUsage = R"(usage: lowbit inspect MODEL_DIR|MODEL.onnx

Compiles the model and prints one row per executable layer: name, op, output
shape (batch 1), multiply-accumulates and parameters (weight and bias
elements); then the model's inputs, outputs and totals. MODEL_DIR is a model
repository entry (config.pbtxt + model.onnx); an .onnx file is read directly.
)";

// "2.09 G", "941.2 M", "12.3 K", "512".
std::string WithUnit(int64_t value) {
  char text[32];
  if (value >= 1'000'000'000) {
    std::snprintf(text, sizeof text, "%.2f G", value / 1e9);
  } else if (value >= 1'000'000) {
    std::snprintf(text, sizeof text, "%.2f M", value / 1e6);
  } else if (value >= 1'000) {
    std::snprintf(text, sizeof text, "%.2f K", value / 1e3);
  } else {
    std::snprintf(text, sizeof text, "%lld", static_cast<long long>(value));
  }
  return text;
}

// "2,090,123,456"
std::string WithSeparators(int64_t value) {
  const std::string digits = std::to_string(value);
  std::string grouped;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0 && digits[i - 1] != '-') grouped += ',';
    grouped += digits[i];
  }
  return grouped;
}

}  // namespace

int InspectCommand(int argc, char** argv) {
  std::string path;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kInspectUsage, stdout);
      return kExitOk;
    }
    if ((arg.size() > 1 && arg[0] == '-') || !path.empty()) {
      std::fprintf(stderr, "lowbit inspect: unexpected argument '%s'\n\n%s", arg.c_str(),
                   kInspectUsage);
      return kExitUsage;
    }
    path = arg;
  }
  if (path.empty()) {
    std::fprintf(stderr, "lowbit inspect: need MODEL_DIR or MODEL.onnx\n\n%s", kInspectUsage);
    return kExitUsage;
  }

  std::shared_ptr<const engine::Model> model;
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) {
    auto detector = engine::DetectorModel::Load(path);
    if (!detector.ok()) {
      std::fprintf(stderr, "lowbit inspect: %s\n", detector.status().ToString().c_str());
      return kExitError;
    }
    model = (*detector)->shared_model();
  } else {
    auto loaded = engine::Model::LoadOnnx(path);
    if (!loaded.ok()) {
      std::fprintf(stderr, "lowbit inspect: %s\n", loaded.status().ToString().c_str());
      return kExitError;
    }
    model = std::move(loaded).value();
  }

  const std::vector<engine::LayerInfo>& layers = model->layers();
  size_t name_width = 4, op_width = 2, shape_width = 12;
  for (const engine::LayerInfo& layer : layers) {
    name_width = std::max(name_width, layer.name.size());
    op_width = std::max(op_width, layer.op.size());
    shape_width = std::max(shape_width, engine::ShapeToString(layer.output_shape).size());
  }
  name_width = std::min<size_t>(name_width, 48);
  const int nw = static_cast<int>(name_width), ow = static_cast<int>(op_width),
            sw = static_cast<int>(shape_width);
  std::printf("%4s  %-*s  %-*s  %-*s  %15s  %12s\n", "#", nw, "name", ow, "op", sw, "output shape",
              "MACs", "params");
  int64_t total_macs = 0, total_params = 0;
  for (size_t i = 0; i < layers.size(); ++i) {
    const engine::LayerInfo& layer = layers[i];
    std::string name = layer.name;
    if (name.size() > name_width) name = "..." + name.substr(name.size() - name_width + 3);
    std::printf("%4zu  %-*s  %-*s  %-*s  %15s  %12s\n", i, nw, name.c_str(), ow, layer.op.c_str(),
                sw, engine::ShapeToString(layer.output_shape).c_str(),
                WithSeparators(layer.macs).c_str(), WithSeparators(layer.params).c_str());
    total_macs += layer.macs;
    total_params += layer.params;
  }
  std::printf("\n");
  for (const engine::ValueInfo& input : model->inputs()) {
    std::printf("input   %s %s\n", input.name.c_str(), engine::ShapeToString(input.shape).c_str());
  }
  for (const engine::ValueInfo& output : model->outputs()) {
    std::printf("output  %s %s\n", output.name.c_str(),
                engine::ShapeToString(output.shape).c_str());
  }
  std::printf("total   %zu layers, %s MACs (%s), %s params (%s)\n", layers.size(),
              WithUnit(total_macs).c_str(), WithSeparators(total_macs).c_str(),
              WithUnit(total_params).c_str(), WithSeparators(total_params).c_str());
  return kExitOk;
}

}  // namespace lowbit::cli
