// ClientAuth: who may use the client plane (docs/security.md, "Client tokens").
//
// With a tokens file, every client call names a token, and the token's role says what the
// call may do (operation.h: read, read-write, admin). gRPC calls send it as the metadata
// `authorization: Bearer <token>`; Redis clients with AUTH (or HELLO ... AUTH). A call
// without a known token is refused with UNAUTHENTICATED (NOAUTH, WRONGPASS) before its
// request is looked at; an operation its role does not allow, with PERMISSION_DENIED
// (NOPERM). Without a tokens file every caller is admin.
//
// The file's format and how a token is looked up: token_table.h. Load reads the file again
// (SIGHUP): a file with an error keeps the tokens held before.
//
// Thread safety: Load may run while calls are checked on other threads (the table is
// swapped whole); everything else is const.
#pragma once

#include <grpcpp/server_context.h>
#include <grpcpp/support/status.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth_support.h"
#include "operation.h"
#include "ringcache/node/node.h"
#include "ringcache/status.h"
#include "token_table.h"

namespace ringcache::internal {

class ClientAuth {
 public:
  static constexpr std::string_view kMetadataKey = "authorization";
  static constexpr std::string_view kBearer = "Bearer ";
  static constexpr size_t kMaxFileBytes = 4 << 20;

  // `tokens_file` empty: no client tokens, every caller is admin. `log` may be empty.
  ClientAuth(std::string tokens_file, std::function<void(LogLevel, std::string_view)> log);

  // Reads the tokens file (again): OK, or an error naming the file and line, in which case
  // the tokens held before stay. OK without reading when there is no file.
  Status Load();

  bool enabled() const { return !file_.empty(); }
  const std::string& file() const { return file_; }
  // Tokens held now.
  size_t tokens() const;
  // Calls and logins refused so far (no token, an unknown one).
  uint64_t refusals() const { return refusals_.count(); }

  // The role of a gRPC call whose `authorization` metadata is `authorization` (empty: it
  // had none), or UNAUTHENTICATED naming `what` ("Cache.Get"), counted and logged with the
  // caller's address. kAdmin when there are no tokens.
  grpc::Status Authenticate(std::string_view authorization, grpc::ServerContextBase* ctx,
                            std::string_view what, Role* role) const;

  // Redis's AUTH: whose `token` is, if `user` is empty, "default" or the token's name;
  // otherwise nullopt, counted and logged with `peer`.
  std::optional<TokenTable::Principal> Login(std::string_view user, std::string_view token,
                                             std::string_view peer) const;

 private:
  std::shared_ptr<const TokenTable> table() const { return table_.load(std::memory_order_acquire); }
  // The table for a call, without touching table_'s reference count: each thread keeps a
  // copy of the table it last used, with the generation it had, so a call costs one load
  // of generation_ rather than a shared_ptr copy (atomic read-modify-writes on a line that
  // every gRPC thread shares). Null before the first Load.
  const TokenTable* CallTable() const;

  const std::string file_;
  const std::function<void(LogLevel, std::string_view)> log_;
  std::atomic<std::shared_ptr<const TokenTable>> table_;
  std::atomic<uint64_t> generation_{0};  // Raised by Load after each new table.
  const uint64_t id_;                    // Unique per ClientAuth, for the threads' copies.
  RefusalLog refusals_;
};

// RoleError (operation.h) as a gRPC status, for a call.
grpc::Status RoleTooLow(std::string_view what, Role needed, Role role);

}  // namespace ringcache::internal
