// The detection pipeline on top of a Model: decode, pre-process, run,
// decode the head, NMS. Driven by a model repository entry's config.pbtxt.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lowbit/engine/model.h"
#include "lowbit/engine/status.h"
#include "lowbit/engine/tensor.h"
#include "lowbit/v1/model_config.pb.h"

namespace lowbit::engine {

enum class PixelFormat { kBgr8, kRgb8 };

// A borrowed view of interleaved 8-bit, 3-channel pixels.
struct ImageView {
  const uint8_t* pixels = nullptr;
  int width = 0;
  int height = 0;
  int stride = 0;  // bytes between rows, >= 3 * width
  PixelFormat format = PixelFormat::kBgr8;
};

// An owned BGR8 image, as decoded from JPEG/PNG or copied from raw pixels.
struct Image {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> bgr;  // height * width * 3, rows packed

  ImageView view() const { return {bgr.data(), width, height, width * 3, PixelFormat::kBgr8}; }
};

struct DecodeLimits {
  int64_t max_pixels = 64LL * 1024 * 1024;  // width * height
};

struct ImageSize {
  int width = 0;
  int height = 0;
};

// A JPEG or PNG file's width and height, from walking its container (JPEG
// markers from SOI to EOI, PNG chunks from IHDR to IEND) without decoding a
// pixel or allocating the image: what DecodeImage checks before it decodes.
// INVALID_ARGUMENT for an empty, unknown, corrupt or truncated file, or one
// whose header is over the limits. A file it accepts may still fail to
// decode (corrupt entropy-coded data).
StatusOr<ImageSize> ReadImageHeader(const uint8_t* data, size_t size,
                                    const DecodeLimits& limits = {});
// Decodes JPEG or PNG bytes. A corrupt, truncated or empty buffer, or an image
// over the limits, is an INVALID_ARGUMENT with a message naming the problem.
// Strict: what libjpeg/libpng would only warn about (scan data that ends
// early, a bad CRC, a damaged zlib stream) is an error too.
StatusOr<Image> DecodeImage(const uint8_t* data, size_t size, const DecodeLimits& limits = {});
// DecodeImage into `image`, reusing its pixel buffer when its capacity is
// enough: a caller that decodes frame after frame (a server worker) then
// neither allocates nor page-faults a fresh buffer per frame. On error
// `image` is left empty (its buffer kept).
Status DecodeImageInto(const uint8_t* data, size_t size, Image* image,
                       const DecodeLimits& limits = {});
// Validates a raw view (sizes, stride, buffer length) and copies it as BGR8.
StatusOr<Image> ImageFromRaw(const ImageView& view, size_t buffer_size,
                             const DecodeLimits& limits = {});

struct Box {
  float x_min, y_min, x_max, y_max;  // original image pixels
};

// One result of a frame: an object's box (a detection head), or, with
// `whole_image` set, a class of the whole image (a classification head; its
// box is the whole image). Postprocess returns either kind, never both.
struct Detection {
  Box box;
  int class_id = 0;
  std::string label;
  float score = 0;
  bool whole_image = false;
};

struct DetectOptions {
  float score_threshold = 0;  // <= 0: the model config's
  float iou_threshold = 0;    // <= 0: the model config's
};

// A model repository entry: config, labels and compiled model. Immutable and
// shared by every worker.
namespace vision {
class Head;
}

class DetectorModel {
 public:
  // Loads `model_dir/config.pbtxt`, its labels and its model file (a .lbm,
  // or ONNX compiled at load, through Model::Load), and checks that the
  // config matches the model's inputs and outputs. Compiler library.
  static StatusOr<std::shared_ptr<const DetectorModel>> Load(const std::string& model_dir);
  // The same with the model file read by `loader`: Model::LoadCompiled in a
  // program that links only the runtime library.
  static StatusOr<std::shared_ptr<const DetectorModel>> Load(const std::string& model_dir,
                                                             const ModelLoader& loader);

  // The config as loaded, with `labels` filled in from labels_file or
  // labels.txt (labels_file cleared), so it describes the model completely.
  const v1::ModelConfig& config() const { return config_; }
  const std::vector<std::string>& labels() const { return labels_; }
  const Model& model() const { return *model_; }
  std::shared_ptr<const Model> shared_model() const { return model_; }

  // Input tensor shape at batch size `batch`.
  Shape InputShape(int batch) const;
  int64_t InputSizePerFrame() const;

  // Resizes and normalises `image` into `dst` (InputSizePerFrame() floats:
  // one frame of the input tensor, in the config's layout).
  void Preprocess(const ImageView& image, float* dst) const;

  // True when the head is a classifier (results are whole-image classes).
  bool is_classifier() const;

  // Decodes frame `index` of a batch's outputs (Model::outputs() order) into
  // detections in the original image's pixels, after class-wise NMS, or a
  // classifier's top-k classes (whole_image set), highest score first.
  std::vector<Detection> Postprocess(const std::vector<NamedTensor>& outputs, int index,
                                     int image_width, int image_height,
                                     const DetectOptions& options = {}) const;

 private:
  v1::ModelConfig config_;
  std::vector<std::string> labels_;
  std::shared_ptr<const Model> model_;
  std::shared_ptr<const vision::Head> head_;  // the config's decoder
};

// Class-wise non-maximum suppression; keeps at most `max_detections`
// (0 = all), highest score first.
std::vector<Detection> NonMaxSuppression(std::vector<Detection> detections, float iou_threshold,
                                         int max_detections);

}  // namespace lowbit::engine
