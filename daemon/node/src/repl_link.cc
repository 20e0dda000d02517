#include "repl_link.h"

#include <algorithm>
#include <cstdio>
#include <random>
#include <utility>

#include "ringcache/v1/cluster.grpc.pb.h"

namespace ringcache::internal {
namespace {

using Ms = std::chrono::milliseconds;

v1::EntryKind ToProto(WriteRecord::Kind kind) {
  switch (kind) {
    case WriteRecord::Kind::kSet:
      return v1::ENTRY_KIND_SET;
    case WriteRecord::Kind::kDelete:
      return v1::ENTRY_KIND_DELETE;
    case WriteRecord::Kind::kTouch:
      return v1::ENTRY_KIND_TOUCH;
  }
  return v1::ENTRY_KIND_SET;
}

int64_t ElapsedMs(std::chrono::steady_clock::time_point since,
                  std::chrono::steady_clock::time_point now) {
  return std::chrono::duration_cast<Ms>(now - since).count();
}

std::string Percent(double fraction) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f%%", fraction * 100);
  return buf;
}

}  // namespace

const char* ReplLink::StateName(State s) {
  switch (s) {
    case State::kConnecting:
      return "connecting";
    case State::kFullSync:
      return "full_sync";
    case State::kStreaming:
      return "streaming";
    case State::kDisconnected:
      return "disconnected";
  }
  return "disconnected";
}

ReplLink::ReplLink(ReplLinkOptions options, Cache* cache, PeerPool* peers, ReplWaiters* waiters)
    : options_(std::move(options)),
      cache_(cache),
      peers_(peers),
      waiters_(waiters),
      backlog_(std::max<uint64_t>(options_.backlog_bytes, 1)) {}

ReplLink::~ReplLink() {
  Stop();
  Join();
}

void ReplLink::Log(LogLevel level, const std::string& message) const {
  if (options_.log) options_.log(level, message);
}

void ReplLink::SetRoute(const std::string& address, ReplRangeSet ranges, uint64_t epoch) {
  std::shared_ptr<grpc::ClientContext> cancel;
  {
    std::lock_guard lock(mu_);
    epoch_ = epoch;
    if (ranges.ranges() != ranges_.ranges()) {
      // Only lost ranges: the replica holds the rest already, no sync needed.
      const bool covered = ranges_.Covers(ranges);
      ranges_ = std::move(ranges);
      if (!covered) {
        need_full_sync_ = true;
        ++ranges_gen_;
        flush_to_ = backlog_.last_seq();
      }
    }
    if (address != address_) {
      if (!address_.empty()) cancel = ctx_;
      address_ = address;
      address_changed_ = true;  // Ends a backoff wait: the new address may answer.
    }
  }
  if (cancel != nullptr) cancel->TryCancel();
  cv_.notify_all();
}

void ReplLink::ForceFullSync() {
  {
    std::lock_guard lock(mu_);
    need_full_sync_ = true;
    ++ranges_gen_;
    flush_to_ = backlog_.last_seq();
  }
  cv_.notify_all();
}

void ReplLink::Start() {
  driver_ = std::thread([this] { Run(); });
}

void ReplLink::Stop() {
  std::shared_ptr<grpc::ClientContext> cancel;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    cancel = ctx_;
  }
  if (cancel != nullptr) cancel->TryCancel();
  cv_.notify_all();
}

void ReplLink::Retire() {
  std::lock_guard lock(mu_);
  retiring_ = true;
}

bool ReplLink::Revive() {
  std::lock_guard lock(mu_);
  if (stopping_) return false;
  retiring_ = false;
  return true;
}

bool ReplLink::Stopped() const {
  std::lock_guard lock(mu_);
  return stopping_;
}

void ReplLink::Join() {
  if (driver_.joinable()) driver_.join();
}

