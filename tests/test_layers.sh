#!/bin/sh
# test_layers: the include graph of host/, cuda/ and kernels/ runs one way.
# Each folder is a layer (README.md, "How it is built"); a file includes its
# own folder's headers and those of layers below it, never above, and no
# files include each other in a circle (a .c and its .h count as one).
# A move that breaks this fails here, naming the arrow.
exec python3 - "$@" <<'PY'
import os, re, sys
LAYERS = ["base", "simd model", "config", "backend", "kernels", "cpu cuda", "engine", "job", "tools", "api", "cli"]
rank = {f: i for i, names in enumerate(LAYERS) for f in names.split()}
def folder(path):
    parts = path.split("/")
    return parts[1] if parts[0] == "host" else parts[0]
files = []
for top in ("host", "cuda", "kernels"):
    for d, _, names in os.walk(top):
        files += [os.path.join(d, n) for n in names if n.endswith((".c", ".h", ".cc", ".cu", ".cuh"))]
def resolve(src, inc):
    for cand in (os.path.join("host", inc), inc, os.path.join(os.path.dirname(src), inc)):
        if os.path.isfile(cand): return os.path.normpath(cand)
    return None
unit = lambda p: re.sub(r"\.(c|cc|cu|h|cuh)$", "", p)
passed = failed = 0
def check(ok, msg):
    global passed, failed
    if ok: passed += 1
    else: failed += 1; print("FAIL test_layers: " + msg)
edges = {}
unknown = sorted({folder(f) for f in files} - set(rank))
check(not unknown, "folders without a layer: %s" % unknown)
for f in sorted(files):
    for inc in re.findall(r'^\s*#\s*include\s+"([^"]+)"', open(f, encoding="utf-8").read(), re.M):
        to = resolve(f, inc)
        if not to or folder(to) not in rank: continue
        up = rank.get(folder(to), -1) > rank.get(folder(f), -1)
        check(not up, "%s includes %s, a layer above it" % (f, to))
        if unit(to) != unit(f): edges.setdefault(unit(f), set()).add(unit(to))
# a circle among files: depth-first search for a back edge
state, stack = {}, []
def visit(u):
    state[u] = 1; stack.append(u)
    for v in sorted(edges.get(u, ())):
        if state.get(v) == 1:
            check(False, "a circle: " + " -> ".join(stack[stack.index(v):] + [v])); continue
        if not state.get(v): visit(v)
    state[u] = 2; stack.pop()
for u in sorted(edges):
    if not state.get(u): visit(u)
check(len(files) > 100 and len(edges) > 50, "%d files, %d with includes: the walk found the tree" % (len(files), len(edges)))
print("test_layers: %d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
PY
