// Conversions between ringcache::ClusterView (lib, no protobuf) and ringcache.v1.ClusterView
// (the wire form of the Topology, WatchTopology, Join and PushView rpcs).
//
// Thread safety: pure functions.
#pragma once

#include "ringcache/cluster_view.h"
#include "ringcache/status.h"
#include "ringcache/v1/cache.pb.h"

namespace ringcache::internal {

// Fills `out` (cleared first) with `view`, members in the view's order.
void ToProto(const ClusterView& view, v1::ClusterView* out);
void ToProto(const ClusterMember& member, v1::Member* out);

// The view `in` describes, normalized (members sorted by id) and validated
// (ClusterView::Validate's INVALID_ARGUMENT otherwise). A member state this build does
// not know is kept as kUnspecified, which is not on the ring.
Result<ClusterView> FromProto(const v1::ClusterView& in);
ClusterMember FromProto(const v1::Member& in);

}  // namespace ringcache::internal
