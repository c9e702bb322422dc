#!/bin/sh
# test_safety: every command that writes a file, against every kind of output
# a careless or hostile command line can name (base/outfile.h): a full device,
# a null device, a FIFO with a reader, a link to standard output, the
# command's own input, a model file, a link to nothing, a directory. Then the
# journal (a resume under another precision or another spelling of the input),
# augmentation's scores against `lyricmt score`, split-pairs' all-or-nothing,
# and flags given twice. Devices, FIFOs and links are made in this test's own
# scratch directory. Prints "N passed, N failed".
NAME=test_safety
. tests/harness.sh
MD="$T/model"; MA=tests/fixtures/tiny-a
cp -r "$M" "$MD"
printf 'I got money on my mind\nnever stop the grind\nyeah\n' > "$T/in.txt"
printf 'I got money on my mind\t돈 흐름 노력\nyeah\t밤\n' > "$T/pairs.tsv"
printf '{"source":"yeah","target":"밤"}\n{"source":"fire","target":"불"}\n' > "$T/pairs.jsonl"
for f in in.txt pairs.tsv pairs.jsonl; do cp "$T/$f" "$T/$f.orig"; done
cp "$MD/config.json" "$T/config.orig"

# The commands, each writing the path $1; INPUT names the file each reads.
translate_o() { "$BIN" translate --model "$MD" --beam 1 --progress none -i "$T/in.txt" -o "$1"; }
translate_report() { "$BIN" translate --model "$MD" --beam 1 --progress none -i "$T/in.txt" -o "$T/tr.out" --report "$1"; }
score_o() { "$BIN" score --model "$MD" --progress none -i "$T/pairs.tsv" -o "$1"; }
compare_o() { "$BIN" compare --model "$MD" --model $MA --beam 1 -i "$T/in.txt" -o "$1"; }
compare_html() { "$BIN" compare --model "$MD" --model $MA --beam 1 -i "$T/in.txt" --html "$1"; }
# split-pairs writes PREFIX.md and PREFIX.ko (--src md), bench PREFIX.md, .json
# and .yaml: $1 ends in .md; they read SPLIT_IN and BENCH_IN
SPLIT_IN="$T/pairs.jsonl"; BENCH_IN="$T/in.txt"
split_pairs() { "$BIN" split-pairs -i "$SPLIT_IN" --src md -o "${1%.md}"; }
bench() { "$BIN" bench --model "$MD" -i "$BENCH_IN" --seconds 1 --budgets 1024 --no-threads --plot none --progress none -o "${1%.md}"; }
input_of() { case $1 in score_o) echo "$T/pairs.tsv" ;; *) echo "$T/in.txt" ;; esac; }

# Runs $1 on output $2 for at most 60 s: a hang fails instead of stalling the suite.
bounded() {
    "$@" > "$T/stdout" 2> "$T/err" &
    pid=$!; n=0
    while kill -0 $pid 2>/dev/null && [ $n -lt 600 ]; do sleep 0.1; n=$((n + 1)); done
    if kill -0 $pid 2>/dev/null; then kill -9 $pid; wait $pid 2>/dev/null; return 124; fi
    wait $pid
}

inputs_intact() {
    cmp -s "$T/in.txt" "$T/in.txt.orig" && cmp -s "$T/pairs.tsv" "$T/pairs.tsv.orig" && cmp -s "$T/pairs.jsonl" "$T/pairs.jsonl.orig" &&
        cmp -s "$MD/config.json" "$T/config.orig"
}

