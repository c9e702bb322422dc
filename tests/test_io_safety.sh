#!/bin/sh
# test_io_safety: a bulk job used as a hostile user would: outputs that are
# inputs, devices, links and FIFOs, pipes, files that change under the job,
# huge lines, odd JSONL, write errors. Every device, FIFO and link is made
# inside this test's own scratch directory. Prints "N passed, N failed".
NAME=test_io_safety
. tests/harness.sh
run() { "$BIN" translate --model $M --beam 1 --progress none "$@"; }
lines() { wc -l < "$1" | tr -d ' '; }
# Waits for background job $1 at most $2 seconds; a job still running then is
# killed and counts as exit 124, so a hang fails its check instead of the suite.
wait_or_kill() {
    n=0
    while kill -0 $1 2>/dev/null && [ $n -lt $(($2 * 10)) ]; do sleep 0.1; n=$((n + 1)); done
    if kill -0 $1 2>/dev/null; then pkill -9 -P $1 2>/dev/null; kill -9 $1 2>/dev/null; wait $1 2>/dev/null; return 124; fi
    wait $1
}
printf 'I got money on my mind\nnever stop the grind\nyeah\n' > "$T/in.txt"
cp "$T/in.txt" "$T/in.orig"
run -i "$T/in.txt" > "$T/ref.txt" 2>/dev/null

# ---- 1. devices, FIFOs and links as outputs ----
if mknod "$T/full" c 1 7 2>/dev/null && mknod "$T/null" c 1 3 2>/dev/null; then
    run -i "$T/in.txt" -o "$T/full" 2>"$T/e"; rc=$?
    check "-o a full device fails (exit 1) and says why" '[ $rc -eq 1 ] && grep -q "No space left" "$T/e"'
    check "-o a device leaves the device node in place" '[ -c "$T/full" ] && [ ! -e "$T/full.partial" ] && [ ! -e "$T/full.journal" ]'
    run -i "$T/in.txt" -o "$T/null" 2>"$T/e"; rc=$?
    check "-o a working device succeeds, says it cannot resume" '[ $rc -eq 0 ] && [ -c "$T/null" ] && grep -q "cannot be resumed" "$T/e"'
    # 11. every output stream is checked when it is closed
    run -i "$T/in.txt" --report "$T/full" > /dev/null 2>"$T/e"; rc=$?
    check "--report onto a full device fails" '[ $rc -eq 1 ] && grep -q "report" "$T/e"'
    "$BIN" info --model $M > "$T/full" 2>"$T/e"; rc=$?
    check "info > full device fails" '[ $rc -eq 1 ] && grep -q "standard output" "$T/e"'
    "$BIN" --help > "$T/full" 2>/dev/null; rc=$?
    check "--help > full device fails" '[ $rc -eq 1 ]'
    run -i "$T/in.txt" > "$T/full" 2>/dev/null; rc=$?
    check "translation to a full standard output fails" '[ $rc -eq 1 ]'
else
    fail "mknod in the scratch directory (needs root, as CI has): device cases not run"
fi
echo "old target" > "$T/target.txt"
ln -s target.txt "$T/link"
run -i "$T/in.txt" -o "$T/link" 2>/dev/null; rc=$?
check "-o a link writes its target and keeps the link" '[ $rc -eq 0 ] && [ -L "$T/link" ] && cmp -s "$T/target.txt" "$T/ref.txt"'
ln -s nowhere/x "$T/dangling"
run -i "$T/in.txt" -o "$T/dangling" 2>"$T/e"; rc=$?
check "-o a dangling link is refused, nothing created" '[ $rc -eq 1 ] && [ -L "$T/dangling" ] && grep -q "symbolic link to a missing file" "$T/e" && [ ! -e "$T/dangling.partial" ]'
mkfifo "$T/fifo-out"
run -i "$T/in.txt" -o "$T/fifo-out" 2>/dev/null &
pid=$!
timeout -k 5 30 cat "$T/fifo-out" > "$T/from-fifo"
wait_or_kill $pid 30; rc=$?
check "-o a FIFO streams the translation to its reader" '[ $rc -eq 0 ] && [ -p "$T/fifo-out" ] && cmp -s "$T/from-fifo" "$T/ref.txt"'

