#include "quantize/calibration.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <mutex>
#include <opencv2/videoio.hpp>
#include <set>
#include <thread>

#include "import/onnx_importer.h"
#include "lowbit/engine/detector.h"
#include "runtime/compiled_model.h"
#include "vision/config.h"
#include "vision/preprocess.h"

namespace lowbit::engine::quantize {
namespace {

namespace fs = std::filesystem;

bool IsImageFile(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp";
}

std::vector<float> Preprocessed(const v1::InputConfig& input, const ImageView& view) {
  std::vector<float> frame(static_cast<size_t>(3) * input.width() * input.height());
  vision::PreprocessImage(input, view, frame.data());
  return frame;
}

StatusOr<CalibrationFrames> FramesFromDirectory(const v1::InputConfig& input,
                                                const fs::path& directory, int count,
                                                const QuantizeProgress& progress) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(directory))
    if (entry.is_regular_file() && IsImageFile(entry.path())) files.push_back(entry.path());
  if (files.empty())
    return InvalidArgument("calibration directory " + directory.string() +
                           " holds no images (*.jpg, *.jpeg, *.png, *.bmp)");
  std::sort(files.begin(), files.end());
  if (static_cast<int>(files.size()) > count) files.resize(count);
  CalibrationFrames frames;
  for (const auto& file : files) {
    std::ifstream in(file, std::ios::binary);
    const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                     std::istreambuf_iterator<char>());
    auto image = DecodeImage(bytes.data(), bytes.size());
    if (!image.ok()) return image.status().WithContext("calibration image " + file.string());
    frames.inputs.push_back(Preprocessed(input, image->view()));
    frames.names.push_back(file.filename().string());
    if (progress)
      progress("reading frames", static_cast<int>(frames.inputs.size()),
               static_cast<int>(files.size()));
  }
  return frames;
}

StatusOr<CalibrationFrames> FramesFromVideo(const v1::InputConfig& input, const fs::path& path,
                                            int count, const QuantizeProgress& progress) {
  // The container's frame count can be missing or approximate: count by
  // grabbing (demux and decode, no conversion to BGR), then decode again and
  // convert only the chosen frames. Two decodes of the video, but `count`
  // frames in memory rather than every frame of it.
  int total = 0;
  {
    cv::VideoCapture video(path.string());
    if (!video.isOpened()) return InvalidArgument("cannot open calibration video " + path.string());
    while (video.grab()) ++total;
  }
  if (total == 0)
    return InvalidArgument("calibration video " + path.string() + " has no readable frames");
  cv::VideoCapture video(path.string());
  if (!video.isOpened()) return InvalidArgument("cannot open calibration video " + path.string());
  const int take = std::min(count, total);
  CalibrationFrames frames;
  cv::Mat frame;
  int next = 0;  // index of the frame the next grab() decodes
  for (int i = 0; i < take; ++i) {
    // Strictly increasing, as take <= total.
    const int index = static_cast<int>(static_cast<int64_t>(i) * total / take);
    for (; next <= index; ++next)
      if (!video.grab())
        return InvalidArgument("calibration video " + path.string() + ": frame " +
                               std::to_string(next) + " of " + std::to_string(total) +
                               " does not decode the second time it is read");
    if (!video.retrieve(frame) || frame.empty() || frame.type() != CV_8UC3)
      return InvalidArgument("calibration video " + path.string() + ": frame " +
                             std::to_string(index) + " is not 8-bit 3-channel");
    const ImageView view{frame.data, frame.cols, frame.rows, static_cast<int>(frame.step[0]),
                         PixelFormat::kBgr8};
    frames.inputs.push_back(Preprocessed(input, view));
    frames.names.push_back(path.filename().string() + "#" + std::to_string(index));
    frames.video_indices.push_back(index);
    if (progress) progress("reading frames", i + 1, take);
  }
  return frames;
}

}  // namespace

StatusOr<CalibrationFrames> LoadCalibrationFrames(const v1::InputConfig& input,
                                                  const std::string& source, int count,
                                                  const QuantizeProgress& progress) {
  if (count < 1) return InvalidArgument("--frames must be at least 1");
  std::error_code error;
  const fs::path path(source);
  if (fs::is_directory(path, error)) return FramesFromDirectory(input, path, count, progress);
  if (!fs::is_regular_file(path, error))
    return NotFound("calibration source " + source +
                    " is neither a directory of images nor a video file");
  return FramesFromVideo(input, path, count, progress);
}

