// Persister: a node's snapshots in its --data-dir (docs/design/persistence.md): the load
// at start, a snapshot every --snapshot-interval-s when at least --snapshot-min-changes
// keys changed, one on demand (the Snapshot rpc, ringcache-cli snapshot) and one at a
// graceful shutdown. Snapshots run on the persister's own thread while the node serves.
//
//   Persister p({.dir = "/var/lib/ringcache", .interval = 300s, .min_changes = 1}, &cache);
//   Result<LoadInfo> loaded = p.Load();   // before the node serves
//   p.Start();
//   p.SnapshotNow([](Result<SnapshotInfo> r) {...});
//   p.Stop(/*final_snapshot=*/true);
//
// A failed snapshot (disk full, directory gone) is logged and counted; the node keeps
// serving from memory and the previous snapshot stays whole; the next is tried at the
// next interval.
//
// Thread safety: Load before Start; SnapshotNow and stats from any thread; Stop once.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "ringcache/cache.h"
#include "ringcache/metrics/metrics.h"
#include "ringcache/node/node.h"
#include "ringcache/snapshot.h"

namespace ringcache::internal {

class Persister {
 public:
  struct Options {
    std::string dir;
    std::chrono::seconds interval{300};
    uint64_t min_changes = 1;
    Env* env = nullptr;      // nullptr = Env::Default().
    Clock* clock = nullptr;  // nullptr = the system clock.
    std::function<void(LogLevel, std::string_view)> log = nullptr;
  };

  struct Stats {
    uint64_t snapshots = 0;  // Written.
    uint64_t failures = 0;
    int64_t last_success_ms = 0;  // Unix ms; 0 = none yet.
    double last_seconds = 0;
    uint64_t last_keys = 0;
    uint64_t last_bytes = 0;
    std::string last_error;  // Of the last failure, if the last attempt failed.
    // The load at start.
    uint64_t loaded_keys = 0;
    uint64_t loaded_expired = 0;
    bool load_damaged = false;
  };

  Persister(Options options, Cache* cache);
  ~Persister();  // Stop(false).

  std::string snapshot_path() const { return options_.dir + "/snapshot.rcs"; }

  // The load rule at a node's start (docs/design/persistence.md): a node that bootstraps
  // its own cluster (no --seeds but its own address, as Membership decides) loads the
  // snapshot; one that joins through seeds starts empty and sets the file aside ("unused"),
  // as it does a damaged one after loading what came before the damage. Logs what it did.
  // INVALID_ARGUMENT naming data_dir for a directory that cannot be used or a file this
  // build cannot read (the node does not start).
  Status LoadAtStart(const NodeOptions& options);
  // The ringcache_snapshot_* metrics. The registry must not outlive this.
  void AddMetrics(metrics::MetricsRegistry* registry);

  // Creates the directory if needed and loads the snapshot in it, if any (NOT_FOUND: none).
  // FAILED_PRECONDITION for a file this build cannot read; UNAVAILABLE for a directory
  // that cannot be created or read.
  Result<LoadInfo> Load();
  // Renames the snapshot to snapshot.rcs.<why>-<Unix ms> so that the next snapshot does not
  // replace it; returns the new path ("" if there was none, or it could not be moved).
  std::string SetAside(std::string_view why);
  void Start();
  // Ends the thread; with `final_snapshot`, writes one first if anything changed since
  // the last (a graceful shutdown).
  void Stop(bool final_snapshot);
  // A snapshot now (after the one running, if any); `done` is called with its outcome on
  // the persister's thread, or at once with UNAVAILABLE before Start (the node is still
  // joining) or once stopped (on the caller's thread, or on Stop's).
  void SnapshotNow(std::function<void(Result<SnapshotInfo>)> done);

  Stats stats() const;

 private:
  uint64_t Changes() const;
  Result<SnapshotInfo> Write(std::string_view why);
  void Run();

  const Options options_;
  Cache* const cache_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  // Protected by mu_.
  bool stopping_ = false;
  bool started_ = false;
  std::vector<std::function<void(Result<SnapshotInfo>)>> waiting_;
  Stats stats_;
  uint64_t changes_at_last_ = 0;
  std::thread thread_;
};

}  // namespace ringcache::internal
