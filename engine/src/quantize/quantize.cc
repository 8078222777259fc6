// `lowbit quantize`: FP32 entry -> calibrated QCDQ entry (see
// lowbit/engine/quantize.h). Stages: read the entry and the calibration
// frames; calibrate (ranges and histograms of the FP32 model's tensors);
// choose bits per layer (uniform, or mixed under a budget from measured
// sensitivities and costs); choose grids; write and verify the model.
#include <google/protobuf/text_format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <tuple>

#include "format/lbm.h"
#include "lowbit/engine/quantize.h"
#include "quantize/calibration.h"
#include "quantize/gptq.h"
#include "quantize/mixed.h"
#include "quantize/qcdq.h"
#include "runtime/compiled_model.h"
#include "vision/config.h"

namespace lowbit::engine {
namespace quantize {
namespace {

namespace fs = std::filesystem;

RangeMethod ToRangeMethod(ScaleMethod method) {
  switch (method) {
    case ScaleMethod::kMinMax:
      return RangeMethod::kMinMax;
    case ScaleMethod::kPercentile:
      return RangeMethod::kPercentile;
    case ScaleMethod::kMse:
      return RangeMethod::kMse;
  }
  return RangeMethod::kMse;
}

std::string BitsName(int weight_bits, int activation_bits, int residual_bits = 0) {
  std::string name = "W" + std::to_string(weight_bits);
  if (residual_bits) name += "+" + std::to_string(residual_bits);
  return name + "A" + std::to_string(activation_bits);
}

// A compiled candidate and what it computes on the calibration frames.
struct Evaluation {
  std::shared_ptr<const Model> model;
  double output_error = 0;
};

// Input patches a conv reads, for the convs error-compensating rounding
// handles: group 1, explicit pads.
std::optional<PatchGeometry> PatchGeometryOf(const onnx::NodeProto& conv,
                                             const onnx::TensorProto& weights) {
  PatchGeometry g;
  g.channels = weights.dims(1);
  g.kernel_h = weights.dims(2);
  g.kernel_w = weights.dims(3);
  for (const auto& a : conv.attribute()) {
    if (a.name() == "group" && a.i() != 1) return std::nullopt;
    if (a.name() == "auto_pad" && a.s() != "NOTSET") return std::nullopt;
    if (a.name() == "strides" && a.ints_size() == 2) g.stride_h = a.ints(0), g.stride_w = a.ints(1);
    if (a.name() == "dilations" && a.ints_size() == 2)
      g.dilation_h = a.ints(0), g.dilation_w = a.ints(1);
    if (a.name() == "pads" && a.ints_size() == 4)
      g.pad_top = a.ints(0), g.pad_left = a.ints(1), g.pad_bottom = a.ints(2),
      g.pad_right = a.ints(3);
  }
  return g;
}

// Patches per frame and conv that error-compensating rounding samples.
constexpr int kPatchesPerFrame = 128;

class Quantizer {
 public:
  Quantizer(const QuantizeOptions& options, const QuantizeProgress& progress)
      : options_(options), progress_(progress) {}

  StatusOr<QuantizeReport> Run();

 private:
  Status Validate() const;
  Status Prepare();
  const ActivationGrid& Grid(const std::pair<std::string, int>& key);
  StatusOr<QuantizedWeights> Weights(const ConvLayer& conv, const LayerBits& bits);
  StatusOr<QcdqPlan> Plan(const std::map<std::string, LayerBits>& bits);
  StatusOr<onnx::ModelProto> Write(const std::map<std::string, LayerBits>& bits,
                                   const std::string& description);
  StatusOr<Evaluation> Evaluate(const std::map<std::string, LayerBits>& bits, size_t frames);
  StatusOr<Evaluation> EvaluateModel(const onnx::ModelProto& model, size_t frames);
  std::map<std::string, LayerBits> UniformBits() const;
  Status AddResiduals(std::map<std::string, LayerBits>* bits);
  StatusOr<std::map<std::string, LayerBits>> MixedBits(QuantizeReport* report);
  StatusOr<double> MeasureLatencyMs(const Model& model);
  Status WriteEntry(const onnx::ModelProto& model, const QuantizeReport& report);
  void Progress(const std::string& stage, int done, int total) const {
    if (progress_) progress_(stage, done, total);
  }

