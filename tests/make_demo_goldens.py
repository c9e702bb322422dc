#!/usr/bin/env python3
"""Record transformers' outputs on the demo model and on tokenizer-file variants.

1. tests/fixtures/demo/golden.json: transformers' greedy and beam-5 (3-best) outputs
   of the trained toy model samples/model (samples/train_demo.py) on the sample lyrics,
   the held-out corpus lines and a few odd lines, m2m100 convention (source __en__,
   forced __ko__), eager attention, fp32 computation of the stored fp16 weights: ids,
   scores and decoded texts. The model stops on its own (emits </s>), so lengths vary.

2. tests/fixtures/special-tokens/KIND/: tokenizer_config.json (and
   special_tokens_map.json where that kind has one) in the ways such files exist,
   each used with tiny-a's vocab.json and sentencepiece.bpe.model, and golden.json:
   what transformers' M2M100Tokenizer loaded from that directory gives for
   decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False) and for
   encoding texts with literal special tokens (add_special_tokens=False). Kinds:
   hf4 (language tokens listed as additional_special_tokens in both files, as the real
   checkpoints were saved by transformers 4.x), v5_fresh (what transformers 5.x's
   save_pretrained writes for a tokenizer built from vocab and SentencePiece files:
   extra_special_tokens [], so language tokens are not special and decode keeps them),
   v5_resaved (the hf4 directory loaded and saved again by 5.x), map_only (the list
   only in special_tokens_map.json), none (no list at all), subset (only __ko__ listed).

Needs: pip install torch transformers sentencepiece safetensors. CI never runs this.
Run from the repository root after samples/train_demo.py:  python3 tests/make_demo_goldens.py
"""
import json
import os
import shutil
import sys
import tempfile

import torch
import transformers
from transformers import M2M100ForConditionalGeneration, M2M100Tokenizer
from transformers.models.m2m_100.tokenization_m2m_100 import FAIRSEQ_LANGUAGE_CODES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, "samples", "model")
TINY_A = os.path.join(ROOT, "tests", "fixtures", "tiny-a")
OUT_DEMO = os.path.join(ROOT, "tests", "fixtures", "demo")
OUT_SPECIAL = os.path.join(ROOT, "tests", "fixtures", "special-tokens")

ODD = ["We ride, we ride, we ride tonight!", "Never gonna stop never gonna drop never gonna stop never gonna drop",
       "🔥 fire 🎤", "the </s> king __ko__ of the block", "I", "zzqxj wxyv"]


def lines(path):
    with open(path, encoding="utf-8") as f:
        return [l.rstrip("\n") for l in f if l.strip()]


def strip_pad(ids):
    while ids and ids[-1] == 1:
        ids = ids[:-1]
    return ids


