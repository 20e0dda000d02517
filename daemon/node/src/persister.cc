#include "persister.h"

#include <algorithm>
#include <cstdio>
#include <utility>

#include "byte_size.h"

namespace ringcache::internal {

Persister::Persister(Options options, Cache* cache) : options_(std::move(options)), cache_(cache) {}

Persister::~Persister() { Stop(false); }

uint64_t Persister::Changes() const {
  const CacheStats s = cache_->Stats();
  return s.sets + s.deletes + s.expirations + s.evictions;
}

Status Persister::LoadAtStart(const NodeOptions& options) {
  auto log = [&](LogLevel level, const std::string& line) {
    if (options.log) options.log(level, line);
  };
  // As Membership decides: the node's own address among the seeds does not count.
  const std::string& own =
      options.advertise_address.empty() ? options.listen_address : options.advertise_address;
  const std::string& own_cluster = options.cluster_advertise_address.empty()
                                       ? options.cluster_listen_address
                                       : options.cluster_advertise_address;
  const bool joins =
      std::any_of(options.seeds.begin(), options.seeds.end(), [&](const std::string& seed) {
        return seed != own && (own_cluster.empty() || seed != own_cluster);
      });
  if (joins) {
    if (Status s =
            (options_.env != nullptr ? options_.env : Env::Default())->CreateDir(options.data_dir);
        !s.ok()) {
      return Status::InvalidArgument("data_dir cannot be used: " + s.message());
    }
    // Kept aside, not overwritten by this node's first snapshot.
    const std::string aside = SetAside("unused");
    log(LogLevel::kInfo,
        "--data-dir " + options.data_dir +
            ": joining through --seeds, so starting empty (the snapshot is loaded only by a "
            "node that starts without seeds)" +
            (aside.empty() ? std::string() : "; the snapshot there was moved to " + aside));
    return Status::Ok();
  }
  Result<LoadInfo> loaded = Load();
  if (loaded.status().code() == StatusCode::kNotFound) {
    log(LogLevel::kInfo, "no snapshot in " + options.data_dir + ": starting empty");
    return Status::Ok();
  }
  if (!loaded.ok()) {
    return Status::InvalidArgument("data_dir cannot be used: " + loaded.status().message());
  }
  char secs[32];
  std::snprintf(secs, sizeof(secs), "%.3f", loaded->seconds);
  log(LogLevel::kInfo,
      "loaded " + std::to_string(loaded->keys) + " keys from " + snapshot_path() + " in " + secs +
          " s (" + std::to_string(loaded->expired) + " expired meanwhile, dropped" +
          (loaded->refused > 0 ? "; " + std::to_string(loaded->refused) + " refused by the cache"
                               : std::string()) +
          ")");
  if (!loaded->damage.empty()) {
    // Kept aside for inspection: the next snapshot would replace it.
    const std::string aside = SetAside("damaged");
    log(LogLevel::kError, "the snapshot " + snapshot_path() + " is damaged: " + loaded->damage +
                              "; what came before was loaded" +
                              (aside.empty() ? std::string() : "; the file was moved to " + aside));
  }
  return Status::Ok();
}

void Persister::AddMetrics(metrics::MetricsRegistry* registry) {
  registry->AddCollector([this](metrics::Writer& w) {
    const Stats s = stats();
    w.Counter("ringcache_snapshots_total", "Snapshots written to --data-dir.", s.snapshots);
    w.Counter("ringcache_snapshot_failures_total",
              "Snapshots that failed (disk full, directory gone; the previous one stays).",
              s.failures);
    w.Gauge("ringcache_snapshot_last_success_timestamp_seconds",
            "When the last snapshot was written (Unix seconds; 0: none yet).",
            static_cast<double>(s.last_success_ms) / 1000.0);
    w.Gauge("ringcache_snapshot_last_duration_seconds", "How long the last snapshot took.",
            s.last_seconds);
    w.Gauge("ringcache_snapshot_last_keys", "Keys in the last snapshot.",
            static_cast<double>(s.last_keys));
    w.Gauge("ringcache_snapshot_last_bytes", "Size of the last snapshot file.",
            static_cast<double>(s.last_bytes));
    w.Gauge("ringcache_snapshot_loaded_keys", "Keys loaded from the snapshot at start.",
            static_cast<double>(s.loaded_keys));
    w.Gauge("ringcache_snapshot_loaded_expired",
            "Keys of the snapshot loaded at start that had expired meanwhile (dropped).",
            static_cast<double>(s.loaded_expired));
    w.Gauge("ringcache_snapshot_load_damaged",
            "1 if the snapshot loaded at start was damaged (what came before was loaded).",
            s.load_damaged ? 1.0 : 0.0);
  });
}

Result<LoadInfo> Persister::Load() {
  Env* env = options_.env != nullptr ? options_.env : Env::Default();
  if (Status s = env->CreateDir(options_.dir); !s.ok()) {
    return Status::Unavailable(s.message());
  }
  Result<LoadInfo> loaded =
      LoadSnapshot(cache_, snapshot_path(), {.env = options_.env, .clock = options_.clock});
  std::lock_guard lock(mu_);
  changes_at_last_ = Changes();
  if (loaded.ok()) {
    stats_.loaded_keys = loaded->keys;
    stats_.loaded_expired = loaded->expired;
    stats_.load_damaged = !loaded->damage.empty();
  }
  return loaded;
}

std::string Persister::SetAside(std::string_view why) {
  Env* env = options_.env != nullptr ? options_.env : Env::Default();
  if (!env->FileSize(snapshot_path()).ok()) return "";
  Clock* clock = options_.clock != nullptr ? options_.clock : Clock::System();
  const std::string aside =
      snapshot_path() + "." + std::string(why) + "-" + std::to_string(clock->NowMs());
  if (Status s = env->RenameFile(snapshot_path(), aside); !s.ok()) {
    if (options_.log)
      options_.log(LogLevel::kWarn, "cannot set the snapshot aside: " + s.message());
    return "";
  }
  return aside;
}

void Persister::Start() {
  {
    std::lock_guard lock(mu_);
    started_ = true;
  }
  thread_ = std::thread([this] { Run(); });
}

void Persister::Stop(bool final_snapshot) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::vector<std::function<void(Result<SnapshotInfo>)>> waiting;
  {
    std::lock_guard lock(mu_);
    waiting.swap(waiting_);
  }
  for (auto& done : waiting) done(Status::Unavailable("the node is shutting down"));
  uint64_t last = 0;
  {
    std::lock_guard lock(mu_);
    last = changes_at_last_;
  }
  if (final_snapshot && Changes() != last) (void)Write("at shutdown");
}

