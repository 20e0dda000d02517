// RESP request parsing (the Redis protocol's client side, RESP2 and RESP3 requests alike):
// the commands a connection's buffer holds, parsed in place.
//
//   RespParser parser(limits);
//   std::vector<RespCommand> commands;
//   size_t used = 0;
//   RespParseError error = parser.Parse(buffer, &commands, &used);
//   // commands[i].args view into buffer; used: bytes of whole commands; error: see below.
//
// A request is either an array of bulk strings ("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n") or an
// inline command (a line of words, as typed in telnet: `SET k "a b"`), exactly as Redis
// accepts them. Parsing stops at the first incomplete command (`used` excludes it) and at
// the first protocol error, after the commands before it: Redis answers those, then
// "-ERR Protocol error: ..." (the message names what was wrong, in Redis's words), and
// closes the connection.
//
// Limits are checked on the declared lengths before anything is buffered or allocated:
// an array longer than max_args, a bulk string longer than max_bulk_bytes, an inline line
// longer than max_inline_bytes are protocol errors (Redis: proto-max-bulk-len and its
// 1M-argument and 64 KiB inline limits). So a connection never needs to buffer more than
// one command of at most max_args * (max_bulk_bytes + 32) bytes, and the caller bounds
// that further with its own buffer limit.
//
// Thread safety: a parser holds only its limits; Parse is const.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ringcache::internal {

struct RespCommand {
  // The command's words: args[0] is its name as sent. Views into the parsed buffer, or,
  // for an inline command, into `owned`. Move-only: a copy's views would point into the
  // original's words.
  std::vector<std::string_view> args;
  std::vector<std::string> owned;  // An inline command's words.

  RespCommand() = default;
  RespCommand(RespCommand&&) = default;
  RespCommand& operator=(RespCommand&&) = default;
  RespCommand(const RespCommand&) = delete;
  RespCommand& operator=(const RespCommand&) = delete;
};

struct RespLimits {
  size_t max_args = 1024 * 1024;         // Elements of one request array.
  size_t max_bulk_bytes = 512ull << 20;  // One bulk string.
  size_t max_inline_bytes = 64 * 1024;   // One inline command line.

  // A connection that has not authenticated yet (when the node has client tokens) may send
  // no more than this, as Redis since CVE-2021-32675: a client without a token cannot make
  // the node buffer a 512 MB argument.
  static constexpr size_t kUnauthenticatedArgs = 10;
  static constexpr size_t kUnauthenticatedBulkBytes = 16 * 1024;
};

struct RespParseError {
  bool failed = false;
  std::string message;  // Without "ERR ": "Protocol error: invalid bulk length".
  explicit operator bool() const { return failed; }
};

class RespParser {
 public:
  explicit RespParser(RespLimits limits) : limits_(limits) {}

  // Appends the whole commands at the start of `buffer` to `commands` (at most
  // `max_commands`) and sets *used to the bytes they took. Returns the protocol error that
  // stopped parsing, if any (the commands before it are returned). `unauthenticated`: the
  // connection has not authenticated, so arrays are held to RespLimits'
  // kUnauthenticatedArgs and kUnauthenticatedBulkBytes ("Protocol error: unauthenticated
  // multibulk length", "... bulk length", as Redis).
  RespParseError Parse(std::string_view buffer, std::vector<RespCommand>* commands, size_t* used,
                       size_t max_commands = SIZE_MAX, bool unauthenticated = false) const;

  const RespLimits& limits() const { return limits_; }

 private:
  enum class Step { kDone, kIncomplete, kError };
  Step ParseArray(std::string_view in, size_t* pos, RespCommand* out, RespParseError* error,
                  bool unauthenticated) const;
  Step ParseInline(std::string_view in, size_t* pos, RespCommand* out, RespParseError* error) const;

  const RespLimits limits_;
};

// Splits an inline command line into words as Redis does (sdssplitargs): spaces separate
// words; "double quotes" with \n \r \t \b \a \\ \" and \xHH escapes; 'single quotes' with
// \' only. False on unbalanced quotes (or a closing quote not followed by a space).
bool SplitInlineArgs(std::string_view line, std::vector<std::string>* words);

}  // namespace ringcache::internal
