#include "resp/server.h"

#include <pthread.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <asio.hpp>
#include <asio/ssl.hpp>

#include "asio_listen.h"
#include "auth_support.h"
#include "cache_service.h"
#include "keyspace_events.h"
#include "node_metrics.h"
#include "op_batch.h"
#include "pubsub_relay.h"
#include "resp/commands.h"
#include "resp/parser.h"

namespace ringcache::internal {
namespace {

using asio::ip::tcp;

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

constexpr size_t kReadChunk = 16 * 1024;
// Pub/sub messages queued for a connection's socket beyond the write in flight; more wait
// in its subscription.
constexpr size_t kMaxQueuedPushBytes = size_t{1} << 20;
constexpr std::string_view kMaxClientsReply = "-ERR max number of clients reached\r\n";

// A TLS server context for `tls`'s files, or the reason they do not load.
Result<std::shared_ptr<asio::ssl::context>> MakeTlsContext(const NodeTlsOptions& tls) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  std::error_code ec;
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                       asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                       asio::ssl::context::no_tlsv1_1,
                   ec);
  if (!ec) ctx->use_certificate_chain_file(tls.cert_file, ec);
  if (!ec) ctx->use_private_key_file(tls.key_file, asio::ssl::context::pem, ec);
  if (!ec && !tls.ca_file.empty()) ctx->load_verify_file(tls.ca_file, ec);
  if (ec) {
    return Status::InvalidArgument("the Redis port's TLS files (" + tls.cert_file + ", " +
                                   tls.key_file + (tls.ca_file.empty() ? "" : ", " + tls.ca_file) +
                                   ") do not load: " + ec.message());
  }
  switch (tls.client_certs) {
    case NodeTlsOptions::ClientCerts::kNone:
      ctx->set_verify_mode(asio::ssl::verify_none);
      break;
    case NodeTlsOptions::ClientCerts::kVerify:
      ctx->set_verify_mode(asio::ssl::verify_peer);
      break;
    case NodeTlsOptions::ClientCerts::kRequire:
      ctx->set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert);
      break;
  }
  return ctx;
}

}  // namespace

class RespConnection;

class RespServer::Impl {
 public:
  Impl(const CacheService* service, RespServerOptions options)
      : service_(service),
        options_(std::move(options)),
        parser_(RespLimits{.max_args = options_.max_args,
                           .max_bulk_bytes = options_.max_bulk_bytes,
                           .max_inline_bytes = 64 * 1024}) {
    const size_t n = std::max<size_t>(1, options_.threads);
    for (size_t i = 0; i < n; ++i) {
      ios_.push_back(std::make_unique<asio::io_context>(1));
      guards_.emplace_back(asio::make_work_guard(*ios_.back()));
    }
    acceptor_ = std::make_unique<tcp::acceptor>(*ios_[0]);
    if (options_.tls.enabled()) reload_timer_ = std::make_unique<asio::steady_timer>(*ios_[0]);
    if (NodeMetrics* m = options_.metrics; m != nullptr) {
      for (const std::string_view name : RespCommandNames()) {
        counters_.push_back(
            {&m->RespCommandCounter(name, false), &m->RespCommandCounter(name, true)});
      }
      unknown_ = &m->RespCommandCounter("unknown", true);
    }
  }
  ~Impl() { Stop(); }

  Status Listen() {
    if (options_.tls.enabled()) {
      Result<std::shared_ptr<asio::ssl::context>> ctx = MakeTlsContext(options_.tls);
      if (!ctx.ok()) return ctx.status();
      tls_ = std::move(ctx).value();
    }
    return metrics::OpenAcceptor(acceptor_.get(), options_.listen_address, &bound_);
  }
  void Run() {
    Accept();
    if (reload_timer_ != nullptr) ScheduleTlsReload();
    for (auto& io : ios_) {
      threads_.emplace_back([ctx = io.get()] {
        pthread_setname_np(pthread_self(), "rc-resp");
        ctx->run();
      });
    }
  }
  void Stop();

