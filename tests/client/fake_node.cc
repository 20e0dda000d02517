#include "fake_node.h"

#include <chrono>
#include <stdexcept>

namespace ringcache::client_test {
namespace {

grpc::Status NotFound() { return grpc::Status(grpc::StatusCode::NOT_FOUND, "key not found"); }

void ToOp(const grpc::Status& s, v1::OpStatus* out) {
  out->set_code(static_cast<int>(s.error_code()));
  out->set_message(s.error_message());
}

}  // namespace

FakeNode::FakeNode(std::string id) : id_(std::move(id)) {
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(this);
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port == 0) throw std::runtime_error("FakeNode: cannot listen");
  address_ = "127.0.0.1:" + std::to_string(port);
}

FakeNode::~FakeNode() { Stop(); }

void FakeNode::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  view_changed_.notify_all();
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  server_->Wait();
}

ClusterView FakeNode::ViewOf(uint64_t epoch, const std::vector<const FakeNode*>& nodes,
                             uint32_t replication_factor) {
  ClusterView view;
  view.epoch = epoch;
  view.replication_factor = replication_factor;
  for (const FakeNode* n : nodes) view.members.push_back({n->id(), n->address()});
  view.Normalize();
  return view;
}

void FakeNode::SetView(const ClusterView& view) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    view_.Clear();
    view_.set_epoch(view.epoch);
    view_.set_replication_factor(view.replication_factor);
    view_.set_vnodes_per_weight(view.vnodes_per_weight);
    for (const ClusterMember& m : view.members) {
      v1::Member* pm = view_.add_members();
      pm->set_id(m.id);
      pm->set_address(m.address);
      pm->set_weight(m.weight);
      pm->set_state(static_cast<v1::MemberState>(m.state));
    }
  }
  view_changed_.notify_all();
}

void FakeNode::SetEpochHint(uint64_t epoch) {
  std::lock_guard<std::mutex> lock(mu_);
  epoch_hint_ = epoch;
}

void FakeNode::FailNext(const std::string& method, grpc::Status status) {
  std::lock_guard<std::mutex> lock(mu_);
  failures_[method].push_back(std::move(status));
}

std::vector<std::string> FakeNode::Received(const std::string& method) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = received_.find(method);
  return it == received_.end() ? std::vector<std::string>{} : it->second;
}

int FakeNode::Calls(const std::string& method) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = calls_.find(method);
  return it == calls_.end() ? 0 : it->second;
}

std::string FakeNode::LastEpochHeader() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_epoch_header_;
}

int FakeNode::Watchers() const {
  std::lock_guard<std::mutex> lock(mu_);
  return watchers_;
}

grpc::Status FakeNode::Enter(grpc::ServerContext* context, const std::string& method,
                             const std::vector<std::string>& keys) {
  std::lock_guard<std::mutex> lock(mu_);
  ++calls_[method];
  auto& got = received_[method];
  got.insert(got.end(), keys.begin(), keys.end());
  const auto& metadata = context->client_metadata();
  if (auto it = metadata.find("ringcache-epoch"); it != metadata.end()) {
    last_epoch_header_.assign(it->second.data(), it->second.size());
  }
  if (epoch_hint_ != 0)
    context->AddTrailingMetadata("ringcache-epoch", std::to_string(epoch_hint_));
  auto& queue = failures_[method];
  if (queue.empty()) return grpc::Status::OK;
  grpc::Status s = queue.front();
  queue.pop_front();
  return s;
}

