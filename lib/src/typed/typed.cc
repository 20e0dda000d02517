#include "ringcache/typed.h"

#include "typed/pack.h"

namespace ringcache {
namespace {

// One typed write: `op(pack)` computes the new pack from the stored one ("" if the key is
// absent) and reports through its own captures. Under the key's shard lock; the key keeps
// its expiry; an empty result removes the key.
template <typename Op>
Result<UpdateResult> TypedWrite(Cache& cache, const HashedKey& key, ValueType type,
                                WriteRecord* record, Op&& op) {
  return cache.Update(
      key,
      [&](const ItemView* current, Mutation* m) -> Status {
        Result<typed::Write> w = op(current != nullptr ? current->value : std::string_view());
        if (!w.ok()) return w.status();
        if (w->pack.empty()) {
          m->kind = current != nullptr ? Mutation::Kind::kDelete : Mutation::Kind::kNone;
          return Status::Ok();
        }
        if (current != nullptr && w->pack == current->value) return Status::Ok();  // Unchanged.
        m->kind = Mutation::Kind::kSet;
        m->value = std::move(w->pack);
        m->type = type;
        m->keep_deadline = true;  // A key this creates keeps "never".
        return Status::Ok();
      },
      record, type);
}

// A typed write whose result is its Write's count (fields added, new length, ...).
template <typename Op>
Result<int64_t> CountingWrite(Cache& cache, const HashedKey& key, ValueType type,
                              WriteRecord* record, Op&& op) {
  int64_t n = 0;
  Result<UpdateResult> r = TypedWrite(cache, key, type, record, [&](std::string_view pack) {
    Result<typed::Write> w = op(pack);
    if (w.ok()) n = w->n;
    return w;
  });
  if (!r.ok()) return r.status();
  return n;
}

// The stored pack of `key` if it holds `type`; "" if it is absent.
Result<std::string> PackOf(const Cache& cache, const HashedKey& key, ValueType type) {
  std::string pack;
  const Status s = cache.GetTyped(key, type, &pack);
  if (s.code() == StatusCode::kNotFound) return std::string();
  if (!s.ok()) return s;
  return pack;
}

typed::Side SideOf(ListEnd end) {
  return end == ListEnd::kLeft ? typed::Side::kLeft : typed::Side::kRight;
}

}  // namespace

Result<int64_t> HashSet(Cache& cache, const HashedKey& key, std::span<const FieldValue> fields,
                        bool only_new, WriteRecord* record) {
  return CountingWrite(cache, key, ValueType::kHash, record, [&](std::string_view pack) {
    return typed::HashSet(pack, fields, only_new);
  });
}

Result<int64_t> HashDel(Cache& cache, const HashedKey& key,
                        std::span<const std::string_view> fields, WriteRecord* record) {
  return CountingWrite(cache, key, ValueType::kHash, record,
                       [&](std::string_view pack) { return typed::HashDel(pack, fields); });
}

Result<int64_t> HashIncrBy(Cache& cache, const HashedKey& key, std::string_view field,
                           int64_t delta, WriteRecord* record) {
  return CountingWrite(cache, key, ValueType::kHash, record, [&](std::string_view pack) {
    return typed::HashIncrBy(pack, field, delta);
  });
}

Result<std::optional<std::string>> HashGet(const Cache& cache, const HashedKey& key,
                                           std::string_view field) {
  Result<std::string> pack = PackOf(cache, key, ValueType::kHash);
  if (!pack.ok()) return pack.status();
  Result<std::optional<std::string_view>> v = typed::HashGet(*pack, field);
  if (!v.ok()) return v.status();
  if (!v->has_value()) return std::optional<std::string>();
  return std::optional<std::string>(std::string(**v));
}

Result<std::vector<std::pair<std::string, std::string>>> HashGetAll(const Cache& cache,
                                                                    const HashedKey& key) {
  Result<std::string> pack = PackOf(cache, key, ValueType::kHash);
  if (!pack.ok()) return pack.status();
  std::vector<std::pair<std::string, std::string>> out;
  if (pack->empty()) return out;
  std::vector<std::string_view> items;
  if (Status s = typed::Decode(*pack, /*pairs=*/true, &items); !s.ok()) return s;
  out.reserve(items.size() / 2);
  for (size_t i = 0; i + 1 < items.size(); i += 2) out.emplace_back(items[i], items[i + 1]);
  return out;
}

Result<uint64_t> HashLen(const Cache& cache, const HashedKey& key) {
  Result<std::string> pack = PackOf(cache, key, ValueType::kHash);
  if (!pack.ok()) return pack.status();
  if (pack->empty()) return uint64_t{0};
  return typed::Count(*pack);
}

Result<int64_t> ListPush(Cache& cache, const HashedKey& key, ListEnd end,
                         std::span<const std::string_view> elements, WriteRecord* record) {
  return CountingWrite(cache, key, ValueType::kList, record, [&](std::string_view pack) {
    return typed::ListPush(pack, SideOf(end), elements);
  });
}

Result<std::vector<std::string>> ListPop(Cache& cache, const HashedKey& key, ListEnd end,
                                         uint64_t count, WriteRecord* record) {
  std::vector<std::string> popped;
  Result<UpdateResult> r = TypedWrite(
      cache, key, ValueType::kList, record,
      [&](std::string_view pack) { return typed::ListPop(pack, SideOf(end), count, &popped); });
  if (!r.ok()) return r.status();
  return popped;
}

Result<std::vector<std::string>> ListRange(const Cache& cache, const HashedKey& key, int64_t start,
                                           int64_t stop) {
  Result<std::string> pack = PackOf(cache, key, ValueType::kList);
  if (!pack.ok()) return pack.status();
  Result<std::vector<std::string_view>> range = typed::ListRange(*pack, start, stop);
  if (!range.ok()) return range.status();
  return std::vector<std::string>(range->begin(), range->end());
}

Result<uint64_t> ListLen(const Cache& cache, const HashedKey& key) {
  Result<std::string> pack = PackOf(cache, key, ValueType::kList);
  if (!pack.ok()) return pack.status();
  if (pack->empty()) return uint64_t{0};
  return typed::Count(*pack);
}

Result<int64_t> SetAdd(Cache& cache, const HashedKey& key,
                       std::span<const std::string_view> members, WriteRecord* record) {
  return CountingWrite(cache, key, ValueType::kSet, record,
                       [&](std::string_view pack) { return typed::SetAdd(pack, members); });
}

Result<int64_t> SetRem(Cache& cache, const HashedKey& key,
                       std::span<const std::string_view> members, WriteRecord* record) {
  return CountingWrite(cache, key, ValueType::kSet, record,
                       [&](std::string_view pack) { return typed::SetRem(pack, members); });
}

Result<bool> SetIsMember(const Cache& cache, const HashedKey& key, std::string_view member) {
  Result<std::string> pack = PackOf(cache, key, ValueType::kSet);
  if (!pack.ok()) return pack.status();
  return typed::SetIsMember(*pack, member);
}

Result<std::vector<std::string>> SetMembers(const Cache& cache, const HashedKey& key) {
  Result<std::string> pack = PackOf(cache, key, ValueType::kSet);
  if (!pack.ok()) return pack.status();
  std::vector<std::string> out;
  if (pack->empty()) return out;
  std::vector<std::string_view> items;
  if (Status s = typed::Decode(*pack, /*pairs=*/false, &items); !s.ok()) return s;
  return std::vector<std::string>(items.begin(), items.end());
}

Result<uint64_t> SetCard(const Cache& cache, const HashedKey& key) {
  Result<std::string> pack = PackOf(cache, key, ValueType::kSet);
  if (!pack.ok()) return pack.status();
  if (pack->empty()) return uint64_t{0};
  return typed::Count(*pack);
}

}  // namespace ringcache
