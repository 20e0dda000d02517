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

}  // namespace ringcache::it