devices=0
mknod "$T/probe" c 1 3 2>/dev/null && devices=1 && rm -f "$T/probe"
for cmd in translate_o translate_report score_o compare_o compare_html split_pairs bench; do
    d="$T/$cmd"; mkdir -p "$d"
    rm -rf "$MD"; cp -r "$M" "$MD" # a fresh model each time: one command's damage must not hide the next one's
    if [ $devices -eq 1 ]; then
        mknod "$d/full.md" c 1 7; mknod "$d/null.md" c 1 3
        bounded $cmd "$d/full.md"; rc=$?
        check "$cmd: a full device fails (exit 1), stays a device, no partial ($rc: $(head -c 200 "$T/err"))" \
            '[ $rc -eq 1 ] && [ -c "$d/full.md" ] && [ ! -e "$d/full.md.partial" ]'
        bounded $cmd "$d/null.md"; rc=$?
        check "$cmd: a null device is written in place (exit 0), stays a device ($rc: $(head -c 200 "$T/err"))" \
            '[ $rc -eq 0 ] && [ -c "$d/null.md" ] && [ ! -e "$d/null.md.partial" ]'
    fi
    mkfifo "$d/fifo.md"
    cat "$d/fifo.md" > "$d/fifo.got" &
    reader=$!
    bounded $cmd "$d/fifo.md"; rc=$?
    wait $reader
    check "$cmd: a FIFO with a reader is written in place, the reader gets it ($rc: $(head -c 200 "$T/err"))" \
        '[ $rc -eq 0 ] && [ -p "$d/fifo.md" ] && [ -s "$d/fifo.got" ]'
    ln -s /proc/self/fd/1 "$d/stdout.md"
    bounded $cmd "$d/stdout.md"; rc=$?
    check "$cmd: a link to standard output is written through, stays a link ($rc: $(head -c 200 "$T/err"))" \
        '[ $rc -eq 0 ] && [ -L "$d/stdout.md" ] && [ -s "$T/stdout" ]'
    in=$(input_of $cmd)
    if [ $cmd = split_pairs ]; then cp "$SPLIT_IN" "$d/in.md"; in="$d/in.md"; SPLIT_IN="$in"; fi
    if [ $cmd = bench ]; then cp "$BENCH_IN" "$d/in.md"; in="$d/in.md"; BENCH_IN="$in"; fi
    cp "$in" "$d/in.before"
    bounded $cmd "$in"; rc=$?
    SPLIT_IN="$T/pairs.jsonl"; BENCH_IN="$T/in.txt"
    check "$cmd: its own input is refused (exit 1), untouched ($rc: $(head -c 200 "$T/err"))" \
        '[ $rc -eq 1 ] && cmp -s "$in" "$d/in.before" && grep -qE "it is the input|is both an input" "$T/err"'
    if [ $cmd != split_pairs ]; then # split-pairs reads no model
        ln "$MD/config.json" "$d/hard.md"
        bounded $cmd "$d/hard.md"; rc=$?
        check "$cmd: a hard link to a model file is refused (exit 1), the model untouched ($rc: $(head -c 200 "$T/err"))" \
            '[ $rc -eq 1 ] && cmp -s "$MD/config.json" "$T/config.orig" && grep -q "model file" "$T/err"'
    fi
    ln -s "$T/nowhere/x" "$d/dangling.md"
    bounded $cmd "$d/dangling.md"; rc=$?
    check "$cmd: a link to nothing is refused (exit 1), nothing made ($rc)" '[ $rc -eq 1 ] && [ ! -e "$T/nowhere" ]'
    if [ $cmd != translate_o ] && [ $cmd != score_o ]; then # -o DIR: one output per input file
        mkdir "$d/dir.md"
        bounded $cmd "$d/dir.md"; rc=$?
        check "$cmd: a directory is refused (exit 1), left alone ($rc)" '[ $rc -eq 1 ] && [ -d "$d/dir.md" ] && [ -z "$(ls "$d/dir.md")" ]'
    fi
    check "$cmd: no partial left behind" '[ -z "$(ls "$d" | grep partial)" ]'
    check "$cmd: every input and the model are intact" inputs_intact
done
# one output per input file: an output that is a hard link to another input
mkdir -p "$T/songs" "$T/songs-ko"
cp "$T/in.txt" "$T/songs/a.txt"; cp "$T/in.txt" "$T/songs/b.txt"
ln "$T/songs/b.txt" "$T/songs-ko/a.txt"
"$BIN" translate --model "$MD" --beam 1 --progress none -i "$T/songs" -o "$T/songs-ko/" 2>"$T/e"; rc=$?
check "-o DIR/ whose a.txt is a hard link to the input b.txt: refused, untouched ($rc: $(cat "$T/e"))" \
    '[ $rc -eq 1 ] && cmp -s "$T/songs/b.txt" "$T/in.txt.orig" && grep -q "it is the input" "$T/e"'
bounded translate_o "$MD/model.safetensors"; rc=$?
check "translate -o a model file name that does not exist yet is refused too" '[ $rc -eq 1 ] && [ ! -e "$MD/model.safetensors" ]'
bounded translate_o -; rc=$?
check "-o - is standard output, not a file named -" '[ $rc -eq 0 ] && [ -s "$T/stdout" ] && [ ! -e ./- ]'

