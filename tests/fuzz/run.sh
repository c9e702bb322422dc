#!/bin/sh
# Runs libFuzzer targets built by the Makefile (build-fuzz/fuzz_NAME).
#   run.sh replay BIN...        every committed input of each target once
#   run.sh fuzz SECONDS BIN...  each target for SECONDS, one after another
# Fuzzing reads tests/fuzz/corpus/NAME and writes what it finds to
# $FUZZ_WORK/corpus/NAME (default build-fuzz), crashes to $FUZZ_WORK/artifacts;
# the final "#N DONE cov: ..." line of each target goes to $FUZZ_WORK/logs.
# Exits non-zero when any target fails: a crash, sanitizer report, leak,
# timeout (-timeout, seconds per input), a single allocation over
# -malloc_limit_mb or a resident size over -rss_limit_mb.
mode=$1; shift
[ "$mode" = fuzz ] && { seconds=$1; shift; }
work=${FUZZ_WORK:-build-fuzz}
mkdir -p "$work/logs" "$work/artifacts"
status=0
for bin in "$@"; do
    name=${bin##*/fuzz_}
    committed=tests/fuzz/corpus/$name
    # the real fixtures are seeds too, without copying them into the corpus
    case $name in
        torchbin|torch_zip) seeds=tests/fixtures/tiny-b/pytorch_model.bin ;;
        safetensors) seeds=tests/fixtures/tiny-a/model.safetensors ;;
        *) seeds= ;;
    esac
    log=$work/logs/$name.log
    limits="-timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024"
    if [ "$mode" = replay ]; then
        "$bin" $limits $(find "$committed" -type f | sort) $seeds >"$log" 2>&1
        rc=$?
        summary="$(find "$committed" -type f | wc -l) committed inputs$([ -n "$seeds" ] && echo " + $seeds")"
    else
        mkdir -p "$work/corpus/$name"
        "$bin" $limits -max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="$work/artifacts/$name-" \
            ${seeds:+-seed_inputs=$seeds} "$work/corpus/$name" "$committed" >"$log" 2>&1
        rc=$?
        summary=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1)
    fi
    if [ $rc -eq 0 ]; then
        echo "ok   fuzz_$name $mode: $summary"
    else
        status=1
        echo "FAIL fuzz_$name $mode (exit $rc): $(grep -m 1 -E 'ERROR|ALARM|out-of-memory|runtime error' "$log")"
        grep -E 'Test unit written|^SUMMARY' "$log" | head -n 3
    fi
done
exit $status
