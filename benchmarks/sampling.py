#!/usr/bin/env python3
"""Sampling (augmentation's first pass) side by side: lyricmt builds given on
the command line, each with configs/augment.yaml's decoding (temperature 0.9,
top-k 50, top-p 0.95, 5 samples a line) and with plain sampling (top-k 0,
top-p 1, temperature 1), against beam 5 n-best 5 of the first build: the
same rows (5 a line) through the same model. Every line runs to the length
limit (min_length = max_length), repeats are not reused, every sample is
written (no dedup, which costs nothing but would hide samples from the
comparison), the runs of all rows are interleaved, and each row reports the
median wall time and the median CPU time (user + sys of the process): on a
shared machine CPU time moves less. The samples' texts must be identical
across builds; their scores are compared apart (the largest difference).

usage: python3 benchmarks/sampling.py --model DIR --build NAME=BINARY [--build ...]
       [--lines 32] [--max-length 32] [--threads 2] [--runs 3] [--score]

--score adds `lyricmt score` over samples/parallel/train.tsv (326 pairs) for
every build, and the whole recipe (`--config configs/augment.yaml`: pairs,
every kept sample force-decoded once more) for the last build.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def timed(cmd):
    """Runs cmd; returns (wall seconds, user + sys seconds)."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    err = p.stderr.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{err[-800:]}")
    return wall, ru.ru_utime + ru.ru_stime


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--build", action="append", required=True, help="NAME=path/to/lyricmt")
    ap.add_argument("--lines", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--score", action="store_true")
    ap.add_argument("--work", default="/tmp/lyricmt-sampling")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    text = subprocess.run([sys.executable, os.path.join(HERE, "make_corpus.py"), "--lines", str(a.lines * 2), "--seed", "1"],
                          check=True, capture_output=True, text=True).stdout
    corpus = os.path.join(a.work, "corpus.txt")
    with open(corpus, "w") as f:
        f.write("\n".join([l for l in text.split("\n") if l.strip()][: a.lines]) + "\n")
    for name in os.listdir(a.model):  # weights into the page cache before anything is timed
        with open(os.path.join(a.model, name), "rb") as f:
            while f.read(1 << 24):
                pass
    builds = [b.split("=", 1) for b in a.build]
    common = ["--model", a.model, "-i", corpus, "--max-length", str(a.max_length), "--set", f"decoding.min_length={a.max_length}",
              "--threads", str(a.threads), "--convention", "m2m100", "--set", "batch.cache_lines=0", "--progress", "none", "--restart"]
    recipe = ["--config", os.path.join(ROOT, "configs", "augment.yaml")]
    every = ["--set", "output.dedup_hypotheses=false"]
    rows = []  # (label, command, output file or None)
    for name, exe in builds:
        for setting, extra in (("sampling, augment.yaml", recipe),
                               ("sampling, top-k 0, top-p 1, T 1", recipe + ["--set", "decoding.top_k=0", "--set", "decoding.top_p=1",
                                                                              "--set", "decoding.temperature=1"])):
            out = os.path.join(a.work, f"{name}-{len(rows)}.jsonl")
            rows.append((f"{name}: {setting}", [exe, "translate", *common, *extra, *every, "--output-format", "jsonl", "-o", out], out, setting))
    exe0 = builds[0][1]
    out = os.path.join(a.work, "beam.jsonl")
    rows.append((f"{builds[0][0]}: beam 5, n-best 5", [exe0, "translate", *common, "--beam", "5", "--n-best", "5", "--output-format", "jsonl",
                                                       "-o", out], out, "beam"))
    if a.score:
        for name, exe in builds:
            out = os.path.join(a.work, f"{name}-score.tsv")
            rows.append((f"{name}: lyricmt score, train.tsv", [exe, "score", "--model", a.model, "-i", os.path.join(ROOT, "samples", "parallel", "train.tsv"),
                                                               "-o", out, "--threads", str(a.threads), "--convention", "m2m100", "--progress", "none",
                                                               "--restart"], out, "score"))
        name, exe = builds[-1]
        rows.append((f"{name}: the whole recipe (pairs, every sample rescored)", [exe, "translate", *common, *recipe, "-o",
                                                                                  os.path.join(a.work, "recipe.pairs.jsonl")], None, "recipe"))
    times = {label: [] for label, *_ in rows}
    for r in range(a.runs):
        for label, cmd, _, _ in rows:
            times[label].append(timed(cmd))
            print(f"run {r + 1}: {label}: {times[label][-1][0]:.2f} s wall, {times[label][-1][1]:.2f} s CPU", file=sys.stderr, flush=True)
    print(f"| row | median wall s | median CPU s (user+sys) | runs |\n|---|---:|---:|---:|")
    for label, *_ in rows:
        w = [t[0] for t in times[label]]
        c = [t[1] for t in times[label]]
        print(f"| {label} | {statistics.median(w):.2f} | {statistics.median(c):.2f} | {len(w)} |")
    for setting in ("sampling, augment.yaml", "sampling, top-k 0, top-p 1, T 1"):
        outs = [[json.loads(l) for l in open(o)] for _, _, o, s in rows if s == setting]
        hyps = [[h for rec in out for h in rec.get("hypotheses", [rec])] for out in outs]
        same = all([h["translation"] for h in x] == [h["translation"] for h in hyps[0]] for x in hyps)
        diff = max(abs(a["score"] - b["score"]) for x in hyps for a, b in zip(x, hyps[0]))
        print(f"{setting}: {len(hyps[0])} samples; texts of {len(outs)} builds {'identical' if same else 'DIFFER'}, "
              f"scores (4 decimals) differ by at most {diff:.4f}")
    scores = [[l.split("\t")[1:] for l in open(o)] for _, _, o, s in rows if s == "score"]
    if len(scores) > 1:
        d = max(abs(float(x[i]) - float(y[i])) for a, b in zip(scores, scores[1:]) for x, y in zip(a, b) for i in (0, 1) if x[0])
        print(f"score: {len(scores[0])} pairs; scores and normalized scores (6 decimals) differ by at most {d:.6f}")

if __name__ == "__main__":
    main()
