// Typed values on a ringcache::Cache: hashes, lists and sets (docs/design/typed-values.md).
//
// Each function is one atomic operation on one key, with Redis's semantics: a write runs
// under the key's shard lock (Cache::Update); if it changes the collection it gives the
// key a new version and fills the WriteRecord it is given (a kSet of the collection's new
// pack with its type, or a kDelete when the last element goes: no collection is ever
// empty), and if it changes nothing it leaves both as they were. A read works on the
// stored pack in place, without a lock. An operation on a key of another type is WrongType()
// (FAILED_PRECONDITION "WRONGTYPE ..."); an absent key reads as empty. A write keeps the
// key's expiry; a key it creates never expires.
//
//   std::pair<std::string_view, std::string_view> fields[] = {{"name", "Ada"}, {"age", "36"}};
//   ringcache::HashSet(*cache, "user:42", fields);           // 2 fields added
//   ringcache::HashGet(*cache, "user:42", "age").value();    // optional "36"
//
// This step stores every collection in the compact pack (limited by the cache's
// max_value_bytes, and copied whole by each write); large collections get an index of
// their own in a later step (the design's section 2).
//
// Every front end runs the same operations through one entry point: a TypedOp (a command
// of the vocabulary below and its arguments) run by RunTyped on a TypedStore, which is a
// Cache (CacheStore) or anything that wraps one and adds to each write (a ringcached node
// replicates it). The functions above the vocabulary are convenience forms of RunTyped
// on a Cache.
//
// Thread safety: as the Cache's: every function may be called concurrently.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ringcache/cache.h"
#include "ringcache/key_hash.h"
#include "ringcache/status.h"
#include "ringcache/value_type.h"
#include "ringcache/write_record.h"

