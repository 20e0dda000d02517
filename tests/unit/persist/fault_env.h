// FaultEnv: an Env over the real file system that can fail on demand, for the persistence
// tests: a write past a byte budget fails as a full disk (after writing what fit: a short
// write), fsyncs can fail, and PowerLoss() truncates every file written through it to
// what was synced, as a machine losing power would leave it (the page cache gone).
//
// Thread safety: one test thread.
#pragma once

#include <unistd.h>

#include <map>
#include <memory>
#include <string>

#include "ringcache/env.h"

namespace ringcache::testing {

class FaultEnv final : public Env {
 public:
  // Bytes every file together may still take before writes fail with "No space left on
  // device"; -1 = unlimited.
  int64_t space_left = -1;
  bool fail_sync = false;
  bool fail_rename = false;

  // Every file written through this env loses what was not synced (a renamed file keeps
  // the state of its content: rename is a directory change, synced by SyncDir).
  void PowerLoss() {
    for (const auto& [path, synced] : synced_) {
      if (::truncate(path.c_str(), static_cast<off_t>(synced)) != 0) continue;
    }
  }

  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    Result<std::unique_ptr<WritableFile>> real = Env::Default()->NewWritableFile(path);
    if (!real.ok()) return real;
    synced_[path] = 0;
    return std::unique_ptr<WritableFile>(new File(this, path, std::move(real).value()));
  }
  Result<std::unique_ptr<SequentialFile>> NewSequentialFile(const std::string& path) override {
    return Env::Default()->NewSequentialFile(path);
  }
  Result<uint64_t> FileSize(const std::string& path) override {
    return Env::Default()->FileSize(path);
  }
  Status RenameFile(const std::string& from, const std::string& to) override {
    if (fail_rename)
      return Status::Unavailable("cannot rename to " + to + " " + from + ": injected");
    Status s = Env::Default()->RenameFile(from, to);
    if (s.ok()) {
      auto it = synced_.find(from);
      if (it != synced_.end()) {
        synced_[to] = it->second;
        synced_.erase(it);
      }
    }
    return s;
  }
  Status RemoveFile(const std::string& path) override {
    synced_.erase(path);
    return Env::Default()->RemoveFile(path);
  }
  Status CreateDir(const std::string& path) override { return Env::Default()->CreateDir(path); }
  Status SyncDir(const std::string& path) override { return Env::Default()->SyncDir(path); }

 private:
  class File final : public WritableFile {
   public:
    File(FaultEnv* env, std::string path, std::unique_ptr<WritableFile> real)
        : env_(env), path_(std::move(path)), real_(std::move(real)) {}
    Status Append(std::string_view data) override {
      if (env_->space_left >= 0 && static_cast<int64_t>(data.size()) > env_->space_left) {
        const auto fit = static_cast<size_t>(env_->space_left);
        (void)real_->Append(data.substr(0, fit));  // A short write, then the error.
        written_ += fit;
        env_->space_left = 0;
        return Status::Unavailable("cannot write " + path_ + ": No space left on device");
      }
      if (env_->space_left >= 0) env_->space_left -= static_cast<int64_t>(data.size());
      written_ += data.size();
      return real_->Append(data);
    }
    Status WriteAt(uint64_t offset, std::string_view data) override {
      return real_->WriteAt(offset, data);
    }
    Status Sync() override {
      if (env_->fail_sync) return Status::Unavailable("cannot sync " + path_ + ": injected");
      Status s = real_->Sync();
      if (s.ok()) env_->synced_[path_] = written_;
      return s;
    }
    Status Close() override { return real_->Close(); }

   private:
    FaultEnv* const env_;
    const std::string path_;
    std::unique_ptr<WritableFile> real_;
    uint64_t written_ = 0;
  };

  std::map<std::string, uint64_t> synced_;  // path -> bytes synced
};

}  // namespace ringcache::testing
