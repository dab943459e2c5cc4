"""Mutation check of the C/C++ code: do the tests notice a wrong line?

Each mutant of a list (JSON) changes one piece of the library's source (a check dropped, a
comparison flipped, an index off by one, two arguments swapped: a bug a change could bring),
rebuilds, and runs the tests that should notice it. A mutant the tests do not kill is a
behaviour no test pins down, unless the list marks it "equivalent" (no observable change:
the reason is given there). The Python package has its own tool (py_mutation.py).

    python3 tests/tools/cpp_mutation.py --build DIR --list FILE [--jobs N] [--timeout S]
        [--log FILE] [ID...]

DIR is a build folder configured from this checkout (cmake -S . -B DIR -DSLSTM_BUILD_TESTS=ON,
and whatever options the mutants' tests need); it is rebuilt incrementally for each mutant and
once more at the end, so it matches the sources again when the tool exits. A mutant is

    {"id": "g1", "file": "src/cpu/generic_backend.cpp", "desc": "what the bug would be",
     "old": "text to replace", "new": "its replacement", "occ": 0,
     "targets": ["stacklstm", "slstm_tests"],
     "ctest": "regex of ctest names",
     "run": ["SLSTM_TEST_CPU_PATH=fast $BUILD/tests/slstm_tests '[gru]'"],
     "equivalent": "why no test can see it"}

"old" must occur once in the file, or "occ" (0-based) picks the occurrence. "targets"
(default: everything) are the CMake targets rebuilt for it. It is killed when "ctest" (run
as `ctest -R`; at least one test must match) or any "run" command (bash, in the checkout,
with $BUILD set to DIR) fails or runs past --timeout (default 600 s). A mutant that does not
compile is reported NOT BUILT, never killed: such a mutant proves nothing (fix the list).
Unmutated, every mutant's tests must pass first (else every mutant would count as killed).

Files are changed in place and restored after each mutant (also on Ctrl-C or SIGTERM); the
tool refuses to start while a file it would change has uncommitted changes, or while another
run of it holds the checkout (a lock in the git folder). A write dates
the file past the newest object in DIR where the clock went back since that was built, so
no stale object stays in place. Exit status 1 when a mutant that is not marked equivalent
survives, does not build, or no longer applies (its "old" text changed: update the list;
the test suite's mutation_lists_still_apply_to_the_sources, check_mutant_lists.py, catches
that at once for every list here and py_mutation.py's).

Lists kept here: cpp_mutants_generic.json (the CPU generic path: GRU, LSTM peepholes,
clips and projection, residual, reverse and bidirectional layers, direction teams) and
cpp_mutants_host.json (keyed settings, the CPU count from cgroups and affinity, the
calibration and work split, the backend registry and the CUDA module loader). First runs
(2026-12-06): the generic list 90 mutants, 78 killed by the tests of before, 6 equivalent, 6
survivors; the host list 129 mutants, 66 killed, 9 equivalent, 54 survivors; each survivor
then got a test that kills it. Pass --timeout 120: a few mutants hang (a barrier dropped,
forks not counted) and count as killed only when the timeout ends them.
"""
import argparse
import fcntl
import json
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def _newest_object(build):
    newest = 0.0
    for root, dirs, files in os.walk(build):
        dirs[:] = [d for d in dirs if not d.startswith("venv")]
        for name in files:
            if name.endswith((".o", ".so", ".a")) or ".so." in name:
                try:
                    newest = max(newest, os.stat(os.path.join(root, name)).st_mtime)
                except OSError:
                    pass
    return newest


def _write(path, text, build):
    with open(path, "w") as f:
        f.write(text)
    now = time.time()
    newest = _newest_object(build)
    if newest >= now:  # the clock went back since the last build: date the file past it
        os.utime(path, (newest + 0.01, newest + 0.01))


