// What the cluster plane's and the client plane's credentials share (cluster_auth.h,
// client_auth.h): comparing a presented secret with a real one in time that does not tell
// where they differ, and counting and logging refusals at a bounded rate.
//
//   RefusalLog refusals(options.log);
//   if (!SameSecret(presented, secret_)) {
//     refusals.Note([&] { return "refused X from " + ctx->peer() + ": wrong secret"; });
//   }
//
// Thread safety: SameSecret is pure; RefusalLog may be used from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "ringcache/node/node.h"

namespace ringcache::internal {

// True if `presented` equals `secret`, in time that depends only on the secret's length,
// not on where a guess first differs.
bool SameSecret(std::string_view presented, std::string_view secret);

class RefusalLog {
 public:
  // `log` may be empty: refusals are only counted.
  explicit RefusalLog(std::function<void(LogLevel, std::string_view)> log);

  // Refusals so far.
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }

  // Counts one refusal and logs `line()` as a warning, at most one line a second (with the
  // number of refusals left unlogged since the last one). `line` runs only when it logs.
  void Note(const std::function<std::string()>& line) const;

 private:
  const std::function<void(LogLevel, std::string_view)> log_;
  mutable std::atomic<uint64_t> count_{0};
  mutable std::atomic<int64_t> last_log_ms_{0};
  mutable std::atomic<uint64_t> unlogged_{0};
};

}  // namespace ringcache::internal
