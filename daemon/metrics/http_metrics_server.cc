#include "ringcache/metrics/http_metrics_server.h"

#include <map>
#include <mutex>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>

#include <asio.hpp>

#include "asio_listen.h"

namespace ringcache::metrics {
namespace {

using asio::ip::tcp;

// Most bytes discarded after the response while waiting for the client to close.
constexpr std::size_t kMaxDrainBytes = 64 * 1024;

std::string_view ReasonPhrase(int code) {
  switch (code) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 431:
      return "Request Header Fields Too Large";
    case 503:
      return "Service Unavailable";
    default:
      return "Error";
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------

class HttpMetricsServer::Impl {
 public:
  Impl(const MetricsRegistry* registry, HealthCheck healthy, HttpMetricsServerOptions options)
      : registry_(registry), healthy_(std::move(healthy)), options_(options) {}

  ~Impl() { Stop(); }

  // Resolves, binds and listens; does not start the thread yet.
  Status Listen(const std::string& host_port) {
    if (Status s = OpenAcceptor(&acceptor_, host_port, &bound_address_); !s.ok()) return s;
    port_ = acceptor_.local_endpoint().port();
    return Status::Ok();
  }

  void Run() {
    Accept();
    thread_ = std::thread([this] { io_.run(); });
  }

  // See HttpMetricsServer::Stop(). Not from the server thread.
  void Stop();

  const std::string& bound_address() const { return bound_address_; }
  uint16_t port() const { return port_; }

 private:
  class Connection;

  // Arms the next accept. Server thread only.
  void Accept();

  // Constant after construction.
  const MetricsRegistry* const registry_;  // Not owned; may be null.
  const HealthCheck healthy_;              // May be empty (= always healthy).
  const HttpMetricsServerOptions options_;
  std::string bound_address_;  // Set by Listen() before the thread starts.
  uint16_t port_ = 0;

  // Used only on the server thread. Every live connection (they own themselves through
  // their pending handlers), oldest first. Declared before io_ so that it outlives any
  // connection that io_'s destructor might destroy.
  std::map<uint64_t, Connection*> connections_;
  uint64_t next_serial_ = 0;

  asio::io_context io_;
  tcp::acceptor acceptor_{io_};
  asio::steady_timer accept_retry_{io_};

  std::mutex stop_mu_;
  // Protected by stop_mu_.
  bool stopped_ = false;
  std::thread thread_;
};

// One HTTP exchange: read the request head, answer, linger until the client closes.
// Lives on the server thread only; owned by its pending handlers (shared_ptr).
class HttpMetricsServer::Impl::Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(Impl* server, tcp::socket socket)
      : server_(server),
        serial_(server->next_serial_++),
        socket_(std::move(socket)),
        deadline_(socket_.get_executor()) {
    server_->connections_.emplace(serial_, this);
  }
  ~Connection() { server_->connections_.erase(serial_); }

  // Closes the socket and cancels the deadline; pending handlers then fail and release
  // this connection. Idempotent.
  void Close() {
    closed_ = true;
    std::error_code ignored;
    socket_.close(ignored);
    deadline_.cancel();
  }

  // May make room for a new connection: not closed yet and not sending a response (it is
  // waiting for a request or for the client to close after its answer).
  bool Evictable() const { return !closed_ && !writing_; }

  void Start() {
    deadline_.expires_after(server_->options_.read_timeout);
    deadline_.async_wait([self = shared_from_this()](std::error_code ec) {
      if (!ec) self->Close();  // Expired: cancels whatever is pending.
    });
    asio::async_read_until(
        socket_, asio::dynamic_buffer(request_, server_->options_.max_request_bytes), "\r\n\r\n",
        [self = shared_from_this()](std::error_code ec, std::size_t) { self->OnRead(ec); });
  }

 private:
  void OnRead(const std::error_code& ec) {
    if (ec == asio::error::not_found) {  // Buffer full before the end of the head.
      Respond(431, "request header too large\n");
      return;
    }
    if (ec) {
      Close();
      return;
    }
    std::string_view head(request_);
    std::string_view line = head.substr(0, head.find("\r\n"));
    size_t sp1 = line.find(' ');
    size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos ||
        line.substr(sp2 + 1).substr(0, 5) != "HTTP/" || sp1 == 0 || sp2 == sp1 + 1) {
      Respond(400, "bad request\n");
      return;
    }
    std::string_view method = line.substr(0, sp1);
    std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    target = target.substr(0, target.find('?'));
    if (method != "GET") {
      Respond(405, "method not allowed\n", "Allow: GET\r\n");
    } else if (target == "/metrics") {
      std::string body = server_->registry_ != nullptr ? server_->registry_->Render() : "";
      Respond(200, std::move(body), "", kTextContentType);
    } else if (target == "/healthz") {
      std::string reason;
      const bool healthy = !server_->healthy_ || server_->healthy_(&reason);
      if (!healthy && reason.empty()) reason = "shutting down";
      Respond(healthy ? 200 : 503, healthy ? "ok\n" : reason + "\n");
    } else {
      Respond(404, "not found\n");
    }
  }

