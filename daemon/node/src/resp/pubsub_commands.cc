// RespBatch's pub/sub commands (commands.h; docs/redis.md "Pub/sub"): SUBSCRIBE,
// PSUBSCRIBE, UNSUBSCRIBE, PUNSUBSCRIBE, PUBLISH, RESET and the subscribe-mode rules, in
// Redis 7.0's words. The connection writes the subscription's messages (resp/server.cc).
#include <algorithm>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "resp/commands.h"
#include "resp/reply.h"

namespace ringcache::internal {

using namespace resp;  // The reply encodings (resp/reply.h).

namespace {

// "*3 $kind $name :count", one confirmation of (un)subscribing `name` (nullopt: nil).
void AppendConfirmation(std::string* out, std::string_view kind, const std::string* name,
                        size_t count) {
  out->append("*3\r\n");
  AppendBulk(out, kind);
  if (name == nullptr) {
    out->append(kNil);
  } else {
    AppendBulk(out, *name);
  }
  AppendInteger(out, static_cast<int64_t>(count));
}

}  // namespace

bool RespBatch::RefusedWhileSubscribed(const RespCommand& c, std::string_view name) {
  if (name == "subscribe" || name == "psubscribe" || name == "unsubscribe" ||
      name == "punsubscribe" || name == "quit" || name == "reset") {
    return false;
  }
  if (name == "ping") {
    // In subscribe mode PING answers ["pong", its argument or ""].
    if (c.args.size() > 2) {
      Error("ERR wrong number of arguments for 'ping' command");
      return true;
    }
    Begin(RespReply::kFixed);
    std::string& out = calls_.back().fixed;
    out.append("*2\r\n");
    AppendBulk(&out, "pong");
    AppendBulk(&out, c.args.size() == 2 ? c.args[1] : std::string_view());
    return true;
  }
  Error("ERR Can't execute '" + std::string(name) +
        "': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this "
        "context");
  return true;
}

void RespBatch::Subscribe(const RespCommand& c, std::string_view name) {
  if (session_.role < Role::kRead) {
    Error("NOPERM this user has no permissions to run the '" + std::string(name) + "' command");
    return;
  }
  const bool patterns = name[0] == 'p';
  const bool subscribing = name == "subscribe" || name == "psubscribe";
  // Name -> when it was subscribed: hash lookups, so a command of many names costs linear
  // time, and the order for an UNSUBSCRIBE without names.
  std::unordered_map<std::string, uint64_t>& held = patterns ? sub_patterns_ : sub_channels_;
  Begin(RespReply::kFixed);
  std::string& out = calls_.back().fixed;
  if (subscribing) {
    if (!session_.open_subscription) {
      calls_.pop_back();
      Error("ERR pub/sub is not available on this connection");
      return;
    }
    std::vector<std::string> fresh;
    std::unordered_set<std::string_view> seen;
    for (size_t i = 1; i < c.args.size(); ++i) {
      if (!held.contains(std::string(c.args[i])) && seen.insert(c.args[i]).second) {
        fresh.emplace_back(c.args[i]);
      }
    }
    if (subscription_ == nullptr) subscription_ = session_.open_subscription();
    const std::vector<std::string> none;
    const Status s =
        patterns ? subscription_->Subscribe(none, fresh) : subscription_->Subscribe(fresh, none);
    if (!s.ok()) {
      calls_.pop_back();
      if (subscription_count() == 0) CloseSubscription();
      Error("ERR " + s.message());
      return;
    }
    // One confirmation per name given, repeats included, each with the count so far, as
    // Redis.
    for (size_t i = 1; i < c.args.size(); ++i) {
      const std::string n(c.args[i]);
      held.emplace(n, next_subscription_order_++);
      AppendConfirmation(&out, name, &n, subscription_count());
    }
    return;
  }
  // UNSUBSCRIBE / PUNSUBSCRIBE: the names given, or every one held in the order subscribed.
  std::vector<std::string> names;
  if (c.args.size() > 1) {
    names.reserve(c.args.size() - 1);
    for (size_t i = 1; i < c.args.size(); ++i) names.emplace_back(c.args[i]);
  } else {
    std::vector<std::pair<uint64_t, std::string>> ordered;
    ordered.reserve(held.size());
    for (const auto& [n, order] : held) ordered.emplace_back(order, n);
    std::sort(ordered.begin(), ordered.end());
    for (auto& [order, n] : ordered) names.push_back(std::move(n));
  }
  if (names.empty()) {
    AppendConfirmation(&out, name, nullptr, subscription_count());
    return;
  }
  const std::vector<std::string> none;
  for (const std::string& n : names) {
    if (held.erase(n) > 0 && subscription_ != nullptr) {
      const std::span<const std::string> one(&n, 1);
      if (patterns) {
        subscription_->Unsubscribe(none, one);
      } else {
        subscription_->Unsubscribe(one, none);
      }
    }
    AppendConfirmation(&out, name, &n, subscription_count());
  }
  if (subscription_count() == 0) CloseSubscription();
}

void RespBatch::CloseSubscription() {
  sub_channels_.clear();
  sub_patterns_.clear();
  if (subscription_ == nullptr) return;
  subscription_->Close(Status::Unavailable("unsubscribed"));
  subscription_.reset();
}

void RespBatch::Publish(const RespCommand& c) {
  if (session_.role < Role::kReadWrite) {
    Error("NOPERM this user has no permissions to run the 'publish' command");
    return;
  }
  Begin(RespReply::kFixed);
  publishes_.push_back({.call = calls_.size() - 1,
                        .channel = std::string(c.args[1]),
                        .payload = std::string(c.args[2])});
}

void RespBatch::SetPublishResult(size_t i, const Status& status, uint64_t receivers) {
  std::string& out = calls_[publishes_[i].call].fixed;
  out.clear();
  if (status.ok()) {
    AppendInteger(&out, static_cast<int64_t>(receivers));
  } else {
    out = "-ERR " + OneLine(status.message()) + "\r\n";
  }
}

void RespBatch::Reset() {
  CloseSubscription();
  refused_multi_ = false;
  client_name_.clear();
  // As Redis: back to the default user, which with client tokens may do nothing.
  session_.role = initial_role_;
  session_.user = initial_user_;
  Fixed("+RESET\r\n");
}

void RespBatch::EncodeMessage(const PubSub::Delivery& d, std::string* out) {
  if (d.pattern.empty()) {
    out->append("*3\r\n");
    AppendBulk(out, "message");
  } else {
    out->append("*4\r\n");
    AppendBulk(out, "pmessage");
    AppendBulk(out, d.pattern);
  }
  AppendBulk(out, d.message->channel);
  AppendBulk(out, d.message->payload);
}

}  // namespace ringcache::internal
