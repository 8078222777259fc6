// The scheduler alone on a real model under camera load, no gRPC: what the
// server's own numbers should approach. First the capacity (frames kept
// waiting, no cameras), then N cameras at F fps (latest frame wins, a
// frame-age limit), reporting answered throughput, its share per camera,
// frame age at answer and drops by reason.
//
//   scheduler_load_bench [--model models/nanodet-g] [--image data/images/dog.jpg]
//     [--cameras 16] [--fps 10] [--seconds 20] [--workers 2] [--max-batch 4]
//     [--objective-ms 0] [--max-age-ms 500]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine_backend.h"
#include "lowbit/engine/detector.h"
#include "scheduler.h"

namespace lowbit::server {
namespace {

using Steady = std::chrono::steady_clock;

struct Flags {
  std::string model = "models/nanodet-g";
  std::string image = "data/images/dog.jpg";
  int cameras = 16;
  double fps = 10;
  double seconds = 20;
  int workers = 2;
  int max_batch = 4;
  int64_t objective_ms = 0;
  int64_t max_age_ms = 500;
};

class DropCounter final : public SchedulerListener {
 public:
  void OnDropped(DropReason reason) override { ++counts_[static_cast<int>(reason)]; }
  int count(DropReason reason) const { return counts_[static_cast<int>(reason)].load(); }

 private:
  std::atomic<int> counts_[8] = {};
};

// Outcomes of every accepted frame.
class Answers {
 public:
  void Add(const std::string& camera, int64_t age_us, bool ok) {
    std::lock_guard<std::mutex> lock(mu_);
    if (ok) {
      ages_us_.push_back(age_us);
      ++per_camera_[camera];
    }
    ++completed_;
    cv_.notify_all();
  }
  void AwaitCompleted(int64_t count) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return completed_ >= count; });
  }
  int64_t answered() {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<int64_t>(ages_us_.size());
  }
  double Percentile(double p) {
    std::lock_guard<std::mutex> lock(mu_);
    if (ages_us_.empty()) return 0;
    std::vector<int64_t> sorted = ages_us_;
    std::sort(sorted.begin(), sorted.end());
    const size_t rank = std::min(sorted.size() - 1, static_cast<size_t>(p * sorted.size()));
    return sorted[rank] / 1000.0;
  }
  std::map<std::string, int> per_camera() {
    std::lock_guard<std::mutex> lock(mu_);
    return per_camera_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int64_t> ages_us_;
  std::map<std::string, int> per_camera_;
  int64_t completed_ = 0;
};

FrameRequest Frame(const std::string& jpeg, int width, int height) {
  FrameRequest request;
  request.payload.kind = FramePayload::Kind::kEncoded;
  request.payload.encoded = jpeg;
  request.payload.width = width;
  request.payload.height = height;
  request.received = Steady::now();
  return request;
}

// Closed loop with 2 * workers * max_batch frames always waiting: frames per
// second the scheduler answers when it never starves.
double Capacity(Scheduler& scheduler, const Flags& flags, const std::string& jpeg, int width,
                int height) {
  const int outstanding = 2 * flags.workers * flags.max_batch;
  const auto end = Steady::now() + std::chrono::duration<double>(flags.seconds / 2);
  std::mutex mu;
  std::condition_variable cv;
  int in_flight = 0;
  int64_t answered = 0;
  Steady::time_point first_answer{};
  std::unique_lock<std::mutex> lock(mu);
  while (Steady::now() < end) {
    cv.wait(lock, [&] { return in_flight < outstanding; });
    FrameRequest request = Frame(jpeg, width, height);
    request.on_complete = [&](FrameOutcome outcome) {
      std::lock_guard<std::mutex> guard(mu);
      if (outcome.status.ok() && answered++ == 0) first_answer = Steady::now();
      --in_flight;
      cv.notify_all();
    };
    lock.unlock();
    const bool accepted = scheduler.Submit(std::move(request)).ok();
    lock.lock();
    if (accepted) ++in_flight;
  }
  cv.wait(lock, [&] { return in_flight == 0; });
  const double seconds = std::chrono::duration<double>(Steady::now() - first_answer).count();
  return (answered - 1) / seconds;
}

