// KServe v2 tensors <-> lowbit frames: parsing a ModelInferRequest into frame
// payloads, and building a ModelInferResponse from the frames' results. No
// gRPC calls and no scheduler here, so each rule is in one place (the
// conventions are documented in kserve_service.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "admission.h"
#include "clock.h"
#include "inference/grpc_service.pb.h"
#include "lowbit/engine/detector.h"
#include "lowbit/engine/status.h"
#include "model_repository.h"
#include "scheduler.h"

namespace lowbit::server {

// Most frames one request may carry (ModelConfig's max_batch_size). A request
// needs a free queue slot per frame, so more would only be refused.
inline constexpr int64_t kMaxFramesPerRequest = 64;

// The image form's input and outputs.
inline constexpr const char* kImageInput = "IMAGE";
inline constexpr const char* kCountOutput = "COUNT";
inline constexpr const char* kBoxesOutput = "BOXES";
inline constexpr const char* kScoresOutput = "SCORES";
inline constexpr const char* kClassesOutput = "CLASSES";
inline constexpr const char* kLabelsOutput = "LABELS";
inline constexpr const char* kImageSizeOutput = "IMAGE_SIZE";

enum class InferForm { kTensor, kImage };

// A request as the scheduler takes it.
struct ParsedInferRequest {
  InferForm form = InferForm::kTensor;
  std::string model_name;  // the served name (never empty)
  std::string id;
  int64_t frames = 0;
  std::vector<FramePayload> payloads;  // `frames` of them, in batch order
  // The outputs to answer, in order: as requested, or every output of the form.
  std::vector<std::string> outputs;
  // Per output (tensor form), the "classification" parameter's count: 0 for
  // the tensor itself, k > 0 for its top k as BYTES "value:index[:label]".
  std::vector<int64_t> classification;
  std::vector<std::string> labels;  // the model's, when any output is a classification
  engine::DetectOptions detect_options;
  std::string camera_id;
  int64_t timeout_us = 0;  // the "timeout" parameter; 0: none
  Clock::TimePoint received{};
};

// Validates `request` against `spec` (the model it names) and builds its
// frames. INVALID_ARGUMENT, naming the input, parameter or output at fault
// and what the model takes, for a wrong input count, name, datatype, shape or
// data size, a bad image file (admission's header checks, no decode), a bad
// parameter value or an unknown output.
StatusOr<ParsedInferRequest> ParseInferRequest(const inference::ModelInferRequest& request,
                                               const ModelSpec& spec, const FrontendLimits& limits);

// Fills `response` (model name, version and id already set) with the outputs
// `parsed.outputs` names, from one FrameResult per frame (batch order), in
// raw_output_contents. INTERNAL if the engine's outputs are not what the
// model declared.
Status BuildInferResponse(const ParsedInferRequest& parsed, std::vector<FrameResult> results,
                          inference::ModelInferResponse* response);

// One tensor of a model as ModelMetadata / ModelConfig describe it.
struct TensorDescription {
  std::string name;
  std::string datatype;  // "FP32", "INT32", "BYTES"
  // Per frame (the batch dimension, -1 in ModelMetadata, is not listed); -1
  // for a dimension that varies (the detection count K).
  std::vector<int64_t> dims;
  inference::ModelInput::Format format = inference::ModelInput::FORMAT_NONE;
};

// The tensor form's input, then IMAGE.
std::vector<TensorDescription> DescribeInputs(const ModelSpec& spec);
// The model's outputs (tensor form), then the image form's.
std::vector<TensorDescription> DescribeOutputs(const ModelSpec& spec);
// "FP32" -> TYPE_FP32, "BYTES" -> TYPE_STRING, ...
inference::DataType ConfigDataType(const std::string& datatype);

}  // namespace lowbit::server
