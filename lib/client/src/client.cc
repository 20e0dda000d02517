// Client: connecting, the batch calls, Stats and views (the single-key calls are in
// key_calls.cc; Client::Impl, routing and retries in client_impl.h).
#include "client_impl.h"

namespace ringcache::client {

Status Options::Validate() const {
  if (seeds.empty())
    return Status::InvalidArgument("Options.seeds is empty: give at least one node");
  for (size_t i = 0; i < seeds.size(); ++i) {
    if (seeds[i].empty()) {
      return Status::InvalidArgument("Options.seeds[" + std::to_string(i) + "] is empty");
    }
  }
  if (timeout.count() <= 0) return Status::InvalidArgument("Options.timeout must be positive");
  if (connect_timeout.count() <= 0) {
    return Status::InvalidArgument("Options.connect_timeout must be positive");
  }
  if (max_attempts == 0 || max_attempts > 100) {
    return Status::InvalidArgument("Options.max_attempts must be in [1, 100], got " +
                                   std::to_string(max_attempts));
  }
  if (retry_backoff.count() < 0) {
    return Status::InvalidArgument("Options.retry_backoff must not be negative");
  }
  if (max_batch_keys == 0) return Status::InvalidArgument("Options.max_batch_keys must be >= 1");
  if (max_batch_bytes == 0) return Status::InvalidArgument("Options.max_batch_bytes must be >= 1");
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    return Status::InvalidArgument("Options.tls.cert_file and key_file go together");
  }
  if (!tls.enabled && (!tls.ca_file.empty() || !tls.cert_file.empty())) {
    return Status::InvalidArgument("Options.tls has files but tls.enabled is false");
  }
  for (const char c : token) {
    if (c < 0x21 || c > 0x7e) {
      return Status::InvalidArgument(
          "Options.token must be printable ASCII without spaces (it travels as gRPC metadata)");
    }
  }
  if (near_cache.enabled) {
    if (near_cache.capacity_bytes < (uint64_t{1} << 20)) {
      return Status::InvalidArgument(
          "Options.near_cache.capacity_bytes must be at least 1 MiB, got " +
          std::to_string(near_cache.capacity_bytes));
    }
    if (near_cache.key_pattern.empty() || near_cache.key_pattern.size() > 1024) {
      return Status::InvalidArgument(
          "Options.near_cache.key_pattern must be 1 to 1024 bytes, got " +
          std::to_string(near_cache.key_pattern.size()));
    }
    if (near_cache.max_silence.count() < 0) {
      return Status::InvalidArgument("Options.near_cache.max_silence must not be negative");
    }
  }
  return Status::Ok();
}

namespace {

constexpr std::string_view kKeyspacePrefix = "__keyspace@0__:";
// The node's keyspace tick (daemon/node/src/keyspace_events.h): payload the node's id.
constexpr std::string_view kTickChannel = "__ringcache__:keyspace-tick";

// Whether a node's --keyspace-events (as SubscribeStarted gives it) announces every change
// of every key on its key's channel: K and every class (A, or all of g$lshxe).
bool AnnouncesEveryChange(std::string_view letters) {
  if (letters.find('K') == std::string_view::npos) return false;
  if (letters.find('A') != std::string_view::npos) return true;
  return std::all_of(std::begin("g$lshxe"), std::end("g$lshxe") - 1,
                     [&](char c) { return letters.find(c) != std::string_view::npos; });
}

// Feeds the near cache from its subscription: key events drop keys, ticks keep it trusted,
// gaps and breaks drop everything. A node whose --keyspace-events does not announce every
// change is not trusted (its ticks are ignored) and named in problem().
class NearFeed final : public StreamObserver {
 public:
  NearFeed(internal::NearCache* near, std::function<std::vector<std::string>()> members,
           std::function<void(std::string_view)> log)
      : near_(near), members_(std::move(members)), log_(std::move(log)) {}

  void Started(const v1::SubscribeStarted& started) override {
    {
      std::lock_guard lock(mu_);
      usable_ = AnnouncesEveryChange(started.keyspace_events());
      problem_.clear();
      if (!usable_) {
        problem_ = "node " + started.node_id() + " has --keyspace-events \"" +
                   started.keyspace_events() +
                   "\": the near cache needs K and every class (KA or KEA) on every node";
      }
    }
    if (!problem_.empty() && log_) log_("near cache disabled: " + problem_);
    near_->StreamStarted(std::chrono::milliseconds(started.heartbeat_ms()));
  }
  void Event(PubSubEvent event) override {
    if (event.kind == PubSubEvent::Kind::kGap) {
      near_->Gap();
    } else if (event.channel == kTickChannel) {
      if (usable()) near_->Tick(event.payload, event.version, members_());
    } else if (event.channel.starts_with(kKeyspacePrefix)) {
      near_->Invalidate(std::string_view(event.channel).substr(kKeyspacePrefix.size()));
    }
  }
  void Broken() override { near_->StreamBroken(); }

