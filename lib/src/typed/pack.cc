#include "typed/pack.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <unordered_map>

#include "ringcache/float_text.h"

namespace ringcache::typed {
namespace {

void PutVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

size_t VarintSize(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

// Reads a varint at *at; false if it is cut off or longer than 10 bytes.
bool GetVarint(std::string_view in, size_t* at, uint64_t* v) {
  *v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (*at >= in.size()) return false;
    const auto byte = static_cast<uint8_t>(in[(*at)++]);
    *v |= uint64_t{byte & 0x7fu} << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

Status Corrupt(const std::string& why) { return Status::InvalidArgument("corrupt pack: " + why); }

// The items of `pack` ("" = none), or the error.
Status Items(std::string_view pack, bool pairs, std::vector<std::string_view>* items) {
  items->clear();
  if (pack.empty()) return Status::Ok();
  return Decode(pack, pairs, items);
}

// Redis's index rules: a negative index counts from the end; `size` elements.
int64_t Normalize(int64_t index, int64_t size) { return index < 0 ? size + index : index; }

}  // namespace

bool ParseInt64(std::string_view s, int64_t* out) {
  if (s == "0") {
    *out = 0;
    return true;
  }
  const size_t first = !s.empty() && s[0] == '-' ? 1 : 0;
  if (s.size() <= first || s.size() > 20 || s[first] < '1' || s[first] > '9') return false;
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, *out);
  return ec == std::errc() && ptr == end;
}

namespace {

// Calls fn(i, item) for each item of `pack` in order until it returns false, without
// allocating. "" has none. The bounds are checked as Decode checks them.
template <typename Fn>
Status Walk(std::string_view pack, bool pairs, Fn&& fn) {
  if (pack.empty()) return Status::Ok();
  size_t at = 0;
  uint64_t count = 0;
  if (!GetVarint(pack, &at, &count)) return Corrupt("no element count");
  const uint64_t n = pairs ? count * 2 : count;
  if (count > pack.size() || n > pack.size() - at) return Corrupt("count overruns");
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t len = 0;
    if (!GetVarint(pack, &at, &len)) return Corrupt("item " + std::to_string(i) + " cut off");
    if (len > pack.size() - at) return Corrupt("item " + std::to_string(i) + " overruns");
    if (!fn(i, pack.substr(at, static_cast<size_t>(len)))) return Status::Ok();
    at += static_cast<size_t>(len);
  }
  return Status::Ok();
}

// INVALID_ARGUMENT once a write would leave more than kMaxElements elements.
Status CheckElements(size_t elements) {
  if (elements <= kMaxElements) return Status::Ok();
  return Status::InvalidArgument("a collection holds at most " + std::to_string(kMaxElements) +
                                 " elements in this build, and this write would leave " +
                                 std::to_string(elements));
}

// A write that leaves `items`: "" if there are none.
std::string PackOf(std::span<const std::string_view> items, bool pairs = false) {
  return items.empty() ? std::string() : Encode(items, pairs);
}

}  // namespace

Status Decode(std::string_view pack, bool pairs, std::vector<std::string_view>* items) {
  items->clear();
  size_t at = 0;
  uint64_t count = 0;
  if (!GetVarint(pack, &at, &count)) return Corrupt("no element count");
  const uint64_t n = pairs ? count * 2 : count;
  // Every item takes at least one byte: a count beyond that is a lie, refused before
  // anything is reserved; so is one beyond what any write leaves.
  if (count > kMaxElements) {
    return Corrupt("count " + std::to_string(count) + " is over the limit of " +
                   std::to_string(kMaxElements));
  }
  if (count > pack.size() || n > pack.size() - at) {
    return Corrupt("count " + std::to_string(count) + " exceeds its " +
                   std::to_string(pack.size()) + " bytes");
  }
  items->reserve(static_cast<size_t>(n));
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t len = 0;
    if (!GetVarint(pack, &at, &len)) return Corrupt("item " + std::to_string(i) + " cut off");
    if (len > pack.size() - at) return Corrupt("item " + std::to_string(i) + " overruns");
    items->push_back(pack.substr(at, static_cast<size_t>(len)));
    at += static_cast<size_t>(len);
  }
  if (at != pack.size()) return Corrupt(std::to_string(pack.size() - at) + " trailing bytes");
  return Status::Ok();
}

