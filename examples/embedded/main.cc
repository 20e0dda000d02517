// examples/embedded: ringcache as a library inside a C++ program.
//
// A local cache with a 64 MiB budget (set/get, TTL, compare-and-set on versions,
// counters, stats), then a 3-node HashRing deciding which node owns which key, as the
// cluster will. Exits non-zero if anything does not behave as the headers document, so
// the test suite runs it ("example: embedded", and the install test builds it standalone
// against an installed ringcache).
#include <array>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ringcache/cache.h"
#include "ringcache/hash_ring.h"
#include "ringcache/key_hash.h"
#include "ringcache/status.h"

namespace {

// Reports a failed step; returns the process exit code for `return Fail(...)` in main.
int Fail(std::string_view step, const ringcache::Status& status) {
  std::cerr << "embedded_example: " << step << " failed: " << status.ToString() << "\n";
  return 1;
}

// Reports an outcome that differs from the documented one.
int Fail(std::string_view expectation) {
  std::cerr << "embedded_example: expected " << expectation << "\n";
  return 1;
}

}  // namespace

int main() {
  using ringcache::Cache;
  using ringcache::SetMode;
  using ringcache::StatusCode;

  // --- A local cache with a 64 MiB budget ------------------------------------------
  auto created = Cache::Create({.capacity_bytes = uint64_t{64} << 20});
  if (!created.ok()) return Fail("Cache::Create", created.status());
  std::unique_ptr<Cache> cache = std::move(created).value();
  std::cout << "cache: " << cache->shard_count() << " shards, "
            << (cache->options().capacity_bytes >> 20) << " MiB budget, "
            << Cache::EntryOverheadBytes() << " bytes overhead per entry\n";

  // --- Set and Get -----------------------------------------------------------------
  auto set = cache->Set("user:42", "Ada");
  if (!set.ok()) return Fail("Set user:42", set.status());
  std::string value;
  ringcache::ItemMeta meta;
  if (auto s = cache->Get("user:42", &value, &meta); !s.ok()) return Fail("Get user:42", s);
  std::cout << "get user:42 -> \"" << value << "\" (version " << meta.version << ")\n";

  std::string ignored;
  if (auto s = cache->Get("user:missing", &ignored); s.code() != StatusCode::kNotFound) {
    return Fail("Get of an absent key should be NOT_FOUND", s);
  }

  // --- TTL: the session expires in 30 s ---------------------------------------------
  auto session = cache->Set("session:abc", "token-1", {.ttl_ms = 30'000});
  if (!session.ok()) return Fail("Set session:abc", session.status());
  auto ttl = cache->Ttl("session:abc");
  if (!ttl.ok()) return Fail("Ttl session:abc", ttl.status());
  std::cout << "ttl session:abc -> " << *ttl << " ms left\n";

  // --- Compare-and-set: write only if nobody changed the entry since we read it ----
  auto cas = cache->Set("user:42", "Ada Lovelace",
                        {.mode = SetMode::kIfVersion, .expected_version = meta.version});
  if (!cas.ok()) return Fail("compare-and-set with the current version", cas.status());
  auto stale = cache->Set("user:42", "Grace Hopper",
                          {.mode = SetMode::kIfVersion, .expected_version = meta.version});
  if (stale.status().code() != StatusCode::kFailedPrecondition) {
    return Fail("compare-and-set with a stale version should be FAILED_PRECONDITION",
                stale.status());
  }
  std::cout << "cas user:42 v" << meta.version << " -> v" << *cas << "; retry with v"
            << meta.version << " -> " << stale.status().ToString() << "\n";

  // --- Counters ----------------------------------------------------------------------
  for (int i = 0; i < 3; ++i) {
    if (auto r = cache->Incr("page:views", 1); !r.ok()) return Fail("Incr page:views", r.status());
  }
  auto views = cache->Incr("page:views", -1);
  if (!views.ok()) return Fail("Incr page:views -1", views.status());
  if (views->value != 2) return Fail("page:views == 2");
  std::cout << "incr page:views x3, decr x1 -> " << views->value << "\n";

  // --- Stats -------------------------------------------------------------------------
  const ringcache::CacheStats stats = cache->Stats();
  std::cout << "stats: hits=" << stats.hits << " misses=" << stats.misses << " sets=" << stats.sets
            << " items=" << stats.items << " bytes_used=" << stats.bytes_used << "/"
            << stats.capacity_bytes << "\n";

  // --- A 3-node ring: which node owns which key --------------------------------------
  auto ring = ringcache::HashRing::Build({{.id = "node-a"}, {.id = "node-b"}, {.id = "node-c"}});
  if (!ring.ok()) return Fail("HashRing::Build", ring.status());
  const std::vector<double> shares = ring->PrimaryShares();
  for (size_t i = 0; i < ring->member_count(); ++i) {
    std::cout << "ring: " << ring->members()[i].id << " is primary for "
              << std::lround(shares[i] * 100) << "% of the hash space\n";
  }
  for (std::string_view key : {"user:42", "session:abc", "page:views", "cart:7"}) {
    std::array<uint32_t, 2> owners{};  // primary + 1 replica
    const size_t n = ring->Owners(ringcache::HashKey(key), owners);
    if (n != owners.size()) return Fail("two owners per key");
    std::cout << "owners " << key << " -> primary " << ring->members()[owners[0]].id << ", replica "
              << ring->members()[owners[1]].id << "\n";
  }

  std::cout << "embedded_example: OK\n";
  return 0;
}
