#!/bin/sh
# test_bulk: bulk jobs as users run them: ordering, batching, repeats,
# formats, bad-input policies, kill-and-resume. Prints "N passed, N failed".
NAME=test_bulk
. tests/harness.sh
run() { "$BIN" translate --model $M --progress none "$@"; }


# ---- order restoration and batch composition ----
corpus 400 7 > "$T/c.txt"
run --beam 1 -i "$T/c.txt" -o "$T/batched.txt" 2>"$T/err"; rc=$?
check "bulk job exits 0" '[ $rc -eq 0 ]'
check "one output line per input line" '[ "$(wc -l < "$T/batched.txt")" -eq 400 ]'
check "blank lines give empty lines" '[ "$(grep -c "^$" "$T/c.txt")" -eq "$(grep -c "^$" "$T/batched.txt")" ]'
run --beam 1 -i "$T/c.txt" --set batch.max_sentences=1 --set batch.window_lines=1 --set batch.cache_lines=0 > "$T/alone.txt" 2>/dev/null
check "every line alone == batched (greedy)" 'cmp -s "$T/batched.txt" "$T/alone.txt"'
run --beam 1 -i "$T/c.txt" --set batch.window_lines=37 --set batch.max_tokens=300 --set batch.max_sentences=5 > "$T/odd.txt" 2>/dev/null
check "odd window and budget == default" 'cmp -s "$T/batched.txt" "$T/odd.txt"'
head -60 "$T/c.txt" > "$T/c60.txt"
run --beam 3 -i "$T/c60.txt" > "$T/b3.txt" 2>/dev/null
run --beam 3 -i "$T/c60.txt" --set batch.max_sentences=1 --set batch.cache_lines=0 > "$T/b3alone.txt" 2>/dev/null
check "every line alone == batched (beam 3)" 'cmp -s "$T/b3.txt" "$T/b3alone.txt"'
# each line's output equals translating exactly that line (order restored)
bad=0
for i in 3 17 101 250 399; do
    sed -n ${i}p "$T/c.txt" | run --beam 1 > "$T/one.txt" 2>/dev/null
    [ "$(cat "$T/one.txt")" = "$(sed -n ${i}p "$T/batched.txt")" ] || bad=1
done
check "sampled lines match their own translation" '[ $bad -eq 0 ]'

# ---- repeats are translated once and reported ----
check "summary reports reused repeats" 'grep -Eq "[1-9][0-9]* repeats reused" "$T/err"'
check "summary reports lines and throughput" 'grep -q "done: 400 lines" "$T/err" && grep -q "lines/s" "$T/err"'
check "summary reports peak memory" 'grep -q "peak memory" "$T/err"'

# ---- a line over the token budget runs alone instead of failing ----
awk 'BEGIN{for(i=0;i<60;i++)printf "money ";print ""; print "yeah"}' > "$T/wide.txt"
run --beam 2 -i "$T/wide.txt" --set batch.max_tokens=40 > "$T/wide.out" 2>/dev/null; rc=$?
check "over-budget line translated alone" '[ $rc -eq 0 ] && [ "$(wc -l < "$T/wide.out")" -eq 2 ] && [ -n "$(head -1 "$T/wide.out")" ]'

# ---- progress ----
run --beam 1 -i "$T/c.txt" --progress plain > /dev/null 2>"$T/p.err"
check "plain progress/summary on a pipe" 'grep -q "lines/s" "$T/p.err"'
"$BIN" translate --model $M --quiet --beam 1 -i "$T/c.txt" > /dev/null 2>"$T/q.err"
check "--quiet prints nothing" '[ ! -s "$T/q.err" ]'

