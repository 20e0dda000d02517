#include "ringcache/pubsub.h"

#include <atomic>
#include <cstdint>
#include <deque>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "ringcache/glob.h"
#include "ringcache/sync/mutex.h"

namespace ringcache {

using internal::Mutex;
using internal::MutexLock;

// Lock order: Impl::mu -> State::mu. Neither is held while calling a `wake`.
struct PubSub::Impl {
  explicit Impl(Options o) : options(std::move(o)) {}

  const Options options;

  Mutex mu;
  // Protected by mu. The subscriptions here are open or closed by overflow (skipped);
  // a subscription leaves them in Close.
  std::unordered_map<std::string, std::vector<Subscription*>> channels RC_GUARDED_BY(mu);
  std::unordered_map<std::string, std::vector<Subscription*>> patterns RC_GUARDED_BY(mu);
  std::unordered_set<Subscription*> all RC_GUARDED_BY(mu);
  Status closed_all RC_GUARDED_BY(mu);  // Not OK once CloseAll ran.

  std::atomic<uint64_t> published{0};
  std::atomic<uint64_t> delivered{0};
  std::atomic<uint64_t> overflowed{0};
  std::atomic<uint64_t> gaps{0};
  std::atomic<size_t> buffered_bytes{0};

  // Removes `sub` from the list of `name` in `index`. REQUIRES: mu.
  static void Remove(std::unordered_map<std::string, std::vector<Subscription*>>* index,
                     const std::string& name, Subscription* sub) {
    auto it = index->find(name);
    if (it == index->end()) return;
    std::erase(it->second, sub);
    if (it->second.empty()) index->erase(it);
  }
};

struct PubSub::Subscription::State {
  std::function<void()> wake;