namespace ringcache {

using FieldValue = std::pair<std::string_view, std::string_view>;

// ---- Hashes.

// HSET (the number of fields added); with `only_new`, HSETNX (fields that exist stay).
// INVALID_ARGUMENT for no fields.
Result<int64_t> HashSet(Cache& cache, const HashedKey& key, std::span<const FieldValue> fields,
                        bool only_new = false, WriteRecord* record = nullptr);
// HDEL (the number of fields removed).
Result<int64_t> HashDel(Cache& cache, const HashedKey& key,
                        std::span<const std::string_view> fields, WriteRecord* record = nullptr);
// HINCRBY (the new value). FAILED_PRECONDITION "hash value is not an integer";
// OUT_OF_RANGE "increment or decrement would overflow".
Result<int64_t> HashIncrBy(Cache& cache, const HashedKey& key, std::string_view field,
                           int64_t delta, WriteRecord* record = nullptr);
// HGET: the value, or nullopt (no such field or key).
Result<std::optional<std::string>> HashGet(const Cache& cache, const HashedKey& key,
                                           std::string_view field);
// HGETALL: field, value pairs in insertion order (none for an absent key).
Result<std::vector<std::pair<std::string, std::string>>> HashGetAll(const Cache& cache,
                                                                    const HashedKey& key);
// HLEN.
Result<uint64_t> HashLen(const Cache& cache, const HashedKey& key);

// ---- Lists.

enum class ListEnd : uint8_t { kLeft, kRight };

// LPUSH / RPUSH (the new length). INVALID_ARGUMENT for no elements.
Result<int64_t> ListPush(Cache& cache, const HashedKey& key, ListEnd end,
                         std::span<const std::string_view> elements, WriteRecord* record = nullptr);
// LPOP / RPOP with a count: up to `count` elements, in pop order.
Result<std::vector<std::string>> ListPop(Cache& cache, const HashedKey& key, ListEnd end,
                                         uint64_t count, WriteRecord* record = nullptr);
// LRANGE start stop (inclusive; negative counts from the end).
Result<std::vector<std::string>> ListRange(const Cache& cache, const HashedKey& key, int64_t start,
                                           int64_t stop);
// LLEN.
Result<uint64_t> ListLen(const Cache& cache, const HashedKey& key);

// ---- Sets.

// SADD / SREM (the number of members added / removed).
Result<int64_t> SetAdd(Cache& cache, const HashedKey& key,
                       std::span<const std::string_view> members, WriteRecord* record = nullptr);
Result<int64_t> SetRem(Cache& cache, const HashedKey& key,
                       std::span<const std::string_view> members, WriteRecord* record = nullptr);
// SISMEMBER.
Result<bool> SetIsMember(const Cache& cache, const HashedKey& key, std::string_view member);
// SMEMBERS (in insertion order; Redis promises no order).
Result<std::vector<std::string>> SetMembers(const Cache& cache, const HashedKey& key);
// SCARD.
Result<uint64_t> SetCard(const Cache& cache, const HashedKey& key);

// ---- The vocabulary: every typed command, for every front end.

// A command on a hash, list or set. Numbered for the wire (proto/ringcache/v1/cache.proto's
// CollectionCommand has the same numbers): never renumber.
enum class TypedCommand : uint8_t {
  kHSet = 1,
  kHSetNx = 2,
  kHGet = 3,
  kHMGet = 4,
  kHDel = 5,
  kHGetAll = 6,
  kHKeys = 7,
  kHVals = 8,
  kHLen = 9,
  kHExists = 10,
  kHStrLen = 11,
  kHIncrBy = 12,
  kHIncrByFloat = 13,
  kHRandField = 14,
  kHScan = 15,
  kLPush = 20,
  kRPush = 21,
  kLPushX = 22,
  kRPushX = 23,
  kLPop = 24,
  kRPop = 25,
  kLRange = 26,
  kLLen = 27,
  kLIndex = 28,
  kLSet = 29,
  kLInsert = 30,
  kLTrim = 31,
  kLRem = 32,
  kLPos = 33,
  kSAdd = 40,
  kSRem = 41,
  kSIsMember = 42,
  kSMIsMember = 43,
  kSMembers = 44,
  kSCard = 45,
  kSPop = 46,
  kSRandMember = 47,
  kSScan = 48,
};

// What a command is: its Redis name (lower case), the type of key it acts on, whether it
// writes, and how many strings it takes after the key (args; max_args -1 = no limit).
struct TypedCommandInfo {
  TypedCommand command;
  std::string_view name;
  ValueType type;
  bool write;
  int min_args;
  int max_args;
};
// The command numbered `number` on the wire, or nullptr if there is none.
const TypedCommandInfo* TypedCommandNumbered(uint32_t number);
// The command named `name` (any case: "HSET", "hset"), or nullptr.
const TypedCommandInfo* TypedCommandNamed(std::string_view name);
const TypedCommandInfo& InfoOf(TypedCommand command);
// The keyspace event a write command reports (Redis's: "hset" for HSET and HSETNX,
// "lpush" for LPUSH and LPUSHX, otherwise the command's name).
std::string_view KeyspaceEventOf(TypedCommand command);
// Every command, in number order.
std::span<const TypedCommandInfo> TypedCommands();

// One command on one key, with views of its arguments (which must outlive it). Which
// fields a command reads (docs/api.md has the table):
//   args    HSET field value [field value ...]; HSETNX field value; HGET, HEXISTS, HSTRLEN,
//           HINCRBY field; HMGET, HDEL field...; HINCRBYFLOAT field increment;
//           LPUSH/RPUSH/LPUSHX/RPUSHX element...; LSET element; LINSERT pivot element;
//           LREM element; LPOS element; SADD/SREM/SISMEMBER/SMISMEMBER member...
//   n       HINCRBY the increment; LINDEX, LSET the index; LRANGE, LTRIM the start;
//           LREM the count; LPOS the rank (1 or 0 = first match, -1 = last);
//           with `flag`, the count of LPOP/RPOP, SPOP (>= 0), SRANDMEMBER and HRANDFIELD
//           (negative: that many, repeats allowed).
//   stop    LRANGE, LTRIM: the stop index (inclusive); LPOS: MAXLEN (0 = the whole list).
//   flag    LINSERT: BEFORE (else AFTER); LPOP/RPOP, SPOP, SRANDMEMBER, HRANDFIELD: a
//           count was given (the reply is a list); LPOS: COUNT was given.
//   count   LPOS: COUNT (0 = every match). HSCAN, SSCAN: COUNT (0 = 10).
//   HSCAN, SSCAN: n is the cursor (0 to start; unsigned, in n's bits); args: the MATCH
//           pattern if there is one (at most 4096 bytes).
//   option  HRANDFIELD: WITHVALUES (field, value pairs).
struct TypedOp {
  TypedCommand command = TypedCommand::kHGet;
  std::span<const std::string_view> args{};
  int64_t n = 0;
  int64_t stop = 0;
  bool flag = false;
  int64_t count = 0;
  bool option = false;
  // A write: run only if the key's version is this (compare-and-set on any type);
  // FAILED_PRECONDITION "version mismatch" otherwise, NOT_FOUND if the key is absent.
  // 0 = unconditional. Reads ignore it.
  uint64_t if_version = 0;
};

// What a command gave. Which fields are set depends on the command:
//   integer  HSET, HSETNX, HDEL, HLEN, HEXISTS, HSTRLEN, HINCRBY, the pushes, LLEN,
//            LINSERT, LREM, SADD, SREM, SISMEMBER, SCARD: Redis's integer reply. LPOS
//            without COUNT: the index, or `nil`.
//   items    HGET, HINCRBYFLOAT, LINDEX, LPOP/RPOP, SPOP, SRANDMEMBER, HRANDFIELD without
//            a count: one item, or none with `nil`. SPOP, SRANDMEMBER, HRANDFIELD with a
//            count: the items picked (none for an absent key; HRANDFIELD WITHVALUES: field,
//            value, ...). HMGET: one per field, in order (absent ones "" and listed in
//            `absent`). HGETALL: field, value, field, value, ...; HKEYS, HVALS,
//            LRANGE, LPOP/RPOP with a count (nil for an absent key), SMEMBERS: the items.
//   integers SMISMEMBER: 1 or 0 per member. LPOS with COUNT: the indexes of the matches.
//   HSCAN, SSCAN: `integer` is the next cursor (0: done; unsigned, in its bits) and
//            `items` the elements (HSCAN: field, value, ...). A collection of the small
//            encoding's size comes whole in any call, as Redis's listpacks do;
//            a larger one in the order of its elements' hashes, so that an element
//            present for the whole scan is returned exactly once.
//   version  the key's version after a write (0 if it no longer exists); a read: the
//            version it read (0 for an absent key).
struct TypedReply {
  int64_t integer = 0;
  bool nil = false;
  std::vector<std::string> items;
  std::vector<uint32_t> absent;
  std::vector<int64_t> integers;
  uint64_t version = 0;