# ---- bad input policies ----
printf 'ok line\n\377\376 bad bytes\nnul\000here\n\n' > "$T/bad.txt"
awk 'BEGIN{for(i=0;i<300;i++)printf "money ";print ""; print "last line"}' >> "$T/bad.txt"
run --beam 1 -i "$T/bad.txt" --report "$T/report.tsv" > "$T/r.out" 2>"$T/r.err"; rc=$?
check "replace/truncate: exit 0, 6 lines" '[ $rc -eq 0 ] && [ "$(wc -l < "$T/r.out")" -eq 6 ]'
check "replace: bad line translated" '[ -n "$(sed -n 2p "$T/r.out")" ] && [ -n "$(sed -n 3p "$T/r.out")" ]'
check "warning names file and line" 'grep -q "bad.txt:2: 2 invalid UTF-8" "$T/r.err" && grep -q "bad.txt:3: 1 invalid UTF-8" "$T/r.err"'
check "too-long warning names the line" 'grep -q "bad.txt:5: longer than the model.s 128 positions; truncated" "$T/r.err"'
check "summary counts warnings by kind" 'grep -q "warnings: 2 invalid-utf8, 1 too-long, 0 bad-record" "$T/r.err"'
check "report file lists events" 'grep -q "bad.txt	2	invalid-utf8" "$T/report.tsv" && grep -q "bad.txt	5	too-long" "$T/report.tsv"'
run --beam 1 -i "$T/bad.txt" --bad-utf8 skip --too-long skip > "$T/s.out" 2>/dev/null; rc=$?
check "skip: exit 0, 6 lines" '[ $rc -eq 0 ] && [ "$(wc -l < "$T/s.out")" -eq 6 ]'
check "skip: skipped lines are empty, others kept" '[ -z "$(sed -n 2p "$T/s.out")" ] && [ -z "$(sed -n 3p "$T/s.out")" ] && [ -z "$(sed -n 5p "$T/s.out")" ] && [ "$(sed -n 6p "$T/s.out")" = "$(sed -n 6p "$T/r.out")" ]'
run --beam 1 -i "$T/bad.txt" --bad-utf8 fail -o "$T/f.out" 2>"$T/f.err"; rc=$?
check "bad_utf8 fail: exit 1 naming the line" '[ $rc -eq 1 ] && grep -q "bad.txt:2: invalid UTF-8" "$T/f.err" && [ ! -e "$T/f.out" ]'
run --beam 1 -i "$T/bad.txt" --bad-utf8 skip --too-long fail > /dev/null 2>"$T/f.err"; rc=$?
check "too_long fail: exit 1 naming the line" '[ $rc -eq 1 ] && grep -q "bad.txt:5: longer than the model" "$T/f.err"'
run --beam 1 -i "$T/bad.txt" --bad-utf8 maybe > /dev/null 2>"$T/f.err"; rc=$?
check "unknown policy is a usage error" '[ $rc -eq 2 ] && grep -q "replace, skip, fail" "$T/f.err"'

