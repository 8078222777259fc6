// lowbit bench MODEL_DIR: latency of Session::Run on a real pre-processed image,
// or (--frames) of the whole per-frame path a server worker runs.
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <string>
#include <system_error>
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

With --frames, times instead the whole path of one frame as a server worker
runs it, at batch 1: JPEG/PNG decode, pre-processing, inference and
post-processing (head decode + NMS), over the given image files in turn (all
files read into memory first). Prints p50, p90, p99, p99.9, min, mean and max
of the whole path and the p50 of each stage. This is the in-process baseline
that `lowbit-loadgen` subtracts from the gRPC latency.

Options:
  --threads N   threads inside one inference (default 1)
  --runs N      timed runs (default 30)
  --warmup N    untimed runs first (default 5)
  --batch N     frames per call (default 1)
  --image FILE  JPEG/PNG input (default data/images/dog.jpg, from
                deploy/fetch-images.sh)
  --frames PATH  time decode + pre-process + inference + post-process per
                frame over PATH: a directory (its .jpg/.jpeg/.png files by
                name) or one image file; --runs cycles through the files
  --max-frames N  with --frames: the first N files only (default all)
  --json        print one JSON object instead of text
)";

// Nearest-rank percentile of sorted samples, fraction in (0, 1].
double Percentile(const std::vector<double>& sorted, double fraction) {
  const size_t n = sorted.size();
  const size_t rank = static_cast<size_t>(std::ceil(fraction * static_cast<double>(n)));
  return sorted[std::clamp<size_t>(rank, 1, n) - 1];
}

struct LatencySummary {
  double median_ms, p90_ms, p99_ms, p999_ms, min_ms, mean_ms, max_ms;
  double p10_ms;  // a low percentile: the cost with the least interference on a shared machine
};

LatencySummary Summarize(std::vector<double> samples_ms) {
  std::sort(samples_ms.begin(), samples_ms.end());
  const size_t n = samples_ms.size();
  const double median =
      n % 2 ? samples_ms[n / 2] : 0.5 * (samples_ms[n / 2 - 1] + samples_ms[n / 2]);
  const double mean = std::accumulate(samples_ms.begin(), samples_ms.end(), 0.0) / n;
  return {median,
          Percentile(samples_ms, 0.9),
          Percentile(samples_ms, 0.99),
          Percentile(samples_ms, 0.999),
          samples_ms.front(),
          mean,
          samples_ms.back(),
          Percentile(samples_ms, 0.1)};
}

double Median(std::vector<double> samples) { return Summarize(std::move(samples)).median_ms; }

struct BenchOptions {
  std::string model_dir;
  std::string image_path = "data/images/dog.jpg";
  std::string frames_path;  // non-empty: the whole-frame mode
  int threads = 1, runs = 30, warmup = 5, batch = 1;
  int max_frames = 0;  // 0: every file
  bool json = false;
};

bool IsImageFile(const std::filesystem::path& path) {
  std::string extension = path.extension().string();
  for (char& c : extension) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return extension == ".jpg" || extension == ".jpeg" || extension == ".png";
}

// The image files of `path` (a directory: its images sorted by name; a file:
// itself), at most `max_frames` (0: all).
StatusOr<std::vector<std::string>> ListFrameFiles(const std::string& path, int max_frames) {
  std::error_code error;
  std::vector<std::string> files;
  if (std::filesystem::is_directory(path, error)) {
    for (const auto& entry : std::filesystem::directory_iterator(path, error)) {
      if (entry.is_regular_file() && IsImageFile(entry.path())) files.push_back(entry.path());
    }
    if (error) return NotFound("cannot list " + path + ": " + error.message());
    std::sort(files.begin(), files.end());
    if (files.empty()) return NotFound("no .jpg/.jpeg/.png files in " + path);
  } else if (std::filesystem::is_regular_file(path, error)) {
    files.push_back(path);
  } else {
    return NotFound(path + " is neither a directory of images nor an image file");
  }
  if (max_frames > 0 && static_cast<int>(files.size()) > max_frames) files.resize(max_frames);
  return files;
}

