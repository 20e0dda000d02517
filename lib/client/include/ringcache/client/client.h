// Client: a smart C++ client for a ringcache cluster.
//
// It fetches the cluster view from any seed node (the Topology rpc), keeps it current
// (a background WatchTopology stream, plus a refresh whenever a node hints at a newer
// epoch or a call fails with UNAVAILABLE), builds the same ring as the nodes
// (ClusterView::BuildRing) and sends every key straight to its primary, or to one of its
// owners for ReadPreference::kAnyOwner, so no node has to forward. Batches are split per
// node and the parts sent in parallel. Channels are pooled, one per node address.
//
//   auto client = ringcache::client::Client::Connect({.seeds = {"10.0.0.1:7700"}});
//   if (!client.ok()) return client.status();
//   auto version = (*client)->Set("user:42", "Ada", {.ttl_ms = 60'000});
//   auto item = (*client)->Get("user:42");   // Result<Item>: value + version + deadline
//
// Every call has a deadline: CallOptions::timeout, or Options::timeout when that is 0. The
// deadline bounds the whole call, retries included.
//
// Retries (bounded by Options::max_attempts and the deadline): a call that fails with
// UNAVAILABLE (the node is down, shutting down, joining, or not the key's primary in its
// newer view) refreshes the view and goes again to the key's owner in the refreshed view.
// A call that may have been applied before the connection broke is retried only if
// repeating it cannot change the outcome: reads, Touch, and Set in SetMode::kAlways.
// Incr, Delete and conditional Sets are retried only when the node certainly did not
// apply them (it could not be reached, or refused the call before running it); otherwise
// their UNAVAILABLE is returned to the caller, who knows whether a repeat is safe.
//
// Errors are ringcache::Status codes, the same as the nodes' gRPC codes (see
// proto/ringcache/v1/cache.proto): NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION,
// INVALID_ARGUMENT, UNAVAILABLE, DEADLINE_EXCEEDED, ...
//
// Thread safety: has internal synchronization; every method may be called concurrently
// from any number of threads. The destructor stops the background thread; it must not
// run while another thread still uses the client.
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
#include "ringcache/cluster_view.h"
#include "ringcache/status.h"
#include "ringcache/typed.h"

namespace ringcache::client {

// Which copy of a key a read may use (ringcache.v1.ReadPreference).
enum class ReadPreference {
  kPrimary,   // The key's primary: sees every acknowledged write. Default.
  kAnyOwner,  // Any owner, chosen round-robin: spreads reads, may be stale (replicas lag).
};

// A near cache (docs/design/near-cache.md): Get answers recently read keys from this
// process's memory, and each entry is dropped when its key changes anywhere in the
// cluster. Needs --keyspace-events with K and every class (e.g. "KA" or "KEA") on every
// node: Connect fails with FAILED_PRECONDITION otherwise.
//
// How stale a near-cache Get can be: the delay of the change's event (its primary's
// queue, one hop between nodes, the stream to this client: about a millisecond on a LAN),
// and never more than max_silence plus one tick's path delay, because entries are served
// only while every member's keyspace tick (sent in order with its events every
// --pubsub-heartbeat-ms) has arrived within max_silence. A lost event, a broken stream or
// a silent member drops everything.
struct NearCacheOptions {
  bool enabled = false;
  // Bytes of keys + values held (a ringcache::Cache's budget: least recently used go
  // first). At least 1 MiB. Default 64 MiB.
  uint64_t capacity_bytes = uint64_t{64} << 20;
  // The keys kept, a glob pattern (Redis's syntax); the client subscribes to the events of
  // these keys only. Default: every key.
  std::string key_pattern = "*";
  // How long any member may go without a tick before nothing is served from memory
  // (until every member ticks again). 0 = three times the nodes' --pubsub-heartbeat-ms.
  std::chrono::milliseconds max_silence{0};
  // The clock of entries' expiry and of max_silence (tests); nullptr = the system clock.
  Clock* clock = nullptr;
};

// The near cache's counters since Connect.
struct NearCacheStats {
  uint64_t hits = 0;           // Gets answered from memory.
  uint64_t misses = 0;         // Gets of covered keys that went to the cluster.
  uint64_t untrusted = 0;      // Of those, misses because a member was silent or the stream down.
  uint64_t fills = 0;          // Items stored after a miss.
  uint64_t invalidations = 0;  // Entries dropped for a change (an event or this client's write).
  uint64_t resets = 0;         // Times everything was dropped (a gap, a break, a silence).
  uint64_t bytes = 0;          // Held now.
};

struct Options {
  // HOST:PORT of one or more nodes of the cluster (any members). Required.
  std::vector<std::string> seeds{};
  // Deadline of a call whose CallOptions::timeout is 0. Default 2 s.
  std::chrono::milliseconds timeout{2000};
  // How long Connect() keeps trying the seeds for a first view. Default 5 s.
  std::chrono::milliseconds connect_timeout{5000};
  // Attempts per operation (or per part of a batch), the first included: 1 = no retry.
  // Default 4.
  uint32_t max_attempts = 4;
  // Pause before the first retry; doubles per retry up to 16x. Default 20 ms.
  std::chrono::milliseconds retry_backoff{20};
  // Keep a WatchTopology stream open to learn new views as soon as a node adopts them.
  // Without it the client still refreshes on hints and failures. Default true.
  bool watch_topology = true;
  // Most keys per MultiGet/MultiSet/MultiDelete rpc; a larger batch to one node is sent
  // as several rpcs in parallel. Keep it <= the nodes' --max-batch. Default 1000.
  uint32_t max_batch_keys = 1000;
  // Most key + value bytes per batched rpc (a single larger item goes alone). Keep it
  // below the nodes' message size limit. Default 1 MiB.
  uint64_t max_batch_bytes = uint64_t{1} << 20;
  // A client token of the nodes' --auth-tokens-file: every call carries it
  // (`authorization: Bearer <token>`); its role bounds what the calls may do. Empty
  // (default) = none, for nodes without tokens.
  std::string token{};
  // TLS to the nodes (their --tls-cert-file). Files are PEM, read by Connect.
  struct Tls {
    bool enabled = false;
    std::string ca_file{};      // CAs that verify the nodes; empty = the system's.
    std::string cert_file{};    // A client certificate (nodes with --tls-client-certs), and
    std::string key_file{};     // its key; both or neither.
    std::string server_name{};  // Check the nodes' certificates for this name instead of
                                // the host dialled.
  } tls{};
  // A near cache for Get (NearCacheOptions). Off by default.
  NearCacheOptions near_cache{};
  // Optional sink for the client's rare log lines (view changes, watch stream errors).
  // Called from the client's threads; must be thread-safe. nullptr = silent.
  std::function<void(std::string_view)> log{};

