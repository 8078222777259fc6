// The pluggable heads (SSD, YOLO v8 / v5 / YOLOX, classification) on
// hand-built output tensors with hand-computed answers, the SSD anchor
// generator against a numpy computation, and the head registry's errors.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include <unistd.h>

#include "lowbit/engine/detector.h"
#include "lowbit/engine/npy.h"
#include "vision/config.h"
#include "vision/head.h"
#include "vision/head_ssd.h"
#include "vision/head_yolo.h"
#include "vision/preprocess.h"

namespace lowbit::engine {
namespace {

using ::testing::HasSubstr;

void ExpectBoxNear(const Box& actual, const Box& expected, float tolerance) {
  EXPECT_NEAR(actual.x_min, expected.x_min, tolerance);
  EXPECT_NEAR(actual.y_min, expected.y_min, tolerance);
  EXPECT_NEAR(actual.x_max, expected.x_max, tolerance);
  EXPECT_NEAR(actual.y_max, expected.y_max, tolerance);
}

v1::ModelConfig Parse(const std::string& text) {
  auto config = vision::ParseModelConfig(text, "test");
  EXPECT_TRUE(config.ok()) << config.status().ToString();
  return config.ok() ? *config : v1::ModelConfig();
}

std::unique_ptr<vision::Head> MakeHeadOrDie(const v1::ModelConfig& config) {
  auto head = vision::MakeHead(config, "");
  EXPECT_TRUE(head.ok()) << head.status().ToString();
  return head.ok() ? std::move(head).value() : nullptr;
}

// The input block of every config below; the head follows.
std::string WithInput(int width, int height, const std::string& rest) {
  return "input { width: " + std::to_string(width) + " height: " + std::to_string(height) +
         " layout: NHWC color_order: RGB mean: [127.5, 127.5, 127.5] std: [127.5, 127.5, 127.5] "
         "}\nscore_threshold: 0.5\niou_threshold: 0.5\n" +
         rest;
}

// ---------------------------------------------------------------- SSD

// SSD-MobileNetV2 300x300 (TensorFlow object detection's ssd_anchor_generator).
const char* const kSsdHead = R"pb(
  ssd {
    box_output: "boxes"
    score_output: "scores"
    background_class: true
    anchors {
      num_layers: 6
      min_scale: 0.2
      max_scale: 0.95
      strides: [ 16, 32, 64, 128, 256, 512 ]
      aspect_ratios: [ 1.0, 2.0, 0.5, 3.0, 0.3333333 ]
      interpolated_scale_aspect_ratio: 1.0
      reduce_boxes_in_lowest_layer: true
    }
  }
)pb";

TEST(SsdAnchorsTest, MobileNetV2At300MatchesNumpy) {
  const v1::ModelConfig config = Parse(WithInput(300, 300, kSsdHead));
  const auto anchors = vision::GenerateSsdAnchors(config.ssd().anchors(), 300, 300);
  // 19x19x3 + 10x10x6 + 5x5x6 + 3x3x6 + 2x2x6 + 1x1x6.
  ASSERT_EQ(anchors.size(), 1917u);
  // (index, y_center, x_center, h, w) from numpy: per layer the scales of
  // (0.1, 1), (s0, 2), (s0, 0.5) / the five ratios + sqrt(s_i s_i+1), then
  // meshgrid of (arange(fm) + 0.5) / fm, repeated per anchor of the cell.
  struct Expected {
    int index;
    float y, x, h, w;
  };
  const Expected expected[] = {
      {0, 0.02631579f, 0.02631579f, 0.1f, 0.1f},
      {1, 0.02631579f, 0.02631579f, 0.14142136f, 0.28284273f},
      {2, 0.02631579f, 0.02631579f, 0.28284273f, 0.14142136f},
      {1082, 0.97368419f, 0.97368419f, 0.28284273f, 0.14142136f},
      {1083, 0.05f, 0.05f, 0.35f, 0.35f},
      {1088, 0.05f, 0.05f, 0.41833001f, 0.41833001f},
      {1916, 0.5f, 0.5f, 0.97467941f, 0.97467941f},
  };
  for (const Expected& e : expected) {
    SCOPED_TRACE("anchor " + std::to_string(e.index));
    const vision::SsdAnchor& anchor = anchors[e.index];
    EXPECT_NEAR(anchor.y_center, e.y, 1e-6f);
    EXPECT_NEAR(anchor.x_center, e.x, 1e-6f);
    EXPECT_NEAR(anchor.height, e.h, 1e-6f);
    EXPECT_NEAR(anchor.width, e.w, 1e-6f);
  }
}

TEST(SsdHeadTest, DecodesOneAnchorThroughTheBoxCoder) {
  v1::ModelConfig config = Parse(WithInput(300, 300, kSsdHead));
  auto head = MakeHeadOrDie(config);
  ASSERT_NE(head, nullptr);
  constexpr int kAnchors = 1917, kClasses = 6;
  std::vector<NamedTensor> outputs = {
      {"boxes", Tensor({1, kAnchors, 4})},
      {"scores", Tensor({1, kAnchors, kClasses}, std::vector<float>(kAnchors * kClasses, -10))},
  };
  // Anchor 1083 = (y 0.05, x 0.05, h 0.35, w 0.35). ty = 4, tx = 4 move the
  // centre by 4 / 10 * 0.35 = 0.14; th = tw = -5 ln 2 halve the size:
  // centre (0.19, 0.19), size 0.175 -> [0.1025, 0.2775] on both axes.
  float* encoding = outputs[0].tensor.data() + 1083 * 4;
  encoding[0] = 4;
  encoding[1] = 4;
  encoding[2] = encoding[3] = -5 * std::log(2.0f);
  float* scores = outputs[1].tensor.data() + 1083 * kClasses;
  scores[0] = 5;  // background: never reported
  scores[4] = 2;
  // Stretch onto a 600x300 image: x * 600, y * 300.
  const vision::HeadGeometry geometry{300, 300, 600, 300};
  auto detections = head->Decode(outputs, 0, geometry, 0.5f);
  ASSERT_TRUE(detections.ok()) << detections.status().ToString();
  ASSERT_EQ(detections->size(), 1u);
  const Detection& detection = (*detections)[0];
  EXPECT_EQ(detection.class_id, 4);
  EXPECT_NEAR(detection.score, 1 / (1 + std::exp(-2.0f)), 1e-6f);
  ExpectBoxNear(detection.box, {0.1025f * 600, 0.1025f * 300, 0.2775f * 600, 0.2775f * 300}, 2e-3f);

  // The config against the model: 1917 anchors, 6 labels.
  std::vector<std::string> labels = {"bg", "a", "b", "c", "d", "e"};
  const std::vector<ValueInfo> inputs = {{"x", {1, 300, 300, 3}}};
  std::vector<ValueInfo> infos = {{"boxes", {1, kAnchors, 4}}, {"scores", {1, kAnchors, kClasses}}};
  EXPECT_TRUE(vision::CheckConfigAgainstModel(&config, &labels, inputs, infos).ok());
  infos[1].shape = {1, 1000, kClasses};
  const Status status = vision::CheckConfigAgainstModel(&config, &labels, inputs, infos);
  EXPECT_THAT(status.message(), HasSubstr("anchors number 1917"));
}

TEST(SsdHeadTest, AnchorsFromAModelOutputAndSoftmaxScores) {
  const v1::ModelConfig config = Parse(WithInput(100, 100, R"pb(
    ssd {
      box_output: "boxes"
      score_output: "scores"
      anchors_output: "anchors"
      score_activation: SOFTMAX
      y_scale: 1
      x_scale: 1
      h_scale: 1
      w_scale: 1
    }
  )pb"));
  auto head = MakeHeadOrDie(config);
  ASSERT_NE(head, nullptr);
  // Two anchors; anchor 1 = centre (0.5, 0.25), size 0.2 x 0.4. ty = 0.5,
  // tx = 0.25 with scales 1: centre (0.6, 0.35); th = tw = 0: same size.
  std::vector<NamedTensor> outputs = {
      {"boxes", Tensor({1, 2, 4}, {0, 0, 0, 0, 0.5f, 0.25f, 0, 0})},
      {"scores", Tensor({1, 2, 2}, {0, 0, 0, std::log(3.0f)})},  // softmax: 0.25, 0.75
      {"anchors", Tensor({1, 2, 4}, {0.5f, 0.5f, 0.1f, 0.1f, 0.5f, 0.25f, 0.2f, 0.4f})},
  };
  auto detections = head->Decode(outputs, 0, {100, 100, 100, 100}, 0.6f);
  ASSERT_TRUE(detections.ok()) << detections.status().ToString();
  ASSERT_EQ(detections->size(), 1u);
  EXPECT_EQ((*detections)[0].class_id, 1);
  EXPECT_NEAR((*detections)[0].score, 0.75f, 1e-6f);
  ExpectBoxNear((*detections)[0].box, {15, 50, 55, 70}, 1e-3f);
}

TEST(SsdHeadTest, AnchorsFromANpyFile) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("lowbit-ssd-anchors-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  // One anchor: centre (0.5, 0.5), h 0.2, w 0.4; zero encodings decode to it.
  ASSERT_TRUE(
      WriteNpy((dir / "anchors.npy").string(), Tensor({1, 4}, {0.5f, 0.5f, 0.2f, 0.4f})).ok());
  const v1::ModelConfig config = Parse(WithInput(100, 50, R"pb(
    ssd { box_output: "boxes" score_output: "scores" anchors_file: "anchors.npy" }
  )pb"));
  auto head = vision::MakeHead(config, dir.string());
  ASSERT_TRUE(head.ok()) << head.status().ToString();
  const std::vector<NamedTensor> outputs = {{"boxes", Tensor({1, 1, 4})},
                                            {"scores", Tensor({1, 1, 1}, {3.0f})}};
  auto detections = (*head)->Decode(outputs, 0, {100, 50, 100, 50}, 0.5f);
  ASSERT_TRUE(detections.ok()) << detections.status().ToString();
  ASSERT_EQ(detections->size(), 1u);
  ExpectBoxNear((*detections)[0].box, {30, 20, 70, 30}, 1e-4f);
  // A file of the wrong shape is refused with its path.
  ASSERT_TRUE(WriteNpy((dir / "anchors.npy").string(), Tensor({1, 3})).ok());
  auto refused = vision::MakeHead(config, dir.string());
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(), HasSubstr("expected [anchors, 4]"));
  std::filesystem::remove_all(dir);
}

// ---------------------------------------------------------------- YOLO

TEST(YoloHeadTest, V8AnchorFreeTransposedThroughALetterbox) {
  const v1::ModelConfig config =
      Parse(WithInput(320, 320, R"pb(yolo { output: "out" format: V8 })pb"));
  auto head = MakeHeadOrDie(config);
  ASSERT_NE(head, nullptr);
  // [1, 4 + 3, 5]: rows cx, cy, w, h, class 0..2; prediction 2 is a class-1
  // box centred (100, 120), 40 x 40 in input pixels.
  constexpr int kPredictions = 5;
  Tensor tensor({1, 7, kPredictions});
  auto at = [&](int row, int prediction) -> float& {
    return tensor.data()[row * kPredictions + prediction];
  };
  at(0, 2) = 100, at(1, 2) = 120, at(2, 2) = 40, at(3, 2) = 40;
  at(4 + 1, 2) = 0.9f;
  at(4 + 0, 3) = 0.3f;  // below the threshold
  const std::vector<NamedTensor> outputs = {{"out", std::move(tensor)}};
  // A 640x320 image letterboxed into 320x320, centred: scale 0.5, 80 rows
  // of padding on top. Model (80, 100)-(120, 140) -> image (160, 40)-(240, 120).
  v1::InputConfig input = config.input();
  input.set_resize(v1::LETTERBOX);
  const vision::HeadGeometry geometry{320, 320, 640, 320,
                                      vision::ComputeInputTransform(input, 640, 320)};
  auto detections = head->Decode(outputs, 0, geometry, 0.5f);
  ASSERT_TRUE(detections.ok()) << detections.status().ToString();
  ASSERT_EQ(detections->size(), 1u);
  EXPECT_EQ((*detections)[0].class_id, 1);
  EXPECT_FLOAT_EQ((*detections)[0].score, 0.9f);
  ExpectBoxNear((*detections)[0].box, {160, 40, 240, 120}, 1e-3f);

  // The checks: YOLOv8n 320 gives [1, 22, 2100] = 4 + 18 classes.
  v1::ModelConfig checked = config;
  std::vector<std::string> labels(18, "x");
  const std::vector<ValueInfo> inputs = {{"images", {1, 320, 320, 3}}};
  EXPECT_TRUE(
      vision::CheckConfigAgainstModel(&checked, &labels, inputs, {{"out", {1, 22, 2100}}}).ok());
  labels.resize(17);
  EXPECT_THAT(vision::CheckConfigAgainstModel(&checked, &labels, inputs, {{"out", {1, 22, 2100}}})
                  .message(),
              HasSubstr("18 classes but 17 labels"));
}

TEST(YoloHeadTest, V5DecodedScoreIsObjectnessTimesClass) {
  const v1::ModelConfig config =
      Parse(WithInput(64, 64, R"pb(yolo { output: "out" format: V5 })pb"));
  auto head = MakeHeadOrDie(config);
  ASSERT_NE(head, nullptr);
  // [1, 2, 5 + 2]: prediction 1 = box centred (32, 16), 20 x 10, objectness
  // 0.8, class 1 0.75 -> 0.6; prediction 0 objectness 0.3 is skipped.
  const std::vector<NamedTensor> outputs = {
      {"out", Tensor({1, 2, 7}, {10, 10, 4, 4, 0.3f, 1, 1, 32, 16, 20, 10, 0.8f, 0.1f, 0.75f})}};
  auto detections = head->Decode(outputs, 0, {64, 64, 128, 64}, 0.5f);
  ASSERT_TRUE(detections.ok()) << detections.status().ToString();
  ASSERT_EQ(detections->size(), 1u);
  EXPECT_EQ((*detections)[0].class_id, 1);
  EXPECT_NEAR((*detections)[0].score, 0.6f, 1e-6f);
  ExpectBoxNear((*detections)[0].box, {44, 11, 84, 21}, 1e-3f);  // x * 2
}

TEST(YoloHeadTest, V5AnchoredGridDecoding) {
  // 32x32 input, stride 16: a 2x2 grid, one anchor (10, 12) per cell.
  const v1::ModelConfig config = Parse(WithInput(32, 32, R"pb(
    yolo {
      output: "out"
      format: V5
      grid: ANCHORED
      strides: [ 16 ]
      anchors: [ 10, 12 ]
      anchors_per_cell: 1
    }
  )pb"));
  auto head = MakeHeadOrDie(config);
  ASSERT_NE(head, nullptr);
  std::vector<float> values(4 * 6, 0);
  // Prediction 3 = row 1, col 1: x = y = w = h = 0.5 (already sigmoid-ed):
  // cx = (2 0.5 - 0.5 + 1) 16 = 24, w = (2 0.5)^2 10 = 10, h = 12.
  float* p = values.data() + 3 * 6;
  p[0] = p[1] = p[2] = p[3] = 0.5f;
  p[4] = 1.0f;
  p[5] = 0.9f;
  const std::vector<NamedTensor> outputs = {{"out", Tensor({1, 4, 6}, values)}};
  auto detections = head->Decode(outputs, 0, {32, 32, 32, 32}, 0.5f);
  ASSERT_TRUE(detections.ok()) << detections.status().ToString();
  ASSERT_EQ(detections->size(), 1u);
  ExpectBoxNear((*detections)[0].box, {19, 18, 29, 30}, 1e-4f);
  // The grid implies 4 predictions.
  EXPECT_EQ(vision::YoloGridPredictions(config.yolo(), config.input()), 4);
}

TEST(YoloHeadTest, YoloxAnchorFreeGridWithSigmoid) {
  const v1::ModelConfig config = Parse(WithInput(32, 32, R"pb(
    yolo {
      output: "out"
      format: V5
      grid: ANCHOR_FREE
      strides: [ 16 ]
      score_activation: SIGMOID
    }
  )pb"));
  auto head = MakeHeadOrDie(config);
  ASSERT_NE(head, nullptr);
  std::vector<float> values(4 * 6, -10);
  // Prediction 1 = row 0, col 1: cx = (0.25 + 1) 16 = 20, cy = (0.5 + 0) 16
  // = 8, w = e^0 16 = 16, h = e^(ln 0.5) 16 = 8; objectness and class
  // logits 0 and ln 3: 0.5 * 0.75.
  float* p = values.data() + 1 * 6;
  p[0] = 0.25f, p[1] = 0.5f, p[2] = 0, p[3] = std::log(0.5f), p[4] = 0, p[5] = std::log(3.0f);
  const std::vector<NamedTensor> outputs = {{"out", Tensor({1, 4, 6}, values)}};
  auto detections = head->Decode(outputs, 0, {32, 32, 32, 32}, 0.3f);
  ASSERT_TRUE(detections.ok()) << detections.status().ToString();
  ASSERT_EQ(detections->size(), 1u);
  EXPECT_NEAR((*detections)[0].score, 0.375f, 1e-6f);
  ExpectBoxNear((*detections)[0].box, {12, 4, 28, 12}, 1e-4f);
}

// ---------------------------------------------------------------- classification

TEST(ClassificationHeadTest, SoftmaxTopKWithThreshold) {
  const v1::ModelConfig config =
      Parse(WithInput(224, 224, R"pb(classification { output: "probs" logits: true top_k: 3 })pb"));
  auto head = MakeHeadOrDie(config);
  ASSERT_NE(head, nullptr);
  EXPECT_TRUE(head->is_classifier());
  // exp: 1, 3, 1, 4 (sum 9) -> 1/9, 3/9, 1/9, 4/9; the third (1/9) is under 0.2.
  const std::vector<NamedTensor> outputs = {
      {"probs", Tensor({2, 4, 1, 1}, {9, 9, 9, 9, 0, std::log(3.0f), 0, std::log(4.0f)})}};
  auto classes = head->Decode(outputs, 1, {224, 224, 640, 480}, 0.2f);
  ASSERT_TRUE(classes.ok()) << classes.status().ToString();
  ASSERT_EQ(classes->size(), 2u);
  EXPECT_EQ((*classes)[0].class_id, 3);
  EXPECT_NEAR((*classes)[0].score, 4.0f / 9, 1e-6f);
  EXPECT_EQ((*classes)[1].class_id, 1);
  EXPECT_NEAR((*classes)[1].score, 3.0f / 9, 1e-6f);
  EXPECT_TRUE((*classes)[0].whole_image);
  ExpectBoxNear((*classes)[0].box, {0, 0, 640, 480}, 0);
  // Probabilities as given (no softmax), top 1.
  const v1::ModelConfig plain =
      Parse(WithInput(224, 224, R"pb(classification { output: "probs" })pb"));
  auto top1 = MakeHeadOrDie(plain)->Decode({{"probs", Tensor({1, 4}, {0.1f, 0.2f, 0.6f, 0.1f})}}, 0,
                                           {224, 224, 224, 224}, 0.01f);
  ASSERT_TRUE(top1.ok());
  ASSERT_EQ(top1->size(), 1u);
  EXPECT_EQ((*top1)[0].class_id, 2);
  EXPECT_FLOAT_EQ((*top1)[0].score, 0.6f);
}

// ---------------------------------------------------------------- registry

TEST(HeadRegistryTest, EveryHeadParsesAndValidates) {
  const std::vector<std::string> heads = {
      R"pb(nanodet {
             strides: [ 8 ]
             reg_max: 7
             score_outputs: "s"
             box_outputs: "b"
           })pb",
      R"pb(blazeface {
             strides: [ 8 ]
             anchors_per_cell: [ 2 ]
             score_outputs: "s"
             box_outputs: "b"
             box_scale: 128
           })pb",
      kSsdHead,
      R"pb(yolo { output: "out" format: V8 })pb",
      R"pb(classification { output: "probs" logits: true top_k: 2 })pb",
  };
  for (const std::string& head : heads) {
    SCOPED_TRACE(head);
    const v1::ModelConfig config = Parse(WithInput(128, 128, head));
    const Status status = vision::ValidateModelConfig(config);
    EXPECT_TRUE(status.ok()) << status.ToString();
  }
  EXPECT_EQ(vision::KnownHeadNames(),
            (std::vector<std::string>{"nanodet", "blazeface", "ssd", "yolo", "classification"}));
}

