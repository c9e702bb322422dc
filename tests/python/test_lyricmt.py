"""The Python package against the command: the same translations and scores
on the fixtures' goldens, the same error messages, several threads on one
translator, the GIL released, Ctrl-C during a batch and during a bulk job.
Run by tests/test_python.sh (make test) with LYRICMT (the command) and
LYRICMT_LIBRARY (the library it links) set."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import lyricmt

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.abspath(os.environ.get("LYRICMT", os.path.join(ROOT, "build", "lyricmt")))
TINY = {name: os.path.join(ROOT, "tests", "fixtures", name) for name in ("tiny-a", "tiny-b")}
M = TINY["tiny-b"]


def cli(*args, stdin=None):
    """The command's stdout, stderr and exit status. It runs on the OpenBLAS
    kernels this process's library runs on: the command restarts itself with
    better ones on a CPU OpenBLAS does not know, a Python process cannot."""
    env = dict(os.environ, OPENBLAS_CORETYPE=lyricmt.version().split("OpenBLAS kernels: ")[1].split(";")[0])
    p = subprocess.run([BIN] + list(args), input=stdin, capture_output=True, cwd=ROOT, env=env)
    return p.stdout.decode(), p.stderr.decode(), p.returncode


def golden_rows(model, conv, name="golden_cli.tsv"):
    with open(os.path.join(TINY[model], name), encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f]
    return [r for r in rows if r[0] == conv]


@pytest.fixture(scope="module")
def tr():
    with lyricmt.Translator(M, threads=2) as t:
        yield t


@pytest.mark.parametrize("model", ["tiny-a", "tiny-b"])
@pytest.mark.parametrize("conv", ["m2m100", "small100"])
def test_translations_equal_the_command_and_transformers(tmp_path, model, conv):
    rows = golden_rows(model, conv)
    lines = [r[1] for r in rows]
    assert len(lines) == 13
    src = tmp_path / "in.txt"
    src.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    with lyricmt.Translator(TINY[model]) as t:
        greedy = t.translate_batch(lines, beam_size=1, return_scores=True, settings={"tokenizer.convention": conv})
        beam = t.translate_batch(lines, beam_size=5, num_hypotheses=3, return_scores=True, settings={"tokenizer.convention": conv})
    for results, flags in ((greedy, ["--beam", "1"]), (beam, ["--beam", "5", "--n-best", "3"])):
        out, err, rc = cli("translate", "--model", TINY[model], "--convention", conv, "--output-format", "tsv", "--quiet",
                           "-i", str(src), *flags)
        assert rc == 0, err
        records = [line.split("\t") for line in out.splitlines()]
        assert len(records) == len(results) == 13
        for rec, res in zip(records, results):
            # TSV: id, then (translation, score rounded to 4 decimals) per hypothesis
            assert rec[1::2] == res.hypotheses
            assert rec[2::2] == ["%.4f" % (round(s * 1e4) / 1e4) for s in res.scores]
    # and transformers' own texts (golden_cli.tsv: 3 greedy, 5/7/9 beam)
    assert [r.hypotheses[0] for r in greedy] == [row[2] for row in rows]
    assert [r.hypotheses for r in beam] == [[row[4], row[6], row[8]] for row in rows]


def test_scores_equal_the_command(tmp_path, tr):
    rows = golden_rows("tiny-b", "m2m100", "golden_score.tsv")
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("".join("%s\t%s\n" % (r[1], r[2]) for r in rows), encoding="utf-8")
    out, err, rc = cli("score", "--model", M, "--convention", "m2m100", "--quiet", "-i", str(pairs))
    assert rc == 0, err
    got = tr.score_batch([r[1] for r in rows], [r[2] for r in rows], settings={"tokenizer.convention": "m2m100"})
    assert len(got) == len(rows) >= 14
    want = [line.split("\t")[1:] for line in out.splitlines()]
    assert [["%.6f" % s.score, "%.6f" % s.normalized, str(s.tokens)] for s in got] == want
    for s, row in zip(got, rows):  # and transformers' loss
        assert s.score == pytest.approx(float(row[3]), rel=1e-4)


def test_blank_lines_and_bad_bytes_as_the_command(tr):
    lines = ["money on my mind", "", "   ", "a\0b", b"\xff\xfe bad bytes", "Yeah, yeah!"]
    res = tr.translate_batch(lines, beam_size=1, return_scores=True)
    assert [r.hypotheses for r in res[1:3]] == [[""], [""]] and [r.scores for r in res[1:3]] == [[None], [None]]
    assert res[3].warnings == ("invalid-utf8",) and res[4].warnings == ("invalid-utf8",) and res[0].warnings == ()
    out, err, rc = cli("translate", "--model", M, "--beam", "1", "--progress", "none",
                       stdin=b"money on my mind\n\n   \na\0b\n\xff\xfe bad bytes\nYeah, yeah!\n")
    assert rc == 0, err
    assert out.split("\n")[:-1] == [r.hypotheses[0] for r in res]
    assert tr.translate_batch(["money", ""], beam_size=1)[1].scores == []  # no scores unless asked
    skipped = tr.translate_batch(["a\0b"], settings={"input.bad_utf8": "skip"})[0]
    assert skipped.hypotheses == [""] and skipped.warnings == ("invalid-utf8",)


def test_errors_carry_the_commands_messages(tr):
    with pytest.raises(lyricmt.Error) as e:
        lyricmt.Translator("/nonexistent/model")
    _, err, rc = cli("translate", "--model", "/nonexistent/model", stdin=b"")
    assert rc == e.value.code == 1 and err.strip() == "lyricmt: " + str(e.value)

    with pytest.raises(lyricmt.UsageError) as e:
        tr.translate_batch(["money"], beam_size=0)
    _, err, rc = cli("translate", "--model", M, "--set", "num_beams=0", stdin=b"")
    assert rc == e.value.code == 2 and err.splitlines()[0] == "lyricmt: " + str(e.value)
    assert isinstance(e.value, ValueError)

    with pytest.raises(lyricmt.UsageError, match="exceeds the model's"):
        tr.translate_batch(["money"], max_length=100000)
    with pytest.raises(lyricmt.UsageError, match="unknown key 'decoding.num_beamz'"):
        tr.translate_batch(["money"], settings={"decoding.num_beamz": 2})
    with pytest.raises(lyricmt.UsageError, match="cannot exceed num_beams"):
        tr.translate_batch(["money"], beam_size=2, num_hypotheses=3)
    with pytest.raises(lyricmt.UsageError, match="chosen when the model is opened"):
        tr.translate_batch(["money"], settings={"precision": "int8"})
    with pytest.raises(lyricmt.UsageError, match="give sampling_topk"):
        tr.translate_batch(["money"], sampling_temperature=0.5)
    with pytest.raises(lyricmt.UsageError, match="precision"):
        lyricmt.Translator(M, precision="fp64")
    with pytest.raises(lyricmt.Error, match="unknown target language 'xx'"):
        tr.translate_batch(["money"], tgt="xx")
    with pytest.raises(lyricmt.UsageError, match="2 sources but 1 targets"):
        tr.score_batch(["a", "b"], ["c"])
    # bad arguments are Python exceptions, never a crash
    with pytest.raises(TypeError):
        tr.translate_batch(["money", 5])
    with pytest.raises(TypeError):
        tr.translate_batch("money")
    with pytest.raises(TypeError):
        tr.translate_batch(None)
    with pytest.raises(lyricmt.UsageError):
        tr.translate_batch(["money"], beam_size="five")
    with pytest.raises(lyricmt.UsageError, match="NUL"):
        tr.translate_batch(["money"], settings={"num_beams": "1\0"})
    with pytest.raises(ValueError, match="null byte"):
        lyricmt.Translator(M + "\0/x")
    # the translator still works after every error
    assert tr.translate_batch(["money"], beam_size=1)[0].hypotheses[0]


def test_closed_translator():
    t = lyricmt.Translator(M)
    t.close()
    t.close()
    with pytest.raises(ValueError, match="closed"):
        t.translate_batch(["money"])


def test_sampling_is_reproducible(tr):
    a = tr.translate_batch(["money on my mind"] * 3, sampling_topk=0, sampling_temperature=1.5, num_hypotheses=4, seed=7)
    b = tr.translate_batch(["money on my mind"] * 3, sampling_topk=0, sampling_temperature=1.5, num_hypotheses=4, seed=7)
    assert [r.hypotheses for r in a] == [r.hypotheses for r in b] and len(a[0].hypotheses) == 4
    out, err, rc = cli("translate", "--model", M, "--set", "do_sample=true", "--beam", "1", "--n-best", "4", "--set", "top_k=0",
                       "--set", "temperature=1.5", "--set", "seed=7", "--progress", "none", stdin=b"money on my mind\n")
    assert rc == 0, err
    assert out.rstrip("\n").split("\t") == a[0].hypotheses


def test_threads_share_one_translator_and_the_gil_is_released(tr):
    lines = ["I got money on my mind", "Cold nights in the city", "Fire on the mic", "never stop the grind"] * 5
    alone = [r.hypotheses for r in tr.translate_batch(lines, beam_size=3, num_hypotheses=2)]
    got, errors = [None] * 6, []

    def work(i):
        try:
            got[i] = [r.hypotheses for r in tr.translate_batch(lines, beam_size=3, num_hypotheses=2)]
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and all(g == alone for g in got)

    # while one thread is inside the library, this one runs Python
    big = ["I got money on my mind and the city never sleeps"] * 600
    worker = threading.Thread(target=lambda: tr.translate_batch(big, beam_size=4))
    worker.start()
    spins = 0
    while worker.is_alive():
        spins += 1
    worker.join()
    assert spins > 10000


INTERRUPT = textwrap.dedent("""
    import os, signal, sys, threading, time
    import lyricmt
    # a shell's background job starts with SIGINT ignored, and Python then keeps
    # it so; Ctrl-C at a terminal reaches Python's own handler, as here
    signal.signal(signal.SIGINT, signal.default_int_handler)
    t = lyricmt.Translator(sys.argv[1], threads=1)
    lines = ["line %d: I got money on my mind and the city never sleeps at night" % i for i in range(20000)]
    threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT)).start()
    start = time.time()
    try:
        t.translate_batch(lines, beam_size=5)
        print("finished")
    except KeyboardInterrupt:
        print("interrupted after %.1f s" % (time.time() - start))
    print(t.translate_batch(["money"], beam_size=1)[0].hypotheses[0])
