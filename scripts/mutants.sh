#!/bin/sh
# make mutants: plants each deliberate bug of tests/mutants/list.txt, one at a
# time, in a scratch copy of the tree (never the working tree), builds it and
# runs the suite of `make test` until a test fails. Prints one line per mutant
# and a table; exits non-zero if any mutant survives, does not apply or does
# not build. Usage: sh scripts/mutants.sh [name ...]   (default: all)
#
# List lines (# starts a comment): name<TAB>file<TAB>original<TAB>replacement,
# with @NL@ for a newline inside a fragment.
# The original fragment must occur exactly once in the file, so a mutant keeps
# applying after small line shifts and says so when the code it targets changed.
set -u
LIST=${MUTANTS_LIST:-tests/mutants/list.txt}
BUILD=${BUILD:-build}
TAB=$(printf '\t')
# OpenMP threads that spin while waiting slow every test many times over when the
# machine is busy (as it is when mutants run beside other work); waiting passively
# changes no result
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
[ -f "$LIST" ] || { echo "mutants: no $LIST"; exit 2; }
command -v perl > /dev/null || { echo "mutants: needs perl"; exit 2; }

# The suite of tests/run_all.sh, quickest and most telling first; each mutant
# runs until one fails (a killed mutant) or all pass (a survivor).
SUITE="test_units test_sample test_gemm_prec test_row_stats test_metrics test_demo_golden tests/test_eval.sh tests/test_compare.sh test_logit_rows test_corrupt test_golden test_score test_job_parts tests/test_cli.sh tests/test_score.sh tests/test_augment.sh tests/test_bulk_more.sh tests/test_loader_cli.sh tests/test_io_safety.sh tests/test_bulk.sh tests/test_inflight.sh tests/test_safety.sh tests/test_scale.sh"
# The CUDA code's, on the emulator (tests/cuda_emu/run_tests.sh PART, written
# FILE:PART) wherever make test built it: first for a mutant of kernels/ or
# cuda/, last for the others.
CUDA_SUITE="tests/cuda_emu/run_tests.sh:kernels tests/cuda_emu/run_tests.sh:cli tests/cuda_emu/run_tests.sh:backend tests/cuda_emu/run_tests.sh:golden"
EMU_BUILD=${EMU_BUILD:-build-emu}

work=$(mktemp -d /tmp/lyricmt-mutants-XXXXXX)
trap 'rm -rf "$work"' EXIT
# the list as it is now: an edit of the file during the run (it is read line
# by line over an hour) would shift the reading and skip mutants unseen
cp "$LIST" "$work/list"
# A pristine copy (tracked and untracked files, not ignored ones) with the
# current build, so that each mutant only recompiles what it touches.
make -s "$BUILD/lyricmt" > /dev/null || { echo "mutants: the unmutated tree does not build"; exit 2; }
mkdir "$work/tree"
git ls-files -co --exclude-standard -z | xargs -0 cp -a --parents -t "$work/tree"
cp -a "$BUILD" "$work/tree/$BUILD"
emu=
if [ -d "$EMU_BUILD" ] && [ -d "$EMU_BUILD-san" ]; then
    cp -a "$EMU_BUILD" "$EMU_BUILD-san" "$work/tree/"
    emu=cuda-emu
fi

summary="$work/summary"
: > "$summary"
n=0; bad=0
while IFS="$TAB" read -r name file from to; do
    case "$name" in ''|'#'*) continue ;; esac
    if [ $# -gt 0 ]; then
        want=0; for a in "$@"; do [ "$a" = "$name" ] && want=1; done
        [ $want -eq 1 ] || continue
    fi
    n=$((n + 1))
    m="$work/m"
    rm -rf "$m"
    cp -a "$work/tree" "$m"
    hits=$(FROM="$from" perl -0777 -ne '(my $f = $ENV{FROM}) =~ s/\@NL\@/\n/g; print scalar(() = /\Q$f\E/g)' "$m/$file" 2>/dev/null || echo 0)
    if [ "$hits" != 1 ]; then
        result="MUTANT DID NOT APPLY ($hits matches of the original fragment)"
    else
        FROM="$from" TO="$to" perl -0777 -i -pe 'BEGIN { ($f = $ENV{FROM}) =~ s/\@NL\@/\n/g; ($t = $ENV{TO}) =~ s/\@NL\@/\n/g } s/\Q$f\E/$t/' "$m/$file"
        touch "$m/$file"
        tests=$(ls "$m/$BUILD"/test_* 2>/dev/null | sed "s|^$m/||" | grep -v '\.d$' | tr '\n' ' ')
        if ! (cd "$m" && nice make -s "$BUILD/lyricmt" $tests $emu EMU_BUILD="$EMU_BUILD" > "$work/build.log" 2>&1 < /dev/null); then
            result="DID NOT BUILD ($(grep -m1 -E 'error' "$work/build.log"))"
        else
            result="SURVIVED"
            case "$file" in kernels/* | cuda/*) suite="$CUDA_SUITE $SUITE" ;; *) suite="$SUITE $CUDA_SUITE" ;; esac
            for t in $suite; do
                case "$t" in
                *.sh:*) [ -n "$emu" ] || continue; cmd="sh ${t%%:*} ${t#*:}" ;;
                *.sh) cmd="sh $t" ;;
                *) [ -x "$m/$BUILD/$t" ] || continue; cmd="./$BUILD/$t" ;;
                esac
                # stdin is the list being read: a test must not eat the mutants after this one
                (cd "$m" && LYRICMT="$BUILD/lyricmt" CUDA_EMU_BUILD="$EMU_BUILD" timeout 900 nice $cmd > "$work/test.log" 2>&1 < /dev/null)
                rc=$?
                if [ $rc -ne 0 ]; then
                    first=$(grep -m1 '^FAIL' "$work/test.log" | cut -c1-90)
                    result="killed by $(basename "$t"): ${first:-exit status $rc}"
                    break
                fi
            done
        fi
    fi
    case "$result" in killed*) ;; *) bad=$((bad + 1)) ;; esac
    printf '%-28s %-22s %s\n' "$name" "$file" "$result" | tee -a "$summary"
done < "$work/list"

echo
echo "mutant                       file                   result"
cat "$summary"
echo "$n mutants, $((n - bad)) killed, $bad survived, did not apply or did not build"
[ $n -gt 0 ] && [ $bad -eq 0 ]
