// ringcache_repl_bench: Set load on one node of a ringcache cluster, for the replication
// benchmark (run_replication_bench.sh; figures in docs/design/replication.md, "Measurements").
//
// It reads the cluster view from --addr (Topology), builds the ring as every node does and
// picks --keys keys whose primary is that node, so every Set is applied there (no
// forwarding) and, with a replication factor above 1, shipped to its replicas: what is
// measured is the primary's write path with or without replication.
//
// Modes:
//   rate  open loop: Sets issued at a fixed --rate (ops/s) whatever the replies do, as a
//         steady production load; reports the achieved rate and the Set latency. With
//         --write-concern 1 each reply waits for the replica's ack, so the Set latency is
//         the client-observed replication latency.
//   max   closed loop: --inflight Sets outstanding at all times; reports ops/s.
//
// Values are --value-size bytes. Every call has a deadline (--deadline-ms). Output: a human
// line, then "RESULT key=value ..." for scripts. Exit 1 if a call failed or nothing
// completed, 2 on bad flags.
//
// Threads: gRPC's callback client API; completions run on gRPC's threads and touch only
// atomics and the latency vector under its mutex.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <vector>

#include "ringcache/cluster_view.h"
#include "ringcache/hash_ring.h"
#include "ringcache/key_hash.h"
#include "ringcache/v1/cache.grpc.pb.h"

namespace {

namespace pb = ringcache::v1;
using Clock = std::chrono::steady_clock;

struct Flags {
  std::string addr = "127.0.0.1:7700";
  std::string mode = "rate";
  double rate = 10'000;
  uint32_t inflight = 64;
  double duration_s = 5;
  double warmup_s = 1;
  uint32_t value_size = 32;
  uint32_t keys = 100'000;
  uint32_t write_concern = 0;
  uint32_t channels = 2;
  uint32_t deadline_ms = 5000;
  std::string tls_ca_file;    // --tls-ca-file: TLS; these CAs verify the node.
  std::string tls_cert_file;  // --tls-cert-file/--tls-key-file: a client certificate.
  std::string tls_key_file;
};

// The whole file at `path`; false if it cannot be read.
bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  out->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return true;
}

void Usage() {
  std::printf(
      "ringcache_repl_bench: Set load on the keys one node is the primary of\n"
      "  --addr HOST:PORT     the node (default 127.0.0.1:7700)\n"
      "  --mode rate|max      open loop at --rate, or closed loop with --inflight (default rate)\n"
      "  --rate N             Sets per second in rate mode (default 10000)\n"
      "  --inflight N         outstanding Sets in max mode; cap in rate mode (default 64)\n"
      "  --duration-s S       measured seconds (default 5)\n"
      "  --warmup-s S         seconds of load before measuring (default 1)\n"
      "  --value-size N       value bytes (default 32)\n"
      "  --keys N             distinct keys, all with --addr as primary (default 100000)\n"
      "  --write-concern K    write_concern of every Set (default 0)\n"
      "  --channels N         gRPC channels to the node (default 2)\n"
      "  --deadline-ms N      deadline of each call (default 5000)\n"
      "  --tls-ca-file PATH   connect with TLS; PATH's CAs verify the node\n"
      "  --tls-cert-file PATH, --tls-key-file PATH\n"
      "                       a client certificate, for a node with --tls-client-certs\n");
}

int ParseFlags(int argc, char** argv, Flags* f) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      Usage();
      return 1;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "ringcache_repl_bench: %s needs a value (see --help)\n", a.c_str());
      return 2;
    }
    const std::string v = argv[++i];
    char* end = nullptr;
    const double num = std::strtod(v.c_str(), &end);
    const bool numeric = !v.empty() && *end == '\0' && num >= 0 && num <= 1e9;
    auto need_num = [&](auto* out) {
      if (!numeric) return false;
      *out = static_cast<std::remove_pointer_t<decltype(out)>>(num);
      return true;
    };
    bool ok = true;
    if (a == "--addr") {
      f->addr = v;
    } else if (a == "--mode") {
      f->mode = v;
      ok = v == "rate" || v == "max";
    } else if (a == "--rate") {
      ok = need_num(&f->rate) && f->rate > 0;
    } else if (a == "--inflight") {
      ok = need_num(&f->inflight) && f->inflight > 0;
    } else if (a == "--duration-s") {
      ok = need_num(&f->duration_s) && f->duration_s > 0;
    } else if (a == "--warmup-s") {
      ok = need_num(&f->warmup_s);
    } else if (a == "--value-size") {
      ok = need_num(&f->value_size);
    } else if (a == "--keys") {
      ok = need_num(&f->keys) && f->keys > 0;
    } else if (a == "--write-concern") {
      ok = need_num(&f->write_concern);
    } else if (a == "--channels") {
      ok = need_num(&f->channels) && f->channels > 0;
    } else if (a == "--deadline-ms") {
      ok = need_num(&f->deadline_ms) && f->deadline_ms > 0;
    } else if (a == "--tls-ca-file") {
      f->tls_ca_file = v;
    } else if (a == "--tls-cert-file") {
      f->tls_cert_file = v;
    } else if (a == "--tls-key-file") {
      f->tls_key_file = v;
    } else {
      std::fprintf(stderr, "ringcache_repl_bench: unknown flag %s (see --help)\n", a.c_str());
      return 2;
    }
    if (!ok) {
      std::fprintf(stderr, "ringcache_repl_bench: bad value '%s' for %s\n", v.c_str(), a.c_str());
      return 2;
    }
  }
  return 0;
}

