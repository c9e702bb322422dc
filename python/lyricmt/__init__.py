"""lyricmt from Python: the engine of the ``lyricmt`` command (M2M100 /
SMaLL-100, English to Korean lyrics) over its C library, with an interface
shaped like CTranslate2's::

    import lyricmt

    translator = lyricmt.Translator("en2ko_hiphop_small-100", device="cpu", precision="int8")
    results = translator.translate_batch(["I got money on my mind"], beam_size=5,
                                         num_hypotheses=2, return_scores=True)
    results[0].hypotheses   # ['...', '...'], best first
    results[0].scores       # [-0.41, -0.52]

Translations are identical to what ``lyricmt translate`` writes with the same
settings. The library does the work with the GIL released, so other Python
threads run meanwhile; calls on one translator from several threads take
turns. Errors are ``lyricmt.Error`` (``UsageError`` for a bad argument or
setting) with the message the command prints. Ctrl-C during a call stops it
after the batch in flight and raises ``KeyboardInterrupt``.
"""

import collections
import ctypes
import os
import threading

__all__ = ["Translator", "TranslationResult", "ScoringResult", "Error", "UsageError", "Stopped", "version"]
__version__ = "0.4.0"

# libgomp reads its wait policy once, as it loads: idle OpenMP threads that spin
# take the cores from busy ones when anything else runs (the command sets the
# same default; benchmarks/NOTES.md, attempt 5).
if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["OMP_WAIT_POLICY"] = "passive"

_HERE = os.path.dirname(os.path.abspath(__file__))
_SONAME = "liblyricmt.so.0"


def _find_library():
    candidates = [os.environ.get("LYRICMT_LIBRARY"),
                  os.path.join(_HERE, _SONAME),                      # installed by pip
                  os.path.join(_HERE, "..", "..", "build", _SONAME)]  # the repository's own build
    for path in candidates:
        if path and os.path.exists(path):
            return os.path.abspath(path)
    raise ImportError("lyricmt: %s not found (run make in the repository, or pip install it; "
                      "LYRICMT_LIBRARY names another)" % _SONAME)


_lib = ctypes.CDLL(_find_library())

_OK, _RUNTIME, _USAGE, _STOPPED = 0, 1, 2, 3
_BLANK, _INVALID_UTF8, _TOO_LONG, _SKIPPED = 1, 2, 4, 8
_PROGRESS_MODES = {None: 0, False: 0, "none": 0, "plain": 1, True: 2, "bar": 2}


class _Error(ctypes.Structure):
    _fields_ = [("message", ctypes.c_char * 512)]


_PROGRESS = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_long)


class _Call(ctypes.Structure):
    _fields_ = [("settings", ctypes.POINTER(ctypes.c_char_p)), ("n_settings", ctypes.c_size_t),
                ("cancel", ctypes.POINTER(ctypes.c_int)), ("progress", _PROGRESS), ("progress_ctx", ctypes.c_void_p)]


class _Translation(ctypes.Structure):
    _fields_ = [("n_hypotheses", ctypes.c_size_t), ("texts", ctypes.POINTER(ctypes.c_char_p)),
                ("scores", ctypes.POINTER(ctypes.c_float)), ("tokens", ctypes.c_long), ("flags", ctypes.c_uint)]


class _PairScore(ctypes.Structure):
    _fields_ = [("score", ctypes.c_float), ("normalized", ctypes.c_float), ("tokens", ctypes.c_int), ("flags", ctypes.c_uint)]


class _Results(ctypes.Structure):
    _fields_ = [("n", ctypes.c_size_t), ("translations", ctypes.POINTER(_Translation)),
                ("scores", ctypes.POINTER(_PairScore)), ("tokens", ctypes.c_long)]


class _Job(ctypes.Structure):
    _fields_ = [("inputs", ctypes.POINTER(ctypes.c_char_p)), ("n_inputs", ctypes.c_size_t), ("output", ctypes.c_char_p),
                ("report", ctypes.c_char_p), ("score", ctypes.c_int), ("restart", ctypes.c_int), ("progress", ctypes.c_int),
                ("summary", ctypes.c_int)]


def _declare(name, restype, *argtypes):
    f = getattr(_lib, name)
    f.restype, f.argtypes = restype, list(argtypes)
    return f


