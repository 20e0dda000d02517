#include "ringcache/snapshot.h"

#include <chrono>
#include <cstring>
#include <vector>

#include "ringcache/clock.h"
#include "ringcache/cluster_view.h"
#include "ringcache/key_hash.h"
#include "xxhash_inline.h"

namespace ringcache {

namespace {

constexpr char kMagic[8] = {'R', 'C', 'S', 'N', 'A', 'P', '\r', '\n'};
// magic, version, reserved, created, highest version, checksum
constexpr size_t kHeaderBytes = 40;
// kind, count, length, payload checksum, checksum of these 24 bytes
constexpr size_t kBlockHeaderBytes = 32;
constexpr uint32_t kRecordsBlock = 1;
constexpr uint32_t kEndBlock = 2;
constexpr size_t kRecordFixedBytes = 1 + 8 + 8 + 4 + 4;  // type, version, deadline, lengths

void PutU32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void PutU64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint32_t GetU32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t{static_cast<unsigned char>(p[i])} << (8 * i);
  return v;
}
uint64_t GetU64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t{static_cast<unsigned char>(p[i])} << (8 * i);
  return v;
}

uint64_t BlockChecksum(std::string_view header16, std::string_view payload) {
  return internal::Xxh3(payload, internal::Xxh3(header16));
}

// The header has a checksum of its own, so that a damaged length is caught before a
// payload of that length is read (or allocated).
std::string BlockHeader(uint32_t kind, uint32_t count, std::string_view payload) {
  std::string h;
  h.reserve(kBlockHeaderBytes);
  PutU32(&h, kind);
  PutU32(&h, count);
  PutU64(&h, payload.size());
  PutU64(&h, BlockChecksum(h, payload));
  PutU64(&h, internal::Xxh3(h));
  return h;
}

std::string Offset(uint64_t at) { return "offset " + std::to_string(at); }

}  // namespace

Result<SnapshotInfo> WriteSnapshot(const Cache& cache, const std::string& path,
                                   const SnapshotOptions& options) {
  Env* env = options.env != nullptr ? options.env : Env::Default();
  Clock* clock = options.clock != nullptr ? options.clock : Clock::System();
  const auto started = std::chrono::steady_clock::now();
  const std::string tmp = path + ".tmp";
  Result<std::unique_ptr<WritableFile>> opened = env->NewWritableFile(tmp);
  if (!opened.ok()) return opened.status();
  std::unique_ptr<WritableFile> file = std::move(opened).value();
  SnapshotInfo info;
  auto fail = [&](Status s) -> Result<SnapshotInfo> {
    (void)file->Close();
    (void)env->RemoveFile(tmp);
    return s;
  };

  const int64_t created = clock->NowMs();
  info.bytes += kHeaderBytes;  // Written last (below): it holds the highest version.
  if (Status s = file->Append(std::string(kHeaderBytes, '\0')); !s.ok()) return fail(s);

  // One shard's records at a time: copied out during the iteration (which must not
  // block), written after it.
  struct Block {
    std::string payload;
    uint32_t count = 0;
  };
  std::vector<Block> blocks;
  for (uint32_t shard = 0; shard < cache.shard_count(); ++shard) {
    blocks.clear();
    cache.ForEachInRange(HashRange::Full(), shard, [&](const ItemView& item) {
      if (blocks.empty() || blocks.back().payload.size() >= options.block_bytes) {
        blocks.emplace_back();
      }
      Block& b = blocks.back();
      b.payload.push_back(static_cast<char>(item.meta.type));
      PutU64(&b.payload, item.meta.version);
      PutU64(&b.payload, static_cast<uint64_t>(item.meta.deadline_ms));
      PutU32(&b.payload, static_cast<uint32_t>(item.key.size()));
      PutU32(&b.payload, static_cast<uint32_t>(item.value.size()));
      b.payload.append(item.key);
      b.payload.append(item.value);
      ++b.count;
      return true;
    });
    for (const Block& b : blocks) {
      const std::string h = BlockHeader(kRecordsBlock, b.count, b.payload);
      if (Status s = file->Append(h); !s.ok()) return fail(s);
      if (Status s = file->Append(b.payload); !s.ok()) return fail(s);
      info.bytes += h.size() + b.payload.size();
      info.keys += b.count;
    }
  }
  const std::string end = BlockHeader(kEndBlock, static_cast<uint32_t>(info.keys), {});
  if (Status s = file->Append(end); !s.ok()) return fail(s);
  info.bytes += end.size();
  // Read after every entry was copied: every version issued until then, deleted keys'
  // included, is at most this. A load raises the cache's floor above it.
  std::string header(kMagic, sizeof(kMagic));
  PutU32(&header, kSnapshotFormatVersion);
  PutU32(&header, 0);
  PutU64(&header, static_cast<uint64_t>(created));
  PutU64(&header, cache.HighestVersion());
  PutU64(&header, internal::Xxh3(header));
  if (Status s = file->WriteAt(0, header); !s.ok()) return fail(s);
  if (Status s = file->Sync(); !s.ok()) return fail(s);
  if (Status s = file->Close(); !s.ok()) return fail(s);
  if (Status s = env->RenameFile(tmp, path); !s.ok()) {
    (void)env->RemoveFile(tmp);
    return s;
  }
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  if (Status s = env->SyncDir(dir); !s.ok()) return s;
  info.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return info;
}

