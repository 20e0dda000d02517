// ringcached: runs one ringcache node. A thin binary over ringcache::node: it reads flags
// (and an optional config file), sets up logging, starts the node, writes the ready file,
// and turns SIGTERM/SIGINT into a graceful shutdown (with --drain-on-shutdown, a graceful
// leave of the cluster first). docs/operations.md is the manual.
//
// Exit codes: 0 clean shutdown (also --help, --version, and a node that left the cluster
// through `ringcache-cli cluster leave`); 1 runtime failure (cannot bind, cannot write the
// ready file); 2 bad flags or config file.
//
// Threads here: main (starts the node, waits for a signal or for the node to stop by
// itself, drains, shuts the node down), the signal thread (sigwait on SIGTERM/SIGINT,
// which every thread blocks), a watcher (Node::Wait: the node stopped by itself after
// leaving the cluster) and, while draining, the drain thread (Node::Leave).
#include <absl/synchronization/mutex.h>
#include <grpc/support/log.h>
#include <pthread.h>
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "auth_support.h"
#include "byte_size.h"
#include "ringcache/node/node.h"

namespace {

constexpr int kExitOk = 0;
constexpr int kExitRuntime = 1;
constexpr int kExitUsage = 2;

// Everything the command line and config file set.
struct Flags {
  std::string node_id;
  std::string listen = "127.0.0.1:7700";
  std::string metrics_listen = "127.0.0.1:9700";
  std::string resp_listen;
  uint32_t resp_threads = 1;
  uint32_t resp_max_clients = 10000;
  int64_t resp_idle_timeout_s = 0;
  std::string memory = "1GiB";
  uint32_t shards = 0;
  uint32_t max_key_bytes = 4096;
  std::string max_value_bytes = "8MiB";
  uint32_t max_batch = 10000;
  std::string max_response_bytes = "auto";
  uint32_t max_streams_per_connection = 0;
  bool grow_receive_windows = true;
  int64_t heap_release_interval_ms = 1000;
  uint32_t threads = std::max(1u, std::thread::hardware_concurrency());
  std::string log_level = "info";
  int64_t shutdown_grace_ms = 5000;
  std::string ready_file;
  std::string config;  // Shown in the start line only.
  // Cluster.
  std::vector<std::string> seeds;
  std::string advertise;
  std::string cluster_listen;
  std::string cluster_advertise;
  uint32_t weight = 1;
  uint32_t replication_factor = 2;
  uint32_t vnodes = 160;
  int64_t join_timeout_ms = 30000;
  std::string replication_backlog = "64MiB";
  int64_t replication_ack_timeout_ms = 5000;
  int64_t forward_timeout_ms = 5000;
  std::string subscriber_buffer = "8MiB";
  int64_t publish_timeout_ms = 250;
  int64_t pubsub_heartbeat_ms = 1000;
  std::string keyspace_events;
  std::string data_dir;
  int64_t snapshot_interval_s = 300;
  uint64_t snapshot_min_changes = 1;
  // Failure detection and rebalancing.
  int64_t heartbeat_interval_ms = 200;
  int64_t failure_timeout_ms = 1000;
  bool fenced_reads = false;
  bool drain_on_shutdown = false;
  int64_t drain_timeout_ms = 600000;
  int64_t transition_warn_ms = 30000;
  // The cluster plane (docs/security.md).
  std::string cluster_secret_file;
  std::string auth_tokens_file;
  bool protected_mode = true;
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_ca_file;
  std::string tls_client_certs = "none";
  int64_t tls_reload_s = 60;
  bool tls_node_identity = false;
  uint64_t max_epoch_jump = 1000000;
};

// The secret in `path`, without trailing whitespace (an editor's newline), or an error
// naming the problem. The secret's own rules are NodeOptions::Validate's.
ringcache::Result<std::string> ReadSecretFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return ringcache::Status::InvalidArgument("cannot read " + path);
  std::string secret;
  char buffer[512];
  while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
    secret.append(buffer, static_cast<size_t>(in.gcount()));
    if (secret.size() > 4096) {
      return ringcache::Status::InvalidArgument(path + " is over 4096 bytes: not a secret file");
    }
  }
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r' ||
                             secret.back() == ' ' || secret.back() == '\t')) {
    secret.pop_back();
  }
  if (secret.empty()) return ringcache::Status::InvalidArgument(path + " is empty");
  return secret;
}

// A CLI11 validator accepting what ParseByteSize accepts.
CLI::Validator ByteSizeValidator() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        ringcache::Result<uint64_t> size = ringcache::internal::ParseByteSize(text);
        return size.ok() ? std::string() : size.status().message();
      },
      "SIZE", "");
}