// Session::Run alone on one pre-processed image, replicated to the batch.
int BenchInference(const BenchOptions& options, const engine::DetectorModel& detector) {
  auto bytes = ReadFileBytes(options.image_path);
  if (!bytes.ok()) {
    std::fprintf(stderr, "lowbit bench: %s (deploy/fetch-images.sh fetches the test images)\n",
                 bytes.status().ToString().c_str());
    return kExitError;
  }
  auto image = engine::DecodeImage(bytes->data(), bytes->size());
  if (!image.ok()) {
    std::fprintf(stderr, "lowbit bench: %s: %s\n", options.image_path.c_str(),
                 image.status().ToString().c_str());
    return kExitError;
  }
  const int batch = options.batch;
  std::vector<engine::NamedTensor> inputs = {
      {detector.config().input().tensor_name(), engine::Tensor(detector.InputShape(batch))}};
  const int64_t frame_size = detector.InputSizePerFrame();
  float* input_data = inputs[0].tensor.data();
  detector.Preprocess(image->view(), input_data);
  for (int frame = 1; frame < batch; ++frame) {
    std::copy(input_data, input_data + frame_size, input_data + frame * frame_size);
  }

  auto session = detector.model().CreateSession({.threads = options.threads});
  if (!session.ok()) {
    std::fprintf(stderr, "lowbit bench: %s\n", session.status().ToString().c_str());
    return kExitError;
  }
  std::vector<engine::NamedTensor> outputs;
  std::vector<double> samples_ms;
  samples_ms.reserve(options.runs);
  for (int run = 0; run < options.warmup + options.runs; ++run) {
    const auto start = std::chrono::steady_clock::now();
    const Status status = (*session)->Run(inputs, &outputs);
    const double elapsed_ms = MillisecondsSince(start);
    if (!status.ok()) {
      std::fprintf(stderr, "lowbit bench: inference failed: %s\n", status.ToString().c_str());
      return kExitError;
    }
    if (run >= options.warmup) samples_ms.push_back(elapsed_ms);
  }
  const LatencySummary summary = Summarize(samples_ms);
  const std::string shape = engine::ShapeToString(inputs[0].tensor.shape());
  if (options.json) {
    std::printf(
        "{\"model\": %s, \"image\": %s, \"input_shape\": %s, \"threads\": %d, \"batch\": %d, "
        "\"runs\": %d, \"warmup\": %d, \"median_ms\": %.4f, \"p90_ms\": %.4f, \"min_ms\": %.4f, "
        "\"mean_ms\": %.4f, \"max_ms\": %.4f}\n",
        JsonString(options.model_dir).c_str(), JsonString(options.image_path).c_str(),
        JsonString(shape).c_str(), options.threads, batch, options.runs, options.warmup,
        summary.median_ms, summary.p90_ms, summary.min_ms, summary.mean_ms, summary.max_ms);
  } else {
    std::printf("model %s, input %s, %d thread(s), %d runs after %d warm-up\n",
                options.model_dir.c_str(), shape.c_str(), options.threads, options.runs,
                options.warmup);
    std::printf("latency ms: median %.3f  p90 %.3f  min %.3f  mean %.3f  max %.3f\n",
                summary.median_ms, summary.p90_ms, summary.min_ms, summary.mean_ms, summary.max_ms);
    std::printf("throughput: %.1f frames/s at the median\n", 1000.0 * batch / summary.median_ms);
  }
  return kExitOk;
}

