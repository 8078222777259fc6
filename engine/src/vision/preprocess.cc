#include "vision/preprocess.h"

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <cassert>

namespace lowbit::engine::vision {

void PreprocessImage(const v1::InputConfig& input, const ImageView& image, float* dst) {
  assert(image.pixels != nullptr && image.width > 0 && image.height > 0);
  assert(image.stride >= 3 * image.width);
  const int width = input.width();
  const int height = input.height();
  const cv::Mat source(image.height, image.width, CV_8UC3, const_cast<uint8_t*>(image.pixels),
                       static_cast<size_t>(image.stride));
  // The resized image goes to a buffer each thread keeps for its next frame
  // (a 416x416 input is 0.5 MB): a fresh one per frame cost lowbitd, which
  // maps every allocation over 128 KiB, a mapping and its page faults.
  thread_local cv::Mat resized_buffer;
  cv::Mat resized;
  if (image.width == width && image.height == height) {
    resized = source;
  } else {
    cv::resize(source, resized_buffer, cv::Size(width, height), 0, 0, cv::INTER_LINEAR);
    resized = resized_buffer;
  }

  // Output channel c reads source channel source_channel[c].
  const bool image_is_bgr = image.format == PixelFormat::kBgr8;
  const bool want_bgr = input.color_order() == v1::BGR;
  const bool swap = image_is_bgr != want_bgr;
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
      const uint8_t* row = resized.ptr<uint8_t>(y);
      float* out = dst + int64_t{y} * width * 3;
      for (int x = 0; x < width; ++x) {
        for (int c = 0; c < 3; ++c) {
          out[3 * x + c] = (row[3 * x + source_channel[c]] - mean[c]) * inverse_std[c];
        }
      }
    }
  } else {
    for (int y = 0; y < height; ++y) {
      const uint8_t* row = resized.ptr<uint8_t>(y);
      for (int c = 0; c < 3; ++c) {
        float* out = dst + c * plane + int64_t{y} * width;
        const int sc = source_channel[c];
        for (int x = 0; x < width; ++x) out[x] = (row[3 * x + sc] - mean[c]) * inverse_std[c];
      }
    }
  }
}

}  // namespace lowbit::engine::vision
