#include "asio_listen.h"

#include <string_view>
#include <system_error>

namespace ringcache::metrics {
namespace {

using asio::ip::tcp;

std::string FormatEndpoint(const tcp::endpoint& ep) {
  std::string host = ep.address().to_string();
  if (ep.address().is_v6()) host = "[" + host + "]";
  return host + ":" + std::to_string(ep.port());
}

// Splits "host:port" / "[v6]:port". An empty host means 0.0.0.0.
Status ParseHostPort(const std::string& host_port, std::string* host, std::string* port) {
  auto bad = [&](std::string_view why) {
    return Status::InvalidArgument("invalid listen address \"" + host_port +
                                   "\": " + std::string(why) + " (want HOST:PORT)");
  };
  size_t colon;
  if (!host_port.empty() && host_port[0] == '[') {
    size_t close = host_port.find(']');
    if (close == std::string::npos) return bad("missing ']'");
    if (close + 1 >= host_port.size() || host_port[close + 1] != ':') return bad("missing port");
    *host = host_port.substr(1, close - 1);
    colon = close + 1;
  } else {
    colon = host_port.rfind(':');
    if (colon == std::string::npos) return bad("missing port");
    *host = host_port.substr(0, colon);
    if (host->find(':') != std::string::npos) return bad("IPv6 hosts need brackets");
  }
  *port = host_port.substr(colon + 1);
  if (port->empty() || port->size() > 5) return bad("bad port");
  unsigned long value = 0;
  for (char c : *port) {
    if (c < '0' || c > '9') return bad("bad port");
    value = value * 10 + static_cast<unsigned long>(c - '0');
  }
  if (value > 65535) return bad("port out of range");
  if (host->empty()) *host = "0.0.0.0";
  return Status::Ok();
}

}  // namespace

Status OpenAcceptor(asio::ip::tcp::acceptor* acceptor, const std::string& host_port,
                    std::string* bound_address) {
  std::string host;
  std::string port;
  if (Status s = ParseHostPort(host_port, &host, &port); !s.ok()) return s;
  auto fail = [&](const std::error_code& ec) {
    return Status::Unavailable("cannot listen on " + host_port + ": " + ec.message());
  };
  std::error_code ec;
  tcp::endpoint endpoint;
  asio::ip::address address = asio::ip::make_address(host, ec);
  if (!ec) {
    endpoint = tcp::endpoint(address, static_cast<uint16_t>(std::stoul(port)));
  } else {
    tcp::resolver resolver(acceptor->get_executor());
    auto results = resolver.resolve(host, port, tcp::resolver::passive, ec);
    if (ec) return fail(ec);
    if (results.empty()) return fail(asio::error::host_not_found);
    endpoint = results.begin()->endpoint();
  }
  acceptor->open(endpoint.protocol(), ec);
  if (ec) return fail(ec);
  acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
  if (ec) return fail(ec);
  acceptor->bind(endpoint, ec);
  if (ec) return fail(ec);
  acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return fail(ec);
  tcp::endpoint local = acceptor->local_endpoint(ec);
  if (ec) return fail(ec);
  *bound_address = FormatEndpoint(local);
  return Status::Ok();
}

}  // namespace ringcache::metrics