TEST(HeadRegistryTest, UnknownHeadNameListsTheKnownOnes) {
  auto config =
      vision::ParseModelConfig(WithInput(64, 64, "retinanet { output: \"x\" }"), "m/config.pbtxt");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("m/config.pbtxt:4:"));
  EXPECT_THAT(config.status().message(), HasSubstr("retinanet"));
  EXPECT_THAT(config.status().message(),
              HasSubstr("the known heads are nanodet, blazeface, ssd, yolo, classification"));
  // No head at all names them too.
  const Status none = vision::ValidateModelConfig(Parse(WithInput(64, 64, "")));
  EXPECT_THAT(none.message(),
              HasSubstr("no head: set one of nanodet, blazeface, ssd, yolo, classification"));
}

TEST(HeadRegistryTest, HeadParameterErrorsNameTheField) {
  struct Case {
    const char* head;
    const char* message;
  };
  const Case cases[] = {
      {R"pb(ssd { box_output: "b" score_output: "s" })pb", "exactly one anchor source"},
      {R"pb(ssd { score_output: "s" anchors_output: "a" })pb", "ssd.box_output"},
      {R"pb(ssd {
              box_output: "b"
              score_output: "s"
              anchors {
                num_layers: 2
                min_scale: 0.2
                max_scale: 0.9
                strides: [ 8 ]
                aspect_ratios: 1
              }
            })pb",
       "ssd.anchors.strides needs one stride per layer"},
      {R"pb(yolo { output: "out" })pb", "yolo.format"},
      {R"pb(yolo { output: "out" format: V5 grid: ANCHOR_FREE })pb", "needs yolo.strides"},
      {R"pb(yolo {
              output: "out"
              format: V5
              grid: ANCHORED
              strides: 8
              anchors_per_cell: 2
              anchors: [ 1, 2 ]
            })pb",
       "anchors_per_cell (w, h) pairs"},
      {R"pb(classification { top_k: 1 })pb", "classification.output"},
      {R"pb(classification { output: "p" top_k: -1 })pb", "classification.top_k"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.head);
    const Status status = vision::ValidateModelConfig(Parse(WithInput(64, 64, c.head)));
    EXPECT_THAT(status.message(), HasSubstr(c.message));
  }
  // Grids too large to make are refused before any anchor is made.
  const Status ssd_cap = vision::ValidateModelConfig(Parse(WithInput(4096, 4096, R"pb(
    ssd {
      box_output: "b"
      score_output: "s"
      anchors { num_layers: 1 min_scale: 0.2 max_scale: 0.9 strides: 1 aspect_ratios: 1 }
    })pb")));
  EXPECT_THAT(ssd_cap.message(), HasSubstr("would make over 4194304 anchors (33554432)"));
  const Status yolo_cap = vision::ValidateModelConfig(Parse(WithInput(
      4096, 4096, R"pb(yolo { output: "o" format: V5 grid: ANCHOR_FREE strides: 1 })pb")));
  EXPECT_THAT(yolo_cap.message(), HasSubstr("over 4194304 predictions (16777216)"));
}

// ---------------------------------------------------------------- deploy/models configs

// The repository's config sources (tests run in the source directory) with
// the real models' input and output shapes at batch 1.
TEST(DeployConfigsTest, TheThreeModelsConfigsMatchTheirModels) {
  struct Entry {
    const char* name;
    std::vector<ValueInfo> inputs, outputs;
    size_t labels;
  };
  const Entry entries[] = {
      {"ssd-mobilenetv2-oid",
       {{"normalized_input_image_tensor", {1, 3, 300, 300}}},
       {{"raw_outputs/box_encodings", {1, 1917, 4}},
        {"raw_outputs/class_predictions", {1, 1917, 24}}},
       24},
      {"yolov8n-nudenet", {{"images", {1, 3, 320, 320}}}, {{"output0", {1, 22, 2100}}}, 18},
      {"pp-lcnet-orientation", {{"x", {1, 3, 224, 224}}}, {{"fetch_name_0", {1, 4}}}, 4},
  };
  for (const Entry& entry : entries) {
    SCOPED_TRACE(entry.name);
    const std::string dir = std::string("deploy/models/") + entry.name;
    auto config = vision::ReadModelConfig(dir + "/config.pbtxt");
    ASSERT_TRUE(config.ok()) << config.status().ToString();
    const Status valid = vision::ValidateModelConfig(*config);
    ASSERT_TRUE(valid.ok()) << valid.ToString();
    auto labels = vision::LoadLabels(*config, dir);
    ASSERT_TRUE(labels.ok()) << labels.status().ToString();
    EXPECT_EQ(labels->size(), entry.labels);
    auto head = vision::MakeHead(*config, dir);
    ASSERT_TRUE(head.ok()) << head.status().ToString();
    const Status matches =
        vision::CheckConfigAgainstModel(&*config, &*labels, entry.inputs, entry.outputs, **head);
    EXPECT_TRUE(matches.ok()) << matches.ToString();
  }
}

}  // namespace
}  // namespace lowbit::engine
