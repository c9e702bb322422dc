#!/bin/sh
# test_augment: the augmentation workflow: sampled hypotheses, --dedup-hypotheses,
# --min-score, --output-format pairs (a JSONL parallel corpus), the README's
# recipe and its split into aligned FILE.en / FILE.ko, and kill -9 then resume.
NAME=test_augment
. tests/harness.sh
run() { "$BIN" translate --model $M --progress none "$@"; }
S="--set do_sample=true --set num_beams=1 --set seed=7"
printf 'I got money on my mind, never stop the grind\nStarted from the bottom now we here\n\nCold nights in the city, dreams made of gold\nI got money on my mind, never stop the grind\nyeah\n' > "$T/in.txt"

# ---- pairs: one line per hypothesis with id, sample index, source, target, score ----
run $S --n-best 5 --output-format pairs -i "$T/in.txt" -o "$T/all.jsonl" 2>/dev/null; rc=$?
check "pairs: 5 per non-empty line (25)" '[ $rc -eq 0 ] && [ "$(wc -l < "$T/all.jsonl")" -eq 25 ]'
check "pairs: fields in order, sample indices 0-4" 'awk "/^\{\"id\":[0-9]+,\"sample\":[0-4],\"source\":\".*\",\"target\":\".+\",\"score\":-[0-9]+\.[0-9][0-9][0-9][0-9][0-9][0-9]\}$/ { n++ } END { exit n != 25 }" "$T/all.jsonl" && [ "$(sed -n "s/.*\"sample\":\([0-9]\).*/\1/p" "$T/all.jsonl" | sort | uniq -c | awk "{print \$1}" | tr "\n" " ")" = "5 5 5 5 5 " ]'
check "pairs: ids are input line numbers (blank line 3 has none)" '[ "$(sed "s/^{\"id\":\([0-9]*\),.*/\1/" "$T/all.jsonl" | uniq | tr "\n" " ")" = "1 2 4 5 6 " ]'
check "pairs: a repeated line has the same samples" '[ "$(grep "^{\"id\":1," "$T/all.jsonl" | cut -d, -f2-)" = "$(grep "^{\"id\":5," "$T/all.jsonl" | cut -d, -f2-)" ]'
# the score of each pair is what lyricmt score gives that (source, target) pair
"$BIN" score --model $M --progress none --format jsonl -i "$T/all.jsonl" -o "$T/rescored.tsv" 2>/dev/null
bad=$(sed 's/.*"score":\(-[0-9.]*\)}$/\1/' "$T/all.jsonl" | paste - "$T/rescored.tsv" | awk -F '\t' '{ d = $1 - $4; if (d < 0) d = -d; if (d > 1e-6 * (-$1) + 2e-6) b++ } END { print b + 0 }')
check "pairs: scores equal lyricmt score's normalized ($bad differ)" '[ "$(wc -l < "$T/rescored.tsv")" -eq 25 ] && [ "$bad" -eq 0 ]'

# ---- --dedup-hypotheses: a cold temperature repeats samples; repeats go, first ones stay ----
C="--set temperature=0.05"
run $S $C --n-best 5 --output-format pairs -i "$T/in.txt" -o "$T/cold.jsonl" 2>/dev/null
run $S $C --n-best 5 --output-format pairs --dedup-hypotheses -i "$T/in.txt" -o "$T/dedup.jsonl" 2>/dev/null; rc=$?
# expected: the undeduplicated output keeping the first (id, target) of each
awk '{ k = $0; sub(/,"sample":[0-9]+/, "", k); sub(/,"score":.*/, "", k); if (!seen[k]++) print }' "$T/cold.jsonl" > "$T/want"
check "dedup: repeats existed to drop" '[ "$(wc -l < "$T/want")" -lt "$(wc -l < "$T/cold.jsonl")" ]'
check "dedup: exactly the first of each repeated sample kept, with its index" '[ $rc -eq 0 ] && cmp -s "$T/want" "$T/dedup.jsonl"'
run $S $C --n-best 5 --output-format jsonl --dedup-hypotheses -i "$T/in.txt" -o "$T/dedup2.jsonl" 2>/dev/null
check "dedup: JSONL hypotheses lists shrink too" '[ "$(wc -l < "$T/dedup2.jsonl")" -eq 6 ] && [ "$(grep -o "\"translation\":" "$T/dedup2.jsonl" | wc -l)" -lt 30 ]'
# issue 26: a line deduplicated down to one hypothesis kept no list at all
one=$(grep -c "\"hypotheses\":\[{[^]{]*}\]" "$T/dedup2.jsonl")
check "dedup: every record keeps its hypotheses list, $one of them down to one" '[ "$(grep -c "\"hypotheses\":\[" "$T/dedup2.jsonl")" -eq 6 ] && [ "$one" -ge 1 ]'