int Run(const Flags& flags) {
  StatusOr<std::shared_ptr<const engine::DetectorModel>> model =
      engine::DetectorModel::Load(flags.model);
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", model.status().ToString().c_str());
    return 1;
  }
  std::ifstream file(flags.image, std::ios::binary);
  const std::string jpeg((std::istreambuf_iterator<char>(file)), {});
  StatusOr<engine::ImageSize> size =
      engine::ReadImageHeader(reinterpret_cast<const uint8_t*>(jpeg.data()), jpeg.size());
  if (!size.ok()) {
    std::fprintf(stderr, "%s: %s\n", flags.image.c_str(), size.status().ToString().c_str());
    return 1;
  }
  EngineBackend backend(*model);
  SchedulerOptions options;
  options.workers = flags.workers;
  options.max_batch = flags.max_batch;
  options.latency_objective = std::chrono::milliseconds(flags.objective_ms);
  DecodeBudget budget(256LL << 20);
  DropCounter drops;
  const Steady::time_point load_start = Steady::now();
  StatusOr<std::unique_ptr<Scheduler>> scheduler = Scheduler::Create(
      "bench", backend, options, &SteadyClock(), &drops, &budget, DefaultFrameDecoder({}));
  if (!scheduler.ok()) {
    std::fprintf(stderr, "%s\n", scheduler.status().ToString().c_str());
    return 1;
  }
  std::printf("%s, %dx%d JPEG, %d workers, max batch %d, objective %lld ms; Create %.0f ms\n",
              flags.model.c_str(), size->width, size->height, flags.workers, flags.max_batch,
              static_cast<long long>(flags.objective_ms),
              std::chrono::duration<double, std::milli>(Steady::now() - load_start).count());
  for (int b = 1; b <= flags.max_batch; ++b) {
    std::printf("  warm-up S(%d) = %.1f ms\n", b, (*scheduler)->service_time_us(b) / 1000.0);
  }
  const double capacity = Capacity(**scheduler, flags, jpeg, size->width, size->height);
  std::printf("capacity (closed loop, no cameras): %.1f fps\n", capacity);

  // Open loop: camera c sends a frame every 1/fps s, phases spread evenly.
  Answers answers;
  int64_t accepted = 0;
  int64_t offered = 0;
  const auto period =
      std::chrono::duration_cast<Steady::duration>(std::chrono::duration<double>(1.0 / flags.fps));
  const Steady::time_point start = Steady::now();
  const Steady::time_point end = start + std::chrono::duration_cast<Steady::duration>(
                                             std::chrono::duration<double>(flags.seconds));
  std::vector<Steady::time_point> next(static_cast<size_t>(flags.cameras));
  for (int c = 0; c < flags.cameras; ++c) next[c] = start + period * c / flags.cameras;
  while (true) {
    const auto it = std::min_element(next.begin(), next.end());
    if (*it >= end) break;
    std::this_thread::sleep_until(*it);
    const int c = static_cast<int>(it - next.begin());
    *it += period;
    const std::string camera = "cam" + std::to_string(c);
    FrameRequest request = Frame(jpeg, size->width, size->height);
    const Steady::time_point captured = request.received;
    request.camera_id = camera;
    request.deadline = captured + std::chrono::milliseconds(flags.max_age_ms);
    request.deadline_reason = DropReason::kStale;
    request.on_complete = [&answers, camera, captured](FrameOutcome outcome) {
      const int64_t age =
          std::chrono::duration_cast<std::chrono::microseconds>(Steady::now() - captured).count();
      answers.Add(camera, age, outcome.status.ok());
    };
    ++offered;
    if ((*scheduler)->Submit(std::move(request)).ok()) ++accepted;
  }
  answers.AwaitCompleted(accepted);
  const double elapsed = std::chrono::duration<double>(Steady::now() - start).count();
  (*scheduler)->Shutdown();

  for (int b = 1; b <= flags.max_batch; ++b) {
    std::printf("  after the run S(%d) = %.1f ms\n", b, (*scheduler)->service_time_us(b) / 1000.0);
  }
  const double answered_fps = answers.answered() / elapsed;
  std::printf("%d cameras x %.0f fps = %.0f fps offered for %.0f s:\n", flags.cameras, flags.fps,
              flags.cameras * flags.fps, flags.seconds);
  std::printf(
      "  answered %.1f fps (%.0f%% of capacity), frame age p50 %.0f ms, p99 %.0f ms, "
      "max %.0f ms\n",
      answered_fps, 100 * answered_fps / capacity, answers.Percentile(0.5),
      answers.Percentile(0.99), answers.Percentile(1.0));
  int least = INT32_MAX;
  int most = 0;
  for (const auto& [camera, count] : answers.per_camera()) {
    least = std::min(least, count);
    most = std::max(most, count);
  }
  std::printf("  answers per camera: %d .. %d (%.0f%% apart)\n", least, most,
              most > 0 ? 100.0 * (most - least) / most : 0.0);
  std::printf("  dropped: superseded %d, stale %d, queue_full %d\n",
              drops.count(DropReason::kSuperseded), drops.count(DropReason::kStale),
              drops.count(DropReason::kQueueFull));
  return 0;
}

}  // namespace
}  // namespace lowbit::server

int main(int argc, char** argv) {
  lowbit::server::Flags flags;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string name = argv[i];
    const char* value = argv[i + 1];
    if (name == "--model")
      flags.model = value;
    else if (name == "--image")
      flags.image = value;
    else if (name == "--cameras")
      flags.cameras = std::atoi(value);
    else if (name == "--fps")
      flags.fps = std::atof(value);
    else if (name == "--seconds")
      flags.seconds = std::atof(value);
    else if (name == "--workers")
      flags.workers = std::atoi(value);
    else if (name == "--max-batch")
      flags.max_batch = std::atoi(value);
    else if (name == "--objective-ms")
      flags.objective_ms = std::atoll(value);
    else if (name == "--max-age-ms")
      flags.max_age_ms = std::atoll(value);
    else {
      std::fprintf(stderr, "unknown flag %s\n", name.c_str());
      return 2;
    }
  }
  return lowbit::server::Run(flags);
}
