// The snippets of docs/guide.md, compiled and run by the test "example: guide snippets".
//
// Each snippet is the body of one function below, between a `// guide-snippet: NAME`
// line and a `// guide-snippet-end` line. A second test ("example: guide matches
// guide_snippets.cc", check_guide.cmake) fails if docs/guide.md does not contain each
// body verbatim (minus the function's indentation), so the guide cannot drift from
// code that compiles and passes. CHECK states the expected outcome; it aborts if false.
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ringcache/cache.h"
#include "ringcache/clock.h"
#include "ringcache/hash_ring.h"
#include "ringcache/key_hash.h"
#include "ringcache/status.h"
#include "ringcache/typed.h"

// Not assert(): the examples are built with NDEBUG too.
#define CHECK(cond)                                                                 \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                 \
    }                                                                               \
  } while (false)

namespace {

using ringcache::StatusCode;

// A cache for the snippets that do not show creation.
std::unique_ptr<ringcache::Cache> NewCache() {
  auto cache = ringcache::Cache::Create();
  CHECK(cache.ok());
  return std::move(cache).value();
}

void CreateAndUse() {
  // guide-snippet: create
  ringcache::CacheOptions options{.capacity_bytes = 64 << 20};  // key + value + overhead
  ringcache::Result<std::unique_ptr<ringcache::Cache>> created =
      ringcache::Cache::Create(options);  // validates the options first
  CHECK(created.ok());
  std::unique_ptr<ringcache::Cache> cache = std::move(created).value();

  ringcache::Result<uint64_t> version = cache->Set("user:42", "Ada");
  CHECK(version.ok());

  std::string value;
  ringcache::ItemMeta meta;
  CHECK(cache->Get("user:42", &value, &meta).ok());
  CHECK(value == "Ada" && meta.version == *version && meta.deadline_ms == 0);

  CHECK(cache->Get("user:43", &value).code() == StatusCode::kNotFound);
  CHECK(cache->Delete("user:42").ok());
  CHECK(cache->Delete("user:42").code() == StatusCode::kNotFound);
  // guide-snippet-end
}

void InvalidOptions() {
  // guide-snippet: invalid-options
  auto bad = ringcache::Cache::Create({.shard_count = 3});  // not a power of two
  CHECK(bad.status().code() == StatusCode::kInvalidArgument);
  std::printf("%s\n", bad.status().ToString().c_str());  // names the offending field
  // guide-snippet-end
}

void Ttl() {
  // guide-snippet: ttl
  ringcache::ManualClock clock;  // time moves only when told to; not owned by the cache
  auto cache = ringcache::Cache::Create({.clock = &clock, .start_janitor = false}).value();

  CHECK(cache->Set("session:abc", "token", {.ttl_ms = 30'000}).ok());
  CHECK(*cache->Ttl("session:abc") == 30'000);
  clock.AdvanceMs(10'000);
  CHECK(*cache->Ttl("session:abc") == 20'000);

  CHECK(cache->Touch("session:abc", 60'000).ok());  // new TTL; value and version unchanged
  clock.AdvanceMs(60'001);
  std::string value;
  CHECK(cache->Get("session:abc", &value).code() == StatusCode::kNotFound);  // expired

  // An expired entry is never returned; the janitor's tick reclaims its memory.
  CHECK(cache->RunExpiryStep() == 1);
  CHECK(cache->Stats().expirations == 1);
  // guide-snippet-end
}

void CompareAndSet() {
  auto cache = NewCache();
  // guide-snippet: cas
  CHECK(cache->Set("config", "v1").ok());
  std::string value;
  ringcache::ItemMeta meta;
  CHECK(cache->Get("config", &value, &meta).ok());

  // Write back only if nobody changed the entry since we read it.
  const ringcache::SetOptions if_unchanged{.mode = ringcache::SetMode::kIfVersion,
                                           .expected_version = meta.version};
  ringcache::Result<uint64_t> v2 = cache->Set("config", "v2", if_unchanged);
  CHECK(v2.ok() && *v2 > meta.version);

  // A second writer still holding the old version loses.
  auto lost = cache->Set("config", "v2-other", if_unchanged);
  CHECK(lost.status().code() == StatusCode::kFailedPrecondition);

  // Insert-only and replace-only writes.
  auto add = cache->Set("config", "x", {.mode = ringcache::SetMode::kIfAbsent});
  CHECK(add.status().code() == StatusCode::kAlreadyExists);
  auto replace = cache->Set("absent", "x", {.mode = ringcache::SetMode::kIfPresent});
  CHECK(replace.status().code() == StatusCode::kNotFound);
  // guide-snippet-end
}

void Counters() {
  auto cache = NewCache();
  // guide-snippet: incr
  auto views = cache->Incr("page:views", 5);  // an absent key counts as 0
  CHECK(views.ok() && views->value == 5);
  views = cache->Incr("page:views", -2);
  CHECK(views.ok() && views->value == 3);

  std::string value;
  CHECK(cache->Get("page:views", &value).ok() && value == "3");  // stored as decimal text

  CHECK(cache->Set("name", "Ada").ok());
  CHECK(cache->Incr("name", 1).status().code() == StatusCode::kFailedPrecondition);
  // guide-snippet-end
}

void TypedValues() {
  auto cache = NewCache();
  // guide-snippet: typed
  const std::pair<std::string_view, std::string_view> fields[] = {{"name", "Ada"}, {"lang", "C++"}};
  CHECK(ringcache::HashSet(*cache, "user:42", fields).value() == 2);  // fields added
  CHECK(ringcache::HashIncrBy(*cache, "user:42", "visits", 1).value() == 1);
  CHECK(*ringcache::HashGet(*cache, "user:42", "name").value() == "Ada");

  const std::string_view jobs[] = {"job1", "job2"};
  CHECK(ringcache::ListPush(*cache, "queue", ringcache::ListEnd::kRight, jobs).value() == 2);
  auto popped = ringcache::ListPop(*cache, "queue", ringcache::ListEnd::kLeft, 1);
  CHECK(popped.ok() && popped->at(0) == "job1");

  // One type per key: a string read of a hash is WRONGTYPE, as in Redis.
  std::string value;
  ringcache::Status s = cache->Get("user:42", &value);
  CHECK(s.code() == StatusCode::kFailedPrecondition && s.message().starts_with("WRONGTYPE"));
  // guide-snippet-end
}

void Batches() {
  auto cache = NewCache();
  // guide-snippet: batch
  const std::vector<ringcache::SetItem> items = {
      {.key = "a", .value = "1", .options = {}},
      {.key = "b", .value = "2", .options = {.ttl_ms = 60'000}},
  };
  for (const ringcache::Result<uint64_t>& r : cache->MultiSet(items)) CHECK(r.ok());

  // One result per key, in order; each behaves like the single-key call.
  const std::vector<std::string_view> keys = {"a", "b", "c"};
  std::vector<ringcache::Result<ringcache::Item>> got = cache->MultiGet(keys);
  CHECK(got[0].ok() && got[0]->value == "1" && got[0]->meta.deadline_ms == 0);
  CHECK(got[1].ok() && got[1]->value == "2" && got[1]->meta.deadline_ms != 0);
  CHECK(got[2].status().code() == StatusCode::kNotFound);

  std::vector<ringcache::Status> deleted = cache->MultiDelete(keys);
  CHECK(deleted[0].ok() && deleted[1].ok() && deleted[2].code() == StatusCode::kNotFound);
  // guide-snippet-end
}

void Stats() {
  auto cache = NewCache();
  // guide-snippet: stats
  std::string value;
  CHECK(cache->Set("k", "v").ok());
  CHECK(cache->Get("k", &value).ok());         // a hit
  CHECK(!cache->Get("missing", &value).ok());  // a miss

  ringcache::CacheStats stats = cache->Stats();
  CHECK(stats.hits == 1 && stats.misses == 1 && stats.sets == 1 && stats.items == 1);
  // Charged bytes: key + value + a fixed per-entry overhead.
  CHECK(stats.bytes_used == 1 + 1 + ringcache::Cache::EntryOverheadBytes());

  // Stats are plain counters that add up (across caches, or nodes).
  ringcache::CacheStats total;
  total += stats;
  total += stats;
  CHECK(total.hits == 2 && total.capacity_bytes == 2 * stats.capacity_bytes);
  // guide-snippet-end
}

void RingOwners() {
  // guide-snippet: ring
  auto ring = ringcache::HashRing::Build({
      {.id = "node-a"},
      {.id = "node-b"},
      {.id = "node-c", .weight = 2},  // twice the capacity: about twice the keys
  });
  CHECK(ring.ok());

  // Owners: the primary first, then replicas (distinct nodes, clockwise).
  const uint64_t hash = ringcache::HashKey("user:42");  // hash once, pass the hash down
  std::array<uint32_t, 2> owners{};
  CHECK(ring->Owners(hash, owners) == 2 && owners[0] != owners[1]);
  CHECK(ring->Primary(hash) == static_cast<int>(owners[0]));
  std::printf("user:42 -> primary %s, replica %s\n", ring->members()[owners[0]].id.c_str(),
              ring->members()[owners[1]].id.c_str());

  const std::vector<double> shares = ring->PrimaryShares();  // in member order
  CHECK(shares[2] > 0.4 && shares[2] < 0.6);
  // guide-snippet-end
}

void RingDiff() {
  // guide-snippet: ring-diff
  auto before = ringcache::HashRing::Build({{.id = "a"}, {.id = "b"}, {.id = "c"}}).value();
  auto after =
      ringcache::HashRing::Build({{.id = "a"}, {.id = "b"}, {.id = "c"}, {.id = "d"}}).value();

  // The arcs whose primary (n = 1) changes when "d" joins: all of them move to "d".
  double moved = 0;
  for (const ringcache::RingChange& change : ringcache::HashRing::Diff(before, after, 1)) {
    CHECK(change.new_owners == std::vector<std::string>{"d"});
    moved += static_cast<double>(change.range.Size());
  }
  const double fraction = moved / static_cast<double>(UINT64_MAX);
  CHECK(fraction > 0.15 && fraction < 0.35);  // about 1/4 of the keys move, no more
  // guide-snippet-end
}

void RangeIteration() {
  auto cache = NewCache();
  // guide-snippet: range
  auto ring = ringcache::HashRing::Build({{.id = "node-a"}, {.id = "node-b"}}).value();
  for (int i = 0; i < 100; ++i) CHECK(cache->Set("key:" + std::to_string(i), "v").ok());

  // Visit the entries whose primary is node-b, e.g. to stream them to a new owner.
  // Takes no lock: writers carry on meanwhile.
  size_t node_b_entries = 0;
  for (const ringcache::HashRing::Arc& arc : ring.Arcs(1)) {
    if (ring.members()[arc.owners[0]].id != "node-b") continue;
    cache->ForEachInRange(arc.range, [&](const ringcache::ItemView& item) {
      CHECK(ring.Primary(item.hash) == static_cast<int>(arc.owners[0]));
      ++node_b_entries;
      return true;  // false stops the iteration
    });
  }

  size_t all_entries = 0;
  cache->ForEachInRange(ringcache::HashRange::Full(), [&](const ringcache::ItemView& item) {
    CHECK(item.hash == ringcache::HashKey(item.key) && item.value == "v");
    ++all_entries;
    return true;
  });
  CHECK(all_entries == 100 && node_b_entries > 0 && node_b_entries < 100);
  // guide-snippet-end
}

}  // namespace

int main() {
  struct Snippet {
    const char* name;
    void (*run)();
  };
  const Snippet snippets[] = {
      {"create", CreateAndUse},
      {"invalid-options", InvalidOptions},
      {"ttl", Ttl},
      {"cas", CompareAndSet},
      {"incr", Counters},
      {"batch", Batches},
      {"typed", TypedValues},
      {"stats", Stats},
      {"ring", RingOwners},
      {"ring-diff", RingDiff},
      {"range", RangeIteration},
  };
  for (const Snippet& s : snippets) {
    s.run();
    std::printf("guide snippet %s: ok\n", s.name);
  }
  return 0;
}
