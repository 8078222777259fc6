// lowbitd: the lowbit inference server. `lowbitd --help` lists the flags.
// Exit codes: 0 after a clean shutdown (SIGTERM/SIGINT), 1 if start-up fails,
// 2 for bad flags.
#include <malloc.h>

#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "model_repository.h"
#include "options.h"
#include "server.h"

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

  // Installed before any thread starts, so an early SIGTERM is not lost.
  boost::asio::io_context io;
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  int received_signal = 0;
  signals.async_wait([&](const boost::system::error_code& error, int signal_number) {
    if (!error) received_signal = signal_number;
  });

  lowbit::StatusOr<std::vector<ModelSpec>> models = LoadModelRepository(options.model_repo);
  if (!models.ok()) {
    spdlog::critical("cannot start: {}", models.status().ToString());
    return 1;
  }
  lowbit::StatusOr<std::unique_ptr<LowbitServer>> server =
      LowbitServer::Start(options, std::move(models).value());
  if (!server.ok()) {
    spdlog::critical("cannot start: {}", server.status().ToString());
    return server.status().code() == lowbit::StatusCode::kInvalidArgument ? 2 : 1;
  }

  io.run();  // returns once the signal handler has run
  spdlog::info("received {}", received_signal == SIGTERM ? "SIGTERM" : "SIGINT");
  (*server)->Shutdown(std::chrono::milliseconds(options.shutdown_grace_ms));
  return 0;
}
