#!/bin/sh
# test_python: the Python package (python/lyricmt) over the library this build
# made: pytest's tests/python against the command (each pytest test counts
# once), then `pip install .` into a scratch folder, imported from there.
NAME=test_python
. tests/harness.sh
LIB=$(dirname "$BIN")/liblyricmt.so.0
# the interpreter that has pytest: python3 first, then Debian's, where
# scripts/install-deps.sh puts python3-pytest (a pyenv python3 may lack it)
PY=
for p in ${PYTHON:-python3} /usr/bin/python3; do
    if "$p" -c 'import pytest' 2>/dev/null; then PY=$p; break; fi
done
check "a python3 with pytest (scripts/install-deps.sh installs python3-pytest)" '[ -n "$PY" ]'
[ -n "$PY" ] || { summary; exit 1; }
# a library built with the sanitizers needs their runtimes loaded first; Python
# itself leaks by design, so leak checking is off there
PRELOAD=
if ldd "$LIB" | grep -q libasan; then
    PRELOAD="$(${CC:-gcc} -print-file-name=libasan.so) $(${CC:-gcc} -print-file-name=libubsan.so)"
fi
run_py() { env LD_PRELOAD="$PRELOAD" ASAN_OPTIONS=detect_leaks=0 LYRICMT="$BIN" LYRICMT_LIBRARY="$LIB" "$@"; }

PYTHONPATH=python run_py "$PY" -m pytest -q -p no:cacheprovider --basetemp="$T/pytest" tests/python > "$T/out" 2>&1; rc=$?
line=$(grep -E '^[0-9]+ (passed|failed)|^=* *[0-9]+ (passed|failed)' "$T/out" | tail -n 1)
count() { printf '%s' "$line" | grep -oE "[0-9]+ $1" | grep -oE '^[0-9]+'; }
p=$(count passed); f=$(count failed); e=$(count error); s=$(count skipped)
passed=$((passed + ${p:-0}))
[ -n "$s" ] && echo "$NAME: $s pytest test(s) skipped (not counted as passed)"
if [ $rc -ne 0 ] || [ -z "$p" ] || [ -n "$f" ] || [ -n "$e" ]; then
    failed=$((failed + ${f:-0} + ${e:-0}))
    [ -n "$f$e" ] || failed=$((failed + 1))
    grep -E '^(FAILED|ERROR)|Error|error' "$T/out" | head -n 20 | sed "s/^/FAIL $NAME: /"
fi
check "pytest ran at least 15 tests ($p)" '[ "${p:-0}" -ge 15 ]'

# pip install . builds through make into $(BUILD)=build: only checked on that build
if [ "$(dirname "$BIN")" = build ]; then
    "$PY" -m pip install -q --no-build-isolation --no-deps --target "$T/site" . > "$T/pip" 2>&1; rc=$?
    check "pip install . (exit $rc: $(tail -n 1 "$T/pip"))" '[ $rc -eq 0 ] && [ -f "$T/site/lyricmt/liblyricmt.so.0" ] && [ -f "$T/site/lyricmt/__init__.py" ]'
    got=$(cd "$T" && env -u LYRICMT_LIBRARY PYTHONPATH="$T/site" "$PY" -c '
import lyricmt, sys
print(lyricmt._find_library())
print(lyricmt.Translator(sys.argv[1]).translate_batch(["Cold nights in the city"], beam_size=2)[0].hypotheses[0])' "$OLDPWD/$M" 2>&1)
    want=$(echo "Cold nights in the city" | "$BIN" translate --model $M --beam 2 --quiet)
    check "the installed package loads its own library and translates as the command" \
        '[ "$(echo "$got" | head -n 1)" = "$T/site/lyricmt/liblyricmt.so.0" ] && [ "$(echo "$got" | tail -n 1)" = "$want" ]'
else
    echo "$NAME: pip install . skipped: it builds into build/, not $(dirname "$BIN") (not counted as passed)"
fi
summary
