#!/bin/sh
# test_loader_cli: hostile files found by fuzzing, through the command (issue
# 14): one error line and the documented exit status, never a signal or a
# long wait.
NAME=test_loader_cli
. tests/harness.sh

mkdir "$T/m"
cp $M/*.json $M/sentencepiece.bpe.model "$T/m/"
# 42 bytes: zip64 locator + end record (the committed fuzz regression input)
cp tests/fuzz/corpus/torchbin/zip64-42-bytes "$T/m/pytorch_model.bin"
"$BIN" info --model "$T/m" >/dev/null 2>"$T/err"; rc=$?
check "info refuses the 42-byte zip64 file with exit 1 (got $rc)" '[ $rc -eq 1 ]'
check "info says one line: $(head -c 200 "$T/err")" '[ "$(wc -l < "$T/err")" -eq 1 ] && grep -q "pytorch_model.bin: bad zip64 end-of-directory record" "$T/err"'
echo "hello" | "$BIN" translate --model "$T/m" >/dev/null 2>"$T/err"; rc=$?
check "translate refuses the 42-byte zip64 file with exit 1 (got $rc)" '[ $rc -eq 1 ]'
check "translate says one line: $(head -c 200 "$T/err")" '[ "$(wc -l < "$T/err")" -eq 1 ] && grep -q "bad zip64 end-of-directory record" "$T/err"'
# 100,000 levels of "[": libyaml's scanner is quadratic in depth (minutes)
awk 'BEGIN { printf "threads: "; for (i = 0; i < 100000; i++) printf "["; for (i = 0; i < 100000; i++) printf "]"; print "" }' > "$T/deep.yaml"
t0=$(date +%s%N)
echo "hello" | "$BIN" translate --model $M --config "$T/deep.yaml" >/dev/null 2>"$T/err"; rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "deeply nested YAML refused with exit 2 (got $rc)" '[ $rc -eq 2 ]'
check "deeply nested YAML says one line: $(head -c 200 "$T/err")" '[ "$(wc -l < "$T/err")" -eq 1 ] && grep -q "deep.yaml:1: nested more than 8 levels deep" "$T/err"'
check "deeply nested YAML refused in under 5 s (took $ms ms)" '[ $ms -lt 5000 ]'
summary