uint64_t ReplLink::Append(std::shared_ptr<const WriteRecord> record) {
  uint64_t seq;
  {
    std::lock_guard lock(mu_);
    seq = backlog_.Append(std::move(record), std::chrono::steady_clock::now());
  }
  cv_.notify_all();
  return seq;
}

uint64_t ReplLink::LastSeq() const {
  std::lock_guard lock(mu_);
  return backlog_.last_seq();
}

void ReplLink::SetAckHistogram(metrics::Histogram* histogram) {
  ack_histogram_.store(histogram, std::memory_order_release);
}

void ReplLink::CheckTimeout(TimePoint now) {
  std::shared_ptr<grpc::ClientContext> cancel;
  int64_t waited = 0;
  State state;
  bool repeat = false;
  {
    std::lock_guard lock(mu_);
    if (ctx_ == nullptr || broken_ || sent_msgs_ <= acked_msgs_) return;
    if (now - waiting_since_ <= options_.ack_timeout) return;
    cancel = ctx_;
    waited = ElapsedMs(waiting_since_, now);
    state = state_;
    waiting_since_ = now;  // Once per timeout.
    repeat = timeout_logged_;
    timeout_logged_ = true;
  }
  // While the replica stays unresponsive every reconnect times out again: one warning
  // per streak (until a hello is answered), the repeats at debug level.
  Log(repeat ? LogLevel::kDebug : LogLevel::kWarn,
      "replication link to " + options_.replica_id + ": no ack for " + std::to_string(waited) +
          " ms (" + StateName(state) + ", ack timeout " +
          std::to_string(options_.ack_timeout.count()) + " ms); reconnecting");
  cancel->TryCancel();
}

ReplicaLinkStats ReplLink::Stats() const {
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(mu_);
  ReplicaLinkStats s;
  s.replica_id = options_.replica_id;
  s.address = address_;
  s.state = StateName(state_);
  s.last_seq = backlog_.last_seq();
  s.acked_seq = acked_seq_;
  if (s.last_seq > s.acked_seq) {
    s.lag_ops = s.last_seq - s.acked_seq;
    const ReplBacklog::Slot* oldest =
        backlog_.Find(std::max(s.acked_seq + 1, backlog_.first_seq()));
    if (oldest != nullptr)
      s.lag_ms = static_cast<uint64_t>(std::max<int64_t>(0, ElapsedMs(oldest->appended, now)));
  }
  s.backlog_bytes = backlog_.bytes();
  s.resumes = resumes_;
  s.full_syncs = full_syncs_;
  s.sync_keys_sent = sync_keys_sent_;
  s.sync_bytes_sent = sync_bytes_sent_;
  return s;
}

ReplLink::SyncStatus ReplLink::Sync() const {
  std::lock_guard lock(mu_);
  SyncStatus s;
  s.ranges_synced = synced_gen_ == ranges_gen_;
  s.in_sync = s.ranges_synced && state_ == State::kStreaming && !need_full_sync_;
  s.sync_running = syncing_ && sync_gen_ == ranges_gen_ && !need_full_sync_;
  s.shards_copied = s.sync_running ? shards_copied_ : 0;
  s.snapshot_keys_sent = total_sync_keys_sent_;
  s.snapshot_bytes_sent = total_sync_bytes_sent_;
  s.share = ranges_.Share();
  return s;
}

bool ReplLink::Drained() const {
  std::lock_guard lock(mu_);
  const uint64_t last = backlog_.last_seq();
  if (last == 0) return true;
  return acked_seq_ >= last && !syncing_ && !need_full_sync_ && !broken_ && hello_.received;
}

