// lowbitd's flags: defaults, both syntaxes, and rejection of bad values.
#include "options.h"

#include <gtest/gtest.h>

namespace lowbit::server {
namespace {

StatusOr<CommandLine> Parse(std::vector<std::string> args) { return ParseCommandLine(args); }

// The error message of parsing `args`, which must fail with INVALID_ARGUMENT.
std::string ErrorOf(std::vector<std::string> args) {
  StatusOr<CommandLine> parsed = ParseCommandLine(args);
  EXPECT_FALSE(parsed.ok());
  if (parsed.ok()) return "";
  EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
  return parsed.status().message();
}

TEST(OptionsTest, NoFlagsGiveTheDocumentedDefaults) {
  StatusOr<CommandLine> parsed = Parse({});
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_FALSE(parsed->show_help);
  const ServerOptions& o = parsed->options;
  EXPECT_EQ(o.model_repo, "models");
  EXPECT_EQ(o.default_model, "");
  EXPECT_EQ(o.address, "0.0.0.0:50051");
  EXPECT_EQ(o.metrics_address, "0.0.0.0:9090");
  EXPECT_EQ(o.workers, 2);
  EXPECT_EQ(o.threads_per_worker, 1);
  EXPECT_EQ(o.max_batch, 4);
  EXPECT_EQ(o.batch_timeout_us, 2000);
  EXPECT_EQ(o.queue_capacity, 64);
  EXPECT_EQ(o.max_image_bytes, 16 * 1024 * 1024);
  EXPECT_EQ(o.max_pixels, 32 * 1024 * 1024);
  EXPECT_EQ(o.log_level, "info");
  EXPECT_EQ(o.shutdown_grace_ms, 5000);
  EXPECT_EQ(o.queue_memory_mb, 256);
  EXPECT_EQ(o.decode_memory_mb, 512);
  EXPECT_EQ(o.latency_objective_ms, 0);
  EXPECT_EQ(o.max_pending_per_stream, 64);
  EXPECT_EQ(o.max_pending_kb_per_stream, 1024);
  EXPECT_EQ(o.max_streams, 256);
  EXPECT_EQ(o.repository_poll_s, 0);
  EXPECT_EQ(o.grpc_max_threads, 16);
  EXPECT_EQ(o.grpc_memory_mb, 512);
}

TEST(OptionsTest, ParsesEveryFlagInBothSyntaxes) {
  StatusOr<CommandLine> parsed = Parse({
      "--model-repo",
      "/srv/models",
      "--default-model=blazeface",
      "--address",
      "127.0.0.1:0",
      "--metrics-address=",
      "--workers",
      "3",
      "--threads-per-worker=2",
      "--max-batch",
      "8",
      "--batch-timeout-us=0",
      "--queue-capacity",
      "5",
      "--max-image-bytes=1000",
      "--max-pixels",
      "640000",
      "--log-level=debug",
      "--shutdown-grace-ms",
      "100",
      "--queue-memory-mb=64",
      "--decode-memory-mb",
      "128",
      "--latency-objective-ms=40",
      "--max-pending-per-stream",
      "8",
      "--max-pending-kb-per-stream=64",
      "--max-streams",
      "12",
      "--repository-poll-s=5",
      "--grpc-max-threads",
      "4",
      "--grpc-memory-mb=32",
  });
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  const ServerOptions& o = parsed->options;
  EXPECT_EQ(o.model_repo, "/srv/models");
  EXPECT_EQ(o.default_model, "blazeface");
  EXPECT_EQ(o.address, "127.0.0.1:0");
  EXPECT_EQ(o.metrics_address, "");  // disabled
  EXPECT_EQ(o.workers, 3);
  EXPECT_EQ(o.threads_per_worker, 2);
  EXPECT_EQ(o.max_batch, 8);
  EXPECT_EQ(o.batch_timeout_us, 0);
  EXPECT_EQ(o.queue_capacity, 5);
  EXPECT_EQ(o.max_image_bytes, 1000);
  EXPECT_EQ(o.max_pixels, 640000);
  EXPECT_EQ(o.log_level, "debug");
  EXPECT_EQ(o.shutdown_grace_ms, 100);
  EXPECT_EQ(o.queue_memory_mb, 64);
  EXPECT_EQ(o.decode_memory_mb, 128);
  EXPECT_EQ(o.latency_objective_ms, 40);
  EXPECT_EQ(o.max_pending_per_stream, 8);
  EXPECT_EQ(o.max_pending_kb_per_stream, 64);
  EXPECT_EQ(o.max_streams, 12);
  EXPECT_EQ(o.repository_poll_s, 5);
  EXPECT_EQ(o.grpc_max_threads, 4);
  EXPECT_EQ(o.grpc_memory_mb, 32);
}

TEST(OptionsTest, HelpIsRecognised) {
  StatusOr<CommandLine> parsed = Parse({"--help"});
  ASSERT_TRUE(parsed.ok());
  EXPECT_TRUE(parsed->show_help);
  EXPECT_TRUE(Parse({"-h"})->show_help);
}

TEST(OptionsTest, UsageExplainsEveryFlagWithItsDefault) {
  const std::string usage = UsageText();
  for (const char* flag : {"--model-repo",
                           "--default-model",
                           "--address",
                           "--metrics-address",
                           "--workers",
                           "--threads-per-worker",
                           "--max-batch",
                           "--batch-timeout-us",
                           "--queue-capacity",
                           "--max-image-bytes",
                           "--max-pixels",
                           "--log-level",
                           "--shutdown-grace-ms",
                           "--queue-memory-mb",
                           "--decode-memory-mb",
                           "--latency-objective-ms",
                           "--max-pending-per-stream",
                           "--max-pending-kb-per-stream",
                           "--max-streams",
                           "--repository-poll-s",
                           "--grpc-max-threads",
                           "--grpc-memory-mb",
                           "--help"}) {
    EXPECT_NE(usage.find(flag), std::string::npos) << flag;
  }
  EXPECT_NE(usage.find("(default: 0.0.0.0:50051)"), std::string::npos);
  EXPECT_NE(usage.find("(default: 2000)"), std::string::npos);
  EXPECT_NE(usage.find("(default: 16777216)"), std::string::npos);
  EXPECT_NE(usage.find("(default: 512)"), std::string::npos);
  EXPECT_NE(usage.find("SIGHUP"), std::string::npos);
}

TEST(OptionsTest, RejectsLimitsThatCannotHoldTheLargestAcceptedImage) {
  EXPECT_NE(ErrorOf({"--queue-memory-mb=1", "--max-image-bytes=2000000"})
                .find("--queue-memory-mb 1 MiB cannot hold one image"),
            std::string::npos);
  EXPECT_NE(ErrorOf({"--decode-memory-mb=64"}).find("--decode-memory-mb 64 MiB cannot hold"),
            std::string::npos);
  EXPECT_TRUE(Parse({"--decode-memory-mb=64", "--max-pixels=4000000"}).ok());
  EXPECT_NE(ErrorOf({"--grpc-memory-mb=16", "--max-image-bytes=20000000", "--queue-memory-mb=64"})
                .find("--grpc-memory-mb 16 MiB is below --max-image-bytes"),
            std::string::npos);
}

TEST(OptionsTest, RejectsUnknownFlagsAndStrayArguments) {
  EXPECT_NE(ErrorOf({"--worker", "2"}).find("unknown flag --worker"), std::string::npos);
  EXPECT_NE(ErrorOf({"models"}).find("unexpected argument 'models'"), std::string::npos);
}

TEST(OptionsTest, RejectsAFlagWithoutItsValue) {
  EXPECT_NE(ErrorOf({"--workers"}).find("--workers needs a value"), std::string::npos);
}

TEST(OptionsTest, RejectsMalformedIntegers) {
  for (const char* bad : {"", "two", "2x", "1.5", " 2", "-"}) {
    EXPECT_NE(ErrorOf({"--workers", bad}).find("--workers expects an integer"), std::string::npos)
        << "'" << bad << "'";
  }
}

TEST(OptionsTest, RejectsIntegersOutOfRange) {
  EXPECT_NE(ErrorOf({"--workers=0"}).find("--workers must be in [1, 64], got 0"),
            std::string::npos);
  EXPECT_NE(ErrorOf({"--max-batch=-1"}).find("--max-batch must be in"), std::string::npos);
  EXPECT_NE(ErrorOf({"--queue-capacity=0"}).find("--queue-capacity"), std::string::npos);
  EXPECT_NE(ErrorOf({"--batch-timeout-us=-5"}).find("--batch-timeout-us"), std::string::npos);
  EXPECT_NE(ErrorOf({"--max-pending-per-stream=0"}).find("--max-pending-per-stream"),
            std::string::npos);
  EXPECT_NE(ErrorOf({"--latency-objective-ms=-1"}).find("--latency-objective-ms"),
            std::string::npos);
  EXPECT_NE(ErrorOf({"--repository-poll-s=-1"}).find("--repository-poll-s"), std::string::npos);
  EXPECT_NE(ErrorOf({"--grpc-max-threads=1"}).find("--grpc-max-threads must be in [2, 4096]"),
            std::string::npos);
  EXPECT_NE(ErrorOf({"--max-image-bytes=0"}).find("--max-image-bytes"), std::string::npos);
  EXPECT_NE(ErrorOf({"--threads-per-worker=99999999999999999999"}).find("--threads-per-worker"),
            std::string::npos);
}

TEST(OptionsTest, RejectsBadAddresses) {
  EXPECT_NE(ErrorOf({"--address", "localhost"}).find("--address: expected HOST:PORT"),
            std::string::npos);
  EXPECT_NE(ErrorOf({"--address", ":50051"}).find("--address"), std::string::npos);
  EXPECT_NE(ErrorOf({"--address", "0.0.0.0:65536"}).find("[0, 65535]"), std::string::npos);
  EXPECT_NE(ErrorOf({"--metrics-address", "0.0.0.0:http"}).find("--metrics-address"),
            std::string::npos);
  EXPECT_TRUE(Parse({"--address", "[::1]:50051"}).ok());
}

TEST(OptionsTest, RejectsUnknownLogLevels) {
  EXPECT_NE(ErrorOf({"--log-level", "verbose"}).find("--log-level must be one of"),
            std::string::npos);
  EXPECT_TRUE(Parse({"--log-level", "warn"}).ok());
}

TEST(OptionsTest, TlsFlagsTakeFilesAndGoTogether) {
  const ServerOptions defaults = Parse({})->options;
  EXPECT_EQ(defaults.tls_cert, "");  // plaintext unless asked
  EXPECT_EQ(defaults.tls_key, "");
  EXPECT_EQ(defaults.tls_client_ca, "");

  StatusOr<CommandLine> tls =
      Parse({"--tls-cert", "/etc/lowbit/server.crt", "--tls-key=/etc/lowbit/server.key"});
  ASSERT_TRUE(tls.ok()) << tls.status().ToString();
  EXPECT_EQ(tls->options.tls_cert, "/etc/lowbit/server.crt");
  EXPECT_EQ(tls->options.tls_key, "/etc/lowbit/server.key");
  EXPECT_EQ(tls->options.tls_client_ca, "");

  StatusOr<CommandLine> mutual =
      Parse({"--tls-cert=a.crt", "--tls-key", "a.key", "--tls-client-ca", "cameras-ca.crt"});
  ASSERT_TRUE(mutual.ok()) << mutual.status().ToString();
  EXPECT_EQ(mutual->options.tls_client_ca, "cameras-ca.crt");

  // Files are only read when the server starts (tls.cc); here, the pairing.
  EXPECT_NE(ErrorOf({"--tls-cert", "a.crt"}).find("--tls-cert needs --tls-key"), std::string::npos);
  EXPECT_NE(ErrorOf({"--tls-key", "a.key"}).find("--tls-key needs --tls-cert"), std::string::npos);
  EXPECT_NE(ErrorOf({"--tls-client-ca", "ca.crt"}).find("--tls-client-ca needs --tls-cert"),
            std::string::npos);
  EXPECT_NE(ErrorOf({"--tls-cert=", "--tls-key", "a.key"}).find("--tls-cert needs a file path"),
            std::string::npos);
  EXPECT_NE(ErrorOf({"--tls-cert"}).find("--tls-cert needs a value"), std::string::npos);

  const std::string usage = UsageText();
  for (const char* text : {"--tls-cert FILE", "--tls-key FILE", "--tls-client-ca FILE",
                           "metrics endpoint stays plain HTTP"}) {
    EXPECT_NE(usage.find(text), std::string::npos) << text;
  }
}

TEST(OptionsTest, SplitHostPortHandlesIpv4AndIpv6) {
  std::string host;
  int port = -1;
  ASSERT_TRUE(SplitHostPort("127.0.0.1:0", &host, &port).ok());
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, 0);
  ASSERT_TRUE(SplitHostPort("[::]:9090", &host, &port).ok());
  EXPECT_EQ(host, "[::]");
  EXPECT_EQ(port, 9090);
  EXPECT_FALSE(SplitHostPort("[::1:9090", &host, &port).ok());
}

}  // namespace
}  // namespace lowbit::server
