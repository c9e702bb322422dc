#!/bin/sh
# test_bench: `lyricmt bench` on the tiny fixture: its table (stdout and
# Markdown), JSON, plot and YAML exist and agree, the YAML round-trips through
# translate --config, settings this machine cannot run are rows that say so,
# the time limit holds, its files never go over an input or into the model,
# Ctrl-C writes nothing, and usage errors exit 2.
NAME=test_bench
. tests/harness.sh
bench() { "$BIN" bench --model $M "$@"; }

# ---- a short sweep: two beams, two budgets, the thread variants ----
bench --seconds 12 --lines 40 --budgets 512,2048 --beams 1 --progress plain -o "$T/b" > "$T/out" 2>"$T/err"; rc=$?
check "bench exits 0 ($(tail -n 1 "$T/err"))" '[ $rc -eq 0 ]'
check "it writes the table, JSON, plot and YAML, no .partial left" \
    '[ -s "$T/b.md" ] && [ -s "$T/b.json" ] && [ -s "$T/b.svg" ] && [ -s "$T/b.yaml" ] && ! ls "$T"/*.partial >/dev/null 2>&1'
check "the table on stdout is the Markdown file" 'cmp -s "$T/out" "$T/b.md"'
check "a progress line per setting on stderr" 'grep -q "^lyricmt bench: 1/" "$T/err" && grep -q "cpu fp32 beam 5 budget 512, 2 threads" "$T/err"'
cores=$(getconf _NPROCESSORS_ONLN)
# 3 precisions x 2 beams x 2 budgets, then the thread and worker variants at the best budget
variants=0; [ "$cores" -gt 1 ] && variants=2; [ "$cores" -ge 4 ] && variants=3
want=$((12 + 6 * variants))
check "one row per setting: $want CPU rows ($(grep -c '^| cpu |' "$T/b.md"))" '[ "$(grep -c "^| cpu |" "$T/b.md")" -eq $want ]'
check "the GPU row says why it did not run" 'grep -q "^| cuda | .* not run: no GPU" "$T/b.md"'
python3 - "$T/b.json" > "$T/json.check" 2>&1 <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
rows = [r for r in d["rows"] if r["device"] == "cpu"]
ran = [r for r in rows if r["status"] == "ran"]
assert len(ran) >= 12, len(ran)
assert all(r["lines_per_s"] > 0 and r["tokens_per_s"] > r["lines_per_s"] and r["peak_mb"] > 1 for r in ran)
# fp32 rows are the reference: every line the same (the search does not depend on budget, threads or workers)
assert all(r["same_as_fp32"] == r["compared_with_fp32"] > 0 for r in ran if r["precision"] == "fp32")
assert all(r["same_as_default"] == r["compared_with_default"] for r in ran if r["precision"] == "fp32" and r["beams"] == d["default_beams"])
pick = d["rows"][d["fastest_within_agreement"]]
assert pick["status"] == "ran" and pick["same_as_default"] >= 0.95 * pick["compared_with_default"]
assert {r["precision"] for r in ran} == {"fp32", "int8", "bf16"} and {r["beams"] for r in ran} == {1, 5}
print(pick["precision"], pick["beams"], pick["max_tokens"], pick["threads"], pick["workers"])
PY
check "the JSON: rates, memory, fp32 agreeing with itself, the pick within 95% ($(tail -n 1 "$T/json.check"))" '[ $? -eq 0 ]'
check "the plot is an SVG with a line per precision and beam" 'grep -q "<svg" "$T/b.svg" && [ "$(grep -c "beam [15]" "$T/b.svg")" -ge 6 ]'
check "the Markdown names the fastest setting" 'grep -q "\*\*fastest\*\*" "$T/b.md" && grep -q "^Fastest with at least 95%" "$T/b.md"'

# ---- the YAML round-trips through --config: the same output as its settings given as flags ----
y() { sed -n "s/^ *$1: *//p" "$T/b.yaml" | head -n 1; }
printf 'I got money on my mind\nCold nights in the city\n\nFire on the mic\n' > "$T/in.txt"
"$BIN" translate --model $M --config "$T/b.yaml" -i "$T/in.txt" -o "$T/yaml.out" 2>"$T/y.err"; rc=$?
"$BIN" translate --model $M --precision "$(y precision)" --threads "$(y threads)" --workers "$(y workers)" --beam "$(y num_beams)" \
    --set batch.max_tokens="$(y max_tokens)" --set batch.max_sentences="$(y max_sentences)" -i "$T/in.txt" -o "$T/flags.out" 2>/dev/null
check "translate --config bench.yaml runs ($(tail -n 1 "$T/y.err"))" '[ $rc -eq 0 ] && [ "$(wc -l < "$T/yaml.out")" -eq 4 ]'
check "and gives what its settings as flags give" 'cmp -s "$T/yaml.out" "$T/flags.out"'
check "the YAML sets every swept key" '[ -n "$(y precision)" ] && [ -n "$(y threads)" ] && [ -n "$(y max_tokens)" ] && [ -n "$(y num_beams)" ]'

