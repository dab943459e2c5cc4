#!/bin/sh
# A process in a cgroup limited to one CPU gets one worker by default (num_threads = 0), and
# the plan says why: the end-to-end check of src/cpu/cgroup.cpp on this machine's real
# cgroup tree (v1 cpu controller or v2 with the cpu controller).  A limit above the CPUs of
# its affinity mask changes nothing, and the plan names the mask alone.  Skipped (exit 77,
# saying why) where no cgroup can be made here: not root, no writable cpu controller, or one
# CPU.
# Usage: check_cgroup_threads.sh <path to libstacklstm.so> <python/ folder>
set -u
lib=$1
pkg=$2
skip() { echo "SKIPPED: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "not root: cannot make a cgroup"
cpus=$(nproc)
[ "$cpus" -ge 2 ] || skip "one CPU here: a one-CPU limit changes nothing"
/usr/bin/python3 -c "import numpy" 2>/dev/null || skip "no /usr/bin/python3 with numpy"
# make_cgroup NAME N: a cgroup named NAME limited to N CPUs; its path in $dir.
make_cgroup() {
  if [ -w /sys/fs/cgroup/cpu ] && [ -f /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]; then
    dir=/sys/fs/cgroup/cpu/$1
    mkdir "$dir" 2>/dev/null || skip "cannot create $dir"
    echo 100000 > "$dir/cpu.cfs_period_us" && echo "$(($2 * 100000))" > "$dir/cpu.cfs_quota_us" ||
      { rmdir "$dir"; skip "cannot set the v1 quota"; }
  elif [ -f /sys/fs/cgroup/cgroup.controllers ] && grep -qw cpu /sys/fs/cgroup/cgroup.controllers
  then
    dir=/sys/fs/cgroup/$1
    echo +cpu > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null
    mkdir "$dir" 2>/dev/null || skip "cannot create $dir"
    echo "$(($2 * 100000)) 100000" > "$dir/cpu.max" 2>/dev/null ||
      { rmdir "$dir"; skip "cannot set cpu.max"; }
  else
    skip "no writable cgroup cpu controller (v1 /sys/fs/cgroup/cpu or v2 with cpu)"
  fi
}
# ask: a child moves itself into $dir, then asks a session with num_threads = 0 for its
# threads and their reason ("threads | threads_reason" in $out); $dir is removed.
ask() {
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
}
make_cgroup "slstm_threads_$$" 1
ask
echo "in a cgroup of one CPU: threads $out"
case "$out" in
  "1 | one per CPU this process may run on (1, its cgroup's CPU limit 1, rounded up;"*) ;;
  *) echo "expected 1 worker, named for the cgroup's CPU limit"; exit 1 ;;
esac
# A limit of one CPU more than the mask has: the mask's CPUs (at most 4: the model's 16-unit
# groups), the reason naming the mask alone.
make_cgroup "slstm_threads_wide_$$" "$((cpus + 1))"
ask
echo "in a cgroup of $((cpus + 1)) CPUs: threads $out"
want=$cpus
[ "$want" -le 4 ] || want=4
case "$out" in
  "$want | one per CPU this process may run on ($cpus, its affinity mask),"*) ;;
  *) echo "expected $want workers, named for the affinity mask alone"; exit 1 ;;
esac
echo "ok"