std::string Encode(std::span<const std::string_view> items, bool pairs) {
  const size_t count = pairs ? items.size() / 2 : items.size();
  size_t size = VarintSize(count);
  for (std::string_view item : items) size += VarintSize(item.size()) + item.size();
  std::string out;
  out.reserve(size);
  PutVarint(count, &out);
  for (std::string_view item : items) {
    PutVarint(item.size(), &out);
    out.append(item);
  }
  return out;
}

Status Validate(std::string_view pack, bool pairs) {
  if (pack.empty()) return Corrupt("empty");
  uint64_t items = 0;
  size_t end = 0;
  Status s = Walk(pack, pairs, [&](uint64_t, std::string_view item) {
    ++items;
    end = static_cast<size_t>(item.data() + item.size() - pack.data());
    return true;
  });
  if (!s.ok()) return s;
  if (*Count(pack) > kMaxElements) return Corrupt("over the element limit");
  if (items == 0) {
    size_t at = 0;
    uint64_t count = 0;
    (void)GetVarint(pack, &at, &count);
    end = at;
  }
  if (end != pack.size()) return Corrupt(std::to_string(pack.size() - end) + " trailing bytes");
  if (items == 0) return Corrupt("no element (an empty collection is not stored)");
  return Status::Ok();
}

Result<uint64_t> Count(std::string_view pack) {
  size_t at = 0;
  uint64_t count = 0;
  if (!GetVarint(pack, &at, &count)) return Corrupt("no element count");
  return count;
}

bool FitsSmall(std::span<const std::string_view> items, bool pairs) {
  const size_t elements = pairs ? items.size() / 2 : items.size();
  if (elements > kSmallMaxItems) return false;
  return std::all_of(items.begin(), items.end(),
                     [](std::string_view item) { return item.size() <= kSmallMaxItemBytes; });
}

// ---- Hashes: items are field, value, field, value, ...

namespace {

// The index of `field`'s name in a hash's items, or -1 (one lookup: a scan).
int64_t FindField(const std::vector<std::string_view>& items, std::string_view field) {
  for (size_t i = 0; i < items.size(); i += 2) {
    if (items[i] == field) return static_cast<int64_t>(i);
  }
  return -1;
}

// Where each distinct item of a collection is, for writes that look up many names: a
// linear scan below a few dozen items, a hash table above, so that a write of m names to
// a collection of n items costs O(n + m), never O(n * m) (a caller may send a million).
class ItemIndex {
 public:
  // Indexes items[0], items[stride], items[2 * stride], ... (a hash's fields: stride 2).
  ItemIndex(const std::vector<std::string_view>& items, size_t stride)
      : items_(items), stride_(stride) {
    if (items.size() / stride <= kLinearMax) return;
    table_.reserve(items.size() / stride * 2);
    for (size_t i = 0; i < items.size(); i += stride) table_.emplace(items[i], i);
  }
  // The position of `name`, or -1.
  int64_t Find(std::string_view name) const {
    if (table_.empty() && items_.size() / stride_ <= kLinearMax) {
      for (size_t i = 0; i < items_.size(); i += stride_) {
        if (items_[i] == name) return static_cast<int64_t>(i);
      }
      return -1;
    }
    const auto it = table_.find(name);
    return it == table_.end() ? -1 : static_cast<int64_t>(it->second);
  }
  // Records that items[at] (just appended) is `name`.
  void Added(std::string_view name, size_t at) {
    if (!table_.empty() || items_.size() / stride_ > kLinearMax) {
      if (table_.empty()) {  // Crossed the threshold: index what is there.
        for (size_t i = 0; i < items_.size(); i += stride_) table_.emplace(items_[i], i);
      }
      table_.emplace(name, at);
    }
  }

