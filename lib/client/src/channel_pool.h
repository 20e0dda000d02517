// ChannelPool: one gRPC channel (and Cache stub) per node address, created on first use
// and shared by every call to that node.
//
// A channel multiplexes any number of concurrent calls, so one per node is enough; the
// pool drops the channels of addresses that left the view (calls still holding a stub
// keep theirs alive until they finish).
//
// Thread safety: has internal synchronization; every method may be called concurrently.
#pragma once

#include <grpcpp/security/credentials.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ringcache/sync/mutex.h"
#include "ringcache/sync/thread_annotations.h"
#include "ringcache/v1/cache.grpc.pb.h"

namespace ringcache::client::internal {

// How the pool's channels reach the nodes.
struct ChannelSecurity {
  // Every call carries it (authorization: Bearer), unless it is empty.
  std::string token;
  // TLS credentials; nullptr = plaintext.
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  // With TLS: the name the nodes' certificates are checked against instead of the host
  // dialled; empty = the host.
  std::string server_name;
};

class ChannelPool {
 public:
  explicit ChannelPool(ChannelSecurity security = {}) : security_(std::move(security)) {}

  // The stub for `address`, creating its channel if needed. Never null.
  std::shared_ptr<v1::Cache::Stub> Stub(const std::string& address);
  // A stub for `address` on a connection of its own, not pooled: for a stream that stays
  // open (WatchTopology), so that it never takes the pooled connection's only stream on
  // a node that allows one call per connection (--max-streams-per-connection 1).
  std::shared_ptr<v1::Cache::Stub> OwnConnectionStub(const std::string& address) const;

  // Drops the channels of every address not in `keep`.
  void Retain(const std::vector<std::string>& keep);

  // Number of pooled channels (for tests).
  size_t size() const;

 private:
  const ChannelSecurity security_;
  mutable ringcache::internal::Mutex mu_;
  std::map<std::string, std::shared_ptr<v1::Cache::Stub>, std::less<>> stubs_ RC_GUARDED_BY(mu_);
};

}  // namespace ringcache::client::internal