run -i "$T/in.txt" -o /dev/stdout 2>"$T/e" | cat > "$T/via-stdout"
check "-o /dev/stdout onto a pipe writes the pipe" 'cmp -s "$T/via-stdout" "$T/ref.txt"'
echo precious > "$T/victim.txt"
ln -s victim.txt "$T/o5.txt.partial"
run -i "$T/in.txt" -o "$T/o5.txt" 2>/dev/null; rc=$?
check "a stale .partial that is a link is replaced, its target untouched" '[ $rc -eq 0 ] && [ "$(cat "$T/victim.txt")" = precious ] && cmp -s "$T/o5.txt" "$T/ref.txt" && [ ! -L "$T/o5.txt" ]'
mkfifo "$T/fifo-noreader"
"$BIN" translate --model $M --beam 1 --progress none -i "$T/in.txt" -o "$T/fifo-noreader" 2>/dev/null &
pid=$!
sleep 1; kill -TERM $pid
wait_or_kill $pid 10; rc=$?
check "SIGTERM while waiting for a FIFO output's reader exits 143" '[ $rc -eq 143 ]'

# ---- 2. an output, report or journal that is an input is refused, untouched ----
run -i "$T/in.txt" -o "$T/in.txt" 2>"$T/e"; rc=$?
check "-i X -o X refused, X untouched" '[ $rc -eq 1 ] && cmp -s "$T/in.txt" "$T/in.orig" && grep -q "in.txt" "$T/e"'
run -i "$T/in.txt" --report "$T/in.txt" > /dev/null 2>/dev/null; rc=$?
check "--report naming the input refused, input untouched" '[ $rc -eq 1 ] && cmp -s "$T/in.txt" "$T/in.orig"'
ln "$T/in.txt" "$T/hardlink.txt"
run -i "$T/in.txt" -o "$T/hardlink.txt" 2>/dev/null; rc=$?
check "an output hard-linked to the input refused" '[ $rc -eq 1 ] && cmp -s "$T/in.txt" "$T/in.orig"'
ln -s in.txt "$T/in-link"
run -i "$T/in.txt" -o "$T/in-link" 2>/dev/null; rc=$?
check "an output linked to the input refused" '[ $rc -eq 1 ] && cmp -s "$T/in.txt" "$T/in.orig"'
run -o "$T/in.txt" < "$T/in.txt" 2>/dev/null; rc=$?
check "-o naming the file on standard input refused" '[ $rc -eq 1 ] && cmp -s "$T/in.txt" "$T/in.orig"'
mkdir -p "$T/album"
cp "$T/in.txt" "$T/album/a.txt"; cp "$T/in.txt" "$T/album/b.txt"
run -i "$T/album" -o "$T/album/" 2>"$T/e"; rc=$?
check "-i DIR -o DIR/ refused, songs untouched" '[ $rc -eq 1 ] && cmp -s "$T/album/a.txt" "$T/in.orig" && cmp -s "$T/album/b.txt" "$T/in.orig" && grep -q "input directory" "$T/e"'
run -i "$T/album" -o "$T/album/../album" 2>/dev/null; rc=$?
check "the same directory by another spelling refused" '[ $rc -eq 1 ] && cmp -s "$T/album/a.txt" "$T/in.orig"'
run -i "$T/in.txt" -o "$T/x.out" 2>/dev/null
mv "$T/x.out" "$T/x.journal-victim"
cp "$T/in.txt" "$T/x.out.journal"
run -i "$T/x.out.journal" -o "$T/x.out" 2>/dev/null; rc=$?
check "an input named like the job's journal refused" '[ $rc -eq 1 ] && cmp -s "$T/x.out.journal" "$T/in.orig"'

