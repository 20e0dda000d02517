// Node: one ringcache cluster member as a library — the node's operations as a plain C++
// API, plus the network front ends that serve them (gRPC, Prometheus metrics).
//
// Design (docs/design/threading.md, docs/design/operations.md): the operations below act on
// this node's local Cache, and writes replicate to the key's replicas (docs/design/
// replication.md). Routing a key to its owner (forwarding) is done by the gRPC front end
// today (daemon/node/src/cache_service.h); the operation path of docs/design/operations.md
// moves it behind these calls, so that every front end gets it once.
//
//   ringcache::NodeOptions options{.listen_address = "127.0.0.1:0", .memory_bytes = 64 << 20};
//   auto node = ringcache::Node::Start(options);     // binds, serves, returns
//   if (!node.ok()) { /* node.status() names the problem, e.g. the address */ }
//   std::string grpc_at = (*node)->grpc_address();   // actual port, e.g. "127.0.0.1:40913"
//   (*node)->Shutdown();                             // graceful, bounded by shutdown_grace
//
// Thread safety: Node has internal synchronization. Every method may be called
// concurrently from any thread, except that Shutdown() and the destructor must not be
// called from a thread the node owns or lends to gRPC (gRPC's server threads, which run
// the handlers; the metrics thread).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ringcache/cache.h"
#include "ringcache/clock.h"
#include "ringcache/snapshot.h"
#include "ringcache/status.h"

namespace ringcache {

// The ringcached version ("0.1.0"), from the CMake project version.
std::string_view NodeVersion();

enum class LogLevel { kDebug, kInfo, kWarn, kError };

// How to run a node. A documented aggregate, checked once by Validate() (Start calls it).
// TLS on a node's gRPC port and on its calls to other members (docs/security.md, "TLS").
struct NodeTlsOptions {
  // PEM files: the node's certificate chain and its private key. Both or neither; empty
  // (default) = no TLS. The certificate must name the address other members and clients
  // dial (advertise_address's host, as an IP or DNS subject alternative name): members
  // check it when they call this node. The node presents it when it calls other members.
  std::string cert_file;
  std::string key_file;
  // PEM CA certificates that verify other members' certificates when this node calls
  // them, and clients' certificates (client_certs). Empty: the system's roots verify
  // members, and client certificates cannot be asked for.
  std::string ca_file;
  enum class ClientCerts : uint8_t {
    kNone,     // Clients are not asked for a certificate.
    kVerify,   // Asked; one that is sent must be signed by ca_file's CAs.
    kRequire,  // Every client (and member) must send one signed by ca_file's CAs.
  };
  ClientCerts client_certs = ClientCerts::kNone;
  // Member certificates name their node id as their subject Common Name (CN=n1), and a
  // call on the cluster plane must come from the member it claims to come from: a
  // heartbeat's or pushed view's from_id, a joiner's id, a replication stream's primary, a
  // forwarded call's ringcache-forwarded-by must be the id the caller's certificate names
  // (PERMISSION_DENIED otherwise). Needs ca_file, and client_certs kRequire unless the node
  // has a cluster port (cluster_listen_address): that port then requires members'
  // certificates by itself, and client_certs applies to the client port alone. The node's
  // own certificate must name its node_id.
  bool node_identity = false;
  // How often the files are read again: renewed certificates are served from then on,
  // without a restart (a pair that does not match is ignored, the old one stays). Default
  // 60 s; 1 s to one day.
  std::chrono::seconds reload_interval{60};

