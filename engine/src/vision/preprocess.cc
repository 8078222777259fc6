#include "vision/preprocess.h"

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cassert>
#include <cmath>

namespace lowbit::engine::vision {
namespace {

// Resized size of one side: round(side * ratio), at least 1.
int ResizedSide(int side, double ratio) {
  return std::max(1, static_cast<int>(std::lround(side * ratio)));
}

struct Placement {
  int resized_width, resized_height;  // the whole image after the resize
  int offset_x, offset_y;             // its top-left corner in the input
};

Placement PlaceImage(const v1::InputConfig& input, int image_width, int image_height) {
  const int width = input.width();
  const int height = input.height();
  switch (input.resize()) {
    case v1::LETTERBOX: {
      const double ratio = std::min(static_cast<double>(width) / image_width,
                                    static_cast<double>(height) / image_height);
      const int resized_width = std::min(width, ResizedSide(image_width, ratio));
      const int resized_height = std::min(height, ResizedSide(image_height, ratio));
      if (input.letterbox_align() == v1::TOP_LEFT) return {resized_width, resized_height, 0, 0};
      return {resized_width, resized_height, (width - resized_width) / 2,
              (height - resized_height) / 2};
    }
    case v1::SHORT_SIDE_CROP: {
      const int short_side =
          input.resize_short_side() > 0 ? input.resize_short_side() : std::max(width, height);
      const double ratio = static_cast<double>(short_side) / std::min(image_width, image_height);
      // At least the input size, so the crop lies inside the resized image.
      const int resized_width = std::max(width, ResizedSide(image_width, ratio));
      const int resized_height = std::max(height, ResizedSide(image_height, ratio));
      return {resized_width, resized_height, -((resized_width - width) / 2),
              -((resized_height - height) / 2)};
    }
    default:
      return {width, height, 0, 0};
  }
}

}  // namespace

InputTransform ComputeInputTransform(const v1::InputConfig& input, int image_width,
                                     int image_height) {
  const Placement placement = PlaceImage(input, image_width, image_height);
  return {static_cast<float>(placement.resized_width) / static_cast<float>(image_width),
          static_cast<float>(placement.resized_height) / static_cast<float>(image_height),
          static_cast<float>(placement.offset_x), static_cast<float>(placement.offset_y)};
}

void PreprocessImage(const v1::InputConfig& input, const ImageView& image, float* dst) {
  assert(image.pixels != nullptr && image.width > 0 && image.height > 0);
  assert(image.stride >= 3 * image.width);
  const int width = input.width();
  const int height = input.height();
  const cv::Mat source(image.height, image.width, CV_8UC3, const_cast<uint8_t*>(image.pixels),
                       static_cast<size_t>(image.stride));
  const Placement placement = PlaceImage(input, image.width, image.height);
  // The resized image and the input-sized canvas go to buffers each thread
  // keeps for its next frame (a 416x416 input is 0.5 MB): a fresh one per
  // frame cost lowbitd, which maps every allocation over 128 KiB, a mapping
  // and its page faults.
  thread_local cv::Mat resized_buffer;
  thread_local cv::Mat canvas_buffer;
  cv::Mat resized;
  if (image.width == placement.resized_width && image.height == placement.resized_height) {
    resized = source;
  } else {
    cv::resize(source, resized_buffer, cv::Size(placement.resized_width, placement.resized_height),
               0, 0, cv::INTER_LINEAR);
    resized = resized_buffer;
  }
  cv::Mat placed;  // width x height, 8-bit
  if (placement.offset_x == 0 && placement.offset_y == 0 && resized.cols == width &&
      resized.rows == height) {
    placed = resized;
  } else {
    const double pad = std::round(input.pad_value());
    canvas_buffer.create(height, width, CV_8UC3);
    canvas_buffer.setTo(cv::Scalar(pad, pad, pad));
    // The part of the resized image inside the input, in both frames.
    const cv::Rect in_input =
        cv::Rect(placement.offset_x, placement.offset_y, resized.cols, resized.rows) &
        cv::Rect(0, 0, width, height);
    const cv::Rect in_resized = in_input - cv::Point(placement.offset_x, placement.offset_y);
    resized(in_resized).copyTo(canvas_buffer(in_input));
    placed = canvas_buffer;
  }

  // Output channel c reads source channel source_channel[c].
  const bool image_is_bgr = image.format == PixelFormat::kBgr8;
  const bool want_bgr = input.color_order() == v1::BGR;
  const bool swap = image_is_bgr != want_bgr;
  const float pixel_scale = input.scale() > 0 ? input.scale() : 1.0f;
  // value = (pixel * scale - mean) * (1 / std); scale 1 is exact.
  int source_channel[3];
  float mean[3], inverse_std[3];
  for (int c = 0; c < 3; ++c) {
    source_channel[c] = swap ? 2 - c : c;
    mean[c] = input.mean(c);
    inverse_std[c] = 1.0f / input.std(c);
  }

  const int64_t plane = int64_t{width} * height;
  if (input.layout() == v1::NHWC) {
    for (int y = 0; y < height; ++y) {
      const uint8_t* row = placed.ptr<uint8_t>(y);
      float* out = dst + int64_t{y} * width * 3;
      for (int x = 0; x < width; ++x) {
        for (int c = 0; c < 3; ++c) {
          out[3 * x + c] =
              (row[3 * x + source_channel[c]] * pixel_scale - mean[c]) * inverse_std[c];
        }
      }
    }
  } else {
    for (int y = 0; y < height; ++y) {
      const uint8_t* row = placed.ptr<uint8_t>(y);
      for (int c = 0; c < 3; ++c) {
        float* out = dst + c * plane + int64_t{y} * width;
        const int sc = source_channel[c];
        for (int x = 0; x < width; ++x)
          out[x] = (row[3 * x + sc] * pixel_scale - mean[c]) * inverse_std[c];
      }
    }
  }
}

}  // namespace lowbit::engine::vision
