// ReplBacklog: the ordered, byte-bounded log of one replica link (primary side).
//
// Every write shipped to a replica gets the link's next sequence number (1, 2, ...) and a
// slot here. The sender streams slots in order; acked slots stay until the byte budget
// pushes them out, so that a replica that reconnects can resume after the last sequence
// number it applied, as long as the backlog still holds the one after it. The oldest slots
// are dropped first, acked or not: a replica further behind than the budget gets a full
// sync instead (docs/design/replication.md).
//
// Records are shared (std::shared_ptr<const WriteRecord>): one write to a key with several
// replicas builds its record once and appends it to each replica's backlog.
//
// Thread safety: not thread-safe; the owning link guards it with its mutex.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>

#include "ringcache/write_record.h"

namespace ringcache::internal {

// What a record (a write as the primary applied it: results, not commands) is charged in a
// backlog: key, value and a fixed overhead for the slot, the record and its allocations.
inline constexpr uint64_t kRecordOverheadBytes = 96;
inline uint64_t ChargedBytes(const WriteRecord& record) {
  return record.key.size() + record.value.size() + kRecordOverheadBytes;
}

class ReplBacklog {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  struct Slot {
    uint64_t seq = 0;
    std::shared_ptr<const WriteRecord> record;
    TimePoint appended;  // When the primary applied and appended it (lag is measured from it).
  };

  // REQUIRES: max_bytes > 0.
  explicit ReplBacklog(uint64_t max_bytes);

  // Appends `record` with the next sequence number and returns it. Then drops the oldest
  // slots while the backlog is over its budget; the slot just appended is always kept,
  // even if it alone exceeds the budget.
  uint64_t Append(std::shared_ptr<const WriteRecord> record, TimePoint now);

  // Highest sequence number assigned so far (0 before the first Append).
  uint64_t last_seq() const { return first_seq_ + slots_.size() - 1; }
  // Sequence number of the oldest slot held; last_seq() + 1 when empty.
  uint64_t first_seq() const { return first_seq_; }
  bool Holds(uint64_t seq) const { return seq >= first_seq_ && seq <= last_seq(); }
  // The slot of `seq`, or nullptr if it is not held. Valid until the next Append.
  const Slot* Find(uint64_t seq) const;

  uint64_t bytes() const { return bytes_; }
  uint64_t max_bytes() const { return max_bytes_; }
  size_t size() const { return slots_.size(); }
  // Slots dropped by the budget so far.
  uint64_t dropped() const { return dropped_; }

 private:
  const uint64_t max_bytes_;
  std::deque<Slot> slots_;
  uint64_t first_seq_ = 1;  // seq of slots_.front(), or the next seq when empty
  uint64_t bytes_ = 0;
  uint64_t dropped_ = 0;
};

}  // namespace ringcache::internal
