// Calibration for `lowbit quantize`: frames from a folder of images or a
// video, pre-processed by the model entry's own config; FP32 statistics of
// the tensors the quantizer needs; models compiled in-process from ONNX
// protobufs and run over the frames.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "lowbit/engine/model.h"
#include "lowbit/engine/quantize.h"
#include "lowbit/engine/status.h"
#include "lowbit/v1/model_config.pb.h"
#include "lowbit_onnx/onnx.pb.h"
#include "quantize/scales.h"

namespace lowbit::engine::quantize {

// Pre-processed frames: each one frame of the model's input tensor.
struct CalibrationFrames {
  std::vector<std::vector<float>> inputs;
  std::vector<std::string> names;  // file name, or "video.avi#index"
  std::vector<int> video_indices;  // video only
};

// `source` is a directory (its *.jpg, *.jpeg, *.png, *.bmp files in name
// order, the first `count`) or a video file (OpenCV VideoCapture; frames
// floor(i * total / count), i = 0..count-1, read in order). An empty
// directory, an unreadable video or a frame that does not decode is an
// error naming the file.
StatusOr<CalibrationFrames> LoadCalibrationFrames(const v1::InputConfig& input,
                                                  const std::string& source, int count,
                                                  const QuantizeProgress& progress);

// An ONNX model compiled here (lowering on: the integer kernels run it).
StatusOr<std::shared_ptr<const Model>> CompileModelProto(const onnx::ModelProto& model,
                                                         const std::string& source,
                                                         const CompileOptions& options = {});

// Runs `model` on the first `frame_limit` frames (batch 1) and hands each
// frame's outputs to `visit`. `threads` frames run at once, each on its own
// single-threaded session (no intra-op pool); `visit` is still called one
// frame at a time in frame order, so its results do not depend on `threads`.
// The first error (of a run or of `visit`, in frame order) stops the rest.
Status RunFrames(
    const Model& model, const std::string& input_name, const v1::InputConfig& input,
    const CalibrationFrames& frames, size_t frame_limit, int threads,
    const std::function<Status(size_t frame, const std::vector<NamedTensor>& outputs)>& visit);

// FP32 statistics over the calibration frames.
struct TensorStatistics {
  float min = 0, max = 0;
  std::vector<double> channel_mean;  // per channel (axis 1, NCHW), for bias correction
};
struct Calibration {
  std::map<std::string, TensorStatistics> tensors;
  // One histogram per group root, over the values of its sources.
  std::map<std::string, Histogram> histograms;
  // The FP32 model's outputs per frame (Model::outputs() order).
  std::vector<std::vector<NamedTensor>> reference_outputs;
};

// Two passes of the FP32 model with `tensors` as extra outputs: min/max and
// channel means, then a histogram per group (`groups`: root -> its source
// tensors) in the fixed range of its sources' min/max.
// `observe`, when set, also sees every calibrated tensor of every frame in
// the first pass (frame index, name, values, shape).
using TensorObserver = std::function<void(size_t frame, const std::string& name,
                                          const float* values, const Shape& shape)>;
StatusOr<Calibration> Calibrate(const onnx::ModelProto& model, const std::string& input_name,
                                const v1::InputConfig& input, const CalibrationFrames& frames,
                                const std::vector<std::string>& tensors,
                                const std::map<std::string, std::vector<std::string>>& groups,
                                int threads, const QuantizeProgress& progress,
                                const TensorObserver& observe = {});

// Relative squared error of `outputs` against `reference`:
// mean over outputs of sum (y - y_ref)^2 / sum y_ref^2.
double RelativeOutputError(const std::vector<NamedTensor>& outputs,
                           const std::vector<NamedTensor>& reference);

}  // namespace lowbit::engine::quantize
