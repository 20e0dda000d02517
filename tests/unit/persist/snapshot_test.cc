// Snapshots of a Cache (ringcache/snapshot.h): every entry comes back with its value,
// type, version and deadline; what expired meanwhile is dropped; a damaged or truncated
// file loads what comes before the damage and says where; an unknown format version is
// refused naming both; a full disk, a failed fsync or a power loss mid-snapshot leave the
// previous snapshot whole.
#include "ringcache/snapshot.h"

#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "fault_env.h"
#include "ringcache/clock.h"
#include "ringcache/typed.h"
#include "xxhash_inline.h"

namespace ringcache {
namespace {

// A directory of its own under /tmp, removed afterwards.
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/ringcache-snapshot-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() { std::system(("rm -rf " + path).c_str()); }
};

std::unique_ptr<Cache> NewCache(Clock* clock) {
  Result<std::unique_ptr<Cache>> c = Cache::Create({.capacity_bytes = 64 << 20, .clock = clock});
  REQUIRE(c.ok());
  return std::move(c).value();
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}
void WriteAll(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

// n string keys "k0".."k<n-1>" with 100-byte values.
void Fill(Cache& cache, int n) {
  for (int i = 0; i < n; ++i) {
    REQUIRE(
        cache.Set("k" + std::to_string(i), std::string(100, static_cast<char>('a' + i % 26))).ok());
  }
}

TEST_CASE("A snapshot brings back every entry with its version, type and deadline",
          "[unit][snapshot]") {
  TempDir dir;
  ManualClock clock;
  auto cache = NewCache(&clock);
  Fill(*cache, 1000);
  REQUIRE(cache->Set("ttl", "v", {.ttl_ms = 60'000}).ok());
  const FieldValue fields[] = {{"f", "1"}, {"g", "2"}};
  REQUIRE(HashSet(*cache, "h", fields).ok());
  const std::string path = dir.path + "/snapshot.rcs";
  Result<SnapshotInfo> saved = WriteSnapshot(*cache, path, {.clock = &clock});
  REQUIRE(saved.ok());
  CHECK(saved->keys == 1002);
  CHECK(saved->bytes == ReadAll(path).size());

  auto restored = NewCache(&clock);
  Result<LoadInfo> loaded = LoadSnapshot(restored.get(), path, {.clock = &clock});
  REQUIRE(loaded.ok());
  CHECK(loaded->keys == 1002);
  CHECK(loaded->complete);
  CHECK(loaded->damage.empty());
  CHECK(loaded->created_at_ms == clock.NowMs());
  for (const std::string key : {"k0", "k999", "ttl", "h"}) {
    std::string a, b;
    ItemMeta ma, mb;
    REQUIRE(cache->Get(key, &a, &ma).code() != StatusCode::kNotFound);
    if (key == "h") {
      CHECK(*HashGetAll(*restored, key) == *HashGetAll(*cache, key));
      continue;
    }
    REQUIRE(restored->Get(key, &b, &mb).ok());
    CHECK(a == b);
    CHECK(ma.version == mb.version);
    CHECK(ma.deadline_ms == mb.deadline_ms);
  }
}

TEST_CASE("Versions never repeat across a snapshot and a load", "[unit][snapshot]") {
  TempDir dir;
  ManualClock clock;
  auto cache = NewCache(&clock);
  Result<uint64_t> deleted = cache->Set("gone", "v");  // Deleted before the snapshot.
  REQUIRE(deleted.ok());
  REQUIRE(cache->Delete("gone").ok());
  REQUIRE(cache->Set("kept", "v").ok());
  const std::string path = dir.path + "/s.rcs";
  REQUIRE(WriteSnapshot(*cache, path, {.clock = &clock}).ok());
  Result<uint64_t> lost = cache->Set("lost", "v");  // After the snapshot: lost by a crash.
  REQUIRE(lost.ok());

  auto restored = NewCache(&clock);
  REQUIRE(LoadSnapshot(restored.get(), path, {.clock = &clock}).ok());
  // Keys the file does not hold get versions above every version issued before: a
  // compare-and-set holding an old version can never match a new write.
  Result<uint64_t> again = restored->Set("gone", "new");
  REQUIRE(again.ok());
  CHECK(*again > *deleted);
  Result<uint64_t> relost = restored->Set("lost", "new");
  REQUIRE(relost.ok());
  CHECK(*relost > *lost);
}

TEST_CASE("What expired while the snapshot lay on disk is not loaded", "[unit][snapshot]") {
  TempDir dir;
  ManualClock clock;
  auto cache = NewCache(&clock);
  REQUIRE(cache->Set("short", "v", {.ttl_ms = 1000}).ok());
  REQUIRE(cache->Set("long", "v", {.ttl_ms = 100'000}).ok());
  const std::string path = dir.path + "/s.rcs";
  REQUIRE(WriteSnapshot(*cache, path, {.clock = &clock}).ok());
  clock.AdvanceMs(5000);
  auto restored = NewCache(&clock);
  Result<LoadInfo> loaded = LoadSnapshot(restored.get(), path, {.clock = &clock});
  REQUIRE(loaded.ok());
  CHECK(loaded->keys == 1);
  CHECK(loaded->expired == 1);
  std::string value;
  CHECK(restored->Get("long", &value).ok());
  CHECK(restored->Get("short", &value).code() == StatusCode::kNotFound);
}

TEST_CASE("A damaged snapshot loads what comes before the damage and says where",
          "[unit][snapshot]") {
  TempDir dir;
  ManualClock clock;
  auto cache = NewCache(&clock);
  Fill(*cache, 500);
  const std::string path = dir.path + "/s.rcs";
  // Small blocks: many of them.
  REQUIRE(WriteSnapshot(*cache, path, {.clock = &clock, .block_bytes = 1024}).ok());
  const std::string good = ReadAll(path);

  SECTION("a flipped byte") {
    std::string bad = good;
    const size_t at = bad.size() / 2;
    bad[at] = static_cast<char>(bad[at] ^ 0x40);
    WriteAll(path, bad);
    auto restored = NewCache(&clock);
    Result<LoadInfo> loaded = LoadSnapshot(restored.get(), path, {.clock = &clock});
    REQUIRE(loaded.ok());
    CHECK_FALSE(loaded->complete);
    CHECK_THAT(loaded->damage, Catch::Contains("fails its checksum"));
    CHECK(loaded->keys > 100);
    CHECK(loaded->keys < 500);
    CHECK(loaded->bytes <= at);  // Nothing from the damaged block on.
    CHECK(restored->Stats().items == loaded->keys);
  }
  SECTION("cut in the middle of a block") {
    WriteAll(path, good.substr(0, good.size() * 2 / 3));
    auto restored = NewCache(&clock);
    Result<LoadInfo> loaded = LoadSnapshot(restored.get(), path, {.clock = &clock});
    REQUIRE(loaded.ok());
    CHECK_FALSE(loaded->complete);
    CHECK_THAT(loaded->damage, Catch::Contains("remain") || Catch::Contains("ends at"));
    CHECK(loaded->keys > 200);
    CHECK(loaded->keys < 500);
  }
  SECTION("cut before the end block") {
    WriteAll(path, good.substr(0, good.size() - 32));
    auto restored = NewCache(&clock);
    Result<LoadInfo> loaded = LoadSnapshot(restored.get(), path, {.clock = &clock});
    REQUIRE(loaded.ok());
    CHECK(loaded->keys == 500);  // Every record block was whole.
    CHECK_FALSE(loaded->complete);
    CHECK_THAT(loaded->damage, Catch::Contains("before its end block"));
  }
  SECTION("a damaged header") {
    std::string bad = good;
    bad[17] = static_cast<char>(bad[17] ^ 1);  // In the creation time.
    WriteAll(path, bad);
    auto restored = NewCache(&clock);
    Result<LoadInfo> loaded = LoadSnapshot(restored.get(), path, {.clock = &clock});
    REQUIRE(loaded.ok());
    CHECK(loaded->keys == 0);
    CHECK_THAT(loaded->damage, Catch::Contains("header is damaged"));
  }
}

TEST_CASE("A snapshot of another format version or another kind of file is refused",
          "[unit][snapshot]") {
  TempDir dir;
  ManualClock clock;
  auto cache = NewCache(&clock);
  Fill(*cache, 10);
  const std::string path = dir.path + "/s.rcs";
  REQUIRE(WriteSnapshot(*cache, path, {.clock = &clock}).ok());
  // Version 7 with a header checksum that matches it: a newer build's file.
  std::string bytes = ReadAll(path);
  bytes[8] = 7;
  const uint64_t checksum = internal::Xxh3(std::string_view(bytes).substr(0, 32));
  for (int i = 0; i < 8; ++i) bytes[32 + i] = static_cast<char>((checksum >> (8 * i)) & 0xff);
  WriteAll(path, bytes);
  auto other = NewCache(&clock);
  Result<LoadInfo> refused = LoadSnapshot(other.get(), path, {.clock = &clock});
  CHECK(refused.status().code() == StatusCode::kFailedPrecondition);
  CHECK_THAT(refused.status().message(),
             Catch::Contains("format version 7") && Catch::Contains("reads version 1"));
  CHECK(other->Stats().items == 0);

  const std::string not_a_snapshot = dir.path + "/other";
  WriteAll(not_a_snapshot, "REDIS0011 and more");
  Result<LoadInfo> foreign = LoadSnapshot(cache.get(), not_a_snapshot, {.clock = &clock});
  CHECK(foreign.status().code() == StatusCode::kFailedPrecondition);
  CHECK_THAT(foreign.status().message(), Catch::Contains("is not a ringcache snapshot"));
  CHECK(LoadSnapshot(cache.get(), dir.path + "/none", {.clock = &clock}).status().code() ==
        StatusCode::kNotFound);
}

TEST_CASE("A full disk, a failed fsync or a power loss leave the previous snapshot whole",
          "[unit][snapshot]") {
  TempDir dir;
  ManualClock clock;
  testing::FaultEnv env;
  auto cache = NewCache(&clock);
  Fill(*cache, 200);
  const std::string path = dir.path + "/s.rcs";
  REQUIRE(WriteSnapshot(*cache, path, {.env = &env, .clock = &clock}).ok());
  Fill(*cache, 400);  // Changes the next snapshot would hold.

  SECTION("disk full mid-snapshot") {
    env.space_left = 5000;
    Result<SnapshotInfo> s = WriteSnapshot(*cache, path, {.env = &env, .clock = &clock});
    CHECK(s.status().code() == StatusCode::kUnavailable);
    CHECK_THAT(s.status().message(), Catch::Contains("No space left on device"));
  }
  SECTION("fsync fails") {
    env.fail_sync = true;
    Result<SnapshotInfo> s = WriteSnapshot(*cache, path, {.env = &env, .clock = &clock});
    CHECK(s.status().code() == StatusCode::kUnavailable);
  }
  SECTION("power lost before the rename") {
    env.fail_rename = true;  // The new file was written and synced, never put in place.
    CHECK_FALSE(WriteSnapshot(*cache, path, {.env = &env, .clock = &clock}).ok());
    env.PowerLoss();
  }
  CHECK(access((path + ".tmp").c_str(), F_OK) != 0);  // Nothing half-written is left.
  auto restored = NewCache(&clock);
  Result<LoadInfo> loaded = LoadSnapshot(restored.get(), path, {.clock = &clock});
  REQUIRE(loaded.ok());
  CHECK(loaded->complete);
  CHECK(loaded->keys == 200);
}

TEST_CASE("A power loss right after a snapshot keeps it whole", "[unit][snapshot]") {
  TempDir dir;
  ManualClock clock;
  testing::FaultEnv env;
  auto cache = NewCache(&clock);
  Fill(*cache, 300);
  const std::string path = dir.path + "/s.rcs";
  REQUIRE(WriteSnapshot(*cache, path, {.env = &env, .clock = &clock}).ok());
  env.PowerLoss();  // Only unsynced bytes go: the snapshot was synced before its rename.
  auto restored = NewCache(&clock);
  Result<LoadInfo> loaded = LoadSnapshot(restored.get(), path, {.clock = &clock});
  REQUIRE(loaded.ok());
  CHECK(loaded->complete);
  CHECK(loaded->keys == 300);
}

}  // namespace
}  // namespace ringcache