# ---- 3. the job's own outputs are never read back as input ----
run -i "$T/album" -o "$T/album/all.txt" 2>/dev/null
run -i "$T/album" -o "$T/album/all.txt" 2>/dev/null; rc=$?
check "an output inside the input directory is not read back (6 lines, twice)" '[ $rc -eq 0 ] && [ "$(lines "$T/album/all.txt")" -eq 6 ]'
echo "stale partial line" > "$T/album/all.txt.partial"
printf 'lyricmt journal 1\n' > "$T/album/all.txt.journal"
run -i "$T/album" -o "$T/album/all.txt" --restart 2>/dev/null; rc=$?
check "--restart does not translate its own journal or partial" '[ $rc -eq 0 ] && [ "$(lines "$T/album/all.txt")" -eq 6 ]'
rm "$T/album/all.txt"
run -i "$T/album" -o "$T/album/ko/" 2>/dev/null
run -i "$T/album" -o "$T/album/ko/" 2>/dev/null; rc=$?
check "a per-file output directory inside the input is not read back" '[ $rc -eq 0 ] && [ ! -e "$T/album/ko/ko" ] && [ "$(ls "$T/album/ko" | wc -l)" -eq 2 ]'
rm -r "$T/album/ko"

# ---- 4 and 7. pipes, FIFOs and standard input are read once, and a stop is honoured ----
printf 'yeah\nmoney\n' | timeout -k 5 60 "$BIN" translate --model $M --beam 1 --progress none -i /dev/stdin -o "$T/p1.txt" 2>/dev/null; rc=$?
check "-i /dev/stdin from a pipe translates every line" '[ $rc -eq 0 ] && [ "$(lines "$T/p1.txt")" -eq 2 ] && [ -n "$(head -1 "$T/p1.txt")" ]'
printf 'yeah\nmoney\n' | run -i - 2>/dev/null > "$T/p2.txt"; rc=$?
check "-i - is standard input" '[ $rc -eq 0 ] && cmp -s "$T/p1.txt" "$T/p2.txt"'
mkfifo "$T/fifo-in"
run -i "$T/fifo-in" -o "$T/p3.txt" 2>/dev/null &
pid=$!
timeout -k 5 30 sh -c 'printf "yeah\nmoney\n" > "$1"' sh "$T/fifo-in"
wait_or_kill $pid 30; rc=$?
check "a named FIFO is streamed, not read twice" '[ $rc -eq 0 ] && cmp -s "$T/p1.txt" "$T/p3.txt"'
"$BIN" translate --model $M --beam 1 --progress none -i "$T/fifo-in" -o "$T/p4.txt" 2>/dev/null &
pid=$! # the program itself, not a shell around it, receives the signal
sleep 1
# 9. OpenMP workers sleep rather than spin unless the user chose otherwise
policy=$(tr '\0' '\n' < /proc/$pid/environ 2>/dev/null | grep '^OMP_WAIT_POLICY=')
kill -TERM $pid
wait_or_kill $pid 10; rc=$?
check "SIGTERM while a FIFO has no writer stops the job (143)" '[ $rc -eq 143 ] && [ ! -e "$T/p4.txt" ] && [ ! -e "$T/p4.txt.partial" ]'
check "the job runs with OMP_WAIT_POLICY=passive by default" '[ "$policy" = "OMP_WAIT_POLICY=passive" ]'
OMP_WAIT_POLICY=active "$BIN" translate --model $M --beam 1 --progress none -i "$T/fifo-in" 2>/dev/null &
pid=$!
sleep 1
policy=$(tr '\0' '\n' < /proc/$pid/environ 2>/dev/null | grep '^OMP_WAIT_POLICY=')
kill -TERM $pid
wait_or_kill $pid 10
check "a user's own OMP_WAIT_POLICY is kept" '[ "$policy" = "OMP_WAIT_POLICY=active" ]'

