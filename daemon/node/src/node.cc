// Node: operations over the local cache (writes through the ReplicatedStore), and the
// lifecycle of its parts.
//
// Start order: cache -> PeerPool -> ReplicatedStore -> Membership -> FailoverManager (its
// heartbeat transport, hooks into Membership) -> CacheService -> CallbackServer (Cache +
// Membership + Replication services; with a cluster port, a second CallbackServer serves
// them there and the client port keeps Cache and an operator's Leave) -> the store, the failover
// manager and the node state subscribe to views -> JoinOrBootstrap (needs the server: peers push
// views to us while we join) -> heartbeats start -> cluster metrics -> metrics endpoint. Shutdown:
// the gRPC server (in-flight calls finish, writes still replicate), then the failover manager
// (heartbeats), membership (pushes), the store (links), the metrics endpoint, the janitor. Members
// of Impl are destroyed in reverse order of declaration.
//
// Node state (NodeState): recomputed under state_mu on every adopted view and every fencing
// change, published in an atomic (the hot path reads it with one relaxed load) and mirrored
// in the gRPC health status (SERVING only in kServing).
//
// Leaving: Membership calls the left hook once the node has left the view; the node then
// shuts itself down from its own thread (self_shutdown), never from a gRPC thread, so that
// Wait() returns; ~Node joins that thread.
//
// Lock order: state_mu -> (membership's snapshot, the gRPC health service). shutdown_mu is
// a leaf; neither is held while calling into the gRPC server's shutdown, the metrics
// server, membership's blocking calls, the store or the cache.
#include "ringcache/node/node.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <random>
#include <thread>
#include <utility>

#include "cache_service.h"
#include "callback_server.h"
#include "client_auth.h"
#include "cluster_auth.h"
#include "failover_manager.h"
#include "heap_releaser.h"
#include "keyspace_events.h"
#include "membership.h"
#include "node_metrics.h"
#include "peer_pool.h"
#include "persister.h"
#include "pubsub_relay.h"
#include "replication.h"
#include "resp/server.h"
#include "ringcache/metrics/http_metrics_server.h"
#include "ringcache/metrics/metrics.h"
#include "tls.h"

#ifndef RINGCACHE_VERSION
#error "RINGCACHE_VERSION must be defined by the build (the CMake project version)"
#endif

namespace ringcache {
namespace {

// Keyspace events go out as pub/sub messages, through the relay to every node.
class RelayEventSink final : public internal::KeyspaceEvents::Sink {
 public:
  explicit RelayEventSink(internal::PubSubRelay* relay) : relay_(relay) {}
  void Publish(std::string channel, std::string payload, uint64_t version) override {
    relay_->PublishEvent(std::move(channel), std::move(payload), version);
  }
  void Dropped(uint64_t count) override { relay_->NoteDropped(count); }

