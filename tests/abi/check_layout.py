#!/usr/bin/env python3
"""The public structs' layout is a promise (header "ABI"): this check reads every struct of
include/stacklstm/stacklstm.h, asks the C compiler for each field's offset and size, and
compares them with tests/abi/layout-lp64.txt, the layout as published:

  - every field keeps its offset and size, no field goes, the structs keep their sizeof;
  - a field the header adds must be added to the file with the version that adds it, and
    must start at or beyond the struct's sizeof in the version before (so that a caller
    built against an older header, whose struct_size is that sizeof, never sends it in its
    tail padding); the one field that broke this rule before it was written down
    (slstm_forward_args.data_type, 0.7) is marked "in-padding" in the file.

    check_layout.py HEADER LAYOUT_FILE CC [INCLUDE_DIR ...]

(HEADER: include/stacklstm/stacklstm.h; INCLUDE_DIRs: where it and the generated headers it
includes are found.)

Exit 0: the layout holds; 1: it does not (each difference on a line); 77: not an LP64
target (the file's numbers are LP64's), skipped.
"""
import os
import re
import subprocess
import sys
import tempfile


def parse_header(path):
    """[(struct, [field, ...])] in the header's order."""
    text = open(path, encoding="utf-8").read()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    structs = []
    for m in re.finditer(r"typedef\s+struct\s+(slstm_\w+)\s*\{(.*?)\}\s*(\w+)\s*;", text, re.S):
        name, body = m.group(1), m.group(2)
        fields = []
        for decl in body.split(";"):
            decl = " ".join(decl.split())
            if not decl:
                continue
            fp = re.search(r"\(\s*\*\s*(\w+)\s*\)", decl)
            if fp:
                fields.append(fp.group(1))
                continue
            ident = re.search(r"(\w+)\s*(\[[^\]]*\])?\s*$", decl)
            if not ident:
                raise SystemExit("cannot read the declaration '%s' in %s" % (decl, name))
            fields.append(ident.group(1))
        structs.append((name, fields))
    return structs


def measure(include_dirs, structs, cc):
    """{(struct, field): (offset, size)}, {struct: (sizeof, alignof)}, lp64"""
    lines = ["#include <stddef.h>", "#include <stdio.h>", '#include "stacklstm/stacklstm.h"',
             "#define F(s, f) printf(\"%s %s %zu %zu\\n\", #s, #f, offsetof(s, f), "
             "sizeof(((s*)0)->f))",
             "int main(void) {",
             '  printf("LP64 %d\\n", (int)(sizeof(void*) == 8 && sizeof(long) == 8 && '
             "sizeof(size_t) == 8));"]
    for s, fields in structs:
        for f in fields:
            lines.append("  F(%s, %s);" % (s, f))
        lines.append('  printf("%%s SIZEOF %%zu %%zu\\n", "%s", sizeof(%s), _Alignof(%s));'
                     % (s, s, s))
    lines += ["  return 0;", "}"]
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = os.path.join(tmp, "layout.c"), os.path.join(tmp, "layout")
        with open(src, "w") as f:
            f.write("\n".join(lines) + "\n")
        flags = [a for d in include_dirs for a in ("-I", d)]
        subprocess.run([cc, "-std=c11"] + flags + [src, "-o", exe], check=True)
        out = subprocess.run([exe], check=True, capture_output=True, text=True).stdout
    fields, sizes, lp64 = {}, {}, False
    for line in out.splitlines():
        w = line.split()
        if w[0] == "LP64":
            lp64 = w[1] == "1"
        elif w[1] == "SIZEOF":
            sizes[w[0]] = (int(w[2]), int(w[3]))
        else:
            fields[(w[0], w[1])] = (int(w[2]), int(w[3]))
    return fields, sizes, lp64


def version(v):
    return tuple(int(p) for p in v.split("."))


def read_layout(path):
    """{struct: [(field, offset, size, since, note)]}, {struct: (sizeof, alignof)}"""
    layout, sizes = {}, {}
    for n, line in enumerate(open(path, encoding="utf-8"), 1):
        line = line.split("#", 1)[0].split()
        if not line:
            continue
        if line[1] == "SIZEOF":
            sizes[line[0]] = (int(line[2]), int(line[3]))
            continue
        if len(line) not in (5, 6):
            raise SystemExit("%s:%d: expected 'struct field offset size since [note]'" % (path, n))
        layout.setdefault(line[0], []).append(
            (line[1], int(line[2]), int(line[3]), version(line[4]),
             line[5] if len(line) == 6 else ""))
    return layout, sizes


def align_up(n, a):
    return (n + a - 1) // a * a


def main(argv):
    if len(argv) < 4:
        print(__doc__)
        return 2
    header, layout_path, cc = argv[1:4]
    structs = parse_header(header)
    got, got_sizes, lp64 = measure(argv[4:], structs, cc)
    if not lp64:
        print("skipped: %s holds LP64 numbers and this target is not LP64" % layout_path)
        return 77
    want, want_sizes = read_layout(layout_path)
    errors = []
    for s, fields in structs:
        published = want.get(s)
        if published is None:
            errors.append("%s is not in %s: add its fields with the version that adds it"
                          % (s, layout_path))
            continue
        names = [p[0] for p in published]
        for i, f in enumerate(fields):
            off, size = got[(s, f)]
            if f not in names:
                errors.append("%s.%s (offset %d, size %d) is new: add it to %s with its "
                              "version" % (s, f, off, size, layout_path))
                continue
            p = published[names.index(f)]
            if (off, size) != (p[1], p[2]):
                errors.append("%s.%s moved: offset %d size %d, published as offset %d size %d"
                              % (s, f, off, size, p[1], p[2]))
        for p in published:
            if p[0] not in fields:
                errors.append("%s.%s (published) is gone from the header" % (s, p[0]))
        if [f for f in fields if f in names] != [n for n in names if n in fields]:
            errors.append("%s: the fields are not in their published order" % s)
        if got_sizes[s] != want_sizes.get(s):
            errors.append("%s: sizeof/alignof %s, published %s"
                          % (s, got_sizes[s], want_sizes.get(s)))
        # A field added in a later version starts at or beyond the struct's sizeof in every
        # version before it (older callers' struct_size; tail padding is theirs).
        for p in published:
            older = [q for q in published if q[3] < p[3]]
            if not older or p[4] == "in-padding":
                continue
            end = max(q[1] + q[2] for q in older)
            old_sizeof = align_up(end, max(min(q[2], 8) for q in older))
            if p[1] < old_sizeof:
                errors.append("%s.%s (since %s) starts at %d, inside the %s-byte struct "
                              "callers of earlier versions pass: start it at %d or beyond "
                              "(reserved fields if needed)"
                              % (s, p[0], ".".join(map(str, p[3])), p[1], old_sizeof,
                                 old_sizeof))
    for s in want:
        if s not in dict(structs):
            errors.append("%s (published) is gone from the header" % s)
    for e in errors:
        print(e)
    if errors:
        return 1
    print("ok: %d structs, %d fields as published (%s)"
          % (len(structs), sum(len(f) for _, f in structs), layout_path))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
