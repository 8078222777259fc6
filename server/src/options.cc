#include "options.h"

#include <charconv>
#include <functional>
#include <limits>
#include <string_view>

namespace lowbit::server {
namespace {

struct FlagSpec {
  const char* name;         // without the leading "--"
  const char* placeholder;  // for the usage text
  const char* help;
  // Default as shown by --help, from a default-constructed ServerOptions;
  // empty: the help text explains it.
  std::function<std::string(const ServerOptions&)> show_default;
  // Parses and validates one value into the options.
  std::function<Status(const std::string& value, ServerOptions*)> apply;
};

StatusOr<int64_t> ParseInteger(const std::string& flag, const std::string& value, int64_t min,
                               int64_t max) {
  int64_t parsed = 0;
  const char* end = value.data() + value.size();
  auto [ptr, error] = std::from_chars(value.data(), end, parsed);
  if (value.empty() || error != std::errc() || ptr != end) {
    return InvalidArgument("--" + flag + " expects an integer, got '" + value + "'");
  }
  if (parsed < min || parsed > max) {
    return InvalidArgument("--" + flag + " must be in [" + std::to_string(min) + ", " +
                           std::to_string(max) + "], got " + value);
  }
  return parsed;
}

template <typename Field>
FlagSpec IntegerFlag(const char* name, const char* help, Field ServerOptions::*field, int64_t min,
                     int64_t max) {
  return FlagSpec{name, "N", help,
                  [field](const ServerOptions& o) { return std::to_string(o.*field); },
                  [name, field, min, max](const std::string& value, ServerOptions* o) -> Status {
                    LOWBIT_ASSIGN_OR_RETURN(int64_t parsed, ParseInteger(name, value, min, max));
                    o->*field = static_cast<Field>(parsed);
                    return Status::Ok();
                  }};
}

// A file path; the file is read and checked when the server starts.
FlagSpec PathFlag(const char* name, const char* help, std::string ServerOptions::*field) {
  return FlagSpec{name, "FILE", help, [](const ServerOptions&) { return std::string(); },
                  [name, field](const std::string& value, ServerOptions* o) -> Status {
                    if (value.empty())
                      return InvalidArgument(std::string("--") + name + " needs a file path");
                    o->*field = value;
                    return Status::Ok();
                  }};
}

Status ValidateAddress(const std::string& flag, const std::string& value) {
  std::string host;
  int port = 0;
  Status status = SplitHostPort(value, &host, &port);
  if (!status.ok()) return status.WithContext("--" + flag);
  return Status::Ok();
}

const std::vector<FlagSpec>& Flags() {
  static const std::vector<FlagSpec> flags = {
      {"model-repo", "DIR",
       "model repository; every subdirectory with a config.pbtxt is served as a model named "
       "after the subdirectory",
       [](const ServerOptions& o) { return o.model_repo; },
       [](const std::string& v, ServerOptions* o) -> Status {
         if (v.empty()) return InvalidArgument("--model-repo must not be empty");
         o->model_repo = v;
         return Status::Ok();
       }},
      {"default-model", "NAME",
       "model for requests that leave `model` empty (default: nanodet-g if loaded, else the "
       "first model by name)",
       [](const ServerOptions&) { return std::string(); },
       [](const std::string& v, ServerOptions* o) -> Status {
         o->default_model = v;
         return Status::Ok();
       }},
      {"address", "HOST:PORT", "gRPC listening address; port 0 picks a free port (logged)",
       [](const ServerOptions& o) { return o.address; },
       [](const std::string& v, ServerOptions* o) -> Status {
         LOWBIT_RETURN_IF_ERROR(ValidateAddress("address", v));
         o->address = v;
         return Status::Ok();
       }},
      {"metrics-address", "HOST:PORT",
       "Prometheus endpoint (GET /metrics); empty disables it; port 0 picks a free port",
       [](const ServerOptions& o) { return o.metrics_address; },
       [](const std::string& v, ServerOptions* o) -> Status {
         if (!v.empty()) LOWBIT_RETURN_IF_ERROR(ValidateAddress("metrics-address", v));
         o->metrics_address = v;
         return Status::Ok();
       }},
      IntegerFlag("workers", "engine sessions per model; each runs one batch at a time",
                  &ServerOptions::workers, 1, 64),
      IntegerFlag("threads-per-worker", "threads inside one engine session (intra-op)",
                  &ServerOptions::threads_per_worker, 1, 64),
      IntegerFlag("max-batch", "largest number of frames run in one engine call",
                  &ServerOptions::max_batch, 1, 256),
      IntegerFlag("batch-timeout-us",
                  "microseconds the batcher waits after a batch's first frame for more frames; "
                  "0 runs whatever is queued at once",
                  &ServerOptions::batch_timeout_us, 0, 10'000'000),
      IntegerFlag("queue-capacity",
                  "frames waiting per model; over it a frame gets RESOURCE_EXHAUSTED and counts "
                  "as dropped",
                  &ServerOptions::queue_capacity, 1, 1'000'000),
      IntegerFlag("queue-memory-mb",
                  "MiB of frame payloads (encoded files, raw pixels) waiting per model; over it "
                  "a frame is refused like one over --queue-capacity",
                  &ServerOptions::queue_memory_mb, 1, 1 << 20),
      IntegerFlag("decode-memory-mb",
                  "MiB of decoded pixels in flight across all models (3 bytes per pixel); a "
                  "batch takes only frames that fit, the rest wait undecoded",
                  &ServerOptions::decode_memory_mb, 1, 1 << 20),
      IntegerFlag("latency-objective-ms",
                  "arrival-to-answer objective per frame; the batcher picks batch sizes from "
                  "measured service times to keep p99 under it; 0: no objective; a model "
                  "config's latency_objective_ms wins",
                  &ServerOptions::latency_objective_ms, 0, 600'000),
      IntegerFlag("max-pending-per-stream",
                  "frames of one DetectStream read but not yet answered and written; at the "
                  "limit the stream is not read (gRPC flow control slows the sender, nothing is "
                  "dropped); capped at --queue-capacity",
                  &ServerOptions::max_pending_per_stream, 1, 1'000'000),
      IntegerFlag("max-pending-kb-per-stream",
                  "KiB of one stream's results answered but not yet written (a client that "
                  "reads slowly or not at all); at the limit the stream is not read, as at "
                  "--max-pending-per-stream",
                  &ServerOptions::max_pending_kb_per_stream, 16, 1 << 20),
      IntegerFlag("max-streams",
                  "DetectStream and ModelStreamInfer calls open at once; one more gets "
                  "RESOURCE_EXHAUSTED",
                  &ServerOptions::max_streams, 1, 1'000'000),
      IntegerFlag("repository-poll-s",
                  "seconds between polls of the model repository (reloads what changed); 0: no "
                  "polling (SIGHUP and Admin.ReloadModels still reload)",
                  &ServerOptions::repository_poll_s, 0, 86'400),
      IntegerFlag("grpc-max-threads", "gRPC resource quota: threads gRPC may use",
                  &ServerOptions::grpc_max_threads, 2, 4096),
      IntegerFlag("grpc-memory-mb",
                  "gRPC resource quota: MiB for gRPC's buffers; under pressure gRPC shrinks its "
                  "read windows; at least --max-image-bytes",
                  &ServerOptions::grpc_memory_mb, 16, 1 << 20),
      IntegerFlag("max-image-bytes", "largest accepted image payload (encoded or raw), bytes",
                  &ServerOptions::max_image_bytes, 1, 1LL << 30),
      IntegerFlag("max-pixels", "largest accepted image, width * height",
                  &ServerOptions::max_pixels, 1, 1LL << 31),
      PathFlag("tls-cert",
               "serve gRPC over TLS with this PEM certificate chain (leaf first); needs "
               "--tls-key; the metrics endpoint stays plain HTTP (keep it on localhost or a "
               "management network)",
               &ServerOptions::tls_cert),
      PathFlag("tls-key", "unencrypted PEM private key of --tls-cert", &ServerOptions::tls_key),
      PathFlag("tls-client-ca",
               "mutual TLS: require every client to present a certificate signed by a CA in "
               "this PEM file; needs --tls-cert",
               &ServerOptions::tls_client_ca),
      {"log-level", "LEVEL", "trace, debug, info, warn, error, critical or off",
       [](const ServerOptions& o) { return o.log_level; },
       [](const std::string& v, ServerOptions* o) -> Status {
         static const char* kLevels[] = {"trace", "debug",    "info", "warn",
                                         "error", "critical", "off"};
         for (const char* level : kLevels) {
           if (v == level) {
             o->log_level = v;
             return Status::Ok();
           }
         }
         return InvalidArgument(
             "--log-level must be one of trace, debug, info, warn, error, "
             "critical, off; got '" +
             v + "'");
       }},
      IntegerFlag("shutdown-grace-ms",
                  "drain timeout: on SIGTERM/SIGINT streams stop reading at once and answer "
                  "what they accepted, new calls get UNAVAILABLE; calls still running after "
                  "this many milliseconds are cancelled and lowbitd exits 0; a second signal "
                  "exits at once (status 1)",
                  &ServerOptions::shutdown_grace_ms, 0, 600'000),
  };
  return flags;
}

constexpr int64_t kMiB = 1024 * 1024;

// Limits that only make sense together: an image the limits accept must fit
// the queue, the decode budget and gRPC's memory.
Status ValidateTogether(const ServerOptions& o) {
  if (o.queue_memory_mb * kMiB < o.max_image_bytes) {
    return InvalidArgument("--queue-memory-mb " + std::to_string(o.queue_memory_mb) +
                           " MiB cannot hold one image of --max-image-bytes " +
                           std::to_string(o.max_image_bytes) + "; raise it or lower the other");
  }
  if (o.decode_memory_mb * kMiB < 3 * o.max_pixels) {
    return InvalidArgument(
        "--decode-memory-mb " + std::to_string(o.decode_memory_mb) +
        " MiB cannot hold one decoded image of --max-pixels " + std::to_string(o.max_pixels) +
        " (3 bytes per pixel = " + std::to_string((3 * o.max_pixels + kMiB - 1) / kMiB) +
        " MiB); raise it or lower --max-pixels");
  }
  if (o.tls_cert.empty() != o.tls_key.empty()) {
    return InvalidArgument(o.tls_cert.empty() ? "--tls-key needs --tls-cert (the certificate)"
                                              : "--tls-cert needs --tls-key (its private key)");
  }
  if (!o.tls_client_ca.empty() && o.tls_cert.empty()) {
    return InvalidArgument(
        "--tls-client-ca needs --tls-cert and --tls-key: mutual TLS is TLS with client "
        "certificates");
  }
  if (o.grpc_memory_mb * kMiB < o.max_image_bytes) {
    return InvalidArgument("--grpc-memory-mb " + std::to_string(o.grpc_memory_mb) +
                           " MiB is below --max-image-bytes " + std::to_string(o.max_image_bytes) +
                           "; gRPC could not receive the largest accepted image");
  }
  return Status::Ok();
}

}  // namespace

Status SplitHostPort(const std::string& address, std::string* host, int* port) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return InvalidArgument("expected HOST:PORT (e.g. 0.0.0.0:50051), got '" + address + "'");
  }
  std::string host_part = address.substr(0, colon);
  if (host_part.front() == '[' && host_part.back() != ']') {
    return InvalidArgument("unbalanced brackets in IPv6 address '" + address + "'");
  }
  StatusOr<int64_t> parsed = ParseInteger("port", address.substr(colon + 1), 0, 65535);
  if (!parsed.ok()) {
    return InvalidArgument("port of '" + address + "' must be an integer in [0, 65535]");
  }
  *host = std::move(host_part);
  *port = static_cast<int>(*parsed);
  return Status::Ok();
}

StatusOr<CommandLine> ParseCommandLine(const std::vector<std::string>& args) {
  CommandLine result;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") {
      result.show_help = true;
      continue;
    }
    if (arg.rfind("--", 0) != 0) {
      return InvalidArgument("unexpected argument '" + arg + "' (flags start with --)");
    }
    std::string name = arg.substr(2);
    std::string value;
    bool has_value = false;
    if (size_t equals = name.find('='); equals != std::string::npos) {
      value = name.substr(equals + 1);
      name.resize(equals);
      has_value = true;
    }
    const FlagSpec* spec = nullptr;
    for (const FlagSpec& candidate : Flags()) {
      if (name == candidate.name) spec = &candidate;
    }
    if (spec == nullptr) return InvalidArgument("unknown flag --" + name);
    if (!has_value) {
      if (i + 1 >= args.size()) return InvalidArgument("--" + name + " needs a value");
      value = args[++i];
    }
    LOWBIT_RETURN_IF_ERROR(spec->apply(value, &result.options));
  }
  LOWBIT_RETURN_IF_ERROR(ValidateTogether(result.options));
  return result;
}

