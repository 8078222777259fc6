// Reading a model repository: models/<name>/config.pbtxt (+ its model file:
// model.onnx, compiled at load, or a compiled model.lbm; labels). One
// directory at a time, so that a bad model never stops the others.
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
  // The model's tensors at batch 1 (Model::inputs()/outputs() order), as the
  // KServe v2 metadata reports them; empty for specs built without a model.
  std::vector<engine::ValueInfo> inputs;
  std::vector<engine::ValueInfo> outputs;
  std::shared_ptr<const InferenceBackend> backend;
};

// The subdirectories of `repository` that hold a config.pbtxt, as full
// paths sorted by name (possibly none). NOT_FOUND if `repository` is not a
// directory, UNAVAILABLE if it cannot be listed.
StatusOr<std::vector<std::string>> ListModelDirectories(const std::string& repository);

// Loads one model directory (config.pbtxt, labels, model file) into a spec
// named after the directory. The error says what is wrong with which file.
StatusOr<ModelSpec> LoadModelDirectory(const std::string& dir);

// Loads every model directory of `repository`; fails if there is none or
// any fails. Kept for callers that serve a fixed set; ModelRegistry
// loads one directory at a time instead.
StatusOr<std::vector<ModelSpec>> LoadModelRepository(const std::string& repository);

// A cheap summary of what a load of `dir` reads: size, mtime (ns) and inode
// of config.pbtxt, of the model file it names (default model.onnx) and of
// its labels file (default labels.txt), "-" for a missing file. Equal
// fingerprints: the files did not change (as far as stat(2) can tell).
std::string ModelDirectoryFingerprint(const std::string& dir);

}  // namespace lowbit::server
