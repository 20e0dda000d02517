// NodeTls: the credentials of a node with TLS (NodeTlsOptions, docs/security.md "TLS"):
// its gRPC server's, and its channels' to other members (which present the node's own
// certificate, for members that ask clients for one).
//
//   if (Status s = CheckTlsFiles(options.tls, log); !s.ok()) return s;   // before starting
//   NodeTls tls(options.tls);
//   builder.AddListeningPort(address, tls.ServerCredentials());
//   grpc::CreateCustomChannel(peer, tls.PeerCredentials(), args);
//
// Both read the files through one gRPC file-watcher provider, which reads them again every
// reload_interval: a renewed certificate is served, and presented, from then on. (gRPC's
// provider takes what it reads: the key and certificate must be replaced together.)
//
// Thread safety: immutable after construction; the credentials may be used from any thread.
#pragma once

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>

#include <functional>
#include <memory>
#include <optional>
#include <string_view>

#include "ringcache/node/node.h"
#include "ringcache/status.h"

namespace ringcache::internal {

// OK if `tls` is off, or its files can be read and hold what they should: a PEM
// certificate chain, a private key that matches its first certificate, CA certificates.
// INVALID_ARGUMENT naming the file and the problem otherwise; with tls.node_identity,
// also if the certificate's Common Name is not `node_id`. Logs a warning through `log`
// (may be empty) if the certificate has expired or expires within 14 days.
Status CheckTlsFiles(const NodeTlsOptions& tls, std::string_view node_id,
                     const std::function<void(LogLevel, std::string_view)>& log);

class NodeTls {
 public:
  // REQUIRES: tls.enabled() and CheckTlsFiles(tls) was OK.
  explicit NodeTls(const NodeTlsOptions& tls);

  // A port's credentials: its callers' certificates asked for as `client_certs` says
  // (default: the options' tls.client_certs).
  std::shared_ptr<grpc::ServerCredentials> ServerCredentials(
      std::optional<NodeTlsOptions::ClientCerts> client_certs = std::nullopt) const;
  std::shared_ptr<grpc::ChannelCredentials> PeerCredentials() const;

 private:
  const NodeTlsOptions options_;
  std::shared_ptr<grpc::experimental::CertificateProviderInterface> provider_;
};

}  // namespace ringcache::internal