def _build(build, targets, jobs, log):
    cmd = ["cmake", "--build", build, "-j", str(jobs)]
    if targets:
        cmd += ["--target"] + targets
    r = subprocess.run(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    return r.returncode == 0


def _tests_fail(m, build, jobs, timeout, log):
    """True when the mutant's tests fail (or time out): the mutant is killed."""
    env = dict(os.environ, BUILD=build)
    steps = []
    if m.get("ctest"):
        steps.append(["ctest", "--test-dir", build, "-R", m["ctest"], "-j", str(jobs),
                      "--no-tests=error", "--timeout", str(timeout)])
    for command in m.get("run", []):
        steps.append(["bash", "-c", command])
    if not steps:
        raise SystemExit("cpp_mutation: mutant %s has neither ctest nor run" % m["id"])
    for cmd in steps:
        try:
            r = subprocess.run(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                               timeout=timeout + 60)
        except subprocess.TimeoutExpired:
            return True
        if r.returncode != 0:
            return True
    return False


def _apply(src, m):
    n = src.count(m["old"])
    if n == 0 or (n > 1 and "occ" not in m):
        return None, n
    at = -1
    for _ in range(m.get("occ", 0) + 1):
        at = src.find(m["old"], at + 1)
        if at < 0:
            return None, n
    return src[:at] + m["new"] + src[at + len(m["old"]):], n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--list", required=True)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=int, default=600)
    ap.add_argument("--log", default=None, help="build and test output (default: a file "
                    "in the build folder)")
    ap.add_argument("ids", nargs="*")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    cache = os.path.join(build, "CMakeCache.txt")
    if not os.path.exists(cache):
        sys.exit("cpp_mutation: %s is not a configured build folder" % build)
    home = [ln.split("=", 1)[1].strip() for ln in open(cache)
            if ln.startswith("CMAKE_HOME_DIRECTORY:")]
    if not home or os.path.realpath(home[0]) != os.path.realpath(REPO):
        sys.exit("cpp_mutation: %s was configured from %s, not from %s"
                 % (build, home[0] if home else "?", REPO))
    with open(a.list) as f:
        mutants = [m for m in json.load(f) if not a.ids or m["id"] in a.ids]
    if a.ids and len(mutants) != len(set(a.ids)):
        sys.exit("cpp_mutation: unknown id among %s" % " ".join(a.ids))
    files = sorted({m["file"] for m in mutants})
    # One run per checkout: another's mutant, in a file this run does not change, would be
    # compiled into this run's build too.  (A lock in the git folder, held until exit.)
    git_dir = subprocess.run(["git", "rev-parse", "--absolute-git-dir"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout.strip()
    lock = open(os.path.join(git_dir, "cpp_mutation.lock"), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        sys.exit("cpp_mutation: another cpp_mutation run holds this checkout (%s)" % REPO)
    dirty = subprocess.run(["git", "status", "--porcelain", "--"] + files, cwd=REPO,
                           capture_output=True, text=True, check=True).stdout
    if dirty:
        sys.exit("cpp_mutation: files to mutate have uncommitted changes:\n" + dirty)
    log_path = a.log or os.path.join(build, "cpp_mutation.log")
    log = open(log_path, "w")
    original = {p: open(os.path.join(REPO, p)).read() for p in files}

    def stop(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, stop)

    if not _build(build, None, a.jobs, log):
        sys.exit("cpp_mutation: the unmutated build fails (see %s)" % log_path)
    for m in mutants:
        if _tests_fail(m, build, a.jobs, a.timeout, log):
            sys.exit("cpp_mutation: %s's tests fail without any mutant (see %s)"
                     % (m["id"], log_path))
    bad = []
    changed = None
    try:
        for m in mutants:
            text, n = _apply(original[m["file"]], m)
            if text is None:
                print("%-6s NO LONGER APPLIES (%d matches of its text)" % (m["id"], n),
                      flush=True)
                bad.append(m["id"])
                continue
            path = os.path.join(REPO, m["file"])
            changed = m["file"]
            _write(path, text, build)
            print("---- %s: %s" % (m["id"], m["desc"]), file=log, flush=True)
            if not _build(build, m.get("targets"), a.jobs, log):
                verdict = "NOT BUILT"
                bad.append(m["id"])
            else:
                killed = _tests_fail(m, build, a.jobs, a.timeout, log)
                eq = m.get("equivalent")
                verdict = ("killed" if killed else "survived, equivalent: " + eq if eq
                           else "SURVIVED")
                if not killed and not eq:
                    bad.append(m["id"])
            _write(path, original[m["file"]], build)
            changed = None
            print("%-6s %-34s %-50s %s" % (m["id"], m["file"][-34:], m["desc"][:50], verdict),
                  flush=True)
    finally:
        if changed is not None:
            _write(os.path.join(REPO, changed), original[changed], build)
        restored = _build(build, None, a.jobs, log)
    print("cpp_mutation: %d mutants, %d not killed and not equivalent%s%s"
          % (len(mutants), len(bad), (": " + " ".join(bad)) if bad else "",
             "" if restored else "; the final rebuild failed (see %s)" % log_path))
    sys.exit(1 if bad or not restored else 0)


if __name__ == "__main__":
    main()
