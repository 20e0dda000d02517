// ResponseBudget: the bytes one response may hold (--max-response-bytes), counted while
// its results are gathered, so that a small request cannot make a node build a huge
// response (a MultiGet naming one 8 MiB key a few hundred times is a 2 KiB request).
//
// A batch (RunBatch) charges every result it holds: values read here as they are read,
// and forwarded results as each arrives from an owner (ForwardStreams). Once the total is
// over the limit the budget stays exceeded: the read that crossed it and every later one
// answer its error instead of a value (local reads not yet run are not run; forwarded
// read results are replaced as they arrive), writes keep their true results, and the
// front end answers RESOURCE_EXHAUSTED naming the limit (the gRPC batch rpcs for the whole
// call; RESP for each command with a read over it). A call far over the limit gets that
// answer through any node; near the limit the count differs by a few bytes per result
// (a forwarded result is counted with its framing). Memory stays within the limit plus
// one value, or one forwarded message, in flight. Each forwarded part carries what is left
// of the limit (a ResultLimit part of the forwarding stream's message), so an owner stops
// reading values once the caller's budget is spent.
//
// Thread safety: Take and exceeded may be called from any thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "ringcache/status.h"

namespace ringcache::internal {

class ResponseBudget {
 public:
  // Results are charged this much on top of their bytes (the ids, status and framing of
  // each result), so that a batch of many empty results counts too.
  static constexpr size_t kPerResultBytes = 16;

  explicit ResponseBudget(uint64_t limit) : limit_(limit) {}

  // Counts `bytes`; false if the total is now over the limit (or already was).
  bool Take(size_t bytes) {
    const uint64_t total = used_.fetch_add(bytes + kPerResultBytes, std::memory_order_relaxed) +
                           bytes + kPerResultBytes;
    if (total <= limit_) return !exceeded();
    exceeded_.store(true, std::memory_order_relaxed);
    return false;
  }
  bool exceeded() const { return exceeded_.load(std::memory_order_relaxed); }
  // Marks the budget exceeded (a forwarded part's owner found it so).
  void MarkExceeded() { exceeded_.store(true, std::memory_order_relaxed); }
  // What is left of the limit (0 once exceeded).
  uint64_t remaining() const {
    const uint64_t used = used_.load(std::memory_order_relaxed);
    return exceeded() || used >= limit_ ? 0 : limit_ - used;
  }
  // True if `s` is a budget's error (Error()), from this node or another.
  static bool IsBudgetError(const Status& s) {
    return s.code() == StatusCode::kResourceExhausted && s.message().starts_with(kErrorPrefix);
  }
  uint64_t limit() const { return limit_; }

  // RESOURCE_EXHAUSTED naming the limit.
  Status Error() const {
    return Status::ResourceExhausted(std::string(kErrorPrefix) + std::to_string(limit_) +
                                     " bytes (--max-response-bytes); ask for fewer or smaller "
                                     "values per call");
  }

 private:
  static constexpr std::string_view kErrorPrefix = "the response would be over the limit of ";
  const uint64_t limit_;
  std::atomic<uint64_t> used_{0};
  std::atomic<bool> exceeded_{false};
};

}  // namespace ringcache::internal
