// Loading a model repository: models/<name>/config.pbtxt (+ its model file:
// model.onnx, compiled at load, or a compiled model.lbm; labels).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backend.h"
#include "lowbit/engine/model.h"
#include "lowbit/engine/status.h"
#include "lowbit/v1/model_config.pb.h"

namespace lowbit::server {

// Everything the server needs to know about one model to serve it.
struct ModelSpec {
  std::string name;  // the repository subdirectory's name
  v1::ModelConfig config;
  int num_classes = 0;
  std::vector<engine::LayerInfo> layers;  // at batch 1
  engine::ModelOrigin origin;             // .lbm or ONNX, where kernels were chosen
  std::shared_ptr<const InferenceBackend> backend;
};

// Loads every subdirectory of `repository` that holds a config.pbtxt, sorted
// by name. Fails if the repository is missing, holds no model, or any model
// fails to load (the error names the model directory).
StatusOr<std::vector<ModelSpec>> LoadModelRepository(const std::string& repository);

}  // namespace lowbit::server
