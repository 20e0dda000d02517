#include "node_process.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <thread>

// For TestEventListenerBase (the listener that prints node logs of failed tests).
#define CATCH_CONFIG_EXTERNAL_INTERFACES
#include <catch2/catch.hpp>

#ifndef RINGCACHED_PATH
#error "RINGCACHED_PATH must be defined by the build (tests/integration/CMakeLists.txt)"
#endif

namespace ringcache::it {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kPollInterval = std::chrono::milliseconds(5);

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void AppendToFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::app);
  out << text;
}

// True if `args` contains --name or --name=...
bool HasFlag(const std::vector<std::string>& args, const std::string& name) {
  return std::any_of(args.begin(), args.end(), [&](const std::string& a) {
    return a == name || a.rfind(name + "=", 0) == 0;
  });
}

std::string MakeTempDir() {
  std::string tmpl = "/tmp/ringcache-it-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    throw std::runtime_error(std::string("mkdtemp: ") + strerror(errno));
  }
  return tmpl;
}

ExitStatus FromWaitStatus(int st) {
  if (WIFEXITED(st)) return ExitStatus{true, WEXITSTATUS(st), 0};
  return ExitStatus{false, 0, WIFSIGNALED(st) ? WTERMSIG(st) : 0};
}

// Logs of the nodes of the current test case: printed by NodeLogListener if it fails.
struct NodeLog {
  std::string dir;
  std::string harness_log_path;
  std::string stderr_path;
  std::string stdout_path;
};
std::vector<NodeLog>& CurrentTestLogs() {
  static std::vector<NodeLog> logs;
  return logs;
}

std::string Tail(const std::string& s, size_t max_bytes) {
  if (s.size() <= max_bytes) return s;
  return "[... " + std::to_string(s.size() - max_bytes) + " bytes cut ...]\n" +
         s.substr(s.size() - max_bytes);
}

class NodeLogListener : public Catch::TestEventListenerBase {
 public:
  using TestEventListenerBase::TestEventListenerBase;

  void testCaseStarting(const Catch::TestCaseInfo& info) override {
    TestEventListenerBase::testCaseStarting(info);
    CurrentTestLogs().clear();
  }

  void testCaseEnded(const Catch::TestCaseStats& stats) override {
    const bool failed = !stats.totals.assertions.allOk();
    for (const NodeLog& log : CurrentTestLogs()) {
      if (failed) {
        std::cerr << ReadFile(log.harness_log_path);
        std::cerr << "---- ringcached stderr (" << log.stderr_path << ") ----\n"
                  << Tail(ReadFile(log.stderr_path), 32 * 1024) << "---- end of stderr ----\n";
        const std::string out = ReadFile(log.stdout_path);
        if (!out.empty()) {
          std::cerr << "---- ringcached stdout ----\n" << Tail(out, 8 * 1024) << "---- end ----\n";
        }
      } else {
        std::error_code ec;
        std::filesystem::remove_all(log.dir, ec);
      }
    }
    CurrentTestLogs().clear();
    TestEventListenerBase::testCaseEnded(stats);
  }
};

}  // namespace

CATCH_REGISTER_LISTENER(NodeLogListener)

std::string ExitStatus::ToString() const {
  if (exited) return "exit " + std::to_string(code);
  const char* name = strsignal(signal);
  return "signal " + std::to_string(signal) + " (" + (name != nullptr ? name : "?") + ")";
}

NodeProcess::NodeProcess(std::vector<std::string> extra_args)
    : extra_args_(std::move(extra_args)),
      dir_(MakeTempDir()),
      ready_path_(dir_ + "/ready"),
      stderr_path_(dir_ + "/stderr.log"),
      stdout_path_(dir_ + "/stdout.log"),
      harness_log_path_(dir_ + "/harness.log") {
  CurrentTestLogs().push_back(NodeLog{dir_, harness_log_path_, stderr_path_, stdout_path_});
}

NodeProcess::~NodeProcess() { Kill(); }

std::string NodeProcess::DaemonPath() {
  if (const char* env = std::getenv("RINGCACHED_BIN"); env != nullptr && *env != '\0') {
    return env;
  }
  return RINGCACHED_PATH;
}

