// The cgroup CPU limit behind the default thread count (src/cpu/cgroup.{hpp,cpp}), read from
// made-up /proc and cgroup trees in a temporary directory: cgroup v2 and v1, nested limits,
// containers with and without a cgroup namespace, and files that are missing or garbage.
#include <catch2/catch.hpp>

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "cpu/cgroup.hpp"

namespace c = slstm::cpu;

namespace {

// A temporary directory standing for "/", removed with its contents at the end.
class FakeRoot {
 public:
  FakeRoot() {
    char tmpl[] = "/tmp/slstm_cgroup_XXXXXX";
    const char* made = mkdtemp(tmpl);
    REQUIRE(made != nullptr);
    dir_ = made;
  }
  ~FakeRoot() { (void)!system(("rm -rf '" + dir_ + "'").c_str()); }
  FakeRoot(const FakeRoot&) = delete;
  FakeRoot& operator=(const FakeRoot&) = delete;

  const std::string& path() const { return dir_; }

  // Writes `text` at `rel` (an absolute path inside the fake root), making its directories.
  void write(const std::string& rel, const std::string& text) const {
    for (std::string::size_type at = rel.find('/', 1); at != std::string::npos;
         at = rel.find('/', at + 1)) {
      ::mkdir((dir_ + rel.substr(0, at)).c_str(), 0700);
    }
    std::ofstream(dir_ + rel) << text;
  }

  // A cgroup v1 directory's quota and period (microseconds).
  void v1_limit(const std::string& dir, const char* quota, const char* period = "100000") const {
    write(dir + "/cpu.cfs_quota_us", std::string(quota) + "\n");
    write(dir + "/cpu.cfs_period_us", std::string(period) + "\n");
  }

 private:
  std::string dir_;
};

const char* const kV2Mount =
    "24 1 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 "
    "rw,nsdelegate,memory_recursiveprot\n";

}  // namespace

TEST_CASE("cgroup v2: the leaf's cpu.max quota over period is the limit in CPUs") {
  FakeRoot r;
  r.write("/proc/self/cgroup", "0::/app.slice/job.service\n");
  r.write("/proc/self/mountinfo", kV2Mount);
  r.write("/sys/fs/cgroup/app.slice/job.service/cpu.max", "150000 100000\n");
  CHECK(c::cgroup_cpu_limit(r.path()) == Approx(1.5));
}

TEST_CASE("cgroup v2: \"max\" everywhere is no limit") {
  FakeRoot r;
  r.write("/proc/self/cgroup", "0::/app.slice/job.service\n");
  r.write("/proc/self/mountinfo", kV2Mount);
  r.write("/sys/fs/cgroup/app.slice/job.service/cpu.max", "max 100000\n");
  r.write("/sys/fs/cgroup/app.slice/cpu.max", "max 100000\n");
  CHECK(c::cgroup_cpu_limit(r.path()) == 0);
}

TEST_CASE("cgroup v2: the smallest limit on the path up to the mount point holds") {
  FakeRoot r;
  r.write("/proc/self/cgroup", "0::/kubepods/pod1/ctr\n");
  r.write("/proc/self/mountinfo", kV2Mount);
  r.write("/sys/fs/cgroup/kubepods/pod1/ctr/cpu.max", "max 100000\n");
  r.write("/sys/fs/cgroup/kubepods/pod1/cpu.max", "300000 100000\n");
  r.write("/sys/fs/cgroup/kubepods/cpu.max", "800000 100000\n");
  CHECK(c::cgroup_cpu_limit(r.path()) == Approx(3.0));
  r.write("/sys/fs/cgroup/kubepods/pod1/ctr/cpu.max", "50000 100000\n");
  CHECK(c::cgroup_cpu_limit(r.path()) == Approx(0.5));
}

TEST_CASE("cgroup v2 in a container with its own cgroup namespace: the mount point's limit") {
  FakeRoot r;
  r.write("/proc/self/cgroup", "0::/\n");
  r.write("/proc/self/mountinfo", kV2Mount);
  r.write("/sys/fs/cgroup/cpu.max", "200000 100000\n");
  CHECK(c::cgroup_cpu_limit(r.path()) == Approx(2.0));
}

