#include "repl_backlog.h"

#include <cassert>
#include <utility>

namespace ringcache::internal {

ReplBacklog::ReplBacklog(uint64_t max_bytes) : max_bytes_(max_bytes) { assert(max_bytes > 0); }

uint64_t ReplBacklog::Append(std::shared_ptr<const WriteRecord> record, TimePoint now) {
  const uint64_t seq = last_seq() + 1;
  bytes_ += ChargedBytes(*record);
  slots_.push_back(Slot{seq, std::move(record), now});
  while (bytes_ > max_bytes_ && slots_.size() > 1) {
    bytes_ -= ChargedBytes(*slots_.front().record);
    slots_.pop_front();
    ++first_seq_;
    ++dropped_;
  }
  return seq;
}

const ReplBacklog::Slot* ReplBacklog::Find(uint64_t seq) const {
  if (!Holds(seq)) return nullptr;
  return &slots_[seq - first_seq_];
}

}  // namespace ringcache::internal