# ---- 5. an input that changes while it is read fails the job ----
awk 'BEGIN { srand(5); split("money mind grind bottom here yeah never stop flow rhyme street dream", w, " ")
             for (i = 0; i < 30000; i++) { s = ""; n = 3 + int(rand() * 10); for (k = 0; k < n; k++) s = s " " w[int(rand() * 12) + 1]; print s } }' > "$T/big.txt"
# Waits (up to 10 s) while job $1 runs until journal $2 exists with progress.
wait_progress() {
    n=0
    while [ $n -lt 1000 ] && kill -0 $1 2>/dev/null; do
        seen=$(awk -F '\t' '/^progress/ { print $2 }' "$2" 2>/dev/null)
        [ -n "$seen" ] && [ "$seen" -gt 0 ] && return 0
        sleep 0.01; n=$((n + 1))
    done
}
cp "$T/big.txt" "$T/big1.txt"
run -i "$T/big1.txt" -o "$T/big1.out" --set batch.window_lines=64 2>"$T/e" &
pid=$!
wait_progress $pid "$T/big1.out.journal"
head -100 "$T/big.txt" > "$T/big.head"; cat "$T/big.head" > "$T/big1.txt"
wait_or_kill $pid 120; rc=$?
check "input truncated during the job: exit 1 naming it" '[ $rc -eq 1 ] && grep -q "big1.txt: changed while the job was reading it" "$T/e" && [ ! -e "$T/big1.out" ]'
cp "$T/big.txt" "$T/big2.txt"
run -i "$T/big2.txt" -o "$T/big2.out" --set batch.window_lines=64 2>"$T/e" &
pid=$!
wait_progress $pid "$T/big2.out.journal"
tr 'a' 'o' < "$T/big.txt" > "$T/big.edit"; cat "$T/big.edit" > "$T/big2.txt"
wait_or_kill $pid 120; rc=$?
check "input rewritten (same size) during the job: exit 1 naming it" '[ $rc -eq 1 ] && grep -q "big2.txt: changed" "$T/e" && [ ! -e "$T/big2.out" ]'

# a second job on the same output is refused, journaled or not
cp "$T/big.txt" "$T/big3.txt"
"$BIN" translate --model $M --beam 1 --progress none -i "$T/big3.txt" -o "$T/shared.out" --set batch.window_lines=64 2>/dev/null &
pid=$!
wait_progress $pid "$T/shared.out.journal"
echo hello | run -o "$T/shared.out" 2>"$T/e"; rc2=$?
kill -INT $pid; wait_or_kill $pid 30; rc=$?
check "a second job (from stdin) on a running job's output is refused" '[ $rc2 -eq 1 ] && grep -q "another lyricmt job is writing" "$T/e" && [ $rc -eq 130 ]'
rm -f "$T/big3.txt"
# the resume hint is only given when a resume can work
"$BIN" translate --model $M --beam 1 --progress none -i "$T/big.txt" -o "$T/hint.out" --set batch.window_lines=64 2>/dev/null &
pid=$!
wait_progress $pid "$T/hint.out.journal"
kill -INT $pid; wait_or_kill $pid 30
rm -f "$T/hint.out.partial"
run -i "$T/big.txt" -o "$T/hint.out" 2>"$T/e"; rc=$?
check "a resume that cannot work says so, without 'run the same command again'" '[ $rc -eq 1 ] && grep -q "hint.out.partial" "$T/e" && ! grep -q "run the same command again" "$T/e"'
# a writer blocked on a pipe nobody reads still honours SIGTERM
mkfifo "$T/stuck"
sleep 30 < "$T/stuck" &
sleeper=$!
"$BIN" translate --model $M --beam 1 --progress none -i "$T/big.txt" > "$T/stuck" 2>/dev/null &
pid=$!
sleep 3; kill -TERM $pid
wait_or_kill $pid 15; rc=$?
kill $sleeper 2>/dev/null; wait $sleeper 2>/dev/null
check "SIGTERM with the writer blocked on an unread pipe exits 143" '[ $rc -eq 143 ]'

