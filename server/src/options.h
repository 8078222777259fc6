// lowbitd's command-line options: one plain struct, parsed and validated once
// at start-up. Every field has the default that `lowbitd` runs with.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lowbit/engine/status.h"

namespace lowbit::server {

struct ServerOptions {
  // Every subdirectory holding a config.pbtxt is loaded as one model, named
  // after the subdirectory.
  std::string model_repo = "models";
  // Model used by requests with an empty `model`. Empty: "nanodet-g" if it is
  // loaded, otherwise the first model by name.
  std::string default_model;
  // gRPC listening address, HOST:PORT. Port 0 picks a free port (logged).
  std::string address = "0.0.0.0:50051";
  // Prometheus /metrics listening address, HOST:PORT. Empty: no endpoint.
  std::string metrics_address = "0.0.0.0:9090";
  // Engine sessions per model; each runs one batch at a time.
  int workers = 2;
  // Threads inside one session's Run (intra-op).
  int threads_per_worker = 1;
  // Frames per engine call, at most.
  int max_batch = 4;
  // Microseconds the batcher waits after a batch's first frame for more
  // frames before running a smaller batch.
  int64_t batch_timeout_us = 2000;
  // Frames waiting per model; a frame arriving over it is rejected with
  // RESOURCE_EXHAUSTED and counted as dropped.
  int queue_capacity = 64;
  // Payload bytes (encoded files, raw pixels, tensors) waiting per model; a
  // frame arriving over it is refused like one over --queue-capacity.
  int64_t queue_memory_mb = 256;
  // Decoded pixels in flight across all models (3 bytes per pixel): a batch
  // takes only frames whose decoded size fits what is left.
  int64_t decode_memory_mb = 512;
  // Arrival-to-answer objective per frame, milliseconds; the batcher picks
  // batch sizes from measured service times to keep p99 under it. 0: no
  // objective (fixed batching). A model config's latency_objective_ms wins.
  int64_t latency_objective_ms = 0;
  // Frames of one DetectStream read and not yet written; at the limit the
  // stream is not read until results are written (the sender is slowed by
  // gRPC flow control, nothing is dropped). Capped at --queue-capacity.
  int max_pending_per_stream = 64;
  // Bytes of one stream's results answered but not yet written (the client
  // reads slowly or not at all); at the limit the stream is not read.
  int64_t max_pending_kb_per_stream = 1024;
  // DetectStream and ModelStreamInfer calls open at once, server-wide; one
  // more is refused with RESOURCE_EXHAUSTED.
  int max_streams = 256;
  // Seconds between repository polls (reload what changed); 0: no polling
  // (SIGHUP and Admin.ReloadModels still reload).
  int64_t repository_poll_s = 0;
  // gRPC resource quota: threads gRPC may use, and memory (MiB) for its
  // buffers; under memory pressure gRPC shrinks its read windows.
  int grpc_max_threads = 16;
  int64_t grpc_memory_mb = 512;
  // Largest accepted image payload (encoded file or raw pixels), bytes.
  int64_t max_image_bytes = 16LL * 1024 * 1024;
  // Largest accepted image, width * height.
  int64_t max_pixels = 32LL * 1024 * 1024;
  // TLS on the gRPC port: a PEM certificate chain (leaf first) and its
  // unencrypted PEM private key, both or neither. Empty: plaintext. The
  // metrics endpoint stays plain HTTP (bind it to localhost or a management
  // network).
  std::string tls_cert;
  std::string tls_key;
  // Mutual TLS: PEM CA certificate(s); clients must present a certificate
  // one of them signed. Needs tls_cert.
  std::string tls_client_ca;
  // trace, debug, info, warn, error, critical or off.
  std::string log_level = "info";
  // On SIGTERM/SIGINT (the drain timeout), milliseconds from the signal to
  // exit: streams stop reading at once and answer what they accepted, then
  // calls still running are cancelled.
  int64_t shutdown_grace_ms = 5000;
};

struct CommandLine {
  ServerOptions options;
  bool show_help = false;
};

// Parses `args` (without the program name). Accepts `--flag value` and
// `--flag=value`. An unknown flag, a missing or malformed value or a value out
// of range is an INVALID_ARGUMENT naming the flag and what it accepts.
StatusOr<CommandLine> ParseCommandLine(const std::vector<std::string>& args);

// The --help text: every flag, what it does and its default.
std::string UsageText();

// Splits "HOST:PORT" ("[::1]:50051" for IPv6); port in [0, 65535].
Status SplitHostPort(const std::string& address, std::string* host, int* port);

}  // namespace lowbit::server
