#!/bin/sh
# test_score: `lyricmt score` as users run it: transformers' recorded scores
# (golden_score.tsv, tests/make_score_goldens.py) through the CLI in both
# conventions, TSV and JSONL pairs, ids, blank and bad lines, batching, the
# bad-input policies, and kill -9 then resume byte-identical.
NAME=test_score
. tests/harness.sh
score() { "$BIN" score --model $M --progress none "$@"; }

# ---- transformers' scores, both conventions, both fixtures ----
for model in tiny-a tiny-b; do
    for conv in m2m100 small100; do
        g=tests/fixtures/$model/golden_score.tsv
        awk -F '\t' -v c=$conv '$1 == c { print $2 "\t" $3 }' $g > "$T/p.tsv"
        awk -F '\t' -v c=$conv '$1 == c { print $4 "\t" $5 "\t" $6 }' $g > "$T/ref"
        "$BIN" score --model tests/fixtures/$model --progress none --convention $conv -i "$T/p.tsv" -o "$T/s.tsv" 2>"$T/err"; rc=$?
        n=$(wc -l < "$T/ref")
        # within 1e-4 relative (the printed 6 decimals hold far more), token counts exact
        bad=$(cut -f2-4 "$T/s.tsv" | paste - "$T/ref" | awk -F '\t' '
            function d(a, b) { x = a - b; if (x < 0) x = -x; y = b < 0 ? -b : b; return x > 1e-4 * y + 1e-6 }
            d($1, $4) || d($2, $5) || $3 != $6 { bad++ } END { print bad + 0 }')
        check "$model/$conv: $n pairs scored as transformers' loss (bad $bad)" '[ $rc -eq 0 ] && [ $n -ge 14 ] && [ "$(wc -l < "$T/s.tsv")" -eq $n ] && [ "$bad" -eq 0 ]'
        check "$model/$conv: ids are line numbers" '[ "$(cut -f1 "$T/s.tsv" | tr "\n" " ")" = "$(seq 1 $n | tr "\n" " ")" ]'
        check "$model/$conv: the target cut at the positions is warned" 'grep -q "p.tsv:14: longer than the model.s [0-9]* positions; truncated" "$T/err"'
    done
done

# ---- batching does not change a score beyond its last float bit ----
awk -F '\t' '$1 == "m2m100" { print $2 "\t" $3 }' tests/fixtures/tiny-b/golden_score.tsv > "$T/p.tsv"
score -i "$T/p.tsv" -o "$T/batched.tsv" 2>/dev/null
score -i "$T/p.tsv" -o "$T/alone.tsv" --set batch.max_sentences=1 --set batch.window_lines=1 2>/dev/null
bad=$(paste "$T/batched.tsv" "$T/alone.tsv" | awk -F '\t' '{ x = $2 - $6; if (x < 0) x = -x; if (x > 1e-6 * (-$2) + 2e-6 || $4 != $8) bad++ } END { print bad + 0 }')
check "each pair alone == batched (within 1e-6 relative)" '[ "$bad" -eq 0 ] && [ "$(wc -l < "$T/alone.tsv")" -eq 14 ]'
# with AVX-512 every fp32 product is the packed one, row-invariant: the same bytes
if grep -q avx512f /proc/cpuinfo 2>/dev/null && grep -q avx512bw /proc/cpuinfo; then
    check "each pair alone == batched, byte for byte (packed fp32 products)" 'cmp -s "$T/batched.tsv" "$T/alone.tsv"'
else
    echo "$NAME: note: no AVX-512, alone and batched compared within 1e-6 only"
fi

# ---- pairs that share a source share its encoding: the same scores as alone ----
# each source with three pairs' targets, its pairs apart and next to each other
awk -F '\t' '{ s[NR] = $1; g[NR] = $2 } END { for (k = 0; k < 3; k++) for (i = 1; i <= NR; i++) print s[i] "\t" g[(i + k) % NR + 1]; print s[1] "\t" g[5] }' \
    "$T/p.tsv" > "$T/shared.tsv"
score -i "$T/shared.tsv" -o "$T/shared.out" 2>/dev/null
score -i "$T/shared.tsv" -o "$T/shared-alone.out" --set batch.max_sentences=1 --set batch.window_lines=1 2>/dev/null
bad=$(paste "$T/shared.out" "$T/shared-alone.out" | awk -F '\t' '{ x = $2 - $6; if (x < 0) x = -x; if (x > 1e-6 * (-$2) + 2e-6 || $4 != $8) bad++ } END { print bad + 0 }')
check "pairs sharing sources in one batch == each alone (within 1e-6 relative)" '[ "$bad" -eq 0 ] && [ "$(wc -l < "$T/shared-alone.out")" -eq 43 ]'
if grep -q avx512f /proc/cpuinfo 2>/dev/null && grep -q avx512bw /proc/cpuinfo; then
    check "pairs sharing sources in one batch == each alone, byte for byte" 'cmp -s "$T/shared.out" "$T/shared-alone.out"'
fi

# ---- JSONL pairs: fields, ids kept byte for byte, optional ids ----
awk -F '\t' 'NR <= 6 { gsub(/"/, "\\\"", $1); gsub(/"/, "\\\"", $2)
    if (NR == 1) printf "{\"key\": 9007199254740993, \"en\": \"%s\", \"ko\": \"%s\"}\n", $1, $2
    else if (NR == 2) printf "{\"ko\": \"%s\", \"en\": \"%s\", \"key\": \"s2\"}\n", $2, $1
    else printf "{\"en\": \"%s\", \"ko\": \"%s\"}\n", $1, $2 }' "$T/p.tsv" > "$T/p.jsonl"
