#include "near_cache.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "ringcache/glob.h"

namespace ringcache::client::internal {

namespace {

// A local entry's value: a tag byte, then for an item the remote version (8 bytes, little
// end first) and the value. A placeholder is the tag alone.
constexpr char kPlaceholder = 'p';
constexpr char kItem = 'i';
constexpr size_t kHeaderBytes = 1 + 8;
// A placeholder left by a read that never completed goes by itself after this long.
constexpr int64_t kPlaceholderTtlMs = 60'000;

std::string Encode(uint64_t version, std::string_view value) {
  std::string out;
  out.reserve(kHeaderBytes + value.size());
  out.push_back(kItem);
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((version >> (8 * i)) & 0xff));
  out.append(value);
  return out;
}

uint64_t DecodeVersion(std::string_view stored) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) {
    v |= uint64_t{static_cast<unsigned char>(stored[1 + i])} << (8 * i);
  }
  return v;
}

// Milliseconds of a monotonic clock: silences are measured on it, so that a step of the
// wall clock does not stretch or cut them.
Clock* SteadyMsClock() {
  class Steady final : public Clock {
   public:
    int64_t NowMs() const override {
      return std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::steady_clock::now().time_since_epoch())
          .count();
    }
  };
  static Steady* const clock = new Steady();
  return clock;
}

}  // namespace

Result<std::unique_ptr<NearCache>> NearCache::Create(const NearCacheOptions& options) {
  Result<std::unique_ptr<Cache>> cache =
      Cache::Create({.capacity_bytes = options.capacity_bytes, .clock = options.clock});
  if (!cache.ok()) {
    return Status::InvalidArgument("Options.near_cache: " + cache.status().message());
  }
  return std::unique_ptr<NearCache>(new NearCache(options, std::move(cache).value()));
}

NearCache::NearCache(const NearCacheOptions& options, std::unique_ptr<Cache> cache)
    : pattern_(options.key_pattern),
      configured_silence_(options.max_silence),
      clock_(options.clock != nullptr ? options.clock : Clock::System()),
      silence_clock_(options.clock != nullptr ? options.clock : SteadyMsClock()),
      cache_(std::move(cache)) {}

bool NearCache::Covers(std::string_view key) const { return GlobMatch(pattern_, key); }

std::optional<Item> NearCache::Lookup(std::string_view key) {
  if (!Trusted(silence_clock_->NowMs())) {
    {
      // Checked again under the lock, where trust changes: a Tick that restores trust
      // meanwhile has dropped what was held already.
      ringcache::internal::MutexLock lock(&mu_);
      if (!Trusted(silence_clock_->NowMs()) && !dropped_since_trusted_) {
        dropped_since_trusted_ = true;
        DropAll();
      }
    }
    untrusted_.fetch_add(1, std::memory_order_relaxed);
    misses_.fetch_add(1, std::memory_order_relaxed);
    return std::nullopt;
  }
  std::string stored;
  ItemMeta meta;
  if (!cache_->Get(key, &stored, &meta).ok() || stored.size() < kHeaderBytes ||
      stored[0] != kItem) {
    misses_.fetch_add(1, std::memory_order_relaxed);
    return std::nullopt;
  }
  hits_.fetch_add(1, std::memory_order_relaxed);
  Item item;
  item.meta = ItemMeta{DecodeVersion(stored), meta.deadline_ms, ValueType::kString};
  stored.erase(0, kHeaderBytes);
  item.value = std::move(stored);
  return item;
}

uint64_t NearCache::BeginFill(std::string_view key) {
  if (!Trusted(silence_clock_->NowMs())) return 0;
  const int64_t now = clock_->NowMs();
  uint64_t token = 0;
  Result<UpdateResult> r = cache_->Update(
      key,
      [&](const ItemView* current, Mutation* m) {
        token = 0;
        if (current != nullptr && !current->value.empty() && current->value[0] == kItem) {
          return Status::Ok();  // Filled meanwhile: leave it.
        }
        if (current != nullptr) {  // Another read's placeholder: share it.
          token = current->meta.version;
          return Status::Ok();
        }
        m->kind = Mutation::Kind::kSet;
        m->value.assign(1, kPlaceholder);
        m->deadline_ms = now + kPlaceholderTtlMs;
        return Status::Ok();
      },
      nullptr, std::nullopt);
  if (!r.ok()) return 0;
  return token != 0 ? token : (r->existed ? 0 : r->after.version);
}

