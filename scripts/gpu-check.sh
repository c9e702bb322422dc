#!/usr/bin/env bash
# gpu-check: the CUDA backend's first run on a lent GPU machine, in ONE call
# of the device tool: at most 8 minutes of device time with the copy, so
# that a session's 15 minutes leave room to run it once more. Made here by
# `make gpu-bundle` (build-gpu/: the CUDA binaries for sm_90 with PTX for
# other cards, the Debian libraries as .deb files, the CTranslate2 and
# sentencepiece wheels); there nothing is installed system wide and nothing
# is fetched (no network).
#
#   bash scripts/gpu-check.sh [STAGE ...]     (default: all, in this order)
#     tests     the CUDA tests only: kernels, backend, goldens on CUDA in fp32,
#               fp16, bf16 (the CPU suites ran where the bundle was made, and
#               this machine's CPU may lack AVX-512 VNNI/BF16)
#     sanitize  compute-sanitizer memcheck, racecheck, synccheck, initcheck on
#               the quick kernel suite; memcheck on one golden fixture (bf16)
#     steps     build-gpu/bin/cuda_steps: ms per encoder batch and decoder step,
#               tokens/s, at 32, 160 and 1,280 rows in fp32, fp16 and bf16
#     bench     end to end on 16,384 distinct lines: lyricmt fp16 and bf16
#               (greedy; fp16 beam 5 if time is left), CTranslate2 where it runs
#     scale     with several GPUs: --devices all (disk and broadcast) against
#               --devices 0 --inflight false, byte for byte (same batches)
#
# Every result lands in $OUT (the device tool's, else gpu-check-out/) the
# moment its step ends: summary.md (one line per step: pass, FAIL, or not run
# and why), each step's log, the tables (steps.md, bench-*.md). A call cut
# short returns what finished. No step starts after GPU_CHECK_SECONDS (400)
# and none runs past it by more than 30 s. Exit status 0 when every step run passed.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
STAGES=${*:-tests sanitize steps bench scale}
OUT=${OUT:-$ROOT/gpu-check-out}
B=$ROOT/build-gpu
DEADLINE=${GPU_CHECK_SECONDS:-400}
mkdir -p "$OUT"
SUMMARY=$OUT/summary.md
START=$(date +%s)
FAILED=0
export LYRICMT_REQUIRE_CUDA=1 # on a GPU machine, "no GPU" is a failure, not a skip

note() { printf '%s\n' "$*" | tee -a "$SUMMARY"; }
elapsed() { echo $(($(date +%s) - START)); }

# step NAME LIMIT COMMAND...: runs with a time limit (never past the
# deadline), logs to $OUT/NAME.log, one summary line when it ends.
step() {
    local name=$1 limit=$2 t0 rc left
    shift 2
    if [ "$(elapsed)" -ge "$DEADLINE" ]; then
        note "| $name | not run | - | the call's time ran out (${DEADLINE} s): run this stage alone in another call |"
        FAILED=1
        return 1
    fi
    left=$((DEADLINE + 30 - $(elapsed)))
    [ "$limit" -gt "$left" ] && limit=$left
    t0=$(date +%s)
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    rc=$?
    local verdict=pass
    [ $rc -eq 0 ] || verdict="FAIL (exit $rc)"
    [ $rc -eq 124 ] && verdict="FAIL (timed out after ${limit} s)"
    [ $rc -eq 0 ] || FAILED=1
    note "| $name | $verdict | $(($(date +%s) - t0)) s | $(grep -E 'passed, [0-9]+ failed|ERROR SUMMARY|identical to transformers \(' "$OUT/$name.log" | tail -n 2 | tr '\n' ' ') |"
    return $rc
}

