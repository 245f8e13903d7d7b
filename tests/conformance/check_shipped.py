#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Fails if the conformance runner calls a library function that no shipped code path reaches.

Every conformance kind must exercise code the library runs for its users. This builds a
source-level reference graph of the library (src/*.c and src/*.h: each function definition and
the identifiers its body names, so calls and function pointers both count), walks it from the
exported functions listed in the version script, and checks that each swarm__* function the
runner calls is reached.

Usage: check_shipped.py RUNNER.c SRC_DIR VERSION_SCRIPT
"""
import os
import re
import sys

IDENT = re.compile(r"[A-Za-z_]\w*")
KEYWORDS = {"if", "for", "while", "switch", "return", "sizeof", "defined", "_Alignof",
            "_Static_assert", "__attribute__", "__typeof__", "typeof"}


def strip(text):
    """Removes comments, string and character literals, and preprocessor lines."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    text = re.sub(r'"(?:\\.|[^"\\\n])*"', '""', text)
    text = re.sub(r"'(?:\\.|[^'\\\n])*'", "''", text)
    out = []
    cont = False
    for line in text.split("\n"):
        if cont or line.lstrip().startswith("#"):
            cont = line.rstrip().endswith("\\")
            out.append("")
            continue
        out.append(line)
    return "\n".join(out)


def functions(text):
    """Yields (name, body) for every function definition at file scope."""
    depth = 0
    i = 0
    n = len(text)
    start = 0
    while i < n:
        ch = text[i]
        if ch == "{":
            if depth == 0:
                head = text[start:i]
                # A definition's head ends with "name(params)" and holds no "=" at depth 0.
                m = re.search(r"\b([A-Za-z_]\w*)\s*\([^()]*(?:\([^()]*\)[^()]*)*\)\s*$", head)
                name = m.group(1) if m and "=" not in head.split(";")[-1] else None
                body_start = i
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                if name and name not in KEYWORDS:
                    yield name, text[body_start:i + 1]
                start = i + 1
                name = None
        elif ch == ";" and depth == 0:
            start = i + 1
        i += 1


def exported(version_script):
    names = set()
    with open(version_script) as f:
        for tok in re.findall(r"\b(swarm_\w+)\s*;", f.read()):
            names.add(tok)
    return names


def main(argv):
    if len(argv) != 4:
        print(__doc__)
        return 2
    runner, src_dir, vscript = argv[1:]
    bodies = {}
    for fn in sorted(os.listdir(src_dir)):
        if fn.endswith((".c", ".h")):
            with open(os.path.join(src_dir, fn)) as f:
                for name, body in functions(strip(f.read())):
                    bodies.setdefault(name, []).append(body)
    # Exported names defined through symbol versioning (src/compat.c: `.symver impl,
    # name@@NODE`) are reached through the function that carries them.
    for fn in sorted(os.listdir(src_dir)):
        if fn.endswith(".c"):
            with open(os.path.join(src_dir, fn)) as f:
                for impl, name in re.findall(r'\.symver\s+(\w+),\s*(\w+)@', f.read()):
                    # The versioned wrappers are written by a macro: they call swarm__<name>.
                    inner = impl if impl in bodies else "swarm__" + name[len("swarm_"):]
                    if inner in bodies:
                        bodies.setdefault(name, []).append(inner + "();")
    graph = {name: {t for b in bs for t in IDENT.findall(b) if t in bodies and t != name}
             for name, bs in bodies.items()}
    roots = exported(vscript)
    missing_roots = sorted(r for r in roots if r not in bodies)
    if missing_roots:
        print("exported but not defined in %s: %s" % (src_dir, ", ".join(missing_roots)))
        return 1
    seen = set()
    stack = sorted(roots)
    while stack:
        f = stack.pop()
        if f in seen:
            continue
        seen.add(f)
        stack.extend(graph.get(f, ()))
    with open(runner) as f:
        called = sorted(set(re.findall(r"\b(swarm__\w+)\s*\(", strip(f.read()))))
    bad = [c for c in called if c not in seen]
    for c in called:
        state = "shipped" if c in seen else ("NOT REACHED from any export" if c in bodies
                                             else "not a library function")
        print("%-32s %s" % (c, state))
    if bad:
        print("FAIL: the conformance runner calls %d function(s) that no exported function "
              "reaches: %s" % (len(bad), ", ".join(bad)))
        return 1
    print("ok: all %d library functions the conformance runner calls are reached from the "
          "%d exported functions" % (len(called), len(roots)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