void NodeProcess::Spawn(const std::vector<std::string>& args) {
  if (Running()) throw std::logic_error("NodeProcess::Spawn: already running");
  ++spawn_count_;
  const std::string path = DaemonPath();
  std::string banner = "==== harness: start #" + std::to_string(spawn_count_) + ": " + path;
  for (const auto& a : args) banner += " " + a;
  banner += "\n";
  AppendToFile(harness_log_path_, banner);
  AppendToFile(stderr_path_, "");  // Creates the files.
  AppendToFile(stdout_path_, "");
  stderr_offset_ = ReadFile(stderr_path_).size();
  stdout_offset_ = ReadFile(stdout_path_).size();

  // Everything the child needs is prepared before fork(): after fork() in a threaded
  // process only async-signal-safe calls are allowed.
  std::vector<std::string> argv_storage;
  argv_storage.push_back(path);
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);

  const int in_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  const int out_fd = open(stdout_path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  const int err_fd = open(stderr_path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (in_fd < 0 || out_fd < 0 || err_fd < 0) {
    throw std::runtime_error(std::string("NodeProcess: open: ") + strerror(errno));
  }
  const pid_t parent = getpid();

  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error(std::string("fork: ") + strerror(errno));
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    dup2(in_fd, 0);
    dup2(out_fd, 1);
    dup2(err_fd, 2);
    syscall(SYS_close_range, 3U, ~0U, 0U);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGPIPE, SIG_DFL);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(in_fd);
  close(out_fd);
  close(err_fd);
  pid_ = pid;
  last_exit_.reset();
}

void NodeProcess::SpawnRaw(const std::vector<std::string>& args) {
  grpc_address_.clear();
  metrics_address_.clear();
  Spawn(args);
}

bool NodeProcess::Start(std::chrono::milliseconds ready_timeout) {
  StartNoWait();
  return FinishStart(ready_timeout);
}

void NodeProcess::StartNoWait() {
  error_.clear();
  grpc_address_.clear();
  metrics_address_.clear();
  std::error_code ec;
  std::filesystem::remove(ready_path_, ec);

  std::vector<std::string> args;
  if (!HasFlag(extra_args_, "--listen")) {
    args.insert(args.end(), {"--listen", listen_});
  }
  if (!HasFlag(extra_args_, "--metrics-listen")) {
    args.insert(args.end(), {"--metrics-listen", metrics_listen_});
  }
  if (!HasFlag(extra_args_, "--ready-file")) {
    args.insert(args.end(), {"--ready-file", ready_path_});
  }
  args.insert(args.end(), extra_args_.begin(), extra_args_.end());
  Spawn(args);
}

bool NodeProcess::FinishStart(std::chrono::milliseconds ready_timeout) {
  if (WaitReady(ready_timeout)) return true;
  Kill();
  error_ += "\n---- ringcached stderr ----\n" + Tail(Stderr(), 16 * 1024);
  return false;
}