Result<LoadInfo> LoadSnapshot(Cache* cache, const std::string& path,
                              const SnapshotOptions& options) {
  Env* env = options.env != nullptr ? options.env : Env::Default();
  Clock* clock = options.clock != nullptr ? options.clock : Clock::System();
  const auto started = std::chrono::steady_clock::now();
  Result<uint64_t> size = env->FileSize(path);
  if (!size.ok()) return size.status();
  Result<std::unique_ptr<SequentialFile>> opened = env->NewSequentialFile(path);
  if (!opened.ok()) return opened.status();
  std::unique_ptr<SequentialFile> file = std::move(opened).value();
  LoadInfo info;
  auto done = [&]() {
    info.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return info;
  };

  std::string header;
  if (Status s = file->Read(kHeaderBytes, &header); !s.ok()) return s;
  if (header.size() < sizeof(kMagic) || std::memcmp(header.data(), kMagic, sizeof(kMagic)) != 0) {
    return Status::FailedPrecondition(path + " is not a ringcache snapshot (no RCSNAP header)");
  }
  if (header.size() < kHeaderBytes ||
      GetU64(header.data() + 32) != internal::Xxh3(std::string_view(header).substr(0, 32))) {
    info.damage =
        "the header is damaged (" + std::to_string(*size) + " bytes dropped): nothing loaded";
    return done();
  }
  const uint32_t version = GetU32(header.data() + 8);
  if (version != kSnapshotFormatVersion) {
    return Status::FailedPrecondition(
        path + " is a snapshot of format version " + std::to_string(version) +
        "; this build reads version " + std::to_string(kSnapshotFormatVersion) +
        ": move the file away to start empty, or run a build that reads it");
  }
  info.created_at_ms = static_cast<int64_t>(GetU64(header.data() + 16));
  info.highest_version = GetU64(header.data() + 24);
  info.bytes = kHeaderBytes;
  // Versions never repeat (docs/design/operations.md): every write after the load goes
  // above anything the snapshotted cache issued in the snapshot's epoch (deleted keys and
  // writes after the snapshot included), by starting at the next epoch's floor.
  cache->RaiseVersionFloor(VersionFloor((info.highest_version >> kVersionEpochShift) + 1));

  uint64_t at = kHeaderBytes;  // Offset of the next block.
  uint64_t records = 0;
  std::string block_header;
  std::string payload;
  const int64_t now = clock->NowMs();
  for (;;) {
    if (Status s = file->Read(kBlockHeaderBytes, &block_header); !s.ok()) return s;
    if (block_header.size() < kBlockHeaderBytes) {
      info.damage = "the file ends at " + Offset(*size) + " before its end block (" +
                    std::to_string(block_header.size()) + " bytes of a block header dropped)";
      return done();
    }
    const uint32_t kind = GetU32(block_header.data());
    const uint32_t count = GetU32(block_header.data() + 4);
    const uint64_t length = GetU64(block_header.data() + 8);
    const uint64_t checksum = GetU64(block_header.data() + 16);
    if (GetU64(block_header.data() + 24) !=
        internal::Xxh3(std::string_view(block_header).substr(0, 24))) {
      info.damage = "the block header at " + Offset(at) + " fails its checksum (" +
                    std::to_string(*size - at) + " bytes from there dropped)";
      return done();
    }
    const uint64_t remaining = *size >= at + kBlockHeaderBytes ? *size - at - kBlockHeaderBytes : 0;
    if (length > remaining) {  // Checked before anything is allocated.
      info.damage = "the block at " + Offset(at) + " claims " + std::to_string(length) +
                    " bytes, only " + std::to_string(remaining) + " remain (" +
                    std::to_string(*size - at) + " bytes dropped)";
      return done();
    }
    if (Status s = file->Read(length, &payload); !s.ok()) return s;
    if (payload.size() != length ||
        BlockChecksum(std::string_view(block_header).substr(0, 16), payload) != checksum) {
      info.damage = "the block at " + Offset(at) + " fails its checksum (" +
                    std::to_string(*size - at) + " bytes from there dropped)";
      return done();
    }
    if (kind == kEndBlock) {
      info.bytes += kBlockHeaderBytes;
      info.complete = count == static_cast<uint32_t>(records);
      if (!info.complete) {
        info.damage = "the end block counts " + std::to_string(count) + " entries, the file has " +
                      std::to_string(records);
      }
      return done();
    }
    if (kind != kRecordsBlock) {
      info.damage = "the block at " + Offset(at) + " is of unknown kind " + std::to_string(kind) +
                    " (" + std::to_string(*size - at) + " bytes from there dropped)";
      return done();
    }
    // Records of a block that passed its checksum.
    size_t pos = 0;
    for (uint32_t i = 0; i < count; ++i) {
      if (payload.size() - pos < kRecordFixedBytes) break;
      const char* p = payload.data() + pos;
      const auto type = static_cast<ValueType>(static_cast<uint8_t>(p[0]));
      const uint64_t item_version = GetU64(p + 1);
      const auto deadline = static_cast<int64_t>(GetU64(p + 9));
      const uint32_t key_len = GetU32(p + 17);
      const uint32_t value_len = GetU32(p + 21);
      pos += kRecordFixedBytes;
      if (payload.size() - pos < uint64_t{key_len} + value_len) break;
      const std::string_view key(payload.data() + pos, key_len);
      const std::string_view value(payload.data() + pos + key_len, value_len);
      pos += key_len + value_len;
      ++records;
      if (deadline != 0 && deadline <= now) {
        ++info.expired;
        continue;
      }
      Result<bool> stored =
          cache->ApplyReplicated(key, value, ItemMeta{item_version, deadline, type});
      if (!stored.ok()) {
        ++info.refused;
      } else if (*stored) {
        ++info.keys;
      }
    }
    at += kBlockHeaderBytes + length;
    info.bytes = at;
  }
}

}  // namespace ringcache
