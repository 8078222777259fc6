#include "frontend.h"

#include <cmath>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <thread>

#include <spdlog/spdlog.h>

namespace lowbit::server {
namespace {

v1::DetectResponse ResponseFor(const v1::DetectRequest& request, const std::string& model) {
  v1::DetectResponse response;
  response.set_model(model);
  response.set_camera_id(request.camera_id());
  response.set_frame_id(request.frame_id());
  return response;
}

void FillDetections(const FrameResult& result, int64_t total_us, v1::DetectResponse* response) {
  for (const engine::Detection& detection : result.detections) {
    v1::Detection* out = response->add_detections();
    out->mutable_box()->set_x_min(detection.box.x_min);
    out->mutable_box()->set_y_min(detection.box.y_min);
    out->mutable_box()->set_x_max(detection.box.x_max);
    out->mutable_box()->set_y_max(detection.box.y_max);
    out->set_class_id(detection.class_id);
    out->set_label(detection.label);
    out->set_score(detection.score);
  }
  v1::Timings* timings = response->mutable_timings();
  timings->set_decode_us(result.timings.decode_us);
  timings->set_queue_us(result.timings.queue_us);
  timings->set_inference_us(result.timings.inference_us);
  timings->set_postprocess_us(result.timings.postprocess_us);
  timings->set_total_us(total_us);
  response->set_batch_size(result.batch_size);
}

StatusOr<engine::PixelFormat> ToEnginePixelFormat(v1::PixelFormat format) {
  switch (format) {
    case v1::BGR8:
      return engine::PixelFormat::kBgr8;
    case v1::RGB8:
      return engine::PixelFormat::kRgb8;
    default:
      return InvalidArgument("frame.raw.format must be BGR8 or RGB8 (got " +
                             v1::PixelFormat_Name(format) + ")");
  }
}

}  // namespace

grpc::Status ToGrpcStatus(const Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), status.message());
}

ServedModel* ModelSet::Find(const std::string& name) const {
  const std::string& wanted = name.empty() ? default_model_ : name;
  for (const auto& model : models_) {
    if (model->spec.name == wanted) return model.get();
  }
  return nullptr;
}

std::string ModelSet::Names() const {
  std::string names;
  for (const auto& model : models_) names += (names.empty() ? "" : ", ") + model->spec.name;
  return names;
}

StatusOr<engine::Image> DetectorService::DecodeFrame(const v1::Frame& frame) const {
  engine::DecodeLimits decode_limits;
  decode_limits.max_pixels = limits_.max_pixels;
  const std::string max_bytes = std::to_string(limits_.max_image_bytes);
  switch (frame.data_case()) {
    case v1::Frame::kEncoded: {
      const std::string& bytes = frame.encoded();
      if (bytes.empty()) {
        return InvalidArgument("frame.encoded is empty; send the bytes of a JPEG or PNG file");
      }
      if (static_cast<int64_t>(bytes.size()) > limits_.max_image_bytes) {
        return InvalidArgument("frame.encoded is " + std::to_string(bytes.size()) +
                               " bytes, over the server's limit of " + max_bytes +
                               " (--max-image-bytes); send a smaller or more compressed image");
      }
      StatusOr<engine::Image> image = engine::DecodeImage(
          reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), decode_limits);
      if (!image.ok()) return image.status().WithContext("frame.encoded");
      return image;
    }
    case v1::Frame::kRaw: {
      const v1::RawImage& raw = frame.raw();
      LOWBIT_ASSIGN_OR_RETURN(engine::PixelFormat format, ToEnginePixelFormat(raw.format()));
      if (raw.width() <= 0 || raw.height() <= 0) {
        return InvalidArgument("frame.raw needs width > 0 and height > 0 (got " +
                               std::to_string(raw.width()) + "x" + std::to_string(raw.height()) +
                               ")");
      }
      const int64_t row_bytes = 3LL * raw.width();
      const int64_t stride = raw.stride() == 0 ? row_bytes : raw.stride();
      if (stride < row_bytes) {
        return InvalidArgument("frame.raw.stride " + std::to_string(stride) +
                               " is below 3 * width = " + std::to_string(row_bytes));
      }
      const int64_t pixels = static_cast<int64_t>(raw.width()) * raw.height();
      if (pixels > limits_.max_pixels) {
        return InvalidArgument("frame.raw is " + std::to_string(raw.width()) + "x" +
                               std::to_string(raw.height()) + ", over the server's limit of " +
                               std::to_string(limits_.max_pixels) + " pixels (--max-pixels)");
      }
      const int64_t size = static_cast<int64_t>(raw.pixels().size());
      if (size > limits_.max_image_bytes) {
        return InvalidArgument("frame.raw.pixels is " + std::to_string(size) +
                               " bytes, over the server's limit of " + max_bytes +
                               " (--max-image-bytes)");
      }
      // The last row may omit its stride padding.
      const int64_t min_size = stride * (raw.height() - 1) + row_bytes;
      const int64_t full_size = stride * raw.height();
      if (size < min_size || size > full_size) {
        return InvalidArgument("frame.raw.pixels has " + std::to_string(size) + " bytes, but a " +
                               std::to_string(raw.width()) + "x" + std::to_string(raw.height()) +
                               " 8-bit 3-channel image with stride " + std::to_string(stride) +
                               " needs " + std::to_string(full_size) + " (stride * height)");
      }
      engine::ImageView view;
      view.pixels = reinterpret_cast<const uint8_t*>(raw.pixels().data());
      view.width = raw.width();
      view.height = raw.height();
      view.stride = static_cast<int>(stride);
      view.format = format;
      StatusOr<engine::Image> image =
          engine::ImageFromRaw(view, raw.pixels().size(), decode_limits);
      if (!image.ok()) return image.status().WithContext("frame.raw");
      return image;
    }
    case v1::Frame::DATA_NOT_SET:
      break;
  }
  return InvalidArgument(
      "the request has no image: set frame.encoded (JPEG/PNG bytes) or frame.raw (pixels)");
}

