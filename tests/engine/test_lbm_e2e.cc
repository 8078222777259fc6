// NanoDet-g (models/nanodet-g, deploy/models/fetch-models.sh) through a .lbm:
// the compiled file reloads to the same graph and constants, runs to outputs
// bitwise equal to compiling the ONNX, and serves as a model repository
// entry's model_file with the same detections.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "lbm_test_util.h"
#include "lowbit/engine/detector.h"
#include "runtime/compiled_model.h"
#include "test_vision_util.h"

namespace lowbit::engine {
namespace {

constexpr const char* kModelDir = "models/nanodet-g";

class LbmNanoDetTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    directory_ = new std::filesystem::path(std::filesystem::temp_directory_path() /
                                           ("lbm_e2e_" + std::to_string(::getpid())));
    std::filesystem::create_directories(*directory_);
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*directory_);
    delete directory_;
  }
  void SetUp() override {
    if (!std::filesystem::exists(std::string(kModelDir) + "/model.onnx"))
      FAIL() << "missing " << kModelDir << "/model.onnx; run deploy/models/fetch-models.sh";
  }
  static std::filesystem::path* directory_;
};
std::filesystem::path* LbmNanoDetTest::directory_ = nullptr;

std::vector<NamedTensor> RunModelOn(const Model& model, const NamedTensor& input, int threads) {
  auto session = model.CreateSession({.threads = threads});
  EXPECT_TRUE(session.ok()) << session.status().ToString();
  std::vector<NamedTensor> outputs;
  if (!session.ok()) return outputs;
  const Status status = (*session)->Run({input}, &outputs);
  EXPECT_TRUE(status.ok()) << status.ToString();
  return outputs;
}

TEST_F(LbmNanoDetTest, CompiledFileReloadsExactlyAndRunsBitwiseEqual) {
  auto detector = DetectorModel::Load(kModelDir);
  ASSERT_TRUE(detector.ok()) << detector.status().ToString();
  const Model& compiled = (*detector)->model();
  const std::string lbm_path = (*directory_ / "nanodet-g.lbm").string();
  ASSERT_TRUE(WriteCompiledModel(compiled, lbm_path).ok());
  auto loaded = Model::LoadCompiled(lbm_path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();

  testing::ExpectSameGraph(dynamic_cast<const runtime::CompiledModel&>(compiled).graph(),
                           dynamic_cast<const runtime::CompiledModel&>(**loaded).graph());
  ASSERT_EQ(compiled.outputs().size(), (*loaded)->outputs().size());
  for (size_t i = 0; i < compiled.outputs().size(); ++i) {
    EXPECT_EQ(compiled.outputs()[i].name, (*loaded)->outputs()[i].name);
    EXPECT_EQ(compiled.outputs()[i].shape, (*loaded)->outputs()[i].shape);
  }

  const std::vector<uint8_t> bytes = testing::ReadTestImage("dog.jpg");
  ASSERT_FALSE(bytes.empty());
  auto image = DecodeImage(bytes.data(), bytes.size());
  ASSERT_TRUE(image.ok()) << image.status().ToString();
  NamedTensor input{(*detector)->config().input().tensor_name(),
                    Tensor((*detector)->InputShape(1))};
  (*detector)->Preprocess(image->view(), input.tensor.data());
  for (int threads : {1, 2}) {
    const auto expected = RunModelOn(compiled, input, threads);
    const auto actual = RunModelOn(**loaded, input, threads);
    ASSERT_EQ(expected.size(), 6u);
    ASSERT_EQ(actual.size(), expected.size());
    for (size_t i = 0; i < expected.size(); ++i) {
      EXPECT_EQ(actual[i].name, expected[i].name);
      ASSERT_EQ(actual[i].tensor.shape(), expected[i].tensor.shape());
      EXPECT_EQ(std::memcmp(actual[i].tensor.data(), expected[i].tensor.data(),
                            expected[i].tensor.size() * sizeof(float)),
                0)
          << expected[i].name << " differs at " << threads << " thread(s)";
    }
  }
}

TEST_F(LbmNanoDetTest, ARepositoryEntryNamingALbmDetectsTheSameObjects) {
  auto onnx_detector = DetectorModel::Load(kModelDir);
  ASSERT_TRUE(onnx_detector.ok()) << onnx_detector.status().ToString();
  const std::filesystem::path entry = *directory_ / "nanodet-lbm";
  std::filesystem::create_directories(entry);
  ASSERT_TRUE(WriteCompiledModel((*onnx_detector)->model(), (entry / "model.lbm").string()).ok());
  std::filesystem::copy_file(std::string(kModelDir) + "/labels.txt", entry / "labels.txt");
  std::ifstream in(std::string(kModelDir) + "/config.pbtxt");
  std::string config((std::istreambuf_iterator<char>(in)), {});
  const std::string onnx_line = "model_file: \"model.onnx\"";
  ASSERT_NE(config.find(onnx_line), std::string::npos);
  config.replace(config.find(onnx_line), onnx_line.size(), "model_file: \"model.lbm\"");
  std::ofstream(entry / "config.pbtxt") << config;

  auto lbm_detector = DetectorModel::Load(entry.string());
  ASSERT_TRUE(lbm_detector.ok()) << lbm_detector.status().ToString();
  EXPECT_TRUE((*lbm_detector)->model().origin().precompiled);
  EXPECT_EQ((*lbm_detector)->config().model_file(), "model.lbm");

  const std::vector<uint8_t> bytes = testing::ReadTestImage("dog.jpg");
  auto image = DecodeImage(bytes.data(), bytes.size());
  ASSERT_TRUE(image.ok());
  auto detect = [&](const DetectorModel& detector) {
    NamedTensor input{detector.config().input().tensor_name(), Tensor(detector.InputShape(1))};
    detector.Preprocess(image->view(), input.tensor.data());
    return detector.Postprocess(RunModelOn(detector.model(), input, 1), 0, image->width,
                                image->height);
  };
  const auto expected = detect(**onnx_detector);
  const auto actual = detect(**lbm_detector);
  ASSERT_GE(expected.size(), 3u);
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(actual[i].label, expected[i].label);
    EXPECT_EQ(actual[i].score, expected[i].score);
    EXPECT_EQ(actual[i].box.x_min, expected[i].box.x_min);
    EXPECT_EQ(actual[i].box.y_max, expected[i].box.y_max);
  }
  EXPECT_EQ(actual[0].label, "bicycle");
}

}  // namespace
}  // namespace lowbit::engine