  bool enabled() const { return !cert_file.empty(); }
};

struct NodeOptions {
  // This node's id in the cluster view and stats; unique in the cluster, and the same
  // across restarts of the node (ring placement depends on it). Empty = the hostname.
  std::string node_id;
  // gRPC listen address, HOST:PORT. Port 0 = any free port (see Node::grpc_address()).
  // Default "127.0.0.1:7700".
  std::string listen_address = "127.0.0.1:7700";
  // Prometheus /metrics and /healthz HTTP address, HOST:PORT; port 0 = any free port;
  // empty = no metrics endpoint. Default "127.0.0.1:9700".
  std::string metrics_listen_address = "127.0.0.1:9700";
  // The Redis-protocol port (docs/redis.md), HOST:PORT; port 0 = any free port; empty
  // (default) = off.
  std::string resp_listen_address;
  // I/O threads of the Redis-protocol port, 1..64. Default 1.
  uint32_t resp_threads = 1;
  // Most connections the Redis port holds at once (Redis's maxclients): one more is
  // answered "-ERR max number of clients reached" and closed. 1..1,000,000; default 10000.
  uint32_t resp_max_clients = 10000;
  // A Redis connection that sends no command for this long is closed (Redis's timeout);
  // 0 (default) = never.
  std::chrono::seconds resp_idle_timeout{0};
  // Cache byte budget (key + value + per-entry overhead). Default 1 GiB.
  uint64_t memory_bytes = uint64_t{1} << 30;
  // Cache shards, a power of two; 0 (default) = automatic.
  uint32_t shards = 0;
  // Largest key accepted, in bytes. Default 4096; at most 65535.
  uint32_t max_key_bytes = 4096;
  // Largest value accepted, in bytes. Default 8 MiB; at most 1 GiB.
  uint32_t max_value_bytes = uint32_t{8} << 20;
  // Most items in one MultiGet/MultiSet/MultiDelete request or one Pipeline message; more
  // is INVALID_ARGUMENT naming max-batch. Default 10000; at least 1.
  uint32_t max_batch = 10000;
  // Most bytes of results one MultiGet/MultiSet/MultiDelete/Batch response (or one batch
  // of pipelined Redis commands) may hold; more is RESOURCE_EXHAUSTED naming
  // max-response-bytes, checked while the results are gathered. 0 (default) = automatic:
  // 64 MiB, or one largest message (max_value_bytes + max_key_bytes + 64 KiB) if that is
  // more. Otherwise at least one largest message.
  uint64_t max_response_bytes = 0;
  // Most calls (HTTP/2 streams) one connection may have open on the gRPC port at once
  // (gRPC's max_concurrent_streams); the caller queues the rest itself. 0 (default) =
  // gRPC's own limit (none); otherwise at least kMinStreamsPerConnection when members
  // call each other on this port too (no cluster_listen_address), at least 1 with a
  // cluster port of their own. Each open call may hold one request message in the node,
  // so with large values this bounds what a connection holds (docs/operations.md,
  // "Memory").
  uint32_t max_streams_per_connection = 0;
  static constexpr uint32_t kMinStreamsPerConnection = 16;
  // Let gRPC grow each connection's receive windows to the bandwidth-delay product it
  // measures (BDP probing): the fastest uploads over long links, but a Pipeline stream's
  // client may then have many MiB waiting in the node's buffers. false = windows stay at
  // gRPC's 64 KiB beyond the message being read. Default true.
  bool grow_receive_windows = true;
  // How often the node checks glibc's free heap memory and gives it back to the system when
  // more than 32 MiB is free (malloc_trim; see docs/operations.md, "Memory"). 0 = never.
  // Default 1 s.
  std::chrono::milliseconds heap_release_interval{1000};
  // Accepted and validated, but no longer used: the gRPC server is on the callback API,
  // whose handlers run on threads gRPC creates and sizes itself (docs/design/threading.md).
  // Kept so that existing configurations stay valid. 0 (default) = number of cores.
  uint32_t threads = 0;
  // How long Shutdown() lets in-flight calls finish before cancelling them. Default 5 s.
  std::chrono::milliseconds shutdown_grace{5000};
  // Source of time for TTLs. Not owned; must outlive the node. nullptr = Clock::System().
  Clock* clock = nullptr;

