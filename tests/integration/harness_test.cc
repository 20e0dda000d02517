// The NodeProcess harness itself: Kill, Restart on the same ports (the node comes back
// empty), and no process left behind by the destructor.
#include <signal.h>

#include <cerrno>
#include <chrono>

#include <catch2/catch.hpp>

#include "cache_calls.h"
#include "node_process.h"
#include "raw_socket.h"
#include "status_matchers.h"

namespace ringcache::it {
namespace {

using grpc::StatusCode;

TEST_CASE("The harness kills, restarts on the same ports and reaps ringcached",
          "[integration][harness]") {
  pid_t first_pid = -1;
  {
    NodeProcess node(SmallNodeFlags());
    RequireStart(node);
    first_pid = node.Pid();
    const std::string grpc_address = node.GrpcAddress();
    const std::string metrics_address = node.MetricsAddress();
    CHECK(grpc_address.rfind("127.0.0.1:", 0) == 0);
    CHECK(metrics_address.rfind("127.0.0.1:", 0) == 0);
    CHECK(grpc_address != "127.0.0.1:0");
    {
      auto stub = node.NewStub();
      REQUIRE_THAT(Set(*stub, "k", "v").status, IsOk());
    }

    node.Kill();
    CHECK_FALSE(node.Running());
    REQUIRE(node.LastExit().has_value());
    CHECK(node.LastExit()->ToString() == ExitStatus{false, 0, SIGKILL}.ToString());

    REQUIRE(node.Restart());
    CHECK(node.GrpcAddress() == grpc_address);
    CHECK(node.MetricsAddress() == metrics_address);
    auto stub = node.NewStub();
    CHECK_THAT(Get(*stub, "k").status, StatusIs(StatusCode::NOT_FOUND));  // Empty again.
    CHECK_THAT(Set(*stub, "k", "v2").status, IsOk());
    CHECK(HttpGet(node.MetricsAddress(), "/healthz").status == 200);
    first_pid = node.Pid();
  }
  // The destructor killed and reaped it: the pid no longer exists.
  CHECK(kill(first_pid, 0) == -1);
  CHECK(errno == ESRCH);
}

}  // namespace
}  // namespace ringcache::it
