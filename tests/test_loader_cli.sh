#!/bin/sh
# test_loader_cli: hostile weight files through the command (issue 14): one
# error line and exit status 1 from `info` and `translate`, never a signal.
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
summary
