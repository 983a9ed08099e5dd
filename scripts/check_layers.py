#!/usr/bin/env python3
"""check_layers.py - refuse an #include against the direction of the layers.

libfedc's folders are layers (docs/architecture.md). A file may include
headers of its own folder and of the layers below it, never above:

    base  ->  wire, data  ->  ml  ->  cuda  ->  agg, privacy  ->  round  ->  config
                                                                   (programs only)

and then the programs: coordinator/, client/ and sim/ use any layer but not
each other; include/fedc/ (the public headers) includes only <fedc/...> and
the C library; examples/ include only <fedc/...>. Every quoted include in
shared/ names its folder ("base/alloc.h"), so the layer is in the text.

Usage: check_layers.py [ROOT]   (default: the repository). Prints every
wrong include as FILE:LINE: layer X may not include Y, and exits 1 if there
is one, 0 otherwise.
"""
import os
import re
import sys

BELOW = {
    "base": set(),
    "wire": {"base"},
    "data": {"base"},
    "ml": {"base", "wire", "data"},
    "cuda": {"base", "wire", "data", "ml"},
    "agg": {"base", "wire", "data", "ml", "cuda"},
    "privacy": {"base", "wire", "data", "ml"},
    "round": {"base", "wire", "data", "ml", "cuda", "agg", "privacy"},
    "config": {"base", "wire", "data", "ml", "cuda", "agg", "privacy", "round"},
}
PROGRAMS = {"coordinator", "client", "sim"}
QUOTED = re.compile(r'^\s*#\s*include\s+"([^"]+)"')
ANGLED = re.compile(r'^\s*#\s*include\s+<([^>]+)>')
SOURCES = (".c", ".h", ".cu")


def check_file(root, rel, problems):
    parts = rel.split("/")
    top = parts[0]
    with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
        lines = f.readlines()
    for no, line in enumerate(lines, 1):
        q = QUOTED.match(line)
        a = ANGLED.match(line)
        where = "%s:%d" % (rel, no)
        if top == "shared":
            layer = parts[1]
            if a and a.group(1).split("/")[0] in PROGRAMS:
                problems.append("%s: shared/%s may not include <%s>" % (where, layer, a.group(1)))
            if not q:
                continue
            inc = q.group(1)
            head = inc.split("/")[0] if "/" in inc else None
            if head is None:
                problems.append("%s: \"%s\": a library include names its folder (\"base/alloc.h\")"
                                % (where, inc))
            elif head not in BELOW:
                problems.append("%s: shared/%s may not include \"%s\" (not a layer of the library)"
                                % (where, layer, inc))
            elif head != layer and head not in BELOW[layer]:
                problems.append("%s: layer %s may not include %s (\"%s\"): %s is above it"
                                % (where, layer, head, inc, head))
        elif top in PROGRAMS:
            if q:
                head = q.group(1).split("/")[0]
                if head in PROGRAMS and head != top:
                    problems.append("%s: %s/ may not include another program's header \"%s\""
                                    % (where, top, q.group(1)))
        elif top == "include":
            if q:
                problems.append("%s: a public header includes only <fedc/...>: \"%s\"" % (where, q.group(1)))
        elif top == "examples":
            if q and not os.path.exists(os.path.join(root, os.path.dirname(rel), q.group(1))):
                problems.append("%s: an example includes only <fedc/...> and its own files: \"%s\""
                                % (where, q.group(1)))


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    problems = []
    checked = 0
    for top in ["shared", "include", "examples"] + sorted(PROGRAMS):
        base = os.path.join(root, top)
        if top == "shared" and os.path.isdir(base):
            loose = [n for n in os.listdir(base) if n.endswith(SOURCES)]
            for n in loose:
                problems.append("shared/%s: every library file lives in a layer's folder" % n)
            for d in os.listdir(base):
                if os.path.isdir(os.path.join(base, d)) and d not in BELOW:
                    problems.append("shared/%s/: not a layer (%s)" % (d, ", ".join(BELOW)))
        for dirpath, _, files in os.walk(base):
            for n in sorted(files):
                if n.endswith(SOURCES):
                    rel = os.path.relpath(os.path.join(dirpath, n), root).replace(os.sep, "/")
                    if top == "shared" and rel.count("/") < 2:
                        continue
                    check_file(root, rel, problems)
                    checked += 1
    for p in problems:
        print(p)
    print("check_layers: %d files, %d wrong includes" % (checked, len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