namespace {

// `words` joined by spaces into lines of at most `width` characters (a longer
// word gets a line of its own), each line starting with `indent`.
std::string Wrap(const std::vector<std::string>& words, const std::string& indent, size_t width) {
  std::string wrapped;
  std::string line = indent;
  for (const std::string& word : words) {
    if (line.size() > indent.size() && line.size() + 1 + word.size() > width) {
      wrapped += line + "\n";
      line = indent;
    }
    if (line.size() > indent.size()) line += " ";
    line += word;
  }
  return wrapped + line + "\n";
}

std::vector<std::string> SplitWords(const std::string& text) {
  std::vector<std::string> words;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find(' ', start);
    if (end == std::string::npos) end = text.size();
    if (end > start) words.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return words;
}

}  // namespace

std::string UsageText() {
  std::string text =
      "usage: lowbitd [FLAGS]\n\n"
      "Serves the object detectors of a model repository over gRPC (lowbit.v1.Detector,\n"
      "lowbit.v1.Admin, KServe v2 inference.GRPCInferenceService, grpc.health.v1.Health,\n"
      "server reflection) with Prometheus metrics.\n\n"
      "Signals: SIGTERM/SIGINT drain and exit 0 (a second one exits at once with status 1);\n"
      "SIGHUP reloads the model repository.\n\n"
      "Flags (--flag VALUE or --flag=VALUE):\n";
  const ServerOptions defaults;
  for (const FlagSpec& flag : Flags()) {
    std::vector<std::string> words = SplitWords(flag.help);
    const std::string default_value = flag.show_default(defaults);
    // Kept on one line so that it is easy to grep.
    if (!default_value.empty()) words.push_back("(default: " + default_value + ")");
    text +=
        std::string("  --") + flag.name + " " + flag.placeholder + "\n" + Wrap(words, "      ", 80);
  }
  text += "  --help\n      print this text and exit\n";
  return text;
}

}  // namespace lowbit::server