void ReplLink::Run() {
  std::mt19937_64 rng(
      options_.link_id * 0x9e3779b97f4a7c15ULL ^
      static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()));
  Ms backoff = options_.backoff_initial;
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
    }
    const grpc::Status status = RunStream();
    std::unique_lock lock(mu_);
    state_ = State::kDisconnected;
    if (stopping_) return;
    // The replica answered: the next try waits the least backoff, also after a full sync
    // it refused (ABORTED: its view is newer than the sync's, and this node catches up
    // within moments; a growing backoff would hold the replica's copy, and writes waiting
    // for its acks, back for seconds).
    if (hello_.received) backoff = options_.backoff_initial;
    // ABORTED or FAILED_PRECONDITION after the hello: the replica refused what it got.
    const grpc::StatusCode code = status.error_code();
    const bool refused = hello_.received && (code == grpc::StatusCode::ABORTED ||
                                             code == grpc::StatusCode::FAILED_PRECONDITION);
    const std::string error = std::to_string(status.error_code()) + " " + status.error_message();
    if (error != last_error_) {
      last_error_ = error;
      const bool aborted = refused && code == grpc::StatusCode::ABORTED;
      lock.unlock();
      Log(aborted ? LogLevel::kInfo : LogLevel::kWarn,
          "replication link to " + options_.replica_id +
              (refused ? " ended by the replica (" : " is down (") +
              std::string(StatusCodeName(static_cast<StatusCode>(status.error_code()))) + ": " +
              status.error_message() + "); reconnecting");
      lock.lock();
    }
    const Ms wait = backoff / 2 + Ms(rng() % static_cast<uint64_t>(backoff.count() / 2 + 1));
    cv_.wait_for(lock, wait, [this] { return stopping_ || address_changed_; });
    if (address_changed_) backoff = options_.backoff_initial;
    backoff = std::min(backoff * 2, options_.backoff_max);
  }
}

bool ReplLink::Send(Stream* stream, const v1::ReplicationMessage& msg) {
  {
    std::lock_guard lock(mu_);
    if (sent_msgs_ <= acked_msgs_) waiting_since_ = std::chrono::steady_clock::now();
    ++sent_msgs_;
  }
  return stream->Write(msg);
}