 private:
  static constexpr size_t kLinearMax = 32;
  const std::vector<std::string_view>& items_;
  size_t stride_;
  std::unordered_map<std::string_view, size_t> table_;
};

// The items with those at the marked positions (each `stride` long) left out.
std::vector<std::string_view> Without(const std::vector<std::string_view>& items,
                                      const std::vector<bool>& drop, size_t stride) {
  std::vector<std::string_view> kept;
  kept.reserve(items.size());
  for (size_t i = 0; i < items.size(); i += stride) {
    if (drop[i]) continue;
    for (size_t j = 0; j < stride; ++j) kept.push_back(items[i + j]);
  }
  return kept;
}

}  // namespace

Result<Write> HashSet(std::string_view pack, std::span<const FieldValue> pairs, bool only_new) {
  if (pairs.empty()) return Status::InvalidArgument("HSET needs at least one field and value");
  std::vector<std::string_view> items;
  if (Status s = Items(pack, true, &items); !s.ok()) return s;
  // More pairs than any hash may hold: refused before indexing them.
  if (pairs.size() > kMaxElements) return CheckElements(pairs.size());
  ItemIndex index(items, 2);
  Write w;
  for (const auto& [field, value] : pairs) {
    const int64_t at = index.Find(field);
    if (at >= 0) {
      if (!only_new) items[static_cast<size_t>(at) + 1] = value;
      continue;
    }
    items.push_back(field);
    items.push_back(value);
    index.Added(field, items.size() - 2);
    ++w.n;
  }
  if (Status s = CheckElements(items.size() / 2); !s.ok()) return s;
  w.pack = PackOf(items, true);
  return w;
}

Result<Write> HashDel(std::string_view pack, std::span<const std::string_view> fields) {
  std::vector<std::string_view> items;
  if (Status s = Items(pack, true, &items); !s.ok()) return s;
  ItemIndex index(items, 2);
  std::vector<bool> drop(items.size(), false);
  Write w;
  for (std::string_view field : fields) {
    const int64_t at = index.Find(field);
    if (at < 0 || drop[static_cast<size_t>(at)]) continue;
    drop[static_cast<size_t>(at)] = true;
    ++w.n;
  }
  w.pack = w.n == 0 ? std::string(pack) : PackOf(Without(items, drop, 2), true);
  return w;
}

Result<std::optional<std::string_view>> HashGet(std::string_view pack, std::string_view field) {
  std::optional<std::string_view> found;
  bool matched = false;  // The field just read was `field`: the next item is its value.
  Status s = Walk(pack, true, [&](uint64_t i, std::string_view item) {
    if (i % 2 == 0) {
      matched = item == field;
    } else if (matched) {
      found = item;
      return false;
    }
    return true;
  });
  if (!s.ok()) return s;
  return found;
}

Result<Write> HashIncrBy(std::string_view pack, std::string_view field, int64_t delta) {
  std::vector<std::string_view> items;
  if (Status s = Items(pack, true, &items); !s.ok()) return s;
  const int64_t at = FindField(items, field);
  int64_t current = 0;
  if (at >= 0 && !ParseInt64(items[static_cast<size_t>(at) + 1], &current)) {
    return Status::FailedPrecondition("hash value is not an integer");
  }
  int64_t next = 0;
  if (__builtin_add_overflow(current, delta, &next)) {
    return Status::OutOfRange("increment or decrement would overflow");
  }
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), next);
  (void)ec;  // 24 bytes always hold an int64.
  const std::string_view text(buf, static_cast<size_t>(end - buf));
  if (at >= 0) {
    items[static_cast<size_t>(at) + 1] = text;
  } else {
    items.push_back(field);
    items.push_back(text);
  }
  if (Status s = CheckElements(items.size() / 2); !s.ok()) return s;
  return Write{Encode(items, true), next};  // Encoded while `text` lives.
}

