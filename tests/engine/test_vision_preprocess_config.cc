// Pre-processing values vs hand computation, and model config validation.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "vision/config.h"
#include "vision/preprocess.h"

namespace lowbit::engine {
namespace {

using ::testing::HasSubstr;

// ---------------------------------------------------------------- Preprocess

v1::InputConfig MakeInput(int width, int height, v1::TensorLayout layout, v1::ColorOrder order) {
  v1::InputConfig input;
  input.set_width(width);
  input.set_height(height);
  input.set_layout(layout);
  input.set_color_order(order);
  for (float mean : {10.0f, 20.0f, 30.0f}) input.add_mean(mean);
  for (float std : {2.0f, 4.0f, 8.0f}) input.add_std(std);
  input.set_resize(v1::STRETCH);
  return input;
}

// A 3x2 image; pixel (x, y) channel k (in memory order) = 40 * y + 10 * x + k.
std::vector<uint8_t> SyntheticPixels() {
  std::vector<uint8_t> pixels;
  for (int y = 0; y < 2; ++y) {
    for (int x = 0; x < 3; ++x) {
      for (int k = 0; k < 3; ++k) pixels.push_back(static_cast<uint8_t>(40 * y + 10 * x + k));
    }
  }
  return pixels;
}

TEST(PreprocessTest, SameSizeImageMatchesHandComputationInEveryLayoutAndOrder) {
  const std::vector<uint8_t> pixels = SyntheticPixels();
  for (auto layout : {v1::NCHW, v1::NHWC}) {
    for (auto order : {v1::BGR, v1::RGB}) {
      for (auto format : {PixelFormat::kBgr8, PixelFormat::kRgb8}) {
        SCOPED_TRACE(v1::TensorLayout_Name(layout) + " " + v1::ColorOrder_Name(order) +
                     (format == PixelFormat::kBgr8 ? " from BGR" : " from RGB"));
        const v1::InputConfig input = MakeInput(3, 2, layout, order);
        std::vector<float> tensor(18, -1000);
        vision::PreprocessImage(input, {pixels.data(), 3, 2, 9, format}, tensor.data());
        const bool same_order = (format == PixelFormat::kBgr8) == (order == v1::BGR);
        for (int y = 0; y < 2; ++y) {
          for (int x = 0; x < 3; ++x) {
            for (int c = 0; c < 3; ++c) {
              const int memory_channel = same_order ? c : 2 - c;
              const float pixel = 40 * y + 10 * x + memory_channel;
              const float expected = (pixel - input.mean(c)) / input.std(c);
              const int index = layout == v1::NCHW ? c * 6 + y * 3 + x : (y * 3 + x) * 3 + c;
              EXPECT_NEAR(tensor[index], expected, 1e-5f) << "x " << x << " y " << y << " c " << c;
            }
          }
        }
      }
    }
  }
}

TEST(PreprocessTest, RespectsRowStride) {
  std::vector<uint8_t> padded;
  const std::vector<uint8_t> pixels = SyntheticPixels();
  for (int y = 0; y < 2; ++y) {
    padded.insert(padded.end(), pixels.begin() + y * 9, pixels.begin() + (y + 1) * 9);
    padded.insert(padded.end(), 7, 255);  // row padding, stride 16
  }
  const v1::InputConfig input = MakeInput(3, 2, v1::NHWC, v1::BGR);
  std::vector<float> packed(18), strided(18);
  vision::PreprocessImage(input, {pixels.data(), 3, 2, 9, PixelFormat::kBgr8}, packed.data());
  vision::PreprocessImage(input, {padded.data(), 3, 2, 16, PixelFormat::kBgr8}, strided.data());
  EXPECT_EQ(packed, strided);
}

TEST(PreprocessTest, StretchesToTheInputSize) {
  // A flat colour stays flat under bilinear resizing, in both directions.
  for (auto [width, height] : {std::pair{7, 5}, std::pair{2, 9}}) {
    std::vector<uint8_t> pixels;
    for (int i = 0; i < width * height; ++i) pixels.insert(pixels.end(), {50, 100, 200});
    const v1::InputConfig input = MakeInput(4, 3, v1::NCHW, v1::RGB);
    std::vector<float> tensor(36, -1000);
    vision::PreprocessImage(input, {pixels.data(), width, height, 3 * width, PixelFormat::kBgr8},
                            tensor.data());
    const float expected[3] = {(200 - 10) / 2.0f, (100 - 20) / 4.0f, (50 - 30) / 8.0f};
    for (int i = 0; i < 36; ++i) EXPECT_NEAR(tensor[i], expected[i / 12], 1e-5f) << i;
  }
  // A left-to-right ramp stays monotonic.
  std::vector<uint8_t> ramp;
  for (int y = 0; y < 4; ++y) {
    for (int x = 0; x < 8; ++x) ramp.insert(ramp.end(), 3, static_cast<uint8_t>(30 * x));
  }
  const v1::InputConfig input = MakeInput(4, 2, v1::NCHW, v1::BGR);
  std::vector<float> tensor(24);
  vision::PreprocessImage(input, {ramp.data(), 8, 4, 24, PixelFormat::kBgr8}, tensor.data());
  for (int x = 1; x < 4; ++x) EXPECT_GT(tensor[x], tensor[x - 1]);
}

// ---------------------------------------------------------------- config

constexpr const char* kValidNanoDetConfig = R"pb(
  name: "tiny"
  input {
    tensor_name: "input"
    width: 32
    height: 16
    layout: NCHW
    color_order: BGR
    mean: [ 1, 2, 3 ]
    std: [ 4, 5, 6 ]
    resize: STRETCH
  }
  nanodet {
    strides: [ 8, 16 ]
    reg_max: 7
    score_outputs: [ "s8", "s16" ]
    box_outputs: [ "b8", "b16" ]
  }
  labels: [ "a", "b" ]
  score_threshold: 0.4
  iou_threshold: 0.5
  max_detections: 10
)pb";

v1::ModelConfig ValidConfig() {
  auto config = vision::ParseModelConfig(kValidNanoDetConfig, "test");
  EXPECT_TRUE(config.ok()) << config.status().ToString();
  return config.ok() ? *config : v1::ModelConfig();
}

// The tensors the valid config implies: grids 2x4 (8 cells) and 1x2 (2).
std::vector<ValueInfo> ValidInputs() { return {{"input", {1, 3, 16, 32}}}; }
std::vector<ValueInfo> ValidOutputs() {
  return {{"s8", {1, 8, 2}}, {"b8", {1, 8, 32}}, {"s16", {1, 2, 2}}, {"b16", {1, 2, 32}}};
}

TEST(ModelConfigTest, ValidConfigPasses) {
  v1::ModelConfig config = ValidConfig();
  ASSERT_TRUE(vision::ValidateModelConfig(config).ok());
  std::vector<std::string> labels = {"a", "b"};
  const Status status =
      vision::CheckConfigAgainstModel(&config, &labels, ValidInputs(), ValidOutputs());
  EXPECT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(vision::InputShapeFor(config.input(), 4), (Shape{4, 3, 16, 32}));
  config.mutable_input()->set_layout(v1::NHWC);
  EXPECT_EQ(vision::InputShapeFor(config.input(), 2), (Shape{2, 16, 32, 3}));
}

TEST(ModelConfigTest, ParseErrorNamesLineAndColumn) {
  auto config = vision::ParseModelConfig("name: \"x\"\ninput { widht: 3 }\n", "m/config.pbtxt");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(config.status().message(), HasSubstr("m/config.pbtxt:2:"));
  EXPECT_THAT(config.status().message(), HasSubstr("widht"));
}

TEST(ModelConfigTest, StaticValidationErrorsNameTheField) {
  struct Case {
    const char* name;
    void (*mutate)(v1::ModelConfig*);
    const char* message;
  };
  const Case cases[] = {
      {"zero width", [](v1::ModelConfig* c) { c->mutable_input()->set_width(0); }, "input.width"},
      {"no layout",
       [](v1::ModelConfig* c) { c->mutable_input()->set_layout(v1::TENSOR_LAYOUT_UNSPECIFIED); },
       "input.layout"},
      {"no colour order",
       [](v1::ModelConfig* c) { c->mutable_input()->set_color_order(v1::COLOR_ORDER_UNSPECIFIED); },
       "input.color_order"},
      {"two means", [](v1::ModelConfig* c) { c->mutable_input()->mutable_mean()->RemoveLast(); },
       "3 values"},
      {"zero std", [](v1::ModelConfig* c) { c->mutable_input()->set_std(1, 0); }, "nonzero"},
      {"no head", [](v1::ModelConfig* c) { c->clear_nanodet(); },
       "no head: set one of nanodet, blazeface"},
      {"missing box output", [](v1::ModelConfig* c) { c->mutable_nanodet()->clear_box_outputs(); },
       "one score_outputs and one box_outputs name per stride"},
      {"bad reg_max", [](v1::ModelConfig* c) { c->mutable_nanodet()->set_reg_max(0); }, "reg_max"},
      {"negative stride", [](v1::ModelConfig* c) { c->mutable_nanodet()->set_strides(1, -16); },
       "strides must be positive"},
      {"no score threshold", [](v1::ModelConfig* c) { c->clear_score_threshold(); },
       "score_threshold"},
      {"iou above one", [](v1::ModelConfig* c) { c->set_iou_threshold(1.5f); }, "iou_threshold"},
      {"negative max", [](v1::ModelConfig* c) { c->set_max_detections(-1); }, "max_detections"},
      {"two label sources", [](v1::ModelConfig* c) { c->set_labels_file("labels.txt"); },
       "either labels or labels_file"},
      {"blazeface without box scale",
       [](v1::ModelConfig* c) {
         auto* head = c->mutable_blazeface();
         head->add_strides(8);
         head->add_anchors_per_cell(2);
         head->add_score_outputs("s");
         head->add_box_outputs("b");
       },
       "box_scale"},
      {"blazeface anchors per stride",
       [](v1::ModelConfig* c) {
         auto* head = c->mutable_blazeface();
         head->add_strides(8);
         head->add_score_outputs("s");
         head->add_box_outputs("b");
         head->set_box_scale(128);
       },
       "anchors_per_cell"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    v1::ModelConfig config = ValidConfig();
    c.mutate(&config);
    const Status status = vision::ValidateModelConfig(config);
    ASSERT_FALSE(status.ok());
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(status.message(), HasSubstr(c.message));
  }
}

TEST(ModelConfigTest, ChecksAgainstTheModelsTensors) {
  const auto check = [](std::vector<ValueInfo> inputs, std::vector<ValueInfo> outputs,
                        std::vector<std::string> labels) {
    v1::ModelConfig config = ValidConfig();
    return vision::CheckConfigAgainstModel(&config, &labels, inputs, outputs);
  };
  const std::vector<std::string> labels = {"a", "b"};

  Status status = check({{"image", {1, 3, 16, 32}}}, ValidOutputs(), labels);
  EXPECT_THAT(status.message(), HasSubstr("'input' is not an input of the model (inputs: image)"));

  status = check({{"input", {1, 3, 32, 16}}}, ValidOutputs(), labels);
  EXPECT_THAT(status.message(), HasSubstr("implies [1,3,16,32]"));

  auto outputs = ValidOutputs();
  outputs[3].name = "box16";
  status = check(ValidInputs(), outputs, labels);
  EXPECT_THAT(status.message(), HasSubstr("'b16' is not an output of the model"));

  outputs = ValidOutputs();
  outputs[1].shape = {1, 8, 44};
  status = check(ValidInputs(), outputs, labels);
  EXPECT_THAT(status.message(), HasSubstr("implies [1,8,32]"));

  status = check(ValidInputs(), ValidOutputs(), {"a", "b", "c"});
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("2 classes but 3 labels"));
}

TEST(ModelConfigTest, FillsTheInputNameOfASingleInputModel) {
  v1::ModelConfig config = ValidConfig();
  config.mutable_input()->clear_tensor_name();
  std::vector<std::string> labels = {"a", "b"};
  const Status status =
      vision::CheckConfigAgainstModel(&config, &labels, ValidInputs(), ValidOutputs());
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(config.input().tensor_name(), "input");
}

TEST(ModelConfigTest, LabelsFile) {
  const auto directory = std::filesystem::temp_directory_path() /
                         ("lowbit_vision_labels_" + std::to_string(::getpid()));
  std::filesystem::create_directories(directory);
  v1::ModelConfig config = ValidConfig();
  config.clear_labels();
  config.set_labels_file("names.txt");

  auto labels = vision::LoadLabels(config, directory.string());
  ASSERT_FALSE(labels.ok());
  EXPECT_EQ(labels.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(labels.status().message(), HasSubstr("names.txt"));

  std::ofstream(directory / "names.txt") << "person\r\nbicycle  \ntraffic light\n\n";
  labels = vision::LoadLabels(config, directory.string());
  ASSERT_TRUE(labels.ok()) << labels.status().ToString();
  EXPECT_EQ(*labels, (std::vector<std::string>{"person", "bicycle", "traffic light"}));

  std::ofstream(directory / "names.txt") << "person\n\nbicycle\n";
  labels = vision::LoadLabels(config, directory.string());
  ASSERT_FALSE(labels.ok());
  EXPECT_THAT(labels.status().message(), HasSubstr("line 2 is blank"));
  std::filesystem::remove_all(directory);
}

}  // namespace
}  // namespace lowbit::engine
