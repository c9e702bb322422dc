#!/usr/bin/env python3
"""Augmentation (configs/augment.yaml) against CTranslate2, per CPU precision
and thread count (issue 28 part 4):

  sampling  lyricmt translate --config configs/augment.yaml, every sample
            written (no dedup, no floor) | CTranslate2 translate_batch(
            beam_size=1, num_hypotheses=5, sampling_topk=50, sampling_topp=0.95,
            sampling_temperature=0.9)
  score     lyricmt score | score_batch, on the same (source, sample) pairs:
            lyricmt's own fp32 samples of the corpus, written once before any
            timing
  recipe    lyricmt translate --config configs/augment.yaml --min-score X
            (sampling, dedup, every kept sample rescored, the floor) |
            translate_batch as above, the repeats dropped, score_batch on the
            rest, the floor

Every sample runs to max_length (min_length = max_length in both engines), so
both do the same decoding work whatever their random numbers; the floor X is
the median normalized score of the score row's pairs (about half kept).
lyricmt's CPU seconds are its process's (user + sys, wait4) less the median of
the same command on an empty input (weights loaded and converted);
CTranslate2's are its process's CPU time over translate_batch / score_batch
(model load and a one-line warm-up call of each excluded). CTranslate2 has no CPU bfloat16: lyricmt bf16 is
compared with its float32 rows, as bench.py does. Runs interleaved; medians.

    python3 benchmarks/augment.py --model DIR [--ct2 DIR] [--build build/lyricmt] [--lines 32]
        [--max-length 32] [--threads 1,2] [--precisions fp32,int8,bf16] [--runs 3] [--out FILE.md]

The model: make_random_model.py --words (samples are words that tokenise back
to themselves, so that rescoring scores every sample's full length) and its
ct2-transformers-converter conversion (default: DIR-ct2).
"""
import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RECIPE = dict(beam_size=1, num_hypotheses=5, sampling_topk=50, sampling_topp=0.95, sampling_temperature=0.9)
BUDGET = 4096  # padded source tokens a batch, both engines (side_by_side.py's)


def ct2_worker(argv):
    """One CTranslate2 run in its own process: prints {"cpu": s, "wall": s, ...}."""
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["sample", "score", "recipe"])
    ap.add_argument("--model", required=True)
    ap.add_argument("--ct2", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--max-length", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--compute-type", default="float32")
    ap.add_argument("--min-score", type=float, default=0.0)
    a = ap.parse_args(argv)
    import ctranslate2
    from transformers import M2M100Tokenizer

    tok = M2M100Tokenizer.from_pretrained(a.model, src_lang="en", tgt_lang="ko")
    tr = ctranslate2.Translator(a.ct2, device="cpu", compute_type=a.compute_type, intra_threads=a.threads, inter_threads=1)
    ctranslate2.set_random_seed(1234)
    ko = tok.convert_ids_to_tokens(tok.get_lang_id("ko"))
    steps = a.max_length - 1  # CTranslate2 counts steps after the start token, the prefix included
    with open(a.input, encoding="utf-8") as f:
        rows = [l.rstrip("\n").split("\t") for l in f if l.strip()]
    src = [tok.convert_ids_to_tokens(tok(r[0]).input_ids) for r in rows]

    def sample(src):
        res = tr.translate_batch(src, target_prefix=[[ko]] * len(src), max_batch_size=BUDGET, batch_type="tokens",
                                 max_decoding_length=steps, min_decoding_length=steps, return_scores=True, **RECIPE)
        return [[h[1:] if h and h[0] == ko else h for h in r.hypotheses] for r in res]

    def score(src, tgt):
        res = tr.score_batch(src, [[ko] + t for t in tgt], max_batch_size=BUDGET, batch_type="tokens")
        return [(sum(r.log_probs), len(r.log_probs)) for r in res]

    # one line each way before the clock: first-call set-up is not the work
    # compared (lyricmt's is taken off with its empty-input run)
    sample(src[:1])
    score(src[:1], [tok.tokenize("warm")])
    cpu0, t0 = time.process_time(), time.perf_counter()
    out = []
    if a.mode == "sample":
        hyps = sample(src)
        out = [f"{i}\t{tok.convert_tokens_to_string(h)}" for i, hs in enumerate(hyps) for h in hs]
        labels = sum(len(h) + 2 for hs in hyps for h in hs)
    elif a.mode == "score":
        tgt = [tok.tokenize(r[1]) for r in rows]
        sc = score(src, tgt)
        out = [f"{i}\t{s:.6f}\t{s / n:.6f}\t{n}" for i, (s, n) in enumerate(sc)]
        labels = sum(n for _, n in sc)
    else:
        hyps = sample(src)
        pairs = []  # (line, sample): each line's repeats dropped, first kept
        for i, hs in enumerate(hyps):
            seen = set()
            for h in hs:
                if tuple(h) not in seen:
                    seen.add(tuple(h))
                    pairs.append((i, h))
        sc = score([src[i] for i, _ in pairs], [h for _, h in pairs])
        out = [f"{i}\t{tok.convert_tokens_to_string(h)}\t{s / n:.6f}" for (i, h), (s, n) in zip(pairs, sc) if s / n >= a.min_score]
        labels = sum(n for _, n in sc)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    with open(a.output, "w", encoding="utf-8") as f:
        f.write("".join(o + "\n" for o in out))
    print(json.dumps({"cpu": cpu, "wall": wall, "records": len(out), "labels": labels}))