  // OK, or INVALID_ARGUMENT naming the offending field.
  Status Validate() const;
};

// Per-call options. Fields that do not apply to an operation are ignored (read_preference
// on writes, write_concern on reads).
struct CallOptions {
  // Deadline of the whole call, retries included; 0 = Options::timeout.
  std::chrono::milliseconds timeout{0};
  // Reads (Get, Ttl, MultiGet).
  ReadPreference read_preference = ReadPreference::kPrimary;
  // Writes: also wait for this many replicas to acknowledge (0 = primary only). More than
  // the cluster's replication_factor - 1 is INVALID_ARGUMENT.
  uint32_t write_concern = 0;
  // How long the primary waits for those acks; 0 = the node's default (1 s).
  std::chrono::milliseconds write_concern_timeout{0};
};

// The outcome of a write.
struct WriteResult {
  uint64_t version = 0;         // The entry's new version (Set, Incr); 0 for Delete, Touch.
  uint32_t replicas_acked = 0;  // Replicas that acked before the reply (write_concern > 0).
};

struct IncrResult {
  int64_t value = 0;  // The value after the increment.
  uint64_t version = 0;
  uint32_t replicas_acked = 0;
};

// More of a Set than ringcache::SetOptions says (Redis's SET options).
struct SetExtras {
  // Keep the key's current expiry (KEEPTTL); a key that did not exist gets none. Not with
  // SetOptions::ttl_ms or expires_at_ms (INVALID_ARGUMENT).
  bool keep_ttl = false;
  // Absolute expiry, Unix ms (EXAT/PXAT), instead of SetOptions::ttl_ms: exact however long
  // the call travels. A time already past stores nothing and removes the key. 0 = none.
  int64_t expires_at_ms = 0;
};

// A write that also answers what the key held just before it (SetGet, GetDelete).
struct Previous {
  // write.version == 0 when SetOptions::mode refused the write (nothing was written).
  WriteResult write;
  // The value the key held; nullopt if it was absent or expired.
  std::optional<std::string> value;
};

// When TouchIf changes an expiry (Redis's EXPIRE NX/XX/GT/LT; no expiry counts as later
// than any time).
enum class ExpireCondition {
  kAlways,
  kIfNone,            // NX: only a key without an expiry.
  kIfSome,            // XX: only a key with one.
  kIfLater,           // GT: only if the new expiry is later.
  kIfEarlier,         // LT: only if the new expiry is earlier.
  kIfSomeAndEarlier,  // XX LT.
};

// TouchIf's new expiry and its condition.
struct TouchOptions {
  uint64_t ttl_ms = 0;        // Relative; 0 = never expires (unless expires_at_ms is set).
  int64_t expires_at_ms = 0;  // Absolute (Unix ms) instead of ttl_ms; 0 = not used.
  ExpireCondition condition = ExpireCondition::kAlways;
};

// The result of TouchIf.
struct TouchResult {
  bool changed = false;  // False only when the condition did not hold (nothing changed).
  uint32_t replicas_acked = 0;
};

// The result of SetRange and Append.
struct RangeResult {
  uint64_t length = 0;  // The value's length afterwards.
  uint64_t version = 0;
  uint32_t replicas_acked = 0;
};

// The result of a hash, list or set command: the command's reply (ringcache/typed.h's
// TypedReply: integer, items, nil, ... as the command defines) and, for a write with a
// write concern, the replicas that acked.
struct CollectionResult : TypedReply {
  uint32_t replicas_acked = 0;
};

// The result of IncrByFloat.
struct FloatResult {
  std::string value;  // The number afterwards, as stored (at most 17 decimals).
  uint64_t version = 0;
  uint32_t replicas_acked = 0;
};

// One replication link of a node, as the node reports it (ringcache.v1.ReplicaLinkStats).
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
};

