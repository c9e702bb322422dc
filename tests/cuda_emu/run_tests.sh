#!/bin/sh
# The CUDA code run on the emulator, as `make test` runs it wherever the CUDA
# headers are (tests/cuda_emu/README.md, what it models and what it cannot):
# the kernel tests in four thread orders, past the grid limits, and under
# AddressSanitizer and UBSan; the backend against the CPU backend in fp32,
# fp16 and bf16; the goldens on CUDA; in-flight batching through the CLI;
# two emulated devices with the NCCL stand-in (disk and broadcast, its
# failure path, how the library is found); the MPI local-rank binding; no
# GPU and out of memory as the user sees them. Each binary's counts are
# added to this script's; prints "N passed, N failed".
#   sh tests/cuda_emu/run_tests.sh [all | kernels | backend | golden | cli]
# (one part: what scripts/mutants.sh runs for a mutant it plants).
NAME=cuda_emu
PART=${1:-all}
. tests/harness.sh
E=${CUDA_EMU_BUILD:-build-emu}
EL=$E/lyricmt
export LD_LIBRARY_PATH=$E/cuda_emu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} # the NCCL stand-in, found as the real one is
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
[ -x "$EL" ] && [ -x "$E/test_cuda_kernels" ] && [ -x "$E-san/test_cuda_kernels" ] ||
    { fail "no emulated build in $E (make cuda-emu makes it)"; summary; exit 1; }

