#!/usr/bin/env python3
"""Side-by-side CPU benchmark: lyricmt, CTranslate2 and transformers on one model
and one corpus, in one run. `make bench` runs it; see benchmarks/README.md.

    python3 benchmarks/bench.py [--model tiny|small100] [--lines N] [--max-length N]
                                [--threads N] [--budgets 256,1024,4096]
                                [--device cpu|cuda] [--precision fp32|fp16|bf16]
    python3 benchmarks/bench.py --precisions fp32,int8,bf16 [--runs 3] [--settings greedy,beam,...]

With --device cuda every engine runs on the GPU in the given precision
(lyricmt --device cuda, CTranslate2 device="cuda", transformers .to("cuda")),
and fixed-length rows also give achieved TFLOP/s from the model's FLOP count.

For each setting (greedy, beam 5; each also in fixed-length mode, where every
engine decodes exactly max-length tokens) every engine translates the same
lines; outputs are compared with transformers' before any figure is reported.
Writes benchmarks/results/<date>-cpu-<model>.md, .dat and .png (gnuplot).

With --precisions, the CPU precision table instead (run_precisions): lyricmt in
each precision against CTranslate2 in the matching compute types (int8: int8 and
int8_float32; bf16: bfloat16, or float32 where CTranslate2 refuses it), each
setting run --runs times, median and spread, peak memory, and the agreement of
the outputs with CTranslate2's and with fp32, and the work counted against the
hardware limit: each row's multiply-adds (model_macs, the same count for both
engines), GMAC/s, and the share of the CPU's peak for that precision, measured
once per report by benchmarks/peak.c. Writes
benchmarks/results/<date>-cpu-<model>-precisions.md (or --out).
"""
import argparse
import datetime
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LYRICMT = os.path.join(ROOT, "build", "lyricmt")


def git_head():
    """The short commit the reports name as lyricmt's version; without git (a
    GPU machine), the commit the bundle was made at (build-gpu/COMMIT)."""
    try:
        head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        head = ""
    bundle = os.path.join(ROOT, "build-gpu", "COMMIT")
    if not head and os.path.exists(bundle):
        head = open(bundle).read().strip()[:7] + " (the GPU bundle's)"
    return head or "unknown"


def sh(cmd, **kw):
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    return subprocess.run(cmd, check=True, **kw)