// One node's Stats rpc.
struct NodeStats {
  std::string node_id;
  std::string server_version;
  uint64_t uptime_ms = 0;
  CacheStats cache;  // The node's local cache counters and gauges.
  uint64_t epoch = 0;
  std::vector<ReplicaLinkStats> replicas;
};

// Counters of this client since Connect (they add up across clients).
struct ClientStats {
  uint64_t rpcs = 0;              // Rpcs sent to nodes (a batch split over 3 nodes counts 3).
  uint64_t retries = 0;           // Rpcs repeated after a retryable failure.
  uint64_t views_adopted = 0;     // Newer views taken (the first one included).
  uint64_t epoch_hints = 0;       // Replies whose "ringcache-epoch" was newer than ours.
  uint64_t topology_fetches = 0;  // Topology rpcs sent (Connect, refreshes).

  ClientStats& operator+=(const ClientStats& o);
};

// What Publish reached (ringcache.v1.PublishResponse).
struct PublishResult {
  // Subscriptions the message was buffered for, over every node that answered (one per
  // matching channel or pattern of a subscription, as Redis counts).
  uint64_t receivers = 0;
  // Nodes that did not answer within the node's --publish-timeout-ms.
  uint32_t nodes_unreached = 0;
};

// One thing a Subscription yields.
struct PubSubEvent {
  enum class Kind {
    kMessage,  // A message: channel, payload, pattern (empty for a channel subscription).
    // Messages may have been lost before this point: up to `missed` of them when the
    // node's sequence numbers tell (numbers skipped, seen in a message or a heartbeat: a
    // message lost between nodes may or may not have been for this subscription); 0 when
    // the count is unknown (the stream broke and the subscription was opened again, on the same
    // node or another). A near cache drops what it holds on a gap.
    kGap,
  };
  Kind kind = Kind::kMessage;
  uint64_t seq = 0;  // The node's number for the message (per stream).
  std::string channel;
  std::string payload;
  std::string pattern;
  uint64_t missed = 0;
  // A keyspace event's key version, or a node's keyspace tick number (set only by the
  // nodes, never by a client's Publish); 0 for a published message.
  uint64_t version = 0;
};

struct SubscribeOptions {
  // Names of channels and glob patterns (Redis's PSUBSCRIBE syntax).
  std::vector<std::string> channels = {};
  std::vector<std::string> patterns = {};
  // When the stream ends because its node went away (UNAVAILABLE), open it again on
  // another member (a kGap event marks the break). Otherwise Next returns the end.
  bool reconnect = true;
  // Bytes of events received but not yet taken by Next; past it the client stops reading
  // the stream, and the node cuts the subscription off once its own buffer
  // (--subscriber-buffer-bytes) is full too (RESOURCE_EXHAUSTED).
  size_t max_buffered_bytes = size_t{8} << 20;
};

