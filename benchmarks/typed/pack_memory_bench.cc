// Memory of typed values: N keys of F elements each, written with the typed commands
// (ringcache/typed.h's RunTyped on a ringcache::Cache) and measured in this process:
// resident memory, malloc's in-use bytes and the bytes the cache charges, each per
// element. --family picks hashes (8-byte field names, 16-byte values), lists or sets
// (16-byte elements). run_pack_memory_bench.sh runs it side by side with redis-server
// holding the same data (--emit-redis writes it as RESP HSET / RPUSH / SADD commands for
// redis-cli --pipe).
//
//   pack_memory_bench [--family hash|list|set] [--hashes N] [--fields F] [--emit-redis]
//                     [--smoke]
#include <malloc.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ringcache/cache.h"
#include "ringcache/typed.h"

namespace {

std::string KeyOf(uint64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "hash:%08" PRIu64, i);
  return buf;
}
// A list's or set's element: 16 bytes, distinct within a key.
std::string ElementOf(uint64_t i, uint64_t f) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "e%07" PRIu64 "%08" PRIu64, f % 10000000, (i * 131) % 100000000);
  return buf;
}
std::string FieldOf(uint64_t f) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "field_%02" PRIu64, f % 100);
  return buf;  // 8 bytes.
}
std::string ValueOf(uint64_t i, uint64_t f) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "v%015" PRIu64, (i * 131 + f) % uint64_t{1000000000000000});
  return buf;  // 16 bytes.
}

uint64_t RssBytes() {
  std::ifstream in("/proc/self/statm");
  uint64_t size = 0;
  uint64_t resident = 0;
  in >> size >> resident;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

void AppendBulk(std::string* out, std::string_view s) {
  *out += "$" + std::to_string(s.size()) + "\r\n";
  out->append(s);
  *out += "\r\n";
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t hashes = 100000;
  uint64_t fields = 10;
  bool emit = false;
  std::string family = "hash";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--family" && i + 1 < argc) {
      family = argv[++i];
      if (family != "hash" && family != "list" && family != "set") {
        std::fprintf(stderr, "--family: hash, list or set, not %s\n", family.c_str());
        return 2;
      }
    } else if (a == "--hashes" && i + 1 < argc) {
      hashes = std::strtoull(argv[++i], nullptr, 10);
    } else if (a == "--fields" && i + 1 < argc) {
      fields = std::strtoull(argv[++i], nullptr, 10);
    } else if (a == "--emit-redis") {
      emit = true;
    } else if (a == "--smoke") {
      hashes = 1000;
    } else {
      std::fprintf(stderr,
                   "usage: %s [--family hash|list|set] [--hashes N] [--fields F] [--emit-redis] "
                   "[--smoke]\n",
                   argv[0]);
      return 2;
    }
  }
  const bool hash = family == "hash";
  if (emit) {
    std::string out;
    for (uint64_t i = 0; i < hashes; ++i) {
      out += "*" + std::to_string(2 + (hash ? 2 : 1) * fields) + "\r\n";
      AppendBulk(&out, hash ? "HSET" : family == "list" ? "RPUSH" : "SADD");
      AppendBulk(&out, KeyOf(i));
      for (uint64_t f = 0; f < fields; ++f) {
        if (hash) {
          AppendBulk(&out, FieldOf(f));
          AppendBulk(&out, ValueOf(i, f));
        } else {
          AppendBulk(&out, ElementOf(i, f));
        }
      }
      if (out.size() > (1 << 20)) {
        std::fwrite(out.data(), 1, out.size(), stdout);
        out.clear();
      }
    }
    std::fwrite(out.data(), 1, out.size(), stdout);
    return 0;
  }

  auto cache =
      ringcache::Cache::Create({.capacity_bytes = uint64_t{8} << 30, .start_janitor = false})
          .value();
  // The keys, fields and values are built before the baseline, so that only what the
  // cache holds is measured.
  std::vector<std::string> field_names;
  for (uint64_t f = 0; f < fields; ++f) field_names.push_back(FieldOf(f));
  malloc_trim(0);
  const uint64_t rss0 = RssBytes();
  const uint64_t heap0 = mallinfo2().uordblks;
  std::vector<std::string> values(fields);
  std::vector<std::string_view> args;
  const ringcache::TypedCommand command = hash               ? ringcache::TypedCommand::kHSet
                                          : family == "list" ? ringcache::TypedCommand::kRPush
                                                             : ringcache::TypedCommand::kSAdd;
  ringcache::CacheStore store(*cache);
  ringcache::TypedReply reply;
  for (uint64_t i = 0; i < hashes; ++i) {
    args.clear();
    for (uint64_t f = 0; f < fields; ++f) {
      values[f] = hash ? ValueOf(i, f) : ElementOf(i, f);
      if (hash) args.push_back(field_names[f]);
      args.push_back(values[f]);
    }
    const ringcache::Status s =
        ringcache::RunTyped(store, KeyOf(i), {.command = command, .args = args}, &reply);
    if (!s.ok()) {
      std::fprintf(stderr, "%s failed at %" PRIu64 ": %s\n", family.c_str(), i,
                   s.ToString().c_str());
      return 1;
    }
  }
  const uint64_t heap1 = mallinfo2().uordblks;
  const uint64_t rss1 = RssBytes();
  const double n = static_cast<double>(hashes * fields);
  std::printf("ringcache: %" PRIu64 " %ss x %" PRIu64
              " elements: per element %.1f B resident, %.1f B malloc in use, %.1f B charged\n",
              hashes, family.c_str(), fields, static_cast<double>(rss1 - rss0) / n,
              static_cast<double>(heap1 - heap0) / n,
              static_cast<double>(cache->Stats().bytes_used) / n);
  return 0;
}