score --format jsonl --src-field en --tgt-field ko --id-field key --output-format jsonl -i "$T/p.jsonl" -o "$T/j.out" 2>"$T/err"; rc=$?
check "JSONL: exit 0, one record per pair" '[ $rc -eq 0 ] && [ "$(wc -l < "$T/j.out")" -eq 6 ]'
check "JSONL: ids as written, line numbers when absent" 'sed -n 1p "$T/j.out" | grep -q "^{\"id\":9007199254740993,\"score\":" && sed -n 2p "$T/j.out" | grep -q "^{\"id\":\"s2\"," && sed -n 3p "$T/j.out" | grep -q "^{\"id\":3,"'
head -6 "$T/batched.tsv" | awk -F '\t' '{ printf "\"score\":%s,\"normalized\":%s,\"tokens\":%s}\n", $2, $3, $4 }' > "$T/want"
sed 's/.*\("score"\)/\1/' "$T/j.out" > "$T/got"
check "JSONL: the same scores as TSV" 'cmp -s "$T/want" "$T/got"'

# ---- blank lines, bad lines: one record each, named by file and line ----
printf 'money\t돈\n\nno tab here\n\t빈 소스\nyeah\t\n' > "$T/m.tsv"
score -i "$T/m.tsv" --report "$T/rep.tsv" > "$T/m.out" 2>"$T/m.err"; rc=$?
check "TSV: 5 records for 5 lines" '[ $rc -eq 0 ] && [ "$(wc -l < "$T/m.out")" -eq 5 ]'
check "TSV: a blank line is an empty record" '[ "$(sed -n 2p "$T/m.out")" = "2			" ]'
check "TSV: a line without a tab is a warned empty record" 'grep -q "m.tsv:3: unusable tsv record (no tab between source and target)" "$T/m.err" && [ "$(sed -n 3p "$T/m.out")" = "3			" ] && grep -q "m.tsv	3	bad-record" "$T/rep.tsv"'
check "TSV: empty source and empty target are scored" '[ "$(sed -n 4p "$T/m.out" | cut -f4)" -ge 2 ] && [ "$(sed -n 5p "$T/m.out" | cut -f4)" -eq 2 ]'
# issue 26: a source over the line cap goes to --too-long (it was cut before its
# tab and called a line without one); three columns are refused, not scored as
# "b<TAB>c"; a tab alone is a pair of empty sides, scored as the JSONL pair is
awk 'BEGIN { s = "money"; for (i = 0; i < 12000; i++) s = s " money"; printf "%s\t돈\n", s }' > "$T/long.tsv"
score -i "$T/long.tsv" > "$T/l.out" 2>"$T/l.err"; rc=$?
check "TSV: a 72 KB source is truncated by --too-long, and scored" '[ $rc -eq 0 ] && grep -q "long.tsv:1: longer than .*; truncated" "$T/l.err" && ! grep -q "no tab" "$T/l.err" && [ "$(cut -f4 "$T/l.out")" -gt 2 ]'
score --too-long fail -i "$T/long.tsv" > /dev/null 2>"$T/l.err"; rc=$?
check "TSV: --too-long fail stops at the long source" '[ $rc -eq 1 ] && grep -q "long.tsv:1: longer than .*input.too_long is fail" "$T/l.err"'
score --too-long skip -i "$T/long.tsv" > "$T/l.out" 2>/dev/null; rc=$?
check "TSV: --too-long skip leaves its record empty" '[ $rc -eq 0 ] && [ "$(cat "$T/l.out")" = "1			" ]'
printf 'money\t돈\tgold\n\t\n' > "$T/c3.tsv"
score -i "$T/c3.tsv" --report "$T/rep3.tsv" > "$T/c3.out" 2>"$T/c3.err"; rc=$?
check "TSV: three columns are a warned empty record" '[ $rc -eq 0 ] && [ "$(sed -n 1p "$T/c3.out")" = "1			" ] && grep -q "c3.tsv:1: unusable tsv record (more than one tab; a pair is source<TAB>target)" "$T/c3.err" && grep -q "c3.tsv	1	bad-record" "$T/rep3.tsv"'
printf '{"source": "", "target": ""}\n' > "$T/e.jsonl"
score --format jsonl -i "$T/e.jsonl" > "$T/e.out" 2>/dev/null
check "TSV: a tab alone is scored as the JSONL pair of empty strings" '[ "$(sed -n 2p "$T/c3.out" | cut -f2-)" = "$(cut -f2- "$T/e.out")" ] && [ "$(cut -f4 "$T/e.out")" -eq 2 ]'
printf '{"source": "money", "target": "돈"}\n{oops\n{"source": "yeah"}\n{"target": "돈", "source": 5}\n' > "$T/m.jsonl"
score --format jsonl --output-format jsonl -i "$T/m.jsonl" > "$T/m.out" 2>"$T/m.err"; rc=$?
check "JSONL: 4 records for 4 lines" '[ $rc -eq 0 ] && [ "$(wc -l < "$T/m.out")" -eq 4 ]'
check "JSONL: bad JSON, missing target and non-string source are named" 'grep -q "m.jsonl:2: unusable jsonl record (bad JSON" "$T/m.err" && grep -q "m.jsonl:3: unusable jsonl record (no string target field)" "$T/m.err" && grep -q "m.jsonl:4: unusable jsonl record (no string source field)" "$T/m.err"'
check "JSONL: a bad record has null scores and a warning" 'sed -n 2p "$T/m.out" | grep -q "\"score\":null,\"normalized\":null,\"tokens\":null,\"warning\":\"bad-record\""'
printf 'ok\t\377bad\n' > "$T/u.tsv"
score -i "$T/u.tsv" --bad-utf8 fail -o "$T/u.out" 2>"$T/u.err"; rc=$?
check "bad_utf8 fail names the line, writes nothing" '[ $rc -eq 1 ] && grep -q "u.tsv:1: invalid UTF-8" "$T/u.err" && [ ! -e "$T/u.out" ]'
score --too-long fail -i "$T/p.tsv" > /dev/null 2>"$T/u.err"; rc=$?
check "too_long fail names the line" '[ $rc -eq 1 ] && grep -q "p.tsv:14: longer than the model" "$T/u.err"'
score --format text -i "$T/p.tsv" > /dev/null 2>"$T/u.err"; rc=$?
check "text input is a usage error" '[ $rc -eq 2 ] && grep -q "tsv or jsonl" "$T/u.err"'
"$BIN" score -i "$T/p.tsv" > /dev/null 2>"$T/u.err"; rc=$?
check "score without --model is a usage error" '[ $rc -eq 2 ] && grep -q "score needs --model" "$T/u.err"'