// Keys whose primary, in the node's current view, is the node at `addr`.
bool PrimaryKeys(pb::Cache::Stub& stub, const std::string& addr, uint32_t n,
                 std::vector<std::string>* keys, uint32_t* rf, std::string* node_id) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  pb::ClusterView pv;
  if (grpc::Status s = stub.Topology(&ctx, pb::TopologyRequest(), &pv); !s.ok()) {
    std::fprintf(stderr, "ringcache_repl_bench: Topology on %s failed: %s\n", addr.c_str(),
                 s.error_message().c_str());
    return false;
  }
  ringcache::ClusterView view;
  view.epoch = pv.epoch();
  view.replication_factor = pv.replication_factor();
  view.vnodes_per_weight = pv.vnodes_per_weight();
  int self = -1;
  for (const pb::Member& m : pv.members()) {
    view.members.push_back(
        {m.id(), m.address(), m.weight(), static_cast<ringcache::MemberState>(m.state())});
  }
  ringcache::Result<ringcache::HashRing> ring = view.BuildRing();
  if (!ring.ok()) {
    std::fprintf(stderr, "ringcache_repl_bench: bad view: %s\n", ring.status().ToString().c_str());
    return false;
  }
  const std::vector<const ringcache::ClusterMember*> members = view.ring_members();
  for (size_t i = 0; i < members.size(); ++i) {
    if (members[i]->address == addr) self = static_cast<int>(i);
  }
  if (self < 0) {
    std::fprintf(stderr, "ringcache_repl_bench: %s is not a member of its own view\n",
                 addr.c_str());
    return false;
  }
  *rf = view.replication_factor;
  *node_id = members[self]->id;
  char buf[32];
  for (uint64_t i = 0; keys->size() < n && i < uint64_t{n} * 1000; ++i) {
    std::snprintf(buf, sizeof(buf), "key:%012llu", static_cast<unsigned long long>(i));
    if (ring->Primary(ringcache::HashKey(buf)) == self) keys->emplace_back(buf);
  }
  return keys->size() == n;
}

double Percentile(std::vector<double>* v, double p) {
  if (v->empty()) return 0;
  const size_t i = std::min(v->size() - 1, static_cast<size_t>(p * static_cast<double>(v->size())));
  std::nth_element(v->begin(), v->begin() + static_cast<std::ptrdiff_t>(i), v->end());
  return (*v)[i];
}

class Bench {
 public:
  Bench(const Flags& f, std::shared_ptr<grpc::ChannelCredentials> credentials)
      : f_(f), value_(f.value_size, 'v') {
    for (uint32_t i = 0; i < f.channels; ++i) {
      grpc::ChannelArguments args;
      args.SetInt("bench.channel", static_cast<int>(i));  // Distinct connections.
      stubs_.push_back(pb::Cache::NewStub(grpc::CreateCustomChannel(f.addr, credentials, args)));
    }
  }