void NearCache::CompleteFill(std::string_view key, uint64_t token, const Item& item) {
  if (token == 0) return;
  if (!Trusted(silence_clock_->NowMs())) return;
  const int64_t now = clock_->NowMs();
  if (item.meta.deadline_ms != 0 && item.meta.deadline_ms <= now) return;
  bool stored = false;
  (void)cache_->Update(
      key,
      [&](const ItemView* current, Mutation* m) {
        // Only over the placeholder this read put (or shared): anything else means the
        // key was dropped since, and the value read may be older than the change.
        if (current == nullptr || current->meta.version != token || current->value.empty() ||
            current->value[0] != kPlaceholder) {
          return Status::Ok();
        }
        m->kind = Mutation::Kind::kSet;
        m->value = Encode(item.meta.version, item.value);
        m->deadline_ms = item.meta.deadline_ms;
        stored = true;
        return Status::Ok();
      },
      nullptr, std::nullopt);
  if (stored) fills_.fetch_add(1, std::memory_order_relaxed);
}

void NearCache::Invalidate(std::string_view key) {
  if (cache_->Delete(key).ok()) invalidations_.fetch_add(1, std::memory_order_relaxed);
}

void NearCache::DropAll() {
  cache_->Clear();
  resets_.fetch_add(1, std::memory_order_relaxed);
}

void NearCache::Distrust() {
  ringcache::internal::MutexLock lock(&mu_);
  last_tick_ms_.clear();
  required_.clear();
  trusted_until_ms_.store(0, std::memory_order_release);
  dropped_since_trusted_ = true;
  DropAll();
}

void NearCache::StreamStarted(std::chrono::milliseconds heartbeat) {
  {
    ringcache::internal::MutexLock lock(&mu_);
    max_silence_ms_ = configured_silence_.count() > 0 ? configured_silence_.count()
                                                      : 3 * std::max<int64_t>(heartbeat.count(), 1);
  }
  Distrust();
}

void NearCache::StreamBroken() { Distrust(); }

void NearCache::Gap() { DropAll(); }

void NearCache::Tick(std::string_view origin, uint64_t number,
                     std::span<const std::string> members) {
  // Only a member's relay carries a number: a client's publish on the tick channel has
  // none and cannot keep a silent member trusted.
  if (number == 0) return;
  const int64_t now = silence_clock_->NowMs();
  ringcache::internal::MutexLock lock(&mu_);
  auto it = last_tick_ms_.find(origin);
  if (it == last_tick_ms_.end()) {
    last_tick_ms_.emplace(std::string(origin), now);
  } else {
    it->second = now;
  }
  // A member that left the set (declared failed, or gone from the view) may have taken
  // events with it that no gap will ever show: drop everything.
  bool left = false;
  for (const std::string& m : required_) {
    left = left || std::find(members.begin(), members.end(), m) == members.end();
  }
  if (left) DropAll();
  required_.assign(members.begin(), members.end());
  // Ticks of origins that are not members (yet: a view this client has not adopted) are
  // kept, but not without bound.
  if (last_tick_ms_.size() > 2 * members.size() + 8) {
    std::erase_if(last_tick_ms_, [&](const auto& entry) {
      return std::find(members.begin(), members.end(), entry.first) == members.end();
    });
  }
  // Trusted until the first member's silence passes the bound; not at all while a member
  // has not ticked on this stream.
  int64_t until = members.empty() ? 0 : INT64_MAX;
  for (const std::string& m : members) {
    auto t = last_tick_ms_.find(m);
    if (t == last_tick_ms_.end()) {
      until = 0;
      break;
    }
    until = std::min(until, t->second + max_silence_ms_);
  }
  const int64_t before = trusted_until_ms_.load(std::memory_order_acquire);
  if (until > now && before <= now) {
    // Trust regained after a lapse (a silence): what was held from before it goes, unless
    // a Lookup dropped it during the lapse; a later lapse drops everything again.
    if (!dropped_since_trusted_) DropAll();
    dropped_since_trusted_ = false;
  }
  trusted_until_ms_.store(until, std::memory_order_release);
}

NearCacheStats NearCache::stats() const {
  return NearCacheStats{.hits = hits_.load(std::memory_order_relaxed),
                        .misses = misses_.load(std::memory_order_relaxed),
                        .untrusted = untrusted_.load(std::memory_order_relaxed),
                        .fills = fills_.load(std::memory_order_relaxed),
                        .invalidations = invalidations_.load(std::memory_order_relaxed),
                        .resets = resets_.load(std::memory_order_relaxed),
                        .bytes = cache_->Stats().bytes_used};
}

}  // namespace ringcache::client::internal