# ---- 6. JSONL ids round-trip byte for byte; NUL follows the UTF-8 policy ----
cat > "$T/ids.jsonl" <<'EOF'
{"id": 9007199254740993, "text": "yeah"}
{"id": 9007199254740992, "text": "yeah"}
{"id": 0.1, "text": "money"}
{"id": 1e2, "text": "money"}
{"id": null, "text": "grind"}
{"id": [1, 2], "text": "grind"}
{"id": "caf\u00e9", "text": "mind"}
{"id": "n", "text": "a\u0000b"}
EOF
run --format jsonl --output-format jsonl -i "$T/ids.jsonl" > "$T/ids.out" 2>"$T/e"; rc=$?
sed 's/^{"id":\(.*\),"source".*/\1/' "$T/ids.out" > "$T/ids.got"
printf '9007199254740993\n9007199254740992\n0.1\n1e2\nnull\n[1, 2]\n"caf\\u00e9"\n"n"\n' > "$T/ids.want"
check "JSONL ids written back exactly as read" '[ $rc -eq 0 ] && cmp -s "$T/ids.got" "$T/ids.want"'
fffd=$(printf '"source":"a\357\277\275b"')
check "JSONL \\u0000 is a bad byte, not the end of the text" 'grep -q "ids.jsonl:8: 1 invalid UTF-8 or NUL" "$T/e" && sed -n 8p "$T/ids.out" | grep -qF "$fffd"'
run --format jsonl --output-format jsonl -i "$T/ids.jsonl" --bad-utf8 skip > "$T/ids.skip" 2>/dev/null
check "JSONL \\u0000 under skip gives an empty translation" 'sed -n 8p "$T/ids.skip" | grep -q "\"translation\":\"\""'

# ---- 8. thread counts are capped ----
printf 'a\nb\nc\nd\n' > "$T/four.txt"
timeout -k 5 60 "$BIN" translate --model $M --beam 1 --quiet --threads 4096 -i "$T/four.txt" > "$T/t.out" 2>"$T/e"; rc=$?
check "--threads 4096 is capped with a note and finishes" '[ $rc -eq 0 ] && [ "$(lines "$T/t.out")" -eq 4 ] && grep -q "more than twice the" "$T/e"'

# ---- 10 (and fuzzing's 2). huge lines: bounded memory, linear time ----
awk 'BEGIN { for (i = 0; i < 900000; i++) printf "money "; print "" }' > "$T/huge.txt"
run -i "$T/four.txt" 2>"$T/m0.err" > /dev/null
run -i "$T/huge.txt" 2>"$T/m1.err" > "$T/huge.out"; rc=$?
m0=$(sed -n 's/.*peak memory \([0-9.]*\) MB.*/\1/p' "$T/m0.err"); m1=$(sed -n 's/.*peak memory \([0-9.]*\) MB.*/\1/p' "$T/m1.err")
check "a 5.4 MB line: one output line, peak memory ${m1} MB vs ${m0} MB for short lines" '[ $rc -eq 0 ] && [ "$(lines "$T/huge.out")" -eq 1 ] && awk -v a="$m0" -v b="$m1" "BEGIN { exit !(a > 0 && b < a + 24) }"'
awk 'BEGIN { for (i = 0; i < 1048576; i++) printf "%c", 255; print "" }' > "$T/ff.txt"
timeout -k 5 20 "$BIN" translate --model $M --beam 1 --progress none -i "$T/ff.txt" > /dev/null 2>"$T/e"; rc=$?
check "a 1 MB line of invalid bytes is handled (quadratic repair took minutes)" '[ $rc -eq 0 ] && grep -q "invalid UTF-8" "$T/e"'
timeout -k 5 20 "$BIN" translate --model $M --beam 1 --progress none --bad-utf8 fail -i "$T/ff.txt" > /dev/null 2>"$T/e"; rc=$?
check "... and refused quickly under --bad-utf8 fail" '[ $rc -eq 1 ] && grep -q "ff.txt:1: invalid UTF-8" "$T/e"'
python3 -c "import sys; sys.stdout.buffer.write(b'a' * 65535 + '\uac00\ub098'.encode() + b'\n')" > "$T/split.txt" 2>/dev/null ||
    { awk 'BEGIN { for (i = 0; i < 65535; i++) printf "a" }' > "$T/split.txt"; printf '\352\260\200\353\202\230\n' >> "$T/split.txt"; }
