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
# issue 26: a FIFO as sentencepiece.bpe.model made `info` wait forever, a
# 4 GB sparse one took 44 s and 8.5 GB; timeout stops a regression from
# hanging the suite (test_corrupt tries every model file this way)
mkdir "$T/f"
cp $M/*.json $M/pytorch_model.bin "$T/f/"
mkfifo "$T/f/sentencepiece.bpe.model"
timeout 30 "$BIN" info --model "$T/f" >/dev/null 2>"$T/err"; rc=$?
check "info refuses a FIFO as sentencepiece.bpe.model with exit 1 (got $rc)" '[ $rc -eq 1 ]'
check "info names the FIFO in one line: $(head -c 200 "$T/err")" '[ "$(wc -l < "$T/err")" -eq 1 ] && grep -q "sentencepiece.bpe.model: not a regular file" "$T/err"'
rm "$T/f/sentencepiece.bpe.model"
truncate -s 4G "$T/f/sentencepiece.bpe.model"
t0=$(date +%s%N)
echo "hello" | timeout 30 "$BIN" translate --model "$T/f" >/dev/null 2>"$T/err"; rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "translate refuses a 4 GB sparse sentencepiece.bpe.model with exit 1 (got $rc)" '[ $rc -eq 1 ]'
check "translate names its size in one line: $(head -c 200 "$T/err")" '[ "$(wc -l < "$T/err")" -eq 1 ] && grep -q "sentencepiece.bpe.model: file is 4294967296 bytes, more than the 67108864 allowed" "$T/err"'
check "the 4 GB file refused in under 5 s (took $ms ms)" '[ $ms -lt 5000 ]'
# 100,000 levels of "[": libyaml's scanner is quadratic in depth (minutes)
awk 'BEGIN { printf "threads: "; for (i = 0; i < 100000; i++) printf "["; for (i = 0; i < 100000; i++) printf "]"; print "" }' > "$T/deep.yaml"
t0=$(date +%s%N)
echo "hello" | "$BIN" translate --model $M --config "$T/deep.yaml" >/dev/null 2>"$T/err"; rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "deeply nested YAML refused with exit 2 (got $rc)" '[ $rc -eq 2 ]'
check "deeply nested YAML says one line: $(head -c 200 "$T/err")" '[ "$(wc -l < "$T/err")" -eq 1 ] && grep -q "deep.yaml:1: nested more than 8 levels deep" "$T/err"'
check "deeply nested YAML refused in under 5 s (took $ms ms)" '[ $ms -lt 5000 ]'
summary