 private:
  internal::PubSubRelay* const relay_;
};

// Room for the protobuf framing of a maximum Set beyond its key and value.
constexpr uint64_t kMessageSlackBytes = 64 << 10;
// Smallest cache budget accepted (CacheOptions' own minimum).
constexpr uint64_t kMinMemoryBytes = 128;
// Smallest replication backlog accepted.
constexpr uint64_t kMinBacklogBytes = uint64_t{1} << 20;
// Deadline of each membership rpc (Join, PushView, the probe of an old address).
constexpr std::chrono::milliseconds kMembershipCallTimeout{2000};
// Shortest heartbeat interval accepted.
constexpr std::chrono::milliseconds kMinHeartbeatInterval{10};
// How often Leave() looks whether the node is shutting down while it waits for the drain.
constexpr std::chrono::milliseconds kLeavePoll{100};

std::string Hostname() {
  char name[HOST_NAME_MAX + 1] = {};
  if (gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

// "host:0" + 43817 -> "host:43817"; "[::1]:0" -> "[::1]:43817".
std::string WithPort(const std::string& host_port, int port) {
  const size_t colon = host_port.rfind(':');
  const std::string host = colon == std::string::npos ? host_port : host_port.substr(0, colon);
  return host + ":" + std::to_string(port);
}

// OK if `address` looks like HOST:PORT with a numeric port in [0, 65535].
Status CheckHostPort(const char* field, const std::string& address) {
  const size_t colon = address.rfind(':');
  const auto bad = [&](const char* why) {
    return Status::InvalidArgument(std::string(field) + " \"" + address + "\" " + why +
                                   " (expected HOST:PORT, e.g. 127.0.0.1:7700)");
  };
  if (colon == std::string::npos) return bad("has no port");
  const std::string port = address.substr(colon + 1);
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos || std::stoul(port) > 65535) {
    return bad("has an invalid port");
  }
  if (colon == 0) return bad("has no host");
  return Status::Ok();
}

// True if `address`'s host is a wildcard that other nodes cannot dial.
bool HasWildcardHost(const std::string& address) {
  const std::string host = address.substr(0, address.rfind(':'));
  return host == "0.0.0.0" || host == "[::]" || host == "::" || host == "*" || host.empty();
}

// True if `address`'s host is a loopback address: 127.0.0.0/8, [::1] or localhost.
bool HasLoopbackHost(const std::string& address) {
  const std::string host = address.substr(0, address.rfind(':'));
  const bool ipv4_loopback =
      host.starts_with("127.") && host.find_first_not_of("0123456789.") == std::string::npos;
  return ipv4_loopback || host == "localhost" || host == "[::1]" || host == "::1";
}

// Protected mode (NodeOptions::protected_mode): OK, or why `field`'s address may not be
// used without client tokens.
Status CheckProtected(std::string_view field, const std::string& address) {
  if (address.empty() || HasLoopbackHost(address)) return Status::Ok();
  return Status::InvalidArgument(
      std::string(field) + " " + address +
      " is not a loopback address and there are no client tokens (--auth-tokens-file): "
      "anyone who can reach it could read and write every key. Give the node a tokens file, "
      "or turn protected mode off (--protected-mode=false) where the network is trusted "
      "(docs/security.md)");
}

// MembershipOptions::admin_token: an admin client token may ask for a Leave. Empty
// without client tokens.
std::function<grpc::Status(std::string_view, grpc::ServerContextBase*, std::string_view)>
AdminTokenCheck(const internal::ClientAuth* clients) {
  if (!clients->enabled()) return {};
  return [clients](std::string_view authorization, grpc::ServerContextBase* ctx,
                   std::string_view what) {
    internal::Role role = internal::Role::kNone;
    grpc::Status s = clients->Authenticate(authorization, ctx, what, &role);
    if (s.ok() && role < internal::Role::kAdmin) {
      s = internal::RoleTooLow(what, internal::Role::kAdmin, role);
    }
    return s;
  };
}

// Node ids travel in request metadata and log lines: printable ASCII, no spaces or commas.
Status CheckNodeId(const std::string& id) {
  if (id.size() > 128) {
    return Status::InvalidArgument("node_id must be at most 128 bytes, got " +
                                   std::to_string(id.size()));
  }
  for (const char c : id) {
    if (c <= ' ' || c > '~' || c == ',') {
      return Status::InvalidArgument("node_id \"" + id +
                                     "\" may only hold printable ASCII without spaces or "
                                     "commas (e.g. cache-1)");
    }
  }
  return Status::Ok();
}

Status CheckPositive(const char* field, std::chrono::milliseconds value,
                     std::chrono::milliseconds max) {
  if (value.count() <= 0 || value > max) {
    return Status::InvalidArgument(std::string(field) + " must be in [1, " +
                                   std::to_string(max.count()) + "] ms, got " +
                                   std::to_string(value.count()));
  }
  return Status::Ok();
}

Status CheckClusterOptions(const NodeOptions& o) {
  if (Status s = CheckNodeId(o.node_id); !s.ok()) return s;
  for (const std::string& seed : o.seeds) {
    if (Status s = CheckHostPort("seeds", seed); !s.ok()) return s;
    if (seed.substr(seed.rfind(':') + 1) == "0") {
      return Status::InvalidArgument("seeds \"" + seed +
                                     "\" has port 0 (a seed is a running node's address)");
    }
  }
  if (!o.advertise_address.empty()) {
    if (Status s = CheckHostPort("advertise_address", o.advertise_address); !s.ok()) return s;
    if (HasWildcardHost(o.advertise_address) ||
        o.advertise_address.substr(o.advertise_address.rfind(':') + 1) == "0") {
      return Status::InvalidArgument("advertise_address \"" + o.advertise_address +
                                     "\" must be an address others can dial (no wildcard "
                                     "host, no port 0)");
    }
  } else if (!o.seeds.empty() && HasWildcardHost(o.listen_address)) {
    return Status::InvalidArgument(
        "advertise_address is required when listen_address \"" + o.listen_address +
        "\" has a wildcard host and seeds are given: other nodes cannot dial a wildcard");
  }
  if (!o.cluster_listen_address.empty()) {
    if (Status s = CheckHostPort("cluster_listen_address", o.cluster_listen_address); !s.ok()) {
      return s;
    }
    const auto port_of = [](const std::string& a) { return a.substr(a.rfind(':') + 1); };
    if (o.cluster_listen_address == o.listen_address && port_of(o.listen_address) != "0") {
      return Status::InvalidArgument("cluster_listen_address " + o.cluster_listen_address +
                                     " is listen_address too: the cluster plane needs a port "
                                     "of its own (or no cluster_listen_address to share it)");
    }
  }
  if (!o.cluster_advertise_address.empty()) {
    if (o.cluster_listen_address.empty()) {
      return Status::InvalidArgument(
          "cluster_advertise_address needs cluster_listen_address: without a cluster port, "
          "members dial advertise_address");
    }
    if (Status s = CheckHostPort("cluster_advertise_address", o.cluster_advertise_address);
        !s.ok()) {
      return s;
    }
    if (HasWildcardHost(o.cluster_advertise_address) ||
        o.cluster_advertise_address.substr(o.cluster_advertise_address.rfind(':') + 1) == "0" ||
        o.cluster_advertise_address == o.advertise_address) {
      return Status::InvalidArgument("cluster_advertise_address \"" + o.cluster_advertise_address +
                                     "\" must be an address others can dial (no wildcard "
                                     "host, no port 0), other than advertise_address");
    }
  } else if (!o.cluster_listen_address.empty() && !o.seeds.empty() &&
             HasWildcardHost(o.cluster_listen_address)) {
    return Status::InvalidArgument(
        "cluster_advertise_address is required when cluster_listen_address \"" +
        o.cluster_listen_address +
        "\" has a wildcard host and seeds are given: other nodes cannot dial a wildcard");
  }
  if (o.weight == 0 || o.weight > 10000) {
    return Status::InvalidArgument("weight must be in [1, 10000], got " + std::to_string(o.weight));
  }
  if (o.replication_factor == 0 ||
      o.replication_factor > internal::Topology::kMaxReplicationFactor) {
    return Status::InvalidArgument("replication_factor must be in [1, " +
                                   std::to_string(internal::Topology::kMaxReplicationFactor) +
                                   "], got " + std::to_string(o.replication_factor));
  }
  if (o.vnodes_per_weight == 0 || o.vnodes_per_weight > 10000) {
    return Status::InvalidArgument("vnodes_per_weight must be in [1, 10000], got " +
                                   std::to_string(o.vnodes_per_weight));
  }
  if (uint64_t{o.weight} * o.vnodes_per_weight > HashRing::kMaxPoints) {
    return Status::InvalidArgument(
        "weight x vnodes_per_weight must be at most " + std::to_string(HashRing::kMaxPoints) +
        ", got " + std::to_string(o.weight) + " x " + std::to_string(o.vnodes_per_weight));
  }
  constexpr std::chrono::milliseconds kHour{3'600'000};
  if (Status s = CheckPositive("join_timeout", o.join_timeout, kHour); !s.ok()) return s;
  if (o.replication_backlog_bytes < kMinBacklogBytes) {
    return Status::InvalidArgument("replication_backlog_bytes must be at least 1 MiB, got " +
                                   std::to_string(o.replication_backlog_bytes));
  }
  if (Status s = CheckPositive("replication_ack_timeout", o.replication_ack_timeout, kHour);
      !s.ok()) {
    return s;
  }
  if (Status s = CheckPositive("forward_timeout", o.forward_timeout, kHour); !s.ok()) return s;
  if (Status s = CheckPositive("publish_timeout", o.publish_timeout, kHour); !s.ok()) return s;
  if (Status s = CheckPositive("pubsub_heartbeat", o.pubsub_heartbeat, kHour); !s.ok()) return s;
  if (o.snapshot_interval < std::chrono::seconds(1) ||
      o.snapshot_interval > std::chrono::hours(24 * 365)) {
    return Status::InvalidArgument("snapshot_interval must be 1 s to a year, got " +
                                   std::to_string(o.snapshot_interval.count()) + " s");
  }
  if (Result<uint32_t> classes = internal::KeyspaceEvents::ParseClasses(o.keyspace_events);
      !classes.ok()) {
    return Status::InvalidArgument("keyspace_events \"" + o.keyspace_events +
                                   "\": " + classes.status().message());
  }
  if (o.subscriber_buffer_bytes < (uint64_t{64} << 10)) {
    return Status::InvalidArgument("subscriber_buffer_bytes must be at least 64 KiB, got " +
                                   std::to_string(o.subscriber_buffer_bytes));
  }
  if (Status s = CheckPositive("failure_timeout", o.failure_timeout, kHour); !s.ok()) return s;
  if (o.heartbeat_interval < kMinHeartbeatInterval || o.heartbeat_interval >= o.failure_timeout) {
    return Status::InvalidArgument(
        "heartbeat_interval must be at least " + std::to_string(kMinHeartbeatInterval.count()) +
        " ms and below failure_timeout (" + std::to_string(o.failure_timeout.count()) +
        " ms), got " + std::to_string(o.heartbeat_interval.count()) + " ms");
  }
  constexpr std::chrono::milliseconds kDay{86'400'000};
  if (Status s = CheckPositive("drain_timeout", o.drain_timeout, kDay); !s.ok()) return s;
  if (o.transition_warn < std::chrono::milliseconds(100) || o.transition_warn > kDay) {
    return Status::InvalidArgument("transition_warn must be between 100 ms and one day, got " +
                                   std::to_string(o.transition_warn.count()) + " ms");
  }
  if (Status s = internal::ClusterAuth::ValidateSecret(o.cluster_secret); !s.ok()) return s;
  if (o.max_epoch_jump < 1) return Status::InvalidArgument("max_epoch_jump must be at least 1");
  if (o.tls.cert_file.empty() != o.tls.key_file.empty()) {
    return Status::InvalidArgument(
        std::string(o.tls.cert_file.empty() ? "tls.key_file" : "tls.cert_file") + " needs " +
        (o.tls.cert_file.empty() ? "tls.cert_file" : "tls.key_file") +
        ": a node with TLS needs both its certificate and its key");
  }
  if (!o.tls.enabled() && !o.tls.ca_file.empty()) {
    return Status::InvalidArgument("tls.ca_file needs tls.cert_file and tls.key_file (TLS is off)");
  }
  // With a cluster port, that port requires members' certificates by itself, and
  // client_certs is the client port's alone.
  if (o.tls.node_identity && o.cluster_listen_address.empty() &&
      o.tls.client_certs != NodeTlsOptions::ClientCerts::kRequire) {
    return Status::InvalidArgument(
        "tls.node_identity needs tls.client_certs require (or a cluster port, "
        "cluster_listen_address, which then requires members' certificates by itself): a "
        "member's id is read from the certificate it must present");
  }
  if (o.tls.node_identity && o.tls.ca_file.empty()) {
    return Status::InvalidArgument(
        "tls.node_identity needs tls.ca_file: the CAs that members' certificates must be "
        "signed by");
  }
  if (o.tls.client_certs != NodeTlsOptions::ClientCerts::kNone && o.tls.ca_file.empty()) {
    return Status::InvalidArgument(
        "tls.client_certs needs tls.ca_file: the CAs that clients' certificates must be signed by");
  }
  if (o.tls.reload_interval < std::chrono::seconds(1) ||
      o.tls.reload_interval > std::chrono::seconds(86400)) {
    return Status::InvalidArgument("tls.reload_interval must be 1 s to one day, got " +
                                   std::to_string(o.tls.reload_interval.count()) + " s");
  }
  if (!o.client_tokens_file.empty() && o.cluster_secret.empty()) {
    return Status::InvalidArgument(
        "client_tokens_file needs a cluster secret (--cluster-secret-file): a member runs a "
        "call it forwards with the role the first node found, so without one any caller "
        "could claim to be a member and skip the token check");
  }
  if (o.protected_mode && o.client_tokens_file.empty()) {
    if (Status s = CheckProtected("listen_address", o.listen_address); !s.ok()) return s;
    if (Status s = CheckProtected("resp_listen_address", o.resp_listen_address); !s.ok()) {
      return s;
    }
  }
  if (o.protected_mode && o.cluster_secret.empty() && !o.cluster_listen_address.empty() &&
      !HasLoopbackHost(o.cluster_listen_address)) {
    return Status::InvalidArgument(
        "cluster_listen_address " + o.cluster_listen_address +
        " is not a loopback address and there is no cluster secret (--cluster-secret-file): "
        "anyone who can reach it could join, push views and replicate into this node. Give "
        "the members a cluster secret, or turn protected mode off (--protected-mode=false) "
        "where the network is trusted (docs/security.md)");
  }
  return Status::Ok();
}

}  // namespace

std::string_view NodeVersion() { return RINGCACHE_VERSION; }

std::string_view NodeStateName(NodeState state) {
  switch (state) {
    case NodeState::kServing:
      return "serving";
    case NodeState::kFenced:
      return "fenced";
    case NodeState::kJoining:
      return "joining";
    case NodeState::kLeaving:
      return "leaving";
  }
  return "unknown";
}

Status NodeOptions::Validate() const {
  if (Status s = CheckHostPort("listen_address", listen_address); !s.ok()) return s;
  if (!metrics_listen_address.empty()) {
    if (Status s = CheckHostPort("metrics_listen_address", metrics_listen_address); !s.ok()) {
      return s;
    }
  }
  if (!resp_listen_address.empty()) {
    if (Status s = CheckHostPort("resp_listen_address", resp_listen_address); !s.ok()) return s;
  }
  if (resp_max_clients < 1 || resp_max_clients > 1'000'000) {
    return Status::InvalidArgument("resp_max_clients must be 1..1000000, got " +
                                   std::to_string(resp_max_clients));
  }
  if (resp_idle_timeout.count() < 0 || resp_idle_timeout > std::chrono::hours(24 * 365)) {
    return Status::InvalidArgument("resp_idle_timeout must be 0 (never) to one year, got " +
                                   std::to_string(resp_idle_timeout.count()) + " s");
  }
  if (!cluster_listen_address.empty() && max_streams_per_connection > uint32_t{INT32_MAX}) {
    return Status::InvalidArgument("max_streams_per_connection must be 0 (gRPC's limit) or 1 to " +
                                   std::to_string(INT32_MAX) + ", got " +
                                   std::to_string(max_streams_per_connection));
  }
  if (cluster_listen_address.empty() &&
      ((max_streams_per_connection != 0 && max_streams_per_connection < kMinStreamsPerConnection) ||
       max_streams_per_connection > uint32_t{INT32_MAX})) {
    return Status::InvalidArgument(
        "max_streams_per_connection must be 0 (gRPC's limit) or " +
        std::to_string(kMinStreamsPerConnection) + " to " + std::to_string(INT32_MAX) + ", got " +
        std::to_string(max_streams_per_connection) +
        ": members call each other on this port, and one member's connection carries a "
        "replication stream, a forwarding stream, heartbeats, view pushes and forwarded "
        "calls at once (a cluster port of their own, cluster_listen_address, lifts the floor)");
  }
  if (heap_release_interval.count() < 0 || heap_release_interval > std::chrono::hours(1)) {
    return Status::InvalidArgument("heap_release_interval must be 0 (never) to one hour, got " +
                                   std::to_string(heap_release_interval.count()) + " ms");
  }
  if (resp_threads < 1 || resp_threads > 64) {
    return Status::InvalidArgument("resp_threads must be 1..64, got " +
                                   std::to_string(resp_threads));
  }
  if (memory_bytes < kMinMemoryBytes) {
    return Status::InvalidArgument("memory_bytes must be at least " +
                                   std::to_string(kMinMemoryBytes) + ", got " +
                                   std::to_string(memory_bytes));
  }
  if (shards != 0 && (!std::has_single_bit(shards) || shards > 65536)) {
    return Status::InvalidArgument("shards must be 0 (auto) or a power of two up to 65536, got " +
                                   std::to_string(shards));
  }
  if (shards != 0 && memory_bytes / shards < Cache::EntryOverheadBytes() + 1) {
    return Status::InvalidArgument("memory_bytes / shards leaves no room for an entry (" +
                                   std::to_string(memory_bytes) + " / " + std::to_string(shards) +
                                   ")");
  }
  if (max_key_bytes == 0 || max_key_bytes > 65535) {
    return Status::InvalidArgument("max_key_bytes must be in [1, 65535], got " +
                                   std::to_string(max_key_bytes));
  }
  if (max_value_bytes > (uint32_t{1} << 30)) {
    return Status::InvalidArgument("max_value_bytes must be at most 1 GiB, got " +
                                   std::to_string(max_value_bytes));
  }
  if (max_batch == 0) return Status::InvalidArgument("max_batch must be at least 1");
  if (const uint64_t message = uint64_t{max_value_bytes} + max_key_bytes + kMessageSlackBytes;
      max_response_bytes != 0 && max_response_bytes < message) {
    return Status::InvalidArgument(
        "max_response_bytes must be 0 (automatic) or at least max_value_bytes + max_key_bytes "
        "+ 64 KiB = " +
        std::to_string(message) + ", got " + std::to_string(max_response_bytes));
  }
  if (threads > 1024) {
    return Status::InvalidArgument("threads must be in [0, 1024], got " + std::to_string(threads));
  }
  if (shutdown_grace.count() < 0) {
    return Status::InvalidArgument("shutdown_grace must not be negative");
  }
  if (Status s = CheckClusterOptions(*this); !s.ok()) return s;
  // Anything CacheOptions rejects beyond the checks above (none today).
  return CacheOptions{.capacity_bytes = memory_bytes,
                      .shard_count = shards,
                      .max_key_bytes = max_key_bytes,
                      .max_value_bytes = max_value_bytes}
      .Validate();
}

struct Node::Impl {
  // Constant after Start.
  NodeOptions options;
  std::chrono::steady_clock::time_point started;
  uint64_t incarnation = 0;
  std::string grpc_address;
  std::string cluster_address;  // Bound; empty without a cluster port.
  std::string metrics_address;
  std::string resp_address;