# counts NAME OUT RC: a test binary's "N passed, M failed" added to ours, its failures shown
counts() {
    line=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$2" | tail -n 1)
    if [ -z "$line" ]; then tail -n 20 "$2"; fail "$1: no summary (exit $3)"; return; fi
    p=$(printf '%s' "$line" | sed -E 's/.* ([0-9]+) passed.*/\1/')
    f=$(printf '%s' "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
    passed=$((passed + p)); failed=$((failed + f))
    grep -E '^FAIL|^cuda-emu:|^nccl-emu:|ERROR' "$2" | head -n 20 | awk -v p="FAIL $NAME ($1): " '{ print p $0 }'
    echo "$NAME: $1: $p passed, $f failed"
    [ "$3" -ne 0 ] && [ "$f" -eq 0 ] && fail "$1: exit status $3"
}
# suite NAME COMMAND...: runs a test binary now
suite() {
    name=$1; shift
    "$@" > "$T/suite.out" 2>&1
    counts "$name" "$T/suite.out" $?
}

# The two long runs: the backend at SMaLL-100's widths with 2 + 2 layers
# (every shape kept), the goldens with 1,000 sampling draws (each draw is a
# row here). With all parts they run beside the rest (each runs on one core
# most of the time).
backend() { LYRICMT_TEST_LAYERS=2,2 $E/test_cuda_backend > "$T/backend.out" 2>&1; echo $? > "$T/backend.rc"; }
golden() { LYRICMT_GOLDEN_ONLY=cuda LYRICMT_GOLDEN_DRAWS=1000 $E/test_golden > "$T/golden.out" 2>&1; echo $? > "$T/golden.rc"; }
# The kernels: a missing barrier shows in some thread order, an out-of-bounds access under ASan.
kernels() {
    for order in forward reverse random:1 random:2; do
        suite "test_cuda_kernels, $order order" env CUDA_EMU_SCHEDULE=$order LYRICMT_CUDA_QUICK=1 $E/test_cuda_kernels
    done
    suite "test_cuda_kernels, past the grid limits (gridDim.y/z's lowered to 1,023)" env CUDA_EMU_MAX_GRID_YZ=1023 $E/test_cuda_kernels
    for order in forward random:3; do
        suite "test_cuda_kernels, ASan+UBSan, $order order" env CUDA_EMU_SCHEDULE=$order LYRICMT_CUDA_QUICK=1 $E-san/test_cuda_kernels
    done
}

# The program as a user runs it on CUDA.
cli() {
    inflight
    scoring
    two_devices
    nccl_search
    local_rank
    as_a_user
}

cuda() { "$EL" translate --model tests/fixtures/tiny-b --device cuda --progress none --set batch.cache_lines=0 "$@"; }

# Scoring on CUDA: no decode_forced there, so lm_score_forced's step loop (the
# shared fallback, each step's log-probs taken on the device by
# decode_step_labels) against the CPU's one pass; augmentation's rescoring too.
scoring() {
    awk -F '\t' '$1 == "m2m100" { print $2 "\t" $3; print $2 "\t" $3 " " $3 }' tests/fixtures/tiny-b/golden_score.tsv > "$T/pairs.tsv"
    "$EL" score --model tests/fixtures/tiny-b --device cuda --precision fp32 --progress none -i "$T/pairs.tsv" -o "$T/score-cuda.tsv" 2> "$T/e"; rc=$?
    "$BIN" score --model tests/fixtures/tiny-b --progress none -i "$T/pairs.tsv" -o "$T/score-cpu.tsv" 2>/dev/null
    bad=$(paste "$T/score-cpu.tsv" "$T/score-cuda.tsv" | awk -F '\t' '{ x = $2 - $6; if (x < 0) x = -x; if (x > 1e-4 * (-$2) + 1e-5 || $4 != $8) bad++ } END { print bad + 0 }')
    check "score on CUDA (the step loop) == the CPU's one pass, within 1e-4 relative (bad $bad)" \
        '[ $rc -eq 0 ] && [ "$(wc -l < "$T/score-cuda.tsv")" -eq 28 ] && [ "$bad" -eq 0 ]'
    # fp32, to be held to the CPU's pairs below; the stats count the bytes that come back to the host
    CUDA_EMU_STATS="$T/stats.aug" cuda --precision fp32 --config configs/augment.yaml --min-score -1000 -i "$T/c.txt" -o "$T/aug.jsonl" 2> "$T/e"; rc=$?
    check "augmentation with --min-score on CUDA: pairs written" '[ $rc -eq 0 ] && [ -s "$T/aug.jsonl" ]'
    LYRICMT_RESCORE=decode cuda --precision fp32 --config configs/augment.yaml --min-score -1000 -i "$T/c.txt" -o "$T/aug-decode.jsonl" 2> "$T/e"
    sed 's/"score":[-0-9.e]*//' "$T/aug.jsonl" > "$T/aug.text"
    sed 's/"score":[-0-9.e]*//' "$T/aug-decode.jsonl" > "$T/aug-decode.text"
    bad=$(paste -d '\t' "$T/aug.jsonl" "$T/aug-decode.jsonl" | sed 's/[^\t]*"score":\([-0-9.e]*\)[^\t]*/\1/g' |
        awk -F '\t' '{ x = $1 - $2; if (x < 0) x = -x; if (x > 1e-4 * ($1 < 0 ? -$1 : $1) + 1e-5) bad++ } END { print bad + 0 }')
    check "augmentation on CUDA: rescoring off the sampling's rows == force-decoding every sample (the same pairs, scores within 1e-4; bad $bad)" \
        'cmp -s "$T/aug.text" "$T/aug-decode.text" && [ "$bad" -eq 0 ]'
    # the raw log-probs come from the sampling kernel (decode_step_sample), not from rows brought to the host
    "$BIN" translate --model tests/fixtures/tiny-b --progress none --set batch.cache_lines=0 --config configs/augment.yaml --min-score -1000 \
        -i "$T/c.txt" -o "$T/aug-cpu.jsonl" 2> /dev/null
    sed 's/"score":[-0-9.e]*//' "$T/aug-cpu.jsonl" > "$T/aug-cpu.text"
    bad=$(paste -d '\t' "$T/aug-cpu.jsonl" "$T/aug.jsonl" | sed 's/[^\t]*"score":\([-0-9.e]*\)[^\t]*/\1/g' |
        awk -F '\t' '{ x = $1 - $2; if (x < 0) x = -x; if (x > 1e-4 * ($1 < 0 ? -$1 : $1) + 1e-5) bad++ } END { print bad + 0 }')
    check "augmentation with --min-score on CUDA (fp32) == the CPU's: the same pairs, scores within 1e-4 (bad $bad)" \
        '[ -s "$T/aug-cpu.text" ] && cmp -s "$T/aug-cpu.text" "$T/aug.text" && [ "$bad" -eq 0 ]'
    CUDA_EMU_STATS="$T/stats.sampled" cuda --precision fp32 --config configs/augment.yaml --output-format tsv -i "$T/c.txt" > /dev/null 2>&1
    # 48 lines x 5 samples: one step of whole rows is 240 x 524 x 4 bytes (503,040); the run with
    # rescoring brought back 4 bytes a row a step more than the sampling alone (every sample here
    # tokenizes back to its ids, so none is force-decoded), where whole rows made it 5.5 MB
    extra=$(( $(stat_of aug 0 d2h) - $(stat_of sampled 0 d2h) ))
    check "augmentation with --min-score on CUDA takes no whole rows: $extra bytes to the host beyond the sampling's, under an eighth of one step's rows" \
        '[ "$(stat_of sampled 0 d2h)" -gt 0 ] && [ "$extra" -ge 0 ] && [ "$extra" -lt $((240 * 524 * 4 / 8)) ]'
}

# In-flight batching: the same texts as batch by batch, scores within rounding.
inflight() {
    for mode in greedy beam; do
        opts="--beam 1"; [ $mode = beam ] && opts="--beam 4 --n-best 2"
        opts="$opts --precision fp32" # held to the CPU's texts below
        cuda $opts -i "$T/c.txt" --output-format tsv --inflight false > "$T/off-$mode.tsv" 2> "$T/e"; rc=$?
        cuda $opts -i "$T/c.txt" --output-format tsv --inflight true --set batch.max_sentences=3 > "$T/on-$mode.tsv" 2>> "$T/e"
        check "in flight on CUDA ($mode): both ran" '[ $rc -eq 0 ] && [ "$(cut -f1 "$T/on-$mode.tsv" | sort -u | wc -l)" -eq 48 ]'
        check "in flight on CUDA ($mode), 3 live: the texts of batch by batch, scores within rounding" 'same_tsv "$T/off-$mode.tsv" "$T/on-$mode.tsv"'
        LYRICMT_CUDA_OVERLAP=0 cuda $opts -i "$T/c.txt" --output-format tsv --inflight true --set batch.max_sentences=3 \
            > "$T/line-$mode.tsv" 2>> "$T/e"
        check "in flight on CUDA ($mode), each encoder in line and joined at once (LYRICMT_CUDA_OVERLAP=0): the texts of overlapped, scores within rounding" \
            'same_tsv "$T/on-$mode.tsv" "$T/line-$mode.tsv" && [ -s "$T/line-$mode.tsv" ]'
    done
    "$BIN" translate --model tests/fixtures/tiny-b --progress none --set batch.cache_lines=0 --output-format tsv --beam 4 --n-best 2 \
        -i "$T/c.txt" > "$T/cpu.tsv" 2>/dev/null
    check "CUDA fp32 gives the CPU's texts (scores within rounding)" 'same_tsv "$T/cpu.tsv" "$T/off-beam.tsv"'
}

# Two devices: the same batches give the same bytes on either device; broadcast weights come by NCCL
# (bf16, the default: half the bytes device 0 staged from the host in fp32).
two() { # NAME ARGS...: stats and messages under NAME
    n=$1; shift
    CUDA_EMU_DEVICES=2 CUDA_EMU_STATS="$T/stats.$n" cuda --beam 2 --set batch.max_sentences=4 --output-format tsv "$@" -i "$T/c24.txt" \
        2> "$T/err.$n"
}
stat_of() { awk -v d="$2" -v k="$3" '$4 == d { for (i = 5; i < NF; i += 2) if ($i == k) print $(i + 1) }' "$T/stats.$1"; }
two_devices() {
    two one --devices 0 --inflight false > "$T/one.tsv"
    two disk --devices 0,1 > "$T/disk.tsv"
    two bcast --devices 0,1 --weights-from broadcast > "$T/bcast.tsv"
    two all --devices all --weights-from broadcast > "$T/all.tsv"
    two flight --devices 0 > "$T/flight.tsv"
    check "two devices: --devices 0,1 == --devices 0 (same batches), byte for byte" '[ -s "$T/one.tsv" ] && cmp -s "$T/one.tsv" "$T/disk.tsv"'
    check "two devices: --weights-from broadcast == disk, byte for byte" 'cmp -s "$T/one.tsv" "$T/bcast.tsv" && cmp -s "$T/one.tsv" "$T/all.tsv"'
    check "two devices: both ran batches" 'grep -Eq "2 workers ran [1-9][0-9]*, [1-9]" "$T/err.disk" && [ "$(stat_of disk 1 kernels)" -gt 0 ]'
    check "broadcast: device 1 got the weights from device 0 (NCCL), not from the host" \
        '[ "$(stat_of bcast 1 peer_in)" -gt "$(( $(stat_of bcast 0 h2d) / 3 ))" ] && [ "$(stat_of bcast 1 h2d)" -lt "$(( $(stat_of bcast 0 h2d) / 5 ))" ] && [ "$(stat_of disk 1 peer_in)" -eq 0 ]'
    check "one device in flight: the same texts, scores within rounding (cuBLAS picks by row count)" 'same_tsv "$T/one.tsv" "$T/flight.tsv"'
    CUDA_EMU_DEVICES=2 CUDA_EMU_NCCL_FAIL=3 cuda -i "$T/one.txt" --devices 0,1 --weights-from broadcast > /dev/null 2> "$T/e"; rc=$?
    check "a failed ncclBroadcast: an error naming it, the group closed (no hang), exit 1" '[ $rc -eq 1 ] && grep -q "ncclBroadcast: .*injected" "$T/e" && ! grep -q "may hang" "$T/e"'
}

# Which NCCL is opened: the loader's path, PyTorch's copy, LYRICMT_NCCL; --version names it.
nccl_search() {
    check "--version names the NCCL opened" '"$EL" --version | grep -q "NCCL 2[.0-9]* opened at run time from $E/cuda_emu/libnccl-emu.so.2"'
    venv=$T/venv/lib/python3.12/site-packages/nvidia/nccl/lib
    mkdir -p "$venv" && cp "$E/cuda_emu/libnccl-emu.so.2" "$venv/"
    check "NCCL found in PyTorch's site-packages/nvidia/nccl/lib" \
        'env -u LD_LIBRARY_PATH VIRTUAL_ENV="$T/venv" "$EL" --version | grep -q "opened at run time from $venv/libnccl-emu.so.2"'
    check "LYRICMT_NCCL names the file" 'env -u LD_LIBRARY_PATH LYRICMT_NCCL="$venv/libnccl-emu.so.2" "$EL" --version | grep -q "from $venv/"'
    check "no NCCL: --version says where it looked" 'env -u LD_LIBRARY_PATH "$EL" --version | grep -q "not loadable here: .*site-packages/nvidia/nccl/lib"'
}

# MPI: ranks on one machine bind their local rank's device unless --devices says otherwise.
local_rank() {
    OMPI_COMM_WORLD_LOCAL_RANK=1 CUDA_EMU_DEVICES=2 CUDA_EMU_STATS="$T/stats.rank" cuda -i "$T/one.txt" > /dev/null 2>&1
    check "local rank 1 runs on device 1" '[ "$(stat_of rank 1 kernels)" -gt 0 ] && [ "$(stat_of rank 0 kernels)" -eq 0 ]'
    OMPI_COMM_WORLD_LOCAL_RANK=1 CUDA_EMU_DEVICES=2 CUDA_EMU_STATS="$T/stats.given" cuda -i "$T/one.txt" --devices 0 > /dev/null 2>&1
    check "--devices 0 overrides the local rank" '[ "$(stat_of given 0 kernels)" -gt 0 ] && [ "$(stat_of given 1 kernels)" -eq 0 ]'
    if command -v mpirun > /dev/null && "$EL" --version | grep -q "MPI: built"; then
        OMPI_MCA_btl_vader_single_copy_mechanism=none mpirun --oversubscribe --allow-run-as-root -np 2 -x LD_LIBRARY_PATH -x CUDA_EMU_DEVICES=2 \
            -x CUDA_EMU_STATS="$T/stats.mpi" "$EL" translate --model tests/fixtures/tiny-b --device cuda --progress none \
            --set batch.max_sentences=4 -i "$T/c24.txt" -o "$T/mpi.txt" < /dev/null > /dev/null 2>&1 # mpirun forwards stdin
        check "mpirun -np 2 on one machine: each rank on its own device" \
            '[ "$(awk "\$4 == 0 && \$6 > 0" "$T/stats.mpi" | wc -l)" -eq 1 ] && [ "$(awk "\$4 == 1 && \$6 > 0" "$T/stats.mpi" | wc -l)" -eq 1 ] && [ -s "$T/mpi.txt" ]'
    fi
}

# What a user sees without a GPU and out of GPU memory; the GPU step timer runs (its times mean nothing here).
as_a_user() {
    cuda -i "$T/one.txt" --beam 5 > /dev/null 2> "$T/e"; rc=$?
    check "defaults on cuda: bf16, hundreds of sentences from free memory, printed once" \
        '[ $rc -eq 0 ] && [ "$(grep -c "^lyricmt: cuda: bf16, [0-9.]* GiB free: batch.max_sentences 256, max_tokens 81920, window_lines 1024$" "$T/e")" -eq 1 ]'
    cuda -i "$T/one.txt" --beam 1 > /dev/null 2> "$T/e1"; cuda -i "$T/one.txt" --config configs/augment.yaml > /dev/null 2> "$T/e"
    check "defaults count a sampled sentence's rows: 5 samples a line, a fifth of greedy's sentences" \
        'grep -q "batch.max_sentences 1280," "$T/e1" && grep -q "batch.max_sentences 256," "$T/e"'
    CUDA_EMU_MEMORY_MB=128 cuda -i "$T/c.txt" --beam 2 --set batch.max_tokens=300 --output-format tsv > "$T/small.tsv" 2> "$T/e"; rc=$?
    check "defaults on a small GPU: fewer sentences, a given max_tokens kept, and it runs" \
        '[ $rc -eq 0 ] && n=$(sed -En "s/^lyricmt: cuda: bf16, 0.[0-9] GiB free: batch.max_sentences ([0-9]+), max_tokens 300 \(set\), .*/\1/p" "$T/e") &&
         [ "$n" -ge 1 ] && [ "$n" -lt 256 ] && [ "$(wc -l < "$T/small.tsv")" -eq 48 ]'
    CUDA_EMU_DEVICES=0 cuda -i "$T/one.txt" > /dev/null 2> "$T/e"; rc=$?
    check "no device: --device cuda says so and fails" '[ $rc -ne 0 ] && grep -q "no CUDA GPU found (the NVIDIA driver .* sees no CUDA device)" "$T/e"'
    # limits given (the CPU's): auto ones would fit what is free
    CUDA_EMU_MEMORY_MB=2 cuda -i "$T/c.txt" --set batch.max_tokens=4096 --set batch.max_sentences=32 > /dev/null 2> "$T/e"; rc=$?
    check "out of GPU memory: the buffer needed and what was free, named" '[ $rc -ne 0 ] && grep -q "GPU out of memory: this batch needs a [0-9]* MB buffer" "$T/e"'
    # cuBLAS is opened, not linked (cuda/cuda_blas.c): here the stand-in inside the program
    check "--version names the cuBLAS opened" '"$EL" --version | grep -q "CUDA backend: built, cuBLAS opened at run time from the program;"'
    LYRICMT_CUBLAS=$T/no-cublas.so cuda -i "$T/one.txt" > "$T/o" 2> "$T/e"; rc=$?
    check "no cuBLAS: --device cuda fails in one line naming the file, writes nothing" \
        '[ $rc -eq 1 ] && [ ! -s "$T/o" ] && [ "$(grep -c "cannot load cuBLAS $T/no-cublas.so" "$T/e")" -eq 1 ]'
    "$E/cuda_steps" --rows 2 --steps 1 --layers 1,1 --precisions fp16 --src-len 3 > "$T/steps.md" 2>&1; rc=$?
    check "cuda_steps (scripts/gpu-check.sh's step timer) runs and prints its rows: by default, without graphs, without epilogues, the step model's predictions beside" '[ $rc -eq 0 ] && grep -Eq "^\| fp16 \| 2 \| ([0-9.]+ \| ){11}[0-9]+ \| [0-9]+ \|$" "$T/steps.md"'
    check "cuda_steps times an admission in flight, the encoder in line and beside a step, each beside its prediction" \
        'grep -Eq "^\| fp16 \| 2 \| ([0-9.]+ \| ){3}[0-9.]+ \|$" "$T/steps.md"'
}

awk 'BEGIN { srand(5); split("money mind grind bottom here yeah never stop flow rhyme street dream gold chain night", w, " ")
    for (i = 0; i < 48; i++) { n = 1 + int(rand() * 16); s = "line" i; for (k = 0; k < n; k++) s = s " " w[int(rand() * 15) + 1]; print s } }' > "$T/c.txt"
head -n 24 "$T/c.txt" > "$T/c24.txt"
echo "yeah" > "$T/one.txt"
case $PART in
all) backend & golden & kernels; cli ;;
backend) backend ;;
golden) golden ;;
kernels) kernels ;;
cli) cli ;;
*) fail "unknown part '$PART' (all, kernels, backend, golden, cli)" ;;
esac
wait
[ -f "$T/backend.rc" ] && counts "test_cuda_backend (2 + 2 layers)" "$T/backend.out" "$(cat "$T/backend.rc")"
[ -f "$T/golden.rc" ] && counts "test_golden (CUDA)" "$T/golden.out" "$(cat "$T/golden.rc")"
summary