# ---- TSV and JSONL round trips ----
head -20 "$T/c.txt" > "$T/c20.txt"
run --beam 1 -i "$T/c20.txt" > "$T/c20.out" 2>/dev/null
awk '{ printf "song-%d\t%s\n", NR, $0 }' "$T/c20.txt" > "$T/c20.tsv"
run --beam 1 --format tsv --output-format tsv -i "$T/c20.tsv" > "$T/tsv.out" 2>/dev/null
check "TSV: ids kept in order" '[ "$(cut -f1 "$T/tsv.out" | tr "\n" " ")" = "$(cut -f1 "$T/c20.tsv" | tr "\n" " ")" ]'
check "TSV: translations match text mode" '[ "$(cut -f2 "$T/tsv.out")" = "$(cat "$T/c20.out")" ]'
awk '{ gsub(/"/, "\\\""); if (NR % 2) printf "{\"key\": %d, \"lyric\": \"%s\"}\n", NR, $0; else printf "{\"key\": \"s%d\", \"lyric\": \"%s\"}\n", NR, $0 }' "$T/c20.txt" > "$T/c20.jsonl"
run --beam 1 --format jsonl --id-field key --text-field lyric --output-format jsonl -i "$T/c20.jsonl" > "$T/j.out" 2>/dev/null
check "JSONL: one record per line" '[ "$(wc -l < "$T/j.out")" -eq 20 ]'
check "JSONL: numeric and string ids kept" 'sed -n 1p "$T/j.out" | grep -q "^{\"id\":1," && sed -n 2p "$T/j.out" | grep -q "^{\"id\":\"s2\","'
check "JSONL: source, translation and score" 'sed -n 1p "$T/j.out" | grep -q "\"source\":\".*\",\"translation\":\".*\",\"score\":-\?[0-9]"'
first=$(sed -n 1p "$T/c20.out")
check "JSONL: translation matches text mode" 'sed -n 1p "$T/j.out" | grep -qF "\"translation\":\"$first\""'
printf 'a\tI got money\nno tab here\n{oops\n' > "$T/m.tsv"
run --beam 1 --format tsv --output-format tsv -i "$T/m.tsv" > "$T/m.out" 2>"$T/m.err"
check "TSV: malformed line kept as a warned empty record" '[ "$(wc -l < "$T/m.out")" -eq 3 ] && grep -q "m.tsv:2: unusable tsv record" "$T/m.err"'
printf '{"id": 1, "text": "yeah"}\n{oops\n{"id": 3}\n' > "$T/m.jsonl"
run --beam 1 --format jsonl --output-format jsonl -i "$T/m.jsonl" > "$T/m.out" 2>"$T/m.err"
check "JSONL: bad JSON and missing text are warned empty records" '[ "$(wc -l < "$T/m.out")" -eq 3 ] && grep -q "m.jsonl:2: unusable jsonl record (bad JSON: expected a string)" "$T/m.err" && sed -n 3p "$T/m.out" | grep -q "\"warning\":\"bad-record\""'
# issue 26: a bad record is known by its line number, not by an empty id
check "JSONL: a bad record's id is its line number, a readable id is kept" 'sed -n 2p "$T/m.out" | grep -q "^{\"id\":2," && sed -n 3p "$T/m.out" | grep -q "^{\"id\":3,"'
run --beam 1 --format tsv --output-format tsv -i "$T/m.tsv" > "$T/m.out" 2>/dev/null
check "TSV: a bad record's id is its line number" '[ "$(cut -f1 "$T/m.out" | tr "\n" " ")" = "a 2 3 " ]'
# a key written twice takes its last value, as Python's json does; one key may serve two fields
printf '{"id": 1, "text": "zzz", "text": "I got money"}\n' > "$T/d.jsonl"
run --beam 1 --format jsonl --output-format jsonl -i "$T/d.jsonl" > "$T/d.out" 2>/dev/null
check "JSONL: a duplicate text key takes its last value" 'grep -q "\"source\":\"I got money\"" "$T/d.out"'
run --beam 1 --format jsonl --output-format jsonl -i "$T/d.jsonl" > "$T/d.out" 2>"$T/d.err"
check "JSONL: a duplicate key is warned with file and line, the record still translated" 'grep -q "d.jsonl:1: key .text. appears more than once; its last value is used" "$T/d.err" && grep -q "1 bad-record" "$T/d.err" && grep -q "\"translation\":\"[^\"]\+\",\"score\":-\?[0-9].*\"warning\":\"bad-record\"" "$T/d.out"'
printf '{"text": "I got money"}\n' > "$T/s.jsonl"
run --beam 1 --format jsonl --id-field text --text-field text --output-format jsonl -i "$T/s.jsonl" > "$T/s.out" 2>"$T/s.err"
check "JSONL: --id-field text --text-field text is a good record" 'grep -q "^{\"id\":\"I got money\",\"source\":\"I got money\",\"translation\":\"[^\"]" "$T/s.out" && grep -q "0 bad-record" "$T/s.err"'

# ---- n-best and sampled outputs ----
run --beam 4 --n-best 3 --output-format jsonl -i "$T/c20.txt" > "$T/nb.out" 2>/dev/null
check "n-best JSONL has 3 scored hypotheses" 'sed -n 1p "$T/nb.out" | grep -q "\"hypotheses\":\[{\"translation\":[^]]*},{[^]]*},{[^]]*}\]"'
run --beam 4 --n-best 3 --output-format tsv -i "$T/c20.txt" > "$T/nb.tsv" 2>/dev/null
check "n-best TSV: id + 3 x (translation, score)" '[ "$(sed -n 1p "$T/nb.tsv" | awk -F "\t" "{print NF}")" -eq 7 ]'
run --config configs/augment.yaml --n-best 3 --output-format jsonl -i "$T/c20.txt" > "$T/smp.out" 2>/dev/null
run --config configs/augment.yaml --n-best 3 --output-format jsonl -i "$T/c20.txt" > "$T/smp2.out" 2>/dev/null
check "sampled n-best: 3 samples per line, reproducible" 'sed -n 1p "$T/smp.out" | grep -q "\"hypotheses\"" && cmp -s "$T/smp.out" "$T/smp2.out"'

