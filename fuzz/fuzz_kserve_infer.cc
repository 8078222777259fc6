// Fuzz target: KServe v2 ModelInfer tensor parsing (server/src/
// kserve_tensors.cc, ParseInferRequest: inputs, shapes, datatypes, raw and
// typed contents, BYTES elements, images' headers, parameters, requested
// outputs). Input: a serialized inference.ModelInferRequest, as gRPC hands
// it to the service. A request naming model "blazeface" is parsed against a
// BlazeFace-like spec (NHWC, 4 outputs), any other against a NanoDet-like
// one (NCHW, 6 outputs); both take 32x32 frames so tensor seeds stay small.
//
// Checked on every accepted request: 1..64 frames, one payload per frame,
// each the size the model takes (tensor form) or a non-empty file whose
// header fits the limits (image form).
#include <google/protobuf/text_format.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_check.h"
#include "kserve_tensors.h"

namespace {

using lowbit::engine::Shape;
using lowbit::server::ModelSpec;

ModelSpec MakeSpec(const std::string& name, const char* config_text, Shape input,
                   std::vector<lowbit::engine::ValueInfo> outputs) {
  ModelSpec spec;
  spec.name = name;
  FUZZ_CHECK(google::protobuf::TextFormat::ParseFromString(config_text, &spec.config));
  spec.num_classes = spec.config.labels_size();
  spec.inputs = {{spec.config.input().tensor_name(), std::move(input)}};
  spec.outputs = std::move(outputs);
  return spec;
}

const ModelSpec& NanoDetSpec() {
  static const ModelSpec spec =
      MakeSpec("nanodet-g",
               R"pb(name: "nanodet-g"
                    input {
                      tensor_name: "input"
                      width: 32
                      height: 32
                      layout: NCHW
                      color_order: BGR
                      mean: [ 103.53, 116.28, 123.675 ]
                      std: [ 57.375, 57.12, 58.395 ]
                    }
                    nanodet {
                      strides: [ 8, 16, 32 ]
                      reg_max: 10
                      score_outputs: [ "cls_stride8", "cls_stride16", "cls_stride32" ]
                      box_outputs: [ "box_stride8", "box_stride16", "box_stride32" ]
                    }
                    labels: [ "person", "bicycle", "car" ]
                    score_threshold: 0.35
                    iou_threshold: 0.5
                    max_detections: 100)pb",
               Shape{1, 3, 32, 32},
               {{"cls_stride8", Shape{1, 16, 3}},
                {"cls_stride16", Shape{1, 4, 3}},
                {"cls_stride32", Shape{1, 1, 3}},
                {"box_stride8", Shape{1, 16, 44}},
                {"box_stride16", Shape{1, 4, 44}},
                {"box_stride32", Shape{1, 1, 44}}});
  return spec;
}

const ModelSpec& BlazeFaceSpec() {
  static const ModelSpec spec = MakeSpec("blazeface",
                                         R"pb(name: "blazeface"
                                              input {
                                                tensor_name: "input:0"
                                                width: 32
                                                height: 32
                                                layout: NHWC
                                                color_order: RGB
                                                mean: [ 127.5, 127.5, 127.5 ]
                                                std: [ 127.5, 127.5, 127.5 ]
                                              }
                                              blazeface {
                                                strides: [ 8, 16 ]
                                                anchors_per_cell: [ 2, 6 ]
                                                score_outputs: [ "Identity:0", "Identity_1:0" ]
                                                box_outputs: [ "Identity_2:0", "Identity_3:0" ]
                                                box_scale: 32
                                              }
                                              labels: [ "face" ]
                                              score_threshold: 0.5
                                              iou_threshold: 0.3
                                              max_detections: 100)pb",
                                         Shape{1, 32, 32, 3},
                                         {{"Identity:0", Shape{1, 32, 1}},
                                          {"Identity_1:0", Shape{1, 24, 1}},
                                          {"Identity_2:0", Shape{1, 32, 16}},
                                          {"Identity_3:0", Shape{1, 24, 16}}});
  return spec;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  inference::ModelInferRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  const ModelSpec& spec = request.model_name() == "blazeface" ? BlazeFaceSpec() : NanoDetSpec();
  lowbit::server::FrontendLimits limits;
  limits.max_pixels = 1 << 20;
  auto parsed = lowbit::server::ParseInferRequest(request, spec, limits);
  if (!parsed.ok()) {
    FUZZ_CHECK(parsed.status().code() == lowbit::StatusCode::kInvalidArgument);
    return 0;
  }
  FUZZ_CHECK(parsed->model_name == spec.name);
  FUZZ_CHECK(parsed->frames >= 1 && parsed->frames <= lowbit::server::kMaxFramesPerRequest);
  FUZZ_CHECK(static_cast<int64_t>(parsed->payloads.size()) == parsed->frames);
  // Every output has its classification count, within the output's size.
  FUZZ_CHECK(parsed->classification.size() == parsed->outputs.size());
  for (size_t i = 0; i < parsed->outputs.size(); ++i) {
    const int64_t count = parsed->classification[i];
    FUZZ_CHECK(count >= 0);
    if (count == 0) continue;
    FUZZ_CHECK(parsed->form == lowbit::server::InferForm::kTensor);
    for (const lowbit::engine::ValueInfo& info : spec.outputs)
      if (info.name == parsed->outputs[i]) FUZZ_CHECK(count <= lowbit::engine::NumElements(info.shape));
  }
  for (const lowbit::server::FramePayload& payload : parsed->payloads) {
    if (parsed->form == lowbit::server::InferForm::kTensor) {
      FUZZ_CHECK(payload.kind == lowbit::server::FramePayload::Kind::kTensor);
      FUZZ_CHECK(payload.tensor.size() == 3 * 32 * 32);
    } else {
      FUZZ_CHECK(payload.kind == lowbit::server::FramePayload::Kind::kEncoded);
      FUZZ_CHECK(!payload.encoded.empty());
      FUZZ_CHECK(static_cast<int64_t>(payload.width) * payload.height <= limits.max_pixels);
    }
  }
  return 0;
}
