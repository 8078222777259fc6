// Subcommands of the `lowbit` CLI. Each takes the arguments after its own
// name and returns the process exit code (0 ok, 1 runtime error, 2 usage).
#pragma once

namespace lowbit::cli {

// lowbit compile MODEL.onnx -o MODEL.lbm: writes the compiled model file.
int CompileCommand(int argc, char** argv);
// lowbit run MODEL_DIR IMAGE...: detections for each image.
int RunCommand(int argc, char** argv);
// lowbit inspect MODEL_DIR|MODEL.lbm|MODEL.onnx: per-layer op, shape, bits,
// kernel, weight bytes, MACs, params.
int InspectCommand(int argc, char** argv);
// lowbit bench MODEL_DIR: inference latency over repeated runs.
int BenchCommand(int argc, char** argv);
// lowbit tensors MODEL.onnx --input NAME=FILE.npy... --out DIR: raw outputs.
int TensorsCommand(int argc, char** argv);
// lowbit quantize MODEL_DIR --calib DIR|VIDEO -o OUT_DIR: post-training quantization.
int QuantizeCommand(int argc, char** argv);

}  // namespace lowbit::cli