# ---- the machine, the bundle, the libraries ----
{
    echo "# GPU check, $(date -u '+%Y-%m-%d %H:%M UTC'), stages: $STAGES"
    echo
    echo "- bundle made at commit $(cat "$B/COMMIT" 2>/dev/null || echo '?')"
    echo "- GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -n 1)"
    echo "- nvcc: $(nvcc --version 2>&1 | tail -n 1); glibc $(ldd --version 2>&1 | head -n 1 | awk '{print $NF}'); $(python3 --version 2>&1)"
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
# NCCL: the toolkit has none; PyTorch's wheel does (lyricmt also searches site-packages itself)
nccl=$(python3 -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "lib", "libnccl.so.2"))' 2>/dev/null)
[ -n "$nccl" ] && [ -e "$nccl" ] && export LYRICMT_NCCL=$nccl
note "- libraries: every binary resolves (Debian's from build-gpu/deps/lib, CUDA's from $CUDA_LIB)"
note "- $("$B/bin/lyricmt" --version)"
note ""
note "| step | result | time | counts |"
note "|---|---|---:|---|"

stage_tests() {
    step test_cuda_kernels 90 "$B/bin/test_cuda_kernels"
    step test_cuda_backend 150 "$B/bin/test_cuda_backend"
    for p in fp32 fp16 bf16; do
        step "test_golden_cuda_$p" 90 env LYRICMT_GOLDEN_ONLY=cuda LYRICMT_GOLDEN_PRECISION=$p "$B/bin/test_golden"
    done
}

stage_sanitize() {
    local san tool
    san=$(command -v compute-sanitizer || ls "$(dirname "$CUDA_LIB")"/bin/compute-sanitizer 2>/dev/null || true)
    if [ -z "$san" ]; then
        note "| compute-sanitizer | not run | - | not found on this machine |"
        FAILED=1
        return
    fi
    for tool in memcheck racecheck synccheck initcheck; do
        step "sanitize_${tool}_kernels" 60 env LYRICMT_CUDA_QUICK=1 "$san" --tool $tool --error-exitcode 1 "$B/bin/test_cuda_kernels"
    done
    step sanitize_memcheck_golden_tiny-b_bf16 90 env LYRICMT_GOLDEN_ONLY=cuda LYRICMT_GOLDEN_PRECISION=bf16 LYRICMT_GOLDEN_MODEL=tiny-b \
        "$san" --tool memcheck --error-exitcode 1 "$B/bin/test_golden"
}

