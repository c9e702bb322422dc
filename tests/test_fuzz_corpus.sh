#!/bin/sh
# Every fuzz target over its committed corpus (found inputs stay as
# regression cases), then a short fuzzing run of each (FUZZ_CI_SECONDS, 2).
NAME=test_fuzz_corpus
. tests/harness.sh
FB=${FUZZ_BUILD:-build-fuzz}
targets=$(ls tests/fuzz/fuzz_*.c | sed -e 's|.*/||' -e 's|\.c$||' | grep -v '^fuzz_util$')
for t in $targets; do
    bin=$FB/$t
    if [ ! -x "$bin" ]; then fail "$t not built (make $bin)"; continue; fi
    check "$t replays its corpus" "FUZZ_WORK=\$T sh tests/fuzz/run.sh replay $bin"
    check "$t short run" "FUZZ_WORK=\$T sh tests/fuzz/run.sh fuzz ${FUZZ_CI_SECONDS:-2} $bin"
done
summary
