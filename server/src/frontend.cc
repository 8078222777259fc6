#include "frontend.h"

#include <cmath>
#include <deque>
#include <map>

#include <spdlog/spdlog.h>

namespace lowbit::server {
namespace {

int64_t WallClockMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

v1::DetectResponse ResponseFor(const v1::DetectRequest& request, const std::string& model) {
  v1::DetectResponse response;
  response.set_model(model);
  response.set_camera_id(request.camera_id());
  response.set_frame_id(request.frame_id());
  return response;
}

void FillResult(const FrameResult& result, int64_t total_us, v1::DetectResponse* response) {
  for (const engine::Detection& detection : result.detections) {
    // A classifier's whole-image classes go to `classifications`.
    if (detection.whole_image) {
      v1::Classification* out = response->add_classifications();
      out->set_class_id(detection.class_id);
      out->set_label(detection.label);
      out->set_score(detection.score);
      continue;
    }
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
  if (result.image_width > 0) {
    response->set_image_width(result.image_width);
    response->set_image_height(result.image_height);
  }
  response->set_batch_size(result.batch_size);
}

// What a refusal by Scheduler::Submit means as a drop reason (kNone: the
// frame was refused for what it is, not dropped).
DropReason SubmitDropReason(const Status& status, DropReason deadline_reason) {
  switch (status.code()) {
    case StatusCode::kResourceExhausted:
      return DropReason::kQueueFull;
    case StatusCode::kUnavailable:
      return DropReason::kShuttingDown;
    case StatusCode::kDeadlineExceeded:
      return deadline_reason;
    case StatusCode::kCancelled:
      return DropReason::kCancelled;
    default:
      return DropReason::kNone;
  }
}

}  // namespace

v1::DropReason ToProtoDropReason(DropReason reason) {
  switch (reason) {
    case DropReason::kNone:
      return v1::DROP_REASON_UNSPECIFIED;
    case DropReason::kSuperseded:
      return v1::SUPERSEDED;
    case DropReason::kStale:
      return v1::STALE;
    case DropReason::kQueueFull:
      return v1::QUEUE_FULL;
    case DropReason::kDeadline:
      return v1::DEADLINE;
    case DropReason::kCancelled:
      return v1::CANCELLED;
    case DropReason::kShuttingDown:
      return v1::SHUTTING_DOWN;
  }
  return v1::DROP_REASON_UNSPECIFIED;
}

DetectorService::DetectorService(ModelRegistry& registry, const FrontendLimits& limits,
                                 ServerMetrics& metrics, Clock& clock, const DrainState& drain)
    : registry_(registry), limits_(limits), metrics_(metrics), clock_(clock), drain_(drain) {}

// ---------------------------------------------------------------------------
// One frame.

ModelMetrics& DetectorService::MetricsFor(const std::string& model_name) {
  std::shared_ptr<ServedModel> model = registry_.Find(model_name);
  return model ? *model->metrics : metrics_.ForModel("");
}

void DetectorService::Fail(ModelMetrics& metrics, const Status& status, DropReason dropped,
                           v1::DetectResponse response, const ResponseCallback& done) {
  metrics.RecordCode(status.code());
  const auto level = dropped != DropReason::kNone ||
                             status.code() == StatusCode::kInvalidArgument ||
                             status.code() == StatusCode::kNotFound
                         ? spdlog::level::debug
                         : spdlog::level::warn;
  int64_t suppressed = 0;
  if (spdlog::should_log(level) && (level < spdlog::level::warn || warnings_.Allow(&suppressed))) {
    spdlog::log(level, "frame not answered (model '{}', camera '{}', frame {}): {}{}",
                Excerpt(response.model()), Excerpt(response.camera_id()), response.frame_id(),
                Excerpt(status.ToString(), kMaxErrorMessageBytes), SuppressedNote(suppressed));
  }
  response.mutable_error()->set_code(static_cast<int32_t>(status.code()));
  response.mutable_error()->set_message(Excerpt(status.message(), kMaxErrorMessageBytes));
  response.set_dropped(ToProtoDropReason(dropped));
  done(status, std::move(response));
}

void DetectorService::AnswerShuttingDown(const v1::DetectRequest& request,
                                         const ResponseCallback& done) {
  ModelMetrics& metrics = MetricsFor(request.model());
  metrics.RecordDropped(DropReason::kShuttingDown);
  const std::string model = request.model().empty() ? registry_.default_model() : request.model();
  Fail(metrics, DrainState::ShuttingDown(), DropReason::kShuttingDown, ResponseFor(request, model),
       done);
}

void DetectorService::ProcessFrame(const v1::DetectRequest& request, std::string encoded,
                                   const CallInfo& call, ResponseCallback done) {
  const Clock::TimePoint received = clock_.Now();
  const int64_t received_wall_us = WallClockMicros();
  if (drain_.draining()) {
    AnswerShuttingDown(request, done);
    return;
  }
  for (const auto& [field, value] :
       {std::pair{"model", &request.model()}, std::pair{"camera_id", &request.camera_id()}}) {
    if (Status bounded = CheckRequestString(field, *value); !bounded.ok()) {
      // The response echoes neither the model nor the camera.
      v1::DetectResponse response;
      response.set_frame_id(request.frame_id());
      Fail(metrics_.ForModel(""), bounded, DropReason::kNone, std::move(response), done);
      return;
    }
  }
  const std::string model_name =
      request.model().empty() ? registry_.default_model() : request.model();
  const float threshold = request.score_threshold();
  if (!(threshold >= 0 && threshold <= 1)) {  // NaN too
    Fail(MetricsFor(model_name),
         InvalidArgument("score_threshold must be in (0, 1], or 0 for the model's default; got " +
                         std::to_string(threshold)),
         DropReason::kNone, ResponseFor(request, model_name), done);
    return;
  }

  StatusOr<FramePayload> payload = InvalidArgument(
      "the request has no image: set frame.encoded (JPEG/PNG bytes) or frame.raw (pixels)");
  if (request.frame().data_case() == v1::Frame::kEncoded) {
    payload = EncodedPayload(std::move(encoded), limits_);
  } else if (request.frame().data_case() == v1::Frame::kRaw) {
    payload = RawPayload(request.frame().raw(), limits_);
  }
  if (!payload.ok()) {
    Fail(MetricsFor(model_name), payload.status(), DropReason::kNone,
         ResponseFor(request, model_name), done);
    return;
  }

  FrameRequest frame;
  frame.deadline = call.deadline;
  frame.deadline_reason = DropReason::kDeadline;
  // max_frame_age_ms: from the capture timestamp (wall clock), else from now.
  const int64_t capture_us = request.capture_time_us();
  if (request.max_frame_age_ms() > 0) {
    const int64_t born_us = capture_us > 0 ? capture_us : received_wall_us;
    const int64_t left_us = born_us + int64_t{request.max_frame_age_ms()} * 1000 - received_wall_us;
    if (left_us <= 0) {
      ModelMetrics& metrics = MetricsFor(model_name);
      metrics.RecordDropped(DropReason::kStale);
      Fail(metrics,
           Status(StatusCode::kDeadlineExceeded,
                  "the frame is " + std::to_string((received_wall_us - born_us) / 1000) +
                      " ms old on arrival (capture_time_us), over its max_frame_age_ms of " +
                      std::to_string(request.max_frame_age_ms())),
           DropReason::kStale, ResponseFor(request, model_name), done);
      return;
    }
    const Clock::TimePoint stale_at = received + std::chrono::microseconds(left_us);
    if (stale_at < frame.deadline) {
      frame.deadline = stale_at;
      frame.deadline_reason = DropReason::kStale;
    }
  }

  frame.payload = std::move(payload).value();
  frame.detect_options.score_threshold = threshold > 0 ? threshold : 0;
  frame.camera_id = request.camera_id();
  frame.source = call.source;
  frame.received = received;
  frame.cancelled = call.cancelled;

  // Shared by the completion and SubmitFrame, which publishes the version
  // it submits to before Submit (see admission.h).
  struct Context {
    std::shared_ptr<ServedModel> served;
    v1::DetectResponse response;
    ResponseCallback done;
  };
  auto context = std::make_shared<Context>();
  context->response = ResponseFor(request, model_name);
  context->done = std::move(done);
  const DropReason deadline_reason = frame.deadline_reason;
  frame.on_complete = [this, context, received, capture_us](FrameOutcome outcome) {
    ServedModel& model = *context->served;
    ModelMetrics& metrics = *model.metrics;
    v1::DetectResponse& response = context->response;
    response.set_model(model.spec.name);
    if (outcome.computed) metrics.RecordInference(model.version);
    if (!outcome.status.ok()) {
      Fail(metrics, outcome.status, outcome.dropped, std::move(response), context->done);
      return;
    }
    const int64_t total_us = MicrosecondsBetween(received, clock_.Now());
    FillResult(outcome.result, total_us, &response);
    if (capture_us > 0) {
      const int64_t age_us = WallClockMicros() - capture_us;
      response.mutable_timings()->set_frame_age_us(age_us);
      metrics.RecordFrameAge(age_us);
    }
    metrics.RecordSuccess(outcome.result.timings, total_us);
    metrics.RecordInference(model.version);
    metrics.RecordCode(StatusCode::kOk);
    context->done(Status::Ok(), std::move(response));
  };

  const Status submitted = SubmitFrame(registry_, model_name, std::move(frame), &context->served);
  if (!submitted.ok()) {
    // The scheduler counted its own refusals (queue full, deadline passed).
    Fail(context->served ? *context->served->metrics : metrics_.ForModel(""), submitted,
         SubmitDropReason(submitted, deadline_reason), std::move(context->response), context->done);
  }
}

// ---------------------------------------------------------------------------
// Detect: one frame, the call finished from the frame's completion.

class DetectorService::UnaryCall final : public grpc::ServerUnaryReactor {
 public:
  UnaryCall(DetectorService* service, grpc::CallbackServerContext* context,
            const v1::DetectRequest* request, v1::DetectResponse* response)
      : service_(service), state_(std::make_shared<State>()) {
    state_->call = this;
    state_->response = response;
    service_->CallStarted();
    CallInfo call;
    call.deadline = DeadlineFromContext(*context, service_->clock_);
    call.cancelled = [state = state_] { return state->cancelled.load(); };
    call.source = context->peer();
    // The encoded bytes are copied once: gRPC owns the request message.
    std::string encoded = request->frame().data_case() == v1::Frame::kEncoded
                              ? request->frame().encoded()
                              : std::string();
    service_->ProcessFrame(*request, std::move(encoded), call,
                           [state = state_](const Status& status, v1::DetectResponse result) {
                             FinishOnce(*state, status, &result);
                           });
  }

