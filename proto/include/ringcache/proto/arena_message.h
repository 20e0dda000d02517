// ArenaMessage: a protobuf message on an arena of its own, for messages that are filled,
// used and dropped over and over (a Pipeline stream's requests and responses). Reset()
// drops the message and everything allocated for it at once and hands out a new, empty
// one, so a message of a few dozen fields costs a block or two from the allocator rather
// than an allocation per field and submessage (strings longer than std::string's inline
// capacity still allocate their characters).
//
// The arena keeps its first block across Reset, but protobuf's arena gives that block to
// the thread that last reset it: another thread allocating from it starts a block of its
// own (of `block_bytes`). So a message is best reset by the thread that fills it.
//
// Thread safety: none of its own; whoever owns the message (see the users) hands it over
// with the usual synchronization. Not movable: hold it by pointer.
#pragma once

#include <google/protobuf/arena.h>

#include <cstddef>
#include <memory>

namespace ringcache::internal {

// Options for an arena whose first block is `block` (`bytes`, owned by the caller, kept
// across Reset) and whose later blocks are as large (at least 64 KiB at most).
inline google::protobuf::ArenaOptions FirstBlockArenaOptions(char* block, size_t bytes) {
  google::protobuf::ArenaOptions options;
  options.initial_block = block;
  options.initial_block_size = bytes;
  options.start_block_size = bytes;
  options.max_block_size = bytes > (size_t{64} << 10) ? bytes : (size_t{64} << 10);
  return options;
}

template <typename Message>
class ArenaMessage {
 public:
  // `block_bytes`: the size of the arena's first block (allocated here, kept across Reset)
  // and of the blocks it allocates later.
  explicit ArenaMessage(size_t block_bytes)
      : block_(new char[block_bytes]),
        arena_(FirstBlockArenaOptions(block_.get(), block_bytes)),
        message_(google::protobuf::Arena::CreateMessage<Message>(&arena_)) {}
  ArenaMessage(const ArenaMessage&) = delete;
  ArenaMessage& operator=(const ArenaMessage&) = delete;

  Message* get() const { return message_; }
  Message* operator->() const { return message_; }

  // Drops the message and everything allocated on the arena; returns the new empty message.
  Message* Reset() {
    arena_.Reset();
    message_ = google::protobuf::Arena::CreateMessage<Message>(&arena_);
    return message_;
  }

 private:
  std::unique_ptr<char[]> block_;  // Before arena_: outlives it.
  google::protobuf::Arena arena_;
  Message* message_;  // On arena_.
};

}  // namespace ringcache::internal