""")


def test_keyboard_interrupt_stops_a_batch():
    p = subprocess.run([sys.executable, "-c", INTERRUPT, M], capture_output=True, timeout=120, env=os.environ.copy())
    out = p.stdout.decode().splitlines()
    assert p.returncode == 0, p.stderr.decode()
    assert out[0].startswith("interrupted after "), out
    # 20,000 lines at beam 5 take minutes on one thread; the stop comes after the batch in flight
    assert float(out[0].split()[2]) < 30
    assert out[1]  # the translator still translates afterwards


def test_translate_file_is_the_commands_job(tmp_path, tr):
    lines = ["I got money on my mind", "", "Cold nights in the city", "I got money on my mind", "Fire on the mic"]
    src = tmp_path / "in.txt"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tr.translate_file(str(src), str(tmp_path / "py.tsv"), output_format="tsv", beam_size=2)
    _, err, rc = cli("translate", "--model", M, "--output-format", "tsv", "--beam", "2", "--quiet", "-i", str(src), "-o",
                     str(tmp_path / "cli.tsv"))
    assert rc == 0, err
    assert (tmp_path / "py.tsv").read_bytes() == (tmp_path / "cli.tsv").read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["cli.tsv", "in.txt", "py.tsv"]  # no .partial, journal or lock left
    # a directory of songs to a directory
    songs = tmp_path / "songs"
    songs.mkdir()
    (songs / "a.txt").write_text("money\n", encoding="utf-8")
    (songs / "b.txt").write_text("city\nnight\n", encoding="utf-8")
    tr.translate_file(str(songs), str(tmp_path / "ko") + "/", beam_size=1)
    assert len((tmp_path / "ko" / "b.txt").read_text(encoding="utf-8").splitlines()) == 2
    # scoring
    (tmp_path / "p.tsv").write_text("money\t돈\n", encoding="utf-8")
    tr.translate_file(str(tmp_path / "p.tsv"), str(tmp_path / "s.tsv"), score=True)
    s = tr.score_batch(["money"], ["돈"])[0]
    assert (tmp_path / "s.tsv").read_text() == "1\t%.6f\t%.6f\t%d\n" % (s.score, s.normalized, s.tokens)
    # never over an input, with the command's message
    with pytest.raises(lyricmt.Error) as e:
        tr.translate_file(str(src), str(src))
    _, err, rc = cli("translate", "--model", M, "-i", str(src), "-o", str(src))
    assert rc == e.value.code == 1 and err.strip() == "lyricmt: " + str(e.value)
    assert src.read_text(encoding="utf-8") == "\n".join(lines) + "\n"
    with pytest.raises(lyricmt.UsageError, match="score reads and writes tsv or jsonl"):
        tr.translate_file(str(src), str(tmp_path / "x"), score=True, input_format="text")


# Ctrl-C once the journal vouches for some lines: on any machine, fast or
# loaded, the job is then under way and not yet done.
JOB_INTERRUPT = textwrap.dedent("""
    import os, signal, sys, threading, time
    import lyricmt
    t = lyricmt.Translator(sys.argv[1], threads=1)
    def interrupt_when_journaled(journal):
        for _ in range(30000):
            try:
                if any(l.startswith("progress\t") and int(l.split("\t")[1]) > 0 for l in open(journal)):
                    break
            except (OSError, ValueError, IndexError):
                pass
            time.sleep(0.001)
        os.kill(os.getpid(), signal.SIGINT)
    threading.Thread(target=interrupt_when_journaled, args=(sys.argv[3] + ".journal",), daemon=True).start()
    try:
        t.translate_file(sys.argv[2], sys.argv[3], beam_size=5, settings={"batch.window_lines": 64})
        print("finished")
    except KeyboardInterrupt as e:
        print("interrupted:", e)
