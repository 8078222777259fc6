// What every front end (lowbit.v1.Detector, KServe v2) does with a frame
// before it reaches a scheduler, and nothing after: size checks, the image
// header (width/height, no decode), the call's deadline, the model lookup
// that survives a hot reload, and the server-wide drain flag of SIGTERM.
//
//   bytes / raw pixels --EncodedPayload/RawPayload--> FramePayload
//   FrameRequest{payload, deadline, cancelled, on_complete}
//       --SubmitFrame--> ModelRegistry::Find --> Scheduler::Submit
//
// Nothing here decodes pixels: a frame refused at admission costs its header
// walk and nothing more.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "clock.h"
#include "lowbit/engine/status.h"
#include "lowbit/v1/detector.pb.h"
#include "registry.h"
#include "scheduler.h"

namespace lowbit::server {

struct FrontendLimits {
  // Largest encoded file or raw pixel buffer, bytes (--max-image-bytes).
  int64_t max_image_bytes = 16LL * 1024 * 1024;
  // Largest image, width * height (--max-pixels); an encoded file's header
  // is checked against it before anything is decoded.
  int64_t max_pixels = 32LL * 1024 * 1024;
  // Frames of one stream queued, running or answered but not yet written;
  // at the limit the stream stops reading (gRPC flow control then slows the
  // sender) until results are written. Never above the queue capacity.
  int max_pending_per_stream = 64;
  // Bytes of one stream's results answered but not yet written; at the
  // limit the stream stops reading, as at max_pending_per_stream.
  int64_t max_pending_bytes_per_stream = 1 << 20;
  // Streams open at once, shared by every service built with these limits
  // (copies of FrontendLimits share one count). Null: no limit.
  std::shared_ptr<class StreamSlots> streams;
};

// Streams open at once across the front ends: a stream takes a slot when it
// starts and gives it back in OnDone; over the limit it is refused.
class StreamSlots {
 public:
  explicit StreamSlots(int limit) : limit_(limit) {}
  // OK and a slot taken, or RESOURCE_EXHAUSTED naming the limit.
  Status Acquire();
  void Release() { open_.fetch_sub(1, std::memory_order_relaxed); }
  int open() const { return open_.load(std::memory_order_relaxed); }

 private:
  const int limit_;
  std::atomic<int> open_{0};
};

// Longest model name, camera_id or request id a request may carry, bytes.
// Every pending result of a stream keeps its ids, so unbounded ids would
// let a few streams hold gigabytes.
inline constexpr size_t kMaxRequestStringBytes = 256;
// INVALID_ARGUMENT naming `field` (not echoing the value) when `value` is
// longer than kMaxRequestStringBytes.
Status CheckRequestString(std::string_view field, std::string_view value);

// `text` for a log line or an error message: whole when at most
// `max_bytes`, else its first bytes and "... (N bytes)".
std::string Excerpt(std::string_view text, size_t max_bytes = 64);

// An error message sent to a client is at most this long (gRPC clients
// refuse trailing metadata over 16 KiB).
inline constexpr size_t kMaxErrorMessageBytes = 1024;

// google.rpc codes map one to one; the message is cut to
// kMaxErrorMessageBytes.
grpc::Status ToGrpcStatus(const Status& status);

// A JPEG or PNG file as a kEncoded payload: checks its size against
// max_image_bytes and reads width/height from its header (engine::
// ReadImageHeader: markers/chunks only, no pixel decoded) against
// max_pixels. INVALID_ARGUMENT with a message naming "frame.encoded" and
// the flag to change otherwise.
StatusOr<FramePayload> EncodedPayload(std::string bytes, const FrontendLimits& limits);

// Raw 8-bit 3-channel pixels as a kImage payload (copied into BGR8, rows
// packed): checks format, sizes, stride and buffer length against the
// limits. INVALID_ARGUMENT naming "frame.raw" otherwise.
StatusOr<FramePayload> RawPayload(const v1::RawImage& raw, const FrontendLimits& limits);

// The call's deadline on `clock` (Clock::TimePoint::max() if the client set
// none): the time left on the call, measured now, added to clock.Now().
Clock::TimePoint DeadlineFromContext(const grpc::CallbackServerContext& context,
                                     const Clock& clock);
// The same for a deadline given as a system_clock time point.
Clock::TimePoint DeadlineFromSystemTime(std::chrono::system_clock::time_point deadline,
                                        const Clock& clock);

// Finds `model_name` (empty: the default model) and submits `request` to
// its scheduler. A model retired by a reload between Find and Submit
// refuses with UNAVAILABLE; then the model is looked up again (a few times),
// so no frame fails because of a swap.
//
// OK: the request was taken; its on_complete runs exactly once. Otherwise
// the request is left as it was and on_complete never runs: NOT_FOUND
// (unknown or failed model; the message lists the models served), or the
// scheduler's refusal (RESOURCE_EXHAUSTED, UNAVAILABLE when shutting down,
// INVALID_ARGUMENT, DEADLINE_EXCEEDED).
// `*served` (may be null) is set before each Submit to the version about to
// get the frame and never written after a successful one, so on_complete
// (which runs only after it) may read it from a context the callback owns.
// On failure it holds the last version that refused the frame (unchanged if
// the name was never found): its metrics are where the frame is counted.
Status SubmitFrame(ModelRegistry& registry, const std::string& model_name, FrameRequest&& request,
                   std::shared_ptr<ServedModel>* served);

// NOT_FOUND for `model_name` with the names `registry` serves and, for a
// model that failed to load, why.
Status UnknownModel(const ModelRegistry& registry, const std::string& model_name);

// The server's drain flag, set once at SIGTERM. Front ends read draining()
// before accepting a call or a frame (new calls get UNAVAILABLE) and
// streams subscribe to be told at once (they stop reading, answer what they
// have accepted, then end with UNAVAILABLE). Thread-safe; the const members
// are what the services, which hold a const reference, use.
class DrainState {
 public:
  bool draining() const;

  // Sets draining() and calls every subscriber once, on this thread, with
  // no DrainState lock held. Idempotent.
  void StartDraining();

  // Registers `on_drain`. Returns an id (> 0) for Unsubscribe, or 0 if
  // draining has already started (then `on_drain` is never called: the
  // caller acts on draining() itself).
  int Subscribe(std::function<void()> on_drain) const;
  // After it returns, `on_drain` of `id` is not running (unless Unsubscribe
  // is called from inside it) and will not be called. 0 is ignored.
  void Unsubscribe(int id) const;

  // "the server is shutting down (SIGTERM); retry on another replica"
  static Status ShuttingDown();

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  bool draining_ = false;
  mutable int next_id_ = 1;
  mutable std::vector<std::pair<int, std::function<void()>>> subscribers_;
  // The subscriber StartDraining is calling now (0: none) and its thread.
  int running_id_ = 0;
  std::thread::id running_thread_;
};

}  // namespace lowbit::server
