// EngineBackend on the real nanodet-g (models/nanodet-g, data/images/dog.jpg;
// run from the source tree): a batch mixes decoded images and pre-processed
// tensors, each frame's raw outputs are its slice of the batch, batch sizes
// alternate without changing results, and the scheduler's warm-up measures
// every batch size on it.
#include "engine_backend.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "scheduler.h"

namespace lowbit::server {
namespace {

class EngineBackendTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    StatusOr<std::shared_ptr<const engine::DetectorModel>> model =
        engine::DetectorModel::Load("models/nanodet-g");
    ASSERT_TRUE(model.ok()) << model.status().ToString() << " (run from the source tree)";
    model_ = new std::shared_ptr<const engine::DetectorModel>(std::move(model).value());
    std::ifstream file("data/images/dog.jpg", std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(file)), {});
    StatusOr<engine::Image> image =
        engine::DecodeImage(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    ASSERT_TRUE(image.ok()) << image.status().ToString();
    image_ = new engine::Image(std::move(image).value());
  }
  static void TearDownTestSuite() {
    delete model_;
    delete image_;
  }

  static std::shared_ptr<const engine::DetectorModel>* model_;
  static engine::Image* image_;
};

std::shared_ptr<const engine::DetectorModel>* EngineBackendTest::model_ = nullptr;
engine::Image* EngineBackendTest::image_ = nullptr;

double MaxDifference(const std::vector<engine::NamedTensor>& a,
                     const std::vector<engine::NamedTensor>& b) {
  EXPECT_EQ(a.size(), b.size());
  double most = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    EXPECT_EQ(a[i].name, b[i].name);
    EXPECT_EQ(a[i].tensor.shape(), b[i].tensor.shape());
    if (a[i].tensor.size() != b[i].tensor.size()) return INFINITY;
    for (int64_t k = 0; k < a[i].tensor.size(); ++k) {
      most = std::max(most, std::abs(double(a[i].tensor.data()[k]) - b[i].tensor.data()[k]));
    }
  }
  return most;
}

TEST_F(EngineBackendTest, ImagesAndTensorsBatchTogetherAndSliceByFrame) {
  const engine::DetectorModel& model = **model_;
  EngineBackend backend(*model_);
  EXPECT_EQ(backend.input_floats_per_frame(), model.InputSizePerFrame());
  StatusOr<std::unique_ptr<InferenceSession>> session = backend.CreateSession(1);
  ASSERT_TRUE(session.ok()) << session.status().ToString();

  const FrameInput image{image_, nullptr};
  ASSERT_TRUE((*session)->Run(std::span<const FrameInput>(&image, 1)).ok());
  const std::vector<engine::Detection> alone =
      (*session)->Postprocess(0, image_->width, image_->height, {});
  const std::vector<engine::NamedTensor> alone_raw = (*session)->RawOutputs(0);
  ASSERT_FALSE(alone.empty());  // the dog picture has a dog
  ASSERT_EQ(alone_raw.size(), model.model().outputs().size());
  for (const engine::NamedTensor& output : alone_raw) EXPECT_EQ(output.tensor.shape()[0], 1);
  EXPECT_TRUE((*session)->RawOutputs(1).empty());

  // The same frame pre-processed by the caller, in a batch of two.
  std::vector<float> tensor(static_cast<size_t>(model.InputSizePerFrame()));
  model.Preprocess(image_->view(), tensor.data());
  const FrameInput pair[] = {{nullptr, &tensor}, image};
  for (int round = 0; round < 2; ++round) {  // sizes alternate 2, 1, 2
    ASSERT_TRUE((*session)->Run(pair).ok());
    for (int index = 0; index < 2; ++index) {
      EXPECT_LT(MaxDifference((*session)->RawOutputs(index), alone_raw), 1e-4) << index;
      const std::vector<engine::Detection> detections =
          (*session)->Postprocess(index, image_->width, image_->height, {});
      ASSERT_EQ(detections.size(), alone.size()) << index;
      for (size_t d = 0; d < alone.size(); ++d) {
        EXPECT_EQ(detections[d].class_id, alone[d].class_id);
        EXPECT_NEAR(detections[d].box.x_min, alone[d].box.x_min, 0.5);
        EXPECT_NEAR(detections[d].score, alone[d].score, 1e-4);
      }
    }
    EXPECT_TRUE((*session)->RawOutputs(2).empty());
    ASSERT_TRUE((*session)->Run(std::span<const FrameInput>(&image, 1)).ok());
    EXPECT_LT(MaxDifference((*session)->RawOutputs(0), alone_raw), 1e-4);
  }
}

TEST_F(EngineBackendTest, ATensorOfTheWrongSizeIsRefused) {
  EngineBackend backend(*model_);
  StatusOr<std::unique_ptr<InferenceSession>> session = backend.CreateSession(1);
  ASSERT_TRUE(session.ok());
  const std::vector<float> short_tensor(10, 0.0f);
  const FrameInput frame{nullptr, &short_tensor};
  Status status = (*session)->Run(std::span<const FrameInput>(&frame, 1));
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("10 floats"), std::string::npos);
  EXPECT_TRUE((*session)->RawOutputs(0).empty());
}

// The warm-up runs every size on the real engine; the seeded estimates are
// real measurements (printed), larger batches take longer in all but
// per-frame cost.
TEST_F(EngineBackendTest, SchedulerWarmUpMeasuresEveryBatchSize) {
  EngineBackend backend(*model_);
  SchedulerOptions options;
  options.workers = 1;
  options.max_batch = 4;
  options.latency_objective = std::chrono::milliseconds(500);
  const auto start = std::chrono::steady_clock::now();
  StatusOr<std::unique_ptr<Scheduler>> scheduler = Scheduler::Create("nanodet-g", backend, options);
  ASSERT_TRUE(scheduler.ok()) << scheduler.status().ToString();
  const double create_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  std::printf("Create with warm-up: %.0f ms\n", create_ms);
  for (int b = 1; b <= options.max_batch; ++b) {
    const int64_t us = (*scheduler)->service_time_us(b);
    std::printf("batch %d: %.1f ms (%.1f ms per frame)\n", b, us / 1000.0, us / 1000.0 / b);
    EXPECT_GT(us, 0) << b;
  }
  EXPECT_GT((*scheduler)->service_time_us(4), (*scheduler)->service_time_us(1));
}

}  // namespace
}  // namespace lowbit::server
