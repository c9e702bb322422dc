#!/usr/bin/env python3
"""Make the tiny test models and record Hugging Face transformers' outputs on them.

For each model spec below this writes tests/fixtures/<name>/ laid out exactly as a
Hugging Face M2M100 download (config.json, generation_config.json,
tokenizer_config.json, special_tokens_map.json, vocab.json,
sentencepiece.bpe.model, and model.safetensors or pytorch_model.bin), with random
weights, plus golden.json: what transformers itself computes on those files
(token ids, encoder states, first decoder logits, greedy, beam and n-best outputs,
in both input conventions).

Needs: pip install transformers torch sentencepiece safetensors; spm_train
(Debian's `sentencepiece`). CI never runs this: the outputs are committed.
Run from the repository root:  python3 tests/make_fixtures.py
"""
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

import torch
from transformers import M2M100Config, M2M100ForConditionalGeneration, M2M100Tokenizer
from transformers.models.m2m_100.tokenization_m2m_100 import FAIRSEQ_LANGUAGE_CODES

ROOT = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(ROOT, "fixtures")

SPECS = [
    # name, weights file, stored dtype, spm vocab, d_model, enc, dec, heads, ffn, positions, seed
    dict(name="tiny-a", weights="safetensors", dtype=torch.float32, spm_vocab=300, d_model=32,
         enc_layers=2, dec_layers=1, heads=4, ffn=64, positions=96, seed=1),
    dict(name="tiny-b", weights="bin", dtype=torch.float16, spm_vocab=420, d_model=48,
         enc_layers=3, dec_layers=2, heads=6, ffn=80, positions=128, seed=2),
]

EN_WORDS = ("i you we they money flow rhyme beat street night city dream gold chain ride block real "
            "never stop grind hustle fire mic drop crown king queen love hate pain rain shine heart "
            "soul world back top game fame name time life light dark gun run fast slow hard cold "
            "hot high low big small young old rich broke cash stack ways days nights lights").split()
KO_WORDS = ("나는 너는 우리 그들 돈 흐름 라임 비트 거리 밤 도시 꿈 금 체인 타고 진짜 절대 멈추지 "
            "않아 노력 불 마이크 왕관 왕 여왕 사랑 미움 고통 비 빛 심장 영혼 세상 게임 이름 시간 "
            "인생 어둠 빠르게 느리게 차갑게 뜨겁게 높이 낮게 부자 현금 길 날들").split()

# Inputs the goldens are recorded on: lyric-like lines and the awkward cases.
INPUTS = [
    "I got money on my mind, never stop the grind",
    "Started from the bottom now we here",
    "Yeah, yeah!",
    "Cold nights in the city, dreams made of gold",
    "...!?",
    "Fire 🔥 on the mic 🎤",
    "나는 꿈을 꾼다",
    "Жизнь — это игра",
    "zzqxj wxyv perhapsly",
    " leading and trailing spaces ",
    "Hook: we ride, we ride, we ride, we ride, we ride, we ride",
    "I walk these streets at night with the lights so bright and the city never sleeps but I keep my eyes "
    "on the prize and my heart on the beat",
    "the </s> king __ko__ of the block",
]
# Tokenizer-only cases (the CLI never sends these to the model).
TOKENIZER_ONLY = ["", "   ", "\t"]

MAX_LEN = 24
EOS_BIAS = 1.3


def make_corpus(path, rng):
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(3000):
            words = EN_WORDS if rng.random() < 0.6 else KO_WORDS
            n = rng.randint(3, 12)
            line = " ".join(rng.choice(words) for _ in range(n))
            if rng.random() < 0.3:
                line = line.capitalize() + rng.choice([",", "!", "?", "...", ""])
            f.write(line + "\n")
        f.write("Жизнь это игра 🔥 🎤 ... !? : — ,\n")


