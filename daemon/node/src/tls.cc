#include "tls.h"

#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <ctime>
#include <string>

namespace ringcache::internal {
namespace {

// The text of OpenSSL's most recent error, or `fallback`.
std::string OpenSslError(const char* fallback) {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return fallback;
  char buf[256];
  ERR_error_string_n(code, buf, sizeof buf);
  return buf;
}

struct BioCloser {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Closer {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyCloser {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

std::unique_ptr<BIO, BioCloser> Open(const std::string& path) {
  return std::unique_ptr<BIO, BioCloser>(BIO_new_file(path.c_str(), "r"));
}

// The first certificate of the PEM file at `path`, and how many it holds.
Status ReadCertificates(std::string_view field, const std::string& path,
                        std::unique_ptr<X509, X509Closer>* first) {
  auto bio = Open(path);
  if (bio == nullptr) {
    ERR_clear_error();
    return Status::InvalidArgument(std::string(field) + " " + path + " cannot be read");
  }
  int count = 0;
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    if (count++ == 0 && first != nullptr) {
      first->reset(cert);
    } else {
      X509_free(cert);
    }
  }
  ERR_clear_error();  // The end of the file reads as an error.
  if (count == 0) {
    return Status::InvalidArgument(std::string(field) + " " + path +
                                   " holds no PEM certificate (-----BEGIN CERTIFICATE-----)");
  }
  return Status::Ok();
}

// The certificate's subject Common Name in UTF-8, as gRPC reads it (the first), and how
// many it has.
std::string CommonName(X509* cert, int* count) {
  const X509_NAME* subject = X509_get_subject_name(cert);
  const int first = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  *count = 0;
  for (int i = first; i >= 0; i = X509_NAME_get_index_by_NID(subject, NID_commonName, i)) {
    ++*count;
  }
  if (first < 0) return {};
  unsigned char* utf8 = nullptr;
  const int n =
      ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, first)));
  if (n < 0) {
    ERR_clear_error();
    return {};
  }
  std::string out(reinterpret_cast<const char*>(utf8), static_cast<size_t>(n));
  OPENSSL_free(utf8);
  return out;
}

}  // namespace

Status CheckTlsFiles(const NodeTlsOptions& tls, std::string_view node_id,
                     const std::function<void(LogLevel, std::string_view)>& log) {
  if (!tls.enabled()) return Status::Ok();
  std::unique_ptr<X509, X509Closer> cert;
  if (Status s = ReadCertificates("tls.cert_file", tls.cert_file, &cert); !s.ok()) return s;
  auto key_bio = Open(tls.key_file);
  if (key_bio == nullptr) {
    ERR_clear_error();
    return Status::InvalidArgument("tls.key_file " + tls.key_file + " cannot be read");
  }
  std::unique_ptr<EVP_PKEY, KeyCloser> key(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (key == nullptr) {
    return Status::InvalidArgument("tls.key_file " + tls.key_file +
                                   " holds no PEM private key (an encrypted key is not "
                                   "supported): " +
                                   OpenSslError("unreadable"));
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return Status::InvalidArgument("tls.key_file " + tls.key_file +
                                   " is not the key of the certificate in " + tls.cert_file);
  }
  if (!tls.ca_file.empty()) {
    if (Status s = ReadCertificates("tls.ca_file", tls.ca_file, nullptr); !s.ok()) return s;
  }
  if (tls.node_identity) {
    int count = 0;
    const std::string cn = CommonName(cert.get(), &count);
    if (count > 1) {
      return Status::InvalidArgument("tls.node_identity is on, but the certificate in " +
                                     tls.cert_file + " has " + std::to_string(count) +
                                     " Common Names: a member's certificate names one node id");
    }
    if (cn != node_id) {
      return Status::InvalidArgument(
          "tls.node_identity is on, but the certificate in " + tls.cert_file + " names " +
          (cn.empty() ? std::string("no node id (no subject Common Name)")
                      : "node " + cn + " (its Common Name)") +
          " and this node's id is " + std::string(node_id) +
          ": other members would refuse its calls. Give each node a certificate with "
          "CN=<its node id>");
    }
  }
  if (log) {
    const ASN1_TIME* not_after = X509_get0_notAfter(cert.get());
    const std::time_t soon = std::time(nullptr) + 14 * 86400;
    if (X509_cmp_current_time(not_after) <= 0) {
      log(LogLevel::kWarn, "the certificate in " + tls.cert_file +
                               " has expired: clients and members will refuse it (it is read "
                               "again every " +
                               std::to_string(tls.reload_interval.count()) + " s)");
    } else if (X509_cmp_time(not_after, const_cast<std::time_t*>(&soon)) <= 0) {
      log(LogLevel::kWarn, "the certificate in " + tls.cert_file + " expires within 14 days");
    }
  }
  return Status::Ok();
}

NodeTls::NodeTls(const NodeTlsOptions& tls) : options_(tls) {
  const auto interval = static_cast<unsigned int>(tls.reload_interval.count());
  if (tls.ca_file.empty()) {
    provider_ = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
        tls.key_file, tls.cert_file, interval);
  } else {
    provider_ = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
        tls.key_file, tls.cert_file, tls.ca_file, interval);
  }
}

std::shared_ptr<grpc::ServerCredentials> NodeTls::ServerCredentials(
    std::optional<NodeTlsOptions::ClientCerts> client_certs) const {
  grpc::experimental::TlsServerCredentialsOptions options(provider_);
  options.watch_identity_key_cert_pairs();
  if (!options_.ca_file.empty()) options.watch_root_certs();
  switch (client_certs.value_or(options_.client_certs)) {
    case NodeTlsOptions::ClientCerts::kNone:
      options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
      break;
    case NodeTlsOptions::ClientCerts::kVerify:
      options.set_cert_request_type(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
      break;
    case NodeTlsOptions::ClientCerts::kRequire:
      options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
      break;
  }
  return grpc::experimental::TlsServerCredentials(options);
}

std::shared_ptr<grpc::ChannelCredentials> NodeTls::PeerCredentials() const {
  grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(provider_);
  options.watch_identity_key_cert_pairs();  // For members that ask for a certificate.
  if (!options_.ca_file.empty()) options.watch_root_certs();  // Else the system's roots.
  return grpc::experimental::TlsCredentials(options);
}

}  // namespace ringcache::internal
