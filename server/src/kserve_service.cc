#include "kserve_service.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <mutex>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "kserve_tensors.h"
#include "log_limit.h"

#ifndef LOWBIT_VERSION
#error "LOWBIT_VERSION must be set by server/CMakeLists.txt"
#endif

namespace lowbit::server {
namespace {

constexpr const char* kServerName = "lowbit";
constexpr const char* kPlatform = "lowbit";

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context,
                                    const grpc::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

// NOT_FOUND unless `version` is "" (any) or the one `served` is.
Status CheckVersion(const ServedModel& served, const std::string& version) {
  if (version.empty() || version == std::to_string(served.version)) return Status::Ok();
  return NotFound("model '" + served.spec.name + "' has no version '" + version + "'; version " +
                  std::to_string(served.version) +
                  " is served (versions count this server's loads of the model, from 1)");
}

// The served version of `name` (empty: the default model), checked against
// `version`. NOT_FOUND names what is served.
StatusOr<std::shared_ptr<ServedModel>> FindModel(const ModelRegistry& registry,
                                                 const std::string& name,
                                                 const std::string& version) {
  std::shared_ptr<ServedModel> served = registry.Find(name);
  if (served == nullptr) return UnknownModel(registry, name);
  LOWBIT_RETURN_IF_ERROR(CheckVersion(*served, version));
  return served;
}

// One ModelInferRequest in flight: its N frames' outcomes, gathered until the
// last is answered. Shared by the frames' completion callbacks.
class InferCall {
 public:
  InferCall(ParsedInferRequest parsed, Clock& clock, ServerMetrics& metrics,
            KServeService::InferDone done)
      : parsed_(std::move(parsed)),
        clock_(clock),
        metrics_(metrics),
        done_(std::move(done)),
        frames_(static_cast<size_t>(parsed_.frames)) {}

  const ParsedInferRequest& parsed() const { return parsed_; }
  // True once a frame failed: the others are dropped as cancelled, unrun.
  bool abandoned() const { return abandoned_.load(std::memory_order_relaxed); }

  // Before frame `index` is submitted.
  void Submitting(int64_t index) {
    std::lock_guard<std::mutex> lock(mu_);
    ++pending_;
  }
  // After its SubmitFrame returned: `served` is the version it went to (or
  // that refused it); `status` its refusal (then on_complete never runs).
  void Submitted(int64_t index, const Status& status, std::shared_ptr<ServedModel> served) {
    bool last = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      Frame& frame = frames_[index];
      frame.served = std::move(served);
      if (!status.ok()) {
        frame.status = status;
        frame.answered = true;
        FailedLocked(index);
        last = --pending_ == 0;
      }
    }
    if (last) Finish();
  }
  // A frame's outcome (from the scheduler).
  void Completed(int64_t index, FrameOutcome outcome) {
    const Clock::TimePoint now = clock_.Now();
    bool last = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      Frame& frame = frames_[index];
      frame.status = outcome.status;
      frame.dropped = outcome.dropped;
      frame.computed = outcome.status.ok() || outcome.computed;
      frame.result = std::move(outcome.result);
      frame.answered = true;
      frame.total_us =
          std::chrono::duration_cast<std::chrono::microseconds>(now - parsed_.received).count();
      if (!frame.status.ok()) FailedLocked(index);
      last = --pending_ == 0;
    }
    if (last) Finish();
  }
  // After the submit loop (frames after a refused one are never submitted).
  void SubmitLoopDone(const Status& refusal) {
    bool last = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (Frame& frame : frames_) {
        if (!frame.answered && frame.served == nullptr) {
          frame.status = refusal;  // never submitted
          frame.answered = true;
        }
      }
      last = --pending_ == 0;
    }
    if (last) Finish();
  }

 private:
  struct Frame {
    bool answered = false;
    Status status;
    DropReason dropped = DropReason::kNone;
    bool computed = false;  // answered or not, the engine ran it
    FrameResult result;
    int64_t total_us = 0;
    std::shared_ptr<ServedModel> served;
  };

  // The first frame to fail: its error answers the request, and the other
  // frames are dropped (as cancelled) rather than computed. mu_ held.
  void FailedLocked(int64_t index) {
    if (first_failure_ < 0) first_failure_ = index;
    abandoned_.store(true, std::memory_order_relaxed);
  }

  // Every frame is answered: counts them and answers the request.
  void Finish() {
    int64_t version = 0;
    ModelMetrics& model_metrics = metrics_.ForModel(parsed_.model_name);
    for (const Frame& frame : frames_) {
      model_metrics.RecordCode(frame.status.code());
      if (frame.served) version = frame.served->version;
      if (frame.status.ok()) model_metrics.RecordSuccess(frame.result.timings, frame.total_us);
      if (frame.computed && frame.served) model_metrics.RecordInference(frame.served->version);
    }
    // Not the frames cancelled because of it.
    Status error = first_failure_ >= 0 ? frames_[first_failure_].status : Status::Ok();
    inference::ModelInferResponse response;
    response.set_model_name(parsed_.model_name);
    response.set_model_version(std::to_string(version));
    response.set_id(parsed_.id);
    if (error.ok()) {
      std::vector<FrameResult> results;
      results.reserve(frames_.size());
      for (Frame& frame : frames_) results.push_back(std::move(frame.result));
      error = BuildInferResponse(parsed_, std::move(results), &response);
      if (!error.ok()) {
        static LogLimiter limiter;
        if (int64_t suppressed = 0; limiter.Allow(&suppressed)) {
          spdlog::error("kserve: model {}: {}{}", Excerpt(parsed_.model_name),
                        Excerpt(error.message(), kMaxErrorMessageBytes), SuppressedNote(suppressed));
        }
        response.clear_outputs();
        response.clear_raw_output_contents();
      }
    }
    // done_ may destroy the call's owner (a stream reactor's last answer).
    KServeService::InferDone done = std::move(done_);
    frames_.clear();
    done(error, std::move(response));
  }

  const ParsedInferRequest parsed_;
  Clock& clock_;
  ServerMetrics& metrics_;
  KServeService::InferDone done_;
  std::atomic<bool> abandoned_{false};

  std::mutex mu_;
  // Submitted frames not yet answered, plus one for the submit loop.
  int64_t pending_ = 1;
  int64_t first_failure_ = -1;
  std::vector<Frame> frames_;
};

