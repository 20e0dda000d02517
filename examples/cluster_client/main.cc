// cluster_client_example: use a ringcache cluster through ringcache::client, the smart
// C++ client that sends each key straight to the node that owns it.
//
//   ringcached --node-id n1 --listen 127.0.0.1:7701 &
//   ringcached --node-id n2 --listen 127.0.0.1:7702 --seeds 127.0.0.1:7701 &
//   ringcached --node-id n3 --listen 127.0.0.1:7703 --seeds 127.0.0.1:7701 &
//   cluster_client_example --seeds 127.0.0.1:7701,127.0.0.1:7702
//
// Shows: connecting through seeds, the cluster view and where keys live, Set with a TTL
// and a write concern, Get (from the primary and from any owner), Incr, a batch spread
// over every node, and each node's Stats. Exits 1 if any step fails.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ringcache/client/client.h"

namespace {

using ringcache::client::CallOptions;
using ringcache::client::Client;

std::vector<std::string> Split(std::string_view s, char sep) {
  std::vector<std::string> out;
  while (!s.empty()) {
    const size_t at = s.find(sep);
    out.emplace_back(s.substr(0, at));
    if (at == std::string_view::npos) break;
    s.remove_prefix(at + 1);
  }
  return out;
}

bool Check(const ringcache::Status& status, const char* what) {
  if (status.ok()) return true;
  std::fprintf(stderr, "%s failed: %s\n", what, status.ToString().c_str());
  return false;
}

bool Run(Client& client) {
  // The view the client routes by: the same ring as the nodes build.
  const ringcache::ClusterView view = client.view();
  std::printf("cluster view epoch %llu, replication factor %u:\n",
              static_cast<unsigned long long>(view.epoch), view.replication_factor);
  for (const ringcache::ClusterMember& m : view.members) {
    std::printf("  %s at %s (%s, weight %u)\n", m.id.c_str(), m.address.c_str(),
                std::string(ringcache::MemberStateName(m.state)).c_str(), m.weight);
  }

  // A write that also waits for one replica, when the cluster keeps replicas.
  const CallOptions durable{.write_concern = view.replication_factor > 1 ? 1u : 0u};
  auto written = client.Set("user:42", "Ada", {.ttl_ms = 60'000}, durable);
  if (!Check(written.status(), "Set")) return false;
  std::printf("Set user:42 -> version %llu, %u replica(s) acked; owners:",
              static_cast<unsigned long long>(written->version), written->replicas_acked);
  for (const std::string& id : client.Owners("user:42")) std::printf(" %s", id.c_str());
  std::printf("\n");

  auto item = client.Get("user:42");
  if (!Check(item.status(), "Get")) return false;
  std::printf("Get user:42 -> \"%s\" (version %llu, expires at %lld)\n", item->value.c_str(),
              static_cast<unsigned long long>(item->meta.version),
              static_cast<long long>(item->meta.deadline_ms));

  // Any owner may answer (a replica may lag; with the write concern above it does not).
  auto nearby =
      client.Get("user:42", {.read_preference = ringcache::client::ReadPreference::kAnyOwner});
  if (!Check(nearby.status(), "Get (any owner)")) return false;

  auto visits = client.Incr("visits", 1);
  if (!Check(visits.status(), "Incr")) return false;
  std::printf("Incr visits -> %lld\n", static_cast<long long>(visits->value));

  // A batch: split per node by the client, the parts sent in parallel.
  std::vector<std::string> keys;
  for (int i = 0; i < 30; ++i) keys.push_back("item:" + std::to_string(i));
  std::vector<ringcache::SetItem> items;
  for (const std::string& key : keys) items.push_back({.key = key, .value = "v", .options = {}});
  for (const auto& r : client.MultiSet(items)) {
    if (!Check(r.status(), "MultiSet")) return false;
  }
  const std::vector<std::string_view> key_views(keys.begin(), keys.end());
  std::map<std::string, int> per_primary;
  for (const std::string& key : keys) ++per_primary[client.Owners(key)[0]];
  int found = 0;
  for (const auto& r : client.MultiGet(key_views)) found += r.ok() ? 1 : 0;
  std::printf("MultiGet of %zu keys -> %d found; primaries:", keys.size(), found);
  for (const auto& [id, n] : per_primary) std::printf(" %s=%d", id.c_str(), n);
  std::printf("\n");
  if (found != static_cast<int>(keys.size())) return false;

  for (const ringcache::ClusterMember& m : view.members) {
    auto stats = client.Stats(m.id);
    if (!Check(stats.status(), "Stats")) return false;
    std::printf("node %s: %llu items, epoch %llu, %zu replication link(s)\n",
                stats->node_id.c_str(), static_cast<unsigned long long>(stats->cache.items),
                static_cast<unsigned long long>(stats->epoch), stats->replicas.size());
  }
  const ringcache::client::ClientStats cs = client.stats();
  std::printf("client: %llu rpcs, %llu retries, %llu view(s) adopted\n",
              static_cast<unsigned long long>(cs.rpcs), static_cast<unsigned long long>(cs.retries),
              static_cast<unsigned long long>(cs.views_adopted));
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string seeds = "127.0.0.1:7700";
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--seeds") == 0 && i + 1 < argc) {
      seeds = argv[++i];
    } else if (std::strncmp(argv[i], "--seeds=", 8) == 0) {
      seeds = argv[i] + 8;
    } else {
      std::fprintf(stderr, "usage: %s [--seeds HOST:PORT[,HOST:PORT...]]  (default %s)\n", argv[0],
                   seeds.c_str());
      return 2;
    }
  }
  auto client = Client::Connect({.seeds = Split(seeds, ','), .log = [](std::string_view line) {
                                   std::fprintf(stderr, "[client] %.*s\n",
                                                static_cast<int>(line.size()), line.data());
                                 }});
  if (!client.ok()) {
    std::fprintf(stderr, "cannot connect: %s\n", client.status().ToString().c_str());
    return 1;
  }
  return Run(**client) ? 0 : 1;
}
