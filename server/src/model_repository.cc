#include "model_repository.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>
#include <spdlog/spdlog.h>

#include "engine_backend.h"
#include "lowbit/engine/detector.h"

namespace lowbit::server {

namespace fs = std::filesystem;

StatusOr<std::vector<std::string>> ListModelDirectories(const std::string& repository) {
  std::error_code error;
  if (!fs::is_directory(repository, error)) {
    return NotFound("model repository '" + repository + "' is not a directory (set --model-repo)");
  }
  std::vector<std::string> model_dirs;
  for (fs::directory_iterator it(repository, error), end; !error && it != end;
       it.increment(error)) {
    std::error_code entry_error;
    if (it->is_directory(entry_error) && fs::exists(it->path() / "config.pbtxt", entry_error)) {
      model_dirs.push_back(it->path().string());
    }
  }
  if (error) {
    return Unavailable("cannot list model repository '" + repository + "': " + error.message());
  }
  std::sort(model_dirs.begin(), model_dirs.end());
  return model_dirs;
}

StatusOr<ModelSpec> LoadModelDirectory(const std::string& dir) {
  StatusOr<std::shared_ptr<const engine::DetectorModel>> loaded = engine::DetectorModel::Load(dir);
  if (!loaded.ok()) return loaded.status();
  std::shared_ptr<const engine::DetectorModel> model = std::move(loaded).value();

  ModelSpec spec;
  spec.name = fs::path(dir).filename().string();
  spec.config = model->config();
  if (!spec.config.name().empty() && spec.config.name() != spec.name) {
    spdlog::warn("model directory {} names its model '{}' in config.pbtxt; serving it as '{}'", dir,
                 spec.config.name(), spec.name);
  }
  spec.num_classes = static_cast<int>(model->labels().size());
  spec.layers = model->model().layers();
  spec.origin = model->model().origin();
  spec.inputs = model->model().inputs();
  spec.outputs = model->model().outputs();
  spec.backend = std::make_shared<EngineBackend>(model);
  spdlog::info(
      "loaded model {} from {} ({}): input {}x{}, {} classes, {} layers, kernels chosen on {}",
      spec.name, dir, spec.origin.precompiled ? "compiled .lbm" : "ONNX compiled at load",
      spec.config.input().width(), spec.config.input().height(), spec.num_classes,
      spec.layers.size(), spec.origin.kernel_isa);
  return spec;
}

StatusOr<std::vector<ModelSpec>> LoadModelRepository(const std::string& repository) {
  LOWBIT_ASSIGN_OR_RETURN(std::vector<std::string> directories, ListModelDirectories(repository));
  if (directories.empty()) {
    return NotFound("model repository '" + repository +
                    "' has no subdirectory with a config.pbtxt");
  }
  std::vector<ModelSpec> specs;
  for (const std::string& directory : directories) {
    StatusOr<ModelSpec> spec = LoadModelDirectory(directory);
    if (!spec.ok()) return spec.status().WithContext("loading model " + directory);
    specs.push_back(std::move(spec).value());
  }
  return specs;
}

namespace {

// "size:mtime_ns:inode" of `path`, "-" if it cannot be stat'ed.
std::string FileFingerprint(const fs::path& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) return "-";
  const long long mtime_ns =
      static_cast<long long>(info.st_mtim.tv_sec) * 1000000000LL + info.st_mtim.tv_nsec;
  return std::to_string(static_cast<long long>(info.st_size)) + ":" + std::to_string(mtime_ns) +
         ":" + std::to_string(static_cast<unsigned long long>(info.st_ino));
}

// Parse errors of a config being fingerprinted are not news: its load
// reports them.
class SilentErrorCollector final : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int, google::protobuf::io::ColumnNumber, const std::string&) override {}
};

}  // namespace

std::string ModelDirectoryFingerprint(const std::string& dir) {
  const fs::path directory(dir);
  const fs::path config_path = directory / "config.pbtxt";
  // Which files the config names; a config that does not parse fails its
  // load anyway, and is fingerprinted with the default names.
  v1::ModelConfig config;
  {
    std::ifstream file(config_path);
    std::stringstream text;
    text << file.rdbuf();
    SilentErrorCollector errors;
    google::protobuf::TextFormat::Parser parser;
    parser.RecordErrorsTo(&errors);
    if (!parser.ParseFromString(text.str(), &config)) config.Clear();
  }
  const std::string model_file = config.model_file().empty() ? "model.onnx" : config.model_file();
  const std::string labels_file =
      config.labels_file().empty() ? "labels.txt" : config.labels_file();
  return "config.pbtxt=" + FileFingerprint(config_path) + " " + model_file + "=" +
         FileFingerprint(directory / model_file) + " " + labels_file + "=" +
         FileFingerprint(directory / labels_file);
}

}  // namespace lowbit::server
