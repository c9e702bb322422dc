#!/bin/sh
# test_eval: `lyricmt eval` prints what sacreBLEU's command line printed on the
# same files (tests/fixtures/sacrebleu/, recorded by
# tests/make_sacrebleu_fixtures.py), byte for byte, and refuses bad input.
NAME=test_eval
. tests/harness.sh
S=tests/fixtures/sacrebleu

n=0
for exp in $S/*.expected; do
    c=${exp%.expected}
    for tok in char none; do
        for w in 1 6; do
            "$BIN" eval --hyp $c.hyp --ref $c.ref --tokenize $tok -w $w || echo "exit $?"
        done
    done > "$T/got" 2>&1
    check "eval on $(basename $c) differs from sacreBLEU: $(diff $exp "$T/got" | head -5)" 'cmp -s $exp "$T/got"'
    n=$((n + 1))
done
check "found the recorded cases ($n)" '[ $n -ge 30 ]'
# the default tokenizer is char and the default width 1
"$BIN" eval --hyp $S/ko.hyp --ref $S/ko.ref > "$T/got"
check "defaults are --tokenize char -w 1" '[ "$(cat "$T/got")" = "$(head -n 2 $S/ko.expected)" ]'

# bad input: one line naming the file, exit 1; usage errors exit 2
printf 'a\nb\n' > "$T/two"; printf 'a\n' > "$T/one"
"$BIN" eval --hyp "$T/two" --ref "$T/one" >/dev/null 2>"$T/err"; rc=$?
check "different line counts: exit 1 (got $rc)" '[ $rc -eq 1 ]'
check "different line counts named: $(cat "$T/err")" '[ "$(wc -l < "$T/err")" -eq 1 ] && grep -q "two has 2 lines but .*one has 1" "$T/err"'
printf 'ok\n\377bad\n' > "$T/bad"
"$BIN" eval --hyp "$T/bad" --ref "$T/two" >/dev/null 2>"$T/err"; rc=$?
check "invalid UTF-8: exit 1 naming file and line (got $rc: $(cat "$T/err"))" '[ $rc -eq 1 ] && grep -q "bad: line 2: invalid UTF-8 at byte 1" "$T/err"'
printf 'ok\nn\000ul\n' > "$T/nul"
"$BIN" eval --hyp "$T/nul" --ref "$T/two" >/dev/null 2>"$T/err"; rc=$?
check "NUL byte: exit 1 naming file and line (got $rc: $(cat "$T/err"))" '[ $rc -eq 1 ] && grep -q "nul: line 2: a NUL byte at byte 2" "$T/err"'
"$BIN" eval --hyp "$T/missing" --ref "$T/two" >/dev/null 2>"$T/err"; rc=$?
check "missing file: exit 1 (got $rc)" '[ $rc -eq 1 ] && grep -q missing "$T/err"'
for args in "--hyp $T/two" "--ref $T/two" "--hyp $T/two --ref $T/two --tokenize 13a" "--hyp $T/two --ref $T/two -w x" "--hyp $T/two --ref $T/two --bogus 1" "--hyp"; do
    "$BIN" eval $args >/dev/null 2>&1; rc=$?
    check "usage error exit 2 for: $args (got $rc)" '[ $rc -eq 2 ]'
done
: > "$T/empty"
"$BIN" eval --hyp "$T/empty" --ref "$T/empty" > "$T/got" 2>"$T/err"; rc=$?
check "two empty files refused as sacreBLEU refuses them (exit 1, got $rc: $(cat "$T/err"))" '[ $rc -eq 1 ] && grep -q "no lines to score" "$T/err" && [ ! -s "$T/got" ]'
summary
