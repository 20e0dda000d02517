// ringcache-cli: a command-line client for one ringcached node.
//
//   ringcache-cli [--addr HOST:PORT] [--timeout-ms N] COMMAND [ARGS...]
//
// Every command is one gRPC call (or, for many keys, a few batched calls) over an insecure
// channel, each with a deadline of --timeout-ms. Keys and values are binary-safe: a value
// can come from a file or stdin, and `get` writes the raw bytes. Any node of a cluster
// accepts any key (it forwards to the key's owner); `cluster status` shows the whole cluster,
// `cluster leave` makes the node at --addr leave it gracefully.
// Writes take --wc N (wait for N replica acks; "k/N replicas acked" goes to stderr) and
// reads --read any (a replica may answer).
//
// Exit codes (the contract scripts rely on):
//   0  ok
//   1  key not found or condition not met (NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION),
//      or fewer replicas acknowledged a write than --wc asked
//   2  usage error
//   3  any other error (unavailable, invalid argument, deadline exceeded, ...)
// Errors go to stderr as "ringcache-cli: CODE_NAME: message".
#include <grpc/support/log.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/support/client_interceptor.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "cli_support.h"
#include "cluster_commands.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "pubsub_commands.h"
#include "ringcache/cluster_view.h"
#include "ringcache/hash_ring.h"
#include "ringcache/proto/call_metadata.h"
#include "ringcache/proto/cluster_view.h"
#include "ringcache/status.h"
#include "ringcache/typed.h"
#include "ringcache/v1/cache.grpc.pb.h"
#include "ringcache/v1/cluster.grpc.pb.h"