Result<std::vector<std::optional<std::string_view>>> HashMGet(
    std::string_view pack, std::span<const std::string_view> fields) {
  std::vector<std::string_view> items;
  if (Status s = Items(pack, true, &items); !s.ok()) return s;
  const ItemIndex index(items, 2);
  std::vector<std::optional<std::string_view>> out;
  out.reserve(fields.size());
  for (std::string_view field : fields) {
    const int64_t at = index.Find(field);
    out.push_back(at < 0 ? std::nullopt : std::optional(items[static_cast<size_t>(at) + 1]));
  }
  return out;
}

Result<Write> HashIncrByFloat(std::string_view pack, std::string_view field,
                              std::string_view increment, std::string* text) {
  long double by = 0;
  if (!ParseFloatText(increment, &by)) return Status::InvalidArgument("value is not a valid float");
  if (std::isinf(by)) return Status::InvalidArgument("value is NaN or Infinity");
  std::vector<std::string_view> items;
  if (Status s = Items(pack, true, &items); !s.ok()) return s;
  const int64_t at = FindField(items, field);
  long double current = 0;
  if (at >= 0 && !ParseFloatText(items[static_cast<size_t>(at) + 1], &current)) {
    return Status::FailedPrecondition("hash value is not a float");
  }
  const long double next = current + by;
  if (std::isnan(next) || std::isinf(next)) {
    return Status::FailedPrecondition("increment would produce NaN or Infinity");
  }
  *text = FormatFloatText(next);
  if (at >= 0) {
    items[static_cast<size_t>(at) + 1] = *text;
  } else {
    items.push_back(field);
    items.push_back(*text);
  }
  if (Status s = CheckElements(items.size() / 2); !s.ok()) return s;
  return Write{Encode(items, true), 0};
}

// ---- Lists.

Result<Write> ListPush(std::string_view pack, Side side,
                       std::span<const std::string_view> elements) {
  if (elements.empty()) return Status::InvalidArgument("a push needs at least one element");
  if (elements.size() > kMaxElements) return CheckElements(elements.size());
  std::vector<std::string_view> items;
  if (Status s = Items(pack, false, &items); !s.ok()) return s;
  if (side == Side::kRight) {
    items.insert(items.end(), elements.begin(), elements.end());
  } else {
    // LPUSH a b c pushes a, then b, then c at the head: c b a ...
    items.insert(items.begin(), elements.rbegin(), elements.rend());
  }
  if (Status s = CheckElements(items.size()); !s.ok()) return s;
  return Write{Encode(items), static_cast<int64_t>(items.size())};
}

Result<Write> ListPop(std::string_view pack, Side side, uint64_t count,
                      std::vector<std::string>* popped) {
  popped->clear();
  std::vector<std::string_view> items;
  if (Status s = Items(pack, false, &items); !s.ok()) return s;
  const size_t n = static_cast<size_t>(std::min<uint64_t>(count, items.size()));
  popped->reserve(n);
  if (side == Side::kLeft) {
    for (size_t i = 0; i < n; ++i) popped->emplace_back(items[i]);
    items.erase(items.begin(), items.begin() + static_cast<ptrdiff_t>(n));
  } else {
    for (size_t i = 0; i < n; ++i) popped->emplace_back(items[items.size() - 1 - i]);
    items.resize(items.size() - n);
  }
  return Write{n == 0 ? std::string(pack) : PackOf(items), static_cast<int64_t>(n)};
}

