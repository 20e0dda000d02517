// PubSub: channels and patterns on one process — the local half of ringcache's pub/sub
// (docs/design/pubsub.md). A node fans each published message out to the other nodes and
// every node delivers it here to its own subscribers; an embedding program can use it
// alone.
//
//   ringcache::PubSub hub({.max_buffer_bytes = 8 << 20});
//   auto sub = hub.Open([] { /* wake whoever drains `sub` */ });
//   sub->Subscribe({"news"}, {"user:*"});
//   hub.Publish("user:42", "hello");          // 1: one subscriber reached
//   std::vector<PubSub::Delivery> out;
//   sub->Take(&out, 64);                       // {seq 1, "user:42", "hello", pattern "user:*"}
//
// Delivery is at-most-once. Every subscription numbers what it is given 1, 2, 3, ...
// (Delivery::seq); a message it should have had but did not (NoteGap: a relay from another
// node was lost) skips a number, so a reader that sees seq jump knows it missed something.
// last_seq() is what a heartbeat carries, so that a gap shows even when nothing follows it.
//
// A subscription matched by both a channel and one or more patterns gets the message once
// per match, as Redis delivers "message" and "pmessage" (Publish counts each).
//
// Bounds: a subscription holds at most max_buffer_bytes of undelivered messages (each
// counted as channel + payload + pattern + kDeliveryOverheadBytes). A message that would
// pass the bound closes it instead: its buffer is freed at once, Take reports the end and
// status() is RESOURCE_EXHAUSTED naming the limit (Redis's client-output-buffer-limit for
// pubsub, without the soft limit). Subscribe refuses more than max_names channels plus
// patterns per subscription and any name over max_name_bytes (INVALID_ARGUMENT naming the
// limit), before anything is stored.
//
// Thread safety: every method of PubSub and Subscription may be called from any thread.
// `wake` is called with no lock of the hub's held, from the thread that made the
// subscription readable (Publish, NoteGap) or closed it; it must not block. Publish costs
// the hub's lock (one mutex: publishes are matched one at a time), a hash lookup of the
// channel and a glob match per pattern subscribed anywhere (as Redis), and per matching
// subscription its own lock and one buffered entry (the message is shared).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ringcache/status.h"

namespace ringcache {

class PubSub {
 public:
  struct Options {
    // Undelivered bytes one subscription may hold before it is closed.
    size_t max_buffer_bytes = size_t{8} << 20;
    // Channels plus patterns one subscription may name.
    size_t max_names = 100000;
    // Bytes of one channel name or pattern.
    size_t max_name_bytes = 4096;
    // How errors name max_buffer_bytes and max_name_bytes (a node names its flags).
    std::string buffer_limit_name = "max_buffer_bytes";
    std::string name_limit_name = "max_name_bytes";
  };

  // What each buffered message costs beyond its bytes (bookkeeping, as counted).
  static constexpr size_t kDeliveryOverheadBytes = 64;

  // One published message, shared by every subscription it reaches.
  struct Message {
    std::string channel;
    std::string payload;
    uint64_t version = 0;  // A keyspace event's: the key's version it reports; else 0.
  };

  // One message as a subscription is given it.
  struct Delivery {
    uint64_t seq = 0;
    std::shared_ptr<const Message> message;
    std::string pattern;  // The pattern that matched; empty for a channel subscription.
  };

  class Subscription;

  PubSub();
  explicit PubSub(Options options);
  ~PubSub();
  PubSub(const PubSub&) = delete;
  PubSub& operator=(const PubSub&) = delete;

  // A new subscription, subscribed to nothing yet. `wake` (may be empty) is called when it
  // has something to Take or has been closed. The hub must outlive it.
  std::shared_ptr<Subscription> Open(std::function<void()> wake);

  // Delivers `payload` on `channel` to every matching subscription; returns how many
  // deliveries were buffered (a subscription closed by this message is not counted).
  // `version` travels with the message (Message::version).
  size_t Publish(std::string_view channel, std::string_view payload, uint64_t version = 0);

  // Every open subscription skips `count` sequence numbers and is woken: up to that many
  // messages may have been lost on their way here.
  void NoteGap(uint64_t count = 1);

  // Ends every open subscription with `status` (e.g. UNAVAILABLE at shutdown); later Open
  // calls get closed subscriptions.
  void CloseAll(const Status& status);

  struct Stats {
    size_t subscriptions = 0;   // Open.
    size_t channels = 0;        // Distinct channels subscribed.
    size_t patterns = 0;        // Pattern subscriptions.
    uint64_t published = 0;     // Publish calls.
    uint64_t delivered = 0;     // Deliveries buffered.
    uint64_t overflowed = 0;    // Subscriptions closed for their buffer.
    uint64_t gaps = 0;          // NoteGap calls.
    size_t buffered_bytes = 0;  // Held now, over every subscription.
  };
  Stats stats() const;

  const Options& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  friend class Subscription;
};

class PubSub::Subscription : public std::enable_shared_from_this<PubSub::Subscription> {
 public:
  ~Subscription();
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;

  // Adds channels and patterns (names already held are kept once). INVALID_ARGUMENT naming
  // the limit if a name is too long or the total would pass max_names (nothing is added);
  // the subscription's status if it is closed.
  Status Subscribe(std::span<const std::string> channels, std::span<const std::string> patterns);
  // Drops the names given; empty spans drop nothing (call with all names to drop all).
  void Unsubscribe(std::span<const std::string> channels, std::span<const std::string> patterns);

  // Moves buffered deliveries, oldest first, into *out (appended): at most `max_count`,
  // and no more once `max_bytes` (as counted for the buffer) are taken (but always one if
  // there is one). *through (if given) is the number through which the reader has now been
  // given everything it will get: the last one taken, or last_seq() when the buffer is left
  // empty (so numbers skipped by NoteGap show). Returns false once the subscription is
  // closed and nothing is left: status() says why.
  bool Take(std::vector<Delivery>* out, size_t max_count, size_t max_bytes = SIZE_MAX,
            uint64_t* through = nullptr);
  // The sequence number of the last delivery given to this subscription (buffered or
  // taken), including numbers skipped by NoteGap.
  uint64_t last_seq() const;
  // OK while open; why it was closed otherwise.
  Status status() const;
  // Ends the subscription (no more deliveries; buffered ones are dropped). Idempotent.
  void Close(const Status& status);
  size_t channels() const;
  size_t patterns() const;

 private:
  friend class PubSub;
  struct State;
  Subscription(PubSub::Impl* hub, std::function<void()> wake);
  // Close, calling `wake` only if asked (not from the destructor).
  void Shut(const Status& status, bool wake);
  PubSub::Impl* const hub_;
  std::unique_ptr<State> state_;
};

}  // namespace ringcache
