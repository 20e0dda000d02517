#include "router.h"

#include <algorithm>
#include <iterator>
#include <span>

#include "ringcache/key_hash.h"

namespace ringcache::internal {

Router::Router(std::string self_id, uint32_t max_key_bytes, bool standalone, const NodeGate* gate,
               bool fenced_reads, uint32_t replication_factor)
    : self_id_(std::move(self_id)),
      max_key_bytes_(max_key_bytes),
      standalone_(standalone),
      gate_(gate),
      fenced_reads_(fenced_reads),
      replication_factor_(replication_factor) {}

Router::Decision Router::Route(const Topology* topology, const Hints& hints, const Op& op) const {
  Decision d;
  if (hints.role != Role::kAdmin) [[unlikely]] {
    if (Status allowed = CheckRole(hints.role, op.kind); !allowed.ok()) {
      d.where = Where::kError;
      d.error = std::move(allowed);
      return d;
    }
  }
  const bool write = ShapeOf(op.kind) == OpShape::kPointWrite;
  if (Fenced()) [[unlikely]] {
    if (write || !fenced_reads_) {
      d.where = Where::kError;
      d.error = FencedStatus();
    } else {
      d.possibly_stale = true;  // This node's copy; never forwarded.
    }
    return d;
  }
  const Access access = write          ? Access::kWrite
                        : op.any_owner ? Access::kReadAnyOwner
                                       : Access::kReadPrimary;
  Placement p = Place(topology, hints, op.key, access);
  d.where = p.where;
  d.owner = p.owner;
  d.error = std::move(p.error);
  d.behind = p.behind;
  if (d.where != Where::kError && op.write_concern > 0) {
    if (Status s = CheckWriteConcern(topology, op.write_concern, op.write_concern_timeout_ms);
        !s.ok()) {
      d.where = Where::kError;
      d.owner = nullptr;
      d.error = std::move(s);
    }
  }
  return d;
}

Status Router::CheckWriteConcern(const Topology* topology, uint32_t k, uint32_t timeout_ms) const {
  if (k == 0) return Status::Ok();
  const uint32_t rf = topology != nullptr ? topology->replication_factor() : replication_factor_;
  const uint32_t replicas = rf == 0 ? 0 : rf - 1;
  if (k > replicas) {
    return Status::InvalidArgument("write_concern " + std::to_string(k) +
                                   " is over the replication factor's " + std::to_string(replicas) +
                                   " replicas");
  }
  if (timeout_ms > kMaxWriteConcernTimeoutMs) {
    return Status::InvalidArgument("write_concern_timeout_ms " + std::to_string(timeout_ms) +
                                   " is over the limit of " +
                                   std::to_string(kMaxWriteConcernTimeoutMs));
  }
  return Status::Ok();
}

Status Router::FencedStatus() const {
  std::string detail = gate_ != nullptr ? gate_->FenceReason() : std::string();
  if (detail.empty()) detail = "node " + self_id_ + " is fenced; retry";  // Unfenced meanwhile.
  return Status::Unavailable(std::move(detail));
}

Status Router::CheckServing(const Topology* topology) const {
  if (topology != nullptr || standalone_) return Status::Ok();
  return Status::Unavailable("node " + self_id_ + " is joining the cluster");
}

Status Router::LocalWriteRefused() {
  return Status::InvalidArgument(
      "ringcache-local is for reads only; send writes without it (they go to the key's "
      "primary)");
}

Router::Placement Router::Place(const Topology* topology, const Hints& hints, const HashedKey& key,
                                Access access) const {
  Placement p;
  if (topology == nullptr) {
    if (standalone_) return p;
    p.where = Where::kError;
    p.error = CheckServing(topology);
    return p;
  }
  if (hints.local) {
    if (access != Access::kWrite) return p;
    p.where = Where::kError;
    p.error = LocalWriteRefused();
    return p;
  }
  if (topology->ring.member_count() == 1 && topology->self == 0) return p;
  // An empty or oversized key gets the cache's own error here rather than after a hop.
  if (key.bytes().empty() || key.bytes().size() > max_key_bytes_) return p;

  const uint64_t hash = key.placement();
  uint32_t owners[Topology::kMaxReplicationFactor];
  const size_t n = topology->Owners(hash, owners);
  if (n == 0) {
    p.where = Where::kError;
    p.error =
        Status::Unavailable("node " + self_id_ + " has no serving member in its view (epoch " +
                            std::to_string(topology->epoch()) + ")");
    return p;
  }
  if (topology->self >= 0) {
    const auto self = static_cast<uint32_t>(topology->self);
    if (owners[0] == self) return p;
    if (access == Access::kReadAnyOwner) {
      for (size_t i = 1; i < n; ++i) {
        if (owners[i] == self) return p;
      }
    }
  }
  if (!hints.forwarded_by.empty() && access != Access::kWrite && hints.has_epoch &&
      hints.epoch > topology->epoch() && topology->target_self >= 0 &&
      topology->view.in_transition()) {
    // A read from a node that already adopted the view completing our transition, in
    // which this node owns the key: the transition completes only once every range moving
    // here has arrived, so the read can be served from here (instead of failing for the
    // few milliseconds until this node adopts that view too).
    uint32_t target[Topology::kMaxReplicationFactor];
    const size_t tn = topology->target_ring.Owners(
        hash, std::span<uint32_t>(
                  target, std::min<size_t>(topology->replication_factor(), std::size(target))));
    const auto self = static_cast<uint32_t>(topology->target_self);
    for (size_t i = 0; i < tn && (i == 0 || access == Access::kReadAnyOwner); ++i) {
      if (target[i] == self) return p;
    }
  }
  if (!hints.forwarded_by.empty() && !(hints.has_epoch && hints.epoch < topology->epoch())) {
    // One hop, unless the forwarder routed on an older view than ours: then ours is the
    // better guess and the operation goes on to the owner we know, carrying our epoch.
    // Every further hop needs a strictly newer view than the one before, so a chain is as
    // short as the views are new, and never a loop. Here the forwarder's view is as new as
    // ours (or newer: we may be the one behind): refuse; the caller retries once they
    // converge.
    p.where = Where::kError;
    p.behind = hints.has_epoch && hints.epoch > topology->epoch();
    p.error = Status::Unavailable("node " + self_id_ + " is not the " +
                                  (access == Access::kReadAnyOwner ? "owner" : "primary") +
                                  " of this key in epoch " + std::to_string(topology->epoch()) +
                                  " (forwarded by " + std::string(hints.forwarded_by) + "); retry");
    return p;
  }
  p.where = Where::kRemote;
  p.owner = topology->ring_members[owners[0]];
  return p;
}

}  // namespace ringcache::internal
