// Hashes, lists and sets on a 3-node cluster (RF 2): random commands through every node
// with a write concern of 1, checked reply by reply against the core library running the
// same commands on a local Cache (the model), then every owner's own copy of every key
// compared with the model and with the other owner's (contents and version). Then a
// kill -9 of one node, more commands through the others once it is failed over, its
// restart, and the same comparison once the cluster has settled.
#include <deque>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "cluster_checks.h"
#include "cluster_harness.h"
#include "ringcache/typed.h"

namespace ringcache::it {
namespace {

using namespace checks;
using C = TypedCommand;

constexpr int kKeys = 12;  // Per family.

// A key's family by its prefix: h: hash, l: list, s: set.
struct Workload {
  std::mt19937 rng;
  std::deque<std::string> storage;  // Owns the strings an op's args view (stable addresses).

  explicit Workload(unsigned seed) : rng(seed) {}
  int Pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng); }

  // A random command on a random key; its args view `storage`.
  std::pair<std::string, TypedOp> Next() {
    storage.clear();
    TypedOp op;
    const int family = Pick(3);
    std::string key = std::string(1, "hls"[family]) + ":" + std::to_string(Pick(kKeys));
    const auto arg = [&](std::string s) -> std::string_view {
      return storage.emplace_back(std::move(s));
    };
    std::vector<std::string_view>* args = new_args();
    switch (family) {
      case 0: {
        const int what = Pick(4);
        if (what <= 1) {
          op.command = C::kHSet;
          for (int i = 0, n = 1 + Pick(3); i < n; ++i) {
            args->push_back(arg("f" + std::to_string(Pick(10))));
            args->push_back(arg("v" + std::to_string(Pick(1000))));
          }
        } else if (what == 2) {
          op.command = C::kHDel;
          args->push_back(arg("f" + std::to_string(Pick(10))));
        } else {
          op.command = C::kHIncrBy;
          args->push_back(arg("n"));
          op.n = Pick(21) - 10;
        }
        break;
      }
      case 1: {
        const int what = Pick(6);
        if (what <= 2) {
          op.command = what == 0 ? C::kLPush : C::kRPush;
          for (int i = 0, n = 1 + Pick(3); i < n; ++i)
            args->push_back(arg("e" + std::to_string(Pick(5))));
        } else if (what == 3) {
          op.command = Pick(2) == 0 ? C::kLPop : C::kRPop;
          op.n = Pick(4);
          op.flag = true;
        } else if (what == 4) {
          op.command = C::kLTrim;
          op.n = 0;
          op.stop = 15;
        } else {
          op.command = C::kLRem;
          op.n = Pick(3) - 1;
          args->push_back(arg("e" + std::to_string(Pick(5))));
        }
        break;
      }
      default: {
        op.command = Pick(3) == 0 ? C::kSRem : C::kSAdd;
        for (int i = 0, n = 1 + Pick(3); i < n; ++i)
          args->push_back(arg("m" + std::to_string(Pick(15))));
        break;
      }
    }
    op.args = *args;
    return {std::move(key), op};
  }

  std::vector<std::string_view>* new_args() {
    arg_views.clear();
    return &arg_views;
  }
  std::vector<std::string_view> arg_views;
};

v1::CollectionRequest RequestOf(const std::string& key, const TypedOp& op) {
  v1::CollectionRequest r;
  r.set_key(key);
  r.set_command(static_cast<v1::CollectionCommand>(op.command));
  for (std::string_view a : op.args) r.add_args(std::string(a));
  r.set_n(op.n);
  r.set_stop(op.stop);
  r.set_flag(op.flag);
  return r;
}

// The whole collection (its read command) as one node's own copy holds it.
Reply<v1::CollectionResponse> LocalRead(v1::Cache::Stub& stub, const std::string& key) {
  v1::CollectionRequest r;
  r.set_key(key);
  r.set_command(key[0] == 'h'   ? v1::COLLECTION_COMMAND_HGETALL
                : key[0] == 'l' ? v1::COLLECTION_COMMAND_LRANGE
                                : v1::COLLECTION_COMMAND_SMEMBERS);
  r.set_stop(-1);
  grpc::ClientContext ctx;
  SetDeadline(ctx, kRpcTimeout);
  ctx.AddMetadata("ringcache-local", "1");
  Reply<v1::CollectionResponse> reply;
  reply.status = stub.Collection(&ctx, r, &reply.response);
  return reply;
}