StatusOr<std::shared_ptr<const Model>> CompileModelProto(const onnx::ModelProto& model,
                                                         const std::string& source,
                                                         const CompileOptions& options) {
  std::string bytes;
  if (!model.SerializeToString(&bytes))
    return Internal("cannot serialize the ONNX model " + source);
  LOWBIT_ASSIGN_OR_RETURN(ir::Graph graph, ImportOnnxBytes(bytes.data(), bytes.size(), source));
  auto compiled = runtime::CompiledModel::Compile(std::move(graph), {}, options);
  if (!compiled.ok()) return compiled.status().WithContext(source);
  return std::shared_ptr<const Model>(std::move(compiled).value());
}

Status RunFrames(const Model& model, const std::string& input_name, const v1::InputConfig& input,
                 const CalibrationFrames& frames, size_t frame_limit, int threads,
                 const std::function<Status(size_t, const std::vector<NamedTensor>&)>& visit) {
  const size_t count = std::min(frame_limit, frames.inputs.size());
  const size_t workers =
      std::clamp<size_t>(threads < 1 ? 1 : threads, 1, std::max<size_t>(count, 1));
  // Parallel over frames, not inside one: each worker runs whole frames on its
  // own single-threaded session. An intra-op pool synchronises at every
  // operation of every frame, and its spinning workers stall when the cores
  // are shared (BlazeFace, 32 frames, --threads 2 beside two busy processes:
  // 1.3 s a frame instead of a few ms).
  std::vector<std::unique_ptr<Session>> sessions(workers);
  for (auto& session : sessions) {
    LOWBIT_ASSIGN_OR_RETURN(session, model.CreateSession({}));
  }
  const Shape shape = vision::InputShapeFor(input, 1);

  // `visit` sees frame f only after frames 0..f-1, one call at a time (under
  // `mutex`), so what it accumulates does not depend on `threads`. Frames are
  // taken in increasing order, so the lowest unvisited frame is always being
  // run or waiting for its turn, never blocked behind a later one.
  std::mutex mutex;
  std::condition_variable turn;
  size_t next_visit = 0;
  Status failure = Status::Ok();
  std::atomic<size_t> next_frame{0};
  auto work = [&](Session* session) {
    std::vector<NamedTensor> inputs(1), outputs;
    inputs[0].name = input_name;
    for (;;) {
      const size_t f = next_frame.fetch_add(1);
      if (f >= count) return;
      inputs[0].tensor = Tensor(shape, frames.inputs[f]);
      Status status = session->Run(inputs, &outputs);
      std::unique_lock<std::mutex> lock(mutex);
      turn.wait(lock, [&] { return next_visit == f || !failure.ok(); });
      if (!failure.ok()) return;
      if (status.ok()) status = visit(f, outputs);
      if (!status.ok()) failure = std::move(status);
      ++next_visit;
      turn.notify_all();
      if (!failure.ok()) return;
    }
  };
  std::vector<std::thread> helpers;
  for (size_t w = 1; w < workers; ++w) helpers.emplace_back(work, sessions[w].get());
  work(sessions[0].get());
  for (auto& helper : helpers) helper.join();
  return failure;
}