  // ---- Cluster (docs/design/replication.md, docs/operations.md).
  // Members to join through, HOST:PORT each; any one that answers will do. Empty = start
  // a new cluster with this node as its only member. The node's own address is skipped.
  std::vector<std::string> seeds;
  // The address other nodes and clients dial to reach this node, HOST:PORT. Empty = the
  // bound gRPC address (grpc_address()); required if listen_address's host is a wildcard
  // (0.0.0.0 or [::]) and seeds are given.
  std::string advertise_address;
  // Relative capacity on the ring, >= 1. Default 1.
  uint32_t weight = 1;
  // Owners per key (1 primary + replicas), >= 1, at most 16; must match the cluster's.
  // Default 2.
  uint32_t replication_factor = 2;
  // Ring points per unit of weight; must match the cluster's. Default 160.
  uint32_t vnodes_per_weight = 160;
  // How long Start() keeps trying the seeds before it fails. Default 30 s.
  std::chrono::milliseconds join_timeout{30000};
  // Bytes of recent writes each replica link keeps, so a replica that reconnects can
  // resume; a replica further behind gets a full sync. Default 64 MiB; at least 1 MiB.
  uint64_t replication_backlog_bytes = uint64_t{64} << 20;
  // A replica link with writes unacknowledged for this long is considered broken and is
  // reconnected (the replica then resumes or gets a full sync). Default 5 s.
  std::chrono::milliseconds replication_ack_timeout{5000};
  // Deadline of one forwarded call to another node. Default 5 s.
  std::chrono::milliseconds forward_timeout{5000};
  // ---- Persistence (docs/design/persistence.md).
  // Where snapshots go (created if missing). Empty (default): no persistence. A node that
  // starts without seeds loads the snapshot found there; one that joins through seeds
  // starts empty, as before, and its peers send it what it owns.
  std::string data_dir = {};
  // A snapshot is written every snapshot_interval when at least snapshot_min_changes keys
  // were written, deleted, expired or evicted since the last one (Redis's `save 300 1`),
  // and at a graceful shutdown when anything changed. Default 300 s, 1; interval >= 1 s.
  std::chrono::seconds snapshot_interval{300};
  uint64_t snapshot_min_changes = 1;
  // ---- Pub/sub (docs/design/pubsub.md).
  // Undelivered bytes one subscriber may hold; past it its stream ends with
  // RESOURCE_EXHAUSTED (Redis's client-output-buffer-limit for pubsub). Default 8 MiB; at
  // least 64 KiB.
  uint64_t subscriber_buffer_bytes = uint64_t{8} << 20;
  // How long a publish waits for the other nodes' counts; a node that has not answered
  // by then is counted in nodes_unreached. Default 250 ms.
  std::chrono::milliseconds publish_timeout{250};
  // An idle Subscribe stream carries a heartbeat this often, and a node that failed to
  // pass a message on tells the peer the number it missed at this interval (so a gap
  // shows within about this long). Default 1000 ms.
  std::chrono::milliseconds pubsub_heartbeat{1000};
  // Keyspace notifications, in Redis's notify-keyspace-events letters ("KEA": every
  // event on both channel kinds; "Kx": expirations on __keyspace@0__:<key>). This node
  // announces the changes of the keys it is the primary of, to subscribers on every node;
  // set the same on every node. Empty (default): none. n and m are refused.
  std::string keyspace_events;
  // ---- Failure detection and rebalancing (docs/design/failover.md).
  // Heartbeat period to every other member (each call's deadline is the failure timeout).
  // Default 200 ms; at least 10 ms and below failure_timeout.
  std::chrono::milliseconds heartbeat_interval{200};
  // A peer with no heartbeat answer for this long is suspected; a member suspected by a
  // majority is declared failed; a node that cannot reach a majority for this long fences
  // itself. Default 1000 ms (detection within ~1.2 s).
  std::chrono::milliseconds failure_timeout{1000};
  // While fenced, serve reads from the local copy, marked possibly_stale (otherwise
  // UNAVAILABLE). Writes are always refused while fenced. Default false.
  bool fenced_reads = false;
  // On SIGTERM/SIGINT (ringcached) or Node::Leave(): first stream this node's ranges to
  // their next owners and leave the view, then shut down. Default false (ringcached's
  // --drain-on-shutdown).
  bool drain_on_shutdown = false;
  // Longest a drain (graceful leave) may take before the node shuts down anyway.
  // Default 10 minutes.
  std::chrono::milliseconds drain_timeout{600000};
  // The coordinator logs a warning when a transition (members joining or leaving) has
  // waited this long for its sources' TransitionReady reports, and again every such
  // period while it still waits. Default 30 s; at least 100 ms.
  std::chrono::milliseconds transition_warn{30000};