# ---- --min-score: exactly the pairs at or above the floor ----
floor=$(sed 's/.*"score":\(-[0-9.]*\)}$/\1/' "$T/all.jsonl" | sort -n | sed -n 12p)
run $S --n-best 5 --output-format pairs --min-score "$floor" -i "$T/in.txt" -o "$T/min.jsonl" 2>/dev/null; rc=$?
awk -v f="$floor" '{ s = $0; sub(/.*"score":/, "", s); sub(/}$/, "", s); if (s + 0 >= f + 0) print }' "$T/all.jsonl" > "$T/want"
check "min-score $floor: the pairs at or above it, none else" '[ $rc -eq 0 ] && [ "$(wc -l < "$T/min.jsonl")" -ge 10 ] && [ "$(wc -l < "$T/min.jsonl")" -lt 25 ] && cmp -s "$T/want" "$T/min.jsonl"'
run $S --n-best 5 --output-format text --min-score -0.5 -i "$T/in.txt" -o "$T/none.txt" 2>/dev/null; rc=$?
check "min-score: text output keeps one (empty) line per input line" '[ $rc -eq 0 ] && [ "$(wc -l < "$T/none.txt")" -eq 6 ] && [ "$(grep -c . "$T/none.txt")" -eq 0 ]'
run $S --min-score 0.5 -i "$T/in.txt" > /dev/null 2>"$T/e"; rc=$?
check "min-score above 0 is a usage error" '[ $rc -eq 2 ] && grep -q "output.min_score" "$T/e"'
"$BIN" score --model $M --min-score -2 -i "$T/in.txt" > /dev/null 2>"$T/e"; rc=$?
check "score refuses --min-score" '[ $rc -eq 2 ]'
run --format pairs -i "$T/in.txt" > /dev/null 2>"$T/e"; rc=$?
check "pairs is not an input format" '[ $rc -eq 2 ] && grep -q "text, tsv, jsonl, got .pairs." "$T/e"'

# ---- the config file does the same ----
run --config configs/augment.yaml -i "$T/in.txt" -o "$T/cfg.jsonl" 2>/dev/null; rc=$?
run --config configs/augment.yaml -i "$T/in.txt" -o "$T/cfg2.jsonl" 2>/dev/null
check "augment.yaml: pairs, up to 5 deduplicated samples a line, reproducible" '[ $rc -eq 0 ] && [ "$(wc -l < "$T/cfg.jsonl")" -ge 15 ] && [ "$(wc -l < "$T/cfg.jsonl")" -le 25 ] && grep -q "\"sample\":4" "$T/cfg.jsonl" && cmp -s "$T/cfg.jsonl" "$T/cfg2.jsonl"'
printf 'output:\n  dedup_hypotheses: maybe\n' > "$T/bad.yaml"
run --config "$T/bad.yaml" -i "$T/in.txt" > /dev/null 2>"$T/e"; rc=$?
check "bad dedup_hypotheses in YAML names file, line, key" '[ $rc -eq 2 ] && grep -q "bad.yaml:2: .output.dedup_hypotheses. must be true or false" "$T/e"'

