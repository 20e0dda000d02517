// ringcache_failover_bench: failover and rebalancing figures on real ringcached processes
// it starts itself on 127.0.0.1 (free ports), in named phases:
//
//   kill     3 nodes, replication factor 2. A closed-loop write load (--writers threads,
//            unique keys, 32 B values) through n1 and n2, which forward each key to its
//            primary; after --warmup-s, kill -9 of n3. Measured, once with write concern 0
//            and once with 1:
//              detection     kill -> n1 and n2 both report n3 not SERVING (Topology polled
//                            every 5 ms)
//              unavailable   first failed write of a key n3 was the primary of -> first
//                            success of such a key sent after that failure
//                            (with write concern 1 the closed-loop writers also stall for
//                            the write-concern timeout on keys n3 replicated, so the first
//                            success can come well after the last failure: both are shown)
//              lost          writes acknowledged (with the write concern) that do not
//                            read back afterwards (MultiGet through n1)
//              lag           Stats lag_ops / lag_ms of the links to and from n3, sampled
//                            right before the kill
//   migrate  3 nodes holding --keys keys (--value-size B values, written with MultiSet
//            through ringcache::client), then a 4th node joins: time until every node
//            reports n4 SERVING and no under-replicated range (converge), keys and bytes
//            sent by the sources (Stats.migration) and the rates over that time.
//
// Output: human lines, then "RESULT key=value ..." per phase for scripts. Exit 1 if a node
// cannot start or the cluster does not converge in time, 2 on bad flags.
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "ringcache/client/client.h"
#include "ringcache/v1/cache.grpc.pb.h"

namespace {

namespace v1 = ringcache::v1;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct Flags {
  std::string ringcached;
  std::string phases = "kill,migrate";
  uint32_t writers = 4;
  double warmup_s = 2;
  double after_s = 3;
  uint64_t keys = 1'000'000;
  uint32_t value_size = 32;
  std::string memory = "512MiB";
  std::string log_dir;
};

bool ParseFlags(int argc, char** argv, Flags* f) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (arg == "--ringcached" && (v = value())) {
      f->ringcached = v;
    } else if (arg == "--phases" && (v = value())) {
      f->phases = v;
    } else if (arg == "--writers" && (v = value())) {
      f->writers = static_cast<uint32_t>(std::strtoul(v, nullptr, 10));
    } else if (arg == "--warmup-s" && (v = value())) {
      f->warmup_s = std::strtod(v, nullptr);
    } else if (arg == "--after-s" && (v = value())) {
      f->after_s = std::strtod(v, nullptr);
    } else if (arg == "--keys" && (v = value())) {
      f->keys = std::strtoull(v, nullptr, 10);
    } else if (arg == "--value-size" && (v = value())) {
      f->value_size = static_cast<uint32_t>(std::strtoul(v, nullptr, 10));
    } else if (arg == "--memory" && (v = value())) {
      f->memory = v;
    } else if (arg == "--log-dir" && (v = value())) {
      f->log_dir = v;
    } else {
      std::fprintf(stderr,
                   "usage: ringcache_failover_bench --ringcached BIN [--phases kill,migrate] "
                   "[--writers N] [--warmup-s S] [--after-s S] [--keys N] [--value-size B] "
                   "[--memory SIZE] [--log-dir DIR]\nbad or incomplete argument: %s\n",
                   arg.c_str());
      return false;
    }
  }
  if (f->ringcached.empty() || f->writers == 0 || f->keys == 0 || f->value_size == 0) {
    std::fprintf(stderr,
                 "ringcache_failover_bench: --ringcached is required; counts must be > 0\n");
    return false;
  }
  return true;
}

double MsSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// One ringcached process; killed by the destructor.
class Node {
 public:
  Node(const Flags& flags, std::string id, std::string dir)
      : flags_(flags), id_(std::move(id)), dir_(std::move(dir)) {}
  ~Node() { Kill(); }