  const std::string& bound_address() const { return bound_; }
  const CacheService* service() const { return service_; }
  const RespParser& parser() const { return parser_; }
  const RespServerOptions& options() const { return options_; }
  bool stopping() const { return stopping_.load(std::memory_order_acquire); }
  NodeMetrics* metrics() const { return options_.metrics; }
  // Counts the commands of one batch (EncodeReplies' outcomes).
  void Count(const std::vector<std::pair<int, bool>>& outcomes) const {
    for (const auto& [command, error] : outcomes) {
      if (command < 0) {
        unknown_->Increment();
      } else {
        counters_[static_cast<size_t>(command)][error ? 1 : 0]->Increment();
      }
    }
  }

  // A batch started / finished (Stop waits for none in flight).
  void BatchStarted() { in_flight_.fetch_add(1, std::memory_order_acq_rel); }
  void BatchFinished() {
    if (in_flight_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard lock(mu_);
      cv_.notify_all();
    }
  }
  void Closed(RespConnection* c) {
    std::lock_guard lock(mu_);
    connections_.erase(c);
  }
  size_t ConnectionCount() {
    std::lock_guard lock(mu_);
    return connections_.size();
  }
  // The TLS context for a new connection; null without TLS.
  std::shared_ptr<asio::ssl::context> TlsContext() {
    std::lock_guard lock(mu_);
    return tls_;
  }
  void NoteHandshakeFailure(const std::string& peer, const std::error_code& ec) {
    handshake_failures_.Note(
        [&] { return "Redis port: TLS handshake with " + peer + " failed: " + ec.message(); });
  }
  // A subscribed connection closed because its subscription ended: logged (at most a line
  // a second) when the reader fell behind, not when the node shuts down.
  void NotePubSubEnd(const std::string& peer, const Status& status) {
    if (status.code() != StatusCode::kResourceExhausted) return;
    slow_subscribers_.Note(
        [&] { return "Redis port: closing subscriber " + peer + ": " + status.message(); });
  }
  // What a new connection's commands about the server read (INFO, CLIENT ID, ...).
  RespSession NewSession(std::string peer) {
    const std::string_view port =
        std::string_view(bound_).substr(std::min(bound_.size(), bound_.rfind(':') + 1));
    const Node* node = service_->node();
    const ClientAuth* auth = options_.client_auth;
    const bool tokens = auth != nullptr && auth->enabled();
    return RespSession{
        .connection_id = next_connection_id_.fetch_add(1, std::memory_order_relaxed) + 1,
        .node_stats = [node] { return node->Stats(); },
        .connections = [this] { return ConnectionCount(); },
        .tcp_port = std::string(port),
        .keyspace_events = KeyspaceEvents::Effective(node->options().keyspace_events),
        .login = !tokens ? nullptr
                         : std::function([auth, peer = std::move(peer)](std::string_view user,
                                                                        std::string_view token) {
                             std::optional<RespLogin> out;
                             if (auto who = auth->Login(user, token, peer)) {
                               out = RespLogin{.user = std::move(who->name), .role = who->role};
                             }
                             return out;
                           }),
        .role = tokens ? Role::kNone : Role::kAdmin,
        .user = tokens ? "" : "default"};
  }

 private:
  void Accept();
  // Every tls.reload_interval, on the first I/O thread: a new context from the files for
  // the connections accepted from then on (the old one stays if they do not load).
  void ScheduleTlsReload() {
    reload_timer_->expires_after(options_.tls.reload_interval);
    reload_timer_->async_wait([this](std::error_code ec) {
      if (ec || stopping()) return;
      Result<std::shared_ptr<asio::ssl::context>> ctx = MakeTlsContext(options_.tls);
      if (ctx.ok()) {
        std::lock_guard lock(mu_);
        tls_ = std::move(ctx).value();
      } else if (options_.log) {
        options_.log(LogLevel::kWarn, ctx.status().message() + "; keeping the ones loaded before");
      }
      ScheduleTlsReload();
    });
  }