  // The client gave up (or its deadline passed): the call ends now; the
  // frame, if still waiting, is dropped when its batch forms.
  void OnCancel() override {
    state_->cancelled = true;
    FinishOnce(*state_, Status(StatusCode::kCancelled, "the client cancelled the call"), nullptr);
  }

  void OnDone() override {
    service_->CallEnded();
    delete this;
  }

 private:
  struct State {
    std::mutex mu;
    bool finished = false;
    std::atomic<bool> cancelled{false};
    UnaryCall* call = nullptr;               // valid until finished
    v1::DetectResponse* response = nullptr;  // gRPC's, valid until finished
  };

  static void FinishOnce(State& state, const Status& status, v1::DetectResponse* result) {
    std::lock_guard<std::mutex> lock(state.mu);
    if (state.finished) return;
    state.finished = true;
    if (status.ok() && result != nullptr) *state.response = std::move(*result);
    // OnDone (and delete) may follow at once on another thread: nothing
    // touches the call after this.
    state.call->Finish(ToGrpcStatus(status));
  }

  DetectorService* const service_;
  const std::shared_ptr<State> state_;
};

grpc::ServerUnaryReactor* DetectorService::Detect(grpc::CallbackServerContext* context,
                                                  const v1::DetectRequest* request,
                                                  v1::DetectResponse* response) {
  return new UnaryCall(this, context, request, response);
}

// ---------------------------------------------------------------------------
// DetectStream.
//
// Lifetime: the reactor is deleted when gRPC is done with it (OnDone) and
// every frame it submitted has completed (`refs_`). Locking: `mu_` guards
// all state; gRPC operations (StartRead/StartWrite/Finish) are started with
// it held, ProcessFrame is called without it (a refusal, or the frame it
// supersedes, completes on the calling thread).

class DetectorService::StreamCall final
    : public grpc::ServerBidiReactor<v1::DetectRequest, v1::DetectResponse> {
 public:
  StreamCall(DetectorService* service, grpc::CallbackServerContext* context)
      : service_(service),
        limit_(std::max(1, service->limits_.max_pending_per_stream)),
        byte_limit_(service->limits_.max_pending_bytes_per_stream),
        slots_(service->limits_.streams),
        source_(context->peer()),
        deadline_(DeadlineFromContext(*context, service->clock_)) {
    service_->CallStarted();
    std::lock_guard<std::mutex> lock(mu_);
    drain_subscription_ = service_->drain_.Subscribe([this] { OnDrain(); });
    if (drain_subscription_ == 0) draining_ = true;
    if (slots_) {
      const Status slot = slots_->Acquire();
      if (!slot.ok()) {
        slots_.reset();  // none taken
        finished_ = true;
        Finish(ToGrpcStatus(slot));
        return;
      }
    }
    Pump();
  }

  void OnReadDone(bool ok) override {
    std::unique_lock<std::mutex> lock(mu_);
    reading_ = false;
    if (!ok) {
      read_done_ = true;
      Pump();
      return;
    }
    if (finished_ && !draining_) return;  // cancelled: nobody to answer
    const std::string camera = request_.camera_id();
    const uint64_t sequence = cameras_[camera].next_to_read++;
    ++pending_;
    ++refs_;
    const bool refuse = draining_;
    handling_read_ = true;  // request_ is in use: no StartRead until it is done
    lock.unlock();

    ResponseCallback answer = [this, camera, sequence](const Status&, v1::DetectResponse response) {
      Answer(camera, sequence, std::move(response));
    };
    if (refuse) {
      service_->AnswerShuttingDown(request_, answer);
    } else {
      CallInfo call;
      call.deadline = deadline_;
      call.cancelled = [this] { return cancelled_.load(std::memory_order_relaxed); };
      call.source = source_;
      std::string encoded = request_.frame().data_case() == v1::Frame::kEncoded
                                ? std::move(*request_.mutable_frame()->mutable_encoded())
                                : std::string();
      service_->ProcessFrame(request_, std::move(encoded), call, std::move(answer));
    }

    lock.lock();
    handling_read_ = false;
    Pump();
  }

  void OnWriteDone(bool ok) override {
    std::unique_lock<std::mutex> lock(mu_);
    writing_ = false;
    --pending_;
    pending_bytes_ -= writing_bytes_;
    if (!ok && !write_failed_) {
      write_failed_ = true;
      pending_ -= static_cast<int>(outbox_.size());
      for (const Answered& answered : outbox_) pending_bytes_ -= answered.bytes;
      outbox_.clear();
    }
    Pump();
  }

  // The client cancelled, or the call's deadline passed: frames still
  // waiting are dropped when their batches form; the call ends now.
  void OnCancel() override {
    cancelled_ = true;
    std::lock_guard<std::mutex> lock(mu_);
    Pump();
  }

  void OnDone() override {
    service_->drain_.Unsubscribe(drain_subscription_);
    if (slots_) slots_->Release();
    if (frames_ > 0) {
      spdlog::debug("stream ended after {} frame(s)", frames_);
    }
    service_->CallEnded();
    Release();
  }

 private:
  // A frame's result and its serialized size (counted in pending_bytes_).
  struct Answered {
    v1::DetectResponse response;
    int64_t bytes = 0;
  };

  // Results of one camera_id, released in read order.
  struct CameraOrder {
    uint64_t next_to_read = 0;
    uint64_t next_to_release = 0;
    std::map<uint64_t, Answered> held;  // completed, waiting for earlier ones
  };

  void OnDrain() {
    std::lock_guard<std::mutex> lock(mu_);
    draining_ = true;
    Pump();
  }

  // A frame's answer, from any thread.
  void Answer(const std::string& camera, uint64_t sequence, v1::DetectResponse response) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++frames_;
      auto it = cameras_.find(camera);
      CameraOrder& order = it->second;
      const auto bytes = static_cast<int64_t>(response.ByteSizeLong());
      pending_bytes_ += bytes;
      order.held.emplace(sequence, Answered{std::move(response), bytes});
      for (auto next = order.held.find(order.next_to_release); next != order.held.end();
           next = order.held.find(order.next_to_release)) {
        if (write_failed_ || finished_) {
          --pending_;  // nobody to write it to
          pending_bytes_ -= next->second.bytes;
        } else {
          outbox_.push_back(std::move(next->second));
        }
        order.held.erase(next);
        ++order.next_to_release;
      }
      if (order.next_to_release == order.next_to_read) cameras_.erase(it);
      Pump();
    }
    Release();
  }

