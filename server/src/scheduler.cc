#include "scheduler.h"

#include <algorithm>
#include <list>
#include <map>
#include <unordered_map>
#include <utility>

#include "batch_policy.h"

namespace lowbit::server {

const char* DropReasonName(DropReason reason) {
  switch (reason) {
    case DropReason::kNone:
      return "none";
    case DropReason::kSuperseded:
      return "superseded";
    case DropReason::kStale:
      return "stale";
    case DropReason::kQueueFull:
      return "queue_full";
    case DropReason::kDeadline:
      return "deadline";
    case DropReason::kCancelled:
      return "cancelled";
    case DropReason::kShuttingDown:
      return "shutting_down";
  }
  return "unknown";
}

int64_t FramePayload::queued_bytes() const {
  switch (kind) {
    case Kind::kEncoded:
      return static_cast<int64_t>(encoded.size());
    case Kind::kImage:
      return static_cast<int64_t>(image.bgr.size());
    case Kind::kTensor:
      return static_cast<int64_t>(tensor.size() * sizeof(float));
  }
  return 0;
}

int64_t FramePayload::decoded_bytes() const {
  if (kind != Kind::kEncoded) return 0;
  return 3 * static_cast<int64_t>(width) * static_cast<int64_t>(height);
}

FrameDecoder DefaultFrameDecoder(const engine::DecodeLimits& limits) {
  return [limits](const FramePayload& payload, engine::Image* image) {
    return engine::DecodeImageInto(reinterpret_cast<const uint8_t*>(payload.encoded.data()),
                                   payload.encoded.size(), image, limits);
  };
}

// ---------------------------------------------------------------------------
// DecodeBudget

DecodeBudget::DecodeBudget(int64_t capacity_bytes) : capacity_(capacity_bytes) {}

bool DecodeBudget::TryAcquire(int64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  if (bytes < 0 || in_use_ + bytes > capacity_) return false;
  in_use_ += bytes;
  return true;
}

void DecodeBudget::Release(int64_t bytes) {
  std::vector<std::function<void()>> wakes;
  {
    std::lock_guard<std::mutex> lock(mu_);
    in_use_ = std::max<int64_t>(in_use_ - bytes, 0);
    wakes.reserve(subscribers_.size());
    for (const auto& [id, wake] : subscribers_) wakes.push_back(wake);
  }
  for (const std::function<void()>& wake : wakes) wake();
}

int64_t DecodeBudget::in_use() const {
  std::lock_guard<std::mutex> lock(mu_);
  return in_use_;
}

int DecodeBudget::Subscribe(std::function<void()> wake) {
  std::lock_guard<std::mutex> lock(mu_);
  const int id = next_id_++;
  subscribers_.emplace_back(id, std::move(wake));
  return id;
}

void DecodeBudget::Unsubscribe(int id) {
  std::lock_guard<std::mutex> lock(mu_);
  std::erase_if(subscribers_, [id](const auto& entry) { return entry.first == id; });
}

// ---------------------------------------------------------------------------
// Scheduler::Impl
//
// Locks: mu_ guards the slots, the ready batches, the estimator and the
// counters; delivery_mu_ guards per-camera delivery order. mu_ may be held
// while taking delivery_mu_ or the budget's lock, never the reverse;
// callbacks and DecodeBudget::Release run with neither held.

namespace {

constexpr std::chrono::seconds kActiveCameraWindow{10};

// A worker keeps a decode buffer of up to this many bytes for its next
// frame (a 1920x1080 BGR8 frame is 6.2 MB): a camera's frames, all of one
// size, then decode without allocating. Fresh buffers cost a mapping and
// page faults each, since lowbitd maps every allocation over 128 KiB.
// Kept buffers are idle memory outside the decode budget, at most
// workers * max_batch * this; a larger image's buffer is freed at once.
constexpr size_t kRetainedDecodeBytes = size_t{8} << 20;

// Done with a decoded frame: keeps its buffer for the next, or frees it.
void ReleaseDecodeBuffer(engine::Image& image) {
  if (image.bgr.capacity() > kRetainedDecodeBytes) {
    image = engine::Image();
  } else {
    image.width = image.height = 0;
  }
}

// One accepted frame.
struct Pending {
  FrameRequest request;
  Clock::TimePoint submitted;  // Submit: queue_us counts from here
  Clock::TimePoint arrival;    // request.received, or `submitted` if unset
  int64_t queued_bytes = 0;
  int64_t reserved_bytes = 0;  // held in the decode budget while in a batch
  int64_t sequence = 0;        // per camera, from 0; delivery order
};

struct Slot {
  Pending frame;
  Clock::TimePoint created;  // first frame of the slot: batch_timeout counts from here
};

// `predicted`: the deadline has not passed yet, but the frame could not be
// answered by then even in a batch of its own.
Status DropStatus(DropReason reason, const std::string& model, const std::string& camera,
                  bool predicted = false) {
  if (predicted && reason == DropReason::kStale) {
    return Status(StatusCode::kDeadlineExceeded,
                  "frame older than its max age (max_frame_age_ms) by the time model " + model +
                      " could answer it");
  }
  if (predicted && reason == DropReason::kDeadline) {
    return Status(StatusCode::kDeadlineExceeded, "the call's deadline would pass before model " +
                                                     model + " could answer the frame");
  }
  switch (reason) {
    case DropReason::kSuperseded:
      return Status(StatusCode::kAborted, "a newer frame of camera '" + camera +
                                              "' replaced this one while it waited " +
                                              "for model " + model + " (latest frame wins)");
    case DropReason::kStale:
      return Status(StatusCode::kDeadlineExceeded,
                    "frame older than its max age (max_frame_age_ms) before model " + model +
                        " could run it");
    case DropReason::kDeadline:
      return Status(StatusCode::kDeadlineExceeded,
                    "the call's deadline passed while the frame waited for model " + model);
    case DropReason::kCancelled:
      return Status(StatusCode::kCancelled,
                    "the call was cancelled while the frame waited for model " + model);
    case DropReason::kShuttingDown:
    case DropReason::kQueueFull:
    case DropReason::kNone:
      break;
  }
  return Unavailable("model " + model + " is shutting down");
}

// A frame computed, but only after its deadline (`late_us` past it).
Status LateStatus(DropReason reason, const std::string& model, int64_t late_us) {
  const std::string late = std::to_string(late_us / 1000) + " ms past it";
  if (reason == DropReason::kStale) {
    return Status(StatusCode::kDeadlineExceeded,
                  "frame older than its max age (max_frame_age_ms) when model " + model +
                      " had its result, " + late);
  }
  return Status(StatusCode::kDeadlineExceeded,
                "the call's deadline passed while model " + model + " computed the frame, " + late);
}

}  // namespace

class Scheduler::Impl {
 public:
  Impl(const std::string& model, const SchedulerOptions& options, Clock* clock,
       SchedulerListener* listener, DecodeBudget* budget, FrameDecoder decoder,
       int64_t input_floats, std::vector<std::unique_ptr<InferenceSession>> sessions,
       ServiceTimeEstimator estimator)
      : model_(model),
        options_(options),
        clock_(clock),
        listener_(listener),
        budget_(budget),
        decoder_(std::move(decoder)),
        input_floats_(input_floats),
        sessions_(std::move(sessions)),
        estimator_(std::move(estimator)),
        idle_workers_(static_cast<int>(sessions_.size())) {
    if (listener_) {
      for (int b = 1; b <= options_.max_batch; ++b) {
        listener_->OnServiceTime(b, estimator_.Estimate(b));
      }
    }
    if (budget_) {
      wake_ = std::make_shared<BudgetWake>();
      wake_->impl = this;
      std::shared_ptr<BudgetWake> wake = wake_;
      budget_subscription_ = budget_->Subscribe([wake] { wake->Wake(); });
    }
    batcher_ = std::thread([this] { BatcherLoop(); });
    for (const auto& session : sessions_) {
      workers_.emplace_back([this, s = session.get()] { WorkerLoop(*s); });
    }
  }