  const CacheService* const service_;
  const RespServerOptions options_;
  const RespParser parser_;
  std::vector<std::unique_ptr<asio::io_context>> ios_;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards_;
  std::unique_ptr<tcp::acceptor> acceptor_;
  std::vector<std::thread> threads_;
  std::string bound_;
  // Per command (RespCommandNames() order): {ok, error} counters; set when metrics are.
  std::vector<std::array<metrics::Counter*, 2>> counters_;
  metrics::Counter* unknown_ = nullptr;
  size_t next_io_ = 0;  // On the accepting thread only.
  std::atomic<bool> stopping_{false};
  std::atomic<int> in_flight_{0};
  std::atomic<uint64_t> next_connection_id_{0};

  std::mutex mu_;
  std::condition_variable cv_;
  // Protected by mu_: open connections (to close them at Stop).
  std::unordered_map<RespConnection*, std::weak_ptr<RespConnection>> connections_;
  bool stopped_ = false;
  // TLS: the context new connections use (null without TLS), swapped by the reload.
  std::shared_ptr<asio::ssl::context> tls_;  // Guarded by mu_ once running.
  std::unique_ptr<asio::steady_timer> reload_timer_;
  // Failed handshakes and connections over max_clients, logged at most once a second.
  RefusalLog handshake_failures_{options_.log};
  RefusalLog slow_subscribers_{options_.log};
  RefusalLog refused_connections_{options_.log};

  friend class RespConnection;
};

// One client connection; lives on one I/O thread (see the header for the flow).
class RespConnection : public std::enable_shared_from_this<RespConnection> {
 public:
  // `tls`: the server's TLS context (null: plaintext).
  RespConnection(RespServer::Impl* server, tcp::socket socket,
                 std::shared_ptr<asio::ssl::context> tls)
      : server_(server), socket_(std::move(socket)), tls_context_(std::move(tls)) {
    if (tls_context_ != nullptr) {
      tls_ = std::make_unique<asio::ssl::stream<tcp::socket&>>(socket_, *tls_context_);
    }
  }

  void Start() {
    std::error_code peer_error;
    const tcp::endpoint peer = socket_.remote_endpoint(peer_error);
    peer_ = peer_error ? std::string("?")
                       : peer.address().to_string() + ":" + std::to_string(peer.port());
    RespSession session = server_->NewSession(peer_);
    session.open_subscription = [this] {
      // The hub wakes the connection on its own thread (PubSub calls `wake` on the
      // publisher's); the waker is cut in Shutdown, so nothing is posted after it.
      waker_ = std::make_shared<PushWaker>();
      waker_->executor = socket_.get_executor();
      waker_->connection = weak_from_this();
      return server_->service()->pubsub().Open([waker = waker_] { waker->Wake(); });
    };
    batch_.SetSession(std::move(session));
    std::error_code ignored;
    socket_.set_option(tcp::no_delay(true), ignored);
    if (server_->metrics() != nullptr) server_->metrics()->resp_connections().Increment();
    started_ = true;
    if (server_->options().idle_timeout.count() > 0) {
      idle_timer_ = std::make_unique<asio::steady_timer>(socket_.get_executor());
      last_command_ = std::chrono::steady_clock::now();
      WatchIdle(server_->options().idle_timeout);
    }
    if (tls_ == nullptr) return Read();
    // A client that never finishes its handshake is cut off (closing the socket ends the
    // handshake with an error).
    handshake_timer_ =
        std::make_unique<asio::steady_timer>(socket_.get_executor(), RespServer::kHandshakeTimeout);
    handshake_timer_->async_wait([self = shared_from_this()](std::error_code ec) {
      if (ec || self->handshaken_) return;
      std::error_code ignored_close;
      self->socket_.close(ignored_close);
    });
    tls_->async_handshake(asio::ssl::stream_base::server,
                          [self = shared_from_this()](std::error_code ec) {
                            self->handshaken_ = true;
                            self->handshake_timer_->cancel();
                            if (ec) {
                              // Not when the node closed it (Stop).
                              if (!self->closed_)
                                self->server_->NoteHandshakeFailure(self->peer_, ec);
                              return self->Shutdown();
                            }
                            self->Read();
                          });
  }