def run_engine(name, a, model, ct2, corpus, out, beam, fixed, budget, precision=None, compute_type=None, check=True):
    """One timed run in a child process: (seconds, peak MB, command, target
    tokens per line or None). precision: lyricmt's (default a.precision); compute_type:
    CTranslate2's (default: the one matching the precision). With check=False a
    failed run gives None. Target tokens per line (decoder steps, the forced
    target tag included): the mean over the lines the engine ran through its
    model; lyricmt translates a repeated line once, so its repeats count at that mean."""
    precision = precision or a.precision
    if name.startswith("lyricmt"):
        # CTranslate2's max_batch_size in tokens counts the padded source
        # tokens of a batch (rebatch_input: sentences x longest) and expands
        # each sentence to its beams afterwards; lyricmt's batch.max_tokens
        # counts the beams too (README). budget x beams gives both engines
        # the same sentences per batch.
        cmd = [LYRICMT, "translate", "--model", model, "-i", corpus, "-o", out, "--beam", str(beam), "--max-length", str(a.max_length),
               "--device", a.device, "--precision", precision,
               "--convention", "m2m100", "--threads", str(a.threads), "--progress", "plain", "--set", f"batch.max_tokens={budget * beam}",
               "--set", "batch.max_sentences=1024", "--set", "batch.window_lines=100000", "--restart"]
        if fixed:
            cmd += ["--set", f"decoding.min_length={a.max_length}"]
        if name == "lyricmt-no-reuse":
            cmd += ["--set", "batch.cache_lines=0"]
    else:
        cmd = [sys.executable, os.path.join(HERE, "engines.py"), name, "--model", model, "--ct2", ct2, "--input", corpus, "--output", out,
               "--beam", str(beam), "--max-length", str(a.max_length), "--budget", str(budget), "--threads", str(a.threads),
               "--device", a.device, "--precision", precision]
        if compute_type:
            cmd += ["--compute-type", compute_type]
        if fixed:
            cmd.append("--fixed")
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = p.communicate()
    # communicate() has reaped the child: its CPU time (all threads, model load
    # included) is the growth of RUSAGE_CHILDREN over the run
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if p.returncode:
        if not check:
            print(stderr[-600:], file=sys.stderr)
            return None
        sys.exit(f"{name} failed:\n{stderr[-3000:]}")
    peak = 0.0
    m = re.search(r"peak memory ([0-9.]+) MB", stderr)
    if name.startswith("lyricmt"):
        # The summary rounds seconds and lines/s to tenths and tokens/s to units:
        # of the three ways to get the time, take the one its rounding disturbs least
        # (lines / rate alone gave 80.0 s for anything from 75 to 85 s at 0.8 lines/s).
        done = re.search(r"done: (\d+) lines in ([0-9.]+) s \(([0-9.]+) lines/s, ([0-9.]+) target tokens/s\)", stderr)
        lines, seconds, rate, trate = int(done.group(1)), float(done.group(2)), float(done.group(3)), float(done.group(4))
        tokens = re.search(r"; (\d+) target tokens", stderr)
        estimates = [(0.05 / seconds if seconds > 0 else 1e9, seconds)]
        if rate > 0:
            estimates.append((0.05 / rate, lines / rate))
        if trate > 0 and tokens:
            estimates.append((0.5 / trate, int(tokens.group(1)) / trate))
        seconds = min(estimates)[1]
        peak = float(m.group(1)) if m else 0.0
        translated = re.search(r"lyricmt: (\d+) \w+ by the model", stderr)
        per_line = int(tokens.group(1)) / int(translated.group(1)) if tokens and translated and int(translated.group(1)) else None
    else:
        info = json.loads(stdout.strip().splitlines()[-1])
        seconds = info["seconds"]
        peak = info.get("peak_mb", 0.0)
        per_line = info["tokens"] / info["lines"] if info.get("lines") else None
        cpu = info.get("cpu_seconds", cpu)
    return seconds, peak, " ".join(cmd), per_line, cpu


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=["tiny", "small100"], default="small100")
    ap.add_argument("--lines", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=16)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--budgets", default="256,1024,4096")
    ap.add_argument("--engines", default="lyricmt,lyricmt-no-reuse,ct2,hf_sorted,hf_loop")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--precision", choices=["fp32", "fp16", "bf16"], default="fp32")
    ap.add_argument("--precisions", default="",
                    help="CPU precision table instead: lyricmt in each of these (fp32,int8,bf16) against CTranslate2's matching compute types")
    ap.add_argument("--runs", type=int, default=3, help="precision table: timed runs per engine and setting (median and spread)")
    ap.add_argument("--settings", default="greedy,greedy-fixed,beam,beam-fixed", help="which settings")
    ap.add_argument("--out", default="", help="precision table: the report's path (default results/<date>-cpu-<model>-precisions.md; "
                                              "give another for a trial run, so as not to replace a committed result)")
    ap.add_argument("--inflight", action="store_true", help="only lyricmt, in-flight batching on against off (bench_inflight)")
    ap.add_argument("--distinct", action="store_true", help="a corpus of --lines distinct lines (no repeats for lyricmt to reuse)")
    a = ap.parse_args()
    bad = [p for p in a.precisions.split(",") if a.precisions and p not in CT2_TYPES] + [k for k in a.settings.split(",") if k not in SETTINGS]
    if bad:
        ap.error(f"unknown precision or setting {bad[0]!r}: precisions from {','.join(CT2_TYPES)}, settings from {','.join(SETTINGS)}")
    if a.inflight:
        return bench_inflight(a)
    a.ct2_version = versions()["ctranslate2"]
    models = os.path.join(HERE, "models")
    os.makedirs(models, exist_ok=True)
    if a.model == "tiny":
        model = os.path.join(ROOT, "tests", "fixtures", "tiny-b")
    else:
        model = os.path.join(models, "small100-random")
        if not os.path.exists(os.path.join(model, "pytorch_model.bin")):
            sh([sys.executable, os.path.join(HERE, "make_random_model.py"), model])
    ct2 = os.path.join(models, os.path.basename(model) + "-ct2")
    engines = a.engines.split(",")
    ct2_missing = ""  # why CTranslate2 cannot run here: its rows say so
    if "ct2" in engines and not os.path.exists(os.path.join(ct2, "model.bin")):
        try:
            sh(["ct2-transformers-converter", "--model", model, "--output_dir", ct2, "--force"])
        except (OSError, subprocess.CalledProcessError) as err:
            ct2_missing = f"converting the model failed: {err}"
    work = os.path.join(models, "run")
    os.makedirs(work, exist_ok=True)
    corpus = os.path.join(work, "corpus.txt")
    text = subprocess.run([sys.executable, os.path.join(HERE, "make_corpus.py"), "--lines", str(a.lines * (8 if a.distinct else 2)),
                           "--seed", "1"], check=True, capture_output=True, text=True).stdout
    lines = [l for l in text.split("\n") if l.strip()]  # peers would translate blank lines; lyricmt skips them
    if a.distinct:
        lines = list(dict.fromkeys(lines))
    lines = lines[: a.lines]
    with open(corpus, "w") as f:
        f.write("\n".join(lines) + "\n")
    # read the weights once so that no engine's first run pays for the disk (the page cache then holds them)
    for d in (model, ct2) if os.path.isdir(ct2) else (model,):
        for name in os.listdir(d):
            with open(os.path.join(d, name), "rb") as f:
                while f.read(1 << 24):
                    pass
    if a.precisions:
        run_precisions(a, model, ct2, corpus, work, len(lines))
        return
    budgets = [int(b) for b in a.budgets.split(",")]
    default_budget = 4096
    settings = [SETTINGS[k] for k in a.settings.split(",")]
    rows, sweep, commands = [], [], []
    for label, beam, fixed in settings:
        outs, res = {}, {}
        for e in engines:
            if e == "hf_loop" and beam > 1 and a.model != "tiny":
                continue  # minutes per run on two cores; the greedy rows show its gap
            out = os.path.join(work, f"{e}.{beam}.{int(fixed)}.txt")
            got = None if e == "ct2" and ct2_missing else run_engine(e, a, model, ct2, corpus, out, beam, fixed, default_budget,
                                                                      check=e != "ct2")
            if got is None:  # CTranslate2 4.8.5's GPU path needs CUDA 12's cuBLAS, which a CUDA 13 machine may lack
                rows.append((label, f"{e} (not runnable here: {ct2_missing or 'it failed, see the log'})", None, None, None, None, None))
                continue
            seconds, peak, cmd, _, _ = got
            outs[e] = open(out).read().split("\n")
            res[e] = (seconds, peak)
            commands.append(cmd)
        ref = outs["hf_sorted"] if "hf_sorted" in outs else outs[next(iter(outs))]
        ref_tokens = None
        for e in res:
            same = sum(x == y for x, y in zip(outs[e], ref)) / max(1, len(lines) + 1)
            rows.append((label, e, res[e][0], res[e][1], same))
        flops = None
        if fixed:
            # every engine did the same work: lines x (max_length - 1) generated tokens
            ref_tokens = len(lines) * (a.max_length - 1) * 1
            if a.device == "cuda":
                flops = model_flops(model, corpus, beam, a.max_length)
        for i, r in enumerate(rows):
            if r[0] == label and r[2] is not None:
                rows[i] = r + (ref_tokens, flops)
        if fixed and beam == 1:
            for b in budgets:
                for e in ("lyricmt-no-reuse", "ct2", "hf_sorted"):
                    if e not in engines or (e == "ct2" and ct2_missing):
                        continue
                    out = os.path.join(work, f"sweep.{e}.{b}.txt")
                    seconds, _, _, _, _ = run_engine(e, a, model, ct2, corpus, out, beam, fixed, b)
                    sweep.append((e, b, len(lines) / seconds))
    write_report(a, rows, sweep, commands, len(lines), model)


