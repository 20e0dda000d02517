// CPU time of other processes (the servers a benchmark drives), from /proc: what each
// benchmark reports beside its ops/s as CPU time per operation.
//
//   const double before = ProcessesCpuSeconds(pids);
//   ... run ...
//   const double us_per_op = (ProcessesCpuSeconds(pids) - before) * 1e6 / ops;
//
// Resolution: the kernel's clock tick (10 ms), so runs should last seconds.
#pragma once

#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace ringcache::bench {

// User + system CPU seconds of a process (/proc/PID/stat fields 14 and 15); 0 if it is gone.
inline double ProcessCpuSeconds(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(in, line);
  // The fields after the command name (which may hold spaces) start after the last ')'.
  const size_t close = line.rfind(')');
  if (close == std::string::npos || close + 2 > line.size()) return 0;
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14 || i == 15) ticks += std::stod(field);
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// The sum over `pids`.
inline double ProcessesCpuSeconds(const std::vector<int>& pids) {
  double total = 0;
  for (int pid : pids) total += ProcessCpuSeconds(pid);
  return total;
}

}  // namespace ringcache::bench
