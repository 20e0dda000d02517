// NodeProcess: one real ringcached process on 127.0.0.1, owned by an integration test.
//
// Start() runs the daemon (path from $RINGCACHED_BIN, else the build's ringcached) with
//   --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --ready-file <tmp>/ready
// plus the test's extra flags (later flags win, so a test may override --listen), waits
// at most `ready_timeout` for the ready file and reads the actual grpc= / metrics=
// addresses from it. The daemon's stdout and stderr go to files in a per-node temp dir;
// if the test case fails, the listener in node_process.cc prints them.
//
// The destructor always SIGKILLs and reaps a process that is still running, so a failing
// test leaves no orphan; the child also gets PR_SET_PDEATHSIG(SIGKILL) in case the test
// binary itself dies. Every wait is bounded.
//
// Thread safety: not thread-safe; call from the test's main thread (PDEATHSIG is tied to
// the thread that started the process, so do not start nodes from short-lived threads).
#pragma once

#include <grpcpp/grpcpp.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ringcache/v1/cache.grpc.pb.h"

namespace ringcache::it {

// How a child process ended.
struct ExitStatus {
  bool exited = false;  // Exited normally: `code` is valid. Else killed by `signal`.
  int code = 0;
  int signal = 0;

  std::string ToString() const;  // "exit 0", "signal 9 (Killed)"
  bool operator==(const ExitStatus&) const = default;
  static ExitStatus Code(int c) { return ExitStatus{true, c, 0}; }
};

// Default bound for a node to become ready.
inline constexpr std::chrono::milliseconds kReadyTimeout{10'000};
// Default deadline of a unary test rpc.
inline constexpr std::chrono::milliseconds kRpcTimeout{5'000};

class NodeProcess {
 public:
  // `extra_args` are appended after the harness's own flags.
  explicit NodeProcess(std::vector<std::string> extra_args = {});
  ~NodeProcess();
  NodeProcess(const NodeProcess&) = delete;
  NodeProcess& operator=(const NodeProcess&) = delete;

  // Path of the ringcached binary under test.
  static std::string DaemonPath();

  // Spawns the daemon and waits for its ready file. False (and the reason in Error())
  // if it exits or is not ready in time; a process that is not ready is killed.
  // REQUIRES: not running.
  [[nodiscard]] bool Start(std::chrono::milliseconds ready_timeout = kReadyTimeout);
  // Start() in two steps: StartNoWait spawns the daemon, FinishStart waits for its ready
  // file as Start does (a node that cannot join yet is not ready). REQUIRES: not running.
  void StartNoWait();
  [[nodiscard]] bool FinishStart(std::chrono::milliseconds ready_timeout = kReadyTimeout);

  // Spawns the daemon with exactly `args` (no harness flags, no ready file) and does not
  // wait: for tests of startup failures, --help, --version. REQUIRES: not running.
  void SpawnRaw(const std::vector<std::string>& args);

  // Waits at most `timeout` for the process to exit; nullopt if it is still running.
  std::optional<ExitStatus> WaitExit(std::chrono::milliseconds timeout);

  // SIGTERM, then waits at most `timeout`; nullopt if it did not exit in time (it is
  // then still running; the destructor kills it).
  std::optional<ExitStatus> Terminate(std::chrono::milliseconds timeout);
  // Sends `sig` without waiting.
  void Signal(int sig);
  // SIGSTOP, then polls /proc/<pid>/task until every thread is stopped (state T or t), at
  // most `timeout`: the signal takes effect asynchronously, and a thread still running may
  // answer an rpc meanwhile. False if not running or not every thread stopped in time.
  [[nodiscard]] bool SignalStopAndWait(std::chrono::milliseconds timeout);
  // SIGKILL and reap. No-op if not running.
  void Kill();
  // Kill(), then Start() again with the same flags. With `same_ports`, reuses the grpc and
  // metrics ports the node had, so existing addresses stay valid.
  [[nodiscard]] bool Restart(bool same_ports = true,
                             std::chrono::milliseconds ready_timeout = kReadyTimeout);

  bool Running() const { return pid_ > 0; }
  pid_t Pid() const { return pid_; }
  // Exit status of the last process that ended, if any.
  const std::optional<ExitStatus>& LastExit() const { return last_exit_; }

  // "127.0.0.1:PORT" from the ready file ("" before Start or if metrics are disabled).
  const std::string& GrpcAddress() const { return grpc_address_; }
  const std::string& MetricsAddress() const { return metrics_address_; }
  // The Redis-protocol address from the ready file ("" unless started with --resp-listen).
  const std::string& RespAddress() const { return resp_address_; }
  // The cluster port's address from the ready file ("" unless started with
  // --cluster-listen), and the address other members dial: it, or GrpcAddress().
  const std::string& ClusterAddress() const { return cluster_address_; }
  const std::string& PeerAddress() const {
    return cluster_address_.empty() ? grpc_address_ : cluster_address_;
  }

  // A new channel to the node's gRPC address with unlimited client message sizes, with
  // the credentials set by set_credentials (plaintext by default).
  std::shared_ptr<grpc::Channel> NewChannel() const;
  void set_credentials(std::shared_ptr<grpc::ChannelCredentials> credentials) {
    credentials_ = std::move(credentials);
  }
  std::unique_ptr<ringcache::v1::Cache::Stub> NewStub() const;

  // What the daemon wrote to stderr / stdout since it was last spawned.
  std::string Stderr() const;
  std::string Stdout() const;
  // Why Start() failed, with the daemon's stderr.
  const std::string& Error() const { return error_; }
  // Path of the ready file the harness passes with --ready-file.
  const std::string& ReadyFile() const { return ready_path_; }
  // The per-node temp dir (logs, ready file); tests may put config files here.
  const std::string& Dir() const { return dir_; }

 private:
  void Spawn(const std::vector<std::string>& args);
  bool WaitReady(std::chrono::milliseconds timeout);
  std::optional<ExitStatus> Reap(bool block);

  std::vector<std::string> extra_args_;
  std::string dir_;
  std::string ready_path_;
  std::string stderr_path_;
  std::string stdout_path_;
  std::string harness_log_path_;
  // The flags the harness adds unless extra_args_ has them; Restart() may pin the ports.
  std::string listen_ = "127.0.0.1:0";
  std::string metrics_listen_ = "127.0.0.1:0";
  // Sizes of the log files when the current process was spawned.
  size_t stderr_offset_ = 0;
  size_t stdout_offset_ = 0;
  pid_t pid_ = -1;
  std::optional<ExitStatus> last_exit_;
  std::string grpc_address_;
  std::string metrics_address_;
  std::string resp_address_;
  std::string cluster_address_;
  std::string error_;
  int spawn_count_ = 0;
  std::shared_ptr<grpc::ChannelCredentials> credentials_;
};

// Catch2: starts `node` or fails the test case with the reason and the daemon's stderr.
void RequireStart(NodeProcess& node, std::chrono::milliseconds ready_timeout = kReadyTimeout);

// Starts ringcached with `args` (and --metrics-listen "", and --listen 127.0.0.1:0 unless
// `args` has --listen) and checks that it exits with an error within 15 s, saying `message`
// on stderr.
void CheckRefusedAtStartup(const std::vector<std::string>& args, const std::string& message);

// Sets a deadline `timeout` from now on `ctx`.
void SetDeadline(grpc::ClientContext& ctx, std::chrono::milliseconds timeout = kRpcTimeout);

// A memory field of /proc/<pid>/status ("VmRSS": resident now, "VmHWM": its peak) in
// bytes; 0 if the process or the field is unknown.
uint64_t ProcStatusBytes(pid_t pid, std::string_view field);

}  // namespace ringcache::it