_P = ctypes.POINTER
_version = _declare("lyricmt_version", ctypes.c_char_p)
_open = _declare("lyricmt_open", ctypes.c_int, ctypes.c_char_p, _P(ctypes.c_char_p), ctypes.c_size_t, _P(ctypes.c_void_p), _P(_Error))
_close = _declare("lyricmt_close", None, ctypes.c_void_p)
_translate = _declare("lyricmt_translate", ctypes.c_int, ctypes.c_void_p, _P(ctypes.c_char_p), ctypes.c_size_t, _P(_Call),
                      _P(_P(_Results)), _P(_Error))
_score = _declare("lyricmt_score", ctypes.c_int, ctypes.c_void_p, _P(ctypes.c_char_p), _P(ctypes.c_char_p), ctypes.c_size_t,
                  _P(_Call), _P(_P(_Results)), _P(_Error))
_results_free = _declare("lyricmt_results_free", None, _P(_Results))
_run_job = _declare("lyricmt_run_job", ctypes.c_int, ctypes.c_void_p, _P(_Job), _P(_Call), _P(_Error))


class Error(RuntimeError):
    """A failure the command would report with exit status 1 (or `code`)."""

    def __init__(self, message, code=_RUNTIME):
        super().__init__(message)
        self.code = code


class UsageError(Error, ValueError):
    """A bad argument or setting: the command's exit status 2."""


class Stopped(Error):
    """A bulk job stopped by SIGTERM (128 + 15): what was finished is journaled."""


def version():
    """The library's version line, as ``lyricmt --version`` prints it."""
    return _version().decode()


def _raise(rc, err):
    message = err.message.decode("utf-8", "replace")
    if rc == _USAGE:
        raise UsageError(message, rc)
    if rc == 128 + 2:
        raise KeyboardInterrupt(message)
    if rc > 128:
        raise Stopped(message, rc)
    raise Error(message, rc)


def _text(value):
    """A str or bytes line as the bytes the library reads. A NUL byte, which a
    C string cannot hold, becomes an invalid byte, so that input.bad_utf8
    treats it as the command treats a NUL (replace, skip or fail)."""
    if isinstance(value, str):
        value = value.encode("utf-8", "surrogatepass")
    elif not isinstance(value, (bytes, bytearray)):
        raise TypeError("expected str or bytes, got %s" % type(value).__name__)
    return bytes(value).replace(b"\0", b"\xff")


def _strings(values, name):
    if isinstance(values, (str, bytes)):
        raise TypeError("%s must be a list of strings, not one string" % name)
    encoded = [_text(v) for v in values]
    return (ctypes.c_char_p * max(len(encoded), 1))(*encoded), len(encoded)


def _setting_text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _settings(pairs):
    """[("num_beams", 5), ...] as the library's "key=value" strings; None values are left out."""
    items = [("%s=%s" % (k, _setting_text(v))).encode() for k, v in pairs if v is not None]
    for item in items:
        if b"\0" in item:
            raise UsageError("setting %r holds a NUL character" % item.decode(), _USAGE)
    return (ctypes.c_char_p * max(len(items), 1))(*items), len(items)


def _path(path):
    """A path as a C string: one holding a NUL is refused, as open() refuses it."""
    encoded = os.fsencode(path)
    if b"\0" in encoded:
        raise ValueError("embedded null byte in path %r" % (path,))
    return encoded


class TranslationResult(object):
    """One source line's translation, like CTranslate2's: ``hypotheses`` (texts,
    best first) and ``scores`` (empty unless ``return_scores``). A blank line
    (or one every hypothesis of which was filtered out, or skipped by an input
    policy) gives one empty hypothesis with score None: the model gave nothing.
    ``tokens``: target tokens generated; ``warnings``: "invalid-utf8",
    "too-long" as the command's warnings name them."""

    __slots__ = ("hypotheses", "scores", "tokens", "warnings")

    def __init__(self, hypotheses, scores, tokens=0, warnings=()):
        self.hypotheses, self.scores, self.tokens, self.warnings = hypotheses, scores, tokens, warnings

    def __getitem__(self, i):  # CTranslate2's older dict-like access: result[0]["tokens"]
        return {"hypothesis": self.hypotheses[i], "score": self.scores[i] if self.scores else None}

    def __len__(self):
        return len(self.hypotheses)

    def __repr__(self):
        return "TranslationResult(hypotheses=%r, scores=%r)" % (self.hypotheses, self.scores)


ScoringResult = collections.namedtuple("ScoringResult", "score normalized tokens")
ScoringResult.__doc__ = """A pair's score as ``lyricmt score`` writes it: the summed log-probability of
the target's labels, that over the number of labels, and the number (None,
None, 0 for a pair an input policy skipped)."""


def _warnings(flags):
    return tuple(name for bit, name in ((_INVALID_UTF8, "invalid-utf8"), (_TOO_LONG, "too-long")) if flags & bit)


