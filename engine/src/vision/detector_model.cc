// DetectorModel: a model repository entry (config + labels + compiled model).
#include <cassert>
#include <filesystem>

#include "lowbit/engine/detector.h"
#include "vision/config.h"
#include "vision/head.h"
#include "vision/preprocess.h"

namespace lowbit::engine {

// Load(model_dir) with Model::Load is in compiler/compile.cc: the runtime
// library does not carry the ONNX compiler.
StatusOr<std::shared_ptr<const DetectorModel>> DetectorModel::Load(const std::string& model_dir,
                                                                   const ModelLoader& loader) {
  const std::filesystem::path directory(model_dir);
  std::error_code error;
  if (!std::filesystem::is_directory(directory, error)) {
    return NotFound("model directory " + model_dir +
                    " does not exist (deploy/models/fetch-models.sh installs the project's "
                    "models under models/)");
  }
  const std::string config_path = (directory / "config.pbtxt").string();
  LOWBIT_ASSIGN_OR_RETURN(v1::ModelConfig config, vision::ReadModelConfig(config_path));
  LOWBIT_RETURN_IF_ERROR(vision::ValidateModelConfig(config).WithContext(config_path));
  LOWBIT_ASSIGN_OR_RETURN(std::vector<std::string> labels, vision::LoadLabels(config, model_dir));

  const std::string model_file = config.model_file().empty() ? "model.onnx" : config.model_file();
  const std::string model_path = (directory / model_file).string();
  StatusOr<std::shared_ptr<const Model>> model = loader(model_path);
  if (!model.ok()) return model.status().WithContext("loading " + model_path);
  StatusOr<std::unique_ptr<vision::Head>> head = vision::MakeHead(config, model_dir);
  if (!head.ok()) return head.status().WithContext(config_path);
  LOWBIT_RETURN_IF_ERROR(vision::CheckConfigAgainstModel(&config, &labels, (*model)->inputs(),
                                                         (*model)->outputs(), **head)
                             .WithContext(config_path + " vs " + model_path));

  // The config as served (GetModel): labels resolved inline, whatever their source.
  config.clear_labels_file();
  for (const std::string& label : labels) config.add_labels(label);

  auto detector = std::make_shared<DetectorModel>();
  detector->config_ = std::move(config);
  detector->labels_ = std::move(labels);
  detector->model_ = std::move(model).value();
  detector->head_ = std::move(head).value();
  return std::shared_ptr<const DetectorModel>(std::move(detector));
}

Shape DetectorModel::InputShape(int batch) const {
  return vision::InputShapeFor(config_.input(), batch);
}

int64_t DetectorModel::InputSizePerFrame() const { return NumElements(InputShape(1)); }

void DetectorModel::Preprocess(const ImageView& image, float* dst) const {
  vision::PreprocessImage(config_.input(), image, dst);
}

bool DetectorModel::is_classifier() const { return head_->is_classifier(); }

std::vector<Detection> DetectorModel::Postprocess(const std::vector<NamedTensor>& outputs,
                                                  int index, int image_width, int image_height,
                                                  const DetectOptions& options) const {
  const float score_threshold =
      options.score_threshold > 0 ? options.score_threshold : config_.score_threshold();
  const float iou_threshold =
      options.iou_threshold > 0 ? options.iou_threshold : config_.iou_threshold();
  const vision::HeadGeometry geometry{
      config_.input().width(), config_.input().height(), image_width, image_height,
      vision::ComputeInputTransform(config_.input(), image_width, image_height)};
  StatusOr<std::vector<Detection>> candidates =
      head_->Decode(outputs, index, geometry, score_threshold);
  // Outputs come from a Session of this model, whose shapes Load checked; a
  // mismatch is a caller bug (wrong model's outputs or frame index).
  assert(candidates.ok() && "Postprocess: outputs do not belong to this model");
  if (!candidates.ok()) return {};
  // A classifier's classes are not boxes: no NMS (its head keeps top_k).
  std::vector<Detection> detections =
      head_->is_classifier() ? std::move(candidates).value()
                             : NonMaxSuppression(std::move(candidates).value(), iou_threshold,
                                                 config_.max_detections());
  for (Detection& detection : detections) detection.label = labels_[detection.class_id];
  return detections;
}

}  // namespace lowbit::engine
