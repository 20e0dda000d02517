#include "resp/parser.h"

#include <cctype>
#include <charconv>

namespace ringcache::internal {
namespace {

// A decimal integer filling `text` exactly (Redis's string2ll: optional '-', digits).
bool ParseLength(std::string_view text, int64_t* out) {
  if (text.empty()) return false;
  const char* end = text.data() + text.size();
  auto [p, ec] = std::from_chars(text.data(), end, *out);
  return ec == std::errc() && p == end && text[0] != '+';
}

RespParseError Error(std::string message) {
  return {.failed = true, .message = std::move(message)};
}

bool IsHex(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }
int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  return std::tolower(static_cast<unsigned char>(c)) - 'a' + 10;
}

}  // namespace

bool SplitInlineArgs(std::string_view line, std::vector<std::string>* words) {
  size_t i = 0;
  const size_t n = line.size();
  auto space = [&](size_t at) { return std::isspace(static_cast<unsigned char>(line[at])) != 0; };
  for (;;) {
    while (i < n && space(i)) ++i;
    if (i >= n) return true;
    std::string word;
    bool in_double = false;
    bool in_single = false;
    if (line[i] == '"') {
      in_double = true;
      ++i;
    } else if (line[i] == '\'') {
      in_single = true;
      ++i;
    }
    for (;;) {
      if (in_double) {
        if (i >= n) return false;  // Unterminated.
        if (line[i] == '\\' && i + 3 < n && line[i + 1] == 'x' && IsHex(line[i + 2]) &&
            IsHex(line[i + 3])) {
          word.push_back(static_cast<char>(HexValue(line[i + 2]) * 16 + HexValue(line[i + 3])));
          i += 4;
        } else if (line[i] == '\\' && i + 1 < n) {
          char c = line[i + 1];
          switch (c) {
            case 'n':
              c = '\n';
              break;
            case 'r':
              c = '\r';
              break;
            case 't':
              c = '\t';
              break;
            case 'b':
              c = '\b';
              break;
            case 'a':
              c = '\a';
              break;
            default:
              break;
          }
          word.push_back(c);
          i += 2;
        } else if (line[i] == '"') {
          ++i;
          if (i < n && !space(i)) return false;  // A closing quote must end the word.
          break;
        } else {
          word.push_back(line[i++]);
        }
      } else if (in_single) {
        if (i >= n) return false;
        if (line[i] == '\\' && i + 1 < n && line[i + 1] == '\'') {
          word.push_back('\'');
          i += 2;
        } else if (line[i] == '\'') {
          ++i;
          if (i < n && !space(i)) return false;
          break;
        } else {
          word.push_back(line[i++]);
        }
      } else {
        if (i >= n || space(i)) break;
        word.push_back(line[i++]);
      }
    }
    words->push_back(std::move(word));
  }
}

RespParseError RespParser::Parse(std::string_view buffer, std::vector<RespCommand>* commands,
                                 size_t* used, size_t max_commands, bool unauthenticated) const {
  size_t pos = 0;
  *used = 0;
  RespParseError error;
  size_t parsed = 0;
  while (pos < buffer.size() && parsed < max_commands) {
    RespCommand command;
    size_t next = pos;
    const Step step = buffer[pos] == '*'
                          ? ParseArray(buffer, &next, &command, &error, unauthenticated)
                          : ParseInline(buffer, &next, &command, &error);
    if (step == Step::kIncomplete) break;
    if (step == Step::kError) return error;
    pos = next;
    *used = pos;
    if (!command.args.empty()) {  // "*0\r\n", "*-1\r\n" and empty lines are skipped.
      commands->push_back(std::move(command));
      ++parsed;
    }
  }
  return error;
}

RespParser::Step RespParser::ParseArray(std::string_view in, size_t* pos, RespCommand* out,
                                        RespParseError* error, bool unauthenticated) const {
  size_t p = *pos;
  const size_t eol = in.find("\r\n", p);
  if (eol == std::string_view::npos) {
    if (in.size() - p > limits_.max_inline_bytes) {
      *error = Error("Protocol error: too big mbulk count string");
      return Step::kError;
    }
    return Step::kIncomplete;
  }
  int64_t count = 0;
  if (!ParseLength(in.substr(p + 1, eol - p - 1), &count) ||
      count > static_cast<int64_t>(limits_.max_args)) {
    *error = Error("Protocol error: invalid multibulk length");
    return Step::kError;
  }
  if (unauthenticated && count > static_cast<int64_t>(RespLimits::kUnauthenticatedArgs)) {
    *error = Error("Protocol error: unauthenticated multibulk length");
    return Step::kError;
  }
  p = eol + 2;
  if (count <= 0) {
    *pos = p;
    return Step::kDone;
  }
  // Reserve no more than what the buffer can already hold: a client declaring a million
  // arguments gets memory only as its bytes arrive.
  out->args.reserve(std::min<size_t>(static_cast<size_t>(count), (in.size() - p) / 4 + 1));
  for (int64_t i = 0; i < count; ++i) {
    const size_t line_end = in.find("\r\n", p);
    if (line_end == std::string_view::npos) {
      if (in.size() - p > limits_.max_inline_bytes) {
        *error = Error("Protocol error: too big bulk count string");
        return Step::kError;
      }
      return Step::kIncomplete;
    }
    if (in[p] != '$') {
      *error = Error(std::string("Protocol error: expected '$', got '") + in[p] + "'");
      return Step::kError;
    }
    int64_t len = 0;
    if (!ParseLength(in.substr(p + 1, line_end - p - 1), &len) || len < 0 ||
        static_cast<uint64_t>(len) > limits_.max_bulk_bytes) {
      *error = Error("Protocol error: invalid bulk length");
      return Step::kError;
    }
    if (unauthenticated && static_cast<uint64_t>(len) > RespLimits::kUnauthenticatedBulkBytes) {
      *error = Error("Protocol error: unauthenticated bulk length");
      return Step::kError;
    }
    p = line_end + 2;
    if (in.size() - p < static_cast<size_t>(len) + 2) return Step::kIncomplete;
    out->args.push_back(in.substr(p, static_cast<size_t>(len)));
    p += static_cast<size_t>(len) + 2;  // As Redis, the two bytes after are not checked.
  }
  *pos = p;
  return Step::kDone;
}

RespParser::Step RespParser::ParseInline(std::string_view in, size_t* pos, RespCommand* out,
                                         RespParseError* error) const {
  const size_t p = *pos;
  const size_t nl = in.find('\n', p);
  if (nl == std::string_view::npos) {
    if (in.size() - p > limits_.max_inline_bytes) {
      *error = Error("Protocol error: too big inline request");
      return Step::kError;
    }
    return Step::kIncomplete;
  }
  if (nl - p > limits_.max_inline_bytes) {
    *error = Error("Protocol error: too big inline request");
    return Step::kError;
  }
  std::string_view line = in.substr(p, nl - p);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (!SplitInlineArgs(line, &out->owned)) {
    *error = Error("Protocol error: unbalanced quotes in request");
    return Step::kError;
  }
  out->args.assign(out->owned.begin(), out->owned.end());
  *pos = nl + 1;
  return Step::kDone;
}

}  // namespace ringcache::internal
