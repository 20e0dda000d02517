// pubsub_bench: publish throughput, delivery latency and server CPU per message of
// ringcache's cluster pub/sub against Redis's PUBLISH/SUBSCRIBE, side by side in one run
// (docs/benchmarks.md, "Pub/sub"). run_pubsub_bench.sh starts the servers.
//
//   pubsub_bench --ringcache A,B,C --ringcache-pids P1,P2,P3 --redis HOST:PORT --redis-pid P
//                [--subscribers 1,100] [--messages 20000] [--payload 128] [--publishers 2]
//                [--rounds 3]
//
// Each round runs, for each subscriber count, ringcache then Redis (the order alternates
// between rounds): S subscribers (ringcache: spread over the nodes; Redis: one server) on
// one channel, then P publisher threads send `messages` in all, each waiting for its
// reply (ringcache: through the nodes in turn). A message carries its send time; each
// subscriber records when it arrives. Printed per run: publishes/s, delivery latency p50
// and p99 (over every subscriber's copy), and the servers' CPU time (user + system, from
// /proc, summed over the server processes) per published message. The summary gives the
// ratio ringcache / Redis of each, as the median over rounds with its min–max.
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../proc_cpu.h"
#include "ringcache/v1/cache.grpc.pb.h"

namespace {

using Clock = std::chrono::steady_clock;
namespace pb = ringcache::v1;

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string part;
  while (std::getline(in, part, ',')) {
    if (!part.empty()) out.push_back(part);
  }
  return out;
}

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

double CpuOf(const std::vector<int>& pids) { return ringcache::bench::ProcessesCpuSeconds(pids); }

std::string Payload(size_t size) {
  std::string p(std::max<size_t>(size, 8), 'x');
  const int64_t now = NowNs();
  std::memcpy(p.data(), &now, sizeof now);
  return p;
}

int64_t SentAt(const std::string& payload) {
  int64_t sent = 0;
  if (payload.size() >= sizeof sent) std::memcpy(&sent, payload.data(), sizeof sent);
  return sent;
}

// What every subscriber of a run records.
struct Deliveries {
  std::mutex mu;
  std::vector<int64_t> latencies_ns;
  std::atomic<uint64_t> count{0};
  void Add(const std::string& payload) {
    const int64_t latency = NowNs() - SentAt(payload);
    std::lock_guard lock(mu);
    latencies_ns.push_back(latency);
    count.fetch_add(1, std::memory_order_release);
  }
};

// ---- Redis: a minimal RESP client ---------------------------------------------------------

class RespConn {
 public:
  explicit RespConn(const std::string& address) {
    const size_t colon = address.rfind(':');
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(colon + 1))));
    inet_pton(AF_INET, address.substr(0, colon).c_str(), &sa.sin_addr);
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
      std::perror("connect to redis");
      std::exit(1);
    }
  }
  ~RespConn() { close(fd_); }
  void Shutdown() { shutdown(fd_, SHUT_RDWR); }

  void Send(const std::vector<std::string>& args) {
    std::string out = "*" + std::to_string(args.size()) + "\r\n";
    for (const auto& a : args) out += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
    size_t sent = 0;
    while (sent < out.size()) {
      const ssize_t n = write(fd_, out.data() + sent, out.size() - sent);
      if (n <= 0) return;
      sent += static_cast<size_t>(n);
    }
  }
  // One reply's line ("+OK", ":1", "*3", "$5"); false at EOF.
  bool Line(std::string* out) {
    out->clear();
    for (;;) {
      const size_t nl = buf_.find("\r\n", pos_);
      if (nl != std::string::npos) {
        *out = buf_.substr(pos_, nl - pos_);
        pos_ = nl + 2;
        return true;
      }
      if (!Fill()) return false;
    }
  }
  bool Bulk(size_t n, std::string* out) {
    while (buf_.size() - pos_ < n + 2) {
      if (!Fill()) return false;
    }
    *out = buf_.substr(pos_, n);
    pos_ += n + 2;
    return true;
  }
  // A reply that is an array of bulk strings or integers (a pushed message).
  bool Array(std::vector<std::string>* out) {
    out->clear();
    std::string line;
    if (!Line(&line) || line.empty() || line[0] != '*') return false;
    const int n = std::stoi(line.substr(1));
    for (int i = 0; i < n; ++i) {
      if (!Line(&line)) return false;
      if (line[0] == '$') {
        std::string bulk;
        if (!Bulk(std::stoul(line.substr(1)), &bulk)) return false;
        out->push_back(std::move(bulk));
      } else {
        out->push_back(line.substr(1));
      }
    }
    return true;
  }

 private:
  bool Fill() {
    if (pos_ > 0 && pos_ == buf_.size()) {
      buf_.clear();
      pos_ = 0;
    }
    char tmp[65536];
    const ssize_t n = read(fd_, tmp, sizeof tmp);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }
  int fd_ = -1;
  std::string buf_;
  size_t pos_ = 0;
};

