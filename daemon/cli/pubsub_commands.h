// ringcache-cli publish and subscribe (docs/design/pubsub.md).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cli_support.h"

namespace ringcache::cli {

// Publishes `message` on `channel` through the node at --addr; prints how many
// subscriptions in the cluster it reached (and on stderr how many nodes did not answer).
int CmdPublish(Connection& conn, const std::string& channel, const std::string& message);

// Subscribes on the node at --addr and prints each message as "CHANNEL<TAB>PAYLOAD" (a
// pattern subscription's with "<TAB>PATTERN" after it; bytes outside printable ASCII as
// \xNN) until Ctrl-C, or until `count` messages (0 = no limit). Missed messages (a skipped
// sequence number) are reported on stderr. Exit 3 when the stream ends otherwise.
int CmdSubscribe(Connection& conn, const std::vector<std::string>& channels,
                 const std::vector<std::string>& patterns, uint64_t count);

}  // namespace ringcache::cli
