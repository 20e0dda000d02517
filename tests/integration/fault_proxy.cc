#include "fault_proxy.h"

#define ASIO_STANDALONE
#define ASIO_NO_DEPRECATED
#include <stdlib.h>
#include <sys/stat.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <asio.hpp>

#include "node_process.h"

namespace ringcache::it {
namespace {

using asio::ip::tcp;

constexpr size_t kMaxHeadBytes = 8192;
constexpr size_t kChunkBytes = 64 * 1024;

}  // namespace

// Everything below runs on the proxy's Asio thread, except what is marked otherwise.
struct FaultProxy::Impl {
  struct Tunnel;

  asio::io_context io;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  tcp::acceptor acceptor{io};
  std::thread thread;
  std::string address;  // Constant after Start().

  // Protected by mu: written by the test thread, read by the Asio thread.
  mutable std::mutex mu;
  bool isolated = false;
  std::set<std::string> blocked_targets;

  // Asio thread only.
  std::vector<std::function<void()>> parked;   // Continuations waiting for a heal.
  std::vector<std::weak_ptr<Tunnel>> tunnels;  // For Stop().

  std::atomic<uint64_t> tunnels_opened{0};
  std::atomic<uint64_t> connects_held{0};
  std::atomic<uint64_t> connects_failed{0};
  std::atomic<uint64_t> bytes_forwarded{0};

  // Any thread.
  bool Blocked(const std::string& target) const {
    std::lock_guard<std::mutex> lock(mu);
    return isolated || blocked_targets.count(target) > 0;
  }

  void Park(std::function<void()> fn) { parked.push_back(std::move(fn)); }

  // Re-runs every parked continuation; each parks itself again if still blocked.
  void Reevaluate() {
    std::vector<std::function<void()>> now;
    now.swap(parked);
    for (auto& fn : now) fn();
  }

  void Accept();
};

struct FaultProxy::Impl::Tunnel : std::enable_shared_from_this<Tunnel> {
  explicit Tunnel(Impl* impl_in, tcp::socket client_in)
      : impl(impl_in), client(std::move(client_in)), upstream(impl_in->io) {}

  Impl* impl;  // Not owned.
  tcp::socket client;
  tcp::socket upstream;
  std::string head;
  std::string target;
  bool held_counted = false;
  std::array<std::vector<char>, 2> buf{std::vector<char>(kChunkBytes),
                                       std::vector<char>(kChunkBytes)};

  void Close() {
    std::error_code ec;
    client.close(ec);
    upstream.close(ec);
  }

  void ReadHead() {
    asio::async_read_until(client, asio::dynamic_buffer(head, kMaxHeadBytes), "\r\n\r\n",
                           [self = shared_from_this()](std::error_code ec, size_t n) {
                             if (ec) return self->Close();
                             self->OnHead(n);
                           });
  }

  void OnHead(size_t head_len) {
    // "CONNECT host:port HTTP/1.1\r\n..."
    std::istringstream line(head.substr(0, head.find("\r\n")));
    std::string method, version;
    line >> method >> target >> version;
    if (method != "CONNECT" || target.empty()) {
      Reply("HTTP/1.1 405 Method Not Allowed\r\n\r\n", false);
      return;
    }
    head.erase(0, head_len);  // gRPC sends nothing before the 200; kept anyway.
    Connect();
  }

  void Connect() {
    if (impl->Blocked(target)) {
      if (!held_counted) {
        held_counted = true;
        impl->connects_held.fetch_add(1);
      }
      impl->Park([self = shared_from_this()] { self->Connect(); });
      return;
    }
    const size_t colon = target.rfind(':');
    std::string host = target.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
    const std::string port = colon == std::string::npos ? "" : target.substr(colon + 1);
    std::error_code ec;
    tcp::resolver resolver(impl->io);
    auto endpoints = resolver.resolve(host, port, ec);
    if (ec || endpoints.empty()) {
      impl->connects_failed.fetch_add(1);
      Reply("HTTP/1.1 502 Bad Gateway\r\n\r\n", false);
      return;
    }
    asio::async_connect(upstream, endpoints,
                        [self = shared_from_this()](std::error_code cec, const tcp::endpoint&) {
                          if (cec) {
                            self->impl->connects_failed.fetch_add(1);
                            self->Reply("HTTP/1.1 502 Bad Gateway\r\n\r\n", false);
                            return;
                          }
                          self->impl->tunnels_opened.fetch_add(1);
                          self->Reply("HTTP/1.1 200 Connection established\r\n\r\n", true);
                        });
  }