  asio::any_io_executor executor() { return socket_.get_executor(); }

  // From Stop, on any thread: ends the connection on its own thread.
  void Close() {
    asio::post(socket_.get_executor(), [self = shared_from_this()] { self->Shutdown(); });
  }

 private:
  void Read() {
    if (server_->stopping()) return Shutdown();
    if (in_.size() - in_len_ < kReadChunk) in_.resize(in_len_ + 2 * kReadChunk);
    auto buffer = asio::buffer(in_.data() + in_len_, in_.size() - in_len_);
    waiting_ = true;
    auto on_read = [self = shared_from_this()](std::error_code ec, size_t n) {
      self->waiting_ = false;
      self->last_command_ = std::chrono::steady_clock::now();
      if (ec) return self->Shutdown();
      self->in_len_ += n;
      self->Process();
    };
    if (tls_ != nullptr) {
      tls_->async_read_some(buffer, std::move(on_read));
    } else {
      socket_.async_read_some(buffer, std::move(on_read));
    }
  }

  // Parses what the buffer holds and runs it; reads more if it holds no whole command.
  void Process() {
    if (closed_) return;  // E.g. a subscriber cut off: what it sent after is not run.
    if (server_->stopping()) return Shutdown();
    commands_.clear();
    size_t used = 0;
    // Before AUTH, one command at a time under the small limits: the commands after an
    // AUTH are parsed once it has run, with the limits of a client that authenticated.
    const bool unauthenticated = !batch_.authenticated();
    const RespParseError error = server_->parser().Parse(
        std::string_view(in_.data(), in_len_), &commands_, &used,
        unauthenticated ? 1 : RespServer::kMaxCommandsPerBatch, unauthenticated);
    consumed_ = used;
    if (error) {
      trailer_ = "-ERR " + error.message + "\r\n";
      close_after_ = true;
    } else if (commands_.empty()) {
      if (in_len_ >= server_->options().max_query_buffer_bytes) {
        trailer_ = "-ERR Protocol error: a command over the query buffer limit of " +
                   std::to_string(server_->options().max_query_buffer_bytes) +
                   " bytes (the node's --max-value-bytes and --max-batch)\r\n";
        close_after_ = true;
        return Finish();
      }
      return Read();
    }
    batch_.Clear();
    const int64_t now_ms = NowUnixMs();
    for (const RespCommand& c : commands_) {
      if (!batch_.Add(c, now_ms)) {
        close_after_ = true;  // QUIT: nothing after it runs.
        break;
      }
    }
    if (batch_.ops().empty() && batch_.publishes().empty()) return Finish();

    // The batch ends (Finish) once its operations and then its publishes are done: a
    // PUBLISH pipelined after a write goes out once the write is applied (the
    // write-then-notify pattern), never before it.
    in_batch_ = true;
    parts_left_ = batch_.publishes().size() + (batch_.ops().empty() ? 0 : 1);
    // Counted in flight from here until the publishes count themselves (StartPublishes),
    // so that Stop never sees the batch idle between its operations and its publishes.
    if (!batch_.publishes().empty()) server_->BatchStarted();
    if (batch_.ops().empty()) return StartPublishes();
    server_->BatchStarted();
    const std::thread::id here = std::this_thread::get_id();
    done_inline_ = false;
    const CacheService* service = server_->service();
    RunBatch(service, service->ThreadTopology(), Router::Hints{}, batch_.ops(), batch_.results(),
             {}, std::chrono::system_clock::time_point::max(),
             // Over --max-response-bytes, each command whose reads went over answers the
             // error itself (its result holds it).
             [self = shared_from_this(), here](const Status& /*outcome*/) {
               if (std::this_thread::get_id() == here) {
                 self->done_inline_ = true;  // Still inside RunBatch, on this thread.
                 return;
               }
               RespServer::Impl* server = self->server_;
               asio::post(self->socket_.get_executor(), [self] { self->PartDone(); });
               server->BatchFinished();
             });
    if (done_inline_) {
      server_->BatchFinished();
      PartDone();
    }
  }