namespace {

using namespace ringcache::cli;  // NOLINT: the CLI's shared helpers (cli_support.h)
using ringcache::Status;
using ringcache::TypedCommand;
using ringcache::TypedCommandInfo;
using ringcache::TypedOp;

// Items per MultiGet/MultiSet/MultiDelete call: well under the node's default max-batch.
constexpr size_t kBatchSize = 1000;

// --- output helpers --------------------------------------------------------------------

// Marks an argument CLI11 must keep whole (see main); Unmark removes the mark.
constexpr std::string_view kKeepWhole = "\x01";
void Unmark(std::string* s) {
  if (s->starts_with(kKeepWhole)) s->erase(0, kKeepWhole.size());
}

// The position in `words` (argv) of the command's name: the first word that is neither
// an option of `app` nor the value of one. words.size() if there is none.
size_t CommandPosition(const CLI::App& app, const std::vector<std::string>& words) {
  for (size_t i = 1; i < words.size(); ++i) {
    const std::string& w = words[i];
    if (w == "--") return words.size();
    if (!w.starts_with("-")) return i;
    if (w.find('=') != std::string::npos) continue;
    for (const CLI::Option* o : app.get_options()) {
      if (o->check_name(w) && o->get_items_expected_max() > 0) {
        ++i;  // Its value.
        break;
      }
    }
  }
  return words.size();
}

std::string Upper(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

// --- commands --------------------------------------------------------------------------

// --wc / --wc-timeout-ms of a write: 0 = do not wait for replicas.
struct WriteConcern {
  uint32_t replicas = 0;
  uint32_t timeout_ms = 0;  // 0 = the node's default (1000 ms)
};

// "k/N replicas acked" on stderr for a write that asked for N; exit 1 if fewer acked.
int ReportAcks(const WriteConcern& wc, uint32_t acked, std::string_view what = {}) {
  if (wc.replicas == 0) return kExitOk;
  std::string line = what.empty() ? std::string() : std::string(what) + ": ";
  line += std::to_string(acked) + "/" + std::to_string(wc.replicas) + " replicas acked";
  if (acked < wc.replicas) line += " (the write is applied on the primary)";
  std::fprintf(stderr, "%s\n", line.c_str());
  return acked < wc.replicas ? kExitNotMet : kExitOk;
}

pb::ReadPreference ToReadPreference(const std::string& read) {
  return read == "any" ? pb::READ_PREFERENCE_ANY_OWNER : pb::READ_PREFERENCE_PRIMARY;
}

int CmdGet(Connection& conn, const std::string& key, const std::string& read) {
  pb::GetRequest request;
  request.set_key(key);
  request.set_read_preference(ToReadPreference(read));
  pb::GetResponse response;
  grpc::ClientContext context;
  conn.Prepare(&context);
  const grpc::Status status = conn.cache().Get(&context, request, &response);
  if (!status.ok()) return conn.Report(status);
  bool ok = WriteStdout(response.value());
  if (isatty(STDOUT_FILENO)) ok = ok && WriteStdout("\n");
  if (std::fflush(stdout) != 0 || !ok) {
    PrintError("INTERNAL", std::string("cannot write to stdout: ") + std::strerror(errno));
    return kExitError;
  }
  return kExitOk;
}

struct SetArgs {
  std::string key;
  std::string value;
  std::string file;
  uint64_t ttl_ms = 0;
  bool if_absent = false;
  bool if_present = false;
  uint64_t if_version = 0;
};

int CmdSet(Connection& conn, const SetArgs& args, bool has_value, bool has_file, bool has_version,
           const WriteConcern& wc) {
  if (has_value == has_file) {
    return UsageError(has_value ? "set: give either VALUE or --file, not both"
                                : "set: missing VALUE (or '-' for stdin, or --file PATH)");
  }
  pb::SetRequest request;
  request.set_key(args.key);
  if (has_file) {
    if (!ReadFile(args.file, request.mutable_value())) {
      PrintError("INVALID_ARGUMENT", "cannot read " + args.file + ": " + std::strerror(errno));
      return kExitError;
    }
  } else if (args.value == "-") {
    if (!ReadStdin(request.mutable_value())) {
      PrintError("INVALID_ARGUMENT", std::string("cannot read stdin: ") + std::strerror(errno));
      return kExitError;
    }
  } else {
    request.set_value(args.value);
  }
  request.set_ttl_ms(args.ttl_ms);
  if (args.if_absent) {
    request.set_mode(pb::SET_MODE_IF_ABSENT);
  } else if (args.if_present) {
    request.set_mode(pb::SET_MODE_IF_PRESENT);
  } else if (has_version) {
    request.set_mode(pb::SET_MODE_IF_VERSION);
    request.set_expected_version(args.if_version);
  }
  request.set_write_concern(wc.replicas);
  request.set_write_concern_timeout_ms(wc.timeout_ms);
  pb::SetResponse response;
  grpc::ClientContext context;
  conn.Prepare(&context);
  const grpc::Status status = conn.cache().Set(&context, request, &response);
  if (!status.ok()) return conn.Report(status);
  std::printf("%llu\n", static_cast<unsigned long long>(response.version()));
  std::fflush(stdout);
  return ReportAcks(wc, response.replicas_acked());
}

int CmdDel(Connection& conn, const std::vector<std::string>& keys, const WriteConcern& wc) {
  if (keys.size() == 1) {
    pb::DeleteRequest request;
    request.set_key(keys.front());
    request.set_write_concern(wc.replicas);
    request.set_write_concern_timeout_ms(wc.timeout_ms);
    pb::DeleteResponse response;
    grpc::ClientContext context;
    conn.Prepare(&context);
    const grpc::Status status = conn.cache().Delete(&context, request, &response);
    if (!status.ok()) return conn.Report(status);
    std::printf("1\n");
    std::fflush(stdout);
    return ReportAcks(wc, response.replicas_acked());
  }
  int exit_code = kExitOk;
  uint64_t deleted = 0;
  for (size_t begin = 0; begin < keys.size(); begin += kBatchSize) {
    const size_t end = std::min(keys.size(), begin + kBatchSize);
    pb::MultiDeleteRequest request;
    for (size_t i = begin; i < end; ++i) request.add_keys(keys[i]);
    request.set_write_concern(wc.replicas);
    request.set_write_concern_timeout_ms(wc.timeout_ms);
    pb::MultiDeleteResponse response;
    grpc::ClientContext context;
    conn.Prepare(&context);
    const grpc::Status status = conn.cache().MultiDelete(&context, request, &response);
    if (!status.ok()) return conn.Report(status);
    for (int i = 0; i < response.results_size(); ++i) {
      const pb::OpStatus& result = response.results(i);
      const std::string what = Printable(keys[begin + static_cast<size_t>(i)]);
      if (result.code() == 0) {
        ++deleted;
        if (i < response.replicas_acked_size()) {
          exit_code = WorseExit(exit_code, ReportAcks(wc, response.replicas_acked(i), what));
        }
      } else {
        exit_code = WorseExit(exit_code, conn.ReportCode(result.code(), result.message(), what));
      }
    }
  }
  std::printf("%llu\n", static_cast<unsigned long long>(deleted));
  return exit_code;
}

int CmdTouch(Connection& conn, const std::string& key, uint64_t ttl_ms, const WriteConcern& wc) {
  pb::TouchRequest request;
  request.set_key(key);
  request.set_ttl_ms(ttl_ms);
  request.set_write_concern(wc.replicas);
  request.set_write_concern_timeout_ms(wc.timeout_ms);
  pb::TouchResponse response;
  grpc::ClientContext context;
  conn.Prepare(&context);
  const grpc::Status status = conn.cache().Touch(&context, request, &response);
  if (!status.ok()) return conn.Report(status);
  return ReportAcks(wc, response.replicas_acked());
}

int CmdTtl(Connection& conn, const std::string& key, const std::string& read) {
  pb::TtlRequest request;
  request.set_key(key);
  request.set_read_preference(ToReadPreference(read));
  pb::TtlResponse response;
  grpc::ClientContext context;
  conn.Prepare(&context);
  const grpc::Status status = conn.cache().Ttl(&context, request, &response);
  if (!status.ok()) return conn.Report(status);
  std::printf("%llu\n", static_cast<unsigned long long>(response.ttl_ms()));
  return kExitOk;
}

int CmdIncr(Connection& conn, const std::string& key, int64_t delta, const std::string& by_float,
            uint64_t ttl_ms, const WriteConcern& wc) {
  pb::IncrRequest request;
  request.set_key(key);
  if (by_float.empty()) {
    request.set_delta(delta);
  } else {
    request.set_by_float(by_float);
  }
  request.set_ttl_ms_if_created(ttl_ms);
  request.set_write_concern(wc.replicas);
  request.set_write_concern_timeout_ms(wc.timeout_ms);
  pb::IncrResponse response;
  grpc::ClientContext context;
  conn.Prepare(&context);
  const grpc::Status status = conn.cache().Incr(&context, request, &response);
  if (!status.ok()) return conn.Report(status);
  if (by_float.empty()) {
    std::printf("%lld\n", static_cast<long long>(response.value()));
  } else {
    std::printf("%s\n", Printable(response.float_value()).c_str());
  }
  std::fflush(stdout);
  return ReportAcks(wc, response.replicas_acked());
}

// What each hash, list and set command does and takes, for --help.
struct CollectionHelp {
  std::string_view name;
  std::string_view summary;
  std::string_view args;
};
constexpr CollectionHelp kCollectionHelp[] = {
    {"hset", "Set fields of a hash; print how many were added", "FIELD VALUE [FIELD VALUE ...]"},
    {"hsetnx", "Set a hash field only if it does not exist; print 1 or 0", "FIELD VALUE"},
    {"hget", "Print a hash field's value (exit 1 if it does not exist)", "FIELD"},
    {"hmget", "Print hash fields' values, one per line ((nil) for absent ones)", "FIELD..."},
    {"hdel", "Remove hash fields; print how many were removed", "FIELD..."},
    {"hgetall", "Print a hash's fields: FIELD<TAB>VALUE per line", ""},
    {"hkeys", "Print a hash's field names, one per line", ""},
    {"hvals", "Print a hash's values, one per line", ""},
    {"hlen", "Print how many fields a hash has", ""},
    {"hexists", "Print 1 if a hash has the field, else 0", "FIELD"},
    {"hstrlen", "Print the length of a hash field's value", "FIELD"},
    {"hincrby", "Add an integer to a hash field; print the result", "FIELD INCREMENT"},
    {"hincrbyfloat", "Add a float to a hash field; print the result", "FIELD INCREMENT"},
    {"hrandfield", "Print random fields of a hash (negative COUNT: repeats allowed)",
     "[COUNT [WITHVALUES]]"},
    {"hscan", "Print the next cursor, then a batch of a hash's fields (FIELD<TAB>VALUE)",
     "CURSOR [MATCH PATTERN] [COUNT N]"},
    {"lpush", "Push elements at a list's head; print its length", "ELEMENT..."},
    {"rpush", "Push elements at a list's tail; print its length", "ELEMENT..."},
    {"lpushx", "LPUSH only onto an existing list", "ELEMENT..."},
    {"rpushx", "RPUSH only onto an existing list", "ELEMENT..."},
    {"lpop", "Pop from a list's head (exit 1 if empty)", "[COUNT]"},
    {"rpop", "Pop from a list's tail (exit 1 if empty)", "[COUNT]"},
    {"lrange", "Print a list's elements START..STOP (inclusive; -1 = last)", "START STOP"},
    {"llen", "Print a list's length", ""},
    {"lindex", "Print a list's element at INDEX (exit 1 if out of range)", "INDEX"},
    {"lset", "Replace a list's element at INDEX", "INDEX ELEMENT"},
    {"linsert", "Insert an element before or after a pivot; print the length",
     "BEFORE|AFTER PIVOT ELEMENT"},
    {"ltrim", "Keep only a list's elements START..STOP", "START STOP"},
    {"lrem", "Remove COUNT occurrences of an element (0 = all, < 0 from the tail)",
     "COUNT ELEMENT"},
    {"lpos", "Print the index of an element (exit 1 if absent)",
     "ELEMENT [RANK R] [COUNT N] [MAXLEN L]"},
    {"sadd", "Add members to a set; print how many were added", "MEMBER..."},
    {"srem", "Remove members from a set; print how many were removed", "MEMBER..."},
    {"sismember", "Print 1 if the set has the member, else 0", "MEMBER"},
    {"smismember", "Print 1 or 0 per member, one per line", "MEMBER..."},
    {"smembers", "Print a set's members, one per line", ""},
    {"scard", "Print how many members a set has", ""},
    {"spop", "Remove and print random members of a set (exit 1 if empty)", "[COUNT]"},
    {"srandmember", "Print random members of a set (negative COUNT: repeats allowed)", "[COUNT]"},
    {"sscan", "Print the next cursor, then a batch of a set's members",
     "CURSOR [MATCH PATTERN] [COUNT N]"},
};

// A hash, list or set command (Redis's arguments after the key), printed as redis-cli
// would print its reply, one item per line.
int CmdCollection(Connection& conn, const TypedCommandInfo& info, const std::string& key,
                  const std::vector<std::string>& raw, const std::string& read, uint64_t if_version,
                  const WriteConcern& wc) {
  const std::vector<std::string_view> args(raw.begin(), raw.end());
  TypedOp op;
  if (Status s = ParseRedisArgs(info, args, &op); !s.ok()) {
    return UsageError(std::string(info.name) + ": " + s.message());
  }
  pb::CollectionRequest request;
  request.set_key(key);
  request.set_command(static_cast<pb::CollectionCommand>(info.command));
  for (std::string_view arg : op.args) request.add_args(arg.data(), arg.size());
  request.set_n(op.n);
  request.set_stop(op.stop);
  request.set_flag(op.flag);
  request.set_count(op.count);
  request.set_option(op.option);
  if (info.write) {
    request.set_if_version(if_version);
    request.set_write_concern(wc.replicas);
    request.set_write_concern_timeout_ms(wc.timeout_ms);
  } else {
    request.set_read_preference(ToReadPreference(read));
  }
  pb::CollectionResponse response;
  grpc::ClientContext context;
  conn.Prepare(&context);
  const grpc::Status status = conn.cache().Collection(&context, request, &response);
  if (!status.ok()) return conn.Report(status);
  const auto& items = response.items();
  switch (info.command) {
    case TypedCommand::kHGet:
    case TypedCommand::kHIncrByFloat:
    case TypedCommand::kLIndex:
    case TypedCommand::kLPop:
    case TypedCommand::kRPop:
    case TypedCommand::kHKeys:
    case TypedCommand::kHVals:
    case TypedCommand::kLRange:
    case TypedCommand::kSMembers:
    case TypedCommand::kSPop:
    case TypedCommand::kSRandMember:
    case TypedCommand::kHRandField:
      if (response.nil()) {
        std::fprintf(stderr, "(nil)\n");
        return kExitNotMet;
      }
      for (const std::string& item : items) std::printf("%s\n", Printable(item).c_str());
      break;
    case TypedCommand::kHGetAll:
      for (int i = 0; i + 1 < items.size(); i += 2) {
        std::printf("%s\t%s\n", Printable(items[i]).c_str(), Printable(items[i + 1]).c_str());
      }
      break;
    case TypedCommand::kHMGet: {
      int next_absent = 0;
      for (int i = 0; i < items.size(); ++i) {
        if (next_absent < response.absent_size() &&
            response.absent(next_absent) == static_cast<uint32_t>(i)) {
          std::printf("(nil)\n");
          ++next_absent;
        } else {
          std::printf("%s\n", Printable(items[i]).c_str());
        }
      }
      break;
    }
    case TypedCommand::kSMIsMember:
      for (int64_t n : response.integers()) std::printf("%lld\n", static_cast<long long>(n));
      break;
    case TypedCommand::kHScan:
    case TypedCommand::kSScan: {
      std::printf("%llu\n",
                  static_cast<unsigned long long>(static_cast<uint64_t>(response.integer())));
      const int stride = info.command == TypedCommand::kHScan ? 2 : 1;
      for (int i = 0; i + stride - 1 < items.size(); i += stride) {
        if (stride == 2) {
          std::printf("%s\t%s\n", Printable(items[i]).c_str(), Printable(items[i + 1]).c_str());
        } else {
          std::printf("%s\n", Printable(items[i]).c_str());
        }
      }
      break;
    }
    case TypedCommand::kLPos:
      if (op.flag) {
        for (int64_t n : response.integers()) std::printf("%lld\n", static_cast<long long>(n));
      } else if (response.nil()) {
        std::fprintf(stderr, "(nil)\n");
        return kExitNotMet;
      } else {
        std::printf("%lld\n", static_cast<long long>(response.integer()));
      }
      break;
    case TypedCommand::kLSet:
    case TypedCommand::kLTrim:
      std::printf("OK\n");
      break;
    default:
      std::printf("%lld\n", static_cast<long long>(response.integer()));
      break;
  }
  std::fflush(stdout);
  return info.write ? ReportAcks(wc, response.replicas_acked()) : kExitOk;
}

int CmdMget(Connection& conn, const std::vector<std::string>& keys, const std::string& read) {
  int exit_code = kExitOk;
  for (size_t begin = 0; begin < keys.size(); begin += kBatchSize) {
    const size_t end = std::min(keys.size(), begin + kBatchSize);
    pb::MultiGetRequest request;
    for (size_t i = begin; i < end; ++i) request.add_keys(keys[i]);
    request.set_read_preference(ToReadPreference(read));
    pb::MultiGetResponse response;
    grpc::ClientContext context;
    conn.Prepare(&context);
    const grpc::Status status = conn.cache().MultiGet(&context, request, &response);
    if (!status.ok()) return conn.Report(status);
    for (int i = 0; i < response.results_size(); ++i) {
      const pb::GetResult& result = response.results(i);
      const std::string& key = keys[begin + static_cast<size_t>(i)];
      WriteStdout(key);
      WriteStdout("\t");
      const int code = result.status().code();
      if (code == 0) {
        WriteStdout(result.value());
      } else if (code == static_cast<int>(grpc::StatusCode::NOT_FOUND)) {
        WriteStdout("(not found)");
      } else {
        WriteStdout("(error)");
        exit_code =
            WorseExit(exit_code, conn.ReportCode(code, result.status().message(), Printable(key)));
      }
      WriteStdout("\n");
    }
  }
  std::fflush(stdout);
  return exit_code;
}

int CmdMset(Connection& conn, const std::vector<std::string>& pairs, uint64_t ttl_ms,
            const WriteConcern& wc) {
  if (pairs.size() % 2 != 0)
    return UsageError("mset: needs KEY VALUE pairs (odd number of arguments)");
  int exit_code = kExitOk;
  const size_t items = pairs.size() / 2;
  for (size_t begin = 0; begin < items; begin += kBatchSize) {
    const size_t end = std::min(items, begin + kBatchSize);
    pb::MultiSetRequest request;
    for (size_t i = begin; i < end; ++i) {
      pb::SetRequest* item = request.add_items();
      item->set_key(pairs[2 * i]);
      item->set_value(pairs[2 * i + 1]);
      item->set_ttl_ms(ttl_ms);
    }
    request.set_write_concern(wc.replicas);
    request.set_write_concern_timeout_ms(wc.timeout_ms);
    pb::MultiSetResponse response;
    grpc::ClientContext context;
    conn.Prepare(&context);
    const grpc::Status status = conn.cache().MultiSet(&context, request, &response);
    if (!status.ok()) return conn.Report(status);
    for (int i = 0; i < response.results_size(); ++i) {
      const pb::SetResult& result = response.results(i);
      const std::string& key = pairs[2 * (begin + static_cast<size_t>(i))];
      if (result.status().code() == 0) {
        WriteStdout(key);
        std::printf("\t%llu\n", static_cast<unsigned long long>(result.version()));
        std::fflush(stdout);
        exit_code = WorseExit(exit_code, ReportAcks(wc, result.replicas_acked(), Printable(key)));
      } else {
        exit_code = WorseExit(
            exit_code,
            conn.ReportCode(result.status().code(), result.status().message(), Printable(key)));
      }
    }
  }
  return exit_code;
}

int CmdPing(Connection& conn, const std::string& service) {
  health::HealthCheckRequest request;
  request.set_service(service);
  // The first call also opens the connection; the second one measures the round trip.
  std::chrono::steady_clock::duration latency{};
  for (int attempt = 0; attempt < 2; ++attempt) {
    health::HealthCheckResponse response;
    grpc::ClientContext context;
    conn.Prepare(&context);
    const auto start = std::chrono::steady_clock::now();
    const grpc::Status status = conn.health().Check(&context, request, &response);
    latency = std::chrono::steady_clock::now() - start;
    if (!status.ok()) {
      if (status.error_code() == grpc::StatusCode::NOT_FOUND) {
        PrintError("NOT_FOUND", "the node does not know service \"" + Printable(service) + "\"");
        return kExitNotMet;
      }
      return conn.Report(status);
    }
    if (response.status() != health::HealthCheckResponse::SERVING) {
      // Why: the node's state (fenced, joining, leaving), else it is shutting down.
      std::string why = "shutting down?";
      pb::StatsResponse stats;
      grpc::ClientContext stats_context;
      conn.Prepare(&stats_context);
      if (conn.cache().Stats(&stats_context, pb::StatsRequest(), &stats).ok() &&
          stats.state() != pb::NODE_STATE_SERVING) {
        why = NodeStateText(stats.state());
        if (!stats.state_detail().empty()) why += ": " + Printable(stats.state_detail());
      }
      PrintError("UNAVAILABLE",
                 conn.options().addr + " is " +
                     health::HealthCheckResponse::ServingStatus_Name(response.status()) + " (" +
                     why + ")");
      return kExitError;
    }
  }
  const double ms = std::chrono::duration<double, std::milli>(latency).count();
  std::printf("PONG %.3f ms\n", ms);
  return kExitOk;
}

// CLI11 2.1 parses "-5" into an unsigned option by wrapping around: refuse it up front.
const CLI::Validator kUnsigned(
    [](std::string& input) -> std::string {
      if (!input.empty() &&
          std::all_of(input.begin(), input.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return {};
      }
      return "expected a non-negative integer, got \"" + input + "\"";
    },
    "");

// True for HOST:PORT (port numeric) or an explicit gRPC target ("dns:///h:p", "unix:/p").
bool LooksLikeAddress(const std::string& addr) {
  if (addr.rfind("unix:", 0) == 0 || addr.find("://") != std::string::npos) return true;
  const size_t colon = addr.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == addr.size()) return false;
  return std::all_of(addr.begin() + static_cast<std::ptrdiff_t>(colon) + 1, addr.end(),
                     [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

int main(int argc, char** argv) {
  // gRPC's own log lines (a failed TLS handshake) would repeat what the CLI reports.
  gpr_set_log_function([](gpr_log_func_args*) {});
  CLI::App app{
      "ringcache-cli: command-line client for a ringcached node or cluster.\n"
      "Exit codes: 0 ok; 1 key not found, condition not met, or fewer replica acks than\n"
      "--wc asked; 2 usage error; 3 other error (e.g. a node that does not answer).",
      "ringcache-cli"};
  app.require_subcommand(1);
  app.fallthrough();  // global options are also accepted after the command
  app.failure_message([](const CLI::App* failed, const CLI::Error& e) {
    return std::string(kProgram) + ": " + CLI::FailureMessage::simple(failed, e);
  });
  app.set_version_flag("--version", std::string("ringcache-cli ") + RINGCACHE_CLI_VERSION);

  GlobalOptions global;
  app.add_option("--addr", global.addr, "Node address HOST:PORT")
      ->envname("RINGCACHE_ADDR")
      ->capture_default_str();
  app.add_option("--timeout-ms", global.timeout_ms, "Deadline of each call, in milliseconds")
      ->check(CLI::Range(int64_t{1}, int64_t{24} * 3600 * 1000))
      ->capture_default_str();
  app.add_option("--token-file", global.token_file,
                 "File holding a client token (the node's --auth-tokens-file);\n"
                 "every call carries it")
      ->envname("RINGCACHE_TOKEN_FILE")
      ->check(CLI::ExistingFile);
  app.add_flag("--tls", global.tls, "Connect with TLS (the system's CAs verify the node)");
  app.add_option("--tls-ca-file", global.tls_ca_file,
                 "PEM CA certificates that verify the node's certificate (implies --tls)")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-cert-file", global.tls_cert_file,
                 "PEM client certificate, for a node with --tls-client-certs (implies --tls)")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-key-file", global.tls_key_file, "PEM private key of --tls-cert-file")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-server-name", global.tls_server_name,
                 "Name to check the node's certificate against, instead of --addr's host");

  // Shared by the write commands (--wc) and the read commands (--read); only one command
  // runs, so they can share the variables.
  WriteConcern wc;
  const auto add_write_concern = [&wc](CLI::App* cmd) {
    cmd->add_option("--wc", wc.replicas,
                    "Write concern: wait until N replicas acknowledged the write; prints\n"
                    "\"k/N replicas acked\" on stderr, exit 1 if fewer did in time")
        ->check(kUnsigned);
    cmd->add_option("--wc-timeout-ms", wc.timeout_ms,
                    "How long --wc may wait for the acks (default: the node's, 1000 ms)")
        ->check(CLI::Range(uint32_t{1}, uint32_t{60000}));
  };
  std::string read = "primary";
  const auto add_read_preference = [&read](CLI::App* cmd) {
    cmd->add_option("--read", read,
                    "Which copy may answer: primary (every acknowledged write), or any\n"
                    "owner (a replica may lag: stale or missing values)")
        ->check(CLI::IsMember({"primary", "any"}))
        ->capture_default_str();
  };

  // get
  std::string get_key;
  CLI::App* get = app.add_subcommand("get", "Print a key's value");
  get->footer(
      "Writes the raw value bytes to stdout; a newline is added only when stdout is a\n"
      "terminal. Exit 1 if the key is absent or expired.");
  get->add_option("KEY", get_key, "The key")->required();
  add_read_preference(get);

  // set
  SetArgs set_args;
  CLI::App* set = app.add_subcommand("set", "Write a key and print its new version");
  set->footer(
      "The value is VALUE, or all of stdin when VALUE is '-', or the contents of\n"
      "--file PATH (binary-safe). A VALUE starting with '-' goes after '--'.\n"
      "Exit 1 if a condition (--if-absent, --if-present, --if-version) is not met.");
  set->add_option("KEY", set_args.key, "The key")->required();
  CLI::Option* set_value = set->add_option("VALUE", set_args.value, "The value ('-' = read stdin)");
  CLI::Option* set_file = set->add_option("--file", set_args.file, "Read the value from this file")
                              ->check(CLI::ExistingFile);
  set->add_option("--ttl", set_args.ttl_ms, "Time to live in milliseconds (0 = never expires)")
      ->check(kUnsigned)
      ->capture_default_str();
  CLI::Option* if_absent =
      set->add_flag("--if-absent", set_args.if_absent, "Only insert: exit 1 if the key exists");
  CLI::Option* if_present = set->add_flag("--if-present", set_args.if_present,
                                          "Only replace: exit 1 if the key is absent");
  CLI::Option* if_version =
      set->add_option(
             "--if-version", set_args.if_version,
             "Compare-and-set: only replace this version (exit 1 if absent or another version)")
          ->check(kUnsigned);
  if_absent->excludes(if_present)->excludes(if_version);
  if_present->excludes(if_version);
  add_write_concern(set);

  // del
  std::vector<std::string> del_keys;
  CLI::App* del = app.add_subcommand("del", "Remove keys and print how many were removed");
  del->footer("Exit 1 if any key was absent.");
  del->add_option("KEY", del_keys, "Keys to remove")->required();
  add_write_concern(del);

  // touch
  std::string touch_key;
  uint64_t touch_ttl = 0;
  CLI::App* touch = app.add_subcommand("touch", "Give a key a new time to live");
  touch->footer(
      "MS is the new time to live in milliseconds, 0 = never expires. The value and\n"
      "version are unchanged. Exit 1 if the key is absent.");
  touch->add_option("KEY", touch_key, "The key")->required();
  touch->add_option("MS", touch_ttl, "New time to live in milliseconds")
      ->required()
      ->check(kUnsigned);
  add_write_concern(touch);

  // ttl
  std::string ttl_key;
  CLI::App* ttl = app.add_subcommand("ttl", "Print a key's remaining time to live in ms");
  ttl->footer("Prints 0 if the key never expires. Exit 1 if the key is absent.");
  ttl->add_option("KEY", ttl_key, "The key")->required();
  add_read_preference(ttl);

  // incr
  std::string incr_key;
  int64_t incr_delta = 1;
  uint64_t incr_ttl = 0;
  CLI::App* incr = app.add_subcommand("incr", "Add to an integer value and print the result");
  std::string incr_float;
  incr->footer(
      "DELTA defaults to 1 and may be negative (incr KEY -5). The value must be a\n"
      "decimal int64 (exit 1 otherwise); an absent key counts as 0. With --float, the\n"
      "value and the amount are floating-point numbers (Redis's INCRBYFLOAT) and the\n"
      "result is printed as stored (incr KEY --float 0.1).");
  incr->add_option("KEY", incr_key, "The key")->required();
  CLI::Option* incr_delta_option =
      incr->add_option("DELTA", incr_delta, "Amount to add, e.g. 5 or -5")->capture_default_str();
  incr->add_option("--float", incr_float,
                   "A floating-point amount instead of DELTA, e.g. 0.1 or -2.5e3")
      ->excludes(incr_delta_option);
  incr->add_option("--ttl", incr_ttl, "Time to live in ms if this call creates the key")
      ->check(kUnsigned);
  add_write_concern(incr);

  // mget
  std::vector<std::string> mget_keys;
  CLI::App* mget = app.add_subcommand("mget", "Read many keys");
  mget->footer(
      "Prints one line per key, in order: KEY<TAB>VALUE, or KEY<TAB>(not found).\n"
      "Absent keys are not an error (exit 0).");
  mget->add_option("KEY", mget_keys, "Keys to read")->required();
  add_read_preference(mget);

  // mset
  std::vector<std::string> mset_pairs;
  uint64_t mset_ttl = 0;
  CLI::App* mset = app.add_subcommand("mset", "Write many keys");
  mset->footer("Takes KEY VALUE pairs; prints one line per key: KEY<TAB>VERSION.");
  mset->add_option("KEY VALUE", mset_pairs, "Alternating keys and values")->required();
  mset->add_option("--ttl", mset_ttl, "Time to live in milliseconds for every key")
      ->check(kUnsigned);
  add_write_concern(mset);

  // Hashes, lists and sets: one subcommand per command, with Redis's arguments.
  std::string collection_key;
  std::vector<std::string> collection_args;
  uint64_t collection_if_version = 0;
  std::vector<std::pair<CLI::App*, const TypedCommandInfo*>> collection_cmds;
  for (const CollectionHelp& help : kCollectionHelp) {
    const TypedCommandInfo* info = ringcache::TypedCommandNamed(help.name);
    CLI::App* cmd = app.add_subcommand(std::string(help.name), std::string(help.summary));
    cmd->group("Hashes, lists and sets");
    cmd->footer("Arguments after KEY, as Redis's " + Upper(help.name) + " takes them: " +
                (help.args.empty() ? std::string("none") : std::string(help.args)) +
                ".\nWith an argument starting with '-' (other than a number), put '--' before\nall "
                "the arguments: lrem KEY -- -1 -x.\n"
                "A key holding another type is an error (FAILED_PRECONDITION WRONGTYPE, exit 1).");
    cmd->add_option("KEY", collection_key, "The key")->required();
    cmd->add_option("ARGS", collection_args, std::string(help.args));
    if (info->write) {
      cmd->add_option("--if-version", collection_if_version,
                      "Compare-and-set: only if the key is at this version")
          ->check(kUnsigned);
      add_write_concern(cmd);
    } else {
      add_read_preference(cmd);
    }
    collection_cmds.emplace_back(cmd, info);
  }

  // stats
  CLI::App* stats = app.add_subcommand("stats", "Print the node's cache counters as a table");

  // snapshot
  CLI::App* snapshot =
      app.add_subcommand("snapshot", "Have the node write a snapshot to its --data-dir now");
  snapshot->footer(
      "Waits until the snapshot is complete and durable, then prints its keys, size, time\n"
      "and path. Needs the role admin. Fails (the message says why) if the node has no\n"
      "--data-dir or the write failed; the previous snapshot then stays.");

  // publish, subscribe
  std::string publish_channel;
  std::string publish_message;
  CLI::App* publish = app.add_subcommand(
      "publish", "Send a message to every subscriber of a channel, cluster-wide");
  publish->add_option("channel", publish_channel, "Channel name")->required();
  publish->add_option("message", publish_message, "The message (bytes as given)")->required();
  publish->footer(
      "Prints how many subscriptions received it, counted over every node (one per\n"
      "matching channel or pattern of a subscription, as Redis's PUBLISH). A node that\n"
      "does not answer within its --publish-timeout-ms is reported on stderr. Delivery is\n"
      "at-most-once: nothing is retried.");
  std::vector<std::string> subscribe_channels;
  std::vector<std::string> subscribe_patterns;
  uint64_t subscribe_count = 0;
  CLI::App* subscribe =
      app.add_subcommand("subscribe", "Print the messages of channels and patterns until Ctrl-C");
  subscribe->add_option("channel", subscribe_channels, "Channel names");
  subscribe
      ->add_option("--pattern,-p", subscribe_patterns,
                   "A glob pattern (Redis's PSUBSCRIBE: *, ?, [a-z]); may repeat")
      ->allow_extra_args(false)
      ->take_all();
  subscribe->add_option("--count", subscribe_count, "Exit 0 after this many messages");
  subscribe->footer(
      "Subscribes on the node at --addr, which receives what is published through any\n"
      "node. Prints one line per message: CHANNEL, a tab, the message, and for a pattern\n"
      "subscription a tab and the pattern (bytes outside printable ASCII as \\xNN). A\n"
      "keyspace event (nodes with --keyspace-events: subscribe to -p '__keyspace@0__:*')\n"
      "adds a fourth column, the key's version.\n"
      "Messages missed (a gap in the node's sequence numbers) are reported on stderr.\n"
      "Exit 3 when the stream ends: RESOURCE_EXHAUSTED if this reader fell further behind\n"
      "than the node's --subscriber-buffer-bytes, UNAVAILABLE when the node shuts down.");

  // cluster status
  CLI::App* cluster = app.add_subcommand("cluster", "Cluster-wide commands: status, leave");
  cluster->require_subcommand(1);
  CLI::App* cluster_status = cluster->add_subcommand(
      "status", "Print the cluster view, each node's share of the keys and replication links");
  cluster_status->footer(
      "Asks the node at --addr for its view (Topology), then every member for its Stats.\n"
      "Members: id, address, STATE in the view (serving, joining, leaving, failed),\n"
      "NODE_STATE as the node reports it (serving, fenced, joining, leaving), weight;\n"
      "PRIMARY and OWNER are the member's share of the key space as primary and as any\n"
      "of the replication-factor owners (from the same ring the nodes build); EPOCH,\n"
      "ITEMS and UNDER_REPL (ranges it is the primary of with fewer in-sync copies than\n"
      "the replication factor) are the member's own. Below the table: why a node is not\n"
      "serving, the failed members, the under-replicated ranges in all and, while\n"
      "members join or leave, the migration's progress. Links: per primary -> replica,\n"
      "its state, lag in operations and ms, acked and last sequence numbers, backlog,\n"
      "resumes and full syncs. Exit 3 if a member that is not failed does not answer\n"
      "(it is listed as unreachable).");

  bool leave_no_wait = false;
  CLI::App* cluster_leave = cluster->add_subcommand(
      "leave", "Make the node at --addr leave the cluster gracefully, then wait until it left");
  cluster_leave->add_flag("--no-wait", leave_no_wait,
                          "Return once the coordinator accepted the leave (the node is\n"
                          "leaving), without following the drain");
  std::string leave_secret_file;
  cluster_leave
      ->add_option("--cluster-secret-file", leave_secret_file,
                   "The cluster's secret file, as given to ringcached: a node\n"
                   "started with one refuses a leave without it")
      ->check(CLI::ExistingFile);
  cluster_leave->footer(
      "Calls Membership.Leave on the node at --addr (with its id, from its Stats): the\n"
      "coordinator marks it LEAVING, its ranges stream to their next owners while it\n"
      "keeps serving them, then it is removed from the view and ringcached exits 0.\n"
      "Without --no-wait, shows the migration's progress (summed over the members:\n"
      "redrawn in place on a terminal, one line per second otherwise) until the node is\n"
      "out of the view, then prints \"node ID left the cluster (epoch N)\".\n"
      "Exit 1 if the node refused (the only member, or not serving: joining, fenced,\n"
      "already leaving); 3 if it cannot be reached or is declared failed meanwhile.");

  // ping
  std::string ping_service;
  CLI::App* ping = app.add_subcommand("ping", "Check the node's health and print PONG <latency>");
  ping->footer(
      "Calls grpc.health.v1.Health/Check. Exit 3 if the node is down or NOT_SERVING (the\n"
      "message then names its state: fenced, joining or leaving, or shutting down).");
  ping->add_option("--service", ping_service, "Service to check (\"\" = the whole node)");

  // CLI11 reads an argument "[...]" given to a list option as its own list syntax, which
  // would turn a MATCH pattern "[ab]" into "ab". After a collection command's name, such
  // arguments are marked so that CLI11 keeps them whole, and unmarked once parsed.
  std::vector<std::string> words(argv, argv + argc);
  const size_t command_at = CommandPosition(app, words);
  if (command_at < words.size() && ringcache::TypedCommandNamed(words[command_at]) != nullptr) {
    for (size_t i = command_at + 1; i < words.size(); ++i) {
      if (words[i].size() >= 2 && words[i].front() == '[' && words[i].back() == ']') {
        words[i].insert(0, kKeepWhole);
      }
    }
  }
  std::vector<const char*> marked;
  for (const std::string& w : words) marked.push_back(w.c_str());
  try {
    app.parse(static_cast<int>(marked.size()), marked.data());
    Unmark(&collection_key);
    for (std::string& a : collection_args) Unmark(&a);
  } catch (const CLI::ParseError& e) {
    if (app.get_subcommands().empty() && !app.remaining().empty() &&
        dynamic_cast<const CLI::RequiredError*>(&e) != nullptr) {
      return UsageError("unknown command \"" + app.remaining().front() + "\"");
    }
    // --help and --version exit 0; every real parse error is a usage error (2).
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }
  if (!LooksLikeAddress(global.addr)) {
    return UsageError("--addr: expected HOST:PORT, got \"" + global.addr + "\"");
  }

  if (!global.token_file.empty()) {
    if (!ReadFile(global.token_file, &global.token)) {
      return UsageError("--token-file: cannot read " + global.token_file);
    }
    while (!global.token.empty() && std::isspace(static_cast<unsigned char>(global.token.back()))) {
      global.token.pop_back();
    }
    if (global.token.empty()) return UsageError("--token-file: " + global.token_file + " is empty");
    for (const char c : global.token) {
      if (c < 0x21 || c > 0x7e) {
        return UsageError("--token-file: " + global.token_file +
                          " must hold one token: printable ASCII without spaces or newlines");
      }
    }
  }
  if (!global.tls_ca_file.empty() || !global.tls_cert_file.empty()) global.tls = true;
  if (global.tls_cert_file.empty() != global.tls_key_file.empty()) {
    return UsageError("--tls-cert-file and --tls-key-file go together");
  }
  const std::pair<const std::string*, std::string*> pem_files[] = {
      {&global.tls_ca_file, &global.tls_pem.pem_root_certs},
      {&global.tls_cert_file, &global.tls_pem.pem_cert_chain},
      {&global.tls_key_file, &global.tls_pem.pem_private_key}};
  for (const auto& [path, pem] : pem_files) {
    if (!path->empty() && !ReadFile(*path, pem)) return UsageError("cannot read " + *path);
  }
  Connection conn(global);
  if (*get) return CmdGet(conn, get_key, read);
  if (*set) {
    return CmdSet(conn, set_args, set_value->count() > 0, set_file->count() > 0,
                  if_version->count() > 0, wc);
  }
  if (*del) return CmdDel(conn, del_keys, wc);
  if (*touch) return CmdTouch(conn, touch_key, touch_ttl, wc);
  if (*ttl) return CmdTtl(conn, ttl_key, read);
  if (*incr) return CmdIncr(conn, incr_key, incr_delta, incr_float, incr_ttl, wc);
  if (*mget) return CmdMget(conn, mget_keys, read);
  if (*mset) return CmdMset(conn, mset_pairs, mset_ttl, wc);
  if (*stats) return CmdStats(conn);
  if (*snapshot) return CmdSnapshot(conn);
  if (*publish) return CmdPublish(conn, publish_channel, publish_message);
  if (*subscribe) {
    if (subscribe_channels.empty() && subscribe_patterns.empty()) {
      return UsageError("subscribe: give at least one channel or --pattern");
    }
    return CmdSubscribe(conn, subscribe_channels, subscribe_patterns, subscribe_count);
  }
  for (const auto& [cmd, info] : collection_cmds) {
    if (*cmd) {
      return CmdCollection(conn, *info, collection_key, collection_args, read,
                           collection_if_version, wc);
    }
  }
  if (*cluster_status) return CmdClusterStatus(conn);
  if (*cluster_leave) return CmdClusterLeave(conn, leave_no_wait, leave_secret_file);
  if (*ping) return CmdPing(conn, ping_service);
  return UsageError("no command given");
}