def cpu_of(cmd):
    """(user + sys CPU s of the process, stdout)"""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # wait4 must reap the process for its rusage: read the pipes first
    stdout, stderr = p.stdout.read(), p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{stderr[-1500:]}")
    return ru.ru_utime + ru.ru_stime, stdout


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "ct2":
        return ct2_worker(sys.argv[2:])
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--ct2", default="")
    ap.add_argument("--build", default=os.path.join(ROOT, "build", "lyricmt"))
    ap.add_argument("--lines", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=32)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--precisions", default="fp32,int8,bf16")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--work", default="/tmp/lyricmt-augment")
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    ct2 = a.ct2 or a.model.rstrip("/") + "-ct2"
    os.makedirs(a.work, exist_ok=True)
    text = subprocess.run([sys.executable, os.path.join(HERE, "make_corpus.py"), "--lines", str(a.lines * 2), "--seed", "1"],
                          check=True, capture_output=True, text=True).stdout
    corpus = os.path.join(a.work, "corpus.txt")
    with open(corpus, "w") as f:
        f.write("\n".join([l for l in text.split("\n") if l.strip()][: a.lines]) + "\n")
    empty = os.path.join(a.work, "empty.txt")
    open(empty, "w").close()
    for d in (a.model, ct2):  # the page cache holds the weights before any timing
        for name in os.listdir(d):
            with open(os.path.join(d, name), "rb") as f:
                while f.read(1 << 24):
                    pass
    exe = a.build
    common = ["--model", a.model, "--max-length", str(a.max_length), "--set", f"decoding.min_length={a.max_length}",
              "--convention", "m2m100", "--progress", "none", "--restart", "--set", "batch.cache_lines=0",
              "--set", f"batch.max_tokens={BUDGET * 5}", "--set", "batch.max_sentences=1024", "--set", "batch.window_lines=100000"]
    recipe = ["--config", os.path.join(ROOT, "configs", "augment.yaml")]

    def translate(inp, out, p, t, extra):
        return [exe, "translate", *common, *recipe, "-i", inp, "-o", out, "--precision", p, "--threads", str(t), *extra]

    def score_cmd(inp, out, p, t):
        return [exe, "score", "--model", a.model, "-i", inp, "-o", out, "--precision", p, "--threads", str(t), "--convention", "m2m100",
                "--progress", "none", "--restart"]

    # the pairs both engines score: lyricmt's fp32 samples, every one
    samples = os.path.join(a.work, "samples.jsonl")
    cpu_of(translate(corpus, samples, "fp32", 2, ["--set", "output.dedup_hypotheses=false"]))
    src_lines = open(corpus, encoding="utf-8").read().split("\n")
    pairs_tsv = os.path.join(a.work, "pairs.tsv")
    with open(samples, encoding="utf-8") as f, open(pairs_tsv, "w", encoding="utf-8") as g:
        recs = [json.loads(l) for l in f]
        for r in recs:
            g.write(f"{r['source']}\t{r['target']}\n")
    n_pairs = len(recs)
    first = os.path.join(a.work, "first.tsv")
    cpu_of(score_cmd(pairs_tsv, first, "fp32", 2))
    norms = sorted(float(l.split("\t")[2]) for l in open(first) if l.strip())
    floor = norms[len(norms) // 2]
    empty_tsv = os.path.join(a.work, "empty.tsv")
    open(empty_tsv, "w").close()

    def ct2_cmd(mode, inp, out, compute, t):
        return [sys.executable, os.path.abspath(__file__), "ct2", mode, "--model", a.model, "--ct2", ct2, "--input", inp, "--output", out,
                "--max-length", str(a.max_length), "--threads", str(t), "--compute-type", compute, "--min-score", str(floor)]

    results = []  # (threads, precision, row, engine, cpus, note)
    for t in [int(x) for x in a.threads.split(",")]:
        for p in a.precisions.split(","):
            w = lambda n: os.path.join(a.work, f"{n}.{p}.{t}")  # noqa: E731
            ly = {"sampling": (translate(corpus, w("sample.jsonl"), p, t, ["--set", "output.dedup_hypotheses=false"]),
                               translate(empty, w("e.jsonl"), p, t, [])),
                  "score": (score_cmd(pairs_tsv, w("score.tsv"), p, t), score_cmd(empty_tsv, w("e.tsv"), p, t)),
                  "recipe": (translate(corpus, w("recipe.jsonl"), p, t, ["--min-score", f"{floor}"]),
                             translate(empty, w("e2.jsonl"), p, t, []))}
            compute = {"fp32": "float32", "int8": "int8"}.get(p)
            cts = {}
            if compute and (p != "bf16"):
                cts = {"sampling": ct2_cmd("sample", corpus, w("ct2-sample.tsv"), compute, t),
                       "score": ct2_cmd("score", pairs_tsv, w("ct2-score.tsv"), compute, t),
                       "recipe": ct2_cmd("recipe", corpus, w("ct2-recipe.tsv"), compute, t)}
            times = {k: [] for k in list(ly) + [f"ct2 {k}" for k in cts]}
            info = {}
            for r in range(a.runs):
                for k, (cmd, load) in ly.items():
                    c, _ = cpu_of(cmd)
                    l, _ = cpu_of(load)
                    times[k].append(c - l)
                    print(f"{t} threads {p} run {r + 1}: lyricmt {k}: {c - l:.2f} s CPU ({c:.2f} less load {l:.2f})", file=sys.stderr, flush=True)
                for k, cmd in cts.items():
                    _, out = cpu_of(cmd)
                    info[k] = json.loads(out.strip().splitlines()[-1])
                    times[f"ct2 {k}"].append(info[k]["cpu"])
                    print(f"{t} threads {p} run {r + 1}: ct2 {k}: {info[k]['cpu']:.2f} s CPU", file=sys.stderr, flush=True)
            kept = sum(1 for l in open(w("recipe.jsonl")) if l.strip())
            for k in ly:
                note = {"sampling": f"{n_pairs} samples", "score": f"{n_pairs} pairs",
                        "recipe": f"{kept} pairs kept"}[k]
                results.append((t, p, k, f"lyricmt {p}", times[k], note))
                if f"ct2 {k}" in times:
                    i = info[k]
                    note = {"sampling": f"{i['records']} samples", "score": f"{i['records']} pairs",
                            "recipe": f"{i['records']} pairs kept"}[k]
                    results.append((t, p, k, f"CTranslate2 {compute}", times[f"ct2 {k}"], note))
    cpu = open("/proc/cpuinfo").read()
    name = re.search(r"model name\s*:\s*(.*)", cpu).group(1)
    head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()

    def med(xs):
        return statistics.median(xs)

    ct2_of = {(t, "fp32" if p == "bf16" else p, k): med(x) for t, p, k, e, x, _ in results if e.startswith("CTranslate2")}
    samp = {(t, p): med(x) for t, p, k, e, x, _ in results if k == "sampling" and e.startswith("lyricmt")}
    md = [f"# Augmentation against CTranslate2, {datetime.date.today().isoformat()}", "",
          f"- machine: {name}, {os.cpu_count()} cores; {platform.platform()}; shared with other work: CPU seconds, not wall",
          f"- lyricmt {exe} at {head}; CTranslate2 {__import__('ctranslate2').__version__}",
          f"- command: `python3 benchmarks/augment.py {' '.join(sys.argv[1:])}`",
          f"- model: {a.model} (CTranslate2: {ct2}); corpus: {a.lines} non-blank lines of `make_corpus.py --seed 1`, every sample "
          f"forced to max_length {a.max_length}; configs/augment.yaml's sampling (5 samples, top-k 50, top-p 0.95, T 0.9); "
          f"score: the {n_pairs} (source, sample) pairs of lyricmt's fp32 sampling; --min-score {floor:.4f} (their median)",
          "- CPU s: lyricmt's process (user + sys) less the same command on an empty input; CTranslate2's process over "
          f"translate_batch / score_batch after a one-line warm-up of each; median of {a.runs} (fastest-slowest), runs interleaved",
          "- x: CTranslate2's CPU s over lyricmt's (bf16 against CTranslate2 float32); recipe / sampling: the recipe over the "
          "same engine's sampling row", "",
          "| threads | row | engine | CPU s | x CTranslate2 | recipe / sampling | note |", "|---:|---|---|---:|---:|---:|---|"]
    for t, p, k, e, x, note in results:
        c = ct2_of.get((t, "fp32" if p == "bf16" else p, k))
        ratio = f"{c / med(x):.2f}" if e.startswith("lyricmt") and c else ""
        rs = f"{med(x) / samp[(t, p)]:.2f}" if k == "recipe" and e.startswith("lyricmt") else ""
        if k == "recipe" and e.startswith("CTranslate2"):
            cs = ct2_of.get((t, p, "sampling"))
            rs = f"{med(x) / cs:.2f}" if cs else ""
        md.append(f"| {t} | {k} | {e} | {med(x):.2f} ({min(x):.2f}-{max(x):.2f}) | {ratio} | {rs} | {note} |")
    text = "\n".join(md) + "\n"
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    print(text)


if __name__ == "__main__":
    main()
