#include "admission.h"

#include <algorithm>
#include <chrono>

#include "lowbit/engine/detector.h"

namespace lowbit::server {
namespace {

// Lookups of a name whose version was retired between Find and Submit. A
// reload publishes the new version before retiring the old one, so the
// second lookup finds it; the rest covers reloads in quick succession.
constexpr int kSubmitAttempts = 4;

StatusOr<engine::PixelFormat> ToEnginePixelFormat(v1::PixelFormat format) {
  switch (format) {
    case v1::BGR8:
      return engine::PixelFormat::kBgr8;
    case v1::RGB8:
      return engine::PixelFormat::kRgb8;
    default:
      return InvalidArgument("frame.raw.format must be BGR8 or RGB8 (got " +
                             (v1::PixelFormat_IsValid(format) ? v1::PixelFormat_Name(format)
                                                              : std::to_string(format)) +
                             ")");
  }
}

}  // namespace

Status CheckRequestString(std::string_view field, std::string_view value) {
  if (value.size() <= kMaxRequestStringBytes) return Status::Ok();
  return InvalidArgument(std::string(field) + " is " + std::to_string(value.size()) +
                         " bytes long; at most " + std::to_string(kMaxRequestStringBytes) +
                         " are accepted");
}

Status StreamSlots::Acquire() {
  const int open = open_.fetch_add(1, std::memory_order_relaxed);
  if (open < limit_) return Status::Ok();
  open_.fetch_sub(1, std::memory_order_relaxed);
  return ResourceExhausted(std::to_string(limit_) +
                           " streams are open, the most this server takes (--max-streams); "
                           "close one or retry later");
}

std::string Excerpt(std::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return std::string(text);
  return std::string(text.substr(0, max_bytes)) + "... (" + std::to_string(text.size()) +
         " bytes)";
}

grpc::Status ToGrpcStatus(const Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      Excerpt(status.message(), kMaxErrorMessageBytes));
}

StatusOr<FramePayload> EncodedPayload(std::string bytes, const FrontendLimits& limits) {
  if (bytes.empty()) {
    return InvalidArgument("frame.encoded is empty; send the bytes of a JPEG or PNG file");
  }
  if (static_cast<int64_t>(bytes.size()) > limits.max_image_bytes) {
    return InvalidArgument("frame.encoded is " + std::to_string(bytes.size()) +
                           " bytes, over the server's limit of " +
                           std::to_string(limits.max_image_bytes) +
                           " (--max-image-bytes); send a smaller or more compressed image");
  }
  engine::DecodeLimits decode_limits;
  decode_limits.max_pixels = limits.max_pixels;
  StatusOr<engine::ImageSize> size = engine::ReadImageHeader(
      reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), decode_limits);
  if (!size.ok()) {
    Status status = size.status().WithContext("frame.encoded");
    if (status.message().find("over the limit") != std::string::npos) {
      status = InvalidArgument(status.message() + " (--max-pixels)");
    }
    return status;
  }
  FramePayload payload;
  payload.kind = FramePayload::Kind::kEncoded;
  payload.encoded = std::move(bytes);
  payload.width = size->width;
  payload.height = size->height;
  return payload;
}