StatusOr<Calibration> Calibrate(const onnx::ModelProto& model, const std::string& input_name,
                                const v1::InputConfig& input, const CalibrationFrames& frames,
                                const std::vector<std::string>& tensors,
                                const std::map<std::string, std::vector<std::string>>& groups,
                                int threads, const QuantizeProgress& progress,
                                const TensorObserver& observe) {
  // The FP32 model with every calibrated tensor as an extra output (the graph
  // input itself is read from the frames).
  onnx::ModelProto probe = model;
  std::set<std::string> outputs;
  for (const auto& o : probe.graph().output()) outputs.insert(o.name());
  const size_t model_outputs = outputs.size();
  for (const auto& t : tensors) {
    if (t == input_name || !outputs.insert(t).second) continue;
    auto* value = probe.mutable_graph()->add_output();
    value->set_name(t);
    value->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  }
  LOWBIT_ASSIGN_OR_RETURN(auto compiled, CompileModelProto(probe, "the calibration model"));

  Calibration calibration;
  const std::set<std::string> wanted(tensors.begin(), tensors.end());
  const Shape input_shape = vision::InputShapeFor(input, 1);
  // Calls `f(name, values, count, shape)` for each calibrated tensor of a frame.
  auto for_each_tensor = [&](size_t frame, const std::vector<NamedTensor>& outs, auto&& f) {
    if (wanted.count(input_name))
      f(input_name, frames.inputs[frame].data(), static_cast<int64_t>(frames.inputs[frame].size()),
        input_shape);
    for (const auto& out : outs)
      if (wanted.count(out.name))
        f(out.name, out.tensor.data(), out.tensor.size(), out.tensor.shape());
  };

  std::map<std::string, int64_t> channel_counts;
  const int total = static_cast<int>(frames.inputs.size());
  LOWBIT_RETURN_IF_ERROR(
      RunFrames(*compiled, input_name, input, frames, frames.inputs.size(), threads,
                [&](size_t frame, const std::vector<NamedTensor>& outs) {
                  for_each_tensor(
                      frame, outs,
                      [&](const std::string& name, const float* v, int64_t n, const Shape& shape) {
                        if (observe) observe(frame, name, v, shape);
                        auto [it, fresh] = calibration.tensors.try_emplace(name);
                        TensorStatistics& s = it->second;
                        const auto [lo, hi] = std::minmax_element(v, v + n);
                        s.min = fresh ? *lo : std::min(s.min, *lo);
                        s.max = fresh ? *hi : std::max(s.max, *hi);
                        if (shape.size() == 4) {
                          const int64_t channels = shape[1], plane = shape[2] * shape[3];
                          s.channel_mean.resize(channels, 0.0);
                          for (int64_t c = 0; c < channels; ++c) {
                            double sum = 0;
                            for (int64_t i = 0; i < plane; ++i) sum += v[c * plane + i];
                            s.channel_mean[c] += sum;
                          }
                          channel_counts[name] += plane;
                        }
                      });
                  std::vector<NamedTensor> kept;
                  for (size_t o = 0; o < model_outputs && o < outs.size(); ++o)
                    kept.push_back(outs[o]);
                  calibration.reference_outputs.push_back(std::move(kept));
                  if (progress) progress("calibrating (range)", static_cast<int>(frame) + 1, total);
                  return Status::Ok();
                }));
  for (auto& [name, s] : calibration.tensors)
    for (double& mean : s.channel_mean) mean /= std::max<int64_t>(1, channel_counts[name]);

  // Histograms: each group in the range of its sources together.
  std::map<std::string, std::vector<std::string>> readers_of;  // tensor -> groups it feeds
  for (const auto& [root, sources] : groups) {
    float lo = std::numeric_limits<float>::infinity(), hi = -lo;
    for (const auto& t : sources) {
      auto it = calibration.tensors.find(t);
      if (it == calibration.tensors.end()) return Internal("tensor " + t + " was not calibrated");
      lo = std::min(lo, it->second.min);
      hi = std::max(hi, it->second.max);
      readers_of[t].push_back(root);
    }
    if (!std::isfinite(lo) || !std::isfinite(hi))
      return InvalidArgument("the values of " + root + " are not finite (min " +
                             std::to_string(lo) + ", max " + std::to_string(hi) +
                             "): it cannot be quantized");
    calibration.histograms.emplace(root, Histogram(lo, hi));
  }
  LOWBIT_RETURN_IF_ERROR(RunFrames(
      *compiled, input_name, input, frames, frames.inputs.size(), threads,
      [&](size_t frame, const std::vector<NamedTensor>& outs) {
        for_each_tensor(frame, outs,
                        [&](const std::string& name, const float* v, int64_t n, const Shape&) {
                          auto it = readers_of.find(name);
                          if (it == readers_of.end()) return;
                          for (const auto& root : it->second)
                            calibration.histograms.at(root).Add(v, n);
                        });
        if (progress) progress("calibrating (histograms)", static_cast<int>(frame) + 1, total);
        return Status::Ok();
      }));
  return calibration;
}

double RelativeOutputError(const std::vector<NamedTensor>& outputs,
                           const std::vector<NamedTensor>& reference) {
  double total = 0;
  const size_t n = std::min(outputs.size(), reference.size());
  for (size_t o = 0; o < n; ++o) {
    const float* y = outputs[o].tensor.data();
    const float* r = reference[o].tensor.data();
    double error = 0, energy = 0;
    for (int64_t i = 0; i < reference[o].tensor.size(); ++i) {
      const double d = static_cast<double>(y[i]) - r[i];
      error += d * d;
      energy += static_cast<double>(r[i]) * r[i];
    }
    total += energy > 0 ? error / energy : error;
  }
  return n ? total / n : 0;
}

}  // namespace lowbit::engine::quantize
