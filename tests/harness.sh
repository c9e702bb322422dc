# Sourced by the shell tests (set NAME first): the binary, the tiny model, a
# scratch directory, and check/summary helpers that print "N passed, N failed".
BIN=${LYRICMT:-build/lyricmt}
M=tests/fixtures/tiny-b
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
passed=0; failed=0
ok()   { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL $NAME: $1"; }
check() { if eval "$2"; then ok; else fail "$1"; fi; }
summary() { echo "$NAME: $passed passed, $failed failed"; [ $failed -eq 0 ]; }
