// Checks shared by the failover and rebalance tests (failover_test.cc, rebalance_test.cc):
// bounded polling, the ring a view defines (with node indexes), a node's own copy of a
// key (`ringcache-local: 1`), member states, and waits for a cluster to settle after a
// failure, a join or a leave.
//
// Node i of a TestCluster has id "n<i+1>"; every helper maps ids to indexes that way.
// Every wait is bounded by its timeout and every rpc has a deadline.
//
// Thread safety: the free functions are thread-safe as the stubs they get are; the
// TestCluster overloads must run on the test's main thread (see cluster_harness.h).
#pragma once

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "cache_calls.h"
#include "cluster_harness.h"
#include "ringcache/cluster_view.h"
#include "ringcache/hash_ring.h"
#include "ringcache/key_hash.h"
#include "ringcache/v1/cluster.grpc.pb.h"

namespace ringcache::it::checks {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

inline double MsSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// Polls `ok` every `every` until it returns true or `timeout` passes.
inline bool Eventually(const std::function<bool()>& ok, std::chrono::milliseconds timeout = 15s,
                       std::chrono::milliseconds every = 20ms) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (ok()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(every);
  }
}

inline size_t IndexOf(const std::string& id) { return std::stoul(id.substr(1)) - 1; }

// The ring a view defines, with node indexes ("n3" -> 2).
struct Ring {
  v1::ClusterView proto;
  ClusterView view;
  HashRing ring;
  std::vector<size_t> node_of_member;  // ring member index -> node index
  uint32_t rf = 1;

  // Node indexes of the key's owners, primary first.
  std::vector<size_t> Owners(const std::string& key) const {
    std::vector<uint32_t> owners(rf);
    owners.resize(ring.Owners(HashKey(key), owners));
    std::vector<size_t> out;
    for (uint32_t m : owners) out.push_back(node_of_member[m]);
    return out;
  }
  size_t Primary(const std::string& key) const { return Owners(key).at(0); }
};

inline std::optional<Ring> RingOf(const v1::ClusterView& pv) {
  Ring r;
  r.proto = pv;
  r.view.epoch = pv.epoch();
  r.view.replication_factor = pv.replication_factor();
  r.view.vnodes_per_weight = pv.vnodes_per_weight();
  for (const v1::Member& m : pv.members()) {
    r.view.members.push_back(
        ClusterMember{m.id(), m.address(), m.weight(), static_cast<MemberState>(m.state())});
  }
  Result<HashRing> ring = r.view.BuildRing();
  if (!ring.ok()) return std::nullopt;
  r.ring = std::move(ring).value();
  for (const ClusterMember* m : r.view.ring_members()) r.node_of_member.push_back(IndexOf(m->id));
  r.rf = pv.replication_factor();
  return r;
}

inline std::optional<v1::ClusterView> TopologyOf(v1::Cache::Stub& stub,
                                                 std::chrono::milliseconds timeout = 1000ms) {
  grpc::ClientContext ctx;
  SetDeadline(ctx, timeout);
  v1::ClusterView view;
  if (!stub.Topology(&ctx, v1::TopologyRequest{}, &view).ok()) return std::nullopt;
  return view;
}

inline std::optional<v1::StatsResponse> StatsOf(v1::Cache::Stub& stub,
                                                std::chrono::milliseconds timeout = 2000ms) {
  grpc::ClientContext ctx;
  SetDeadline(ctx, timeout);
  v1::StatsResponse resp;
  if (!stub.Stats(&ctx, v1::StatsRequest(), &resp).ok()) return std::nullopt;
  return resp;
}

// The state of member `id` in `view`; nullopt if absent.
inline std::optional<v1::MemberState> StateIn(const v1::ClusterView& view, const std::string& id) {
  for (const v1::Member& m : view.members()) {
    if (m.id() == id) return m.state();
  }
  return std::nullopt;
}

inline std::string DescribeView(const v1::ClusterView& view) {
  std::ostringstream out;
  out << "epoch " << view.epoch() << " [";
  for (int i = 0; i < view.members_size(); ++i) {
    const v1::Member& m = view.members(i);
    std::string state = v1::MemberState_Name(m.state());
    if (state.rfind("MEMBER_STATE_", 0) == 0) state = state.substr(13);
    out << (i == 0 ? "" : " ") << m.id() << "/" << state;
  }
  out << "]";
  return out.str();
}

// A Get of the node's own copy (no routing).
inline Reply<v1::GetResponse> LocalGet(v1::Cache::Stub& stub, const std::string& key,
                                       std::chrono::milliseconds timeout = kRpcTimeout) {
  grpc::ClientContext ctx;
  SetDeadline(ctx, timeout);
  ctx.AddMetadata("ringcache-local", "1");
  v1::GetRequest req;
  req.set_key(key);
  Reply<v1::GetResponse> reply;
  reply.status = stub.Get(&ctx, req, &reply.response);
  return reply;
}

