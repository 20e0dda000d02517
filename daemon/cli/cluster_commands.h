// ringcache-cli's node and cluster commands (docs/operations.md): stats, snapshot, cluster
// status, cluster leave. Each prints what main.cc's help for it says and returns the exit code.
#pragma once

#include <string>

#include "cli_support.h"

namespace ringcache::cli {

// A node state as the CLI shows it ("serving", "fenced", ...).
std::string NodeStateText(pb::NodeState state);
// The node's cache counters as a table.
int CmdStats(Connection& conn);
// The cluster view, each node's share of the keys and the replication links.
int CmdClusterStatus(Connection& conn);
// Makes the node at --addr leave the cluster gracefully; unless `no_wait`, follows the
// drain until it is out of the view.
int CmdClusterLeave(Connection& conn, bool no_wait, const std::string& secret_file);
// Has the node at --addr write a snapshot to its --data-dir now; prints what it wrote.
int CmdSnapshot(Connection& conn);

}  // namespace ringcache::cli
