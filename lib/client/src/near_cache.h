// NearCache: the client's local copy of recently read keys (docs/design/near-cache.md),
// kept fresh by the cluster's keyspace events. Pure logic over a ringcache::Cache and a
// Clock, so that its rules can be tested with a manual clock and injected events; the
// client feeds it from a Subscribe stream (near_feed in pubsub.cc).
//
//   if (auto hit = near.Lookup(key)) return *hit;
//   const uint64_t token = near.BeginFill(key);     // a placeholder, before the read
//   Result<Item> item = remote Get;
//   if (item.ok()) near.CompleteFill(key, token, *item);
//
// Rules:
//  - A key's event (any change, from its primary) drops the key. A fill whose read may
//    have raced an event does not store: BeginFill puts a placeholder, which an event (or
//    a reset) removes, and CompleteFill stores only over that same placeholder (its local
//    version).
//  - Trust: entries are served only while every member of the cluster view has ticked
//    (the node's keyspace tick, sent in order with its events) within max_silence on the
//    current stream (silences measured on a monotonic clock). A new stream trusts nothing
//    until every member has ticked on it. While not trusted, Lookup misses (and drops
//    everything once) and BeginFill refuses.
//  - A gap (events that may have been lost), a broken stream, or a member leaving the set
//    that must tick (declared failed: its last events may be lost with it) drops
//    everything.
//
// Thread safety: every method may be called concurrently (the cache has its own locks;
// the trust state its mutex). Lookup costs an atomic load, a clock read and a cache Get.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ringcache/cache.h"
#include "ringcache/client/client.h"
#include "ringcache/clock.h"
#include "ringcache/sync/mutex.h"
#include "ringcache/sync/thread_annotations.h"

namespace ringcache::client::internal {

class NearCache {
 public:
  // INVALID_ARGUMENT (naming the field) for options the cache refuses.
  static Result<std::unique_ptr<NearCache>> Create(const NearCacheOptions& options);

  // Whether `key` is one this near cache keeps (NearCacheOptions::key_pattern).
  bool Covers(std::string_view key) const;

  // The key's item if held and trusted now; nullopt otherwise (a placeholder is a miss).
  std::optional<Item> Lookup(std::string_view key);
  // Before a read of `key` from the cluster: a token for CompleteFill (0: do not fill).
  uint64_t BeginFill(std::string_view key);
  // After the read: stores `item` if nothing dropped the key since BeginFill gave `token`
  // and the near cache is trusted.
  void CompleteFill(std::string_view key, uint64_t token, const Item& item);
  // The key changed (an event, or a write through this client).
  void Invalidate(std::string_view key);

  // The event feed.
  // A stream is in place; its node ticks every `heartbeat` (max_silence is three of those
  // unless the options give it). Trusts nothing until every member ticks.
  void StreamStarted(std::chrono::milliseconds heartbeat);
  void StreamBroken();  // Drops everything; trusts nothing.
  void Gap();           // Drops everything.
  // Tick `number` (PubSubMessage.version: 0 for anything but a member's tick, ignored) from
  // member `origin`; `members` are the ids of the view's members that are not failed (each
  // must tick within max_silence for the near cache to be trusted; one that leaves the
  // set drops everything).
  void Tick(std::string_view origin, uint64_t number, std::span<const std::string> members);

  NearCacheStats stats() const;

 private:
  NearCache(const NearCacheOptions& options, std::unique_ptr<Cache> cache);
  bool Trusted(int64_t now_ms) const {
    return now_ms < trusted_until_ms_.load(std::memory_order_acquire);
  }
  void DropAll();
  // A new or broken stream: forgets every tick, drops everything.
  void Distrust();

  const std::string pattern_;
  const std::chrono::milliseconds configured_silence_;  // 0: from the heartbeat.
  Clock* const clock_;                                  // Deadlines (Unix ms, as the cluster's).
  Clock* const silence_clock_;  // Ticks and trust: monotonic (the options' clock in tests).
  const std::unique_ptr<Cache> cache_;

  // Entries are served while silence_clock_ is before this (ms); 0 = not trusted. Written
  // under mu_.
  std::atomic<int64_t> trusted_until_ms_{0};
  mutable ringcache::internal::Mutex mu_;
  // Set once everything was dropped for a lapse of trust (so that Lookup drops once).
  bool dropped_since_trusted_ RC_GUARDED_BY(mu_) = true;
  // The members of the last tick's set: each must keep ticking.
  std::vector<std::string> required_ RC_GUARDED_BY(mu_);
  // The clock at each member's last tick on the current stream.
  std::map<std::string, int64_t, std::less<>> last_tick_ms_ RC_GUARDED_BY(mu_);
  int64_t max_silence_ms_ RC_GUARDED_BY(mu_) = 0;

  std::atomic<uint64_t> hits_{0};
  std::atomic<uint64_t> misses_{0};
  std::atomic<uint64_t> untrusted_{0};
  std::atomic<uint64_t> fills_{0};
  std::atomic<uint64_t> invalidations_{0};
  std::atomic<uint64_t> resets_{0};
};

}  // namespace ringcache::client::internal