# ---- several files and directories ----
mkdir -p "$T/songs/album1" "$T/songs/album2"
corpus 30 1 > "$T/songs/album1/track1.txt"; corpus 25 2 > "$T/songs/album1/track2.txt"; corpus 40 3 > "$T/songs/album2/track1.txt"
: > "$T/songs/album2/empty.txt"
run --beam 1 -i "$T/songs" -o "$T/outdir/" 2>/dev/null; rc=$?
check "directory in, directory out" '[ $rc -eq 0 ] && [ -f "$T/outdir/album1/track1.txt" ] && [ -f "$T/outdir/album2/track1.txt" ] && [ -f "$T/outdir/album2/empty.txt" ]'
check "per-file outputs keep line counts" '[ "$(wc -l < "$T/outdir/album1/track2.txt")" -eq 25 ] && [ "$(wc -l < "$T/outdir/album2/track1.txt")" -eq 40 ] && [ ! -s "$T/outdir/album2/empty.txt" ]'
check "no journal or partials left" '[ -z "$(find "$T/outdir" -name "*.partial" -o -name ".lyricmt-journal")" ]'
run --beam 1 -i "$T/songs/album1/track2.txt" > "$T/t2.txt" 2>/dev/null
check "per-file output == translating that file" 'cmp -s "$T/t2.txt" "$T/outdir/album1/track2.txt"'
run --beam 1 -i "$T/songs" --output-format tsv -o "$T/all.tsv" 2>/dev/null
check "one output for a directory, ids name file and line" '[ "$(wc -l < "$T/all.tsv")" -eq 95 ] && grep -q "^album1/track2.txt:25	" "$T/all.tsv"'


# ---- kill -9 at random moments, resume, byte-identical ----
corpus 2500 11 > "$T/k.txt"
run --beam 2 -i "$T/k.txt" -o "$T/k.ref" 2>/dev/null
kills=0; leak=0; mid=0; last=0
for round in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16; do
    "$BIN" translate --model $M --progress none --beam 2 --set batch.window_lines=50 -i "$T/k.txt" -o "$T/k.out" 2>/dev/null &
    pid=$!
    # most rounds wait for the job to journal new lines, so kills land mid-job
    # however fast this machine is; then a random extra delay
    [ $((round % 4)) -ne 0 ] && wait_journal $pid "$T/k.out.journal" $last
    sleep "$(awk -v s=$round 'BEGIN { srand(s); printf "%.3f", rand() * 0.05 }')"
    if kill -9 $pid 2>/dev/null; then kills=$((kills + 1)); fi
    { wait $pid; } 2>/dev/null
    # the final name only ever holds the complete output (a kill can land after the rename)
    [ -e "$T/k.out" ] && ! cmp -s "$T/k.ref" "$T/k.out" && leak=1
    # count kills that landed mid-job, after more lines were journaled than before
    done_now=$(awk -F '\t' '/^progress/ { print $2 }' "$T/k.out.journal" 2>/dev/null)
    [ -n "$done_now" ] && [ "$done_now" -gt "$last" ] && [ "$done_now" -lt 2500 ] && { mid=$((mid + 1)); last=$done_now; }
done
echo "test_bulk: $kills kills, $mid of them mid-job after new progress"
run --beam 2 --set batch.window_lines=50 -i "$T/k.txt" -o "$T/k.out" 2>/dev/null; status=$?
check "killed $kills times ($mid mid-job with progress), then finished" '[ $status -eq 0 ] && [ $mid -ge 3 ]'
check "final output never holds a partial result" '[ $leak -eq 0 ]'
check "resumed output byte-identical" 'cmp -s "$T/k.ref" "$T/k.out"'
check "journal and partial removed" '[ ! -e "$T/k.out.journal" ] && [ ! -e "$T/k.out.partial" ]'

# the same for one output per input file
run --beam 1 -i "$T/songs" -o "$T/ref-dir/" 2>/dev/null
for s in 1 2 3 4 5 6 7 8 9 10 11 12; do corpus 120 $((s + 20)) > "$T/songs/album2/extra$s.txt"; done
run --beam 2 -i "$T/songs" -o "$T/ref-dir/" 2>/dev/null
for round in 1 2 3 4 5 6 7 8 9 10 11 12; do
    "$BIN" translate --model $M --progress none --beam 2 --set batch.window_lines=40 -i "$T/songs" -o "$T/kdir/" 2>/dev/null &
    pid=$!
    sleep "$(awk -v s=$round 'BEGIN { srand(s + 100); printf "%.3f", 0.02 + rand() * 0.3 }')"
    kill -9 $pid 2>/dev/null
    { wait $pid; } 2>/dev/null
