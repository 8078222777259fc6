// lowbit compile MODEL.onnx -o MODEL.lbm: compile once, load without compiling.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "cli_util.h"
#include "commands.h"
#include "lowbit/engine/model.h"

namespace lowbit::cli {
namespace {

constexpr const char* kCompileUsage =
    R"(usage: lowbit compile MODEL.onnx [-o MODEL.lbm] [--measure-load N]

Compiles an ONNX model for this CPU (import, constant folding, BatchNorm
folding, fusion, layouts and, for quantized models, the kernel of each layer
chosen on this CPU) and writes a compiled model file (.lbm): the graph,
packed weights, quantization parameters and kernel choices, with the CPU the
kernels were chosen on. `lowbit inspect` reads a .lbm directly; `lowbit run`,
`lowbit bench` and lowbitd load one named by a model directory's config.pbtxt
(model_file: "model.lbm") without compiling anything. A .lbm loads only on
the architecture it was compiled on (x86_64 or aarch64) and in a lowbit that
reads its format version; a corrupt or truncated file is refused.

Prints one line: layers, weight bytes as stored (and their FP32 size),
compile time, file size.

Options:
  -o, --output FILE   the file to write (default: MODEL with .lbm in place of
                      .onnx)
  --measure-load N    afterwards, compile the ONNX N times and load the .lbm
                      N times, and print both medians and their ratio
)";

double Median(std::vector<double> samples) {
  std::sort(samples.begin(), samples.end());
  const size_t n = samples.size();
  return n % 2 ? samples[n / 2] : 0.5 * (samples[n / 2 - 1] + samples[n / 2]);
}

std::string DefaultOutput(const std::string& input) {
  std::filesystem::path path(input);
  path.replace_extension(".lbm");
  return path.string();
}

}  // namespace

int CompileCommand(int argc, char** argv) {
  constexpr const char* kCommand = "compile";
  std::string input, output;
  int measure_runs = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kCompileUsage, stdout);
      return kExitOk;
    }
    if (arg == "-o" || arg == "--output" || arg == "--measure-load") {
      const char* value = FlagValue(kCommand, argc, argv, &i);
      if (value == nullptr) return kExitUsage;
      if (arg == "--measure-load") {
        if (!ParseIntFlag(kCommand, "--measure-load", value, 1, 1000, &measure_runs))
          return kExitUsage;
      } else {
        output = value;
      }
    } else if (arg.size() > 1 && arg[0] == '-') {
      std::fprintf(stderr, "lowbit compile: unknown option '%s'\n\n%s", arg.c_str(), kCompileUsage);
      return kExitUsage;
    } else if (input.empty()) {
      input = arg;
    } else {
      std::fprintf(stderr, "lowbit compile: unexpected argument '%s'\n\n%s", arg.c_str(),
                   kCompileUsage);
      return kExitUsage;
    }
  }
  if (input.empty()) {
    std::fprintf(stderr, "lowbit compile: need MODEL.onnx\n\n%s", kCompileUsage);
    return kExitUsage;
  }
  std::error_code error;
  if (std::filesystem::is_directory(input, error)) {
    std::fprintf(stderr,
                 "lowbit compile: %s is a directory; give its model file (e.g. %s/model.onnx)\n",
                 input.c_str(), input.c_str());
    return kExitUsage;
  }
  if (output.empty()) output = DefaultOutput(input);
  if (std::filesystem::equivalent(input, output, error)) {
    std::fprintf(stderr, "lowbit compile: the output %s is the input file\n", output.c_str());
    return kExitUsage;
  }

  auto start = std::chrono::steady_clock::now();
  auto model = engine::Model::LoadOnnx(input);
  const double compile_ms = MillisecondsSince(start);
  if (!model.ok()) {
    std::fprintf(stderr, "lowbit compile: %s\n", model.status().ToString().c_str());
    return kExitError;
  }
  start = std::chrono::steady_clock::now();
  const Status written = engine::WriteCompiledModel(**model, output);
  const double write_ms = MillisecondsSince(start);
  if (!written.ok()) {
    std::fprintf(stderr, "lowbit compile: writing %s: %s\n", output.c_str(),
                 written.ToString().c_str());
    return kExitError;
  }
  int64_t weight_bytes = 0, params = 0;
  for (const engine::LayerInfo& layer : (*model)->layers()) {
    weight_bytes += layer.weight_bytes;
    params += layer.params;
  }
  const auto file_bytes = static_cast<int64_t>(std::filesystem::file_size(output, error));
  std::printf(
      "compiled %s -> %s: %zu layers, weights %s (FP32 %s), compile %.1f ms, write %.1f ms, "
      "file %s, kernels chosen on %s\n",
      input.c_str(), output.c_str(), (*model)->layers().size(), WithByteUnit(weight_bytes).c_str(),
      WithByteUnit(params * 4).c_str(), compile_ms, write_ms, WithByteUnit(file_bytes).c_str(),
      (*model)->origin().kernel_isa.c_str());

  if (measure_runs > 0) {
    std::vector<double> compile_samples, load_samples;
    for (int run = 0; run < measure_runs; ++run) {
      start = std::chrono::steady_clock::now();
      auto compiled = engine::Model::LoadOnnx(input);
      compile_samples.push_back(MillisecondsSince(start));
      start = std::chrono::steady_clock::now();
      auto loaded = engine::Model::LoadCompiled(output);
      load_samples.push_back(MillisecondsSince(start));
      if (!compiled.ok() || !loaded.ok()) {
        std::fprintf(stderr, "lowbit compile: --measure-load: %s\n",
                     (compiled.ok() ? loaded.status() : compiled.status()).ToString().c_str());
        return kExitError;
      }
    }
    const double compile_median = Median(compile_samples), load_median = Median(load_samples);
    std::printf(
        "load vs compile, median of %d runs each: compile ONNX %.2f ms, load .lbm %.2f ms: "
        "%.1fx faster (kernels ISA %s)\n",
        measure_runs, compile_median, load_median, compile_median / load_median,
        (*model)->origin().kernel_isa.c_str());
  }
  return kExitOk;
}

}  // namespace lowbit::cli
