// `lowbit`: the engine's command line, usable without any server.
#include <cstdio>
#include <cstring>
#include <string>

#include "commands.h"

namespace {

constexpr const char* kUsage = R"(usage: lowbit COMMAND [ARGS...]

Commands:
  compile MODEL.onnx -o MODEL.lbm
                              compile a model once into a file that loads fast
  run MODEL_DIR IMAGE...      detect objects in JPEG/PNG images and print them
  inspect MODEL               print each layer: op, output shape, bits, kernel,
                              weight bytes, MACs, parameters
  bench MODEL_DIR             measure inference latency (median over runs)
  tensors MODEL.onnx ...      run a model on .npy input tensors, write .npy outputs
  quantize MODEL_DIR --calib DIR|VIDEO -o OUT_DIR
                              quantize an FP32 entry from calibration frames
                              (bits per layer, min-MSE scales, mixed precision)

MODEL_DIR is a model repository entry (config.pbtxt + its model file, ONNX or
a compiled .lbm), e.g. models/nanodet-g; MODEL is a model directory, a .lbm
or an ONNX file. `lowbit COMMAND --help` explains each command's options.
)";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string command = argv[1];
  // Subcommands see argv[0] = their own name.
  if (command == "compile") return lowbit::cli::CompileCommand(argc - 1, argv + 1);
  if (command == "run") return lowbit::cli::RunCommand(argc - 1, argv + 1);
  if (command == "inspect") return lowbit::cli::InspectCommand(argc - 1, argv + 1);
  if (command == "bench") return lowbit::cli::BenchCommand(argc - 1, argv + 1);
  if (command == "tensors") return lowbit::cli::TensorsCommand(argc - 1, argv + 1);
#if LOWBIT_WITH_QUANTIZER
  if (command == "quantize") return lowbit::cli::QuantizeCommand(argc - 1, argv + 1);
#else
  if (command == "quantize") {
    std::fputs(
        "lowbit: this build has no quantizer (configured with -DLOWBIT_WITH_QUANTIZER=OFF, as the "
        "container image is): run `lowbit quantize` on a development machine and copy the entry it "
        "writes "
        "into the model repository (/models in the image)\n",
        stderr);
    return 1;
  }
#endif
  std::fprintf(stderr, "lowbit: unknown command '%s'\n\n%s", command.c_str(), kUsage);
  return 2;
}
