// NearCache's rules (docs/design/near-cache.md), with a manual clock and events injected by
// hand, so that each rule and the staleness bound are checked exactly, with no timing:
// trust only while every member ticks within max_silence; an event drops its key; a fill
// that raced an event stores nothing; a gap or a broken stream drops everything.
#include "near_cache.h"

#include <string>
#include <vector>

#include <catch2/catch.hpp>

namespace ringcache::client::internal {
namespace {

constexpr auto kHeartbeat = std::chrono::milliseconds(100);  // max_silence: 300 ms.
const std::vector<std::string> kMembers = {"n1", "n2"};

struct Fixture {
  ManualClock clock;
  std::unique_ptr<NearCache> near;

  Fixture() {
    Result<std::unique_ptr<NearCache>> made =
        NearCache::Create({.enabled = true, .capacity_bytes = 1 << 20, .clock = &clock});
    REQUIRE(made.ok());
    near = std::move(made).value();
    near->StreamStarted(kHeartbeat);
  }
  void TickAll() {
    for (const std::string& m : kMembers) near->Tick(m, 1, kMembers);
  }
  // A read that missed and filled from the cluster with `value` at `version`.
  void Fill(const std::string& key, const std::string& value, uint64_t version,
            int64_t deadline_ms = 0) {
    const uint64_t token = near->BeginFill(key);
    REQUIRE(token != 0);
    near->CompleteFill(key, token, Item{value, ItemMeta{version, deadline_ms}});
  }
  std::string Read(const std::string& key) {
    std::optional<Item> hit = near->Lookup(key);
    return hit.has_value() ? hit->value + "@" + std::to_string(hit->meta.version) : "miss";
  }
};

TEST_CASE("The near cache trusts nothing until every member has ticked", "[unit][nearcache]") {
  Fixture f;
  CHECK(f.near->BeginFill("k") == 0);  // Nothing stored before trust.
  CHECK(f.Read("k") == "miss");
  f.near->Tick("n1", 1, kMembers);
  CHECK(f.near->BeginFill("k") == 0);  // n2 has not ticked on this stream.
  f.near->Tick("n2", 1, kMembers);
  f.Fill("k", "v1", 7);
  CHECK(f.Read("k") == "v1@7");
  const NearCacheStats s = f.near->stats();
  CHECK(s.hits == 1);
  CHECK(s.fills == 1);
  CHECK(s.untrusted == 1);
}

TEST_CASE("A member silent past max_silence stops the near cache until it ticks again",
          "[unit][nearcache]") {
  Fixture f;
  f.TickAll();
  f.Fill("k", "v1", 7);
  f.clock.AdvanceMs(299);
  f.near->Tick("n1", 1, kMembers);  // n2 stays silent.
  CHECK(f.Read("k") == "v1@7");     // 299 ms of silence: within the bound.
  f.clock.AdvanceMs(1);
  CHECK(f.Read("k") == "miss");  // 300 ms: not trusted, and everything is dropped.
  CHECK(f.near->BeginFill("k") == 0);
  f.near->Tick("n2", 1, kMembers);
  CHECK(f.Read("k") == "miss");  // Trusted again, but nothing from before the silence.
  f.Fill("k", "v2", 9);
  CHECK(f.Read("k") == "v2@9");
  CHECK(f.near->stats().resets >= 2);  // The stream's start, the silence.
}

TEST_CASE("A silence nobody read through still drops what was held", "[unit][nearcache]") {
  Fixture f;
  f.TickAll();
  f.Fill("k", "v1", 7);
  f.clock.AdvanceMs(1000);  // Both silent; no read notices.
  f.TickAll();              // Trust comes back.
  CHECK(f.Read("k") == "miss");
}

TEST_CASE("An event drops its key and a fill that raced it stores nothing", "[unit][nearcache]") {
  Fixture f;
  f.TickAll();
  f.Fill("a", "1", 1);
  f.Fill("b", "1", 2);
  f.near->Invalidate("a");
  CHECK(f.Read("a") == "miss");
  CHECK(f.Read("b") == "1@2");
  // A read starts, the key changes (its event arrives) before the read's answer: the answer
  // may predate the change, so it is not kept.
  const uint64_t token = f.near->BeginFill("a");
  REQUIRE(token != 0);
  f.near->Invalidate("a");
  f.near->CompleteFill("a", token, Item{"old", ItemMeta{1, 0}});
  CHECK(f.Read("a") == "miss");
  // The same, with a later read's placeholder in place when the first read answers: only
  // the later read (which began after the change) may store.
  const uint64_t early = f.near->BeginFill("a");
  f.near->Invalidate("a");
  const uint64_t late = f.near->BeginFill("a");
  CHECK(late != early);
  f.near->CompleteFill("a", early, Item{"old", ItemMeta{1, 0}});
  CHECK(f.Read("a") == "miss");
  f.near->CompleteFill("a", late, Item{"new", ItemMeta{3, 0}});
  CHECK(f.Read("a") == "new@3");
  // Two reads of one key share its placeholder; the first answer is kept, the second not.
  const uint64_t first = f.near->BeginFill("c");
  const uint64_t second = f.near->BeginFill("c");
  CHECK(first == second);
  f.near->CompleteFill("c", first, Item{"x", ItemMeta{5, 0}});
  f.near->CompleteFill("c", second, Item{"y", ItemMeta{4, 0}});
  CHECK(f.Read("c") == "x@5");
  CHECK(f.near->BeginFill("c") == 0);  // Held: nothing to fill.
}

TEST_CASE("A gap or a broken stream drops everything", "[unit][nearcache]") {
  Fixture f;
  f.TickAll();
  f.Fill("a", "1", 1);
  const uint64_t in_flight = f.near->BeginFill("b");
  f.near->Gap();  // Events may have been lost: any key may have changed.
  f.near->CompleteFill("b", in_flight, Item{"1", ItemMeta{2, 0}});
  CHECK(f.Read("a") == "miss");
  CHECK(f.Read("b") == "miss");
  f.Fill("a", "2", 3);  // Still trusted after a gap: the stream goes on.
  f.near->StreamBroken();
  CHECK(f.Read("a") == "miss");
  f.near->StreamStarted(kHeartbeat);  // Reopened elsewhere: every member must tick on it.
  f.near->Tick("n1", 1, kMembers);
  CHECK(f.near->BeginFill("a") == 0);
  f.near->Tick("n2", 1, kMembers);
  f.Fill("a", "3", 4);
  CHECK(f.Read("a") == "3@4");
}

TEST_CASE("A member leaving the set drops everything", "[unit][nearcache]") {
  // n2 declared failed: its last events may have died with it, and no gap will tell.
  Fixture f;
  f.TickAll();
  f.Fill("k", "v1", 7);
  const std::vector<std::string> survivors = {"n1"};
  f.near->Tick("n1", 2, survivors);
  CHECK(f.Read("k") == "miss");
  f.Fill("k", "v2", 9);  // Still trusted: every remaining member ticks.
  CHECK(f.Read("k") == "v2@9");
  f.near->Tick("n3", 1, survivors);  // A member this client does not know yet: nothing changes.
  f.near->Tick("n1", 3, std::vector<std::string>{"n1", "n3"});  // Joined: n3 has ticked.
  CHECK(f.Read("k") == "v2@9");
}

TEST_CASE("A tick without a number does not keep a silent member trusted", "[unit][nearcache]") {
  // A client can publish on the tick channel, but only a member's relay carries a number.
  Fixture f;
  f.TickAll();
  f.Fill("k", "v1", 7);
  for (int i = 0; i < 10; ++i) {
    f.clock.AdvanceMs(100);
    f.near->Tick("n1", 2 + static_cast<uint64_t>(i), kMembers);
    f.near->Tick("n2", 0, kMembers);  // Forged.
    f.near->Tick("junk" + std::to_string(i), 0, kMembers);
  }
  CHECK(f.Read("k") == "miss");
}

TEST_CASE("Held items expire at the cluster's deadline", "[unit][nearcache]") {
  Fixture f;
  f.TickAll();
  f.Fill("t", "v", 1, f.clock.NowMs() + 50);
  f.clock.AdvanceMs(49);
  f.TickAll();
  CHECK(f.Read("t") == "v@1");
  f.clock.AdvanceMs(1);
  CHECK(f.Read("t") == "miss");
}

// The bound of docs/design/near-cache.md: when a change's event is lost without a gap
// (its primary cut off from this client's node: its ticks, on the same ordered path,
// stop too), a near-cache read returns the old value only until max_silence after the
// primary's last tick arrived. Walked millisecond by millisecond.
TEST_CASE("A lost event leaves a read stale for at most max_silence after the last tick",
          "[unit][nearcache]") {
  Fixture f;
  f.TickAll();
  f.Fill("k", "old", 1);
  const int64_t last_n2_tick = f.clock.NowMs();
  const int64_t max_silence = 3 * kHeartbeat.count();
  f.clock.AdvanceMs(40);  // n2 (k's primary) writes k = new; its event never arrives.
  int64_t last_stale = 0;
  for (int64_t step = 0; step < 1000; ++step) {
    if (step % kHeartbeat.count() == 0) f.near->Tick("n1", 1, kMembers);  // n1 keeps ticking.
    if (f.Read("k") == "old@1") last_stale = f.clock.NowMs();
    f.clock.AdvanceMs(1);
  }
  CHECK(last_stale == last_n2_tick + max_silence - 1);
  CHECK(f.Read("k") == "miss");
}

}  // namespace
}  // namespace ringcache::client::internal
