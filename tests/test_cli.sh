#!/bin/sh
# test_cli: the lyricmt command as a user runs it. Prints "N passed, N failed".
NAME=test_cli
. tests/harness.sh
# Expectations come from the fixtures, never typed here: golden_cli.tsv (written by
# tests/make_fixtures.py from transformers' outputs; test_golden checks it against
# golden.json) and config.json. golden FIELD TEXT [CONVENTION]: that column of the
# text's row (3 greedy text, 4 greedy score, 5/7/9 beam texts, 6/8/10 their scores).
golden() { awk -F '\t' -v f="$1" -v t="$2" -v c="${3:-m2m100}" '$1 == c && $2 == t { print $f; exit }' $M/golden_cli.tsv; }
config() { sed -n "s/^ *\"$1\": *\([0-9]*\).*/\1/p" $M/config.json; }

# one output line per input line, empty lines kept, order kept
printf 'I got money on my mind, never stop the grind\n\n   \nYeah, yeah!\nStarted from the bottom now we here\n' > "$T/in.txt"
"$BIN" translate --model $M --beam 1 -i "$T/in.txt" -o "$T/out.txt" 2>"$T/err"; rc=$?
check "translate exits 0" '[ $rc -eq 0 ]'
check "5 lines in, 5 lines out" '[ "$(wc -l < "$T/out.txt")" -eq 5 ]'
check "empty line stays empty" '[ -z "$(sed -n 2p "$T/out.txt")" ]'
check "blank line gives empty line" '[ -z "$(sed -n 3p "$T/out.txt")" ]'
check "no partial or journal left" '[ ! -e "$T/out.txt.partial" ] && [ ! -e "$T/out.txt.journal" ]'
# the same lines translated alone give the same output (batching is invisible)
for i in 1 4 5; do
    sed -n ${i}p "$T/in.txt" | "$BIN" translate --model $M --beam 1 > "$T/one.txt" 2>/dev/null
    check "line $i alone matches batched" '[ "$(cat "$T/one.txt")" = "$(sed -n ${i}p "$T/out.txt")" ]'
done
# stdin to stdout, and the golden greedy text of transformers
for conv in m2m100 small100; do
    out=$(printf 'Yeah, yeah!\n' | "$BIN" translate --model $M --convention $conv --beam 1 2>/dev/null)
    want=$(golden 3 'Yeah, yeah!' $conv)
    check "stdin/stdout greedy matches transformers ($conv: '$want')" '[ -n "$want" ] && [ "$out" = "$want" ]'
