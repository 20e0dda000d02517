// KeyspaceEvents: a node's keyspace notifications (docs/design/pubsub.md, "Keyspace
// notifications"). Opt-in with --keyspace-events, in Redis's notify-keyspace-events
// letters; the key's primary announces each change of a key as pub/sub messages, which the
// relay passes to every node, so they are cluster-wide (Redis's are node-local):
//
//   __keyspace@0__:<key>    payload <event>   (class K)
//   __keyevent@0__:<event>  payload <key>     (class E)
//
// with the key's version in PubSubMessage.version. Events come from the write records of
// the operation path (WriteRecord::event: "set", "del", "expire", "incrby", "hset", ...)
// and from the cache's own removals ("expired", "evicted").
//
//   KeyspaceEvents events({.classes = *KeyspaceEvents::ParseClasses("KEA")});
//   events.Start(&sink, is_primary);       // the dispatcher thread
//   events.OnWrite(record);                // the store, under the key's stripe
//   events.OnRemoval(removal);             // the cache, under the entry's shard lock
//
// Order: OnWrite is called under the key's replication stripe, so a key's events are
// queued in the order of its versions; one dispatcher thread hands them to the sink in
// queue order, and the relay keeps each origin's order. A removal is queued under the
// cache's shard lock, so it follows the writes before it (an "expired" or "evicted" can
// precede the "set" it follows only when the key went within the instant between its
// write and the write's event being queued; its version tells). Across a change of the
// key's primary (failover, rebalancing) the two primaries' events are not ordered with
// each other: the versions tell.
//
// Bounds: at most max_queued_bytes wait for the dispatcher or are being handed to the sink
// (each event counted as its key + kEventOverheadBytes). Past it an event is dropped, and the sink
// is told how many were dropped at the place in the sequence where they were (Sink::Dropped): every
// subscriber, on every node, sees its sequence numbers skip.
//
// Thread safety: OnWrite and OnRemoval from any thread (quick, never blocking on the
// dispatcher); Start and Stop from one thread (the node's start and shutdown).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>

#include "ringcache/cache.h"
#include "ringcache/status.h"
#include "ringcache/write_record.h"

namespace ringcache::internal {

class KeyspaceEvents {
 public:
  // Redis's classes, one bit per letter.
  enum Class : uint32_t {
    kKeyspace = 1 << 0,   // K: __keyspace@0__:<key> channels.
    kKeyevent = 1 << 1,   // E: __keyevent@0__:<event> channels.
    kGeneric = 1 << 2,    // g: del, expire, persist.
    kString = 1 << 3,     // $: set, incrby, incrbyfloat, append, setrange.
    kList = 1 << 4,       // l: lpush, rpush, lpop, rpop, lset, linsert, ltrim, lrem.
    kSet = 1 << 5,        // s: sadd, srem, spop.
    kHash = 1 << 6,       // h: hset, hdel, hincrby, hincrbyfloat.
    kSortedSet = 1 << 7,  // z: no such values here yet: accepted, never produced.
    kExpired = 1 << 8,    // x: a key removed at its deadline.
    kEvicted = 1 << 9,    // e: a key removed to make room.
    kStream = 1 << 10,    // t: as z.
    kModule = 1 << 11,    // d: as z.
    kAll = kGeneric | kString | kList | kSet | kHash | kSortedSet | kExpired | kEvicted | kStream |
           kModule,  // A.
  };

  // Parses Redis's letters ("KEA", "Kx", "" = none); INVALID_ARGUMENT ("class 'q' is not
  // one of ...") naming a letter it does not know, or one ringcached cannot honour (n: new
  // keys, m: key misses).
  static Result<uint32_t> ParseClasses(std::string_view letters);
  // The letters as Redis's CONFIG GET notify-keyspace-events writes them ("AKE", "gxK").
  static std::string FormatClasses(uint32_t classes);
  // The setting a node with `letters` (valid) runs with, as FormatClasses writes it; ""
  // when it produces no event (no K or E, or no class of events).
  static std::string Effective(std::string_view letters);
  // The class of an event name (kGeneric for a name it does not know).
  static Class ClassOf(std::string_view event);