void DetectorService::Fail(ServedModel* model, const Status& status, v1::DetectResponse response,
                           const ResponseCallback& done) {
  (model ? *model->metrics : metrics_.ForModel("")).RecordCode(status.code());
  const auto level =
      status.code() == StatusCode::kInvalidArgument || status.code() == StatusCode::kNotFound
          ? spdlog::level::debug
          : spdlog::level::warn;
  spdlog::log(level, "frame rejected (model '{}', camera '{}', frame {}): {}", response.model(),
              response.camera_id(), response.frame_id(), status.ToString());
  response.mutable_error()->set_code(static_cast<int32_t>(status.code()));
  response.mutable_error()->set_message(status.message());
  done(status, std::move(response));
}

void DetectorService::ProcessFrame(const v1::DetectRequest& request, ResponseCallback done) {
  const Clock::TimePoint received = clock_.Now();
  ServedModel* model = models_.Find(request.model());
  if (model == nullptr) {
    Fail(nullptr,
         NotFound("unknown model '" + request.model() +
                  "'; this server serves: " + models_.Names() + " (see ListModels)"),
         ResponseFor(request, request.model()), done);
    return;
  }
  const float threshold = request.score_threshold();
  if (std::isnan(threshold) || threshold > 1) {
    Fail(model,
         InvalidArgument("score_threshold must be in (0, 1], or 0 for the model's default; got " +
                         std::to_string(threshold)),
         ResponseFor(request, model->spec.name), done);
    return;
  }
  StatusOr<engine::Image> image = DecodeFrame(request.frame());
  if (!image.ok()) {
    Fail(model, image.status(), ResponseFor(request, model->spec.name), done);
    return;
  }
  const Clock::TimePoint decoded = clock_.Now();

  v1::DetectResponse response = ResponseFor(request, model->spec.name);
  response.set_image_width(image->width);
  response.set_image_height(image->height);

  FrameRequest frame;
  frame.image = std::move(image).value();
  frame.detect_options.score_threshold = threshold > 0 ? threshold : 0;
  frame.decode_us = MicrosecondsBetween(received, decoded);
  frame.on_complete = [this, model, received, done,
                       response = std::move(response)](StatusOr<FrameResult> result) mutable {
    if (!result.ok()) {
      Fail(model, result.status(), std::move(response), done);
      return;
    }
    const int64_t total_us = MicrosecondsBetween(received, clock_.Now());
    FillDetections(*result, total_us, &response);
    model->metrics->RecordSuccess(result->timings, total_us);
    model->metrics->RecordCode(StatusCode::kOk);
    done(Status::Ok(), std::move(response));
  };
  const Status submitted = model->scheduler->Submit(std::move(frame));
  if (!submitted.ok()) Fail(model, submitted, ResponseFor(request, model->spec.name), done);
}

grpc::Status DetectorService::Detect(grpc::ServerContext* context, const v1::DetectRequest* request,
                                     v1::DetectResponse* response) {
  struct Outcome {
    Status status;
    v1::DetectResponse response;
  };
  // Shared with the callback: a worker may still be inside set_value when
  // get() returns.
  auto promise = std::make_shared<std::promise<Outcome>>();
  std::future<Outcome> future = promise->get_future();
  ProcessFrame(*request, [promise](const Status& status, v1::DetectResponse result) {
    promise->set_value(Outcome{status, std::move(result)});
  });
  Outcome outcome = future.get();
  if (!outcome.status.ok()) return ToGrpcStatus(outcome.status);
  *response = std::move(outcome.response);
  return grpc::Status::OK;
}

