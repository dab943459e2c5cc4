// What the fast path reads of the machine from /proc and /sys.
//
// The CPU bandwidth limit of the control group the process runs in (containers: docker
// --cpus, a Kubernetes CPU limit, systemd's CPUQuota): the default thread count honours it
// as it honours the affinity mask, since a pool of 64 spinning workers on a 2-CPU quota
// burns the quota in a few milliseconds and then waits out the rest of each period (100 ms
// by default) throttled.  And one core's L2 size where the C library does not say it
// (glibc's sysconf on aarch64 answers 0).
#pragma once

#include <cstdint>
#include <string>

namespace slstm::cpu {

// The limit in CPUs (quota / period: 1.5 for docker --cpus=1.5), the smallest of those set on
// the process's cgroup and its ancestors up to the hierarchy's mount point; 0 when none is
// set or anything needed cannot be read or parsed.  cgroup v2 (cpu.max) or v1 (the cpu
// controller's cpu.cfs_quota_us and cpu.cfs_period_us; v1 wins on a hybrid system, where it
// holds the cpu controller).  The files read: /proc/self/cgroup, /proc/self/mountinfo and the
// limit files below the mount point, each path prefixed by `root` ("" on a real system; the
// tests give a directory holding a made-up tree).  Never throws.
double cgroup_cpu_limit(const std::string& root = "");

// How many workers `mask` CPUs under a cgroup limit of `limit` CPUs (0: none) take: the mask's
// count, at most the limit rounded up (1.5 -> 2: a worker per CPU the quota pays for, part
// of one included), at least 1.
int cpus_within_limit(int mask, double limit);

// CPU 0's level-`level` data cache (a unified or data cache of that level; never an
// instruction cache) in bytes, from
// /sys/devices/system/cpu/cpu0/cache/index*/{level,type,size} ("1024K"; K, M or no suffix),
// the path prefixed by `root` as above; 0 when there is none or it cannot be read or parsed.
// Never throws.
std::int64_t sysfs_cache_bytes(int level, const std::string& root = "");

}  // namespace slstm::cpu
