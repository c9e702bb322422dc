/*
 * lyricmt.h: the lyricmt library, the engine behind the `lyricmt` command,
 * for programs that translate without it (the Python package is built on
 * it). Link with -llyricmt (build/liblyricmt.so, or build/liblyricmt.a and
 * the libraries the README lists).
 *
 * Settings. Everything the engine can be told is a setting with the name it
 * has in a YAML config and in `lyricmt translate --set KEY=VALUE`:
 * "num_beams=5", "num_return_sequences=3", "max_length=64", "do_sample=true",
 * "temperature=0.9", "top_k=50", "top_p=0.95", "seed=1", "precision=int8",
 * "device=cuda", "threads=2", "batch.max_tokens=8192", ... (README, "Config
 * files"), plus "config=FILE.yaml", which reads a config file at that point.
 * Settings are checked as the command line checks them, with the same
 * messages. Those given to lyricmt_open apply to every call; a call's own
 * settings apply over them for that call only. Device, precision, threads,
 * workers, devices and weights_from make the backends and can only be given
 * to lyricmt_open.
 *
 * Errors. Every function that can fail returns a status: LYRICMT_OK, or the
 * exit status `lyricmt` gives for the same failure (1 runtime: the model, an
 * input, I/O, memory; 2 usage: a bad argument or setting), or
 * LYRICMT_STOPPED (a call's cancel flag), or 128 + a signal for a bulk job
 * stopped by SIGINT or SIGTERM. With an error, err (when not NULL) holds the
 * one-line message the command prints after "lyricmt: ".
 *
 * Ownership. The caller owns what it passes and may free it when the call
 * returns; the library keeps no pointer to it. What the library returns
 * (lyricmt_translator, lyricmt_results) is the library's, freed only by
 * lyricmt_close and lyricmt_results_free.
 *
 * Threads. Any thread may call any function. A translator runs one call at
 * a time: calls on the same translator from several threads wait for each
 * other (each call uses every thread and worker the translator was opened
 * with). Separate translators run at once, each with its own copy of the
 * model. A bulk job (lyricmt_run_job) handles SIGINT and SIGTERM while it
 * runs, as the command does (the first stops it after the batch in flight,
 * journaled; a second kills the process), and restores the handlers after;
 * so one bulk job runs at a time in a process: a second waits.
 */
#ifndef LYRICMT_H
#define LYRICMT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define LYRICMT_API __attribute__((visibility("default")))
#else
#define LYRICMT_API
#endif

/* The library's version; its soname is liblyricmt.so.LYRICMT_ABI. */
#define LYRICMT_VERSION "0.4.0"
#define LYRICMT_ABI 0

enum {
    LYRICMT_OK = 0,
    LYRICMT_ERROR_RUNTIME = 1, /* the model, an input, I/O, memory: the command's exit status 1 */
    LYRICMT_ERROR_USAGE = 2,   /* a bad argument or setting: exit status 2 */
    LYRICMT_STOPPED = 3        /* the call's cancel flag stopped it */
};

typedef struct {
    char message[512]; /* NUL-terminated, one line */
} lyricmt_error;

/* "lyricmt 0.4.0 (OpenBLAS kernels: ...; CUDA backend: ...; ...)", as
 * `lyricmt --version` prints it. A static string. */
LYRICMT_API const char *lyricmt_version(void);

typedef struct lyricmt_translator lyricmt_translator;

/* Loads the model directory (as downloaded from Hugging Face) and prepares
 * it for the device, precision and threads among the settings. settings:
 * n_settings "key=value" strings (NULL when n_settings is 0). *out is the
 * translator, or NULL on error. */
LYRICMT_API int lyricmt_open(const char *model_dir, const char *const *settings, size_t n_settings, lyricmt_translator **out,
                             lyricmt_error *err);
/* Frees the translator; NULL is allowed. No call may be running on it. */
LYRICMT_API void lyricmt_close(lyricmt_translator *t);

/* What a call may be given besides its inputs; a NULL lyricmt_call, or one
 * all zero, means the translator's settings as opened. */
typedef struct {
    const char *const *settings;  /* "key=value", over the translator's, for this call */
    size_t n_settings;
    /* Polled between batches (and, with in-flight batching, as lines start):
     * once non-zero the call returns LYRICMT_STOPPED after the batch in
     * flight, with no results. Set it from any thread or a signal handler. */
    const volatile int *cancel;
    /* Called on the calling thread after each batch: lines finished and
     * target tokens generated in it. */
    void (*progress)(void *ctx, size_t lines, long tokens);
    void *progress_ctx;
} lyricmt_call;

