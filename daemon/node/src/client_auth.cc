#include "client_auth.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <utility>

namespace ringcache::internal {

namespace {
std::atomic<uint64_t> next_client_auth_id{1};
}  // namespace

ClientAuth::ClientAuth(std::string tokens_file, std::function<void(LogLevel, std::string_view)> log)
    : file_(std::move(tokens_file)),
      log_(log),
      id_(next_client_auth_id.fetch_add(1, std::memory_order_relaxed)),
      refusals_(std::move(log)) {}

const TokenTable* ClientAuth::CallTable() const {
  struct Copy {
    uint64_t owner = 0;
    uint64_t generation = 0;
    std::shared_ptr<const TokenTable> table;
  };
  thread_local Copy copy;
  const uint64_t generation = generation_.load(std::memory_order_acquire);
  if (copy.owner != id_ || copy.generation != generation) {
    copy.table = table();
    copy.owner = id_;
    copy.generation = generation;
  }
  return copy.table.get();
}

Status ClientAuth::Load() {
  if (!enabled()) return Status::Ok();
  std::ifstream in(file_, std::ios::binary);
  if (!in) {
    return Status::InvalidArgument("client_tokens_file " + file_ +
                                   " cannot be read: " + std::strerror(errno));
  }
  std::string text;
  char buffer[8192];
  while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
    text.append(buffer, static_cast<size_t>(in.gcount()));
    if (text.size() > kMaxFileBytes) {
      return Status::InvalidArgument("client_tokens_file " + file_ + " is over " +
                                     std::to_string(kMaxFileBytes) + " bytes: not a tokens file");
    }
  }
  Result<std::shared_ptr<const TokenTable>> parsed =
      TokenTable::Parse(text, "client_tokens_file " + file_);
  if (!parsed.ok()) return parsed.status();
  if (parsed.value()->size() == 0) {
    return Status::InvalidArgument("client_tokens_file " + file_ +
                                   " holds no tokens: no client could call this node");
  }
  struct stat st {};
  if (log_ && ::stat(file_.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    log_(LogLevel::kWarn, file_ + " (--auth-tokens-file) can be read by other users (mode 0" +
                              std::to_string((st.st_mode >> 6) & 7) +
                              std::to_string((st.st_mode >> 3) & 7) +
                              std::to_string(st.st_mode & 7) +
                              "): whoever reads it holds every token; chmod 600 it");
  }
  const size_t count = parsed.value()->size();
  table_.store(std::move(parsed).value(), std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_release);
  if (log_) {
    log_(LogLevel::kInfo, "read " + std::to_string(count) +
                              (count == 1 ? " client token" : " client tokens") + " from " + file_);
  }
  return Status::Ok();
}

size_t ClientAuth::tokens() const {
  const std::shared_ptr<const TokenTable> t = table();
  return t != nullptr ? t->size() : 0;
}

grpc::Status ClientAuth::Authenticate(std::string_view authorization, grpc::ServerContextBase* ctx,
                                      std::string_view what, Role* role) const {
  if (!enabled()) {
    *role = Role::kAdmin;
    return grpc::Status::OK;
  }
  const bool bearer = authorization.starts_with(kBearer);
  if (bearer) {
    if (const TokenTable* t = CallTable(); t != nullptr) {
      if (const TokenTable::Principal* who = t->Find(authorization.substr(kBearer.size()))) {
        *role = who->role;
        return grpc::Status::OK;
      }
    }
  }
  *role = Role::kNone;
  const char* problem = authorization.empty() ? "the call carries no client token"
                        : bearer              ? "the call's client token is not one of this node's"
                                 : "the authorization metadata is not 'Bearer <token>'";
  refusals_.Note(
      [&] { return "refused " + std::string(what) + " from " + ctx->peer() + ": " + problem; });
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                      std::string(what) + " needs a client token: " + problem +
                          " (send the metadata 'authorization: Bearer <token>' with a token "
                          "of the node's --auth-tokens-file)");
}

std::optional<TokenTable::Principal> ClientAuth::Login(std::string_view user,
                                                       std::string_view token,
                                                       std::string_view peer) const {
  if (const std::shared_ptr<const TokenTable> t = table(); t != nullptr) {
    const TokenTable::Principal* who = t->Find(token);
    if (who != nullptr && (user.empty() || user == "default" || user == who->name)) return *who;
  }
  refusals_.Note([&] {
    return "refused AUTH from " + std::string(peer) + " (user '" +
           std::string(user.substr(0, TokenTable::kMaxNameBytes)) + "'): unknown token";
  });
  return std::nullopt;
}

grpc::Status RoleTooLow(std::string_view what, Role needed, Role role) {
  return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, RoleError(what, needed, role).message());
}

}  // namespace ringcache::internal
