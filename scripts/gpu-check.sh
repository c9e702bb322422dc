#!/usr/bin/env bash
# gpu-check: the CUDA backend's whole check on a lent GPU machine, from the
# bundle `make gpu-bundle` made (build-gpu/: binaries for sm_90, Debian
# packages as .deb files, the CTranslate2 wheel). Nothing is installed system
# wide and nothing is fetched: the machine has no network.
#
#   bash scripts/gpu-check.sh tests   # kernel, backend and golden tests (fp32, fp16, bf16), then
#                                     # compute-sanitizer memcheck, racecheck, synccheck, initcheck
#   bash scripts/gpu-check.sh bench   # the SMaLL-100-sized random model; lyricmt against CTranslate2
#                                     # (float16, bfloat16, int8_float16) and transformers on the GPU
#   bash scripts/gpu-check.sh scale   # several devices in one process (--devices all == --devices 0,
#                                     # byte for byte), the NCCL broadcast, and the model-load time with
#                                     # --weights-from disk vs broadcast on the SMaLL-100-sized model
#   bash scripts/gpu-check.sh all     # tests and bench (may not fit one 10-minute call)
#
# Every log, the summary (summary.md) and the benchmark tables go under $OUT
# (default gpu-check-out/). A missing prerequisite is reported there with its
# reason, never skipped silently. Exit status: 0 when every step passed.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
MODE=${1:-all}
OUT=${OUT:-$ROOT/gpu-check-out}
B=$ROOT/build-gpu
DEADLINE=${GPU_CHECK_SECONDS:-560} # stop starting new steps after this many seconds (a call has 600)
mkdir -p "$OUT"
SUMMARY=$OUT/summary.md
START=$(date +%s)
FAILED=0
export LYRICMT_REQUIRE_CUDA=1 # on a GPU machine, "no GPU" is a failure, not a skip

note() { printf '%s\n' "$*" | tee -a "$SUMMARY"; }
elapsed() { echo $(($(date +%s) - START)); }

# step NAME LIMIT COMMAND...: runs with a time limit, logs to $OUT/NAME.log, one summary line.
step() {
    local name=$1 limit=$2 t0 rc
    shift 2
    if [ "$(elapsed)" -ge "$DEADLINE" ]; then
        note "| $name | not run | - | the call's time ran out (${DEADLINE}s); run it in another call |"
        FAILED=1
        return 1
    fi
    local left=$((DEADLINE + 30 - $(elapsed))) # no step may outlive the call
    [ "$limit" -gt "$left" ] && limit=$left
    t0=$(date +%s)
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    rc=$?
    local verdict=pass
    [ $rc -eq 0 ] || verdict="FAIL (exit $rc)"
    [ $rc -eq 124 ] && verdict="FAIL (timed out after ${limit}s)"
    [ $rc -eq 0 ] || FAILED=1
    note "| $name | $verdict | $(($(date +%s) - t0))s | $(grep -E 'passed, [0-9]+ failed|ERROR SUMMARY|identical to transformers \(' "$OUT/$name.log" | tail -n 2 | tr '\n' ' ') |"
    return $rc
}

# ---- the machine, the bundle, the libraries ----
{
    echo "# GPU check, $(date -u '+%Y-%m-%d %H:%M UTC'), mode $MODE"
    echo
    echo "- bundle made at commit $(cat "$B/COMMIT" 2>/dev/null || echo '?'); tree at $(git rev-parse HEAD 2>/dev/null || echo '?')"
    echo "- GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -n 1)"
    echo "- nvcc: $(nvcc --version 2>&1 | tail -n 1); glibc $(ldd --version 2>&1 | head -n 1 | awk '{print $NF}'); $(python3 --version 2>&1)"
    echo
} >"$SUMMARY"
nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1