# ---- PNG; precisions this CPU cannot run; the time limit ----
bench --seconds 3 --lines 20 --budgets 1024 --no-threads --beams 1 --plot png --progress none -o "$T/p" > /dev/null 2>&1; rc=$?
check "--plot png writes a PNG" '[ $rc -eq 0 ] && [ "$(head -c 4 "$T/p.png" | od -An -c | tr -d " ")" = "211PNG" ]'
LYRICMT_CPU_FEATURES=noavx512,noavx2,novnni,nobf16 "$BIN" bench --model $M --seconds 3 --lines 20 --budgets 1024 --no-threads \
    --progress none -o "$T/f" > "$T/f.out" 2>&1; rc=$?
check "a CPU without int8 or bf16 kernels: those rows say so, fp32 runs" \
    '[ $rc -eq 0 ] && grep -q "| cpu | int8 .* not run: this CPU has no int8 kernel: it would run in fp32" "$T/f.out" &&
     grep -q "| cpu | bf16 .* not run: this CPU has no bf16 kernel" "$T/f.out" && grep -q "| cpu | fp32 | 5 | 1024 | [0-9]* | [0-9.]* |" "$T/f.out"'
start=$(date +%s)
bench --seconds 2 --lines 400 --progress none -o "$T/t" > "$T/t.out" 2>&1; rc=$?
took=$(( $(date +%s) - start ))
check "--seconds 2 stops the sweep in time (${took} s), the rest reported as not run" \
    '[ $rc -eq 0 ] && [ $took -le 10 ] && grep -q "not run: time limit (--seconds 2) reached" "$T/t.out"'

# ---- files: never over a model file or an input; written whole or not at all (base/outfile.h) ----
ls $M > "$T/model.before"
bench --seconds 1 -o $M/config > /dev/null 2>"$T/e"; rc=$?
check "refuses PREFIX.json over the model's config.json, before the sweep, nothing written" \
    '[ $rc -eq 1 ] && grep -q "config.json: it is the model file" "$T/e" && ls $M | cmp -s - "$T/model.before"'
cp "$T/in.txt" "$T/lines.md"
bench --seconds 1 -i "$T/lines.md" -o "$T/lines" > /dev/null 2>"$T/e"; rc=$?
check "refuses to write over its input (PREFIX.md is -i)" '[ $rc -eq 1 ] && grep -q "lines.md: it is the input" "$T/e" && cmp -s "$T/lines.md" "$T/in.txt"'
ln -s "$PWD/$M/config.json" "$T/link.json"
bench --seconds 1 -o "$T/link" > /dev/null 2>"$T/e"; rc=$?
check "refuses a name that links to a model file" '[ $rc -eq 1 ] && grep -q "it is the model file" "$T/e"'
mkdir "$T/dir.md"
bench --seconds 1 -o "$T/dir" > /dev/null 2>"$T/e"; rc=$?
check "refuses a name that is a directory" '[ $rc -eq 1 ] && grep -q "dir.md: exists and is not a regular file, device or FIFO" "$T/e"'
"$BIN" bench --model $M --seconds 30 --lines 400 --progress none -o "$T/s" > "$T/s.out" 2>"$T/s.err" &
pid=$!
sleep 3; kill -INT $pid; wait $pid; rc=$?
check "Ctrl-C: exit 130, the table so far on stdout, no file written (exit $rc)" \
    '[ $rc -eq 130 ] && grep -q "stopped early" "$T/s.out" && grep -q "no file was written" "$T/s.err" && ! ls "$T"/s.* 2>/dev/null | grep -v "s.out\|s.err"'
env PATH=/nonexistent "$PWD/$BIN" bench --model $M --seconds 2 --lines 20 --budgets 1024 --no-threads --progress none -o "$T/g" > /dev/null 2>"$T/e"; rc=$?
check "without gnuplot: exit 1 saying so, the other files written" \
    '[ $rc -eq 1 ] && grep -q "gnuplot not found" "$T/e" && [ -s "$T/g.md" ] && [ -s "$T/g.yaml" ] && [ ! -e "$T/g.svg" ] && [ ! -e "$T/g.svg.partial" ]'

# ---- usage errors ----
for args in "--beam 5" "--precisions fp64" "--seconds 0" "--budgets 0" "--plot jpg" "--min-agreement 200" "--bogus 1"; do
    bench $args > /dev/null 2>"$T/e"; rc=$?
    check "usage error: $args (exit $rc)" '[ $rc -eq 2 ] && [ "$(wc -l < "$T/e")" -eq 2 ]'
done
"$BIN" bench > /dev/null 2>&1; check "no --model: exit 2" '[ $? -eq 2 ]'
"$BIN" bench --help | grep -q "usage: lyricmt bench"; check "bench --help" '[ $? -eq 0 ]'
summary