// ModelStreamInfer: reads one request at a time and answers each in
// completion order. Reading pauses while the stream's frames queued, running
// or waiting to be written reach limits.max_pending_per_stream, or its
// answers waiting to be written limits.max_pending_bytes_per_stream (gRPC
// flow control then slows the client). Over limits.streams it is refused.
// At SIGTERM it stops reading, answers what it accepted and ends with
// UNAVAILABLE; a request read after that is answered with the shutdown
// error. Lives until OnDone.
class KServeStream final : public grpc::ServerBidiReactor<inference::ModelInferRequest,
                                                          inference::ModelStreamInferResponse> {
 public:
  KServeStream(KServeService& service, grpc::CallbackServerContext* context)
      : service_(service),
        context_(context),
        deadline_(DeadlineFromContext(*context, service.clock())),
        slots_(service.limits().streams),
        source_(context->peer()) {
    const int drain_id = service_.drain().Subscribe([this] { OnDrain(); });
    std::lock_guard<std::mutex> lock(mu_);
    drain_id_ = drain_id;
    if (drain_id == 0) draining_ = true;
    if (slots_) {
      const Status slot = slots_->Acquire();
      if (!slot.ok()) {
        slots_.reset();  // none taken
        finished_ = true;
        Finish(ToGrpcStatus(slot));
        return;
      }
    }
    if (!draining_) StartReadLocked();
    MaybeFinishLocked();
  }

  void OnReadDone(bool ok) override {
    int64_t frames = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      reading_ = false;
      if (!ok) {
        read_closed_ = true;  // the client half-closed, or the call ended
        MaybeFinishLocked();
        return;
      }
      frames = std::clamp<int64_t>(KServeService::FrameCount(request_), 1, kMaxFramesPerRequest);
      ++requests_in_flight_;
      frames_pending_ += frames;
      if (draining_ || cancelled_) {
        // Read after the drain began: not accepted.
        AnswerLocked(frames, DrainState::ShuttingDown(), EmptyResponse(request_));
        return;
      }
    }
    KServeService::CallControl control;
    control.received = service_.clock().Now();
    control.deadline = deadline_;
    control.cancelled = [context = context_] { return context->IsCancelled(); };
    control.source = source_;
    // Infer parses request_ before it returns, so the next read may reuse it.
    service_.Infer(request_, std::move(control),
                   [this, frames](const Status& status, inference::ModelInferResponse response) {
                     std::lock_guard<std::mutex> lock(mu_);
                     AnswerLocked(frames, status, std::move(response));
                   });
    std::lock_guard<std::mutex> lock(mu_);
    MaybeReadLocked();
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(mu_);
    writing_ = false;
    frames_pending_ -= writes_.front().frames;
    bytes_pending_ -= writes_.front().bytes;
    writes_.pop_front();
    if (!ok) {
      // The call is over: nothing more can be written.
      write_failed_ = true;
      for (const Pending& pending : writes_) {
        frames_pending_ -= pending.frames;
        bytes_pending_ -= pending.bytes;
      }
      writes_.clear();
    }
    StartWriteLocked();
    MaybeReadLocked();
    MaybeFinishLocked();
  }

  void OnCancel() override {
    std::lock_guard<std::mutex> lock(mu_);
    cancelled_ = true;
    MaybeFinishLocked();
  }

  void OnDone() override {
    service_.drain().Unsubscribe(drain_id_);
    if (slots_) slots_->Release();
    // Finish may have been called by a thread that still holds mu_.
    { std::lock_guard<std::mutex> lock(mu_); }
    delete this;
  }

 private:
  struct Pending {
    int64_t frames = 0;
    int64_t bytes = 0;  // response's serialized size
    inference::ModelStreamInferResponse response;
  };

  static inference::ModelInferResponse EmptyResponse(const inference::ModelInferRequest& request) {
    inference::ModelInferResponse response;
    response.set_model_name(request.model_name());
    response.set_model_version(request.model_version());
    response.set_id(request.id());
    return response;
  }

  void OnDrain() {
    std::lock_guard<std::mutex> lock(mu_);
    draining_ = true;
    MaybeFinishLocked();
  }

  void AnswerLocked(int64_t frames, const Status& status, inference::ModelInferResponse response) {
    --requests_in_flight_;
    if (write_failed_ || finished_) {
      frames_pending_ -= frames;
    } else {
      Pending pending;
      pending.frames = frames;
      if (!status.ok()) pending.response.set_error_message(Excerpt(status.message(), kMaxErrorMessageBytes));
      *pending.response.mutable_infer_response() = std::move(response);
      pending.bytes = static_cast<int64_t>(pending.response.ByteSizeLong());
      bytes_pending_ += pending.bytes;
      writes_.push_back(std::move(pending));
      StartWriteLocked();
    }
    MaybeReadLocked();
    MaybeFinishLocked();
  }

  void StartWriteLocked() {
    if (writing_ || writes_.empty() || write_failed_) return;
    writing_ = true;
    // std::deque keeps the element in place while later ones are appended.
    StartWrite(&writes_.front().response);
  }

  void StartReadLocked() {
    reading_ = true;
    StartRead(&request_);
  }

  void MaybeReadLocked() {
    if (reading_ || read_closed_ || draining_ || cancelled_ || write_failed_ || finished_) return;
    if (frames_pending_ >= service_.limits().max_pending_per_stream) return;
    if (bytes_pending_ >= service_.limits().max_pending_bytes_per_stream) return;
    StartReadLocked();
  }

  void MaybeFinishLocked() {
    if (finished_ || requests_in_flight_ > 0 || writing_ || !writes_.empty()) return;
    if (!(read_closed_ || draining_ || cancelled_ || write_failed_)) return;
    finished_ = true;
    if (cancelled_) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the client cancelled the stream"));
    } else if (draining_) {
      Finish(ToGrpcStatus(DrainState::ShuttingDown()));
    } else {
      Finish(grpc::Status::OK);
    }
  }

  KServeService& service_;
  grpc::CallbackServerContext* const context_;
  const Clock::TimePoint deadline_;
  std::shared_ptr<StreamSlots> slots_;  // the slot this stream holds (null: none)
  const std::string source_;            // the client's connection (gRPC peer)

  std::mutex mu_;
  int drain_id_ = 0;
  inference::ModelInferRequest request_;  // the read in progress
  bool reading_ = false;
  bool read_closed_ = false;
  bool draining_ = false;
  bool cancelled_ = false;
  bool writing_ = false;
  bool write_failed_ = false;
  bool finished_ = false;
  int64_t requests_in_flight_ = 0;  // read, not yet answered
  int64_t frames_pending_ = 0;      // read, not yet written
  int64_t bytes_pending_ = 0;       // of the answers in writes_
  std::deque<Pending> writes_;      // the front one is being written
};

}  // namespace

