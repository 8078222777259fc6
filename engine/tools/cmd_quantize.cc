// lowbit quantize MODEL_DIR --calib DIR|VIDEO -o OUT_DIR [options]
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "cli_util.h"
#include "commands.h"
#include "lowbit/engine/quantize.h"

namespace lowbit::cli {
namespace {

constexpr const char* kCommand = "quantize";

constexpr const char* kQuantizeUsage =
    R"(usage: lowbit quantize MODEL_DIR --calib DIR|VIDEO -o OUT_DIR [options]

Post-training quantization of an FP32 model repository entry. Calibration
frames (a directory of JPEG/PNG images, the first N by name; or a video file,
N frames spread evenly over it) go through the entry's own pre-processing and
the FP32 model; each activation tensor gets a per-tensor grid and each conv's
weights a per-output-channel grid. OUT_DIR becomes a new entry: model.onnx
(QCDQ: QuantizeLinear -> Clip -> DequantizeLinear, which ONNX Runtime runs
too), config.pbtxt, labels.txt, and quantize-report.txt / .json (per-layer
bits, scales, errors, sensitivities). Serve it with lowbitd or compile it
with `lowbit compile`.

  --frames N              calibration frames (default 32)
  --wbits B, --abits B    inner layers' weight / activation bits, 1..8 / 2..8
                          (default 8 / 8)
  --first-last-bits B     the first conv and the convs that make the outputs
                          (default 8)
  --method M              scale choice: mse (default: least mean-squared
                          error, searched over clipping ranges), minmax, or
                          percentile
  --percentile P          with --method percentile (default 99.99)
  --no-bias-correction    keep each conv's bias as it is (default: shift it by
                          the weights' quantization error times the mean
                          calibration input, so the outputs keep their mean)
  --rounding R            gptq (default: error-compensating; each input's
                          rounding error is spread over the inputs not yet
                          rounded, weighted by the calibration inputs' second
                          moments, so each conv's outputs stay close; convs
                          without groups, below 8 bits) or nearest (each
                          weight to its nearest code)
  --residual-threshold T  layers whose weight relative squared error is above
                          T get a second, residual weight tensor (the two run
                          as two low-bit convolutions in one accumulator)
  --residual-bits B       bits of the residual tensor (default 2)
  --weight-budget BYTES   mixed precision: bits per inner layer so that the
                          model's weights fit BYTES (as lowbit stores them;
                          suffixes k, M: 1000, 1000000)
  --latency-budget MS     mixed precision: bits per inner layer so that one
                          frame takes at most MS on this CPU
  --mixed-rule R          sensitivity (default: least total output error,
                          per-layer sensitivities measured on the calibration
                          frames, exact knapsack) or largest-layer (lower the
                          layer with the largest share of the cost first)
  --candidates LIST       mixed candidates, e.g. 8/8,4/8,4/4,2/4,2/2 (default)
  --threads N             inference threads (default 1)
)";

bool ParseBytes(const char* text, int64_t* bytes) {
  char* end = nullptr;
  const double value = std::strtod(text, &end);
  double scale = 1;
  if (end && *end == 'k')
    scale = 1e3, ++end;
  else if (end && *end == 'M')
    scale = 1e6, ++end;
  if (end == text || *end != '\0' || !(value > 0)) return false;
  *bytes = static_cast<int64_t>(value * scale);
  return true;
}

bool ParseCandidates(const std::string& text, std::vector<std::pair<int, int>>* candidates) {
  candidates->clear();
  size_t at = 0;
  while (at < text.size()) {
    const size_t comma = text.find(',', at);
    const std::string item =
        text.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
    int w = 0, a = 0;
    char tail = 0;
    if (std::sscanf(item.c_str(), "%d/%d%c", &w, &a, &tail) != 2) return false;
    candidates->push_back({w, a});
    if (comma == std::string::npos) break;
    at = comma + 1;
  }
  return !candidates->empty();
}

// A progress bar on a terminal; one line per finished stage otherwise.
void ShowProgress(const std::string& stage, int done, int total) {
  static std::string last_stage;
  static const bool terminal = isatty(fileno(stderr));
  if (terminal) {
    constexpr int kWidth = 30;
    const int filled = total > 0 ? kWidth * done / total : kWidth;
    std::fprintf(stderr, "\r%-26s [%.*s%*s] %d/%d", stage.c_str(), filled,
                 "##############################", kWidth - filled, "", done, total);
    if (done >= total) std::fputc('\n', stderr);
  } else if (done >= total && stage != last_stage) {
    std::fprintf(stderr, "lowbit quantize: %s: %d/%d done\n", stage.c_str(), done, total);
  }
  if (done >= total) last_stage = stage;
  std::fflush(stderr);
}

}  // namespace