""")


def test_keyboard_interrupt_stops_a_job_which_resumes(tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("".join("line %d: money on my mind and the city never sleeps\n" % i for i in range(20000)), encoding="utf-8")
    out = tmp_path / "out.txt"
    p = subprocess.run([sys.executable, "-c", JOB_INTERRUPT, M, str(src), str(out)], capture_output=True, timeout=300)
    assert p.returncode == 0, p.stderr.decode()
    assert p.stdout.decode().startswith("interrupted:"), p.stdout.decode()
    assert os.path.exists(str(out) + ".journal") and not out.exists()
    with lyricmt.Translator(M, threads=2) as t:
        t.translate_file(str(src), str(out), beam_size=5, settings={"batch.window_lines": 64})
    _, err, rc = cli("translate", "--model", M, "--beam", "5", "--quiet", "-i", str(src), "-o", str(tmp_path / "cli.txt"))
    assert rc == 0, err
    assert out.read_bytes() == (tmp_path / "cli.txt").read_bytes()


def to_korean(translator, batch):
    """The README's Hugging Face datasets example (datasets.map with batched=True)."""
    results = translator.translate_batch(batch["en"], beam_size=5)
    return {"ko": [r.hypotheses[0] for r in results]}


def test_the_readme_datasets_pattern(tr):
    batch = {"en": ["I got money on my mind", "", "Cold nights in the city"]}
    got = to_korean(tr, batch)["ko"]
    assert got == [r.hypotheses[0] for r in tr.translate_batch(batch["en"], beam_size=5)] and got[1] == ""
    try:
        import datasets
    except ImportError:
        return  # the plain-list pattern above is what CI can check
    ds = datasets.Dataset.from_dict({"en": batch["en"] * 3})
    mapped = ds.map(lambda b: to_korean(tr, b), batched=True, batch_size=4)
    assert mapped["ko"] == got * 3


def test_config_file_and_version(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("decoding:\n  num_beams: 1\nbatch:\n  max_tokens: 512\n")
    with lyricmt.Translator(M, config=str(cfg)) as t:
        got = t.translate_batch(["Cold nights in the city"], return_scores=True)[0]
    out, _, _ = cli("translate", "--model", M, "--config", str(cfg), "--output-format", "tsv", "--progress", "none",
                    stdin=b"Cold nights in the city\n")
    assert out.split("\t")[1] == got.hypotheses[0]
    with pytest.raises(lyricmt.UsageError, match="c2.yaml:1: unknown key"):
        (tmp_path / "c2.yaml").write_text("bogus: 1\n")
        lyricmt.Translator(M, config=str(tmp_path / "c2.yaml"))
    assert lyricmt.version() == cli("--version")[0].strip()
