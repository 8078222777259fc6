// lowbit inspect MODEL_DIR|MODEL.lbm|MODEL.onnx: per layer op, output shape,
// W/A bits, kernel, weight bytes, MACs, params; totals beside the FP32 size;
// residual weight pairs part by part; why recognised quantized layers stay
// in float.
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

constexpr const char* kInspectUsage = R"(usage: lowbit inspect MODEL_DIR|MODEL.lbm|MODEL.onnx [--input-shape NAME=1xCxHxW]...

Loads the model (a compiled .lbm as it is; an ONNX file compiled for this CPU)
and prints one row per executable layer: name, op, output shape (batch 1),
weight/activation bits (W/A: 32/32 for float layers, '-' for layers without
weights), the kernel that runs it, its weight bytes as stored (packed
weights, bias, requantization scales), multiply-accumulates and parameters
(weight and bias elements). A layer whose weights are a residual pair of
low-bit tensors (W = s1*Q1 + s2*Q2, two convolutions summed in one int32
accumulator) shows both: W/A as 2+2/4, kernel as FAMILY1+FAMILY2, and a line
below the table with each tensor's bits, kernel and weight bytes. Layers the
compiler recognised as quantized but kept in float are listed with the
reason. Then where the model was compiled (and on which
CPU its kernels were chosen), its inputs and outputs, and totals: MACs,
parameters, and the weight bytes beside the FP32 size of the same weights
(parameters x 4). MODEL_DIR is a model repository entry (config.pbtxt and its
model file).

An ONNX file that uses ops or attributes lowbit does not support is refused
with one message that lists every such node (name, op, what is missing).

  --input-shape NAME=D0xD1x...   sizes of an ONNX graph input's symbolic
                  dimensions (a dynamic-shape export); the first (batch) is
                  ignored, e.g. --input-shape images=1x3x320x320
)";

}  // namespace