/* One source line's translation. */
enum {
    LYRICMT_BLANK = 1,        /* empty or whitespace-only: no hypotheses, the model was not run */
    LYRICMT_INVALID_UTF8 = 2, /* had invalid UTF-8: replaced with U+FFFD (input.bad_utf8 replace), or skipped */
    LYRICMT_TOO_LONG = 4,     /* longer than the model's positions: only its start was used (input.too_long
                               * truncate), or skipped */
    LYRICMT_SKIPPED = 8       /* left out by an input policy's skip: no hypotheses (translate), no score (score) */
};

typedef struct {
    size_t n_hypotheses;      /* num_return_sequences; 0 when blank, skipped or every hypothesis filtered out */
    char **texts;             /* best first, UTF-8, NUL-terminated */
    float *scores;            /* as `lyricmt translate --output-format tsv` writes them (unrounded): beam search's
                               * length-normalised log-probability, greedy's and sampling's summed one, or with
                               * output.min_score / dedup rescoring, lyricmt score's normalized */
    long tokens;              /* target tokens generated over all hypotheses */
    unsigned flags;           /* LYRICMT_BLANK, ... */
} lyricmt_translation;

/* One pair's score, as `lyricmt score` writes it. */
typedef struct {
    float score;      /* summed log-probability of the target's labels */
    float normalized; /* score / tokens */
    int tokens;       /* labels: [__tgt__] pieces </s> (m2m100) or pieces </s> (small100) */
    unsigned flags;   /* LYRICMT_INVALID_UTF8, LYRICMT_TOO_LONG, LYRICMT_SKIPPED */
} lyricmt_pair_score;

typedef struct {
    size_t n;                          /* inputs, in their order */
    lyricmt_translation *translations; /* lyricmt_translate: n of them; otherwise NULL */
    lyricmt_pair_score *scores;        /* lyricmt_score: n of them; otherwise NULL */
    long tokens;                       /* target tokens generated (translate) or scored (score), all inputs */
} lyricmt_results;

/* Translates n lines (UTF-8, NUL-terminated). Lines are batched, sorted by
 * length, as the bulk job batches them; a line's translation does not
 * depend on its batch, and equals what `lyricmt translate` writes for it
 * with the same settings. Repeated lines are translated each time (no line
 * cache). *out is the results, or NULL on error or stop. */
LYRICMT_API int lyricmt_translate(lyricmt_translator *t, const char *const *lines, size_t n, const lyricmt_call *call,
                                  lyricmt_results **out, lyricmt_error *err);

/* Scores n (source, target) pairs by force-decoding the target, as
 * `lyricmt score` does (an empty target is scored too). */
LYRICMT_API int lyricmt_score(lyricmt_translator *t, const char *const *sources, const char *const *targets, size_t n,
                              const lyricmt_call *call, lyricmt_results **out, lyricmt_error *err);

/* NULL is allowed. */
LYRICMT_API void lyricmt_results_free(lyricmt_results *r);

enum { LYRICMT_PROGRESS_NONE = 0, LYRICMT_PROGRESS_PLAIN = 1, LYRICMT_PROGRESS_BAR = 2 };

/* A bulk job: `lyricmt translate -i ... -o ...` (or `lyricmt score`), with
 * its guarantees: one record per input line in input order, outputs written
 * as .partial files and renamed when complete, never over an input, a
 * journal beside them so that the same call after a crash or stop resumes
 * it (byte-identical), repeats translated once. Formats, policies and the
 * rest come from settings (input.format, output.format, ...). */
typedef struct {
    const char *const *inputs; /* files or directories of song files (taken recursively in name order) */
    size_t n_inputs;           /* at least one: a library job does not read standard input */
    const char *output;        /* a file, or a directory (existing, or ending in '/') for one output per input file */
    const char *report;        /* every bad-input event as TSV, or NULL */
    int score;                 /* non-zero: score (source, target) pairs instead of translating lines */
    int restart;               /* non-zero: discard an existing journal and start over */
    int progress;              /* LYRICMT_PROGRESS_*, on standard error */
    int summary;               /* non-zero: the closing summary on standard error */
} lyricmt_job;

/* Runs the job to its end: LYRICMT_OK, an error status, or 128 + SIGINT or
 * SIGTERM when stopped by one (what was finished is written and journaled:
 * the same call resumes it). The call's cancel and progress are not used:
 * the job reports on standard error and stops on a signal, as the command. */
LYRICMT_API int lyricmt_run_job(lyricmt_translator *t, const lyricmt_job *job, const lyricmt_call *call, lyricmt_error *err);

#ifdef __cplusplus
}
#endif

#endif