bool NodeProcess::WaitReady(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    if (auto exit = Reap(false)) {
      error_ = "ringcached exited before it was ready: " + exit->ToString();
      return false;
    }
    std::ifstream in(ready_path_);
    if (in) {
      std::string line;
      while (std::getline(in, line)) {
        if (line.rfind("grpc=", 0) == 0) grpc_address_ = line.substr(5);
        if (line.rfind("metrics=", 0) == 0) metrics_address_ = line.substr(8);
        if (line.rfind("resp=", 0) == 0) resp_address_ = line.substr(5);
        if (line.rfind("cluster=", 0) == 0) cluster_address_ = line.substr(8);
      }
      if (!grpc_address_.empty()) return true;
      error_ = "ready file " + ready_path_ + " has no grpc= line: " + ReadFile(ready_path_);
      return false;
    }
    if (Clock::now() >= deadline) {
      error_ = "ringcached not ready within " + std::to_string(timeout.count()) + " ms";
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

std::optional<ExitStatus> NodeProcess::Reap(bool block) {
  if (!Running()) return last_exit_;
  int st = 0;
  pid_t r;
  do {
    r = waitpid(pid_, &st, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) {
    last_exit_ = FromWaitStatus(st);
    AppendToFile(harness_log_path_, "==== harness: pid " + std::to_string(pid_) +
                                        " ended: " + last_exit_->ToString() + "\n");
    pid_ = -1;
    return last_exit_;
  }
  if (r < 0) {  // ECHILD: someone else reaped it; should not happen.
    last_exit_ = ExitStatus{false, 0, 0};
    pid_ = -1;
    return last_exit_;
  }
  return std::nullopt;
}

std::optional<ExitStatus> NodeProcess::WaitExit(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    if (auto exit = Reap(false)) return exit;
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(kPollInterval);
  }
}

void NodeProcess::Signal(int sig) {
  if (Running()) kill(pid_, sig);
}

namespace {

// Whether every thread of process `pid` is stopped (state T, or t under a tracer); false if
// its task list cannot be read.
bool AllThreadsStopped(pid_t pid) {
  std::error_code ec;
  for (const auto& task :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream stat(task.path() / "stat");
    std::string line;
    std::getline(stat, line);
    // "pid (comm) S ...": the state follows the last ')'.
    const size_t paren = line.rfind(')');
    if (paren == std::string::npos || paren + 2 >= line.size()) return false;
    const char state = line[paren + 2];
    if (state != 'T' && state != 't') return false;
  }
  return !ec;
}

}  // namespace

bool NodeProcess::SignalStopAndWait(std::chrono::milliseconds timeout) {
  if (!Running()) return false;
  Signal(SIGSTOP);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (AllThreadsStopped(pid_)) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

std::optional<ExitStatus> NodeProcess::Terminate(std::chrono::milliseconds timeout) {
  if (!Running()) return last_exit_;
  Signal(SIGTERM);
  return WaitExit(timeout);
}

void NodeProcess::Kill() {
  if (!Running()) return;
  kill(pid_, SIGKILL);
  if (!WaitExit(std::chrono::seconds(10))) Reap(true);
}

bool NodeProcess::Restart(bool same_ports, std::chrono::milliseconds ready_timeout) {
  Kill();
  if (same_ports) {
    if (!grpc_address_.empty()) listen_ = grpc_address_;
    if (!metrics_address_.empty()) metrics_listen_ = metrics_address_;
  }
  return Start(ready_timeout);
}

std::shared_ptr<grpc::Channel> NodeProcess::NewChannel() const {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  // A connection of its own, not shared with other channels of this test process.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(
      grpc_address_, credentials_ != nullptr ? credentials_ : grpc::InsecureChannelCredentials(),
      args);
}

std::unique_ptr<ringcache::v1::Cache::Stub> NodeProcess::NewStub() const {
  return ringcache::v1::Cache::NewStub(NewChannel());
}

std::string NodeProcess::Stderr() const {
  const std::string all = ReadFile(stderr_path_);
  return all.size() >= stderr_offset_ ? all.substr(stderr_offset_) : all;
}

std::string NodeProcess::Stdout() const {
  const std::string all = ReadFile(stdout_path_);
  return all.size() >= stdout_offset_ ? all.substr(stdout_offset_) : all;
}

void RequireStart(NodeProcess& node, std::chrono::milliseconds ready_timeout) {
  if (!node.Start(ready_timeout)) FAIL("ringcached did not start: " << node.Error());
}

void CheckRefusedAtStartup(const std::vector<std::string>& args, const std::string& message) {
  NodeProcess node;
  std::vector<std::string> all = {"--metrics-listen", ""};
  if (std::find(args.begin(), args.end(), "--listen") == args.end()) {
    all.insert(all.end(), {"--listen", "127.0.0.1:0"});
  }
  all.insert(all.end(), args.begin(), args.end());
  node.SpawnRaw(all);
  const std::optional<ExitStatus> exit = node.WaitExit(std::chrono::seconds(15));
  INFO(node.Stderr());
  REQUIRE(exit.has_value());
  CHECK(*exit != ExitStatus::Code(0));
  CHECK(node.Stderr().find(message) != std::string::npos);
}

void SetDeadline(grpc::ClientContext& ctx, std::chrono::milliseconds timeout) {
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);
}

uint64_t ProcStatusBytes(pid_t pid, std::string_view field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  const std::string prefix = std::string(field) + ":";
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) == 0) {
      return std::strtoull(line.c_str() + prefix.size(), nullptr, 10) * 1024;  // kB.
    }
  }
  return 0;
}

}  // namespace ringcache::it
