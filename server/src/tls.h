// lowbitd's TLS: the gRPC server credentials --tls-cert, --tls-key and
// --tls-client-ca ask for, with the files read and checked at start-up.
#pragma once

#include <memory>

#include <grpcpp/security/server_credentials.h>

#include "lowbit/engine/status.h"
#include "options.h"

namespace lowbit::server {

// Plaintext (grpc::InsecureServerCredentials) without --tls-cert; otherwise
// TLS with that certificate chain and --tls-key, and with --tls-client-ca
// mutual TLS: a client must present a certificate that CA signed.
// INVALID_ARGUMENT naming the flag and file for a file that cannot be read,
// holds no PEM certificate (key), or a key that does not belong to the
// certificate, so lowbitd refuses to start instead of failing handshakes.
StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ServerOptions& options);

// "plaintext", "TLS" or "mutual TLS (client certificates signed by FILE
// required)", for the start-up log line.
std::string DescribeTransport(const ServerOptions& options);

}  // namespace lowbit::server