  Mutex mu;
  // Protected by mu.
  std::deque<Delivery> queue RC_GUARDED_BY(mu);
  size_t bytes RC_GUARDED_BY(mu) = 0;
  uint64_t seq RC_GUARDED_BY(mu) = 0;
  Status status RC_GUARDED_BY(mu);
  // Protected by the hub's mu (read under either).
  std::unordered_set<std::string> channels;
  std::unordered_set<std::string> patterns;
  bool registered = false;  // In the hub's `all`; protected by the hub's mu.
};

namespace {

size_t DeliveryBytes(const PubSub::Message& m, std::string_view pattern) {
  return m.channel.size() + m.payload.size() + pattern.size() + PubSub::kDeliveryOverheadBytes;
}

}  // namespace

PubSub::PubSub() : PubSub(Options{}) {}

PubSub::PubSub(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {}

PubSub::~PubSub() = default;

const PubSub::Options& PubSub::options() const { return impl_->options; }

std::shared_ptr<PubSub::Subscription> PubSub::Open(std::function<void()> wake) {
  std::shared_ptr<Subscription> sub(new Subscription(impl_.get(), std::move(wake)));
  Status closed;
  {
    MutexLock l(&impl_->mu);
    if (impl_->closed_all.ok()) {
      impl_->all.insert(sub.get());
      sub->state_->registered = true;
      return sub;
    }
    closed = impl_->closed_all;
  }
  sub->Close(closed);
  return sub;
}

size_t PubSub::Publish(std::string_view channel, std::string_view payload, uint64_t version) {
  impl_->published.fetch_add(1, std::memory_order_relaxed);
  std::shared_ptr<Message> message;
  std::vector<std::shared_ptr<Subscription>> to_wake;
  size_t delivered = 0;
  {
    MutexLock l(&impl_->mu);
    // Buffers one delivery for `sub`; true if it was buffered.
    auto deliver = [&](Subscription* sub, std::string_view pattern) {
      if (message == nullptr) {
        message =
            std::make_shared<Message>(Message{std::string(channel), std::string(payload), version});
      }
      const size_t bytes = DeliveryBytes(*message, pattern);
      Subscription::State& st = *sub->state_;
      bool wake = false;
      bool ok = false;
      {
        MutexLock sl(&st.mu);
        if (!st.status.ok()) return false;
        if (st.bytes + bytes > impl_->options.max_buffer_bytes) {
          st.status = Status::ResourceExhausted("subscriber's buffer passed its limit of " +
                                                std::to_string(impl_->options.max_buffer_bytes) +
                                                " bytes (" + impl_->options.buffer_limit_name +
                                                ") at message " + std::to_string(st.seq + 1) +
                                                ": it reads more slowly than messages arrive");
          impl_->buffered_bytes.fetch_sub(st.bytes, std::memory_order_relaxed);
          st.queue.clear();
          st.bytes = 0;
          impl_->overflowed.fetch_add(1, std::memory_order_relaxed);
          wake = true;
        } else {
          wake = st.queue.empty();
          st.queue.push_back(Delivery{++st.seq, message, std::string(pattern)});
          st.bytes += bytes;
          impl_->buffered_bytes.fetch_add(bytes, std::memory_order_relaxed);
          ok = true;
        }
      }
      if (wake && st.wake) {
        if (auto held = sub->weak_from_this().lock()) to_wake.push_back(std::move(held));
      }
      return ok;
    };
    if (auto it = impl_->channels.find(std::string(channel)); it != impl_->channels.end()) {
      for (Subscription* sub : it->second) delivered += deliver(sub, {}) ? 1 : 0;
    }
    for (const auto& [pattern, subs] : impl_->patterns) {
      if (!GlobMatch(pattern, channel)) continue;
      for (Subscription* sub : subs) delivered += deliver(sub, pattern) ? 1 : 0;
    }
  }
  impl_->delivered.fetch_add(delivered, std::memory_order_relaxed);
  for (const auto& sub : to_wake) sub->state_->wake();
  return delivered;
}

void PubSub::NoteGap(uint64_t count) {
  if (count == 0) return;
  impl_->gaps.fetch_add(count, std::memory_order_relaxed);
  std::vector<std::shared_ptr<Subscription>> to_wake;
  {
    MutexLock l(&impl_->mu);
    for (Subscription* sub : impl_->all) {
      Subscription::State& st = *sub->state_;
      {
        MutexLock sl(&st.mu);
        if (!st.status.ok()) continue;
        st.seq += count;
      }
      if (st.wake) {
        if (auto held = sub->weak_from_this().lock()) to_wake.push_back(std::move(held));
      }
    }
  }
  for (const auto& sub : to_wake) sub->state_->wake();
}

void PubSub::CloseAll(const Status& status) {
  std::vector<std::shared_ptr<Subscription>> open;
  {
    MutexLock l(&impl_->mu);
    if (impl_->closed_all.ok()) impl_->closed_all = status;
    for (Subscription* sub : impl_->all) {
      if (auto held = sub->weak_from_this().lock()) open.push_back(std::move(held));
    }
  }
  for (const auto& sub : open) sub->Close(status);
}

PubSub::Stats PubSub::stats() const {
  Stats s;
  {
    MutexLock l(&impl_->mu);
    s.subscriptions = impl_->all.size();
    s.channels = impl_->channels.size();
    for (const auto& [pattern, subs] : impl_->patterns) s.patterns += subs.size();
  }
  s.published = impl_->published.load(std::memory_order_relaxed);
  s.delivered = impl_->delivered.load(std::memory_order_relaxed);
  s.overflowed = impl_->overflowed.load(std::memory_order_relaxed);
  s.gaps = impl_->gaps.load(std::memory_order_relaxed);
  s.buffered_bytes = impl_->buffered_bytes.load(std::memory_order_relaxed);
  return s;
}

PubSub::Subscription::Subscription(PubSub::Impl* hub, std::function<void()> wake)
    : hub_(hub), state_(std::make_unique<State>()) {
  state_->wake = std::move(wake);
}

PubSub::Subscription::~Subscription() { Shut(Status::Unavailable("subscription closed"), false); }

Status PubSub::Subscription::Subscribe(std::span<const std::string> channels,
                                       std::span<const std::string> patterns) {
  const Options& o = hub_->options;
  for (std::span<const std::string> names : {channels, patterns}) {
    for (const std::string& name : names) {
      if (name.size() > o.max_name_bytes) {
        return Status::InvalidArgument(
            std::string(names.data() == channels.data() ? "channel" : "pattern") + " of " +
            std::to_string(name.size()) + " bytes is over the limit of " +
            std::to_string(o.max_name_bytes) + " bytes (" + o.name_limit_name + ")");
      }
    }
  }
  MutexLock l(&hub_->mu);
  {
    MutexLock sl(&state_->mu);
    if (!state_->status.ok()) return state_->status;
  }
  State& st = *state_;
  size_t added = 0;
  for (const std::string& c : channels) added += st.channels.contains(c) ? 0 : 1;
  for (const std::string& p : patterns) added += st.patterns.contains(p) ? 0 : 1;
  // Duplicates within the request are counted twice here: the bound errs on the safe side.
  if (st.channels.size() + st.patterns.size() + added > o.max_names) {
    return Status::InvalidArgument("a subscription may name at most " +
                                   std::to_string(o.max_names) + " channels and patterns; it has " +
                                   std::to_string(st.channels.size() + st.patterns.size()) +
                                   " and asked for " + std::to_string(added) + " more");
  }
  for (const std::string& c : channels) {
    if (st.channels.insert(c).second) hub_->channels[c].push_back(this);
  }
  for (const std::string& p : patterns) {
    if (st.patterns.insert(p).second) hub_->patterns[p].push_back(this);
  }
  return Status::Ok();
}

void PubSub::Subscription::Unsubscribe(std::span<const std::string> channels,
                                       std::span<const std::string> patterns) {
  MutexLock l(&hub_->mu);
  for (const std::string& c : channels) {
    if (state_->channels.erase(c) > 0) Impl::Remove(&hub_->channels, c, this);
  }
  for (const std::string& p : patterns) {
    if (state_->patterns.erase(p) > 0) Impl::Remove(&hub_->patterns, p, this);
  }
}

bool PubSub::Subscription::Take(std::vector<Delivery>* out, size_t max_count, size_t max_bytes,
                                uint64_t* through) {
  MutexLock sl(&state_->mu);
  size_t n = 0;
  size_t taken_bytes = 0;
  uint64_t last = 0;
  while (n < max_count && !state_->queue.empty() && (n == 0 || taken_bytes < max_bytes)) {
    Delivery& d = state_->queue.front();
    const size_t bytes = DeliveryBytes(*d.message, d.pattern);
    state_->bytes -= bytes;
    taken_bytes += bytes;
    last = d.seq;
    out->push_back(std::move(d));
    state_->queue.pop_front();
    ++n;
  }
  hub_->buffered_bytes.fetch_sub(taken_bytes, std::memory_order_relaxed);
  if (through != nullptr) *through = state_->queue.empty() ? state_->seq : last;
  return n > 0 || state_->status.ok();
}

uint64_t PubSub::Subscription::last_seq() const {
  MutexLock sl(&state_->mu);
  return state_->seq;
}

Status PubSub::Subscription::status() const {
  MutexLock sl(&state_->mu);
  return state_->status;
}

size_t PubSub::Subscription::channels() const {
  MutexLock l(&hub_->mu);
  return state_->channels.size();
}

size_t PubSub::Subscription::patterns() const {
  MutexLock l(&hub_->mu);
  return state_->patterns.size();
}

void PubSub::Subscription::Close(const Status& status) { Shut(status, true); }

void PubSub::Subscription::Shut(const Status& status, bool wake) {
  bool was_open = false;
  {
    MutexLock l(&hub_->mu);
    if (state_->registered) {
      hub_->all.erase(this);
      state_->registered = false;
      for (const std::string& c : state_->channels) Impl::Remove(&hub_->channels, c, this);
      for (const std::string& p : state_->patterns) Impl::Remove(&hub_->patterns, p, this);
      state_->channels.clear();
      state_->patterns.clear();
    }
    MutexLock sl(&state_->mu);
    if (state_->status.ok()) {
      state_->status = status.ok() ? Status::Unavailable("subscription closed") : status;
      was_open = true;
    }
    hub_->buffered_bytes.fetch_sub(state_->bytes, std::memory_order_relaxed);
    state_->queue.clear();
    state_->bytes = 0;
  }
  if (wake && was_open && state_->wake) state_->wake();
}

}  // namespace ringcache
