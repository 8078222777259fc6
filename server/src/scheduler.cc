#include "scheduler.h"

#include <algorithm>
#include <utility>

namespace lowbit::server {

const char* DropReasonName(DropReason reason) {
  switch (reason) {
    case DropReason::kQueueFull:
      return "queue_full";
    case DropReason::kShuttingDown:
      return "shutting_down";
  }
  return "unknown";
}

StatusOr<std::unique_ptr<Scheduler>> Scheduler::Create(std::string model_name,
                                                       const InferenceBackend& backend,
                                                       const SchedulerOptions& options,
                                                       Clock* clock, SchedulerListener* listener) {
  if (options.workers < 1 || options.max_batch < 1 || options.queue_capacity < 1 ||
      options.threads_per_worker < 1 || options.batch_timeout.count() < 0) {
    return InvalidArgument("scheduler options out of range for model " + model_name);
  }
  std::vector<std::unique_ptr<InferenceSession>> sessions;
  for (int i = 0; i < options.workers; ++i) {
    StatusOr<std::unique_ptr<InferenceSession>> session =
        backend.CreateSession(options.threads_per_worker);
    if (!session.ok()) {
      return session.status().WithContext("creating session " + std::to_string(i) + " of model " +
                                          model_name);
    }
    sessions.push_back(std::move(session).value());
  }
  return std::unique_ptr<Scheduler>(
      new Scheduler(std::move(model_name), options, clock, listener, std::move(sessions)));
}

Scheduler::Scheduler(std::string model_name, const SchedulerOptions& options, Clock* clock,
                     SchedulerListener* listener,
                     std::vector<std::unique_ptr<InferenceSession>> sessions)
    : model_name_(std::move(model_name)),
      options_(options),
      clock_(clock),
      listener_(listener),
      sessions_(std::move(sessions)),
      idle_workers_(static_cast<int>(sessions_.size())) {
  batcher_ = std::thread([this] { BatcherLoop(); });
  for (const auto& session : sessions_) {
    workers_.emplace_back([this, s = session.get()] { WorkerLoop(s); });
  }
}

Scheduler::~Scheduler() { Shutdown(); }

Status Scheduler::Submit(FrameRequest request) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) {
    if (listener_) listener_->OnDropped(DropReason::kShuttingDown);
    return Unavailable("the server is shutting down; model " + model_name_ +
                       " accepts no new frames");
  }
  if (static_cast<int>(queue_.size()) >= options_.queue_capacity) {
    if (listener_) listener_->OnDropped(DropReason::kQueueFull);
    return ResourceExhausted("model " + model_name_ + " has " +
                             std::to_string(options_.queue_capacity) +
                             " frames queued (--queue-capacity); retry later or send fewer "
                             "frames per second");
  }
  queue_.push_back(Pending{std::move(request), clock_->Now()});
  if (listener_) listener_->OnQueueDepth(static_cast<int>(queue_.size()));
  batcher_cv_.notify_one();
  return Status::Ok();
}

void Scheduler::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  batcher_cv_.notify_all();
  if (batcher_.joinable()) batcher_.join();
  for (std::thread& worker : workers_) {
    if (worker.joinable()) worker.join();
  }
}

int Scheduler::queue_depth() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(queue_.size());
}

void Scheduler::BatcherLoop() {
  const size_t max_batch = static_cast<size_t>(options_.max_batch);
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    if (queue_.empty()) {
      if (stopping_) break;
      batcher_cv_.wait(lock);
      continue;
    }
    if (idle_workers_ == 0) {
      batcher_cv_.wait(lock);
      continue;
    }
    // While stopping, queued frames run at once: nothing more will arrive.
    const Clock::TimePoint deadline = queue_.front().enqueued + options_.batch_timeout;
    if (queue_.size() < max_batch && !stopping_ && clock_->Now() < deadline) {
      clock_->WaitUntil(batcher_cv_, lock, deadline);
      continue;
    }
    const size_t size = std::min(queue_.size(), max_batch);
    Batch batch;
    batch.reserve(size);
    for (size_t i = 0; i < size; ++i) {
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    --idle_workers_;
    ready_.push_back(std::move(batch));
    if (listener_) {
      listener_->OnBatchFormed(static_cast<int>(size));
      listener_->OnQueueDepth(static_cast<int>(queue_.size()));
    }
    worker_cv_.notify_one();
  }
  batcher_done_ = true;
  worker_cv_.notify_all();
}

void Scheduler::WorkerLoop(InferenceSession* session) {
  while (true) {
    Batch batch;
    {
      std::unique_lock<std::mutex> lock(mu_);
      worker_cv_.wait(lock, [this] { return !ready_.empty() || batcher_done_; });
      if (ready_.empty()) return;  // batcher_done_: no batch will ever come
      batch = std::move(ready_.front());
      ready_.pop_front();
    }
    RunBatch(*session, batch);
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++idle_workers_;
    }
    batcher_cv_.notify_one();
  }
}

void Scheduler::RunBatch(InferenceSession& session, Batch& batch) {
  const int batch_size = static_cast<int>(batch.size());
  std::vector<const engine::Image*> images;
  images.reserve(batch.size());
  for (const Pending& pending : batch) images.push_back(&pending.request.image);

  const Clock::TimePoint started = clock_->Now();
  const Status status = session.Run(images);
  const Clock::TimePoint finished = clock_->Now();

  for (int i = 0; i < batch_size; ++i) {
    FrameRequest& request = batch[i].request;
    if (!status.ok()) {
      request.on_complete(
          status.WithContext("model " + model_name_ + ", batch of " + std::to_string(batch_size)));
      continue;
    }
    FrameResult result;
    result.batch_size = batch_size;
    result.timings.decode_us = request.decode_us;
    result.timings.queue_us = MicrosecondsBetween(batch[i].enqueued, started);
    result.timings.inference_us = MicrosecondsBetween(started, finished);
    const Clock::TimePoint postprocess_start = clock_->Now();
    result.detections =
        session.Postprocess(i, request.image.width, request.image.height, request.detect_options);
    result.timings.postprocess_us = MicrosecondsBetween(postprocess_start, clock_->Now());
    request.on_complete(std::move(result));
  }
}

}  // namespace lowbit::server