  bool Start(const std::vector<std::string>& seeds) {
    const std::string ready = dir_ + "/" + id_ + ".ready";
    const std::string log = dir_ + "/" + id_ + ".log";
    unlink(ready.c_str());
    std::vector<std::string> args = {flags_.ringcached,
                                     "--node-id",
                                     id_,
                                     "--listen",
                                     "127.0.0.1:0",
                                     "--metrics-listen",
                                     "",
                                     "--memory",
                                     flags_.memory,
                                     "--replication-factor",
                                     "2",
                                     "--log-level",
                                     "info",
                                     "--ready-file",
                                     ready};
    if (!seeds.empty()) {
      std::string s;
      for (const auto& seed : seeds) s += (s.empty() ? "" : ",") + seed;
      args.insert(args.end(), {"--seeds", s});
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int out = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    const int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
    const pid_t parent = getpid();
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);
      dup2(in, 0);
      dup2(out, 1);
      dup2(out, 2);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(out);
    close(in);
    for (int waited = 0; waited < 400; ++waited) {
      std::ifstream f(ready);
      std::string line;
      while (std::getline(f, line)) {
        if (line.rfind("grpc=", 0) == 0) address_ = line.substr(5);
      }
      if (!address_.empty()) {
        stub_ =
            v1::Cache::NewStub(grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
        return true;
      }
      int st = 0;
      if (waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      std::this_thread::sleep_for(50ms);
    }
    std::fprintf(stderr, "%s did not start; its log (%s):\n", id_.c_str(), log.c_str());
    std::ifstream f(log);
    std::fprintf(stderr, "%s\n", std::string(std::istreambuf_iterator<char>(f), {}).c_str());
    return false;
  }

  void Kill() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    int st = 0;
    waitpid(pid_, &st, 0);
    pid_ = -1;
  }

  const std::string& id() const { return id_; }
  const std::string& address() const { return address_; }
  v1::Cache::Stub& stub() { return *stub_; }
  bool running() const { return pid_ > 0; }

 private:
  const Flags& flags_;
  std::string id_;
  std::string dir_;
  pid_t pid_ = -1;
  std::string address_;
  std::unique_ptr<v1::Cache::Stub> stub_;
};

std::optional<v1::ClusterView> Topology(v1::Cache::Stub& stub) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 1s);
  v1::ClusterView view;
  if (!stub.Topology(&ctx, v1::TopologyRequest{}, &view).ok()) return std::nullopt;
  return view;
}

std::optional<v1::StatsResponse> Stats(v1::Cache::Stub& stub) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 2s);
  v1::StatsResponse s;
  if (!stub.Stats(&ctx, v1::StatsRequest{}, &s).ok()) return std::nullopt;
  return s;
}

std::optional<v1::MemberState> StateIn(const v1::ClusterView& view, const std::string& id) {
  for (const auto& m : view.members()) {
    if (m.id() == id) return m.state();
  }
  return std::nullopt;
}

// Every running node: same epoch, every running node SERVING in it, Stats SERVING and no
// under-replicated range.
bool Settled(std::vector<std::unique_ptr<Node>>& nodes) {
  std::optional<uint64_t> epoch;
  for (auto& n : nodes) {
    if (!n->running()) continue;
    auto view = Topology(n->stub());
    auto stats = Stats(n->stub());
    if (!view || !stats) return false;
    if (epoch && *epoch != view->epoch()) return false;
    epoch = view->epoch();
    for (auto& other : nodes) {
      if (other->running() && StateIn(*view, other->id()) != v1::MEMBER_STATE_SERVING) return false;
    }
    if (stats->state() != v1::NODE_STATE_SERVING || stats->under_replicated_ranges() != 0) {
      return false;
    }
  }
  return epoch.has_value();
}

