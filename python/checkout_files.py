"""The files of a source checkout that a copy of it holds (the sdist, tests/wheel.sh's clean
copy): git's tracked files and its untracked but not ignored ones, less every untracked folder
that is a virtual environment (pyvenv.cfg) or a CMake build tree (CMakeCache.txt), whatever
its name (.venv/, cmake-build-debug/, ...). NUL-separated paths on stdout, relative to the
checkout.

    python3 python/checkout_files.py [CHECKOUT]     (default: this file's checkout)
"""
import os
import subprocess
import sys

MARKERS = (b"pyvenv.cfg", b"CMakeCache.txt")


def checkout_files(root):
    def git(*args):
        return [p for p in subprocess.run(("git", "ls-files", "-z") + args, cwd=root,
                                          check=True, capture_output=True).stdout.split(b"\0")
                if p]
    untracked = git("-o", "--exclude-standard")
    skip = sorted({os.path.dirname(p) + b"/" for p in untracked
                   if os.path.basename(p) in MARKERS and os.path.dirname(p)})
    kept = [p for p in git("-c") + untracked if not any(p.startswith(s) for s in skip)]
    return kept, [s.decode(errors="replace") for s in skip]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(here)
    kept, skipped = checkout_files(root)
    for s in skipped:
        print("checkout_files: left out %s (a virtual environment or build tree)" % s,
              file=sys.stderr)
    sys.stdout.buffer.write(b"".join(p + b"\0" for p in kept))


if __name__ == "__main__":
    main()