  // ---- The cluster plane (docs/security.md).
  // The cluster plane's own gRPC address, HOST:PORT; port 0 = any free port (see
  // Node::cluster_address()). Members then call each other only here (joins, views,
  // heartbeats, leaves, replication, forwarded calls), and the client port
  // (listen_address) refuses every member's call: operators can firewall the plane apart,
  // as Redis keeps its cluster bus apart. A cluster port serves members only (with a
  // cluster secret, a call without it is refused). Seeds are then the other members'
  // cluster addresses. Empty (default) = the plane shares listen_address.
  std::string cluster_listen_address;
  // The address other members dial for this node's cluster plane, HOST:PORT. Empty = the
  // bound cluster address; required if cluster_listen_address's host is a wildcard and
  // seeds are given. Needs cluster_listen_address.
  std::string cluster_advertise_address;
  // The secret every member holds: each call a node makes to another carries it, and the
  // Membership and Replication rpcs and forwarded client calls are refused
  // (UNAUTHENTICATED) without it. It proves the caller is a member, not which one, and
  // travels in clear without TLS. 16 to 1024 printable ASCII bytes, the same on every
  // member; empty (default) = the cluster plane is open to anyone who can reach
  // listen_address (logged as a warning at startup).
  std::string cluster_secret;
  // TLS (see NodeTlsOptions). Default off.
  NodeTlsOptions tls{};
  // A view pushed to this node more than this many epochs above the one it holds is
  // refused. Default 1,000,000; at least 1.
  uint64_t max_epoch_jump = 1000000;

  // ---- The client plane (docs/security.md, "Client tokens").
  // A file of client tokens (`NAME ROLE TOKEN` per line; roles read, read-write, admin):
  // every gRPC call must carry one (metadata `authorization: Bearer <token>`), every Redis
  // connection must AUTH with one, and a token's role bounds what it may do. Read at
  // Start (an error fails it) and again by ReloadClientTokens. Needs cluster_secret: a
  // call forwarded by a member runs with the role the member found. Empty (default) =
  // no tokens: every caller may do everything.
  std::string client_tokens_file;
  // Without client tokens, listen_address and resp_listen_address must be loopback
  // addresses (127.0.0.0/8, [::1], localhost), as Redis's protected mode: a node that any
  // caller may write to is not put on a network by accident; so must
  // cluster_listen_address without a cluster secret. false = allow it.
  bool protected_mode = true;

  // Where the node reports cluster events (view changes, replication links connecting,
  // resuming, full syncs): one line each. nullptr = discarded. Called from the node's
  // threads; must be thread-safe. ringcached routes it to its log.
  std::function<void(LogLevel level, std::string_view message)> log;

  // OK, or INVALID_ARGUMENT naming the offending field.
  Status Validate() const;
};

// One primary -> replica link, as Node::Stats() reports it (see ReplicaLinkStats in
// proto/ringcache/v1/cache.proto for the meaning of each field).
struct ReplicaLinkStats {
  std::string replica_id;
  std::string address;
  std::string state;  // "connecting", "full_sync", "streaming", "disconnected"
  uint64_t lag_ops = 0;
  uint64_t lag_ms = 0;
  uint64_t last_seq = 0;
  uint64_t acked_seq = 0;
  uint64_t backlog_bytes = 0;
  uint64_t resumes = 0;
  uint64_t full_syncs = 0;
  uint64_t sync_keys_sent = 0;
  uint64_t sync_bytes_sent = 0;
};

// Where a write stands in replication: the replica links that carry it and its sequence
// number on each. Pass it to Node::WaitForReplicas (write concern). Empty = nothing to
// wait for (no replica, or the write failed).
struct WriteTicket {
  struct Link {
    uint64_t link_id = 0;  // Unique per link for the node's lifetime.
    uint64_t seq = 0;
  };
  std::vector<Link> links;

