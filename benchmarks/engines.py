#!/usr/bin/env python3
"""One peer-engine run, in its own process (so its peak memory is its own).

    python3 benchmarks/engines.py ENGINE --model DIR --input FILE --output FILE
        [--ct2 DIR] [--beam N] [--max-length N] [--fixed] [--budget TOKENS] [--threads N]
        [--device cpu|cuda] [--precision fp32|fp16|bf16|int8] [--compute-type T]

ENGINE: hf_loop    transformers generate(), one line at a time (what a user writes first)
        hf_sorted  transformers generate() on length-sorted batches cut by a token budget
        ct2        CTranslate2 translate_batch(batch_type="tokens", max_batch_size=budget)

All use the m2m100 convention (source __en__ ... </s>, first target token __ko__),
max_length counting the decoder start token as transformers does, and --fixed
forces exactly max_length (min = max). Prints one JSON line: seconds (translation
only, model load excluded), lines, target tokens (generated, decoder start excluded),
peak_mb, and for ct2 cpu_seconds (the process's CPU time, all threads, over
translate_batch: on a shared machine the steadier figure).
"""
import argparse
import json
import os
import resource
import time


def batches_by_tokens(order, lengths, budget):
    """Length-sorted batches whose padded source size (rows x longest) fits the
    budget, beams not counted: the batches CTranslate2's token budget cuts."""
    batch, longest = [], 0
    for i in order:
        grown = max(longest, lengths[i])
        if batch and grown * (len(batch) + 1) > budget:
            yield batch
            batch, grown = [], lengths[i]
        batch.append(i)
        longest = grown
    if batch:
        yield batch


def run_hf(a, lines, tok):
    import torch
    from transformers import M2M100ForConditionalGeneration

    torch.set_num_threads(a.threads)
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[a.precision]
    model = M2M100ForConditionalGeneration.from_pretrained(a.model, dtype=dtype).eval().to(a.device)
    kw = dict(num_beams=a.beam, max_length=a.max_length, forced_bos_token_id=tok.get_lang_id("ko"), num_return_sequences=1)
    if a.fixed:
        kw["min_length"] = a.max_length
    outs, tokens = [None] * len(lines), 0
    enc = [tok(l).input_ids for l in lines]
    if a.engine == "hf_loop":
        groups = [[i] for i in range(len(lines))]
    else:
        order = sorted(range(len(lines)), key=lambda i: len(enc[i]))
        groups = list(batches_by_tokens(order, [len(e) for e in enc], a.budget))
    start = time.perf_counter()
    with torch.inference_mode():
        for g in groups:
            batch = tok.pad({"input_ids": [enc[i] for i in g]}, return_tensors="pt").to(a.device)
            seqs = model.generate(**batch, **kw)
            for row, i in enumerate(g):
                ids = [t for t in seqs[row].tolist()[1:] if t != tok.pad_token_id]
                tokens += len(ids)
                outs[i] = tok.decode(ids, skip_special_tokens=True)
    return outs, tokens, time.perf_counter() - start


def run_ct2(a, lines, tok):
    import ctranslate2

    compute = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "int8": "int8"}[a.precision]
    compute = a.compute_type or os.environ.get("LYRICMT_CT2_COMPUTE_TYPE", compute)  # e.g. int8_float16 (scripts/gpu-check.sh)
    tr = ctranslate2.Translator(a.ct2, device=a.device, compute_type=compute, intra_threads=a.threads, inter_threads=1)
    src = [tok.convert_ids_to_tokens(tok(l).input_ids) for l in lines]
    prefix = [[tok.convert_ids_to_tokens(tok.get_lang_id("ko"))]] * len(lines)
    # CTranslate2 counts decoding steps after the start token, the target prefix included
    steps = a.max_length - 1
    start, cpu0 = time.perf_counter(), time.process_time()
    res = tr.translate_batch(src, target_prefix=prefix, beam_size=a.beam, max_batch_size=a.budget, batch_type="tokens",
                             max_decoding_length=steps, min_decoding_length=steps if a.fixed else 1, return_end_token=True)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu0
    outs, tokens = [], 0
    for r in res:
        ids = tok.convert_tokens_to_ids(r.hypotheses[0])
        tokens += len(ids)
        outs.append(tok.decode(ids, skip_special_tokens=True))
    return outs, tokens, seconds, cpu


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("engine", choices=["hf_loop", "hf_sorted", "ct2"])
    ap.add_argument("--model", required=True)
    ap.add_argument("--ct2")
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--beam", type=int, default=1)
    ap.add_argument("--max-length", type=int, default=32)
    ap.add_argument("--fixed", action="store_true")
    ap.add_argument("--budget", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--precision", choices=["fp32", "fp16", "bf16", "int8"], default="fp32")
    ap.add_argument("--compute-type", default="", help="CTranslate2 compute_type (int8, int8_float32, bfloat16, float32, ...)")
    a = ap.parse_args()
    from transformers import M2M100Tokenizer

    tok = M2M100Tokenizer.from_pretrained(a.model, src_lang="en", tgt_lang="ko")
    with open(a.input, encoding="utf-8") as f:
        lines = f.read().split("\n")[:-1]
    if a.engine == "ct2":
        outs, tokens, seconds, cpu = run_ct2(a, lines, tok)
    else:
        outs, tokens, seconds = run_hf(a, lines, tok)
        cpu = None
    with open(a.output, "w", encoding="utf-8") as f:
        f.write("".join(o + "\n" for o in outs))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "lines": len(lines), "tokens": tokens, "peak_mb": peak_mb, "cpu_seconds": cpu}))


if __name__ == "__main__":
    main()