// An open subscription (Client::Subscribe). A background thread reads its stream.
// Thread safety: Next and Close may be called from any thread, concurrently.
class Subscription {
 public:
  virtual ~Subscription() = default;  // Closes it.
  // The next event, waiting at most `timeout`. DEADLINE_EXCEEDED when nothing came in
  // time (the subscription goes on); otherwise, once the subscription has ended, why
  // (every later call answers the same): RESOURCE_EXHAUSTED (too slow), UNAVAILABLE (no
  // node to subscribe on), CANCELLED (Close), INVALID_ARGUMENT (the names).
  virtual Result<PubSubEvent> Next(std::chrono::milliseconds timeout) = 0;
  // Ends the subscription; a Next waiting returns CANCELLED. Idempotent.
  virtual void Close() = 0;
  // The node the stream is on now (member id), and how many times it was opened again.
  virtual std::string node() const = 0;
  virtual uint64_t reconnects() const = 0;
};

class Client {
 public:
  // Validates `options`, fetches a first view from the seeds (trying each in turn until
  // one returns a view with serving members, within options.connect_timeout) and starts
  // the background watcher. UNAVAILABLE naming each seed's error if none answers.
  static Result<std::unique_ptr<Client>> Connect(Options options);

  // Stops the watcher and waits for it (promptly: the stream is cancelled).
  // REQUIRES: no other thread is using the client.
  ~Client();

  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Reads one key: value, version and absolute deadline. NOT_FOUND if absent or expired.
  Result<Item> Get(std::string_view key, const CallOptions& call = {});
  // Writes one key according to options.mode (see ringcache::SetMode).
  Result<WriteResult> Set(std::string_view key, std::string_view value,
                          const SetOptions& options = {}, const CallOptions& call = {});
  // Removes one key. NOT_FOUND if absent or expired.
  Result<WriteResult> Delete(std::string_view key, const CallOptions& call = {});
  // Sets a new TTL (0 = never expires) without changing value or version.
  Result<WriteResult> Touch(std::string_view key, uint64_t ttl_ms, const CallOptions& call = {});
  // Remaining time to live in ms (>= 1), or 0 if the key never expires.
  Result<uint64_t> Ttl(std::string_view key, const CallOptions& call = {});
  // Adds `delta` to a decimal int64 value; an absent key counts as 0 and gets
  // ttl_ms_if_created.
  Result<IncrResult> Incr(std::string_view key, int64_t delta, uint64_t ttl_ms_if_created = 0,
                          const CallOptions& call = {});

  // Set with the SetRequest fields of `extras` as well.
  Result<WriteResult> Set(std::string_view key, std::string_view value, const SetOptions& options,
                          const SetExtras& extras, const CallOptions& call = {});
  // Redis's SET ... GET: writes as Set does and answers the value the key held, read and
  // replaced in one step. A write that options.mode refuses is not an error (see Previous).
  Result<Previous> SetGet(std::string_view key, std::string_view value,
                          const SetOptions& options = {}, const SetExtras& extras = {},
                          const CallOptions& call = {});
  // Redis's GETDEL: removes the key and answers the value it held, in one step. An absent
  // key is not an error: Previous::value is nullopt.
  Result<Previous> GetDelete(std::string_view key, const CallOptions& call = {});
  // Touch with an absolute deadline (Unix ms; Redis's PEXPIREAT). A time already past
  // removes the key. NOT_FOUND if absent or expired.
  Result<WriteResult> TouchAt(std::string_view key, int64_t expires_at_ms,
                              const CallOptions& call = {});
  // Redis's EXPIRE/PEXPIREAT with NX/XX/GT/LT: changes the expiry only if
  // options.condition holds (otherwise TouchResult::changed is false, not an error). An
  // expiry already past removes the key. NOT_FOUND if absent or expired; INVALID_ARGUMENT
  // with both ttl_ms and expires_at_ms.
  Result<TouchResult> TouchIf(std::string_view key, const TouchOptions& options,
                              const CallOptions& call = {});
  // Redis's GETEX: sets a new TTL (0 = never expires) and answers the value, in one step.
  // NOT_FOUND if absent or expired.
  Result<std::string> GetTouch(std::string_view key, uint64_t ttl_ms, const CallOptions& call = {});
  // Redis's INCRBYFLOAT: adds `delta` (decimal text: "0.1", "-5", "3.0e3") to a value that
  // parses as a floating-point number (an absent key counts as 0). FAILED_PRECONDITION if
  // the value is not a number or the result would not be finite; INVALID_ARGUMENT for a
  // malformed delta.
  Result<FloatResult> IncrByFloat(std::string_view key, std::string_view delta,
                                  const CallOptions& call = {});
  // Redis's SETRANGE: writes `bytes` at `offset` of the value, padding a shorter value (or
  // an absent key) with zero bytes up to it.
  Result<RangeResult> SetRange(std::string_view key, uint64_t offset, std::string_view bytes,
                               const CallOptions& call = {});
  // Redis's APPEND: adds `bytes` at the value's end (an absent key counts as empty).
  Result<RangeResult> Append(std::string_view key, std::string_view bytes,
                             const CallOptions& call = {});