  ~Impl() {
    Shutdown();
    if (budget_) {
      budget_->Unsubscribe(budget_subscription_);
      // Waits for a wake-up already running on another thread.
      std::lock_guard<std::mutex> lock(wake_->mu);
      wake_->impl = nullptr;
    }
  }

  Status Submit(FrameRequest&& request);
  void Shutdown();
  int queue_depth() const {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<int>(slots_.size());
  }
  int64_t service_time_us(int batch_size) const {
    std::lock_guard<std::mutex> lock(mu_);
    return estimator_.Estimate(batch_size);
  }

 private:
  // A frame's outcome waiting to be delivered (outside every lock).
  struct Completion {
    Pending frame;
    FrameOutcome outcome;
  };
  // Delivery order of one camera's frames.
  struct CameraOrder {
    int64_t next_to_assign = 0;
    int64_t next_to_deliver = 0;
    bool delivering = false;
    std::map<int64_t, Completion> ready;
  };
  // The budget's handle on this scheduler; outlives it while a Release on
  // another thread is calling Wake().
  struct BudgetWake {
    std::mutex mu;
    Impl* impl = nullptr;
    void Wake() {
      std::lock_guard<std::mutex> lock(mu);
      if (impl) impl->OnBudgetReleased();
    }
  };

  void OnBudgetReleased() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++budget_releases_;
    }
    batcher_cv_.notify_all();
  }

  void BatcherLoop();
  void WorkerLoop(InferenceSession& session);
  // `decoded`: the worker's decode buffers, one per frame of a batch, kept
  // from batch to batch (see kRetainedDecodeBytes).
  void RunBatch(InferenceSession& session, std::vector<Pending>& batch,
                std::vector<engine::Image>& decoded);

  // With mu_ held: moves expired and cancelled frames to `dropped`.
  void SweepLocked(Clock::TimePoint now, std::vector<Completion>* dropped);
  // With mu_ held: removes a waiting slot and returns its frame.
  Pending TakeSlotLocked(std::list<Slot>::iterator slot);
  // With mu_ held: true if a new frame of `source` carrying `bytes` fits the
  // queue, after moving to `evicted` (answered QUEUE_FULL) the newest
  // waiting frames of sources with more frames waiting than `source` would
  // have; false (nothing evicted) if no such eviction makes room.
  bool MakeRoomLocked(const std::string& source, int64_t bytes, std::vector<Completion>* evicted);
  void ForgetSourceLocked(const std::string& source);
  // With mu_ held, slots_ not empty: the slot a batch takes next: the oldest
  // of the source served longest ago (round robin across the clients, so a
  // flooding one cannot make the others wait behind its queue).
  std::list<Slot>::iterator NextSlotLocked();
  void NoteCameraLocked(Clock::TimePoint now, const std::string* camera);
  // With mu_ held: the batcher sleeps until `deadline` or a notification.
  void WaitLocked(std::unique_lock<std::mutex>& lock, Clock::TimePoint deadline);

  // Without locks: calls on_complete, a camera's frames in submission order.
  void Deliver(std::vector<Completion>& completions);
  void Deliver(Completion completion);

  const std::string model_;
  const SchedulerOptions options_;
  Clock* const clock_;
  SchedulerListener* const listener_;
  DecodeBudget* const budget_;
  const FrameDecoder decoder_;
  const int64_t input_floats_;
  std::vector<std::unique_ptr<InferenceSession>> sessions_;

  mutable std::mutex mu_;
  std::condition_variable batcher_cv_;
  std::condition_variable worker_cv_;
  std::list<Slot> slots_;  // FIFO by slot creation
  std::unordered_map<std::string, std::list<Slot>::iterator> camera_slots_;
  std::unordered_map<std::string, int> waiting_by_source_;  // slots per FrameRequest::source
  // Per source with frames waiting: serve_count_ when a batch last took one.
  std::unordered_map<std::string, uint64_t> last_served_;
  uint64_t serve_count_ = 0;
  int64_t queued_bytes_ = 0;
  std::deque<std::vector<Pending>> ready_;  // formed, waiting for a worker
  ServiceTimeEstimator estimator_;
  int idle_workers_;
  int target_batch_ = 0;
  int64_t budget_releases_ = 0;
  bool stopping_ = false;
  bool batcher_done_ = false;
  std::unordered_map<std::string, Clock::TimePoint> camera_last_seen_;
  int active_cameras_ = 0;
  Clock::TimePoint next_camera_expiry_ = Clock::TimePoint::max();

  std::mutex delivery_mu_;
  std::unordered_map<std::string, CameraOrder> camera_order_;

  std::shared_ptr<BudgetWake> wake_;
  int budget_subscription_ = -1;
  std::thread batcher_;
  std::vector<std::thread> workers_;
};

