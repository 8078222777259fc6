// Pre-processing modes: letterbox (centred, top-left), short-side resize +
// centre crop, pixel scale; the transform they imply and boxes mapped back
// through it to the original image.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "vision/config.h"
#include "vision/head.h"
#include "vision/preprocess.h"

namespace lowbit::engine {
namespace {

using ::testing::HasSubstr;

v1::InputConfig MakeInput(int width, int height, v1::ResizeMode resize) {
  v1::InputConfig input;
  input.set_width(width);
  input.set_height(height);
  input.set_layout(v1::NCHW);
  input.set_color_order(v1::BGR);
  for (int c = 0; c < 3; ++c) {
    input.add_mean(0);
    input.add_std(1);
  }
  input.set_resize(resize);
  return input;
}

// A width x height BGR image whose every pixel has value `value` in all channels.
std::vector<uint8_t> Flat(int width, int height, uint8_t value) {
  return std::vector<uint8_t>(static_cast<size_t>(width) * height * 3, value);
}

TEST(InputTransformTest, LetterboxCentredAndTopLeft) {
  v1::InputConfig input = MakeInput(320, 320, v1::LETTERBOX);
  // 640x480 -> ratio 0.5 -> 320x240, 40 rows of padding above (centred).
  vision::InputTransform t = vision::ComputeInputTransform(input, 640, 480);
  EXPECT_FLOAT_EQ(t.scale_x, 0.5f);
  EXPECT_FLOAT_EQ(t.scale_y, 0.5f);
  EXPECT_FLOAT_EQ(t.offset_x, 0);
  EXPECT_FLOAT_EQ(t.offset_y, 40);
  // A box in model pixels (100, 60)-(200, 160) is image (200, 40)-(400, 240).
  vision::HeadGeometry geometry{320, 320, 640, 480, t};
  Box box = geometry.ToImage(100, 60, 200, 160);
  EXPECT_FLOAT_EQ(box.x_min, 200);
  EXPECT_FLOAT_EQ(box.y_min, 40);
  EXPECT_FLOAT_EQ(box.x_max, 400);
  EXPECT_FLOAT_EQ(box.y_max, 240);
  // In the padding: clipped to the image.
  box = geometry.ToImage(0, 0, 10, 30);
  EXPECT_FLOAT_EQ(box.y_min, 0);
  EXPECT_FLOAT_EQ(box.y_max, 0);

  input.set_letterbox_align(v1::TOP_LEFT);
  t = vision::ComputeInputTransform(input, 640, 480);
  EXPECT_FLOAT_EQ(t.offset_y, 0);
  geometry.transform = t;
  box = geometry.ToImage(100, 60, 200, 160);
  EXPECT_FLOAT_EQ(box.y_min, 120);
  EXPECT_FLOAT_EQ(box.y_max, 320);

  // A tall image pads the columns: 300x600 -> 160x320, 80 columns each side.
  input.set_letterbox_align(v1::CENTER);
  t = vision::ComputeInputTransform(input, 300, 600);
  EXPECT_FLOAT_EQ(t.offset_x, 80);
  EXPECT_FLOAT_EQ(t.offset_y, 0);
  EXPECT_NEAR(t.scale_x, 160.0f / 300, 1e-7f);
  geometry = {320, 320, 300, 600, t};
  box = geometry.ToImage(80 + 16, 32, 80 + 32, 64);  // x: 16..32 of 160 -> 30..60 of 300
  EXPECT_NEAR(box.x_min, 30, 1e-4f);
  EXPECT_NEAR(box.x_max, 60, 1e-4f);
  EXPECT_NEAR(box.y_min, 60, 1e-4f);
  EXPECT_NEAR(box.y_max, 120, 1e-4f);
}

TEST(InputTransformTest, ShortSideResizeAndCentreCrop) {
  v1::InputConfig input = MakeInput(224, 224, v1::SHORT_SIDE_CROP);
  input.set_resize_short_side(256);
  // 640x480 -> ratio 256/480 -> 341x256 (341.33 rounded); crop at
  // ((341 - 224) / 2, (256 - 224) / 2) = (58, 16).
  const vision::InputTransform t = vision::ComputeInputTransform(input, 640, 480);
  EXPECT_NEAR(t.scale_x, 341.0f / 640, 1e-7f);
  EXPECT_NEAR(t.scale_y, 256.0f / 480, 1e-7f);
  EXPECT_FLOAT_EQ(t.offset_x, -58);
  EXPECT_FLOAT_EQ(t.offset_y, -16);
  const vision::HeadGeometry geometry{224, 224, 640, 480, t};
  const Box box = geometry.ToImage(0, 0, 224, 224);  // the crop window in the image
  EXPECT_NEAR(box.x_min, 58 * 640.0f / 341, 1e-3f);
  EXPECT_NEAR(box.y_min, 16 * 480.0f / 256, 1e-3f);
  EXPECT_NEAR(box.x_max, (58 + 224) * 640.0f / 341, 1e-3f);
  EXPECT_NEAR(box.y_max, (16 + 224) * 480.0f / 256, 1e-3f);
}

TEST(PreprocessModesTest, LetterboxPadsWithPadValue) {
  // 4x2 image of 200 into a 4x4 input: ratio 1, no resize; 1 row above.
  v1::InputConfig input = MakeInput(4, 4, v1::LETTERBOX);
  input.set_pad_value(114);
  const std::vector<uint8_t> pixels = Flat(4, 2, 200);
  std::vector<float> tensor(3 * 16, -1);
  vision::PreprocessImage(input, {pixels.data(), 4, 2, 12, PixelFormat::kBgr8}, tensor.data());
  for (int c = 0; c < 3; ++c) {
    for (int y = 0; y < 4; ++y) {
      const float expected = (y == 1 || y == 2) ? 200 : 114;
      for (int x = 0; x < 4; ++x) EXPECT_EQ(tensor[c * 16 + y * 4 + x], expected) << y << x;
    }
  }
  // Top-left: image rows 0 and 1, padding 2 and 3.
  input.set_letterbox_align(v1::TOP_LEFT);
  vision::PreprocessImage(input, {pixels.data(), 4, 2, 12, PixelFormat::kBgr8}, tensor.data());
  for (int y = 0; y < 4; ++y) EXPECT_EQ(tensor[y * 4], y < 2 ? 200 : 114) << y;
}

TEST(PreprocessModesTest, CentreCropKeepsTheMiddleAndScaleApplies) {
  // 4x2 image, column x has value 10 x + 10; crop 2x2 with short side 2
  // (no resize): columns 1 and 2. Scale 0.5, mean 1, std 2: (v / 2 - 1) / 2.
  v1::InputConfig input = MakeInput(2, 2, v1::SHORT_SIDE_CROP);
  input.set_scale(0.5f);
  for (int c = 0; c < 3; ++c) {
    input.set_mean(c, 1);
    input.set_std(c, 2);
  }
  std::vector<uint8_t> pixels;
  for (int y = 0; y < 2; ++y) {
    for (int x = 0; x < 4; ++x) pixels.insert(pixels.end(), 3, static_cast<uint8_t>(10 * x + 10));
  }
  std::vector<float> tensor(3 * 4, -1);
  vision::PreprocessImage(input, {pixels.data(), 4, 2, 12, PixelFormat::kBgr8}, tensor.data());
  for (int y = 0; y < 2; ++y) {
    EXPECT_FLOAT_EQ(tensor[y * 2 + 0], (20 * 0.5f - 1) / 2);
    EXPECT_FLOAT_EQ(tensor[y * 2 + 1], (30 * 0.5f - 1) / 2);
  }
}

TEST(PreprocessModesTest, ConfigChecksTheNewFields) {
  v1::ModelConfig config;
  *config.mutable_input() = MakeInput(224, 224, v1::SHORT_SIDE_CROP);
  config.mutable_classification()->set_output("p");
  config.set_score_threshold(0.1f);
  config.set_iou_threshold(0.5f);
  EXPECT_TRUE(vision::ValidateModelConfig(config).ok());
  config.mutable_input()->set_resize_short_side(200);
  EXPECT_THAT(vision::ValidateModelConfig(config).message(),
              HasSubstr("input.resize_short_side must be 0 or in [max(width, height)"));
  config.mutable_input()->set_resize_short_side(256);
  config.mutable_input()->set_pad_value(300);
  EXPECT_THAT(vision::ValidateModelConfig(config).message(), HasSubstr("input.pad_value"));
  config.mutable_input()->set_pad_value(0);
  config.mutable_input()->set_scale(-1);
  EXPECT_THAT(vision::ValidateModelConfig(config).message(), HasSubstr("input.scale"));
}

}  // namespace
}  // namespace lowbit::engine
