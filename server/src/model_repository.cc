#include "model_repository.h"

#include <algorithm>
#include <filesystem>
#include <system_error>

#include <spdlog/spdlog.h>

#include "engine_backend.h"
#include "lowbit/engine/detector.h"

namespace lowbit::server {

StatusOr<std::vector<ModelSpec>> LoadModelRepository(const std::string& repository) {
  namespace fs = std::filesystem;
  std::error_code error;
  if (!fs::is_directory(repository, error)) {
    return NotFound("model repository '" + repository + "' is not a directory (set --model-repo)");
  }
  std::vector<fs::path> model_dirs;
  for (const fs::directory_entry& entry : fs::directory_iterator(repository, error)) {
    if (entry.is_directory() && fs::exists(entry.path() / "config.pbtxt")) {
      model_dirs.push_back(entry.path());
    }
  }
  if (error) {
    return Unavailable("cannot list model repository '" + repository + "': " + error.message());
  }
  if (model_dirs.empty()) {
    return NotFound("model repository '" + repository +
                    "' has no subdirectory with a config.pbtxt");
  }
  std::sort(model_dirs.begin(), model_dirs.end());

  std::vector<ModelSpec> specs;
  for (const fs::path& dir : model_dirs) {
    StatusOr<std::shared_ptr<const engine::DetectorModel>> loaded =
        engine::DetectorModel::Load(dir.string());
    if (!loaded.ok()) return loaded.status().WithContext("loading model " + dir.string());
    std::shared_ptr<const engine::DetectorModel> model = std::move(loaded).value();

    ModelSpec spec;
    spec.name = dir.filename().string();
    spec.config = model->config();
    if (!spec.config.name().empty() && spec.config.name() != spec.name) {
      spdlog::warn("model directory {} names its model '{}' in config.pbtxt; serving it as '{}'",
                   dir.string(), spec.config.name(), spec.name);
    }
    spec.num_classes = static_cast<int>(model->labels().size());
    spec.layers = model->model().layers();
    spec.origin = model->model().origin();
    spec.backend = std::make_shared<EngineBackend>(model);
    spdlog::info(
        "loaded model {} from {} ({}): input {}x{}, {} classes, {} layers, kernels chosen on {}",
        spec.name, dir.string(),
        spec.origin.precompiled ? "compiled .lbm" : "ONNX compiled at load",
        spec.config.input().width(), spec.config.input().height(), spec.num_classes,
        spec.layers.size(), spec.origin.kernel_isa);
    specs.push_back(std::move(spec));
  }
  return specs;
}

}  // namespace lowbit::server