  // Destroyed in reverse order: servers first, then what they use.
  // The cache and the store call the keyspace events (stopped by Shutdown, before the
  // handlers that own the sink's relay go).
  std::unique_ptr<RelayEventSink> keyspace_sink;
  std::unique_ptr<internal::KeyspaceEvents> keyspace;
  std::unique_ptr<Cache> cache;
  std::unique_ptr<internal::Persister> persister;  // Null without a data dir.
  std::unique_ptr<metrics::MetricsRegistry> registry;
  std::unique_ptr<internal::HeapReleaser> heap_releaser;  // Read by a collector.
  std::unique_ptr<internal::NodeMetrics> metrics;
  std::unique_ptr<internal::ClusterAuth> cluster_auth;
  std::unique_ptr<internal::ClientAuth> client_auth;
  std::unique_ptr<internal::NodeTls> tls;  // Null without TLS.
  std::unique_ptr<internal::PeerPool> peers;
  std::unique_ptr<internal::ReplicatedStore> store;
  std::unique_ptr<internal::Membership> membership;
  std::unique_ptr<internal::HeartbeatTransport> heartbeats;
  std::unique_ptr<internal::FailoverManager> failover;
  std::unique_ptr<internal::CacheService> handlers;
  std::unique_ptr<internal::CallbackServer> cluster_server;  // Null without a cluster port.
  std::unique_ptr<internal::CallbackServer> server;
  std::unique_ptr<internal::RespServer> resp;
  std::unique_ptr<metrics::HttpMetricsServer> http;