TEST_CASE("cgroup v1: cpu.cfs_quota_us over cpu.cfs_period_us, -1 being no limit") {
  FakeRoot r;
  r.write("/proc/self/cgroup",
          "12:memory:/user.slice\n4:cpu,cpuacct:/user.slice/job\n1:name=systemd:/x\n");
  r.write("/proc/self/mountinfo",
          "30 24 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:11 - cgroup cgroup "
          "rw,cpu,cpuacct\n"
          "31 24 0:27 / /sys/fs/cgroup/memory rw,nosuid shared:12 - cgroup cgroup rw,memory\n");
  r.v1_limit("/sys/fs/cgroup/cpu,cpuacct/user.slice/job", "-1");
  CHECK(c::cgroup_cpu_limit(r.path()) == 0);
  r.v1_limit("/sys/fs/cgroup/cpu,cpuacct/user.slice/job", "250000");
  CHECK(c::cgroup_cpu_limit(r.path()) == Approx(2.5));
}

TEST_CASE("a hybrid system's v1 cpu controller wins over the unified hierarchy") {
  FakeRoot r;
  r.write("/proc/self/cgroup", "0::/user.slice\n3:cpu,cpuacct:/user.slice\n");
  r.write("/proc/self/mountinfo",
          "24 1 0:22 / /sys/fs/cgroup/unified rw shared:9 - cgroup2 cgroup2 rw\n"
          "30 24 0:26 / /sys/fs/cgroup/cpu,cpuacct rw shared:11 - cgroup cgroup rw,cpu,cpuacct\n");
  r.write("/sys/fs/cgroup/unified/user.slice/cpu.max", "100000 100000\n");
  r.v1_limit("/sys/fs/cgroup/cpu,cpuacct/user.slice", "400000");
  CHECK(c::cgroup_cpu_limit(r.path()) == Approx(4.0));
}

TEST_CASE("a container without a cgroup namespace: its cgroup is the mounted root") {
  FakeRoot r;
  r.write("/proc/self/cgroup", "5:cpu,cpuacct:/docker/abc123\n");
  r.write("/proc/self/mountinfo",
          "600 590 0:26 /docker/abc123 /sys/fs/cgroup/cpu,cpuacct ro,nosuid master:11 - "
          "cgroup cgroup rw,cpuacct,cpu\n");
  r.v1_limit("/sys/fs/cgroup/cpu,cpuacct", "150000");
  CHECK(c::cgroup_cpu_limit(r.path()) == Approx(1.5));
}

TEST_CASE("a cgroup outside the mounted root: only the mount point's limit is read") {
  FakeRoot r;
  r.write("/proc/self/cgroup", "0::/elsewhere/job\n");
  r.write("/proc/self/mountinfo",
          "24 1 0:22 /docker/abc /sys/fs/cgroup rw shared:9 - cgroup2 cgroup2 rw\n");
  r.write("/sys/fs/cgroup/cpu.max", "300000 100000\n");
  r.write("/sys/fs/cgroup/elsewhere/job/cpu.max", "100000 100000\n");
  CHECK(c::cgroup_cpu_limit(r.path()) == Approx(3.0));
}

TEST_CASE("a mount point with an escaped space is found") {
  FakeRoot r;
  r.write("/proc/self/cgroup", "0::/a\n");
  r.write("/proc/self/mountinfo",
          "24 1 0:22 / /sys/fs/cg\\040root rw shared:9 - cgroup2 cgroup2 rw\n");
  r.write("/sys/fs/cg root/a/cpu.max", "100000 50000\n");
  CHECK(c::cgroup_cpu_limit(r.path()) == Approx(2.0));
}

