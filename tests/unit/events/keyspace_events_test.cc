// KeyspaceEvents: Redis's class letters, which events a write record and a removal make
// (in order, with the key's version), and the queue's bound with the drops reported at
// their place in the sequence.
#include "keyspace_events.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

namespace ringcache::internal {
namespace {

// Records what the dispatcher hands over; Publish can be held at a gate.
class FakeSink final : public KeyspaceEvents::Sink {
 public:
  void Publish(std::string channel, std::string payload, uint64_t version) override {
    std::unique_lock lock(mu_);
    ++entered_;
    cv_.notify_all();
    cv_.wait(lock, [this] { return open_; });
    calls_.push_back(channel + " " + payload + " v" + std::to_string(version));
    cv_.notify_all();
  }
  void Dropped(uint64_t count) override {
    std::lock_guard lock(mu_);
    calls_.push_back("dropped " + std::to_string(count));
    cv_.notify_all();
  }
  void Close() {
    std::lock_guard lock(mu_);
    open_ = false;
  }
  void Open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  // Waits (bounded: a wedged dispatcher fails the test, not hangs it) for n Publish calls
  // to have started.
  bool WaitEntered(size_t n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return entered_ >= n; });
  }
  // The calls, once there are n of them (or what there is after the bound).
  std::vector<std::string> Calls(size_t n) {
    return CallsUntil([n](const std::vector<std::string>& c) { return c.size() >= n; });
  }
  template <typename Done>
  std::vector<std::string> CallsUntil(Done done) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(10), [&] { return done(calls_); });
    return calls_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = true;
  size_t entered_ = 0;
  std::vector<std::string> calls_;
};

WriteRecord Record(WriteRecord::Kind kind, std::string key, std::string_view event,
                   uint64_t version) {
  WriteRecord r;
  r.kind = kind;
  r.key = std::move(key);
  r.version = version;
  r.event = event;
  return r;
}

uint32_t Classes(std::string_view letters) {
  Result<uint32_t> c = KeyspaceEvents::ParseClasses(letters);
  REQUIRE(c.ok());
  return *c;
}

TEST_CASE("Keyspace event classes read and write Redis's letters", "[unit][keyspace]") {
  CHECK(KeyspaceEvents::FormatClasses(Classes("KEA")) == "AKE");
  CHECK(KeyspaceEvents::FormatClasses(Classes("Kxg")) == "gxK");
  CHECK(KeyspaceEvents::FormatClasses(Classes("Eg$lshzxetd")) == "AE");
  CHECK(Classes("") == 0);
  CHECK(KeyspaceEvents::Effective("KEA") == "AKE");
  CHECK(KeyspaceEvents::Effective("A").empty());   // No channel kind: nothing is sent.
  CHECK(KeyspaceEvents::Effective("KE").empty());  // No class of events.
  const Result<uint32_t> fresh = KeyspaceEvents::ParseClasses("Kn");
  REQUIRE(fresh.status().code() == StatusCode::kInvalidArgument);
  CHECK_THAT(fresh.status().message(), Catch::Contains("'n' (new keys) is not supported"));
  const Result<uint32_t> unknown = KeyspaceEvents::ParseClasses("Kq");
  REQUIRE(unknown.status().code() == StatusCode::kInvalidArgument);
  CHECK_THAT(unknown.status().message(), Catch::Contains("'q' is not one of"));
}

TEST_CASE("A write is announced on both channel kinds in order with its version",
          "[unit][keyspace]") {
  FakeSink sink;
  KeyspaceEvents events({.classes = Classes("KEA")});
  events.Start(&sink, [](std::string_view) { return true; });
  events.OnWrite(Record(WriteRecord::Kind::kSet, "k", "set expire", 7));
  events.OnWrite(Record(WriteRecord::Kind::kSet, "k", "incrby", 8));
  CHECK(sink.Calls(6) ==
        std::vector<std::string>{"__keyspace@0__:k set v7", "__keyevent@0__:set k v7",
                                 "__keyspace@0__:k expire v7", "__keyevent@0__:expire k v7",
                                 "__keyspace@0__:k incrby v8", "__keyevent@0__:incrby k v8"});
  CHECK(events.stats().queued == 3);
}