[ -x "$B/bin/lyricmt" ] || { note "no $B/bin/lyricmt: make the bundle first (make gpu-bundle) and carry build-gpu"; exit 1; }
python3 "$ROOT/scripts/unpack-debs.py" "$B/deps/lib" "$B"/debs/*.deb >"$OUT/unpack.log" 2>&1 ||
    { note "unpacking the Debian packages failed: $(tail -n 1 "$OUT/unpack.log")"; exit 1; }
# the CUDA runtime and cuBLAS are the machine's: where nvcc's toolkit keeps them
CUDA_LIB=$(dirname "$(dirname "$(command -v nvcc 2>/dev/null || echo /usr/local/cuda/bin/nvcc)")")/lib64
export LD_LIBRARY_PATH=$B/deps/lib:$CUDA_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
missing=$(for f in "$B"/bin/*; do ldd "$f" | grep 'not found'; done | sort -u)
if [ -n "$missing" ]; then
    note "libraries not found (the bundle is incomplete for this machine):"
    note "$missing"
    exit 1
fi
note "- libraries: every binary resolves (Debian's from build-gpu/deps/lib, CUDA's from $CUDA_LIB)"
note ""
note "| step | result | time | counts |"
note "|---|---|---:|---|"

run_tests() {
    step test_cuda_kernels 240 "$B/bin/test_cuda_kernels"
    step test_cuda_backend 300 "$B/bin/test_cuda_backend"
    for p in fp32 fp16 bf16; do
        step "test_golden_cuda_$p" 240 env LYRICMT_GOLDEN_PRECISION=$p "$B/bin/test_golden"
    done
    for t in test_units test_corrupt test_job_parts test_logit_rows; do
        [ -x "$B/bin/$t" ] && step "$t" 120 "$B/bin/$t"
    done
    local san
    san=$(command -v compute-sanitizer || ls "$(dirname "$CUDA_LIB")"/bin/compute-sanitizer 2>/dev/null || true)
    if [ -z "$san" ]; then
        note "| compute-sanitizer | not run | - | not found on this machine |"
        FAILED=1
        return
    fi
    # the kernel tests in full under memcheck; the other tools without the
    # past-the-grid-limit sizes (racecheck is slow on shared memory)
    step sanitize_memcheck_kernels 240 "$san" --tool memcheck --error-exitcode 1 "$B/bin/test_cuda_kernels"
    for tool in racecheck synccheck initcheck; do
        step "sanitize_${tool}_kernels" 200 env LYRICMT_CUDA_QUICK=1 "$san" --tool $tool --error-exitcode 1 "$B/bin/test_cuda_kernels"
    done
    for tool in memcheck racecheck synccheck initcheck; do
        step "sanitize_${tool}_golden_bf16" 200 env LYRICMT_GOLDEN_PRECISION=bf16 "$san" --tool $tool --error-exitcode 1 "$B/bin/test_golden"
    done
}

# CUDA 12's cuBLAS, which CTranslate2 4.8.5's GPU path loads, wherever this machine may have one.
find_cublas12() {
    local d
    for d in $(ldconfig -p 2>/dev/null | awk '/libcublas\.so\.12/ {print $NF}' | xargs -r -n1 dirname) /usr/local/cuda-12*/lib64 \
        $(python3 -c 'import site; print("\n".join(site.getsitepackages()))' 2>/dev/null | sed 's|$|/nvidia/cublas/lib|'); do
        [ -e "$d/libcublas.so.12" ] && { echo "$d"; return 0; }
    done
    return 1
}

