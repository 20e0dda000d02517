// The cluster-client snippets of docs/guide.md ("A cluster from C++"), compiled and run by
// the test "example: guide client snippets" against a fresh 3-node cluster
// (examples/cluster_client/with_cluster.sh, replication factor 2):
//
//   guide_client_snippets HOST:PORT[,HOST:PORT...]
//
// Same scheme as guide_snippets.cc: each snippet is the body of one function between a
// `// guide-snippet: NAME` line and a `// guide-snippet-end` line, and the test
// "example: docs/guide.md matches guide_client_snippets.cc" fails if docs/guide.md does
// not contain each body verbatim. CHECK states the expected outcome; it aborts if false.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ringcache/client/client.h"

// Not assert(): the examples are built with NDEBUG too.
#define CHECK(cond)                                                                 \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                 \
    }                                                                               \
  } while (false)

namespace {

using ringcache::StatusCode;

std::vector<std::string> seeds;  // from the command line

std::unique_ptr<ringcache::client::Client> Connect() {
  // guide-snippet: client-connect
  // Any nodes of the cluster: the client asks one of them for the cluster view.
  ringcache::client::Options options{.seeds = seeds, .timeout = std::chrono::seconds(2)};
  ringcache::Result<std::unique_ptr<ringcache::client::Client>> connected =
      ringcache::client::Client::Connect(options);
  CHECK(connected.ok());
  std::unique_ptr<ringcache::client::Client> client = std::move(connected).value();

  const ringcache::ClusterView view = client->view();  // what the client routes by
  std::printf("view epoch %llu: %zu members, replication factor %u\n",
              static_cast<unsigned long long>(view.epoch), view.members.size(),
              view.replication_factor);
  // guide-snippet-end
  return client;
}

void SingleKeys(ringcache::client::Client* client) {
  // guide-snippet: client-ops
  // Each call goes straight to the key's primary; the reply is a ringcache::Result.
  auto written = client->Set("user:42", "Ada", {.ttl_ms = 60'000});
  CHECK(written.ok());
  ringcache::Result<ringcache::Item> item = client->Get("user:42");
  CHECK(item.ok() && item->value == "Ada" && item->meta.version == written->version);
  CHECK(client->Get("user:43").status().code() == StatusCode::kNotFound);

  auto counter = client->Incr("page:views", 5);
  CHECK(counter.ok() && counter->value == 5);

  // Per-call options: a deadline (default Options::timeout), a write concern, a read
  // preference.
  auto durable = client->Set("config", "v1", {}, {.write_concern = 1});
  CHECK(durable.ok() && durable->replicas_acked == 1);  // on the primary and one replica
  auto nearby =
      client->Get("config", {.timeout = std::chrono::milliseconds(500),
                             .read_preference = ringcache::client::ReadPreference::kAnyOwner});
  CHECK(nearby.ok() && nearby->value == "v1");
  // guide-snippet-end
}

void Batches(ringcache::client::Client* client) {
  // guide-snippet: client-batch
  // Batches are split per node and the parts sent in parallel; results keep input order.
  const std::vector<ringcache::SetItem> items = {
      {.key = "a", .value = "1", .options = {}},
      {.key = "b", .value = "2", .options = {.ttl_ms = 60'000}},
  };
  for (const auto& r : client->MultiSet(items)) CHECK(r.ok());

  const std::vector<std::string_view> keys = {"a", "b", "c"};
  std::vector<ringcache::Result<ringcache::Item>> got = client->MultiGet(keys);
  CHECK(got[0].ok() && got[0]->value == "1");
  CHECK(got[1].ok() && got[1]->value == "2");
  CHECK(got[2].status().code() == StatusCode::kNotFound);  // an item fails alone
  // guide-snippet-end
}

void Topology(ringcache::client::Client* client) {
  // guide-snippet: client-topology
  // Where a key lives, by the client's view (no rpc): the primary first.
  std::vector<std::string> owners = client->Owners("user:42");
  CHECK(owners.size() == 2);
  std::printf("user:42 -> primary %s, replica %s\n", owners[0].c_str(), owners[1].c_str());

  // Each node's own counters, by member id.
  for (const ringcache::ClusterMember& member : client->view().members) {
    auto stats = client->Stats(member.id);
    CHECK(stats.ok() && stats->node_id == member.id && stats->epoch == client->epoch());
  }
  // guide-snippet-end
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s HOST:PORT[,HOST:PORT...]\n", argv[0]);
    return 2;
  }
  for (std::string_view rest = argv[1]; !rest.empty();) {
    const size_t comma = rest.find(',');
    seeds.emplace_back(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
  }
  std::unique_ptr<ringcache::client::Client> client = Connect();
  std::printf("guide snippet client-connect: ok\n");
  SingleKeys(client.get());
  std::printf("guide snippet client-ops: ok\n");
  Batches(client.get());
  std::printf("guide snippet client-batch: ok\n");
  Topology(client.get());
  std::printf("guide snippet client-topology: ok\n");
  return 0;
}
