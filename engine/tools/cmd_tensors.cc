// lowbit tensors MODEL --input NAME=FILE.npy ... --out DIR [--threads N]
// Runs a model on raw .npy tensors (float or integer, see ReadNpy) and
// writes every output as float32 DIR/<output name>.npy, with '/' and ':' in
// names replaced by '_' (and names too long for a file name shortened).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "cli_util.h"
#include "commands.h"
#include "lowbit/engine/model.h"
#include "lowbit/engine/npy.h"

namespace lowbit::cli {
namespace {

constexpr const char* kTensorsUsage =
    R"(usage: lowbit tensors MODEL --input NAME=FILE.npy [--input ...] --out DIR [--threads N]
                      [--no-lowering] [--input-shape NAME=D0xD1x...]

Runs MODEL (an ONNX file, compiled at load, or a .lbm) on .npy tensors
(first dimension = batch) and writes each output as DIR/<output name>.npy
('/' and ':' in names become '_'; a name over 200 bytes keeps its first 183
and '~' and 16 hex digits of its hash; each file is printed beside its
output's name). Inputs may be float32, float16, or
integer/bool arrays with values within +-2^24 (the codes of quantized
models); outputs are float32, integer outputs holding their exact integers.

  --no-lowering   an ONNX model's fake quantization runs as written, on the
                  float path, instead of on the integer kernels (a reference)
  --input-shape   sizes of an ONNX input's symbolic dimensions (batch ignored);
                  by default they are taken from that input's .npy file, so a
                  dynamic-shape export runs at the size of the tensors given
)";

// File names stop at 255 bytes; TFLite exports name tensors after every
// fused op (an SSD's run past 300 bytes), so long names are cut and hashed.
constexpr size_t kMaxFileStem = 200;

std::string SanitizeFileName(std::string name) {
  for (char& c : name)
    if (c == '/' || c == ':' || c == '\\') c = '_';
  if (name.size() <= kMaxFileStem) return name;
  uint64_t hash = 14695981039346656037ull;  // FNV-1a over the whole name
  for (unsigned char c : name) hash = (hash ^ c) * 1099511628211ull;
  char suffix[18];
  std::snprintf(suffix, sizeof(suffix), "~%016llx", static_cast<unsigned long long>(hash));
  return name.substr(0, kMaxFileStem - 17) + suffix;
}

}  // namespace

int TensorsCommand(int argc, char** argv) {
  std::string model_path, out_dir;
  std::vector<std::pair<std::string, std::string>> input_files;
  int threads = 1;
  engine::CompileOptions compile_options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    if (arg == "--help" || arg == "-h") {
      std::fputs(kTensorsUsage, stdout);
      return 0;
    } else if (arg == "--input") {
      const char* value = next();
      const char* eq = value ? std::strchr(value, '=') : nullptr;
      if (eq == nullptr) {
        std::fprintf(stderr, "lowbit tensors: --input needs NAME=FILE.npy\n\n%s", kTensorsUsage);
        return 2;
      }
      input_files.emplace_back(std::string(value, eq - value), std::string(eq + 1));
    } else if (arg == "--out") {
      const char* value = next();
      if (value == nullptr) {
        std::fprintf(stderr, "lowbit tensors: --out needs a directory\n");
        return 2;
      }
      out_dir = value;
    } else if (arg == "--input-shape") {
      const char* value = next();
      if (value == nullptr) {
        std::fprintf(stderr, "lowbit tensors: --input-shape needs NAME=D0xD1x...\n");
        return 2;
      }
      if (!ParseInputShapeFlag("tensors", value, &compile_options.input_shapes)) return 2;
    } else if (arg == "--no-lowering") {
      compile_options.lower_quantized = false;
    } else if (arg == "--threads") {
      const char* value = next();
      char* end = nullptr;
      threads = value ? static_cast<int>(std::strtol(value, &end, 10)) : 0;
      if (value == nullptr || *end != '\0' || threads < 1) {
        std::fprintf(stderr, "lowbit tensors: --threads needs a positive integer\n");
        return 2;
      }
    } else if (!arg.empty() && arg[0] == '-') {
      std::fprintf(stderr, "lowbit tensors: unknown option '%s'\n\n%s", arg.c_str(), kTensorsUsage);
      return 2;
    } else if (model_path.empty()) {
      model_path = arg;
    } else {
      std::fprintf(stderr, "lowbit tensors: unexpected argument '%s'\n", arg.c_str());
      return 2;
    }
  }
  if (model_path.empty() || out_dir.empty() || input_files.empty()) {
    std::fputs(kTensorsUsage, stderr);
    return 2;
  }

  std::vector<engine::NamedTensor> inputs;
  for (const auto& [name, file] : input_files) {
    auto tensor = engine::ReadNpy(file);
    if (!tensor.ok()) {
      std::fprintf(stderr, "lowbit tensors: %s\n", tensor.status().ToString().c_str());
      return 1;
    }
    inputs.push_back({name, std::move(tensor).value()});
  }
  // Symbolic input dimensions of an ONNX model take the sizes of the tensors
  // given (an explicit --input-shape wins).
  for (const engine::NamedTensor& input : inputs)
    compile_options.input_shapes.emplace(input.name, input.tensor.shape());
  auto model = engine::Model::Load(model_path, compile_options);  // ONNX or .lbm
  if (!model.ok()) {
    std::fprintf(stderr, "lowbit tensors: %s\n", model.status().ToString().c_str());
    return 1;
  }
  engine::SessionOptions options;
  options.threads = threads;
  auto session = (*model)->CreateSession(options);
  if (!session.ok()) {
    std::fprintf(stderr, "lowbit tensors: %s\n", session.status().ToString().c_str());
    return 1;
  }
  std::vector<engine::NamedTensor> outputs;
  if (Status status = (*session)->Run(inputs, &outputs); !status.ok()) {
    std::fprintf(stderr, "lowbit tensors: %s\n", status.ToString().c_str());
    return 1;
  }
  std::error_code error;
  std::filesystem::create_directories(out_dir, error);
  if (error) {
    std::fprintf(stderr, "lowbit tensors: cannot create '%s': %s\n", out_dir.c_str(),
                 error.message().c_str());
    return 1;
  }
  for (const engine::NamedTensor& out : outputs) {
    const std::string path = out_dir + "/" + SanitizeFileName(out.name) + ".npy";
    if (Status status = engine::WriteNpy(path, out.tensor); !status.ok()) {
      std::fprintf(stderr, "lowbit tensors: %s\n", status.ToString().c_str());
      return 1;
    }
    std::printf("%s %s -> %s\n", out.name.c_str(),
                engine::ShapeToString(out.tensor.shape()).c_str(), path.c_str());
  }
  return 0;
}

}  // namespace lowbit::cli
