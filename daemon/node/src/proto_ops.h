// The gRPC front end's translators: ringcache.v1 requests -> Op (operation.h), and OpResult
// -> ringcache.v1 responses. Nothing here routes or executes; the decoded Op holds views into
// the request message, which must outlive it.
//
// Thread safety: pure functions.
#pragma once

#include <cstddef>

#include "operation.h"
#include "ringcache/status.h"
#include "ringcache/v1/cache.pb.h"

namespace ringcache::internal {

// Rough wire size of a Pipeline result without its value bytes: id, status, version,
// expiry, tags.
inline constexpr size_t kResultOverheadBytes = 32;

// Request -> Op. INVALID_ARGUMENT (naming the value) for an unknown read preference or set
// mode; for an Operation, also when it has no operation set.
Status DecodeOp(const v1::GetRequest& request, Op* op);
Status DecodeOp(const v1::SetRequest& request, Op* op);
Status DecodeOp(const v1::DeleteRequest& request, Op* op);
Status DecodeOp(const v1::TouchRequest& request, Op* op);
Status DecodeOp(const v1::TtlRequest& request, Op* op);
Status DecodeOp(const v1::IncrRequest& request, Op* op);
Status DecodeOp(const v1::SetRangeRequest& request, Op* op);
// INVALID_ARGUMENT for an unknown command or the wrong arguments (CheckTypedOp).
Status DecodeOp(const v1::CollectionRequest& request, Op* op);
Status DecodeOp(const v1::Operation& operation, Op* op);

// A read preference as Op::any_owner; INVALID_ARGUMENT naming an unknown value.
Status DecodeReadPreference(v1::ReadPreference preference, bool* any_owner);
// A SetRequest's options; INVALID_ARGUMENT for an unknown mode.
Status ToSetOptions(const v1::SetRequest& request, SetOptions* options);

// OpResult (of an OK operation) -> the unary response. A read's value was written in place
// (OpResult::value pointed into the response); replicas_acked is set by the caller after the
// write-concern wait.
void EncodeResult(const OpResult& result, v1::GetResponse* out);
void EncodeResult(const OpResult& result, v1::SetResponse* out);
void EncodeResult(const OpResult& result, v1::DeleteResponse* out);
void EncodeResult(const OpResult& result, v1::TouchResponse* out);
void EncodeResult(const OpResult& result, v1::TtlResponse* out);
void EncodeResult(const OpResult& result, v1::IncrResponse* out);
void EncodeResult(const OpResult& result, v1::SetRangeResponse* out);
void EncodeResult(const OpResult& result, v1::CollectionResponse* out);

// Where a Get's value goes in a Pipeline result (creates its get result); set as
// OpResult::value before executing.
std::string* PipelineValueSlot(const Op& op, v1::OperationResult* out);
// OpResult -> a Pipeline result (status or the kind's result). Returns its estimated size.
size_t EncodeResult(const Op& op, const OpResult& result, v1::OperationResult* out);
// Op -> a Pipeline operation with `id` (forwarding a batch's operation to its owner).
void EncodeOp(const Op& op, uint64_t id, v1::Operation* out);
// A Pipeline result (an owner's answer to EncodeOp's operation) -> `out`: the status, or the
// kind's result; a read's value goes to *out->value if set.
void DecodeResult(const Op& op, v1::OperationResult* in, OpResult* out);
// Writes a non-OK status into an OpStatus.
void SetOpStatus(const Status& status, v1::OpStatus* out);

}  // namespace ringcache::internal