grpc::Status ReplLink::RunStream() {
  auto ctx = std::make_shared<grpc::ClientContext>();
  // Do not block in Replicate() until the replica answers: the metadata goes with the
  // hello, whose ack the watchdog bounds.
  ctx->set_initial_metadata_corked(true);
  std::string address;
  uint64_t epoch;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return grpc::Status(grpc::StatusCode::CANCELLED, "stopping");
    if (address_.empty()) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "no address");
    address = address_;
    address_changed_ = false;
    epoch = epoch_;
    ctx_ = ctx;
    broken_ = false;
    hello_ = {};
    sent_msgs_ = 0;
    acked_msgs_ = 0;
    syncing_ = false;
    sync_sending_ = false;
    sync_end_msg_ = 0;
    can_flush_ = false;
    state_ = State::kConnecting;
  }
  std::unique_ptr<Stream> stream = peers_->ReplicationStub(address)->Replicate(ctx.get());
  std::thread reader([this, s = stream.get()] { ReadAcks(s); });

  grpc::Status local = grpc::Status::OK;  // Why we ended the stream ourselves, if we did.
  [&] {
    v1::ReplicationMessage msg;
    v1::ReplicationHello* hello = msg.mutable_hello();
    hello->set_primary_id(options_.self_id);
    hello->set_replication_id(options_.replication_id);
    hello->set_replica_id(options_.replica_id);
    hello->set_epoch(epoch);
    if (!Send(stream.get(), msg)) return;

    // Resume or full sync.
    uint64_t report = 0;
    std::string event;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return hello_.received || broken_ || stopping_; });
      if (!hello_.received) return;
      const uint64_t last = backlog_.last_seq();
      const uint64_t r = hello_.resume_seq;
      if (!need_full_sync_ && hello_.resumable && r <= last &&
          (r == last || backlog_.Holds(r + 1))) {
        next_send_ = r + 1;
        live_from_ = r + 1;
        acked_seq_ = std::max(acked_seq_, r);
        ++resumes_;
        state_ = State::kStreaming;
        can_flush_ = true;
        report = acked_seq_;
        event = "resumed after seq " + std::to_string(r) + " (" + std::to_string(last - r) +
                " entries to resend)";
      } else {
        event = !hello_.resumable ? "replica has no usable copy"
                : need_full_sync_ ? "ranges changed"
                                  : "backlog no longer holds seq " + std::to_string(r + 1);
        // A replica without a usable copy (restarted, reset) no longer holds what an
        // earlier sync gave it.
        if (!hello_.resumable) synced_gen_ = 0;
        need_full_sync_ = true;
      }
    }
    Log(LogLevel::kInfo,
        "replication link to " + options_.replica_id + " (" + address + ") connected: " + event);
    {
      std::lock_guard lock(mu_);
      last_error_.clear();
    }
    if (report != 0) waiters_->OnAck(options_.link_id, report);

    // Stream until the stream breaks or the link stops.
    auto sync_started = std::chrono::steady_clock::now();
    for (;;) {
      enum class What { kBeginSync, kLive, kSnapshot, kCopy, kEndSync } what;
      v1::ReplicationMessage out;
      std::vector<std::pair<uint64_t, std::shared_ptr<const WriteRecord>>> live;
      uint64_t skip_from = 0;  // Live seqs [skip_from, skip_to) a full sync replaces.
      uint64_t skip_to = 0;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [this] {
          return stopping_ || broken_ || need_full_sync_ || next_send_ <= backlog_.last_seq() ||
                 sync_sending_;
        });
        if (stopping_ || broken_) return;
        if (!need_full_sync_ && next_send_ < backlog_.first_seq()) {
          need_full_sync_ = true;
          lock.unlock();
          Log(LogLevel::kWarn, "replication link to " + options_.replica_id +
                                   ": the replica fell more than the backlog (" +
                                   std::to_string(backlog_.max_bytes()) +
                                   " bytes) behind; starting a full sync");
          lock.lock();
        }
        // Entries appended before a route change go out before the sync it causes (the
        // replica applies them live), so writes for ranges the link loses are not lost.
        const bool flush = need_full_sync_ && can_flush_ && next_send_ <= flush_to_ &&
                           next_send_ >= backlog_.first_seq() && next_send_ <= backlog_.last_seq();
        if (need_full_sync_ && !flush && retiring_) {
          // A retiring link only delivers what was appended; it never (re)syncs its old
          // ranges: their new owner may be primary of them by now, and a FullSyncBegin
          // would make it drop what it took since. Stop instead (the drain gives up). A
          // view that needs this replica again replaces the stopped link (Revive()).
          stopping_ = true;
          const char* why = !hello_.resumable ? "the replica has no usable copy"
                                              : "its stream broke during a sync, or the "
                                                "replica fell behind the backlog";
          lock.unlock();
          Log(LogLevel::kInfo, "replication link to " + options_.replica_id +
                                   " stopped while draining: it would need a full sync (" + why +
                                   "); a view that needs " + options_.replica_id +
                                   " again opens a new link");
          return;
        }
        if (need_full_sync_ && !flush) {
          need_full_sync_ = false;
          const uint64_t next = backlog_.last_seq() + 1;
          v1::FullSyncBegin* b = out.mutable_sync_begin();
          for (const HashRange& r : ranges_.ranges()) {
            v1::HashRange* pr = b->add_ranges();
            pr->set_start(r.start);
            pr->set_end(r.end);
          }
          b->set_next_seq(next);
          b->set_epoch(epoch_);
          skip_from = next_send_;
          skip_to = next;
          next_send_ = next;
          live_from_ = next;
          syncing_ = true;
          sync_sending_ = true;
          sync_end_msg_ = 0;
          ++full_syncs_;
          sync_keys_sent_ = 0;
          sync_bytes_sent_ = 0;
          state_ = State::kFullSync;
          sync_ranges_ = ranges_;
          sync_gen_ = ranges_gen_;
          synced_gen_ = 0;  // No complete copy on the replica until the sync's end.
          shards_copied_ = 0;
          can_flush_ = true;  // The replica applies entries from `next` on live.
          snapshot_.clear();
          snapshot_pos_ = 0;
          sync_shard_ = 0;
          what = What::kBeginSync;
        } else if (next_send_ <= backlog_.last_seq()) {
          uint64_t bytes = 0;
          while (next_send_ <= backlog_.last_seq() &&
                 live.size() < static_cast<size_t>(kMaxBatchEntries)) {
            const ReplBacklog::Slot* slot = backlog_.Find(next_send_);
            const uint64_t b = slot->record->key.size() + slot->record->value.size();
            if (!live.empty() && bytes + b > kMaxBatchBytes) break;
            bytes += b;
            live.emplace_back(next_send_, slot->record);
            ++next_send_;
          }
          what = What::kLive;
        } else if (snapshot_pos_ < snapshot_.size()) {
          what = What::kSnapshot;
        } else if (sync_shard_ < cache_->shard_count()) {
          what = What::kCopy;
        } else {
          v1::FullSyncEnd* e = out.mutable_sync_end();
          e->set_keys(sync_keys_sent_);
          e->set_bytes(sync_bytes_sent_);
          sync_sending_ = false;
          sync_end_msg_ = sent_msgs_ + 1;
          what = What::kEndSync;
        }
      }
      // Outside mu_: completing a wait runs its callback.
      if (skip_to > skip_from) waiters_->Skip(options_.link_id, skip_from, skip_to);
      switch (what) {
        case What::kBeginSync:
          sync_started = std::chrono::steady_clock::now();
          Log(LogLevel::kInfo, "full sync to " + options_.replica_id +
                                   " started: " + std::to_string(sync_ranges_.ranges().size()) +
                                   " ranges, " + Percent(sync_ranges_.Share()) +
                                   " of the ring, live writes from seq " +
                                   std::to_string(out.sync_begin().next_seq()));
          if (!Send(stream.get(), out)) return;
          break;
        case What::kLive: {
          v1::ReplicationBatch* batch = out.mutable_batch();
          batch->mutable_entries()->Reserve(static_cast<int>(live.size()));
          for (const auto& [seq, rec] : live) {
            v1::ReplicatedEntry* e = batch->add_entries();
            e->set_seq(seq);
            e->set_kind(ToProto(rec->kind));
            e->set_key(rec->key);
            e->set_value(rec->value);
            e->set_version(rec->version);
            e->set_expires_at_ms(rec->expires_at_ms);
            e->set_value_type(static_cast<uint32_t>(rec->type));
          }
          live.clear();
          if (!Send(stream.get(), out)) return;
          break;
        }
        case What::kCopy: {
          CopyShard(sync_shard_++);
          std::lock_guard lock(mu_);
          shards_copied_ = sync_shard_;
          break;
        }
        case What::kSnapshot: {
          v1::ReplicationBatch* batch = out.mutable_batch();
          uint64_t bytes = 0;
          uint64_t keys = 0;
          while (snapshot_pos_ < snapshot_.size() && keys < kMaxBatchEntries) {
            SnapshotItem& item = snapshot_[snapshot_pos_];
            const uint64_t b = item.key.size() + item.value.size();
            if (keys > 0 && bytes + b > kMaxBatchBytes) break;
            v1::ReplicatedEntry* e = batch->add_entries();
            e->set_seq(0);
            e->set_kind(v1::ENTRY_KIND_SET);
            e->set_key(std::move(item.key));
            e->set_value(std::move(item.value));
            e->set_version(item.version);
            e->set_expires_at_ms(item.expires_at_ms);
            e->set_value_type(static_cast<uint32_t>(item.type));
            bytes += b;
            ++keys;
            ++snapshot_pos_;
          }
          if (snapshot_pos_ == snapshot_.size()) {
            std::vector<SnapshotItem>().swap(snapshot_);  // Free the shard's copy.
            snapshot_pos_ = 0;
          }
          {
            std::lock_guard lock(mu_);
            sync_keys_sent_ += keys;
            sync_bytes_sent_ += bytes;
            total_sync_keys_sent_ += keys;
            total_sync_bytes_sent_ += bytes;
          }
          if (!Send(stream.get(), out)) return;
          break;
        }
        case What::kEndSync: {
          const int64_t ms = ElapsedMs(sync_started, std::chrono::steady_clock::now());
          Log(LogLevel::kInfo, "full sync to " + options_.replica_id + ": snapshot sent, " +
                                   std::to_string(out.sync_end().keys()) + " keys, " +
                                   std::to_string(out.sync_end().bytes()) + " bytes in " +
                                   std::to_string(ms) + " ms");
          if (!Send(stream.get(), out)) return;
          break;
        }
      }
    }
  }();

  // A failed Write or a finished Read means the call is over (its status is the one to
  // report); only a stop needs to cancel it.
  {
    std::lock_guard lock(mu_);
    if (stopping_) local = grpc::Status(grpc::StatusCode::CANCELLED, "link stopped");
  }
  if (!local.ok()) ctx->TryCancel();
  reader.join();
  grpc::Status status = stream->Finish();
  {
    std::lock_guard lock(mu_);
    ctx_.reset();
    broken_ = true;
    // A full sync this stream did not finish must run again on the next stream: the
    // replica may not even have received its FullSyncBegin, and would then answer the
    // next hello "resumable" without the ranges' existing keys.
    if (syncing_) need_full_sync_ = true;
  }
  return local.ok() ? status : local;
}

