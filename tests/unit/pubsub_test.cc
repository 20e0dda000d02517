#include "ringcache/pubsub.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

namespace ringcache {
namespace {

using Delivery = PubSub::Delivery;

std::vector<Delivery> TakeAll(PubSub::Subscription& sub) {
  std::vector<Delivery> out;
  sub.Take(&out, 1000000);
  return out;
}

TEST_CASE("PubSub delivers to channel subscribers and counts them", "[unit][pubsub]") {
  PubSub hub;
  auto a = hub.Open({});
  auto b = hub.Open({});
  const std::vector<std::string> news{"news"};
  REQUIRE(a->Subscribe(news, {}).ok());
  REQUIRE(b->Subscribe(news, {}).ok());

  CHECK(hub.Publish("news", "one") == 2);
  CHECK(hub.Publish("sport", "nobody") == 0);
  CHECK(hub.Publish("news", "two") == 2);

  const auto got = TakeAll(*a);
  REQUIRE(got.size() == 2);
  CHECK(got[0].seq == 1);
  CHECK(got[0].message->channel == "news");
  CHECK(got[0].message->payload == "one");
  CHECK(got[0].pattern.empty());
  CHECK(got[1].seq == 2);
  CHECK(got[1].message->payload == "two");
  CHECK(a->last_seq() == 2);
  CHECK(TakeAll(*b).size() == 2);
  CHECK(TakeAll(*a).empty());
}

TEST_CASE("PubSub patterns use Redis's glob and say which pattern matched", "[unit][pubsub]") {
  PubSub hub;
  auto sub = hub.Open({});
  const std::vector<std::string> channels{"user:42"};
  const std::vector<std::string> patterns{"user:*", "user:?2", "order:[0-9]*"};
  REQUIRE(sub->Subscribe(channels, patterns).ok());
  CHECK(sub->channels() == 1);
  CHECK(sub->patterns() == 3);

  // Matched by the channel and two patterns: three deliveries, as Redis sends "message"
  // and one "pmessage" per pattern.
  CHECK(hub.Publish("user:42", "x") == 3);
  CHECK(hub.Publish("order:7", "y") == 1);
  CHECK(hub.Publish("order:x", "z") == 0);
  const auto got = TakeAll(*sub);
  REQUIRE(got.size() == 4);
  CHECK(got[0].pattern.empty());
  std::vector<std::string> matched{got[1].pattern, got[2].pattern};
  std::sort(matched.begin(), matched.end());
  CHECK(matched == std::vector<std::string>{"user:*", "user:?2"});
  CHECK(got[3].pattern == "order:[0-9]*");
  CHECK(got[3].seq == 4);
}

TEST_CASE("PubSub unsubscribing stops deliveries and a closed subscription gets none",
          "[unit][pubsub]") {
  PubSub hub;
  auto sub = hub.Open({});
  const std::vector<std::string> names{"a", "b"};
  const std::vector<std::string> pattern{"c*"};
  REQUIRE(sub->Subscribe(names, pattern).ok());
  sub->Unsubscribe(std::vector<std::string>{"a"}, pattern);
  CHECK(hub.Publish("a", "x") == 0);
  CHECK(hub.Publish("cat", "x") == 0);
  CHECK(hub.Publish("b", "x") == 1);
  CHECK(hub.stats().channels == 1);
  CHECK(hub.stats().patterns == 0);

  sub->Close(Status::Unavailable("bye"));
  CHECK(hub.Publish("b", "x") == 0);
  std::vector<Delivery> out;
  CHECK_FALSE(sub->Take(&out, 10));
  CHECK(out.empty());  // What was buffered went with the close.
  CHECK(sub->status().code() == StatusCode::kUnavailable);
  CHECK(hub.stats().subscriptions == 0);
  CHECK(hub.stats().channels == 0);
  CHECK(sub->Subscribe(names, {}).code() == StatusCode::kUnavailable);
}

TEST_CASE("PubSub closes a subscription whose buffer passes its limit and frees it",
          "[unit][pubsub]") {
  PubSub::Options options;
  options.max_buffer_bytes = 10 * (PubSub::kDeliveryOverheadBytes + 10);
  options.buffer_limit_name = "--subscriber-buffer-bytes";
  PubSub hub(options);
  auto slow = hub.Open({});
  auto fast = hub.Open({});
  const std::vector<std::string> ch{"ch"};
  REQUIRE(slow->Subscribe(ch, {}).ok());
  REQUIRE(fast->Subscribe(ch, {}).ok());
  const std::string payload(8, 'p');  // 2 + 8 bytes: exactly ten fit.

  for (int i = 0; i < 10; ++i) {
    CHECK(hub.Publish("ch", payload) == 2);
    std::vector<Delivery> taken;
    CHECK(fast->Take(&taken, 100));
    CHECK(taken.size() == 1);
  }
  CHECK(hub.stats().buffered_bytes == options.max_buffer_bytes);
  // The eleventh does not fit: the slow one is cut off, the fast one still gets it.
  CHECK(hub.Publish("ch", payload) == 1);
  CHECK(hub.stats().buffered_bytes == PubSub::kDeliveryOverheadBytes + 10);
  CHECK(hub.stats().overflowed == 1);
  std::vector<Delivery> out;
  CHECK_FALSE(slow->Take(&out, 100));
  CHECK(out.empty());
  const Status s = slow->status();
  CHECK(s.code() == StatusCode::kResourceExhausted);
  CHECK_THAT(s.message(), Catch::Contains("--subscriber-buffer-bytes") &&
                              Catch::Contains(std::to_string(options.max_buffer_bytes)) &&
                              Catch::Contains("message 11"));
  CHECK(hub.Publish("ch", payload) == 1);
  CHECK(TakeAll(*fast).size() == 2);
  CHECK(hub.stats().buffered_bytes == 0);
}

TEST_CASE("PubSub wakes a reader when its buffer stops being empty and when it closes",
          "[unit][pubsub]") {
  PubSub hub;
  int wakes = 0;
  auto sub = hub.Open([&] { ++wakes; });
  const std::vector<std::string> ch{"ch"};
  REQUIRE(sub->Subscribe(ch, {}).ok());
  hub.Publish("ch", "1");
  hub.Publish("ch", "2");  // Not empty: the reader already knows.
  CHECK(wakes == 1);
  TakeAll(*sub);
  hub.Publish("ch", "3");
  CHECK(wakes == 2);
  hub.NoteGap();  // Wakes so that a heartbeat can tell of the gap.
  CHECK(wakes == 3);
  sub->Close(Status::Unavailable("done"));
  CHECK(wakes == 4);
  sub->Close(Status::Unavailable("again"));
  CHECK(wakes == 4);
  CHECK(sub->status().message() == "done");
}

TEST_CASE("PubSub NoteGap makes a subscription's sequence skip a number", "[unit][pubsub]") {
  PubSub hub;
  auto sub = hub.Open({});
  const std::vector<std::string> ch{"ch"};
  REQUIRE(sub->Subscribe(ch, {}).ok());
  hub.Publish("ch", "a");
  hub.NoteGap();
  CHECK(sub->last_seq() == 2);
  hub.Publish("ch", "b");
  const auto got = TakeAll(*sub);
  REQUIRE(got.size() == 2);
  CHECK(got[0].seq == 1);
  CHECK(got[1].seq == 3);
  CHECK(hub.stats().gaps == 1);
  hub.NoteGap(3);  // Up to three lost: three numbers.
  CHECK(sub->last_seq() == 6);
  CHECK(hub.stats().gaps == 4);
}

TEST_CASE("PubSub refuses names over their limits before storing any", "[unit][pubsub]") {
  PubSub::Options options;
  options.max_names = 3;
  options.max_name_bytes = 8;
  PubSub hub(options);
  auto sub = hub.Open({});
  const std::vector<std::string> long_name{"123456789"};
  Status s = sub->Subscribe({}, long_name);
  CHECK(s.code() == StatusCode::kInvalidArgument);
  CHECK_THAT(s.message(), Catch::Contains("pattern of 9 bytes") && Catch::Contains("8 bytes"));
  const std::vector<std::string> two{"a", "b"};
  REQUIRE(sub->Subscribe(two, {}).ok());
  REQUIRE(sub->Subscribe(two, {}).ok());  // Held already: nothing added.
  s = sub->Subscribe(std::vector<std::string>{"c", "d"}, {});
  CHECK(s.code() == StatusCode::kInvalidArgument);
  CHECK_THAT(s.message(), Catch::Contains("at most 3"));
  CHECK(sub->channels() == 2);
  CHECK(hub.stats().channels == 2);
}

TEST_CASE("PubSub CloseAll ends every subscription and every later one", "[unit][pubsub]") {
  PubSub hub;
  auto a = hub.Open({});
  hub.CloseAll(Status::Unavailable("node shutting down"));
  CHECK(a->status().message() == "node shutting down");
  auto b = hub.Open({});
  CHECK(b->status().message() == "node shutting down");
  CHECK(hub.stats().subscriptions == 0);
}

TEST_CASE("PubSub keeps each publisher's order for every subscriber under concurrency",
          "[unit][pubsub]") {
  PubSub hub;
  constexpr int kPublishers = 4;
  constexpr int kMessages = 3000;
  constexpr int kSubscribers = 3;
  // Each reader sleeps until its subscription's wake (no spinning: 2 cores are shared).
  struct Reader {
    std::mutex mu;
    std::condition_variable cv;
    bool woken = false;
    std::shared_ptr<PubSub::Subscription> sub;
    std::vector<Delivery> got;
  };
  std::vector<Reader> readers(kSubscribers);
  const std::vector<std::string> pattern{"p*"};
  for (Reader& r : readers) {
    r.sub = hub.Open([&r] {
      std::lock_guard lock(r.mu);
      r.woken = true;
      r.cv.notify_one();
    });
    REQUIRE(r.sub->Subscribe({}, pattern).ok());
  }
  std::atomic<bool> done{false};
  std::vector<std::thread> threads;
  for (Reader& r : readers) {
    threads.emplace_back([&] {
      while (!done.load()) {
        r.sub->Take(&r.got, 100);
        std::unique_lock lock(r.mu);
        r.cv.wait_for(lock, std::chrono::milliseconds(20), [&] { return r.woken; });
        r.woken = false;
      }
      r.sub->Take(&r.got, 1000000);
    });
  }
  std::atomic<size_t> counted{0};
  std::vector<std::thread> publishers;
  for (int p = 0; p < kPublishers; ++p) {
    publishers.emplace_back([&, p] {
      for (int m = 0; m < kMessages; ++m) {
        counted += hub.Publish("p" + std::to_string(p), std::to_string(m));
      }
    });
  }
  for (auto& t : publishers) t.join();
  done = true;
  for (auto& t : threads) t.join();

  CHECK(counted == size_t{kPublishers} * kMessages * kSubscribers);
  for (const Reader& r : readers) {
    REQUIRE(r.got.size() == size_t{kPublishers} * kMessages);
    std::vector<int> next(kPublishers, 0);
    bool in_order = true;
    for (size_t i = 0; i < r.got.size(); ++i) {
      in_order = in_order && r.got[i].seq == i + 1;
      const auto p = static_cast<size_t>(std::stoi(r.got[i].message->channel.substr(1)));
      in_order = in_order && std::stoi(r.got[i].message->payload) == next[p]++;
    }
    CHECK(in_order);
  }
  CHECK(hub.stats().buffered_bytes == 0);
}

}  // namespace
}  // namespace ringcache