  // Starts what can start now: the next write, the next read, or Finish.
  // mu_ held.
  void Pump() {
    if (finished_) return;
    if (cancelled_ || write_failed_) {
      Finish(cancelled_ ? grpc::Status(grpc::StatusCode::CANCELLED, "the stream was cancelled")
                        : grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                       "could not write results to the client"));
      finished_ = true;
      return;
    }
    if (!writing_ && !outbox_.empty()) {
      writing_response_ = std::move(outbox_.front().response);
      writing_bytes_ = outbox_.front().bytes;
      outbox_.pop_front();
      writing_ = true;
      StartWrite(&writing_response_);
    }
    if (!reading_ && !handling_read_ && !read_done_ && !draining_ && pending_ < limit_ &&
        pending_bytes_ < byte_limit_) {
      reading_ = true;
      StartRead(&request_);
    }
    if (pending_ == 0 && !writing_ && (read_done_ || draining_)) {
      Finish(draining_ && !read_done_ ? ToGrpcStatus(DrainState::ShuttingDown())
                                      : grpc::Status::OK);
      finished_ = true;
    }
  }

  void Release() {
    bool last = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      last = --refs_ == 0;
    }
    if (last) delete this;
  }

  DetectorService* const service_;
  const int limit_;
  const int64_t byte_limit_;
  std::shared_ptr<StreamSlots> slots_;  // the slot this stream holds (null: none)
  const std::string source_;            // the client's connection (gRPC peer)
  const Clock::TimePoint deadline_;
  std::atomic<bool> cancelled_{false};

  std::mutex mu_;
  int refs_ = 1;     // gRPC's, until OnDone, plus one per frame not yet answered
  int pending_ = 0;  // read, not yet written (or discarded)
  // Serialized bytes of the results answered, not yet written (held for
  // per-camera order, in outbox_, or being written).
  int64_t pending_bytes_ = 0;
  int64_t writing_bytes_ = 0;  // of writing_response_
  int64_t frames_ = 0;
  bool reading_ = false;        // a StartRead is outstanding
  bool handling_read_ = false;  // OnReadDone is submitting request_
  bool read_done_ = false;      // the client half-closed (or the read failed)
  bool writing_ = false;        // a StartWrite is outstanding
  bool draining_ = false;
  bool write_failed_ = false;
  bool finished_ = false;
  int drain_subscription_ = 0;
  std::map<std::string, CameraOrder> cameras_;  // cameras with frames pending
  std::deque<Answered> outbox_;                 // released, not yet written
  v1::DetectRequest request_;                   // the read in progress
  v1::DetectResponse writing_response_;         // the write in progress
};

