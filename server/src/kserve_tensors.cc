#include "kserve_tensors.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <string_view>
#include <utility>

namespace lowbit::server {
namespace {

// The tensor form's input as the model takes it: per-frame dims (no batch).
struct TensorInput {
  std::string name;
  std::vector<int64_t> dims;
  inference::ModelInput::Format format = inference::ModelInput::FORMAT_NONE;
};

TensorInput ModelTensorInput(const ModelSpec& spec) {
  const v1::InputConfig& config = spec.config.input();
  TensorInput input;
  input.name = config.tensor_name();
  if (input.name.empty() && !spec.inputs.empty()) input.name = spec.inputs.front().name;
  const bool nhwc = config.layout() == v1::NHWC;
  input.format = nhwc ? inference::ModelInput::FORMAT_NHWC : inference::ModelInput::FORMAT_NCHW;
  if (!spec.inputs.empty() && spec.inputs.front().shape.size() > 1) {
    const engine::Shape& shape = spec.inputs.front().shape;
    input.dims.assign(shape.begin() + 1, shape.end());
  } else if (nhwc) {
    input.dims = {config.height(), config.width(), 3};
  } else {
    input.dims = {3, config.height(), config.width()};
  }
  return input;
}

int64_t Product(const std::vector<int64_t>& dims) {
  int64_t product = 1;
  for (int64_t dim : dims) product *= dim;
  return product;
}

// "[N,3,416,416]" for the per-frame dims {3,416,416}.
std::string BatchedShapeText(const std::vector<int64_t>& dims) {
  std::string text = "[N";
  for (int64_t dim : dims) {
    text += ',';
    text += std::to_string(dim);
  }
  return text + "]";
}

std::string ShapeText(const google::protobuf::RepeatedField<int64_t>& shape) {
  std::string text = "[";
  for (int i = 0; i < shape.size(); ++i) {
    if (i > 0) text += ',';
    text += std::to_string(shape[i]);
  }
  return text + "]";
}

std::string JoinNames(const std::vector<std::string>& names) {
  std::string text;
  for (const std::string& name : names) {
    if (!text.empty()) text += ", ";
    text += name;
  }
  return text;
}

// What a model takes, for error messages.
std::string FormsText(const ModelSpec& spec) {
  const TensorInput input = ModelTensorInput(spec);
  return "model '" + spec.name + "' takes one input: '" + input.name + "' FP32 " +
         BatchedShapeText(input.dims) + " (pre-processed frames) or '" + kImageInput +
         "' BYTES [N] (JPEG/PNG files), 1 <= N <= " + std::to_string(kMaxFramesPerRequest);
}

const std::vector<std::string>& ImageOutputs() {
  static const std::vector<std::string> names = {kCountOutput,   kBoxesOutput,  kScoresOutput,
                                                 kClassesOutput, kLabelsOutput, kImageSizeOutput};
  return names;
}

std::vector<std::string> TensorOutputs(const ModelSpec& spec) {
  std::vector<std::string> names;
  for (const engine::ValueInfo& output : spec.outputs) names.push_back(output.name);
  return names;
}

bool Contains(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

// The batch size N of a request's input: shape[0], checked.
StatusOr<int64_t> BatchOf(const inference::ModelInferRequest::InferInputTensor& input,
                          const ModelSpec& spec) {
  if (input.shape_size() == 0 || input.shape(0) < 1 || input.shape(0) > kMaxFramesPerRequest) {
    return InvalidArgument("input '" + input.name() + "' has shape " + ShapeText(input.shape()) +
                           "; its first dimension is the number of frames N, and " +
                           FormsText(spec));
  }
  return input.shape(0);
}

// `count` elements of a BYTES tensor in raw form: each a 4-byte
// little-endian length, then that many bytes.
StatusOr<std::vector<std::string>> SplitBytesElements(const std::string& raw, int64_t count) {
  std::vector<std::string> elements;
  size_t offset = 0;
  while (offset < raw.size()) {
    if (raw.size() - offset < 4) {
      return InvalidArgument(
          "raw_input_contents of input IMAGE ends inside an element's 4-byte "
          "length prefix (offset " +
          std::to_string(offset) + ")");
    }
    const auto* bytes = reinterpret_cast<const uint8_t*>(raw.data() + offset);
    const uint32_t length =
        bytes[0] | (bytes[1] << 8) | (bytes[2] << 16) | (static_cast<uint32_t>(bytes[3]) << 24);
    offset += 4;
    if (raw.size() - offset < length) {
      return InvalidArgument("raw_input_contents of input IMAGE: element " +
                             std::to_string(elements.size()) + " claims " + std::to_string(length) +
                             " bytes, only " + std::to_string(raw.size() - offset) + " remain");
    }
    // Past `count` the request is refused anyway: stop before a long run
    // of 4-byte empty elements becomes a vector of strings 8x its size.
    if (static_cast<int64_t>(elements.size()) == count) {
      return InvalidArgument("raw_input_contents of input IMAGE holds more than the " +
                             std::to_string(count) + " element(s) its shape says");
    }
    elements.emplace_back(raw, offset, length);
    offset += length;
  }
  if (static_cast<int64_t>(elements.size()) != count) {
    return InvalidArgument("raw_input_contents of input IMAGE holds " +
                           std::to_string(elements.size()) + " element(s), its shape says " +
                           std::to_string(count));
  }
  return elements;
}

Status ParseImageInput(const inference::ModelInferRequest& request, const ModelSpec& spec,
                       const FrontendLimits& limits, ParsedInferRequest* parsed) {
  const inference::ModelInferRequest::InferInputTensor& input = request.inputs(0);
  if (input.name() != kImageInput) {
    return InvalidArgument("input '" + input.name() + "' is BYTES, but the image input is named '" +
                           kImageInput + "'; " + FormsText(spec));
  }
  LOWBIT_ASSIGN_OR_RETURN(const int64_t frames, BatchOf(input, spec));
  if (input.shape_size() > 2 || (input.shape_size() == 2 && input.shape(1) != 1)) {
    return InvalidArgument("input IMAGE has shape " + ShapeText(input.shape()) +
                           "; it takes [N] or [N,1], one JPEG/PNG file per frame");
  }
  std::vector<std::string> files;
  if (request.raw_input_contents_size() > 0) {
    if (input.contents().bytes_contents_size() > 0) {
      return InvalidArgument("input IMAGE has both contents and raw_input_contents; send one");
    }
    LOWBIT_ASSIGN_OR_RETURN(files, SplitBytesElements(request.raw_input_contents(0), frames));
  } else {
    if (input.contents().bytes_contents_size() != frames) {
      return InvalidArgument("input IMAGE has shape " + ShapeText(input.shape()) + " but " +
                             std::to_string(input.contents().bytes_contents_size()) +
                             " element(s) in contents.bytes_contents (and no "
                             "raw_input_contents)");
    }
    files.assign(input.contents().bytes_contents().begin(),
                 input.contents().bytes_contents().end());
  }
  parsed->form = InferForm::kImage;
  parsed->frames = frames;
  for (size_t index = 0; index < files.size(); ++index) {
    StatusOr<FramePayload> payload = EncodedPayload(std::move(files[index]), limits);
    if (!payload.ok()) {
      return payload.status().WithContext("input IMAGE[" + std::to_string(index) + "]");
    }
    parsed->payloads.push_back(std::move(payload).value());
  }
  return Status::Ok();
}

Status ParseTensorInput(const inference::ModelInferRequest& request, const ModelSpec& spec,
                        ParsedInferRequest* parsed) {
  const inference::ModelInferRequest::InferInputTensor& input = request.inputs(0);
  const TensorInput model_input = ModelTensorInput(spec);
  if (input.name() != model_input.name) {
    return InvalidArgument("input '" + input.name() + "' is FP32, but model '" + spec.name +
                           "' names its tensor input '" + model_input.name + "'; " +
                           FormsText(spec));
  }
  LOWBIT_ASSIGN_OR_RETURN(const int64_t frames, BatchOf(input, spec));
  bool shape_ok = input.shape_size() == static_cast<int>(model_input.dims.size()) + 1;
  for (size_t i = 0; shape_ok && i < model_input.dims.size(); ++i) {
    shape_ok = input.shape(static_cast<int>(i) + 1) == model_input.dims[i];
  }
  if (!shape_ok) {
    return InvalidArgument("input '" + input.name() + "' has shape " + ShapeText(input.shape()) +
                           "; model '" + spec.name + "' takes " +
                           BatchedShapeText(model_input.dims) + " FP32");
  }
  const int64_t per_frame = Product(model_input.dims);
  if (spec.backend && spec.backend->input_floats_per_frame() != per_frame) {
    return Internal("model '" + spec.name + "' declares input " +
                    BatchedShapeText(model_input.dims) + " but its engine takes " +
                    std::to_string(spec.backend->input_floats_per_frame()) + " floats per frame");
  }
  const float* data = nullptr;
  if (request.raw_input_contents_size() > 0) {
    if (input.contents().fp32_contents_size() > 0) {
      return InvalidArgument("input '" + input.name() +
                             "' has both contents and raw_input_contents; send one");
    }
    const std::string& raw = request.raw_input_contents(0);
    const int64_t want = frames * per_frame * static_cast<int64_t>(sizeof(float));
    if (static_cast<int64_t>(raw.size()) != want) {
      return InvalidArgument("raw_input_contents of input '" + input.name() + "' has " +
                             std::to_string(raw.size()) + " bytes; FP32 " +
                             ShapeText(input.shape()) + " is " + std::to_string(want));
    }
    data = reinterpret_cast<const float*>(raw.data());
  } else {
    if (input.contents().fp32_contents_size() != frames * per_frame) {
      return InvalidArgument("input '" + input.name() + "' has " +
                             std::to_string(input.contents().fp32_contents_size()) +
                             " values in contents.fp32_contents; shape " +
                             ShapeText(input.shape()) + " is " +
                             std::to_string(frames * per_frame));
    }
    data = input.contents().fp32_contents().data();
  }
  parsed->form = InferForm::kTensor;
  parsed->frames = frames;
  for (int64_t frame = 0; frame < frames; ++frame) {
    FramePayload payload;
    payload.kind = FramePayload::Kind::kTensor;
    // raw_input_contents is little-endian, like every host lowbit runs on;
    // memcpy also copes with the string's arbitrary alignment.
    payload.tensor.resize(static_cast<size_t>(per_frame));
    std::memcpy(payload.tensor.data(), data + frame * per_frame,
                static_cast<size_t>(per_frame) * sizeof(float));
    parsed->payloads.push_back(std::move(payload));
  }
  return Status::Ok();
}

StatusOr<double> NumberParameter(const std::string& key, const inference::InferParameter& value) {
  switch (value.parameter_choice_case()) {
    case inference::InferParameter::kDoubleParam:
      return value.double_param();
    case inference::InferParameter::kInt64Param:
      return static_cast<double>(value.int64_param());
    case inference::InferParameter::kUint64Param:
      return static_cast<double>(value.uint64_param());
    default:
      return InvalidArgument("parameter '" + key + "' must be a number (double_param)");
  }
}

Status ParseParameters(const inference::ModelInferRequest& request, ParsedInferRequest* parsed) {
  for (const auto& [key, value] : request.parameters()) {
    if (key == "score_threshold" || key == "iou_threshold") {
      LOWBIT_ASSIGN_OR_RETURN(const double number, NumberParameter(key, value));
      if (!(number >= 0 && number <= 1)) {
        return InvalidArgument("parameter '" + key + "' is " + std::to_string(number) +
                               "; it must be in [0, 1] (0: the model's default)");
      }
      float& target = key == "score_threshold" ? parsed->detect_options.score_threshold
                                               : parsed->detect_options.iou_threshold;
      target = static_cast<float>(number);
    } else if (key == "camera_id") {
      if (value.parameter_choice_case() != inference::InferParameter::kStringParam) {
        return InvalidArgument("parameter 'camera_id' must be a string (string_param)");
      }
      if (parsed->frames > 1 && !value.string_param().empty()) {
        return InvalidArgument(
            "parameter 'camera_id' needs a request of one frame (N = 1): "
            "the frames of one camera replace each other while they wait");
      }
      parsed->camera_id = value.string_param();
    } else if (key == "timeout") {
      LOWBIT_ASSIGN_OR_RETURN(const double number, NumberParameter(key, value));
      // Bounded before the cast (a double past int64's range, or NaN, does
      // not convert) and so that received + timeout stays in range.
      constexpr int64_t kMaxTimeoutUs = 365LL * 24 * 3600 * 1000000;  // a year
      if (!(number >= 0 && number <= static_cast<double>(kMaxTimeoutUs))) {
        return InvalidArgument("parameter 'timeout' (microseconds) is " + std::to_string(number) +
                               "; it must be in [0, " + std::to_string(kMaxTimeoutUs) +
                               "] (at most a year)");
      }
      parsed->timeout_us = static_cast<int64_t>(number);
    }
    // Anything else (sequence_id, priority, ...) has no meaning here.
  }
  return Status::Ok();
}

// The classification extension (Triton's): an output requested with the
// parameter "classification" = k is answered as its k highest elements per
// frame. 0 when the parameter is absent; INVALID_ARGUMENT for a count that is
// not an integer in [1, the output's elements per frame], or on the image
// form (its outputs are already decoded).
StatusOr<int64_t> ClassificationCount(
    const inference::ModelInferRequest::InferRequestedOutputTensor& output, const ModelSpec& spec,
    bool image) {
  const auto found = output.parameters().find("classification");
  if (found == output.parameters().end()) return 0;
  const inference::InferParameter& value = found->second;
  const std::string what = "output '" + output.name() + "': parameter 'classification'";
  if (value.parameter_choice_case() != inference::InferParameter::kInt64Param)
    return InvalidArgument(what + " must be an integer (int64_param), the number of classes");
  if (image)
    return InvalidArgument(what + " applies to the tensor form; an IMAGE request's " +
                           "CLASSES, SCORES and LABELS hold a classifier's top classes already");
  int64_t elements = 0;  // per frame; 0 while the spec declares no outputs
  for (const engine::ValueInfo& info : spec.outputs)
    if (info.name == output.name())
      elements = info.shape.empty() || info.shape[0] < 1 ? 0
                                                       : engine::NumElements(info.shape) / info.shape[0];
  const int64_t count = value.int64_param();
  if (count < 1 || (elements > 0 && count > elements))
    return InvalidArgument(what + " is " + std::to_string(count) + "; it must be in [1, " +
                           (elements > 0 ? std::to_string(elements) : std::string("elements")) +
                           "] (the output's elements per frame)");
  return count;
}

Status ParseOutputs(const inference::ModelInferRequest& request, const ModelSpec& spec,
                    ParsedInferRequest* parsed) {
  const bool image = parsed->form == InferForm::kImage;
  const std::vector<std::string> available = image ? ImageOutputs() : TensorOutputs(spec);
  if (request.outputs_size() == 0) {
    parsed->outputs = available;  // empty for a spec without declared outputs: all the engine's
    parsed->classification.assign(parsed->outputs.size(), 0);
    return Status::Ok();
  }
  for (const auto& output : request.outputs()) {
    // A spec built without a model declares no outputs; the engine's names
    // are checked when the response is built.
    if (!available.empty() && !Contains(available, output.name())) {
      const std::vector<std::string> other = image ? TensorOutputs(spec) : ImageOutputs();
      const std::string form = image ? "an IMAGE (BYTES) request" : "a tensor (FP32) request";
      std::string message = "output '" + output.name() + "' is not an output of " + form +
                            " to model '" + spec.name + "'";
      if (Contains(other, output.name())) {
        message += " (it is one of the " + std::string(image ? "tensor" : "IMAGE") + " form)";
      }
      return InvalidArgument(message + "; it answers: " + JoinNames(available));
    }
    LOWBIT_ASSIGN_OR_RETURN(const int64_t count, ClassificationCount(output, spec, image));
    if (count > 0 && parsed->labels.empty())
      parsed->labels.assign(spec.config.labels().begin(), spec.config.labels().end());
    parsed->outputs.push_back(output.name());
    parsed->classification.push_back(count);
  }
  return Status::Ok();
}

// Appends an output tensor's header; returns its raw_output_contents entry.
std::string* AddOutput(inference::ModelInferResponse* response, const std::string& name,
                       const char* datatype, std::initializer_list<int64_t> shape) {
  inference::ModelInferResponse::InferOutputTensor* output = response->add_outputs();
  output->set_name(name);
  output->set_datatype(datatype);
  for (int64_t dim : shape) output->add_shape(dim);
  return response->add_raw_output_contents();
}

template <typename T>
void AppendValue(std::string* raw, T value) {
  const size_t offset = raw->size();
  raw->resize(offset + sizeof(T));
  std::memcpy(raw->data() + offset, &value, sizeof(T));
}

void AppendBytesElement(std::string* raw, std::string_view element) {
  AppendValue<uint32_t>(raw, static_cast<uint32_t>(element.size()));
  raw->append(element);
}

Status BuildImageResponse(const ParsedInferRequest& parsed, const std::vector<FrameResult>& results,
                          inference::ModelInferResponse* response) {
  const int64_t frames = static_cast<int64_t>(results.size());
  int64_t most = 0;  // K
  for (const FrameResult& result : results) {
    most = std::max<int64_t>(most, static_cast<int64_t>(result.detections.size()));
  }
  for (const std::string& name : parsed.outputs) {
    if (name == kCountOutput) {
      std::string* raw = AddOutput(response, name, "INT32", {frames});
      for (const FrameResult& result : results) {
        AppendValue<int32_t>(raw, static_cast<int32_t>(result.detections.size()));
      }
    } else if (name == kImageSizeOutput) {
      std::string* raw = AddOutput(response, name, "INT32", {frames, 2});
      for (const FrameResult& result : results) {
        AppendValue<int32_t>(raw, result.image_width);
        AppendValue<int32_t>(raw, result.image_height);
      }
    } else if (name == kBoxesOutput) {
      std::string* raw = AddOutput(response, name, "FP32", {frames, most, 4});
      raw->reserve(static_cast<size_t>(frames * most * 4) * sizeof(float));
      for (const FrameResult& result : results) {
        for (int64_t k = 0; k < most; ++k) {
          const bool real = k < static_cast<int64_t>(result.detections.size());
          const engine::Box box = real ? result.detections[k].box : engine::Box{0, 0, 0, 0};
          for (float value : {box.x_min, box.y_min, box.x_max, box.y_max}) {
            AppendValue<float>(raw, value);
          }
        }
      }
    } else if (name == kScoresOutput) {
      std::string* raw = AddOutput(response, name, "FP32", {frames, most});
      for (const FrameResult& result : results) {
        for (int64_t k = 0; k < most; ++k) {
          const bool real = k < static_cast<int64_t>(result.detections.size());
          AppendValue<float>(raw, real ? result.detections[k].score : 0.0f);
        }
      }
    } else if (name == kClassesOutput) {
      std::string* raw = AddOutput(response, name, "INT32", {frames, most});
      for (const FrameResult& result : results) {
        for (int64_t k = 0; k < most; ++k) {
          const bool real = k < static_cast<int64_t>(result.detections.size());
          AppendValue<int32_t>(raw, real ? result.detections[k].class_id : -1);
        }
      }
    } else if (name == kLabelsOutput) {
      std::string* raw = AddOutput(response, name, "BYTES", {frames, most});
      for (const FrameResult& result : results) {
        for (int64_t k = 0; k < most; ++k) {
          const bool real = k < static_cast<int64_t>(result.detections.size());
          AppendBytesElement(raw, real ? std::string_view(result.detections[k].label) : "");
        }
      }
    } else {
      return Internal("no image-form output '" + name + "'");
    }
  }
  return Status::Ok();
}

const engine::NamedTensor* FindOutput(const FrameResult& result, const std::string& name) {
  for (const engine::NamedTensor& tensor : result.raw_outputs) {
    if (tensor.name == name) return &tensor;
  }
  return nullptr;
}

// Output `name` as the classification extension answers it: BYTES [N, count],
// per frame its `count` highest elements (ties: the lower index first) as
// "value:index:label", or "value:index" past the labels.
Status AppendClassification(const std::string& name, int64_t count,
                            const std::vector<std::string>& labels,
                            const engine::Shape& frame_shape,
                            const std::vector<FrameResult>& results,
                            inference::ModelInferResponse* response) {
  const int64_t elements = engine::NumElements(frame_shape);
  if (count > elements)
    return InvalidArgument("output '" + name + "': parameter 'classification' is " +
                           std::to_string(count) + " but the output has " +
                           std::to_string(elements) + " elements per frame");
  std::string* raw = AddOutput(response, name, "BYTES",
                               {static_cast<int64_t>(results.size()), count});
  std::vector<int64_t> order(static_cast<size_t>(elements));
  for (const FrameResult& result : results) {
    const engine::NamedTensor* tensor = FindOutput(result, name);
    if (tensor == nullptr || tensor->tensor.shape() != frame_shape)
      return Internal("output '" + name + "' differs in shape between the frames of a request");
    const float* values = tensor->tensor.data();
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + count, order.end(),
                      [values](int64_t a, int64_t b) {
                        return values[a] > values[b] || (values[a] == values[b] && a < b);
                      });
    for (int64_t k = 0; k < count; ++k) {
      const int64_t index = order[static_cast<size_t>(k)];
      std::string element = std::to_string(values[index]) + ":" + std::to_string(index);
      if (index < static_cast<int64_t>(labels.size())) element += ":" + labels[index];
      AppendBytesElement(raw, element);
    }
  }
  return Status::Ok();
}

Status BuildTensorResponse(const ParsedInferRequest& parsed,
                           const std::vector<FrameResult>& results,
                           inference::ModelInferResponse* response) {
  std::vector<std::string> names = parsed.outputs;
  std::vector<int64_t> classification = parsed.classification;
  if (names.empty() && !results.empty()) {
    for (const engine::NamedTensor& tensor : results.front().raw_outputs) {
      names.push_back(tensor.name);
    }
  }
  classification.resize(names.size(), 0);
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string& name = names[i];
    const engine::NamedTensor* first = FindOutput(results.front(), name);
    if (first == nullptr) {
      return InvalidArgument("model '" + parsed.model_name + "' has no output '" + name + "'");
    }
    const engine::Shape& frame_shape = first->tensor.shape();
    if (frame_shape.empty() || frame_shape[0] != 1) {
      return Internal("output '" + name + "' of one frame has shape " +
                      engine::ShapeToString(frame_shape) + ", not batch 1");
    }
    if (classification[i] > 0) {
      LOWBIT_RETURN_IF_ERROR(AppendClassification(name, classification[i], parsed.labels,
                                                  frame_shape, results, response));
      continue;
    }
    inference::ModelInferResponse::InferOutputTensor* output = response->add_outputs();
    output->set_name(name);
    output->set_datatype("FP32");
    output->add_shape(static_cast<int64_t>(results.size()));
    for (size_t i = 1; i < frame_shape.size(); ++i) output->add_shape(frame_shape[i]);
    std::string* raw = response->add_raw_output_contents();
    const size_t frame_bytes = static_cast<size_t>(first->tensor.size()) * sizeof(float);
    raw->resize(frame_bytes * results.size());
    for (size_t frame = 0; frame < results.size(); ++frame) {
      const engine::NamedTensor* tensor = FindOutput(results[frame], name);
      if (tensor == nullptr || tensor->tensor.shape() != frame_shape) {
        return Internal("output '" + name + "' differs in shape between the frames of a request");
      }
      std::memcpy(raw->data() + frame * frame_bytes, tensor->tensor.data(), frame_bytes);
    }
  }
  return Status::Ok();
}

}  // namespace