TEST_CASE("missing, truncated or garbage cgroup files mean no limit") {
  FakeRoot r;
  CHECK(c::cgroup_cpu_limit(r.path()) == 0);  // no /proc at all
  r.write("/proc/self/cgroup", "0::/a\n");
  CHECK(c::cgroup_cpu_limit(r.path()) == 0);  // no mountinfo
  r.write("/proc/self/mountinfo", "24 1 0:22 / /sys/fs/cgroup rw - cgroup2\n");  // truncated
  r.write("/sys/fs/cgroup/a/cpu.max", "100000 100000\n");
  CHECK(c::cgroup_cpu_limit(r.path()) == 0);
  r.write("/proc/self/mountinfo", kV2Mount);
  for (const char* bad : {"", "100000", "abc 100000", "100000 0", "-5 100000", "1e5 100000",
                          "100000 100000 7", "99999999999999999999999 100000"}) {
    r.write("/sys/fs/cgroup/a/cpu.max", bad);
    INFO("cpu.max: \"" << bad << "\"");
    CHECK(c::cgroup_cpu_limit(r.path()) == 0);
  }
  r.write("/proc/self/cgroup", "garbage without colons\n::\n");
  CHECK(c::cgroup_cpu_limit(r.path()) == 0);
}

TEST_CASE("the workers a limit allows: the mask's CPUs, at most the limit rounded up") {
  CHECK(c::cpus_within_limit(64, 0) == 64);      // no limit
  CHECK(c::cpus_within_limit(64, 2) == 2);
  CHECK(c::cpus_within_limit(64, 1.5) == 2);     // part of a CPU gets a worker
  CHECK(c::cpus_within_limit(64, 2.000001) == 2);  // a hair above is that integer
  CHECK(c::cpus_within_limit(64, 0.25) == 1);    // never fewer than one
  CHECK(c::cpus_within_limit(4, 16) == 4);       // never more than the mask
  CHECK(c::cpus_within_limit(0, 3) == 1);
}

namespace {

// CPU 0's cache index `i` in the fake sysfs.
void cache_index(const FakeRoot& r, int i, const char* level, const char* type,
                 const char* size) {
  const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i);
  r.write(dir + "/level", std::string(level) + "\n");
  r.write(dir + "/type", std::string(type) + "\n");
  r.write(dir + "/size", std::string(size) + "\n");
}

}  // namespace

TEST_CASE("sysfs: the L2 size is CPU 0's level-2 unified or data cache, K and M suffixes") {
  FakeRoot r;
  cache_index(r, 0, "1", "Data", "64K");
  cache_index(r, 1, "1", "Instruction", "64K");
  cache_index(r, 2, "2", "Unified", "1024K");
  cache_index(r, 3, "3", "Unified", "32768K");
  CHECK(c::sysfs_cache_bytes(2, r.path()) == 1024 * 1024);
  cache_index(r, 2, "2", "Unified", "2M");
  CHECK(c::sysfs_cache_bytes(2, r.path()) == 2 * 1024 * 1024);
  cache_index(r, 2, "2", "Instruction", "512K");  // not a data cache: skipped
  cache_index(r, 4, "2", "Data", "1310720");      // no suffix: bytes
  CHECK(c::sysfs_cache_bytes(2, r.path()) == 1310720);
}

TEST_CASE("sysfs: the L1D size is CPU 0's level-1 data cache, never its instruction cache") {
  FakeRoot r;
  cache_index(r, 0, "1", "Instruction", "64K");  // listed first: skipped
  cache_index(r, 1, "1", "Data", "48K");
  cache_index(r, 2, "2", "Unified", "2048K");
  CHECK(c::sysfs_cache_bytes(1, r.path()) == 48 * 1024);
  CHECK(c::sysfs_cache_bytes(2, r.path()) == 2048 * 1024);
  CHECK(c::sysfs_cache_bytes(3, r.path()) == 0);  // no level 3 listed
}

TEST_CASE("sysfs: no level-2 cache, or a size that is missing or garbage, is 0") {
  FakeRoot r;
  CHECK(c::sysfs_cache_bytes(2, r.path()) == 0);  // no cache directory at all
  cache_index(r, 0, "1", "Data", "32K");
  CHECK(c::sysfs_cache_bytes(2, r.path()) == 0);  // level 1 only
  for (const char* bad : {"", "K", "0K", "-1K", "12Q", "1.5M", "99999999999999999999K",
                          "2097152M"}) {
    cache_index(r, 1, "2", "Unified", bad);
    INFO("size: \"" << bad << "\"");
    CHECK(c::sysfs_cache_bytes(2, r.path()) == 0);
  }
}

