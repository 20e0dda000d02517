// HeapReleaser: free heap memory that glibc keeps between live allocations goes back to the
// system once it passes the threshold, and not before.
#include "heap_releaser.h"

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

namespace ringcache::internal {
namespace {

// This process's resident memory, in bytes (/proc/self/statm's second field, in pages).
uint64_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  uint64_t size = 0;
  uint64_t resident = 0;
  statm >> size >> resident;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

// 1600 written blocks of 40 KiB (below glibc's mmap threshold, so they sit in the heap), then
// every block freed but one in eight: the live ones pin the heap, so glibc cannot give the
// ~55 MiB between them back by shrinking it from the top.
struct FragmentedHeap {
  static constexpr size_t kBlock = 40 << 10;
  static constexpr size_t kBlocks = 1600;
  std::vector<std::unique_ptr<char[]>> live;

  FragmentedHeap() {
    std::vector<std::unique_ptr<char[]>> all;
    for (size_t i = 0; i < kBlocks; ++i) {
      all.emplace_back(new char[kBlock]);
      std::memset(all.back().get(), 0x5a, kBlock);
    }
    for (size_t i = 0; i < kBlocks; ++i) {
      if (i % 8 == 0) live.push_back(std::move(all[i]));
    }
  }
};

TEST_CASE("HeapReleaser gives free heap memory between live blocks back to the system") {
  if (!HeapReleaser::Supported()) {
    WARN("skipped: not glibc's malloc (a sanitizer or a preloaded one)");
    return;
  }
  HeapReleaser releaser(
      {.interval = std::chrono::milliseconds(0), .threshold_bytes = uint64_t{16} << 20});
  FragmentedHeap heap;
  const uint64_t before = ResidentBytes();
  REQUIRE(releaser.CheckOnce());
  CHECK(releaser.releases() == 1);
  CHECK(releaser.free_bytes() > (uint64_t{40} << 20));
  const uint64_t after = ResidentBytes();
  INFO("resident before " << before << ", after " << after);
  // About 55 MiB was free; most of it must be gone from the resident set.
  CHECK(before > after + (uint64_t{32} << 20));
  // Given back already: the next check finds little free and resident, and leaves it.
  CHECK_FALSE(releaser.CheckOnce());
  CHECK(releaser.releases() == 1);
  CHECK(releaser.free_bytes() < (uint64_t{16} << 20));
  // The live blocks are untouched.
  for (const auto& block : heap.live) CHECK(block[FragmentedHeap::kBlock - 1] == 0x5a);
}

TEST_CASE("HeapReleaser leaves the heap alone below its threshold") {
  if (!HeapReleaser::Supported()) {
    WARN("skipped: not glibc's malloc (a sanitizer or a preloaded one)");
    return;
  }
  HeapReleaser releaser(
      {.interval = std::chrono::milliseconds(0), .threshold_bytes = uint64_t{1} << 40});
  FragmentedHeap heap;
  CHECK_FALSE(releaser.CheckOnce());
  CHECK(releaser.releases() == 0);
  CHECK(releaser.free_bytes() > (uint64_t{40} << 20));
}

TEST_CASE("HeapReleaser's own thread releases within a few intervals and stops when destroyed") {
  if (!HeapReleaser::Supported()) {
    WARN("skipped: not glibc's malloc (a sanitizer or a preloaded one)");
    return;
  }
  HeapReleaser releaser(
      {.interval = std::chrono::milliseconds(20), .threshold_bytes = uint64_t{16} << 20});
  FragmentedHeap heap;
  // Bounded wait (5 s) for the first release; the destructor then joins the thread.
  for (int i = 0; i < 500 && releaser.releases() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(releaser.releases() >= 1);
}

}  // namespace
}  // namespace ringcache::internal