  // Bytes of the items.
  size_t ItemBytes() const;
  // What the reply costs to hold or send: the items' bytes plus a string's overhead per
  // item (an empty item still costs one), and the numbers (for response budgets).
  size_t ApproxBytes() const;
};

using UpdateFn = std::function<Status(const ItemView* current, Mutation* mutation)>;

// Where typed commands run: a key's stored pack and a read-modify-write of it.
class TypedStore {
 public:
  virtual ~TypedStore() = default;
  // Cache::VisitTyped's contract: visitor.Visit(pack, meta) with the pack of `key` in
  // place, if it holds `type`; NOT_FOUND if absent.
  virtual Status Read(const HashedKey& key, ValueType type, Cache::ValueVisitor& visitor) const = 0;
  // Cache::Update's contract, with the type the key must hold.
  virtual Result<UpdateResult> Update(const HashedKey& key, const UpdateFn& fn,
                                      ValueType expected) = 0;
};

// A Cache as a TypedStore; each write's record goes to `record` (may be null). Built from a
// const Cache, it only reads (a write is FAILED_PRECONDITION).
class CacheStore final : public TypedStore {
 public:
  explicit CacheStore(Cache& cache, WriteRecord* record = nullptr)
      : reader_(cache), writer_(&cache), record_(record) {}
  explicit CacheStore(const Cache& cache) : reader_(cache) {}
  Status Read(const HashedKey& key, ValueType type, Cache::ValueVisitor& visitor) const override;
  Result<UpdateResult> Update(const HashedKey& key, const UpdateFn& fn,
                              ValueType expected) override;

 private:
  const Cache& reader_;
  Cache* writer_ = nullptr;
  WriteRecord* record_ = nullptr;
};

// INVALID_ARGUMENT (naming the command and what it needs) if `op` has the wrong number of
// arguments for its command (an HSET with a field and no value, an LPOP with a negative
// count). Checked by RunTyped too; a front end calls it before routing, to refuse early.
Status CheckTypedOp(const TypedOp& op);

// Redis's arguments of `info`'s command after its key (HSET's field value ..., LRANGE's
// start stop, LINSERT's BEFORE|AFTER pivot element, LPOP's optional count) as a TypedOp
// in *op, whose args view into `args`. Numbers and keywords are parsed and checked here,
// before any key is looked at, as Redis does. INVALID_ARGUMENT with Redis's message
// (without its "ERR "): "wrong number of arguments for 'hset' command", "value is not an
// integer or out of range", "syntax error", "value is out of range, must be positive",
// "value is not a valid float", "value is NaN or Infinity". Front ends that take Redis's
// words (the RESP port, ringcache-cli) share it.
Status ParseRedisArgs(const TypedCommandInfo& info, std::span<const std::string_view> args,
                      TypedOp* op);

// Runs `op` on `key` in `store` and fills `reply`, with Redis's semantics (the header's
// comment). Errors: CheckTypedOp's; WrongType(); the command's own (HINCRBY on a value
// that is not an integer, LSET out of range, ...); the store's (limits, budget).
Status RunTyped(TypedStore& store, const HashedKey& key, const TypedOp& op, TypedReply* reply);

}  // namespace ringcache
