#include "keyspace_events.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <optional>
#include <utility>
#include <vector>

namespace ringcache::internal {

namespace {

constexpr std::string_view kKeyspacePrefix = "__keyspace@0__:";
constexpr std::string_view kKeyeventPrefix = "__keyevent@0__:";

struct Named {
  std::string_view event;
  KeyspaceEvents::Class cls;
};
// Every event name a write record carries (WriteRecord::event), with Redis's class.
constexpr std::array<Named, 25> kEvents{{
    {"del", KeyspaceEvents::kGeneric},       {"expire", KeyspaceEvents::kGeneric},
    {"persist", KeyspaceEvents::kGeneric},   {"set", KeyspaceEvents::kString},
    {"incrby", KeyspaceEvents::kString},     {"incrbyfloat", KeyspaceEvents::kString},
    {"append", KeyspaceEvents::kString},     {"setrange", KeyspaceEvents::kString},
    {"lpush", KeyspaceEvents::kList},        {"rpush", KeyspaceEvents::kList},
    {"lpop", KeyspaceEvents::kList},         {"rpop", KeyspaceEvents::kList},
    {"lset", KeyspaceEvents::kList},         {"linsert", KeyspaceEvents::kList},
    {"ltrim", KeyspaceEvents::kList},        {"lrem", KeyspaceEvents::kList},
    {"sadd", KeyspaceEvents::kSet},          {"srem", KeyspaceEvents::kSet},
    {"spop", KeyspaceEvents::kSet},          {"hset", KeyspaceEvents::kHash},
    {"hdel", KeyspaceEvents::kHash},         {"hincrby", KeyspaceEvents::kHash},
    {"hincrbyfloat", KeyspaceEvents::kHash}, {"expired", KeyspaceEvents::kExpired},
    {"evicted", KeyspaceEvents::kEvicted},
}};

// Letters in the order Redis's CONFIG GET writes them.
constexpr std::array<std::pair<char, uint32_t>, 10> kTypeLetters{{
    {'g', KeyspaceEvents::kGeneric},
    {'$', KeyspaceEvents::kString},
    {'l', KeyspaceEvents::kList},
    {'s', KeyspaceEvents::kSet},
    {'h', KeyspaceEvents::kHash},
    {'z', KeyspaceEvents::kSortedSet},
    {'x', KeyspaceEvents::kExpired},
    {'e', KeyspaceEvents::kEvicted},
    {'t', KeyspaceEvents::kStream},
    {'d', KeyspaceEvents::kModule},
}};

}  // namespace

Result<uint32_t> KeyspaceEvents::ParseClasses(std::string_view letters) {
  uint32_t classes = 0;
  for (const char c : letters) {
    if (c == 'A') {
      classes |= kAll;
    } else if (c == 'K') {
      classes |= kKeyspace;
    } else if (c == 'E') {
      classes |= kKeyevent;
    } else if (c == 'n' || c == 'm') {
      return Status::InvalidArgument(
          std::string("class '") + c + "' (" + (c == 'n' ? "new keys" : "key misses") +
          ") is not supported; use K or E with g$lshzxetd or A (docs/design/pubsub.md)");
    } else {
      bool found = false;
      for (const auto& [letter, cls] : kTypeLetters) {
        if (letter == c) {
          classes |= cls;
          found = true;
        }
      }
      if (!found) {
        return Status::InvalidArgument(std::string("class '") + c +
                                       "' is not one of K E g $ l s h z x e t d A");
      }
    }
  }
  return classes;
}

std::string KeyspaceEvents::FormatClasses(uint32_t classes) {
  std::string out;
  if ((classes & kAll) == kAll) {
    out += 'A';
  } else {
    for (const auto& [letter, cls] : kTypeLetters) {
      if ((classes & cls) != 0) out += letter;
    }
  }
  if ((classes & kKeyspace) != 0) out += 'K';
  if ((classes & kKeyevent) != 0) out += 'E';
  return out;
}

std::string KeyspaceEvents::Effective(std::string_view letters) {
  const Result<uint32_t> classes = ParseClasses(letters);
  if (!classes.ok() || !KeyspaceEvents(Options{.classes = *classes}).enabled()) return "";
  return FormatClasses(*classes);
}

KeyspaceEvents::Class KeyspaceEvents::ClassOf(std::string_view event) {
  for (const Named& n : kEvents) {
    if (n.event == event) return n.cls;
  }
  return kGeneric;
}

KeyspaceEvents::KeyspaceEvents(Options options)
    : options_(options),
      enabled_((options.classes & (kKeyspace | kKeyevent)) != 0 && (options.classes & kAll) != 0) {}

KeyspaceEvents::~KeyspaceEvents() { Stop(); }

void KeyspaceEvents::Start(Sink* sink, std::function<bool(std::string_view key)> is_primary) {
  if (!enabled_) return;
  sink_ = sink;
  is_primary_ = std::move(is_primary);
  started_.store(true, std::memory_order_release);
  dispatcher_ = std::thread([this] { Run(); });
}

void KeyspaceEvents::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;  // No more events are queued; the dispatcher sends what is.
  }
  stop_requested_.store(true, std::memory_order_release);
  cv_.notify_all();
  if (dispatcher_.joinable()) dispatcher_.join();
  std::lock_guard lock(mu_);
  queue_.clear();
  queued_bytes_ = 0;
}

bool KeyspaceEvents::Wants(std::string_view name) const {
  return (options_.classes & ClassOf(name)) != 0;
}