  // Keeps, per link, the highest seq of this and `other` (links are ordered streams, so
  // an ack of the later write implies the earlier one).
  void Merge(const WriteTicket& other);
};

// The node's state (ringcache.v1.NodeState; docs/design/failover.md). Its gRPC health
// status is SERVING only in kServing.
enum class NodeState : int {
  kServing = 1,  // On the ring, reaching a majority.
  kFenced = 2,   // Cannot reach a majority for longer than the failure timeout.
  kJoining = 3,  // Joining or rejoining: receiving its ranges, not an owner yet.
  kLeaving = 4,  // Streaming its ranges to their next owners before leaving.
};
// "serving", "fenced", "joining", "leaving".
std::string_view NodeStateName(NodeState state);

// Rebalancing progress of this node as a source (and what it received as a new owner);
// see MigrationProgress in proto/ringcache/v1/cache.proto.
struct MigrationProgress {
  uint64_t epoch = 0;  // 0 = no transition in progress.
  uint64_t ranges_total = 0;
  uint64_t ranges_done = 0;
  uint64_t keys_sent = 0;
  uint64_t bytes_sent = 0;
  uint64_t keys_remaining = 0;   // Estimate.
  uint64_t bytes_remaining = 0;  // Estimate.
  uint64_t keys_received = 0;
  uint64_t bytes_received = 0;
};

// The rebalancing transition in progress, as this node sees it (TransitionStatus in
// cache.proto): how long it has waited, and on the coordinator, for which sources.
struct TransitionStatus {
  uint64_t epoch = 0;                // The view's epoch; 0 = the view is not in transition.
  uint64_t waiting_ms = 0;           // Since this node adopted the first view of the transition.
  bool coordinator = false;          // This node coordinates it (only then are the lists set).
  std::vector<std::string> pending;  // Voters whose TransitionReady for `epoch` is missing.
  std::vector<std::string> ready;    // Voters that reported ready for `epoch`.
};

// Failure detection state of one peer (PeerHealth in cache.proto).
struct PeerHealth {
  std::string id;
  bool reachable = false;
  uint64_t last_heard_ms = 0;
  bool suspected = false;
  std::vector<std::string> suspected_by;
};

// What Node::Stats() reports.
struct NodeStats {
  std::string node_id;
  std::string version;                     // NodeVersion()
  uint64_t uptime_ms = 0;                  // Since Start().
  CacheStats cache;                        // The local cache's counters and gauges.
  uint64_t epoch = 0;                      // The node's cluster view epoch.
  std::vector<ReplicaLinkStats> replicas;  // Links to this node's replicas.
  NodeState state = NodeState::kServing;
  std::string state_detail;  // Why (e.g. the fencing reason); may be empty when serving.
  uint64_t under_replicated_ranges = 0;
  MigrationProgress migration;
  TransitionStatus transition;
  std::vector<PeerHealth> peers;
};

class Node {
 public:
  // Validates `options`, creates the cache, binds the gRPC address and starts serving,
  // bootstraps a one-node cluster (no seeds) or joins the cluster through options.seeds
  // (blocking up to options.join_timeout), then starts the metrics endpoint; returns once
  // the node holds a cluster view with itself and both addresses accept connections.
  // Errors: INVALID_ARGUMENT for bad options; UNAVAILABLE naming the address when one
  // cannot be bound, or naming the seeds when the join timed out; FAILED_PRECONDITION when
  // the cluster refused the join (settings mismatch, node id used by a live member).
  static Result<std::unique_ptr<Node>> Start(NodeOptions options);

  // Calls Shutdown(), then frees everything.
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Graceful stop: health becomes NOT_SERVING (gRPC health and /healthz), the gRPC
  // server stops accepting calls, Pipeline streams flush the results of the operations
  // they have read and end with UNAVAILABLE, and in-flight calls get until
  // options().shutdown_grace to finish, after which they are cancelled. Then the threads
  // are joined and the metrics endpoint closes. Blocks until done. Idempotent; concurrent
  // callers all wait for the one shutdown. The operations below keep working afterwards
  // (on the local cache) until the Node is destroyed.
  void Shutdown();

  // Blocks until a Shutdown() (from any thread) has completed.
  void Wait();
  // Graceful leave: asks the coordinator to mark this node LEAVING, waits (up to
  // options().drain_timeout) while its ranges stream to their next owners and the
  // coordinator removes it from the view. Does not shut the node down (the caller does:
  // ringcached exits 0). Errors: FAILED_PRECONDITION (the only member, or not serving),
  // UNAVAILABLE (coordinator unreachable), DEADLINE_EXCEEDED (drain timeout).
  Status Leave();

  // Reads NodeOptions::client_tokens_file again (SIGHUP in ringcached). On an error (named
  // with the file and line) the tokens held before stay. OK without a file.
  Status ReloadClientTokens();
  // The node's state now (cheap: one atomic load).
  NodeState state() const;
  // A sentence explaining state(): why the node is fenced (the message fenced calls are
  // refused with), what it waits for while joining or leaving; "" when serving.
  std::string StateDetail() const;

  // True from the moment Shutdown() starts.
  bool shutting_down() const;

  // The bound gRPC address with the actual port, e.g. "127.0.0.1:7700".
  const std::string& grpc_address() const;
  // The bound cluster-plane address with the actual port, or "" without
  // cluster_listen_address (the plane is on grpc_address()).
  const std::string& cluster_address() const;
  // The bound metrics address with the actual port, or "" if the endpoint is disabled.
  const std::string& metrics_address() const;
  // The bound Redis-protocol address with the actual port, or "" if it is off.
  const std::string& resp_address() const;
  // The validated options, with node_id and threads resolved.
  const NodeOptions& options() const;
  // A random number chosen when this node started: pub/sub sequence numbers are per
  // incarnation.
  uint64_t incarnation() const;

