// The head registry: `head` oneof field name -> decoder factory. The only
// list of heads; dispatch is by the name of the oneof field that is set
// (protobuf reflection), never a switch over the oneof.
#include <algorithm>
#include <utility>

#include "vision/head.h"
#include "vision/head_classification.h"
#include "vision/head_ssd.h"
#include "vision/head_yolo.h"
#include "vision/heads.h"

namespace lowbit::engine::vision {
namespace {

struct RegisteredHead {
  const char* name;  // the oneof field's name in ModelConfig
  HeadFactory factory;
};

const std::vector<RegisteredHead>& Registry() {
  static const std::vector<RegisteredHead> registry = {
      {"nanodet", MakeNanoDetHead},
      {"blazeface", MakeBlazeFaceHead},
      {"ssd", MakeSsdHead},
      {"yolo", MakeYoloHead},
      {"classification", MakeClassificationHead},
  };
  return registry;
}

std::string JoinNames(const std::vector<std::string>& names) {
  std::string joined;
  for (const std::string& name : names) joined += (joined.empty() ? "" : ", ") + name;
  return joined;
}

}  // namespace

std::vector<std::string> KnownHeadNames() {
  std::vector<std::string> names;
  for (const RegisteredHead& head : Registry()) names.push_back(head.name);
  return names;
}

StatusOr<std::unique_ptr<Head>> MakeHead(const v1::ModelConfig& config,
                                         const std::string& model_dir) {
  const google::protobuf::OneofDescriptor* oneof =
      v1::ModelConfig::descriptor()->FindOneofByName("head");
  const google::protobuf::FieldDescriptor* field =
      config.GetReflection()->GetOneofFieldDescriptor(config, oneof);
  const std::string known = JoinNames(KnownHeadNames());
  if (field == nullptr) {
    return InvalidArgument("no head: set one of " + known + " { ... }");
  }
  const auto registered =
      std::find_if(Registry().begin(), Registry().end(),
                   [&](const RegisteredHead& head) { return field->name() == head.name; });
  if (registered == Registry().end()) {
    return InvalidArgument("head '" + field->name() + "' has no decoder; known heads: " + known);
  }
  const HeadContext context{config.GetReflection()->GetMessage(config, field), config, model_dir};
  return registered->factory(context);
}

Box HeadGeometry::ToImage(float x_min, float y_min, float x_max, float y_max) const {
  float scale_x = transform.scale_x;
  float scale_y = transform.scale_y;
  if (!(scale_x > 0) || !(scale_y > 0)) {
    scale_x = static_cast<float>(input_width) / static_cast<float>(image_width);
    scale_y = static_cast<float>(input_height) / static_cast<float>(image_height);
  }
  const float width = static_cast<float>(image_width);
  const float height = static_cast<float>(image_height);
  const auto to_x = [&](float x) {
    return std::clamp((x - transform.offset_x) / scale_x, 0.0f, width);
  };
  const auto to_y = [&](float y) {
    return std::clamp((y - transform.offset_y) / scale_y, 0.0f, height);
  };
  return {to_x(x_min), to_y(y_min), to_x(x_max), to_y(y_max)};
}

const Tensor* FindOutput(const std::vector<NamedTensor>& outputs, const std::string& name) {
  for (const NamedTensor& output : outputs) {
    if (output.name == name) return &output.tensor;
  }
  return nullptr;
}

const ValueInfo* FindValueInfo(const std::vector<ValueInfo>& values, const std::string& name) {
  for (const ValueInfo& value : values) {
    if (value.name == name) return &value;
  }
  return nullptr;
}

std::string OutputNames(const std::vector<ValueInfo>& values) {
  std::vector<std::string> names;
  for (const ValueInfo& value : values) names.push_back(value.name);
  return JoinNames(names);
}

Status CheckOutputShape(const std::vector<ValueInfo>& outputs, const std::string& name,
                        const Shape& expected, const std::string& what) {
  const ValueInfo* value = FindValueInfo(outputs, name);
  if (value == nullptr) {
    return InvalidArgument(what + " output '" + name +
                           "' is not an output of the model (outputs: " + OutputNames(outputs) +
                           ")");
  }
  if (value->shape != expected) {
    return InvalidArgument(what + " output '" + name + "' has shape " +
                           ShapeToString(value->shape) + "; the config implies " +
                           ShapeToString(expected));
  }
  return Status::Ok();
}

Status CheckLabelCount(const std::vector<std::string>& labels, int64_t num_classes) {
  if (static_cast<int64_t>(labels.size()) != num_classes) {
    return InvalidArgument("the model has " + std::to_string(num_classes) + " classes but " +
                           std::to_string(labels.size()) +
                           " labels are configured (labels / labels_file / labels.txt)");
  }
  return Status::Ok();
}

StatusOr<const float*> OutputFrame(const std::vector<NamedTensor>& outputs, const std::string& name,
                                   int frame, const Shape& frame_dims) {
  const Tensor* tensor = FindOutput(outputs, name);
  if (tensor == nullptr) return InvalidArgument("missing head output '" + name + "'");
  const Shape& shape = tensor->shape();
  Shape expected = {shape.empty() ? 0 : shape[0]};
  expected.insert(expected.end(), frame_dims.begin(), frame_dims.end());
  if (shape != expected || frame < 0 || frame >= shape[0] || tensor->size() != NumElements(shape)) {
    std::string dims;
    for (int64_t dim : frame_dims) {
      dims += ',';
      dims += std::to_string(dim);
    }
    return InvalidArgument("output '" + name + "' has shape " + ShapeToString(shape) +
                           "; expected [N" + dims + "] with N > " + std::to_string(frame));
  }
  return tensor->data() + frame * NumElements(frame_dims);
}

}  // namespace lowbit::engine::vision