  void Respond(int code, std::string body, std::string_view extra_headers = "",
               std::string_view content_type = "text/plain; charset=utf-8") {
    response_ = "HTTP/1.1 " + std::to_string(code) + " " + std::string(ReasonPhrase(code)) +
                "\r\nContent-Type: " + std::string(content_type) +
                "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n" +
                std::string(extra_headers) + "\r\n" + body;
    writing_ = true;
    asio::async_write(socket_, asio::buffer(response_),
                      [self = shared_from_this()](std::error_code ec, std::size_t) {
                        self->writing_ = false;
                        if (ec) {
                          self->Close();
                          return;
                        }
                        // Half-close and drain, so that unread request bytes do not turn
                        // our close into a reset that could destroy the response in flight.
                        std::error_code ignored;
                        self->socket_.shutdown(tcp::socket::shutdown_send, ignored);
                        self->Drain();
                      });
  }

  void Drain() {
    socket_.async_read_some(asio::buffer(drain_buf_),
                            [self = shared_from_this()](std::error_code ec, std::size_t n) {
                              self->drained_ += n;
                              if (ec || self->drained_ > kMaxDrainBytes) {
                                self->Close();
                              } else {
                                self->Drain();
                              }
                            });
  }

  Impl* const server_;     // Not owned.
  const uint64_t serial_;  // Its key in server_->connections_ (accept order).
  bool closed_ = false;
  bool writing_ = false;
  tcp::socket socket_;
  asio::steady_timer deadline_;
  std::string request_;
  std::string response_;
  char drain_buf_[4096];
  std::size_t drained_ = 0;
};

void HttpMetricsServer::Impl::Stop() {
  std::lock_guard<std::mutex> lock(stop_mu_);
  if (stopped_) return;
  stopped_ = true;
  if (!thread_.joinable()) return;  // Never started.
  // Close everything on the server thread; once every handler has seen its operation
  // fail, io_ runs out of work and run() returns.
  asio::post(io_, [this] {
    std::error_code ignored;
    acceptor_.close(ignored);
    accept_retry_.cancel();
    for (auto& [serial, c] : connections_) c->Close();
  });
  thread_.join();
}

void HttpMetricsServer::Impl::Accept() {
  acceptor_.async_accept([this](std::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
    if (ec) {
      // E.g. out of file descriptors: back off briefly instead of spinning.
      accept_retry_.expires_after(std::chrono::milliseconds(100));
      accept_retry_.async_wait([this](std::error_code wait_ec) {
        if (!wait_ec) Accept();
      });
      return;
    }
    if (connections_.size() >= options_.max_connections) {
      // Full: make room by closing the oldest connection that is only waiting (for a
      // request, or for its client to close), so that idle or slow connections cannot
      // keep a health probe out; refuse only if all are sending answers.
      Connection* victim = nullptr;
      for (auto& [serial, c] : connections_) {
        if (c->Evictable()) {
          victim = c;
          break;
        }
      }
      if (victim == nullptr) {
        std::error_code ignored;
        socket.close(ignored);
        Accept();
        return;
      }
      victim->Close();
    }
    std::make_shared<Connection>(this, std::move(socket))->Start();
    Accept();
  });
}

// ---------------------------------------------------------------------------------------

Result<std::unique_ptr<HttpMetricsServer>> HttpMetricsServer::Start(
    const std::string& host_port, const MetricsRegistry* registry, HealthCheck healthy,
    HttpMetricsServerOptions options) {
  auto impl = std::make_unique<Impl>(registry, std::move(healthy), options);
  if (Status s = impl->Listen(host_port); !s.ok()) return s;
  impl->Run();
  return std::unique_ptr<HttpMetricsServer>(new HttpMetricsServer(std::move(impl)));
}

HttpMetricsServer::HttpMetricsServer(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)), bound_address_(impl_->bound_address()), port_(impl_->port()) {}

HttpMetricsServer::~HttpMetricsServer() { Stop(); }

void HttpMetricsServer::Stop() { impl_->Stop(); }

}  // namespace ringcache::metrics