// Stubs of the running nodes (on the test's thread: TestCluster's rule).
std::vector<std::unique_ptr<v1::Cache::Stub>> RunningStubs(TestCluster& cluster) {
  std::vector<std::unique_ptr<v1::Cache::Stub>> stubs;
  for (size_t i = 0; i < cluster.size(); ++i) {
    if (cluster.running(i)) stubs.push_back(cluster.Stub(i));
  }
  return stubs;
}

// Runs `count` random commands through `stubs` in turn (write concern 1: at least one
// replica acks each, two while the key's range moves to a new owner), each also on
// the model. A command that fails through the cluster is not applied to the model, and
// its key is marked unsure (a failure may or may not have applied it). Any thread: what
// went wrong is returned as text (Catch's macros belong to the test's thread).
struct CommandsOutcome {
  int mismatches = 0;
  int unacked = 0;  // Applied, but answered 0 replicas acked (allowed only while a view changes).
  std::vector<std::string> notes;  // One per failed command or mismatched reply.
};
CommandsOutcome RunCommands(const std::vector<std::unique_ptr<v1::Cache::Stub>>& stubs, Workload& w,
                            Cache& model, int count, std::set<std::string>* unsure,
                            bool view_changes = false) {
  CommandsOutcome out;
  for (int i = 0; i < count; ++i) {
    auto [key, op] = w.Next();
    const std::string name(InfoOf(op.command).name);
    v1::CollectionRequest request = RequestOf(key, op);
    request.set_write_concern(1);
    request.set_write_concern_timeout_ms(2000);
    const Reply<v1::CollectionResponse> got = Unary(*stubs[static_cast<size_t>(i) % stubs.size()],
                                                    &v1::Cache::Stub::Collection, request, 5s);
    if (!got.status.ok()) {
      out.notes.push_back(key + " " + name + ": " + got.status.error_message());
      unsure->insert(key);
      continue;
    }
    CacheStore store(model);
    TypedReply want;
    if (Status s = RunTyped(store, key, op, &want); !s.ok()) {
      out.notes.push_back(key + " " + name + " on the model: " + s.ToString());
      ++out.mismatches;
      continue;
    }
    std::vector<std::string> items(got.response.items().begin(), got.response.items().end());
    // While a view changes, a write may find its range between replica links: it then
    // answers 0 acked (the write concern not met, said so), never a wrong result.
    const bool unacked = got.response.replicas_acked() < 1;
    out.unacked += unacked;
    if (got.response.integer() != want.integer || items != want.items ||
        (unacked && !view_changes)) {
      ++out.mismatches;
      out.notes.push_back(key + " " + name + ": got " + std::to_string(got.response.integer()) +
                          " (" + std::to_string(items.size()) + " items, " +
                          std::to_string(got.response.replicas_acked()) + " acked), want " +
                          std::to_string(want.integer) + " (" + std::to_string(want.items.size()) +
                          " items)");
    }
  }
  return out;
}

// Checks (on the test's thread) that no reply differed, showing the first notes if one did.
void CheckOutcome(const CommandsOutcome& outcome) {
  std::string first;
  for (size_t i = 0; i < outcome.notes.size() && i < 5; ++i) first += outcome.notes[i] + "\n";
  INFO(outcome.notes.size() << " notes, first:\n" << first);
  CHECK(outcome.mismatches == 0);
}

// Keys whose owners' copies differ from each other (contents or version) or, for keys
// not in `unsure`, from the model.
std::vector<std::string> Diverged(TestCluster& cluster, Cache& model,
                                  const std::set<std::string>& unsure) {
  std::vector<std::string> out;
  const std::optional<Ring> ring = CurrentRing(cluster);
  REQUIRE(ring.has_value());
  for (char family : {'h', 'l', 's'}) {
    for (int k = 0; k < kKeys; ++k) {
      const std::string key = std::string(1, family) + ":" + std::to_string(k);
      TypedReply want;
      CacheStore store(model);
      TypedOp read{.command = family == 'h'   ? C::kHGetAll
                              : family == 'l' ? C::kLRange
                                              : C::kSMembers,
                   .stop = -1};
      REQUIRE(RunTyped(store, key, read, &want).ok());
      std::optional<std::pair<std::vector<std::string>, uint64_t>> first;
      for (size_t owner : ring->Owners(key)) {
        auto stub = cluster.Stub(owner);
        const Reply<v1::CollectionResponse> got = LocalRead(*stub, key);
        if (!got.status.ok()) {
          out.push_back(key + ": " + cluster.id(owner) + " " + got.status.error_message());
          continue;
        }
        std::vector<std::string> items(got.response.items().begin(), got.response.items().end());
        if (!unsure.contains(key) && items != want.items) {
          out.push_back(key + ": " + cluster.id(owner) + " differs from the model");
        }
        if (first && (first->first != items || first->second != got.response.version())) {
          out.push_back(key + ": " + cluster.id(owner) + " differs from the primary");
        }
        if (!first) first.emplace(std::move(items), got.response.version());
      }
    }
  }
  return out;
}