// ---- the two systems ----------------------------------------------------------------------

struct Subscriber {
  virtual ~Subscriber() = default;
  virtual void Stop() = 0;
};

struct System {
  virtual ~System() = default;
  virtual std::string name() const = 0;
  // Subscriber i on `channel`, subscribed when this returns; records into `d`.
  virtual std::unique_ptr<Subscriber> Subscribe(size_t i, const std::string& channel,
                                                Deliveries* d) = 0;
  // Publisher thread i: sends `n` messages; returns the sum of the receiver counts.
  virtual uint64_t PublishMany(size_t i, const std::string& channel, size_t n, size_t payload) = 0;
  virtual std::vector<int> pids() const = 0;
};

class RingcacheSubscriber final : public Subscriber {
 public:
  RingcacheSubscriber(pb::Cache::Stub* stub, const std::string& channel, Deliveries* d) {
    pb::SubscribeRequest request;
    request.add_channels(channel);
    reader_ = stub->Subscribe(&ctx_, request);
    pb::SubscribeResponse first;
    if (!reader_->Read(&first) || !first.has_started()) {
      std::fprintf(stderr, "ringcache subscribe failed\n");
      std::exit(1);
    }
    thread_ = std::thread([this, d] {
      pb::SubscribeResponse r;
      while (reader_->Read(&r)) {
        for (const auto& m : r.messages()) d->Add(m.payload());
      }
    });
  }
  void Stop() override {
    ctx_.TryCancel();
    thread_.join();
    (void)reader_->Finish();
  }

 private:
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReader<pb::SubscribeResponse>> reader_;
  std::thread thread_;
};

class Ringcache final : public System {
 public:
  Ringcache(std::vector<std::string> addresses, std::vector<int> pids)
      : addresses_(std::move(addresses)), pids_(std::move(pids)) {}
  std::string name() const override { return "ringcache"; }
  std::unique_ptr<Subscriber> Subscribe(size_t i, const std::string& channel,
                                        Deliveries* d) override {
    stubs_.push_back(Stub(addresses_[i % addresses_.size()]));
    return std::make_unique<RingcacheSubscriber>(stubs_.back().get(), channel, d);
  }
  uint64_t PublishMany(size_t i, const std::string& channel, size_t n, size_t payload) override {
    auto stub = Stub(addresses_[i % addresses_.size()]);
    uint64_t receivers = 0;
    for (size_t k = 0; k < n; ++k) {
      grpc::ClientContext ctx;
      pb::PublishRequest request;
      request.set_channel(channel);
      request.set_payload(Payload(payload));
      pb::PublishResponse r;
      if (stub->Publish(&ctx, request, &r).ok()) receivers += r.receivers();
    }
    return receivers;
  }
  std::vector<int> pids() const override { return pids_; }

 private:
  static std::unique_ptr<pb::Cache::Stub> Stub(const std::string& address) {
    grpc::ChannelArguments args;
    args.SetInt("grpc.use_local_subchannel_pool", 1);  // A connection of its own.
    return pb::Cache::NewStub(
        grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args));
  }
  std::vector<std::string> addresses_;
  std::vector<int> pids_;
  std::vector<std::unique_ptr<pb::Cache::Stub>> stubs_;
};

