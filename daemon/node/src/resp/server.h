// RespServer: the node's Redis-protocol port (--resp-listen), on standalone Asio, beside
// the gRPC API and over the same operation path (docs/redis.md).
//
// Threads: `threads` I/O threads, each running its own io_context; a connection lives on
// one of them (assigned round robin at accept), so its reads, parsing, local execution
// and writes run on that thread without locks. A batch that forwards or waits finishes on
// a gRPC or sweeper thread, which posts the rest back to the connection's thread.
//
// Per connection: read what the socket has; parse the whole commands in it (at most
// kMaxCommandsPerBatch); translate them into one batch of operations (RespBatch) and run
// it through RunBatch, so pipelined commands cost one pass through the router; encode the
// replies in order and write them; only then read or parse more. So replies are always in
// command order, and a connection holds at most one batch's replies: a client that never
// reads stalls its own connection (TCP backpressure), not the node.
//
// Bad input: a protocol error answers "-ERR Protocol error: ..." after the replies to the
// commands before it, then closes that connection; a connection whose unparsed input
// exceeds the query buffer limit is answered with an error naming the limit and closed.
//
// TLS (options.tls): every connection starts with a TLS handshake (bounded by
// kHandshakeTimeout), with the node's certificate and, as asked, the client's verified
// against the CA. The files are read again every tls.reload_interval; new connections get
// the new certificate, and files that fail to load leave the old one in use (logged).
//
// Lifetime: Stop() (or the destructor) closes the listener and every connection, waits
// for batches in flight to finish and joins the threads; call it before the CacheService
// goes.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "client_auth.h"
#include "ringcache/node/node.h"
#include "ringcache/status.h"

namespace ringcache::internal {

class CacheService;
class NodeMetrics;

struct RespServerOptions {
  std::string listen_address;  // HOST:PORT; port 0 picks a free port.
  size_t threads = 1;          // I/O threads, >= 1.
  // Connections held at once; one more is answered an error and closed (maxclients).
  size_t max_clients = 10000;
  // A connection waiting this long for a command is closed; 0 = never (Redis's timeout).
  std::chrono::seconds idle_timeout{0};
  // Unparsed input a connection may hold (one command must fit): Redis's
  // client-query-buffer-limit.
  size_t max_query_buffer_bytes = size_t{64} << 20;
  size_t max_bulk_bytes = size_t{8} << 20;  // One argument (proto-max-bulk-len).
  size_t max_args = 20016;                  // Arguments of one command.
  // Where commands and connections are counted (not owned; may be null).
  NodeMetrics* metrics = nullptr;
  // Client tokens (client_auth.h): with tokens, a connection runs nothing but AUTH, HELLO
  // and QUIT until it has authenticated. Not owned; nullptr = no tokens.
  const ClientAuth* client_auth = nullptr;
  // TLS on the port (NodeTlsOptions): off unless tls.enabled().
  NodeTlsOptions tls = {};
  // Failed handshakes and TLS files that do not load; may be empty.
  std::function<void(LogLevel, std::string_view)> log = {};
};

class RespServer {
 public:
  static constexpr size_t kMaxCommandsPerBatch = 1024;
  static constexpr std::chrono::seconds kHandshakeTimeout{10};

  // Listens and starts the threads. INVALID_ARGUMENT / UNAVAILABLE naming the address.
  static Result<std::unique_ptr<RespServer>> Start(const CacheService* service,
                                                   RespServerOptions options);
  ~RespServer();
  RespServer(const RespServer&) = delete;
  RespServer& operator=(const RespServer&) = delete;

  const std::string& bound_address() const;
  void Stop();

  class Impl;

 private:
  explicit RespServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ringcache::internal