def make_tokenizer(spec, d):
    rng = random.Random(spec["seed"])
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "corpus.txt")
        make_corpus(corpus, rng)
        prefix = os.path.join(tmp, "spm")
        subprocess.run(["spm_train", f"--input={corpus}", f"--model_prefix={prefix}", "--model_type=bpe",
                        f"--vocab_size={spec['spm_vocab']}", "--character_coverage=1.0", "--seed_sentencepiece_size=10000",
                        "--minloglevel=2", "--num_threads=1"], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        shutil.copy(prefix + ".model", os.path.join(d, "sentencepiece.bpe.model"))
        pieces = [line.split("\t")[0] for line in open(prefix + ".vocab", encoding="utf-8")]
    # vocab.json as fairseq lays it out: 4 specials, then pieces in dictionary
    # (not SentencePiece) order; a few pieces are left out so they map to <unk>.
    pieces = [p for p in pieces if p not in ("<unk>", "<s>", "</s>")]
    rng.shuffle(pieces)
    dropped = set(pieces[:5])
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for p in pieces:
        if p not in dropped:
            vocab[p] = len(vocab)
    with open(os.path.join(d, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False, indent=2)
    tok = M2M100Tokenizer(os.path.join(d, "vocab.json"), os.path.join(d, "sentencepiece.bpe.model"),
                          src_lang="en", tgt_lang="ko")
    write_tokenizer_config(d)
    # the goldens use the tokenizer as a user loads it (special-token splitting included)
    return M2M100Tokenizer.from_pretrained(d), len(vocab), sorted(dropped)


def write_tokenizer_config(d):
    """tokenizer_config.json and special_tokens_map.json as transformers 4.x saved them
    for the real checkpoints (language tokens listed as additional special tokens)."""
    langs = [f"__{c}__" for c in FAIRSEQ_LANGUAGE_CODES["m2m100"]]
    specials = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "sep_token": "</s>", "unk_token": "<unk>"}
    cfg = dict(additional_special_tokens=langs, clean_up_tokenization_spaces=True, language_codes="m2m100",
               model_max_length=1024, num_madeup_words=8, sp_model_kwargs={}, src_lang="en", tgt_lang="ko",
               tokenizer_class="M2M100Tokenizer", **specials)
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    with open(os.path.join(d, "special_tokens_map.json"), "w") as f:
        json.dump(dict(additional_special_tokens=langs, **specials), f, indent=2)


def make_model(spec, vocab_len):
    torch.manual_seed(spec["seed"])
    cfg = M2M100Config(vocab_size=vocab_len + 100 + 8, d_model=spec["d_model"], encoder_layers=spec["enc_layers"],
                       decoder_layers=spec["dec_layers"], encoder_attention_heads=spec["heads"],
                       decoder_attention_heads=spec["heads"], encoder_ffn_dim=spec["ffn"], decoder_ffn_dim=spec["ffn"],
                       max_position_embeddings=spec["positions"], scale_embedding=True, activation_function="relu",
                       pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2,
                       dropout=0.0, attention_dropout=0.0, activation_dropout=0.0)
    cfg._attn_implementation = "eager"
    model = M2M100ForConditionalGeneration(cfg).eval()
    with torch.no_grad():
        # Large embeddings give peaked, well-separated logits, so greedy and beam
        # choices are far from ties; a bias towards </s> gives varied lengths.
        model.model.shared.weight.normal_(0, 0.5)
        # Linear layers at 1/sqrt(fan_in) so every layer matters, and random
        # final-norm gains so the tied head does not just echo the last token.
        for mod in model.modules():
            if isinstance(mod, torch.nn.Linear) and mod.weight is not model.model.shared.weight:
                mod.weight.normal_(0, mod.weight.shape[1] ** -0.5)
        model.model.decoder.layer_norm.weight.normal_(0, 1.0)
        for p in model.parameters():
            if p.dim() == 1 and p is not model.model.decoder.layer_norm.bias:
                p.add_(torch.randn_like(p) * 0.05)
        model.model.decoder.layer_norm.bias.copy_(model.model.shared.weight[2] * EOS_BIAS)
        if spec["dtype"] != torch.float32:  # the stored precision is what HF computes with, in fp32
            for p in model.parameters():
                p.copy_(p.to(spec["dtype"]).to(torch.float32))
    model.generation_config.update(num_beams=5, max_length=MAX_LEN, early_stopping=False, length_penalty=1.0)
    return model


def save_model(spec, model, d):
    model.config.to_json_file(os.path.join(d, "config.json"))
    model.generation_config.to_json_file(os.path.join(d, "generation_config.json"))
    if spec["weights"] == "safetensors":
        model.save_pretrained(d, safe_serialization=True)
    else:
        sd = {k: v.to(spec["dtype"]) for k, v in model.state_dict().items()}
        # tie the storages again, as torch.save of the original model would
        shared = sd["model.shared.weight"]
        for k in ("model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight", "lm_head.weight"):
            sd[k] = shared
        torch.save(sd, os.path.join(d, "pytorch_model.bin"))
    for f in ("added_tokens.json", "chat_template.jinja"):
        if os.path.exists(os.path.join(d, f)):
            os.remove(os.path.join(d, f))


def src_ids(tok, text, convention):
    # m2m100: [__en__] pieces </s>, forced __ko__; small100 native: [__ko__] pieces </s>
    tok.src_lang = "en" if convention == "m2m100" else "ko"
    return tok(text)["input_ids"]


def gen_kwargs(tok, convention):
    return {"forced_bos_token_id": tok.get_lang_id("ko")} if convention == "m2m100" else {}


def flat(t):
    return [round(float(x), 7) for x in t.reshape(-1).tolist()]


def record(model, tok, dropped):
    golden = {"max_length": MAX_LEN, "dropped_pieces": dropped, "tokenizer": [], "conventions": {}}
    for text in INPUTS + TOKENIZER_ONLY:
        tok.src_lang = "en"
        golden["tokenizer"].append({"text": text, "ids": tok(text)["input_ids"]})
    decode = lambda ids: tok.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    for conv in ("m2m100", "small100"):
        cases = []
        for i, text in enumerate(INPUTS):
            ids = src_ids(tok, text, conv)
            x = torch.tensor([ids])
            case = {"text": text, "input_ids": ids}
            with torch.no_grad():
                enc = model.get_encoder()(input_ids=x).last_hidden_state[0]
                kw = gen_kwargs(tok, conv)
                g = model.generate(x, num_beams=1, do_sample=False, max_length=MAX_LEN, **kw)[0].tolist()
                case["greedy_ids"] = g
                case["greedy_text"] = decode(g)
                b = model.generate(x, num_beams=5, do_sample=False, max_length=MAX_LEN, early_stopping=False,
                                   length_penalty=1.0, num_return_sequences=3, output_scores=True,
                                   return_dict_in_generate=True, **kw)
                case["beam_ids"] = [strip_pad(s.tolist()) for s in b.sequences]
                case["beam_scores"] = [float(s) for s in b.sequences_scores]
                case["beam_text"] = [decode(s) for s in case["beam_ids"]]
                if i < 4:
                    case["encoder_out"] = flat(enc)
                    # logits of the first 3 decoder steps along the greedy path
                    dec_in = torch.tensor([g[:3]])
                    logits = model(input_ids=x, decoder_input_ids=dec_in).logits[0]
                    case["decoder_logits"] = flat(logits)
                if i < 6:
                    opts = dict(num_beams=4, max_length=MAX_LEN, min_length=6, no_repeat_ngram_size=2,
                                repetition_penalty=1.3, length_penalty=0.7, early_stopping=True)
                    o = model.generate(x, do_sample=False, num_return_sequences=2, **opts, **kw)
                    case["options"] = {k: v for k, v in opts.items()}
                    case["options_ids"] = [strip_pad(s.tolist()) for s in o]
                    og = model.generate(x, num_beams=1, do_sample=False, max_length=MAX_LEN, min_length=6,
                                        no_repeat_ngram_size=2, repetition_penalty=1.3, **kw)[0].tolist()
                    case["options_greedy_ids"] = strip_pad(og)
            cases.append(case)
        golden["conventions"][conv] = cases
    return golden


def strip_pad(ids):
    while ids and ids[-1] == 1:
        ids = ids[:-1]
    return ids


def main():
    os.makedirs(OUT, exist_ok=True)
    for spec in SPECS:
        d = os.path.join(OUT, spec["name"])
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        tok, vocab_len, dropped = make_tokenizer(spec, d)
        model = make_model(spec, vocab_len)
        save_model(spec, model, d)
        golden = record(model, tok, dropped)
        with open(os.path.join(d, "golden.json"), "w", encoding="utf-8") as f:
            json.dump(golden, f, ensure_ascii=False)
        lens = [len(c["greedy_ids"]) for c in golden["conventions"]["m2m100"]]
        print(f"{spec['name']}: vocab {vocab_len + 108}, greedy lengths {lens}", file=sys.stderr)


if __name__ == "__main__":
    main()
