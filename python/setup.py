# pip install ./python: see setup_lyricmt.py.
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from setup_lyricmt import setup_lyricmt  # noqa: E402

setup_lyricmt(repo=os.path.join(HERE, ".."), package_root=".")
