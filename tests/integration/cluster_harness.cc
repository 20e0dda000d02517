#include "cluster_harness.h"

#include <signal.h>

#include <algorithm>
#include <sstream>
#include <thread>
#include <utility>

#include <catch2/catch.hpp>

#include "ringcache/v1/cluster.grpc.pb.h"

namespace ringcache::it {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kPollInterval = std::chrono::milliseconds(20);
// Deadline of each Topology poll: short, so that one stuck node does not eat the budget.
constexpr auto kPollRpcTimeout = std::chrono::milliseconds(1000);

std::string Join(const std::vector<std::string>& parts, const char* sep) {
  std::string out;
  for (const std::string& p : parts) {
    if (!out.empty()) out += sep;
    out += p;
  }
  return out;
}

// True if `args` holds --name or --name=...
bool HasFlag(const std::vector<std::string>& args, const std::string& name) {
  return std::any_of(args.begin(), args.end(), [&](const std::string& a) {
    return a == name || a.rfind(name + "=", 0) == 0;
  });
}

std::string Describe(const v1::ClusterView& view) {
  std::ostringstream out;
  out << "epoch " << view.epoch() << " [";
  for (int i = 0; i < view.members_size(); ++i) {
    const v1::Member& m = view.members(i);
    out << (i == 0 ? "" : ", ") << m.id() << "@" << m.address() << "/"
        << v1::MemberState_Name(m.state());
  }
  out << "]";
  return out.str();
}

}  // namespace

TestCluster::TestCluster(ClusterOptions options) : options_(std::move(options)) {}

TestCluster::~TestCluster() {
  for (auto& node : nodes_) node->Kill();
}

std::vector<std::string> TestCluster::NodeArgs(size_t i, const std::vector<std::string>& seeds,
                                               const std::string& listen,
                                               const std::vector<std::string>& extra) const {
  std::vector<std::string> given = options_.extra_args;
  given.insert(given.end(), extra.begin(), extra.end());
  for (std::string& arg : given) {  // "{id}" stands for the node's id.
    for (size_t at = arg.find("{id}"); at != std::string::npos; at = arg.find("{id}", at)) {
      arg.replace(at, 4, IdOf(i));
    }
  }
  // The join timeout stays under the ready timeout, so a node that cannot join exits with
  // its own message rather than being killed by the harness.
  const auto join_timeout = std::max<int64_t>(1000, options_.ready_timeout.count() - 2000);
  std::vector<std::pair<std::string, std::string>> defaults = {
      {"--node-id", IdOf(i)},
      {"--replication-factor", std::to_string(options_.replication_factor)},
      {"--join-timeout-ms", std::to_string(join_timeout)},
      {"--log-level", "info"}};
  if (!seeds.empty()) defaults.emplace_back("--seeds", Join(seeds, ","));
  if (options_.cluster_port) defaults.emplace_back("--cluster-listen", "127.0.0.1:0");
  if (!listen.empty()) defaults.emplace_back("--listen", listen);
  std::vector<std::string> args;
  // ringcached refuses a repeated flag: the test's own flags replace the harness's.
  for (const auto& [flag, value] : defaults) {
    if (!HasFlag(given, flag)) args.insert(args.end(), {flag, value});
  }
  args.insert(args.end(), given.begin(), given.end());
  return args;
}

std::vector<std::string> TestCluster::SeedsExcept(size_t except) const {
  std::vector<std::string> seeds;
  for (size_t j = 0; j < nodes_.size(); ++j) {
    if (j != except && nodes_[j]->Running()) seeds.push_back(nodes_[j]->PeerAddress());
  }
  return seeds;
}

bool TestCluster::StartNode(size_t i) {
  nodes_.at(i)->StartNoWait();
  return FinishAddNode(i);
}

