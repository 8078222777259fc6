// Links lowbit_runtime only: no ONNX importer, no passes, no ONNX protobuf
// (tests/engine/CMakeLists.txt). Loads the NanoDet-g .lbm that `lowbit
// compile` wrote (ctest fixture lbm_compile_nanodet, path in
// LOWBIT_TEST_LBM) as a model repository entry and detects the objects of
// data/images/dog.jpg, as a deployed box would. Public headers only.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "lowbit/engine/detector.h"

namespace lowbit::engine {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

TEST(RuntimeOnlyTest, LoadsACompiledModelEntryAndDetects) {
  const char* lbm = std::getenv("LOWBIT_TEST_LBM");
  ASSERT_NE(lbm, nullptr) << "LOWBIT_TEST_LBM is not set (run through ctest)";
  ASSERT_TRUE(std::filesystem::exists(lbm))
      << lbm << " missing: ctest's lbm_compile_nanodet makes it";

  const std::filesystem::path entry =
      std::filesystem::temp_directory_path() / ("runtime_only_" + std::to_string(::getpid()));
  std::filesystem::create_directories(entry);
  std::filesystem::copy_file(lbm, entry / "model.lbm");
  std::filesystem::copy_file("models/nanodet-g/labels.txt", entry / "labels.txt");
  std::string config = ReadAll("models/nanodet-g/config.pbtxt");
  const std::string onnx_line = "model_file: \"model.onnx\"";
  ASSERT_NE(config.find(onnx_line), std::string::npos);
  config.replace(config.find(onnx_line), onnx_line.size(), "model_file: \"model.lbm\"");
  std::ofstream(entry / "config.pbtxt") << config;

  auto detector = DetectorModel::Load(entry.string(), &Model::LoadCompiled);
  std::filesystem::remove_all(entry);
  ASSERT_TRUE(detector.ok()) << detector.status().ToString();
  EXPECT_TRUE((*detector)->model().origin().precompiled);

  const std::string jpeg = ReadAll("data/images/dog.jpg");
  ASSERT_FALSE(jpeg.empty()) << "run deploy/fetch-images.sh";
  auto image = DecodeImage(reinterpret_cast<const uint8_t*>(jpeg.data()), jpeg.size());
  ASSERT_TRUE(image.ok()) << image.status().ToString();
  NamedTensor input{(*detector)->config().input().tensor_name(),
                    Tensor((*detector)->InputShape(1))};
  (*detector)->Preprocess(image->view(), input.tensor.data());
  auto session = (*detector)->model().CreateSession();
  ASSERT_TRUE(session.ok()) << session.status().ToString();
  std::vector<NamedTensor> outputs;
  ASSERT_TRUE((*session)->Run({input}, &outputs).ok());
  const auto detections = (*detector)->Postprocess(outputs, 0, image->width, image->height);
  ASSERT_GE(detections.size(), 3u);
  EXPECT_EQ(detections[0].label, "bicycle");
  EXPECT_EQ(detections[1].label, "dog");
  EXPECT_EQ(detections[2].label, "truck");
}

TEST(RuntimeOnlyTest, AnOnnxFileNeedsTheCompiler) {
  auto model = Model::LoadCompiled("models/nanodet-g/model.onnx");
  ASSERT_FALSE(model.ok());
  EXPECT_NE(model.status().message().find("an ONNX model must be compiled first"),
            std::string::npos)
      << model.status().message();
}

}  // namespace
}  // namespace lowbit::engine