Status Scheduler::Impl::Submit(FrameRequest&& request) {
  const Clock::TimePoint now = clock_->Now();
  const int64_t bytes = request.payload.queued_bytes();
  std::vector<Completion> superseded;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      if (listener_) listener_->OnDropped(DropReason::kShuttingDown);
      return Unavailable("the server is shutting down; model " + model_ + " accepts no new frames");
    }
    if (budget_ && request.payload.decoded_bytes() > budget_->capacity()) {
      return InvalidArgument("a " + std::to_string(request.payload.width) + "x" +
                             std::to_string(request.payload.height) + " image needs " +
                             std::to_string(request.payload.decoded_bytes()) +
                             " decoded bytes, more than the whole decode budget (" +
                             std::to_string(budget_->capacity()) + " bytes)");
    }
    if (request.payload.kind == FramePayload::Kind::kTensor &&
        static_cast<int64_t>(request.payload.tensor.size()) != input_floats_) {
      return InvalidArgument("model " + model_ + " takes " + std::to_string(input_floats_) +
                             " floats per pre-processed frame, not " +
                             std::to_string(request.payload.tensor.size()));
    }
    if (request.payload.kind == FramePayload::Kind::kImage &&
        (request.payload.image.width < 1 || request.payload.image.height < 1 ||
         static_cast<int64_t>(request.payload.image.bgr.size()) !=
             3LL * request.payload.image.width * request.payload.image.height)) {
      return InvalidArgument(
          "a raw frame needs width and height >= 1 and 3 * width * height "
          "bytes of BGR pixels");
    }
    if (request.deadline <= now) {
      if (listener_) listener_->OnDropped(request.deadline_reason);
      return Status(StatusCode::kDeadlineExceeded,
                    request.deadline_reason == DropReason::kStale
                        ? "frame older than its max age (max_frame_age_ms) on arrival"
                        : "the call's deadline passed before the frame reached model " + model_);
    }
    auto existing =
        request.camera_id.empty() ? camera_slots_.end() : camera_slots_.find(request.camera_id);
    const bool replaces = existing != camera_slots_.end();
    // A frame replacing its camera's waiting one takes no new slot.
    const int64_t replaced_bytes = replaces ? existing->second->frame.queued_bytes : 0;
    const bool fits = replaces
                          ? queued_bytes_ + bytes - replaced_bytes <= options_.queue_bytes_capacity
                          : MakeRoomLocked(request.source, bytes, &superseded);
    if (!fits) {
      if (listener_) listener_->OnDropped(DropReason::kQueueFull);
      if (!replaces && static_cast<int>(slots_.size()) >= options_.queue_capacity) {
        return ResourceExhausted("model " + model_ + " has " +
                                 std::to_string(options_.queue_capacity) +
                                 " frames waiting (--queue-capacity); retry later or send fewer "
                                 "frames per second");
      }
      return ResourceExhausted("model " + model_ + " has " + std::to_string(queued_bytes_) +
                               " payload bytes waiting, at most " +
                               std::to_string(options_.queue_bytes_capacity) +
                               " (--queue-memory-mb); retry later or send fewer frames per second");
    }
    const int64_t bytes_after = queued_bytes_ + bytes - replaced_bytes;

    Pending frame;
    frame.submitted = now;
    frame.arrival = request.received == Clock::TimePoint{} ? now : request.received;
    frame.queued_bytes = bytes;
    frame.request = std::move(request);
    const std::string camera = frame.request.camera_id;  // a copy: `frame` moves below
    if (!camera.empty()) {
      std::lock_guard<std::mutex> order_lock(delivery_mu_);
      frame.sequence = camera_order_[camera].next_to_assign++;
    }
    queued_bytes_ = bytes_after;
    if (replaces) {
      Pending& waiting = existing->second->frame;
      if (listener_) listener_->OnDropped(DropReason::kSuperseded);
      FrameOutcome outcome;
      outcome.status = DropStatus(DropReason::kSuperseded, model_, camera);
      outcome.dropped = DropReason::kSuperseded;
      if (waiting.request.source != frame.request.source) {
        ForgetSourceLocked(waiting.request.source);
        ++waiting_by_source_[frame.request.source];
      }
      superseded.push_back({std::move(waiting), std::move(outcome)});
      waiting = std::move(frame);
    } else {
      ++waiting_by_source_[frame.request.source];
      slots_.push_back(Slot{std::move(frame), now});
      auto slot = std::prev(slots_.end());
      if (!slot->frame.request.camera_id.empty()) {
        camera_slots_.emplace(slot->frame.request.camera_id, slot);
      }
    }
    NoteCameraLocked(now, camera.empty() ? nullptr : &camera);
    if (listener_) listener_->OnQueueDepth(static_cast<int>(slots_.size()));
  }
  batcher_cv_.notify_all();
  Deliver(superseded);
  return Status::Ok();
}