  std::atomic<bool> shutting_down{false};
  // Published by RecomputeState (under state_mu); read with a relaxed load.
  std::atomic<NodeState> state{NodeState::kJoining};
  // Set by the failover manager's fencing hook.
  std::atomic<bool> fenced{false};
  // Node::Leave() got the coordinator's OK: leaving until the node is out of the view.

  std::mutex state_mu;  // Serializes RecomputeState (state + health stay in step).

  std::mutex shutdown_mu;
  std::condition_variable shutdown_cv;
  // Protected by shutdown_mu.
  bool shutdown_started = false;
  bool shutdown_done = false;
  std::thread self_shutdown;  // Started by the left hook; joined by ~Node.

  // The state the current view and fencing imply.
  NodeState ComputeState() const {
    const std::shared_ptr<const internal::Topology> topology =
        membership != nullptr ? membership->current() : nullptr;
    const ClusterMember* self = topology != nullptr ? topology->self_member : nullptr;
    // Fenced first: a LEAVING member still owns its ranges and votes, so a cut-off leaver
    // must refuse writes like any other owner (the majority may be failing it over).
    if (fenced.load(std::memory_order_acquire) && self != nullptr &&
        (self->state == MemberState::kServing || self->state == MemberState::kLeaving)) {
      return NodeState::kFenced;
    }
    // Leaving from the request on (Node::Leave or a client's Membership.Leave) until the
    // node is gone, also once the view no longer holds it. Membership clears its flag when
    // the coordinator refuses the leave or the node is failed and rejoins.
    if ((membership != nullptr && membership->leave_requested()) ||
        (self != nullptr && self->state == MemberState::kLeaving)) {
      return NodeState::kLeaving;
    }
    if (self == nullptr || self->state != MemberState::kServing) return NodeState::kJoining;
    return NodeState::kServing;
  }

