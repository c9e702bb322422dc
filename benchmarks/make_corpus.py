#!/usr/bin/env python3
"""Seeded generator of lyric-like English lines, for benchmarks and bulk tests.

    python3 benchmarks/make_corpus.py --lines 20000 --seed 1 > corpus.txt
    python3 benchmarks/make_corpus.py --songs 50 --seed 1 --out-dir songs/

Songs have verses and a chorus/hook repeated 2-4 times, blank lines between
sections. Line lengths follow hip-hop lyrics: mostly 4 to 16 words, a tail of
long lines (up to ~40 words). Standard library only.
"""
import argparse
import os
import random

WORDS = """money mind grind bottom top city lights night dream gold chain real deal flow rhyme beat street block
corner hustle pressure crown king queen heart cold fire ice smoke mirror window rain sun moon stars
never always still ready steady running chasing falling rising shining counting living dying riding
I you we they my your our love hate trust pain fame game name frame came came back home road
with from into over under through for the a an and but so yeah uh oh no yes what why how""".split()
ADLIBS = ["yeah", "uh", "okay", "let's go", "woo", "skrrt", "ayy"]


def line(rng):
    r = rng.random()
    n = rng.randint(4, 16) if r < 0.88 else rng.randint(1, 3) if r < 0.93 else rng.randint(17, 40)
    words = [rng.choice(WORDS) for _ in range(n)]
    s = " ".join(words)
    s = s[0].upper() + s[1:]
    if rng.random() < 0.15:
        s += ", " + rng.choice(ADLIBS)
    if rng.random() < 0.3:
        s += rng.choice([",", "!", "?", "..."])
    return s


def song(rng):
    hook = [line(rng) for _ in range(rng.randint(2, 4))]
    out = []
    for section in range(rng.randint(2, 4)):
        out += [line(rng) for _ in range(rng.randint(4, 12))]
        out.append("")
        out += hook
        out.append("")
    return out[:-1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, help="write this many lines to stdout")
    ap.add_argument("--songs", type=int, help="write this many song files to --out-dir")
    ap.add_argument("--out-dir")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    if a.songs:
        os.makedirs(a.out_dir, exist_ok=True)
        for i in range(a.songs):
            with open(os.path.join(a.out_dir, f"song{i:04d}.txt"), "w") as f:
                f.write("\n".join(song(rng)) + "\n")
        return
    n = 0
    while n < (a.lines or 1000):
        for s in song(rng) + [""]:
            if n == (a.lines or 1000):
                break
            print(s)
            n += 1


if __name__ == "__main__":
    main()