void ReplLink::CopyShard(uint32_t shard) {
  snapshot_.clear();
  snapshot_pos_ = 0;
  cache_->ForEachInRange(HashRange::Full(), shard, [this](const ItemView& item) {
    if (sync_ranges_.Contains(item.hash)) {
      snapshot_.push_back(SnapshotItem{std::string(item.key), std::string(item.value),
                                       item.meta.version, item.meta.deadline_ms, item.meta.type});
    }
    return true;
  });
}

void ReplLink::ReadAcks(Stream* stream) {
  v1::ReplicationAck ack;
  std::vector<double> latencies;
  while (stream->Read(&ack)) {
    const auto now = std::chrono::steady_clock::now();
    metrics::Histogram* histogram = ack_histogram_.load(std::memory_order_acquire);
    uint64_t report = 0;
    {
      std::lock_guard lock(mu_);
      acked_msgs_ = std::max(acked_msgs_, ack.received());
      waiting_since_ = now;
      if (ack.hello_reply()) {
        hello_ = {true, ack.resume_seq(), ack.resumable()};
        timeout_logged_ = false;
      } else if (hello_.received) {
        const uint64_t applied = std::min(ack.applied_seq(), backlog_.last_seq());
        if (applied > acked_seq_) {
          if (histogram != nullptr) {
            // Only entries the replica applied one by one (not those a snapshot covered).
            for (uint64_t s = std::max(acked_seq_ + 1, live_from_); s <= applied; ++s) {
              const ReplBacklog::Slot* slot = backlog_.Find(s);
              if (slot != nullptr) {
                latencies.push_back(std::chrono::duration<double>(now - slot->appended).count());
              }
            }
          }
          acked_seq_ = applied;
        }
        if (syncing_ && sync_end_msg_ != 0 && acked_msgs_ >= sync_end_msg_) {
          syncing_ = false;
          synced_gen_ = sync_gen_;
          state_ = State::kStreaming;
        }
        if (!syncing_) report = acked_seq_;
      }
    }
    cv_.notify_all();
    for (double l : latencies) histogram->Observe(l);
    latencies.clear();
    if (report != 0) waiters_->OnAck(options_.link_id, report);
  }
  {
    std::lock_guard lock(mu_);
    broken_ = true;
  }
  cv_.notify_all();
}

}  // namespace ringcache::internal
