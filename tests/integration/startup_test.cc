// Starting ringcached: bind failures exit 1 naming the address, bad flags and config exit
// 2 with CLI11's message, a config file sets values the node enforces, --help/--version.
#include <chrono>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "cache_calls.h"
#include "node_process.h"
#include "status_matchers.h"

namespace ringcache::it {
namespace {

using grpc::StatusCode;
using std::chrono::milliseconds;

constexpr milliseconds kExitBound{10'000};

// Runs ringcached with exactly `args` and waits (bounded) for it to exit.
struct RawRun {
  std::optional<ExitStatus> exit;
  std::string out;
  std::string err;
};
RawRun RunRaw(const std::vector<std::string>& args) {
  NodeProcess p;
  p.SpawnRaw(args);
  RawRun run;
  run.exit = p.WaitExit(kExitBound);
  run.out = p.Stdout();
  run.err = p.Stderr();
  return run;
}

std::string ExitString(const std::optional<ExitStatus>& e) {
  return e ? e->ToString() : "still running after " + std::to_string(kExitBound.count()) + " ms";
}

std::string WriteConfig(const NodeProcess& node, const std::string& text) {
  const std::string path = node.Dir() + "/ringcached.toml";
  std::ofstream(path) << text;
  return path;
}

TEST_CASE("A second node on a port in use exits 1 with a log line naming the address",
          "[integration][startup]") {
  NodeProcess first(SmallNodeFlags());
  RequireStart(first);

  SECTION("the gRPC port") {
    NodeProcess second({"--listen", first.GrpcAddress()});
    CHECK_FALSE(second.Start());
    INFO(second.Error());
    CHECK(ExitString(second.LastExit()) == "exit 1");
    CHECK(second.Stderr().find(first.GrpcAddress()) != std::string::npos);
  }
  SECTION("the metrics port") {
    NodeProcess second({"--metrics-listen", first.MetricsAddress()});
    CHECK_FALSE(second.Start());
    INFO(second.Error());
    CHECK(ExitString(second.LastExit()) == "exit 1");
    CHECK(second.Stderr().find(first.MetricsAddress()) != std::string::npos);
  }
  SECTION("an address that is not on this host") {
    // TEST-NET-1, never local (protected mode off: the bind itself must fail).
    NodeProcess second({"--listen", "192.0.2.1:7700", "--protected-mode", "false"});
    CHECK_FALSE(second.Start());
    INFO(second.Error());
    CHECK(ExitString(second.LastExit()) == "exit 1");
    CHECK(second.Stderr().find("192.0.2.1:7700") != std::string::npos);
  }

  // The first node is unaffected.
  auto stub = first.NewStub();
  CHECK_THAT(Set(*stub, "k", "v").status, IsOk());
  CHECK(first.Running());
}

TEST_CASE("Bad flags exit 2 with CLI11's message", "[integration][startup]") {
  struct Case {
    std::vector<std::string> args;
    std::string mentions;  // A regex the message must match.
  };
  const std::vector<Case> cases = {
      {{"--no-such-flag"}, "no-such-flag"},
      {{"--max-key-bytes", "abc"}, "max-key-bytes"},
      {{"--max-batch", "-3"}, "max-batch"},
      {{"--memory", "12XB"}, "memory"},
      {{"--log-level", "loud"}, "log-level"},
      {{"--max-streams-per-connection", "-1"}, "max-streams-per-connection"},
      {{"--grow-receive-windows", "maybe"}, "grow-receive-windows"},
      {{"--heap-release-interval-ms", "3600001"}, "heap-release-interval-ms"},
      {{"--threads"}, "threads"},
      {{"--config", "/nonexistent/ringcached.toml"}, "nonexistent"},
      {{"unexpected-positional"}, "unexpected-positional"},
  };
  for (const Case& c : cases) {
    std::string joined;
    for (const auto& a : c.args) joined += a + " ";
    INFO("ringcached " << joined);
    const RawRun run = RunRaw(c.args);
    INFO("stderr: " << run.err << "\nstdout: " << run.out);
    CHECK(ExitString(run.exit) == "exit 2");
    CHECK(std::regex_search(run.err + run.out, std::regex(c.mentions, std::regex::icase)));
  }
}

TEST_CASE("Out-of-range settings exit 2 naming the setting", "[integration][startup]") {
  const std::vector<std::vector<std::string>> cases = {
      {"--max-key-bytes", "0"},
      {"--max-key-bytes", "70000"},
      {"--memory", "0"},
      {"--shards", "3"},
  };
  for (const auto& args : cases) {
    INFO("ringcached " << args[0] << " " << args[1]);
    const RawRun run = RunRaw(args);
    INFO("stderr: " << run.err);
    CHECK(ExitString(run.exit) == "exit 2");
    const std::string name = args[0].substr(2);
    const std::string pattern = std::regex_replace(name, std::regex("-"), "[-_]");
    CHECK(std::regex_search(run.err + run.out, std::regex(pattern, std::regex::icase)));
  }
}

TEST_CASE("A config file sets values that the node enforces and flags override them",
          "[integration][startup][config]") {
  NodeProcess probe;  // Only for its temp dir.
  const std::string config = WriteConfig(probe,
                                         "# ringcached test config\n"
                                         "node-id = \"from-config\"\n"
                                         "max-key-bytes = 16\n"
                                         "max-batch = 5\n"
                                         "memory = \"32MiB\"\n");
  NodeProcess node({"--config", config, "--max-value-bytes", "500"});
  RequireStart(node);
  auto stub = node.NewStub();

  auto stats = Stats(*stub);
  REQUIRE_THAT(stats.status, IsOk());
  CHECK(stats.response.node_id() == "from-config");
  CHECK(stats.response.capacity_bytes() == uint64_t{32} << 20);

  CHECK_THAT(Set(*stub, std::string(16, 'k'), "v").status, IsOk());
  CHECK_THAT(Set(*stub, std::string(17, 'k'), "v").status,
             StatusIs(StatusCode::INVALID_ARGUMENT, {"max[-_]key[-_]bytes", "16"}));
  CHECK_THAT(Set(*stub, "k", std::string(501, 'v')).status,
             StatusIs(StatusCode::INVALID_ARGUMENT, {"max[-_]value[-_]bytes", "500"}));
  v1::MultiGetRequest six;
  for (int i = 0; i < 6; ++i) six.add_keys("k" + std::to_string(i));
  CHECK_THAT(Unary(*stub, &v1::Cache::Stub::MultiGet, six).status,
             StatusIs(StatusCode::INVALID_ARGUMENT, {"max[-_]batch", "5"}));

  SECTION("a flag on the command line wins over the config file") {
    NodeProcess overridden({"--config", config, "--max-batch", "7"});
    RequireStart(overridden);
    auto stub2 = overridden.NewStub();
    CHECK_THAT(Unary(*stub2, &v1::Cache::Stub::MultiGet, six).status, IsOk());
    v1::MultiGetRequest eight = six;
    eight.add_keys("k6");
    eight.add_keys("k7");
    CHECK_THAT(Unary(*stub2, &v1::Cache::Stub::MultiGet, eight).status,
               StatusIs(StatusCode::INVALID_ARGUMENT, {"max[-_]batch", "7"}));
  }
}

TEST_CASE("A config file with an unknown key or a bad value exits 2",
          "[integration][startup][config]") {
  NodeProcess probe;
  const std::string text = GENERATE(as<std::string>{}, "max-key-bytes = \"lots\"\n",
                                    "memory = \"12XB\"\n", "no-such-setting = 3\n");
  INFO("config: " << text);
  const RawRun run = RunRaw({"--config", WriteConfig(probe, text)});
  INFO("stderr: " << run.err);
  CHECK(ExitString(run.exit) == "exit 2");
}

TEST_CASE("--help explains every setting and --version prints the version",
          "[integration][startup]") {
  const RawRun help = RunRaw({"--help"});
  CHECK(ExitString(help.exit) == "exit 0");
  for (const char* flag :
       {"--node-id", "--listen", "--metrics-listen", "--memory", "--shards", "--max-key-bytes",
        "--max-value-bytes", "--max-batch", "--threads", "--log-level", "--shutdown-grace-ms",
        "--ready-file", "--config", "--version"}) {
    INFO(flag << " in:\n" << help.out);
    CHECK(help.out.find(flag) != std::string::npos);
  }

  const RawRun version = RunRaw({"--version"});
  CHECK(ExitString(version.exit) == "exit 0");
  CHECK(std::regex_search(version.out, std::regex(R"(\d+\.\d+\.\d+)")));

  // The running node reports the same version, and logs it with its settings at start.
  NodeProcess node(SmallNodeFlags());
  RequireStart(node);
  auto stub = node.NewStub();
  auto stats = Stats(*stub);
  REQUIRE_THAT(stats.status, IsOk());
  INFO("--version: " << version.out << "Stats: " << stats.response.server_version());
  CHECK(version.out.find(stats.response.server_version()) != std::string::npos);
  const std::string log = node.Stderr();
  INFO("stderr: " << log);
  CHECK(log.find(stats.response.server_version()) != std::string::npos);
  CHECK(log.find("it-node") != std::string::npos);
  CHECK(std::regex_search(log, std::regex("max[-_]key[-_]bytes", std::regex::icase)));
}

}  // namespace
}  // namespace ringcache::it