run -i "$T/split.txt" --bad-utf8 fail > /dev/null 2>"$T/e"; rc=$?
check "a long valid line cut inside a character is not invalid UTF-8" '[ $rc -eq 0 ] && ! grep -q "invalid UTF-8" "$T/e" && grep -q "split.txt:1: longer than" "$T/e"'

# CRLF line ends are line ends, not text
awk '{ printf "%s\r\n", $0 }' "$T/in.txt" > "$T/crlf.txt"
run -i "$T/crlf.txt" > "$T/crlf.out" 2>/dev/null
check "a CRLF file translates as its LF twin" 'cmp -s "$T/crlf.out" "$T/ref.txt"'
run -i "$T/crlf.txt" --output-format jsonl > "$T/crlf.jsonl" 2>/dev/null
check "a CRLF line's echoed source has no \\r" '[ "$(lines "$T/crlf.jsonl")" -eq 3 ] && ! grep -qF "\\r" "$T/crlf.jsonl"'

# ---- 12. an empty path is a usage error, and nothing is written ----
mkdir "$T/cwd"
(cd "$T/cwd" && "$OLDPWD/$BIN" translate --model "$OLDPWD/$M" -i "$T/in.txt" -o '' > /dev/null 2>"$T/e"); rc=$?
check "-o '' refused up front (2), nothing written" '[ $rc -eq 2 ] && [ -z "$(ls -A "$T/cwd")" ] && grep -q "non-empty" "$T/e"'

# ---- 13. after a failure, the message states what the journal vouches for ----
mkdir -p "$T/alb2"
awk 'NR <= 700' "$T/big.txt" > "$T/alb2/a.txt"; awk 'NR <= 40' "$T/big.txt" > "$T/alb2/b.txt"
mkdir -p "$T/alb2-out/b.txt.partial" # the second output cannot be created
run -i "$T/alb2" -o "$T/alb2-out/" --set batch.window_lines=64 2>"$T/e"; rc=$?
said=$(sed -n 's/.*vouches for \([0-9]*\) written lines.*/\1/p' "$T/e")
journal=$(awk -F '\t' '/^progress/ { print $2 }' "$T/alb2-out/.lyricmt-journal" 2>/dev/null)
rmdir "$T/alb2-out/b.txt.partial"
run -i "$T/alb2" -o "$T/alb2-out/" --set batch.window_lines=64 2>"$T/e2"; rc2=$?
resumed=$(sed -n 's/.*after \([0-9]*\) lines written by an earlier run.*/\1/p' "$T/e2")
check "failure message ($said) = journal ($journal) = resume ($resumed)" '[ $rc -eq 1 ] && [ -n "$said" ] && [ "$said" = "$journal" ] && [ "$said" = "$resumed" ] && [ $rc2 -eq 0 ]'

