// The whole detection pipeline on the real models and photos: decode,
// pre-process, engine Session::Run, head decode, NMS. Expected results are
// ONNX Runtime 1.30's on a faithful FP32 conversion of each model (labels exact,
// boxes within a few pixels, scores within 0.02).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "lowbit/engine/detector.h"
#include "test_vision_util.h"

namespace lowbit::engine {
namespace {

using testing::ReadTestImage;

// The reference gives boxes "about"/"near" to the pixel. Across resize kernels
// (PIL bilinear/box/lanczos, cv::resize INTER_LINEAR) the same model moves box
// edges by up to ~5 px (the bicycle's left edge by far more), so "a few
// pixels" is 6 here; labels are exact.
constexpr float kBoxTolerance = 6.0f;  // pixels of the original image
constexpr float kScoreTolerance = 0.02f;

std::shared_ptr<const DetectorModel> LoadModelOrFail(const std::string& model_dir) {
  if (!std::filesystem::exists(model_dir + "/config.pbtxt") ||
      !std::filesystem::exists(model_dir + "/model.onnx")) {
    ADD_FAILURE() << "missing model " << model_dir
                  << " (config.pbtxt + model.onnx); run deploy/models/fetch-models.sh";
    return nullptr;
  }
  auto detector = DetectorModel::Load(model_dir);
  if (!detector.ok()) {
    ADD_FAILURE() << "DetectorModel::Load(" << model_dir << "): " << detector.status().ToString();
    return nullptr;
  }
  return *detector;
}

std::vector<Detection> Detect(const DetectorModel& detector, const std::string& image_name,
                              int threads = 1) {
  const std::vector<uint8_t> bytes = ReadTestImage(image_name);
  if (bytes.empty()) return {};
  auto image = DecodeImage(bytes.data(), bytes.size());
  EXPECT_TRUE(image.ok()) << image.status().ToString();
  if (!image.ok()) return {};
  NamedTensor input{detector.config().input().tensor_name(), Tensor(detector.InputShape(1))};
  detector.Preprocess(image->view(), input.tensor.data());
  auto session = detector.model().CreateSession({.threads = threads});
  EXPECT_TRUE(session.ok()) << session.status().ToString();
  if (!session.ok()) return {};
  std::vector<NamedTensor> outputs;
  const Status status = (*session)->Run({input}, &outputs);
  EXPECT_TRUE(status.ok()) << status.ToString();
  if (!status.ok()) return {};
  return detector.Postprocess(outputs, 0, image->width, image->height);
}

std::string Describe(const std::vector<Detection>& detections) {
  std::string text;
  for (const Detection& d : detections) {
    char line[160];
    std::snprintf(line, sizeof line, "\n  %s %.3f [%.1f, %.1f, %.1f, %.1f]", d.label.c_str(),
                  d.score, d.box.x_min, d.box.y_min, d.box.x_max, d.box.y_max);
    text += line;
  }
  return text;
}

const Detection* FindLabel(const std::vector<Detection>& detections, const std::string& label) {
  for (const Detection& detection : detections) {
    if (detection.label == label) return &detection;
  }
  return nullptr;
}

void ExpectDetection(const std::vector<Detection>& detections, const std::string& label,
                     float score, const Box& box) {
  SCOPED_TRACE(label + Describe(detections));
  const Detection* found = FindLabel(detections, label);
  ASSERT_NE(found, nullptr);
  EXPECT_NEAR(found->score, score, kScoreTolerance);
  EXPECT_NEAR(found->box.x_min, box.x_min, kBoxTolerance);
  EXPECT_NEAR(found->box.y_min, box.y_min, kBoxTolerance);
  EXPECT_NEAR(found->box.x_max, box.x_max, kBoxTolerance);
  EXPECT_NEAR(found->box.y_max, box.y_max, kBoxTolerance);
}

std::vector<std::string> SortedLabels(const std::vector<Detection>& detections) {
  std::vector<std::string> labels;
  for (const Detection& detection : detections) labels.push_back(detection.label);
  std::sort(labels.begin(), labels.end());
  return labels;
}

TEST(VisionEndToEndTest, NanoDetOnDog) {
  auto detector = LoadModelOrFail("models/nanodet-g");
  ASSERT_NE(detector, nullptr);
  EXPECT_EQ(detector->InputShape(1), (Shape{1, 3, 416, 416}));
  EXPECT_EQ(detector->labels().size(), 80u);
  // The served config carries the labels read from labels.txt.
  ASSERT_EQ(detector->config().labels_size(), 80);
  EXPECT_EQ(detector->config().labels(0), "person");
  EXPECT_EQ(detector->config().labels(79), "toothbrush");
  EXPECT_TRUE(detector->config().labels_file().empty());
  const std::vector<Detection> detections = Detect(*detector, "dog.jpg");
  ASSERT_GE(detections.size(), 3u) << Describe(detections);
  // Highest score first; the three objects of the photo lead.
  EXPECT_EQ(detections[0].label, "bicycle") << Describe(detections);
  EXPECT_EQ(detections[1].label, "dog") << Describe(detections);
  EXPECT_EQ(detections[2].label, "truck") << Describe(detections);
  ExpectDetection(detections, "bicycle", 0.69f, {117, 130, 570, 424});
  ExpectDetection(detections, "dog", 0.42f, {131, 222, 359, 542});
  ExpectDetection(detections, "truck", 0.37f, {465, 86, 693, 166});
  // Anything else sits at the 0.35 threshold (the reference's car at 0.36; which
  // near-threshold box appears depends on the resize kernel), once per object.
  for (size_t i = 3; i < detections.size(); ++i) {
    EXPECT_LT(detections[i].score, 0.365f) << Describe(detections);
    EXPECT_GE(detections[i].score, 0.35f) << Describe(detections);
  }
  for (size_t i = 1; i < detections.size(); ++i) {
    EXPECT_GE(detections[i - 1].score, detections[i].score);
  }
  std::vector<std::string> labels = SortedLabels(detections);
  EXPECT_EQ(std::adjacent_find(labels.begin(), labels.end()), labels.end()) << Describe(detections);
}

TEST(VisionEndToEndTest, NanoDetTopDetectionOnOtherPhotos) {
  auto detector = LoadModelOrFail("models/nanodet-g");
  ASSERT_NE(detector, nullptr);
  struct Case {
    const char* image;
    const char* label;
    float score;
  };
  for (const Case& c : {Case{"giraffe.jpg", "giraffe", 0.83f}, Case{"eagle.jpg", "bird", 0.78f},
                        Case{"motorcycle_left.png", "motorcycle", 0.79f}}) {
    SCOPED_TRACE(c.image);
    const std::vector<Detection> detections = Detect(*detector, c.image, /*threads=*/2);
    ASSERT_FALSE(detections.empty());
    EXPECT_EQ(detections.front().label, c.label) << Describe(detections);
    EXPECT_NEAR(detections.front().score, c.score, kScoreTolerance) << Describe(detections);
  }
  const std::vector<Detection> giraffe = Detect(*detector, "giraffe.jpg");
  const Detection* zebra = FindLabel(giraffe, "zebra");
  ASSERT_NE(zebra, nullptr) << Describe(giraffe);
  EXPECT_NEAR(zebra->score, 0.67f, kScoreTolerance);
}

// A batch of two frames in one Run gives each frame its own detections,
// the same as running it alone.
TEST(VisionEndToEndTest, NanoDetBatchOfTwoMatchesSingleFrames) {
  auto detector = LoadModelOrFail("models/nanodet-g");
  ASSERT_NE(detector, nullptr);
  std::vector<Image> images;
  for (const char* name : {"dog.jpg", "giraffe.jpg"}) {
    const std::vector<uint8_t> bytes = ReadTestImage(name);
    ASSERT_FALSE(bytes.empty());
    auto image = DecodeImage(bytes.data(), bytes.size());
    ASSERT_TRUE(image.ok()) << image.status().ToString();
    images.push_back(std::move(image).value());
  }
  NamedTensor input{detector->config().input().tensor_name(), Tensor(detector->InputShape(2))};
  for (int frame = 0; frame < 2; ++frame) {
    detector->Preprocess(images[frame].view(),
                         input.tensor.data() + frame * detector->InputSizePerFrame());
  }
  auto session = detector->model().CreateSession();
  ASSERT_TRUE(session.ok()) << session.status().ToString();
  std::vector<NamedTensor> outputs;
  const Status status = (*session)->Run({input}, &outputs);
  ASSERT_TRUE(status.ok()) << status.ToString();
  for (int frame = 0; frame < 2; ++frame) {
    SCOPED_TRACE(frame);
    const std::vector<Detection> batched =
        detector->Postprocess(outputs, frame, images[frame].width, images[frame].height);
    const std::vector<Detection> single = Detect(*detector, frame == 0 ? "dog.jpg" : "giraffe.jpg");
    ASSERT_EQ(batched.size(), single.size()) << Describe(batched) << Describe(single);
    for (size_t i = 0; i < single.size(); ++i) {
      EXPECT_EQ(batched[i].label, single[i].label);
      EXPECT_NEAR(batched[i].score, single[i].score, 1e-5f);
      EXPECT_NEAR(batched[i].box.x_min, single[i].box.x_min, 1e-2f);
      EXPECT_NEAR(batched[i].box.y_max, single[i].box.y_max, 1e-2f);
    }
  }
}

TEST(VisionEndToEndTest, BlazeFaceOnAstronaut) {
  auto detector = LoadModelOrFail("models/blazeface");
  ASSERT_NE(detector, nullptr);
  EXPECT_EQ(detector->InputShape(1), (Shape{1, 128, 128, 3}));
  const std::vector<Detection> faces = Detect(*detector, "astronaut.png");
  ASSERT_EQ(faces.size(), 1u) << Describe(faces);
  EXPECT_EQ(faces[0].label, "face");
  ExpectDetection(faces, "face", 0.92f, {177, 84, 272, 180});
}

}  // namespace
}  // namespace lowbit::engine