// The whole per-frame path at batch 1, as a server worker runs it: decode,
// pre-process into the input tensor, Session::Run, post-process. Run r uses
// file r % files (warm-up runs included), so every file is decoded in turn.
int BenchFrames(const BenchOptions& options, const engine::DetectorModel& detector) {
  auto files = ListFrameFiles(options.frames_path, options.max_frames);
  if (!files.ok()) {
    std::fprintf(stderr, "lowbit bench: %s\n", files.status().ToString().c_str());
    return kExitError;
  }
  std::vector<std::vector<uint8_t>> encoded;
  encoded.reserve(files->size());
  int64_t encoded_bytes = 0;
  for (const std::string& file : *files) {
    auto bytes = ReadFileBytes(file);
    if (!bytes.ok()) {
      std::fprintf(stderr, "lowbit bench: %s\n", bytes.status().ToString().c_str());
      return kExitError;
    }
    encoded_bytes += static_cast<int64_t>(bytes->size());
    encoded.push_back(std::move(*bytes));
  }

  auto session = detector.model().CreateSession({.threads = options.threads});
  if (!session.ok()) {
    std::fprintf(stderr, "lowbit bench: %s\n", session.status().ToString().c_str());
    return kExitError;
  }
  const std::string& configured = detector.config().input().tensor_name();
  const std::string input_name =
      configured.empty() ? detector.model().inputs().at(0).name : configured;
  std::vector<engine::NamedTensor> inputs = {{input_name, engine::Tensor(detector.InputShape(1))}};
  std::vector<engine::NamedTensor> outputs;

  // Per timed run, milliseconds: whole path and each stage.
  std::vector<double> total_ms, decode_ms, preprocess_ms, inference_ms, postprocess_ms;
  for (auto* samples : {&total_ms, &decode_ms, &preprocess_ms, &inference_ms, &postprocess_ms}) {
    samples->reserve(options.runs);
  }
  int width = 0, height = 0;
  int64_t detections = 0;
  // Buffers reused from frame to frame, as lowbitd's workers do.
  engine::Image frame;
  engine::Image* image = &frame;
  for (int run = 0; run < options.warmup + options.runs; ++run) {
    const std::vector<uint8_t>& bytes = encoded[run % encoded.size()];
    const auto start = std::chrono::steady_clock::now();
    const Status decode = engine::DecodeImageInto(bytes.data(), bytes.size(), image);
    if (!decode.ok()) {
      std::fprintf(stderr, "lowbit bench: %s: %s\n", (*files)[run % encoded.size()].c_str(),
                   decode.ToString().c_str());
      return kExitError;
    }
    const auto decoded = std::chrono::steady_clock::now();
    detector.Preprocess(image->view(), inputs[0].tensor.data());
    const auto preprocessed = std::chrono::steady_clock::now();
    const Status status = (*session)->Run(inputs, &outputs);
    if (!status.ok()) {
      std::fprintf(stderr, "lowbit bench: inference failed: %s\n", status.ToString().c_str());
      return kExitError;
    }
    const auto inferred = std::chrono::steady_clock::now();
    const std::vector<engine::Detection> found =
        detector.Postprocess(outputs, 0, image->width, image->height);
    const auto done = std::chrono::steady_clock::now();
    if (run < options.warmup) continue;
    const auto ms = [](auto from, auto to) {
      return std::chrono::duration<double, std::milli>(to - from).count();
    };
    total_ms.push_back(ms(start, done));
    decode_ms.push_back(ms(start, decoded));
    preprocess_ms.push_back(ms(decoded, preprocessed));
    inference_ms.push_back(ms(preprocessed, inferred));
    postprocess_ms.push_back(ms(inferred, done));
    width = image->width;
    height = image->height;
    detections += static_cast<int64_t>(found.size());
  }
  const LatencySummary summary = Summarize(total_ms);
  const double decode = Median(decode_ms), preprocess = Median(preprocess_ms),
               inference = Median(inference_ms), postprocess = Median(postprocess_ms);
  const double mean_detections = static_cast<double>(detections) / options.runs;
  if (options.json) {
    std::printf(
        "{\"mode\": \"frames\", \"model\": %s, \"frames_path\": %s, \"frames\": %zu, "
        "\"mean_encoded_bytes\": %lld, \"image_width\": %d, \"image_height\": %d, "
        "\"threads\": %d, \"batch\": 1, \"runs\": %d, \"warmup\": %d, \"p50_ms\": %.4f, "
        "\"p90_ms\": %.4f, \"p99_ms\": %.4f, \"p999_ms\": %.4f, \"min_ms\": %.4f, "
        "\"mean_ms\": %.4f, \"max_ms\": %.4f, \"p10_ms\": %.4f, \"stages_p50_ms\": {\"decode\": "
        "%.4f, "
        "\"preprocess\": %.4f, \"inference\": %.4f, \"postprocess\": %.4f}, "
        "\"mean_detections\": %.3f}\n",
        JsonString(options.model_dir).c_str(), JsonString(options.frames_path).c_str(),
        encoded.size(),
        static_cast<long long>(encoded_bytes / static_cast<int64_t>(encoded.size())), width, height,
        options.threads, options.runs, options.warmup, summary.median_ms, summary.p90_ms,
        summary.p99_ms, summary.p999_ms, summary.min_ms, summary.mean_ms, summary.max_ms,
        summary.p10_ms, decode, preprocess, inference, postprocess, mean_detections);
  } else {
    std::printf(
        "model %s, %zu frame(s) from %s (%dx%d), batch 1, %d thread(s), %d runs after %d "
        "warm-up\n",
        options.model_dir.c_str(), encoded.size(), options.frames_path.c_str(), width, height,
        options.threads, options.runs, options.warmup);
    std::printf(
        "per frame ms: p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  min %.3f  mean %.3f  max %.3f\n",
        summary.median_ms, summary.p90_ms, summary.p99_ms, summary.p999_ms, summary.min_ms,
        summary.mean_ms, summary.max_ms);
    std::printf("stage p50 ms: decode %.3f  preprocess %.3f  inference %.3f  postprocess %.3f\n",
                decode, preprocess, inference, postprocess);
    std::printf("throughput: %.1f frames/s at the p50 (one thread of work)\n",
                1000.0 / summary.median_ms);
  }
  return kExitOk;
}

}  // namespace

