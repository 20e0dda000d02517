// RunBatch: a batch of operations through the operation path (docs/design/operations.md,
// section 2, steps 2-5). Every operation is routed by Router::Route on one snapshot of the
// view; those served here run on the engine (ExecuteLocal) inline, on the calling thread,
// with their keys prefetched together; every other owner gets its operations as one
// exchange on the forwarding stream to it (forward_streams.h; split in more only past the
// owner's message limits);
// local writes with a write concern wait for their replicas. Each result lands in its own
// slot, so the caller reads them in request order; `done` runs once all are in.
//
//   std::vector<Op> ops = ...;                // decoded by a front end
//   std::vector<OpResult> results(ops.size());  // results[i].value: where a Get's value goes
//   RunBatch(service, topology, hints, ops, results, deadline,
//            [&](const Status& s) { /* encode, reply */ });
//
// The response is bounded (ResponseBudget, --max-response-bytes): once the results held
// are over it, operations that would add bytes are answered with its RESOURCE_EXHAUSTED
// instead of run, and `done` gets that error (otherwise OK); writes that return nothing
// still run. A front end answers the whole call with it, or each command that got it.
//
// Operations whose result the caller already filled (skip[i] true, e.g. a decoding error)
// are left alone. A forwarded exchange that fails gives each of its operations the relayed
// error (UNAVAILABLE naming the owner); the other owners' results stand.
//
// Threads: `done` runs on the calling thread if nothing was forwarded or waited for,
// otherwise on a gRPC, sweeper (ForwardStreams) or replication thread. `ops`, `results`
// and `skip` must stay valid until it runs; the views in `ops` are copied into the
// forwarded messages before RunBatch returns.
#pragma once

#include <chrono>
#include <functional>
#include <span>

#include "operation.h"
#include "router.h"

namespace ringcache::internal {

class CacheService;
struct Topology;

void RunBatch(const CacheService* service, const Topology* topology, const Router::Hints& hints,
              std::span<const Op> ops, std::span<OpResult> results, std::span<const bool> skip,
              std::chrono::system_clock::time_point deadline,
              std::function<void(const Status&)> done);

}  // namespace ringcache::internal
