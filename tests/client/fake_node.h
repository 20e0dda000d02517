// FakeNode: an in-process stand-in for one ringcached, serving the Cache service on
// 127.0.0.1 (port 0) from a std::map, for client tests that need exact control: what
// view a node returns, which epoch it hints at, and which failures it injects.
//
//   FakeNode a("a"), b("b");
//   ClusterView view = FakeNode::ViewOf(2, {&a, &b});
//   a.SetView(view); b.SetView(view);
//   a.FailNext("Set", grpc::Status(grpc::StatusCode::UNAVAILABLE, "..."));
//
// Unlike a real node it never forwards: it serves whatever it receives and records which
// keys reached it, so a test sees exactly where the client sent each key.
//
// Thread safety: has internal synchronization; the test thread and gRPC's threads use it
// concurrently.
#pragma once

#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ringcache/cluster_view.h"
#include "ringcache/v1/cache.grpc.pb.h"

namespace ringcache::client_test {

class FakeNode final : public v1::Cache::Service {
 public:
  explicit FakeNode(std::string id);
  ~FakeNode() override;

  const std::string& id() const { return id_; }
  const std::string& address() const { return address_; }

  // A view of `nodes` (all serving) with this epoch and replication factor 1.
  static ClusterView ViewOf(uint64_t epoch, const std::vector<const FakeNode*>& nodes,
                            uint32_t replication_factor = 1);

  // The view Topology/WatchTopology return (watchers get it at once).
  void SetView(const ClusterView& view);
  // Trailing metadata "ringcache-epoch: <epoch>" on every Cache reply (0 = none).
  void SetEpochHint(uint64_t epoch);
  // The next call of `method` ("Get", "Set", "Incr", "MultiGet", ...) fails with `status`
  // (each call consumes one queued failure).
  void FailNext(const std::string& method, grpc::Status status);

  // Keys this node received, per method, in arrival order.
  std::vector<std::string> Received(const std::string& method) const;
  // Calls per method (including failed ones), and the last "ringcache-epoch" sent to it.
  int Calls(const std::string& method) const;
  std::string LastEpochHeader() const;
  // Open WatchTopology streams.
  int Watchers() const;

  // Stops the server (calls fail with UNAVAILABLE afterwards, like a dead node).
  void Stop();

  grpc::Status Get(grpc::ServerContext*, const v1::GetRequest*, v1::GetResponse*) override;
  grpc::Status Set(grpc::ServerContext*, const v1::SetRequest*, v1::SetResponse*) override;
  grpc::Status Delete(grpc::ServerContext*, const v1::DeleteRequest*, v1::DeleteResponse*) override;
  grpc::Status Touch(grpc::ServerContext*, const v1::TouchRequest*, v1::TouchResponse*) override;
  grpc::Status Ttl(grpc::ServerContext*, const v1::TtlRequest*, v1::TtlResponse*) override;
  grpc::Status Incr(grpc::ServerContext*, const v1::IncrRequest*, v1::IncrResponse*) override;
  grpc::Status MultiGet(grpc::ServerContext*, const v1::MultiGetRequest*,
                        v1::MultiGetResponse*) override;
  grpc::Status MultiSet(grpc::ServerContext*, const v1::MultiSetRequest*,
                        v1::MultiSetResponse*) override;
  grpc::Status MultiDelete(grpc::ServerContext*, const v1::MultiDeleteRequest*,
                           v1::MultiDeleteResponse*) override;
  grpc::Status Stats(grpc::ServerContext*, const v1::StatsRequest*, v1::StatsResponse*) override;
  grpc::Status Topology(grpc::ServerContext*, const v1::TopologyRequest*,
                        v1::ClusterView*) override;
  grpc::Status WatchTopology(grpc::ServerContext*, const v1::TopologyRequest*,
                             grpc::ServerWriter<v1::ClusterView>*) override;

 private:
  struct Stored {
    std::string value;
    uint64_t version = 0;
  };
  // Records the call; returns the injected failure, if any. Adds the epoch trailer.
  grpc::Status Enter(grpc::ServerContext* context, const std::string& method,
                     const std::vector<std::string>& keys);

  const std::string id_;
  std::string address_;  // Constant after construction.
  std::unique_ptr<grpc::Server> server_;

  mutable std::mutex mu_;
  std::condition_variable view_changed_;
  bool stopping_ = false;                                     // Guarded by mu_.
  v1::ClusterView view_;                                      // Guarded by mu_.
  uint64_t epoch_hint_ = 0;                                   // Guarded by mu_.
  std::map<std::string, std::deque<grpc::Status>> failures_;  // Guarded by mu_.
  std::map<std::string, std::vector<std::string>> received_;  // Guarded by mu_.
  std::map<std::string, int> calls_;                          // Guarded by mu_.
  std::string last_epoch_header_;                             // Guarded by mu_.
  int watchers_ = 0;                                          // Guarded by mu_.
  std::map<std::string, Stored> store_;                       // Guarded by mu_.
  uint64_t next_version_ = 1;                                 // Guarded by mu_.
};

}  // namespace ringcache::client_test