stage_steps() {
    step cuda_steps 120 "$B/bin/cuda_steps" --rows 32,256,1280 --precisions fp32,fp16,bf16
    grep '^|' "$OUT/cuda_steps.log" >"$OUT/steps.md" 2>/dev/null && { note ""; cat "$OUT/steps.md" >>"$SUMMARY"; note ""; }
    # a mechanism this driver or cuBLASLt refused runs its plain path, said once on stderr: shown here, not buried in a log
    grep -h "CUDA graphs off\|cuBLASLt epilogues off" "$OUT"/cuda_steps.log "$OUT"/test_golden_cuda_*.log 2>/dev/null | sort -u |
        sed 's/^/- fallback taken: /' >>"$SUMMARY"
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

# The Python side: the sentencepiece and CTranslate2 wheels into a private
# folder; CT2=",ct2" when CTranslate2 translates on this GPU, else its rows
# are reported as not runnable, with the error.
CT2=
python_side() {
    local py=$B/py why c12
    python3 -m pip install -q --no-deps --no-index --target "$py" "$B"/wheels/*.whl >"$OUT/wheels-install.log" 2>&1 ||
        note "- wheels did not install: $(tail -n 1 "$OUT/wheels-install.log")"
    export PYTHONPATH=$py${PYTHONPATH:+:$PYTHONPATH} PATH=$py/bin:$PATH
    if c12=$(find_cublas12); then
        export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$c12
        note "- CUDA 12 cuBLAS for CTranslate2: $c12"
    fi
    if timeout 90 python3 - >"$OUT/ct2-probe.log" 2>&1 <<PY
import subprocess, ctranslate2, transformers
m = "tests/fixtures/tiny-b"; d = "$OUT/ct2-tiny"
subprocess.run(["ct2-transformers-converter", "--model", m, "--output_dir", d, "--force"], check=True)
tok = transformers.M2M100Tokenizer.from_pretrained(m, src_lang="en", tgt_lang="ko")
tr = ctranslate2.Translator(d, device="cuda", compute_type="float16")
print(tr.translate_batch([tok.convert_ids_to_tokens(tok("hello").input_ids)], max_decoding_length=4)[0].hypotheses[0])
PY
    then
        note "- CTranslate2 $(python3 -c 'import ctranslate2; print(ctranslate2.__version__)') runs on this GPU"
        CT2=,ct2
    else
        why=$(grep -iE 'error|cannot|not found|\.so' "$OUT/ct2-probe.log" | tail -n 1)
        note "- CTranslate2 rows: NOT RUNNABLE here: ${why:-see ct2-probe.log}"
    fi
}

stage_bench() {
    python3 -c 'import torch, transformers; assert torch.cuda.is_available()' >"$OUT/python-deps.log" 2>&1 ||
        { note "| bench | not run | - | torch/transformers or torch's GPU missing: $(tail -n 1 "$OUT/python-deps.log") |"; FAILED=1; return; }
    python_side
    # bench.py runs build/lyricmt: point it at the bundle's
    mkdir -p build
    printf '#!/bin/sh\nexec "%s" "$@"\n' "$B/bin/lyricmt" >build/lyricmt
    chmod +x build/lyricmt
    step bench_make_model 120 python3 -c "
import subprocess, sys, os
d = 'benchmarks/models/small100-random'
if not os.path.exists(d + '/pytorch_model.bin'):
    subprocess.run([sys.executable, 'benchmarks/make_random_model.py', d], check=True)" || return
    # 16,384 distinct lines (no repeats for lyricmt to reuse): 256 finish in well under a second here
    local common="--model small100 --device cuda --lines 16384 --distinct --max-length 32 --budgets 4096 --engines lyricmt$CT2"
    # bench NAME LIMIT PRECISION SETTING: one report, kept as $OUT/NAME.md
    bench() {
        step "$1" "$2" python3 benchmarks/bench.py $common --precision "$3" --settings "$4" &&
            cp "$(ls -t benchmarks/results/*-cuda-small100-"$3".md | head -n 1)" "$OUT/$1.md"
    }
    bench bench_fp16_greedy 90 fp16 greedy
    bench bench_bf16_greedy 90 bf16 greedy
    bench bench_fp16_beam5 120 fp16 beam
}

# Several GPUs: the same batches on any device give the same bytes (in-flight
# batching, one device's default, groups rows differently: cuBLAS may then
# round a row's low bits differently, so it is not compared byte for byte).
stage_scale() {
    local n L=$B/bin/lyricmt corpus=$OUT/scale-corpus.txt
    n=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | wc -l)
    if [ "$n" -lt 2 ]; then
        note "- scale: one GPU here; the several-device checks need two (they ran on two emulated devices in make test)"
        return
    fi
    python3 benchmarks/make_corpus.py --lines 4000 --seed 9 | awk 'NF && !seen[$0]++' | head -n 2000 >"$corpus"
    local tiny="translate --model tests/fixtures/tiny-b --device cuda --progress none --beam 2 --set batch.max_sentences=16 -i $corpus"
    step scale_device0 60 "$L" $tiny --inflight false -o "$OUT/scale-dev0.txt" &&
        step scale_devices_all 60 "$L" $tiny --devices all -o "$OUT/scale-all.txt" &&
        step scale_broadcast 60 "$L" $tiny --devices all --weights-from broadcast -o "$OUT/scale-bcast.txt" || return
    if cmp -s "$OUT/scale-dev0.txt" "$OUT/scale-all.txt" && cmp -s "$OUT/scale-dev0.txt" "$OUT/scale-bcast.txt"; then
        note "| scale_identical | pass | - | --devices all (disk and broadcast) == --devices 0 --inflight false, byte for byte, on $n GPUs |"
    else
        note "| scale_identical | FAIL | - | outputs differ between device counts or weight sources (same batches) |"
        FAILED=1
    fi
}

for s in $STAGES; do
    case $s in
    tests | sanitize | steps | bench | scale) "stage_$s" ;;
    *) note "unknown stage '$s' (tests, sanitize, steps, bench, scale)"; FAILED=1 ;;
    esac
done
note ""
note "total $(elapsed) s; $([ $FAILED -eq 0 ] && echo 'every step run passed' || echo 'SOME STEPS FAILED OR DID NOT RUN: see the logs beside this file')"
exit $FAILED