done
run --beam 2 --set batch.window_lines=40 -i "$T/songs" -o "$T/kdir/" 2>/dev/null; status=$?
check "directory job resumed to completion" '[ $status -eq 0 ]'
check "directory job byte-identical after kills" 'diff -r "$T/ref-dir" "$T/kdir" > /dev/null'

# ---- Ctrl-C stops cleanly; changed input/settings/model refuse to resume ----
cp -r $M "$T/model"
"$BIN" translate --model "$T/model" --progress none --beam 2 --set batch.window_lines=50 -i "$T/k.txt" -o "$T/i.out" 2>"$T/i.err" &
pid=$!
wait_journal $pid "$T/i.out.journal" 0; kill -INT $pid; wait $pid; rc=$?
check "SIGINT exits 130 and says how to resume" '[ $rc -eq 130 ] && grep -q "run the same command again to resume" "$T/i.err" && [ -e "$T/i.out.journal" ]'
"$BIN" translate --model "$T/model" --progress none --beam 3 -i "$T/k.txt" -o "$T/i.out" 2>"$T/e"; rc=$?
check "changed setting refuses to resume" '[ $rc -eq 1 ] && grep -q "setting .decoding. changed" "$T/e"'
cp "$T/k.txt" "$T/k2.txt"; echo "one more line" >> "$T/k2.txt"
mv "$T/k.txt" "$T/k.orig"; mv "$T/k2.txt" "$T/k.txt"
"$BIN" translate --model "$T/model" --progress none --beam 2 -i "$T/k.txt" -o "$T/i.out" 2>"$T/e"; rc=$?
check "changed input refuses to resume" '[ $rc -eq 1 ] && grep -q "input .*k.txt. changed since the journal was written" "$T/e"'
mv "$T/k.orig" "$T/k.txt"
printf '\n' >> "$T/model/generation_config.json"
"$BIN" translate --model "$T/model" --progress none --beam 2 -i "$T/k.txt" -o "$T/i.out" 2>"$T/e"; rc=$?
check "changed model refuses to resume" '[ $rc -eq 1 ] && grep -q "model .generation_config.json. changed" "$T/e"'
"$BIN" translate --model "$T/model" --progress none --beam 2 -i "$T/k.txt" -o "$T/i.out" --restart 2>/dev/null; rc=$?
check "--restart starts over and completes" '[ $rc -eq 0 ] && cmp -s "$T/k.ref" "$T/i.out"'
echo "garbage" > "$T/g.out.journal"
run --beam 2 -i "$T/k.txt" -o "$T/g.out" 2>"$T/e"; rc=$?
check "corrupt journal is refused by name" '[ $rc -eq 1 ] && grep -q "g.out.journal: not a complete lyricmt journal" "$T/e"'

# ---- bounded memory: 10x the corpus, about the same peak ----
# (AddressSanitizer's quarantine would hold freed memory: off for these runs)
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0"
corpus 4000 5 > "$T/m1.txt"
awk '{ for (k = 0; k < 10; k++) print $0 " " k }' "$T/m1.txt" > "$T/m10.txt"
run --beam 1 --max-length 4 --set batch.cache_lines=500 -i "$T/m1.txt" -o "$T/m1.out" 2>"$T/m1.err"
run --beam 1 --max-length 4 --set batch.cache_lines=500 -i "$T/m10.txt" -o "$T/m10.out" 2>"$T/m10.err"
p1=$(sed -n 's/.*peak memory \([0-9.]*\) MB.*/\1/p' "$T/m1.err"); p10=$(sed -n 's/.*peak memory \([0-9.]*\) MB.*/\1/p' "$T/m10.err")
check "memory bounded: 4000 lines ${p1} MB, 40000 lines ${p10} MB" 'awk -v a="$p1" -v b="$p10" "BEGIN { exit !(a > 0 && b < a * 1.25 + 8) }"'
check "large corpus complete" '[ "$(wc -l < "$T/m10.out")" -eq 40000 ]'

summary