int InspectCommand(int argc, char** argv) {
  std::string path;
  engine::CompileOptions compile_options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kInspectUsage, stdout);
      return kExitOk;
    }
    if (arg == "--input-shape") {
      const char* value = FlagValue("inspect", argc, argv, &i);
      if (value == nullptr) return kExitUsage;
      if (!ParseInputShapeFlag("inspect", value, &compile_options.input_shapes)) return kExitUsage;
      continue;
    }
    if ((arg.size() > 1 && arg[0] == '-') || !path.empty()) {
      std::fprintf(stderr, "lowbit inspect: unexpected argument '%s'\n\n%s", arg.c_str(),
                   kInspectUsage);
      return kExitUsage;
    }
    path = arg;
  }
  if (path.empty()) {
    std::fprintf(stderr, "lowbit inspect: need MODEL_DIR, MODEL.lbm or MODEL.onnx\n\n%s",
                 kInspectUsage);
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
    auto loaded = engine::Model::Load(path, compile_options);
    if (!loaded.ok()) {
      std::fprintf(stderr, "lowbit inspect: %s\n", loaded.status().ToString().c_str());
      return kExitError;
    }
    model = std::move(loaded).value();
  }

  const std::vector<engine::LayerInfo>& layers = model->layers();
  const auto bits = [](const engine::LayerInfo& layer) -> std::string {
    if (layer.params == 0 && layer.weight_bytes == 0) return "-";
    std::string w = std::to_string(layer.weight_bits);
    if (layer.residual_weight_bits > 0) {
      w += '+';
      w += std::to_string(layer.residual_weight_bits);
    }
    return w + "/" + std::to_string(layer.activation_bits);
  };
  const auto kernel = [](const engine::LayerInfo& layer) {
    std::string k = layer.kernel.empty() ? std::string("-") : layer.kernel;
    if (layer.residual_weight_bits > 0) {
      k += '+';
      k += layer.residual_kernel.empty() ? std::string("-") : layer.residual_kernel;
    }
    return k;
  };
  size_t name_width = 4, op_width = 2, shape_width = 12, kernel_width = 6;
  for (const engine::LayerInfo& layer : layers) {
    name_width = std::max(name_width, layer.name.size());
    op_width = std::max(op_width, layer.op.size());
    shape_width = std::max(shape_width, engine::ShapeToString(layer.output_shape).size());
    kernel_width = std::max(kernel_width, kernel(layer).size());
  }
  name_width = std::min<size_t>(name_width, 48);
  const int nw = static_cast<int>(name_width), ow = static_cast<int>(op_width),
            sw = static_cast<int>(shape_width), kw = static_cast<int>(kernel_width);
  std::printf("%4s  %-*s  %-*s  %-*s  %6s  %-*s  %12s  %15s  %12s\n", "#", nw, "name", ow, "op", sw,
              "output shape", "W/A", kw, "kernel", "weight bytes", "MACs", "params");
  int64_t total_macs = 0, total_params = 0, total_weight_bytes = 0;
  for (size_t i = 0; i < layers.size(); ++i) {
    const engine::LayerInfo& layer = layers[i];
    std::string name = layer.name;
    if (name.size() > name_width) name = "..." + name.substr(name.size() - name_width + 3);
    std::printf("%4zu  %-*s  %-*s  %-*s  %6s  %-*s  %12s  %15s  %12s\n", i, nw, name.c_str(), ow,
                layer.op.c_str(), sw, engine::ShapeToString(layer.output_shape).c_str(),
                bits(layer).c_str(), kw, kernel(layer).c_str(),
                WithSeparators(layer.weight_bytes).c_str(), WithSeparators(layer.macs).c_str(),
                WithSeparators(layer.params).c_str());
    total_macs += layer.macs;
    total_params += layer.params;
    total_weight_bytes += layer.weight_bytes;
  }
  std::printf("\n");
  bool notes = false;
  for (size_t i = 0; i < layers.size(); ++i) {
    const engine::LayerInfo& layer = layers[i];
    notes |= layer.residual_weight_bits > 0 || !layer.lowering_note.empty();
    if (layer.residual_weight_bits > 0) {
      const int64_t first = layer.weight_bytes - layer.residual_weight_bytes;
      std::printf(
          "residual %zu %s: w%d %s %s bytes (with bias, scales) + residual w%d %s %s bytes, "
          "a%d, one int32 accumulator\n",
          i, layer.name.c_str(), layer.weight_bits, layer.kernel.c_str(),
          WithSeparators(first).c_str(), layer.residual_weight_bits, layer.residual_kernel.c_str(),
          WithSeparators(layer.residual_weight_bytes).c_str(), layer.activation_bits);
    }
    if (!layer.lowering_note.empty())
      std::printf("float    %zu %s: kept in float: %s\n", i, layer.name.c_str(),
                  layer.lowering_note.c_str());
  }
  if (notes) std::printf("\n");
  const engine::ModelOrigin& origin = model->origin();
  if (origin.precompiled) {
    std::printf("model   %s: compiled model (.lbm) by %s from %s\n", origin.path.c_str(),
                origin.producer.c_str(), origin.source_model.c_str());
  } else {
    std::printf("model   %s: compiled at load by %s\n", origin.path.c_str(),
                origin.producer.c_str());
  }
  std::printf("kernels chosen on %s (%s)\n", origin.kernel_isa.c_str(),
              origin.cpu_model.empty() ? "CPU model unknown" : origin.cpu_model.c_str());
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
  const int64_t fp32_bytes = total_params * 4;
  std::printf("weights %s bytes (%s) as stored; FP32 %s bytes (%s); %.2fx smaller\n",
              WithSeparators(total_weight_bytes).c_str(), WithByteUnit(total_weight_bytes).c_str(),
              WithSeparators(fp32_bytes).c_str(), WithByteUnit(fp32_bytes).c_str(),
              total_weight_bytes > 0 ? static_cast<double>(fp32_bytes) / total_weight_bytes : 1.0);
  return kExitOk;
}

}  // namespace lowbit::cli
