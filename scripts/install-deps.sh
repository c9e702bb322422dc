#!/bin/sh
# Installs the Debian packages lyricmt builds against (no-op when present).
set -e
# clang, libclang-rt-dev (libFuzzer) and libomp-dev build the fuzz targets;
# libopenmpi-dev and openmpi-bin the MPI build and its tests (mpirun on localhost);
# gnuplot-nox draws lyricmt bench's plot; python3-pytest, -pip, -setuptools and
# -wheel test the Python package and pip install . without reaching PyPI.
PKGS="build-essential libopenblas-dev libcjson-dev libyaml-dev libsentencepiece-dev clang libclang-rt-dev libomp-dev libopenmpi-dev openmpi-bin
      gnuplot-nox python3-pytest python3-pip python3-setuptools python3-wheel"
if dpkg -s $PKGS >/dev/null 2>&1; then exit 0; fi
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $PKGS >/dev/null
