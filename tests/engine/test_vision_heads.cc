// Detection heads (NanoDet GFL, BlazeFace anchors) and class-wise NMS on
// hand-built output tensors with known answers.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

#include "lowbit/engine/detector.h"
#include "vision/heads.h"

namespace lowbit::engine {
namespace {

Detection MakeDetection(int class_id, float score, Box box) {
  Detection detection;
  detection.class_id = class_id;
  detection.score = score;
  detection.box = box;
  return detection;
}

void ExpectBoxNear(const Box& actual, const Box& expected, float tolerance) {
  EXPECT_NEAR(actual.x_min, expected.x_min, tolerance);
  EXPECT_NEAR(actual.y_min, expected.y_min, tolerance);
  EXPECT_NEAR(actual.x_max, expected.x_max, tolerance);
  EXPECT_NEAR(actual.y_max, expected.y_max, tolerance);
}

// ---------------------------------------------------------------- NMS

TEST(NonMaxSuppressionTest, SuppressesOverlappingBoxesOfTheSameClass) {
  // IoU of the first two = 80 / 120 = 0.667; the third does not overlap.
  std::vector<Detection> detections = {
      MakeDetection(1, 0.6f, {0, 0, 10, 10}),
      MakeDetection(1, 0.9f, {2, 0, 12, 10}),
      MakeDetection(1, 0.5f, {50, 50, 60, 60}),
  };
  auto kept = NonMaxSuppression(detections, 0.5f, 0);
  ASSERT_EQ(kept.size(), 2u);
  EXPECT_FLOAT_EQ(kept[0].score, 0.9f);
  EXPECT_FLOAT_EQ(kept[1].score, 0.5f);
  // Above the overlap, both survive.
  EXPECT_EQ(NonMaxSuppression(detections, 0.7f, 0).size(), 3u);
}

TEST(NonMaxSuppressionTest, KeepsOverlappingBoxesOfDifferentClasses) {
  std::vector<Detection> detections = {
      MakeDetection(2, 0.7f, {0, 0, 10, 10}),
      MakeDetection(7, 0.8f, {0, 0, 10, 10}),
  };
  auto kept = NonMaxSuppression(detections, 0.5f, 0);
  ASSERT_EQ(kept.size(), 2u);
  EXPECT_EQ(kept[0].class_id, 7);
  EXPECT_EQ(kept[1].class_id, 2);
}

TEST(NonMaxSuppressionTest, MaxDetectionsKeepsTheHighestScores) {
  std::vector<Detection> detections;
  for (int i = 0; i < 10; ++i) {
    detections.push_back(MakeDetection(0, 0.1f * i, {20.0f * i, 0, 20.0f * i + 10, 10}));
  }
  // The best box suppresses its overlapping twin; the next best survives.
  detections.push_back(MakeDetection(0, 0.95f, {180, 0, 190, 10}));
  auto kept = NonMaxSuppression(detections, 0.5f, 3);
  ASSERT_EQ(kept.size(), 3u);
  EXPECT_FLOAT_EQ(kept[0].score, 0.95f);
  EXPECT_FLOAT_EQ(kept[1].score, 0.8f);
  EXPECT_FLOAT_EQ(kept[2].score, 0.7f);
}

TEST(NonMaxSuppressionTest, EmptyAndDegenerateBoxes) {
  EXPECT_TRUE(NonMaxSuppression({}, 0.5f, 10).empty());
  // Zero-area boxes have IoU 0 with everything: nothing is suppressed, no NaN.
  std::vector<Detection> detections = {MakeDetection(0, 0.9f, {5, 5, 5, 5}),
                                       MakeDetection(0, 0.8f, {5, 5, 5, 5})};
  EXPECT_EQ(NonMaxSuppression(detections, 0.5f, 0).size(), 2u);
}

// ---------------------------------------------------------------- NanoDet

// One stride-8 level on a 16x16 input: a 2x2 grid, 3 classes, reg_max 3
// (4 bins per side).
struct NanoDetFixture {
  v1::NanoDetHead head;
  std::vector<NamedTensor> outputs;
  static constexpr int kCells = 4, kClasses = 3, kBins = 4;