// Parses argv into *flags. Returns -1 to go on, or the exit code to return with.
int ParseFlags(int argc, char** argv, Flags* flags) {
  CLI::App app{
      "ringcached: one node of a ringcache cluster. Serves the ringcache.v1.Cache gRPC API\n"
      "(plus grpc.health.v1 and server reflection) and Prometheus metrics.\n"
      "Every flag can also be set in a config file (--config FILE) as `long-name = value`;\n"
      "flags given on the command line override the file. SIZE accepts a byte count or a\n"
      "unit: 4096, 512MB (powers of 1000), 64MiB or 1GiB (powers of 1024).",
      "ringcached"};
  app.option_defaults()->always_capture_default();
  app.get_formatter()->column_width(34);
  app.set_version_flag("--version", "ringcached " + std::string(ringcache::NodeVersion()),
                       "Print the version and exit");
  app.set_config("--config", "",
                 "TOML/INI file of settings: one `long-flag-name = value` per line, e.g.\n"
                 "memory = \"512MiB\". Unknown keys are an error.")
      ->check(CLI::ExistingFile);
  app.allow_config_extras(CLI::config_extras_mode::error);

  app.add_option("--node-id", flags->node_id,
                 "This node's id in the cluster view and Stats: unique in the\n"
                 "cluster and the same across restarts (ring placement depends\n"
                 "on it); printable ASCII without spaces or commas")
      ->default_str("the machine's hostname");
  app.add_option("--listen", flags->listen,
                 "gRPC listen address HOST:PORT; port 0 picks a free port (see --ready-file)");
  app.add_option("--metrics-listen", flags->metrics_listen,
                 "HTTP address of /metrics (Prometheus) and /healthz, HOST:PORT;\n"
                 "port 0 picks a free port; \"\" disables the endpoint");
  app.add_option("--resp-listen", flags->resp_listen,
                 "Redis-protocol address HOST:PORT (redis-cli, any Redis client;\n"
                 "docs/redis.md); port 0 picks a free port; off by default");
  app.add_option("--resp-threads", flags->resp_threads, "I/O threads of the Redis-protocol port")
      ->check(CLI::Range(1u, 64u));
  app.add_option("--resp-max-clients", flags->resp_max_clients,
                 "Most connections of the Redis-protocol port at once (maxclients);\n"
                 "one more is answered an error and closed")
      ->check(CLI::Range(1u, 1'000'000u))
      ->capture_default_str();
  app.add_option("--resp-idle-timeout-s", flags->resp_idle_timeout_s,
                 "Close a Redis-protocol connection idle this long, in seconds\n"
                 "(Redis's timeout); 0 = never")
      ->check(CLI::Range(int64_t{0}, int64_t{365} * 86400))
      ->capture_default_str();
  app.add_option("--memory", flags->memory,
                 "Cache byte budget: keys + values + a fixed overhead per entry")
      ->check(ByteSizeValidator());
  app.add_option("--shards", flags->shards, "Cache shards, a power of two; 0 chooses automatically")
      ->check(CLI::Range(0u, 65536u));
  app.add_option("--max-key-bytes", flags->max_key_bytes, "Largest key accepted, in bytes")
      ->check(CLI::Range(1u, 65535u));
  app.add_option("--max-value-bytes", flags->max_value_bytes,
                 "Largest value accepted (at most 1GiB); the gRPC message limit\n"
                 "is this + max-key-bytes + 64KiB")
      ->check(ByteSizeValidator());
  app.add_option("--max-batch", flags->max_batch,
                 "Most items per MultiGet/MultiSet/MultiDelete/Batch request and per\n"
                 "Pipeline message; more is INVALID_ARGUMENT")
      ->check(CLI::Range(1u, 10'000'000u));
  app.add_option("--max-response-bytes", flags->max_response_bytes,
                 "Most bytes of results in one MultiGet/MultiSet/MultiDelete/Batch\n"
                 "response or one batch of pipelined Redis commands; more is\n"
                 "RESOURCE_EXHAUSTED. auto = 64MiB, or one largest message if more")
      ->check(CLI::IsMember({"auto"}) | ByteSizeValidator());
  app.add_option("--max-streams-per-connection", flags->max_streams_per_connection,
                 "Most calls one connection may have open on the gRPC port at once;\n"
                 "the caller queues the rest. 0 = gRPC's (none), else at least 16\n"
                 "(members share the port), or 1 with --cluster-listen. Bounds the\n"
                 "request bytes a connection holds (docs/operations.md, Memory)")
      ->check(CLI::Range(0u, 2147483647u))
      ->capture_default_str();
  app.add_option("--grow-receive-windows", flags->grow_receive_windows,
                 "Let gRPC grow each connection's receive windows to the measured\n"
                 "bandwidth-delay product; false keeps them at 64KiB beyond the\n"
                 "message being read (less memory per Pipeline stream)")
      ->capture_default_str();
  app.add_option("--heap-release-interval-ms", flags->heap_release_interval_ms,
                 "How often to give free heap memory back to the system when malloc\n"
                 "holds more than 32MiB free; 0 = never")
      ->check(CLI::Range(int64_t{0}, int64_t{3'600'000}))
      ->capture_default_str();
  app.add_option("--threads", flags->threads,
                 "No longer used: the gRPC server runs on gRPC's own threads\n"
                 "(callback API). Accepted so that existing configs stay valid")
      ->check(CLI::Range(1u, 1024u));
  app.add_option("--log-level", flags->log_level, "Log level (logs go to stderr)")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  app.add_option("--shutdown-grace-ms", flags->shutdown_grace_ms,
                 "On SIGTERM/SIGINT, how long in-flight calls may take to finish\n"
                 "before they are cancelled, in ms")
      ->check(CLI::Range(int64_t{0}, int64_t{3'600'000}));

  // Cluster settings. Listed in the "Cluster" group of --help.
  const char* kCluster = "Cluster";
  app.add_option("--seeds", flags->seeds,
                 "Members to join through, HOST:PORT, comma-separated (or repeat\n"
                 "the flag); any one that answers will do, and this node's own\n"
                 "address is skipped. None: start a new cluster with this node\n"
                 "as its only member")
      ->delimiter(',')
      ->default_str("none")
      ->group(kCluster);
  app.add_option("--advertise", flags->advertise,
                 "The address other nodes and clients dial to reach this node,\n"
                 "HOST:PORT. Required with --seeds if --listen's host is a\n"
                 "wildcard (0.0.0.0, [::])")
      ->default_str("the bound --listen address")
      ->group(kCluster);
  app.add_option("--weight", flags->weight,
                 "Relative capacity: this node gets weight x vnodes points on\n"
                 "the ring, so a share of the keys proportional to its weight")
      ->check(CLI::Range(1u, 10000u))
      ->group(kCluster);
  app.add_option("--replication-factor", flags->replication_factor,
                 "Owners per key: a primary + (this - 1) replicas; must be the\n"
                 "same on every node (a join with another value is refused)")
      ->check(CLI::Range(1u, 16u))
      ->group(kCluster);
  app.add_option("--vnodes", flags->vnodes,
                 "Ring points per unit of weight; must be the same on every\n"
                 "node (a join with another value is refused)")
      ->check(CLI::Range(1u, 10000u))
      ->group(kCluster);
  app.add_option("--join-timeout-ms", flags->join_timeout_ms,
                 "How long to keep trying the seeds at start, in ms; after it\n"
                 "ringcached exits with code 1")
      ->check(CLI::Range(int64_t{1}, int64_t{3'600'000}))
      ->group(kCluster);
  app.add_option("--replication-backlog", flags->replication_backlog,
                 "Recent writes each replica link keeps, in bytes (at least 1MiB),\n"
                 "so a replica that reconnects resumes from it; one further\n"
                 "behind gets a full sync")
      ->check(ByteSizeValidator())
      ->group(kCluster);
  app.add_option("--replication-ack-timeout-ms", flags->replication_ack_timeout_ms,
                 "A replica link with writes unacknowledged for this long, in ms,\n"
                 "is reconnected (the replica then resumes or gets a full sync)")
      ->check(CLI::Range(int64_t{1}, int64_t{3'600'000}))
      ->group(kCluster);
  app.add_option("--forward-timeout-ms", flags->forward_timeout_ms,
                 "Deadline of a call this node forwards to a key's owner, in ms\n"
                 "(the caller's own deadline applies if shorter)")
      ->check(CLI::Range(int64_t{1}, int64_t{3'600'000}))
      ->group(kCluster);

  // Pub/sub (docs/design/pubsub.md).
  const char* kPubSub = "Pub/sub";
  app.add_option("--subscriber-buffer-bytes", flags->subscriber_buffer,
                 "Undelivered messages one subscriber may hold, in bytes (at\n"
                 "least 64KiB); a subscriber that falls further behind is cut off\n"
                 "with RESOURCE_EXHAUSTED (Redis's client-output-buffer-limit)")
      ->check(ByteSizeValidator())
      ->group(kPubSub);
  app.add_option("--publish-timeout-ms", flags->publish_timeout_ms,
                 "How long a publish waits for the other nodes' subscriber counts,\n"
                 "in ms; a node slower than this is reported as unreached")
      ->check(CLI::Range(int64_t{1}, int64_t{3'600'000}))
      ->group(kPubSub);
  app.add_option("--pubsub-heartbeat-ms", flags->pubsub_heartbeat_ms,
                 "How often an idle subscription gets a heartbeat with its last\n"
                 "sequence number, in ms, so that a missed message shows")
      ->check(CLI::Range(int64_t{10}, int64_t{3'600'000}))
      ->group(kPubSub);
  app.add_option("--keyspace-events", flags->keyspace_events,
                 "Keyspace notifications, in Redis's notify-keyspace-events\n"
                 "letters (e.g. KEA: every event, both channel kinds); empty: off.\n"
                 "Events of a key come from its primary: set it on every node")
      ->group(kPubSub);

  // Persistence (docs/design/persistence.md).
  const char* kPersistence = "Persistence";
  app.add_option("--data-dir", flags->data_dir,
                 "Directory for snapshots (created if missing); empty: no persistence.\n"
                 "A node started without --seeds loads the snapshot found there")
      ->group(kPersistence);
  app.add_option("--snapshot-interval-s", flags->snapshot_interval_s,
                 "Write a snapshot this often, in seconds, when at least\n"
                 "--snapshot-min-changes keys changed (and at a graceful shutdown)")
      ->check(CLI::Range(int64_t{1}, int64_t{365} * 24 * 3600))
      ->group(kPersistence);
  app.add_option("--snapshot-min-changes", flags->snapshot_min_changes,
                 "Keys written, deleted, expired or evicted since the last snapshot\n"
                 "for the interval to write a new one")
      ->group(kPersistence);

  // Failure detection and rebalancing (docs/operations.md, "Failures and leaving").
  const char* kFailover = "Failure detection and leaving";
  app.add_option("--heartbeat-interval-ms", flags->heartbeat_interval_ms,
                 "How often this node heartbeats every other member, in ms (at\n"
                 "least 10, below --failure-timeout-ms)")
      ->check(CLI::Range(int64_t{10}, int64_t{3'600'000}))
      ->group(kFailover);
  app.add_option("--failure-timeout-ms", flags->failure_timeout_ms,
                 "A member with no heartbeat answer for this long, in ms, is\n"
                 "suspected; one suspected by a majority of the voting members\n"
                 "is declared failed and its ranges fail over to its replicas.\n"
                 "A node that cannot reach a majority for this long fences\n"
                 "itself (refuses writes). Same value on every node")
      ->check(CLI::Range(int64_t{1}, int64_t{3'600'000}))
      ->group(kFailover);
  app.add_flag("--fenced-reads", flags->fenced_reads,
               "While fenced, serve reads from this node's own copy, marked\n"
               "possibly_stale, instead of refusing them (UNAVAILABLE).\n"
               "Writes are refused while fenced either way")
      ->group(kFailover);
  app.add_flag("--drain-on-shutdown", flags->drain_on_shutdown,
               "On SIGTERM/SIGINT, first leave the cluster gracefully: stream\n"
               "this node's ranges to their next owners and leave the view,\n"
               "then shut down (exit 0). A second signal skips the drain.\n"
               "Off: the node just stops, and the others fail it over")
      ->group(kFailover);
  app.add_option("--drain-timeout-ms", flags->drain_timeout_ms,
                 "Longest the drain of --drain-on-shutdown may take, in ms,\n"
                 "before the node shuts down anyway (without having left)")
      ->check(CLI::Range(int64_t{1}, int64_t{86'400'000}))
      ->group(kFailover);
  app.add_option("--transition-warn-ms", flags->transition_warn_ms,
                 "When this node coordinates a transition (members joining or\n"
                 "leaving), log a warning once it has waited this long, in ms,\n"
                 "for a source's TransitionReady report, naming the sources it\n"
                 "waits for; again every such period while it waits. cluster\n"
                 "status and ringcache_transition_wait_seconds show the wait")
      ->check(CLI::Range(int64_t{100}, int64_t{86'400'000}))
      ->group(kFailover);

  // The cluster plane (docs/security.md).
  const char* kSecurity = "Security (docs/security.md)";
  app.add_option("--cluster-secret-file", flags->cluster_secret_file,
                 "File holding the cluster secret (16-1024 printable ASCII\n"
                 "bytes; a trailing newline is ignored), the same on every\n"
                 "member. Calls between nodes carry it; joins, views,\n"
                 "heartbeats, leaves, replication and forwarded calls without\n"
                 "it are refused (UNAUTHENTICATED). Without it the cluster\n"
                 "plane is open to anyone who can reach --listen")
      ->check(CLI::ExistingFile)
      ->group(kSecurity);
  app.add_option("--cluster-listen", flags->cluster_listen,
                 "Give the cluster plane a port of its own, HOST:PORT (port 0\n"
                 "picks a free one): members call each other only there (joins,\n"
                 "views, heartbeats, replication, forwarded calls) and --listen\n"
                 "refuses their calls, so the plane can be firewalled apart.\n"
                 "--seeds are then the other members' cluster addresses. Not\n"
                 "loopback: needs --cluster-secret-file (or --protected-mode=false)")
      ->default_str("none: the plane shares --listen")
      ->group(kSecurity);
  app.add_option("--cluster-advertise", flags->cluster_advertise,
                 "The address other members dial for this node's cluster plane,\n"
                 "HOST:PORT. Required with --seeds if --cluster-listen's host is\n"
                 "a wildcard")
      ->default_str("the bound --cluster-listen address")
      ->group(kSecurity);
  app.add_option("--auth-tokens-file", flags->auth_tokens_file,
                 "File of client tokens, one `NAME ROLE TOKEN` per line (roles\n"
                 "read, read-write, admin). Every gRPC call must then carry\n"
                 "`authorization: Bearer TOKEN` and every Redis connection\n"
                 "AUTH with one. Read again on SIGHUP. Needs\n"
                 "--cluster-secret-file")
      ->check(CLI::ExistingFile)
      ->group(kSecurity);
  app.add_option("--protected-mode", flags->protected_mode,
                 "Without --auth-tokens-file, refuse to listen (--listen,\n"
                 "--resp-listen) on anything but a loopback address, as\n"
                 "Redis's protected mode. false: allow it, on a trusted network")
      ->group(kSecurity);
  app.add_option("--tls-cert-file", flags->tls_cert_file,
                 "PEM certificate chain of this node: serve TLS on --listen\n"
                 "and present it to other members. It must name the address\n"
                 "they dial (--advertise) as a subject alternative name")
      ->check(CLI::ExistingFile)
      ->group(kSecurity);
  app.add_option("--tls-key-file", flags->tls_key_file,
                 "PEM private key of --tls-cert-file (not encrypted)")
      ->check(CLI::ExistingFile)
      ->group(kSecurity);
  app.add_option("--tls-ca-file", flags->tls_ca_file,
                 "PEM CA certificates that verify other members' certificates\n"
                 "and, with --tls-client-certs, clients'. Default: the system's")
      ->check(CLI::ExistingFile)
      ->group(kSecurity);
  app.add_option("--tls-client-certs", flags->tls_client_certs,
                 "Ask clients for a certificate signed by --tls-ca-file: none,\n"
                 "verify (check one that is sent), require (refuse a client\n"
                 "without one; members too)")
      ->check(CLI::IsMember({"none", "verify", "require"}))
      ->capture_default_str()
      ->group(kSecurity);
  app.add_flag("--tls-node-identity", flags->tls_node_identity,
               "Members' certificates name their node id (CN=<node id>): a\n"
               "member's call must come from the member it speaks for\n"
               "(needs --tls-ca-file, and --tls-client-certs require unless\n"
               "--cluster-listen: that port then requires members' certificates)")
      ->group(kSecurity);
  app.add_option("--tls-reload-s", flags->tls_reload_s,
                 "Read the TLS files again this often, in seconds: renewed\n"
                 "certificates are used without a restart")
      ->check(CLI::Range(int64_t{1}, int64_t{86400}))
      ->capture_default_str()
      ->group(kSecurity);
  app.add_option("--max-epoch-jump", flags->max_epoch_jump,
                 "Refuse a view pushed to this node more than this many epochs\n"
                 "above the one it holds (a member's bug or a forged view)")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 62))
      ->group(kSecurity);

  app.add_option("--ready-file", flags->ready_file,
                 "Once serving, atomically write `grpc=HOST:PORT`,\n"
                 "`metrics=`, `resp=` and `cluster=` (the bound addresses; empty\n"
                 "when off) to this file; it is removed at shutdown");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);  // Prints help, the version, or the error.
    return code == 0 ? kExitOk : kExitUsage;
  }
  if (CLI::Option* config = app.get_option("--config"); config->count() > 0) {
    flags->config = config->as<std::string>();
  }
  return -1;
}

