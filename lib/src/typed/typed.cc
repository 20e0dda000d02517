#include "ringcache/typed.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>

#include "ringcache/float_text.h"
#include "ringcache/glob.h"
#include "ringcache/key_hash.h"
#include "typed/pack.h"
#include "typed/text.h"

namespace ringcache {
namespace {

constexpr auto kHash = ValueType::kHash;
constexpr auto kList = ValueType::kList;
constexpr auto kSetType = ValueType::kSet;

// command, name, type, write, min args, max args (-1: any).
constexpr std::array kCommands = {
    TypedCommandInfo{TypedCommand::kHSet, "hset", kHash, true, 2, -1},
    TypedCommandInfo{TypedCommand::kHSetNx, "hsetnx", kHash, true, 2, 2},
    TypedCommandInfo{TypedCommand::kHGet, "hget", kHash, false, 1, 1},
    TypedCommandInfo{TypedCommand::kHMGet, "hmget", kHash, false, 1, -1},
    TypedCommandInfo{TypedCommand::kHDel, "hdel", kHash, true, 1, -1},
    TypedCommandInfo{TypedCommand::kHGetAll, "hgetall", kHash, false, 0, 0},
    TypedCommandInfo{TypedCommand::kHKeys, "hkeys", kHash, false, 0, 0},
    TypedCommandInfo{TypedCommand::kHVals, "hvals", kHash, false, 0, 0},
    TypedCommandInfo{TypedCommand::kHLen, "hlen", kHash, false, 0, 0},
    TypedCommandInfo{TypedCommand::kHExists, "hexists", kHash, false, 1, 1},
    TypedCommandInfo{TypedCommand::kHStrLen, "hstrlen", kHash, false, 1, 1},
    TypedCommandInfo{TypedCommand::kHIncrBy, "hincrby", kHash, true, 1, 1},
    TypedCommandInfo{TypedCommand::kHIncrByFloat, "hincrbyfloat", kHash, true, 2, 2},
    TypedCommandInfo{TypedCommand::kHRandField, "hrandfield", kHash, false, 0, 0},
    TypedCommandInfo{TypedCommand::kHScan, "hscan", kHash, false, 0, 1},
    TypedCommandInfo{TypedCommand::kLPush, "lpush", kList, true, 1, -1},
    TypedCommandInfo{TypedCommand::kRPush, "rpush", kList, true, 1, -1},
    TypedCommandInfo{TypedCommand::kLPushX, "lpushx", kList, true, 1, -1},
    TypedCommandInfo{TypedCommand::kRPushX, "rpushx", kList, true, 1, -1},
    TypedCommandInfo{TypedCommand::kLPop, "lpop", kList, true, 0, 0},
    TypedCommandInfo{TypedCommand::kRPop, "rpop", kList, true, 0, 0},
    TypedCommandInfo{TypedCommand::kLRange, "lrange", kList, false, 0, 0},
    TypedCommandInfo{TypedCommand::kLLen, "llen", kList, false, 0, 0},
    TypedCommandInfo{TypedCommand::kLIndex, "lindex", kList, false, 0, 0},
    TypedCommandInfo{TypedCommand::kLSet, "lset", kList, true, 1, 1},
    TypedCommandInfo{TypedCommand::kLInsert, "linsert", kList, true, 2, 2},
    TypedCommandInfo{TypedCommand::kLTrim, "ltrim", kList, true, 0, 0},
    TypedCommandInfo{TypedCommand::kLRem, "lrem", kList, true, 1, 1},
    TypedCommandInfo{TypedCommand::kLPos, "lpos", kList, false, 1, 1},
    TypedCommandInfo{TypedCommand::kSAdd, "sadd", kSetType, true, 1, -1},
    TypedCommandInfo{TypedCommand::kSRem, "srem", kSetType, true, 1, -1},
    TypedCommandInfo{TypedCommand::kSIsMember, "sismember", kSetType, false, 1, 1},
    TypedCommandInfo{TypedCommand::kSMIsMember, "smismember", kSetType, false, 1, -1},
    TypedCommandInfo{TypedCommand::kSMembers, "smembers", kSetType, false, 0, 0},
    TypedCommandInfo{TypedCommand::kSCard, "scard", kSetType, false, 0, 0},
    TypedCommandInfo{TypedCommand::kSPop, "spop", kSetType, true, 0, 0},
    TypedCommandInfo{TypedCommand::kSRandMember, "srandmember", kSetType, false, 0, 0},
    TypedCommandInfo{TypedCommand::kSScan, "sscan", kSetType, false, 0, 1},
};

typed::Side SideOf(TypedCommand c) {
  return c == TypedCommand::kLPush || c == TypedCommand::kLPushX || c == TypedCommand::kLPop
             ? typed::Side::kLeft
             : typed::Side::kRight;
}

// Each thread's own generator (the picks of SPOP, SRANDMEMBER, HRANDFIELD).
std::mt19937_64& Rng() {
  thread_local std::mt19937_64 rng(std::random_device{}());
  return rng;
}

// Positions among `size` for a random pick: one (`counted` false; none if size is 0);
// `count` >= 0 distinct ones (all of them if count >= size); or |count| with repeats.
std::vector<size_t> Pick(size_t size, bool counted, int64_t count) {
  std::vector<size_t> out;
  if (size == 0) return out;
  auto& rng = Rng();
  const auto uniform = [&](size_t n) {
    return std::uniform_int_distribution<size_t>(0, n - 1)(rng);
  };
  if (!counted) {
    out.push_back(uniform(size));
    return out;
  }
  if (count < 0) {  // CheckTypedOp bounded it.
    const auto n = static_cast<size_t>(-count);
    out.reserve(n);
    for (size_t i = 0; i < n; ++i) out.push_back(uniform(size));
    return out;
  }
  const size_t k = std::min(static_cast<size_t>(count), size);
  out.resize(size);
  for (size_t i = 0; i < size; ++i) out[i] = i;
  if (k == size) return out;
  for (size_t i = 0; i < k; ++i) std::swap(out[i], out[i + uniform(size - i)]);  // Partial shuffle.
  out.resize(k);
  return out;
}

constexpr size_t kMaxPatternBytes = 4096;
// The most bytes SRANDMEMBER and HRANDFIELD answer (64 MiB, a node's default response
// budget).
constexpr size_t kMaxPickBytes = size_t{64} << 20;
constexpr int64_t kDefaultScanCount = 10;

// HSCAN / SSCAN over decoded items (a hash's in pairs): see TypedReply.
void Scan(const TypedOp& op, const std::vector<std::string_view>& items, bool pairs,
          TypedReply* reply) {
  const size_t stride = pairs ? 2 : 1;
  const std::string_view pattern = op.args.empty() ? std::string_view("*") : op.args[0];
  const bool filter = pattern != "*";
  const auto emit = [&](size_t i) {
    if (filter && !GlobMatch(pattern, items[i])) return;
    reply->items.emplace_back(items[i]);
    if (pairs) reply->items.emplace_back(items[i + 1]);
  };
  const auto cursor = static_cast<uint64_t>(op.n);
  if (typed::FitsSmall(items, pairs)) {  // Whole, whatever the cursor (Redis's listpack).
    for (size_t i = 0; i < items.size(); i += stride) emit(i);
    reply->integer = 0;
    return;
  }
  // The elements not scanned yet (hash >= cursor), as (hash, item position).
  std::vector<std::pair<uint64_t, size_t>> rest;
  for (size_t i = 0; i < items.size(); i += stride) {
    const uint64_t h = HashBytes(items[i]);
    if (h >= cursor) rest.emplace_back(h, i);
  }
  const auto count = static_cast<size_t>(op.count > 0 ? op.count : kDefaultScanCount);
  // COUNT elements examined (MATCH filters them after, as Redis's) in hash order, and
  // every element sharing the last one's hash, so that the next cursor skips none: the
  // COUNT smallest found in linear time, then sorted.
  bool more = false;
  if (rest.size() > count) {
    std::nth_element(rest.begin(), rest.begin() + static_cast<ptrdiff_t>(count - 1), rest.end());
    const uint64_t last = rest[count - 1].first;
    const auto end =
        std::partition(rest.begin(), rest.end(), [last](const auto& e) { return e.first <= last; });
    more = end != rest.end();
    rest.erase(end, rest.end());
  }
  std::sort(rest.begin(), rest.end());
  for (const auto& [h, i] : rest) emit(i);
  const uint64_t last = rest.empty() ? 0 : rest.back().first;
  reply->integer = !more || last == UINT64_MAX ? 0 : static_cast<int64_t>(last + 1);
}

void CopyItems(std::span<const std::string_view> from, std::vector<std::string>* to) {
  to->reserve(to->size() + from.size());
  for (std::string_view item : from) to->emplace_back(item);
}

// The read commands, on the key's pack ("" for an absent key).
Status Read(const TypedOp& op, std::string_view pack, TypedReply* reply) {
  const auto& args = op.args;
  const auto count = [&]() -> Status {
    if (pack.empty()) return Status::Ok();
    Result<uint64_t> n = typed::Count(pack);
    if (!n.ok()) return n.status();
    reply->integer = static_cast<int64_t>(*n);
    return Status::Ok();
  };
  const auto one = [&](const Result<std::optional<std::string_view>>& v) -> Status {
    if (!v.ok()) return v.status();
    if (v->has_value()) {
      reply->items.emplace_back(**v);
    } else {
      reply->nil = true;
    }
    return Status::Ok();
  };
  const auto all = [&](bool pairs, int keep) -> Status {  // keep: -1 all, 0 names, 1 values.
    if (pack.empty()) return Status::Ok();
    std::vector<std::string_view> items;
    if (Status s = typed::Decode(pack, pairs, &items); !s.ok()) return s;
    if (keep < 0) {
      CopyItems(items, &reply->items);
      return Status::Ok();
    }
    reply->items.reserve(items.size() / 2);
    for (size_t i = static_cast<size_t>(keep); i < items.size(); i += 2) {
      reply->items.emplace_back(items[i]);
    }
    return Status::Ok();
  };
  switch (op.command) {
    case TypedCommand::kHGet:
      return one(typed::HashGet(pack, args[0]));
    case TypedCommand::kHMGet: {
      Result<std::vector<std::optional<std::string_view>>> values = typed::HashMGet(pack, args);
      if (!values.ok()) return values.status();
      reply->items.reserve(values->size());
      for (size_t i = 0; i < values->size(); ++i) {
        reply->items.emplace_back((*values)[i].value_or(std::string_view()));
        if (!(*values)[i].has_value()) reply->absent.push_back(static_cast<uint32_t>(i));
      }
      return Status::Ok();
    }
    case TypedCommand::kHGetAll:
      return all(true, -1);
    case TypedCommand::kHKeys:
      return all(true, 0);
    case TypedCommand::kHVals:
      return all(true, 1);
    case TypedCommand::kHLen:
    case TypedCommand::kLLen:
    case TypedCommand::kSCard:
      return count();
    case TypedCommand::kHExists:
    case TypedCommand::kHStrLen: {
      Result<std::optional<std::string_view>> v = typed::HashGet(pack, args[0]);
      if (!v.ok()) return v.status();
      if (op.command == TypedCommand::kHExists) {
        reply->integer = v->has_value() ? 1 : 0;
      } else {
        reply->integer = v->has_value() ? static_cast<int64_t>((*v)->size()) : 0;
      }
      return Status::Ok();
    }
    case TypedCommand::kLRange: {
      Result<std::vector<std::string_view>> range = typed::ListRange(pack, op.n, op.stop);
      if (!range.ok()) return range.status();
      CopyItems(*range, &reply->items);
      return Status::Ok();
    }
    case TypedCommand::kLIndex:
      return one(typed::ListIndex(pack, op.n));
    case TypedCommand::kSIsMember: {
      Result<bool> is = typed::SetIsMember(pack, args[0]);
      if (!is.ok()) return is.status();
      reply->integer = *is ? 1 : 0;
      return Status::Ok();
    }
    case TypedCommand::kSMIsMember: {
      Result<std::vector<bool>> are = typed::SetMIsMember(pack, args);
      if (!are.ok()) return are.status();
      reply->integers.assign(are->begin(), are->end());
      return Status::Ok();
    }
    case TypedCommand::kSMembers:
      return all(false, -1);
    case TypedCommand::kLPos: {
      Result<std::vector<int64_t>> at =
          typed::ListPos(pack, args[0], op.n == 0 ? 1 : op.n, op.flag ? op.count : 1, op.stop);
      if (!at.ok()) return at.status();
      if (op.flag) {
        reply->integers = std::move(*at);
      } else if (at->empty()) {
        reply->nil = true;
      } else {
        reply->integer = at->front();
      }
      return Status::Ok();
    }
    case TypedCommand::kHScan:
    case TypedCommand::kSScan: {
      const bool hash = op.command == TypedCommand::kHScan;
      std::vector<std::string_view> items;
      if (!pack.empty()) {
        if (Status s = typed::Decode(pack, hash, &items); !s.ok()) return s;
      }
      Scan(op, items, hash, reply);
      return Status::Ok();
    }
    case TypedCommand::kSRandMember:
    case TypedCommand::kHRandField: {
      const bool hash = op.command == TypedCommand::kHRandField;
      std::vector<std::string_view> items;
      if (!pack.empty()) {
        if (Status s = typed::Decode(pack, hash, &items); !s.ok()) return s;
      }
      const size_t stride = hash ? 2 : 1;
      const std::vector<size_t> picked = Pick(items.size() / stride, op.flag, op.n);
      // Picks with repeats copy an element per pick: bounded in bytes before any copy (a
      // member of 1 MiB picked a million times would be a terabyte).
      size_t bytes = 0;
      for (size_t at : picked) {
        bytes += items[at * stride].size() + (op.option ? items[at * stride + 1].size() : 0);
      }
      if (bytes > kMaxPickBytes) {
        return Status::InvalidArgument(std::string(InfoOf(op.command).name) + " would answer " +
                                       std::to_string(bytes) + " bytes, over the limit of " +
                                       std::to_string(kMaxPickBytes) + " for random picks");
      }
      reply->nil = !op.flag && picked.empty();
      reply->items.reserve(picked.size() * (op.option ? 2 : 1));
      for (size_t at : picked) {
        reply->items.emplace_back(items[at * stride]);
        if (op.option) reply->items.emplace_back(items[at * stride + 1]);
      }
      return Status::Ok();
    }
    default:
      return Status::Internal("typed command " + std::string(InfoOf(op.command).name) +
                              " is not a read");
  }
}

// The write commands: the new pack from the old one ("" for an absent key; a returned ""
// removes the key), with the reply filled as the command's outcome.
Result<typed::Write> Apply(const TypedOp& op, std::string_view pack, TypedReply* reply) {
  const auto& args = op.args;
  const auto counted = [&](Result<typed::Write> w) -> Result<typed::Write> {
    if (w.ok()) reply->integer = w->n;
    return w;
  };
  switch (op.command) {
    case TypedCommand::kHSet:
    case TypedCommand::kHSetNx: {
      std::vector<typed::FieldValue> pairs;
      pairs.reserve(args.size() / 2);
      for (size_t i = 0; i + 1 < args.size(); i += 2) pairs.emplace_back(args[i], args[i + 1]);
      return counted(typed::HashSet(pack, pairs, op.command == TypedCommand::kHSetNx));
    }
    case TypedCommand::kHDel:
      return counted(typed::HashDel(pack, args));
    case TypedCommand::kHIncrBy:
      return counted(typed::HashIncrBy(pack, args[0], op.n));
    case TypedCommand::kHIncrByFloat: {
      std::string text;
      Result<typed::Write> w = typed::HashIncrByFloat(pack, args[0], args[1], &text);
      if (w.ok()) reply->items = {std::move(text)};
      return w;
    }
    case TypedCommand::kLPushX:
    case TypedCommand::kRPushX:
      if (pack.empty()) return typed::Write{};  // Only onto an existing list: 0.
      [[fallthrough]];
    case TypedCommand::kLPush:
    case TypedCommand::kRPush:
      return counted(typed::ListPush(pack, SideOf(op.command), args));
    case TypedCommand::kLPop:
    case TypedCommand::kRPop: {
      std::vector<std::string> popped;
      const uint64_t count = op.flag ? static_cast<uint64_t>(op.n) : 1;
      Result<typed::Write> w = typed::ListPop(pack, SideOf(op.command), count, &popped);
      if (!w.ok()) return w;
      // Without a count: one element or nil. With one: the elements, nil for no list.
      reply->nil = op.flag ? pack.empty() : popped.empty();
      reply->items = std::move(popped);
      return w;
    }
    case TypedCommand::kLSet:
      return typed::ListSet(pack, op.n, args[0]);
    case TypedCommand::kLInsert:
      return counted(typed::ListInsert(pack, op.flag, args[0], args[1]));
    case TypedCommand::kLTrim:
      return typed::ListTrim(pack, op.n, op.stop);
    case TypedCommand::kLRem:
      return counted(typed::ListRem(pack, op.n, args[0]));
    case TypedCommand::kSAdd:
      return counted(typed::SetAdd(pack, args));
    case TypedCommand::kSRem:
      return counted(typed::SetRem(pack, args));
    case TypedCommand::kSPop: {
      std::vector<std::string_view> items;
      if (!pack.empty()) {
        if (Status s = typed::Decode(pack, false, &items); !s.ok()) return s;
      }
      const std::vector<size_t> picked = Pick(items.size(), op.flag, op.n);
      reply->nil = !op.flag && picked.empty();
      reply->items.reserve(picked.size());
      for (size_t at : picked) reply->items.emplace_back(items[at]);
      if (picked.empty()) return typed::Write{std::string(pack), 0};
      return typed::Remove(pack, false, picked);
    }
    default:
      return Status::Internal("typed command " + std::string(InfoOf(op.command).name) +
                              " is not a write");
  }
}

}  // namespace

// kCommands' index of each command number (-1: none), for a lookup per operation.
constexpr uint32_t kMaxNumber = 63;
constexpr auto kByNumber = [] {
  std::array<int8_t, kMaxNumber + 1> at{};
  at.fill(-1);
  for (size_t i = 0; i < kCommands.size(); ++i) {
    at[static_cast<size_t>(kCommands[i].command)] = static_cast<int8_t>(i);
  }
  return at;
}();

const TypedCommandInfo* TypedCommandNumbered(uint32_t number) {
  if (number > kMaxNumber || kByNumber[number] < 0) return nullptr;
  return &kCommands[static_cast<size_t>(kByNumber[number])];
}

const TypedCommandInfo* TypedCommandNamed(std::string_view name) {
  for (const TypedCommandInfo& info : kCommands) {
    if (typed::SameIgnoringCase(name, info.name)) return &info;
  }
  return nullptr;
}

const TypedCommandInfo& InfoOf(TypedCommand command) {
  const TypedCommandInfo* info = TypedCommandNumbered(static_cast<uint32_t>(command));
  return info != nullptr ? *info : kCommands[0];  // Every enumerator is in the table.
}

std::span<const TypedCommandInfo> TypedCommands() { return kCommands; }

std::string_view KeyspaceEventOf(TypedCommand command) {
  switch (command) {
    case TypedCommand::kHSetNx:
      return "hset";
    case TypedCommand::kLPushX:
      return "lpush";
    case TypedCommand::kRPushX:
      return "rpush";
    default:
      return InfoOf(command).name;  // Redis names the event after the command.
  }
}

size_t TypedReply::ItemBytes() const {
  size_t n = 0;
  for (const std::string& item : items) n += item.size();
  return n;
}

size_t TypedReply::ApproxBytes() const {
  return ItemBytes() + sizeof(std::string) * items.size() +
         sizeof(int64_t) * (absent.size() + integers.size());
}

Status CacheStore::Read(const HashedKey& key, ValueType type, Cache::ValueVisitor& visitor) const {
  return reader_.VisitTyped(key, type, visitor);
}

Result<UpdateResult> CacheStore::Update(const HashedKey& key, const UpdateFn& fn,
                                        ValueType expected) {
  if (writer_ == nullptr) return Status::FailedPrecondition("a read-only CacheStore cannot write");
  return writer_->Update(key, fn, record_, expected);
}

Status CheckTypedOp(const TypedOp& op) {
  const TypedCommandInfo* info = TypedCommandNumbered(static_cast<uint32_t>(op.command));
  if (info == nullptr) {
    return Status::InvalidArgument("typed command " + std::to_string(static_cast<int>(op.command)) +
                                   " is not one");
  }
  const auto n = static_cast<int64_t>(op.args.size());
  const std::string name(info->name);
  if (n < info->min_args || (info->max_args >= 0 && n > info->max_args)) {
    const std::string wanted = info->max_args < 0 ? "at least " + std::to_string(info->min_args)
                               : info->min_args == info->max_args
                                   ? std::to_string(info->min_args)
                                   : "at most " + std::to_string(info->max_args);
    return Status::InvalidArgument(name + " takes " + wanted + " argument(s) after the key, got " +
                                   std::to_string(n));
  }
  if (op.command == TypedCommand::kHSet && n % 2 != 0) {
    return Status::InvalidArgument("hset takes field value pairs, got " + std::to_string(n) +
                                   " arguments");
  }
  const bool pop = op.command == TypedCommand::kLPop || op.command == TypedCommand::kRPop ||
                   op.command == TypedCommand::kSPop;
  if (pop && op.flag && op.n < 0) {
    return Status::InvalidArgument(name + " count " + std::to_string(op.n) +
                                   " is negative: it must be positive");
  }
  if ((op.command == TypedCommand::kSRandMember || op.command == TypedCommand::kHRandField) &&
      op.flag && op.n < -static_cast<int64_t>(typed::kMaxElements)) {
    // That many picks with repeats is that many replies: bounded like a collection.
    return Status::InvalidArgument(name + " count " + std::to_string(op.n) +
                                   " is out of range: at most " +
                                   std::to_string(typed::kMaxElements) + " picks with repeats");
  }
  if ((op.command == TypedCommand::kHScan || op.command == TypedCommand::kSScan) &&
      !op.args.empty() && op.args[0].size() > kMaxPatternBytes) {
    return Status::InvalidArgument(name + " MATCH pattern of " + std::to_string(op.args[0].size()) +
                                   " bytes is over the limit of " +
                                   std::to_string(kMaxPatternBytes));
  }
  if (op.command == TypedCommand::kLPos) {
    if (op.n == INT64_MIN) return Status::InvalidArgument("lpos rank is out of range");
    if (op.count < 0) return Status::InvalidArgument("COUNT can't be negative");
    if (op.stop < 0) return Status::InvalidArgument("MAXLEN can't be negative");
  }
  return Status::Ok();
}

Status RunTyped(TypedStore& store, const HashedKey& key, const TypedOp& op, TypedReply* reply) {
  *reply = TypedReply{};
  if (Status s = CheckTypedOp(op); !s.ok()) return s;
  const TypedCommandInfo& info = InfoOf(op.command);
  if (!info.write) {
    // The command reads the stored pack in place (no copy of the collection).
    struct Reader final : Cache::ValueVisitor {
      const TypedOp& op;
      TypedReply* reply;
      Status status;
      Reader(const TypedOp& o, TypedReply* r) : op(o), reply(r) {}
      void Visit(std::string_view pack, const ItemMeta& meta) override {
        reply->version = meta.version;
        status = Read(op, pack, reply);
      }
    } reader(op, reply);
    const Status s = store.Read(key, info.type, reader);
    if (s.code() == StatusCode::kNotFound) return Read(op, std::string_view(), reply);
    if (!s.ok()) return s;
    return reader.status;
  }
  Result<UpdateResult> r = store.Update(
      key,
      [&](const ItemView* current, Mutation* m) -> Status {
        *reply = TypedReply{};  // The function may run again; its outcome is the last run's.
        if (op.if_version != 0) {
          const SetOptions expected{.mode = SetMode::kIfVersion, .expected_version = op.if_version};
          if (Status s =
                  CheckSetMode(expected, current != nullptr ? &current->meta.version : nullptr);
              !s.ok()) {
            return s;
          }
        }
        const std::string_view pack = current != nullptr ? current->value : std::string_view();
        Result<typed::Write> w = Apply(op, pack, reply);
        if (!w.ok()) return w.status();
        m->event = KeyspaceEventOf(op.command);
        if (w->pack.empty()) {  // No element left (or none was ever there): no key.
          m->kind = current != nullptr ? Mutation::Kind::kDelete : Mutation::Kind::kNone;
          return Status::Ok();
        }
        if (current != nullptr && w->pack == current->value) return Status::Ok();  // Unchanged.
        m->kind = Mutation::Kind::kSet;
        m->value = std::move(w->pack);
        m->type = info.type;
        m->keep_deadline = true;  // A key this creates keeps "never".
        return Status::Ok();
      },
      info.type);
  if (!r.ok()) return r.status();
  reply->version = r->after.version;
  return Status::Ok();
}

// ---- The convenience forms, on a Cache.

namespace {

// Runs `op` on `store`; the reply on success.
Result<TypedReply> RunIn(CacheStore store, const HashedKey& key, const TypedOp& op) {
  TypedReply reply;
  if (Status s = RunTyped(store, key, op, &reply); !s.ok()) return s;
  return reply;
}
Result<TypedReply> RunOn(Cache& cache, const HashedKey& key, const TypedOp& op,
                         WriteRecord* record = nullptr) {
  return RunIn(CacheStore(cache, record), key, op);
}
Result<TypedReply> ReadOn(const Cache& cache, const HashedKey& key, const TypedOp& op) {
  return RunIn(CacheStore(cache), key, op);
}

Result<int64_t> IntegerOf(Result<TypedReply> r) {
  if (!r.ok()) return r.status();
  return r->integer;
}

Result<std::vector<std::string>> ItemsOf(Result<TypedReply> r) {
  if (!r.ok()) return r.status();
  return std::move(r->items);
}

TypedCommand PushOf(ListEnd end) {
  return end == ListEnd::kLeft ? TypedCommand::kLPush : TypedCommand::kRPush;
}

}  // namespace

Result<int64_t> HashSet(Cache& cache, const HashedKey& key, std::span<const FieldValue> fields,
                        bool only_new, WriteRecord* record) {
  if (only_new && fields.size() != 1) {
    return Status::InvalidArgument("hsetnx sets one field, got " + std::to_string(fields.size()));
  }
  std::vector<std::string_view> args;
  args.reserve(fields.size() * 2);
  for (const auto& [field, value] : fields) {
    args.push_back(field);
    args.push_back(value);
  }
  if (args.empty()) return Status::InvalidArgument("HSET needs at least one field and value");
  return IntegerOf(RunOn(
      cache, key, {.command = only_new ? TypedCommand::kHSetNx : TypedCommand::kHSet, .args = args},
      record));
}

Result<int64_t> HashDel(Cache& cache, const HashedKey& key,
                        std::span<const std::string_view> fields, WriteRecord* record) {
  return IntegerOf(RunOn(cache, key, {.command = TypedCommand::kHDel, .args = fields}, record));
}

Result<int64_t> HashIncrBy(Cache& cache, const HashedKey& key, std::string_view field,
                           int64_t delta, WriteRecord* record) {
  return IntegerOf(RunOn(
      cache, key, {.command = TypedCommand::kHIncrBy, .args = {&field, 1}, .n = delta}, record));
}

Result<std::optional<std::string>> HashGet(const Cache& cache, const HashedKey& key,
                                           std::string_view field) {
  Result<TypedReply> r = ReadOn(cache, key, {.command = TypedCommand::kHGet, .args = {&field, 1}});
  if (!r.ok()) return r.status();
  if (r->nil) return std::optional<std::string>();
  return std::optional<std::string>(std::move(r->items[0]));
}

Result<std::vector<std::pair<std::string, std::string>>> HashGetAll(const Cache& cache,
                                                                    const HashedKey& key) {
  Result<TypedReply> r = ReadOn(cache, key, {.command = TypedCommand::kHGetAll});
  if (!r.ok()) return r.status();
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(r->items.size() / 2);
  for (size_t i = 0; i + 1 < r->items.size(); i += 2) {
    out.emplace_back(std::move(r->items[i]), std::move(r->items[i + 1]));
  }
  return out;
}

Result<uint64_t> HashLen(const Cache& cache, const HashedKey& key) {
  Result<int64_t> n = IntegerOf(ReadOn(cache, key, {.command = TypedCommand::kHLen}));
  if (!n.ok()) return n.status();
  return static_cast<uint64_t>(*n);
}

Result<int64_t> ListPush(Cache& cache, const HashedKey& key, ListEnd end,
                         std::span<const std::string_view> elements, WriteRecord* record) {
  if (elements.empty()) return Status::InvalidArgument("a push needs at least one element");
  return IntegerOf(RunOn(cache, key, {.command = PushOf(end), .args = elements}, record));
}

Result<std::vector<std::string>> ListPop(Cache& cache, const HashedKey& key, ListEnd end,
                                         uint64_t count, WriteRecord* record) {
  if (count > static_cast<uint64_t>(INT64_MAX)) count = INT64_MAX;
  return ItemsOf(
      RunOn(cache, key,
            {.command = end == ListEnd::kLeft ? TypedCommand::kLPop : TypedCommand::kRPop,
             .n = static_cast<int64_t>(count),
             .flag = true},
            record));
}

Result<std::vector<std::string>> ListRange(const Cache& cache, const HashedKey& key, int64_t start,
                                           int64_t stop) {
  return ItemsOf(ReadOn(cache, key, {.command = TypedCommand::kLRange, .n = start, .stop = stop}));
}

Result<uint64_t> ListLen(const Cache& cache, const HashedKey& key) {
  Result<int64_t> n = IntegerOf(ReadOn(cache, key, {.command = TypedCommand::kLLen}));
  if (!n.ok()) return n.status();
  return static_cast<uint64_t>(*n);
}

Result<int64_t> SetAdd(Cache& cache, const HashedKey& key,
                       std::span<const std::string_view> members, WriteRecord* record) {
  if (members.empty()) return Status::InvalidArgument("SADD needs at least one member");
  return IntegerOf(RunOn(cache, key, {.command = TypedCommand::kSAdd, .args = members}, record));
}

Result<int64_t> SetRem(Cache& cache, const HashedKey& key,
                       std::span<const std::string_view> members, WriteRecord* record) {
  if (members.empty()) return int64_t{0};
  return IntegerOf(RunOn(cache, key, {.command = TypedCommand::kSRem, .args = members}, record));
}

Result<bool> SetIsMember(const Cache& cache, const HashedKey& key, std::string_view member) {
  Result<int64_t> n =
      IntegerOf(ReadOn(cache, key, {.command = TypedCommand::kSIsMember, .args = {&member, 1}}));
  if (!n.ok()) return n.status();
  return *n != 0;
}

Result<std::vector<std::string>> SetMembers(const Cache& cache, const HashedKey& key) {
  return ItemsOf(ReadOn(cache, key, {.command = TypedCommand::kSMembers}));
}

Result<uint64_t> SetCard(const Cache& cache, const HashedKey& key) {
  Result<int64_t> n = IntegerOf(ReadOn(cache, key, {.command = TypedCommand::kSCard}));
  if (!n.ok()) return n.status();
  return static_cast<uint64_t>(*n);
}

}  // namespace ringcache