  // Where events go: the node's pub/sub (the local hub and the relay to the other nodes).
  class Sink {
   public:
    virtual ~Sink() = default;
    virtual void Publish(std::string channel, std::string payload, uint64_t version) = 0;
    // `count` messages were dropped here (the queue was full).
    virtual void Dropped(uint64_t count) = 0;
  };

  struct Options {
    uint32_t classes = 0;  // ParseClasses; 0 = off.
    size_t max_queued_bytes = size_t{16} << 20;
    // Every tick_interval (0 = never) the dispatcher publishes kTickChannel with this
    // node's id as payload and the tick's number (1, 2, 3, ...) as version, in order with
    // the events: the tick is decided when a batch is taken from the queue and sent after
    // it, so a tick received means every event this node queued before that batch was
    // taken has arrived or shown as a gap. A near cache uses the ticks of every member to bound
    // how stale it can be (docs/design/near-cache.md).
    std::string node_id = {};
    std::chrono::milliseconds tick_interval{0};
  };
  static constexpr std::string_view kTickChannel = "__ringcache__:keyspace-tick";
  // What each queued event costs beyond its key, as counted.
  static constexpr size_t kEventOverheadBytes = 64;

  explicit KeyspaceEvents(Options options);
  ~KeyspaceEvents();  // Stop().
  KeyspaceEvents(const KeyspaceEvents&) = delete;
  KeyspaceEvents& operator=(const KeyspaceEvents&) = delete;

  // Whether any event can be produced: K or E, and a class of events.
  bool enabled() const { return enabled_; }
  uint32_t classes() const { return options_.classes; }

  // Starts the dispatcher, which hands events to `sink` (not owned; outlives Stop).
  // `is_primary(key)` tells whether this node is the key's primary (a removal is announced
  // only there: replicas remove their copies too). Events before Start are not kept.
  void Start(Sink* sink, std::function<bool(std::string_view key)> is_primary);
  // Later events are ignored; the dispatcher sends what is queued, for at most
  // kDrainTimeout (the rest is dropped, and reported to the sink as a drop), and stops.
  void Stop();
  static constexpr std::chrono::milliseconds kDrainTimeout{1000};

  // A write this node applied as the key's primary (ReplicationOptions::on_primary_write).
  void OnWrite(const WriteRecord& record);
  // An entry the cache removed by itself (CacheOptions::on_removal).
  void OnRemoval(const Removal& removal);

  struct Stats {
    uint64_t queued = 0;   // Events queued.
    uint64_t dropped = 0;  // Events dropped for the bound.
    size_t queued_bytes = 0;
  };
  Stats stats() const;

 private:
  struct Event {
    std::string key;
    std::string_view name;  // Static text.
    uint64_t version = 0;
    uint64_t dropped_before = 0;  // Dropped just before this one.
  };
  // Whether `name`'s class is wanted.
  bool Wants(std::string_view name) const;
  // Queues the events of one change (one or two: "set" then "expire", a collection's
  // last element going as "<command>" then "del"), all or none.
  void Enqueue(std::string_view key, std::span<const std::string_view> names, uint64_t version);
  void Run();

  const Options options_;
  const bool enabled_;
  Sink* sink_ = nullptr;
  std::function<bool(std::string_view)> is_primary_;
  std::atomic<bool> started_{false};         // Release-set once sink_ and is_primary_ are.
  std::atomic<bool> stop_requested_{false};  // Stop's drain has begun.

  mutable std::mutex mu_;
  std::condition_variable cv_;
  // Protected by mu_.
  std::deque<Event> queue_;
  size_t queued_bytes_ = 0;
  uint64_t dropped_pending_ = 0;  // Dropped since the last queued event.
  uint64_t queued_total_ = 0;
  uint64_t dropped_total_ = 0;
  bool stopping_ = false;
  std::thread dispatcher_;
};

}  // namespace ringcache::internal
