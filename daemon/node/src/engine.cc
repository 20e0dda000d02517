#include "engine.h"

#include <cmath>
#include <utility>

#include "ringcache/float_text.h"
#include "ringcache/typed.h"

namespace ringcache::internal {

namespace {

// A Set that reads the entry it replaces (KEEPTTL, GET) or sets an absolute expiry: one
// Update under the key's lock, so that the previous value and the kept expiry are exactly
// the replaced entry's. An absolute expiry already past removes the key (Cache::Update).
// The absolute deadline of a TTL from now (0 = never), or INVALID_ARGUMENT as the cache
// words it for a TTL over its limit (checked first: now + ttl must not overflow).
Status DeadlineAfter(Node* node, uint64_t ttl_ms, int64_t* deadline) {
  if (ttl_ms > Cache::kMaxTtlMs) {
    return Status::InvalidArgument("ttl_ms " + std::to_string(ttl_ms) + " is over the limit of " +
                                   std::to_string(Cache::kMaxTtlMs) + " ms (100 years)");
  }
  Clock* clock = node->options().clock != nullptr ? node->options().clock : Clock::System();
  *deadline = ttl_ms == 0 ? 0 : clock->NowMs() + static_cast<int64_t>(ttl_ms);
  return Status::Ok();
}

void SetReadingOld(Node* node, const Op& op, OpResult* result, WriteTicket* ticket) {
  int64_t deadline = op.expires_at_ms;
  if (deadline == 0) {
    if (Status s = DeadlineAfter(node, op.set.ttl_ms, &deadline); !s.ok()) {
      result->status = std::move(s);
      return;
    }
  }
  bool refused_quietly = false;
  Result<UpdateResult> r = node->Update(
      op.key,
      [&](const ItemView* current, Mutation* m) {
        if (op.return_previous && current != nullptr) {
          result->had_previous = true;
          if (result->value != nullptr) result->value->assign(current->value);
        }
        Status refused =
            CheckSetMode(op.set, current != nullptr ? &current->meta.version : nullptr);
        if (!refused.ok()) {
          if (!op.return_previous) return refused;
          refused_quietly = true;  // SET ... NX GET: the previous value, nothing written.
          return Status::Ok();
        }
        m->kind = Mutation::Kind::kSet;
        // As Redis: a TTL given (not kept) is an "expire" after the "set".
        m->event = !op.keep_ttl && deadline != 0 ? "set expire" : "set";
        m->value.assign(op.value);
        m->keep_deadline = op.keep_ttl;
        m->deadline_ms = deadline;
        return Status::Ok();
      },
      // SET ... GET reads a string; a plain SET replaces a key of any type, as Redis's.
      ticket, op.return_previous ? std::optional(ValueType::kString) : std::nullopt);
  result->status = r.status();
  if (r.ok() && !refused_quietly) result->version = r->after.version;
}

// INCRBYFLOAT: the value and the increment parsed as long double (Redis's string2ld), the
// sum stored as text (Redis's ld2string, LD_STR_HUMAN: "%.17Lf" without trailing zeros),
// in one Update on the primary. A key it creates gets op.ttl_ms; an existing key keeps
// its expiry. The new text goes to result->value (if set).
void IncrFloat(Node* node, const Op& op, OpResult* result, WriteTicket* ticket) {
  long double increment = 0;
  if (!ParseFloatText(op.value, &increment)) {
    result->status = Status::InvalidArgument("value is not a valid float");
    return;
  }
  int64_t deadline = 0;
  if (Status s = DeadlineAfter(node, op.ttl_ms, &deadline); !s.ok()) {
    result->status = std::move(s);
    return;
  }
  std::string text;
  Result<UpdateResult> r = node->Update(
      op.key,
      [&](const ItemView* current, Mutation* m) {
        long double value = 0;
        if (current != nullptr && !ParseFloatText(current->value, &value)) {
          return Status::FailedPrecondition("value is not a valid float");
        }
        value += increment;
        if (std::isnan(value) || std::isinf(value)) {
          return Status::FailedPrecondition("increment would produce NaN or Infinity");
        }
        text = FormatFloatText(value);
        m->kind = Mutation::Kind::kSet;
        m->event = "incrbyfloat";
        m->value = text;
        m->keep_deadline = current != nullptr;
        m->deadline_ms = deadline;
        return Status::Ok();
      },
      ticket);
  result->status = r.status();
  if (!r.ok()) return;
  result->version = r->after.version;
  if (result->value != nullptr) *result->value = std::move(text);
}

// A Delete that answers the value it removes (GETDEL), in one Update. An absent key is
// not an error then: had_previous stays false.
void DeleteReadingOld(Node* node, const Op& op, OpResult* result, WriteTicket* ticket) {
  Result<UpdateResult> r = node->Update(
      op.key,
      [&](const ItemView* current, Mutation* m) {
        if (current == nullptr) return Status::Ok();
        result->had_previous = true;
        if (result->value != nullptr) result->value->assign(current->value);
        m->kind = Mutation::Kind::kDelete;
        m->event = "del";
        return Status::Ok();
      },
      ticket);
  result->status = r.status();
}

// Whether a Touch's condition holds for an entry whose expiry is `current` and a new
// expiry `next` (0 = never, which is later than any time, as Redis counts it).
bool ExpiryConditionHolds(Op::ExpireIf condition, int64_t current, int64_t next) {
  auto later = [](int64_t a, int64_t b) {  // a > b, with 0 as infinity.
    if (a == 0) return b != 0;
    return b != 0 && a > b;
  };
  switch (condition) {
    case Op::ExpireIf::kAlways:
      return true;
    case Op::ExpireIf::kNone:
      return current == 0;
    case Op::ExpireIf::kSome:
      return current != 0;
    case Op::ExpireIf::kLater:
      return later(next, current);
    case Op::ExpireIf::kEarlier:
      return later(current, next);
    case Op::ExpireIf::kSomeAndEarlier:
      return current != 0 && later(current, next);
  }
  return false;
}

// A Touch with a condition, an absolute expiry or a value to answer (EXPIRE NX/XX/GT/LT,
// EXPIREAT, PERSIST, GETEX): one Update. An expiry already past removes the key.
void TouchReadingOld(Node* node, const Op& op, OpResult* result, WriteTicket* ticket) {
  int64_t next = op.expires_at_ms;
  if (next == 0) {
    if (Status s = DeadlineAfter(node, op.ttl_ms, &next); !s.ok()) {
      result->status = std::move(s);
      return;
    }
  }
  Result<UpdateResult> r = node->Update(
      op.key,
      [&](const ItemView* current, Mutation* m) {
        if (current == nullptr) return Status::NotFound("key not found");
        if (op.return_value && result->value != nullptr) result->value->assign(current->value);
        if (!ExpiryConditionHolds(op.expire_if, current->meta.deadline_ms, next)) {
          result->integer = 0;
          return Status::Ok();
        }
        result->integer = 1;
        m->kind = Mutation::Kind::kExpire;
        m->event = next == 0 ? "persist" : "expire";  // Redis's names (PERSIST, GETEX).
        m->deadline_ms = next;
        return Status::Ok();
      },
      // GETEX reads a string; EXPIRE and PERSIST act on a key of any type.
      ticket, op.return_value ? std::optional(ValueType::kString) : std::nullopt);
  result->status = r.status();
}

// SETRANGE and APPEND: bytes written into the value (an absent key counts as empty), its
// expiry kept, in one Update. The result is the new length. As Redis: SETRANGE of nothing
// creates nothing; APPEND creates the key even with nothing.
void SetRange(Node* node, const Op& op, OpResult* result, WriteTicket* ticket) {
  const uint64_t max = node->options().max_value_bytes;
  if (!op.append && (op.offset > max || op.value.size() > max - op.offset)) {
    // Checked before anything is allocated: offset is the caller's number.
    result->status = Status::InvalidArgument(
        "offset " + std::to_string(op.offset) + " + " + std::to_string(op.value.size()) +
        " bytes is over the max_value_bytes limit of " + std::to_string(max));
    return;
  }
  Result<UpdateResult> r = node->Update(
      op.key,
      [&](const ItemView* current, Mutation* m) {
        const std::string_view old = current != nullptr ? current->value : std::string_view();
        if (op.append) {
          if (old.size() + op.value.size() > max) {
            return Status::InvalidArgument("appending " + std::to_string(op.value.size()) +
                                           " bytes to " + std::to_string(old.size()) +
                                           " is over the max_value_bytes limit of " +
                                           std::to_string(max));
          }
          m->value.reserve(old.size() + op.value.size());
          m->value.assign(old);
          m->value.append(op.value);
        } else {
          if (op.value.empty()) {  // Nothing to write: the length as it is.
            result->integer = static_cast<int64_t>(old.size());
            return Status::Ok();
          }
          const size_t end = op.offset + op.value.size();
          m->value.assign(old);
          if (m->value.size() < end) m->value.resize(end, '\0');
          m->value.replace(op.offset, op.value.size(), op.value);
        }
        result->integer = static_cast<int64_t>(m->value.size());
        m->kind = Mutation::Kind::kSet;
        m->event = op.append ? "append" : "setrange";
        m->keep_deadline = true;
        return Status::Ok();
      },
      ticket);
  result->status = r.status();
  if (r.ok()) result->version = r->after.version;
}

// A node as the store of typed commands: reads from its cache, writes through Node::Update
// (fenced, replicated, with the write's ticket).
class NodeStore final : public TypedStore {
 public:
  NodeStore(Node* node, WriteTicket* ticket) : node_(node), ticket_(ticket) {}
  Status Read(const HashedKey& key, ValueType type, Cache::ValueVisitor& visitor) const override {
    return node_->VisitTyped(key, type, visitor);
  }
  Result<UpdateResult> Update(const HashedKey& key, const UpdateFn& fn,
                              ValueType expected) override {
    return node_->Update(key, fn, ticket_, expected);
  }