run_bench() {
    local py=$B/py ct2_engines="" why=""
    python3 -c 'import torch, transformers, sentencepiece; assert torch.cuda.is_available()' >"$OUT/python-deps.log" 2>&1 ||
        { note "| bench | not run | - | torch/transformers/sentencepiece or torch's GPU missing: $(tail -n 1 "$OUT/python-deps.log") |"; FAILED=1; return; }
    # CTranslate2 from the carried wheel, into a private folder
    if python3 -m pip install -q --no-deps --no-index --target "$py" "$B"/wheels/ctranslate2-*.whl >"$OUT/ct2-install.log" 2>&1; then
        export PYTHONPATH=$py${PYTHONPATH:+:$PYTHONPATH} PATH=$py/bin:$PATH
        local c12
        if c12=$(find_cublas12); then
            export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$c12
            note "- CUDA 12 cuBLAS for CTranslate2: $c12"
        else
            note "- CUDA 12 cuBLAS for CTranslate2: none on this machine (CUDA 13 only); it cannot be carried (libcublas.so.12 and libcublasLt.so.12 are several hundred MB)"
        fi
        # can it translate on this GPU? the tiny fixture model, one sentence
        if timeout 120 python3 - >"$OUT/ct2-probe.log" 2>&1 <<PY
import subprocess, sys, os, ctranslate2, transformers
m = "tests/fixtures/tiny-b"; d = "$OUT/ct2-tiny"
subprocess.run(["ct2-transformers-converter", "--model", m, "--output_dir", d, "--force"], check=True)
tok = transformers.M2M100Tokenizer.from_pretrained(m, src_lang="en", tgt_lang="ko")
tr = ctranslate2.Translator(d, device="cuda", compute_type="float16")
print(tr.translate_batch([tok.convert_ids_to_tokens(tok("hello").input_ids)], max_decoding_length=4)[0].hypotheses[0])
PY
        then
            ct2_engines=ct2,
            note "- CTranslate2 $(python3 -c 'import ctranslate2; print(ctranslate2.__version__)') runs on this GPU"
        else
            why=$(grep -iE 'error|cannot|not found|\.so' "$OUT/ct2-probe.log" | tail -n 1)
            note "- CTranslate2 rows (float16, bfloat16, int8_float16): NOT RUNNABLE here: ${why:-see ct2-probe.log}"
        fi
    else
        note "- CTranslate2 rows: NOT RUNNABLE: the wheel did not install: $(tail -n 1 "$OUT/ct2-install.log")"
    fi
    # bench.py runs build/lyricmt: point it at the bundle's
    mkdir -p build
    printf '#!/bin/sh\nexec "%s" "$@"\n' "$B/bin/lyricmt" >build/lyricmt
    chmod +x build/lyricmt
    local common="--model small100 --device cuda --lines 256 --max-length 32 --budgets 4096"
    step bench_make_model 240 python3 -c "
import subprocess, sys, os
d = 'benchmarks/models/small100-random'
if not os.path.exists(d + '/pytorch_model.bin'):
    subprocess.run([sys.executable, 'benchmarks/make_random_model.py', d], check=True)"
    mkdir -p "$OUT/results"
    # keep PRECISION NAME [NOTE]: bench.py's newest report for PRECISION as $OUT/results/NAME.md
    keep() {
        local f
        f=$(ls -t benchmarks/results/*-cuda-small100-"$1".md 2>/dev/null | head -n 1)
        [ -n "$f" ] || return 1
        { [ -n "${3:-}" ] && printf '%s\n\n' "$3"; cat "$f"; } >"$OUT/results/$2.md"
    }
    step bench_fp16 360 python3 benchmarks/bench.py $common --precision fp16 --engines lyricmt,lyricmt-no-reuse,${ct2_engines}hf_sorted &&
        keep fp16 cuda-small100-fp16
    step bench_bf16 240 python3 benchmarks/bench.py $common --precision bf16 --engines lyricmt,${ct2_engines}hf_sorted && keep bf16 cuda-small100-bf16
    if [ -n "$ct2_engines" ]; then
        step bench_ct2_int8_float16 200 env LYRICMT_CT2_COMPUTE_TYPE=int8_float16 python3 benchmarks/bench.py $common --precision fp16 \
            --engines lyricmt,ct2 &&
            keep fp16 cuda-small100-fp16-vs-ct2-int8_float16 "Here CTranslate2 ran with compute_type int8_float16 (LYRICMT_CT2_COMPUTE_TYPE); lyricmt in fp16."
    fi
}

# Wall seconds of one command (its output to $OUT/NAME.log).
timed() {
    local name=$1 t0 t1
    shift
    t0=$(date +%s.%N)
    "$@" >"$OUT/$name.log" 2>&1 || { echo "FAIL"; return 1; }
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }'
}

run_scale() {
    local L="$B/bin/lyricmt" n corpus=$OUT/scale-corpus.txt
    n=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | wc -l)
    note "- devices: $n; $("$L" --version)"
    awk 'BEGIN { srand(9); split("money mind grind bottom here yeah never stop flow rhyme street dream gold chain night", w, " ")
        for (i = 0; i < 2000; i++) { n = 1 + int(rand() * 25); s = ""; for (k = 0; k < n; k++) s = s (k ? " " : "") w[int(rand() * 15) + 1]; print s } }' >"$corpus"
    local tiny="translate --model tests/fixtures/tiny-b --device cuda --progress none --beam 2 --set batch.max_sentences=16 -i $corpus"
    step scale_device0 120 "$L" $tiny -o "$OUT/scale-dev0.txt"
    step scale_devices_all 120 "$L" $tiny --devices all -o "$OUT/scale-all.txt"
    step scale_broadcast 120 "$L" $tiny --devices all --weights-from broadcast -o "$OUT/scale-bcast.txt"
    step scale_cpu 120 "$L" translate --model tests/fixtures/tiny-b --progress none --beam 2 -i "$corpus" -o "$OUT/scale-cpu.txt"
    if cmp -s "$OUT/scale-dev0.txt" "$OUT/scale-all.txt" && cmp -s "$OUT/scale-dev0.txt" "$OUT/scale-bcast.txt"; then
        note "| scale_identical | pass | - | --devices all (disk and broadcast) == --devices 0, byte for byte, on $n device(s) |"
    else
        note "| scale_identical | FAIL | - | outputs differ between device counts or weight sources |"
        FAILED=1
    fi
    cmp -s "$OUT/scale-dev0.txt" "$OUT/scale-cpu.txt" && note "- fp32 CUDA output equals the CPU's on this corpus" ||
        note "- fp32 CUDA output differs from the CPU's on this corpus (allowed: the goldens bound that)"
    # model load: one short line, so the time is the load (and CUDA's start)
    step bench_make_model 240 python3 -c "
import subprocess, sys, os
d = 'benchmarks/models/small100-random'
if not os.path.exists(d + '/pytorch_model.bin'):
    subprocess.run([sys.executable, 'benchmarks/make_random_model.py', d], check=True)"
    echo "yeah" >"$OUT/one.txt"
    local big="translate --model benchmarks/models/small100-random --device cuda --progress none --max-length 4 -i $OUT/one.txt"
    note ""
    note "| load, SMaLL-100-sized, $n device(s) | precision | run 1 | run 2 | run 3 |"
    note "|---|---|---:|---:|---:|"
    for prec in fp32 fp16; do
        for from in disk broadcast; do
            local row="| --devices all --weights-from $from | $prec"
            for r in 1 2 3; do row="$row | $(timed "load-$from-$prec-$r" "$L" $big --precision $prec --devices all --weights-from $from)"; done
            note "$row |"
        done
        local row="| --devices 0 (one upload) | $prec"
        for r in 1 2 3; do row="$row | $(timed "load-one-$prec-$r" "$L" $big --precision $prec)"; done
        note "$row |"
    done
    note ""
    note "(seconds of wall time for the whole command: process start, CUDA start, model read, uploads or broadcast, one line)"
}

case $MODE in
tests) run_tests ;;
scale) run_scale ;;
bench) run_bench ;;
all) run_tests; run_bench ;;
*) echo "usage: bash scripts/gpu-check.sh tests|bench|scale|all"; exit 2 ;;
esac
note ""
note "total $(elapsed)s; $([ $FAILED -eq 0 ] && echo 'every step passed' || echo 'SOME STEPS FAILED OR DID NOT RUN: see the logs beside this file')"
exit $FAILED
