// ForwardStreams: operations forwarded to their owners on long-lived Pipeline streams, a
// few per peer, instead of one call per forward (docs/design/routing.md, "Forwarding").
//
//   streams->Send(target, std::move(request), deadline, our_deadline,
//                 [](v1::PipelineResponse* results) { ... });  // one result per op, in order
//
// Every Send is an *exchange*: its operations get ids of the stream (the caller's ids are
// kept and put back on the results), queue behind the write in flight, and go out in the
// next message together with whatever else queued meanwhile (at most max_ops operations
// and max_bytes per message, the owner's limits). The owner's Pipeline reactor answers each
// operation by id; once all of an exchange's results are in, `done` gets them in the
// exchange's order. `done` runs exactly once, on a gRPC or the sweeper thread; inline in
// Send only when the node is shutting down (the exchange then fails at once).
//
// Failures: each exchange has its own deadline, min(caller's, forward timeout + extra)
// as for a call (CacheService::ForwardDeadline); a sweeper thread fails the exchanges past
// it (RelayStatus of DEADLINE_EXCEEDED), and cancels the stream if nothing at all came
// back on it since that exchange was written (a stuck or unreachable owner: the next Send
// opens a new stream). A stream that ends fails every exchange still on it with its
// status, relayed (UNAVAILABLE naming the owner for a transport failure; the owner's own
// "node ... shutting down" unchanged). So an operation reported failed may or may not have
// run, exactly as with a failed call.
//
// Views: a stream carries ringcache-forwarded-by and the ringcache-epoch this node had
// when it opened (the owner routes with it). An exchange is sent on a stream of the
// epoch it was routed under; a stream of an older epoch is half-closed (after its queued
// exchanges are written) and ends once the owner has answered everything on it. Streams
// idle for kIdleClose are closed the same way, so a peer that left costs nothing.
//
// Threads and locking: mu_ (the set of streams) -> PeerStream::mu_; neither is held while
// calling gRPC or a `done`. The destructor cancels every stream and waits for each to end:
// call it after the server has stopped (no more Sends) and before the channels go.
#pragma once

#include <grpcpp/channel.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "ringcache/v1/cache.pb.h"

namespace ringcache::internal {

class CacheService;
class PeerStream;
class ResponseBudget;
struct ForwardTarget;

// The bound on a forwarded exchange's results (v1::ResultLimit); 0 bytes = none.
struct ForwardLimit {
  uint64_t max_response_bytes = 0;
  bool defer = false;
};

class ForwardStreams {
 public:
  // The results of an exchange: one per operation, in the exchange's order, with the
  // caller's ids; each carries its own status (the owner's, or the exchange's failure).
  using Done = std::function<void(v1::PipelineResponse* results)>;
  using Limit = ForwardLimit;

  // Streams per peer: an owner runs one stream's operations on one thread at a time.
  static constexpr size_t kStreamsPerPeer = 1;
  // A stream with nothing in flight for this long is closed.
  static constexpr std::chrono::seconds kIdleClose{30};
  // How often the sweeper looks for exchanges past their deadline.
  static constexpr std::chrono::milliseconds kSweepInterval{50};

  // `service` (not owned) outlives this: its peers, limits, epoch and RelayStatus are used.
  explicit ForwardStreams(const CacheService* service);
  ~ForwardStreams();
  ForwardStreams(const ForwardStreams&) = delete;
  ForwardStreams& operator=(const ForwardStreams&) = delete;

  // Forwards `request`'s operations (at most the owner's limits, CacheService::
  // MaxForwardOps/MaxForwardBytes; `bytes` is their ForwardBytes) to `target`, routed
  // under `epoch`. `deadline` and `our_deadline` as from CacheService::ForwardDeadline.
  // `budget` (nullptr = none; must stay valid until `done` runs) is charged each result as
  // it arrives; once it is exceeded, each read result that arrives is replaced by its
  // error (the value dropped as it comes), while writes keep their results (they ran).
  // `limit` travels with the exchange's operations (a ResultLimit part of the message,
  // which may hold other exchanges too): the owner bounds their results by it, and with
  // `defer` hands back the operations past it (results with `deferred` set).
  void Send(const ForwardTarget& target, uint64_t epoch, v1::PipelineRequest request, size_t bytes,
            std::chrono::system_clock::time_point deadline, bool our_deadline, Done done,
            ResponseBudget* budget = nullptr, Limit limit = {});

  // Streams open now (for tests and stats).
  size_t open_streams() const;

 private:
  friend class PeerStream;

  // The stream an exchange for (target, epoch) goes on, or null when stopping. A new one
  // (*fresh) is not started yet. Streams of (target's address, another epoch or id) leave
  // the active set into *closing, each with a reference. REQUIRES: mu_.
  PeerStream* PickLocked(const ForwardTarget& target, uint64_t epoch,
                         std::vector<PeerStream*>* closing, bool* fresh);
  // Called by a stream once, from OnDone: it leaves both sets.
  void Ended(PeerStream* stream);
  void Sweep();

  const CacheService* const service_;

  mutable std::mutex mu_;
  std::condition_variable cv_;  // Ended streams; the sweeper's stop.
  // Protected by mu_.
  std::unordered_map<std::string, std::vector<PeerStream*>> active_;  // By address.
  std::unordered_set<PeerStream*> all_;  // Every stream not yet ended (active or closing).
  uint64_t next_pick_ = 0;
  bool stopping_ = false;

  std::thread sweeper_;
};

}  // namespace ringcache::internal