int BenchCommand(int argc, char** argv) {
  constexpr const char* kCommand = "bench";
  BenchOptions options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kBenchUsage, stdout);
      return kExitOk;
    }
    if (arg == "--json") {
      options.json = true;
    } else if (arg == "--threads" || arg == "--runs" || arg == "--warmup" || arg == "--batch" ||
               arg == "--image" || arg == "--frames" || arg == "--max-frames") {
      const char* value = FlagValue(kCommand, argc, argv, &i);
      if (value == nullptr) return kExitUsage;
      bool ok = true;
      if (arg == "--threads")
        ok = ParseIntFlag(kCommand, "--threads", value, 1, 256, &options.threads);
      if (arg == "--runs") ok = ParseIntFlag(kCommand, "--runs", value, 1, 1000000, &options.runs);
      if (arg == "--warmup")
        ok = ParseIntFlag(kCommand, "--warmup", value, 0, 1000000, &options.warmup);
      if (arg == "--batch") ok = ParseIntFlag(kCommand, "--batch", value, 1, 1024, &options.batch);
      if (arg == "--max-frames") {
        ok = ParseIntFlag(kCommand, "--max-frames", value, 1, 1000000, &options.max_frames);
      }
      if (arg == "--image") options.image_path = value;
      if (arg == "--frames") options.frames_path = value;
      if (!ok) return kExitUsage;
    } else if (arg.size() > 1 && arg[0] == '-') {
      std::fprintf(stderr, "lowbit bench: unknown option '%s'\n\n%s", arg.c_str(), kBenchUsage);
      return kExitUsage;
    } else if (options.model_dir.empty()) {
      options.model_dir = arg;
    } else {
      std::fprintf(stderr, "lowbit bench: unexpected argument '%s'\n\n%s", arg.c_str(),
                   kBenchUsage);
      return kExitUsage;
    }
  }
  if (options.model_dir.empty()) {
    std::fprintf(stderr, "lowbit bench: need MODEL_DIR\n\n%s", kBenchUsage);
    return kExitUsage;
  }
  if (!options.frames_path.empty() && options.batch != 1) {
    std::fprintf(stderr, "lowbit bench: --frames times one frame per call; drop --batch\n");
    return kExitUsage;
  }
  if (options.frames_path.empty() && options.max_frames != 0) {
    std::fprintf(stderr, "lowbit bench: --max-frames needs --frames\n");
    return kExitUsage;
  }

  auto detector = engine::DetectorModel::Load(options.model_dir);
  if (!detector.ok()) {
    std::fprintf(stderr, "lowbit bench: %s\n", detector.status().ToString().c_str());
    return kExitError;
  }
  return options.frames_path.empty() ? BenchInference(options, **detector)
                                     : BenchFrames(options, **detector);
}

}  // namespace lowbit::cli