# ---- rescoring reads each sample's labels off the sampling's own rows where its tokens are the
# text's (issue 28): the same bytes as force-decoding every pair (LYRICMT_RESCORE=decode), with the
# processors' edits, with samples stopped at max_length (their </s> one step later), in both conventions ----
i=0
for extra in "" "--set decoding.repetition_penalty=1.3 --set decoding.no_repeat_ngram_size=2 --set decoding.min_length=4" \
             "--max-length 7" "--convention small100 --max-length 9 --precision int8"; do
    i=$((i + 1))
    run --config configs/augment.yaml $extra --min-score -3.6 -i samples/songs -o "$T/reuse$i.jsonl" 2>/dev/null; rc=$?
    LYRICMT_RESCORE=decode run --config configs/augment.yaml $extra --min-score -3.6 -i samples/songs -o "$T/decoded$i.jsonl" 2>/dev/null
    check "rescoring from the sampling's rows == force-decoding every pair, byte for byte ($i: $(wc -l < "$T/reuse$i.jsonl") pairs kept)" \
        '[ $rc -eq 0 ] && [ "$(wc -l < "$T/reuse$i.jsonl")" -ge 10 ] && cmp -s "$T/reuse$i.jsonl" "$T/decoded$i.jsonl"'
done

# ---- split-pairs: two aligned files, all or nothing ----
"$BIN" split-pairs -i "$T/min.jsonl" -o "$T/min" 2>"$T/e"; rc=$?
n=$(wc -l < "$T/min.jsonl")
check "split-pairs: PREFIX.en and PREFIX.ko, one line per pair" '[ $rc -eq 0 ] && [ "$(wc -l < "$T/min.en")" -eq $n ] && [ "$(wc -l < "$T/min.ko")" -eq $n ] && grep -q "$n pairs written" "$T/e"'
sed 's/.*"source":"\([^"]*\)","target".*/\1/' "$T/min.jsonl" > "$T/want.en"
sed 's/.*"target":"\([^"]*\)","score".*/\1/' "$T/min.jsonl" > "$T/want.ko"
check "split-pairs: line k of each is pair k" 'cmp -s "$T/want.en" "$T/min.en" && cmp -s "$T/want.ko" "$T/min.ko"'
printf '{"source": "a\\nb", "target": "c\\td"}\n{"source": "x", "target": "y"}\n{"target": "z"}\n' > "$T/bad.jsonl"
"$BIN" split-pairs -i "$T/bad.jsonl" -o "$T/bad" 2>"$T/e"; rc=$?
check "split-pairs: a line that is not a pair stops it, named, nothing written" '[ $rc -eq 1 ] && grep -q "bad.jsonl:3: not a pair (no string source field)" "$T/e" && [ -z "$(ls "$T" | grep "^bad\.\(en\|ko\)")" ]'
head -2 "$T/bad.jsonl" > "$T/two.jsonl"
"$BIN" split-pairs -i "$T/two.jsonl" -o "$T/two" --src eng --tgt kor 2>/dev/null; rc=$?
check "split-pairs: line breaks and tabs inside a text become spaces; --src/--tgt name the files" '[ $rc -eq 0 ] && [ "$(cat "$T/two.eng")" = "$(printf "a b\nx")" ] && [ "$(cat "$T/two.kor")" = "$(printf "c d\ny")" ]'
"$BIN" split-pairs -i "$T/two.jsonl" -o "$T/two" --src jsonl 2>"$T/e"; rc=$?
check "split-pairs: never writes over its input" '[ $rc -eq 1 ] && grep -q "it is the input" "$T/e" && [ "$(wc -l < "$T/two.jsonl")" -eq 2 ]'

