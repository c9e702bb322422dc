#!/bin/sh
# test_bulk_more: bulk-job checks that read their truths from the fixtures:
# whitespace-only TSV/JSONL records, n-best and sampled outputs counted and
# scored, and a directory job killed mid-job (asserted) then resumed.
# Prints "N passed, N failed".
NAME=test_bulk_more
. tests/harness.sh
run() { "$BIN" translate --model $M --progress none "$@"; }
# golden FIELD TEXT: a column of the text's m2m100 row in golden_cli.tsv (see test_cli.sh)
golden() { awk -F '\t' -v f="$1" -v t="$2" '$1 == "m2m100" && $2 == t { print $f; exit }' $M/golden_cli.tsv; }
A="Yeah, yeah!"; B="Started from the bottom now we here"

# ---- whitespace-only records: kept, with their ids, as empty translations; a
# whitespace-only line is an empty record, like an empty line ----
printf 'a\t%s\nb\t   \nc\t\t \n  \t \nd\t%s\n' "$A" "$B" > "$T/ws.tsv"
run --beam 1 --format tsv --output-format tsv -i "$T/ws.tsv" > "$T/ws.out" 2>"$T/ws.err"; rc=$?
check "TSV whitespace-only: exit 0, 5 records, ids in order" '[ $rc -eq 0 ] && [ "$(cut -f1 "$T/ws.out" | tr "\n" " ")" = "a b c  d " ]'
check "TSV whitespace-only records translate to nothing" '[ -z "$(sed -n 2p "$T/ws.out" | cut -f2)" ] && [ -z "$(sed -n 3p "$T/ws.out" | cut -f2)" ]'
check "TSV records around them equal transformers' greedy" '[ "$(sed -n 1p "$T/ws.out" | cut -f2)" = "$(golden 3 "$A")" ] && [ "$(sed -n 5p "$T/ws.out" | cut -f2)" = "$(golden 3 "$B")" ]'
check "TSV whitespace-only records are not bad records" 'grep -q "0 bad-record" "$T/ws.err"'
printf '{"id": 1, "text": "%s"}\n{"id": 2, "text": "   "}\n{"id": 3, "text": "\\t \\n"}\n \t \n{"id": 4, "text": "%s"}\n' "$A" "$B" > "$T/ws.jsonl"
run --beam 1 --format jsonl --output-format jsonl -i "$T/ws.jsonl" > "$T/wj.out" 2>"$T/wj.err"; rc=$?
check "JSONL whitespace-only: exit 0, 5 records, the blank line an empty one" '[ $rc -eq 0 ] && [ "$(wc -l < "$T/wj.out")" -eq 5 ] && sed -n 4p "$T/wj.out" | grep -q "\"translation\":\"\",\"score\":null"'
check "JSONL whitespace-only records: ids kept, empty translation, no score" 'sed -n 2p "$T/wj.out" | grep -q "^{\"id\":2,.*\"translation\":\"\",\"score\":null" && sed -n 3p "$T/wj.out" | grep -q "^{\"id\":3,.*\"translation\":\"\",\"score\":null"'
check "JSONL source echoed exactly" 'sed -n 1p "$T/wj.out" | grep -qF "\"source\":\"$A\","'
printf '%s\n%s\n' "$A" "$B" | run --beam 1 --output-format jsonl > "$T/tj.out" 2>/dev/null
check "text in, JSONL out: each line's source echoed exactly" 'sed -n 1p "$T/tj.out" | grep -qF "\"source\":\"$A\"," && sed -n 2p "$T/tj.out" | grep -qF "\"source\":\"$B\","'
check "JSONL records around them equal transformers' greedy" 'sed -n 1p "$T/wj.out" | grep -qF "\"translation\":\"$(golden 3 "$A")\"" && sed -n 5p "$T/wj.out" | grep -qF "\"translation\":\"$(golden 3 "$B")\""'
check "JSONL whitespace-only records are not bad records" 'grep -q "0 bad-record" "$T/wj.err"'