# lyricmt's CPU precisions and the CTranslate2 compute types each is compared with
CT2_TYPES = {"fp32": ["float32"], "int8": ["int8", "int8_float32"], "bf16": ["bfloat16"]}
SETTINGS = {"greedy": ("greedy", 1, False), "greedy-fixed": ("greedy, fixed length", 1, True),
            "beam": ("beam 5", 5, False), "beam-fixed": ("beam 5, fixed length", 5, True)}


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def run_precisions(a, model, ct2, corpus, work, n_lines):
    """The precision table: for each setting and each of a.precisions, lyricmt in
    that precision and CTranslate2 in each matching compute type, a.runs times
    each, interleaved (lyricmt, CT2, lyricmt, CT2, ...) so that a busy spell hits
    both. Outputs are compared with lyricmt's fp32 and with CTranslate2's.
    The runs are the outer loop and the report is rewritten after every
    setting of every run, so a table cut short (a session's end, Ctrl-C) still
    holds each setting over the runs that finished."""
    precisions = a.precisions.split(",")
    commands, notes = [], []
    refused = set()
    limits = measure_peaks(a.threads)  # first, before the engines warm the machine
    load_cpu = {}
    cfg = json.load(open(os.path.join(model, "config.json")))
    src_lens = source_lengths(model, corpus)
    keys = a.settings.split(",")
    outs, times, peaks, steps, cpus = ({k: {} for k in keys} for _ in range(5))
    engines = [("lyricmt", "fp32", None)] if "fp32" not in precisions else []  # the fp32 reference for agreement
    for p in precisions:
        engines.append(("lyricmt", p, None))
        engines += [("ct2", p, t) for t in CT2_TYPES[p] if ("ct2", t) not in {(e, c) for e, _, c in engines}]
    if "bf16" in precisions and "fp32" not in precisions:
        engines.append(("ct2", "fp32", "float32"))  # stands in where CTranslate2 refuses bfloat16
    for r in range(a.runs):
        for key in keys:
            label, beam, fixed = SETTINGS[key]
            for e, p, t in engines:
                tag = f"{e}-{t or p}"
                if tag in refused:
                    continue
                out = os.path.join(work, f"prec.{tag}.{beam}.{int(fixed)}.txt")
                got = run_engine(e, a, model, ct2, corpus, out, beam, fixed, 4096, precision=p, compute_type=t, check=e != "ct2")
                if got is None:
                    refused.add(tag)
                    why = (" (its mayiuse_bfloat16 is true on CUDA devices only: no CPU has a CTranslate2 bfloat16 mode; "
                           "lyricmt bf16 is compared with its float32)") if t == "bfloat16" else ""
                    notes.append(f"CTranslate2 {a.ct2_version} refused compute_type {t} on this CPU{why}")
                    continue
                if e == "lyricmt" and p not in load_cpu:
                    # the same command on no lines: what loading (and packing, quantizing) the model costs
                    empty = os.path.join(work, "empty.txt")
                    open(empty, "w").close()
                    load_cpu[p] = run_engine(e, a, model, ct2, empty, empty + ".out", beam, fixed, 4096, precision=p)[4]
                cpus[key].setdefault(tag, []).append(got[4] - (load_cpu[p] if e == "lyricmt" else 0.0))
                times[key].setdefault(tag, []).append(got[0])
                peaks[key].setdefault(tag, []).append(got[1])
                steps[key].setdefault(tag, []).append(got[3])
                outs[key][tag] = open(out, encoding="utf-8").read().split("\n")
                commands.append(got[2])
            rows = []
            for k in keys[:keys.index(key) + 1] if r == 0 else keys:
                rows += precision_rows(SETTINGS[k], precisions, outs[k], times[k], peaks[k], steps[k], cpus[k], cfg, src_lens, limits,
                                       n_lines)
            write_precision_report(a, rows, commands, sorted(set(notes)), n_lines, model, cfg, src_lens, limits, load_cpu)