TEST_CASE("cgroup v1: a cpuset hierarchy is not the cpu controller's") {
  FakeRoot r;
  r.write("/proc/self/cgroup", "6:cpuset:/pinned\n4:cpu,cpuacct:/job\n");
  r.write("/proc/self/mountinfo",
          "29 24 0:25 / /sys/fs/cgroup/cpuset rw,nosuid shared:10 - cgroup cgroup rw,cpuset\n"
          "30 24 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:11 - cgroup cgroup "
          "rw,cpu,cpuacct\n");
  r.v1_limit("/sys/fs/cgroup/cpu,cpuacct", "-1");
  r.v1_limit("/sys/fs/cgroup/cpu,cpuacct/job", "200000");
  CHECK(c::cgroup_cpu_limit(r.path()) == Approx(2.0));
}

TEST_CASE("a hybrid system's v1 cpu line wins over the unified line listed after it") {
  // The kernel lists the hierarchies by descending ID: the unified "0::" line comes last.
  FakeRoot r;
  r.write("/proc/self/cgroup", "3:cpu,cpuacct:/job\n0::/elsewhere\n");
  r.write("/proc/self/mountinfo",
          "24 1 0:22 / /sys/fs/cgroup/unified rw shared:9 - cgroup2 cgroup2 rw\n"
          "30 24 0:26 / /sys/fs/cgroup/cpu,cpuacct rw shared:11 - cgroup cgroup rw,cpu,cpuacct\n");
  r.v1_limit("/sys/fs/cgroup/cpu,cpuacct/job", "400000");
  CHECK(c::cgroup_cpu_limit(r.path()) == Approx(4.0));
}

TEST_CASE("a cgroup whose name only begins with the mounted root's is outside it") {
  FakeRoot r;
  r.write("/proc/self/cgroup", "0::/docker/abcdef/job\n");
  r.write("/proc/self/mountinfo",
          "24 1 0:22 /docker/abc /sys/fs/cgroup rw shared:9 - cgroup2 cgroup2 rw\n");
  r.write("/sys/fs/cgroup/cpu.max", "300000 100000\n");
  // What "/docker/abcdef/job" less the root's characters would name below the mount point.
  r.write("/sys/fs/cgroupdef/job/cpu.max", "100000 100000\n");
  CHECK(c::cgroup_cpu_limit(r.path()) == Approx(3.0));
}

TEST_CASE("a mount point with an escaped backslash is found") {
  FakeRoot r;
  r.write("/proc/self/cgroup", "0::/a\n");
  r.write("/proc/self/mountinfo",
          "24 1 0:22 / /sys/fs/cg\\134root rw shared:9 - cgroup2 cgroup2 rw\n");
  r.write("/sys/fs/cg\\root/a/cpu.max", "100000 50000\n");
  CHECK(c::cgroup_cpu_limit(r.path()) == Approx(2.0));
}

TEST_CASE("cgroup v2: a v1 cgroup mount listed before the cgroup2 one is not taken") {
  FakeRoot r;
  r.write("/proc/self/cgroup", "0::/a\n");
  r.write("/proc/self/mountinfo",
          std::string("31 24 0:27 / /sys/fs/cgroup/net_cls rw,nosuid shared:12 - cgroup cgroup "
                      "rw,net_cls\n") + kV2Mount);
  r.write("/sys/fs/cgroup/a/cpu.max", "200000 100000\n");
  CHECK(c::cgroup_cpu_limit(r.path()) == Approx(2.0));
}

TEST_CASE("a limit far below one CPU still gives one worker") {
  CHECK(c::cpus_within_limit(64, 1e-6) == 1);  // a quota of 1 us per second
  CHECK(c::cpus_within_limit(64, 1e-9) == 1);
}

TEST_CASE("sysfs: an absent cache index is skipped, not the end of the search") {
  FakeRoot r;
  cache_index(r, 0, "1", "Data", "48K");
  cache_index(r, 2, "2", "Unified", "2048K");  // no index1
  CHECK(c::sysfs_cache_bytes(2, r.path()) == 2048 * 1024);
}
