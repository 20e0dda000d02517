// A TCP listener from a HOST:PORT flag, shared by the node's Asio servers (the metrics
// endpoint, the Redis-protocol port). Internal to the daemon: not installed.
#pragma once

#include <string>

#include <asio/ip/tcp.hpp>

#include "ringcache/status.h"

namespace ringcache::metrics {

// Opens, binds (SO_REUSEADDR) and listens `acceptor` on `host_port` ("127.0.0.1:9700",
// "[::1]:0", "localhost:6379", ":6379" = 0.0.0.0; port 0 = any free port) and sets
// *bound_address to the address actually bound ("127.0.0.1:43817", "[::1]:43817").
// INVALID_ARGUMENT for a malformed address, UNAVAILABLE when it cannot listen (both name
// the address).
Status OpenAcceptor(asio::ip::tcp::acceptor* acceptor, const std::string& host_port,
                    std::string* bound_address);

}  // namespace ringcache::metrics