grpc::Status FakeNode::Get(grpc::ServerContext* c, const v1::GetRequest* req,
                           v1::GetResponse* resp) {
  if (grpc::Status s = Enter(c, "Get", {req->key()}); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = store_.find(req->key());
  if (it == store_.end()) return NotFound();
  resp->set_value(it->second.value);
  resp->set_version(it->second.version);
  return grpc::Status::OK;
}

grpc::Status FakeNode::Set(grpc::ServerContext* c, const v1::SetRequest* req,
                           v1::SetResponse* resp) {
  if (grpc::Status s = Enter(c, "Set", {req->key()}); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  const bool present = store_.count(req->key()) != 0;
  if (req->mode() == v1::SET_MODE_IF_ABSENT && present) {
    return grpc::Status(grpc::StatusCode::ALREADY_EXISTS, "key already exists");
  }
  Stored& e = store_[req->key()];
  e.value = req->value();
  e.version = next_version_++;
  resp->set_version(e.version);
  resp->set_replicas_acked(req->write_concern());
  return grpc::Status::OK;
}

grpc::Status FakeNode::Delete(grpc::ServerContext* c, const v1::DeleteRequest* req,
                              v1::DeleteResponse*) {
  if (grpc::Status s = Enter(c, "Delete", {req->key()}); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  return store_.erase(req->key()) != 0 ? grpc::Status::OK : NotFound();
}

grpc::Status FakeNode::Touch(grpc::ServerContext* c, const v1::TouchRequest* req,
                             v1::TouchResponse*) {
  if (grpc::Status s = Enter(c, "Touch", {req->key()}); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  return store_.count(req->key()) != 0 ? grpc::Status::OK : NotFound();
}

grpc::Status FakeNode::Ttl(grpc::ServerContext* c, const v1::TtlRequest* req,
                           v1::TtlResponse* resp) {
  if (grpc::Status s = Enter(c, "Ttl", {req->key()}); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  if (store_.count(req->key()) == 0) return NotFound();
  resp->set_ttl_ms(0);
  return grpc::Status::OK;
}

grpc::Status FakeNode::Incr(grpc::ServerContext* c, const v1::IncrRequest* req,
                            v1::IncrResponse* resp) {
  if (grpc::Status s = Enter(c, "Incr", {req->key()}); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  Stored& e = store_[req->key()];
  const int64_t next = (e.value.empty() ? 0 : std::stoll(e.value)) + req->delta();
  e.value = std::to_string(next);
  e.version = next_version_++;
  resp->set_value(next);
  resp->set_version(e.version);
  return grpc::Status::OK;
}

grpc::Status FakeNode::MultiGet(grpc::ServerContext* c, const v1::MultiGetRequest* req,
                                v1::MultiGetResponse* resp) {
  if (grpc::Status s = Enter(c, "MultiGet", {req->keys().begin(), req->keys().end()}); !s.ok()) {
    return s;
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (const std::string& key : req->keys()) {
    v1::GetResult* r = resp->add_results();
    auto it = store_.find(key);
    if (it == store_.end()) {
      ToOp(NotFound(), r->mutable_status());
    } else {
      r->set_value(it->second.value);
      r->set_version(it->second.version);
    }
  }
  return grpc::Status::OK;
}

grpc::Status FakeNode::MultiSet(grpc::ServerContext* c, const v1::MultiSetRequest* req,
                                v1::MultiSetResponse* resp) {
  std::vector<std::string> keys;
  for (const v1::SetRequest& item : req->items()) keys.push_back(item.key());
  if (grpc::Status s = Enter(c, "MultiSet", keys); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  for (const v1::SetRequest& item : req->items()) {
    Stored& e = store_[item.key()];
    e.value = item.value();
    e.version = next_version_++;
    resp->add_results()->set_version(e.version);
  }
  return grpc::Status::OK;
}

grpc::Status FakeNode::MultiDelete(grpc::ServerContext* c, const v1::MultiDeleteRequest* req,
                                   v1::MultiDeleteResponse* resp) {
  if (grpc::Status s = Enter(c, "MultiDelete", {req->keys().begin(), req->keys().end()}); !s.ok()) {
    return s;
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (const std::string& key : req->keys()) {
    ToOp(store_.erase(key) != 0 ? grpc::Status::OK : NotFound(), resp->add_results());
  }
  return grpc::Status::OK;
}

grpc::Status FakeNode::Stats(grpc::ServerContext* c, const v1::StatsRequest*,
                             v1::StatsResponse* resp) {
  if (grpc::Status s = Enter(c, "Stats", {}); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  resp->set_node_id(id_);
  resp->set_items(store_.size());
  resp->set_epoch(view_.epoch());
  return grpc::Status::OK;
}

grpc::Status FakeNode::Topology(grpc::ServerContext* c, const v1::TopologyRequest*,
                                v1::ClusterView* resp) {
  if (grpc::Status s = Enter(c, "Topology", {}); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  *resp = view_;
  return grpc::Status::OK;
}

grpc::Status FakeNode::WatchTopology(grpc::ServerContext* c, const v1::TopologyRequest*,
                                     grpc::ServerWriter<v1::ClusterView>* writer) {
  if (grpc::Status s = Enter(c, "WatchTopology", {}); !s.ok()) return s;
  std::unique_lock<std::mutex> lock(mu_);
  ++watchers_;
  uint64_t sent = 0;
  grpc::Status result = grpc::Status::OK;
  // Bounded waits: a sync handler cannot be woken by cancellation, so it polls for it.
  while (!stopping_ && !c->IsCancelled()) {
    if (view_.epoch() > sent) {
      const v1::ClusterView view = view_;
      sent = view.epoch();
      lock.unlock();
      const bool ok = writer->Write(view);
      lock.lock();
      if (!ok) break;
    }
    view_changed_.wait_for(lock, std::chrono::milliseconds(20));
  }
  if (stopping_) result = grpc::Status(grpc::StatusCode::UNAVAILABLE, "fake node stopping");
  --watchers_;
  return result;
}

}  // namespace ringcache::client_test
