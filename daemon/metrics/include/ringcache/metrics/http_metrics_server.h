// HttpMetricsServer: a tiny HTTP/1.1 endpoint for Prometheus scrapes and liveness checks.
//
//   GET /metrics  200, MetricsRegistry::Render(), Content-Type: text/plain; version=0.0.4; ...
//   GET /healthz  200 "ok\n" while healthy() returns true, else 503 with the reason it
//                 gave (default "shutting down") and a newline
//   other path    404        other method  405 (Allow: GET)      malformed request  400
//   request head larger than max_request_bytes: 431
// One request per connection (responses carry "Connection: close"); a query string is
// ignored. Each connection has a deadline (read_timeout) covering the request and the
// response, so an idle, slow or garbage client cannot pin a connection; at most
// max_connections are open at once. A connection accepted when all are taken closes the
// oldest one that is only waiting (for its request, or for its client to close after the
// answer), so idle connections cannot keep a health probe out; it is refused only while
// every connection is sending an answer.
//
// Thread model: the server owns one thread running its own Asio io_context; all
// connection handling, Render() and healthy() run on that thread. Stop() and the
// destructor stop the io_context and join the thread.
//
// Thread safety: Start() and the accessors may be called from any thread; Stop() may be
// called from any thread except the server's own (i.e. not from healthy() or a collector),
// more than once, and concurrently with the accessors.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "ringcache/metrics/metrics.h"
#include "ringcache/status.h"

namespace ringcache::metrics {

struct HttpMetricsServerOptions {
  // Deadline for one connection, from accept to the last byte of the response. Default 5 s.
  std::chrono::milliseconds read_timeout{5000};
  // Largest request line + headers accepted, in bytes. Default 8 KiB.
  std::size_t max_request_bytes = 8192;
  // Most connections open at once; beyond it the oldest waiting one is closed (above).
  // Default 64.
  std::size_t max_connections = 64;
};

class HttpMetricsServer {
 public:
  using HealthCheck = std::function<bool(std::string* reason)>;

  // Binds `host_port` ("127.0.0.1:9700", "[::1]:0", "localhost:9700"; port 0 = any free
  // port; an empty host means every IPv4 interface) and starts serving.
  // `registry`: not owned, must outlive the server; nullptr serves an empty /metrics.
  // `healthy`: called on the server thread per /healthz; returns false when unhealthy,
  // and may then set *reason (the 503 body, e.g. "fenced"; left empty = "shutting down").
  // Empty = always healthy.
  // Errors: INVALID_ARGUMENT for a malformed address; UNAVAILABLE when it cannot be
  // resolved or bound, e.g. "cannot listen on 127.0.0.1:9700: Address already in use".
  static Result<std::unique_ptr<HttpMetricsServer>> Start(const std::string& host_port,
                                                          const MetricsRegistry* registry,
                                                          HealthCheck healthy,
                                                          HttpMetricsServerOptions options = {});

  ~HttpMetricsServer();  // Calls Stop().
  HttpMetricsServer(const HttpMetricsServer&) = delete;
  HttpMetricsServer& operator=(const HttpMetricsServer&) = delete;

  // The actually bound address, "127.0.0.1:43817" or "[::1]:43817".
  const std::string& bound_address() const { return bound_address_; }
  uint16_t port() const { return port_; }

  // Closes the listener and every connection and joins the server thread. Idempotent.
  void Stop();

 private:
  class Impl;
  explicit HttpMetricsServer(std::unique_ptr<Impl> impl);

  // Constant after construction.
  std::unique_ptr<Impl> impl_;
  std::string bound_address_;
  uint16_t port_ = 0;
};

}  // namespace ringcache::metrics
