// lowbit run MODEL_DIR IMAGE... : detections per image, with timings.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "cli_util.h"
#include "commands.h"
#include "lowbit/engine/detector.h"
#include "lowbit/engine/npy.h"

namespace lowbit::cli {
namespace {

constexpr const char* kRunUsage = R"(usage: lowbit run MODEL_DIR IMAGE... [options]

Detects objects in JPEG/PNG images with a model repository entry
(MODEL_DIR/config.pbtxt + its model_file: an ONNX file, compiled at load, or
a .lbm from `lowbit compile`, loaded as it is; e.g. models/nanodet-g) and
prints one line per detection: label, score, box [x_min, y_min, x_max,
y_max] in the original image's pixels; then the time spent in each stage.

Options:
  --threads N   threads inside one inference (default 1)
  --score T     score threshold in (0, 1] (default: the model config's); a low
                one (e.g. 0.05) lists the ranked candidates mAP needs, still
                after NMS and capped at the config's max_detections
  --iou T       NMS IoU threshold in (0, 1] (default: the model config's)
  --dump DIR    write the pre-processed input tensor (DIR/input.npy) and every
                raw model output (DIR/<output name>.npy); one IMAGE only
  --json        instead of text, one JSON object per IMAGE and line on stdout:
                {"path", "width", "height", "detections": [{"label",
                "class_id", "score", "box": [x_min, y_min, x_max, y_max]}],
                "time_ms": {"decode", "preprocess", "inference",
                "postprocess"}}, detections by falling score; an image that
                fails is {"path", "error"}. The model line goes to stderr.
)";

// A float as JSON: 9 significant digits (round-trips a float32), null when
// not finite (JSON has no NaN or infinity).
std::string JsonNumber(float value) {
  if (!std::isfinite(value)) return "null";
  char text[32];
  std::snprintf(text, sizeof text, "%.9g", value);
  return text;
}

// One image's result as a single line of JSON.
std::string DetectionsJson(const std::string& path, int width, int height,
                           const std::vector<engine::Detection>& detections,
                           const double (&times_ms)[4]) {
  std::string json = "{\"path\": " + JsonString(path) + ", \"width\": " + std::to_string(width) +
                     ", \"height\": " + std::to_string(height) + ", \"detections\": [";
  for (size_t i = 0; i < detections.size(); ++i) {
    const engine::Detection& d = detections[i];
    json += (i > 0 ? ", " : "");
    json += "{\"label\": " + JsonString(d.label) + ", \"class_id\": " + std::to_string(d.class_id) +
            ", \"score\": " + JsonNumber(d.score) + ", \"box\": [" + JsonNumber(d.box.x_min) +
            ", " + JsonNumber(d.box.y_min) + ", " + JsonNumber(d.box.x_max) + ", " +
            JsonNumber(d.box.y_max) + "]}";
  }
  char times[160];
  std::snprintf(times, sizeof times,
                "], \"time_ms\": {\"decode\": %.3f, \"preprocess\": %.3f, \"inference\": %.3f, "
                "\"postprocess\": %.3f}}",
                times_ms[0], times_ms[1], times_ms[2], times_ms[3]);
  return json + times;
}

// Output names may contain '/' (TensorFlow scopes); keep files in DIR.
std::string FileNameFor(std::string name) {
  for (char& c : name) {
    if (c == '/' || c == '\\') c = '_';
  }
  return name + ".npy";
}

Status DumpTensors(const std::string& directory, const engine::NamedTensor& input,
                   const std::vector<engine::NamedTensor>& outputs) {
  std::error_code error;
  std::filesystem::create_directories(directory, error);
  if (error) return InvalidArgument("cannot create " + directory + ": " + error.message());
  const auto path = [&](const std::string& file) {
    return (std::filesystem::path(directory) / file).string();
  };
  LOWBIT_RETURN_IF_ERROR(engine::WriteNpy(path("input.npy"), input.tensor));
  for (const engine::NamedTensor& output : outputs) {
    LOWBIT_RETURN_IF_ERROR(engine::WriteNpy(path(FileNameFor(output.name)), output.tensor));
  }
  return Status::Ok();
}

}  // namespace

int RunCommand(int argc, char** argv) {
  constexpr const char* kCommand = "run";
  std::vector<std::string> positional;
  int threads = 1;
  engine::DetectOptions options;
  std::string dump_directory;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kRunUsage, stdout);
      return kExitOk;
    }
    if (arg == "--json") {
      json = true;
      continue;
    }
    if (arg == "--threads" || arg == "--score" || arg == "--iou" || arg == "--dump") {
      const char* value = FlagValue(kCommand, argc, argv, &i);
      if (value == nullptr) return kExitUsage;
      bool ok = true;
      if (arg == "--threads") ok = ParseIntFlag(kCommand, "--threads", value, 1, 256, &threads);
      if (arg == "--score") {
        ok = ParseFloatFlag(kCommand, "--score", value, 1e-6f, 1, &options.score_threshold);
      }
      if (arg == "--iou") {
        ok = ParseFloatFlag(kCommand, "--iou", value, 1e-6f, 1, &options.iou_threshold);
      }
      if (arg == "--dump") dump_directory = value;
      if (!ok) return kExitUsage;
    } else if (arg.size() > 1 && arg[0] == '-') {
      std::fprintf(stderr, "lowbit run: unknown option '%s'\n\n%s", arg.c_str(), kRunUsage);
      return kExitUsage;
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() < 2) {
    std::fprintf(stderr, "lowbit run: need MODEL_DIR and at least one IMAGE\n\n%s", kRunUsage);
    return kExitUsage;
  }
  if (!dump_directory.empty() && positional.size() != 2) {
    std::fprintf(stderr, "lowbit run: --dump writes one image's tensors; give a single IMAGE\n");
    return kExitUsage;
  }