inline Reply<v1::GetResponse> GetWithin(v1::Cache::Stub& stub, const std::string& key,
                                        std::chrono::milliseconds timeout) {
  v1::GetRequest r;
  r.set_key(key);
  return Unary(stub, &v1::Cache::Stub::Get, r, timeout);
}

inline Reply<v1::SetResponse> SetWc(v1::Cache::Stub& stub, const std::string& key,
                                    const std::string& value, uint32_t write_concern,
                                    std::chrono::milliseconds timeout = 2000ms) {
  v1::SetRequest set = MakeSet(key, value);
  set.set_write_concern(write_concern);
  if (write_concern > 0) set.set_write_concern_timeout_ms(1000);
  return Unary(stub, &v1::Cache::Stub::Set, set, timeout);
}

// What every running node of `cluster` reports, one line each.
inline std::string DescribeCluster(TestCluster& cluster) {
  std::ostringstream out;
  for (size_t i = 0; i < cluster.size(); ++i) {
    out << cluster.id(i) << ": ";
    if (!cluster.running(i)) {
      out << "(not running)\n";
      continue;
    }
    auto stub = cluster.Stub(i);
    auto view = TopologyOf(*stub);
    auto stats = StatsOf(*stub);
    out << (view ? DescribeView(*view) : std::string("Topology failed"));
    if (stats) {
      out << " state=" << v1::NodeState_Name(stats->state())
          << " under_replicated=" << stats->under_replicated_ranges() << " detail=\""
          << stats->state_detail() << "\"";
    } else {
      out << " Stats failed";
    }
    out << "\n";
  }
  return out.str();
}

// Settled: every running node reports the same epoch, in a view where every running node
// is SERVING and every node that is not running is FAILED or absent; every running node's
// Stats.state is SERVING; with `fully_replicated`, no node has under-replicated ranges.
inline bool Settled(TestCluster& cluster, bool fully_replicated, std::string* why = nullptr) {
  std::optional<uint64_t> epoch;
  for (size_t i = 0; i < cluster.size(); ++i) {
    if (!cluster.running(i)) continue;
    auto stub = cluster.Stub(i);
    auto view = TopologyOf(*stub);
    if (!view) {
      if (why) *why = cluster.id(i) + ": Topology failed";
      return false;
    }
    if (epoch && *epoch != view->epoch()) {
      if (why) *why = "epochs differ";
      return false;
    }
    epoch = view->epoch();
    for (size_t j = 0; j < cluster.size(); ++j) {
      auto state = StateIn(*view, cluster.id(j));
      const bool ok = cluster.running(j) ? state == v1::MEMBER_STATE_SERVING
                                         : (!state || *state == v1::MEMBER_STATE_FAILED);
      if (!ok) {
        if (why) *why = cluster.id(i) + " sees " + DescribeView(*view);
        return false;
      }
    }
    auto stats = StatsOf(*stub);
    if (!stats || stats->state() != v1::NODE_STATE_SERVING) {
      if (why) *why = cluster.id(i) + " is not SERVING (Stats)";
      return false;
    }
    if (fully_replicated && stats->under_replicated_ranges() != 0) {
      if (why) *why = cluster.id(i) + " has under-replicated ranges";
      return false;
    }
  }
  return epoch.has_value();
}

inline bool WaitSettled(TestCluster& cluster, std::chrono::milliseconds timeout,
                        bool fully_replicated = false) {
  return Eventually([&] { return Settled(cluster, fully_replicated); }, timeout, 50ms);
}

// The current ring as the first running node reports it.
inline std::optional<Ring> CurrentRing(TestCluster& cluster) {
  for (size_t i = 0; i < cluster.size(); ++i) {
    if (!cluster.running(i)) continue;
    auto stub = cluster.Stub(i);
    if (auto view = TopologyOf(*stub)) return RingOf(*view);
  }
  return std::nullopt;
}

// Every running node reports member `id` in state `state` (all at one epoch).
inline bool AllSee(TestCluster& cluster, const std::string& id, v1::MemberState state) {
  std::optional<uint64_t> epoch;
  for (size_t i = 0; i < cluster.size(); ++i) {
    if (!cluster.running(i)) continue;
    auto stub = cluster.Stub(i);
    auto view = TopologyOf(*stub);
    if (!view || StateIn(*view, id) != state) return false;
    if (epoch && *epoch != view->epoch()) return false;
    epoch = view->epoch();
  }
  return epoch.has_value();
}

