#include "cli_support.h"

#include <grpcpp/support/client_interceptor.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <utility>

#include "ringcache/proto/call_metadata.h"
#include "ringcache/status.h"

namespace ringcache::cli {

// A key or message made safe for a terminal: printable ASCII as is, the rest as \xNN.
std::string Printable(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (unsigned char c : bytes) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

// Writes raw bytes to stdout. False if stdout failed (closed pipe, full disk).
bool WriteStdout(std::string_view bytes) {
  return bytes.empty() || std::fwrite(bytes.data(), 1, bytes.size(), stdout) == bytes.size();
}

void PrintError(std::string_view code_name, std::string_view message) {
  std::fprintf(stderr, "%.*s: %.*s: %.*s\n", static_cast<int>(kProgram.size()), kProgram.data(),
               static_cast<int>(code_name.size()), code_name.data(),
               static_cast<int>(message.size()), message.data());
}

// A usage problem CLI11 cannot see (e.g. an odd number of mset arguments).
int UsageError(std::string_view message) {
  std::fprintf(stderr, "%.*s: %.*s\nRun with --help for more information.\n",
               static_cast<int>(kProgram.size()), kProgram.data(), static_cast<int>(message.size()),
               message.data());
  return kExitUsage;
}

std::string_view CodeName(int code) {
  return ringcache::StatusCodeName(static_cast<ringcache::StatusCode>(code));
}

int ExitCodeFor(int code) {
  switch (static_cast<grpc::StatusCode>(code)) {
    case grpc::StatusCode::OK:
      return kExitOk;
    case grpc::StatusCode::NOT_FOUND:
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::FAILED_PRECONDITION:
      return kExitNotMet;
    default:
      return kExitError;
  }
}

// The worse of two exit codes: any other error (3) outranks a condition not met (1).
int WorseExit(int a, int b) {
  auto rank = [](int code) { return code == kExitError ? 3 : code == kExitUsage ? 2 : code; };
  return rank(a) >= rank(b) ? a : b;
}

std::string HumanBytes(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  auto value = static_cast<double>(bytes);
  size_t unit = 0;
  while (value >= 1024.0 && unit + 1 < std::size(kUnits)) {
    value /= 1024.0;
    ++unit;
  }
  char buf[32];
  if (unit == 0) {
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  } else {
    std::snprintf(buf, sizeof buf, "%.1f %s", value, kUnits[unit]);
  }
  return buf;
}

std::string HumanDuration(uint64_t ms) {
  uint64_t s = ms / 1000;
  const uint64_t days = s / 86400;
  const uint64_t hours = s / 3600 % 24;
  const uint64_t minutes = s / 60 % 60;
  s %= 60;
  std::ostringstream out;
  if (days > 0) out << days << "d ";
  if (days > 0 || hours > 0) out << hours << "h ";
  if (days > 0 || hours > 0 || minutes > 0) out << minutes << "m ";
  out << s << "s";
  return out.str();
}

// Reads all of stdin as bytes. False on a read error.
bool ReadStdin(std::string* out) {
  char buf[64 * 1024];
  for (;;) {
    const size_t n = std::fread(buf, 1, sizeof buf, stdin);
    out->append(buf, n);
    if (n < sizeof buf) return std::ferror(stdin) == 0;
  }
}

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  out->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return !in.bad();
}

// A channel to `address` (with TLS if options.tls) whose every call carries options.token
// (authorization: Bearer, the node's --auth-tokens-file), unless it is empty.
std::shared_ptr<grpc::Channel> NewChannel(const std::string& address,
                                          const GlobalOptions& options) {
  grpc::ChannelArguments args;
  // Values may be as large as the node allows (8 MiB by default, more if configured):
  // never let the client's default 4 MiB receive limit be the one that fails.
  args.SetMaxReceiveMessageSize(-1);
  if (!options.tls_server_name.empty()) {
    args.SetSslTargetNameOverride(options.tls_server_name);
  }
  ringcache::proto::MetadataList metadata;
  if (!options.token.empty()) metadata.emplace_back("authorization", "Bearer " + options.token);
  return grpc::experimental::CreateCustomChannelWithInterceptors(
      address,
      options.tls ? grpc::SslCredentials(options.tls_pem) : grpc::InsecureChannelCredentials(),
      args, ringcache::proto::CallMetadata(std::move(metadata)));
}

}  // namespace ringcache::cli
