// Threads that end on their own (a retired model version's drain, an
// Admin.ReloadModels call), joined once they have finished or when their
// owner ends, so none is ever detached. Thread-safe.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace lowbit::server {

class BackgroundThreads {
 public:
  BackgroundThreads() = default;
  BackgroundThreads(const BackgroundThreads&) = delete;
  BackgroundThreads& operator=(const BackgroundThreads&) = delete;
  ~BackgroundThreads() { JoinAll(); }

  // Runs `work` on a thread of its own; joins the threads already finished.
  void Start(std::function<void()> work) {
    auto done = std::make_shared<std::atomic<bool>>(false);
    std::thread thread([work = std::move(work), done]() mutable {
      work();
      work = nullptr;  // what it holds is released on this thread, before `done`
      done->store(true);
    });
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = running_.begin(); it != running_.end();) {
      if (it->done->load()) {
        it->thread.join();
        it = running_.erase(it);
      } else {
        ++it;
      }
    }
    running_.push_back(Running{std::move(thread), std::move(done)});
  }

  // Waits for every thread, including those started meanwhile.
  void JoinAll() {
    while (true) {
      std::vector<Running> running;
      {
        std::lock_guard<std::mutex> lock(mu_);
        running.swap(running_);
      }
      if (running.empty()) return;
      for (Running& entry : running) entry.thread.join();
    }
  }

 private:
  struct Running {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;  // set as the thread's last act
  };

  std::mutex mu_;
  std::vector<Running> running_;
};

}  // namespace lowbit::server
