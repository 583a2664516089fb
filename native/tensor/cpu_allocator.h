// A caching allocator for libtorch's large CPU tensors (installed once, when the addon loads).
#pragma once

#include <cstdint>
#include <string>

namespace difftune {

struct CpuAllocatorStats {
  std::string source;         // "difftune", "environment" (switched off by the user) or "unsupported"
  int64_t minBlockBytes = 0;  // requests below this go to libtorch's default allocator
  int64_t slackBytes = 0;     // what may be kept beyond the largest live set seen
  int64_t cachedBytes = 0;    // freed blocks kept for reuse now
  int64_t liveBytes = 0;      // handed out and not yet freed
  int64_t peakLiveBytes = 0;  // the largest live set since the last release
  int64_t peakBytes = 0;      // most live + cached bytes at any time (what the cache costs in RSS)
  int64_t hits = 0;           // requests served from the cache
  int64_t misses = 0;         // requests that mapped fresh pages
  int64_t evictions = 0;      // kept blocks returned to the OS to stay within the bound
};

// Installs the cache as libtorch's CPU allocator unless DIFFTUNE_CPU_CACHE=0 (DIFFTUNE_CPU_CACHE_SLACK_MB
// fixes the slack). Idempotent.
void installCpuAllocator();

CpuAllocatorStats cpuAllocatorStats();

// Returns every kept block to the OS (live blocks stay) and restarts the live high-water mark: for the
// end of a run, before the process goes on to other work.
void releaseCpuAllocatorCache();

}  // namespace difftune
