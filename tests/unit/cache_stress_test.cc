// Multi-threaded tests of Cache that check invariants, not just the absence of crashes.
// They run in CI under ThreadSanitizer too. Every loop is bounded by an operation count.
#include <atomic>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <catch2/catch.hpp>

#include "ringcache/cache.h"

namespace ringcache {
namespace {

// A value that proves it is whole and belongs to its key: "<key>#<len>#<filler>" where
// len is the total size and the filler repeats one letter.
std::string MakeValue(const std::string& key, uint32_t filler_len, char letter) {
  std::string head = key + "#";
  // The length field counts itself: iterate until stable.
  std::string v;
  for (size_t digits = 1; digits < 8; ++digits) {
    const size_t total = head.size() + digits + 1 + filler_len;
    const std::string len = std::to_string(total);
    if (len.size() == digits) {
      v = head + len + "#" + std::string(filler_len, letter);
      break;
    }
  }
  return v;
}

bool ValueIsWhole(std::string_view key, std::string_view v) {
  if (v.size() < key.size() + 3 || v.substr(0, key.size()) != key || v[key.size()] != '#')
    return false;
  const size_t len_end = v.find('#', key.size() + 1);
  if (len_end == std::string_view::npos) return false;
  const std::string len(v.substr(key.size() + 1, len_end - key.size() - 1));
  if (std::to_string(v.size()) != len) return false;
  const std::string_view filler = v.substr(len_end + 1);
  for (char c : filler) {
    if (c != filler.front()) return false;
  }
  return true;
}

struct StressConfig {
  int threads;
  int ops_per_thread;
  int keys;
  uint64_t capacity;
};

void RunMixedStress(const StressConfig& cfg) {
  ManualClock clock;
  CacheOptions o;
  o.clock = &clock;
  o.capacity_bytes = cfg.capacity;
  o.shard_count = 4;
  o.janitor_interval = std::chrono::milliseconds(1);  // the janitor runs concurrently too
  auto cache = std::move(Cache::Create(o)).value();

  std::vector<std::string> keys;
  for (int i = 0; i < cfg.keys; ++i) keys.push_back("key-" + std::to_string(i));

  std::atomic<int> failures{0};
  std::atomic<uint64_t> over_budget{0};
  auto fail = [&](bool bad) {
    if (bad) failures.fetch_add(1);
  };

  std::vector<std::thread> threads;
  for (int t = 0; t < cfg.threads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(1234 + static_cast<uint64_t>(t));
      std::unordered_map<std::string, uint64_t> last_version;  // per reader thread
      std::string v;
      for (int op = 0; op < cfg.ops_per_thread; ++op) {
        const std::string& key = keys[rng() % keys.size()];
        const uint64_t dice = rng() % 100;
        if (dice < 50) {
          ItemMeta meta;
          const Status s = cache->Get(key, &v, &meta);
          if (s.ok()) {
            fail(!ValueIsWhole(key, v));
            uint64_t& last = last_version[key];
            fail(meta.version < last);  // a later read never sees an older write
            last = meta.version;
          } else {
            fail(s.code() != StatusCode::kNotFound);
          }
        } else if (dice < 80) {
          SetOptions so;
          so.ttl_ms = rng() % 3 == 0 ? 1 + rng() % 50 : 0;
          so.mode = static_cast<SetMode>(rng() % 3);  // always / if-absent / if-present
          const auto r = cache->Set(
              key, MakeValue(key, static_cast<uint32_t>(rng() % 300), static_cast<char>('a' + t)),
              so);
          fail(!r.ok() && r.status().code() != StatusCode::kAlreadyExists &&
               r.status().code() != StatusCode::kNotFound);
        } else if (dice < 88) {
          const Status s = cache->Delete(key);
          fail(!s.ok() && s.code() != StatusCode::kNotFound);
        } else if (dice < 93) {
          const Status s = cache->Touch(key, rng() % 2 ? 0 : 1 + rng() % 50);
          fail(!s.ok() && s.code() != StatusCode::kNotFound);
        } else if (dice < 96) {
          const auto r = cache->Ttl(key);
          fail(!r.ok() && r.status().code() != StatusCode::kNotFound);
        } else if (dice < 97) {
          clock.AdvanceMs(static_cast<int64_t>(rng() % 10));
        } else if (dice < 98) {
          const CacheStats st = cache->Stats();
          if (st.bytes_used > o.capacity_bytes) over_budget.fetch_add(1);
        } else {
          // A short range scan: every item must be whole and in range.
          const uint64_t start = rng();
          const HashRange range{start, start + (UINT64_MAX >> 3)};
          int budget = 50;
          cache->ForEachInRange(range, [&](const ItemView& item) {
            fail(!range.Contains(item.hash) || !ValueIsWhole(item.key, item.value));
            return --budget > 0;
          });
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  cache->StopJanitor();

  CHECK(failures.load() == 0);
  CHECK(over_budget.load() == 0);

  // Quiescent: the accounting must match the contents exactly.
  const CacheStats st = cache->Stats();
  uint64_t count = 0;
  uint64_t bytes = 0;
  // Count expired-but-present entries too: items includes them until removed.
  clock.SetMs(0);  // nothing is expired at time 0, so the scan sees every stored entry
  cache->ForEachInRange(HashRange::Full(), [&](const ItemView& item) {
    ++count;
    bytes += item.key.size() + item.value.size() + Cache::EntryOverheadBytes();
    CHECK(ValueIsWhole(item.key, item.value));
    return true;
  });
  CHECK(count == st.items);
  CHECK(bytes == st.bytes_used);
  CHECK(st.bytes_used <= o.capacity_bytes);
}

TEST_CASE("Cache keeps values whole, versions monotonic and the budget under concurrency",
          "[unit][cache][stress]") {
  RunMixedStress({.threads = 4, .ops_per_thread = 20000, .keys = 200, .capacity = 64 << 10});
}

TEST_CASE("Cache stress: longer run with more keys and threads", "[unit][cache][stress][slow]") {
  RunMixedStress({.threads = 6, .ops_per_thread = 300000, .keys = 5000, .capacity = 1 << 20});
}

TEST_CASE("Cache Incr and compare-and-set lose no update under contention",
          "[unit][cache][stress]") {
  CacheOptions o;
  o.start_janitor = false;
  auto cache = std::move(Cache::Create(o)).value();
  constexpr int kThreads = 4;
  constexpr int kIncrements = 5000;
  constexpr int kCas = 1000;
  REQUIRE(cache->Set("cas", "0").ok());
  std::atomic<int> errors{0};

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kIncrements; ++i) {
        if (!cache->Incr("counter-" + std::to_string(i % 4), 1).ok()) errors.fetch_add(1);
      }
      for (int done = 0, attempts = 0; done < kCas && attempts < 1000000; ++attempts) {
        std::string v;
        ItemMeta meta;
        if (!cache->Get("cas", &v, &meta).ok()) {
          errors.fetch_add(1);
          break;
        }
        const auto r =
            cache->Set("cas", std::to_string(std::stoll(v) + 1),
                       SetOptions{.mode = SetMode::kIfVersion, .expected_version = meta.version});
        if (r.ok()) {
          ++done;
        } else if (r.status().code() != StatusCode::kFailedPrecondition) {
          errors.fetch_add(1);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(errors.load() == 0);
  std::string v;
  for (int c = 0; c < 4; ++c) {
    REQUIRE(cache->Get("counter-" + std::to_string(c), &v).ok());
    CHECK(v == std::to_string(kThreads * kIncrements / 4));
  }
  REQUIRE(cache->Get("cas", &v).ok());
  CHECK(v == std::to_string(kThreads * kCas));
}

// Two shards with room to spare, for tests of readers during table rebuilds.
std::unique_ptr<Cache> TwoShardCache() {
  CacheOptions o;
  o.start_janitor = false;
  o.shard_count = 2;
  o.capacity_bytes = uint64_t{256} << 20;
  return std::move(Cache::Create(o)).value();
}

// Grows, churns and shrinks the tables (rebuilds) of `cache` on its own thread; clears
// `*writing` when done.
std::thread StartChurn(Cache* cache, std::atomic<bool>* writing) {
  return std::thread([cache, writing] {
    for (int round = 0; round < 4; ++round) {
      for (int i = 0; i < 20000; ++i) (void)cache->Set("churn-" + std::to_string(i), "c");
      for (int i = 0; i < 20000; ++i) (void)cache->Delete("churn-" + std::to_string(i));
    }
    writing->store(false);
  });
}

TEST_CASE("Cache readers see every key that no writer touches while tables rebuild",
          "[unit][cache][stress]") {
  auto cache = TwoShardCache();
  constexpr int kStable = 1000;
  for (int i = 0; i < kStable; ++i) REQUIRE(cache->Set("stable-" + std::to_string(i), "s").ok());

  std::atomic<bool> writing{true};
  std::atomic<int> missing{0};
  std::thread writer = StartChurn(cache.get(), &writing);
  std::string v;
  for (int pass = 0; pass < 1000 && (writing.load() || pass < 2); ++pass) {
    for (int i = 0; i < kStable; ++i) {
      if (!cache->Get("stable-" + std::to_string(i), &v).ok()) missing.fetch_add(1);
    }
  }
  writer.join();
  CHECK(missing.load() == 0);
}

TEST_CASE("Cache Prefetch and MultiGet stay correct while tables rebuild",
          "[unit][cache][stress]") {
  // Prefetch reads a shard's table and slots outside any lock: run it (through MultiGet
  // and directly, with absent, empty and oversized keys mixed in) against a writer that
  // grows and shrinks the tables. ASan and TSan check the reads; the results check that
  // the hint changes nothing.
  auto cache = TwoShardCache();
  constexpr int kStable = 512;
  std::vector<std::string> stable;
  for (int i = 0; i < kStable; ++i) {
    stable.push_back("stable-" + std::to_string(i));
    REQUIRE(cache->Set(stable.back(), "v" + std::to_string(i)).ok());
  }
  const std::string oversized(CacheOptions{}.max_key_bytes + 1, 'k');

  std::atomic<bool> writing{true};
  std::thread writer = StartChurn(cache.get(), &writing);
  int wrong = 0;
  for (int pass = 0; pass < 1000 && (writing.load() || pass < 2); ++pass) {
    for (int first = 0; first < kStable; first += 16) {
      std::vector<std::string_view> keys(stable.begin() + first, stable.begin() + first + 16);
      const std::string churn = "churn-" + std::to_string(first * 31 % 20000);
      std::vector<std::string_view> hints = keys;
      hints.insert(hints.end(), {std::string_view(churn), std::string_view(), oversized});
      cache->Prefetch(hints);
      const std::vector<Result<Item>> items = cache->MultiGet(keys);
      for (int j = 0; j < 16; ++j) {
        if (!items[j].ok() || items[j]->value != "v" + std::to_string(first + j)) ++wrong;
      }
    }
  }
  writer.join();
  CHECK(wrong == 0);
  cache->Prefetch(std::span<const std::string_view>());  // Nothing to do.
}

}  // namespace
}  // namespace ringcache
