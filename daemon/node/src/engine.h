// The engine step of the operation path (docs/design/operations.md): an Op run on this
// node's data, through Node (so writes are replicated and fenced like any other).
//
// Thread safety: as Node.
#pragma once

#include "operation.h"
#include "ringcache/node/node.h"

namespace ringcache::internal {

// The engine step: runs `op` on this node's data and fills `result`. `ticket` (may be null)
// receives where its write stands in replication (for a write-concern wait). Routing,
// fencing and write-concern limits were checked before (Router::Route).
void ExecuteLocal(Node* node, const Op& op, OpResult* result, WriteTicket* ticket);

}  // namespace ringcache::internal
