#!/usr/bin/env python3
"""Train the toy EN->KO demo model (samples/model/) on samples/parallel/train.tsv.

A deliberately small M2M100 (about 1.3 M parameters, fp16 weights, ~3 MB on disk)
trained for a few minutes on one CPU thread on ~330 original lyric-style line pairs.
It has seen almost no data: it reproduces its training lines and recombines their
phrases, nothing more. It is here so that `make demo` shows real Korean coming out
of the engine and `lyricmt compare` has two models worth comparing; the real model
is en2ko_hiphop_small-100 (README, "Running the real model").

The directory is laid out as a Hugging Face download of the real fine-tune
(config.json, generation_config.json, tokenizer_config.json and
special_tokens_map.json listing the language tokens as additional special tokens,
vocab.json, sentencepiece.bpe.model, model.safetensors), so lyricmt reads it the
same way. Seeded: the same torch/transformers versions give the same weights.

Needs: pip install torch transformers sentencepiece safetensors; spm_train (Debian's
`sentencepiece`). Run from the repository root:  python3 samples/train_demo.py
Then record its goldens:  python3 tests/make_demo_goldens.py
"""
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

import torch
from transformers import M2M100Config, M2M100ForConditionalGeneration, M2M100Tokenizer
from transformers.models.m2m_100.tokenization_m2m_100 import FAIRSEQ_LANGUAGE_CODES

ROOT = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(ROOT, "model")
SEED = 7
SPM_VOCAB = 1200
STEPS = 2400
BATCH = 32
MAX_LEN = 48


def read_pairs(name):
    with open(os.path.join(ROOT, "parallel", name), encoding="utf-8") as f:
        return [tuple(line.rstrip("\n").split("\t")) for line in f if line.strip()]


def make_tokenizer(pairs, d):
    """SentencePiece BPE on both sides of the training pairs, vocab.json in fairseq's
    layout (4 specials first), tokenizer files as the real checkpoints have them."""
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "corpus.txt")
        with open(corpus, "w", encoding="utf-8") as f:
            for en, ko in pairs:
                f.write(en + "\n" + en.lower() + "\n" + ko + "\n")
        prefix = os.path.join(tmp, "spm")
        # relative paths: the model file records them, and a random directory name would
        # make it differ from run to run
        subprocess.run(["spm_train", "--input=corpus.txt", "--model_prefix=spm", "--model_type=bpe",
                        f"--vocab_size={SPM_VOCAB}", "--character_coverage=1.0", "--minloglevel=2",
                        "--num_threads=1", "--hard_vocab_limit=false"], check=True, cwd=tmp,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.copy(prefix + ".model", os.path.join(d, "sentencepiece.bpe.model"))
        pieces = [line.split("\t")[0] for line in open(prefix + ".vocab", encoding="utf-8")]
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for p in pieces:
        if p not in vocab:
            vocab[p] = len(vocab)
    with open(os.path.join(d, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False, indent=2)
    langs = [f"__{c}__" for c in FAIRSEQ_LANGUAGE_CODES["m2m100"]]
    specials = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "sep_token": "</s>", "unk_token": "<unk>"}
    cfg = dict(additional_special_tokens=langs, clean_up_tokenization_spaces=True, language_codes="m2m100",
               model_max_length=1024, num_madeup_words=8, sp_model_kwargs={}, src_lang="en", tgt_lang="ko",
               tokenizer_class="M2M100Tokenizer", **specials)
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    with open(os.path.join(d, "special_tokens_map.json"), "w") as f:
        json.dump(dict(additional_special_tokens=langs, **specials), f, indent=2)
    return M2M100Tokenizer.from_pretrained(d), len(vocab)


def train(model, tok, pairs):
    """Adam with label smoothing over shuffled batches; m2m100 convention: source
    [__en__] pieces </s>, labels [__ko__] pieces </s> (decoder start </s>)."""
    rng = random.Random(SEED)
    tok.src_lang = "en"
    ko = tok.get_lang_id("ko")
    data = [(tok(en)["input_ids"], [ko] + tok(k, add_special_tokens=False)["input_ids"] + [2]) for en, k in pairs]
    # lower-cased sources too, so the toy is not thrown by capitals
    data += [(tok(en.lower())["input_ids"], t) for (en, _), (_, t) in zip(pairs, data)]
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=STEPS, pct_start=0.1)
    model.train()
    start = time.time()
    order = []
    for step in range(STEPS):
        if len(order) < BATCH:
            order += rng.sample(range(len(data)), len(data))
        batch = [data[order.pop()] for _ in range(BATCH)]
        pad = lambda seqs, v: torch.tensor([q + [v] * (max(map(len, seqs)) - len(q)) for q in seqs])
        x, labels = pad([s for s, _ in batch], 1), pad([t for _, t in batch], -100)
        dec_in = torch.cat([torch.full((len(batch), 1), 2), labels[:, :-1].clamp(min=1)], dim=1)
        logits = model(input_ids=x, attention_mask=(x != 1).long(), decoder_input_ids=dec_in).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                                 ignore_index=-100, label_smoothing=0.1)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 200 == 0 or step == STEPS - 1:
            print(f"step {step}: loss {loss.item():.3f} ({time.time() - start:.0f} s)", file=sys.stderr, flush=True)


def main():
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    pairs = read_pairs("train.tsv")
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    tok, vocab_len = make_tokenizer(pairs, OUT)
    cfg = M2M100Config(vocab_size=vocab_len + 100 + 8, d_model=128, encoder_layers=3, decoder_layers=3,
                       encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=256, decoder_ffn_dim=256,
                       max_position_embeddings=64, scale_embedding=True, activation_function="relu",
                       pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2,
                       dropout=0.1, attention_dropout=0.0, activation_dropout=0.0)
    model = M2M100ForConditionalGeneration(cfg)
    train(model, tok, pairs)
    model.eval()
    model.config.dropout = 0.0
    model.generation_config.update(num_beams=5, max_length=MAX_LEN, early_stopping=False, length_penalty=1.0)
    model.half().save_pretrained(OUT, safe_serialization=True)
    model.generation_config.to_json_file(os.path.join(OUT, "generation_config.json"))
    for f in ("added_tokens.json", "chat_template.jinja"):
        if os.path.exists(os.path.join(OUT, f)):
            os.remove(os.path.join(OUT, f))
    # the held-out lines as the README's compare example reads them
    held = read_pairs("heldout.tsv")
    for i, ext in ((0, "en"), (1, "ko")):
        with open(os.path.join(ROOT, "parallel", f"heldout.{ext}"), "w", encoding="utf-8") as f:
            f.writelines(p[i] + "\n" for p in held)
    n = sum(p.numel() for p in model.parameters())
    print(f"saved {OUT}: {n / 1e6:.2f} M parameters", file=sys.stderr)


if __name__ == "__main__":
    main()