void Scheduler::Impl::Shutdown() {
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

void Scheduler::Impl::ForgetSourceLocked(const std::string& source) {
  auto it = waiting_by_source_.find(source);
  if (it != waiting_by_source_.end() && --it->second == 0) {
    waiting_by_source_.erase(it);
    last_served_.erase(source);  // nothing waits: its next frame goes first
  }
}

std::list<Slot>::iterator Scheduler::Impl::NextSlotLocked() {
  if (waiting_by_source_.size() <= 1) return slots_.begin();  // one source: FIFO
  auto best = slots_.begin();
  uint64_t best_served = UINT64_MAX;
  for (auto slot = slots_.begin(); slot != slots_.end(); ++slot) {
    const auto served = last_served_.find(slot->frame.request.source);
    const uint64_t when = served == last_served_.end() ? 0 : served->second;
    if (when < best_served) {
      best_served = when;
      best = slot;
      if (when == 0) break;  // never served (or not since it last had nothing waiting)
    }
  }
  return best;
}

bool Scheduler::Impl::MakeRoomLocked(const std::string& source, int64_t bytes,
                                     std::vector<Completion>* evicted) {
  const auto fits = [&](size_t frames, int64_t queued) {
    return static_cast<int>(frames) < options_.queue_capacity &&
           queued + bytes <= options_.queue_bytes_capacity;
  };
  if (fits(slots_.size(), queued_bytes_)) return true;
  // Plan the evictions first and make them only if they make room. A source
  // gives up its newest frame while it has more waiting than `source` will
  // have with this one, so the shares level out and never swap back.
  auto own = waiting_by_source_.find(source);
  const int mine = (own == waiting_by_source_.end() ? 0 : own->second) + 1;
  std::unordered_map<std::string, int> waiting = waiting_by_source_;
  std::vector<std::list<Slot>::iterator> victims;
  size_t frames = slots_.size();
  int64_t queued = queued_bytes_;
  while (!fits(frames, queued)) {
    const std::string* heaviest = nullptr;
    int most = mine;
    for (const auto& [name, count] : waiting) {
      if (name != source && count > most) {
        most = count;
        heaviest = &name;
      }
    }
    if (heaviest == nullptr) return false;
    auto victim = slots_.end();
    for (auto slot = slots_.rbegin(); slot != slots_.rend(); ++slot) {
      const auto it = std::prev(slot.base());
      if (it->frame.request.source == *heaviest &&
          std::find(victims.begin(), victims.end(), it) == victims.end()) {
        victim = it;
        break;
      }
    }
    if (victim == slots_.end()) return false;  // not reached: the count says it waits
    victims.push_back(victim);
    --waiting[*heaviest];
    --frames;
    queued -= victim->frame.queued_bytes;
  }
  for (auto victim : victims) {
    if (listener_) listener_->OnDropped(DropReason::kQueueFull);
    FrameOutcome outcome;
    outcome.status = ResourceExhausted(
        "model " + model_ + "'s queue was full (--queue-capacity, --queue-memory-mb) and a " +
        "client with fewer frames waiting took this frame's place; send fewer frames per second");
    outcome.dropped = DropReason::kQueueFull;
    evicted->push_back({TakeSlotLocked(victim), std::move(outcome)});
  }
  return true;
}

Pending Scheduler::Impl::TakeSlotLocked(std::list<Slot>::iterator slot) {
  ForgetSourceLocked(slot->frame.request.source);
  queued_bytes_ -= slot->frame.queued_bytes;
  const std::string& camera = slot->frame.request.camera_id;
  if (!camera.empty()) camera_slots_.erase(camera);
  Pending frame = std::move(slot->frame);
  slots_.erase(slot);
  return frame;
}

void Scheduler::Impl::SweepLocked(Clock::TimePoint now, std::vector<Completion>* dropped) {
  // A frame whose deadline comes before a batch of one usually ends is
  // dropped now: computing it would only answer it late.
  const std::chrono::microseconds alone(estimator_.Typical(1));
  for (auto slot = slots_.begin(); slot != slots_.end();) {
    FrameRequest& request = slot->frame.request;
    DropReason reason = DropReason::kNone;
    bool predicted = false;
    if (request.deadline != Clock::TimePoint::max() && request.deadline - now < alone) {
      reason = request.deadline_reason == DropReason::kStale ? DropReason::kStale
                                                             : DropReason::kDeadline;
      predicted = request.deadline > now;
    } else if (request.deadline <= now) {
      reason = request.deadline_reason == DropReason::kStale ? DropReason::kStale
                                                             : DropReason::kDeadline;
    } else if (request.cancelled && request.cancelled()) {
      reason = DropReason::kCancelled;
    }
    if (reason == DropReason::kNone) {
      ++slot;
      continue;
    }
    if (listener_) listener_->OnDropped(reason);
    FrameOutcome outcome;
    outcome.status = DropStatus(reason, model_, request.camera_id, predicted);
    outcome.dropped = reason;
    auto next = std::next(slot);
    dropped->push_back({TakeSlotLocked(slot), std::move(outcome)});
    slot = next;
  }
}

void Scheduler::Impl::NoteCameraLocked(Clock::TimePoint now, const std::string* camera) {
  if (camera) camera_last_seen_[*camera] = now;
  if (camera || now >= next_camera_expiry_) {
    next_camera_expiry_ = Clock::TimePoint::max();
    for (auto it = camera_last_seen_.begin(); it != camera_last_seen_.end();) {
      const Clock::TimePoint expiry = it->second + kActiveCameraWindow;
      if (expiry <= now) {
        it = camera_last_seen_.erase(it);
      } else {
        next_camera_expiry_ = std::min(next_camera_expiry_, expiry);
        ++it;
      }
    }
  }
  const int active = static_cast<int>(camera_last_seen_.size());
  if (active != active_cameras_) {
    active_cameras_ = active;
    if (listener_) listener_->OnActiveCameras(active);
  }
}

void Scheduler::Impl::WaitLocked(std::unique_lock<std::mutex>& lock, Clock::TimePoint deadline) {
  if (deadline == Clock::TimePoint::max()) {
    batcher_cv_.wait(lock);
  } else {
    clock_->WaitUntil(batcher_cv_, lock, deadline);
  }
}

void Scheduler::Impl::BatcherLoop() {
  const int max_batch = options_.max_batch;
  const bool objective = options_.latency_objective.count() > 0;
  std::vector<Completion> dropped;
  std::vector<int64_t> ages;
  std::vector<int64_t> remaining;
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    const Clock::TimePoint now = clock_->Now();
    SweepLocked(now, &dropped);
    if (now >= next_camera_expiry_) NoteCameraLocked(now, nullptr);
    if (!dropped.empty()) {
      if (listener_) listener_->OnQueueDepth(static_cast<int>(slots_.size()));
      lock.unlock();
      Deliver(dropped);
      dropped.clear();
      lock.lock();
      continue;
    }
    // The next frame deadline (less a batch of one) or camera expiry wakes
    // the batcher, so frames that can no longer be answered in time are
    // answered at once, even while every worker is busy.
    Clock::TimePoint wake = next_camera_expiry_;
    const std::chrono::microseconds alone(estimator_.Typical(1));
    for (const Slot& slot : slots_) {
      const Clock::TimePoint deadline = slot.frame.request.deadline;
      if (deadline != Clock::TimePoint::max()) wake = std::min(wake, deadline - alone);
    }
    if (slots_.empty()) {
      if (stopping_) break;
      WaitLocked(lock, wake);
      continue;
    }
    if (idle_workers_ == 0) {
      WaitLocked(lock, wake);
      continue;
    }

    ages.clear();
    remaining.clear();
    for (auto slot = slots_.begin();
         slot != slots_.end() && static_cast<int>(ages.size()) < max_batch; ++slot) {
      ages.push_back(MicrosecondsBetween(slot->frame.arrival, now));
      const Clock::TimePoint deadline = slot->frame.request.deadline;
      remaining.push_back(deadline == Clock::TimePoint::max() ? BatchPolicyInput::kNoDeadline
                                                              : MicrosecondsBetween(now, deadline));
    }
    BatchPolicyInput input;
    input.max_batch = max_batch;
    input.ages_us = ages;
    input.remaining_us = remaining;
    input.waited_us = MicrosecondsBetween(slots_.front().created, now);
    input.batch_timeout_us = options_.batch_timeout.count();
    input.objective_us = options_.latency_objective.count();
    input.flush = stopping_;
    input.service = &estimator_;
    const BatchDecision decision = ChooseBatch(input);
    if (objective && decision.target != target_batch_) {
      target_batch_ = decision.target;
      if (listener_) listener_->OnTargetBatchSize(target_batch_);
    }
    if (decision.run == 0) {
      WaitLocked(lock, std::min(wake, now + std::chrono::microseconds(decision.wait_us)));
      continue;
    }

    // Oldest slots first (of the source served longest ago), as long as the
    // decode budget takes their pixels.
    const int64_t releases_seen = budget_releases_;
    std::vector<Pending> batch;
    batch.reserve(static_cast<size_t>(decision.run));
    while (static_cast<int>(batch.size()) < decision.run && !slots_.empty()) {
      const auto next = NextSlotLocked();
      Pending& frame = next->frame;
      const int64_t decoded = frame.request.payload.decoded_bytes();
      if (budget_ && decoded > 0) {
        if (!budget_->TryAcquire(decoded)) break;
        frame.reserved_bytes = decoded;
      }
      last_served_[frame.request.source] = ++serve_count_;
      batch.push_back(TakeSlotLocked(next));
    }
    if (batch.empty()) {
      // Not even the oldest frame fits: wait for a Release (or a deadline).
      // A Release since TryAcquire has bumped budget_releases_ under mu_.
      if (budget_releases_ == releases_seen) WaitLocked(lock, wake);
      continue;
    }
    --idle_workers_;
    if (listener_) {
      listener_->OnBatchFormed(static_cast<int>(batch.size()));
      listener_->OnQueueDepth(static_cast<int>(slots_.size()));
    }
    ready_.push_back(std::move(batch));
    worker_cv_.notify_one();
  }
  batcher_done_ = true;
  worker_cv_.notify_all();
}