int QuantizeCommand(int argc, char** argv) {
  engine::QuantizeOptions options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kQuantizeUsage, stdout);
      return kExitOk;
    }
    if (arg == "--bias-correction" || arg == "--no-bias-correction") {
      options.bias_correction = arg == "--bias-correction";
      continue;
    }
    if (!arg.empty() && arg[0] == '-') {
      const char* value = FlagValue(kCommand, argc, argv, &i);
      if (value == nullptr) return kExitUsage;
      bool ok = true;
      float f = 0;
      if (arg == "--calib")
        options.calibration = value;
      else if (arg == "-o" || arg == "--output")
        options.output_dir = value;
      else if (arg == "--frames")
        ok = ParseIntFlag(kCommand, "--frames", value, 1, 100000, &options.frames);
      else if (arg == "--wbits")
        ok = ParseIntFlag(kCommand, "--wbits", value, 1, 8, &options.weight_bits);
      else if (arg == "--abits")
        ok = ParseIntFlag(kCommand, "--abits", value, 2, 8, &options.activation_bits);
      else if (arg == "--first-last-bits")
        ok = ParseIntFlag(kCommand, "--first-last-bits", value, 2, 8, &options.first_last_bits);
      else if (arg == "--residual-bits")
        ok = ParseIntFlag(kCommand, "--residual-bits", value, 1, 8, &options.residual_bits);
      else if (arg == "--threads")
        ok = ParseIntFlag(kCommand, "--threads", value, 1, 256, &options.threads);
      else if (arg == "--percentile") {
        ok = ParseFloatFlag(kCommand, "--percentile", value, 50, 100, &f);
        options.percentile = f;
      } else if (arg == "--residual-threshold") {
        ok = ParseFloatFlag(kCommand, "--residual-threshold", value, 0, 1, &f);
        options.residual_threshold = f;
      } else if (arg == "--latency-budget") {
        ok = ParseFloatFlag(kCommand, "--latency-budget", value, 0.001f, 1e6f, &f);
        options.latency_budget_ms = f;
      } else if (arg == "--weight-budget") {
        ok = ParseBytes(value, &options.weight_budget_bytes);
        if (!ok)
          std::fprintf(stderr, "lowbit quantize: --weight-budget needs a byte count, got '%s'\n",
                       value);
      } else if (arg == "--method") {
        const std::string m = value;
        if (m == "mse")
          options.method = engine::ScaleMethod::kMse;
        else if (m == "minmax")
          options.method = engine::ScaleMethod::kMinMax;
        else if (m == "percentile")
          options.method = engine::ScaleMethod::kPercentile;
        else
          ok = false;
        if (!ok)
          std::fprintf(stderr, "lowbit quantize: --method is mse, minmax or percentile, got '%s'\n",
                       value);
      } else if (arg == "--rounding") {
        const std::string r = value;
        if (r == "nearest")
          options.rounding = engine::WeightRounding::kNearest;
        else if (r == "gptq")
          options.rounding = engine::WeightRounding::kErrorCompensating;
        else
          ok = false;
        if (!ok)
          std::fprintf(stderr, "lowbit quantize: --rounding is nearest or gptq, got '%s'\n", value);
      } else if (arg == "--mixed-rule") {
        const std::string r = value;
        if (r == "sensitivity")
          options.mixed_rule = engine::MixedRule::kSensitivity;
        else if (r == "largest-layer")
          options.mixed_rule = engine::MixedRule::kLargestLayer;
        else
          ok = false;
        if (!ok)
          std::fprintf(stderr,
                       "lowbit quantize: --mixed-rule is sensitivity or largest-layer, got '%s'\n",
                       value);
      } else if (arg == "--candidates") {
        ok = ParseCandidates(value, &options.mixed_candidates);
        if (!ok)
          std::fprintf(stderr,
                       "lowbit quantize: --candidates needs W/A pairs like 8/8,4/4, got '%s'\n",
                       value);
      } else {
        std::fprintf(stderr, "lowbit quantize: unknown option '%s'\n\n%s", arg.c_str(),
                     kQuantizeUsage);
        return kExitUsage;
      }
      if (!ok) return kExitUsage;
    } else if (options.model_dir.empty()) {
      options.model_dir = arg;
    } else {
      std::fprintf(stderr, "lowbit quantize: one MODEL_DIR only, got '%s' too\n", arg.c_str());
      return kExitUsage;
    }
  }
  if (options.model_dir.empty() || options.calibration.empty() || options.output_dir.empty()) {
    std::fprintf(stderr, "lowbit quantize: MODEL_DIR, --calib and -o are required\n\n%s",
                 kQuantizeUsage);
    return kExitUsage;
  }
  auto report = engine::QuantizeEntry(options, ShowProgress);
  if (!report.ok()) {
    std::fprintf(stderr, "lowbit quantize: %s\n", report.status().ToString().c_str());
    return kExitError;
  }
  std::fputs(report->ToText().c_str(), stdout);
  std::printf(
      "wrote %s (config.pbtxt, labels.txt, quantize-report.txt, quantize-report.json beside it)\n",
      report->output_model.c_str());
  return kExitOk;
}

}  // namespace lowbit::cli
