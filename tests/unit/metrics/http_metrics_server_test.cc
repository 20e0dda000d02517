// Tests of HttpMetricsServer over real sockets on 127.0.0.1 (port 0), with a raw-socket client.
#include "ringcache/metrics/http_metrics_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include <catch2/catch.hpp>

#include "ringcache/metrics/metrics.h"

namespace ringcache::metrics {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

// A connected TCP socket to 127.0.0.1:port with a 5 s receive timeout; -1 on failure.
int Connect(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  timeval tv{};
  tv.tv_sec = 5;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Reads until the peer closes (or an error / the 5 s receive timeout).
// `*closed` = true if it ended with an orderly close or a reset (not a timeout).
std::string ReadAll(int fd, bool* closed = nullptr) {
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n > 0) {
      out.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (closed != nullptr) *closed = n == 0 || errno == ECONNRESET;
    return out;
  }
}

struct Response {
  int status = 0;
  std::string head;  // Status line and headers, "\r\n"-separated.
  std::string body;
};

Response Parse(const std::string& raw) {
  Response r;
  size_t end = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.1 ", 0) != 0 || end == std::string::npos) return r;
  r.status = std::stoi(raw.substr(9, 3));
  r.head = raw.substr(0, end + 2);
  r.body = raw.substr(end + 4);
  return r;
}

Response Exchange(uint16_t port, std::string_view request) {
  int fd = Connect(port);
  REQUIRE(fd >= 0);
  REQUIRE(SendAll(fd, request));
  std::string raw = ReadAll(fd);
  close(fd);
  return Parse(raw);
}

Response Get(uint16_t port, std::string_view path) {
  return Exchange(port, "GET " + std::string(path) + " HTTP/1.1\r\nHost: x\r\n\r\n");
}

bool HasHeader(const Response& r, std::string_view line) {
  return r.head.find("\r\n" + std::string(line) + "\r\n") != std::string::npos;
}

TEST_CASE("HttpMetricsServer serves /metrics and /healthz", "[unit][metrics][http]") {
  MetricsRegistry registry;
  registry.AddCounter("ringcache_cache_hits_total", "Hits.").Increment(12);
  std::atomic<bool> healthy{true};
  auto server = HttpMetricsServer::Start("127.0.0.1:0", &registry,
                                         [&](std::string*) { return healthy.load(); });
  REQUIRE(server.ok());
  uint16_t port = (*server)->port();
  REQUIRE(port != 0);
  CHECK((*server)->bound_address() == "127.0.0.1:" + std::to_string(port));

  Response metrics = Get(port, "/metrics");
  CHECK(metrics.status == 200);
  CHECK(HasHeader(metrics, "Content-Type: text/plain; version=0.0.4; charset=utf-8"));
  CHECK(HasHeader(metrics, "Content-Length: " + std::to_string(metrics.body.size())));
  CHECK(HasHeader(metrics, "Connection: close"));
  CHECK(metrics.body ==
        "# HELP ringcache_cache_hits_total Hits.\n"
        "# TYPE ringcache_cache_hits_total counter\n"
        "ringcache_cache_hits_total 12\n");
  CHECK(metrics.body == registry.Render());

  CHECK(Get(port, "/metrics?name[]=x").status == 200);  // Query strings are ignored.

  Response ok = Get(port, "/healthz");
  CHECK(ok.status == 200);
  CHECK(ok.body == "ok\n");
  healthy = false;
  Response down = Get(port, "/healthz");
  CHECK(down.status == 503);
  CHECK(down.body == "shutting down\n");

  CHECK(Get(port, "/").status == 404);
  CHECK(Get(port, "/metricsx").status == 404);

  Response post = Exchange(port, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
  CHECK(post.status == 405);
  CHECK(HasHeader(post, "Allow: GET"));
  CHECK(Exchange(port, "HEAD /metrics HTTP/1.1\r\n\r\n").status == 405);

  CHECK(Exchange(port, "hello there\r\n\r\n").status == 400);
  CHECK(Exchange(port, "GET /metrics\r\n\r\n").status == 400);

  (*server)->Stop();
  (*server)->Stop();         // Idempotent.
  CHECK(Connect(port) < 0);  // The listener is closed.
}

TEST_CASE("HttpMetricsServer without a registry or health callback", "[unit][metrics][http]") {
  auto server = HttpMetricsServer::Start("127.0.0.1:0", nullptr, nullptr);
  REQUIRE(server.ok());
  Response metrics = Get((*server)->port(), "/metrics");
  CHECK(metrics.status == 200);
  CHECK(metrics.body.empty());
  CHECK(Get((*server)->port(), "/healthz").status == 200);
}

TEST_CASE("HttpMetricsServer rejects an oversized request head with 431", "[unit][metrics][http]") {
  MetricsRegistry registry;
  HttpMetricsServerOptions options;
  options.max_request_bytes = 1024;
  auto server = HttpMetricsServer::Start("127.0.0.1:0", &registry, nullptr, options);
  REQUIRE(server.ok());
  std::string big = "GET /metrics HTTP/1.1\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n";
  Response r = Exchange((*server)->port(), big);
  CHECK(r.status == 431);
  // A head just under the limit is fine.
  std::string fits = "GET /metrics HTTP/1.1\r\nX-Big: " + std::string(900, 'a') + "\r\n\r\n";
  CHECK(Exchange((*server)->port(), fits).status == 200);
}

TEST_CASE("HttpMetricsServer drops idle and slow clients after the read timeout",
          "[unit][metrics][http]") {
  MetricsRegistry registry;
  HttpMetricsServerOptions options;
  options.read_timeout = milliseconds(200);
  auto server = HttpMetricsServer::Start("127.0.0.1:0", &registry, nullptr, options);
  REQUIRE(server.ok());
  uint16_t port = (*server)->port();

  SECTION("a client that sends nothing") {
    int fd = Connect(port);
    REQUIRE(fd >= 0);
    auto start = steady_clock::now();
    bool closed = false;
    std::string got = ReadAll(fd, &closed);
    auto elapsed = steady_clock::now() - start;
    close(fd);
    CHECK(closed);
    CHECK(got.empty());
    CHECK(elapsed >= milliseconds(150));
    CHECK(elapsed < milliseconds(3000));
  }
  SECTION("a client that never finishes its request head") {
    int fd = Connect(port);
    REQUIRE(fd >= 0);
    REQUIRE(SendAll(fd, "GET /metrics HTTP/1.1\r\nHost: x\r\n"));
    auto start = steady_clock::now();
    bool closed = false;
    std::string got = ReadAll(fd, &closed);
    close(fd);
    CHECK(closed);
    CHECK(got.empty());
    CHECK(steady_clock::now() - start < milliseconds(3000));
  }
  // While idle clients wait, others are still served.
  SECTION("an idle client does not block others") {
    int idle = Connect(port);
    REQUIRE(idle >= 0);
    CHECK(Get(port, "/healthz").status == 200);
    close(idle);
  }
}

TEST_CASE("HttpMetricsServer Stop closes open connections", "[unit][metrics][http]") {
  MetricsRegistry registry;
  auto server = HttpMetricsServer::Start("127.0.0.1:0", &registry, nullptr);  // 5 s timeout.
  REQUIRE(server.ok());
  int fd = Connect((*server)->port());
  REQUIRE(fd >= 0);
  CHECK(Get((*server)->port(), "/healthz").status == 200);  // fd is accepted by now.
  auto start = steady_clock::now();
  (*server)->Stop();
  CHECK(steady_clock::now() - start < milliseconds(2000));
  bool closed = false;
  ReadAll(fd, &closed);
  close(fd);
  CHECK(closed);
  server->reset();  // Destructor after Stop is fine.
}

TEST_CASE("HttpMetricsServer makes room for a probe by closing the oldest idle connection",
          "[unit][metrics][http]") {
  HttpMetricsServerOptions options;
  options.max_connections = 2;
  auto server = HttpMetricsServer::Start("127.0.0.1:0", nullptr, nullptr, options);
  REQUIRE(server.ok());
  uint16_t port = (*server)->port();
  int a = Connect(port);
  int b = Connect(port);
  REQUIRE(a >= 0);
  REQUIRE(b >= 0);
  // Both are taken by idle clients; a third one is still served, and the oldest idle
  // connection (a) is the one closed for it.
  const Response probe = Exchange(port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(probe.status == 200);
  bool a_closed = false;
  CHECK(ReadAll(a, &a_closed).empty());
  CHECK(a_closed);
  // b is still open and is served when it finally asks.
  REQUIRE(SendAll(b, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  CHECK(Parse(ReadAll(b)).status == 200);
  close(a);
  close(b);
}

TEST_CASE("HttpMetricsServer answers health probes while idle connections fill it",
          "[unit][metrics][http]") {
  auto server = HttpMetricsServer::Start("127.0.0.1:0", nullptr, nullptr, {});
  REQUIRE(server.ok());
  uint16_t port = (*server)->port();
  std::vector<int> idle;
  // Bounded: 5 rounds of 64 more idle connections (the default limit), each followed by
  // a probe that must be answered at once, not after the 5 s read timeout.
  int answered = 0;
  for (int round = 0; round < 5; ++round) {
    for (int i = 0; i < 64; ++i) {
      const int fd = Connect(port);
      REQUIRE(fd >= 0);
      idle.push_back(fd);
    }
    const auto t0 = std::chrono::steady_clock::now();
    const Response probe = Exchange(port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    const auto took = std::chrono::steady_clock::now() - t0;
    if (probe.status == 200 && took < std::chrono::seconds(2)) ++answered;
  }
  CHECK(answered == 5);
  for (const int fd : idle) close(fd);
}

TEST_CASE("HttpMetricsServer reports address errors clearly", "[unit][metrics][http]") {
  auto first = HttpMetricsServer::Start("127.0.0.1:0", nullptr, nullptr);
  REQUIRE(first.ok());
  std::string taken = "127.0.0.1:" + std::to_string((*first)->port());
  auto second = HttpMetricsServer::Start(taken, nullptr, nullptr);
  REQUIRE_FALSE(second.ok());
  CHECK(second.status().code() == StatusCode::kUnavailable);
  CHECK(second.status().message() == "cannot listen on " + taken + ": Address already in use");

  for (const char* bad : {"", "127.0.0.1", "127.0.0.1:", "127.0.0.1:99999", "127.0.0.1:12a",
                          "::1:80", "[::1", "[::1]80"}) {
    INFO(bad);
    auto r = HttpMetricsServer::Start(bad, nullptr, nullptr);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == StatusCode::kInvalidArgument);
  }
  auto localhost = HttpMetricsServer::Start("localhost:0", nullptr, nullptr);
  REQUIRE(localhost.ok());
  CHECK((*localhost)->port() != 0);
}

}  // namespace
}  // namespace ringcache::metrics