  void Reply(std::string text, bool then_pump) {
    auto owned = std::make_shared<std::string>(std::move(text));
    asio::async_write(client, asio::buffer(*owned),
                      [self = shared_from_this(), owned, then_pump](std::error_code ec, size_t) {
                        if (ec || !then_pump) return self->Close();
                        if (!self->head.empty()) {
                          // Bytes that came after the CONNECT head: upstream first.
                          auto early = std::make_shared<std::string>(std::move(self->head));
                          asio::async_write(self->upstream, asio::buffer(*early),
                                            [self, early](std::error_code wec, size_t) {
                                              if (wec) return self->Close();
                                              self->Pump(0);
                                              self->Pump(1);
                                            });
                          return;
                        }
                        self->Pump(0);
                        self->Pump(1);
                      });
  }

  // Direction 0: client -> upstream; 1: upstream -> client.
  void Pump(int dir) {
    if (impl->Blocked(target)) {
      impl->Park([self = shared_from_this(), dir] { self->Pump(dir); });
      return;
    }
    tcp::socket& from = dir == 0 ? client : upstream;
    from.async_read_some(asio::buffer(buf[dir]),
                         [self = shared_from_this(), dir](std::error_code ec, size_t n) {
                           if (ec) return self->Close();
                           self->Deliver(dir, n);
                         });
  }

  void Deliver(int dir, size_t n) {
    if (impl->Blocked(target)) {  // Read before the fault: held until the heal.
      impl->Park([self = shared_from_this(), dir, n] { self->Deliver(dir, n); });
      return;
    }
    tcp::socket& to = dir == 0 ? upstream : client;
    asio::async_write(to, asio::buffer(buf[dir].data(), n),
                      [self = shared_from_this(), dir](std::error_code ec, size_t written) {
                        if (ec) return self->Close();
                        self->impl->bytes_forwarded.fetch_add(written);
                        self->Pump(dir);
                      });
  }
};

void FaultProxy::Impl::Accept() {
  acceptor.async_accept([this](std::error_code ec, tcp::socket socket) {
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
      Accept();
      return;
    }
    auto tunnel = std::make_shared<Tunnel>(this, std::move(socket));
    // Drop entries of finished tunnels now and then.
    if (tunnels.size() > 64) {
      std::erase_if(tunnels, [](const std::weak_ptr<Tunnel>& t) { return t.expired(); });
    }
    tunnels.push_back(tunnel);
    tunnel->ReadHead();
    Accept();
  });
}

FaultProxy::FaultProxy(std::string node_id)
    : node_id_(std::move(node_id)), impl_(std::make_unique<Impl>()) {}

FaultProxy::~FaultProxy() { Stop(); }

bool FaultProxy::Start() {
  std::error_code ec;
  const tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
  impl_->acceptor.open(ep.protocol(), ec);
  if (!ec) impl_->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) impl_->acceptor.bind(ep, ec);
  if (!ec) impl_->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return false;
  impl_->address = "127.0.0.1:" + std::to_string(impl_->acceptor.local_endpoint().port());
  impl_->work.emplace(impl_->io.get_executor());
  impl_->Accept();
  impl_->thread = std::thread([this] { impl_->io.run(); });
  return true;
}

void FaultProxy::Stop() {
  if (!impl_->thread.joinable()) return;
  Impl* impl = impl_.get();
  asio::post(impl->io, [impl] {
    std::error_code ec;
    impl->acceptor.close(ec);
    impl->parked.clear();
    for (auto& weak : impl->tunnels) {
      if (auto t = weak.lock()) t->Close();
    }
    impl->tunnels.clear();
  });
  impl->work.reset();
  // Every handler now completes with an error and does not re-arm; as a safety net, a
  // stuck run() is stopped after 5 s.
  std::promise<void> done;
  std::future<void> finished = done.get_future();
  std::thread waiter([impl, &finished] {
    if (finished.wait_for(std::chrono::seconds(5)) != std::future_status::ready) impl->io.stop();
  });
  impl->thread.join();
  done.set_value();
  waiter.join();
}

std::string FaultProxy::address() const { return impl_->address; }

