// ringcache::SetMode <-> ringcache.v1.SetMode, for every C++ side of the protocol (the
// node's front end, the cluster client). Header-only: include it where both ringcache::core
// and ringcache::proto are linked.
#pragma once

#include "ringcache/cache.h"
#include "ringcache/v1/cache.pb.h"

namespace ringcache::proto {

inline v1::SetMode ToProto(SetMode mode) {
  switch (mode) {
    case SetMode::kAlways:
      return v1::SET_MODE_ALWAYS;
    case SetMode::kIfAbsent:
      return v1::SET_MODE_IF_ABSENT;
    case SetMode::kIfPresent:
      return v1::SET_MODE_IF_PRESENT;
    case SetMode::kIfVersion:
      return v1::SET_MODE_IF_VERSION;
  }
  return v1::SET_MODE_ALWAYS;
}

// The wire enum, which may carry any int, to the library's; false for an unknown value.
inline bool FromProto(v1::SetMode mode, SetMode* out) {
  switch (mode) {
    case v1::SET_MODE_ALWAYS:
      *out = SetMode::kAlways;
      return true;
    case v1::SET_MODE_IF_ABSENT:
      *out = SetMode::kIfAbsent;
      return true;
    case v1::SET_MODE_IF_PRESENT:
      *out = SetMode::kIfPresent;
      return true;
    case v1::SET_MODE_IF_VERSION:
      *out = SetMode::kIfVersion;
      return true;
    default:
      return false;
  }
}

}  // namespace ringcache::proto
