// Raw TCP access to a node's ports, below gRPC: a minimal HTTP/1.1 GET for the metrics
// endpoint and a "send these bytes, collect what comes back" probe for bad-input tests.
// Every call is bounded by its timeout. Thread-safe (no shared state).
#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace ringcache::it {

struct HttpResponse {
  int status = 0;       // HTTP status code; 0 if the exchange failed (see `error`).
  std::string headers;  // The raw header block, without the status line.
  std::string body;     // Decoded (Content-Length or chunked) body.
  std::string error;    // Empty on success.

  // Value of header `name` (case-insensitive), "" if absent.
  std::string Header(std::string_view name) const;
};

// GET `path` from `address` ("HOST:PORT") with Connection: close.
HttpResponse HttpGet(const std::string& address, const std::string& path,
                     std::chrono::milliseconds timeout = std::chrono::seconds(5));

// The value of the unlabelled metric `name` in the node's /metrics at `metrics_address`;
// -1 if it is not there, NaN if the scrape failed.
double MetricValue(const std::string& metrics_address, const std::string& name);

struct RawExchange {
  bool connected = false;    // The TCP connection was established.
  bool peer_closed = false;  // The peer closed (or reset) the connection within the timeout.
  std::string received;      // Bytes the peer sent back.
  std::string error;
};

// Connects to `address`, writes `bytes` (ignoring write errors once connected: the peer may
// hang up early), then reads until the peer closes or `timeout` passes.
RawExchange SendRawBytes(const std::string& address, std::string_view bytes,
                         std::chrono::milliseconds timeout);

// True if a TCP connection to `address` can be established within `timeout`.
bool CanConnect(const std::string& address,
                std::chrono::milliseconds timeout = std::chrono::seconds(1));

// A TCP listener on 127.0.0.1 (a free port) that accepts every connection and never
// answers: it reads nothing and writes nothing, and holds the connections open until it
// is destroyed. A seed that hangs a joiner's call until its deadline (a process that is
// stuck, or a host whose port accepts but whose service does not answer). Connections
// complete in the kernel's backlog (never accepted), so no thread is needed.
// Not thread-safe; destroy it after the nodes that may still connect are stopped, or
// they see a reset.
class SilentListener {
 public:
  SilentListener();
  ~SilentListener();
  SilentListener(const SilentListener&) = delete;
  SilentListener& operator=(const SilentListener&) = delete;
  // "127.0.0.1:PORT"; empty if the socket could not be set up (error() says why).
  const std::string& address() const { return address_; }
  const std::string& error() const { return error_; }

 private:
  int fd_ = -1;
  std::string address_;
  std::string error_;
};

}  // namespace ringcache::it
