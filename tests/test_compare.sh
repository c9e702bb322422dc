#!/bin/sh
# test_compare: `lyricmt compare` shows what `translate` gives for each model,
# its chrF and BLEU are what `eval` gives on those translations (eval itself is
# checked against sacreBLEU in test_eval.sh and test_metrics), its tables are
# escaped, and it refuses bad input without touching anything.
NAME=test_compare
. tests/harness.sh
D=samples/model
H=samples/parallel

"$BIN" compare --model $M --model $D -i $H/heldout.en --ref $H/heldout.ko -o "$T/cmp.md" --html "$T/cmp.html" --threads 1; rc=$?
check "compare runs (exit $rc)" '[ $rc -eq 0 ] && [ -s "$T/cmp.md" ] && [ -s "$T/cmp.html" ]'
check "no .partial files left" '[ -z "$(ls "$T" | grep partial)" ]'
n=$(wc -l < $H/heldout.en)
check "one table row per line ($n)" '[ "$(grep -c "^| [0-9]* | " "$T/cmp.md")" -eq $n ]'
for m in $M $D; do
    "$BIN" translate --model $m -i $H/heldout.en -o "$T/out.txt" --quiet --threads 1
    want=$("$BIN" eval --hyp "$T/out.txt" --ref $H/heldout.ko | awk '/BLEU/ { b = $3 } /chrF2/ { c = $3 } END { print c " | " b }')
    check "chrF and BLEU of $m in the table are eval's ($want): $(grep "^| $m |" "$T/cmp.md")" 'grep -qF "| $m | $want |" "$T/cmp.md"'
    check "the HTML page has the same scores for $m" 'grep -qF "<tr><td>$m</td><td class=\"num\">$(echo "$want" | cut -d" " -f1)</td>" "$T/cmp.html"'
    cp "$T/out.txt" "$T/out.$(basename $m)"
done
# without references the first model is shown unmarked: its column is translate's output
"$BIN" compare --model $D --model $M -i $H/heldout.en --threads 1 > "$T/plain.md"
awk -F' \\| ' '/^\| [0-9]+ \| / { print $3 }' "$T/plain.md" > "$T/col"
check "the first model's column is translate's output: $(diff "$T/col" "$T/out.model" | head -3)" 'cmp -s "$T/col" "$T/out.model"'
check "no score table without references" '! grep -q chrF2 "$T/plain.md"'
check "a model that differs from the first is marked" 'grep -q "\*\*" "$T/plain.md"'

# a floor no hypothesis reaches leaves every line with none: empty cells, not
# a freed string (the augmentation's dropped texts once came back as the line's text)
"$BIN" compare --model $M --model $D -i $H/heldout.en --threads 1 --set output.min_score=-0.0001 > "$T/none.md" 2>"$T/none.err"; rc=$?
check "every hypothesis dropped: exit $rc, empty cells" '[ $rc -eq 0 ] && [ "$(grep -c "^| [0-9]* | .* |  |  |$" "$T/none.md")" -eq $n ]'

# escaping: table syntax and markup in the text stay text
printf 'a | b <script>alert("x")</script> & \047q\047\nWe ride tonight\nstray\rcarriage\treturn\n' > "$T/evil.en"
printf '<b>x</b> | y\n우리는 오늘 밤 달려\n밤\n' > "$T/evil.ko"
"$BIN" compare --model $D --model $M -i "$T/evil.en" --ref "$T/evil.ko" -o "$T/evil.md" --html "$T/evil.html" --threads 1; rc=$?
check "compare on markup (exit $rc)" '[ $rc -eq 0 ]'
check "HTML: no raw markup from the input" '! grep -q "<script>\|<b>x" "$T/evil.html" && grep -qF "a | b &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;q&#39;" "$T/evil.html"'
check "Markdown: pipes and angle brackets escaped" 'grep -qF "| a \| b \<script\>alert(\"x\")\</script\> \& '"'"'q'"'"' |" "$T/evil.md" && grep -qF "\<b\>x\</b\> \| y" "$T/evil.md"'
check "a CR inside a line does not break its row: 3 rows" '[ "$(grep -c "^| [0-9]" "$T/evil.md")" -eq 3 ] && grep -q "^| 3 | stray carriage return |" "$T/evil.md"'
check "every Markdown row has the same number of cells" '[ "$(grep "^| [0-9]" "$T/evil.md" | sed "s/\\\\|//g" | awk -F"|" "{ print NF }" | sort -u | wc -l)" -eq 1 ]'
check "a line that matches its reference is unmarked in the HTML" 'grep -qF "<td class=\"model\">우리는 오늘 밤 달려</td>" "$T/evil.html"'

# issue 26: bidi controls went raw into the Markdown (an RLO reverses the rest
# of a row in a terminal, so the table shows other text than it holds); C1
# controls and line separators too. Both tables name them; joiners are kept.
printf 'We ride \342\200\256tonight\nfire \360\237\221\250\342\200\215\360\237\221\251 mic\n' > "$T/bidi.en"
printf '\342\201\246x\342\200\250y\302\205z\342\201\251\n불\n' > "$T/bidi.ko"
"$BIN" compare --model $D --model $M -i "$T/bidi.en" --ref "$T/bidi.ko" -o "$T/bidi.md" --html "$T/bidi.html" --threads 1; rc=$?
check "compare on bidi controls (exit $rc)" '[ $rc -eq 0 ]'
for f in bidi.md bidi.html; do
    check "$f: the RLO, isolates, U+2028 and U+0085 are named, not written" 'grep -qF "We ride {U+202E}tonight" "$T/$f" && grep -qF "{U+2066}x{U+2028}y{U+0085}z{U+2069}" "$T/$f" && ! grep -q "$(printf "\342\200\256\|\342\201\246\|\342\200\250\|\302\205")" "$T/$f"'
    check "$f: an emoji joiner is kept" 'grep -qF "$(printf "\360\237\221\250\342\200\215\360\237\221\251")" "$T/$f"'
done

# refusals
cp $H/heldout.en "$T/src.en"
"$BIN" compare --model $D --model $M -i "$T/src.en" -o "$T/src.en" >/dev/null 2>"$T/err"; rc=$?
check "-o the input: exit 1, input untouched (got $rc: $(cat "$T/err"))" '[ $rc -eq 1 ] && cmp -s "$T/src.en" $H/heldout.en && grep -q "refusing to write .*src.en: it is the input" "$T/err"'
"$BIN" compare --model $D --model $M -i $H/heldout.en --ref $H/train.tsv >/dev/null 2>"$T/err"; rc=$?
check "different line counts: exit 1 (got $rc)" '[ $rc -eq 1 ] && grep -q "must pair up" "$T/err"'
"$BIN" compare --model $D --model "$T/nomodel" -i $H/heldout.en -o "$T/never.md" >/dev/null 2>"$T/err"; rc=$?
check "a model that does not load: exit 1, one line, no output (got $rc: $(cat "$T/err"))" '[ $rc -eq 1 ] && [ "$(wc -l < "$T/err")" -eq 1 ] && [ ! -e "$T/never.md" ] && [ ! -e "$T/never.md.partial" ]'
for args in "--model $D -i $H/heldout.en" "--model $D --model $M" "--model $D --model $M -i $H/heldout.en --tokenize 13a" "--model $D --model $M -i $H/heldout.en --bogus 1" "--model $D --model $M -i $H/heldout.en --beam 0"; do
    "$BIN" compare $args >/dev/null 2>&1; rc=$?
    check "usage error exit 2 for: $args (got $rc)" '[ $rc -eq 2 ]'
done
summary
