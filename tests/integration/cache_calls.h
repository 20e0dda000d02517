// Deadline-bounded calls of the ringcache.v1.Cache unary rpcs through the generated stubs,
// returning status and response together, plus the flags most tests start a node with.
//
//   auto set = Set(*stub, "k", "v", {.ttl_ms = 200});
//   CHECK_THAT(set.status, IsOk());
//
// Every call carries a deadline (kRpcTimeout unless given). Thread-safe as the stub is.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "node_process.h"
#include "ringcache/v1/cache.grpc.pb.h"

namespace ringcache::it {

namespace v1 = ::ringcache::v1;

// Small limits that tests can exceed cheaply; messages must name them.
inline constexpr int kTestMaxKeyBytes = 64;
inline constexpr int kTestMaxValueBytes = 1000;
inline constexpr int kTestMaxBatch = 100;

// Flags of a small node: the limits above, 64 MiB, 2 threads, node id "it-node".
inline std::vector<std::string> SmallNodeFlags() {
  return {"--node-id",         "it-node",
          "--max-key-bytes",   std::to_string(kTestMaxKeyBytes),
          "--max-value-bytes", std::to_string(kTestMaxValueBytes),
          "--max-batch",       std::to_string(kTestMaxBatch),
          "--memory",          "64MiB",
          "--threads",         "2",
          "--log-level",       "info"};
}

template <typename Response>
struct Reply {
  grpc::Status status;
  Response response;
};

// Calls `method` of `stub` with `request` and a deadline.
template <typename Request, typename Response>
Reply<Response> Unary(v1::Cache::Stub& stub,
                      grpc::Status (v1::Cache::Stub::*method)(grpc::ClientContext*, const Request&,
                                                              Response*),
                      const Request& request, std::chrono::milliseconds timeout = kRpcTimeout) {
  grpc::ClientContext ctx;
  SetDeadline(ctx, timeout);
  Reply<Response> reply;
  reply.status = (stub.*method)(&ctx, request, &reply.response);
  return reply;
}

struct SetArgs {
  uint64_t ttl_ms = 0;
  v1::SetMode mode = v1::SET_MODE_ALWAYS;
  uint64_t expected_version = 0;
};

inline v1::SetRequest MakeSet(const std::string& key, const std::string& value,
                              const SetArgs& args = {}) {
  v1::SetRequest r;
  r.set_key(key);
  r.set_value(value);
  r.set_ttl_ms(args.ttl_ms);
  r.set_mode(args.mode);
  r.set_expected_version(args.expected_version);
  return r;
}

inline Reply<v1::GetResponse> Get(v1::Cache::Stub& stub, const std::string& key) {
  v1::GetRequest r;
  r.set_key(key);
  return Unary(stub, &v1::Cache::Stub::Get, r);
}

inline Reply<v1::SetResponse> Set(v1::Cache::Stub& stub, const std::string& key,
                                  const std::string& value, const SetArgs& args = {}) {
  return Unary(stub, &v1::Cache::Stub::Set, MakeSet(key, value, args));
}

inline Reply<v1::DeleteResponse> Delete(v1::Cache::Stub& stub, const std::string& key) {
  v1::DeleteRequest r;
  r.set_key(key);
  return Unary(stub, &v1::Cache::Stub::Delete, r);
}

inline Reply<v1::TouchResponse> Touch(v1::Cache::Stub& stub, const std::string& key,
                                      uint64_t ttl_ms) {
  v1::TouchRequest r;
  r.set_key(key);
  r.set_ttl_ms(ttl_ms);
  return Unary(stub, &v1::Cache::Stub::Touch, r);
}

inline Reply<v1::TtlResponse> Ttl(v1::Cache::Stub& stub, const std::string& key) {
  v1::TtlRequest r;
  r.set_key(key);
  return Unary(stub, &v1::Cache::Stub::Ttl, r);
}

inline Reply<v1::IncrResponse> Incr(v1::Cache::Stub& stub, const std::string& key, int64_t delta,
                                    uint64_t ttl_ms_if_created = 0) {
  v1::IncrRequest r;
  r.set_key(key);
  r.set_delta(delta);
  r.set_ttl_ms_if_created(ttl_ms_if_created);
  return Unary(stub, &v1::Cache::Stub::Incr, r);
}

inline Reply<v1::StatsResponse> Stats(v1::Cache::Stub& stub) {
  return Unary(stub, &v1::Cache::Stub::Stats, v1::StatsRequest{});
}

}  // namespace ringcache::it
