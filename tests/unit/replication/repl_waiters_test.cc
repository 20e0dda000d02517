#include "repl_waiters.h"

#include <optional>
#include <vector>

#include <catch2/catch.hpp>

namespace ringcache::internal {
namespace {

using TimePoint = ReplWaiters::TimePoint;
using std::chrono::milliseconds;

const TimePoint kT0 = TimePoint{} + std::chrono::hours(1);

WriteTicket Ticket(std::vector<std::pair<uint64_t, uint64_t>> links) {
  WriteTicket t;
  for (auto [id, seq] : links) t.links.push_back({id, seq});
  return t;
}

// Records the one call of a done callback.
struct Result {
  int calls = 0;
  uint32_t acked = 0;
  ReplWaiters::Done Fn() {
    return [this](uint32_t a) {
      ++calls;
      acked = a;
    };
  }
};

TEST_CASE("ReplWaiters completes a wait once k links acked its seqs", "[unit][replication]") {
  ReplWaiters w;
  w.AddLink(1);
  w.AddLink(2);
  Result r;
  w.Wait(Ticket({{1, 5}, {2, 7}}), 2, kT0 + milliseconds(1000), r.Fn());
  CHECK(r.calls == 0);
  CHECK(w.pending() == 1);
  w.OnAck(1, 4);
  CHECK(r.calls == 0);
  w.OnAck(1, 5);
  CHECK(r.calls == 0);
  w.OnAck(2, 100);  // Acks are cumulative: 100 covers 7.
  CHECK(r.calls == 1);
  CHECK(r.acked == 2);
  CHECK(w.pending() == 0);
  w.OnAck(2, 200);
  CHECK(r.calls == 1);
}

TEST_CASE("ReplWaiters: seqs a full sync skipped are never counted as acked on that link",
          "[unit][replication]") {
  ReplWaiters w;
  w.AddLink(1);
  w.AddLink(2);
  Result skipped;  // seq 5 on link 1 is replaced by a full sync
  Result kept;     // seq 9 on link 1 is sent after the sync
  Result other;    // waits on link 2 only
  w.Wait(Ticket({{1, 5}, {2, 5}}), 2, kT0 + milliseconds(1000), skipped.Fn());
  w.Wait(Ticket({{1, 9}}), 1, kT0 + milliseconds(1000), kept.Fn());
  w.Wait(Ticket({{2, 6}}), 1, kT0 + milliseconds(1000), other.Fn());
  w.Skip(1, 3, 9);
  // 2 acks can no longer happen for `skipped`: it completes now with what it has (0).
  CHECK(skipped.calls == 1);
  CHECK(skipped.acked == 0);
  CHECK(kept.calls == 0);
  CHECK(other.calls == 0);
  // The replica's ack after the sync covers seq numbers up to 9: only `kept` counts it.
  w.OnAck(1, 9);
  CHECK(kept.calls == 1);
  CHECK(kept.acked == 1);
  w.OnAck(2, 6);
  CHECK(other.calls == 1);
  CHECK(skipped.calls == 1);
  CHECK(w.pending() == 0);
}

TEST_CASE("ReplWaiters decides at once when it can", "[unit][replication]") {
  ReplWaiters w;
  w.AddLink(1);
  w.AddLink(2);
  w.OnAck(1, 10);
  SECTION("already acked") {
    Result r;
    w.Wait(Ticket({{1, 10}, {2, 3}}), 1, kT0, r.Fn());
    CHECK(r.calls == 1);
    CHECK(r.acked == 1);
  }
  SECTION("k = 0 reports what has acked") {
    Result r;
    w.Wait(Ticket({{1, 10}, {2, 3}}), 0, kT0, r.Fn());
    CHECK(r.calls == 1);
    CHECK(r.acked == 1);
  }
  SECTION("fewer links than k") {
    Result r;
    w.Wait(Ticket({{2, 3}}), 2, kT0, r.Fn());
    CHECK(r.calls == 1);
    CHECK(r.acked == 0);
  }
  SECTION("an empty ticket") {
    Result r;
    w.Wait(WriteTicket{}, 1, kT0, r.Fn());
    CHECK(r.calls == 1);
    CHECK(r.acked == 0);
  }
  SECTION("a link that is gone counts as never acking") {
    Result r;
    w.Wait(Ticket({{9, 1}}), 1, kT0, r.Fn());
    CHECK(r.calls == 1);
    CHECK(r.acked == 0);
  }
  CHECK(w.pending() == 0);
}

TEST_CASE("ReplWaiters times out with the count acked so far", "[unit][replication]") {
  ReplWaiters w;
  w.AddLink(1);
  w.AddLink(2);
  Result early;
  Result late;
  w.Wait(Ticket({{1, 1}, {2, 1}}), 2, kT0 + milliseconds(10), early.Fn());
  w.Wait(Ticket({{1, 2}, {2, 2}}), 2, kT0 + milliseconds(20), late.Fn());
  w.OnAck(1, 1);
  CHECK(w.ExpireDue(kT0 + milliseconds(9)) == kT0 + milliseconds(10));
  CHECK(early.calls == 0);
  CHECK(w.ExpireDue(kT0 + milliseconds(10)) == kT0 + milliseconds(20));
  CHECK(early.calls == 1);
  CHECK(early.acked == 1);
  CHECK(late.calls == 0);
  CHECK(w.ExpireDue(kT0 + milliseconds(30)) == TimePoint::max());
  CHECK(late.calls == 1);
  CHECK(late.acked == 0);
  // Acks after the timeout change nothing.
  w.OnAck(2, 5);
  CHECK(early.calls == 1);
  CHECK(late.calls == 1);
}

TEST_CASE("ReplWaiters completes early when removed links make k unreachable",
          "[unit][replication]") {
  ReplWaiters w;
  w.AddLink(1);
  w.AddLink(2);
  w.AddLink(3);
  Result two_of_three;
  Result one_of_three;
  w.Wait(Ticket({{1, 1}, {2, 1}, {3, 1}}), 2, kT0 + milliseconds(100), two_of_three.Fn());
  w.Wait(Ticket({{1, 1}, {2, 1}, {3, 1}}), 1, kT0 + milliseconds(100), one_of_three.Fn());
  w.OnAck(1, 1);
  CHECK(one_of_three.calls == 1);
  CHECK(two_of_three.calls == 0);
  w.RemoveLink(2);
  CHECK(two_of_three.calls == 0);  // Link 3 may still ack.
  w.RemoveLink(3);
  CHECK(two_of_three.calls == 1);
  CHECK(two_of_three.acked == 1);
  CHECK(w.pending() == 0);
  w.OnAck(3, 1);  // A removed link's ack is ignored.
  CHECK(w.acked(3) == 0);
}

TEST_CASE("ReplWaiters ignores acks that go backwards", "[unit][replication]") {
  ReplWaiters w;
  w.AddLink(1);
  w.OnAck(1, 10);
  w.OnAck(1, 3);
  CHECK(w.acked(1) == 10);
  Result r;
  w.Wait(Ticket({{1, 8}}), 1, kT0, r.Fn());
  CHECK(r.acked == 1);
}

TEST_CASE("ReplWaiters CompleteAll ends every wait once", "[unit][replication]") {
  ReplWaiters w;
  w.AddLink(1);
  std::vector<Result> results(5);
  for (Result& r : results) w.Wait(Ticket({{1, 1}}), 1, kT0 + milliseconds(100), r.Fn());
  CHECK(w.pending() == 5);
  w.CompleteAll();
  for (const Result& r : results) {
    CHECK(r.calls == 1);
    CHECK(r.acked == 0);
  }
  w.OnAck(1, 1);
  w.ExpireDue(kT0 + milliseconds(1000));
  for (const Result& r : results) CHECK(r.calls == 1);
}

TEST_CASE("ReplWaiters callbacks may wait again", "[unit][replication]") {
  ReplWaiters w;
  w.AddLink(1);
  Result inner;
  int outer_calls = 0;
  w.Wait(Ticket({{1, 1}}), 1, kT0 + milliseconds(100), [&](uint32_t) {
    ++outer_calls;
    w.Wait(Ticket({{1, 2}}), 1, kT0 + milliseconds(100), inner.Fn());
  });
  w.OnAck(1, 1);
  CHECK(outer_calls == 1);
  CHECK(inner.calls == 0);
  w.OnAck(1, 2);
  CHECK(inner.calls == 1);
  CHECK(inner.acked == 1);
}

TEST_CASE("ReplWaiters handles many waits on one link in seq order", "[unit][replication]") {
  ReplWaiters w;
  w.AddLink(7);
  std::vector<Result> results(100);
  for (size_t i = 0; i < results.size(); ++i) {
    w.Wait(Ticket({{7, i + 1}}), 1, kT0 + milliseconds(100), results[i].Fn());
  }
  w.OnAck(7, 50);
  for (size_t i = 0; i < results.size(); ++i) CHECK(results[i].calls == (i < 50 ? 1 : 0));
  w.OnAck(7, 100);
  for (const Result& r : results) CHECK(r.calls == 1);
  CHECK(w.pending() == 0);
}

}  // namespace
}  // namespace ringcache::internal