TEST_CASE("Only the classes asked for are announced", "[unit][keyspace]") {
  FakeSink sink;
  KeyspaceEvents events({.classes = Classes("Klx")});
  events.Start(&sink, [](std::string_view key) { return key != "replica-copy"; });
  events.OnWrite(Record(WriteRecord::Kind::kSet, "s", "set", 1));                 // $: not asked.
  events.OnWrite(Record(WriteRecord::Kind::kDelete, "d", "del", 2));              // g: not asked.
  events.OnRemoval({.cause = RemovalCause::kEvicted, .key = "e", .version = 3});  // e.
  // x asked, but this node is not the key's primary: its replica's expiry is not news.
  events.OnRemoval({.cause = RemovalCause::kExpired, .key = "replica-copy", .version = 4});
  events.OnWrite(Record(WriteRecord::Kind::kSet, "l", "lpush", 5));
  events.OnRemoval({.cause = RemovalCause::kExpired, .key = "t", .version = 6});
  // The queue keeps order: had an earlier one been sent, it would come first.
  CHECK(sink.Calls(2) ==
        std::vector<std::string>{"__keyspace@0__:l lpush v5", "__keyspace@0__:t expired v6"});
}

TEST_CASE("A collection's last element going is the command then del", "[unit][keyspace]") {
  SECTION("both classes") {
    FakeSink sink;
    KeyspaceEvents events({.classes = Classes("Khg")});
    events.Start(&sink, [](std::string_view) { return true; });
    events.OnWrite(Record(WriteRecord::Kind::kDelete, "h", "hdel", 9));
    events.OnWrite(Record(WriteRecord::Kind::kDelete, "p", "expire", 10));  // EXPIRE in the past.
    CHECK(sink.Calls(3) == std::vector<std::string>{"__keyspace@0__:h hdel v9",
                                                    "__keyspace@0__:h del v9",
                                                    "__keyspace@0__:p del v10"});
  }
  SECTION("the collection's class only") {
    FakeSink sink;
    KeyspaceEvents events({.classes = Classes("Eh")});
    events.Start(&sink, [](std::string_view) { return true; });
    events.OnWrite(Record(WriteRecord::Kind::kDelete, "h", "hdel", 9));
    events.OnWrite(Record(WriteRecord::Kind::kSet, "h2", "hset", 11));
    CHECK(sink.Calls(2) ==
          std::vector<std::string>{"__keyevent@0__:hdel h v9", "__keyevent@0__:hset h2 v11"});
  }
}

TEST_CASE("Past its bound the queue drops events and says where", "[unit][keyspace]") {
  FakeSink sink;
  constexpr size_t kOne = 1 + KeyspaceEvents::kEventOverheadBytes;  // A one-byte key.
  KeyspaceEvents events({.classes = Classes("K$"), .max_queued_bytes = 3 * kOne + 5});
  events.Start(&sink, [](std::string_view) { return true; });
  sink.Close();
  events.OnWrite(Record(WriteRecord::Kind::kSet, "a", "set", 1));
  REQUIRE(sink.WaitEntered(1));  // The dispatcher holds "a" (still counted).
  events.OnWrite(Record(WriteRecord::Kind::kSet, "b", "set", 2));                    // Fits.
  events.OnWrite(Record(WriteRecord::Kind::kSet, std::string(100, 'x'), "set", 3));  // No room.
  events.OnWrite(Record(WriteRecord::Kind::kSet, "c", "set", 4));                    // Fits.
  events.OnWrite(Record(WriteRecord::Kind::kSet, "d", "set", 5));                    // Full.
  CHECK(events.stats().dropped == 2);
  CHECK(events.stats().queued_bytes == 3 * kOne);
  sink.Open();
  CHECK(sink.Calls(5) == std::vector<std::string>{"__keyspace@0__:a set v1",
                                                  "__keyspace@0__:b set v2", "dropped 1",
                                                  "__keyspace@0__:c set v4", "dropped 1"});
  CHECK(events.stats().queued == 3);
}

