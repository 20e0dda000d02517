// Snapshots of a Cache: every live entry with its value, type, version and absolute
// expiry, written while the cache keeps serving (no fork, no pause), and loaded back into
// a cache at start (docs/design/persistence.md).
//
//   Result<SnapshotInfo> saved = WriteSnapshot(cache, "/var/lib/ringcache/snapshot.rcs");
//   Result<LoadInfo> loaded = LoadSnapshot(&cache, "/var/lib/ringcache/snapshot.rcs");
//
// Writing: shard by shard, each shard's entries copied out under the cache's read-side
// protection (no lock: writers proceed) and then written outside it, in checksummed
// blocks, to `path` + ".tmp", which is synced and renamed over `path` only when complete
// (with the directory synced): a crash mid-snapshot leaves the previous snapshot whole.
// An entry written while the snapshot runs may or may not be in it; one present for the
// whole snapshot is in it exactly as it was at some instant (never half-written).
//
// Loading: every entry whose block passes its checksum, in file order, with its exact
// version and deadline (Cache::ApplyReplicated: later writes get higher versions); what
// expired meanwhile is dropped. A damaged or truncated file loads what comes before the
// damage and says where it was (LoadInfo::damage); a file of an unknown format version
// is refused (FAILED_PRECONDITION naming both versions) before anything is loaded.
//
// Format (little-endian; docs/design/persistence.md): a 40-byte header ("RCSNAP\r\n",
// format version, creation time, the highest version issued, checksum), then blocks: kind,
// record count, payload length, payload checksum, header checksum, payload. Records: type,
// version, deadline, key length, value length, key, value. A final "end" block carries the
// totals: a file without it is incomplete.
//
// Versions never repeat across a load: the cache's floor goes to the epoch range above the
// snapshot's highest version (cluster_view.h's VersionFloor), so a write after a restart
// is above every version the previous run issued in that epoch, deleted keys' and lost
// writes' included.
//
// Thread safety: WriteSnapshot reads the cache concurrently with its other users;
// LoadSnapshot writes it (best before the cache serves). Env and Clock as given.
#pragma once

#include <cstdint>
#include <string>

#include "ringcache/cache.h"
#include "ringcache/env.h"
#include "ringcache/status.h"

namespace ringcache {

// The format this build writes and reads.
inline constexpr uint32_t kSnapshotFormatVersion = 1;

struct SnapshotInfo {
  uint64_t keys = 0;
  uint64_t bytes = 0;  // The file's size.
  double seconds = 0;  // Wall time to write it.
};

struct LoadInfo {
  uint64_t keys = 0;             // Entries stored in the cache.
  uint64_t expired = 0;          // Entries whose deadline had passed: dropped.
  uint64_t refused = 0;          // Entries the cache refused (over its limits or budget).
  uint64_t bytes = 0;            // Bytes of the file read and accepted.
  int64_t created_at_ms = 0;     // When the snapshot was started (Unix ms).
  uint64_t highest_version = 0;  // The highest version the snapshotted cache had issued.
  bool complete = false;         // The end block was reached and matched.
  std::string damage;            // Empty, or what was dropped and where.
  double seconds = 0;
};

struct SnapshotOptions {
  Env* env = nullptr;      // nullptr = Env::Default().
  Clock* clock = nullptr;  // nullptr = the system clock (creation time, expiry at load).
  // Payload bytes per block (a record larger than this gets a block of its own).
  uint32_t block_bytes = 1 << 20;
};

Result<SnapshotInfo> WriteSnapshot(const Cache& cache, const std::string& path,
                                   const SnapshotOptions& options = {});

// NOT_FOUND if there is no file at `path`; FAILED_PRECONDITION for a file that is not a
// snapshot or of another format version; otherwise OK with what was loaded (check
// LoadInfo::damage).
Result<LoadInfo> LoadSnapshot(Cache* cache, const std::string& path,
                              const SnapshotOptions& options = {});

}  // namespace ringcache