grpc::Status DetectorService::DetectStream(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<v1::DetectResponse, v1::DetectRequest>* stream) {
  // Shared with frame callbacks, which run on worker threads.
  struct StreamState {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<v1::DetectResponse> outbox;  // answered, not yet written
    int in_flight = 0;                      // read, not yet answered
    bool reading_done = false;
    bool write_failed = false;  // the client is gone; later results are discarded
  };
  auto state = std::make_shared<StreamState>();

  // Writes results as they complete; ends once reading is done and every
  // frame read has been answered and written.
  std::thread writer([state, stream] {
    std::unique_lock<std::mutex> lock(state->mu);
    while (true) {
      state->cv.wait(lock, [&] {
        return !state->outbox.empty() || (state->reading_done && state->in_flight == 0);
      });
      if (state->outbox.empty()) return;
      v1::DetectResponse response = std::move(state->outbox.front());
      state->outbox.pop_front();
      if (state->write_failed) continue;
      lock.unlock();
      const bool written = stream->Write(response);
      lock.lock();
      if (!written) state->write_failed = true;
      state->cv.notify_all();  // the reader may be waiting for room
    }
  });

  int frames = 0;
  v1::DetectRequest request;
  while (stream->Read(&request)) {
    {
      std::unique_lock<std::mutex> lock(state->mu);
      state->cv.wait(lock, [&] {
        return state->write_failed || state->in_flight + static_cast<int>(state->outbox.size()) <
                                          limits_.max_pending_per_stream;
      });
      if (state->write_failed) break;
      ++state->in_flight;
    }
    ++frames;
    ProcessFrame(request, [state](const Status&, v1::DetectResponse response) {
      std::lock_guard<std::mutex> lock(state->mu);
      --state->in_flight;
      state->outbox.push_back(std::move(response));
      state->cv.notify_all();
    });
  }
  {
    std::lock_guard<std::mutex> lock(state->mu);
    state->reading_done = true;
  }
  state->cv.notify_all();
  writer.join();

  if (context->IsCancelled()) {
    spdlog::debug("stream from {} cancelled after {} frames", context->peer(), frames);
    return grpc::Status(grpc::StatusCode::CANCELLED, "the client cancelled the stream");
  }
  if (state->write_failed) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "could not write results to the client");
  }
  return grpc::Status::OK;
}

grpc::Status DetectorService::ListModels(grpc::ServerContext* context,
                                         const v1::ListModelsRequest* request,
                                         v1::ListModelsResponse* response) {
  for (const auto& model : models_.models()) {
    const ModelSpec& spec = model->spec;
    v1::ModelSummary* summary = response->add_models();
    summary->set_name(spec.name);
    summary->set_version(spec.config.version());
    summary->set_input_width(spec.config.input().width());
    summary->set_input_height(spec.config.input().height());
    summary->set_num_classes(spec.num_classes);
  }
  response->set_default_model(models_.default_model());
  return grpc::Status::OK;
}

grpc::Status DetectorService::GetModel(grpc::ServerContext* context,
                                       const v1::GetModelRequest* request,
                                       v1::GetModelResponse* response) {
  const ServedModel* model = models_.Find(request->model());
  if (model == nullptr) {
    return ToGrpcStatus(NotFound("unknown model '" + request->model() +
                                 "'; this server serves: " + models_.Names()));
  }
  *response->mutable_config() = model->spec.config;
  int64_t total_macs = 0;
  int64_t total_params = 0;
  int64_t total_weight_bytes = 0;
  for (const engine::LayerInfo& layer : model->spec.layers) {
    v1::LayerInfo* out = response->add_layers();
    out->set_name(layer.name);
    out->set_op(layer.op);
    for (int64_t dim : layer.output_shape) out->add_output_shape(dim);
    out->set_macs(layer.macs);
    out->set_params(layer.params);
    out->set_weight_bits(layer.weight_bits);
    out->set_activation_bits(layer.activation_bits);
    out->set_kernel(layer.kernel);
    out->set_weight_bytes(layer.weight_bytes);
    total_macs += layer.macs;
    total_params += layer.params;
    total_weight_bytes += layer.weight_bytes;
  }
  response->set_total_macs(total_macs);
  response->set_total_params(total_params);
  response->set_total_weight_bytes(total_weight_bytes);
  const engine::ModelOrigin& origin = model->spec.origin;
  v1::CompiledModelInfo* compiled = response->mutable_compiled();
  compiled->set_precompiled(origin.precompiled);
  compiled->set_source_model(origin.source_model);
  compiled->set_producer(origin.producer);
  compiled->set_kernel_isa(origin.kernel_isa);
  compiled->set_cpu_model(origin.cpu_model);
  return grpc::Status::OK;
}

}  // namespace lowbit::server
