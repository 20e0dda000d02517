// Router: where each operation a node receives runs, decided once per operation on one
// snapshot of the view — the routing step of the operation path (docs/design/operations.md,
// section 2; the rules, with their reasons, in docs/design/routing.md).
//
//   Router::Placement p = router.Place(topology, hints, key, Router::Access::kWrite);
//   switch (p.where) { case kHere: ...; case kRemote: forward to *p.owner; case kError: ... }
//   Router::Split s = router.SplitBatch(topology, hints, Access::kReadPrimary, n, key_at);
//   // s.local: indexes served here; s.remote: one part per owner; s.errors: the rest.
//
// The router knows nothing of gRPC or protobuf: the front ends (the gRPC Cache service
// today) translate their requests into keys, hints and access kinds, and its Status errors
// back into their protocol's. It decides only *where*; fencing (a node-wide state) and
// write-concern limits are checked by the caller once per call, before it asks.
//
// Thread safety: immutable after construction; every method may be called concurrently.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ringcache/cluster_view.h"
#include "ringcache/status.h"
#include "topology.h"

namespace ringcache::internal {

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
  };

  struct Placement {
    Where where = Where::kHere;
    const ClusterMember* owner = nullptr;  // kRemote: points into the topology asked.
    Status error;                          // kError: why (UNAVAILABLE, INVALID_ARGUMENT).
  };

  // A batch split by where its operations run. Indexes are positions in the batch.
  struct Part {
    const ClusterMember* owner = nullptr;  // Points into the topology asked.
    std::vector<int> index;                // In batch order.
  };
  struct Split {
    std::vector<int> local;                      // Served here, in batch order.
    std::vector<Part> remote;                    // One per owner, in order of first use.
    std::vector<std::pair<int, Status>> errors;  // Refused, with the reason.
  };

  // `standalone`: a node without a cluster (every key is served here). Keys longer than
  // `max_key_bytes`, and empty keys, are served here so that the cache gives its own error
  // without a hop.
  Router(std::string self_id, uint32_t max_key_bytes, bool standalone);

  // Where an operation on `key` runs, on `topology` (nullptr: standalone, or no view yet).
  // Never allocates unless it refuses.
  Placement Place(const Topology* topology, const Hints& hints, std::string_view key,
                  Access access) const;

  // Place for the operations [0, n) of a batch, all with `access`: key_at(i) is operation
  // i's key; skip(i) true leaves operation i out (the caller answered it already).
  template <typename KeyAt, typename Skip>
  Split SplitBatch(const Topology* topology, const Hints& hints, Access access, int n,
                   KeyAt&& key_at, Skip&& skip) const {
    Split split;
    split.local.reserve(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      if (skip(i)) continue;
      Placement p = Place(topology, hints, key_at(i), access);
      switch (p.where) {
        case Where::kHere:
          split.local.push_back(i);
          break;
        case Where::kRemote:
          PartFor(&split, p.owner)->index.push_back(i);
          break;
        case Where::kError:
          split.errors.emplace_back(i, std::move(p.error));
          break;
      }
    }
    return split;
  }
  template <typename KeyAt>
  Split SplitBatch(const Topology* topology, const Hints& hints, Access access, int n,
                   KeyAt&& key_at) const {
    return SplitBatch(topology, hints, access, n, key_at, [](int) { return false; });
  }

  // OK, or UNAVAILABLE while a cluster node has no view yet (`topology` null).
  Status CheckServing(const Topology* topology) const;
  // The error of a write sent with the "local" hint.
  static Status LocalWriteRefused();

 private:
  static Part* PartFor(Split* split, const ClusterMember* owner);

  // Constant after construction.
  const std::string self_id_;
  const uint32_t max_key_bytes_;
  const bool standalone_;
};

}  // namespace ringcache::internal