  bool usable() const {
    std::lock_guard lock(mu_);
    return usable_;
  }
  std::string problem() const {
    std::lock_guard lock(mu_);
    return problem_;
  }

 private:
  internal::NearCache* const near_;
  const std::function<std::vector<std::string>()> members_;
  const std::function<void(std::string_view)> log_;
  mutable std::mutex mu_;
  bool usable_ = false;  // Protected by mu_.
  std::string problem_;  // Protected by mu_.
};

}  // namespace

ClientStats& ClientStats::operator+=(const ClientStats& o) {
  rpcs += o.rpcs;
  retries += o.retries;
  views_adopted += o.views_adopted;
  epoch_hints += o.epoch_hints;
  topology_fetches += o.topology_fetches;
  return *this;
}

Result<std::unique_ptr<Client>> Client::Connect(Options options) {
  if (Status s = options.Validate(); !s.ok()) return s;
  ChannelSecurity security{
      .token = options.token, .credentials = nullptr, .server_name = options.tls.server_name};
  if (options.tls.enabled) {
    grpc::SslCredentialsOptions pem;
    const std::pair<const std::string*, std::string*> files[] = {
        {&options.tls.ca_file, &pem.pem_root_certs},
        {&options.tls.cert_file, &pem.pem_cert_chain},
        {&options.tls.key_file, &pem.pem_private_key}};
    for (const auto& [path, out] : files) {
      if (path->empty()) continue;
      std::ifstream in(*path, std::ios::binary);
      out->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      if (!in || out->empty()) {
        return Status::InvalidArgument("Options.tls: cannot read " + *path);
      }
    }
    security.credentials = grpc::SslCredentials(pem);
  }
  auto impl = std::make_unique<Impl>(std::move(options), std::move(security));
  const Options& o = impl->options;
  const Deadline deadline = Now() + o.connect_timeout;
  std::map<std::string, std::string> errors;  // seed -> last error
  for (;;) {
    for (const std::string& seed : o.seeds) {
      const Deadline attempt_deadline = std::min(deadline, Now() + o.timeout);
      Status s = impl->FetchTopology(seed, attempt_deadline);
      if (s.ok() && impl->Current() != nullptr && impl->Current()->empty()) {
        s = Impl::NoOwner(*impl->Current());
      }
      if (s.ok()) break;
      // Keep the more telling error when the last attempt only ran out of time.
      if (s.code() != StatusCode::kDeadlineExceeded || errors.count(seed) == 0) {
        errors[seed] = s.ToString();
      }
    }
    const TablePtr table = impl->Current();
    if (table != nullptr && !table->empty()) break;
    const auto now = Now();
    if (now >= deadline) {
      std::string detail;
      for (const auto& [seed, error] : errors)
        detail.append("; ").append(seed).append(": ").append(error);
      return Status::Unavailable("could not get a cluster view from any seed within " +
                                 std::to_string(o.connect_timeout.count()) + " ms" + detail);
    }
    std::this_thread::sleep_for(
        std::min<std::chrono::system_clock::duration>(kConnectRetryPause, deadline - now));
  }
  if (o.watch_topology) {
    Impl* raw = impl.get();
    impl->watcher = std::make_unique<TopologyWatcher>(
        &impl->pool,
        internal::TopologyWatcherOptions{
            .candidates = [raw] { return raw->Candidates(); },
            .on_view = [raw](const v1::ClusterView& view,
                             const std::string& from) { (void)raw->Adopt(view, from); },
            .log = o.log});
    impl->watcher->Start();
  }
  if (o.near_cache.enabled) {
    Result<std::unique_ptr<internal::NearCache>> near = internal::NearCache::Create(o.near_cache);
    if (!near.ok()) return near.status();
    impl->near = std::move(near).value();
    Impl* raw = impl.get();
    auto feed = std::make_unique<NearFeed>(
        impl->near.get(),
        [raw] {
          std::vector<std::string> ids;
          for (const ClusterMember& m : raw->Current()->view().members) {
            if (m.state != MemberState::kFailed) ids.push_back(m.id);
          }
          return ids;
        },
        o.log);
    NearFeed* observer = feed.get();
    impl->near_observer = std::move(feed);
    Result<std::unique_ptr<Subscription>> sub = impl->OpenSubscription(
        {.channels = {std::string(kTickChannel)},
         .patterns = {std::string(kKeyspacePrefix) + o.near_cache.key_pattern},
         .reconnect = true},
        observer, Now() + o.connect_timeout);
    if (!sub.ok()) return sub.status();
    impl->near_feed = std::move(sub).value();
    if (!observer->usable()) return Status::FailedPrecondition(observer->problem());
  }
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

namespace {

// The batch operations for Impl::RunBatch (see there for the interface).
struct MultiGetOp {
  using Request = v1::MultiGetRequest;
  using Response = v1::MultiGetResponse;
  std::span<const std::string_view> keys;
  ReadPreference pref;
  std::vector<Result<Item>>* out;

  std::string_view Key(size_t i) const { return keys[i]; }
  uint64_t Bytes(size_t i) const { return keys[i].size(); }
  RetryPolicy Policy(size_t) const { return RetryPolicy::kAlways; }
  void Prepare(Request* r) const { r->set_read_preference(ToProto(pref)); }
  void Add(Request* r, size_t i) const { r->add_keys(keys[i].data(), keys[i].size()); }
  void Start(v1::Cache::StubInterface::async_interface* a, grpc::ClientContext* c,
             const Request* req, Response* resp, std::function<void(grpc::Status)> done) const {
    a->MultiGet(c, req, resp, std::move(done));
  }
  int Count(const Response& r) const { return r.results_size(); }
  Status ItemStatus(const Response& r, int j) const { return FromOp(r.results(j).status()); }
  void Accept(size_t i, Response& r, int j) const {
    v1::GetResult* g = r.mutable_results(j);
    (*out)[i] = Item{.value = std::move(*g->mutable_value()),
                     .meta = ItemMeta{g->version(), g->expires_at_ms()}};
  }
  void Fail(size_t i, Status s) const { (*out)[i] = std::move(s); }
};

struct MultiSetOp {
  using Request = v1::MultiSetRequest;
  using Response = v1::MultiSetResponse;
  std::span<const SetItem> items;
  const CallOptions* call;
  std::vector<Result<WriteResult>>* out;

  std::string_view Key(size_t i) const { return items[i].key; }
  uint64_t Bytes(size_t i) const { return items[i].key.size() + items[i].value.size(); }
  RetryPolicy Policy(size_t i) const { return PolicyOf(items[i].options.mode); }
  void Prepare(Request* r) const { SetWriteConcern(r, *call); }
  void Add(Request* r, size_t i) const {
    FillSet(r->add_items(), items[i].key, items[i].value, items[i].options);
  }
  void Start(v1::Cache::StubInterface::async_interface* a, grpc::ClientContext* c,
             const Request* req, Response* resp, std::function<void(grpc::Status)> done) const {
    a->MultiSet(c, req, resp, std::move(done));
  }
  int Count(const Response& r) const { return r.results_size(); }
  Status ItemStatus(const Response& r, int j) const { return FromOp(r.results(j).status()); }
  void Accept(size_t i, Response& r, int j) const {
    (*out)[i] = WriteResult{r.results(j).version(), r.results(j).replicas_acked()};
  }
  void Fail(size_t i, Status s) const { (*out)[i] = std::move(s); }
};

struct MultiDeleteOp {
  using Request = v1::MultiDeleteRequest;
  using Response = v1::MultiDeleteResponse;
  std::span<const std::string_view> keys;
  const CallOptions* call;
  std::vector<Result<WriteResult>>* out;

  std::string_view Key(size_t i) const { return keys[i]; }
  uint64_t Bytes(size_t i) const { return keys[i].size(); }
  RetryPolicy Policy(size_t) const { return RetryPolicy::kIfNotApplied; }
  void Prepare(Request* r) const { SetWriteConcern(r, *call); }
  void Add(Request* r, size_t i) const { r->add_keys(keys[i].data(), keys[i].size()); }
  void Start(v1::Cache::StubInterface::async_interface* a, grpc::ClientContext* c,
             const Request* req, Response* resp, std::function<void(grpc::Status)> done) const {
    a->MultiDelete(c, req, resp, std::move(done));
  }
  int Count(const Response& r) const { return r.results_size(); }
  Status ItemStatus(const Response& r, int j) const { return FromOp(r.results(j)); }
  void Accept(size_t i, Response& r, int j) const {
    // replicas_acked is empty when write_concern is 0.
    const uint32_t acked = j < r.replicas_acked_size() ? r.replicas_acked(j) : 0;
    (*out)[i] = WriteResult{0, acked};
  }
  void Fail(size_t i, Status s) const { (*out)[i] = std::move(s); }
};

// Fills a vector of Results (which have no default constructor) with placeholders.
template <typename T>
std::vector<Result<T>> Placeholders(size_t n) {
  return std::vector<Result<T>>(n, Result<T>(Status::Internal("no result")));
}

}  // namespace

std::vector<Result<Item>> Client::MultiGet(std::span<const std::string_view> keys,
                                           const CallOptions& call) {
  std::vector<Result<Item>> out = Placeholders<Item>(keys.size());
  MultiGetOp op{keys, call.read_preference, &out};
  impl_->RunBatch(op, keys.size(), call.read_preference, call);
  return out;
}

std::vector<Result<WriteResult>> Client::MultiSet(std::span<const SetItem> items,
                                                  const CallOptions& call) {
  std::vector<Result<WriteResult>> out = Placeholders<WriteResult>(items.size());
  MultiSetOp op{items, &call, &out};
  impl_->RunBatch(op, items.size(), ReadPreference::kPrimary, call);
  if (impl_->near != nullptr) {
    for (const SetItem& item : items) impl_->near->Invalidate(item.key);
  }
  return out;
}

std::vector<Result<WriteResult>> Client::MultiDelete(std::span<const std::string_view> keys,
                                                     const CallOptions& call) {
  std::vector<Result<WriteResult>> out = Placeholders<WriteResult>(keys.size());
  MultiDeleteOp op{keys, &call, &out};
  impl_->RunBatch(op, keys.size(), ReadPreference::kPrimary, call);
  if (impl_->near != nullptr) {
    for (std::string_view key : keys) impl_->near->Invalidate(key);
  }
  return out;
}

Result<NodeStats> Client::Stats(std::string_view node, const CallOptions& call) {
  std::string address;
  const TablePtr table = impl_->Current();
  if (const ClusterMember* m = table->view().Find(node); m != nullptr) {
    address = m->address;
  } else if (node.find(':') != std::string_view::npos) {
    address = std::string(node);
  } else {
    return Status::NotFound("no member \"" + std::string(node) + "\" in the cluster view (epoch " +
                            std::to_string(table->epoch()) + ") and not a HOST:PORT address");
  }
  grpc::ClientContext context;
  impl_->PrepareContext(&context, impl_->DeadlineOf(call), table->epoch());
  v1::StatsResponse r;
  impl_->rpcs.fetch_add(1, std::memory_order_relaxed);
  const grpc::Status s = impl_->pool.Stub(address)->Stats(&context, v1::StatsRequest(), &r);
  if (!s.ok()) return FromGrpc(s, address);
  NodeStats out;
  out.node_id = r.node_id();
  out.server_version = r.server_version();
  out.uptime_ms = r.uptime_ms();
  out.cache = CacheStats{.hits = r.hits(),
                         .misses = r.misses(),
                         .sets = r.sets(),
                         .deletes = r.deletes(),
                         .evictions = r.evictions(),
                         .expirations = r.expirations(),
                         .items = r.items(),
                         .bytes_used = r.bytes_used(),
                         .capacity_bytes = r.capacity_bytes()};
  out.epoch = r.epoch();
  for (const v1::ReplicaLinkStats& l : r.replicas()) {
    out.replicas.push_back(ReplicaLinkStats{.replica_id = l.replica_id(),
                                            .address = l.address(),
                                            .state = l.state(),
                                            .lag_ops = l.lag_ops(),
                                            .lag_ms = l.lag_ms(),
                                            .last_seq = l.last_seq(),
                                            .acked_seq = l.acked_seq(),
                                            .backlog_bytes = l.backlog_bytes(),
                                            .resumes = l.resumes(),
                                            .full_syncs = l.full_syncs()});
  }
  return out;
}

Result<ClusterView> Client::Topology(const CallOptions& call) {
  if (Status s = impl_->RefreshSync("", impl_->DeadlineOf(call)); !s.ok()) return s;
  return view();
}

ClusterView Client::view() const { return impl_->Current()->view(); }
uint64_t Client::epoch() const { return impl_->CurrentEpoch(); }

std::vector<std::string> Client::Owners(std::string_view key) const {
  const TablePtr table = impl_->Current();
  std::vector<std::string> ids;
  for (uint32_t i : table->Owners(HashKey(key))) ids.push_back(table->id(i));
  return ids;
}

NearCacheStats Client::near_cache_stats() const {
  return impl_->near != nullptr ? impl_->near->stats() : NearCacheStats{};
}

ClientStats Client::stats() const {
  return ClientStats{.rpcs = impl_->rpcs.load(std::memory_order_relaxed),
                     .retries = impl_->retries.load(std::memory_order_relaxed),
                     .views_adopted = impl_->views_adopted.load(std::memory_order_relaxed),
                     .epoch_hints = impl_->epoch_hints.load(std::memory_order_relaxed),
                     .topology_fetches = impl_->topology_fetches.load(std::memory_order_relaxed)};
}

}  // namespace ringcache::client