// "--memory: " for a NodeOptions::Validate message about memory_bytes, and so on: the
// messages name the option fields, the user typed flags.
const char* FlagOfMessage(const std::string& message) {
  static constexpr std::pair<std::string_view, const char*> kFlags[] = {
      {"listen_address", "--listen: "},
      {"cluster_listen_address", "--cluster-listen: "},
      {"cluster_advertise_address", "--cluster-advertise: "},
      {"metrics_listen_address", "--metrics-listen: "},
      {"resp_listen_address", "--resp-listen: "},
      {"resp_threads", "--resp-threads: "},
      {"resp_max_clients", "--resp-max-clients: "},
      {"resp_idle_timeout", "--resp-idle-timeout-s: "},
      {"memory_bytes", "--memory: "},
      {"shards", "--shards: "},
      {"max_key_bytes", "--max-key-bytes: "},
      {"max_value_bytes", "--max-value-bytes: "},
      {"max_batch", "--max-batch: "},
      {"max_response_bytes", "--max-response-bytes: "},
      {"max_streams_per_connection", "--max-streams-per-connection: "},
      {"heap_release_interval", "--heap-release-interval-ms: "},
      {"threads", "--threads: "},
      {"shutdown_grace", "--shutdown-grace-ms: "},
      {"node_id", "--node-id: "},
      {"seeds", "--seeds: "},
      {"advertise_address", "--advertise: "},
      {"weight", "--weight: "},
      {"replication_factor", "--replication-factor: "},
      {"vnodes_per_weight", "--vnodes: "},
      {"join_timeout", "--join-timeout-ms: "},
      {"replication_backlog_bytes", "--replication-backlog: "},
      {"replication_ack_timeout", "--replication-ack-timeout-ms: "},
      {"forward_timeout", "--forward-timeout-ms: "},
      {"subscriber_buffer_bytes", "--subscriber-buffer-bytes: "},
      {"publish_timeout", "--publish-timeout-ms: "},
      {"pubsub_heartbeat", "--pubsub-heartbeat-ms: "},
      {"keyspace_events", "--keyspace-events: "},
      {"data_dir", "--data-dir: "},
      {"snapshot_interval", "--snapshot-interval-s: "},
      {"heartbeat_interval", "--heartbeat-interval-ms: "},
      {"failure_timeout", "--failure-timeout-ms: "},
      {"drain_timeout", "--drain-timeout-ms: "},
      {"transition_warn", "--transition-warn-ms: "},
      {"max_epoch_jump", "--max-epoch-jump: "},
      {"the cluster secret", "--cluster-secret-file: "},
      {"client_tokens_file", "--auth-tokens-file: "},
      {"tls.cert_file", "--tls-cert-file: "},
      {"tls.key_file", "--tls-key-file: "},
      {"tls.ca_file", "--tls-ca-file: "},
      {"tls.client_certs", "--tls-client-certs: "},
      {"tls.node_identity", "--tls-node-identity: "},
      {"tls.reload_interval", "--tls-reload-s: "},
  };
  for (const auto& [field, flag] : kFlags) {
    if (message.starts_with(field) &&
        (message.size() == field.size() || message[field.size()] == ' ')) {
      return flag;
    }
  }
  return "";
}