# ---- n-best JSONL: 3 hypotheses, transformers' texts and scores (rounded to 4 decimals) ----
printf '%s\n%s\n' "$A" "$B" > "$T/two.txt"
run --beam 5 --n-best 3 --output-format jsonl -i "$T/two.txt" > "$T/nb.out" 2>/dev/null
bad=0; line=0
for text in "$A" "$B"; do
    line=$((line + 1))
    got=$(sed -n ${line}p "$T/nb.out" | sed 's/.*"hypotheses":\[//' | grep -o '"score":-\?[0-9.e-]*' | cut -d: -f2 | tr '\n' ' ')
    want=$(for f in 6 8 10; do golden $f "$text"; done | tr '\n' ' ')
    [ "$(echo "$got" | wc -w)" -eq 3 ] || bad=$((bad + 1))
    bad=$((bad + $(printf '%s\n%s\n' "$got" "$want" | awk 'NR == 1 { n = split($0, g, " ") } NR == 2 { split($0, w, " "); for (i = 1; i <= n; i++) { d = g[i] - w[i]; if (d > 0.00006 || d < -0.00006) b++ } } END { print b + 0 }')))
    for f in 5 7 9; do sed -n ${line}p "$T/nb.out" | grep -qF "{\"translation\":\"$(golden $f "$text")\"" || bad=$((bad + 1)); done
done
check "n-best JSONL: 3 hypotheses with transformers' texts and scores ($bad differ)" '[ $bad -eq 0 ]'

# ---- sampled n-best: exactly 3 samples per line, each scored ----
printf '%s\n%s\n\n%s\n' "$A" "$B" "$A" > "$T/smp.txt"
run --config configs/augment.yaml --n-best 3 --output-format jsonl -i "$T/smp.txt" > "$T/smp.out" 2>/dev/null; rc=$?
counts=$(awk '{ if (!sub(/.*"hypotheses":\[/, "")) $0 = ""; print gsub(/"translation":/, "") " " gsub(/"score":-?[0-9]/, "") }' "$T/smp.out" | tr '\n' ',')
check "sampled n-best: 3 scored samples per non-empty line ($counts)" '[ $rc -eq 0 ] && [ "$counts" = "3 3,3 3,0 0,3 3," ]'
check "sampled n-best: a repeated line gives the same samples" '[ "$(sed -n 1p "$T/smp.out" | sed "s/\"id\":[0-9]*//")" = "$(sed -n 4p "$T/smp.out" | sed "s/\"id\":[0-9]*//")" ]'

# ---- a directory job killed mid-job, each kill asserted to land after new progress ----
corpus() { # $1 lines, $2 seed: lyric-like lines of 3 to 20 words
    awk -v n="$1" -v seed="$2" 'BEGIN { srand(seed); split("money mind grind bottom here yeah never stop flow rhyme street dream gold chain night light fight real deal city", w, " ")
        for (i = 0; i < n; i++) { s = ""; len = 3 + int(rand() * 18); for (k = 0; k < len; k++) s = s (k ? " " : "") w[int(rand() * 20) + 1]; print s } }'
}
mkdir -p "$T/songs/a" "$T/songs/b"
for s in 1 2 3 4 5 6; do corpus 100 $s > "$T/songs/$([ $s -le 3 ] && echo a || echo b)/track$s.txt"; done
run --beam 2 -i "$T/songs" -o "$T/ref/" 2>/dev/null
J="$T/kdir/.lyricmt-journal"
progress() { awk -F '\t' '/^progress/ { print $2 }' "$J" 2>/dev/null; }
kills=0; mid=0; last=0
for round in 1 2 3 4 5 6 7 8; do
    "$BIN" translate --model $M --progress none --beam 2 --set batch.window_lines=40 -i "$T/songs" -o "$T/kdir/" 2>/dev/null &
    pid=$!
    waited=0 # until the journal records more lines than before (at most 5 s), then a random extra delay
    while [ $waited -lt 1000 ] && kill -0 $pid 2>/dev/null; do
        seen=$(progress); [ -n "$seen" ] && [ "$seen" -gt "$last" ] && break
        sleep 0.005; waited=$((waited + 1))
    done
    sleep "$(awk -v s=$round 'BEGIN { srand(s + 200); printf "%.3f", rand() * 0.05 }')"
    kill -9 $pid 2>/dev/null && kills=$((kills + 1))
    { wait $pid; } 2>/dev/null
    now=$(progress)
    [ -n "$now" ] && [ "$now" -gt "$last" ] && [ "$now" -lt 600 ] && { mid=$((mid + 1)); last=$now; }
done
run --beam 2 --set batch.window_lines=40 -i "$T/songs" -o "$T/kdir/" 2>/dev/null; status=$?
echo "test_bulk_more: directory job: $kills kills, $mid of them mid-job after new progress"
check "directory job: kills landed mid-job ($mid of $kills)" '[ $mid -ge 3 ]'
check "directory job resumed to completion, byte-identical" '[ $status -eq 0 ] && diff -r "$T/ref" "$T/kdir" > /dev/null'
check "directory job: no journal or partials left" '[ -z "$(find "$T/kdir" -name "*.partial" -o -name ".lyricmt-journal")" ]'

summary