  auto start = std::chrono::steady_clock::now();
  auto detector = engine::DetectorModel::Load(positional[0]);
  if (!detector.ok()) {
    std::fprintf(stderr, "lowbit run: %s\n", detector.status().ToString().c_str());
    return kExitError;
  }
  const double load_ms = MillisecondsSince(start);
  auto session = (*detector)->model().CreateSession({.threads = threads});
  if (!session.ok()) {
    std::fprintf(stderr, "lowbit run: %s\n", session.status().ToString().c_str());
    return kExitError;
  }
  // With --json stdout carries only the per-image objects.
  FILE* const text_out = json ? stderr : stdout;
  std::fprintf(
      text_out, "model %s (%s), input %s, loaded in %.1f ms (%s), %d thread(s)\n",
      positional[0].c_str(), (*detector)->config().name().c_str(),
      engine::ShapeToString((*detector)->InputShape(1)).c_str(), load_ms,
      (*detector)->model().origin().precompiled ? "compiled .lbm" : "ONNX compiled at load",
      threads);

  int failures = 0;
  for (size_t i = 1; i < positional.size(); ++i) {
    const std::string& image_path = positional[i];
    start = std::chrono::steady_clock::now();
    auto bytes = ReadFileBytes(image_path);
    StatusOr<engine::Image> image =
        bytes.ok() ? engine::DecodeImage(bytes->data(), bytes->size()) : bytes.status();
    if (!image.ok()) {
      std::fprintf(stderr, "lowbit run: %s: %s\n", image_path.c_str(),
                   image.status().ToString().c_str());
      if (json) {
        std::printf("{\"path\": %s, \"error\": %s}\n", JsonString(image_path).c_str(),
                    JsonString(image.status().ToString()).c_str());
      }
      ++failures;
      continue;
    }
    const double decode_ms = MillisecondsSince(start);

    start = std::chrono::steady_clock::now();
    engine::NamedTensor input{(*detector)->config().input().tensor_name(),
                              engine::Tensor((*detector)->InputShape(1))};
    (*detector)->Preprocess(image->view(), input.tensor.data());
    const double preprocess_ms = MillisecondsSince(start);

    start = std::chrono::steady_clock::now();
    std::vector<engine::NamedTensor> outputs;
    const Status run_status = (*session)->Run({input}, &outputs);
    const double inference_ms = MillisecondsSince(start);
    if (!run_status.ok()) {
      std::fprintf(stderr, "lowbit run: %s: inference failed: %s\n", image_path.c_str(),
                   run_status.ToString().c_str());
      if (json) {
        std::printf("{\"path\": %s, \"error\": %s}\n", JsonString(image_path).c_str(),
                    JsonString("inference failed: " + run_status.ToString()).c_str());
      }
      ++failures;
      continue;
    }

    start = std::chrono::steady_clock::now();
    const std::vector<engine::Detection> detections =
        (*detector)->Postprocess(outputs, 0, image->width, image->height, options);
    const double postprocess_ms = MillisecondsSince(start);

    if (json) {
      const double times_ms[4] = {decode_ms, preprocess_ms, inference_ms, postprocess_ms};
      std::printf(
          "%s\n",
          DetectionsJson(image_path, image->width, image->height, detections, times_ms).c_str());
      std::fflush(stdout);  // a reader sees each image as it is done
    } else {
      const bool classes = (*detector)->is_classifier();
      std::printf("%s: %dx%d, %zu %s\n", image_path.c_str(), image->width, image->height,
                  detections.size(), classes ? "class(es)" : "detection(s)");
      for (const engine::Detection& detection : detections) {
        if (detection.whole_image) {
          std::printf("  %-16s %.3f  (whole image)\n", detection.label.c_str(), detection.score);
          continue;
        }
        std::printf("  %-16s %.3f  [%.1f, %.1f, %.1f, %.1f]\n", detection.label.c_str(),
                    detection.score, detection.box.x_min, detection.box.y_min, detection.box.x_max,
                    detection.box.y_max);
      }
      std::printf("  time ms: decode %.2f, preprocess %.2f, inference %.2f, postprocess %.2f\n",
                  decode_ms, preprocess_ms, inference_ms, postprocess_ms);
    }

    if (!dump_directory.empty()) {
      const Status dumped = DumpTensors(dump_directory, input, outputs);
      if (!dumped.ok()) {
        std::fprintf(stderr, "lowbit run: --dump: %s\n", dumped.ToString().c_str());
        return kExitError;
      }
      std::fprintf(text_out, "  wrote %s/input.npy and %zu output(s)\n", dump_directory.c_str(),
                   outputs.size());
    }
  }
  return failures == 0 ? kExitOk : kExitError;
}

}  // namespace lowbit::cli