// Routes gRPC's own log lines (e.g. the reason a port cannot be bound) through spdlog.
// A failed TLS handshake (a client with the wrong CA, or plaintext on a TLS port) is one
// line per connection attempt, which anyone who can connect can repeat: those are logged
// as warnings, at most one a second with the number skipped.
void GrpcLogToSpdlog(gpr_log_func_args* args) {
  spdlog::level::level_enum level = spdlog::level::info;
  if (args->severity == GPR_LOG_SEVERITY_ERROR) level = spdlog::level::err;
  if (args->severity == GPR_LOG_SEVERITY_DEBUG) level = spdlog::level::debug;
  if (std::strstr(args->message, "Handshake failed") != nullptr) {
    static const ringcache::internal::RefusalLog handshakes(
        [](ringcache::LogLevel, std::string_view line) { spdlog::warn("{}", line); });
    handshakes.Note([args] { return "grpc: " + std::string(args->message); });
    return;
  }
  spdlog::log(level, "grpc: {} ({}:{})", args->message, args->file, args->line);
}

// NodeOptions::log: the node's cluster events (view changes, replication links) as log lines.
void NodeLog(ringcache::LogLevel level, std::string_view message) {
  spdlog::level::level_enum spd = spdlog::level::info;
  switch (level) {
    case ringcache::LogLevel::kDebug:
      spd = spdlog::level::debug;
      break;
    case ringcache::LogLevel::kInfo:
      spd = spdlog::level::info;
      break;
    case ringcache::LogLevel::kWarn:
      spd = spdlog::level::warn;
      break;
    case ringcache::LogLevel::kError:
      spd = spdlog::level::err;
      break;
  }
  spdlog::log(spd, "{}", message);
}