  // Runs the batch's PUBLISH commands through the node's relay (each counts as a batch in
  // flight for Stop); their outcomes come back on this connection's thread.
  void StartPublishes() {
    publishes_started_ = true;
    const std::vector<RespBatch::PendingPublish>& publishes = batch_.publishes();
    if (closed_ || server_->stopping()) {
      // The connection or the node is going: nothing is published.
      for (size_t i = 0; i < publishes.size(); ++i) {
        batch_.SetPublishResult(i, Status::Unavailable("node is shutting down; not published"), 0);
      }
      server_->BatchFinished();  // The count Process took.
      parts_left_ -= publishes.size();
      if (parts_left_ == 0) Finish();
      return;
    }
    for (size_t i = 0; i < publishes.size(); ++i) {
      v1::PublishRequest request;
      request.set_channel(publishes[i].channel);
      request.set_payload(publishes[i].payload);
      server_->BatchStarted();
      server_->service()->pubsub_relay().Publish(
          request, std::chrono::system_clock::time_point::max(),
          [self = shared_from_this(), i](grpc::Status status, v1::PublishResponse response) {
            RespServer::Impl* server = self->server_;
            asio::post(self->socket_.get_executor(), [self, i, status = std::move(status),
                                                      receivers = response.receivers()] {
              self->batch_.SetPublishResult(
                  i, Status(static_cast<StatusCode>(status.error_code()), status.error_message()),
                  receivers);
              self->PartDone();
            });
            server->BatchFinished();
          });
    }
    server_->BatchFinished();  // The count Process took: each publish counts itself now.
  }

  // One part of the batch is done: its operations (then its publishes start) or one
  // publish.
  void PartDone() {
    const bool ops_done = !publishes_started_;
    if (--parts_left_ == 0) return Finish();
    if (ops_done) StartPublishes();
  }

  // Encodes the batch's replies (and any protocol error), drops the commands answered
  // from the buffer, and writes.
  void Finish() {
    in_batch_ = false;
    publishes_started_ = false;
    const size_t before = pending_.size();
    outcomes_.clear();
    batch_.EncodeReplies(&pending_, server_->metrics() != nullptr ? &outcomes_ : nullptr);
    server_->Count(outcomes_);
    batch_.Clear();
    pending_ += trailer_;
    trailer_.clear();
    if (consumed_ > 0) {
      std::memmove(in_.data(), in_.data() + consumed_, in_len_ - consumed_);
      in_len_ -= consumed_;
      consumed_ = 0;
    }
    if (pending_.size() == before && !writing_) {
      if (close_after_) return Shutdown();
      DrainPushes();
      return Process();
    }
    // The replies go out (after any messages already queued); reading resumes once they
    // are written.
    resume_pending_ = true;
    DrainPushes();
    Flush();
  }

  // Writes what is queued, one write at a time. A write that carries a batch's replies
  // resumes Process (or closes, after QUIT) once done.
  void Flush() {
    if (writing_ || pending_.empty() || closed_) return;
    writing_ = true;
    write_buf_.clear();
    write_buf_.swap(pending_);
    resume_on_write_ = resume_pending_;
    resume_pending_ = false;
    auto on_written = [self = shared_from_this()](std::error_code ec, size_t) {
      self->writing_ = false;
      self->write_buf_.clear();  // Written: no longer counts as queued (DrainPushes).
      if (ec) return self->Shutdown();
      const bool resume = self->resume_on_write_;
      self->resume_on_write_ = false;
      if (resume && self->close_after_) return self->Shutdown();
      self->DrainPushes();
      self->Flush();
      if (resume) self->Process();
    };
    if (tls_ != nullptr) {
      asio::async_write(*tls_, asio::buffer(write_buf_), std::move(on_written));
    } else {
      asio::async_write(socket_, asio::buffer(write_buf_), std::move(on_written));
    }
  }