void Scheduler::Impl::WorkerLoop(InferenceSession& session) {
  std::vector<engine::Image> decoded(static_cast<size_t>(options_.max_batch));
  while (true) {
    std::vector<Pending> batch;
    {
      std::unique_lock<std::mutex> lock(mu_);
      worker_cv_.wait(lock, [this] { return !ready_.empty() || batcher_done_; });
      if (ready_.empty()) return;  // batcher_done_: no batch will ever come
      batch = std::move(ready_.front());
      ready_.pop_front();
    }
    RunBatch(session, batch, decoded);
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++idle_workers_;
    }
    batcher_cv_.notify_all();
  }
}

void Scheduler::Impl::RunBatch(InferenceSession& session, std::vector<Pending>& batch,
                               std::vector<engine::Image>& decoded) {
  const Clock::TimePoint started = clock_->Now();
  int64_t delivery_us = 0;  // spent in callbacks: not service time
  auto finish = [&](Pending& frame, FrameOutcome outcome) {
    const Clock::TimePoint before = clock_->Now();
    if (frame.reserved_bytes > 0) {
      budget_->Release(frame.reserved_bytes);
      frame.reserved_bytes = 0;
    }
    Deliver(Completion{std::move(frame), std::move(outcome)});
    delivery_us += MicrosecondsBetween(before, clock_->Now());
  };

  // Decode; a frame that fails is answered now and the rest still run.
  if (decoded.size() < batch.size()) decoded.resize(batch.size());
  std::vector<int64_t> decode_us(batch.size(), 0);
  std::vector<size_t> runnable;
  std::vector<FrameInput> inputs;
  runnable.reserve(batch.size());
  inputs.reserve(batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    FramePayload& payload = batch[i].request.payload;
    FrameInput input;
    switch (payload.kind) {
      case FramePayload::Kind::kEncoded: {
        const Clock::TimePoint decode_start = clock_->Now();
        const Status image = decoder_(payload, &decoded[i]);
        decode_us[i] = MicrosecondsBetween(decode_start, clock_->Now());
        if (!image.ok()) {
          ReleaseDecodeBuffer(decoded[i]);
          FrameOutcome outcome;
          outcome.status = image.WithContext("decoding the frame for model " + model_);
          finish(batch[i], std::move(outcome));
          continue;
        }
        // The encoded bytes are no longer needed.
        std::string().swap(payload.encoded);
        input.image = &decoded[i];
        break;
      }
      case FramePayload::Kind::kImage:
        input.image = &payload.image;
        break;
      case FramePayload::Kind::kTensor:
        input.tensor = &payload.tensor;
        break;
    }
    runnable.push_back(i);
    inputs.push_back(input);
  }
  if (runnable.empty()) return;

  const int batch_size = static_cast<int>(runnable.size());
  const Clock::TimePoint run_start = clock_->Now();
  const Status status = session.Run(inputs);
  const Clock::TimePoint run_end = clock_->Now();

  for (size_t k = 0; k < runnable.size(); ++k) {
    Pending& frame = batch[runnable[k]];
    FrameOutcome outcome;
    if (!status.ok()) {
      outcome.status =
          status.WithContext("model " + model_ + ", batch of " + std::to_string(batch_size));
      finish(frame, std::move(outcome));
      continue;
    }
    const FrameRequest& request = frame.request;
    FrameResult& result = outcome.result;
    result.batch_size = batch_size;
    const engine::Image* image = inputs[k].image;
    int width = image ? image->width : request.payload.width;
    int height = image ? image->height : request.payload.height;
    if (image) {
      result.image_width = width;
      result.image_height = height;
    }
    result.timings.decode_us = decode_us[runnable[k]];
    result.timings.queue_us = MicrosecondsBetween(frame.submitted, started);
    result.timings.inference_us = MicrosecondsBetween(run_start, run_end);
    const Clock::TimePoint postprocess_start = clock_->Now();
    if (request.want_detections) {
      result.detections =
          session.Postprocess(static_cast<int>(k), width, height, request.detect_options);
    }
    if (request.want_raw_outputs) result.raw_outputs = session.RawOutputs(static_cast<int>(k));
    result.timings.postprocess_us = MicrosecondsBetween(postprocess_start, clock_->Now());
    ReleaseDecodeBuffer(decoded[runnable[k]]);  // before the budget is released
    const Clock::TimePoint done = clock_->Now();
    if (done > request.deadline) {
      // The batch ran longer than predicted when it formed: withhold the
      // late result, as a frame found expired at formation is dropped.
      const DropReason reason = request.deadline_reason == DropReason::kStale
                                    ? DropReason::kStale
                                    : DropReason::kDeadline;
      if (listener_) listener_->OnDropped(reason);
      outcome.status = LateStatus(reason, model_, MicrosecondsBetween(request.deadline, done));
      outcome.dropped = reason;
      outcome.computed = true;
    }
    if (k + 1 == runnable.size()) {
      // The batch's work is done: its service time counts before the last
      // answer, so whoever sees that answer sees the estimate updated.
      const int64_t service_us = MicrosecondsBetween(started, clock_->Now()) - delivery_us;
      std::lock_guard<std::mutex> lock(mu_);
      if (estimator_.Record(batch_size, service_us) && listener_) {
        for (int b = 1; b <= estimator_.max_batch(); ++b) {
          listener_->OnServiceTime(b, estimator_.Estimate(b));
        }
      }
    }
    finish(frame, std::move(outcome));
  }
}