done
# n-best TSV: every golden input, its 3 best translations and their scores, which
# the output rounds to 4 decimals
grep "^m2m100	" $M/golden_cli.tsv | cut -f2 > "$T/g.txt"
"$BIN" translate --model $M --convention m2m100 --beam 5 --n-best 3 --output-format tsv -i "$T/g.txt" > "$T/g.tsv" 2>/dev/null
grep "^m2m100	" $M/golden_cli.tsv | paste - "$T/g.tsv" > "$T/g.both"
bad=$(awk -F '\t' '{ for (h = 0; h < 3; h++) { if ($(5 + 2 * h) != $(12 + 2 * h)) n++; d = $(6 + 2 * h) - $(13 + 2 * h); if (d > 0.00006 || d < -0.00006) n++ } } END { print n + 0 }' "$T/g.both")
check "n-best TSV: 3 translations and scores per line equal transformers' ($bad differ)" '[ "$(wc -l < "$T/g.tsv")" -eq 13 ] && [ "$bad" -eq 0 ]'
# invalid UTF-8 and NUL: replaced with a warning, the line is not lost
printf 'ok line\n\377\376 bad bytes\nlast\n' | "$BIN" translate --model $M --beam 1 > "$T/u.txt" 2>"$T/u.err"; rc=$?
check "invalid UTF-8 does not fail" '[ $rc -eq 0 ]'
check "invalid UTF-8 keeps line count" '[ "$(wc -l < "$T/u.txt")" -eq 3 ]'
check "invalid UTF-8 warns with line number" 'grep -q "<stdin>:2: 2 invalid UTF-8" "$T/u.err"'
# a line longer than the model's positions is truncated with a warning
python3 -c "print(' '.join(['money'] * 400))" 2>/dev/null > "$T/long.txt" || awk 'BEGIN{for(i=0;i<400;i++)printf "money ";print ""}' > "$T/long.txt"
"$BIN" translate --model $M --beam 1 -i "$T/long.txt" > "$T/l.txt" 2>"$T/l.err"; rc=$?
check "long line translated" '[ $rc -eq 0 ] && [ "$(wc -l < "$T/l.txt")" -eq 1 ]'
check "long line warned" 'grep -q "truncated" "$T/l.err"'
# usage errors exit 2, runtime errors exit 1, help exits 0
"$BIN" translate --help > "$T/h" 2>&1; check "translate --help" '[ $? -eq 0 ] && grep -q "usage: lyricmt translate" "$T/h"'
"$BIN" info --help > /dev/null 2>&1; check "info --help" '[ $? -eq 0 ]'
"$BIN" --help > /dev/null 2>&1; check "--help" '[ $? -eq 0 ]'
"$BIN" translate --model $M --bogus 1 < /dev/null > /dev/null 2>&1; check "unknown flag exits 2" '[ $? -eq 2 ]'
"$BIN" translate --model $M --beam 0 < /dev/null > /dev/null 2>"$T/e"; check "beam 0 exits 2 naming the flag" '[ $? -eq 2 ] && grep -q "num_beams" "$T/e"'
"$BIN" translate --model /nonexistent < /dev/null > /dev/null 2>"$T/e"; check "missing model exits 1" '[ $? -eq 1 ] && grep -q "config.json: missing" "$T/e"'
"$BIN" translate --model $M --tgt xx < /dev/null > /dev/null 2>"$T/e"; check "unknown language exits 1" '[ $? -eq 1 ] && grep -q "unknown target language" "$T/e"'
# YAML config: unknown keys, bad values and bad syntax are errors naming the key
printf 'decoding:\n  num_beamz: 3\n' > "$T/c1.yaml"
"$BIN" translate --model $M --config "$T/c1.yaml" < /dev/null > /dev/null 2>"$T/e"; check "unknown YAML key" '[ $? -eq 2 ] && grep -q "c1.yaml:2: unknown key .decoding.num_beamz." "$T/e"'
printf 'batch:\n  max_sentences: -4\n' > "$T/c2.yaml"
"$BIN" translate --model $M --config "$T/c2.yaml" < /dev/null > /dev/null 2>"$T/e"; check "out-of-range YAML value" '[ $? -eq 2 ] && grep -q "max_sentences" "$T/e"'
printf 'decoding: [1, 2\n' > "$T/c3.yaml"
"$BIN" translate --model $M --config "$T/c3.yaml" < /dev/null > /dev/null 2>"$T/e"; check "bad YAML syntax" '[ $? -eq 2 ] && grep -q "bad YAML" "$T/e"'
# issue 26: a key given twice (in any spelling), a section given twice and a
# second document were taken silently; bad UTF-8 was blamed on line 1
yaml_refused() { # $1 name, $2 file contents (printf format), $3 expected message
    printf "$2" > "$T/y.yaml"
    "$BIN" translate --model $M --config "$T/y.yaml" < /dev/null > /dev/null 2>"$T/e"; rc=$?
    want="y.yaml:$3" # check's own $3 is empty when it evaluates the condition
    check "$1: exit 2 and '$3' (got $rc: $(head -c 160 "$T/e"))" '[ $rc -eq 2 ] && [ "$(wc -l < "$T/e")" -eq 1 ] && grep -qF "$want" "$T/e"'
}
yaml_refused "YAML key given twice" 'threads: 1\nseed: 3\nthreads: 2\n' "3: 'threads' is set twice (first on line 1)"
yaml_refused "YAML setting given twice in two spellings" 'decoding:\n  num_beams: 2\nnum_beams: 3\n' "3: 'num_beams' is set twice (first on line 2)"
yaml_refused "YAML section given twice" 'batch:\n  max_tokens: 100\nthreads: 1\nbatch:\n  max_sentences: 3\n' "4: section 'batch' is given twice (first on line 1)"
yaml_refused "a second YAML document" 'threads: 1\n---\nthreads: 2\n' "2: a second YAML document"
yaml_refused "an empty second YAML document" 'threads: 1\n---\n' "2: a second YAML document"
yaml_refused "bad UTF-8 in YAML named by its line" 'threads: 1\nbatch:\n  max_tokens: 100\n\n# caf\351\nseed: 2\n' "5: bad YAML: invalid trailing UTF-8 octet"
yaml_refused "a control character in YAML named by its line" 'threads: 1\n\nseed: 3\001\n' "3: bad YAML: control characters are not allowed"
printf 'threads: 1\n...\n' > "$T/y.yaml"
"$BIN" translate --model $M --config "$T/y.yaml" < /dev/null > /dev/null 2>"$T/e"; check "a YAML document end marker is fine" '[ $? -eq 0 ]'
# flags override the file
"$BIN" translate --model $M --config configs/greedy-fast.yaml --beam 5 -i "$T/in.txt" > "$T/b.txt" 2>/dev/null
"$BIN" translate --model $M --beam 5 -i "$T/in.txt" > "$T/b2.txt" 2>/dev/null
check "flag overrides config file" 'cmp -s "$T/b.txt" "$T/b2.txt"'
# sampling is reproducible with a seed
"$BIN" translate --model $M --config configs/augment.yaml --output-format text -i "$T/in.txt" > "$T/s1.txt" 2>/dev/null
"$BIN" translate --model $M --config configs/augment.yaml --output-format text -i "$T/in.txt" > "$T/s2.txt" 2>/dev/null
check "sampling reproducible" 'cmp -s "$T/s1.txt" "$T/s2.txt" && [ "$(wc -l < "$T/s1.txt")" -eq 5 ]'
# a failed run leaves no output file behind
"$BIN" translate --model /nonexistent -i "$T/in.txt" -o "$T/none.txt" 2>/dev/null
check "failed run writes nothing" '[ ! -e "$T/none.txt" ] && [ ! -e "$T/none.txt.partial" ]'
# devices and precisions: fp16 is GPU-only, int8 CPU-only; --device cuda says why it cannot run (no build, or no GPU)
echo "yeah" | "$BIN" translate --model $M --precision fp16 > /dev/null 2>"$T/e"; rc=$?
check "fp16 on the CPU is a usage error" '[ $rc -eq 2 ] && grep -q "precision fp16 is for --device cuda" "$T/e"'
echo "yeah" | "$BIN" translate --model $M --device cuda --precision int8 > /dev/null 2>"$T/e"; rc=$?
check "int8 on the GPU is a usage error" '[ $rc -eq 2 ] && grep -q "precision int8 is for --device cpu" "$T/e"'
"$BIN" translate --model $M --precision fp32 -i "$T/in.txt" > "$T/p32.txt" 2>/dev/null
for p in int8 bf16; do
    "$BIN" translate --model $M --precision $p -i "$T/in.txt" > "$T/p$p.txt" 2>"$T/e$p"; rc=$?
    check "$p on the CPU translates every line" '[ $rc -eq 0 ] && [ "$(wc -l < "$T/p$p.txt")" -eq "$(wc -l < "$T/in.txt")" ]'
