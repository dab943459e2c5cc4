"""The mutation lists still apply to the sources they mutate.

cpp_mutation.py and py_mutation.py report a mutant whose "old" text no longer occurs as
NO LONGER APPLIES, but only when someone runs them (minutes to hours); a refactor that
rewrites a mutated line leaves the list stale until then (twelve C++ mutants had gone stale
by 2026-12-07). This check runs in the test suite, in a fraction of a second, and fails on:

- an "old" text that no longer occurs in its file, or occurs more than once without "occ"
  (or fewer times than "occ" needs);
- a mutant that changes nothing ("new" equal to "old") or lacks a field its tool reads;
- an id used twice, across every list given;
- a C++ mutant with neither "ctest" nor "run" (nothing could kill it), a Python mutant
  whose "tests" name a file that python/tests/ does not hold.

    python3 tests/tools/check_mutant_lists.py [LIST...]

Without arguments it checks every tests/tools/{cpp,py}_mutants*.json. Exit status 1 and one
line per problem when any is found.
"""
import glob
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PKG = os.path.join(REPO, "python", "stacklstm")
TESTS = os.path.join(REPO, "python", "tests")


def problems_of(m, cpp):
    """What is wrong with mutant m (a dict from a list), as text; empty when it applies."""
    need = ["id", "file", "desc", "old", "new"] + ([] if cpp else ["tests"])
    missing = [k for k in need if k not in m]
    if missing:
        return ["lacks " + ", ".join(missing)]
    out = []
    if m["old"] == m["new"]:
        out.append('"new" is its "old" text: it changes nothing')
    if cpp and not m.get("ctest") and not m.get("run"):
        out.append('neither "ctest" nor "run": no test could kill it')
    if not cpp:
        out += ["its test %s is not in python/tests/" % t for t in m["tests"]
                if not os.path.isfile(os.path.join(TESTS, t))]
    path = os.path.join(REPO if cpp else PKG, m["file"])
    try:
        with open(path) as f:
            src = f.read()
    except OSError:
        return out + ["its file %s is not there" % m["file"]]
    n = src.count(m["old"])
    occ = m.get("occ")
    if n == 0:
        out.append('its "old" text no longer occurs in %s' % m["file"])
    elif occ is None and n > 1:
        out.append('its "old" text occurs %d times in %s and no "occ" picks one'
                   % (n, m["file"]))
    elif occ is not None and not (isinstance(occ, int) and 0 <= occ < n):
        out.append('"occ" %r but its "old" text occurs %d times in %s' % (occ, n, m["file"]))
    return out


def main(argv):
    lists = argv or sorted(glob.glob(os.path.join(HERE, "cpp_mutants*.json"))
                           + glob.glob(os.path.join(HERE, "py_mutants*.json")))
    if not lists:
        print("check_mutant_lists: no lists found")
        return 1
    seen = {}
    bad = 0
    total = 0
    for listing in lists:
        name = os.path.basename(listing)
        cpp = name.startswith("cpp_")
        with open(listing) as f:
            mutants = json.load(f)
        for k, m in enumerate(mutants):
            total += 1
            mid = m.get("id", "#%d" % k)
            found = problems_of(m, cpp)
            if mid in seen:
                found.append("id also used in %s" % seen[mid])
            seen.setdefault(mid, name)
            for p in found:
                print("%s %s: %s" % (name, mid, p))
            bad += bool(found)
    print("check_mutant_lists: %d mutants in %d lists, %d with problems"
          % (total, len(lists), bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