StatusOr<ParsedInferRequest> ParseInferRequest(const inference::ModelInferRequest& request,
                                               const ModelSpec& spec,
                                               const FrontendLimits& limits) {
  if (request.inputs_size() != 1) {
    return InvalidArgument("the request has " + std::to_string(request.inputs_size()) +
                           " inputs; " + FormsText(spec));
  }
  if (request.raw_input_contents_size() > 1) {
    return InvalidArgument("the request has " + std::to_string(request.raw_input_contents_size()) +
                           " raw_input_contents entries for its one input");
  }
  ParsedInferRequest parsed;
  parsed.model_name = spec.name;
  parsed.id = request.id();
  const std::string& datatype = request.inputs(0).datatype();
  if (datatype == "BYTES") {
    LOWBIT_RETURN_IF_ERROR(ParseImageInput(request, spec, limits, &parsed));
  } else if (datatype == "FP32") {
    LOWBIT_RETURN_IF_ERROR(ParseTensorInput(request, spec, &parsed));
  } else {
    return InvalidArgument("input '" + request.inputs(0).name() + "' has datatype '" + datatype +
                           "'; " + FormsText(spec));
  }
  LOWBIT_RETURN_IF_ERROR(ParseParameters(request, &parsed));
  LOWBIT_RETURN_IF_ERROR(ParseOutputs(request, spec, &parsed));
  return parsed;
}