TEST_CASE(
    "Hash, list and set commands through every node converge on every owner, across a kill -9, "
    "a join and a leave",
    "[cluster][typed]") {
  TestCluster cluster(
      {.nodes = 3, .replication_factor = 2, .extra_args = {"--memory", "64MiB", "--threads", "2"}});
  RequireStart(cluster);
  REQUIRE(WaitSettled(cluster, 20s, true));
  Result<std::unique_ptr<Cache>> model = Cache::Create({.start_janitor = false});
  REQUIRE(model.ok());
  Workload w(static_cast<unsigned>(Catch::rngSeed()));
  std::set<std::string> unsure;
  const auto check_converged = [&](const char* when) {
    const std::vector<std::string> diverged = Diverged(cluster, **model, unsure);
    INFO(when << ": " << diverged.size()
              << " keys diverged, first: " << (diverged.empty() ? "" : diverged[0]));
    CHECK(diverged.empty());
  };

  CheckOutcome(RunCommands(RunningStubs(cluster), w, **model, 900, &unsure));
  CHECK(unsure.empty());
  check_converged("before any change");

  // kill -9 of n3; once the others have failed it over, more commands through them.
  cluster.Kill(2);
  REQUIRE(Eventually([&] { return AllSee(cluster, cluster.id(2), v1::MEMBER_STATE_FAILED); }, 15s));
  REQUIRE(WaitSettled(cluster, 40s, true));
  CheckOutcome(RunCommands(RunningStubs(cluster), w, **model, 300, &unsure));
  REQUIRE(cluster.Restart(2));
  REQUIRE(WaitSettled(cluster, 40s, true));
  CheckOutcome(RunCommands(RunningStubs(cluster), w, **model, 300, &unsure));
  check_converged("after n3's kill -9 and restart");
  CHECK(unsure.empty());

  int unacked = 0;
  // n4 joins while commands run through n1..n3; then n4 leaves while they run again.
  // A command caught by a view change may fail (TRYAGAIN): its key is then unsure and
  // only compared between its owners.
  {
    const auto stubs = RunningStubs(cluster);
    CommandsOutcome outcome;
    std::thread load([&] { outcome = RunCommands(stubs, w, **model, 400, &unsure, true); });
    const bool joined = cluster.AddNode();
    load.join();
    INFO(cluster.Error());
    REQUIRE(joined);
    CheckOutcome(outcome);
    unacked += outcome.unacked;
  }
  REQUIRE(WaitSettled(cluster, 40s, true));
  check_converged("after n4 joined");
  {
    std::vector<std::unique_ptr<v1::Cache::Stub>> staying;
    for (size_t i = 0; i < 3; ++i) staying.push_back(cluster.Stub(i));
    CommandsOutcome outcome;
    std::thread load([&] { outcome = RunCommands(staying, w, **model, 400, &unsure, true); });
    v1::LeaveResponse response;
    const grpc::Status left = Leave(cluster.address(3), "n4", &response);
    const std::optional<ExitStatus> exit = cluster.node(3).WaitExit(60s);
    load.join();
    INFO(left.error_message());
    REQUIRE(left.ok());
    REQUIRE(exit.has_value());
    CheckOutcome(outcome);
    unacked += outcome.unacked;
  }
  REQUIRE(Eventually(
      [&] {
        for (size_t i = 0; i < 3; ++i) {
          auto stub = cluster.Stub(i);
          auto view = TopologyOf(*stub);
          if (!view || StateIn(*view, "n4").has_value()) return false;
        }
        return Settled(cluster, true);
      },
      40s, 50ms));
  CheckOutcome(RunCommands(RunningStubs(cluster), w, **model, 200, &unsure));
  check_converged("after n4 left");
  Figure("typed convergence", std::to_string(unsure.size()) +
                                  " keys of 36 had a command fail during the join or the leave; " +
                                  std::to_string(unacked) +
                                  " of 800 commands then answered 0 acked");
}