def demo_goldens():
    tok = M2M100Tokenizer.from_pretrained(DEMO)
    tok.src_lang = "en"
    model = M2M100ForConditionalGeneration.from_pretrained(DEMO, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    ko = tok.get_lang_id("ko")
    decode = lambda ids: tok.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    inputs = lines(os.path.join(ROOT, "samples", "lyrics.txt")) + lines(os.path.join(ROOT, "samples", "parallel", "heldout.en")) + ODD
    cases = []
    for text in inputs:
        ids = tok(text)["input_ids"]
        x = torch.tensor([ids])
        with torch.no_grad():
            g = model.generate(x, num_beams=1, do_sample=False, forced_bos_token_id=ko, output_scores=True,
                               return_dict_in_generate=True)
            steps = model.compute_transition_scores(g.sequences, g.scores, normalize_logits=True)[0]
            b = model.generate(x, num_beams=5, num_return_sequences=3, do_sample=False, forced_bos_token_id=ko,
                               output_scores=True, return_dict_in_generate=True)
        gi = strip_pad(g.sequences[0].tolist())
        bi = [strip_pad(s.tolist()) for s in b.sequences]
        cases.append({"text": text, "input_ids": ids, "greedy_ids": gi, "greedy_score": float(steps.sum()),
                      "greedy_text": decode(gi), "beam_ids": bi, "beam_scores": [float(s) for s in b.sequences_scores],
                      "beam_text": [decode(s) for s in bi]})
    gen = model.generation_config
    golden = {"meta": {"torch": torch.__version__, "transformers": transformers.__version__, "attention": "eager",
                       "dtype": "float32", "convention": "m2m100", "num_beams": 5, "num_return_sequences": 3,
                       "max_length": gen.max_length}, "cases": cases}
    os.makedirs(OUT_DEMO, exist_ok=True)
    with open(os.path.join(OUT_DEMO, "golden.json"), "w", encoding="utf-8") as f:
        json.dump(golden, f, ensure_ascii=False, indent=1)
    lens = [len(c["greedy_ids"]) for c in cases]
    ended = sum(c["greedy_ids"][-1] == 2 for c in cases)
    print(f"demo: {len(cases)} cases, greedy lengths {min(lens)}-{max(lens)}, {ended} end with </s>, "
          f"{len(set(c['greedy_text'] for c in cases))} distinct", file=sys.stderr)


def special_kinds(tmp):
    """name -> directory with tiny-a's vocabulary and that kind's tokenizer files."""
    langs = [f"__{c}__" for c in FAIRSEQ_LANGUAGE_CODES["m2m100"]]
    base = json.load(open(os.path.join(TINY_A, "tokenizer_config.json")))
    bare = {k: v for k, v in base.items() if k != "additional_special_tokens"}
    kinds = {}

    def new(name):
        d = os.path.join(tmp, name)
        os.makedirs(d)
        for f in ("vocab.json", "sentencepiece.bpe.model"):
            shutil.copy(os.path.join(TINY_A, f), d)
        kinds[name] = d
        return d

    d = new("hf4")
    for f in ("tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(os.path.join(TINY_A, f), d)
    M2M100Tokenizer(os.path.join(TINY_A, "vocab.json"), os.path.join(TINY_A, "sentencepiece.bpe.model"),
                    src_lang="en", tgt_lang="ko").save_pretrained(new("v5_fresh"))
    M2M100Tokenizer.from_pretrained(TINY_A).save_pretrained(new("v5_resaved"))
    d = new("map_only")
    json.dump(bare, open(os.path.join(d, "tokenizer_config.json"), "w"), indent=1)
    json.dump({"additional_special_tokens": langs}, open(os.path.join(d, "special_tokens_map.json"), "w"), indent=1)
    d = new("none")
    json.dump(bare, open(os.path.join(d, "tokenizer_config.json"), "w"), indent=1)
    d = new("subset")
    json.dump(dict(bare, additional_special_tokens=["__ko__"]), open(os.path.join(d, "tokenizer_config.json"), "w"), indent=1)
    for d in kinds.values():
        for f in ("added_tokens.json", "chat_template.jinja"):
            if os.path.exists(os.path.join(d, f)):
                os.remove(os.path.join(d, f))
    return kinds


def special_goldens():
    tiny = json.load(open(os.path.join(TINY_A, "golden.json"), encoding="utf-8"))
    outputs = [c["greedy_ids"] for c in tiny["conventions"]["m2m100"][:6]] + \
              [h for c in tiny["conventions"]["small100"][:3] for h in c["beam_ids"]]
    vocab = json.load(open(os.path.join(TINY_A, "vocab.json"), encoding="utf-8"))
    n = len(vocab)
    ko, en, fr, af = n + 48, n + 18, n + 24, n
    synthetic = [[2, ko, 10, 20, 30, 2], [ko, en, fr], [10, ko, 11, en, 12, fr, 13], [0, 1, 2, 3, 10, 3, 11],
                 [10, n + 100, 11, n + 107], [af, 10, af], [ko], [], [2, ko, 2]]
    texts = ["the </s> king __ko__ of the block", "__ko____en__", "x __af__ y <s> <pad> <unk> z", "__ko", "__zz__ __fr__"]
    with tempfile.TemporaryDirectory() as tmp:
        for kind, d in special_kinds(tmp).items():
            tok = M2M100Tokenizer.from_pretrained(d)
            dec = [{"ids": ids, "text": tok.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)}
                   for ids in outputs + synthetic]
            enc = [{"text": t, "ids": tok(t, add_special_tokens=False)["input_ids"]} for t in texts]
            out = os.path.join(OUT_SPECIAL, kind)
            shutil.rmtree(out, ignore_errors=True)
            os.makedirs(out)
            for f in ("tokenizer_config.json", "special_tokens_map.json"):
                if os.path.exists(os.path.join(d, f)):
                    shutil.copy(os.path.join(d, f), out)
            golden = {"meta": {"transformers": transformers.__version__, "vocab": "tests/fixtures/tiny-a"},
                      "decode": dec, "encode": enc}
            with open(os.path.join(out, "golden.json"), "w", encoding="utf-8") as f:
                json.dump(golden, f, ensure_ascii=False, indent=1)
            kept = sum("__" in c["text"] for c in dec)
            print(f"special-tokens/{kind}: {kept}/{len(dec)} decoded texts keep a __xx__ token", file=sys.stderr)


if __name__ == "__main__":
    special_goldens()
    demo_goldens()