  // ---- Hashes, lists and sets: Redis's commands (docs/api.md, "Hashes, lists and sets").
  // Collection runs any of them: `op` as ringcache/typed.h defines it (its args are views
  // the call copies), on the key's primary (reads: by call.read_preference). A read is
  // retried as Get is; a write only while it cannot have run. A key of another type is
  // FAILED_PRECONDITION "WRONGTYPE ...".
  //
  //   const std::string_view fields[] = {"name", "ada"};
  //   client.Collection("user:42", {.command = TypedCommand::kHSet, .args = fields});
  Result<CollectionResult> Collection(std::string_view key, const TypedOp& op,
                                      const CallOptions& call = {});
  // Short forms of the commonest: HSET (fields added), HGET (nullopt: no such field or
  // key), HGETALL (field, value pairs), LPUSH/RPUSH (the new length), LPOP/RPOP of up to
  // `count` elements, LRANGE, SADD/SREM (members added/removed), SISMEMBER, SMEMBERS.
  Result<int64_t> HashSet(std::string_view key, std::span<const FieldValue> fields,
                          const CallOptions& call = {});
  Result<std::optional<std::string>> HashGet(std::string_view key, std::string_view field,
                                             const CallOptions& call = {});
  Result<std::vector<std::pair<std::string, std::string>>> HashGetAll(std::string_view key,
                                                                      const CallOptions& call = {});
  Result<int64_t> ListPush(std::string_view key, ListEnd end,
                           std::span<const std::string_view> elements,
                           const CallOptions& call = {});
  Result<std::vector<std::string>> ListPop(std::string_view key, ListEnd end, uint64_t count,
                                           const CallOptions& call = {});
  Result<std::vector<std::string>> ListRange(std::string_view key, int64_t start, int64_t stop,
                                             const CallOptions& call = {});
  Result<int64_t> SetAdd(std::string_view key, std::span<const std::string_view> members,
                         const CallOptions& call = {});
  Result<int64_t> SetRemove(std::string_view key, std::span<const std::string_view> members,
                            const CallOptions& call = {});
  Result<bool> SetIsMember(std::string_view key, std::string_view member,
                           const CallOptions& call = {});
  Result<std::vector<std::string>> SetMembers(std::string_view key, const CallOptions& call = {});

  // Batches: one result per input, in input order; each behaves like the single form.
  // The keys are grouped per node and each group is sent as one or more rpcs, all in
  // parallel. An item fails alone (e.g. NOT_FOUND); a node that cannot be reached fails
  // only its own items (after the retries).
  std::vector<Result<Item>> MultiGet(std::span<const std::string_view> keys,
                                     const CallOptions& call = {});
  std::vector<Result<WriteResult>> MultiSet(std::span<const SetItem> items,
                                            const CallOptions& call = {});
  std::vector<Result<WriteResult>> MultiDelete(std::span<const std::string_view> keys,
                                               const CallOptions& call = {});

  // ---- Pub/sub (docs/design/pubsub.md): at-most-once, cluster-wide.

  // Publishes `payload` on `channel` through one member (round-robin); every subscriber
  // in the cluster receives it. Not retried: a publish that failed may or may not have
  // been delivered, and repeating it could deliver it twice.
  Result<PublishResult> Publish(std::string_view channel, std::string_view payload,
                                const CallOptions& call = {});
  // Opens a subscription on one member (round-robin), and waits (within the call's
  // deadline) until it is in place: a message published after this returns reaches it.
  // Must be destroyed before the client.
  Result<std::unique_ptr<Subscription>> Subscribe(SubscribeOptions options,
                                                  const CallOptions& call = {});

  // The Stats rpc of one node, given by member id (as in view()) or by HOST:PORT.
  // NOT_FOUND if `node` is neither a member id nor an address (contains no ':').
  Result<NodeStats> Stats(std::string_view node, const CallOptions& call = {});

  // Asks the cluster for its current view now (Topology on a member), adopts it if it is
  // newer than the client's, and returns the client's view after that.
  Result<ClusterView> Topology(const CallOptions& call = {});

  // The view the client routes by (no rpc). Its epoch only grows.
  ClusterView view() const;
  uint64_t epoch() const;
  // Ids of the key's owners in the client's view, primary first (no rpc).
  std::vector<std::string> Owners(std::string_view key) const;

  ClientStats stats() const;
  // The near cache's counters (all 0 without one).
  NearCacheStats near_cache_stats() const;

 private:
  struct Impl;
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ringcache::client