bool TestCluster::Start() {
  if (!nodes_.empty()) {
    error_ = "TestCluster::Start: already started";
    return false;
  }
  const size_t n = static_cast<size_t>(std::max(1, options_.nodes));
  for (size_t i = 0; i < n; ++i) {
    std::vector<std::string> seeds;
    if (i > 0) seeds.push_back(nodes_[0]->PeerAddress());
    nodes_.push_back(MakeNode(NodeArgs(i, seeds, "", {})));
    node_extra_args_.emplace_back();
    departed_.push_back(false);
    if (!StartNode(i)) return false;
    // One join at a time, each complete (SERVING): the epochs are then 1, 3, 5, ...
    if (!WaitConverged()) return false;
  }
  return true;
}

bool TestCluster::AddNode(const std::vector<std::string>& extra_args) {
  return AddNodeNoWait(extra_args) && WaitConverged();
}

bool TestCluster::AddNodeNoWait(const std::vector<std::string>& extra_args) {
  return FinishAddNode(SpawnNode(extra_args));
}

size_t TestCluster::SpawnNode(const std::vector<std::string>& extra_args) {
  const size_t i = nodes_.size();
  std::vector<std::string> seeds = SeedsExcept(i);
  nodes_.push_back(MakeNode(NodeArgs(i, seeds, "", extra_args)));
  node_extra_args_.push_back(extra_args);
  departed_.push_back(false);
  nodes_[i]->StartNoWait();
  return i;
}

bool TestCluster::FinishAddNode(size_t i) {
  if (!nodes_.at(i)->FinishStart(options_.ready_timeout)) {
    error_ = IdOf(i) + " did not start: " + nodes_[i]->Error();
    return false;
  }
  return true;
}

void TestCluster::Kill(size_t i) { nodes_.at(i)->Kill(); }

bool TestCluster::Restart(size_t i, bool same_port) { return Restart(i, same_port, {}); }

bool TestCluster::Restart(size_t i, bool same_port, const std::vector<std::string>& first_seeds) {
  NodeProcess& old = *nodes_.at(i);
  old.Kill();
  const std::string listen = same_port ? old.GrpcAddress() : "";
  std::vector<std::string> seeds = first_seeds;
  for (const std::string& s : SeedsExcept(i)) seeds.push_back(s);
  // A new NodeProcess (new log dir): the seeds differ from the first start's. The old
  // one's logs stay registered and are printed too if the test fails.
  nodes_[i] = MakeNode(NodeArgs(i, seeds, listen, node_extra_args_[i]));
  if (!StartNode(i)) return false;
  return WaitConverged();
}

bool TestCluster::Leave(size_t i, std::chrono::milliseconds timeout) {
  NodeProcess& node = *nodes_.at(i);
  auto stub = v1::Membership::NewStub(node.NewChannel());
  grpc::ClientContext ctx;
  SetDeadline(ctx, std::chrono::milliseconds(5000));
  v1::LeaveRequest request;
  request.set_node_id(IdOf(i));
  v1::LeaveResponse response;
  const grpc::Status status = stub->Leave(&ctx, request, &response);
  if (!status.ok()) {
    error_ = "Leave(" + IdOf(i) + ") failed: " + status.error_message();
    return false;
  }
  const std::optional<ExitStatus> exit = node.WaitExit(timeout);
  if (!exit) {
    error_ = IdOf(i) + " still running " + std::to_string(timeout.count()) +
             " ms after its leave was accepted (in the view of epoch " +
             std::to_string(response.view().epoch()) + ")";
    return false;
  }
  if (!(*exit == ExitStatus::Code(0))) {
    error_ = IdOf(i) + " exited after its leave: " + exit->ToString();
    return false;
  }
  departed_[i] = true;
  return WaitConverged();
}

bool TestCluster::Stop(std::chrono::milliseconds timeout) {
  for (auto& node : nodes_) node->Signal(SIGTERM);
  bool all_ok = true;
  std::vector<std::string> problems;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    if (!nodes_[i]->Running()) continue;
    std::optional<ExitStatus> exit = nodes_[i]->WaitExit(timeout);
    if (!exit) {
      problems.push_back(IdOf(i) + " still running after SIGTERM");
      nodes_[i]->Kill();
      all_ok = false;
    } else if (!(*exit == ExitStatus::Code(0))) {
      problems.push_back(IdOf(i) + ": " + exit->ToString());
      all_ok = false;
    }
  }
  if (!all_ok) error_ = "Stop: " + Join(problems, "; ");
  return all_ok;
}