  // Moves the subscription's messages into the write queue, while no batch is being
  // answered (a SUBSCRIBE's confirmation goes before its first message) and while less
  // than kMaxQueuedPushBytes waits to be written (the rest waits in the subscription,
  // bounded by --subscriber-buffer-bytes). A subscription cut off for its buffer closes
  // the connection, as Redis does past client-output-buffer-limit.
  void DrainPushes() {
    PubSub::Subscription* sub = batch_.subscription();
    if (sub == nullptr || closed_) return;
    // Cut off (its reader too slow) or ended by the node: closed at once, whatever is
    // queued or being written, as Redis does past its hard limit.
    if (Status s = sub->status(); !s.ok()) {
      server_->NotePubSubEnd(peer_, s);
      return Shutdown();
    }
    if (in_batch_ || pending_.size() + write_buf_.size() >= kMaxQueuedPushBytes) return;
    deliveries_.clear();
    const bool open = sub->Take(&deliveries_, 256, kMaxQueuedPushBytes);
    for (const PubSub::Delivery& d : deliveries_) RespBatch::EncodeMessage(d, &pending_);
    deliveries_.clear();
    if (!open) return DrainPushes();  // Closed meanwhile: the check above ends it.
    Flush();
  }

  // The hub's way to the connection: Wake posts DrainPushes to its thread while the
  // connection lives (Shutdown cuts it first, so no post follows the io_context's end).
  struct PushWaker {
    std::mutex mu;
    bool alive = true;  // Protected by mu.
    asio::any_io_executor executor;
    std::weak_ptr<RespConnection> connection;
    void Wake() {
      std::lock_guard lock(mu);
      if (!alive) return;
      asio::post(executor, [weak = connection] {
        if (auto self = weak.lock()) self->DrainPushes();
      });
    }
  };

  // The idle timeout: the timer fires `after`; a connection that has waited for input
  // (not for a batch or a write) since the timeout began is closed, otherwise the timer
  // waits for the rest. One timer per connection, re-armed only when it fires.
  void WatchIdle(std::chrono::steady_clock::duration after) {
    idle_timer_->expires_after(after);
    idle_timer_->async_wait([self = shared_from_this()](std::error_code ec) {
      if (ec || self->closed_) return;
      const auto timeout = self->server_->options().idle_timeout;
      const auto idle = std::chrono::steady_clock::now() - self->last_command_;
      // A subscribed connection waits for messages, not commands (as Redis's timeout).
      const bool subscribed = self->batch_.subscription() != nullptr;
      if (self->waiting_ && idle >= timeout && !subscribed) return self->Shutdown();
      self->WatchIdle(self->waiting_ ? timeout - idle : timeout);
    });
  }

  void Shutdown() {
    if (closed_) return;
    closed_ = true;
    if (waker_ != nullptr) {
      std::lock_guard lock(waker_->mu);
      waker_->alive = false;
    }
    batch_.CloseSubscription();
    if (idle_timer_ != nullptr) idle_timer_->cancel();
    if (handshake_timer_ != nullptr) handshake_timer_->cancel();
    std::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
    if (server_->metrics() != nullptr && started_)
      server_->metrics()->resp_connections().Decrement();
    server_->Closed(this);
  }