Status BuildInferResponse(const ParsedInferRequest& parsed, std::vector<FrameResult> results,
                          inference::ModelInferResponse* response) {
  if (results.empty()) return Internal("a request without frames");
  return parsed.form == InferForm::kImage ? BuildImageResponse(parsed, results, response)
                                          : BuildTensorResponse(parsed, results, response);
}

std::vector<TensorDescription> DescribeInputs(const ModelSpec& spec) {
  const TensorInput input = ModelTensorInput(spec);
  return {{input.name, "FP32", input.dims, input.format},
          {kImageInput, "BYTES", {}, inference::ModelInput::FORMAT_NONE}};
}

std::vector<TensorDescription> DescribeOutputs(const ModelSpec& spec) {
  std::vector<TensorDescription> outputs;
  for (const engine::ValueInfo& output : spec.outputs) {
    TensorDescription description{output.name, "FP32", {}};
    if (!output.shape.empty())
      description.dims.assign(output.shape.begin() + 1, output.shape.end());
    outputs.push_back(std::move(description));
  }
  outputs.push_back({kCountOutput, "INT32", {}});
  outputs.push_back({kBoxesOutput, "FP32", {-1, 4}});
  outputs.push_back({kScoresOutput, "FP32", {-1}});
  outputs.push_back({kClassesOutput, "INT32", {-1}});
  outputs.push_back({kLabelsOutput, "BYTES", {-1}});
  outputs.push_back({kImageSizeOutput, "INT32", {2}});
  return outputs;
}

inference::DataType ConfigDataType(const std::string& datatype) {
  if (datatype == "FP32") return inference::TYPE_FP32;
  if (datatype == "INT32") return inference::TYPE_INT32;
  if (datatype == "BYTES") return inference::TYPE_STRING;
  return inference::TYPE_INVALID;
}

}  // namespace lowbit::server