TEST_CASE("Whole collections are read through any node and count toward --max-response-bytes",
          "[cluster][typed]") {
  TestCluster cluster({.nodes = 3,
                       .replication_factor = 2,
                       .extra_args = {"--memory", "256MiB", "--max-value-bytes", "1MiB",
                                      "--max-response-bytes", "32MiB"}});
  RequireStart(cluster);
  REQUIRE(WaitSettled(cluster, 20s, true));
  auto n1 = cluster.Stub(0);
  const auto push = [&](const std::string& key, const std::string& element, int count) {
    for (int done = 0; done < count; done += 100000) {
      v1::CollectionRequest r;
      r.set_key(key);
      r.set_command(v1::COLLECTION_COMMAND_RPUSH);
      for (int i = done; i < std::min(count, done + 100000); ++i) r.add_args(element);
      r.set_write_concern(1);
      const auto reply = Unary(*n1, &v1::Cache::Stub::Collection, r, 20s);
      INFO(reply.status.error_message());
      REQUIRE(reply.status.ok());
    }
  };
  // 500,000 one-byte elements: a pack of about 1 MB, the value limit. Its LRANGE answer
  // takes 3 bytes an element on the wire, so the owner's reply to a forwarding node is
  // 1.5 MB, over a value.
  push("full", "x", 500000);
  // 100,000 empty elements: a pack of 100 KB whose read holds 100,000 strings.
  push("wide", "", 100000);

  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  for (size_t n = 0; n < cluster.size(); ++n) {
    INFO("through " << cluster.id(n));
    auto stub = v1::Cache::NewStub(
        grpc::CreateCustomChannel(cluster.address(n), grpc::InsecureChannelCredentials(), args));
    v1::CollectionRequest range;
    range.set_key("full");
    range.set_command(v1::COLLECTION_COMMAND_LRANGE);
    range.set_stop(-1);
    const auto whole = Unary(*stub, &v1::Cache::Stub::Collection, range, 20s);
    INFO(whole.status.error_message());
    REQUIRE(whole.status.ok());
    CHECK(whole.response.items_size() == 500000);

    // 20 reads of the wide list in one Batch: 3.2 MB each as held (a string per element),
    // 64 MB in all, over the 32 MiB limit although the elements are empty.
    v1::BatchRequest batch;
    for (int i = 0; i < 20; ++i) {
      v1::CollectionRequest* c = batch.add_ops()->mutable_collection();
      c->set_key("wide");
      c->set_command(v1::COLLECTION_COMMAND_LRANGE);
      c->set_stop(-1);
    }
    const auto answered = Unary(*stub, &v1::Cache::Stub::Batch, batch, 30s);
    if (answered.status.ok()) {
      int refused = 0;
      for (const v1::OperationResult& r : answered.response.results()) {
        refused += r.status().code() == static_cast<int>(grpc::StatusCode::RESOURCE_EXHAUSTED);
      }
      CHECK(refused > 0);
    } else {
      CHECK(answered.status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
    }
  }
  // A pop of half the list through every node in turn: each answer is the popped elements,
  // and the list shrinks by exactly that much on both owners.
  size_t popped = 0;
  for (size_t n = 0; n < cluster.size(); ++n) {
    auto stub = cluster.Stub(n);
    v1::CollectionRequest pop;
    pop.set_key("full");
    pop.set_command(v1::COLLECTION_COMMAND_LPOP);
    pop.set_n(100000);
    pop.set_flag(true);
    pop.set_write_concern(1);
    const auto got = Unary(*stub, &v1::Cache::Stub::Collection, pop, 20s);
    INFO(got.status.error_message());
    REQUIRE(got.status.ok());
    popped += static_cast<size_t>(got.response.items_size());
  }
  CHECK(popped == 300000);
  const std::optional<Ring> ring = CurrentRing(cluster);
  REQUIRE(ring.has_value());
  for (size_t owner : ring->Owners("full")) {
    auto stub = cluster.Stub(owner);
    v1::CollectionRequest len;
    len.set_key("full");
    len.set_command(v1::COLLECTION_COMMAND_LLEN);
    grpc::ClientContext ctx;
    SetDeadline(ctx, kRpcTimeout);
    ctx.AddMetadata("ringcache-local", "1");
    v1::CollectionResponse out;
    REQUIRE(stub->Collection(&ctx, len, &out).ok());
    CHECK(out.integer() == 200000);
  }
}

}  // namespace
}  // namespace ringcache::it