class RedisSubscriber final : public Subscriber {
 public:
  RedisSubscriber(const std::string& address, const std::string& channel, Deliveries* d)
      : conn_(address) {
    conn_.Send({"SUBSCRIBE", channel});
    std::vector<std::string> reply;
    if (!conn_.Array(&reply) || reply.empty() || reply[0] != "subscribe") {
      std::fprintf(stderr, "redis subscribe failed\n");
      std::exit(1);
    }
    thread_ = std::thread([this, d] {
      std::vector<std::string> m;
      while (conn_.Array(&m)) {
        if (m.size() == 3 && m[0] == "message") d->Add(m[2]);
      }
    });
  }
  void Stop() override {
    conn_.Shutdown();
    thread_.join();
  }

 private:
  RespConn conn_;
  std::thread thread_;
};

class Redis final : public System {
 public:
  Redis(std::string address, int pid) : address_(std::move(address)), pid_(pid) {}
  std::string name() const override { return "redis"; }
  std::unique_ptr<Subscriber> Subscribe(size_t, const std::string& channel,
                                        Deliveries* d) override {
    return std::make_unique<RedisSubscriber>(address_, channel, d);
  }
  uint64_t PublishMany(size_t, const std::string& channel, size_t n, size_t payload) override {
    RespConn conn(address_);
    uint64_t receivers = 0;
    std::string line;
    for (size_t k = 0; k < n; ++k) {
      conn.Send({"PUBLISH", channel, Payload(payload)});
      if (!conn.Line(&line)) break;
      if (!line.empty() && line[0] == ':') receivers += std::stoull(line.substr(1));
    }
    return receivers;
  }
  std::vector<int> pids() const override { return {pid_}; }

 private:
  std::string address_;
  int pid_;
};

// ---- runs ----------------------------------------------------------------------------------

struct RunResult {
  double publishes_per_s = 0;
  double p50_us = 0;
  double p99_us = 0;
  double cpu_us_per_message = 0;
  uint64_t delivered = 0;
  uint64_t expected = 0;
};