void KeyspaceEvents::OnWrite(const WriteRecord& record) {
  if (!started_.load(std::memory_order_acquire)) return;
  // The record names one event, or two in order ("set expire": SET with a TTL, as Redis).
  std::array<std::string_view, 2> names;
  size_t n = 0;
  auto add = [&](std::string_view name) {
    if (n < names.size() && Wants(name)) names[n++] = name;
  };
  const std::string_view event = record.event.empty() ? "set" : record.event;
  if (record.kind == WriteRecord::Kind::kDelete) {
    // A collection command that took the last element: "<command>" then "del", as Redis;
    // any other removal is a "del" (EXPIRE in the past, GETDEL, DEL).
    const Class cls = ClassOf(event);
    if (cls == kList || cls == kSet || cls == kHash) add(event);
    add("del");
  } else {
    const size_t space = event.find(' ');
    add(event.substr(0, space));
    if (space != std::string_view::npos) add(event.substr(space + 1));
  }
  if (n > 0) Enqueue(record.key, std::span(names.data(), n), record.version);
}

void KeyspaceEvents::OnRemoval(const Removal& removal) {
  if (!started_.load(std::memory_order_acquire)) return;
  const std::string_view name = removal.cause == RemovalCause::kExpired ? "expired" : "evicted";
  if (!Wants(name) || !is_primary_(removal.key)) return;
  Enqueue(removal.key, std::span(&name, 1), removal.version);
}

void KeyspaceEvents::Enqueue(std::string_view key, std::span<const std::string_view> names,
                             uint64_t version) {
  const size_t bytes = names.size() * (key.size() + kEventOverheadBytes);
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    if (queued_bytes_ + bytes > options_.max_queued_bytes) {
      dropped_pending_ += names.size();
      dropped_total_ += names.size();
    } else {
      for (const std::string_view name : names) {
        queue_.push_back(Event{std::string(key), name, version, dropped_pending_});
        dropped_pending_ = 0;
      }
      queued_bytes_ += bytes;
      queued_total_ += names.size();
    }
  }
  cv_.notify_one();
}

void KeyspaceEvents::Run() {
  using SteadyClock = std::chrono::steady_clock;
  const bool ticks = options_.tick_interval.count() > 0;
  // Each event is one message per channel kind: what a drop takes from the sequence.
  const uint64_t kinds =
      ((options_.classes & kKeyspace) != 0 ? 1 : 0) + ((options_.classes & kKeyevent) != 0 ? 1 : 0);
  SteadyClock::time_point next_tick = ticks ? SteadyClock::now() : SteadyClock::time_point::max();
  std::optional<SteadyClock::time_point> drain_until;  // Set once Stop was called.
  uint64_t tick = 0;
  std::deque<Event> batch;
  for (;;) {
    uint64_t dropped_after = 0;
    size_t batch_bytes = 0;
    bool tick_due = false;
    {
      std::unique_lock lock(mu_);
      cv_.wait_until(lock, next_tick,
                     [this] { return stopping_ || !queue_.empty() || dropped_pending_ > 0; });
      if (stopping_) {
        if (queue_.empty()) {
          if (dropped_pending_ > 0) sink_->Dropped(dropped_pending_ * kinds);
          return;
        }
        if (!drain_until) drain_until = SteadyClock::now() + kDrainTimeout;
      }
      batch.swap(queue_);
      batch_bytes = queued_bytes_;       // Still counted while the batch is handed over.
      dropped_after = dropped_pending_;  // After everything in the batch.
      dropped_pending_ = 0;
      // Decided with the batch: the tick covers exactly what was queued before it.
      tick_due = ticks && !stopping_ && SteadyClock::now() >= next_tick;
    }
    uint64_t cut = 0;  // Events not sent: Stop's drain ran out of time.
    for (Event& e : batch) {
      if (cut > 0 || (stop_requested_.load(std::memory_order_acquire) && drain_until &&
                      SteadyClock::now() > *drain_until)) {
        cut += 1 + e.dropped_before;
        continue;
      }
      if (e.dropped_before > 0) sink_->Dropped(e.dropped_before * kinds);
      const bool both = kinds == 2;
      if ((options_.classes & kKeyspace) != 0) {
        std::string channel;
        channel.reserve(kKeyspacePrefix.size() + e.key.size());
        channel.append(kKeyspacePrefix).append(e.key);
        sink_->Publish(std::move(channel), std::string(e.name), e.version);
      }
      if ((options_.classes & kKeyevent) != 0) {
        std::string channel;
        channel.reserve(kKeyeventPrefix.size() + e.name.size());
        channel.append(kKeyeventPrefix).append(e.name);
        sink_->Publish(std::move(channel), both ? e.key : std::move(e.key), e.version);
      }
    }
    batch.clear();
    if (dropped_after + cut > 0) sink_->Dropped((dropped_after + cut) * kinds);
    {
      std::lock_guard lock(mu_);
      queued_bytes_ -= std::min(queued_bytes_, batch_bytes);
      dropped_total_ += cut;
    }
    if (cut > 0) return;
    if (tick_due) {
      // After the batch it was decided with: a subscriber that has this tick has every
      // event this node queued before that batch was taken (or has seen a gap).
      sink_->Publish(std::string(kTickChannel), options_.node_id, ++tick);
      next_tick = SteadyClock::now() + options_.tick_interval;
    }
  }
}

KeyspaceEvents::Stats KeyspaceEvents::stats() const {
  std::lock_guard lock(mu_);
  return Stats{.queued = queued_total_, .dropped = dropped_total_, .queued_bytes = queued_bytes_};
}

}  // namespace ringcache::internal
