#!/bin/sh
# Runs every test binary given and the CLI tests, then prints one summary
# line "N passed, N failed"; exits non-zero if anything failed.
passed=0
failed=0
# The test binaries run on the OpenBLAS kernels the program itself chooses
# (host/cpu/blas_core.c: it corrects OpenBLAS's fallback on CPUs it does not know).
core=$("${LYRICMT:-build/lyricmt}" --version 2>/dev/null | sed -n 's/.*OpenBLAS kernels: \([A-Za-z0-9]*\).*/\1/p')
[ -n "$core" ] && [ -z "${OPENBLAS_CORETYPE:-}" ] && export OPENBLAS_CORETYPE="$core"
# A CUDA build on a machine without a GPU: its own CUDA tests could only
# say "skipped". Where make test runs them on the emulator instead
# (CUDA_EMU_BUILD, tests/cuda_emu/run_tests.sh), they are left out here, and
# test_golden runs its CPU part.
no_gpu=
if [ -n "${CUDA_EMU_BUILD:-}" ] && echo x | "${LYRICMT:-build/lyricmt}" translate --model tests/fixtures/tiny-b --device cuda 2>&1 >/dev/null |
    grep -q "no CUDA GPU found"; then
    no_gpu=1
    export LYRICMT_GOLDEN_ONLY=cpu
    echo "run_all: no GPU here: the CUDA tests run on the emulator ($CUDA_EMU_BUILD)"
fi
for t in "$@" tests/test_*.sh; do
    case "$t" in */test_cuda_*) [ -n "$no_gpu" ] && continue ;; esac
    case "$t" in *.sh) out=$(sh "$t" 2>&1); rc=$? ;; *) out=$("$t" 2>&1); rc=$? ;; esac
    printf '%s\n' "$out" | grep -E '^FAIL|passed, [0-9]+ failed|skipped'
    line=$(printf '%s\n' "$out" | grep -E '[0-9]+ passed, [0-9]+ failed' | tail -n 1)
    p=$(printf '%s' "$line" | sed -E 's/.* ([0-9]+) passed.*/\1/')
    f=$(printf '%s' "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
    [ -n "$line" ] || { p=0; f=1; printf '%s\n' "$out" | tail -n 20; echo "FAIL $t: no summary (exit $rc)"; }
    [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && { f=1; echo "FAIL $t: exit status $rc"; }
    passed=$((passed + p))
    failed=$((failed + f))
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