StatusOr<FramePayload> RawPayload(const v1::RawImage& raw, const FrontendLimits& limits) {
  LOWBIT_ASSIGN_OR_RETURN(engine::PixelFormat format, ToEnginePixelFormat(raw.format()));
  if (raw.width() <= 0 || raw.height() <= 0) {
    return InvalidArgument("frame.raw needs width > 0 and height > 0 (got " +
                           std::to_string(raw.width()) + "x" + std::to_string(raw.height()) + ")");
  }
  const int64_t row_bytes = 3LL * raw.width();
  const int64_t stride = raw.stride() == 0 ? row_bytes : raw.stride();
  if (stride < row_bytes) {
    return InvalidArgument("frame.raw.stride " + std::to_string(stride) +
                           " is below 3 * width = " + std::to_string(row_bytes));
  }
  const int64_t pixels = static_cast<int64_t>(raw.width()) * raw.height();
  if (pixels > limits.max_pixels) {
    return InvalidArgument("frame.raw is " + std::to_string(raw.width()) + "x" +
                           std::to_string(raw.height()) + ", over the server's limit of " +
                           std::to_string(limits.max_pixels) + " pixels (--max-pixels)");
  }
  const int64_t size = static_cast<int64_t>(raw.pixels().size());
  if (size > limits.max_image_bytes) {
    return InvalidArgument("frame.raw.pixels is " + std::to_string(size) +
                           " bytes, over the server's limit of " +
                           std::to_string(limits.max_image_bytes) + " (--max-image-bytes)");
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
  engine::DecodeLimits decode_limits;
  decode_limits.max_pixels = limits.max_pixels;
  StatusOr<engine::Image> image = engine::ImageFromRaw(view, raw.pixels().size(), decode_limits);
  if (!image.ok()) return image.status().WithContext("frame.raw");
  FramePayload payload;
  payload.kind = FramePayload::Kind::kImage;
  payload.width = image->width;
  payload.height = image->height;
  payload.image = std::move(image).value();
  return payload;
}

Clock::TimePoint DeadlineFromSystemTime(std::chrono::system_clock::time_point deadline,
                                        const Clock& clock) {
  // gRPC reports "no deadline" as (nearly) the largest time point; anything
  // a year out is treated the same, which also keeps the sum below in range.
  const auto now = std::chrono::system_clock::now();
  if (deadline >= now + std::chrono::hours(24 * 365)) return Clock::TimePoint::max();
  const auto left = std::chrono::duration_cast<Clock::TimePoint::duration>(deadline - now);
  return clock.Now() + left;
}

Clock::TimePoint DeadlineFromContext(const grpc::CallbackServerContext& context,
                                     const Clock& clock) {
  return DeadlineFromSystemTime(context.deadline(), clock);
}

Status UnknownModel(const ModelRegistry& registry, const std::string& model_name) {
  const std::string& wanted = model_name.empty() ? registry.default_model() : model_name;
  for (const ModelStatus& entry : registry.List()) {
    if (entry.name == wanted && entry.state == ModelState::kFailed) {
      return NotFound("model '" + Excerpt(wanted) + "' failed to load (" + entry.message +
                      "); this server serves: " + registry.Names() + " (see ListModels)");
    }
  }
  return NotFound("unknown model '" + Excerpt(wanted) + "'; this server serves: " +
                  registry.Names() +
                  " (see ListModels)");
}

Status SubmitFrame(ModelRegistry& registry, const std::string& model_name, FrameRequest&& request,
                   std::shared_ptr<ServedModel>* served) {
  Status status;
  for (int attempt = 0; attempt < kSubmitAttempts; ++attempt) {
    std::shared_ptr<ServedModel> model = registry.Find(model_name);
    // Unknown, failed, or unloaded by a reload after an earlier attempt
    // found it (then *served keeps that version, for the metrics).
    if (model == nullptr) return UnknownModel(registry, model_name);
    // Written before Submit and never after a successful one: on_complete,
    // which may already run on a worker, may read it.
    if (served) *served = model;
    status = model->scheduler->Submit(std::move(request));
    if (status.ok() || status.code() != StatusCode::kUnavailable ||
        !model->retired.load(std::memory_order_acquire)) {
      return status;
    }
  }
  return status;
}

bool DrainState::draining() const {
  std::lock_guard<std::mutex> lock(mu_);
  return draining_;
}

void DrainState::StartDraining() {
  std::vector<int> ids;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (draining_) return;
    draining_ = true;
    for (const auto& [id, callback] : subscribers_) ids.push_back(id);
  }
  for (int id : ids) {
    std::function<void()> callback;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = std::find_if(subscribers_.begin(), subscribers_.end(),
                             [id](const auto& entry) { return entry.first == id; });
      if (it == subscribers_.end()) continue;  // unsubscribed meanwhile
      callback = std::move(it->second);
      subscribers_.erase(it);
      running_id_ = id;
      running_thread_ = std::this_thread::get_id();
    }
    callback();
    {
      std::lock_guard<std::mutex> lock(mu_);
      running_id_ = 0;
    }
    cv_.notify_all();
  }
}

int DrainState::Subscribe(std::function<void()> on_drain) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (draining_) return 0;
  const int id = next_id_++;
  subscribers_.emplace_back(id, std::move(on_drain));
  return id;
}

void DrainState::Unsubscribe(int id) const {
  if (id == 0) return;
  std::unique_lock<std::mutex> lock(mu_);
  std::erase_if(subscribers_, [id](const auto& entry) { return entry.first == id; });
  if (running_thread_ == std::this_thread::get_id()) return;  // from inside the callback
  cv_.wait(lock, [&] { return running_id_ != id; });
}

Status DrainState::ShuttingDown() {
  return Unavailable("the server is shutting down (SIGTERM); retry on another replica");
}

}  // namespace lowbit::server
