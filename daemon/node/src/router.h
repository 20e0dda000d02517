// Router: where each operation a node receives runs, decided once per operation on one
// snapshot of the view — the routing step of the operation path (docs/design/operations.md,
// section 2; the rules, with their reasons, in docs/design/routing.md).
//
//   Router::Placement p = router.Place(topology, hints, key, Router::Access::kWrite);
//   switch (p.where) { case kHere: ...; case kRemote: forward to *p.owner; case kError: ... }
//
//   Router::Decision d = router.Route(topology, hints, op);   // an Op (operation.h)
//   // d.where: kHere (d.possibly_stale: a fenced node's own copy), kRemote (*d.owner), kError
//
// The router knows nothing of gRPC or protobuf: the front ends (the gRPC Cache service
// today) translate their requests into operations and hints, and its Status errors back
// into their protocol's. Route is the whole decision for one operation, in one place:
// fencing (the node's state), placement, and the write concern's limits. Place decides
// placement alone. A batch is routed op by op with Route, on one view snapshot, by
// RunBatch (op_batch.h), which groups the remote ones per owner.
//
// Thread safety: immutable after construction; every method may be called concurrently.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "operation.h"
#include "ringcache/cluster_view.h"
#include "ringcache/status.h"
#include "topology.h"

namespace ringcache::internal {

// What the router reads of the node it routes for: whether it is fenced, and why. The
// daemon's adapter reads Node (cache_service.cc); tests give their own. Called on every
// operation: Fenced() must be cheap (one relaxed load).
class NodeGate {
 public:
  virtual bool Fenced() const = 0;
  virtual std::string FenceReason() const = 0;

 protected:
  ~NodeGate() = default;
};

class Router {
 public:
  enum class Access {
    kWrite,         // Owner 0, the primary.
    kReadPrimary,   // Owner 0.
    kReadAnyOwner,  // This node if it is any owner, else owner 0.
  };
  enum class Where { kHere, kRemote, kError };

  // What the caller said about where its call may run (from the request's metadata).
  struct Hints {
    bool local = false;             // Read this node's own copy (writes are refused).
    std::string_view forwarded_by;  // Non-empty: forwarded once already, never again.
    bool has_epoch = false;         // The caller's view epoch, when it sent one.
    uint64_t epoch = 0;
    // What the caller may do (CheckRole): an operation its role does not allow is refused
    // before it is placed. kAdmin when the node has no client tokens.
    Role role = Role::kAdmin;
  };

  struct Placement {
    Where where = Where::kHere;
    const ClusterMember* owner = nullptr;  // kRemote: points into the topology asked.
    Status error;                          // kError: why (UNAVAILABLE, INVALID_ARGUMENT).
    // kError for a forwarded call routed on a newer view than this node's: it may be
    // served once that view is here (UnaryCall::RetryOnView).
    bool behind = false;
  };

  // Where one operation runs (Route).
  struct Decision {
    Where where = Where::kHere;
    const ClusterMember* owner = nullptr;  // kRemote: points into the topology asked.
    Status error;                          // kError: why.
    // kHere on a fenced node started with fenced_reads: a read of its own copy, which may
    // be stale; never forwarded.
    bool possibly_stale = false;
    bool behind = false;  // As in Placement.
  };

  // write_concern_timeout_ms: the most accepted.
  static constexpr uint32_t kMaxWriteConcernTimeoutMs = 60000;

  // `standalone`: a node without a cluster (every key is served here). Keys longer than
  // `max_key_bytes`, and empty keys, are served here so that the cache gives its own error
  // without a hop. `gate` (may be null: never fenced) gives the node's state;
  // `fenced_reads`: a fenced node serves reads from its own copy; `replication_factor`:
  // the node's, for the write concern's limit before it holds a view.
  Router(std::string self_id, uint32_t max_key_bytes, bool standalone,
         const NodeGate* gate = nullptr, bool fenced_reads = false,
         uint32_t replication_factor = 1);

  // The whole routing decision for `op` on `topology`, in this order: fencing (writes,
  // and reads unless fenced_reads, are UNAVAILABLE with the fencing reason), placement
  // (Place, with the op's precomputed hash), the write concern's limits (INVALID_ARGUMENT).
  // Never allocates unless it refuses.
  Decision Route(const Topology* topology, const Hints& hints, const Op& op) const;

  // OK for k == 0; else INVALID_ARGUMENT if k is over the replicas the replication factor
  // gives (the view's, else the node's) or timeout_ms over kMaxWriteConcernTimeoutMs.
  Status CheckWriteConcern(const Topology* topology, uint32_t k, uint32_t timeout_ms) const;
  // True while the node is fenced (one relaxed atomic load).
  bool Fenced() const { return gate_ != nullptr && gate_->Fenced(); }
  bool fenced_reads() const { return fenced_reads_; }
  // The UNAVAILABLE status of an operation refused while fenced (the fencing reason).
  Status FencedStatus() const;

  // Where an operation on `key` runs, on `topology` (nullptr: standalone, or no view yet),
  // by the key's placement hash (never computed here). Never allocates unless it refuses.
  Placement Place(const Topology* topology, const Hints& hints, const HashedKey& key,
                  Access access) const;

  // OK, or UNAVAILABLE while a cluster node has no view yet (`topology` null).
  Status CheckServing(const Topology* topology) const;
  // The error of a write sent with the "local" hint.
  static Status LocalWriteRefused();

 private:
  // Constant after construction.
  const std::string self_id_;
  const uint32_t max_key_bytes_;
  const bool standalone_;
  const NodeGate* const gate_;  // Not owned; may be null.
  const bool fenced_reads_;
  const uint32_t replication_factor_;
};

}  // namespace ringcache::internal