def precision_rows(setting, precisions, outs, times, peaks, steps, cpus, cfg, src_lens, limits, n_lines):
    """One setting's rows of the table: each precision against each CTranslate2 type it is compared with."""
    label, beam, _ = setting
    rows = []
    ref = outs.get("lyricmt-fp32")
    for p in precisions:
        mine = f"lyricmt-{p}"
        peers = [f"ct2-{t}" for t in CT2_TYPES[p] if f"ct2-{t}" in times] or ["ct2-float32"]  # bfloat16 refused: float32
        for peer in peers:
            if peer not in times or mine not in times:
                continue
            same_ct2 = sum(x == y for x, y in zip(outs[mine], outs[peer])) / max(1, n_lines + 1)
            same_fp32_mine = sum(x == y for x, y in zip(outs[mine], ref)) / max(1, n_lines + 1) if ref else None
            same_fp32_peer = sum(x == y for x, y in zip(outs[peer], ref)) / max(1, n_lines + 1) if ref else None
            macs = [model_macs(cfg, src_lens, median(steps[t]), beam) if None not in steps[t] else None for t in (mine, peer)]
            rows.append((label, p, peer[4:], times[mine], times[peer], median(peaks[mine]), median(peaks[peer]), same_ct2,
                         same_fp32_mine, same_fp32_peer, macs, [limit_of(limits, p), limit_of(limits, peer[4:])],
                         cpus[mine], cpus[peer]))
    return rows


def spread(xs):
    m = median(xs)
    return f"{m:.2f} ({min(xs):.2f}-{max(xs):.2f})"


