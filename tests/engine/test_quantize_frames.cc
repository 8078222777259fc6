// lowbit quantize's frame handling (quantize/calibration.h): frames from a
// video, and RunFrames over them with any number of threads.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "engine_test_util.h"
#include "quantize/calibration.h"

namespace lowbit::engine::quantize {
namespace {

using engine::testing::OnnxBuilder;
using engine::testing::RandomFloats;
using engine::testing::SetInts;

constexpr int kSide = 8;

v1::InputConfig SmallInput() {
  v1::InputConfig input;
  input.set_tensor_name("x");
  input.set_width(kSide);
  input.set_height(kSide);
  input.set_layout(v1::NCHW);
  input.set_color_order(v1::RGB);
  input.set_resize(v1::STRETCH);
  for (int c = 0; c < 3; ++c) input.add_mean(127.5f), input.add_std(127.5f);
  return input;
}

// x [N,3,8,8] -> 3x3 conv (pad 1) to 4 channels -> Relu -> y.
std::shared_ptr<const Model> SmallConvModel() {
  OnnxBuilder b;
  b.Input("x", {-1, 3, kSide, kSide}).Output("y");
  b.Floats("w", {4, 3, 3, 3}, RandomFloats(4 * 3 * 3 * 3, 7));
  b.Floats("b", {4}, RandomFloats(4, 8));
  SetInts(b.Node("Conv", {"x", "w", "b"}, {"c"}), "pads", {1, 1, 1, 1});
  b.Node("Relu", {"c"}, {"y"});
  auto model = CompileModelProto(b.proto(), "test model");
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  return model.ok() ? *model : nullptr;
}

CalibrationFrames RandomFrames(int count) {
  CalibrationFrames frames;
  for (int f = 0; f < count; ++f) {
    frames.inputs.push_back(RandomFloats(3 * kSide * kSide, 100 + f));
    frames.names.push_back("frame" + std::to_string(f));
  }
  return frames;
}

// What one plain session computes on each frame.
std::vector<std::vector<float>> DirectOutputs(const Model& model, const CalibrationFrames& frames) {
  auto session = model.CreateSession();
  EXPECT_TRUE(session.ok());
  std::vector<std::vector<float>> result;
  for (const auto& input : frames.inputs) {
    std::vector<NamedTensor> outputs;
    EXPECT_TRUE((*session)->Run({{"x", Tensor({1, 3, kSide, kSide}, input)}}, &outputs).ok());
    result.push_back(outputs.at(0).tensor.values());
  }
  return result;
}

TEST(RunFrames, VisitsEveryFrameInOrderOneAtATimeWhateverTheThreads) {
  auto model = SmallConvModel();
  ASSERT_NE(model, nullptr);
  const CalibrationFrames frames = RandomFrames(9);
  const auto expected = DirectOutputs(*model, frames);
  for (int threads : {1, 2, 3, 16}) {
    std::vector<size_t> order;
    std::vector<std::vector<float>> seen;
    std::mutex mutex;
    int inside = 0, most_inside = 0;
    const Status status =
        RunFrames(*model, "x", SmallInput(), frames, frames.inputs.size(), threads,
                  [&](size_t f, const std::vector<NamedTensor>& outputs) {
                    {
                      std::lock_guard<std::mutex> lock(mutex);
                      most_inside = std::max(most_inside, ++inside);
                    }
                    // Long enough for another worker to arrive if visits could overlap.
                    std::this_thread::sleep_for(std::chrono::milliseconds(2));
                    order.push_back(f);
                    seen.push_back(outputs.at(0).tensor.values());
                    std::lock_guard<std::mutex> lock(mutex);
                    --inside;
                    return Status::Ok();
                  });
    ASSERT_TRUE(status.ok()) << status.ToString();
    EXPECT_EQ(most_inside, 1) << threads << " threads";
    ASSERT_EQ(order.size(), frames.inputs.size()) << threads << " threads";
    for (size_t f = 0; f < order.size(); ++f) {
      EXPECT_EQ(order[f], f) << threads << " threads";
      EXPECT_EQ(seen[f], expected[f]) << "frame " << f << ", " << threads << " threads";
    }
  }
}

TEST(RunFrames, StopsAtTheLimitAndAtTheFirstError) {
  auto model = SmallConvModel();
  ASSERT_NE(model, nullptr);
  const CalibrationFrames frames = RandomFrames(12);
  for (int threads : {1, 4}) {
    std::vector<size_t> order;
    ASSERT_TRUE(RunFrames(*model, "x", SmallInput(), frames, 5, threads,
                          [&](size_t f, const std::vector<NamedTensor>&) {
                            order.push_back(f);
                            return Status::Ok();
                          })
                    .ok());
    EXPECT_EQ(order, (std::vector<size_t>{0, 1, 2, 3, 4})) << threads << " threads";

    order.clear();
    const Status status =
        RunFrames(*model, "x", SmallInput(), frames, frames.inputs.size(), threads,
                  [&](size_t f, const std::vector<NamedTensor>&) {
                    order.push_back(f);
                    return f == 3 ? InvalidArgument("frame 3 is bad") : Status::Ok();
                  });
    EXPECT_FALSE(status.ok());
    EXPECT_NE(status.ToString().find("frame 3 is bad"), std::string::npos) << status.ToString();
    EXPECT_EQ(order, (std::vector<size_t>{0, 1, 2, 3})) << threads << " threads";
  }
}

TEST(LoadCalibrationFrames, VideoFramesAreSpreadEvenlyAndMatchReadingEveryFrame) {
  const std::string video = "data/images/vtest.avi";
  if (!std::filesystem::exists(video)) {
    ADD_FAILURE() << "missing " << video << " (run the tests from the repository root)";
    return;
  }
  const v1::InputConfig input = SmallInput();
  auto every = LoadCalibrationFrames(input, video, 1 << 20, {});
  ASSERT_TRUE(every.ok()) << every.status().ToString();
  const int total = static_cast<int>(every->inputs.size());
  ASSERT_GT(total, 100);  // vtest.avi: 795 frames
  for (int i = 0; i < total; ++i) ASSERT_EQ(every->video_indices[i], i);

  auto some = LoadCalibrationFrames(input, video, 7, {});
  ASSERT_TRUE(some.ok()) << some.status().ToString();
  ASSERT_EQ(some->inputs.size(), 7u);
  for (int i = 0; i < 7; ++i) {
    const int index = static_cast<int>(static_cast<int64_t>(i) * total / 7);
    EXPECT_EQ(some->video_indices[i], index);
    EXPECT_EQ(some->names[i], "vtest.avi#" + std::to_string(index));
    // The same pixels as the frame at that index when every frame is read.
    EXPECT_EQ(some->inputs[i], every->inputs[index]) << "frame " << index;
  }
}

TEST(LoadCalibrationFrames, RefusesAFileThatIsNotAVideo) {
  const std::string path =
      (std::filesystem::temp_directory_path() / "lowbit_not_a_video.avi").string();
  {
    std::ofstream file(path, std::ios::binary);
    file << "this is not a video";
  }
  auto frames = LoadCalibrationFrames(SmallInput(), path, 4, {});
  std::filesystem::remove(path);
  ASSERT_FALSE(frames.ok());
  EXPECT_NE(frames.status().ToString().find(path), std::string::npos) << frames.status().ToString();
}

}  // namespace
}  // namespace lowbit::engine::quantize