std::string JoinList(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& item : items) {
    if (!out.empty()) out += ",";
    out += item;
  }
  return out;
}

void SetUpLogging(const std::string& level) {
  auto logger = spdlog::stderr_color_mt("ringcached");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ [%n] %v");
  logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
  gpr_set_log_function(GrpcLogToSpdlog);
}

// Writes `content` to `path` atomically (temporary file in the same directory + rename).
bool WriteFileAtomically(const std::string& path, const std::string& content, std::string* error) {
  const std::string tmp = path + ".tmp." + std::to_string(getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << content;
    out.flush();
    if (!out) {
      *error = "cannot write " + tmp;
      std::remove(tmp.c_str());
      return false;
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    *error = "cannot rename " + tmp + " to " + path;
    std::remove(tmp.c_str());
    return false;
  }
  return true;
}

// Waits for SIGTERM/SIGINT (blocked in every thread) on its own thread. The first signal
// wakes main(); a second one during a drain (SetDraining) ends the drain (wakes main
// again); any other further signal exits at once; Stop() ends the thread. A signal before
// SetServing() (the node is still starting, e.g. joining the cluster for up to
// --join-timeout-ms) exits at once with code 1: there is nothing to shut down gracefully.
// Wake() also wakes main() (the node stopped by itself, or the drain finished).
class SignalWaiter {
 public:
  SignalWaiter() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGTERM);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGHUP);
  }
  ~SignalWaiter() { Stop(); }

  // Blocks the signals in the calling thread (and so in every thread started later).
  // Call first thing in main().
  void BlockSignals() { pthread_sigmask(SIG_BLOCK, &set_, nullptr); }

  void Start() {
    thread_ = std::thread([this] { Run(); });
  }

  // The node is serving: signals from now on mean a graceful shutdown.
  void SetServing() { serving_.store(true); }
  // Runs `reload` on the signal thread for each SIGHUP from now on (before: ignored;
  // empty: ignored again, once a reload in progress has finished).
  void SetReload(std::function<void()> reload) {
    std::lock_guard lock(reload_mu_);
    reload_ = std::move(reload);
  }
  // While true, a second signal ends the drain instead of exiting.
  void SetDraining(bool draining) { draining_.store(draining); }

  // Waits until `count` signals have arrived in all (returns true) or Wake() was called
  // since the last ClearWake() (returns false).
  bool WaitForSignals(int count) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this, count] { return count_ >= count || woken_; });
    return count_ >= count;
  }
  void Wake() {
    std::lock_guard lock(mu_);
    woken_ = true;
    cv_.notify_all();
  }
  void ClearWake() {
    std::lock_guard lock(mu_);
    woken_ = false;
  }
  // The first signal's name ("SIGTERM" if none arrived).
  const char* first_signal_name() {
    std::lock_guard lock(mu_);
    return first_ == SIGINT ? "SIGINT" : "SIGTERM";
  }

  void Stop() {
    if (!thread_.joinable()) return;
    stopping_.store(true);
    pthread_kill(thread_.native_handle(), SIGTERM);  // Blocked: sigwait picks it up.
    thread_.join();
  }

 private:
  void Run() {
    pthread_setname_np(pthread_self(), "rc-signals");
    for (;;) {
      int sig = 0;
      if (sigwait(&set_, &sig) != 0) continue;
      if (stopping_.load()) return;
      if (sig == SIGHUP) {
        std::lock_guard lock(reload_mu_);
        if (reload_) {
          reload_();
        } else {
          spdlog::info("SIGHUP received while starting: nothing to reload yet");
        }
        continue;
      }
      if (!serving_.load()) {
        spdlog::warn("{} received while starting: exiting (code {})",
                     sig == SIGINT ? "SIGINT" : "SIGTERM", kExitRuntime);
        std::_Exit(kExitRuntime);
      }
      std::lock_guard lock(mu_);
      if (count_ == 0) {
        first_ = sig;
      } else if (count_ == 1 && draining_.load()) {
        spdlog::warn("second signal ({}) during the drain: skipping it, shutting down now",
                     sig == SIGINT ? "SIGINT" : "SIGTERM");
      } else {
        spdlog::warn("another signal ({}) during shutdown: exiting now",
                     sig == SIGINT ? "SIGINT" : "SIGTERM");
        std::_Exit(kExitRuntime);
      }
      ++count_;
      cv_.notify_all();
    }
  }

  sigset_t set_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> serving_{false};
  std::atomic<bool> draining_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  // Protected by mu_.
  int count_ = 0;  // Signals received.
  int first_ = 0;  // The first one.
  bool woken_ = false;
  std::mutex reload_mu_;  // Held while reload_ runs.
  std::function<void()> reload_;
};

}  // namespace

