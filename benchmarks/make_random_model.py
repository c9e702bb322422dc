#!/usr/bin/env python3
"""Make a SMaLL-100-sized checkpoint with random weights, laid out as the
en2ko_hiphop_small-100 fine-tune ships (pytorch_model.bin, config.json,
generation_config.json, tokenizer files), for benchmarks. Never committed.

Real shapes: 12 encoder / 3 decoder layers, d_model 1024, 16 heads, FFN 4096,
vocabulary 128112, 1024 positions. The tokenizer files are the tiny fixture's
(a real 128k SentencePiece model cannot be downloaded here); its ids all fall
inside the 128112-row embedding, so every matrix product has the real size.

usage: python3 benchmarks/make_random_model.py OUT_DIR [--stops | --words]

--stops: random weights never choose </s>, so every line would run to
max_length. With --stops the final decoder norm's bias gets a direction u
(scaled 0.7) and </s>'s embedding row (tied to the output projection) becomes
8 u, so </s> wins at some step that depends on the line: greedy outputs then
end after 2 to 29 tokens (measured on 10 lines), as a trained model's do. For
the in-flight batching benchmark (bench.py --inflight); written as
model.safetensors.

--words: random weights sample <unusedN> pieces, which decode to nothing, so
an augmentation run (configs/augment.yaml) writes one empty pair a line and
its rescoring scores "" (2 labels). With --words every embedding row (tied to
the output projection) but those of the tokenizer's 184 whole-word pieces
("▁real", "▁우리": a ▁ and more, each tokenised back to itself) and </s> is
scaled by 0.01, so those rows' logits stand far above the rest: samples are
runs of words whose text tokenises back to the sampled ids, and rescoring
scores every sample's full length, the best case for reading the scores off
the sampling's own rows (issue 28; benchmarks/augment.py). The products keep
their sizes. Written as pytorch_model.bin, as the default.
"""
import json
import os
import shutil
import sys

import torch
from transformers import M2M100Config, M2M100ForConditionalGeneration

args = [x for x in sys.argv[1:] if x not in ("--stops", "--words")]
stops = "--stops" in sys.argv[1:]
words = "--words" in sys.argv[1:]
out = args[0] if args else "benchmarks/models/small100-random"
src = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "tiny-b")
os.makedirs(out, exist_ok=True)
torch.manual_seed(0)
cfg = M2M100Config(vocab_size=128112, d_model=1024, encoder_layers=12, decoder_layers=3, encoder_attention_heads=16,
                   decoder_attention_heads=16, encoder_ffn_dim=4096, decoder_ffn_dim=4096, max_position_embeddings=1024,
                   scale_embedding=True, activation_function="relu", pad_token_id=1, bos_token_id=0, eos_token_id=2,
                   decoder_start_token_id=2)
model = M2M100ForConditionalGeneration(cfg).eval()
model.config.to_json_file(os.path.join(out, "config.json"))
model.generation_config.update(num_beams=5, max_length=256)
model.generation_config.to_json_file(os.path.join(out, "generation_config.json"))
if stops:
    import numpy as np

    u = np.random.default_rng(1).standard_normal(cfg.d_model).astype(np.float32)
    u = torch.from_numpy(u / np.linalg.norm(u))
    with torch.no_grad():
        model.model.decoder.layer_norm.bias.copy_(u * 0.7)
        model.model.shared.weight[cfg.eos_token_id].copy_(u * 8)
    model.save_pretrained(out, safe_serialization=True)
else:
    if words:
        with open(os.path.join(src, "vocab.json"), encoding="utf-8") as f:
            pieces = json.load(f)
        keep = [i for p, i in pieces.items() if p.startswith("\u2581") and len(p) > 1] + [cfg.eos_token_id]
        scale = torch.full((cfg.vocab_size, 1), 0.01)
        scale[keep] = 1.0
        with torch.no_grad():
            model.model.shared.weight.mul_(scale)
    sd = model.state_dict()
    shared = sd["model.shared.weight"]
    for k in ("model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight", "lm_head.weight"):
        sd[k] = shared
    torch.save(sd, os.path.join(out, "pytorch_model.bin"))
for f in ("sentencepiece.bpe.model", "tokenizer_config.json", "special_tokens_map.json"):
    shutil.copy(os.path.join(src, f), out)
# vocab.json padded with never-produced pieces to the real 128,004 entries, so that
# language ids sit where SMaLL-100's do (128,004 + index) and converters that check
# vocabulary size against the embedding (CTranslate2's) accept the model
with open(os.path.join(src, "vocab.json"), encoding="utf-8") as f:
    vocab = json.load(f)
for i in range(len(vocab), cfg.vocab_size - 100 - 8):
    vocab[f"<unused{i}>"] = i
with open(os.path.join(out, "vocab.json"), "w", encoding="utf-8") as f:
    json.dump(vocab, f, ensure_ascii=False)
print(out)
