// A file readable only by its owner (mode 0600) in a temporary directory of its own,
// removed with it: cluster secrets and client token files for the security tests.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

#include <catch2/catch.hpp>

namespace ringcache::it {

class PrivateFile {
 public:
  PrivateFile(const std::string& name, const std::string& content) {
    char dir[] = "/tmp/ringcache-private-XXXXXX";
    REQUIRE(mkdtemp(dir) != nullptr);
    dir_ = dir;
    path_ = dir_ + "/" + name;
    Write(content);
  }
  ~PrivateFile() {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  PrivateFile(const PrivateFile&) = delete;
  PrivateFile& operator=(const PrivateFile&) = delete;

  // Replaces the content (a new file renamed over the old one, as an editor saves).
  void Write(const std::string& content) {
    const std::string next = path_ + ".next";
    std::ofstream(next) << content;
    std::filesystem::permissions(
        next, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    std::filesystem::rename(next, path_);
  }
  const std::string& path() const { return path_; }

 private:
  std::string dir_;
  std::string path_;
};

}  // namespace ringcache::it
