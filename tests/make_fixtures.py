#!/usr/bin/env python3
"""Make the tiny test models and record Hugging Face transformers' outputs on them.

For each model spec below this writes tests/fixtures/<name>/ laid out exactly as a
Hugging Face M2M100 download (config.json, generation_config.json,
tokenizer_config.json, special_tokens_map.json, vocab.json,
sentencepiece.bpe.model, and model.safetensors or pytorch_model.bin), with weights
trained for a few hundred steps on a synthetic EN->KO task (so outputs vary in length
and content and end with </s>, in both conventions), plus golden.json: what
transformers itself computes on those files (eager attention, fp32), for every input
and both input conventions: source ids, encoder states, the first decoder steps'
logits, greedy, beam 3-best and option-laden outputs with their scores, detokenised
texts, and the first step's sampling distributions under transformers' warpers; and
golden_cli.tsv, the same texts and scores for the shell tests. The torch and
transformers versions are in golden.json's "meta".

Needs: pip install transformers torch sentencepiece safetensors; spm_train
(Debian's `sentencepiece`). CI never runs this: the outputs are committed.
Run from the repository root:  python3 tests/make_fixtures.py
(--sweep prints how varied the outputs are for a few training lengths.)
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

MAX_LEN = 24
# The models are trained briefly (train(), steps per spec) on a synthetic word-for-word EN->KO task in
# both conventions, so that outputs end with </s> at lengths that follow the input and
# differ in content from input to input; random weights either stop at once or run to
# max_length.
# transformers' sampling warpers, recorded on the first step's logits (test_golden's
# distribution check): temperature, top-k, top-p in transformers' order
SAMPLING = [dict(temperature=1.0, top_k=0, top_p=1.0), dict(temperature=1.5, top_k=5, top_p=1.0),
            dict(temperature=1.3, top_k=0, top_p=0.8)]


SPECS = [
    # name, weights file, stored dtype, spm vocab, d_model, enc, dec, heads, ffn, positions, seed,
    # training steps (chosen with --sweep for the most varied outputs); tie=True: see make_ties
    dict(name="tiny-a", weights="safetensors", dtype=torch.float32, spm_vocab=300, d_model=32,
         enc_layers=2, dec_layers=1, heads=4, ffn=64, positions=96, seed=1, steps=800),
    dict(name="tiny-b", weights="bin", dtype=torch.float16, spm_vocab=420, d_model=48,
         enc_layers=3, dec_layers=2, heads=6, ffn=80, positions=128, seed=2, steps=400),
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


def parallel_pairs(rng, n):
    """Synthetic lyric pairs: English words, each mapped to a fixed Korean word, some
    dropped, so target lengths follow but do not equal source lengths."""
    lexicon = {w: KO_WORDS[(i * 7) % len(KO_WORDS)] for i, w in enumerate(EN_WORDS)}
    pairs = []
    for _ in range(n):
        words = [rng.choice(EN_WORDS) for _ in range(rng.randint(1, 12))]
        src = " ".join(words)
        if rng.random() < 0.3:
            src = src.capitalize() + rng.choice([",", "!", "?", "...", ""])
        pairs.append((src, " ".join(lexicon[w] for w in words if len(w) > 2)))
    return pairs


def train(model, tok, spec):
    """A few hundred Adam steps on parallel_pairs, half the batches in each
    convention (m2m100: [__en__] source, labels [__ko__] ... </s>; small100: [__ko__]
    source, labels ... </s>)."""
    torch.manual_seed(spec["seed"])
    rng = random.Random(spec["seed"] + 100)
    pairs = parallel_pairs(rng, 4000)
    ko = tok.get_lang_id("ko")
    opt = torch.optim.Adam(model.parameters(), lr=spec.get("lr", 3e-3))
    model.train()
    for step in range(spec["steps"]):
        conv = "m2m100" if step % 2 == 0 else "small100"
        batch = [pairs[rng.randrange(len(pairs))] for _ in range(32)]
        src = [src_ids(tok, s, conv) for s, _ in batch]
        tgt = [([ko] if conv == "m2m100" else []) + tok(t, add_special_tokens=False)["input_ids"] + [2] for _, t in batch]
        pad = lambda seqs, v: torch.tensor([q + [v] * (max(map(len, seqs)) - len(q)) for q in seqs])
        x, labels = pad(src, 1), pad(tgt, -100)
        dec_in = torch.cat([torch.full((len(batch), 1), 2), labels[:, :-1].clamp(min=1)], dim=1)
        loss = model(input_ids=x, attention_mask=(x != 1).long(), decoder_input_ids=dec_in, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(f"{spec['name']}: trained {spec['steps']} steps, final loss {loss.item():.3f}", file=sys.stderr)


def make_ties(model, tok):
    """Exact ties, so that the goldens record how transformers orders them: the
    embedding row (tied to the output projection) of the likeliest first token is
    copied to a lower id, so the two get bit-identical logits at every step.
    Off in SPECS: greedy then matches (argmax keeps the first), but beam search
    does not, since transformers orders tied candidates by torch.topk, whose order
    among equal values is unspecified and not "lower id first" as the engine's
    (logit_rules.h); with tie=True on tiny-b, 204 of 234 beam hypotheses differ."""
    with torch.no_grad():
        x = torch.tensor([src_ids(tok, INPUTS[0], "small100")])
        logits = model(input_ids=x, decoder_input_ids=torch.tensor([[2]])).logits[0, -1]
        a = int(logits.argmax())
        b = 4 if a != 4 else 5
        model.model.shared.weight[b] = model.model.shared.weight[a]
    print(f"tie: token {b} now has token {a}'s embedding", file=sys.stderr)


def make_model(spec, vocab_len, tok):
    torch.manual_seed(spec["seed"])
    cfg = M2M100Config(vocab_size=vocab_len + 100 + 8, d_model=spec["d_model"], encoder_layers=spec["enc_layers"],
                       decoder_layers=spec["dec_layers"], encoder_attention_heads=spec["heads"],
                       decoder_attention_heads=spec["heads"], encoder_ffn_dim=spec["ffn"], decoder_ffn_dim=spec["ffn"],
                       max_position_embeddings=spec["positions"], scale_embedding=True, activation_function="relu",
                       pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2,
                       dropout=0.0, attention_dropout=0.0, activation_dropout=0.0)
    cfg._attn_implementation = "eager"
    model = M2M100ForConditionalGeneration(cfg)
    train(model, tok, spec)
    model.eval()
    if spec.get("tie"):
        make_ties(model, tok)
    if spec["dtype"] != torch.float32:  # the stored precision is what HF computes with, in fp32
        with torch.no_grad():
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
    return [float("%.8g" % x) for x in t.reshape(-1).tolist()]


OPTIONS = dict(num_beams=4, max_length=MAX_LEN, min_length=6, no_repeat_ngram_size=2, repetition_penalty=1.3,
               length_penalty=0.7, early_stopping=True)
OPTIONS_GREEDY = dict(num_beams=1, max_length=MAX_LEN, min_length=6, no_repeat_ngram_size=2, repetition_penalty=1.3)


def greedy(model, x, kw, **opts):
    """Greedy ids and their score: the summed log-softmax of the processed logits
    at each chosen token (compute_transition_scores with normalize_logits)."""
    out = model.generate(x, do_sample=False, output_scores=True, return_dict_in_generate=True, **opts, **kw)
    steps = model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)[0]
    return strip_pad(out.sequences[0].tolist()), float(steps.sum())


def beam(model, x, kw, n, **opts):
    out = model.generate(x, do_sample=False, num_return_sequences=n, output_scores=True, return_dict_in_generate=True,
                         **opts, **kw)
    return [strip_pad(s.tolist()) for s in out.sequences], [float(s) for s in out.sequences_scores]


def warped_probs(model, x, first_ids, settings):
    """transformers' own warpers on the first sampled step: {token: probability} of
    every token it can draw."""
    from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper
    dec = torch.tensor([first_ids])
    logits = model(input_ids=x, decoder_input_ids=dec).logits[:, -1, :]
    warpers = LogitsProcessorList()
    if settings["temperature"] != 1.0:
        warpers.append(TemperatureLogitsWarper(settings["temperature"]))
    if settings["top_k"] > 0:
        warpers.append(TopKLogitsWarper(settings["top_k"]))
    if settings["top_p"] < 1.0:
        warpers.append(TopPLogitsWarper(settings["top_p"]))
    probs = torch.softmax(warpers(dec, logits), dim=-1)[0]
    return [[i, float(p)] for i, p in enumerate(probs.tolist()) if p > 0]


def record(model, tok, dropped):
    import transformers
    golden = {"meta": {"torch": torch.__version__, "transformers": transformers.__version__,
                       "attention": "eager", "dtype": "float32"},
              "max_length": MAX_LEN, "dropped_pieces": dropped, "tokenizer": [], "conventions": {},
              "options": OPTIONS, "options_greedy": OPTIONS_GREEDY}
    for text in INPUTS + TOKENIZER_ONLY:
        tok.src_lang = "en"
        golden["tokenizer"].append({"text": text, "ids": tok(text)["input_ids"]})
    decode = lambda ids: tok.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    for conv in ("m2m100", "small100"):
        cases = []
        for text in INPUTS:
            ids = src_ids(tok, text, conv)
            x = torch.tensor([ids])
            case = {"text": text, "input_ids": ids}
            kw = gen_kwargs(tok, conv)
            with torch.no_grad():
                case["encoder_out"] = flat(model.get_encoder()(input_ids=x).last_hidden_state[0])
                g, case["greedy_score"] = greedy(model, x, kw, num_beams=1, max_length=MAX_LEN)
                case["greedy_ids"] = g
                case["greedy_text"] = decode(g)
                case["beam_ids"], case["beam_scores"] = beam(model, x, kw, 3, num_beams=5, max_length=MAX_LEN,
                                                             early_stopping=False, length_penalty=1.0)
                case["beam_text"] = [decode(s) for s in case["beam_ids"]]
                # logits of the first decoder steps along the greedy path
                dec_in = torch.tensor([g[:4]])
                case["decoder_logits"] = flat(model(input_ids=x, decoder_input_ids=dec_in).logits[0])
                case["options_ids"], case["options_scores"] = beam(model, x, kw, 2, **OPTIONS)
                case["options_greedy_ids"], case["options_greedy_score"] = greedy(model, x, kw, **OPTIONS_GREEDY)
            cases.append(case)
        golden["conventions"][conv] = cases
    # the sampling distributions of the first step (small100: nothing is forced there)
    x = torch.tensor([src_ids(tok, INPUTS[0], "small100")])
    with torch.no_grad():
        golden["sampling"] = [dict(s, convention="small100", case=0, probs=warped_probs(model, x, [2], s))
                              for s in SAMPLING]
    return golden


def stats(golden):
    """How much the goldens react: lengths, distinct outputs, beams that end."""
    out = []
    for conv, cases in golden["conventions"].items():
        lens = [len(c["greedy_ids"]) for c in cases]
        ended = sum(h[-1] == 2 for c in cases for h in c["beam_ids"])
        total = sum(len(c["beam_ids"]) for c in cases)
        out.append(f"{conv}: greedy lengths {lens}, {len(set(c['greedy_text'] for c in cases))} distinct greedy, "
                   f"{len(set(c['beam_text'][0] for c in cases))} distinct beam, {ended}/{total} beam hyps end with </s>, "
                   f"option lengths {[len(c['options_ids'][0]) for c in cases]}")
    return "\n  ".join(out)


def strip_pad(ids):
    while ids and ids[-1] == 1:
        ids = ids[:-1]
    return ids


def write_cli_table(golden, d):
    """golden_cli.tsv: the goldens the shell tests need, in a form sh and awk read
    (test_golden checks that it agrees with golden.json). One line per convention
    and input: convention, text, greedy text, greedy score, then the 3-best beam
    texts and scores."""
    with open(os.path.join(d, "golden_cli.tsv"), "w", encoding="utf-8") as f:
        for conv, cases in golden["conventions"].items():
            for c in cases:
                cols = [conv, c["text"], c["greedy_text"], repr(c["greedy_score"])]
                for t, sc in zip(c["beam_text"], c["beam_scores"]):
                    cols += [t, repr(sc)]
                assert not any("\t" in x or "\n" in x for x in cols)
                f.write("\t".join(cols) + "\n")


def quick_stats(spec, model, tok):
    """stats() on greedy and beam outputs only (for --sweep)."""
    decode = lambda ids: tok.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    golden = {"conventions": {}}
    for conv in ("m2m100", "small100"):
        cases = []
        for text in INPUTS:
            x = torch.tensor([src_ids(tok, text, conv)])
            kw = gen_kwargs(tok, conv)
            with torch.no_grad():
                g, _ = greedy(model, x, kw, num_beams=1, max_length=MAX_LEN)
                b, _ = beam(model, x, kw, 3, num_beams=5, max_length=MAX_LEN, early_stopping=False, length_penalty=1.0)
                o, _ = beam(model, x, kw, 2, **OPTIONS)
            cases.append({"greedy_ids": g, "greedy_text": decode(g), "beam_ids": b, "beam_text": [decode(h) for h in b],
                          "options_ids": o})
        golden["conventions"][conv] = cases
    return stats(golden)


def sweep():
    """Prints how the goldens would react for a few training lengths (nothing written)."""
    for spec in SPECS:
        with tempfile.TemporaryDirectory() as d:
            tok, vocab_len, _ = make_tokenizer(spec, d)
            for steps, lr in ((400, 3e-3), (800, 3e-3), (800, 1e-3), (1500, 1e-3)):
                if "--only" in sys.argv and spec["name"] != sys.argv[-1]:
                    continue
                model = make_model(dict(spec, steps=steps, lr=lr), vocab_len, tok)
                print(f"{spec['name']} {steps} steps at {lr}:\n  {quick_stats(spec, model, tok)}", flush=True)


def main():
    if "--sweep" in sys.argv:
        return sweep()
    os.makedirs(OUT, exist_ok=True)
    for spec in SPECS:
        d = os.path.join(OUT, spec["name"])
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        tok, vocab_len, dropped = make_tokenizer(spec, d)
        model = make_model(spec, vocab_len, tok)
        save_model(spec, model, d)
        golden = record(model, tok, dropped)
        with open(os.path.join(d, "golden.json"), "w", encoding="utf-8") as f:
            json.dump(golden, f, ensure_ascii=False)
        write_cli_table(golden, d)
        print(f"{spec['name']}: vocab {vocab_len + 108}\n  {stats(golden)}", file=sys.stderr)


if __name__ == "__main__":
    main()