# a partial left by a command that was killed is this program's own: replaced, not refused
echo "half a table" > "$T/stale.md.partial"
bounded compare_o "$T/stale.md"; rc=$?
check "compare over a stale partial of its own: exit 0, the table written, no partial ($rc: $(head -c 200 "$T/err"))" \
    '[ $rc -eq 0 ] && grep -q "^|" "$T/stale.md" && [ ! -e "$T/stale.md.partial" ]'

# ---- split-pairs: both names or neither ----
echo old-ko > "$T/sp.ko"
mkdir "$T/sp.md"
bounded split_pairs "$T/sp.md"; rc=$?
check "split-pairs with PREFIX.md a directory: exit 1, PREFIX.ko not replaced, no partial" \
    '[ $rc -eq 1 ] && [ "$(cat "$T/sp.ko")" = old-ko ] && [ ! -e "$T/sp.ko.partial" ] && [ ! -e "$T/sp.md.partial" ]'
rmdir "$T/sp.md"
# the second rename fails after the first succeeded: the first file is put back
echo old-en > "$T/sp.md"
if chattr +i "$T/sp.ko" 2>/dev/null; then
    bounded split_pairs "$T/sp.md"; rc=$?
    chattr -i "$T/sp.ko"
    check "split-pairs whose PREFIX.ko cannot be replaced: exit 1, PREFIX.md put back as it was, no partial ($rc: $(cat "$T/err"))" \
        '[ $rc -eq 1 ] && [ "$(cat "$T/sp.md")" = old-en ] && [ "$(cat "$T/sp.ko")" = old-ko ] && [ -z "$(ls "$T" | grep "sp\..*\.\(partial\|lyricmt-old\)")" ]'
else
    echo "test_safety: skipped: a file that cannot be replaced (chattr +i is not supported on this file system)"
fi
awk 'BEGIN { for (i = 0; i < 400000; i++) printf "{\"source\":\"line %d\",\"target\":\"줄 %d\"}\n", i, i }' > "$T/big.jsonl"
"$BIN" split-pairs -i "$T/big.jsonl" --src md -o "$T/sp" 2>/dev/null &
pid=$!
n=0; while [ ! -e "$T/sp.md.partial" ] && [ $n -lt 2000 ] && kill -0 $pid 2>/dev/null; do sleep 0.005; n=$((n + 1)); done
kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rc=$?
check "split-pairs stopped by SIGTERM: exit 143, no partial, old files kept ($rc)" \
    '[ $rc -eq 143 ] && [ ! -e "$T/sp.md.partial" ] && [ ! -e "$T/sp.ko.partial" ] && [ "$(cat "$T/sp.ko")" = old-ko ]'

# ---- split-pairs: one line per text for Python's splitlines() too ----
printf '{"source":"a\\u000bb\\fc","target":"d\\u0085e\\u2028f\\u2029g\\u001ch"}\n{"source":"x\\ty","target":"z"}\n' > "$T/breaks.jsonl"
"$BIN" split-pairs -i "$T/breaks.jsonl" -o "$T/br" 2>/dev/null; rc=$?
lines_py=$(python3 -c 'import sys; print(*(len(open(f, encoding="utf-8", newline="").read().splitlines()) for f in sys.argv[1:]))' "$T/br.en" "$T/br.ko" 2>&1)
check "split-pairs: \\v \\f U+0085 U+2028 U+2029 \\x1c and tabs inside a text become spaces: 2 lines each for splitlines() ($lines_py)" \
    '[ $rc -eq 0 ] && [ "$lines_py" = "2 2" ] && [ "$(head -1 "$T/br.en")" = "a b c" ]'

# ---- the journal: every setting that changes the bytes, inputs by identity ----
corpus 3000 7 > "$T/k.txt"
BINA=$(realpath "$BIN")
JOB="--model $MD --beam 1 --progress none --set batch.window_lines=50"
job() { "$BINA" translate $JOB "$@"; }
job -i "$T/k.txt" -o "$T/k.ref" 2>/dev/null
for prec in int8 bf16; do
    rm -f "$T/k.out" "$T/k.out.journal"
    "$BINA" translate $JOB -i "$T/k.txt" -o "$T/k.out" 2>/dev/null &
    pid=$!; wait_journal $pid "$T/k.out.journal" 0; kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
    job --precision $prec -i "$T/k.txt" -o "$T/k.out" 2>"$T/e"; rc=$?
    check "a job started in fp32 refuses to resume in $prec, naming the arithmetic ($rc: $(cat "$T/e"))" \
        '[ $rc -eq 1 ] && grep -q "arithmetic" "$T/e" && [ ! -e "$T/k.out" ]'
