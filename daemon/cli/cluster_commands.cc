// ringcache-cli's node and cluster commands: stats, cluster status, cluster leave.
#include "cluster_commands.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "ringcache/cluster_view.h"
#include "ringcache/hash_ring.h"
#include "ringcache/proto/cluster_view.h"

namespace ringcache::cli {
namespace {

// "12.3%" of the whole hash space.
std::string Percent(double fraction) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", 100.0 * fraction);
  return buf;
}

// Prints `rows` as left-aligned columns two spaces apart (row 0 is the header).
void PrintTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], row[c].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      line += row[c];
      if (c + 1 < row.size()) line += std::string(widths[c] - row[c].size() + 2, ' ');
    }
    std::printf("%s\n", Printable(line).c_str());
  }
}

// The replication links of a Stats answer as table rows, after the header.
void AddLinkRows(const pb::StatsResponse& s, std::vector<std::vector<std::string>>* rows) {
  for (const pb::ReplicaLinkStats& link : s.replicas()) {
    rows->push_back({s.node_id(), link.replica_id(), link.state(), std::to_string(link.lag_ops()),
                     std::to_string(link.lag_ms()), std::to_string(link.acked_seq()),
                     std::to_string(link.last_seq()), HumanBytes(link.backlog_bytes()),
                     std::to_string(link.resumes()), std::to_string(link.full_syncs())});
  }
}

std::vector<std::string> LinkHeader() {
  return {"FROM",      "TO",       "STATE",   "LAG_OPS", "LAG_MS",
          "ACKED_SEQ", "LAST_SEQ", "BACKLOG", "RESUMES", "FULL_SYNCS"};
}

