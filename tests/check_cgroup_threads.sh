#!/bin/sh
# A process in a cgroup limited to one CPU gets one worker by default (num_threads = 0), and
# the plan says why: the end-to-end check of src/cpu/cgroup.cpp on this machine's real
# cgroup tree (v1 cpu controller or v2 with the cpu controller).  Skipped (exit 77, saying
# why) where no cgroup can be made here: not root, no writable cpu controller, or one CPU.
# Usage: check_cgroup_threads.sh <path to libstacklstm.so> <python/ folder>
set -u
lib=$1
pkg=$2
skip() { echo "SKIPPED: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "not root: cannot make a cgroup"
[ "$(nproc)" -ge 2 ] || skip "one CPU here: a one-CPU limit changes nothing"
/usr/bin/python3 -c "import numpy" 2>/dev/null || skip "no /usr/bin/python3 with numpy"
name="slstm_threads_$$"
if [ -w /sys/fs/cgroup/cpu ] && [ -f /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]; then
  dir=/sys/fs/cgroup/cpu/$name
  mkdir "$dir" 2>/dev/null || skip "cannot create $dir"
  echo 100000 > "$dir/cpu.cfs_period_us" && echo 100000 > "$dir/cpu.cfs_quota_us" ||
    { rmdir "$dir"; skip "cannot set the v1 quota"; }
elif [ -f /sys/fs/cgroup/cgroup.controllers ] && grep -qw cpu /sys/fs/cgroup/cgroup.controllers
then
  dir=/sys/fs/cgroup/$name
  echo +cpu > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null
  mkdir "$dir" 2>/dev/null || skip "cannot create $dir"
  echo "100000 100000" > "$dir/cpu.max" 2>/dev/null || { rmdir "$dir"; skip "cannot set cpu.max"; }
else
  skip "no writable cgroup cpu controller (v1 /sys/fs/cgroup/cpu or v2 with cpu)"
fi
# The child moves itself into the cgroup, then asks a session with num_threads = 0.
out=$(sh -c 'echo $$ > "$1/cgroup.procs" && exec env SLSTM_LIBRARY="$2" PYTHONPATH="$3" \
  /usr/bin/python3 -c "
import stacklstm
m = stacklstm.Model.random(8, [64])
p = m.session(1, 4).describe(\"json\")[\"params\"]
print(p[\"threads\"], \"|\", p[\"threads_reason\"])
"' sh "$dir" "$lib" "$pkg" 2>&1)
rc=$?
rmdir "$dir" 2>/dev/null
[ "$rc" = 0 ] || { echo "the child failed (exit $rc): $out"; exit 1; }
echo "in a cgroup of one CPU: threads $out"
case "$out" in
  "1 | one per CPU this process may run on (1, its cgroup's CPU limit 1, rounded up;"*) ;;
  *) echo "expected 1 worker, named for the cgroup's CPU limit"; exit 1 ;;
esac
echo "ok"
