#!/usr/bin/env python3
"""Record sacreBLEU's own chrF and BLEU on varied hypothesis/reference files, for
`lyricmt eval` and metrics.c to be tested against (tests/test_metrics.c,
tests/test_eval.sh).

Writes tests/fixtures/sacrebleu/: NAME.hyp and NAME.ref for each case (bytes as
given: CRLF endings, a lone CR, trailing spaces, a BOM, Unicode spaces), and
expected.json: per case and BLEU tokenizer (char, none), what the sacrebleu command
line prints for `sacrebleu NAME.ref -i NAME.hyp -m bleu chrf --tokenize TOK -f text
-w W` (W = 1, its default, and 6; also in NAME.expected), and the raw scores of the Python API
(CHRF().corpus_score, BLEU(tokenize=TOK).corpus_score on the lines as the command
line reads them), plus the sacreBLEU version and signatures, and the code points
Python's str.isspace() accepts.

Needs: pip install sacrebleu (CI never runs this; the outputs are committed).
Run from the repository root:  python3 tests/make_sacrebleu_fixtures.py
"""
import json
import os
import random
import subprocess
import sys

import sacrebleu
from sacrebleu.metrics import BLEU, CHRF

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "sacrebleu")

KO_REF = ["우리는 오늘 밤 달려", "나는 가족을 위해 해", "도시는 절대 잠들지 않아", "절대 포기하지 마",
          "이제 그들은 내 이름을 알아", "금으로 만든 꿈"]
KO_HYP = ["우리는 오늘 밤 달려", "나는 엄마를 위해 해", "도시는 잠들지 않아", "절대로 포기 마",
          "그들은 이제 내 이름을 알아", "금으로 만든 꿈이야"]
EN_REF = ["I got money on my mind, never stop the grind.", "Started from the bottom now we here!",
          "Cold nights in the city, dreams made of gold.", "We ride, we ride, we ride."]
EN_HYP = ["I got money on my mind , never stop grinding .", "Started at the bottom, now we're here!",
          "Cold night in a city; dreams made from gold", "we ride we ride"]


def random_case(seed):
    """Lines of a few syllables drawn from a small set, so n-grams of every order
    sometimes match, with random spaces and empty lines."""
    rng = random.Random(seed)
    syll = "가나다라마바사아자차카타파하우리는밤꿈돈"
    def line():
        n = rng.choice([0, 1, 2, 3, 5, 8, 13])
        chars = [rng.choice(syll) for _ in range(n)]
        return "".join(c + (" " if rng.random() < 0.3 else "") for c in chars)
    n = rng.randint(1, 12)
    return [line() for _ in range(n)], [line() for _ in range(n)]


def text(lines, end="\n"):
    return "".join(l + end for l in lines)


