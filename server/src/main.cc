// lowbitd: the lowbit inference server. `lowbitd --help` lists the flags.
// Exit codes: 0 after a clean shutdown (SIGTERM/SIGINT, drained within
// --shutdown-grace-ms), 1 if start-up fails or a second SIGTERM/SIGINT
// arrives while draining (exits at once), 2 for bad flags.
//
// Signals are taken by a Boost.Asio signal_set on a thread of their own
// (not in a signal handler): SIGTERM/SIGINT start the drain on the main
// thread; SIGHUP asks the reload thread to re-read the model repository.
#include <malloc.h>

#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "options.h"
#include "registry.h"
#include "server.h"
#include "tls.h"

namespace {

const char* SignalName(int signal_number) {
  switch (signal_number) {
    case SIGTERM:
      return "SIGTERM";
    case SIGINT:
      return "SIGINT";
    case SIGHUP:
      return "SIGHUP";
    default:
      return "a signal";
  }
}

// Events from the signal thread to the main thread.
struct Events {
  std::mutex mu;
  std::condition_variable cv;
  int stop_signal = 0;  // SIGTERM/SIGINT received
  int reloads_requested = 0;
  bool stopping = false;  // the reload thread ends
};

}  // namespace

int main(int argc, char** argv) {
  using namespace lowbit::server;
  const std::vector<std::string> args(argv + 1, argv + argc);
  lowbit::StatusOr<CommandLine> command_line = ParseCommandLine(args);
  if (!command_line.ok()) {
    std::fprintf(stderr, "lowbitd: %s\nRun 'lowbitd --help' for the flags.\n",
                 command_line.status().message().c_str());
    return 2;
  }
  if (command_line->show_help) {
    std::fputs(UsageText().c_str(), stdout);
    return 0;
  }
  const ServerOptions& options = command_line->options;
  // TLS files are checked before the models load (seconds), so a wrong path
  // or a key of another certificate fails at once.
  if (lowbit::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
          MakeServerCredentials(options);
      !credentials.ok()) {
    std::fprintf(stderr, "lowbitd: %s\n", credentials.status().message().c_str());
    return 2;
  }

  // Decoded frames and batch tensors (hundreds of KiB to MiB, freed after
  // each request, on many threads) are mapped and unmapped instead of being
  // kept in glibc's per-thread heaps: with its adaptive threshold, resident
  // memory grew with the number of requests served and scaled with the
  // worker count, as if every worker held its own copy of the model.
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);

  // Logs go to stderr, one line per event, flushed as written.
  spdlog::set_default_logger(spdlog::stderr_color_mt("lowbitd"));
  spdlog::set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%^%l%$] %v");
  spdlog::set_level(spdlog::level::from_str(options.log_level));
  spdlog::flush_on(spdlog::level::trace);

  // Installed before any other thread starts (they inherit the mask that
  // routes the signals here), so an early SIGTERM is not lost.
  Events events;
  boost::asio::io_context io;
  boost::asio::signal_set signals(io, SIGINT, SIGTERM, SIGHUP);
  std::function<void(const boost::system::error_code&, int)> on_signal =
      [&](const boost::system::error_code& error, int signal_number) {
        if (error) return;
        if (signal_number == SIGHUP) {
          std::lock_guard<std::mutex> lock(events.mu);
          ++events.reloads_requested;
          events.cv.notify_all();
        } else {
          std::lock_guard<std::mutex> lock(events.mu);
          if (events.stop_signal != 0) {
            spdlog::warn("received {} while draining: exiting at once (status 1)",
                         SignalName(signal_number));
            spdlog::default_logger()->flush();
            std::_Exit(1);
          }
          events.stop_signal = signal_number;
          events.cv.notify_all();
        }
        signals.async_wait(on_signal);
      };
  signals.async_wait(on_signal);
  std::thread signal_thread([&io] { io.run(); });

  const auto stop_signal_thread = [&] {
    io.stop();
    signal_thread.join();
  };

  lowbit::StatusOr<std::unique_ptr<LowbitServer>> started = LowbitServer::Start(options);
  if (!started.ok()) {
    spdlog::critical("cannot start: {}", started.status().ToString());
    stop_signal_thread();
    return started.status().code() == lowbit::StatusCode::kInvalidArgument ? 2 : 1;
  }
  LowbitServer& server = **started;

  // SIGHUP: reloads run here, one at a time, never on the signal thread (a
  // load takes seconds; a second SIGTERM must still be heard meanwhile).
  std::thread reload_thread([&] {
    std::unique_lock<std::mutex> lock(events.mu);
    while (true) {
      events.cv.wait(lock, [&] { return events.stopping || events.reloads_requested > 0; });
      if (events.stopping) return;
      events.reloads_requested = 0;
      lock.unlock();
      spdlog::info("received SIGHUP: reloading the model repository {}", options.model_repo);
      for (const ReloadResult& result : server.registry().Reload()) {
        spdlog::log(
            result.action == ReloadAction::kFailed ? spdlog::level::err : spdlog::level::info,
            "reload: {} {} (version {}, {} ms){}{}", result.model, ReloadActionName(result.action),
            result.version, result.load_ms, result.message.empty() ? "" : ": ", result.message);
      }
      lock.lock();
    }
  });

  int stop_signal = 0;
  {
    std::unique_lock<std::mutex> lock(events.mu);
    events.cv.wait(lock, [&] { return events.stop_signal != 0; });
    stop_signal = events.stop_signal;
  }
  spdlog::info("received {}: draining (up to {} ms; a second signal exits at once)",
               SignalName(stop_signal), options.shutdown_grace_ms);
  // The drain ends by the grace whatever is still running: calls are
  // cancelled at its reserve point, but a batch already on a worker (slower
  // than its measured service time when other work takes the cores) or a
  // model still loading cannot be stopped, only abandoned.
  const auto grace_end =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(options.shutdown_grace_ms);
  auto drained = std::make_shared<std::promise<void>>();
  std::future<void> drain_done = drained->get_future();
  std::thread([&server, drained, grace = options.shutdown_grace_ms] {
    server.Shutdown(std::chrono::milliseconds(grace));
    drained->set_value();
  }).detach();
  if (drain_done.wait_until(grace_end) != std::future_status::ready) {
    spdlog::warn(
        "drain timeout passed with a batch still running (its calls were cancelled); exiting");
  }
  {
    std::lock_guard<std::mutex> lock(events.mu);
    events.stopping = true;
  }
  events.cv.notify_all();
  // Everything is drained and stopped. The process ends here without
  // destroying the server: the metrics endpoint's web server alone takes
  // over a second to stop (which would push the exit past a short
  // --shutdown-grace-ms), and a reload still loading a model must not have
  // the registry destroyed under it.
  spdlog::default_logger()->flush();
  std::fflush(nullptr);
  std::_Exit(0);
}