RunResult Run(System& system, size_t subscribers, size_t messages, size_t payload,
              size_t publishers, int run) {
  const std::string channel = "bench:" + std::to_string(run);
  Deliveries d;
  std::vector<std::unique_ptr<Subscriber>> subs;
  for (size_t i = 0; i < subscribers; ++i) subs.push_back(system.Subscribe(i, channel, &d));
  const double cpu0 = CpuOf(system.pids());
  const auto t0 = Clock::now();
  std::vector<std::thread> threads;
  std::atomic<uint64_t> receivers{0};
  for (size_t p = 0; p < publishers; ++p) {
    const size_t n = messages / publishers + (p < messages % publishers ? 1 : 0);
    threads.emplace_back([&, p, n] { receivers += system.PublishMany(p, channel, n, payload); });
  }
  for (auto& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  const uint64_t expected = messages * subscribers;
  const auto wait_until = Clock::now() + std::chrono::seconds(30);
  while (d.count.load(std::memory_order_acquire) < expected && Clock::now() < wait_until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const double cpu1 = CpuOf(system.pids());
  for (auto& s : subs) s->Stop();
  RunResult r;
  r.publishes_per_s = static_cast<double>(messages) / seconds;
  r.cpu_us_per_message = (cpu1 - cpu0) * 1e6 / static_cast<double>(messages);
  r.expected = expected;
  std::lock_guard lock(d.mu);
  r.delivered = d.latencies_ns.size();
  std::sort(d.latencies_ns.begin(), d.latencies_ns.end());
  if (!d.latencies_ns.empty()) {
    const auto at = [&](double q) {
      return static_cast<double>(d.latencies_ns[std::min(
                 d.latencies_ns.size() - 1,
                 static_cast<size_t>(q * static_cast<double>(d.latencies_ns.size())))]) /
             1000.0;
    };
    r.p50_us = at(0.50);
    r.p99_us = at(0.99);
  }
  if (receivers.load() != expected) {
    std::fprintf(stderr, "%s: publishes counted %llu receivers, expected %llu\n",
                 system.name().c_str(), static_cast<unsigned long long>(receivers.load()),
                 static_cast<unsigned long long>(expected));
  }
  return r;
}

struct Spread {
  double median = 0, min = 0, max = 0;
};
Spread Of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  if (v.empty()) return {};
  return {v[v.size() / 2], v.front(), v.back()};
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // Lines as they come, also into a file.
  std::map<std::string, std::string> flags = {{"--subscribers", "1,100"},
                                              {"--messages", "20000"},
                                              {"--payload", "128"},
                                              {"--publishers", "2"},
                                              {"--rounds", "3"}};
  for (int i = 1; i + 1 < argc; i += 2) flags[argv[i]] = argv[i + 1];
  if (flags["--ringcache"].empty() || flags["--redis"].empty()) {
    std::fprintf(stderr,
                 "usage: pubsub_bench --ringcache A,B,C --ringcache-pids P,P,P --redis "
                 "HOST:PORT --redis-pid P [--subscribers 1,100] [--messages N] [--payload B] "
                 "[--publishers N] [--rounds N]\n");
    return 2;
  }
  std::vector<int> ring_pids;
  for (const auto& p : Split(flags["--ringcache-pids"])) ring_pids.push_back(std::stoi(p));
  Ringcache ring(Split(flags["--ringcache"]), ring_pids);
  Redis redis(flags["--redis"],
              std::stoi(flags["--redis-pid"].empty() ? "0" : flags["--redis-pid"]));
  const size_t messages = std::stoul(flags["--messages"]);
  const size_t payload = std::stoul(flags["--payload"]);
  const size_t publishers = std::stoul(flags["--publishers"]);
  const int rounds = std::stoi(flags["--rounds"]);
  std::printf(
      "pubsub_bench: %zu messages of %zu bytes per run, %zu publisher threads, "
      "ringcache on %zu nodes, redis on 1\n",
      messages, payload, publishers, Split(flags["--ringcache"]).size());
  int run = 0;
  bool complete = true;
  for (const auto& s : Split(flags["--subscribers"])) {
    const size_t subscribers = std::stoul(s);
    std::vector<double> ops, p50, p99, cpu;
    for (int round = 0; round < rounds; ++round) {
      System* order[2] = {&ring, &redis};
      if (round % 2 == 1) std::swap(order[0], order[1]);
      RunResult result[2];
      for (System* sys : order) {
        const RunResult r = Run(*sys, subscribers, messages, payload, publishers, run++);
        complete = complete && r.delivered == r.expected;
        std::printf(
            "  %-9s subscribers=%-4zu round %d: %9.0f publishes/s  p50 %8.1f us  "
            "p99 %8.1f us  server CPU %7.1f us/message  delivered %llu/%llu\n",
            sys->name().c_str(), subscribers, round + 1, r.publishes_per_s, r.p50_us, r.p99_us,
            r.cpu_us_per_message, static_cast<unsigned long long>(r.delivered),
            static_cast<unsigned long long>(r.expected));
        result[sys == &ring ? 0 : 1] = r;
      }
      ops.push_back(result[0].publishes_per_s / result[1].publishes_per_s);
      p50.push_back(result[0].p50_us / result[1].p50_us);
      p99.push_back(result[0].p99_us / result[1].p99_us);
      cpu.push_back(result[0].cpu_us_per_message / result[1].cpu_us_per_message);
    }
    const auto show = [](const char* what, const Spread& sp) {
      std::printf("  %-22s %5.2fx  (%.2f-%.2f)\n", what, sp.median, sp.min, sp.max);
    };
    std::printf("subscribers=%zu, ringcache / redis (median of %d adjacent pairs, min-max):\n",
                subscribers, rounds);
    show("publishes/s", Of(ops));
    show("delivery p50", Of(p50));
    show("delivery p99", Of(p99));
    show("server CPU per message", Of(cpu));
  }
  if (!complete) {
    std::fprintf(stderr, "pubsub_bench: some messages were not delivered within 30 s\n");
    return 1;
  }
  return 0;
}