int main(int argc, char** argv) {
  // Debian builds Abseil without NDEBUG, which leaves absl::Mutex's lock-order (deadlock)
  // detection on: every lock gRPC takes then updates a global graph under a global
  // spinlock, several % of the CPU of a busy server or client. It only checks gRPC's own
  // locks, so it goes off before gRPC starts.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  SignalWaiter signals;
  signals.BlockSignals();  // Before any thread exists, so that all inherit the mask.

  Flags flags;
  if (const int code = ParseFlags(argc, argv, &flags); code >= 0) return code;
  SetUpLogging(flags.log_level);

  ringcache::NodeOptions options{
      .node_id = flags.node_id,
      .listen_address = flags.listen,
      .metrics_listen_address = flags.metrics_listen,
      .resp_listen_address = flags.resp_listen,
      .resp_threads = flags.resp_threads,
      .resp_max_clients = flags.resp_max_clients,
      .resp_idle_timeout = std::chrono::seconds(flags.resp_idle_timeout_s),
      .memory_bytes = *ringcache::internal::ParseByteSize(flags.memory),
      .shards = flags.shards,
      .max_key_bytes = flags.max_key_bytes,
      .max_value_bytes = 0,
      .max_batch = flags.max_batch,
      .max_streams_per_connection = flags.max_streams_per_connection,
      .grow_receive_windows = flags.grow_receive_windows,
      .heap_release_interval = std::chrono::milliseconds(flags.heap_release_interval_ms),
      .threads = flags.threads,
      .shutdown_grace = std::chrono::milliseconds(flags.shutdown_grace_ms),
      .seeds = flags.seeds,
      .advertise_address = flags.advertise,
      .weight = flags.weight,
      .replication_factor = flags.replication_factor,
      .vnodes_per_weight = flags.vnodes,
      .join_timeout = std::chrono::milliseconds(flags.join_timeout_ms),
      .replication_backlog_bytes = *ringcache::internal::ParseByteSize(flags.replication_backlog),
      .replication_ack_timeout = std::chrono::milliseconds(flags.replication_ack_timeout_ms),
      .forward_timeout = std::chrono::milliseconds(flags.forward_timeout_ms),
      .data_dir = flags.data_dir,
      .snapshot_interval = std::chrono::seconds(flags.snapshot_interval_s),
      .snapshot_min_changes = flags.snapshot_min_changes,
      .subscriber_buffer_bytes = *ringcache::internal::ParseByteSize(flags.subscriber_buffer),
      .publish_timeout = std::chrono::milliseconds(flags.publish_timeout_ms),
      .pubsub_heartbeat = std::chrono::milliseconds(flags.pubsub_heartbeat_ms),
      .keyspace_events = flags.keyspace_events,
      .heartbeat_interval = std::chrono::milliseconds(flags.heartbeat_interval_ms),
      .failure_timeout = std::chrono::milliseconds(flags.failure_timeout_ms),
      .fenced_reads = flags.fenced_reads,
      .drain_on_shutdown = flags.drain_on_shutdown,
      .drain_timeout = std::chrono::milliseconds(flags.drain_timeout_ms),
      .transition_warn = std::chrono::milliseconds(flags.transition_warn_ms),
      .cluster_listen_address = flags.cluster_listen,
      .cluster_advertise_address = flags.cluster_advertise,
      .cluster_secret = {},
      .max_epoch_jump = flags.max_epoch_jump,
      .client_tokens_file = flags.auth_tokens_file,
      .protected_mode = flags.protected_mode,
      .log = NodeLog,
  };
  options.tls = {.cert_file = flags.tls_cert_file,
                 .key_file = flags.tls_key_file,
                 .ca_file = flags.tls_ca_file,
                 .client_certs = flags.tls_client_certs == "require"
                                     ? ringcache::NodeTlsOptions::ClientCerts::kRequire
                                 : flags.tls_client_certs == "verify"
                                     ? ringcache::NodeTlsOptions::ClientCerts::kVerify
                                     : ringcache::NodeTlsOptions::ClientCerts::kNone,
                 .node_identity = flags.tls_node_identity,
                 .reload_interval = std::chrono::seconds(flags.tls_reload_s)};
  if (!flags.cluster_secret_file.empty()) {
    ringcache::Result<std::string> secret = ReadSecretFile(flags.cluster_secret_file);
    if (!secret.ok()) {
      std::fprintf(stderr, "ringcached: --cluster-secret-file: %s\n",
                   secret.status().message().c_str());
      return kExitUsage;
    }
    options.cluster_secret = std::move(secret).value();
    // Anyone who can read the file can act as a member (docs/security.md).
    struct stat st {};
    if (::stat(flags.cluster_secret_file.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
      spdlog::warn(
          "--cluster-secret-file {} can be read by other users (mode {:04o}): whoever can read "
          "it can act as a cluster member; chmod 600 it",
          flags.cluster_secret_file, st.st_mode & 07777);
    }
  }
  const uint64_t max_value = *ringcache::internal::ParseByteSize(flags.max_value_bytes);
  if (max_value > (uint64_t{1} << 30)) {
    std::fprintf(stderr, "--max-value-bytes: %s is over the limit of 1GiB\n",
                 flags.max_value_bytes.c_str());
    return kExitUsage;
  }
  options.max_value_bytes = static_cast<uint32_t>(max_value);
  if (flags.max_response_bytes != "auto") {
    options.max_response_bytes = *ringcache::internal::ParseByteSize(flags.max_response_bytes);
  }
  if (ringcache::Status s = options.Validate(); !s.ok()) {
    std::fprintf(stderr,
                 "ringcached: invalid settings: %s%s\nRun with --help for more information.\n",
                 FlagOfMessage(s.message()), s.message().c_str());
    return kExitUsage;
  }

  using ringcache::internal::FormatByteSize;
  spdlog::info(
      "ringcached {} starting: node_id={} listen={} metrics_listen={} resp_listen={} "
      "resp_threads={} memory={} shards={} "
      "max_key_bytes={} max_value_bytes={} max_batch={} max_response_bytes={} "
      "max_streams_per_connection={} grow_receive_windows={} heap_release_interval_ms={} "
      "threads={} log_level={} "
      "shutdown_grace_ms={} ready_file={} config={} seeds={} advertise={} cluster_listen={} "
      "cluster_advertise={} weight={} "
      "replication_factor={} vnodes={} join_timeout_ms={} replication_backlog={} "
      "replication_ack_timeout_ms={} forward_timeout_ms={} subscriber_buffer={} "
      "publish_timeout_ms={} pubsub_heartbeat_ms={} keyspace_events={} data_dir={} "
      "snapshot_interval_s={} snapshot_min_changes={} heartbeat_interval_ms={} "
      "failure_timeout_ms={} fenced_reads={} drain_on_shutdown={} drain_timeout_ms={} "
      "transition_warn_ms={} cluster_secret_file={} max_epoch_jump={} auth_tokens_file={} "
      "protected_mode={} tls_cert_file={} tls_ca_file={} tls_client_certs={} tls_node_identity={}",
      ringcache::NodeVersion(), flags.node_id.empty() ? "(hostname)" : flags.node_id, flags.listen,
      flags.metrics_listen.empty() ? "(disabled)" : flags.metrics_listen,
      flags.resp_listen.empty() ? "(off)" : flags.resp_listen, flags.resp_threads,
      FormatByteSize(options.memory_bytes),
      flags.shards == 0 ? "auto" : std::to_string(flags.shards), flags.max_key_bytes,
      FormatByteSize(options.max_value_bytes), flags.max_batch, flags.max_response_bytes,
      flags.max_streams_per_connection == 0 ? "(grpc: none)"
                                            : std::to_string(flags.max_streams_per_connection),
      flags.grow_receive_windows, flags.heap_release_interval_ms, flags.threads, flags.log_level,
      flags.shutdown_grace_ms, flags.ready_file.empty() ? "(none)" : flags.ready_file,
      flags.config.empty() ? "(none)" : flags.config,
      flags.seeds.empty() ? "(none: new cluster)" : JoinList(flags.seeds),
      flags.advertise.empty() ? "(listen address)" : flags.advertise,
      flags.cluster_listen.empty() ? "(shares listen)" : flags.cluster_listen,
      flags.cluster_advertise.empty() ? "(cluster listen address)" : flags.cluster_advertise,
      flags.weight, flags.replication_factor, flags.vnodes, flags.join_timeout_ms,
      FormatByteSize(options.replication_backlog_bytes), flags.replication_ack_timeout_ms,
      flags.forward_timeout_ms, FormatByteSize(options.subscriber_buffer_bytes),
      flags.publish_timeout_ms, flags.pubsub_heartbeat_ms,
      flags.keyspace_events.empty() ? "(off)" : flags.keyspace_events,
      flags.data_dir.empty() ? "(none: no persistence)" : flags.data_dir, flags.snapshot_interval_s,
      flags.snapshot_min_changes, flags.heartbeat_interval_ms, flags.failure_timeout_ms,
      flags.fenced_reads, flags.drain_on_shutdown, flags.drain_timeout_ms, flags.transition_warn_ms,
      flags.cluster_secret_file.empty() ? "(none)" : flags.cluster_secret_file,
      flags.max_epoch_jump, flags.auth_tokens_file.empty() ? "(none)" : flags.auth_tokens_file,
      flags.protected_mode, flags.tls_cert_file.empty() ? "(none: plaintext)" : flags.tls_cert_file,
      flags.tls_ca_file.empty() ? "(system)" : flags.tls_ca_file, flags.tls_client_certs,
      flags.tls_node_identity);

  // NodeOptions::Validate refuses this with --seeds; without, it is a one-node cluster
  // whose view names an address that other machines cannot dial.
  if (flags.advertise.empty()) {
    const std::string host = flags.listen.substr(0, flags.listen.rfind(':'));
    if (host == "0.0.0.0" || host == "[::]" || host == "::" || host == "*" || host.empty()) {
      spdlog::warn(
          "--listen {} has a wildcard host and there is no --advertise: the cluster view "
          "names this node by that address, which other machines cannot dial; set "
          "--advertise HOST:PORT before other nodes join",
          flags.listen);
    }
  }

  // A stale ready file from an earlier run must not be mistaken for this one's.
  if (!flags.ready_file.empty()) std::remove(flags.ready_file.c_str());

  signals.Start();
  ringcache::Result<std::unique_ptr<ringcache::Node>> started = ringcache::Node::Start(options);
  if (!started.ok()) {
    const std::string& message = started.status().message();
    spdlog::error("cannot start: {}{}", FlagOfMessage(message), started.status().ToString());
    return kExitRuntime;
  }
  std::unique_ptr<ringcache::Node> node = std::move(started).value();
  signals.SetServing();
  signals.SetReload([node_ptr = node.get()] {
    if (node_ptr->options().client_tokens_file.empty()) {
      spdlog::info("SIGHUP received: nothing to reload (no --auth-tokens-file)");
      return;
    }
    if (ringcache::Status s = node_ptr->ReloadClientTokens(); !s.ok()) {
      spdlog::error("SIGHUP received: keeping the client tokens held: {}{}",
                    FlagOfMessage(s.message()), s.message());
    }
  });
  // "serving" for a member that owns its ranges; a joiner is "joining" until they arrive
  // (a "node state: joining -> serving" line follows).
  spdlog::info("{}: node_id={} grpc={} cluster={} metrics={} resp={} epoch={}",
               ringcache::NodeStateName(node->state()), node->options().node_id,
               node->grpc_address(),
               node->cluster_address().empty() ? "(shares grpc)" : node->cluster_address(),
               node->metrics_address().empty() ? "(disabled)" : node->metrics_address(),
               node->resp_address().empty() ? "(off)" : node->resp_address(), node->Stats().epoch);

  if (!flags.ready_file.empty()) {
    std::string error;
    const std::string content =
        "grpc=" + node->grpc_address() + "\nmetrics=" + node->metrics_address() +
        "\nresp=" + node->resp_address() + "\ncluster=" + node->cluster_address() + "\n";
    if (!WriteFileAtomically(flags.ready_file, content, &error)) {
      spdlog::error("cannot write the ready file: {}; shutting down", error);
      signals.SetReload({});  // The node goes away on return.
      node->Shutdown();
      return kExitRuntime;
    }
  }

  // The node stops by itself once it has left the cluster (ringcache-cli cluster leave).
  ringcache::Node* const node_ptr = node.get();
  std::thread watcher([node_ptr, &signals] {
    pthread_setname_np(pthread_self(), "rc-wait");
    node_ptr->Wait();
    signals.Wake();
  });

  auto shutdown_started = std::chrono::steady_clock::now();
  if (!signals.WaitForSignals(1)) {
    shutdown_started = std::chrono::steady_clock::now();
    spdlog::info("the node left the cluster (ringcache-cli cluster leave): exiting");
  } else {
    const char* signal_name = signals.first_signal_name();
    bool skipped_drain = false;
    if (flags.drain_on_shutdown) {
      spdlog::info(
          "{} received: draining: leaving the cluster (up to {} ms; a second signal skips "
          "the drain)",
          signal_name, flags.drain_timeout_ms);
      signals.SetDraining(true);
      ringcache::Status drained;
      std::thread drain([node_ptr, &signals, &drained] {
        pthread_setname_np(pthread_self(), "rc-drain");
        drained = node_ptr->Leave();
        signals.Wake();
      });
      const bool skipped = signals.WaitForSignals(2);
      signals.SetDraining(false);
      skipped_drain = skipped;
      if (skipped) {
        shutdown_started = std::chrono::steady_clock::now();
        node->Shutdown();  // Ends the Leave() wait.
      }
      drain.join();
      if (skipped) {
        spdlog::warn("drain skipped: the node stopped without leaving the cluster");
      } else if (drained.ok()) {
        spdlog::info("drained: the node left the cluster");
      } else {
        spdlog::warn("drain failed: {}; shutting down without leaving", drained.ToString());
      }
    }
    if (!skipped_drain) shutdown_started = std::chrono::steady_clock::now();
    spdlog::info("{} received: shutting down (grace {} ms)", signal_name, flags.shutdown_grace_ms);
  }
  signals.SetReload({});  // The node goes away below.
  node->Shutdown();
  watcher.join();
  if (!flags.ready_file.empty()) std::remove(flags.ready_file.c_str());
  const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - shutdown_started);
  spdlog::info("ringcached {} stopped after {} ms (uptime {} s); exit 0", ringcache::NodeVersion(),
               elapsed.count(), node->Stats().uptime_ms / 1000);
  node.reset();
  signals.Stop();
  return kExitOk;
}