grpc::ServerBidiReactor<v1::DetectRequest, v1::DetectResponse>* DetectorService::DetectStream(
    grpc::CallbackServerContext* context) {
  return new StreamCall(this, context);
}

// ---------------------------------------------------------------------------
// Metadata.

bool DetectorService::RefusedWhileDraining(grpc::ServerUnaryReactor* reactor) const {
  if (!drain_.draining()) return false;
  reactor->Finish(ToGrpcStatus(DrainState::ShuttingDown()));
  return true;
}

grpc::ServerUnaryReactor* DetectorService::ListModels(grpc::CallbackServerContext* context,
                                                      const v1::ListModelsRequest* request,
                                                      v1::ListModelsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (RefusedWhileDraining(reactor)) return reactor;
  for (const ModelStatus& entry : registry_.List()) {
    v1::ModelSummary* summary = response->add_models();
    summary->set_name(entry.name);
    summary->set_state(entry.state == ModelState::kReady ? v1::READY : v1::FAILED);
    summary->set_state_message(entry.message);
    if (entry.served == nullptr) continue;
    const ModelSpec& spec = entry.served->spec;
    summary->set_version(entry.served->version);
    summary->set_input_width(spec.config.input().width());
    summary->set_input_height(spec.config.input().height());
    summary->set_num_classes(spec.num_classes);
  }
  response->set_default_model(registry_.default_model());
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* DetectorService::GetModel(grpc::CallbackServerContext* context,
                                                    const v1::GetModelRequest* request,
                                                    v1::GetModelResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (RefusedWhileDraining(reactor)) return reactor;
  const std::shared_ptr<ServedModel> model = registry_.Find(request->model());
  if (model == nullptr) {
    reactor->Finish(ToGrpcStatus(UnknownModel(registry_, request->model())));
    return reactor;
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
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

// ---------------------------------------------------------------------------
// Calls in progress (for the drain).

void DetectorService::CallStarted() {
  std::lock_guard<std::mutex> lock(calls_mu_);
  ++calls_;
}

void DetectorService::CallEnded() {
  {
    std::lock_guard<std::mutex> lock(calls_mu_);
    --calls_;
  }
  calls_cv_.notify_all();
}

int DetectorService::calls_in_progress() const {
  std::lock_guard<std::mutex> lock(calls_mu_);
  return calls_;
}

bool DetectorService::AwaitCallsDone(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(calls_mu_);
  return calls_cv_.wait_until(lock, deadline, [&] { return calls_ == 0; });
}

}  // namespace lowbit::server
