// Heads: decoders from a model's raw output tensors to results, behind one
// interface and picked by the config's `head` oneof through a registry
// (head_registry.cc) keyed by the oneof field's name. Adding a head: its
// message and oneof field in proto/lowbit/v1/model_config.proto, its decoder
// file with a factory, and the factory's line in the registry's table.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <google/protobuf/message.h>

#include "lowbit/engine/detector.h"
#include "lowbit/engine/model.h"
#include "lowbit/engine/status.h"
#include "lowbit/engine/tensor.h"
#include "lowbit/v1/model_config.pb.h"

namespace lowbit::engine::vision {

// model pixel = image pixel * scale + offset, per axis: how pre-processing
// placed the original image in the model input (preprocess.h computes it).
struct InputTransform {
  float scale_x = 0;  // 0: stretch, scale = input size / image size
  float scale_y = 0;
  float offset_x = 0;  // model pixels
  float offset_y = 0;
};

struct HeadGeometry {
  HeadGeometry() = default;
  HeadGeometry(int input_width, int input_height, int image_width, int image_height,
               InputTransform transform = {})
      : input_width(input_width),
        input_height(input_height),
        image_width(image_width),
        image_height(image_height),
        transform(transform) {}

  int input_width = 0;  // model input, pixels
  int input_height = 0;
  int image_width = 0;  // original image, pixels; boxes are mapped to it
  int image_height = 0;
  InputTransform transform;  // default: stretch

  // A box in model input pixels -> original image pixels, clipped to it.
  Box ToImage(float x_min, float y_min, float x_max, float y_max) const;
};

// What a factory gets: the head's own message (the oneof field's value), the
// whole config, and the model directory for files the head reads (empty when
// only the config is validated: no file is read then).
struct HeadContext {
  const google::protobuf::Message& params;
  const v1::ModelConfig& config;
  std::string model_dir;
};

class Head {
 public:
  virtual ~Head() = default;

  // A classifier's results are whole-image classes: no NMS.
  virtual bool is_classifier() const { return false; }

  // Checks the model's outputs (batch 1) against the head: every output it
  // reads present with the shape it implies; the labels match its class
  // count (a head may fill in default labels).
  virtual Status CheckAgainstModel(const v1::InputConfig& input,
                                   const std::vector<ValueInfo>& outputs,
                                   std::vector<std::string>* labels) const = 0;

  // Frame `frame` of a batch's outputs -> candidates scoring >= threshold,
  // in original image pixels (detections, before NMS) or whole-image
  // classes (whole_image set, highest first). Labels left empty.
  virtual StatusOr<std::vector<Detection>> Decode(const std::vector<NamedTensor>& outputs,
                                                  int frame, const HeadGeometry& geometry,
                                                  float score_threshold) const = 0;
};

using HeadFactory = std::function<StatusOr<std::unique_ptr<Head>>(const HeadContext&)>;

// Field names of the `head` oneof that have a decoder, in schema order.
std::vector<std::string> KnownHeadNames();

// The decoder of `config`'s head, its parameters validated (messages name
// the field: "ssd.box_output is empty"). No head, or a head field without a
// registered decoder, is an error listing the known heads.
StatusOr<std::unique_ptr<Head>> MakeHead(const v1::ModelConfig& config,
                                         const std::string& model_dir);

// Helpers shared by the decoders (head_registry.cc).

// The output named `name`, or nullptr.
const Tensor* FindOutput(const std::vector<NamedTensor>& outputs, const std::string& name);
const ValueInfo* FindValueInfo(const std::vector<ValueInfo>& values, const std::string& name);
std::string OutputNames(const std::vector<ValueInfo>& values);
// Finds `name` and checks its shape is exactly `expected`.
Status CheckOutputShape(const std::vector<ValueInfo>& outputs, const std::string& name,
                        const Shape& expected, const std::string& what);
// Labels must number `num_classes`.
Status CheckLabelCount(const std::vector<std::string>& labels, int64_t num_classes);
// Frame `frame` of output `name`, which must be [N > frame, dims...].
StatusOr<const float*> OutputFrame(const std::vector<NamedTensor>& outputs, const std::string& name,
                                   int frame, const Shape& frame_dims);

}  // namespace lowbit::engine::vision