class Translator(object):
    """A model directory (as downloaded from Hugging Face) ready to translate.

    device: "cpu" or "cuda"; precision: None (auto: fp32 on the CPU, bf16 on
    a GPU), "fp32" (identical to transformers), "int8" or "bf16" on the CPU,
    "fp16" or "bf16" on a GPU; threads: CPU
    threads (0: all cores); workers, devices: several CPU workers or GPUs.
    config: a YAML file of engine settings (configs/*.yaml, or the one
    ``lyricmt bench`` writes); settings: any other engine setting by its
    config key, e.g. {"batch.max_tokens": 8192}, applied to every call.
    """

    def __init__(self, model_dir, device="cpu", precision=None, threads=0, workers=None, devices=None, config=None,
                 settings=None):
        self._handle = None
        self._lock = threading.Condition()
        self._active = 0
        pairs = [("config", config), ("device", device), ("precision", precision), ("threads", threads),
                 ("workers", workers), ("devices", devices)] + list((settings or {}).items())
        arr, n = _settings(pairs)
        handle, err = ctypes.c_void_p(), _Error()
        rc = _open(_path(model_dir), arr, n, ctypes.byref(handle), ctypes.byref(err))
        if rc != _OK:
            _raise(rc, err)
        self._handle = handle

    # ---- lifetime: a call holds the handle; close waits for running calls ----

    def _enter(self):
        with self._lock:
            if self._handle is None:
                raise ValueError("this Translator is closed")
            self._active += 1
            return self._handle

    def _leave(self):
        with self._lock:
            self._active -= 1
            self._lock.notify_all()

    def close(self):
        """Frees the model, once every running call has returned."""
        with self._lock:
            while self._active:
                self._lock.wait()
            handle, self._handle = self._handle, None
        if handle:
            _close(handle)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_handle", None):
            _close(self._handle)
            self._handle = None

    # ---- calls ----

    def _call(self, fn, settings):
        """Runs fn(call) with the library's cancel flag wired to Ctrl-C.

        A Python signal handler runs only between bytecodes of the main
        thread, never while it is inside the library. So on the main thread
        the call runs on a helper thread while the main thread waits; a
        KeyboardInterrupt there sets the cancel flag, the library stops after
        the batch in flight, and the interrupt goes on up."""
        arr, n = _settings(settings)
        cancel = ctypes.c_int(0)
        call = _Call(arr, n, ctypes.pointer(cancel), _PROGRESS(), None)
        handle = self._enter()
        try:
            if threading.current_thread() is not threading.main_thread():
                return fn(handle, ctypes.byref(call))
            box = {}
            worker = threading.Thread(target=lambda: box.setdefault("rc", fn(handle, ctypes.byref(call))), daemon=True)
            worker.start()
            try:
                while worker.is_alive():
                    worker.join(0.5)
            except KeyboardInterrupt:
                cancel.value = 1
                worker.join()
                raise
            return box["rc"]
        finally:
            self._leave()

    def _results(self, run, settings, result):
        """run(handle, call, out, err) through _call, then result(results, i)
        for each input; the library's results are freed whatever happens."""
        out, err = _P(_Results)(), _Error()
        rc = self._call(lambda h, call: run(h, call, ctypes.byref(out), ctypes.byref(err)), settings)
        if rc != _OK:
            _raise(rc, err)
        try:
            return [result(out.contents, i) for i in range(out.contents.n)]
        finally:
            _results_free(out)

    def translate_batch(self, source, beam_size=None, num_hypotheses=1, return_scores=False, max_length=None, min_length=None,
                        length_penalty=None, repetition_penalty=None, no_repeat_ngram_size=None, early_stopping=None,
                        sampling_topk=None, sampling_topp=None, sampling_temperature=None, seed=None, max_batch_size=None,
                        max_batch_tokens=None, src=None, tgt=None, settings=None):
        """Translates a list of lines (str or bytes); returns one
        TranslationResult per line, in order.

        beam_size: the model's generation_config.json when None (5 for
        en2ko_hiphop_small-100); num_hypotheses: hypotheses per line (with
        sampling: samples). max_length and min_length count tokens as
        transformers does (the decoder start token included). Sampling as in
        CTranslate2: sampling_topk other than 1 samples (0: from the whole
        vocabulary), with sampling_topp and sampling_temperature, reproducible
        with seed. max_batch_size / max_batch_tokens: batch.max_sentences /
        batch.max_tokens. settings: any other engine setting by its key.
        """
        sampling = sampling_topk is not None and sampling_topk != 1
        if not sampling and (sampling_topp is not None or sampling_temperature is not None):
            raise UsageError("sampling_topp and sampling_temperature apply when sampling: give sampling_topk "
                             "(0 for the whole vocabulary, or K > 1), as in CTranslate2", _USAGE)
        pairs = [("num_beams", beam_size if beam_size is not None else (1 if sampling else None)),
                 ("num_return_sequences", num_hypotheses), ("max_length", max_length), ("min_length", min_length),
                 ("length_penalty", length_penalty), ("repetition_penalty", repetition_penalty),
                 ("no_repeat_ngram_size", no_repeat_ngram_size), ("early_stopping", early_stopping),
                 ("do_sample", True if sampling else None), ("top_k", sampling_topk if sampling else None),
                 ("top_p", sampling_topp), ("temperature", sampling_temperature), ("seed", seed),
                 ("batch.max_sentences", max_batch_size), ("batch.max_tokens", max_batch_tokens),
                 ("tokenizer.src", src), ("tokenizer.tgt", tgt)] + list((settings or {}).items())
        lines, n = _strings(source, "source")

        def result(r, i):
            t = r.translations[i]
            if t.n_hypotheses == 0:
                hyps, scores = [""], [None]
            else:
                hyps = [t.texts[h].decode("utf-8", "replace") for h in range(t.n_hypotheses)]
                scores = [float(t.scores[h]) for h in range(t.n_hypotheses)]
            return TranslationResult(hyps, scores if return_scores else [], t.tokens, _warnings(t.flags))

        return self._results(lambda h, call, out, err: _translate(h, lines, n, call, out, err), pairs, result)

    def score_batch(self, source, target, max_batch_size=None, max_batch_tokens=None, src=None, tgt=None, settings=None):
        """Scores (source, target) pairs by force-decoding each target, as
        ``lyricmt score`` does; returns one ScoringResult per pair."""
        sources, n = _strings(source, "source")
        targets, m = _strings(target, "target")
        if n != m:
            raise UsageError("%d sources but %d targets" % (n, m), _USAGE)
        pairs = [("batch.max_sentences", max_batch_size), ("batch.max_tokens", max_batch_tokens), ("tokenizer.src", src),
                 ("tokenizer.tgt", tgt)] + list((settings or {}).items())

        def result(r, i):
            s = r.scores[i]
            if s.flags & _SKIPPED:
                return ScoringResult(None, None, 0)
            return ScoringResult(float(s.score), float(s.normalized), int(s.tokens))

        return self._results(lambda h, call, out, err: _score(h, sources, targets, n, call, out, err), pairs, result)

    def translate_file(self, input_path, output_path, score=False, restart=False, progress=False, summary=False, report=None,
                       input_format=None, output_format=None, beam_size=None, num_hypotheses=None, settings=None):
        """The bulk job of ``lyricmt translate -i INPUT -o OUTPUT`` (``lyricmt
        score`` with score=True): input_path is a file, a directory of song
        files, or a list of them; output_path a file, or a directory (ending
        in "/" or existing) for one output per input file. Written as
        .partial files renamed when complete, never over an input; after a
        crash or Ctrl-C the same call resumes (restart=True starts over).
        Ctrl-C stops it after the batch in flight, journaled, and raises
        KeyboardInterrupt (a second Ctrl-C kills the process, as it does the
        command). progress: False, "plain" or True/"bar", on stderr.
        """
        paths = [input_path] if isinstance(input_path, (str, bytes, os.PathLike)) else list(input_path)
        inputs = (ctypes.c_char_p * max(len(paths), 1))(*[_path(p) for p in paths])
        if progress not in _PROGRESS_MODES:
            raise UsageError("progress must be False, True, 'plain' or 'bar', got %r" % (progress,), _USAGE)
        job = _Job(inputs, len(paths), _path(output_path), _path(report) if report else None, bool(score),
                   bool(restart), _PROGRESS_MODES[progress], bool(summary))
        pairs = [("input.format", input_format), ("output.format", output_format), ("num_beams", beam_size),
                 ("num_return_sequences", num_hypotheses)] + list((settings or {}).items())
        arr, n = _settings(pairs)
        call, err = _Call(arr, n, None, _PROGRESS(), None), _Error()
        # on the calling thread: the job handles SIGINT and SIGTERM itself while it runs
        handle = self._enter()
        try:
            rc = _run_job(handle, ctypes.byref(job), ctypes.byref(call), ctypes.byref(err))
        finally:
            self._leave()
        if rc != _OK:
            _raise(rc, err)