# ---- the README's recipe, as written there, with the counts it states ----
# (in a scratch directory: the repository's files linked in, build/lyricmt being the binary under test)
mkdir -p "$T/recipe/build" && ln -s "$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")" "$T/recipe/build/lyricmt"
for d in configs samples tests; do ln -s "$(pwd)/$d" "$T/recipe/$d"; done
sed -n '/^```sh recipe$/,/^```$/p' README.md | sed '1d;$d' > "$T/recipe.sh"
(cd "$T/recipe" && sh -e ../recipe.sh > ../recipe.out 2>&1); rc=$?
check "README recipe runs as written" '[ $rc -eq 0 ] && [ -s "$T/recipe.sh" ]'
p=$(wc -l < "$T/recipe/songs.pairs.jsonl"); e=$(wc -l < "$T/recipe/songs.en"); k=$(wc -l < "$T/recipe/songs.ko"); sc=$(wc -l < "$T/recipe/songs.scores.tsv")
check "README states the recipe's counts ($p pairs kept)" 'grep -q "^| pairs kept (score >= -3.2) | $p |$" README.md && [ $e -eq $p ] && [ $k -eq $p ] && [ $sc -eq $p ]'
run --config configs/augment.yaml -i samples/songs > "$T/unfiltered.jsonl" 2>/dev/null
u=$(wc -l < "$T/unfiltered.jsonl")
check "README states the unfiltered count ($u)" 'grep -q "^| pairs sampled, repeats dropped | $u |$" README.md'

# ---- kill -9, resume byte-identical; a changed floor refuses to resume ----
awk 'BEGIN { srand(3); split("money mind grind bottom here yeah never stop flow rhyme street dream gold chain night", w, " ")
    for (i = 0; i < 600; i++) { s = ""; n = 2 + int(rand() * 10); for (k = 0; k < n; k++) s = s (k ? " " : "") w[int(rand() * 15) + 1]; print s } }' > "$T/k.txt"
A="--config configs/augment.yaml --min-score -3.4 --set batch.window_lines=20"
run $A -i "$T/k.txt" -o "$T/k.ref" 2>/dev/null
check "600 lines augmented" '[ "$(wc -l < "$T/k.ref")" -gt 600 ]'
mid=0; last=0
for round in 1 2 3 4 5 6 7 8; do
    "$BIN" translate --model $M --progress none $A -i "$T/k.txt" -o "$T/k.out" 2>/dev/null &
    pid=$!
    [ $((round % 3)) -ne 0 ] && wait_journal $pid "$T/k.out.journal" $last
    sleep "$(awk -v s=$round 'BEGIN { srand(s + 40); printf "%.3f", rand() * 0.05 }')"
    kill -9 $pid 2>/dev/null
    { wait $pid; } 2>/dev/null
    now=$(awk -F '\t' '/^progress/ { print $2 }' "$T/k.out.journal" 2>/dev/null)
    [ -n "$now" ] && [ "$now" -gt "$last" ] && [ "$now" -lt 600 ] && { mid=$((mid + 1)); last=$now; }
done
echo "test_augment: 8 kills, $mid of them mid-job after new progress"
run $A -i "$T/k.txt" -o "$T/k.out" 2>/dev/null; rc=$?
check "killed 8 times ($mid mid-job after new progress), then finished" '[ $rc -eq 0 ] && [ $mid -ge 3 ]'
check "resumed corpus byte-identical" 'cmp -s "$T/k.ref" "$T/k.out"'
"$BIN" translate --model $M --progress none $A -i "$T/k.txt" -o "$T/c.out" 2>/dev/null &
pid=$!
wait_journal $pid "$T/c.out.journal" 0
kill -9 $pid 2>/dev/null; { wait $pid; } 2>/dev/null
run $A --min-score -3.0 -i "$T/k.txt" -o "$T/c.out" 2>"$T/e"; rc=$?
check "a changed --min-score refuses to resume" '[ $rc -eq 1 ] && grep -q "setting .output. changed" "$T/e"'

summary
