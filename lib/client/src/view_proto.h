// Conversion of the wire form of a cluster view (ringcache.v1.ClusterView, from the
// Topology and WatchTopology rpcs) into ringcache::ClusterView.
//
// Thread safety: pure functions.
#pragma once

#include "ringcache/cluster_view.h"
#include "ringcache/status.h"
#include "ringcache/v1/cache.pb.h"

namespace ringcache::client::internal {

// The view `in` describes, normalized (members sorted by id) and validated
// (ClusterView::Validate's INVALID_ARGUMENT otherwise). A member state this client does
// not know is kept as kUnspecified, which is not on the ring.
Result<ClusterView> ViewFromProto(const v1::ClusterView& in);

}  // namespace ringcache::client::internal