TEST_CASE("Ticks name the node and count up while nothing is written", "[unit][keyspace]") {
  FakeSink sink;
  KeyspaceEvents events(
      {.classes = Classes("KA"), .node_id = "n7", .tick_interval = std::chrono::milliseconds(5)});
  events.Start(&sink, [](std::string_view) { return true; });
  events.OnWrite(Record(WriteRecord::Kind::kSet, "k", "set", 2));
  // The write and at least three ticks, however the threads are scheduled.
  const std::vector<std::string> calls = sink.CallsUntil([](const std::vector<std::string>& c) {
    return c.size() >= 4 && std::find(c.begin(), c.end(), "__keyspace@0__:k set v2") != c.end();
  });
  events.Stop();
  size_t tick = 0;
  bool written = false;
  for (const std::string& call : calls) {
    if (call.starts_with(KeyspaceEvents::kTickChannel)) {
      CHECK(call == std::string(KeyspaceEvents::kTickChannel) + " n7 v" + std::to_string(++tick));
    } else {
      CHECK(call == "__keyspace@0__:k set v2");
      written = true;
    }
  }
  CHECK(written);
  CHECK(tick >= 3);
}

TEST_CASE("A tick follows every event queued before its batch was taken", "[unit][keyspace]") {
  FakeSink sink;
  KeyspaceEvents events(
      {.classes = Classes("K$"), .node_id = "n1", .tick_interval = std::chrono::milliseconds(1)});
  sink.Close();
  events.Start(&sink, [](std::string_view) { return true; });
  REQUIRE(sink.WaitEntered(1));  // The first tick, held at the gate.
  events.OnWrite(Record(WriteRecord::Kind::kSet, "a", "set", 1));
  events.OnWrite(Record(WriteRecord::Kind::kSet, "b", "set", 2));
  sink.Open();
  // Whatever the timing: no tick between a and b (queued together), and the first tick
  // after them comes only once both are out.
  const std::vector<std::string> calls = sink.CallsUntil([](const std::vector<std::string>& c) {
    return std::count_if(c.begin(), c.end(), [](const std::string& x) {
             return x.starts_with(KeyspaceEvents::kTickChannel);
           }) >= 3;
  });
  events.Stop();
  const auto a = std::find(calls.begin(), calls.end(), "__keyspace@0__:a set v1");
  REQUIRE(a != calls.end());
  REQUIRE(a + 1 != calls.end());
  CHECK(*(a + 1) == "__keyspace@0__:b set v2");
}

TEST_CASE("Stop sends what is queued before the dispatcher ends", "[unit][keyspace]") {
  FakeSink sink;
  KeyspaceEvents events({.classes = Classes("K$")});
  events.Start(&sink, [](std::string_view) { return true; });
  sink.Close();
  events.OnWrite(Record(WriteRecord::Kind::kSet, "a", "set", 1));
  REQUIRE(sink.WaitEntered(1));
  events.OnWrite(Record(WriteRecord::Kind::kSet, "b", "set", 2));
  std::thread stopper([&] { events.Stop(); });
  sink.Open();
  stopper.join();
  CHECK(sink.Calls(2) ==
        std::vector<std::string>{"__keyspace@0__:a set v1", "__keyspace@0__:b set v2"});
}

TEST_CASE("Nothing is announced before Start or after Stop", "[unit][keyspace]") {
  FakeSink sink;
  KeyspaceEvents events({.classes = Classes("KA")});
  events.OnWrite(Record(WriteRecord::Kind::kSet, "early", "set", 1));
  events.Start(&sink, [](std::string_view) { return true; });
  events.OnWrite(Record(WriteRecord::Kind::kSet, "k", "set", 2));
  CHECK(sink.Calls(1) == std::vector<std::string>{"__keyspace@0__:k set v2"});
  events.Stop();
  events.OnWrite(Record(WriteRecord::Kind::kSet, "late", "set", 3));
  CHECK(events.stats().queued == 1);
}

}  // namespace
}  // namespace ringcache::internal
