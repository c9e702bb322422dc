#!/usr/bin/env python3
"""Two lyricmt builds and CTranslate2 side by side, interleaved, on a shared
machine (benchmarks/NOTES.md, attempt 21): per run the engine's own seconds
(lyricmt's job summary, engines.py's translate_batch time: model load
excluded) and the process's CPU seconds (user + sys from wait4: load
included; less the same command's on no lines for lyricmt, CTranslate2's
over translate_batch), so that a run slowed by other work on the cores still
counts by what it spent itself.

    python3 benchmarks/side_by_side.py --build new=build/lyricmt --build base=/tmp/base/lyricmt \\
        [--lines 64] [--max-length 32] [--runs 3] [--threads 1,2] [--beams 1,5] [--precisions fp32,int8,bf16] \\
        [--ct2] [--out results/FILE.md]

Every line runs to max_length (min_length = max_length), so every engine does
the same work. CTranslate2 runs float32 for fp32 and bf16 (it has no CPU
bfloat16; once, in the fp32 row, when both are asked) and int8 for int8; the
lyricmt builds' outputs are compared line by line with the first build's.
"""
import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def run(engine, a, model, ct2, corpus, out, precision, beam, threads):
    """(engine seconds, CPU seconds, peak MB)"""
    if engine[0] == "ct2":
        compute = "int8" if precision == "int8" else "float32"
        cmd = [sys.executable, os.path.join(HERE, "engines.py"), "ct2", "--model", model, "--ct2", ct2, "--input", corpus, "--output", out,
               "--beam", str(beam), "--max-length", str(a.max_length), "--fixed", "--budget", "4096", "--threads", str(threads),
               "--precision", precision, "--compute-type", compute]
    else:
        cmd = [engine[1], "translate", "--model", model, "-i", corpus, "-o", out, "--beam", str(beam), "--max-length", str(a.max_length),
               "--set", f"decoding.min_length={a.max_length}", "--precision", precision, "--convention", "m2m100", "--threads",
               str(threads), "--progress", "none", "--set", f"batch.max_tokens={4096 * beam}", "--set", "batch.max_sentences=1024",
               "--set", "batch.window_lines=100000", "--restart"]
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = p.stdout.read(), p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    if status:
        sys.exit(f"failed: {' '.join(cmd)}\n{stderr[-2000:]}")
    cpu = ru.ru_utime + ru.ru_stime
    if engine[0] == "ct2":
        info = json.loads(stdout.strip().splitlines()[-1])
        return info["seconds"], info["cpu_seconds"], info.get("peak_mb", 0.0)
    if not os.path.getsize(corpus):
        return 0.0, cpu, 0.0
    done = re.search(r"done: \d+ lines in ([0-9.]+) s", stderr)
    peak = re.search(r"peak memory ([0-9.]+) MB", stderr)
    return float(done.group(1)), cpu, float(peak.group(1)) if peak else 0.0