bool WaitSettled(std::vector<std::unique_ptr<Node>>& nodes, std::chrono::seconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (Settled(nodes)) return true;
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

std::string MakeDir(const Flags& flags) {
  if (!flags.log_dir.empty()) return flags.log_dir;
  std::string tmpl = "/tmp/ringcache-failover-bench-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) return "/tmp";
  return tmpl;
}

bool StartCluster(const Flags& flags, const std::string& dir, const std::string& tag, int n,
                  std::vector<std::unique_ptr<Node>>* nodes) {
  for (int i = 0; i < n; ++i) {
    auto node = std::make_unique<Node>(flags, "n" + std::to_string(i + 1), dir + "/" + tag);
    std::vector<std::string> seeds;
    if (i > 0) seeds.push_back((*nodes)[0]->address());
    if (!node->Start(seeds)) return false;
    nodes->push_back(std::move(node));
  }
  if (!WaitSettled(*nodes, 30s)) {
    std::fprintf(stderr, "the %d nodes did not settle\n", n);
    return false;
  }
  return true;
}

struct Write {
  std::string key;
  std::string value;
  Clock::time_point sent;
  Clock::time_point done;
  bool ok = false;
  uint32_t acked = 0;
  std::string error;  // "CODE: message" of a failed write.
};

struct KillFigures {
  double detection_ms = -1;
  double unavailable_ms = -1;
  uint64_t writes = 0;
  uint64_t acked = 0;
  uint64_t lost = 0;
  uint64_t lag_ops = 0;
  uint64_t lag_ms = 0;
  double first_ok_wait_ms = -1;  // That first success: its own latency and replica acks.
  uint32_t first_ok_acked = 0;
  std::string last_error;  // The last failure before that success, and when (from the kill).
  double last_error_ms = -1;
};

bool RunKill(const Flags& flags, const std::string& dir, uint32_t wc, KillFigures* out) {
  const std::string tag = "kill-wc" + std::to_string(wc);
  mkdir((dir + "/" + tag).c_str(), 0755);
  std::vector<std::unique_ptr<Node>> nodes;
  if (!StartCluster(flags, dir, tag, 3, &nodes)) return false;
  // Only for Owners() in the view before the kill: no watch, and no call goes through it,
  // so its view stays the one it connected with.
  auto client =
      ringcache::client::Client::Connect({.seeds = {nodes[0]->address()}, .watch_topology = false});
  if (!client.ok()) return false;

  std::atomic<bool> stop{false};
  std::vector<std::vector<Write>> records(flags.writers);
  std::vector<std::thread> writers;
  const std::string value(flags.value_size, 'x');
  for (uint32_t t = 0; t < flags.writers; ++t) {
    writers.emplace_back([&, t] {
      auto stub = v1::Cache::NewStub(
          grpc::CreateChannel(nodes[t % 2]->address(), grpc::InsecureChannelCredentials()));
      for (uint64_t seq = 0; !stop.load(); ++seq) {
        Write w;
        w.key = "w" + std::to_string(t) + "-" + std::to_string(seq);
        w.value = value.substr(0, value.size() - std::min<size_t>(value.size(), 8)) +
                  std::to_string(seq % 100'000'000);
        v1::SetRequest req;
        req.set_key(w.key);
        req.set_value(w.value);
        req.set_write_concern(wc);
        if (wc > 0) req.set_write_concern_timeout_ms(1000);
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + 2s);
        v1::SetResponse resp;
        w.sent = Clock::now();
        const grpc::Status s = stub->Set(&ctx, req, &resp);
        w.done = Clock::now();
        w.ok = s.ok();
        if (!s.ok()) w.error = std::to_string(s.error_code()) + ": " + s.error_message();
        w.acked = resp.replicas_acked();
        records[t].push_back(std::move(w));
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(flags.warmup_s));
  for (auto& n : nodes) {
    if (auto s = Stats(n->stub())) {
      for (const auto& l : s->replicas()) {
        if (n->id() == "n3" || l.replica_id() == "n3") {
          out->lag_ops += l.lag_ops();
          out->lag_ms = std::max<uint64_t>(out->lag_ms, l.lag_ms());
        }
      }
    }
  }
  const Clock::time_point t_kill = Clock::now();
  nodes[2]->Kill();
  bool seen1 = false, seen2 = false;
  while (MsSince(t_kill) < 20'000 && !(seen1 && seen2)) {
    if (!seen1) {
      auto v = Topology(nodes[0]->stub());
      seen1 = v && StateIn(*v, "n3") != v1::MEMBER_STATE_SERVING;
    }
    if (!seen2) {
      auto v = Topology(nodes[1]->stub());
      seen2 = v && StateIn(*v, "n3") != v1::MEMBER_STATE_SERVING;
    }
    if (seen1 && seen2) break;
    std::this_thread::sleep_for(5ms);
  }
  if (seen1 && seen2) out->detection_ms = MsSince(t_kill);
  std::this_thread::sleep_for(std::chrono::duration<double>(flags.after_s));
  stop.store(true);
  for (auto& w : writers) w.join();

  std::vector<Write> all;
  for (auto& r : records)
    all.insert(all.end(), std::make_move_iterator(r.begin()), std::make_move_iterator(r.end()));
  std::sort(all.begin(), all.end(), [](const Write& a, const Write& b) { return a.done < b.done; });
  // Keys of n3 in the view before the kill (the client's, taken at start).
  std::optional<Clock::time_point> first_fail, first_ok;
  for (const Write& w : all) {
    if (w.done < t_kill || (*client)->Owners(w.key).front() != "n3") continue;
    if (!w.ok) {
      if (!first_fail) first_fail = w.done;
      if (!first_ok) {
        out->last_error = w.error;
        out->last_error_ms = std::chrono::duration<double, std::milli>(w.done - t_kill).count();
      }
    } else if (first_fail && !first_ok && w.sent > *first_fail) {
      first_ok = w.done;  // Sent after the failure was seen (not a reply still in flight).
      out->first_ok_wait_ms = std::chrono::duration<double, std::milli>(w.done - w.sent).count();
      out->first_ok_acked = w.acked;
    }
  }
  if (first_fail && first_ok) {
    out->unavailable_ms =
        std::chrono::duration<double, std::milli>(*first_ok - *first_fail).count();
  }
  out->writes = all.size();
  // Read back the acknowledged writes through n1.
  std::vector<const Write*> acked;
  for (const Write& w : all) {
    if (w.ok && w.acked >= wc) acked.push_back(&w);
  }
  out->acked = acked.size();
  for (size_t i = 0; i < acked.size(); i += 1000) {
    v1::MultiGetRequest req;
    const size_t end = std::min(acked.size(), i + 1000);
    for (size_t k = i; k < end; ++k) req.add_keys(acked[k]->key);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    v1::MultiGetResponse resp;
    const grpc::Status s = nodes[0]->stub().MultiGet(&ctx, req, &resp);
    for (size_t k = i; k < end; ++k) {
      const bool ok = s.ok() && static_cast<size_t>(resp.results_size()) == end - i &&
                      resp.results(static_cast<int>(k - i)).status().code() == 0 &&
                      resp.results(static_cast<int>(k - i)).value() == acked[k]->value;
      if (!ok) ++out->lost;
    }
  }
  return true;
}

struct MigrateFigures {
  double preload_s = 0;
  double converge_ms = -1;
  uint64_t keys_sent = 0;
  uint64_t bytes_sent = 0;
  uint64_t keys_received = 0;
  uint64_t bytes_received = 0;
  std::string received_per_node;  // "n1=0 n2=0 n3=0 n4=500123"
};

bool RunMigrate(const Flags& flags, const std::string& dir, MigrateFigures* out) {
  mkdir((dir + "/migrate").c_str(), 0755);
  std::vector<std::unique_ptr<Node>> nodes;
  if (!StartCluster(flags, dir, "migrate", 3, &nodes)) return false;
  auto client =
      ringcache::client::Client::Connect({.seeds = {nodes[0]->address()}, .timeout = 30s});
  if (!client.ok()) return false;
  const Clock::time_point t_load = Clock::now();
  const std::string value(flags.value_size, 'm');
  constexpr uint64_t kBatch = 5000;
  std::atomic<uint64_t> next{0}, failed{0};
  std::vector<std::thread> loaders;
  for (int t = 0; t < 4; ++t) {
    loaders.emplace_back([&] {
      for (;;) {
        const uint64_t start = next.fetch_add(kBatch);
        if (start >= flags.keys) return;
        const uint64_t end = std::min(flags.keys, start + kBatch);
        std::vector<std::string> keys;
        for (uint64_t i = start; i < end; ++i) keys.push_back("key:" + std::to_string(i));
        std::vector<ringcache::SetItem> items;
        for (const auto& k : keys) items.push_back(ringcache::SetItem{k, value, {}});
        for (const auto& r : (*client)->MultiSet(items)) {
          if (!r.ok()) failed.fetch_add(1);
        }
      }
    });
  }
  for (auto& l : loaders) l.join();
  out->preload_s = MsSince(t_load) / 1000;
  if (failed.load() > 0) {
    std::fprintf(stderr, "preload: %llu Sets failed\n",
                 static_cast<unsigned long long>(failed.load()));
    return false;
  }
  if (!WaitSettled(nodes, 60s)) return false;
  auto totals = [&] {
    MigrateFigures m;
    for (auto& n : nodes) {
      if (auto s = Stats(n->stub())) {
        m.keys_sent += s->migration().keys_sent();
        m.bytes_sent += s->migration().bytes_sent();
        m.keys_received += s->migration().keys_received();
        m.bytes_received += s->migration().bytes_received();
      }
    }
    return m;
  };
  const MigrateFigures before = totals();
  std::vector<uint64_t> received_before;
  for (auto& n : nodes) {
    auto st = Stats(n->stub());
    received_before.push_back(st ? st->migration().keys_received() : 0);
  }
  const Clock::time_point t0 = Clock::now();
  auto n4 = std::make_unique<Node>(flags, "n4", dir + "/migrate");
  if (!n4->Start({nodes[0]->address(), nodes[1]->address(), nodes[2]->address()})) return false;
  nodes.push_back(std::move(n4));
  // Converged: n4 SERVING everywhere and nothing under-replicated.
  if (!WaitSettled(nodes, 300s)) {
    std::fprintf(stderr, "the 4 nodes did not settle within 300 s\n");
    return false;
  }
  out->converge_ms = MsSince(t0);
  const MigrateFigures after = totals();
  for (size_t i = 0; i < nodes.size(); ++i) {
    auto st = Stats(nodes[i]->stub());
    const uint64_t now = st ? st->migration().keys_received() : 0;
    out->received_per_node +=
        (i == 0 ? "" : " ") + nodes[i]->id() + "=" +
        std::to_string(now - (i < received_before.size() ? received_before[i] : 0));
  }
  // MigrationProgress.keys_sent/bytes_sent cover only a transition in progress (they are
  // 0 again after the flip); what the new owners received counts since they started.
  out->keys_sent = after.keys_received - before.keys_received;
  out->bytes_sent = after.bytes_received - before.bytes_received;
  out->keys_received = out->keys_sent;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  if (!ParseFlags(argc, argv, &flags)) return 2;
  const std::string dir = MakeDir(flags);
  std::printf("logs in %s\n", dir.c_str());
  int rc = 0;
  if (flags.phases.find("kill") != std::string::npos) {
    for (uint32_t wc : {0u, 1u}) {
      KillFigures k;
      if (!RunKill(flags, dir, wc, &k)) {
        std::fprintf(stderr, "kill phase (write concern %u) failed\n", wc);
        rc = 1;
        continue;
      }
      std::printf(
          "kill -9 of a primary, write concern %u: detection %.0f ms, unavailable %.0f ms, "
          "%llu writes, %llu acked, %llu acked lost; lag before the kill %llu ops / %llu ms "
          "(the first success after the failure took %.0f ms, %u replica acks)\n",
          wc, k.detection_ms, k.unavailable_ms, static_cast<unsigned long long>(k.writes),
          static_cast<unsigned long long>(k.acked), static_cast<unsigned long long>(k.lost),
          static_cast<unsigned long long>(k.lag_ops), static_cast<unsigned long long>(k.lag_ms),
          k.first_ok_wait_ms, k.first_ok_acked);
      if (!k.last_error.empty()) {
        std::printf("  last failure of the window, %.0f ms after the kill: %s\n", k.last_error_ms,
                    k.last_error.c_str());
      }
      std::printf(
          "RESULT phase=kill wc=%u detection_ms=%.0f unavailable_ms=%.0f "
          "last_failure_ms=%.0f writes=%llu acked=%llu lost=%llu lag_ops=%llu "
          "lag_ms=%llu\n",
          wc, k.detection_ms, k.unavailable_ms, k.last_error_ms,
          static_cast<unsigned long long>(k.writes), static_cast<unsigned long long>(k.acked),
          static_cast<unsigned long long>(k.lost), static_cast<unsigned long long>(k.lag_ops),
          static_cast<unsigned long long>(k.lag_ms));
      std::fflush(stdout);
      if (k.detection_ms < 0) rc = 1;
    }
  }
  if (flags.phases.find("migrate") != std::string::npos) {
    MigrateFigures m;
    if (!RunMigrate(flags, dir, &m)) {
      std::fprintf(stderr, "migrate phase failed\n");
      rc = 1;
    } else {
      const double s = m.converge_ms / 1000;
      std::printf(
          "join of a 4th node to 3 holding %llu keys of %u B (preload %.1f s): converged in "
          "%.0f ms; migrated %llu keys / %.1f MiB = %.0f keys/s, %.2f MiB/s over that time "
          "(keys received per node: %s)\n",
          static_cast<unsigned long long>(flags.keys), flags.value_size, m.preload_s, m.converge_ms,
          static_cast<unsigned long long>(m.keys_sent),
          static_cast<double>(m.bytes_sent) / (1 << 20), static_cast<double>(m.keys_sent) / s,
          static_cast<double>(m.bytes_sent) / (1 << 20) / s, m.received_per_node.c_str());
      std::printf(
          "RESULT phase=migrate keys=%llu converge_ms=%.0f keys_sent=%llu bytes_sent=%llu "
          "keys_per_s=%.0f mib_per_s=%.2f keys_received=%llu\n",
          static_cast<unsigned long long>(flags.keys), m.converge_ms,
          static_cast<unsigned long long>(m.keys_sent),
          static_cast<unsigned long long>(m.bytes_sent), static_cast<double>(m.keys_sent) / s,
          static_cast<double>(m.bytes_sent) / (1 << 20) / s,
          static_cast<unsigned long long>(m.keys_received));
    }
  }
  return rc;
}