  int Run() {
    uint32_t rf = 0;
    std::string node_id;
    if (!PrimaryKeys(*stubs_[0], f_.addr, f_.keys, &keys_, &rf, &node_id)) return 1;
    const auto start = Clock::now();
    measure_from_ = start + ToDuration(f_.warmup_s);
    measure_to_ = measure_from_ + ToDuration(f_.duration_s);
    if (f_.mode == "max") {
      for (uint32_t i = 0; i < f_.inflight; ++i) Issue();
    } else {
      // Open loop: call i is due at start + i / rate.
      for (uint64_t i = 0;; ++i) {
        const auto due = start + ToDuration(static_cast<double>(i) / f_.rate);
        if (due >= measure_to_) break;
        std::this_thread::sleep_until(due);
        if (inflight_.load() >= f_.inflight) {
          if (due >= measure_from_) late_.fetch_add(1);
          continue;
        }
        Issue();
      }
    }
    while (Clock::now() < measure_to_) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    stop_.store(true);
    const auto drain_until = Clock::now() + std::chrono::milliseconds(f_.deadline_ms + 1000);
    while (inflight_.load() > 0 && Clock::now() < drain_until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    const double secs = f_.duration_s;
    std::vector<double> lat;
    {
      std::lock_guard lock(mu_);
      lat = latencies_us_;
    }
    const uint64_t done = done_.load();
    const double p50 = Percentile(&lat, 0.50);
    const double p99 = Percentile(&lat, 0.99);
    const double p999 = Percentile(&lat, 0.999);
    const double max = lat.empty() ? 0 : *std::max_element(lat.begin(), lat.end());
    std::printf(
        "%s mode on %s (%s, replication factor %u, write concern %u): %.0f Sets/s over %.1f s, "
        "%llu errors, %llu not issued (over --inflight); Set latency p50 %.0f us, p99 %.0f us, "
        "p99.9 %.0f us, max %.0f us\n",
        f_.mode.c_str(), f_.addr.c_str(), node_id.c_str(), rf, f_.write_concern,
        static_cast<double>(done) / secs, secs, static_cast<unsigned long long>(errors_.load()),
        static_cast<unsigned long long>(late_.load()), p50, p99, p999, max);
    std::printf(
        "RESULT ops_per_s=%.0f rf=%u wc=%u errors=%llu late=%llu p50_us=%.0f p99_us=%.0f "
        "p999_us=%.0f max_us=%.0f\n",
        static_cast<double>(done) / secs, rf, f_.write_concern,
        static_cast<unsigned long long>(errors_.load()),
        static_cast<unsigned long long>(late_.load()), p50, p99, p999, max);
    if (!first_error_.empty()) std::fprintf(stderr, "first error: %s\n", first_error_.c_str());
    return errors_.load() == 0 && done > 0 ? 0 : 1;
  }

 private:
  struct Call {
    grpc::ClientContext ctx;
    pb::SetRequest request;
    pb::SetResponse response;
    Clock::time_point sent;
  };

  static Clock::duration ToDuration(double s) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  }

  void Issue() {
    const uint64_t n = next_.fetch_add(1);
    auto* call = new Call;
    call->ctx.set_deadline(std::chrono::system_clock::now() +
                           std::chrono::milliseconds(f_.deadline_ms));
    call->request.set_key(keys_[n % keys_.size()]);
    call->request.set_value(value_);
    call->request.set_write_concern(f_.write_concern);
    call->sent = Clock::now();
    inflight_.fetch_add(1);
    stubs_[n % stubs_.size()]->async()->Set(&call->ctx, &call->request, &call->response,
                                            [this, call](grpc::Status s) { Done(call, s); });
  }

  void Done(Call* call, const grpc::Status& s) {
    const auto now = Clock::now();
    const bool measured = call->sent >= measure_from_ && now <= measure_to_;
    if (!s.ok() || (f_.write_concern > 0 && call->response.replicas_acked() < f_.write_concern)) {
      errors_.fetch_add(1);
      std::lock_guard lock(mu_);
      if (first_error_.empty()) {
        first_error_ = s.ok() ? "replicas_acked " + std::to_string(call->response.replicas_acked())
                              : std::to_string(s.error_code()) + " " + s.error_message();
      }
    } else if (measured) {
      done_.fetch_add(1);
      const double us = std::chrono::duration<double, std::micro>(now - call->sent).count();
      std::lock_guard lock(mu_);
      latencies_us_.push_back(us);
    }
    delete call;
    // Issue the next call before this one stops counting as in flight, so that Run never
    // sees zero calls in flight while one is about to start.
    if (f_.mode == "max" && !stop_.load() && now < measure_to_) Issue();
    inflight_.fetch_sub(1);
  }

  const Flags f_;
  const std::string value_;
  std::vector<std::unique_ptr<pb::Cache::Stub>> stubs_;
  std::vector<std::string> keys_;
  Clock::time_point measure_from_;
  Clock::time_point measure_to_;
  std::atomic<uint64_t> next_{0};
  std::atomic<uint32_t> inflight_{0};
  std::atomic<uint64_t> done_{0};
  std::atomic<uint64_t> errors_{0};
  std::atomic<uint64_t> late_{0};
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<double> latencies_us_;  // Protected by mu_.
  std::string first_error_;           // Protected by mu_.
};

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  if (const int rc = ParseFlags(argc, argv, &f); rc != 0) return rc == 1 ? 0 : 2;
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (!f.tls_ca_file.empty()) {
    grpc::SslCredentialsOptions pem;
    for (const auto& [flag, path, out] :
         {std::tuple{"--tls-ca-file", f.tls_ca_file, &pem.pem_root_certs},
          std::tuple{"--tls-cert-file", f.tls_cert_file, &pem.pem_cert_chain},
          std::tuple{"--tls-key-file", f.tls_key_file, &pem.pem_private_key}}) {
      if (!path.empty() && !ReadFile(path, out)) {
        std::fprintf(stderr, "ringcache_repl_bench: cannot read %s %s\n", flag, path.c_str());
        return 2;
      }
    }
    credentials = grpc::SslCredentials(pem);
  }
  Bench bench(f, credentials);
  return bench.Run();
}