  // Recomputes the state after a view or fencing change; health follows it. Any thread
  // but one holding state_mu.
  void RecomputeState() {
    std::lock_guard lock(state_mu);
    const NodeState next = ComputeState();
    const NodeState previous = state.exchange(next, std::memory_order_relaxed);
    if (next == previous) return;
    if (server != nullptr) server->SetServing(next == NodeState::kServing);
    if (cluster_server != nullptr) cluster_server->SetServing(next == NodeState::kServing);
    if (options.log) {
      options.log(LogLevel::kInfo, "node state: " + std::string(NodeStateName(previous)) + " -> " +
                                       std::string(NodeStateName(next)));
    }
  }
};

Node::Node(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Node::~Node() {
  Shutdown();
  std::thread self_shutdown;
  {
    std::lock_guard lock(impl_->shutdown_mu);
    self_shutdown = std::move(impl_->self_shutdown);
  }
  if (self_shutdown.joinable()) self_shutdown.join();
}

Result<std::unique_ptr<Node>> Node::Start(NodeOptions options) {
  if (Status s = options.Validate(); !s.ok()) return s;
  if (options.node_id.empty()) options.node_id = Hostname();
  if (options.threads == 0) options.threads = std::max(1u, std::thread::hardware_concurrency());
  if (options.max_response_bytes == 0) {
    options.max_response_bytes =
        std::max<uint64_t>(uint64_t{64} << 20, uint64_t{options.max_value_bytes} +
                                                   options.max_key_bytes + kMessageSlackBytes);
  }

  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->started = std::chrono::steady_clock::now();
  impl->incarnation = std::random_device{}() * (uint64_t{1} << 32) ^ std::random_device{}();
  impl->keyspace = std::make_unique<internal::KeyspaceEvents>(internal::KeyspaceEvents::Options{
      .classes = *internal::KeyspaceEvents::ParseClasses(options.keyspace_events),
      .node_id = options.node_id,
      .tick_interval = options.pubsub_heartbeat});
  internal::KeyspaceEvents* const keyspace =
      impl->keyspace->enabled() ? impl->keyspace.get() : nullptr;
  Result<std::unique_ptr<Cache>> cache =
      Cache::Create({.capacity_bytes = options.memory_bytes,
                     .shard_count = options.shards,
                     .max_key_bytes = options.max_key_bytes,
                     .max_value_bytes = options.max_value_bytes,
                     .clock = options.clock,
                     .on_removal = keyspace == nullptr ? std::function<void(const Removal&)>()
                                                       : [keyspace](const Removal& removal) {
                                                           keyspace->OnRemoval(removal);
                                                         }});
  if (!cache.ok()) return cache.status();
  impl->cache = std::move(cache).value();
  if (!options.data_dir.empty()) {
    impl->persister = std::make_unique<internal::Persister>(
        internal::Persister::Options{.dir = options.data_dir,
                                     .interval = options.snapshot_interval,
                                     .min_changes = options.snapshot_min_changes,
                                     .clock = options.clock,
                                     .log = options.log},
        impl->cache.get());
    if (Status s = impl->persister->LoadAtStart(options); !s.ok()) return s;
  }
  impl->registry = std::make_unique<metrics::MetricsRegistry>();
  if (impl->persister != nullptr) impl->persister->AddMetrics(impl->registry.get());
  impl->metrics = std::make_unique<internal::NodeMetrics>(impl->registry.get(), impl->cache.get(),
                                                          NodeVersion());

  const uint64_t max_message =
      uint64_t{options.max_value_bytes} + options.max_key_bytes + kMessageSlackBytes;
  impl->cluster_auth = std::make_unique<internal::ClusterAuth>(
      options.cluster_secret, options.log, options.tls.enabled() && options.tls.node_identity);
  impl->registry->AddCollector([auth = impl->cluster_auth.get()](metrics::Writer& w) {
    w.Counter("ringcache_cluster_auth_failures_total",
              "Cluster-plane calls (Membership, Replication, forwarded calls) refused for a "
              "missing or wrong cluster secret.",
              auth->refusals());
  });
  impl->heap_releaser = std::make_unique<internal::HeapReleaser>(
      internal::HeapReleaser::Options{.interval = options.heap_release_interval});
  impl->registry->AddCollector([releaser = impl->heap_releaser.get()](metrics::Writer& w) {
    w.Gauge("ringcache_heap_free_bytes",
            "Free memory malloc kept resident at the last check, estimated "
            "(--heap-release-interval-ms).",
            static_cast<double>(releaser->free_bytes()));
    w.Counter("ringcache_heap_releases_total",
              "Times the free heap memory was given back to the system (malloc_trim).",
              releaser->releases());
  });
  impl->client_auth =
      std::make_unique<internal::ClientAuth>(options.client_tokens_file, options.log);
  if (Status s = impl->client_auth->Load(); !s.ok()) return s;
  impl->registry->AddCollector([auth = impl->client_auth.get()](metrics::Writer& w) {
    w.Counter("ringcache_client_auth_failures_total",
              "Client calls and Redis AUTHs refused for a missing or unknown client token.",
              auth->refusals());
    w.Gauge("ringcache_client_tokens", "Client tokens held (--auth-tokens-file).",
            static_cast<double>(auth->tokens()));
  });
  if (impl->client_auth->enabled() && options.log) {
    if (!options.tls.enabled()) {
      options.log(LogLevel::kWarn,
                  "client tokens travel in clear without TLS (--tls-cert-file): anyone who can "
                  "watch the traffic to this node learns them (docs/security.md)");
    }
  }
  if (impl->cluster_auth->open() && options.log) {
    options.log(LogLevel::kWarn,
                "no cluster secret (--cluster-secret-file): the cluster plane (joins, views, "
                "heartbeats, leaves, replication, forwarded calls) is open to anyone who can "
                "reach " +
                    (options.cluster_listen_address.empty() ? options.listen_address
                                                            : options.cluster_listen_address) +
                    " (docs/security.md)");
  }
  if (Status s = internal::CheckTlsFiles(options.tls, options.node_id, options.log); !s.ok()) {
    return s;
  }
  if (options.tls.enabled()) impl->tls = std::make_unique<internal::NodeTls>(options.tls);
  // Peers' answers may be twice a value: a collection of max_value_bytes read whole
  // (HGETALL, LRANGE, a pop with a count) carries each element with a tag and a length,
  // at most one byte more per element than its pack, whose elements take a byte at least.
  const uint64_t max_peer_message =
      std::min<uint64_t>(2 * max_message, std::numeric_limits<int>::max());
  impl->peers = std::make_unique<internal::PeerPool>(
      static_cast<int>(max_peer_message), impl->cluster_auth.get(),
      impl->tls != nullptr ? impl->tls->PeerCredentials() : nullptr);
  impl->store = std::make_unique<internal::ReplicatedStore>(
      internal::ReplicationOptions{
          .self_id = options.node_id,
          .backlog_bytes = options.replication_backlog_bytes,
          .ack_timeout = options.replication_ack_timeout,
          .log = options.log,
          .auth = impl->cluster_auth.get(),
          .on_primary_write =
              keyspace == nullptr
                  ? std::function<void(const WriteRecord&)>()
                  : [keyspace](const WriteRecord& record) { keyspace->OnWrite(record); }},
      impl->cache.get(), impl->peers.get());
  impl->membership = std::make_unique<internal::Membership>(
      internal::MembershipOptions{
          .self_id = options.node_id,
          .weight = options.weight,
          .seeds = options.seeds,
          .replication_factor = options.replication_factor,
          .vnodes_per_weight = options.vnodes_per_weight,
          .join_timeout = options.join_timeout,
          .call_timeout = kMembershipCallTimeout,
          .transition_warn = options.transition_warn,
          // Versions written under a view are above its floor
          // (docs/design/operations.md): raised before any call
          // can be routed by that view.
          .before_adopt = [cache = impl->cache.get()](
                              uint64_t epoch) { cache->RaiseVersionFloor(VersionFloor(epoch)); },
          .log = options.log,
          .auth = impl->cluster_auth.get(),
          .admin_token = AdminTokenCheck(impl->client_auth.get()),
          .max_epoch_jump = options.max_epoch_jump},
      impl->peers.get());
  impl->heartbeats = internal::MakeGrpcHeartbeatTransport(impl->peers.get());

  // The node exists before its servers: they call its operations.
  std::unique_ptr<Node> node(new Node(std::move(impl)));
  Impl& n = *node->impl_;
  Node* const self = node.get();
  internal::Membership* const membership = n.membership.get();
  n.failover = std::make_unique<internal::FailoverManager>(
      internal::FailoverOptions{.self_id = options.node_id,
                                .heartbeat_interval = options.heartbeat_interval,
                                .failure_timeout = options.failure_timeout,
                                .log = options.log,
                                .now = {}},
      n.heartbeats.get(),
      internal::FailoverHooks{
          .mark_failed =
              [membership](const std::vector<std::string>& ids, const std::string& reason) {
                return membership->MarkFailed(ids, reason);
              },
          .offer_view = [membership](
                            const v1::ClusterView& view,
                            const std::string& from) { membership->OfferView(view, from); },
          // The manager logs the change itself ("fenced: ...", "unfenced: ...").
          .on_fence_change =
              [&n](bool fenced, const std::string& /*reason*/) {
                n.fenced.store(fenced, std::memory_order_release);
                n.RecomputeState();
              },
      });
  internal::FailoverManager* const failover = n.failover.get();
  // Before the server serves Membership.Heartbeat (until then it answers UNAVAILABLE).
  membership->SetHeartbeatHandler(
      [failover](const v1::HeartbeatRequest& request, v1::HeartbeatResponse* response) {
        failover->HandleHeartbeat(request, response);
      });
  // A node declared failed rejoins empty: what it holds may have been overwritten since.
  // ClearLocalData, not Cache::Clear alone: the replica's resume state must go too, or its
  // primaries would resume instead of sending everything again.
  internal::ReplicatedStore* const store_for_hooks = n.store.get();
  membership->SetRejoinHook([store_for_hooks] { store_for_hooks->ClearLocalData(); });
  // Once out of the view, the node stops by itself (on its own thread: the hook runs on a
  // membership or gRPC thread, which Shutdown must not run on).
  membership->SetLeftHook([self, &n] {
    std::lock_guard lock(n.shutdown_mu);
    if (n.shutdown_started || n.self_shutdown.joinable()) return;
    if (n.options.log) n.options.log(LogLevel::kInfo, "left the cluster: shutting down");
    // Shutdown lets the links to the new owners drain first.
    n.self_shutdown = std::thread([self] { self->Shutdown(); });
  });
  // A fenced node (maybe on the minority side of a partition) changes no view.
  membership->SetMayCoordinate([failover] { return !failover->fenced(); });
  // The node state follows a leave request (and its refusal) too, not only views.
  membership->SetLeaveStateHook([&n] { n.RecomputeState(); });
  // Before the store's first view.
  n.store->SetTransitionReadyCallback(
      [membership](uint64_t epoch) { membership->ReportTransitionReady(epoch); });
  n.handlers =
      std::make_unique<internal::CacheService>(node.get(), n.membership.get(), n.peers.get());
  n.registry->AddCollector([h = n.handlers.get()](metrics::Writer& w) {
    const PubSub::Stats s = h->pubsub().stats();
    w.Gauge("ringcache_pubsub_subscriptions", "Subscribe streams open on this node.",
            static_cast<double>(s.subscriptions));
    w.Gauge("ringcache_pubsub_channels", "Distinct channels subscribed on this node.",
            static_cast<double>(s.channels));
    w.Gauge("ringcache_pubsub_patterns", "Pattern subscriptions on this node.",
            static_cast<double>(s.patterns));
    w.Gauge("ringcache_pubsub_buffered_bytes",
            "Messages buffered for subscribers, not yet sent (each at most "
            "--subscriber-buffer-bytes).",
            static_cast<double>(s.buffered_bytes));
    w.Counter("ringcache_pubsub_messages_total",
              "Messages delivered here: published through this node or passed on by another.",
              s.published);
    w.Counter("ringcache_pubsub_deliveries_total",
              "Messages buffered for this node's subscribers (one per matching subscription).",
              s.delivered);
    w.Counter("ringcache_pubsub_subscribers_dropped_total",
              "Subscriptions cut off because their reader fell further behind than "
              "--subscriber-buffer-bytes.",
              s.overflowed);
    w.Counter("ringcache_pubsub_gaps_total",
              "Messages from other nodes found missing here (each may or may not have been "
              "for a subscriber here; every subscription skips that many sequence numbers).",
              s.gaps);
    w.Counter("ringcache_pubsub_relay_failures_total",
              "Messages this node could not pass on to a member within --publish-timeout-ms.",
              h->pubsub_relay().relay_failures());
  });
  if (n.keyspace->enabled()) {
    // Before the servers: the first write already announces itself.
    n.keyspace_sink = std::make_unique<RelayEventSink>(&n.handlers->pubsub_relay());
    n.keyspace->Start(n.keyspace_sink.get(), [membership](std::string_view key) {
      const std::shared_ptr<const internal::Topology> topology = membership->current();
      return topology == nullptr || topology->IsPrimary(HashedKey(key).placement());
    });
    n.registry->AddCollector([events = n.keyspace.get()](metrics::Writer& w) {
      const internal::KeyspaceEvents::Stats s = events->stats();
      w.Counter("ringcache_keyspace_events_total",
                "Key changes this node announced as their primary (--keyspace-events).", s.queued);
      w.Counter("ringcache_keyspace_events_dropped_total",
                "Key changes not announced because announcing fell too far behind (every "
                "subscriber's sequence numbers skip them).",
                s.dropped);
    });
  }

  // options.threads is not passed on: the callback servers run on gRPC's own threads.
  // With a cluster port, members call each other there (it serves the Cache service too,
  // for forwarded calls) and the client port keeps only an operator's Leave of the
  // Membership service.
  const bool cluster_port = !options.cluster_listen_address.empty();
  if (cluster_port) {
    Result<std::unique_ptr<internal::CallbackServer>> cluster = internal::CallbackServer::Start(
        {.listen_address = options.cluster_listen_address,
         .max_receive_message_bytes = static_cast<int>(max_message),
         .max_streams_per_connection = 0,
         .grow_receive_windows = true,
         .extra_services = {n.membership->service(), n.store->service()},
         // With node identity every caller of the cluster port shows the certificate
         // that names it; the client port asks clients as tls.client_certs says.
         .credentials = n.tls == nullptr ? nullptr
                        : options.tls.node_identity
                            ? n.tls->ServerCredentials(NodeTlsOptions::ClientCerts::kRequire)
                            : n.tls->ServerCredentials(),
         .cluster_auth = n.cluster_auth.get(),
         .client_auth = n.client_auth.get(),
         .plane = internal::PortPlane::kCluster},
        n.handlers.get(), n.metrics.get());
    if (!cluster.ok()) return cluster.status();
    n.cluster_server = std::move(cluster).value();
    n.cluster_address = WithPort(options.cluster_listen_address, n.cluster_server->port());
  }
  Result<std::unique_ptr<internal::CallbackServer>> server = internal::CallbackServer::Start(
      {.listen_address = options.listen_address,
       .max_receive_message_bytes = static_cast<int>(max_message),
       .max_streams_per_connection = options.max_streams_per_connection,
       .grow_receive_windows = options.grow_receive_windows,
       .extra_services =
           cluster_port ? std::vector<grpc::Service*>{n.membership->client_port_service()}
                        : std::vector<grpc::Service*>{n.membership->service(), n.store->service()},
       .credentials = n.tls != nullptr ? n.tls->ServerCredentials() : nullptr,
       .cluster_auth = n.cluster_auth.get(),
       .client_auth = n.client_auth.get(),
       .plane = cluster_port ? internal::PortPlane::kClients : internal::PortPlane::kShared},
      n.handlers.get(), n.metrics.get());
  if (!server.ok()) return server.status();  // ~Node stops the cluster server.
  n.server = std::move(server).value();
  n.grpc_address = WithPort(options.listen_address, n.server->port());

  // Every view from the first one on reaches the store (it opens replica links on it), the
  // failover manager (whom to heartbeat, who votes) and the node state.
  internal::ReplicatedStore* store = n.store.get();
  n.membership->Subscribe(
      [store, failover, &n](std::shared_ptr<const internal::Topology> topology) {
        failover->OnTopology(topology);
        store->OnTopology(std::move(topology));
        n.RecomputeState();
      });
  // A view pushed to this node between the server's start and the subscription (a member
  // restarted on its old port while the coordinator retries a push) was adopted without
  // the store: hand it over now (the store ignores a view it already has).
  if (std::shared_ptr<const internal::Topology> topology = n.membership->current()) {
    failover->OnTopology(topology);
    store->OnTopology(std::move(topology));
  }
  // The metrics and Redis ports are bound before the join, so that a port already in use
  // stops the node before it is a member (a failed start must not leave the cluster a
  // member that never serves). Before the endpoint serves its first scrape:
  n.metrics->AttachCluster(n.membership.get(), n.store.get(), n.failover.get(),
                           [self] { return self->state(); });

  if (!options.metrics_listen_address.empty()) {
    Impl* impl_ptr = &n;
    Result<std::unique_ptr<metrics::HttpMetricsServer>> http = metrics::HttpMetricsServer::Start(
        options.metrics_listen_address, n.registry.get(), [impl_ptr](std::string* reason) {
          if (impl_ptr->shutting_down.load(std::memory_order_acquire)) {
            *reason = "shutting down";
            return false;
          }
          const NodeState state = impl_ptr->state.load(std::memory_order_relaxed);
          if (state == NodeState::kServing) return true;
          *reason = std::string(NodeStateName(state));
          return false;
        });
    if (!http.ok()) return http.status();  // ~Node stops the gRPC server.
    n.http = std::move(http).value();
    n.metrics_address = n.http->bound_address();
  }

  if (!options.resp_listen_address.empty()) {
    // One command's arguments: the largest value or key; as many as an MSET of max-batch
    // pairs. The unparsed input one connection may hold: one such command.
    const size_t max_arg = std::max<size_t>(options.max_value_bytes, options.max_key_bytes);
    const size_t max_args = size_t{2} * options.max_batch + 16;
    Result<std::unique_ptr<internal::RespServer>> resp = internal::RespServer::Start(
        n.handlers.get(), {.listen_address = options.resp_listen_address,
                           .threads = options.resp_threads,
                           .max_clients = options.resp_max_clients,
                           .idle_timeout = options.resp_idle_timeout,
                           .max_query_buffer_bytes = std::max<size_t>(
                               size_t{2} * max_arg + (size_t{1} << 20), size_t{64} << 20),
                           .max_bulk_bytes = max_arg,
                           .max_args = max_args,
                           .metrics = n.metrics.get(),
                           .client_auth = n.client_auth.get(),
                           .tls = options.tls,
                           .log = options.log});
    if (!resp.ok()) return resp.status();  // ~Node stops the other servers.
    n.resp = std::move(resp).value();
    n.resp_address = n.resp->bound_address();
  }
  // Blocks until this node holds a view with itself (bootstrap, or join through seeds).
  // On failure ~Node shuts the server down.
  const std::string& advertised =
      options.advertise_address.empty() ? n.grpc_address : options.advertise_address;
  const std::string& cluster_advertised = options.cluster_advertise_address.empty()
                                              ? n.cluster_address
                                              : options.cluster_advertise_address;
  if (Status s = n.membership->JoinOrBootstrap(advertised, cluster_advertised); !s.ok()) return s;
  n.RecomputeState();
  n.failover->Start();
  if (n.persister != nullptr) n.persister->Start();
  return node;
}

void Node::Shutdown() {
  Impl& n = *impl_;
  {
    std::unique_lock lock(n.shutdown_mu);
    if (n.shutdown_started) {
      n.shutdown_cv.wait(lock, [&n] { return n.shutdown_done; });
      return;
    }
    n.shutdown_started = true;
  }
  n.shutting_down.store(true, std::memory_order_release);
  // In-flight calls finish first, with membership and replication still working (their
  // writes replicate, write-concern waits resolve), bounded by the grace period.
  if (n.resp != nullptr) n.resp->Stop();
  // Clients' calls first, then the cluster port's (the calls other members forwarded here,
  // the replication streams), with one deadline for both.
  const auto deadline = std::chrono::system_clock::now() + n.options.shutdown_grace;
  if (n.server != nullptr) n.server->Shutdown(deadline);
  if (n.cluster_server != nullptr) n.cluster_server->Shutdown(deadline);
  // No caller is left to see more events (the Subscribe streams have ended).
  if (n.keyspace != nullptr) n.keyspace->Stop();
  // No client write is left either: the last snapshot holds every write acknowledged.
  if (n.persister != nullptr) n.persister->Stop(/*final_snapshot=*/true);
  // A node that has left lets the links to its ranges' new owners drain first (writes it
  // applied just before the final view), bounded by the ack timeout: the store's Shutdown
  // stops draining links at once.
  if (n.membership != nullptr && n.store != nullptr && n.membership->left()) {
    n.store->WaitDrained(n.options.replication_ack_timeout);
  }
  // Heartbeats stop before membership: the manager's hooks call into it.
  if (n.failover != nullptr) n.failover->Shutdown();
  if (n.membership != nullptr) n.membership->Shutdown();
  if (n.store != nullptr) n.store->Shutdown();
  if (n.http != nullptr) n.http->Stop();
  if (n.cache != nullptr) n.cache->StopJanitor();
  {
    std::lock_guard lock(n.shutdown_mu);
    n.shutdown_done = true;
  }
  n.shutdown_cv.notify_all();
}

void Node::SnapshotNow(std::function<void(Result<SnapshotInfo>)> done) {
  if (impl_->persister == nullptr) {
    done(Status::FailedPrecondition("this node has no --data-dir: snapshots are off"));
    return;
  }
  impl_->persister->SnapshotNow(std::move(done));
}

void Node::Wait() {
  Impl& n = *impl_;
  std::unique_lock lock(n.shutdown_mu);
  n.shutdown_cv.wait(lock, [&n] { return n.shutdown_done; });
}

bool Node::shutting_down() const { return impl_->shutting_down.load(std::memory_order_acquire); }

NodeState Node::state() const { return impl_->state.load(std::memory_order_relaxed); }

std::string Node::StateDetail() const {
  const Impl& n = *impl_;
  switch (state()) {
    case NodeState::kServing:
      return "";
    case NodeState::kFenced: {
      std::string reason = n.failover->fence_reason();
      if (reason.empty()) reason = "it cannot reach a majority of the voting members";
      if (reason.rfind("node ", 0) == 0) return reason;
      return "node " + n.options.node_id + " is fenced: " + reason +
             "; writes are refused until it rejoins the cluster";
    }
    case NodeState::kJoining: {
      const std::shared_ptr<const internal::Topology> t = n.membership->current();
      const ClusterMember* self = t != nullptr ? t->self_member : nullptr;
      if (self != nullptr && self->state == MemberState::kFailed) {
        return "declared failed in epoch " + std::to_string(t->epoch()) +
               "; rejoining the cluster empty";
      }
      if (self == nullptr) return "not in the cluster view yet; joining";
      return "joining in epoch " + std::to_string(t->epoch()) +
             ": receiving its ranges from their current owners; not an owner yet";
    }
    case NodeState::kLeaving:
      return "leaving: streaming its ranges to their next owners; it leaves the view once "
             "they have them";
  }
  return "";
}

Status Node::ReloadClientTokens() { return impl_->client_auth->Load(); }

Status Node::Leave() {
  Impl& n = *impl_;
  if (n.shutting_down.load(std::memory_order_acquire)) {
    return Status::Unavailable("node " + n.options.node_id + " is shutting down");
  }
  if (Status s = n.membership->RequestLeave(); !s.ok()) return s;
  n.RecomputeState();
  const auto deadline = std::chrono::steady_clock::now() + n.options.drain_timeout;
  for (;;) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      return Status(StatusCode::kDeadlineExceeded,
                    "node " + n.options.node_id +
                        " did not finish leaving within the drain timeout of " +
                        std::to_string(n.options.drain_timeout.count()) + " ms");
    }
    const auto slice = std::min<std::chrono::steady_clock::duration>(deadline - now, kLeavePoll);
    if (n.membership->WaitLeft(std::chrono::ceil<std::chrono::milliseconds>(slice))) {
      return Status::Ok();
    }
    if (n.shutting_down.load(std::memory_order_acquire)) {
      return Status::Unavailable("node " + n.options.node_id +
                                 " shut down before it finished leaving");
    }
  }
}
const std::string& Node::grpc_address() const { return impl_->grpc_address; }
const std::string& Node::cluster_address() const { return impl_->cluster_address; }
const std::string& Node::metrics_address() const { return impl_->metrics_address; }
const std::string& Node::resp_address() const { return impl_->resp_address; }
const NodeOptions& Node::options() const { return impl_->options; }

uint64_t Node::incarnation() const { return impl_->incarnation; }

Status Node::Get(const HashedKey& key, std::string* value, ItemMeta* meta) const {
  return impl_->cache->Get(key, value, meta);
}

Status Node::GetTyped(const HashedKey& key, ValueType type, std::string* pack,
                      ItemMeta* meta) const {
  return impl_->cache->GetTyped(key, type, pack, meta);
}

Status Node::VisitTyped(const HashedKey& key, ValueType type, Cache::ValueVisitor& visitor) const {
  return impl_->cache->VisitTyped(key, type, visitor);
}

namespace {

// Writes are refused while the node is fenced (the gRPC front end checks first, with the
// same message); one relaxed load otherwise.
Status RefuseIfFenced(const Node& node) {
  if (node.state() != NodeState::kFenced) return Status::Ok();
  return Status::Unavailable(node.StateDetail());
}

}  // namespace

Result<uint64_t> Node::Set(const HashedKey& key, std::string_view value, const SetOptions& options,
                           WriteTicket* ticket) {
  if (Status s = RefuseIfFenced(*this); !s.ok()) return s;
  return impl_->store->Set(key, value, options, ticket);
}

Status Node::Delete(const HashedKey& key, WriteTicket* ticket) {
  if (Status s = RefuseIfFenced(*this); !s.ok()) return s;
  return impl_->store->Delete(key, ticket);
}

Status Node::Touch(const HashedKey& key, uint64_t ttl_ms, WriteTicket* ticket) {
  if (Status s = RefuseIfFenced(*this); !s.ok()) return s;
  return impl_->store->Touch(key, ttl_ms, ticket);
}

Result<uint64_t> Node::Ttl(const HashedKey& key, ValueType* type) const {
  return impl_->cache->Ttl(key, type);
}

Result<IncrResult> Node::Incr(const HashedKey& key, int64_t delta, uint64_t ttl_ms_if_created,
                              WriteTicket* ticket) {
  if (Status s = RefuseIfFenced(*this); !s.ok()) return s;
  return impl_->store->Incr(key, delta, ttl_ms_if_created, ticket);
}

Result<UpdateResult> Node::Update(
    const HashedKey& key,
    const std::function<Status(const ItemView* current, Mutation* mutation)>& fn,
    WriteTicket* ticket, std::optional<ValueType> expected) {
  if (Status s = RefuseIfFenced(*this); !s.ok()) return s;
  return impl_->store->Update(key, fn, ticket, expected);
}

Status Node::CheckBatchSize(std::string_view what, size_t count) const {
  const uint32_t max = impl_->options.max_batch;
  if (count <= max) return Status::Ok();
  return Status::InvalidArgument(std::string(what) + " has " + std::to_string(count) +
                                 " items, over the max-batch limit of " + std::to_string(max));
}

void Node::Prefetch(std::span<const std::string_view> keys) const { impl_->cache->Prefetch(keys); }
void Node::Prefetch(std::span<const HashedKey> keys) const { impl_->cache->Prefetch(keys); }

Result<std::vector<Result<Item>>> Node::MultiGet(std::span<const std::string_view> keys) const {
  if (Status s = CheckBatchSize("MultiGet", keys.size()); !s.ok()) return s;
  return impl_->cache->MultiGet(keys);
}

Result<std::vector<Result<uint64_t>>> Node::MultiSet(std::span<const SetItem> items,
                                                     WriteTicket* ticket) {
  if (Status s = CheckBatchSize("MultiSet", items.size()); !s.ok()) return s;
  if (Status s = RefuseIfFenced(*this); !s.ok()) return s;
  return impl_->store->MultiSet(items, ticket);
}

Result<std::vector<Status>> Node::MultiDelete(std::span<const std::string_view> keys,
                                              WriteTicket* ticket) {
  if (Status s = CheckBatchSize("MultiDelete", keys.size()); !s.ok()) return s;
  if (Status s = RefuseIfFenced(*this); !s.ok()) return s;
  return impl_->store->MultiDelete(keys, ticket);
}

void Node::WaitForReplicas(const WriteTicket& ticket, uint32_t k, std::chrono::milliseconds timeout,
                           std::function<void(uint32_t acked)> done) {
  impl_->store->WaitForAcks(ticket, k, timeout, std::move(done));
}

void WriteTicket::Merge(const WriteTicket& other) {
  for (const Link& link : other.links) {
    auto it = std::find_if(links.begin(), links.end(),
                           [&](const Link& l) { return l.link_id == link.link_id; });
    if (it == links.end()) {
      links.push_back(link);
    } else {
      it->seq = std::max(it->seq, link.seq);
    }
  }
}

NodeStats Node::Stats() const {
  const auto uptime = std::chrono::steady_clock::now() - impl_->started;
  const std::shared_ptr<const internal::Topology> topology = impl_->membership->current();
  return NodeStats{
      .node_id = impl_->options.node_id,
      .version = std::string(NodeVersion()),
      .uptime_ms = static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::milliseconds>(uptime).count()),
      .cache = impl_->cache->Stats(),
      .epoch = topology != nullptr ? topology->epoch() : 0,
      .replicas = impl_->store->LinkStats(),
      .state = state(),
      .state_detail = StateDetail(),
      .under_replicated_ranges = impl_->store->UnderReplicatedRanges(),
      .migration = impl_->store->Migration(),
      .transition = impl_->membership->Transition(),
      .peers = impl_->failover->Peers(),
  };
}

}  // namespace ringcache