void Scheduler::Impl::Deliver(std::vector<Completion>& completions) {
  for (Completion& completion : completions) Deliver(std::move(completion));
  completions.clear();
}

void Scheduler::Impl::Deliver(Completion completion) {
  const std::string camera = completion.frame.request.camera_id;
  if (camera.empty()) {
    completion.frame.request.on_complete(std::move(completion.outcome));
    return;
  }
  // One thread at a time delivers a camera's frames, in sequence order; a
  // frame that completes before an earlier one of its camera waits for it.
  std::unique_lock<std::mutex> lock(delivery_mu_);
  CameraOrder& order = camera_order_[camera];
  const int64_t sequence = completion.frame.sequence;
  order.ready.emplace(sequence, std::move(completion));
  if (order.delivering) return;
  order.delivering = true;
  while (!order.ready.empty() && order.ready.begin()->first == order.next_to_deliver) {
    Completion next = std::move(order.ready.begin()->second);
    order.ready.erase(order.ready.begin());
    ++order.next_to_deliver;
    lock.unlock();
    next.frame.request.on_complete(std::move(next.outcome));
    lock.lock();
  }
  order.delivering = false;
  // `order` stays valid: only a delivering thread erases, and it was this one.
  if (order.ready.empty() && order.next_to_deliver == order.next_to_assign) {
    camera_order_.erase(camera);
  }
}