  const QuantizeOptions& options_;
  const QuantizeProgress& progress_;
  v1::ModelConfig config_;
  std::string input_name_, model_path_;
  onnx::ModelProto model_;
  std::optional<QuantizationSites> sites_;
  CalibrationFrames frames_;
  Calibration calibration_;
  std::map<std::pair<std::string, int>, ActivationGrid> grids_;
  std::map<std::string, PatchMoments> moments_;  // per conv name, for error-compensating rounding
  // Per (conv, weight bits, residual bits): weights depend on nothing else.
  std::map<std::tuple<std::string, int, int>, QuantizedWeights> weights_cache_;
  std::map<std::string, double> sensitivity_;  // per conv name: loss at the chosen bits
  std::map<std::string, std::vector<std::pair<std::string, double>>> candidate_sensitivity_;
};

Status Quantizer::Validate() const {
  auto bits_ok = [](int b) { return b >= 1 && b <= 8; };
  if (!bits_ok(options_.weight_bits) || !bits_ok(options_.activation_bits) ||
      !bits_ok(options_.first_last_bits))
    return InvalidArgument("bits must be within 1..8");
  if (options_.activation_bits < 2 || options_.first_last_bits < 2)
    return InvalidArgument("activations need at least 2 bits (codes 0..3 around a zero point)");
  if (options_.weight_budget_bytes > 0 && options_.latency_budget_ms > 0)
    return InvalidArgument("give one budget: --weight-budget or --latency-budget, not both");
  if (options_.residual_threshold > 0 && (options_.residual_bits < 1 || options_.residual_bits > 8))
    return InvalidArgument("--residual-bits must be within 1..8");
  if (options_.residual_threshold > 0 &&
      (options_.weight_budget_bytes > 0 || options_.latency_budget_ms > 0))
    return InvalidArgument(
        "residual pairs (--residual-threshold) and a budget do not combine: a budget chooses "
        "one tensor's bits per layer");
  if (options_.output_dir.empty()) return InvalidArgument("an output directory (-o) is required");
  if (fs::weakly_canonical(options_.output_dir) == fs::weakly_canonical(options_.model_dir))
    return InvalidArgument("the output directory must differ from the model directory");
  for (const auto& [w, a] : options_.mixed_candidates)
    if (!bits_ok(w) || a < 2 || a > 8)
      return InvalidArgument("mixed candidate " + BitsName(w, a) + " is out of range");
  return Status::Ok();
}

// A dynamic-shape export (YOLOv8n: images [batch,3,height,width]) is
// calibrated and written at the entry's configured input size, as the server
// runs it (DetectorModel::Load gives it the same size): every symbolic
// dimension but the batch becomes the config's. The written model keeps a
// symbolic batch.
void FixSymbolicInputSize(const v1::InputConfig& input, onnx::ModelProto* model) {
  std::set<std::string> initializers;
  for (const auto& initializer : model->graph().initializer())
    initializers.insert(initializer.name());
  const Shape shape = vision::InputShapeFor(input, 1);
  for (auto& value : *model->mutable_graph()->mutable_input()) {
    if (initializers.count(value.name())) continue;
    if (!input.tensor_name().empty() && value.name() != input.tensor_name()) continue;
    auto* dims = value.mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim();
    if (dims->size() != static_cast<int>(shape.size())) continue;
    for (int d = 1; d < dims->size(); ++d) {
      auto& dim = (*dims)[d];
      if (dim.has_dim_value()) continue;
      dim.set_dim_value(shape[d]);
    }
  }
}

Status Quantizer::Prepare() {
  LOWBIT_ASSIGN_OR_RETURN(
      config_, vision::ReadModelConfig((fs::path(options_.model_dir) / "config.pbtxt").string()));
  LOWBIT_RETURN_IF_ERROR(vision::ValidateModelConfig(config_));
  model_path_ = (fs::path(options_.model_dir) / config_.model_file()).string();
  std::ifstream file(model_path_, std::ios::binary);
  if (!file) return NotFound("cannot read the model file " + model_path_);
  if (!model_.ParseFromIstream(&file))
    return InvalidArgument(model_path_ + " is not an ONNX model");
  for (const auto& node : model_.graph().node())
    if (node.op_type() == "QuantizeLinear" || node.op_type() == "DequantizeLinear" ||
        node.op_type() == "Quant")
      return InvalidArgument(model_path_ + " is already quantized (node " + node.name() + " is a " +
                             node.op_type() + "); lowbit quantize takes FP32 models");
  FixSymbolicInputSize(config_.input(), &model_);
  LOWBIT_ASSIGN_OR_RETURN(auto sites, QuantizationSites::Analyze(&model_));
  sites_.emplace(std::move(sites));
  input_name_ = config_.input().tensor_name();
  if (input_name_.empty()) {
    for (const auto& input : model_.graph().input())
      if (sites_->index().is_graph_input(input.name())) input_name_ = input.name();
  }

  LOWBIT_ASSIGN_OR_RETURN(frames_, LoadCalibrationFrames(config_.input(), options_.calibration,
                                                         options_.frames, progress_));
  std::vector<std::string> tensors = sites_->CalibrationTensors();
  // Input tensor -> the convs whose patch moments it feeds.
  std::map<std::string, std::vector<std::string>> convs_reading;
  // Moments only where some inner layer can get fewer than 8 weight bits.
  bool below_8_bits = options_.weight_bits < 8;
  if (options_.weight_budget_bytes > 0 || options_.latency_budget_ms > 0)
    for (const auto& [w, a] : options_.mixed_candidates) below_8_bits |= w < 8;
  if (options_.rounding == WeightRounding::kErrorCompensating && below_8_bits) {
    for (const auto& conv : sites_->convs()) {
      if (conv.edge) continue;
      const auto geometry =
          PatchGeometryOf(*conv.node, *sites_->index().initializer(conv.node->input(1)));
      if (!geometry) continue;
      moments_.emplace(conv.name, PatchMoments(*geometry));
      convs_reading[conv.input].push_back(conv.name);
      tensors.push_back(conv.input);
    }
  }
  const TensorObserver observe = [&](size_t frame, const std::string& name, const float* values,
                                     const Shape& shape) {
    auto readers = convs_reading.find(name);
    if (readers == convs_reading.end() || shape.size() != 4) return;
    for (const auto& conv : readers->second)
      moments_.at(conv).AddFrame(values, shape[2], shape[3], kPatchesPerFrame,
                                 static_cast<int>(frame));
  };
  LOWBIT_ASSIGN_OR_RETURN(
      calibration_, Calibrate(model_, input_name_, config_.input(), frames_, tensors,
                              sites_->CalibrationGroups(), options_.threads, progress_, observe));
  return Status::Ok();
}

const ActivationGrid& Quantizer::Grid(const std::pair<std::string, int>& key) {
  auto it = grids_.find(key);
  if (it == grids_.end())
    it =
        grids_
            .emplace(key, ChooseActivationGrid(calibration_.histograms.at(key.first), key.second,
                                               ToRangeMethod(options_.method), options_.percentile))
            .first;
  return it->second;
}

StatusOr<QuantizedWeights> Quantizer::Weights(const ConvLayer& conv, const LayerBits& bits) {
  const auto key = std::make_tuple(conv.name, bits.weight_bits, bits.residual_bits);
  if (auto cached = weights_cache_.find(key); cached != weights_cache_.end()) return cached->second;
  QuantizedWeights w;
  const float* values = conv.weights.data();
  std::vector<float> dequantized(conv.weights.size());
  if (bits.residual_bits > 0) {
    LOWBIT_ASSIGN_OR_RETURN(
        auto pair,
        QuantizeWeightsResidual(values, conv.cout, conv.k, bits.weight_bits, bits.residual_bits));
    w.first = std::move(pair.first);
    w.second_codes = std::move(pair.second.codes);
    w.second_scale = std::move(pair.second.scale);
    w.second_bits = bits.residual_bits;
    w.first.squared_error = pair.squared_error;
    w.first.relative_error = pair.relative_error;
  } else {
    LOWBIT_ASSIGN_OR_RETURN(w.first,
                            QuantizeWeights(values, conv.cout, conv.k, bits.weight_bits,
                                            ToRangeMethod(options_.method), options_.percentile));
    auto moments = moments_.find(conv.name);
    if (bits.weight_bits < 8 && moments != moments_.end())
      LOWBIT_RETURN_IF_ERROR(
          RoundWithMoments(values, conv.cout, conv.k, moments->second, &w.first));
  }
  for (int64_t c = 0; c < conv.cout; ++c)
    for (int64_t i = 0; i < conv.k; ++i) {
      const int64_t at = c * conv.k + i;
      dequantized[at] = w.first.codes[at] * w.first.scale[c] +
                        (w.second_codes.empty() ? 0.0f : w.second_codes[at] * w.second_scale[c]);
    }
  w.bias = conv.bias;
  if (options_.bias_correction && !conv.bias.empty()) {
    // E[y_q - y] = (W_q - W) E[x] per output channel: subtract it from the bias.
    auto stats = calibration_.tensors.find(conv.calibration_input);
    const onnx::TensorProto& init = *sites_->index().initializer(conv.node->input(1));
    const int64_t cin_per_group = init.dims(1), taps = init.dims(2) * init.dims(3);
    if (stats != calibration_.tensors.end() && !stats->second.channel_mean.empty()) {
      const auto& mean = stats->second.channel_mean;
      const int64_t groups = static_cast<int64_t>(mean.size()) / cin_per_group;
      const int64_t cout_per_group = groups > 0 ? conv.cout / groups : conv.cout;
      for (int64_t c = 0; c < conv.cout; ++c) {
        const int64_t base = (c / cout_per_group) * cin_per_group;
        double shift = 0;
        for (int64_t ci = 0; ci < cin_per_group; ++ci)
          for (int64_t t = 0; t < taps; ++t) {
            const int64_t at = c * conv.k + ci * taps + t;
            shift += (static_cast<double>(dequantized[at]) - conv.weights[at]) * mean[base + ci];
          }
        w.bias[c] = static_cast<float>(conv.bias[c] - shift);
      }
    }
  }
  weights_cache_[key] = w;
  return w;
}

std::map<std::string, LayerBits> Quantizer::UniformBits() const {
  std::map<std::string, LayerBits> bits;
  for (const auto& conv : sites_->convs()) {
    if (conv.edge)
      bits[conv.name] = {options_.first_last_bits, options_.first_last_bits, 0};
    else
      bits[conv.name] = {options_.weight_bits, options_.activation_bits, 0};
  }
  return bits;
}

// The bias is stored as int32 codes at input scale x weight scale per output
// channel. A channel whose weights are all but zero (fp16 subnormals, 6e-8, in
// the SSD-MobileNetV2 TFLite export) gets a weight scale so small that its
// bias does not fit: widen that channel's weight scale until the bias codes
// stay within kBiasCodeLimit (headroom below 2^31 for the int32 sums) and
// requantize its weights at the wider scale (they round to 0 or nearly: they
// were below the old grid's resolution times 127 already). Residual codes of
// such a channel are folded into the first tensor.
void FitBiasCodes(float input_scale, QuantizedWeights* w) {
  constexpr double kBiasCodeLimit = 1 << 30;
  const int64_t cout = static_cast<int64_t>(w->first.scale.size());
  if (w->bias.empty() || cout == 0 || !(input_scale > 0)) return;
  const int64_t k = static_cast<int64_t>(w->first.codes.size()) / cout;
  const int code_min = WeightCodeMin(w->first.bits), code_max = WeightCodeMax(w->first.bits);
  for (int64_t c = 0; c < cout; ++c) {
    const double needed = std::fabs(static_cast<double>(w->bias[c])) /
                          (static_cast<double>(input_scale) * kBiasCodeLimit);
    if (!(needed > w->first.scale[c])) continue;
    // float32 product as the writer computes it: round the scale up one step.
    const float wider = std::nextafter(static_cast<float>(needed), INFINITY);
    for (int64_t i = 0; i < k; ++i) {
      const int64_t at = c * k + i;
      double value = static_cast<double>(w->first.codes[at]) * w->first.scale[c];
      if (!w->second_codes.empty()) {
        value += static_cast<double>(w->second_codes[at]) * w->second_scale[c];
        w->second_codes[at] = 0;
      }
      const double code = std::nearbyint(value / wider);
      w->first.codes[at] = static_cast<int8_t>(std::clamp<double>(code, code_min, code_max));
    }
    w->first.scale[c] = wider;
  }
}

StatusOr<QcdqPlan> Quantizer::Plan(const std::map<std::string, LayerBits>& bits) {
  QcdqPlan plan;
  plan.bits = bits;
  plan.first_last_bits = options_.first_last_bits;
  const ActivationNeeds needs = NeededGrids(*sites_, bits, options_.first_last_bits);
  for (const auto& key : needs.grids) plan.grids[key] = Grid(key);
  for (const auto& conv : sites_->convs()) {
    LOWBIT_ASSIGN_OR_RETURN(plan.weights[conv.name], Weights(conv, bits.at(conv.name)));
    FitBiasCodes(plan.grids.at(needs.grid.at(conv.name)).scale, &plan.weights[conv.name]);
  }
  return plan;
}

StatusOr<onnx::ModelProto> Quantizer::Write(const std::map<std::string, LayerBits>& bits,
                                            const std::string& description) {
  LOWBIT_ASSIGN_OR_RETURN(QcdqPlan plan, Plan(bits));
  return WriteQcdq(*sites_, plan, description);
}

StatusOr<Evaluation> Quantizer::Evaluate(const std::map<std::string, LayerBits>& bits,
                                         size_t frames) {
  LOWBIT_ASSIGN_OR_RETURN(onnx::ModelProto model, Write(bits, "candidate"));
  return EvaluateModel(model, frames);
}

StatusOr<Evaluation> Quantizer::EvaluateModel(const onnx::ModelProto& model, size_t frames) {
  Evaluation evaluation;
  LOWBIT_ASSIGN_OR_RETURN(evaluation.model, CompileModelProto(model, "a quantized candidate"));
  double total = 0;
  LOWBIT_RETURN_IF_ERROR(
      RunFrames(*evaluation.model, input_name_, config_.input(), frames_, frames, options_.threads,
                [&](size_t f, const std::vector<NamedTensor>& outputs) {
                  total += RelativeOutputError(outputs, calibration_.reference_outputs[f]);
                  return Status::Ok();
                }));
  evaluation.output_error = total / std::max<size_t>(1, std::min(frames, frames_.inputs.size()));
  return evaluation;
}

Status Quantizer::AddResiduals(std::map<std::string, LayerBits>* bits) {
  if (options_.residual_threshold <= 0) return Status::Ok();
  for (const auto& conv : sites_->convs()) {
    LayerBits& b = (*bits)[conv.name];
    if (conv.edge || b.weight_bits >= 8) continue;
    LOWBIT_ASSIGN_OR_RETURN(auto grid,
                            QuantizeWeights(conv.weights.data(), conv.cout, conv.k, b.weight_bits,
                                            ToRangeMethod(options_.method), options_.percentile));
    if (grid.relative_error > options_.residual_threshold) b.residual_bits = options_.residual_bits;
  }
  return Status::Ok();
}

// Weight bytes and kernel nanoseconds of one layer of a compiled candidate.
struct LayerCost {
  double weight_bytes = -1;
  double kernel_ns = -1;
};
LayerCost CostOf(const Model& model, const std::string& name) {
  LayerCost cost;
  for (const auto& layer : model.layers())
    if (layer.name == name) cost.weight_bytes = static_cast<double>(layer.weight_bytes);
  if (const auto* compiled = dynamic_cast<const runtime::CompiledModel*>(&model))
    for (const auto& node : compiled->graph().nodes)
      if (node.name == name && node.has("lowbit_kernel_ns")) {
        // A residual pair runs two kernels into one accumulator.
        cost.kernel_ns =
            node.GetFloat("lowbit_kernel_ns", -1) + node.GetFloat("lowbit_residual_kernel_ns", 0);
      }
  return cost;
}

int64_t TotalWeightBytes(const Model& model) {
  int64_t total = 0;
  for (const auto& layer : model.layers()) total += layer.weight_bytes;
  return total;
}

StatusOr<std::map<std::string, LayerBits>> Quantizer::MixedBits(QuantizeReport* report) {
  const bool by_latency = options_.latency_budget_ms > 0;
  std::vector<LayerBits> candidates;
  for (const auto& [w, a] : options_.mixed_candidates) candidates.push_back({w, a, 0});
  std::stable_sort(candidates.begin(), candidates.end(),
                   [](const LayerBits& x, const LayerBits& y) {
                     return std::make_pair(x.weight_bits, x.activation_bits) >
                            std::make_pair(y.weight_bits, y.activation_bits);
                   });
  std::map<std::string, LayerBits> base = UniformBits();
  std::vector<const ConvLayer*> inner;
  for (const auto& conv : sites_->convs())
    if (!conv.edge) {
      base[conv.name] = candidates.front();
      inner.push_back(&conv);
    }
  // The largest-layer rule looks at costs only: candidates are compiled, not run.
  const size_t frames = options_.mixed_rule == MixedRule::kLargestLayer
                            ? 0
                            : std::min<size_t>(frames_.inputs.size(), 8);
  LOWBIT_ASSIGN_OR_RETURN(Evaluation reference, Evaluate(base, frames));
  const double fixed_bytes = static_cast<double>(TotalWeightBytes(*reference.model));
  std::vector<LayerChoices> layers;
  int done = 0;
  const int total = static_cast<int>(inner.size() * candidates.size());
  double inner_base_cost = 0;
  for (const ConvLayer* conv : inner) {
    LayerChoices choices;
    choices.name = conv->name;
    for (size_t k = 0; k < candidates.size(); ++k) {
      Evaluation evaluation = reference;
      if (k > 0) {
        auto bits = base;
        bits[conv->name] = candidates[k];
        LOWBIT_ASSIGN_OR_RETURN(evaluation, Evaluate(bits, frames));
      }
      const LayerCost cost = CostOf(*evaluation.model, conv->name);
      const double value = by_latency ? cost.kernel_ns : cost.weight_bytes;
      if (value < 0)
        return Internal("no " + std::string(by_latency ? "kernel time" : "weight bytes") +
                        " measured for layer " + conv->name +
                        (by_latency ? " (LOWBIT_KERNEL_CHOICE=model skips the measurement)" : ""));
      choices.cost.push_back(value);
      const double loss = std::max(0.0, evaluation.output_error - reference.output_error);
      choices.loss.push_back(loss);
      candidate_sensitivity_[conv->name].push_back(
          {BitsName(candidates[k].weight_bits, candidates[k].activation_bits), loss});
      Progress("sensitivity", ++done, total);
    }
    inner_base_cost += choices.cost.front();
    layers.push_back(std::move(choices));
  }

  double budget;
  std::string unit;
  if (by_latency) {
    LOWBIT_ASSIGN_OR_RETURN(const double base_ms, MeasureLatencyMs(*reference.model));
    // Latency = what the inner layers' kernels take + everything else.
    budget = (options_.latency_budget_ms - base_ms) * 1e6 + inner_base_cost;
    unit = "ns of inner-layer kernels";
    report->notes.push_back(
        "latency budget " + std::to_string(options_.latency_budget_ms) + " ms; the all-" +
        BitsName(candidates.front().weight_bits, candidates.front().activation_bits) +
        " model measures " + std::to_string(base_ms) + " ms here");
  } else {
    budget = static_cast<double>(options_.weight_budget_bytes) - (fixed_bytes - inner_base_cost);
    unit = "bytes of inner-layer weights";
  }
  MixedSolution solution = options_.mixed_rule == MixedRule::kSensitivity
                               ? SolveBySensitivity(layers, budget)
                               : SolveByLargestLayer(layers, budget);
  if (!solution.feasible)
    report->notes.push_back(
        "the budget cannot be met with these candidates: the cheapest choice is used (" +
        std::to_string(static_cast<int64_t>(solution.cost)) + " " + unit + " for a budget of " +
        std::to_string(static_cast<int64_t>(budget)) + ")");
  report->notes.push_back(std::string("mixed precision by ") +
                          (options_.mixed_rule == MixedRule::kSensitivity
                               ? "least total sensitivity (exact knapsack over rounded-up costs)"
                               : "the largest-layer-first rule") +
                          ": " + std::to_string(static_cast<int64_t>(solution.cost)) + " of " +
                          std::to_string(static_cast<int64_t>(budget)) + " " + unit +
                          ", predicted loss " + std::to_string(solution.loss));
  std::map<std::string, LayerBits> bits = base;
  for (size_t l = 0; l < inner.size(); ++l) {
    bits[inner[l]->name] = candidates[solution.choice[l]];
    sensitivity_[inner[l]->name] = layers[l].loss[solution.choice[l]];
  }
  return bits;
}

StatusOr<double> Quantizer::MeasureLatencyMs(const Model& model) {
  SessionOptions session_options;
  session_options.threads = options_.threads;
  LOWBIT_ASSIGN_OR_RETURN(auto session, model.CreateSession(session_options));
  std::vector<NamedTensor> inputs(1), outputs;
  inputs[0].name = input_name_;
  inputs[0].tensor = Tensor(vision::InputShapeFor(config_.input(), 1), frames_.inputs.front());
  std::vector<double> times;
  for (int run = 0; run < 25; ++run) {
    const auto start = std::chrono::steady_clock::now();
    LOWBIT_RETURN_IF_ERROR(session->Run(inputs, &outputs));
    const auto stop = std::chrono::steady_clock::now();
    if (run >= 5) times.push_back(std::chrono::duration<double, std::milli>(stop - start).count());
  }
  std::nth_element(times.begin(), times.begin() + times.size() / 2, times.end());
  return times[times.size() / 2];
}

Status Quantizer::WriteEntry(const onnx::ModelProto& model, const QuantizeReport& report) {
  const fs::path out(options_.output_dir);
  std::error_code error;
  fs::create_directories(out, error);
  if (error) return InvalidArgument("cannot create " + out.string() + ": " + error.message());
  auto write = [&](const std::string& name, const std::string& bytes) -> Status {
    const fs::path target = out / name, partial = out / (name + ".partial");
    {
      std::ofstream file(partial, std::ios::binary | std::ios::trunc);
      file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
      if (!file) return Internal("cannot write " + partial.string());
    }
    fs::rename(partial, target, error);
    if (error) return Internal("cannot rename " + partial.string() + ": " + error.message());
    return Status::Ok();
  };
  std::string bytes;
  if (!model.SerializeToString(&bytes)) return Internal("cannot serialize the quantized model");
  LOWBIT_RETURN_IF_ERROR(write("model.onnx", bytes));

  v1::ModelConfig config = config_;
  config.set_name(out.filename().string());
  config.set_model_file("model.onnx");
  LOWBIT_ASSIGN_OR_RETURN(auto labels, vision::LoadLabels(config_, options_.model_dir));
  if (!labels.empty() && config_.labels_size() == 0) {
    std::string text;
    for (const auto& label : labels) text += label + "\n";
    LOWBIT_RETURN_IF_ERROR(write("labels.txt", text));
    config.set_labels_file("labels.txt");
  }
  std::string text;
  google::protobuf::TextFormat::PrintToString(config, &text);
  LOWBIT_RETURN_IF_ERROR(write("config.pbtxt",
                               "# lowbit.v1.ModelConfig (proto/lowbit/v1/model_config.proto).\n"
                               "# Made by lowbit quantize from " +
                                   options_.model_dir + "; see quantize-report.txt.\n" + text));
  LOWBIT_RETURN_IF_ERROR(write("quantize-report.txt", report.ToText()));
  return write("quantize-report.json", report.ToJson());
}

StatusOr<QuantizeReport> Quantizer::Run() {
  LOWBIT_RETURN_IF_ERROR(Validate());
  LOWBIT_RETURN_IF_ERROR(Prepare());
  QuantizeReport report;
  report.source_model = model_path_;
  report.output_model = (fs::path(options_.output_dir) / "model.onnx").string();
  report.calibration_frames = frames_.names;
  report.calibration_frame_indices = frames_.video_indices;
  report.machine = format::HostKernelIsa() + ", " + format::HostCpuModel();

  std::map<std::string, LayerBits> bits;
  std::string description;
  if (options_.weight_budget_bytes > 0 || options_.latency_budget_ms > 0) {
    LOWBIT_ASSIGN_OR_RETURN(bits, MixedBits(&report));
    description = "mixed precision under a " +
                  (options_.weight_budget_bytes > 0
                       ? std::to_string(options_.weight_budget_bytes) + "-byte weight"
                       : std::to_string(options_.latency_budget_ms) + " ms latency") +
                  " budget";
  } else {
    bits = UniformBits();
    description = BitsName(options_.weight_bits, options_.activation_bits) + " inner layers";
  }
  LOWBIT_RETURN_IF_ERROR(AddResiduals(&bits));
  description += ", first/last layers at " + std::to_string(options_.first_last_bits) + " bits";
  const char* method = options_.method == ScaleMethod::kMse      ? "minimum-MSE"
                       : options_.method == ScaleMethod::kMinMax ? "min/max"
                                                                 : "percentile";
  description = std::string("lowbit quantize: QCDQ, ") + description + ", " + method + " scales";

  LOWBIT_ASSIGN_OR_RETURN(QcdqPlan plan, Plan(bits));
  LOWBIT_ASSIGN_OR_RETURN(onnx::ModelProto quantized, WriteQcdq(*sites_, plan, description));
  Progress("verifying", 0, 1);
  LOWBIT_ASSIGN_OR_RETURN(Evaluation final, EvaluateModel(quantized, frames_.inputs.size()));
  report.output_error = final.output_error;
  report.weight_bytes = TotalWeightBytes(*final.model);
  LOWBIT_ASSIGN_OR_RETURN(auto fp32, CompileModelProto(model_, "the FP32 model"));
  for (const auto& layer : fp32->layers()) report.fp32_weight_bytes += layer.params * 4;
  {
    auto w8 = UniformBits();
    for (auto& [name, b] : w8) b = {8, 8, 0};
    LOWBIT_ASSIGN_OR_RETURN(onnx::ModelProto w8_proto, Write(w8, "W8A8"));
    LOWBIT_ASSIGN_OR_RETURN(auto w8_model, CompileModelProto(w8_proto, "the W8A8 model"));
    report.w8_weight_bytes = TotalWeightBytes(*w8_model);
  }
  if (options_.latency_budget_ms > 0) {
    LOWBIT_ASSIGN_OR_RETURN(report.latency_ms, MeasureLatencyMs(*final.model));
    LOWBIT_ASSIGN_OR_RETURN(report.fp32_latency_ms, MeasureLatencyMs(*fp32));
    if (report.latency_ms > options_.latency_budget_ms)
      report.notes.push_back(
          "the model measures " + std::to_string(report.latency_ms) + " ms here, over the " +
          std::to_string(options_.latency_budget_ms) +
          " ms budget: per-layer kernel times leave out activation packing and layout "
          "changes, so below-8-bit layers can cost more than they save on this CPU");
  }
  Progress("verifying", 1, 1);

  const ActivationNeeds needs = NeededGrids(*sites_, bits, options_.first_last_bits);
  for (const auto& conv : sites_->convs()) {
    QuantizedLayerReport layer;
    layer.name = conv.name;
    const LayerBits& b = bits.at(conv.name);
    layer.weight_bits = b.weight_bits;
    layer.residual_bits = b.residual_bits;
    layer.activation_bits = needs.input_bits.at(conv.name);
    const auto& grid = plan.grids.at(needs.grid.at(conv.name));
    layer.input_scale = grid.scale;
    layer.input_zero_point = grid.zero_point;
    layer.input_lo = grid.lo;
    layer.input_hi = grid.hi;
    const Histogram& histogram = calibration_.histograms.at(conv.input_group);
    layer.observed_lo = histogram.lo();
    layer.observed_hi = histogram.hi();
    layer.weight_relative_error = plan.weights.at(conv.name).first.relative_error;
    layer.weight_bytes =
        static_cast<int64_t>(std::max(0.0, CostOf(*final.model, conv.name).weight_bytes));
    if (auto s = sensitivity_.find(conv.name); s != sensitivity_.end())
      layer.sensitivity = s->second;
    if (auto c = candidate_sensitivity_.find(conv.name); c != candidate_sensitivity_.end())
      layer.candidate_sensitivity = c->second;
    report.layers.push_back(std::move(layer));
  }
  LOWBIT_RETURN_IF_ERROR(WriteEntry(quantized, report));
  return report;
}

}  // namespace
}  // namespace quantize

StatusOr<QuantizeReport> QuantizeEntry(const QuantizeOptions& options,
                                       const QuantizeProgress& progress) {
  quantize::Quantizer quantizer(options, progress);
  return quantizer.Run();
}

}  // namespace lowbit::engine
