# pip install . from the repository root: the Python package is python/lyricmt
# (python/setup_lyricmt.py builds the library and the package).
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "python"))
from setup_lyricmt import setup_lyricmt  # noqa: E402

setup_lyricmt(repo=HERE, package_root="python")