// ---------------------------------------------------------------------------
// Scheduler

Scheduler::Scheduler(std::string model_name) : model_name_(std::move(model_name)) {}

Scheduler::~Scheduler() { Shutdown(); }

StatusOr<std::unique_ptr<Scheduler>> Scheduler::Create(std::string model_name,
                                                       const InferenceBackend& backend,
                                                       const SchedulerOptions& options,
                                                       Clock* clock, SchedulerListener* listener,
                                                       DecodeBudget* budget, FrameDecoder decoder) {
  if (options.workers < 1 || options.max_batch < 1 || options.queue_capacity < 1 ||
      options.threads_per_worker < 1 || options.batch_timeout.count() < 0 ||
      options.latency_objective.count() < 0 || options.queue_bytes_capacity < 1) {
    return InvalidArgument("scheduler options out of range for model " + model_name);
  }
  if (clock == nullptr) clock = &SteadyClock();
  if (!decoder) decoder = DefaultFrameDecoder({});
  const int64_t input_floats = backend.input_floats_per_frame();

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

  // Warm-up: every session runs every batch size once on zero frames, which
  // prepares the engine for that size and seeds the service times. One
  // untimed run at max_batch first takes the session's one-off costs (its
  // largest arena, first-touch page faults) out of the measurements.
  ServiceTimeEstimator estimator(options.max_batch);
  const std::vector<float> zeros(static_cast<size_t>(std::max<int64_t>(input_floats, 0)), 0.0f);
  std::vector<FrameInput> frames(static_cast<size_t>(options.max_batch),
                                 FrameInput{nullptr, &zeros});
  const engine::DetectOptions detect_options;
  for (size_t i = 0; i < sessions.size(); ++i) {
    InferenceSession& session = *sessions[i];
    for (int b = 0; b <= options.max_batch; ++b) {
      const int size = b == 0 ? options.max_batch : b;
      const Clock::TimePoint start = clock->Now();
      Status status = session.Run(std::span<const FrameInput>(frames.data(), size));
      if (!status.ok()) {
        return status.WithContext("warming up session " + std::to_string(i) + " of model " +
                                  model_name + " at batch size " + std::to_string(size));
      }
      for (int k = 0; k < size; ++k) session.Postprocess(k, 640, 480, detect_options);
      if (b > 0) estimator.Record(size, MicrosecondsBetween(start, clock->Now()));
    }
  }

  std::unique_ptr<Scheduler> scheduler(new Scheduler(model_name));
  scheduler->impl_ = std::make_unique<Impl>(scheduler->model_name_, options, clock, listener,
                                            budget, std::move(decoder), input_floats,
                                            std::move(sessions), std::move(estimator));
  return scheduler;
}

Status Scheduler::Submit(FrameRequest&& request) { return impl_->Submit(std::move(request)); }

void Scheduler::Shutdown() {
  if (impl_) impl_->Shutdown();
}

int Scheduler::queue_depth() const { return impl_->queue_depth(); }

int64_t Scheduler::service_time_us(int batch_size) const {
  return impl_->service_time_us(batch_size);
}

}  // namespace lowbit::server