done
if grep -q amx_bf16 /proc/cpuinfo; then # the same precision on other kernels that round otherwise
    rm -f "$T/k.out" "$T/k.out.journal"
    "$BINA" translate $JOB --precision bf16 -i "$T/k.txt" -o "$T/k.out" 2>/dev/null &
    pid=$!; wait_journal $pid "$T/k.out.journal" 0; kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
    LYRICMT_CPU_FEATURES=noamx job --precision bf16 -i "$T/k.txt" -o "$T/k.out" 2>"$T/e"; rc=$?
    check "a bf16 job started on AMX refuses to resume with AMX hidden ($rc: $(tail -n 1 "$T/e"))" \
        '[ $rc -eq 1 ] && grep -q "arithmetic" "$T/e" && [ ! -e "$T/k.out" ]'
    rm -f "$T/k.out" "$T/k.out.journal"
else
    echo "test_safety: skipped: bf16 on AMX against AVX-512 (this CPU has no AMX)"
fi
rm -f "$T/k.out" "$T/k.out.journal"
"$BINA" translate $JOB -i "$T/k.txt" -o "$T/k.out" 2>/dev/null &
pid=$!; wait_journal $pid "$T/k.out.journal" 0; kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
(cd "$T" && job -i ./k.txt -o k.out 2>"$T/e"); rc=$?
check "resumed with the input spelled ./k.txt from its directory: exit 0, byte-identical ($rc: $(cat "$T/e"))" \
    '[ $rc -eq 0 ] && cmp -s "$T/k.ref" "$T/k.out"'

# ---- augmentation's scores are `lyricmt score`'s, to the last printed digit ----
corpus 300 11 > "$T/aug.txt"
"$BIN" translate --model "$MD" --config configs/augment.yaml --progress none -i "$T/aug.txt" -o "$T/aug.jsonl" 2>/dev/null
"$BIN" score --model "$MD" --format jsonl --progress none -i "$T/aug.jsonl" -o "$T/aug.scores" 2>/dev/null
n_pairs=$(wc -l < "$T/aug.jsonl")
differ=$(awk -F '\t' 'NR == FNR { if (match($0, /"score":-?[0-9.]+/)) s[FNR] = substr($0, RSTART + 8, RLENGTH - 8); next }
    { if ($3 != s[FNR]) d++ } END { print d + 0 }' "$T/aug.jsonl" "$T/aug.scores")
check "augmentation's scores equal lyricmt score's on all $n_pairs pairs ($differ differ)" '[ "$n_pairs" -gt 500 ] && [ "$differ" -eq 0 ]'

# ---- a flag that takes one path, given twice ----
"$BIN" split-pairs -i "$T/pairs.jsonl" -i "$T/big.jsonl" -o "$T/twice" 2>"$T/e"; rc=$?
check "split-pairs -i twice is a usage error" '[ $rc -eq 2 ] && grep -q "given twice" "$T/e" && [ ! -e "$T/twice.md" ]'
"$BIN" eval --hyp "$T/in.txt" --ref "$T/in.txt" --ref "$T/k.txt" 2>"$T/e" > /dev/null; rc=$?
check "eval --ref twice is a usage error" '[ $rc -eq 2 ] && grep -q "given twice" "$T/e"'
"$BIN" compare --model "$MD" --model $MA -i "$T/in.txt" -i "$T/k.txt" 2>"$T/e" > /dev/null; rc=$?
check "compare -i twice is a usage error" '[ $rc -eq 2 ] && grep -q "given twice" "$T/e"'
"$BIN" translate --model "$MD" --beam 1 -i "$T/in.txt" -o "$T/o1" -o "$T/o2" 2>"$T/e"; rc=$?
check "translate -o twice is a usage error, nothing written" '[ $rc -eq 2 ] && [ ! -e "$T/o1" ] && [ ! -e "$T/o2" ]'
"$BIN" translate --model "$MD" --beam 2 --beam 1 --progress none -i "$T/in.txt" 2>/dev/null > "$T/b.txt"; rc=$?
check "an engine setting given again overrides, as it overrides the config file" '[ $rc -eq 0 ] && [ -s "$T/b.txt" ]'

summary