 private:
  Node* const node_;
  WriteTicket* const ticket_;
};

void Typed(Node* node, const Op& op, OpResult* result, WriteTicket* ticket) {
  NodeStore store(node, ticket);
  result->status = RunTyped(store, op.key,
                            {.command = op.typed,
                             .args = op.args,
                             .n = op.n,
                             .stop = op.stop,
                             .flag = op.flag,
                             .count = op.count,
                             .option = op.option,
                             .if_version = op.if_version},
                            (result->typed = std::make_unique<TypedReply>()).get());
  result->version = result->typed->version;
}

}  // namespace

void ExecuteLocal(Node* node, const Op& op, OpResult* result, WriteTicket* ticket) {
  switch (op.kind) {
    case OpKind::kGet: {
      std::string scratch;
      ItemMeta meta;
      result->status =
          node->Get(op.key, result->value != nullptr ? result->value : &scratch, &meta);
      result->version = meta.version;
      result->expires_at_ms = meta.deadline_ms;
      return;
    }
    case OpKind::kTtl: {
      Result<uint64_t> ttl = node->Ttl(op.key, &result->value_type);
      result->status = ttl.status();
      if (ttl.ok()) result->integer = static_cast<int64_t>(*ttl);
      return;
    }
    case OpKind::kSet: {
      if (op.keep_ttl || op.return_previous || op.expires_at_ms != 0) {
        SetReadingOld(node, op, result, ticket);
        return;
      }
      Result<uint64_t> version = node->Set(op.key, op.value, op.set, ticket);
      result->status = version.status();
      if (version.ok()) result->version = *version;
      return;
    }
    case OpKind::kDelete:
      if (op.return_previous) {
        DeleteReadingOld(node, op, result, ticket);
        return;
      }
      result->status = node->Delete(op.key, ticket);
      return;
    case OpKind::kTouch:
      if (op.expire_if != Op::ExpireIf::kAlways || op.expires_at_ms != 0 || op.return_value) {
        TouchReadingOld(node, op, result, ticket);
        return;
      }
      result->status = node->Touch(op.key, op.ttl_ms, ticket);
      if (result->status.ok()) result->integer = 1;  // Changed.
      return;
    case OpKind::kIncr: {
      if (op.by_float) {
        IncrFloat(node, op, result, ticket);
        return;
      }
      Result<IncrResult> incr = node->Incr(op.key, op.delta, op.ttl_ms, ticket);
      result->status = incr.status();
      if (incr.ok()) {
        result->integer = incr->value;
        result->version = incr->version;
      }
      return;
    }
    case OpKind::kSetRange:
      SetRange(node, op, result, ticket);
      return;
    case OpKind::kTypedRead:
    case OpKind::kTypedWrite:
      Typed(node, op, result, ticket);
      return;
  }
  result->status = Status::Internal("operation kind " + std::to_string(static_cast<int>(op.kind)) +
                                    " has no engine");
}

}  // namespace ringcache::internal