void Persister::SnapshotNow(std::function<void(Result<SnapshotInfo>)> done) {
  bool started = false;
  {
    std::lock_guard lock(mu_);
    started = started_;
    if (started && !stopping_) {
      waiting_.push_back(std::move(done));
      cv_.notify_all();
      return;
    }
  }
  done(Status::Unavailable(started ? "the node is shutting down"
                                   : "the node is still starting: try again once it serves"));
}

Result<SnapshotInfo> Persister::Write(std::string_view why) {
  const uint64_t changes = Changes();
  Result<SnapshotInfo> r =
      WriteSnapshot(*cache_, snapshot_path(), {.env = options_.env, .clock = options_.clock});
  Clock* clock = options_.clock != nullptr ? options_.clock : Clock::System();
  {
    std::lock_guard lock(mu_);
    if (r.ok()) {
      ++stats_.snapshots;
      stats_.last_success_ms = clock->NowMs();
      stats_.last_seconds = r->seconds;
      stats_.last_keys = r->keys;
      stats_.last_bytes = r->bytes;
      stats_.last_error.clear();
      changes_at_last_ = changes;
    } else {
      ++stats_.failures;
      stats_.last_error = r.status().message();
    }
  }
  if (options_.log) {
    if (r.ok()) {
      char secs[32];
      std::snprintf(secs, sizeof(secs), "%.2f", r->seconds);
      options_.log(LogLevel::kInfo, "snapshot " + std::string(why) + ": " +
                                        std::to_string(r->keys) + " keys, " + FormatMib(r->bytes) +
                                        " in " + secs + " s to " + snapshot_path());
    } else {
      options_.log(LogLevel::kError,
                   "snapshot " + std::string(why) + " failed: " + r.status().ToString() +
                       "; the node keeps serving from memory and the previous snapshot stays");
    }
  }
  return r;
}

void Persister::Run() {
  auto next = std::chrono::steady_clock::now() + options_.interval;
  std::unique_lock lock(mu_);
  while (!stopping_) {
    cv_.wait_until(lock, next, [this] { return stopping_ || !waiting_.empty(); });
    if (stopping_) break;
    std::vector<std::function<void(Result<SnapshotInfo>)>> waiting;
    waiting.swap(waiting_);
    const bool due = std::chrono::steady_clock::now() >= next;
    const uint64_t last = changes_at_last_;
    lock.unlock();
    if (!waiting.empty()) {
      const Result<SnapshotInfo> r = Write("on demand");
      for (auto& done : waiting) done(r);
    } else if (due && Changes() - last >= options_.min_changes) {
      (void)Write("every " + std::to_string(options_.interval.count()) + " s");
    }
    if (due) next = std::chrono::steady_clock::now() + options_.interval;
    lock.lock();
  }
}

Persister::Stats Persister::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace ringcache::internal
