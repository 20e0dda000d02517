// Catch2 matchers and printers for gRPC statuses and per-item OpStatus results, so a
// failed check prints "NOT_FOUND: key not found" instead of an opaque object:
//
//   CHECK_THAT(status, StatusIs(grpc::StatusCode::INVALID_ARGUMENT, {"max[-_]batch", "100"}));
//   CHECK_THAT(result.status(), OpIs(grpc::StatusCode::OK));
//
// Message patterns are ECMAScript regexes searched case-insensitively; all must match.
#pragma once

#include <grpcpp/grpcpp.h>

#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "ringcache/v1/cache.pb.h"

namespace ringcache::it {

// "NOT_FOUND"; "CODE_42" for a number that is not a canonical code.
std::string CodeName(int code);
// "NOT_FOUND: key not found", or "OK".
std::string Describe(const grpc::Status& status);
std::string Describe(const ringcache::v1::OpStatus& status);

class StatusIsMatcher : public Catch::MatcherBase<grpc::Status> {
 public:
  StatusIsMatcher(grpc::StatusCode code, std::vector<std::string> patterns)
      : code_(code), patterns_(std::move(patterns)) {}
  bool match(const grpc::Status& status) const override;
  std::string describe() const override;

 private:
  grpc::StatusCode code_;
  std::vector<std::string> patterns_;
};

class OpStatusIsMatcher : public Catch::MatcherBase<ringcache::v1::OpStatus> {
 public:
  OpStatusIsMatcher(grpc::StatusCode code, std::vector<std::string> patterns)
      : code_(code), patterns_(std::move(patterns)) {}
  bool match(const ringcache::v1::OpStatus& status) const override;
  std::string describe() const override;

 private:
  grpc::StatusCode code_;
  std::vector<std::string> patterns_;
};

inline StatusIsMatcher StatusIs(grpc::StatusCode code, std::vector<std::string> patterns = {}) {
  return StatusIsMatcher(code, std::move(patterns));
}
inline StatusIsMatcher IsOk() { return StatusIsMatcher(grpc::StatusCode::OK, {}); }
inline OpStatusIsMatcher OpIs(grpc::StatusCode code, std::vector<std::string> patterns = {}) {
  return OpStatusIsMatcher(code, std::move(patterns));
}

}  // namespace ringcache::it

namespace Catch {
template <>
struct StringMaker<grpc::Status> {
  static std::string convert(const grpc::Status& s) { return ringcache::it::Describe(s); }
};
template <>
struct StringMaker<ringcache::v1::OpStatus> {
  static std::string convert(const ringcache::v1::OpStatus& s) {
    return ringcache::it::Describe(s);
  }
};
}  // namespace Catch