Result<std::vector<std::string_view>> ListRange(std::string_view pack, int64_t start,
                                                int64_t stop) {
  std::vector<std::string_view> out;
  if (pack.empty()) return out;
  Result<uint64_t> count = Count(pack);
  if (!count.ok()) return count.status();
  if (*count > kMaxElements) return Corrupt("count over the limit");
  const auto size = static_cast<int64_t>(*count);
  start = std::max<int64_t>(Normalize(start, size), 0);
  stop = std::min<int64_t>(Normalize(stop, size), size - 1);
  if (start > stop || start >= size) return out;
  // Only the range is collected: a read of a few elements of a long list allocates few.
  out.reserve(static_cast<size_t>(stop - start + 1));
  Status s = Walk(pack, false, [&](uint64_t i, std::string_view item) {
    const auto at = static_cast<int64_t>(i);
    if (at >= start) out.push_back(item);
    return at < stop;
  });
  if (!s.ok()) return s;
  return out;
}

Result<std::optional<std::string_view>> ListIndex(std::string_view pack, int64_t index) {
  Result<std::vector<std::string_view>> one = ListRange(pack, index, index);
  if (!one.ok()) return one.status();
  // ListRange clamps; an index out of range is none (LINDEX gives nil).
  const int64_t size = pack.empty() ? 0 : static_cast<int64_t>(*Count(pack));
  const int64_t at = Normalize(index, size);
  if (at < 0 || at >= size || one->empty()) return std::optional<std::string_view>();
  return std::optional<std::string_view>(one->front());
}

Result<Write> ListSet(std::string_view pack, int64_t index, std::string_view element) {
  if (pack.empty()) return Status::NotFound("no such key");
  std::vector<std::string_view> items;
  if (Status s = Items(pack, false, &items); !s.ok()) return s;
  const int64_t at = Normalize(index, static_cast<int64_t>(items.size()));
  if (at < 0 || at >= static_cast<int64_t>(items.size())) {
    return Status::OutOfRange("index out of range");
  }
  items[static_cast<size_t>(at)] = element;
  return Write{Encode(items), static_cast<int64_t>(items.size())};
}

Result<Write> ListInsert(std::string_view pack, bool before, std::string_view pivot,
                         std::string_view element) {
  std::vector<std::string_view> items;
  if (Status s = Items(pack, false, &items); !s.ok()) return s;
  const auto it = std::find(items.begin(), items.end(), pivot);
  if (it == items.end()) return Write{std::string(pack), pack.empty() ? 0 : -1};
  items.insert(before ? it : it + 1, element);
  if (Status s = CheckElements(items.size()); !s.ok()) return s;
  return Write{Encode(items), static_cast<int64_t>(items.size())};
}

Result<Write> ListRem(std::string_view pack, int64_t count, std::string_view element) {
  std::vector<std::string_view> items;
  if (Status s = Items(pack, false, &items); !s.ok()) return s;
  // |count| without overflow for INT64_MIN: all of them, as 0 does, just from the tail.
  uint64_t limit = UINT64_MAX;
  if (count > 0) limit = static_cast<uint64_t>(count);
  if (count < 0) limit = 0 - static_cast<uint64_t>(count);
  std::vector<bool> drop(items.size(), false);
  uint64_t removed = 0;
  const auto visit = [&](size_t i) {
    if (removed < limit && items[i] == element) {
      drop[i] = true;
      ++removed;
    }
  };
  if (count >= 0) {
    for (size_t i = 0; i < items.size(); ++i) visit(i);
  } else {
    for (size_t i = items.size(); i-- > 0;) visit(i);
  }
  if (removed == 0) return Write{std::string(pack), 0};
  std::vector<std::string_view> kept;
  kept.reserve(items.size() - removed);
  for (size_t i = 0; i < items.size(); ++i) {
    if (!drop[i]) kept.push_back(items[i]);
  }
  return Write{PackOf(kept), static_cast<int64_t>(removed)};
}

