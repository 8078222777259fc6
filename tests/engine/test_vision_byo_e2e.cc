// The three "bring your own model" entries through the whole pipeline, each
// assembled as a model directory from its config and labels
// (deploy/models/ssd-mobilenetv2-oid, yolov8n-nudenet, pp-lcnet-orientation)
// and its model file (models/_import/<name>/model.onnx, from
// deploy/models/fetch-byo-models.sh): decode,
// pre-process (stretch, top-left letterbox, short-side crop), Session::Run,
// their heads (SSD, YOLO v8, classification), NMS. Expected boxes are the
// same configs' pre-processing and decoding in numpy on ONNX Runtime 1.32's
// outputs of the same model files (SSD: the tflite2onnx conversion).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include <unistd.h>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "lowbit/engine/detector.h"
#include "test_vision_util.h"

namespace lowbit::engine {
namespace {

constexpr float kBoxTolerance = 6.0f;  // original image pixels

// A model directory under the system temp dir: deploy/models/NAME's
// config.pbtxt and labels.txt beside a link to models/_import/NAME/model.onnx.
std::shared_ptr<const DetectorModel> LoadModelOrFail(const std::string& name) {
  namespace fs = std::filesystem;
  const fs::path config_dir = fs::path("deploy/models") / name;
  const fs::path model = fs::absolute(fs::path("models/_import") / name / "model.onnx");
  if (!fs::exists(model)) {
    ADD_FAILURE() << "missing model " << model.string() << "; run deploy/models/fetch-models.sh";
    return nullptr;
  }
  const fs::path dir =
      fs::temp_directory_path() / ("lowbit-byo-" + std::to_string(getpid())) / name;
  fs::create_directories(dir);
  std::error_code error;
  for (const char* file : {"config.pbtxt", "labels.txt"}) {
    fs::copy_file(config_dir / file, dir / file, fs::copy_options::overwrite_existing, error);
    if (error) {
      ADD_FAILURE() << "copying " << (config_dir / file).string() << ": " << error.message();
      return nullptr;
    }
  }
  fs::remove(dir / "model.onnx", error);
  fs::create_symlink(model, dir / "model.onnx");
  auto detector = DetectorModel::Load(dir.string());
  fs::remove_all(dir.parent_path(), error);
  if (!detector.ok()) {
    ADD_FAILURE() << "DetectorModel::Load(" << name << "): " << detector.status().ToString();
    return nullptr;
  }
  return *detector;
}

std::vector<Detection> RunModel(const DetectorModel& detector, const ImageView& image) {
  NamedTensor input{detector.config().input().tensor_name(), Tensor(detector.InputShape(1))};
  detector.Preprocess(image, input.tensor.data());
  auto session = detector.model().CreateSession({.threads = 1});
  EXPECT_TRUE(session.ok()) << session.status().ToString();
  if (!session.ok()) return {};
  std::vector<NamedTensor> outputs;
  const Status status = (*session)->Run({input}, &outputs);
  EXPECT_TRUE(status.ok()) << status.ToString();
  if (!status.ok()) return {};
  return detector.Postprocess(outputs, 0, image.width, image.height);
}

std::vector<Detection> RunOnPhoto(const DetectorModel& detector, const std::string& name) {
  const std::vector<uint8_t> bytes = testing::ReadTestImage(name);
  if (bytes.empty()) return {};
  auto image = DecodeImage(bytes.data(), bytes.size());
  EXPECT_TRUE(image.ok()) << image.status().ToString();
  if (!image.ok()) return {};
  return RunModel(detector, image->view());
}

void ExpectDetection(const std::vector<Detection>& detections, const std::string& label,
                     Box expected) {
  const auto found = std::find_if(detections.begin(), detections.end(),
                                  [&](const Detection& d) { return d.label == label; });
  ASSERT_NE(found, detections.end()) << "no " << label;
  EXPECT_NEAR(found->box.x_min, expected.x_min, kBoxTolerance) << label;
  EXPECT_NEAR(found->box.y_min, expected.y_min, kBoxTolerance) << label;
  EXPECT_NEAR(found->box.x_max, expected.x_max, kBoxTolerance) << label;
  EXPECT_NEAR(found->box.y_max, expected.y_max, kBoxTolerance) << label;
}

TEST(BringYourOwnModelTest, SsdMobileNetV2FindsDogBicycleAndCar) {
  auto detector = LoadModelOrFail("ssd-mobilenetv2-oid");
  if (!detector) return;
  const std::vector<Detection> detections = RunOnPhoto(*detector, "dog.jpg");
  // ONNX Runtime: Dog 0.700, Bicycle 0.688, Car 0.674 on the 768x576 photo.
  ExpectDetection(detections, "Dog", {125, 212, 324, 552});
  ExpectDetection(detections, "Bicycle", {129, 123, 568, 480});
  ExpectDetection(detections, "Car", {459, 83, 693, 170});
}

TEST(BringYourOwnModelTest, YoloV8nFindsTheAstronautsFace) {
  auto detector = LoadModelOrFail("yolov8n-nudenet");
  if (!detector) return;
  const std::vector<Detection> detections = RunOnPhoto(*detector, "astronaut.png");
  // ONNX Runtime: FACE_FEMALE 0.811 on the 512x512 photo.
  ExpectDetection(detections, "FACE_FEMALE", {173, 83, 274, 180});
}

TEST(BringYourOwnModelTest, PpLcNetGivesTheOrientationOfARenderedPage) {
  auto detector = LoadModelOrFail("pp-lcnet-orientation");
  if (!detector) return;
  ASSERT_TRUE(detector->is_classifier());
  // A 300x400 page of black text lines; label k = the page turned k degrees
  // clockwise (ONNX Runtime: 0.92 for the right class at each rotation).
  cv::Mat page(400, 300, CV_8UC3, cv::Scalar(255, 255, 255));
  for (int line = 0; line < 12; ++line) {
    cv::putText(page, "The quick brown fox " + std::to_string(line), cv::Point(10, 30 + 30 * line),
                cv::FONT_HERSHEY_SIMPLEX, 0.6, cv::Scalar(0, 0, 0), 1);
  }
  const struct {
    int rotate;  // cv::RotateFlags, or -1 for none
    const char* label;
  } cases[] = {{-1, "0"},
               {cv::ROTATE_90_CLOCKWISE, "90"},
               {cv::ROTATE_180, "180"},
               {cv::ROTATE_90_COUNTERCLOCKWISE, "270"}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.label);
    cv::Mat turned;
    if (c.rotate < 0) {
      turned = page;
    } else {
      cv::rotate(page, turned, c.rotate);
    }
    const ImageView view{turned.data, turned.cols, turned.rows, static_cast<int>(turned.step),
                         PixelFormat::kBgr8};
    const std::vector<Detection> classes = RunModel(*detector, view);
    ASSERT_EQ(classes.size(), 1u);
    EXPECT_TRUE(classes[0].whole_image);
    EXPECT_EQ(classes[0].label, c.label);
    EXPECT_GT(classes[0].score, 0.8f);
  }
}

}  // namespace
}  // namespace lowbit::engine
