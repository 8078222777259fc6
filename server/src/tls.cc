#include "tls.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <fstream>
#include <iterator>
#include <string>

#include <grpcpp/security/server_credentials.h>

namespace lowbit::server {
namespace {

// PEM files are small: a certificate chain or a key is a few KiB; anything
// over this is not what the flag wants.
constexpr std::streamoff kMaxPemBytes = 1 << 20;

StatusOr<std::string> ReadPemFile(const std::string& flag, const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    return InvalidArgument("--" + flag + " " + path +
                           ": cannot open the file (missing, or not readable by this user?)");
  }
  file.seekg(0, std::ios::end);
  const std::streamoff size = file.tellg();
  file.seekg(0);
  if (size < 0 || size > kMaxPemBytes) {
    return InvalidArgument("--" + flag + " " + path + ": " + std::to_string(size) +
                           " bytes is not a PEM file of a certificate or key");
  }
  std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  if (!file.good() && !file.eof()) {
    return InvalidArgument("--" + flag + " " + path + ": read error");
  }
  return text;
}

std::string OpenSslError() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "no PEM block found";
  char text[256];
  ERR_error_string_n(code, text, sizeof(text));
  return text;
}

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Free {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using Bio = std::unique_ptr<BIO, BioFree>;
using Certificate = std::unique_ptr<X509, X509Free>;
using PrivateKey = std::unique_ptr<EVP_PKEY, KeyFree>;

Bio MemoryBio(const std::string& pem) {
  return Bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// The first certificate of a PEM file (the leaf of a chain).
StatusOr<Certificate> FirstCertificate(const std::string& flag, const std::string& path,
                                       const std::string& pem) {
  ERR_clear_error();
  Bio bio = MemoryBio(pem);
  Certificate first(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (first == nullptr) {
    return InvalidArgument("--" + flag + " " + path + " holds no PEM certificate (" +
                           OpenSslError() + ")");
  }
  return first;
}

}  // namespace

StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ServerOptions& options) {
  if (options.tls_cert.empty()) return grpc::InsecureServerCredentials();
  LOWBIT_ASSIGN_OR_RETURN(std::string cert_pem, ReadPemFile("tls-cert", options.tls_cert));
  LOWBIT_ASSIGN_OR_RETURN(std::string key_pem, ReadPemFile("tls-key", options.tls_key));
  LOWBIT_ASSIGN_OR_RETURN(Certificate leaf,
                          FirstCertificate("tls-cert", options.tls_cert, cert_pem));
  ERR_clear_error();
  Bio key_bio = MemoryBio(key_pem);
  PrivateKey key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (key == nullptr) {
    return InvalidArgument("--tls-key " + options.tls_key +
                           " holds no unencrypted PEM private key (" + OpenSslError() + ")");
  }
  if (X509_check_private_key(leaf.get(), key.get()) != 1) {
    ERR_clear_error();
    return InvalidArgument("--tls-key " + options.tls_key +
                           " does not belong to the certificate in --tls-cert " + options.tls_cert +
                           " (the key pairs with another certificate)");
  }

  grpc::SslServerCredentialsOptions ssl(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  ssl.pem_key_cert_pairs.push_back({std::move(key_pem), std::move(cert_pem)});
  if (!options.tls_client_ca.empty()) {
    LOWBIT_ASSIGN_OR_RETURN(std::string ca_pem,
                            ReadPemFile("tls-client-ca", options.tls_client_ca));
    // At least one CA certificate: gRPC would otherwise fail every handshake.
    LOWBIT_RETURN_IF_ERROR(
        FirstCertificate("tls-client-ca", options.tls_client_ca, ca_pem).status());
    ssl.pem_root_certs = std::move(ca_pem);
    ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(ssl);
}

std::string DescribeTransport(const ServerOptions& options) {
  if (options.tls_cert.empty()) return "plaintext";
  if (options.tls_client_ca.empty()) return "TLS, certificate " + options.tls_cert;
  return "mutual TLS, certificate " + options.tls_cert + ", client certificates signed by " +
         options.tls_client_ca + " required";
}

}  // namespace lowbit::server
