// ClusterAuth: who may use the cluster plane (docs/security.md).
//
// The cluster plane is what only members call: the Membership service (join, views,
// heartbeats, leave, transition reports), the Replication service, and client calls that
// a member forwards (they skip routing, and their epoch decides whether the owner sends
// them on). With a cluster secret, every call a node makes to another carries it in the
// metadata `ringcache-cluster-secret` (PeerPool's channels add it, so no call site can
// forget it), and each of those rpcs is refused with UNAUTHENTICATED before anything else
// unless it carries the same secret, compared in constant time. The secret proves only
// that the caller is *a* member, not which one, and without TLS it travels in clear.
// Without a secret the plane is open to anyone who can reach the port; the node says so
// in its log at startup.
//
// With node identity (NodeTlsOptions::node_identity: mutual TLS, member certificates
// whose Common Name is the node id), a node also knows *which* member calls, and
// CheckClaim holds each call to it: the member a call says it comes from (a heartbeat's
// from_id, a replication stream's primary, ...) must be the one its certificate names.
//
// Refusals are counted (refusals(); ringcache_cluster_auth_failures_total) and logged at most once
// a second, with the number left unlogged since the last line.
//
// Thread safety: the secret is immutable; Check may be called from any thread.
#pragma once

#include <grpcpp/server_context.h>
#include <grpcpp/support/client_interceptor.h>
#include <grpcpp/support/status.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "auth_support.h"
#include "ringcache/node/node.h"
#include "ringcache/status.h"

namespace ringcache::internal {

class ClusterAuth {
 public:
  static constexpr std::string_view kMetadataKey = "ringcache-cluster-secret";
  static constexpr size_t kMinSecretBytes = 16;
  static constexpr size_t kMaxSecretBytes = 1024;

  // OK, or INVALID_ARGUMENT naming the limit a secret breaks (empty is OK: no secret).
  // Metadata values must be printable ASCII, so the secret is too.
  static Status ValidateSecret(std::string_view secret);

  // `secret` empty: the plane is open. `log` may be empty. `node_identity`: callers'
  // certificates name their node id (the server requires and verifies them).
  ClusterAuth(std::string secret, std::function<void(LogLevel, std::string_view)> log,
              bool node_identity = false);

  bool open() const { return secret_.empty(); }
  bool node_identity() const { return node_identity_; }
  // Calls refused so far.
  uint64_t refusals() const { return refusals_.count(); }

  // OK if the plane is open or the call carries the secret; otherwise UNAUTHENTICATED
  // naming `what` (e.g. "Membership.PushView"), counted and logged with the caller's
  // address. Reads the call's metadata without allocating.
  grpc::Status Check(grpc::ServerContextBase* ctx, std::string_view what) const;
  // The same for a secret already read from the call's metadata (`presented`; empty if
  // the call had none).
  grpc::Status Check(std::string_view presented, grpc::ServerContextBase* ctx,
                     std::string_view what) const;

  // The node id the caller's verified certificate names (its subject Common Name); empty
  // without a certificate (or over a connection without TLS).
  static std::string CallerId(const grpc::ServerContextBase* ctx);
  // OK without node identity, or if `claimed` (the call's `field`, e.g.
  // "HeartbeatRequest.from_id") is the node id the caller's certificate names; otherwise
  // PERMISSION_DENIED naming both ids, counted and logged.
  grpc::Status CheckClaim(const grpc::ServerContextBase* ctx, std::string_view what,
                          std::string_view field, std::string_view claimed) const;

  // Interceptors that add the secret to every call of a channel (none when open).
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>>
  ClientInterceptors() const;

 private:
  void NoteRefusal(grpc::ServerContextBase* ctx, std::string_view what, bool missing) const;

  const std::string secret_;
  const bool node_identity_;
  RefusalLog refusals_;
};

}  // namespace ringcache::internal