# ---- 14. a fail policy counts its event; a journal of nothing does not block a retry ----
printf '\377 bad first line\nok\n' > "$T/bad1.txt"
run -i "$T/bad1.txt" -o "$T/bad1.out" --bad-utf8 fail 2>"$T/e"; rc=$?
check "--bad-utf8 fail: exit 1, summary counts the event" '[ $rc -eq 1 ] && grep -q "warnings: 1 invalid-utf8" "$T/e"'
check "--bad-utf8 fail before any line: no journal or partial left" '[ ! -e "$T/bad1.out.journal" ] && [ ! -e "$T/bad1.out.partial" ]'
run -i "$T/bad1.txt" -o "$T/bad1.out" --bad-utf8 skip 2>/dev/null; rc=$?
check "retry with another policy needs no --restart" '[ $rc -eq 0 ] && [ "$(lines "$T/bad1.out")" -eq 2 ]'

# ---- 15. usage errors exit 2 with a clear line; --version ----
echo yeah | run --n-best 9 --beam 2 > /dev/null 2>"$T/e"; rc=$?
check "--n-best above the beam is a usage error (2)" '[ $rc -eq 2 ] && grep -q "num_return_sequences" "$T/e"'
echo yeah | run --max-length 100000 > /dev/null 2>"$T/e"; rc=$?
check "--max-length above the positions is a usage error (2)" '[ $rc -eq 2 ] && grep -q "positions" "$T/e"'
"$BIN" info --model > /dev/null 2>"$T/e"; rc=$?
check "info --model without a value says so" '[ $rc -eq 2 ] && grep -q "needs a model directory" "$T/e"'
echo yeah | run --beam 1e3 > /dev/null 2>"$T/e"; rc=$?
check "--beam 1e3 is not an integer" '[ $rc -eq 2 ] && grep -q "must be an integer" "$T/e"'
echo yeah | run --set batch.max_tokens=99999999999 > /dev/null 2>"$T/e"; rc=$?
check "ranges print as integers" '[ $rc -eq 2 ] && grep -q "outside \[0, 1073741824\]" "$T/e"'
"$BIN" --version > "$T/v" 2>&1; rc=$?
check "--version" '[ $rc -eq 0 ] && grep -Eq "^lyricmt [0-9]+\.[0-9]+\.[0-9]+ " "$T/v"'
OPENBLAS_CORETYPE=Prescott "$BIN" --version > "$T/vp" 2>&1
check "a user's OPENBLAS_CORETYPE is kept" 'grep -q "OpenBLAS kernels: Prescott" "$T/vp"'
if grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then
    env -u OPENBLAS_CORETYPE "$BIN" --version > "$T/vd" 2>&1
    check "OpenBLAS does not run its SSE3 kernels on an AVX2 CPU" 'grep -q "OpenBLAS kernels: " "$T/vd" && ! grep -q "OpenBLAS kernels: Prescott" "$T/vd"'
fi

# ---- 16. dangling links, link loops and FIFOs in an input directory are skipped and counted ----
mkdir -p "$T/walk/sub"
cp "$T/in.txt" "$T/walk/a.txt"; cp "$T/in.txt" "$T/walk/sub/b.txt"
ln -s missing.txt "$T/walk/dangling.txt"; ln -s self "$T/walk/self"; ln -s .. "$T/walk/sub/up"; mkfifo "$T/walk/pipe"
timeout -k 5 60 "$BIN" translate --model $M --beam 1 --progress none -i "$T/walk" -o "$T/walk.out" 2>"$T/e"; rc=$?
check "a directory with a dangling link, loops and a FIFO: translated, not hung" '[ $rc -eq 0 ] && [ "$(lines "$T/walk.out")" -eq 6 ]'
timeout -k 5 60 "$BIN" translate --model $M --beam 1 --progress none -i "$T/walk" --report "$T/walk.tsv" > /dev/null 2>&1
check "skipped entries reach --report" '[ "$(grep -c "skipped-path" "$T/walk.tsv")" -eq 4 ]'
check "each skipped entry warned and counted" 'grep -q "dangling.txt: dangling symbolic link, skipped" "$T/e" && grep -q "self: symbolic link loop" "$T/e" && grep -q "up: directory link loop" "$T/e" && grep -q "pipe: not a regular file" "$T/e" && grep -q "4 skipped-path" "$T/e"'

summary
