#!/bin/sh
# gpu-bundle-check: shows on this machine that the GPU bundle is complete.
# In a private mount namespace (nothing changes outside it) every shared
# library file of the bundled Debian packages is overmounted with an empty
# file, as if those packages were not installed, which is how the GPU machines
# are. There the bundle's packages are unpacked as scripts/gpu-check.sh
# unpacks them, and every bundled binary must resolve each library (Debian's
# from the bundle, CUDA's from the toolkit) and the tests run what needs no GPU
# (test_golden its CPU part); the regular
# build must fail to load (proof the system copies are hidden).
#
#   sh scripts/gpu-bundle-check.sh build-gpu PACKAGE...   (make gpu-bundle-check; needs root)
set -eu
B=$(cd "$1" && pwd)
shift
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ "${GPU_BUNDLE_CHECK_INSIDE:-}" != 1 ]; then
    export GPU_BUNDLE_CHECK_INSIDE=1
    exec unshare --mount --propagation private sh "$0" "$B" "$@"
fi
empty=$(mktemp)
hidden=0
for pkg in "$@"; do
    for f in $(dpkg -L "$pkg" | grep '\.so'); do
        [ -f "$f" ] && [ ! -L "$f" ] || continue
        mount --bind "$empty" "$f"
        hidden=$((hidden + 1))
    done
done
echo "hid $hidden library files of: $*"
cd "$ROOT"
if [ -x build/lyricmt ] && build/lyricmt --help >/dev/null 2>&1; then
    echo "FAIL: the regular build still loads: the system libraries are not hidden"
    exit 1
fi
echo "the regular build no longer loads: $(build/lyricmt --help 2>&1 | head -n 1)"
rm -rf "$B/deps"
python3 scripts/unpack-debs.py "$B/deps/lib" "$B"/debs/*.deb
bad=0
for f in "$B"/bin/*; do
    if ldd "$f" | grep -q 'not found'; then
        echo "FAIL: $f: $(ldd "$f" | grep 'not found' | tr -s ' \t' ' ')"
        bad=1
    fi
done
echo "libraries of the bundled lyricmt:"
ldd "$B/bin/lyricmt" | grep -E 'openblas|cjson|yaml|sentencepiece|gfortran|quadmath|gomp|cublas|cudart'
for t in test_golden test_cuda_kernels test_cuda_backend; do
    LYRICMT_GOLDEN_ONLY=cpu "$B/bin/$t" >/tmp/gpu-bundle-check.$$ 2>&1 || { echo "FAIL: $t:"; tail -n 5 /tmp/gpu-bundle-check.$$; bad=1; }
    grep -E 'passed, [0-9]+ failed|skipped' /tmp/gpu-bundle-check.$$ | sed "s|^|  |"
done
rm -f /tmp/gpu-bundle-check.$$
printf 'one line\n' | "$B/bin/lyricmt" translate --model tests/fixtures/tiny-b --device cpu --quiet >/dev/null ||
    { echo "FAIL: the bundled lyricmt does not translate"; bad=1; }
rm -rf "$B/deps" # unpacked again on the GPU machine; not carried
[ $bad -eq 0 ] && echo "gpu-bundle-check: complete: $(du -sm "$B" | cut -f1) MiB"
exit $bad
