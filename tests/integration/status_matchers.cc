#include "status_matchers.h"

#include <regex>

#include "ringcache/status.h"

namespace ringcache::it {
namespace {

bool MessageMatches(const std::string& message, const std::vector<std::string>& patterns) {
  for (const std::string& p : patterns) {
    if (!std::regex_search(message, std::regex(p, std::regex::ECMAScript | std::regex::icase))) {
      return false;
    }
  }
  return true;
}

std::string Expectation(grpc::StatusCode code, const std::vector<std::string>& patterns) {
  std::string s = "has code " + CodeName(code);
  if (!patterns.empty()) {
    s += " and a message matching";
    for (const std::string& p : patterns) s += " /" + p + "/";
  }
  return s;
}

}  // namespace

std::string CodeName(int code) {
  // ringcache's StatusCode numbering is gRPC's; codes outside 0..16 are not canonical.
  if (code >= 0 && code <= static_cast<int>(ringcache::StatusCode::kUnauthenticated)) {
    return std::string(ringcache::StatusCodeName(static_cast<ringcache::StatusCode>(code)));
  }
  return "CODE_" + std::to_string(code);
}

std::string Describe(const grpc::Status& status) {
  std::string s = CodeName(status.error_code());
  if (!status.error_message().empty()) s += ": " + status.error_message();
  return s;
}

std::string Describe(const ringcache::v1::OpStatus& status) {
  std::string s = CodeName(status.code());
  if (!status.message().empty()) s += ": " + status.message();
  return s;
}

bool StatusIsMatcher::match(const grpc::Status& status) const {
  return status.error_code() == code_ && MessageMatches(status.error_message(), patterns_);
}

std::string StatusIsMatcher::describe() const { return Expectation(code_, patterns_); }

bool OpStatusIsMatcher::match(const ringcache::v1::OpStatus& status) const {
  return status.code() == static_cast<int>(code_) && MessageMatches(status.message(), patterns_);
}

std::string OpStatusIsMatcher::describe() const { return Expectation(code_, patterns_); }

}  // namespace ringcache::it