# ---- kill -9 at random moments, resume, byte-identical ----
awk 'BEGIN { srand(5); split("money mind grind bottom here yeah never stop flow rhyme street dream gold chain night", e, " ")
    split("돈 흐름 라임 비트 거리 밤 도시 꿈 금 체인 진짜 절대 멈추지 노력 불", k, " ")
    for (i = 0; i < 2000; i++) {
        if (rand() < 0.05) { print ""; continue }
        s = ""; t = ""; n = 1 + int(rand() * 14); m = int(rand() * 12)
        for (j = 0; j < n; j++) s = s (j ? " " : "") e[int(rand() * 15) + 1]
        for (j = 0; j < m; j++) t = t (j ? " " : "") k[int(rand() * 15) + 1]
        if (rand() < 0.2) print "money\t돈 돈"; else print s "\t" t } }' > "$T/k.tsv"
score --set batch.window_lines=50 -i "$T/k.tsv" -o "$T/k.ref" 2>/dev/null
check "2000 pairs scored" '[ "$(wc -l < "$T/k.ref")" -eq 2000 ]'
mid=0; last=0
for round in 1 2 3 4 5 6 7 8 9 10; do
    "$BIN" score --model $M --progress none --set batch.window_lines=50 -i "$T/k.tsv" -o "$T/k.out" 2>/dev/null &
    pid=$!
    # most kills wait for new journaled lines, so they land mid-job however busy the machine is
    [ $((round % 3)) -ne 0 ] && wait_journal $pid "$T/k.out.journal" $last
    sleep "$(awk -v s=$round 'BEGIN { srand(s); printf "%.3f", rand() * 0.05 }')"
    kill -9 $pid 2>/dev/null
    { wait $pid; } 2>/dev/null
    now=$(awk -F '\t' '/^progress/ { print $2 }' "$T/k.out.journal" 2>/dev/null)
    [ -n "$now" ] && [ "$now" -gt "$last" ] && [ "$now" -lt 2000 ] && { mid=$((mid + 1)); last=$now; }
done
echo "test_score: 10 kills, $mid of them mid-job after new progress"
score --set batch.window_lines=50 -i "$T/k.tsv" -o "$T/k.out" 2>/dev/null; rc=$?
check "killed 10 times ($mid mid-job after new progress), then finished" '[ $rc -eq 0 ] && [ $mid -ge 3 ]'
check "resumed scores byte-identical" 'cmp -s "$T/k.ref" "$T/k.out"'
check "journal and partial removed" '[ ! -e "$T/k.out.journal" ] && [ ! -e "$T/k.out.partial" ]'
# a translation's journal never resumes a scoring job
"$BIN" score --model $M --progress none --set batch.window_lines=50 -i "$T/k.tsv" -o "$T/x.out" 2>/dev/null &
pid=$!
wait_journal $pid "$T/x.out.journal" 0
kill -9 $pid 2>/dev/null; { wait $pid; } 2>/dev/null
"$BIN" translate --model $M --progress none --format tsv --set batch.window_lines=50 -i "$T/k.tsv" -o "$T/x.out" 2>"$T/e"; rc=$?
check "translate refuses a scoring job's journal" '[ $rc -eq 1 ] && grep -q "cannot resume .*x.out.journal.*score" "$T/e"'

summary