  RespServer::Impl* const server_;
  tcp::socket socket_;
  // TLS: the context this connection was accepted with, and the stream over socket_.
  const std::shared_ptr<asio::ssl::context> tls_context_;
  std::unique_ptr<asio::ssl::stream<tcp::socket&>> tls_;
  std::unique_ptr<asio::steady_timer> handshake_timer_;
  bool handshaken_ = false;
  std::string peer_;  // "IP:PORT", for the log.
  // The idle timeout (null when off): waiting_ while a read is outstanding.
  std::unique_ptr<asio::steady_timer> idle_timer_;
  std::chrono::steady_clock::time_point last_command_;
  bool waiting_ = false;
  std::string in_;  // Received bytes in [0, in_len_).
  size_t in_len_ = 0;
  size_t consumed_ = 0;  // Bytes of the commands of the batch in flight.
  std::vector<RespCommand> commands_;
  RespBatch batch_;
  std::vector<std::pair<int, bool>> outcomes_;
  // The writer (Flush): bytes queued, bytes being written.
  std::string pending_;
  std::string write_buf_;
  bool writing_ = false;
  bool resume_pending_ = false;       // pending_ holds a batch's replies.
  bool resume_on_write_ = false;      // The write in flight holds them.
  bool in_batch_ = false;             // From a batch's start to its Finish.
  bool publishes_started_ = false;    // The batch's operations are done; its publishes run.
  size_t parts_left_ = 0;             // Of the batch in flight: its ops (one part) and publishes.
  std::shared_ptr<PushWaker> waker_;  // Set when the connection first subscribes.
  std::vector<PubSub::Delivery> deliveries_;
  std::string trailer_;  // A protocol error's reply, after the batch's.
  bool close_after_ = false;
  bool done_inline_ = false;
  bool closed_ = false;
  bool started_ = false;  // Counted in ringcache_resp_connections.
};

void RespServer::Impl::Accept() {
  asio::io_context& io = *ios_[next_io_];
  next_io_ = (next_io_ + 1) % ios_.size();
  acceptor_->async_accept(io, [this](std::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor_->is_open()) return;
    if (!ec && !stopping() && ConnectionCount() >= options_.max_clients) {
      // Redis's answer (in clear; a TLS client sees the connection close).
      std::error_code ignored;
      if (tls_ == nullptr) asio::write(socket, asio::buffer(kMaxClientsReply), ignored);
      const tcp::endpoint peer = socket.remote_endpoint(ignored);
      socket.close(ignored);
      refused_connections_.Note([&] {
        return "Redis port: refused a connection from " + peer.address().to_string() +
               ": --resp-max-clients (" + std::to_string(options_.max_clients) +
               ") connections are open";
      });
    } else if (!ec && !stopping()) {
      auto connection = std::make_shared<RespConnection>(this, std::move(socket), TlsContext());
      {
        std::lock_guard lock(mu_);
        connections_.emplace(connection.get(), connection);
      }
      // Start on the connection's own thread.
      asio::post(connection->executor(), [connection] { connection->Start(); });
    }
    Accept();
  });
}

void RespServer::Impl::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stopped_) return;
    stopped_ = true;
  }
  stopping_.store(true, std::memory_order_release);
  if (!threads_.empty()) {
    asio::post(*ios_[0], [this] {
      std::error_code ignored;
      acceptor_->close(ignored);
      if (reload_timer_ != nullptr) reload_timer_->cancel();
    });
  }
  {
    std::unique_lock lock(mu_);
    for (auto& [raw, weak] : connections_) {
      if (auto c = weak.lock()) c->Close();
    }
    // Batches in flight end by their forward deadline at the latest.
    cv_.wait(lock, [this] { return in_flight_.load(std::memory_order_acquire) == 0; });
  }
  guards_.clear();
  for (auto& io : ios_) io->stop();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

Result<std::unique_ptr<RespServer>> RespServer::Start(const CacheService* service,
                                                      RespServerOptions options) {
  auto impl = std::make_unique<Impl>(service, std::move(options));
  if (Status s = impl->Listen(); !s.ok()) return s;
  impl->Run();
  return std::unique_ptr<RespServer>(new RespServer(std::move(impl)));
}

RespServer::RespServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RespServer::~RespServer() { Stop(); }
const std::string& RespServer::bound_address() const { return impl_->bound_address(); }
void RespServer::Stop() { impl_->Stop(); }

}  // namespace ringcache::internal