done
# where the CPU lists AMX (and the kernel grants its tiles), int8 and bf16 run on it without a notice
if grep -qw amx_int8 /proc/cpuinfo && grep -qw amx_bf16 /proc/cpuinfo && ! grep -q "refused AMX" "$T/eint8"; then
    check "int8 and bf16 on AMX tiles: no notice" '! grep -q "note:" "$T/eint8" && ! grep -q "note:" "$T/ebf16"'
fi
# a CPU without the instructions (hidden here) falls back with a one-line notice
LYRICMT_CPU_FEATURES=noamx "$BIN" translate --model $M --precision int8 -i "$T/in.txt" > "$T/pvnni.txt" 2>"$T/e"; rc=$?
check "int8 without AMX: VNNI, same output, one notice" '[ $rc -eq 0 ] && cmp -s "$T/pvnni.txt" "$T/pint8.txt" && [ "$(grep -c "lacks AMX: int8 runs on AVX-512 VNNI" "$T/e")" -eq 1 ]'
LYRICMT_CPU_FEATURES=noamx,novnni "$BIN" translate --model $M --precision int8 -i "$T/in.txt" > "$T/pavx2.txt" 2>"$T/e"; rc=$?
check "int8 without AMX or VNNI: AVX2, same output, one notice" '[ $rc -eq 0 ] && cmp -s "$T/pavx2.txt" "$T/pint8.txt" && [ "$(grep -c "lacks AMX and AVX-512 VNNI: int8 runs on AVX2" "$T/e")" -eq 1 ]'
LYRICMT_CPU_FEATURES=noamx,novnni,noavx2 "$BIN" translate --model $M --precision int8 -i "$T/in.txt" > "$T/pno.txt" 2>"$T/e"; rc=$?
check "int8 without AMX, VNNI or AVX2: fp32, one notice" '[ $rc -eq 0 ] && cmp -s "$T/pno.txt" "$T/p32.txt" && [ "$(grep -c "int8 runs in fp32" "$T/e")" -eq 1 ]'
LYRICMT_CPU_FEATURES=noamx "$BIN" translate --model $M --precision bf16 -i "$T/in.txt" > "$T/pb16.txt" 2>"$T/e"; rc=$?
check "bf16 without AMX: AVX-512, every line, one notice" '[ $rc -eq 0 ] && [ "$(wc -l < "$T/pb16.txt")" -eq "$(wc -l < "$T/in.txt")" ] && [ "$(grep -c "lacks AMX.*: bf16 runs on AVX-512" "$T/e")" -eq 1 ]'
LYRICMT_CPU_FEATURES=noamx,nobf16 "$BIN" translate --model $M --precision bf16 -i "$T/in.txt" > "$T/pwide.txt" 2>"$T/e"; rc=$?
check "bf16 without AMX or AVX-512 BF16: AVX-512F, same output, one notice" '[ $rc -eq 0 ] && cmp -s "$T/pwide.txt" "$T/pb16.txt" && [ "$(grep -c "lacks AMX and AVX-512 BF16: bf16 runs on AVX-512F" "$T/e")" -eq 1 ]'
LYRICMT_CPU_FEATURES=noavx512 "$BIN" translate --model $M --precision bf16 -i "$T/in.txt" > "$T/pno.txt" 2>"$T/e"; rc=$?
check "bf16 without AVX-512: fp32, one notice" '[ $rc -eq 0 ] && cmp -s "$T/pno.txt" "$T/p32.txt" && [ "$(grep -c "bf16 runs in fp32" "$T/e")" -eq 1 ]'
echo "yeah" | "$BIN" translate --model $M --device cuda > "$T/cuda.out" 2>"$T/e"; rc=$?
check "--device cuda runs or says why not" '[ $rc -eq 0 ] && [ -s "$T/cuda.out" ] || grep -Eq "no CUDA GPU found|built without CUDA" "$T/e"'
echo "yeah" | "$BIN" translate --model $M --device tpu > /dev/null 2>"$T/e"; rc=$?
check "unknown device is a usage error" '[ $rc -ne 0 ] && grep -q "tpu" "$T/e"'
# info describes the model
"$BIN" info --model $M > "$T/info" 2>&1
want="decoder:        $(config decoder_layers) layers, $(config decoder_attention_heads) heads, d_model $(config d_model)"
check "info: $want" 'grep -q "$want" "$T/info" && grep -q "stored f16" "$T/info"'
summary
