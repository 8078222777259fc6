// lowbit_grpc_floor: the least a gRPC server can cost per call on this
// machine, the yardstick for lowbitd's serving overhead.
//
// It serves lowbit.v1.Detector with nothing behind it: Detect busy-computes
// for --compute-us microseconds and answers an empty DetectResponse whose
// timings.total_us is the time spent in the handler. With --handoff the
// gRPC thread hands the work to one worker thread and waits for it (one
// wake-up each way, as any server with a worker pool has); without it the
// work runs on the gRPC thread itself (no hand-off at all). ListModels
// answers an empty list so lowbit's load generator can connect.
//
// Client p50 minus compute time is what gRPC, the kernel and this VM's
// wake-ups cost for a call that keeps a core busy that long: a floor that
// no server built on gRPC goes under on the same machine.
//
//   lowbit_grpc_floor --port 50071 --compute-us 40000 [--handoff]
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "lowbit/v1/detector.grpc.pb.h"

namespace {

using Clock = std::chrono::steady_clock;

// Busy work that the compiler cannot drop: a dependent integer chain.
uint64_t Compute(int64_t microseconds) {
  const Clock::time_point end = Clock::now() + std::chrono::microseconds(microseconds);
  uint64_t x = 88172645463325252ull;
  do {
    for (int i = 0; i < 1000; ++i) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
    }
  } while (Clock::now() < end);
  return x;
}

// One worker thread; Run() blocks the caller until the worker has done it.
class Worker {
 public:
  Worker() : thread_([this] { Loop(); }) {}
  ~Worker() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  uint64_t Run(int64_t microseconds) {
    std::unique_lock<std::mutex> lock(mu_);
    idle_.wait(lock, [this] { return !pending_; });
    work_us_ = microseconds;
    pending_ = true;
    done_ = false;
    cv_.notify_all();
    idle_.wait(lock, [this] { return done_; });
    return result_;
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      cv_.wait(lock, [this] { return stop_ || (pending_ && !done_); });
      if (stop_) return;
      const int64_t work = work_us_;
      lock.unlock();
      const uint64_t result = Compute(work);
      lock.lock();
      result_ = result;
      done_ = true;
      pending_ = false;
      idle_.notify_all();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable idle_;
  bool stop_ = false;
  bool pending_ = false;
  bool done_ = false;
  int64_t work_us_ = 0;
  uint64_t result_ = 0;
  std::thread thread_;
};

class FloorDetector final : public lowbit::v1::Detector::Service {
 public:
  FloorDetector(int64_t compute_us, bool handoff)
      : compute_us_(compute_us), worker_(handoff ? std::make_unique<Worker>() : nullptr) {}

  grpc::Status Detect(grpc::ServerContext*, const lowbit::v1::DetectRequest* request,
                      lowbit::v1::DetectResponse* response) override {
    const Clock::time_point start = Clock::now();
    const uint64_t result = worker_ ? worker_->Run(compute_us_) : Compute(compute_us_);
    sink_.fetch_xor(result, std::memory_order_relaxed);
    response->set_model(request->model());
    response->set_batch_size(1);
    response->mutable_timings()->set_total_us(
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count());
    return grpc::Status::OK;
  }

  grpc::Status ListModels(grpc::ServerContext*, const lowbit::v1::ListModelsRequest*,
                          lowbit::v1::ListModelsResponse*) override {
    return grpc::Status::OK;
  }

 private:
  const int64_t compute_us_;
  std::unique_ptr<Worker> worker_;
  std::atomic<uint64_t> sink_{0};
};

void Usage(FILE* out) {
  std::fputs(
      "usage: lowbit_grpc_floor [--port N] [--compute-us N] [--handoff]\n"
      "  Serves lowbit.v1.Detector: Detect busy-computes --compute-us (default 0)\n"
      "  and answers an empty result; the least a gRPC server costs per call.\n"
      "  --handoff  compute on a worker thread, not on the gRPC thread\n"
      "  --port     listen on 127.0.0.1:N (default 50071)\n",
      out);
}

}  // namespace

int main(int argc, char** argv) {
  int port = 50071;
  int64_t compute_us = 0;
  bool handoff = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--handoff") {
      handoff = true;
    } else if ((arg == "--port" || arg == "--compute-us") && i + 1 < argc) {
      char* end = nullptr;
      const long long value = std::strtoll(argv[++i], &end, 10);
      if (*end != '\0' || value < 0) {
        std::fprintf(stderr, "lowbit_grpc_floor: %s wants a non-negative integer\n", arg.c_str());
        return 2;
      }
      if (arg == "--port") {
        port = static_cast<int>(value);
      } else {
        compute_us = value;
      }
    } else if (arg == "--help" || arg == "-h") {
      Usage(stdout);
      return 0;
    } else {
      Usage(stderr);
      return 2;
    }
  }
  FloorDetector service(compute_us, handoff);
  grpc::ServerBuilder builder;
  builder.SetMaxReceiveMessageSize(64 << 20);
  builder.AddListeningPort("127.0.0.1:" + std::to_string(port), grpc::InsecureServerCredentials());
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) {
    std::fprintf(stderr, "lowbit_grpc_floor: cannot listen on port %d\n", port);
    return 1;
  }
  std::printf("lowbit_grpc_floor listening on 127.0.0.1:%d, compute %lld us%s\n", port,
              static_cast<long long>(compute_us), handoff ? ", on a worker thread" : "");
  std::fflush(stdout);
  server->Wait();
  return 0;
}