// Keys whose copies on their owners (in `ring`) differ from the primary's, or are missing
// on the primary: "key: n1=v3 n2=absent".
inline std::vector<std::string> ReplicaMismatches(TestCluster& cluster, const Ring& ring,
                                                  const std::vector<std::string>& keys,
                                                  size_t max_reported = 20) {
  std::vector<std::unique_ptr<v1::Cache::Stub>> stubs;
  for (size_t i = 0; i < cluster.size(); ++i) {
    stubs.push_back(cluster.running(i) ? cluster.Stub(i) : nullptr);
  }
  std::vector<std::string> bad;
  size_t count = 0;
  for (const std::string& key : keys) {
    const std::vector<size_t> owners = ring.Owners(key);
    std::string first;
    bool differ = false;
    std::ostringstream line;
    line << key << ":";
    for (size_t k = 0; k < owners.size(); ++k) {
      const size_t n = owners[k];
      std::string copy = "absent";
      if (stubs[n] == nullptr) {
        copy = "down";
      } else {
        auto got = LocalGet(*stubs[n], key);
        if (got.status.ok()) {
          copy = "v" + std::to_string(got.response.version()) + "=" + got.response.value();
        } else if (got.status.error_code() != grpc::StatusCode::NOT_FOUND) {
          copy = "error:" + got.status.error_message();
        }
      }
      line << " " << cluster.id(n) << "=" << copy;
      if (k == 0) {
        first = copy;
      } else if (copy != first) {
        differ = true;
      }
    }
    if (differ) {
      ++count;
      if (bad.size() < max_reported) bad.push_back(line.str());
    }
  }
  if (count > bad.size()) bad.push_back("... " + std::to_string(count - bad.size()) + " more");
  return bad;
}

// Polls ReplicaMismatches (bounded by `timeout`) until the owners of every key agree;
// returns the disagreements seen last (empty: they agree).
inline std::vector<std::string> WaitOwnersAgree(TestCluster& cluster, const Ring& ring,
                                                const std::vector<std::string>& keys,
                                                std::chrono::milliseconds timeout,
                                                std::chrono::milliseconds poll = 200ms) {
  std::vector<std::string> mismatches;
  Eventually(
      [&] {
        mismatches = ReplicaMismatches(cluster, ring, keys);
        return mismatches.empty();
      },
      timeout, poll);
  return mismatches;
}

// Reads `expected` (key -> value) through `stub` (routed to each key's primary) in
// MultiGet batches; returns the keys that are missing or hold another value (at most
// `max_reported` named, then a count), and sets *wrong to the total.
inline std::vector<std::string> MissingKeys(v1::Cache::Stub& stub,
                                            const std::map<std::string, std::string>& expected,
                                            size_t* wrong, size_t max_reported = 20) {
  std::vector<std::string> bad;
  *wrong = 0;
  std::vector<const std::pair<const std::string, std::string>*> batch;
  auto flush = [&] {
    if (batch.empty()) return;
    v1::MultiGetRequest req;
    for (const auto* kv : batch) req.add_keys(kv->first);
    auto reply = Unary(stub, &v1::Cache::Stub::MultiGet, req, 10'000ms);
    for (size_t i = 0; i < batch.size(); ++i) {
      std::string problem;
      if (!reply.status.ok()) {
        problem = "rpc " + reply.status.error_message();
      } else if (static_cast<size_t>(reply.response.results_size()) != batch.size()) {
        problem = "short reply";
      } else {
        const v1::GetResult& r = reply.response.results(static_cast<int>(i));
        if (r.status().code() != 0) {
          problem = "code " + std::to_string(r.status().code()) + " " + r.status().message();
        } else if (r.value() != batch[i]->second) {
          problem = "value " + r.value() + " != " + batch[i]->second;
        }
      }
      if (!problem.empty()) {
        ++*wrong;
        if (bad.size() < max_reported) bad.push_back(batch[i]->first + ": " + problem);
      }
    }
    batch.clear();
  };
  for (const auto& kv : expected) {
    batch.push_back(&kv);
    if (batch.size() == 500) flush();
  }
  flush();
  if (*wrong > bad.size()) bad.push_back("... " + std::to_string(*wrong - bad.size()) + " more");
  return bad;
}

// Reports a measured figure: a Catch2 WARN (always shown) and a line on stdout.
inline void Figure(const std::string& test, const std::string& text) {
  WARN(test << ": " << text);
  std::cout << "FIGURE [" << test << "] " << text << std::endl;
}

// Calls Membership.Leave on `address` for `node_id`.
inline grpc::Status Leave(const std::string& address, const std::string& node_id,
                          v1::LeaveResponse* response,
                          std::chrono::milliseconds timeout = 30'000ms) {
  auto stub =
      v1::Membership::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  SetDeadline(ctx, timeout);
  v1::LeaveRequest req;
  req.set_node_id(node_id);
  return stub->Leave(&ctx, req, response);
}

}  // namespace ringcache::it::checks
