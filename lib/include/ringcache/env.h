// Env: the file operations persistence needs, behind an interface (leveldb's Env), so that
// tests can inject short writes, a full disk, failed fsyncs and a power loss that drops
// every byte not yet synced (tests/unit/persist/fault_env.h).
//
//   Env* env = Env::Default();
//   auto file = env->NewWritableFile("/var/lib/ringcache/snapshot.rcs.tmp");
//   (*file)->Append(bytes); (*file)->Sync(); (*file)->Close();
//   env->RenameFile(tmp, final); env->SyncDir("/var/lib/ringcache");
//
// Errors are Status: UNAVAILABLE for an I/O error (the message names the path and the
// system's reason, e.g. "No space left on device"), NOT_FOUND for a file to read that is
// not there.
//
// Thread safety: Env::Default() may be used from any thread; one file object is used by
// one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "ringcache/status.h"

namespace ringcache {

// A file being written from its start (the file is created or truncated).
class WritableFile {
 public:
  virtual ~WritableFile() = default;  // Closes the file if Close was not called.
  virtual Status Append(std::string_view data) = 0;
  // Overwrites bytes already appended, at `offset` (pwrite): a header completed last.
  virtual Status WriteAt(uint64_t offset, std::string_view data) = 0;
  // Makes everything written so far durable (fdatasync).
  virtual Status Sync() = 0;
  virtual Status Close() = 0;
};

// A file read from its start.
class SequentialFile {
 public:
  virtual ~SequentialFile() = default;
  // Reads up to `n` bytes into *out (replacing its contents); fewer at the end of the
  // file, none past it.
  virtual Status Read(size_t n, std::string* out) = 0;
};

class Env {
 public:
  virtual ~Env() = default;
  virtual Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) = 0;
  virtual Result<std::unique_ptr<SequentialFile>> NewSequentialFile(const std::string& path) = 0;
  virtual Result<uint64_t> FileSize(const std::string& path) = 0;
  // Replaces `to` with `from` atomically (rename(2)).
  virtual Status RenameFile(const std::string& from, const std::string& to) = 0;
  virtual Status RemoveFile(const std::string& path) = 0;
  // Creates the directory (one level) unless it exists as a directory.
  virtual Status CreateDir(const std::string& path) = 0;
  // Makes the directory's entries (a rename) durable (fsync of the directory).
  virtual Status SyncDir(const std::string& path) = 0;

  // The process's real file system. Never null, never freed.
  static Env* Default();
};

}  // namespace ringcache