void FaultProxy::SetIsolated(bool isolated) {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->isolated = isolated;
  }
  Impl* impl = impl_.get();
  asio::post(impl->io, [impl] { impl->Reevaluate(); });
}

void FaultProxy::BlockTarget(const std::string& target) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->blocked_targets.insert(target);
}

void FaultProxy::Heal() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->isolated = false;
    impl_->blocked_targets.clear();
  }
  Impl* impl = impl_.get();
  asio::post(impl->io, [impl] { impl->Reevaluate(); });
}

FaultProxyStats FaultProxy::stats() const {
  return FaultProxyStats{impl_->tunnels_opened.load(), impl_->connects_held.load(),
                         impl_->connects_failed.load(), impl_->bytes_forwarded.load()};
}

namespace {

std::string WrapperScript(const std::string& dir, const std::string& real) {
  std::ostringstream s;
  s << "#!/bin/sh\n"
       "# ringcached wrapper written by FaultNetwork (tests/integration/fault_proxy.cc):\n"
       "# routes the node's outgoing gRPC connections through its own FaultProxy.\n"
       "id=\"\"\n"
       "prev=\"\"\n"
       "for a in \"$@\"; do\n"
       "  case \"$a\" in --node-id=*) id=\"${a#--node-id=}\" ;; esac\n"
       "  if [ \"$prev\" = \"--node-id\" ]; then id=\"$a\"; fi\n"
       "  prev=\"$a\"\n"
       "done\n"
       "unset no_proxy NO_PROXY no_grpc_proxy http_proxy https_proxy HTTP_PROXY HTTPS_PROXY\n"
       "if [ -n \"$id\" ] && [ -f '"
    << dir << "'/proxy-\"$id\" ]; then\n"
    << "  grpc_proxy=\"$(cat '" << dir << "'/proxy-\"$id\")\"\n"
    << "  export grpc_proxy\n"
       "fi\n"
       "exec '"
    << real << "' \"$@\"\n";
  return s.str();
}

}  // namespace

FaultNetwork::FaultNetwork(const std::vector<std::string>& node_ids) {
  std::string tmpl = "/tmp/ringcache-fault-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    throw std::runtime_error(std::string("FaultNetwork: mkdtemp: ") + strerror(errno));
  }
  dir_ = tmpl;
  for (const std::string& id : node_ids) {
    auto proxy = std::make_unique<FaultProxy>(id);
    if (!proxy->Start())
      throw std::runtime_error("FaultNetwork: proxy for " + id + " cannot listen");
    std::ofstream(dir_ + "/proxy-" + id) << "http://" << proxy->address();
    proxies_[id] = std::move(proxy);
  }
  const std::string real = NodeProcess::DaemonPath();
  const std::string wrapper = dir_ + "/ringcached";
  {
    std::ofstream out(wrapper);
    out << WrapperScript(dir_, real);
    if (!out) throw std::runtime_error("FaultNetwork: cannot write " + wrapper);
  }
  chmod(wrapper.c_str(), 0755);
  if (const char* old = std::getenv("RINGCACHED_BIN"); old != nullptr) {
    had_bin_ = true;
    old_bin_ = old;
  }
  setenv("RINGCACHED_BIN", wrapper.c_str(), 1);
}

FaultNetwork::~FaultNetwork() {
  if (had_bin_) {
    setenv("RINGCACHED_BIN", old_bin_.c_str(), 1);
  } else {
    unsetenv("RINGCACHED_BIN");
  }
  for (auto& [id, proxy] : proxies_) proxy->Stop();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

void FaultNetwork::Isolate(const std::string& id, const std::string& address) {
  for (auto& [other, proxy] : proxies_) {
    if (other == id) {
      proxy->SetIsolated(true);
    } else {
      proxy->BlockTarget(address);
    }
  }
}

void FaultNetwork::Heal() {
  for (auto& [id, proxy] : proxies_) proxy->Heal();
}

std::string FaultNetwork::Describe() const {
  std::ostringstream out;
  for (const auto& [id, proxy] : proxies_) {
    const FaultProxyStats s = proxy->stats();
    out << id << " proxy " << proxy->address() << ": tunnels " << s.tunnels_opened
        << ", held connects " << s.connects_held << ", failed connects " << s.connects_failed
        << ", bytes " << s.bytes_forwarded << "\n";
  }
  return out.str();
}

}  // namespace ringcache::it
