#!/bin/sh
# What `make bench` needs beyond the build: gnuplot (Debian) and the peers from PyPI.
set -e
if ! command -v gnuplot >/dev/null 2>&1; then
    SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get install -y -q gnuplot-nox
fi
python3 -c "import ctranslate2, transformers, torch, sentencepiece" 2>/dev/null ||
    python3 -m pip install -q ctranslate2 transformers torch sentencepiece safetensors
