#!/bin/sh
# test_inflight: in-flight batching (batch.inflight) gives the same output as
# batch-by-batch decoding: greedy, beam with n-best, sampling with n-best, on
# both trained fixtures (they stop on their own at varied lengths), on both CPU
# decoder paths, with budgets small enough that most lines join a running
# decode. Texts must be identical; scores may differ by one unit in the last
# printed digit, as they already do between batch sizes: at these tiny sizes
# OpenBLAS picks its small-matrix kernel for the encoder's products by batch
# size, which rounds differently (benchmarks/NOTES.md). Prints "N passed, N failed".
NAME=test_inflight
. tests/harness.sh

# lyric-like lines of 1 to 30 words in shuffled order, none repeated (repeats
# would be answered from the cache instead of decoded)
awk 'BEGIN {
    srand(11); split("money mind grind bottom here yeah never stop flow rhyme street dream gold chain night light fight real deal city", w, " ")
    for (i = 0; i < 160; i++) {
        len = 1 + int(rand() * 30); s = "line" i
        for (k = 0; k < len; k++) s = s " " w[int(rand() * 20) + 1]
        print s
    } }' > "$T/c.txt"

# both decoder paths where the CPU has the packed one (AVX-512); elsewhere the
# packed runs are left out and say so, never counted as passes
paths=blas
grep -q avx512f /proc/cpuinfo 2>/dev/null && paths="blas packed" || echo "$NAME: note: no AVX-512, packed decoder path not run"

for model in tiny-a tiny-b; do
    for path in $paths; do
        run() { LYRICMT_CPU_GEMM=$path "$BIN" translate --model tests/fixtures/$model --progress none --set batch.cache_lines=0 \
                    --output-format tsv -i "$T/c.txt" "$@" 2>"$T/err"; }
        for mode in greedy beam sample; do
            case $mode in
                greedy) opts="--beam 1" ;;
                beam) opts="--beam 4 --n-best 3" ;;
                sample) opts="--beam 1 --n-best 2 --set do_sample=true --set top_k=20 --set temperature=1.3 --set seed=7" ;;
            esac
            what="$model $path $mode"
            run $opts --inflight false > "$T/off.tsv"; rc_off=$?
            run $opts --inflight true > "$T/on.tsv"; rc_on=$?
            check "$what: both exit 0" '[ $rc_off -eq 0 ] && [ $rc_on -eq 0 ]'
            check "$what: every line translated" '[ "$(cut -f1 "$T/off.tsv" | sort -u | wc -l)" -eq 160 ]'
            # packed: every product row-invariant, so scores too match byte for byte
            eq=same_tsv; [ $path = packed ] && eq="cmp -s"
            check "$what: in flight == batches" '$eq "$T/off.tsv" "$T/on.tsv"'
            # small budgets: three lines live at once, or fewer tokens
            run $opts --inflight true --set batch.max_sentences=3 > "$T/on3.tsv"
            check "$what: in flight, 3 live == batches" '$eq "$T/off.tsv" "$T/on3.tsv"'
            run $opts --inflight true --set batch.max_tokens=150 > "$T/tok.tsv"
            check "$what: in flight, 150-token budget == batches" '$eq "$T/off.tsv" "$T/tok.tsv"'
        done
    done
done

# input order (no length sort) and a config file key
printf 'batch:\n  inflight: false\n' > "$T/off.yaml"
"$BIN" translate --model $M --progress none --config "$T/off.yaml" --set batch.sort_by_length=false -i "$T/c.txt" > "$T/u_off.txt" 2>/dev/null
"$BIN" translate --model $M --progress none --set batch.sort_by_length=false --set batch.max_sentences=4 -i "$T/c.txt" > "$T/u_on.txt" 2>/dev/null
check "unsorted: in flight == batches (config file key)" 'cmp -s "$T/u_off.txt" "$T/u_on.txt" && [ -s "$T/u_on.txt" ]'
"$BIN" translate --model $M --inflight maybe < /dev/null > /dev/null 2>"$T/bad"; rc=$?
check "--inflight maybe is a usage error naming the key" '[ $rc -eq 2 ] && grep -q "batch.inflight" "$T/bad"'

summary
