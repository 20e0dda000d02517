// What every ringcache-cli command shares: exit codes, output and input helpers, the
// global options, and Connection (one channel to one node and the error reporting).
//
// Thread safety: the CLI runs its commands on one thread; Connection is not thread-safe.
#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "grpc/health/v1/health.grpc.pb.h"
#include "ringcache/v1/cache.grpc.pb.h"
#include "ringcache/v1/cluster.grpc.pb.h"

namespace ringcache::cli {

namespace pb = ringcache::v1;
namespace health = grpc::health::v1;

// Exit codes (main.cc states the contract).
constexpr int kExitOk = 0;
constexpr int kExitNotMet = 1;
constexpr int kExitUsage = 2;
constexpr int kExitError = 3;

inline constexpr std::string_view kProgram = "ringcache-cli";

// --- output helpers --------------------------------------------------------------------

// A key or message made safe for a terminal: printable ASCII as is, the rest as \xNN.
std::string Printable(std::string_view bytes);
// Writes raw bytes to stdout. False on a write error.
bool WriteStdout(std::string_view bytes);
// "ringcache-cli: CODE_NAME: message" on stderr.
void PrintError(std::string_view code_name, std::string_view message);
// Prints a usage error and returns kExitUsage.
int UsageError(std::string_view message);
// The canonical name of a gRPC status code.
std::string_view CodeName(int code);
// The exit code for a gRPC status code.
int ExitCodeFor(int code);
// The worse of two exit codes.
int WorseExit(int a, int b);
std::string HumanBytes(uint64_t bytes);
std::string HumanDuration(uint64_t ms);

// --- input helpers ---------------------------------------------------------------------

// Reads all of stdin as bytes. False on a read error.
bool ReadStdin(std::string* out);
bool ReadFile(const std::string& path, std::string* out);

// --- the connection --------------------------------------------------------------------

struct GlobalOptions {
  std::string addr = "127.0.0.1:7700";
  int64_t timeout_ms = 5000;
  std::string token_file;
  std::string token;  // Read from token_file.
  // TLS: on with --tls or any --tls-* file.
  bool tls = false;
  std::string tls_ca_file;
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_server_name;
  // Read from the files above.
  grpc::SslCredentialsOptions tls_pem;
};

// A channel to `address` (with TLS if options.tls) whose every call carries options.token
// (authorization: Bearer, the node's --auth-tokens-file), unless it is empty.
std::shared_ptr<grpc::Channel> NewChannel(const std::string& address, const GlobalOptions& options);

// One channel to one node, the stubs over it, and the error reporting every command shares.
// Not thread-safe: used by the CLI's single thread.
class Connection {
 public:
  explicit Connection(GlobalOptions options) : options_(std::move(options)) {
    channel_ = NewChannel(options_.addr, options_);
    cache_ = pb::Cache::NewStub(channel_);
    health_ = health::Health::NewStub(channel_);
    membership_ = pb::Membership::NewStub(channel_);
  }

  pb::Cache::Stub& cache() { return *cache_; }
  health::Health::Stub& health() { return *health_; }
  pb::Membership::Stub& membership() { return *membership_; }

  // Gives `context` the deadline every call carries.
  void Prepare(grpc::ClientContext* context) const {
    context->set_deadline(std::chrono::system_clock::now() +
                          std::chrono::milliseconds(options_.timeout_ms));
  }

  // Prints a failed call's status (with `what`, e.g. the key, in front of the message when
  // not empty) and returns its exit code. OK prints nothing and returns 0.
  int Report(const grpc::Status& status, std::string_view what = {}) {
    if (status.ok()) return kExitOk;
    return ReportCode(status.error_code(), status.error_message(), what);
  }

  int ReportCode(int code, const std::string& server_message, std::string_view what = {}) {
    if (code == 0) return kExitOk;
    std::string message;
    const auto grpc_code = static_cast<grpc::StatusCode>(code);
    if (grpc_code == grpc::StatusCode::UNAVAILABLE &&
        channel_->GetState(/*try_to_connect=*/false) != GRPC_CHANNEL_READY) {
      // The transport failed, not the node: say where we tried to go.
      message = "cannot reach " + options_.addr + " (" + server_message + ")";
      if (!options_.tls && server_message.find("Socket closed") != std::string::npos) {
        message += "; if the node serves TLS, add --tls or --tls-ca-file";
      }
    } else if (grpc_code == grpc::StatusCode::DEADLINE_EXCEEDED && what.empty()) {
      message = "no answer from " + options_.addr + " within " +
                std::to_string(options_.timeout_ms) + " ms (--timeout-ms)";
    } else {
      if (!what.empty()) message = std::string(what) + ": ";
      message += server_message.empty() ? DefaultMessage(grpc_code) : Printable(server_message);
    }
    PrintError(CodeName(code), message);
    return ExitCodeFor(code);
  }

  const GlobalOptions& options() const { return options_; }

 private:
  static std::string DefaultMessage(grpc::StatusCode code) {
    switch (code) {
      case grpc::StatusCode::NOT_FOUND:
        return "key not found";
      case grpc::StatusCode::ALREADY_EXISTS:
        return "key already exists";
      case grpc::StatusCode::FAILED_PRECONDITION:
        return "condition not met";
      default:
        return "request failed";
    }
  }

  GlobalOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::Cache::Stub> cache_;
  std::unique_ptr<health::Health::Stub> health_;
  std::unique_ptr<pb::Membership::Stub> membership_;
};

}  // namespace ringcache::cli