Result<std::vector<int64_t>> ListPos(std::string_view pack, std::string_view element, int64_t rank,
                                     int64_t count, int64_t maxlen) {
  std::vector<int64_t> out;
  std::vector<std::string_view> items;
  if (Status s = Items(pack, false, &items); !s.ok()) return s;
  const auto size = static_cast<int64_t>(items.size());
  const int64_t limit = maxlen == 0 ? size : std::min(maxlen, size);
  // Matches to skip before the first answered: rank 2 skips one. -INT64_MAX at least.
  uint64_t skip = rank > 0 ? static_cast<uint64_t>(rank) - 1 : static_cast<uint64_t>(-rank) - 1;
  for (int64_t seen = 0; seen < limit; ++seen) {
    const int64_t at = rank > 0 ? seen : size - 1 - seen;
    if (items[static_cast<size_t>(at)] != element) continue;
    if (skip > 0) {
      --skip;
      continue;
    }
    out.push_back(at);
    if (count != 0 && static_cast<int64_t>(out.size()) >= count) break;
  }
  return out;
}

Result<Write> Remove(std::string_view pack, bool pairs, std::span<const size_t> positions) {
  std::vector<std::string_view> items;
  if (Status s = Items(pack, pairs, &items); !s.ok()) return s;
  const size_t stride = pairs ? 2 : 1;
  std::vector<bool> drop(items.size(), false);
  int64_t n = 0;
  for (size_t at : positions) {
    const size_t i = at * stride;
    if (i >= items.size() || drop[i]) continue;
    drop[i] = true;
    ++n;
  }
  return Write{PackOf(Without(items, drop, stride), pairs), n};
}

Result<Write> ListTrim(std::string_view pack, int64_t start, int64_t stop) {
  std::vector<std::string_view> items;
  if (Status s = Items(pack, false, &items); !s.ok()) return s;
  Result<std::vector<std::string_view>> kept = ListRange(pack, start, stop);
  if (!kept.ok()) return kept.status();
  const auto removed = static_cast<int64_t>(items.size() - kept->size());
  if (removed == 0) return Write{std::string(pack), 0};
  return Write{PackOf(*kept), removed};
}

// ---- Sets.

Result<Write> SetAdd(std::string_view pack, std::span<const std::string_view> members) {
  if (members.empty()) return Status::InvalidArgument("SADD needs at least one member");
  if (members.size() > kMaxElements) return CheckElements(members.size());
  std::vector<std::string_view> items;
  if (Status s = Items(pack, false, &items); !s.ok()) return s;
  ItemIndex index(items, 1);
  Write w;
  for (std::string_view m : members) {
    if (index.Find(m) >= 0) continue;
    items.push_back(m);
    index.Added(m, items.size() - 1);
    ++w.n;
  }
  if (Status s = CheckElements(items.size()); !s.ok()) return s;
  w.pack = w.n == 0 ? std::string(pack) : Encode(items);
  return w;
}

Result<Write> SetRem(std::string_view pack, std::span<const std::string_view> members) {
  std::vector<std::string_view> items;
  if (Status s = Items(pack, false, &items); !s.ok()) return s;
  ItemIndex index(items, 1);
  std::vector<bool> drop(items.size(), false);
  Write w;
  for (std::string_view m : members) {
    const int64_t at = index.Find(m);
    if (at < 0 || drop[static_cast<size_t>(at)]) continue;
    drop[static_cast<size_t>(at)] = true;
    ++w.n;
  }
  w.pack = w.n == 0 ? std::string(pack) : PackOf(Without(items, drop, 1));
  return w;
}

Result<std::vector<bool>> SetMIsMember(std::string_view pack,
                                       std::span<const std::string_view> members) {
  std::vector<std::string_view> items;
  if (Status s = Items(pack, false, &items); !s.ok()) return s;
  const ItemIndex index(items, 1);
  std::vector<bool> out;
  out.reserve(members.size());
  for (std::string_view m : members) out.push_back(index.Find(m) >= 0);
  return out;
}

Result<bool> SetIsMember(std::string_view pack, std::string_view member) {
  bool found = false;
  Status s = Walk(pack, false, [&](uint64_t, std::string_view item) {
    found = item == member;
    return !found;
  });
  if (!s.ok()) return s;
  return found;
}

}  // namespace ringcache::typed
