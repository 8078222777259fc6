// lowbit bench MODEL_DIR: latency of Session::Run on a real pre-processed image.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include "cli_util.h"
#include "commands.h"
#include "lowbit/engine/detector.h"

namespace lowbit::cli {
namespace {

constexpr const char* kBenchUsage = R"(usage: lowbit bench MODEL_DIR [options]

Measures the latency of one inference call (Session::Run) of a repository
entry's model (config.pbtxt + its ONNX or .lbm model_file) on a real image,
decoded and pre-processed as `lowbit run` does, replicated to the batch size.
Pre- and post-processing are not timed. Prints median, p90, min, mean and max.

Options:
  --threads N   threads inside one inference (default 1)
  --runs N      timed runs (default 30)
  --warmup N    untimed runs first (default 5)
  --batch N     frames per call (default 1)
  --image FILE  JPEG/PNG input (default data/images/dog.jpg, from
                deploy/fetch-images.sh)
  --json        print one JSON object instead of text
)";

struct LatencySummary {
  double median_ms, p90_ms, min_ms, mean_ms, max_ms;
};

// Nearest-rank percentiles over the sorted samples.
LatencySummary Summarize(std::vector<double> samples_ms) {
  std::sort(samples_ms.begin(), samples_ms.end());
  const size_t n = samples_ms.size();
  const auto rank = [&](double fraction) {
    const size_t index = static_cast<size_t>(std::ceil(fraction * n));
    return samples_ms[std::clamp<size_t>(index, 1, n) - 1];
  };
  const double median =
      n % 2 ? samples_ms[n / 2] : 0.5 * (samples_ms[n / 2 - 1] + samples_ms[n / 2]);
  const double mean = std::accumulate(samples_ms.begin(), samples_ms.end(), 0.0) / n;
  return {median, rank(0.9), samples_ms.front(), mean, samples_ms.back()};
}

}  // namespace

int BenchCommand(int argc, char** argv) {
  constexpr const char* kCommand = "bench";
  std::string model_dir;
  std::string image_path = "data/images/dog.jpg";
  int threads = 1, runs = 30, warmup = 5, batch = 1;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kBenchUsage, stdout);
      return kExitOk;
    }
    if (arg == "--json") {
      json = true;
    } else if (arg == "--threads" || arg == "--runs" || arg == "--warmup" || arg == "--batch" ||
               arg == "--image") {
      const char* value = FlagValue(kCommand, argc, argv, &i);
      if (value == nullptr) return kExitUsage;
      bool ok = true;
      if (arg == "--threads") ok = ParseIntFlag(kCommand, "--threads", value, 1, 256, &threads);
      if (arg == "--runs") ok = ParseIntFlag(kCommand, "--runs", value, 1, 1000000, &runs);
      if (arg == "--warmup") ok = ParseIntFlag(kCommand, "--warmup", value, 0, 1000000, &warmup);
      if (arg == "--batch") ok = ParseIntFlag(kCommand, "--batch", value, 1, 1024, &batch);
      if (arg == "--image") image_path = value;
      if (!ok) return kExitUsage;
    } else if (arg.size() > 1 && arg[0] == '-') {
      std::fprintf(stderr, "lowbit bench: unknown option '%s'\n\n%s", arg.c_str(), kBenchUsage);
      return kExitUsage;
    } else if (model_dir.empty()) {
      model_dir = arg;
    } else {
      std::fprintf(stderr, "lowbit bench: unexpected argument '%s'\n\n%s", arg.c_str(),
                   kBenchUsage);
      return kExitUsage;
    }
  }
  if (model_dir.empty()) {
    std::fprintf(stderr, "lowbit bench: need MODEL_DIR\n\n%s", kBenchUsage);
    return kExitUsage;
  }

  auto detector = engine::DetectorModel::Load(model_dir);
  if (!detector.ok()) {
    std::fprintf(stderr, "lowbit bench: %s\n", detector.status().ToString().c_str());
    return kExitError;
  }
  auto bytes = ReadFileBytes(image_path);
  if (!bytes.ok()) {
    std::fprintf(stderr, "lowbit bench: %s (deploy/fetch-images.sh fetches the test images)\n",
                 bytes.status().ToString().c_str());
    return kExitError;
  }
  auto image = engine::DecodeImage(bytes->data(), bytes->size());
  if (!image.ok()) {
    std::fprintf(stderr, "lowbit bench: %s: %s\n", image_path.c_str(),
                 image.status().ToString().c_str());
    return kExitError;
  }
  std::vector<engine::NamedTensor> inputs = {{(*detector)->config().input().tensor_name(),
                                              engine::Tensor((*detector)->InputShape(batch))}};
  const int64_t frame_size = (*detector)->InputSizePerFrame();
  float* input_data = inputs[0].tensor.data();
  (*detector)->Preprocess(image->view(), input_data);
  for (int frame = 1; frame < batch; ++frame) {
    std::copy(input_data, input_data + frame_size, input_data + frame * frame_size);
  }

  auto session = (*detector)->model().CreateSession({.threads = threads});
  if (!session.ok()) {
    std::fprintf(stderr, "lowbit bench: %s\n", session.status().ToString().c_str());
    return kExitError;
  }
  std::vector<engine::NamedTensor> outputs;
  std::vector<double> samples_ms;
  samples_ms.reserve(runs);
  for (int run = 0; run < warmup + runs; ++run) {
    const auto start = std::chrono::steady_clock::now();
    const Status status = (*session)->Run(inputs, &outputs);
    const double elapsed_ms = MillisecondsSince(start);
    if (!status.ok()) {
      std::fprintf(stderr, "lowbit bench: inference failed: %s\n", status.ToString().c_str());
      return kExitError;
    }
    if (run >= warmup) samples_ms.push_back(elapsed_ms);
  }
  const LatencySummary summary = Summarize(samples_ms);
  const std::string shape = engine::ShapeToString(inputs[0].tensor.shape());
  if (json) {
    std::printf(
        "{\"model\": %s, \"image\": %s, \"input_shape\": %s, \"threads\": %d, \"batch\": %d, "
        "\"runs\": %d, \"warmup\": %d, \"median_ms\": %.4f, \"p90_ms\": %.4f, \"min_ms\": %.4f, "
        "\"mean_ms\": %.4f, \"max_ms\": %.4f}\n",
        JsonString(model_dir).c_str(), JsonString(image_path).c_str(), JsonString(shape).c_str(),
        threads, batch, runs, warmup, summary.median_ms, summary.p90_ms, summary.min_ms,
        summary.mean_ms, summary.max_ms);
  } else {
    std::printf("model %s, input %s, %d thread(s), %d runs after %d warm-up\n", model_dir.c_str(),
                shape.c_str(), threads, runs, warmup);
    std::printf("latency ms: median %.3f  p90 %.3f  min %.3f  mean %.3f  max %.3f\n",
                summary.median_ms, summary.p90_ms, summary.min_ms, summary.mean_ms, summary.max_ms);
    std::printf("throughput: %.1f frames/s at the median\n", 1000.0 * batch / summary.median_ms);
  }
  return kExitOk;
}

}  // namespace lowbit::cli