  // ---- Local operations. Same contracts as the Cache methods of the same name (a key is a
  // HashedKey: a plain key converts to one; a caller that hashed it passes it on); the codes
  // are those of proto/ringcache/v1/cache.proto. They act on this node's cache: routing a
  // key to its owner is the front end's job (the gRPC service forwards; C++ programs use
  // ringcache::client). A write of a key this node is the primary of is shipped to the
  // key's replicas; `ticket` (if non-null) receives where it stands, for WaitForReplicas.
  // Writes return UNAVAILABLE (naming the reason) while the node is fenced.

  // NOT_FOUND if absent or expired. `meta` may be nullptr.
  Status Get(const HashedKey& key, std::string* value, ItemMeta* meta = nullptr) const;
  // Cache::GetTyped: the stored pack of a key holding `type` (ringcache/typed.h).
  Status GetTyped(const HashedKey& key, ValueType type, std::string* pack,
                  ItemMeta* meta = nullptr) const;
  // Cache::VisitTyped: the same, read in place.
  Status VisitTyped(const HashedKey& key, ValueType type, Cache::ValueVisitor& visitor) const;
  // Returns the new version.
  Result<uint64_t> Set(const HashedKey& key, std::string_view value, const SetOptions& options = {},
                       WriteTicket* ticket = nullptr);
  Status Delete(const HashedKey& key, WriteTicket* ticket = nullptr);
  Status Touch(const HashedKey& key, uint64_t ttl_ms, WriteTicket* ticket = nullptr);
  Result<uint64_t> Ttl(const HashedKey& key, ValueType* type = nullptr) const;
  Result<IncrResult> Incr(const HashedKey& key, int64_t delta, uint64_t ttl_ms_if_created = 0,
                          WriteTicket* ticket = nullptr);

  // Cache::Update (a read-modify-write under the key's lock), replicated like the write it
  // leaves (a set, a delete or a touch; nothing when it changed nothing). `expected` as
  // Cache::Update's: the type the key must hold (nullopt = any).
  Result<UpdateResult> Update(
      const HashedKey& key,
      const std::function<Status(const ItemView* current, Mutation* mutation)>& fn,
      WriteTicket* ticket = nullptr, std::optional<ValueType> expected = ValueType::kString);

  // Cache::Prefetch: a hint that `keys` are about to be read or written here.
  void Prefetch(std::span<const std::string_view> keys) const;
  void Prefetch(std::span<const HashedKey> keys) const;

  // Batched forms: INVALID_ARGUMENT naming max-batch if there are more than
  // options().max_batch items; otherwise one result per item, in order.
  Result<std::vector<Result<Item>>> MultiGet(std::span<const std::string_view> keys) const;
  // `ticket` (if non-null) receives the merged ticket of every item.
  Result<std::vector<Result<uint64_t>>> MultiSet(std::span<const SetItem> items,
                                                 WriteTicket* ticket = nullptr);
  Result<std::vector<Status>> MultiDelete(std::span<const std::string_view> keys,
                                          WriteTicket* ticket = nullptr);

  // Write concern: calls done(acked) once `k` of the ticket's links have acknowledged
  // their seq, or when `timeout` passes, or at once if the ticket has fewer than k links
  // (acked then counts what has acked so far). Never blocks; `done` runs on a replication
  // thread, or inline on the caller's if it can already decide.
  void WaitForReplicas(const WriteTicket& ticket, uint32_t k, std::chrono::milliseconds timeout,
                       std::function<void(uint32_t acked)> done);

  // OK if `count` items may travel in one batch or Pipeline message, else
  // INVALID_ARGUMENT: "<what> has <count> items, over the max-batch limit of <max>".
  Status CheckBatchSize(std::string_view what, size_t count) const;

  NodeStats Stats() const;

  // Writes a snapshot to data_dir now (after the one running, if any) and calls `done`
  // with its outcome, on the persister's thread. FAILED_PRECONDITION at once without
  // data_dir.
  void SnapshotNow(std::function<void(Result<SnapshotInfo>)> done);

 private:
  struct Impl;
  explicit Node(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
};

}  // namespace ringcache