  explicit NanoDetFixture(int batch = 1) {
    head.add_strides(8);
    head.set_reg_max(kBins - 1);
    head.add_score_outputs("scores");
    head.add_box_outputs("boxes");
    outputs.push_back({"boxes", Tensor({batch, kCells, 4 * kBins})});  // order does not matter
    outputs.push_back({"scores", Tensor({batch, kCells, kClasses})});
    std::fill(scores(0), scores(0) + batch * kCells * kClasses, 0.05f);
  }
  float* scores(int frame) { return outputs[1].tensor.data() + frame * kCells * kClasses; }
  // Puts all of a side's probability mass on `bin` (softmax of a 60-logit
  // spike: the other bins get e^-60).
  void PeakSides(int frame, int cell, const int (&bins)[4]) {
    float* sides = outputs[0].tensor.data() + (frame * kCells + cell) * 4 * kBins;
    for (int side = 0; side < 4; ++side) {
      for (int k = 0; k < kBins; ++k) sides[side * kBins + k] = k == bins[side] ? 60.0f : 0.0f;
    }
  }
};

TEST(NanoDetDecodeTest, PeakedDistributionGivesExactBox) {
  NanoDetFixture fixture;
  // Cell 3 = row 1, col 1: centre (12, 12) in input pixels.
  fixture.scores(0)[3 * 3 + 2] = 0.9f;
  fixture.PeakSides(0, 3, {1, 1, 0, 0});  // l, t, r, b = 8, 8, 0, 0 pixels
  // Image 160x80: x scale 10, y scale 5.
  const vision::HeadGeometry geometry{16, 16, 160, 80};
  auto detections = vision::DecodeNanoDet(fixture.head, fixture.outputs, 0, geometry, 0.5f);
  ASSERT_TRUE(detections.ok()) << detections.status().ToString();
  ASSERT_EQ(detections->size(), 1u);
  const Detection& detection = (*detections)[0];
  EXPECT_EQ(detection.class_id, 2);
  EXPECT_FLOAT_EQ(detection.score, 0.9f);
  ExpectBoxNear(detection.box, {(12 - 8) * 10, (12 - 8) * 5, (12 + 0) * 10, (12 + 0) * 5}, 1e-3f);
}

TEST(NanoDetDecodeTest, UniformDistributionGivesMeanBinAndBoxIsClipped) {
  NanoDetFixture fixture;
  // Cell 0 = row 0, col 0: centre (4, 4). Uniform over bins 0..3: mean 1.5,
  // i.e. 12 pixels per side -> [-8, -8, 16, 16], clipped to the image.
  fixture.scores(0)[0 * 3 + 1] = 0.6f;
  const vision::HeadGeometry geometry{16, 16, 32, 32};
  auto detections = vision::DecodeNanoDet(fixture.head, fixture.outputs, 0, geometry, 0.5f);
  ASSERT_TRUE(detections.ok()) << detections.status().ToString();
  ASSERT_EQ(detections->size(), 1u);
  EXPECT_EQ((*detections)[0].class_id, 1);
  ExpectBoxNear((*detections)[0].box, {0, 0, 32, 32}, 1e-4f);
}

TEST(NanoDetDecodeTest, ThresholdAndFrameIndex) {
  NanoDetFixture fixture(/*batch=*/2);
  fixture.scores(0)[1 * 3 + 0] = 0.49f;  // below
  fixture.scores(0)[2 * 3 + 0] = 0.5f;   // at the threshold: kept
  fixture.scores(1)[3 * 3 + 1] = 0.7f;   // frame 1 only
  fixture.PeakSides(1, 3, {0, 0, 1, 1});
  const vision::HeadGeometry geometry{16, 16, 16, 16};
  auto frame0 = vision::DecodeNanoDet(fixture.head, fixture.outputs, 0, geometry, 0.5f);
  ASSERT_TRUE(frame0.ok());
  ASSERT_EQ(frame0->size(), 1u);
  EXPECT_EQ((*frame0)[0].class_id, 0);
  auto frame1 = vision::DecodeNanoDet(fixture.head, fixture.outputs, 1, geometry, 0.5f);
  ASSERT_TRUE(frame1.ok());
  ASSERT_EQ(frame1->size(), 1u);
  EXPECT_EQ((*frame1)[0].class_id, 1);
  ExpectBoxNear((*frame1)[0].box, {12, 12, 16, 16}, 1e-3f);  // [12,12,20,20] clipped
}

TEST(NanoDetDecodeTest, WrongShapesAreErrors) {
  NanoDetFixture fixture;
  const vision::HeadGeometry geometry{24, 16, 24, 16};  // 3x2 grid: 6 cells, not 4
  auto result = vision::DecodeNanoDet(fixture.head, fixture.outputs, 0, geometry, 0.5f);
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(result.status().message(), ::testing::HasSubstr("scores"));
  result = vision::DecodeNanoDet(fixture.head, fixture.outputs, 1, {16, 16, 16, 16}, 0.5f);
  EXPECT_FALSE(result.ok());  // frame 1 of a batch of 1
}

// ---------------------------------------------------------------- BlazeFace

v1::BlazeFaceHead FrontBlazeFaceHead() {
  v1::BlazeFaceHead head;
  head.add_strides(8);
  head.add_strides(16);
  head.add_anchors_per_cell(2);
  head.add_anchors_per_cell(6);
  head.add_score_outputs("scores8");
  head.add_score_outputs("scores16");
  head.add_box_outputs("boxes8");
  head.add_box_outputs("boxes16");
  head.set_box_scale(128);
  return head;
}

TEST(BlazeFaceTest, AnchorCountAndOrder) {
  const auto anchors = vision::BlazeFaceAnchors(FrontBlazeFaceHead(), 128, 128);
  ASSERT_EQ(anchors.size(), 896u);  // 16*16*2 + 8*8*6
  const auto expect_anchor = [&](size_t index, float x, float y) {
    SCOPED_TRACE(index);
    EXPECT_FLOAT_EQ(anchors[index].x_center, x);
    EXPECT_FLOAT_EQ(anchors[index].y_center, y);
  };
  // Stride 8: row-major cells, 2 anchors each.
  expect_anchor(0, 0.5f / 16, 0.5f / 16);
  expect_anchor(1, 0.5f / 16, 0.5f / 16);
  expect_anchor(2, 1.5f / 16, 0.5f / 16);
  expect_anchor(31, 15.5f / 16, 0.5f / 16);
  expect_anchor(32, 0.5f / 16, 1.5f / 16);
  expect_anchor(511, 15.5f / 16, 15.5f / 16);
  // Stride 16: 6 anchors per cell.
  for (size_t i = 512; i < 518; ++i) expect_anchor(i, 0.5f / 8, 0.5f / 8);
  expect_anchor(518, 1.5f / 8, 0.5f / 8);
  expect_anchor(512 + 6 * 8, 0.5f / 8, 1.5f / 8);
  expect_anchor(895, 7.5f / 8, 7.5f / 8);
}

TEST(BlazeFaceTest, DecodesOneAnchorWithKnownAnswer) {
  const v1::BlazeFaceHead head = FrontBlazeFaceHead();
  std::vector<NamedTensor> outputs = {
      {"scores8", Tensor({1, 512, 1})},
      {"scores16", Tensor({1, 384, 1})},
      {"boxes8", Tensor({1, 512, 16})},
      {"boxes16", Tensor({1, 384, 16})},
  };
  std::fill_n(outputs[0].tensor.data(), 512, -5.0f);
  std::fill_n(outputs[1].tensor.data(), 384, -5.0f);
  // Stride-16 anchor 6 * (8 * 2 + 3) + 4: cell row 2, col 3 -> centre
  // (3.5 / 8, 2.5 / 8) = (0.4375, 0.3125).
  const int anchor = 6 * (8 * 2 + 3) + 4;
  outputs[1].tensor.data()[anchor] = 2.0f;
  float* regressors = outputs[3].tensor.data() + anchor * 16;
  regressors[0] = 12.8f;  // dx = +0.1
  regressors[1] = -6.4f;  // dy = -0.05
  regressors[2] = 32.0f;  // w = 0.25
  regressors[3] = 25.6f;  // h = 0.2
  const vision::HeadGeometry geometry{128, 128, 400, 200};
  auto detections = vision::DecodeBlazeFace(head, outputs, 0, geometry, 0.5f);
  ASSERT_TRUE(detections.ok()) << detections.status().ToString();
  ASSERT_EQ(detections->size(), 1u);
  const Detection& face = (*detections)[0];
  EXPECT_EQ(face.class_id, 0);
  EXPECT_NEAR(face.score, 1.0 / (1.0 + std::exp(-2.0)), 1e-6);
  // Centre (0.5375, 0.2625), size (0.25, 0.2), image 400x200.
  ExpectBoxNear(face.box,
                {(0.5375f - 0.125f) * 400, (0.2625f - 0.1f) * 200, (0.5375f + 0.125f) * 400,
                 (0.2625f + 0.1f) * 200},
                1e-3f);
  // sigmoid(2) = 0.881: a 0.9 threshold drops it.
  detections = vision::DecodeBlazeFace(head, outputs, 0, geometry, 0.9f);
  ASSERT_TRUE(detections.ok());
  EXPECT_TRUE(detections->empty());
}

}  // namespace
}  // namespace lowbit::engine