def write_precision_report(a, rows, commands, notes, n_lines, model, cfg, src_lens, limits, load_cpu):
    date = datetime.date.today().isoformat()
    out_dir = os.path.join(HERE, "results")
    os.makedirs(out_dir, exist_ok=True)
    base = os.path.join(out_dir, f"{date}-cpu-{a.model}-precisions")
    if a.out:
        base = a.out[:-3] if a.out.endswith(".md") else a.out
    v = versions()
    md = [f"# CPU precisions: {a.model} model, {date}", "",
          f"- machine: {machine(a)}; {platform.platform()}",
          f"- versions: ctranslate2 {v['ctranslate2']}; lyricmt at git "
          + git_head(),
          f"- model: {os.path.relpath(model, ROOT)}; corpus: {n_lines} non-blank lines from `make_corpus.py --seed 1`; "
          f"max_length {a.max_length}; token budget 4096 padded source tokens a batch (CTranslate2 `max_batch_size`, "
          "`batch_type=\"tokens\"`; lyricmt `batch.max_tokens` 4096 x beams, as it counts the beams too: the same sentences "
          f"a batch); {a.runs} runs of each engine per setting asked, interleaved (every setting's run r before any run r+1; "
          f"the report is rewritten as each setting's run ends, so `runs` says how many each row's median has)",
          "- seconds: median (fastest-slowest) over the runs; speed-up: CTranslate2's median over lyricmt's",
          "- CPU s: the translation's CPU seconds (user + system, all threads): CTranslate2's over translate_batch (engines.py); "
          "lyricmt's process less the same command's on an empty input (the model's load, packing and quantization, "
          f"{', '.join(f'{k} {v:.1f} s' for k, v in sorted(load_cpu.items()))}); on a shared machine these move less than "
          "seconds do, as a run slowed by other work on the cores still counts what it spent itself; CPU speed-up: their ratio",
          "- same as CT2: output lines identical to CTranslate2's in that row; same as fp32: identical to lyricmt fp32's "
          "(lyricmt's own, then CTranslate2's)",
          "- peak memory: the median peak resident set of each engine's process (CTranslate2's includes Python and the tokenizer)"]
    md += work_lines(a, cfg, src_lens, limits)
    md += [f"- note: {n}" for n in notes]
    md += ["", "| setting | runs | lyricmt | CTranslate2 | lyricmt s | CTranslate2 s | speed-up | CPU s lyricmt / CT2 | CPU speed-up "
           "| peak MB lyricmt / CT2 | same as CT2 | same as fp32 (lyricmt / CT2) "
           "| work GMAC lyricmt / CT2 | GMAC/s lyricmt / CT2 | % of MAC peak lyricmt / CT2 |",
           "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for label, p, t, mine, peer, pk_m, pk_p, same_ct2, s_m, s_p, work, limit, cpu_m, cpu_p in rows:
        fp = f"{s_m * 100:.0f}% / {s_p * 100:.0f}%" if s_m is not None else "-"
        rate = [w / median(x) / 1e9 if w else None for w, x in zip(work, (mine, peer))]
        share = " / ".join(f"{100 * r / l:.1f}%" if r and l else "-" for r, l in zip(rate, limit))
        gmac = " / ".join(f"{w / 1e9:.1f}" if w else "-" for w in work)
        gmacs = " / ".join(f"{r:.1f}" if r else "-" for r in rate)
        md.append(f"| {label} | {min(len(mine), len(peer))} | {p} | {t} | {spread(mine)} | {spread(peer)} | {median(peer) / median(mine):.2f}x | "
                  f"{median(cpu_m):.1f} / {median(cpu_p):.1f} | {median(cpu_p) / median(cpu_m):.2f}x | {pk_m:.0f} / {pk_p:.0f} | "
                  f"{same_ct2 * 100:.0f}% | {fp} | {gmac} | {gmacs} | {share} |")
    md += ["", "Commands (as run, from the repository root):", "", "```"] + sorted({c.replace(ROOT + "/", "").replace(sys.executable, "python3") for c in commands}) + ["```", ""]
    with open(base + ".md", "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))


def source_lengths(model, corpus):
    """Source tokens of each corpus line as every engine feeds them (`__en__`,
    the pieces, `</s>`), from the model's own tokenizer."""
    from transformers import M2M100Tokenizer

    tok = M2M100Tokenizer.from_pretrained(model, src_lang="en", tgt_lang="ko")
    return [len(tok(l).input_ids) for l in open(corpus, encoding="utf-8").read().split("\n") if l.strip()]


MACS_FORMULA = ("per line of S source tokens, n decoder steps and k beams: encoder S·Le·(4D²+2DF) + Le·2S²D "
                "(q, k, v, o and the FFN per token; q·K and p·V); cross-attention K/V S·Ld·2D²; decoder "
                "k·n·(Ld·(6D²+2DF) + VD) (self q, k, v, o, cross q, o, the FFN, the output projection per row-step) "
                "+ k·Ld·D·(n(n+1) + 2nS) (self-attention's q·K and p·V over the 1..n cached positions, cross-attention's over S)")


def model_macs(cfg, src_lens, steps, beam):
    """Multiply-adds the translation needs (MACS_FORMULA), summed over the lines:
    src_lens from source_lengths, steps the decoder steps per line (the forced
    target tag included). The same count for every engine, whatever it skips;
    padding, layer norms, softmax and the search's row work are not counted."""
    D, F, V = cfg["d_model"], cfg["encoder_ffn_dim"], cfg["vocab_size"]
    Fd, Le, Ld = cfg["decoder_ffn_dim"], cfg["encoder_layers"], cfg["decoder_layers"]
    n, k = steps, beam
    total = 0.0
    for S in src_lens:
        total += S * Le * (4 * D * D + 2 * D * F) + Le * 2 * S * S * D + S * Ld * 2 * D * D
        total += k * n * (Ld * (6 * D * D + 2 * D * Fd) + V * D) + k * Ld * D * (n * (n + 1) + 2 * n * S)
    return total


# the peak each precision is held against (peak.c's kinds): the fastest instruction
# that does its products exactly. bf16: vdpbf16ps, or a bfloat16 widened to float
# and one FMA (exact, as host/cpu/gemm_bf16.c does on Intel, where that is faster)
PEAK_KINDS = {"fp32": ["fp32_fma512", "fp32_fma256"], "float32": ["fp32_fma512", "fp32_fma256"],
              "bf16": ["bf16_amx", "bf16_dp512", "fp32_fma512", "fp32_fma256"],
              "bfloat16": ["bf16_amx", "bf16_dp512", "fp32_fma512", "fp32_fma256"],
              "int8": ["int8_amx", "int8_dp512"], "int8_float32": ["int8_amx", "int8_dp512"]}


def measure_peaks(threads):
    """benchmarks/peak.c's JSON line for this many threads, built with cc into
    build/ when missing or older than its source; {} (and no % column) if cc fails."""
    src, exe = os.path.join(HERE, "peak.c"), os.path.join(ROOT, "build", "peak")
    try:
        if not os.path.exists(exe) or os.path.getmtime(exe) < os.path.getmtime(src):
            os.makedirs(os.path.dirname(exe), exist_ok=True)
            sh(["cc", "-O2", "-std=c11", "-Wall", "-Wextra", "-fopenmp", src, "-o", exe])
        return json.loads(subprocess.run([exe, str(threads)], check=True, capture_output=True, text=True).stdout)
    except (OSError, subprocess.CalledProcessError, ValueError) as err:
        print(f"bench: no peak measured ({err}); the report leaves out % of peak", file=sys.stderr)
        return {}


def limit_of(limits, precision):
    """Peak GMAC/s with all threads for an engine's precision or compute type; None when the CPU has none."""
    got = [limits[k]["all"] for k in PEAK_KINDS[precision] if limits.get(k)]
    return max(got) if got else None


def work_lines(a, cfg, src_lens, limits):
    """The report's lines that say how work and peaks are counted."""
    names = {"fp32_fma512": "fp32 FMA zmm", "fp32_fma256": "fp32 FMA ymm", "bf16_dp512": "vdpbf16ps zmm", "int8_dp512": "vpdpbusd zmm",
             "bf16_amx": "AMX tdpbf16ps", "int8_amx": "AMX tdpbusd"}
    peaks = "; ".join(f"{names[k]} {limits[k]['thread']:.1f} a thread, {limits[k]['all']:.1f} with {limits['threads']} "
                      f"(wall {limits[k]['all_wall']:.1f})" if limits.get(k) else f"{names[k]} absent" for k in names) if limits else "not measured"
    return [f"- work: multiply-adds (MACs) the translation needs, counted the same way for both engines from config.json "
            f"(D={cfg['d_model']}, F={cfg['encoder_ffn_dim']}/{cfg['decoder_ffn_dim']}, Le={cfg['encoder_layers']}, "
            f"Ld={cfg['decoder_layers']}, V={cfg['vocab_size']}; heads change no count): {MACS_FORMULA}. "
            f"S: the tokenizer's ({sum(src_lens)} source tokens, `__en__` and `</s>` included); n: the engine's target tokens "
            f"per line (its median run; mean over lines), the forced `__ko__` included; every line counts, repeats too. Not counted: padding, "
            "layer norms, softmax, the search. Work an engine skips (lyricmt: repeated lines translated once, beam rows "
            "shared until they differ; CTranslate2: beams expanded after the first step) still counts, so skipping shows as a higher rate",
            f"- GMAC/s: the work over the median seconds; % of MAC peak: of `build/peak {a.threads}` (benchmarks/peak.c, run once "
            "before the engines), all threads' GMAC/s by CPU time, for the engine's precision: fp32/float32 the fp32 FMA; "
            "bf16/bfloat16 the fastest of AMX tdpbf16ps, vdpbf16ps and the FMA on a widened bfloat16; int8/int8_float32 "
            "the faster of AMX tdpbusd and vpdpbusd (the same limit for both engines: the CPU's)",
            f"- peaks (GMAC/s): {peaks}"]


def model_flops(model, corpus, beam, max_length):
    """Matrix-product FLOPs of translating the corpus at fixed length: encoder
    over the source tokens, cross K/V once per source token, decoder and output
    projection per generated token of every beam row (attention scores left out)."""
    from transformers import M2M100Tokenizer

    cfg = json.load(open(os.path.join(model, "config.json")))
    D, V = cfg["d_model"], cfg["vocab_size"]
    tok = M2M100Tokenizer.from_pretrained(model, src_lang="en", tgt_lang="ko")
    lines = [l for l in open(corpus, encoding="utf-8").read().split("\n") if l.strip()]
    src = sum(len(tok(l).input_ids) for l in lines)
    enc = cfg["encoder_layers"] * (4 * D * D + 2 * D * cfg["encoder_ffn_dim"])
    cross_kv = cfg["decoder_layers"] * 2 * D * D
    dec = cfg["decoder_layers"] * (6 * D * D + 2 * D * cfg["decoder_ffn_dim"]) + V * D
    return 2.0 * (src * (enc + cross_kv) + len(lines) * beam * (max_length - 1) * dec)


def machine(a):
    if a.device == "cuda":
        try:
            return subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"], capture_output=True,
                                  text=True).stdout.strip()
        except OSError:
            return "unknown GPU"
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    return f"{cpu}, {os.cpu_count()} cores, {a.threads} threads per engine"


def versions():
    v = {}
    for mod in ("ctranslate2", "transformers", "torch"):
        try:
            v[mod] = __import__(mod).__version__
        except Exception:
            v[mod] = "not installed"
    return v


def write_report(a, rows, sweep, commands, n_lines, model):
    date = datetime.date.today().isoformat()
    out_dir = os.path.join(HERE, "results")
    os.makedirs(out_dir, exist_ok=True)
    base = os.path.join(out_dir, f"{date}-{a.device}-{a.model}" + (f"-{a.precision}" if a.device == "cuda" else ""))
    v = versions()
    md = [f"# {a.device.upper()} benchmark: {a.model} model, {date}", "",
          f"- machine: {machine(a)}; {platform.platform()}",
          f"- versions: ctranslate2 {v['ctranslate2']}, transformers {v['transformers']}, torch {v['torch']}; lyricmt at git "
          + git_head(),
          f"- model: {os.path.relpath(model, ROOT)}; corpus: {n_lines} non-blank lines from `make_corpus.py --seed 1`; "
          f"max_length {a.max_length}; token budget 4096 padded source tokens a batch (CTranslate2 `max_batch_size` with "
          "`batch_type=\"tokens\"`, lyricmt `batch.max_tokens` x beams as it counts the beams too, transformers sorted batches "
          "cut the same way); "
          f"{a.precision} everywhere",
          "- same lines: share of output lines identical to transformers' (sorted) on the same setting",
          "- target tokens/s is given in fixed-length rows only, where every engine generates exactly lines x (max_length - 1) tokens",
          "- TFLOP/s (GPU runs, fixed-length rows): matrix-product FLOPs of the work (`model_flops` in bench.py) over the time", "",
          "| setting | engine | lines/s | target tokens/s | TFLOP/s | seconds | peak host memory (MB) | same lines | lyricmt speed-up |",
          "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for label, e, seconds, peak, same, ref_tokens, flops in rows:
        if seconds is None:
            md.append(f"| {label} | {e} | - | - | - | - | - | - | - |")
            continue
        mine = next(r[2] for r in rows if r[0] == label and r[1] == "lyricmt")
        tok = f"{ref_tokens / seconds:.1f}" if ref_tokens else "-"
        tf = f"{flops / seconds / 1e12:.2f}" if flops else "-"
        md.append(f"| {label} | {e} | {n_lines / seconds:.2f} | {tok} | {tf} | {seconds:.2f} | {peak:.0f} | {same * 100:.0f}% | {seconds / mine:.2f}x |")
    md += ["", "Commands (as run, from the repository root):", "", "```"] + sorted({c.replace(ROOT + "/", "").replace(sys.executable, "python3") for c in commands}) + ["```", ""]
    if sweep:
        with open(base + ".dat", "w") as f:
            for e in sorted({s[0] for s in sweep}):
                f.write(f"# {e}\n" + "".join(f"{b} {r:.4f}\n" for x, b, r in sweep if x == e) + "\n\n")
        names = sorted({s[0] for s in sweep})
        plot = ", ".join(f"'{base}.dat' index {i} with linespoints title '{n}'" for i, n in enumerate(names))
        gp = (f"set terminal pngcairo size 800,500 noenhanced; set output '{base}.png'; set logscale x 2; "
              f"set xlabel 'batch token budget'; set ylabel 'lines/s (greedy, fixed length {a.max_length})'; "
              f"set title '{a.device.upper()} throughput, {a.model} model'; set key top left; plot {plot}")
        try:
            subprocess.run(["gnuplot", "-e", gp], check=True)
            md.append(f"![throughput against token budget]({os.path.basename(base)}.png)")
        except (OSError, subprocess.CalledProcessError) as err:
            md.append(f"(no plot: gnuplot failed: {err})")
    with open(base + ".md", "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))


def bench_inflight(a):
    """In-flight batching on against off (batch.inflight), lyricmt alone, on a
    model whose lines stop on their own at varied lengths: the trained tiny
    fixture (--model tiny), or at SMaLL-100 size a random model made to stop
    (make_random_model.py --stops; plain random weights never choose </s>, so
    every line would run to max_length and both modes would do the same work).
    Default batch budgets (32 sentences, 4096 tokens), so the corpus splits
    into batches that drain; repeats not reused. Each mode runs `reps` times,
    alternating; the fastest run counts for lines/s, and CPU seconds (user +
    system of the run, the least) are given too, since the machine may be shared."""
    import resource

    if a.model == "tiny":
        model, settings, reps = os.path.join(ROOT, "tests", "fixtures", "tiny-b"), (("greedy", 1), ("beam 5", 5)), 3
    else:
        model, settings, reps = os.path.join(HERE, "models", "small100-random-stops"), (("greedy", 1),), 2
        if not os.path.exists(os.path.join(model, "model.safetensors")):
            sh([sys.executable, os.path.join(HERE, "make_random_model.py"), model, "--stops"])
    work = os.path.join(HERE, "models", "run")
    os.makedirs(work, exist_ok=True)
    corpus = os.path.join(work, "inflight-corpus.txt")
    text = subprocess.run([sys.executable, os.path.join(HERE, "make_corpus.py"), "--lines", str(a.lines * 2), "--seed", "1"],
                          check=True, capture_output=True, text=True).stdout
    lines = [l for l in text.split("\n") if l.strip()][: a.lines]
    with open(corpus, "w") as f:
        f.write("\n".join(lines) + "\n")
    rows, commands = [], []
    for label, beam in settings:
        best, cpu, outs, tokens = {}, {}, {}, {}
        for rep in range(reps):
            for mode in ("false", "true"):
                out = os.path.join(work, f"inflight.{beam}.{mode}.txt")
                cmd = [LYRICMT, "translate", "--model", model, "-i", corpus, "-o", out, "--beam", str(beam), "--max-length",
                       str(a.max_length), "--threads", str(a.threads), "--convention", "m2m100", "--progress", "plain",
                       "--set", "batch.cache_lines=0", "--set", "batch.window_lines=100000", "--inflight", mode, "--restart"]
                print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                p = subprocess.run(cmd, capture_output=True, text=True)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                if p.returncode:
                    sys.exit(f"lyricmt failed:\n{p.stderr[-3000:]}")
                rate = float(re.search(r"\(([0-9.]+) lines/s", p.stderr).group(1))
                tokens[mode] = int(re.search(r"; (\d+) target tokens", p.stderr).group(1))
                best[mode] = max(best.get(mode, 0.0), rate)
                used = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
                cpu[mode] = min(cpu.get(mode, float("inf")), used)
                outs[mode] = open(out, encoding="utf-8").read()
                commands.append(" ".join(cmd))
        same = outs["true"] == outs["false"]
        for mode in ("false", "true"):
            rows.append((label, "on" if mode == "true" else "off", best[mode], best[mode] * tokens[mode] / len(lines),
                         best[mode] / best["false"], cpu[mode], same, tokens[mode] / len(lines)))
    date = datetime.date.today().isoformat()
    base = os.path.join(HERE, "results", f"{date}-cpu-{a.model}-inflight")
    md = [f"# In-flight batching, CPU, {os.path.relpath(model, ROOT)}, {date}", "",
          f"- machine: {machine(a)}; {platform.platform()}; shared with other jobs: lines/s is the best of {reps} runs "
          "per mode, CPU seconds the least",
          "- lyricmt at git " + git_head(),
          f"- corpus: {len(lines)} non-blank lines from `make_corpus.py --seed 1`; max_length {a.max_length}; default budgets "
          "(32 sentences, 4096 tokens); repeats not reused (`batch.cache_lines=0`)",
          "- the model stops on its own at varied lengths (tokens per line: the mean)",
          "- same output: in-flight output byte-identical to batch-by-batch", "",
          "| setting | in-flight | lines/s | target tokens/s | speed-up | CPU seconds | same output | tokens per line |",
          "|---|---|---:|---:|---:|---:|---|---:|"]
    for label, mode, rate, tps, up, used, same, per in rows:
        md.append(f"| {label} | {mode} | {rate:.2f} | {tps:.1f} | {up:.2f}x | {used:.1f} | {'yes' if same else 'NO'} | {per:.1f} |")
    md += ["", "Commands (as run, from the repository root):", "", "```"] + sorted({c.replace(ROOT + "/", "") for c in commands}) + ["```", ""]
    os.makedirs(os.path.dirname(base), exist_ok=True)
    with open(base + ".md", "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))

if __name__ == "__main__":
    main()
