#!/bin/bash
# OpenMP wait policies under contention (benchmarks/NOTES.md, attempt 5).
# usage: benchmarks/omp_wait.sh [BUSY_LOOPS] [ROUNDS]   (from the repository root)
# Runs a 400-line greedy job with each policy, interleaved, ROUNDS times, while
# BUSY_LOOPS shell loops compete for the cores; prints the median, min and max.
set -u
LOAD=${1:-0}; R=${2:-3}; BIN=build/lyricmt; M=tests/fixtures/tiny-b
corpus=$(mktemp); trap 'rm -f "$corpus"' EXIT
awk 'BEGIN { srand(7); split("money mind grind bottom here yeah never stop flow rhyme street dream gold chain night light fight real deal city", w, " ")
  for (i = 0; i < 400; i++) { s = ""; n = 4 + int(rand() * 12); for (k = 0; k < n; k++) s = s (k ? " " : "") w[int(rand() * 20) + 1]; print s } }' > "$corpus"
settings="spin300k spin100k spin10k passive passive-1thread"
hogs=()
for ((h = 0; h < LOAD; h++)); do ( while :; do :; done ) & hogs+=($!); done
declare -A t
for ((r = 0; r < R; r++)); do
  for s in $settings; do
    case $s in
      spin300k) env=(GOMP_SPINCOUNT=300000) ;; spin100k) env=(GOMP_SPINCOUNT=100000) ;; spin10k) env=(GOMP_SPINCOUNT=10000) ;;
      passive*) env=(OMP_WAIT_POLICY=passive) ;;
    esac
    extra=(); [ $s = passive-1thread ] && extra=(--threads 1)
    a=$(date +%s.%N)
    timeout 60 env "${env[@]}" $BIN translate --model $M --beam 1 --quiet --set batch.cache_lines=0 "${extra[@]}" -i "$corpus" > /dev/null
    b=$(date +%s.%N)
    t[$s]+="$(echo "$b - $a" | bc) "
  done
done
for pid in "${hogs[@]}"; do kill $pid; done
for s in $settings; do
  echo "busy loops $LOAD, $s: $(echo ${t[$s]} | tr ' ' '\n' | sort -n | awk '{a[NR]=$1} END {printf "median %.2f s (min %.2f, max %.2f, n=%d)", a[int((NR+1)/2)], a[1], a[NR], NR}')"
done