// 450123 -> "450,123".
std::string Thousands(uint64_t n) {
  std::string digits = std::to_string(n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

// MigrationProgress summed over the nodes of a view (each streams its own ranges).
void AddMigration(const pb::MigrationProgress& from, pb::MigrationProgress* to) {
  to->set_epoch(std::max(to->epoch(), from.epoch()));
  to->set_ranges_total(to->ranges_total() + from.ranges_total());
  to->set_ranges_done(to->ranges_done() + from.ranges_done());
  to->set_keys_sent(to->keys_sent() + from.keys_sent());
  to->set_bytes_sent(to->bytes_sent() + from.bytes_sent());
  to->set_keys_remaining(to->keys_remaining() + from.keys_remaining());
  to->set_bytes_remaining(to->bytes_remaining() + from.bytes_remaining());
  to->set_keys_received(to->keys_received() + from.keys_received());
  to->set_bytes_received(to->bytes_received() + from.bytes_received());
}

// "migration epoch 7: [#########-----------] 45% ranges 60/133, keys 450,123 sent
// (~550,000 left), 41.2 MiB sent".
std::string ProgressLine(uint64_t epoch, const pb::MigrationProgress& m) {
  constexpr int kWidth = 20;
  double fraction = 0;
  if (m.ranges_total() > 0) {
    fraction = static_cast<double>(m.ranges_done()) / static_cast<double>(m.ranges_total());
  }
  fraction = std::clamp(fraction, 0.0, 1.0);
  const int filled = static_cast<int>(fraction * kWidth);
  std::string line = "migration epoch " + std::to_string(epoch) + ": [" +
                     std::string(static_cast<size_t>(filled), '#') +
                     std::string(static_cast<size_t>(kWidth - filled), '-') + "] ";
  line += std::to_string(static_cast<int>(fraction * 100)) + "%";
  line += " ranges " + std::to_string(m.ranges_done()) + "/" + std::to_string(m.ranges_total()) +
          ", keys " + Thousands(m.keys_sent()) + " sent (~" + Thousands(m.keys_remaining()) +
          " left), " + HumanBytes(m.bytes_sent()) + " sent";
  return line;
}

// Stats of the node at `address`, on a channel of its own (with conn's token), with conn's
// deadline.
grpc::Status StatsOf(const Connection& conn, const std::string& address, pb::StatsResponse* out) {
  std::unique_ptr<pb::Cache::Stub> stub = pb::Cache::NewStub(NewChannel(address, conn.options()));
  grpc::ClientContext context;
  conn.Prepare(&context);
  return stub->Stats(&context, pb::StatsRequest(), out);
}

// The view held by the node at `address`.
grpc::Status TopologyOf(const Connection& conn, const std::string& address, pb::ClusterView* out) {
  std::unique_ptr<pb::Cache::Stub> stub = pb::Cache::NewStub(NewChannel(address, conn.options()));
  grpc::ClientContext context;
  conn.Prepare(&context);
  return stub->Topology(&context, pb::TopologyRequest(), out);
}

// "transition of epoch 7 has waited 37.2 s for TransitionReady from: n2 (ready: n1, n3)",
// from the coordinator's Stats (nullopt: it did not answer, or is at another epoch).
std::string TransitionLine(const ringcache::ClusterView& view,
                           const std::optional<pb::TransitionStatus>& t) {
  if (!t.has_value()) {
    return "transition of epoch " + std::to_string(view.epoch) +
           ": its coordinator did not report it (unreachable, or at another epoch)";
  }
  auto join = [](const google::protobuf::RepeatedPtrField<std::string>& ids) {
    std::string out;
    for (const std::string& id : ids) out += (out.empty() ? "" : ", ") + id;
    return out;
  };
  char secs[32];
  std::snprintf(secs, sizeof(secs), "%.1f", static_cast<double>(t->waiting_ms()) / 1000.0);
  std::string line =
      "transition of epoch " + std::to_string(t->epoch()) + " has waited " + secs + " s";
  if (t->pending().empty()) return line + "; every source reported ready";
  line += " for TransitionReady from: " + join(t->pending());
  if (!t->ready().empty()) line += " (ready: " + join(t->ready()) + ")";
  return line;
}

}  // namespace

// "serving", "fenced", "joining", "leaving" (NodeStateName); "-" if unknown.
std::string NodeStateText(pb::NodeState state) {
  switch (state) {
    case pb::NODE_STATE_SERVING:
      return "serving";
    case pb::NODE_STATE_FENCED:
      return "fenced";
    case pb::NODE_STATE_JOINING:
      return "joining";
    case pb::NODE_STATE_LEAVING:
      return "leaving";
    default:
      return "-";
  }
}

// `cluster status`: the view of the node at --addr, each member's share of the key space
// (from the ring every node builds from that view), and each member's own Stats: its
// epoch, items and replication links. Exit 3 if a member does not answer.
int CmdClusterStatus(Connection& conn) {
  pb::ClusterView proto;
  {
    grpc::ClientContext context;
    conn.Prepare(&context);
    const grpc::Status status = conn.cache().Topology(&context, pb::TopologyRequest(), &proto);
    if (!status.ok()) return conn.Report(status);
  }
  if (proto.epoch() == 0) {
    PrintError("UNAVAILABLE", conn.options().addr + " has no cluster view yet (it is joining)");
    return kExitError;
  }
  ringcache::Result<ringcache::ClusterView> parsed = ringcache::proto::FromProto(proto);
  if (!parsed.ok()) {
    PrintError("INTERNAL", "the view of " + conn.options().addr +
                               " is not valid: " + parsed.status().message());
    return kExitError;
  }
  const ringcache::ClusterView& view = *parsed;
  ringcache::Result<ringcache::HashRing> ring = view.BuildRing();
  if (!ring.ok()) {
    PrintError("INTERNAL", "the view of " + conn.options().addr +
                               " does not make a ring: " + ring.status().message());
    return kExitError;
  }
  // Shares per ring member: as primary, and as one of the first replication_factor owners.
  const std::vector<const ringcache::ClusterMember*> on_ring = view.ring_members();
  const std::vector<double> primary = ring->PrimaryShares();
  std::vector<double> owner(on_ring.size(), 0.0);
  constexpr double kRingSize = 18446744073709551616.0;  // 2^64
  for (const ringcache::HashRing::Arc& arc : ring->Arcs(view.replication_factor)) {
    const double share = static_cast<double>(arc.range.Size()) / kRingSize;
    for (const uint32_t m : arc.owners) owner[m] += share;
  }

  std::printf(
      "cluster view epoch %llu from %s: %zu members, replication factor %u, %u vnodes "
      "per weight\n\n",
      static_cast<unsigned long long>(view.epoch), conn.options().addr.c_str(), view.members.size(),
      view.replication_factor, view.vnodes_per_weight);
  std::vector<std::vector<std::string>> members = {{"ID", "ADDRESS", "STATE", "NODE_STATE",
                                                    "WEIGHT", "PRIMARY", "OWNER", "EPOCH", "ITEMS",
                                                    "UNDER_REPL", "STATUS"}};
  // Members with a cluster port of their own (--cluster-listen): where the others call them.
  const bool cluster_ports =
      std::any_of(view.members.begin(), view.members.end(),
                  [](const ringcache::ClusterMember& m) { return !m.cluster_address.empty(); });
  if (cluster_ports) members[0].insert(members[0].begin() + 2, "CLUSTER_ADDRESS");
  std::vector<std::vector<std::string>> links = {LinkHeader()};
  std::vector<std::string> unreachable;
  std::vector<std::string> failed;
  std::vector<std::string> details;  // "n3: fenced: ..." for the nodes not serving
  pb::MigrationProgress migration;
  std::optional<pb::TransitionStatus> transition;  // As its coordinator reports it.
  uint64_t under_replicated = 0;
  for (const ringcache::ClusterMember& m : view.members) {
    std::string primary_share = "-";
    std::string owner_share = "-";
    for (size_t i = 0; i < on_ring.size(); ++i) {
      if (on_ring[i]->id != m.id) continue;
      primary_share = Percent(primary[i]);
      owner_share = Percent(owner[i]);
    }
    // Each member's own Stats, on its own channel, with the same deadline as every call.
    pb::StatsResponse stats;
    const grpc::Status status = StatsOf(conn, m.address, &stats);
    const bool is_failed = m.state == ringcache::MemberState::kFailed;
    if (is_failed) failed.push_back(m.id);
    std::vector<std::string> row = {m.id,
                                    m.address,
                                    std::string(ringcache::MemberStateName(m.state)),
                                    status.ok() ? NodeStateText(stats.state()) : "-",
                                    std::to_string(m.weight),
                                    primary_share,
                                    owner_share};
    if (cluster_ports) row.insert(row.begin() + 2, m.peer_address());
    if (status.ok()) {
      row.push_back(std::to_string(stats.epoch()));
      row.push_back(std::to_string(stats.items()));
      row.push_back(std::to_string(stats.under_replicated_ranges()));
      row.emplace_back(stats.epoch() == view.epoch ? "ok" : "other epoch");
      AddLinkRows(stats, &links);
      under_replicated += stats.under_replicated_ranges();
      if (!is_failed) AddMigration(stats.migration(), &migration);
      if (stats.transition().coordinator() && stats.transition().epoch() == view.epoch) {
        transition = stats.transition();
      }
      if (stats.state() != pb::NODE_STATE_SERVING && !stats.state_detail().empty()) {
        details.push_back(m.id + ": " + NodeStateText(stats.state()) + ": " + stats.state_detail());
      }
    } else {
      // A failed member that does not answer is what failed means: not an error here.
      if (!is_failed) unreachable.push_back(m.id);
      row.emplace_back("-");
      row.emplace_back("-");
      row.emplace_back("-");
      row.push_back((is_failed ? "down: " : "unreachable: ") +
                    std::string(CodeName(status.error_code())) + ": " + status.error_message());
    }
    members.push_back(std::move(row));
  }
  PrintTable(members);
  std::printf("\n");
  for (const std::string& line : details) std::printf("%s\n", Printable(line).c_str());
  if (!failed.empty()) {
    std::string ids;
    for (const std::string& id : failed) ids += (ids.empty() ? "" : ", ") + id;
    std::printf(
        "failed members: %s (off the ring: their ranges are served by their replicas; a "
        "failed node rejoins empty when it comes back)\n",
        Printable(ids).c_str());
  }
  std::printf("under-replicated ranges: %llu\n", static_cast<unsigned long long>(under_replicated));
  if (view.in_transition()) {
    std::printf("%s\n", ProgressLine(view.epoch, migration).c_str());
    std::printf("%s\n", Printable(TransitionLine(view, transition)).c_str());
  }
  std::printf("\nreplication links (primary -> replica), as each primary reports them:\n");
  if (links.size() == 1) {
    std::printf("(none)\n");
  } else {
    PrintTable(links);
  }
  std::fflush(stdout);
  if (unreachable.empty()) return kExitOk;
  std::string ids;
  for (const std::string& id : unreachable) ids += (ids.empty() ? "" : ", ") + id;
  PrintError("UNAVAILABLE", std::to_string(unreachable.size()) + " of " +
                                std::to_string(view.members.size()) +
                                " members did not answer Stats: " + ids);
  return kExitError;
}

// `cluster leave`: asks the node at --addr to leave the cluster (Membership.Leave with its
// id, read from its Stats first), then, unless `no_wait`, follows the drain on the other
// members (Topology and Stats, since the leaving node exits at the end) with a progress
// line — redrawn in place on a terminal, one line per second otherwise — until the node is
// out of the view. Exit 0 once it left; 1 if the node refused (FAILED_PRECONDITION: the
// only member, not serving); 3 if it cannot be reached, no other member answers for
// kLeavePollGiveUp, the node is declared failed before it left, or the transition shows
// no progress for kLeaveStallGiveUp.
int CmdClusterLeave(Connection& conn, bool no_wait, const std::string& secret_file) {
  constexpr auto kLeavePollGiveUp = std::chrono::seconds(30);
  // A transition that shows no progress at all (same epoch, nothing more sent or done)
  // for this long is stuck (e.g. a voter that never reports, a fenced coordinator).
  constexpr auto kLeaveStallGiveUp = std::chrono::seconds(120);
  pb::StatsResponse self;
  {
    grpc::ClientContext context;
    conn.Prepare(&context);
    const grpc::Status status = conn.cache().Stats(&context, pb::StatsRequest(), &self);
    if (!status.ok()) return conn.Report(status);
  }
  const std::string id = self.node_id();
  // Leave is a cluster-plane rpc: a node with a cluster secret wants it (docs/security.md).
  std::string secret;
  if (!secret_file.empty()) {
    if (!ReadFile(secret_file, &secret)) {
      return UsageError("--cluster-secret-file: cannot read " + secret_file);
    }
    while (!secret.empty() && std::isspace(static_cast<unsigned char>(secret.back()))) {
      secret.pop_back();
    }
  }
  pb::LeaveRequest request;
  request.set_node_id(id);
  pb::LeaveResponse response;
  {
    grpc::ClientContext context;
    conn.Prepare(&context);
    if (!secret.empty()) context.AddMetadata("ringcache-cluster-secret", secret);
    const grpc::Status status = conn.membership().Leave(&context, request, &response);
    if (!status.ok()) return conn.Report(status, "node " + Printable(id) + " cannot leave");
  }
  std::printf("node %s is leaving the cluster (epoch %llu)\n", Printable(id).c_str(),
              static_cast<unsigned long long>(response.view().epoch()));
  if (no_wait) {
    std::printf("follow it with: ringcache-cli --addr <another member> cluster status\n");
    return kExitOk;
  }
  std::fflush(stdout);

  const bool tty = isatty(STDOUT_FILENO) != 0;
  const auto interval = tty ? std::chrono::milliseconds(200) : std::chrono::milliseconds(1000);
  pb::ClusterView view = response.view();
  auto last_answer = std::chrono::steady_clock::now();
  auto last_progress = last_answer;
  std::tuple<uint64_t, uint64_t, uint64_t, uint64_t> progress_mark{0, 0, 0, 0};
  bool drew = false;
  for (;;) {
    std::this_thread::sleep_for(interval);
    // The newest view any other live member holds (the leaving node exits at the end).
    bool answered = false;
    const pb::ClusterView asked = view;  // `view` may be replaced in the loop.
    for (const pb::Member& m : asked.members()) {
      if (m.id() == id || m.state() == pb::MEMBER_STATE_FAILED) continue;
      pb::ClusterView current;
      if (!TopologyOf(conn, m.address(), &current).ok() || current.epoch() == 0) continue;
      answered = true;
      if (current.epoch() > view.epoch()) view = std::move(current);
      break;
    }
    const auto now = std::chrono::steady_clock::now();
    if (!answered) {
      if (now - last_answer > kLeavePollGiveUp) {
        if (drew && tty) std::printf("\n");
        const std::string message =
            "no other member of the cluster answered Topology for 30 s; "
            "the leave of node " +
            Printable(id) + " may still be in progress (check cluster status)";
        PrintError("UNAVAILABLE", message);
        return kExitError;
      }
      continue;
    }
    last_answer = now;
    const pb::Member* leaving = nullptr;
    for (const pb::Member& m : view.members()) {
      if (m.id() == id) leaving = &m;
    }
    if (leaving == nullptr) break;
    if (leaving->state() == pb::MEMBER_STATE_FAILED) {
      if (drew && tty) std::printf("\n");
      PrintError("UNAVAILABLE", "node " + Printable(id) + " was declared failed in epoch " +
                                    std::to_string(view.epoch()) +
                                    " before it finished leaving; its ranges failed over to "
                                    "their replicas");
      return kExitError;
    }
    // Progress: every live member's share of the transition, summed.
    pb::MigrationProgress sum;
    for (const pb::Member& m : view.members()) {
      if (m.state() == pb::MEMBER_STATE_FAILED) continue;
      pb::StatsResponse stats;
      if (StatsOf(conn, m.address(), &stats).ok()) AddMigration(stats.migration(), &sum);
    }
    const std::tuple<uint64_t, uint64_t, uint64_t, uint64_t> mark{
        view.epoch(), sum.ranges_done(), sum.keys_sent(), sum.keys_received()};
    if (mark != progress_mark) {
      progress_mark = mark;
      last_progress = now;
    } else if (now - last_progress > kLeaveStallGiveUp) {
      if (drew && tty) std::printf("\n");
      PrintError("UNAVAILABLE", "the leave of node " + Printable(id) +
                                    " made no progress for 120 s (epoch " +
                                    std::to_string(view.epoch()) +
                                    "); check cluster status and the nodes' logs (a member may be "
                                    "unreachable or fenced)");
      return kExitError;
    }
    const std::string line = ProgressLine(view.epoch(), sum);
    if (tty) {
      std::printf("\r%s\x1b[K", line.c_str());
    } else {
      std::printf("%s\n", line.c_str());
    }
    drew = true;
    std::fflush(stdout);
  }
  if (drew && tty) std::printf("\n");
  std::printf("node %s left the cluster (epoch %llu)\n", Printable(id).c_str(),
              static_cast<unsigned long long>(view.epoch()));
  std::fflush(stdout);
  return kExitOk;
}

int CmdStats(Connection& conn) {
  pb::StatsResponse s;
  grpc::ClientContext context;
  conn.Prepare(&context);
  const grpc::Status status = conn.cache().Stats(&context, pb::StatsRequest(), &s);
  if (!status.ok()) return conn.Report(status);

  auto count = [](uint64_t v) { return std::to_string(v); };
  const uint64_t lookups = s.hits() + s.misses();
  char ratio[32] = "-";
  if (lookups > 0) {
    std::snprintf(ratio, sizeof ratio, "%.1f%%",
                  100.0 * static_cast<double>(s.hits()) / static_cast<double>(lookups));
  }
  char used[32] = "-";
  if (s.capacity_bytes() > 0) {
    std::snprintf(
        used, sizeof used, "%.1f%%",
        100.0 * static_cast<double>(s.bytes_used()) / static_cast<double>(s.capacity_bytes()));
  }
  const std::vector<std::pair<std::string, std::string>> rows = {
      {"node", s.node_id()},
      {"address", conn.options().addr},
      {"version", s.server_version()},
      {"uptime", HumanDuration(s.uptime_ms()) + " (" + count(s.uptime_ms()) + " ms)"},
      {"items", count(s.items())},
      {"bytes used", HumanBytes(s.bytes_used()) + " (" + count(s.bytes_used()) + ")"},
      {"capacity", HumanBytes(s.capacity_bytes()) + " (" + count(s.capacity_bytes()) + ")"},
      {"memory used", used},
      {"hits", count(s.hits())},
      {"misses", count(s.misses())},
      {"hit ratio", ratio},
      {"sets", count(s.sets())},
      {"deletes", count(s.deletes())},
      {"evictions", count(s.evictions())},
      {"expirations", count(s.expirations())},
      {"epoch", count(s.epoch())},
      {"replicas", count(static_cast<uint64_t>(s.replicas_size()))},
  };
  size_t width = 0;
  for (const auto& row : rows) width = std::max(width, row.first.size());
  for (const auto& [name, value] : rows) {
    std::printf("%-*s  %s\n", static_cast<int>(width), name.c_str(), Printable(value).c_str());
  }
  if (s.replicas_size() > 0) {
    std::vector<std::vector<std::string>> links = {LinkHeader()};
    AddLinkRows(s, &links);
    std::printf("\n");
    PrintTable(links);
  }
  return kExitOk;
}

int CmdSnapshot(Connection& conn) {
  grpc::ClientContext context;
  conn.Prepare(&context);
  // A snapshot of a large cache takes a while: it is bounded by the node, not by --timeout.
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::hours(1));
  pb::SnapshotResponse response;
  const grpc::Status status = conn.cache().Snapshot(&context, pb::SnapshotRequest(), &response);
  if (!status.ok()) return conn.Report(status, "snapshot");
  std::printf("snapshot of %llu keys, %llu bytes, written in %llu ms to %s\n",
              static_cast<unsigned long long>(response.keys()),
              static_cast<unsigned long long>(response.bytes()),
              static_cast<unsigned long long>(response.duration_ms()),
              Printable(response.path()).c_str());
  return std::fflush(stdout) == 0 ? kExitOk : kExitError;
}

}  // namespace ringcache::cli
