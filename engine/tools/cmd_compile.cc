// lowbit compile MODEL.onnx -o MODEL.lbm: compile once, load without compiling.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "cli_util.h"
#include "commands.h"
#include "lowbit/engine/model.h"

namespace lowbit::cli {
namespace {

constexpr const char* kCompileUsage =
    R"(usage: lowbit compile MODEL.onnx [-o MODEL.lbm] [--measure-load N]
                      [--input-shape NAME=D0xD1x...]...

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
                      N times, each in a fresh process (per-process caches
                      such as the kernel timings do not carry over), and
                      print both medians and their ratio
  --input-shape NAME=D0xD1x...
                      sizes of a graph input's symbolic dimensions (a
                      dynamic-shape export); the batch (first) stays variable,
                      e.g. --input-shape images=1x3x320x320
)";

double Median(std::vector<double> samples) {
  std::sort(samples.begin(), samples.end());
  const size_t n = samples.size();
  return n % 2 ? samples[n / 2] : 0.5 * (samples[n / 2 - 1] + samples[n / 2]);
}

// Runs `work` in a forked child process and returns the milliseconds it
// reports, or its error. The child starts from this process as it is, so
// callers fork before loading anything they do not want to share.
StatusOr<double> TimeInChild(const std::function<StatusOr<double>()>& work) {
  struct Result {
    double ms;
    int ok;
    char message[1024];
  };
  int fds[2];
  if (::pipe(fds) != 0) return Internal(std::string("pipe: ") + std::strerror(errno));
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = ::fork();
  if (pid < 0) return Internal(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    ::close(fds[0]);
    Result result{};
    StatusOr<double> ms = work();
    result.ok = ms.ok();
    if (ms.ok()) {
      result.ms = *ms;
    } else {
      std::snprintf(result.message, sizeof result.message, "%s", ms.status().ToString().c_str());
    }
    std::fflush(stdout);
    const ssize_t written = ::write(fds[1], &result, sizeof result);
    ::_exit(written == static_cast<ssize_t>(sizeof result) ? 0 : 1);
  }
  ::close(fds[1]);
  Result result{};
  const ssize_t got = ::read(fds[0], &result, sizeof result);
  ::close(fds[0]);
  int child_status = 0;
  ::waitpid(pid, &child_status, 0);
  if (got != static_cast<ssize_t>(sizeof result))
    return Internal("the measuring child process exited without a result");
  if (!result.ok) return Internal(result.message);
  return result.ms;
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
  engine::CompileOptions compile_options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kCompileUsage, stdout);
      return kExitOk;
    }
    if (arg == "--input-shape") {
      const char* value = FlagValue(kCommand, argc, argv, &i);
      if (value == nullptr) return kExitUsage;
      if (!ParseInputShapeFlag(kCommand, value, &compile_options.input_shapes)) return kExitUsage;
      continue;
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

  // Compiles, writes and prints the summary line; the kernel ISA on success.
  const auto compile_and_write = [&]() -> StatusOr<std::string> {
    auto start = std::chrono::steady_clock::now();
    auto model = engine::Model::LoadOnnx(input, compile_options);
    const double compile_ms = MillisecondsSince(start);
    if (!model.ok()) return model.status();
    start = std::chrono::steady_clock::now();
    const Status written = engine::WriteCompiledModel(**model, output);
    const double write_ms = MillisecondsSince(start);
    if (!written.ok()) return written.WithContext("writing " + output);
    int64_t weight_bytes = 0, params = 0;
    for (const engine::LayerInfo& layer : (*model)->layers()) {
      weight_bytes += layer.weight_bytes;
      params += layer.params;
    }
    std::error_code size_error;
    const auto file_bytes = static_cast<int64_t>(std::filesystem::file_size(output, size_error));
    std::printf(
        "compiled %s -> %s: %zu layers, weights %s (FP32 %s), compile %.1f ms, write %.1f ms, "
        "file %s, kernels chosen on %s\n",
        input.c_str(), output.c_str(), (*model)->layers().size(),
        WithByteUnit(weight_bytes).c_str(), WithByteUnit(params * 4).c_str(), compile_ms, write_ms,
        WithByteUnit(file_bytes).c_str(), (*model)->origin().kernel_isa.c_str());
    return (*model)->origin().kernel_isa;
  };

  if (measure_runs == 0) {
    StatusOr<std::string> compiled = compile_and_write();
    if (!compiled.ok()) {
      std::fprintf(stderr, "lowbit compile: %s\n", compiled.status().ToString().c_str());
      return kExitError;
    }
    return kExitOk;
  }

  // Measuring: every compile and load runs in a process forked from this
  // one before it has loaded anything, so each starts as cold as a new
  // process would (the file itself stays in the page cache for both).
  StatusOr<double> first = TimeInChild([&]() -> StatusOr<double> {
    LOWBIT_RETURN_IF_ERROR(compile_and_write().status());
    return 0.0;
  });
  if (!first.ok()) {
    std::fprintf(stderr, "lowbit compile: %s\n", first.status().message().c_str());
    return kExitError;
  }
  std::vector<double> compile_samples, load_samples;
  for (int run = 0; run < 2 * measure_runs; ++run) {
    const bool compile = run % 2 == 0;
    StatusOr<double> ms = TimeInChild([&]() -> StatusOr<double> {
      const auto start = std::chrono::steady_clock::now();
      auto model = compile ? engine::Model::LoadOnnx(input, compile_options)
                           : engine::Model::LoadCompiled(output);
      if (!model.ok()) return model.status();
      return MillisecondsSince(start);
    });
    if (!ms.ok()) {
      std::fprintf(stderr, "lowbit compile: --measure-load: %s\n", ms.status().message().c_str());
      return kExitError;
    }
    (compile ? compile_samples : load_samples).push_back(*ms);
  }
  const double compile_median = Median(compile_samples), load_median = Median(load_samples);
  auto loaded = engine::Model::LoadCompiled(output);  // for the ISA line; all forks are done
  std::printf(
      "load vs compile, median of %d fresh processes each: compile ONNX %.2f ms, load .lbm "
      "%.2f ms: %.1fx faster (kernels ISA %s)\n",
      measure_runs, compile_median, load_median, compile_median / load_median,
      loaded.ok() ? (*loaded)->origin().kernel_isa.c_str() : "?");
  return kExitOk;
}

}  // namespace lowbit::cli