# name -> (hyp file text, ref file text)
CASES = {
    "ko": (text(KO_HYP), text(KO_REF)),
    "ko_perfect": (text(KO_REF), text(KO_REF)),
    "ko_zero": (text(["ㅋㅋㅋ", "하하", "흠"]), text(["우리는 달려", "밤", "꿈"])),
    "en": (text(EN_HYP), text(EN_REF)),
    "en_perfect": (text(EN_REF), text(EN_REF)),
    "empty_lines": (text(["", "우리는 오늘 밤", "", "꿈"]), text(["나는", "우리는 오늘 밤 달려", "", ""])),
    "all_empty_hyp": (text(["", "", ""]), text(["우리는", "밤", "꿈"])),
    "all_empty_ref": (text(["우리는", "밤", "꿈"]), text(["", "", ""])),
    "single_chars": (text(["가", "나", "다"]), text(["가", "라", "다"])),
    "two_chars": (text(["가나", "다"]), text(["가나", "다라"])),
    "no_4gram_match": (text(["가나다 라마바사 아자차"]), text(["가나다 마바사 아자차카"])),
    "no_3gram_match": (text(["가나 다라 가다"]), text(["가나 라다 나가"])),
    "short_hyp": (text(["우리는"]), text(["우리는 오늘 밤 도시를 달려"])),
    "long_hyp": (text(["우리는 오늘 밤 도시를 달려 또 달려 계속 달려"]), text(["우리는 달려"])),
    "clipping": (text(["하 하 하 하 하 하", "ha ha ha ha"]), text(["하 하", "ha ha"])),
    "punct": (text(["...!?", "“Yeah,” yeah!", "(우리는) [밤] {꿈}", "—–-"]),
              text(["?!...", "\"Yeah\", yeah!", "(우리는) 밤 꿈", "-"])),
    "emoji": (text(["🔥 on the mic 🎤", "👨‍👩‍👧 family", "é vs é", "🇰🇷 서울"]),
              text(["🔥 마이크 위 🎤", "👨‍👩‍👧 가족", "é vs é", "🇰🇷 서울"])),
    "unicode_spaces": ("우리는\u3000오늘\u00a0밤\t달려\n도시\u2003는\u200b 잠들지\u2028않아\n",
                       "우리는 오늘 밤 달려\n도시는 잠들지 않아\n"),
    "trailing_space_crlf": ("우리는 오늘 밤 달려   \r\n나는 가족을 위해 해\t\r\n  꿈  \r\n",
                            "우리는 오늘 밤 달려\r\n나는 엄마를 위해 해\r\n꿈\r\n"),
    "lone_cr": ("우리는 달려\r나는 꿈\r밤\n가\r\n", "우리는 오늘 달려 나는 꿈 밤\n가\n"),
    "no_final_newline": ("우리는 오늘 밤 달려\n꿈", "우리는 오늘 밤 달려\n꿈이야"),
    "bom": ("\ufeff우리는 달려\n밤\n", "\ufeff우리는 달려\n밤이야\n"),
    "mixed_scripts": (text(["I ride 오늘 밤 Жизнь", "ИГРА game 게임"]), text(["I ride tonight 오늘 밤", "игра game 게임"])),
    "long_line": (text(["우리는 오늘 밤 달려 " * 40 + "끝"]), text(["우리는 오늘 밤 도시를 달려 " * 30 + "끝이야"])),
}
for seed in range(12):
    h, r = random_case(seed)
    CASES[f"random{seed:02d}"] = (text(h), text(r))


def cli(name, tok, width):
    out = subprocess.run(["sacrebleu", f"{name}.ref", "-i", f"{name}.hyp", "-m", "bleu", "chrf", "--tokenize", tok,
                          "-f", "text", "-w", str(width)], cwd=OUT, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"sacrebleu failed on {name}: {out.stderr}")
    return out.stdout


def read_lines(path):
    # as sacrebleu's command line reads a file: lines end at \n only, rstrip()
    with open(path, encoding="utf-8", newline="\n") as f:
        return [line.rstrip() for line in f]


def main():
    os.makedirs(OUT, exist_ok=True)
    expected = {"sacrebleu": sacrebleu.__version__, "cases": {},
                "py_whitespace": [c for c in range(sys.maxunicode + 1) if chr(c).isspace()]}
    for name, (hyp, ref) in CASES.items():
        for ext, body in (("hyp", hyp), ("ref", ref)):
            with open(os.path.join(OUT, f"{name}.{ext}"), "w", encoding="utf-8", newline="") as f:
                f.write(body)
        hyps, refs = read_lines(os.path.join(OUT, f"{name}.hyp")), read_lines(os.path.join(OUT, f"{name}.ref"))
        assert len(hyps) == len(refs), name
        chrf = CHRF()
        c = chrf.corpus_score(hyps, [refs])
        case = {"lines": len(hyps), "chrf": c.score, "chrf_signature": str(chrf.get_signature())}
        for tok in ("char", "none"):
            bleu = BLEU(tokenize=tok)
            b = bleu.corpus_score(hyps, [refs])
            case[tok] = {"bleu": b.score, "precisions": b.precisions, "bp": b.bp, "sys_len": b.sys_len,
                         "ref_len": b.ref_len, "signature": str(bleu.get_signature()),
                         "cli_w1": cli(name, tok, 1), "cli_w6": cli(name, tok, 6)}
        expected["cases"][name] = case
        # what the command prints, for tests/test_eval.sh: char -w 1, char -w 6, none -w 1, none -w 6
        with open(os.path.join(OUT, f"{name}.expected"), "w", encoding="utf-8") as f:
            f.write("".join(case[tok][w] for tok in ("char", "none") for w in ("cli_w1", "cli_w6")))
    with open(os.path.join(OUT, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=False, indent=1)
    print(f"{len(CASES)} cases recorded with sacreBLEU {sacrebleu.__version__}", file=sys.stderr)


if __name__ == "__main__":
    main()
