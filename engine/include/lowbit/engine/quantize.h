// Post-training quantization of an FP32 model repository entry (`lowbit
// quantize`): calibration frames through the entry's own pre-processing,
// scales per weight channel and per activation tensor, bits per layer
// (uniform, or mixed under a weight-memory or latency budget), the MMSE
// paper's residual weight pairs for poorly approximated layers; written as a
// QCDQ ONNX model (ONNX Runtime runs it; `lowbit compile` and lowbitd take
// it) with the entry's config and a report. lowbit_quantizer library.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "lowbit/engine/status.h"

namespace lowbit::engine {

enum class ScaleMethod { kMinMax, kPercentile, kMse };
// How bits are chosen per layer under a budget (QuantizeOptions::mixed_rule).
enum class MixedRule {
  // Least total sensitivity under the budget: exact multiple-choice knapsack
  // by dynamic programming over the (rounded-up) cost.
  kSensitivity,
  // The memory-driven rule: while over budget, lower the bits of the layer
  // holding the largest share of the weight bytes.
  kLargestLayer,
};

// How weights are rounded onto their grid (QuantizeOptions::rounding).
enum class WeightRounding {
  kNearest,  // each weight to its nearest code
  // Error-compensating (GPTQ): input by input, each rounding error spread
  // over the inputs not yet rounded, weighted by the calibration inputs'
  // second moments, so the conv's outputs stay close rather than its
  // weights. For convs without groups below 8 bits.
  kErrorCompensating,
};

struct QuantizeOptions {
  std::string model_dir;    // an FP32 entry: config.pbtxt + model.onnx
  std::string calibration;  // a directory of JPEG/PNG images, or a video file
  int frames = 32;          // calibration frames (images: the first N by name;
                            // video: frames floor(i * total / N), i = 0..N-1)
  std::string output_dir;   // the new entry; its name is the directory's name

  int weight_bits = 8;      // inner layers, 1..8
  int activation_bits = 8;  // inner layers' inputs, 1..8
  int first_last_bits = 8;  // the first conv and the convs that make outputs
  ScaleMethod method = ScaleMethod::kMse;
  double percentile = 99.99;  // ScaleMethod::kPercentile
  bool bias_correction = true;
  WeightRounding rounding = WeightRounding::kErrorCompensating;

  // Residual pairs: layers whose weight relative squared error
  // sum (w - q s)^2 / sum w^2 at their bits is above the threshold get a
  // second tensor of residual_bits (<= 0 disables).
  double residual_threshold = 0;
  int residual_bits = 2;

  // Mixed precision: at most one budget > 0. Candidates per inner layer are
  // the (weight, activation) bit pairs in `mixed_candidates`.
  int64_t weight_budget_bytes = 0;
  double latency_budget_ms = 0;
  MixedRule mixed_rule = MixedRule::kSensitivity;
  std::vector<std::pair<int, int>> mixed_candidates = {{8, 8}, {4, 8}, {4, 4}, {2, 4}, {2, 2}};
  int threads = 1;  // inference threads for calibration and sensitivity runs
};

// Called with a stage name and progress done/total (e.g. frames or layers).
using QuantizeProgress = std::function<void(const std::string& stage, int done, int total)>;

struct QuantizedLayerReport {
  std::string name;  // the Conv node
  int weight_bits = 8, activation_bits = 8;
  int residual_bits = 0;             // 0: one weight tensor
  double weight_relative_error = 0;  // sum (w - wq)^2 / sum w^2, pair included
  float input_scale = 0;
  int input_zero_point = 0;
  float input_lo = 0, input_hi = 0;        // clipping range
  float observed_lo = 0, observed_hi = 0;  // calibration min/max
  int64_t weight_bytes = 0;                // as lowbit stores it
  double sensitivity = -1;                 // at the chosen bits (mixed only)
  std::vector<std::pair<std::string, double>> candidate_sensitivity;  // "W4A4" -> value
};

struct QuantizeReport {
  std::string source_model, output_model;
  std::vector<std::string> calibration_frames;  // file names or "VIDEO#index"
  std::vector<int> calibration_frame_indices;   // video only
  std::vector<QuantizedLayerReport> layers;
  int64_t weight_bytes = 0, fp32_weight_bytes = 0, w8_weight_bytes = 0;
  double latency_ms = -1, fp32_latency_ms = -1;  // measured here, when a latency budget is given
  double output_error = -1;  // relative squared error of the outputs vs FP32 on calibration frames
  std::string machine;       // kernel ISA and CPU model
  std::vector<std::string> notes;

  std::string ToText() const;
  std::string ToJson() const;
};

// Writes options.output_dir/{model.onnx, config.pbtxt, labels.txt,
// quantize-report.txt, quantize-report.json}.
StatusOr<QuantizeReport> QuantizeEntry(const QuantizeOptions& options,
                                       const QuantizeProgress& progress = {});

}  // namespace lowbit::engine
