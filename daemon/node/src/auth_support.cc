#include "auth_support.h"

#include <chrono>
#include <utility>

namespace ringcache::internal {

bool SameSecret(std::string_view presented, std::string_view secret) {
  unsigned char diff = presented.size() == secret.size() ? 0 : 1;
  for (size_t i = 0; i < secret.size(); ++i) {
    const unsigned char p = i < presented.size() ? static_cast<unsigned char>(presented[i]) : 0;
    diff |= static_cast<unsigned char>(p ^ static_cast<unsigned char>(secret[i]));
  }
  return diff == 0;
}

RefusalLog::RefusalLog(std::function<void(LogLevel, std::string_view)> log)
    : log_(std::move(log)) {}

void RefusalLog::Note(const std::function<std::string()>& line) const {
  count_.fetch_add(1, std::memory_order_relaxed);
  if (!log_) return;
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now().time_since_epoch())
                          .count();
  int64_t last = last_log_ms_.load(std::memory_order_relaxed);
  if ((last != 0 && now - last < 1000) ||
      !last_log_ms_.compare_exchange_strong(last, now, std::memory_order_relaxed)) {
    unlogged_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const uint64_t skipped = unlogged_.exchange(0, std::memory_order_relaxed);
  std::string text = line();
  if (skipped > 0) {
    text += " (and " + std::to_string(skipped) + " more refusals since the last such line)";
  }
  log_(LogLevel::kWarn, text);
}

}  // namespace ringcache::internal