KServeService::KServeService(ModelRegistry& registry, const FrontendLimits& limits,
                             ServerMetrics& metrics, Clock& clock, const DrainState& drain)
    : registry_(registry), limits_(limits), metrics_(metrics), clock_(clock), drain_(drain) {}

grpc::ServerUnaryReactor* KServeService::ServerLive(grpc::CallbackServerContext* context,
                                                    const inference::ServerLiveRequest*,
                                                    inference::ServerLiveResponse* response) {
  response->set_live(true);
  return FinishNow(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* KServeService::ServerReady(grpc::CallbackServerContext* context,
                                                     const inference::ServerReadyRequest*,
                                                     inference::ServerReadyResponse* response) {
  bool any_ready = false;
  for (const ModelStatus& status : registry_.List()) {
    any_ready = any_ready || status.state == ModelState::kReady;
  }
  response->set_ready(any_ready && !drain_.draining());
  return FinishNow(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* KServeService::ModelReady(grpc::CallbackServerContext* context,
                                                    const inference::ModelReadyRequest* request,
                                                    inference::ModelReadyResponse* response) {
  // Unknown, failed and other-version models are simply not ready.
  response->set_ready(!drain_.draining() &&
                      FindModel(registry_, request->name(), request->version()).ok());
  return FinishNow(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* KServeService::ServerMetadata(
    grpc::CallbackServerContext* context, const inference::ServerMetadataRequest*,
    inference::ServerMetadataResponse* response) {
  response->set_name(kServerName);
  response->set_version(LOWBIT_VERSION);
  // Triton's extension names, for what lowbitd serves: ModelConfig, and
  // request parameters (score_threshold, iou_threshold, camera_id, timeout).
  response->add_extensions("model_configuration");
  response->add_extensions("parameters");
  response->add_extensions("classification");
  return FinishNow(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* KServeService::ModelMetadata(
    grpc::CallbackServerContext* context, const inference::ModelMetadataRequest* request,
    inference::ModelMetadataResponse* response) {
  StatusOr<std::shared_ptr<ServedModel>> served =
      FindModel(registry_, request->name(), request->version());
  if (!served.ok()) return FinishNow(context, ToGrpcStatus(served.status()));
  const ServedModel& model = **served;
  response->set_name(model.spec.name);
  response->add_versions(std::to_string(model.version));
  response->set_platform(kPlatform);
  // The batch dimension first, -1: a request carries any number of frames.
  auto describe = [](const TensorDescription& tensor,
                     inference::ModelMetadataResponse::TensorMetadata* out) {
    out->set_name(tensor.name);
    out->set_datatype(tensor.datatype);
    out->add_shape(-1);
    for (int64_t dim : tensor.dims) out->add_shape(dim);
  };
  for (const TensorDescription& tensor : DescribeInputs(model.spec)) {
    describe(tensor, response->add_inputs());
  }
  for (const TensorDescription& tensor : DescribeOutputs(model.spec)) {
    describe(tensor, response->add_outputs());
  }
  return FinishNow(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* KServeService::ModelConfig(grpc::CallbackServerContext* context,
                                                     const inference::ModelConfigRequest* request,
                                                     inference::ModelConfigResponse* response) {
  StatusOr<std::shared_ptr<ServedModel>> served =
      FindModel(registry_, request->name(), request->version());
  if (!served.ok()) return FinishNow(context, ToGrpcStatus(served.status()));
  const ServedModel& model = **served;
  inference::ModelConfig* config = response->mutable_config();
  config->set_name(model.spec.name);
  config->set_platform(kPlatform);
  config->set_backend(kPlatform);
  config->set_max_batch_size(static_cast<int32_t>(kMaxFramesPerRequest));
  for (const TensorDescription& tensor : DescribeInputs(model.spec)) {
    inference::ModelInput* input = config->add_input();
    input->set_name(tensor.name);
    input->set_data_type(ConfigDataType(tensor.datatype));
    input->set_format(tensor.format);
    for (int64_t dim : tensor.dims) input->add_dims(dim);
  }
  for (const TensorDescription& tensor : DescribeOutputs(model.spec)) {
    inference::ModelOutput* output = config->add_output();
    output->set_name(tensor.name);
    output->set_data_type(ConfigDataType(tensor.datatype));
    for (int64_t dim : tensor.dims) output->add_dims(dim);
  }
  return FinishNow(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* KServeService::RepositoryIndex(
    grpc::CallbackServerContext* context, const inference::RepositoryIndexRequest* request,
    inference::RepositoryIndexResponse* response) {
  for (const ModelStatus& status : registry_.List()) {
    const bool ready = status.state == ModelState::kReady && status.served != nullptr;
    if (request->ready() && !ready) continue;
    inference::RepositoryIndexResponse::ModelIndex* index = response->add_models();
    index->set_name(status.name);
    if (status.served) index->set_version(std::to_string(status.served->version));
    index->set_state(ready ? "READY" : "UNAVAILABLE");
    index->set_reason(status.message);
  }
  return FinishNow(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* KServeService::ModelInfer(grpc::CallbackServerContext* context,
                                                    const inference::ModelInferRequest* request,
                                                    inference::ModelInferResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  CallControl control;
  control.received = clock_.Now();
  control.deadline = DeadlineFromContext(*context, clock_);
  control.cancelled = [context] { return context->IsCancelled(); };
  control.source = context->peer();
  Infer(*request, std::move(control),
        [reactor, response](const Status& status, inference::ModelInferResponse answer) {
          *response = std::move(answer);
          reactor->Finish(ToGrpcStatus(status));
        });
  return reactor;
}

grpc::ServerBidiReactor<inference::ModelInferRequest, inference::ModelStreamInferResponse>*
KServeService::ModelStreamInfer(grpc::CallbackServerContext* context) {
  return new KServeStream(*this, context);
}

void KServeService::Infer(const inference::ModelInferRequest& request, CallControl control,
                          InferDone done) {
  auto reject = [&](const Status& status, const std::string& model_name) {
    // Counted as one frame: the request was refused before it had frames.
    metrics_.ForModel(model_name).RecordCode(status.code());
    inference::ModelInferResponse response;
    response.set_model_name(request.model_name());
    response.set_model_version(request.model_version());
    response.set_id(request.id());
    done(status, std::move(response));
  };
  for (const auto& [field, value] :
       {std::pair{"model_name", &request.model_name()}, std::pair{"id", &request.id()}}) {
    if (Status bounded = CheckRequestString(field, *value); !bounded.ok()) {
      metrics_.ForModel("").RecordCode(bounded.code());
      done(bounded, inference::ModelInferResponse());  // echoes neither
      return;
    }
  }
  if (drain_.draining()) return reject(DrainState::ShuttingDown(), request.model_name());
  const std::shared_ptr<ServedModel> served = registry_.Find(request.model_name());
  // Frames naming no loaded model are counted with model="".
  if (served == nullptr) return reject(UnknownModel(registry_, request.model_name()), "");
  if (Status version = CheckVersion(*served, request.model_version()); !version.ok()) {
    return reject(version, served->spec.name);
  }
  StatusOr<ParsedInferRequest> parsed = ParseInferRequest(request, served->spec, limits_);
  if (!parsed.ok()) return reject(parsed.status(), served->spec.name);
  parsed->received = control.received;
  if (parsed->timeout_us > 0) {
    control.deadline = std::min(control.deadline,
                                control.received + std::chrono::microseconds(parsed->timeout_us));
  }

  std::vector<FramePayload> payloads = std::move(parsed->payloads);
  parsed->payloads.clear();
  auto call =
      std::make_shared<InferCall>(std::move(parsed).value(), clock_, metrics_, std::move(done));
  const ParsedInferRequest& info = call->parsed();
  Status refusal;
  for (size_t index = 0; index < payloads.size(); ++index) {
    FrameRequest frame;
    frame.payload = std::move(payloads[index]);
    frame.detect_options = info.detect_options;
    frame.want_detections = info.form == InferForm::kImage;
    frame.want_raw_outputs = info.form == InferForm::kTensor;
    frame.camera_id = info.camera_id;
    frame.source = control.source;
    frame.received = info.received;
    frame.deadline = control.deadline;
    frame.deadline_reason = DropReason::kDeadline;
    frame.cancelled = [call, cancelled = control.cancelled] {
      return call->abandoned() || (cancelled && cancelled());
    };
    frame.on_complete = [call, index](FrameOutcome outcome) {
      call->Completed(static_cast<int64_t>(index), std::move(outcome));
    };
    std::shared_ptr<ServedModel> submitted_to;
    call->Submitting(static_cast<int64_t>(index));
    refusal = SubmitFrame(registry_, info.model_name, std::move(frame), &submitted_to);
    call->Submitted(static_cast<int64_t>(index), refusal, std::move(submitted_to));
    if (!refusal.ok()) break;
  }
  call->SubmitLoopDone(refusal);
}

int64_t KServeService::FrameCount(const inference::ModelInferRequest& request) {
  if (request.inputs_size() == 0 || request.inputs(0).shape_size() == 0) return 1;
  return std::max<int64_t>(1, request.inputs(0).shape(0));
}

}  // namespace lowbit::server
