# Sourced by the shell tests (set NAME first): the binary, the tiny model, a
# scratch directory, and check/summary helpers that print "N passed, N failed".
BIN=${LYRICMT:-build/lyricmt}
M=tests/fixtures/tiny-b
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
passed=0; failed=0
ok()   { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL $NAME: $1"; }
check() { if eval "$2"; then ok; else fail "$1"; fi; }
summary() { echo "$NAME: $passed passed, $failed failed"; [ $failed -eq 0 ]; }

# Waits (up to 5 s) while job $1 runs until journal $2 records more than $3 lines.
wait_journal() {
    waited=0
    while [ $waited -lt 1000 ] && kill -0 $1 2>/dev/null; do
        seen=$(awk -F '\t' '/^progress/ { print $2 }' "$2" 2>/dev/null)
        [ -n "$seen" ] && [ "$seen" -gt "$3" ] && return 0
        sleep 0.005; waited=$((waited + 1))
    done
}

# A seeded lyric-like corpus: lengths from 1 to 40 words in shuffled order,
# choruses repeated, blank lines between verses.
corpus() { # $1 lines, $2 seed
    awk -v n="$1" -v seed="$2" 'BEGIN {
        srand(seed); split("money mind grind bottom here yeah never stop flow rhyme street dream gold chain night light fight real deal city", w, " ")
        for (c = 0; c < 8; c++) { hook[c] = ""; for (k = 0; k < 3 + c; k++) hook[c] = hook[c] (k ? " " : "") w[int(rand() * 20) + 1] }
        for (i = 0; i < n; i++) {
            r = rand()
            if (r < 0.08) { print ""; continue }
            if (r < 0.35) { print hook[int(rand() * 8)]; continue }
            len = rand() < 0.9 ? 4 + int(rand() * 12) : 16 + int(rand() * 25); s = ""
            for (k = 0; k < len; k++) s = s (k ? " " : "") w[int(rand() * 20) + 1]
            print s
        } }'
}

# TSV outputs (id, text, score) $1 and $2: the same ids and texts, scores
# within printing and rounding error (where a row's batch changes its low
# bits: OpenBLAS's small-matrix kernels, cuBLAS's algorithm by row count).
same_tsv() {
    cmp -s "$1" "$2" && return 0
    cut -f1,2 "$1" > "$T/same_a"; cut -f1,2 "$2" > "$T/same_b"
    cmp -s "$T/same_a" "$T/same_b" || return 1
    cut -f3 "$1" | paste - "$2" | awk -F'\t' '{ d = $1 - $4; if (d < 0) d = -d; a = $1 < 0 ? -$1 : $1
        if (d > 1.5e-4 + 1e-5 * a) bad++ } END { exit (bad > 0) }'
}