def med(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2


def cell(xs):
    return f"{med(xs):.2f} ({min(xs):.2f}-{max(xs):.2f})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", action="append", required=True, help="LABEL=PATH of a lyricmt binary; the first is the reference")
    ap.add_argument("--model", default=os.path.join(HERE, "models", "small100-random"))
    ap.add_argument("--lines", type=int, default=64)
    ap.add_argument("--max-length", type=int, default=32)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--beams", default="1,5")
    ap.add_argument("--precisions", default="fp32,int8,bf16")
    ap.add_argument("--ct2", action="store_true", help="CTranslate2 too (its model converted beside the model, as bench.py does)")
    ap.add_argument("--first-only", default="", help="precisions whose code the builds share: only the first build runs them")
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    builds = [tuple(b.split("=", 1)) for b in a.build]
    ct2 = a.model + "-ct2"
    if a.ct2 and not os.path.exists(os.path.join(ct2, "model.bin")):
        subprocess.run(["ct2-transformers-converter", "--model", a.model, "--output_dir", ct2, "--force"], check=True)
    work = os.path.join(HERE, "models", "side_by_side")
    os.makedirs(work, exist_ok=True)
    corpus = os.path.join(work, "corpus.txt")
    text = subprocess.run([sys.executable, os.path.join(HERE, "make_corpus.py"), "--lines", str(a.lines * 2), "--seed", "1"], check=True,
                          capture_output=True, text=True).stdout
    with open(corpus, "w") as f:
        f.write("\n".join([l for l in text.split("\n") if l.strip()][: a.lines]) + "\n")
    empty = os.path.join(work, "empty.txt")
    open(empty, "w").close()
    for d in (a.model, ct2) if a.ct2 else (a.model,):  # the page cache holds the weights before any timing
        for name in os.listdir(d):
            with open(os.path.join(d, name), "rb") as f:
                while f.read(1 << 24):
                    pass
    rows = []
    for threads in [int(t) for t in a.threads.split(",")]:
        for beam in [int(b) for b in a.beams.split(",")]:
            for p in a.precisions.split(","):
                engines = [("lyricmt", path, label) for label, path in builds[: 1 if p in a.first_only.split(",") else None]]
                if a.ct2 and not (p == "bf16" and "fp32" in a.precisions.split(",")):  # its float32 row stands for bf16's
                    engines.append(("ct2", None, "CTranslate2 " + ("int8" if p == "int8" else "float32")))
                res = {e[2]: [] for e in engines}
                outs = {}
                load = {e[2]: [] for e in engines}
                for r in range(a.runs):
                    for e in engines:
                        out = os.path.join(work, f"{e[2].replace(' ', '_')}.{p}.{beam}.{threads}.txt")
                        res[e[2]].append(run(e, a, a.model, ct2, corpus, out, p, beam, threads))
                        outs[e[2]] = open(out, encoding="utf-8").read().split("\n")
                        if e[0] == "lyricmt":  # the same process on no lines: its load and conversion, taken off
                            load[e[2]].append(run(e, a, a.model, ct2, empty, out + ".empty", p, beam, threads)[1])
                for e in engines:
                    if load[e[2]]:
                        res[e[2]] = [(s_, c - med(load[e[2]]), m_) for s_, c, m_ in res[e[2]]]
                ref = outs[builds[0][0]]
                for e in engines:
                    same = sum(x == y for x, y in zip(outs[e[2]], ref)) - 1  # the last, empty field
                    secs, cpus, peaks = zip(*res[e[2]])
                    rows.append((threads, "greedy" if beam == 1 else f"beam {beam}", p, e[2], cell(secs), cell(cpus), med(peaks),
                                 f"{same}/{a.lines}"))
                    print(" | ".join(str(x) for x in rows[-1]), file=sys.stderr, flush=True)
    cpu = open("/proc/cpuinfo").read()
    name = re.search(r"model name\s*:\s*(.*)", cpu).group(1)
    head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    md = [f"# lyricmt builds side by side, {datetime.date.today().isoformat()}", "",
          f"- machine: {name}, {os.cpu_count()} cores; {platform.platform()}; shared with other work (see NOTES.md)",
          f"- lyricmt builds: {', '.join(f'{l} = {p}' for l, p in builds)}; this tree at {head}",
          f"- command: `python3 benchmarks/side_by_side.py {' '.join(sys.argv[1:])}`",
          f"- corpus: {a.lines} non-blank lines of `make_corpus.py --seed 1`, every line forced to max_length {a.max_length}; token budget "
          "4096 padded source tokens a batch (lyricmt 4096 x beams); "
          f"{a.runs} runs of each engine per row, interleaved",
          "- seconds: the engine's own (lyricmt's job summary; CTranslate2's translate_batch), model load excluded; CPU s: CPU time of "
          "the translation, all threads: CTranslate2's process over translate_batch; lyricmt's process (user + sys) less the median "
          "of the same command on no lines (loading and converting the weights); median (fastest-slowest)",
          f"- same: output lines identical to {builds[0][0]}'s", "",
          "| threads | search | precision | engine | seconds | CPU s | peak MB | same |", "|---:|---|---|---|---:|---:|---:|---:|"]
    md += [f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]} | {r[5]} | {r[6]:.0f} | {r[7]} |" for r in rows]
    text = "\n".join(md) + "\n"
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    print(text)


if __name__ == "__main__":
    main()