std::unique_ptr<NodeProcess> TestCluster::MakeNode(std::vector<std::string> args) const {
  auto node = std::make_unique<NodeProcess>(std::move(args));
  node->set_credentials(options_.credentials);
  return node;
}

std::optional<v1::ClusterView> TestCluster::Topology(size_t i) const {
  if (!nodes_.at(i)->Running()) return std::nullopt;
  auto stub = nodes_[i]->NewStub();
  grpc::ClientContext ctx;
  SetDeadline(ctx, kPollRpcTimeout);
  if (!options_.token.empty()) ctx.AddMetadata("authorization", "Bearer " + options_.token);
  v1::ClusterView view;
  if (!stub->Topology(&ctx, v1::TopologyRequest{}, &view).ok()) return std::nullopt;
  return view;
}

std::vector<std::string> TestCluster::addresses() const { return SeedsExcept(nodes_.size()); }

bool TestCluster::WaitConverged(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  // One stub per node for the whole wait (a channel connects once).
  std::vector<std::unique_ptr<v1::Cache::Stub>> stubs;
  for (auto& node : nodes_) stubs.push_back(node->Running() ? node->NewStub() : nullptr);

  std::vector<std::string> last;  // What each node said in the last round.
  while (true) {
    last.clear();
    bool agreed = true;
    std::optional<uint64_t> epoch;
    for (size_t i = 0; i < nodes_.size(); ++i) {
      if (stubs[i] == nullptr) continue;
      grpc::ClientContext ctx;
      SetDeadline(ctx, kPollRpcTimeout);
      if (!options_.token.empty()) ctx.AddMetadata("authorization", "Bearer " + options_.token);
      v1::ClusterView view;
      const grpc::Status status = stubs[i]->Topology(&ctx, v1::TopologyRequest{}, &view);
      if (!status.ok()) {
        last.push_back(IdOf(i) + ": Topology failed: " + status.error_message());
        agreed = false;
        continue;
      }
      last.push_back(IdOf(i) + ": " + Describe(view));
      if (epoch && *epoch != view.epoch()) agreed = false;
      epoch = view.epoch();
      // Exactly the harness's nodes but those that left, running ones at their current
      // address and SERVING, no transition in progress.
      const auto expected = static_cast<int>(std::count(departed_.begin(), departed_.end(), false));
      if (view.members_size() != expected) {
        agreed = false;
        continue;
      }
      for (size_t j = 0; j < nodes_.size(); ++j) {
        if (departed_[j]) continue;
        const auto m =
            std::find_if(view.members().begin(), view.members().end(),
                         [&](const v1::Member& member) { return member.id() == IdOf(j); });
        if (m == view.members().end()) {
          agreed = false;
        } else if (nodes_[j]->Running()) {
          if (nodes_[j]->GrpcAddress() != m->address() || m->state() != v1::MEMBER_STATE_SERVING) {
            agreed = false;
          }
        } else if (m->state() != v1::MEMBER_STATE_SERVING &&
                   m->state() != v1::MEMBER_STATE_FAILED) {
          agreed = false;
        }
      }
    }
    if (agreed && epoch) {
      epoch_ = *epoch;
      return true;
    }
    if (Clock::now() >= deadline) {
      error_ = "the nodes did not agree on a view with " + std::to_string(nodes_.size()) +
               " members (every running one SERVING) within " + std::to_string(timeout.count()) +
               " ms:\n  " + Join(last, "\n  ");
      return false;
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

void RequireStart(TestCluster& cluster) {
  if (!cluster.Start()) FAIL("cluster did not start: " << cluster.Error());
}

}  // namespace ringcache::it
