#!/usr/bin/env python3
"""Record transformers' scores of (source, target) pairs on the committed tiny models.

For tests/fixtures/tiny-a and tiny-b (read, never changed: this script does not train
or rewrite the models or their golden.json), and for both input conventions, this
writes golden_score.json and golden_score.tsv beside them: for each pair the source
ids, the labels, every label's log-probability, and the pair's score, which is the
negative of transformers' cross-entropy loss summed over the labels:

    labels  m2m100:   tokenizer(text_target=target)  = [__ko__] + pieces + [</s>]
            small100: pieces + [</s>]  (SMALL100Tokenizer's target mode: no language token)
    decoder_input_ids = shift_tokens_right(labels, pad, decoder_start_token_id) = [</s>] + labels[:-1]
    score   = -loss * len(labels),  loss = model(input_ids, labels=labels).loss (mean over the labels)

A target longer than the model's positions is cut as the tokenizer's truncation does
(language token and </s> kept), which is what `lyricmt score --too-long truncate` does.

Needs: pip install transformers torch sentencepiece. CI never runs this: the outputs
are committed. Run from the repository root:  python3 tests/make_score_goldens.py
"""
import json
import os

import torch
from transformers import M2M100ForConditionalGeneration, M2M100Tokenizer

ROOT = os.path.dirname(os.path.abspath(__file__))
LONG = " ".join(["돈 흐름 라임 비트 거리 밤 도시 꿈"] * 40)  # far past 96 and 128 positions

# (source, target): lyric-like pairs, the awkward cases, and targets that are not
# what the model would say (scores far from its own outputs).
PAIRS = [
    ("I got money on my mind, never stop the grind", "돈 흐름 노력 멈추지 않아"),
    ("Started from the bottom now we here", "우리 거리 진짜"),
    ("Yeah, yeah!", ""),
    ("Cold nights in the city, dreams made of gold", "차갑게 밤 도시 꿈 금"),
    ("...!?", "..."),
    ("Fire 🔥 on the mic 🎤", "불 🔥 마이크 🎤"),
    ("나는 꿈을 꾼다", "나는 꿈을 꾼다"),
    ("Жизнь — это игра", "인생 게임"),
    ("zzqxj wxyv perhapsly", "zzqxj 돈 perhapsly"),
    (" leading and trailing spaces ", "  공백  "),
    ("Hook: we ride, we ride, we ride", "우리 타고 우리 타고 우리 타고"),
    ("the </s> king __ko__ of the block", "왕 </s> __en__ 거리"),
    ("money", "money money money"),
    ("I walk these streets at night with the lights so bright", LONG),
]


def labels_for(tok, target, convention, positions):
    """The labels the model was trained on for this target, cut to the model's positions."""
    if convention == "m2m100":
        tok.tgt_lang = "ko"
        return tok(text_target=target, truncation=True, max_length=positions)["input_ids"]
    pieces = tok(target, add_special_tokens=False)["input_ids"]
    return pieces[: positions - 1] + [tok.eos_token_id]


def source_ids(tok, text, convention, positions):
    tok.src_lang = "en" if convention == "m2m100" else "ko"
    return tok(text, truncation=True, max_length=positions)["input_ids"]


def score_pair(model, x, labels):
    y = torch.tensor([labels])
    with torch.no_grad():
        out = model(input_ids=x, labels=y)
        logp = torch.log_softmax(out.logits[0].double(), dim=-1)  # per-token values, for the record
    per_token = [float(logp[i, t]) for i, t in enumerate(labels)]
    score = -float(out.loss) * len(labels)
    # the loss is what transformers trains on; the per-token values must add up to it
    assert abs(score - sum(per_token)) <= 1e-5 * max(1.0, abs(score)), (score, sum(per_token))
    return score, per_token


def main():
    import transformers
    for name in ("tiny-a", "tiny-b"):
        d = os.path.join(ROOT, "fixtures", name)
        tok = M2M100Tokenizer.from_pretrained(d)
        model = M2M100ForConditionalGeneration.from_pretrained(d, attn_implementation="eager", dtype=torch.float32).eval()
        positions = model.config.max_position_embeddings
        golden = {"meta": {"torch": torch.__version__, "transformers": transformers.__version__, "attention": "eager",
                           "dtype": "float32", "score": "-loss * len(labels), labels as trained, decoder input shifted right"},
                  "positions": positions, "conventions": {}}
        rows = []
        for conv in ("m2m100", "small100"):
            cases = []
            for src, tgt in PAIRS:
                ids = source_ids(tok, src, conv, positions)
                labels = labels_for(tok, tgt, conv, positions)
                score, per_token = score_pair(model, torch.tensor([ids]), labels)
                cases.append({"source": src, "target": tgt, "input_ids": ids, "labels": labels, "score": score,
                              "tokens": len(labels), "normalized": score / len(labels), "token_logprobs": per_token})
                rows.append([conv, src, tgt, repr(score), repr(score / len(labels)), str(len(labels))])
            golden["conventions"][conv] = cases
        with open(os.path.join(d, "golden_score.json"), "w", encoding="utf-8") as f:
            json.dump(golden, f, ensure_ascii=False)
        # convention, source, target, score, normalized, tokens: for the shell tests
        with open(os.path.join(d, "golden_score.tsv"), "w", encoding="utf-8") as f:
            for r in rows:
                assert not any("\t" in c or "\n" in c for c in r)
                f.write("\t".join(r) + "\n")
        print(f"{name}: {len(rows)} pairs scored; lengths {sorted({c['tokens'] for c in golden['conventions']['m2m100']})}")


if __name__ == "__main__":
    main()
