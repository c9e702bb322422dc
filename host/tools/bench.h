/*
 * bench: how fast a model runs on this machine, and with which settings
 * (`lyricmt bench`). For each device (the CPU; each GPU of a CUDA build) it
 * sweeps what changes the speed and not the translation, or changes it by a
 * measured amount:
 *   precision      what the device runs (CPU fp32, int8, bf16; GPU fp32,
 *                  fp16, bf16); a precision the hardware would run as
 *                  another is reported as not run, with why;
 *   beams          1 and the model's default;
 *   batch budget   batch.max_tokens from small to large (or until the
 *                  memory runs out);
 *   threads        (CPU) for each precision's and beam's fastest budget:
 *                  1 thread, half the cores, and the cores as 2 workers.
 * Every setting translates the same lines from the first on (round again
 * after the last), in chunks of about two full batches, until its share of
 * the time limit is spent. It
 * reports lines/s and generated tokens/s over the time of its chunks, the
 * process's peak memory while it ran, and the share of its lines identical
 * to fp32's at the same beam and to the default output (fp32, the model's
 * beam). The search is batch-invariant, so budget, threads and workers
 * change only the speed.
 */
#ifndef LM_BENCH_H
#define LM_BENCH_H

#include "config/engine_config.h"

#include <stdio.h>

#define LM_BENCH_MAX_LIST 16

typedef struct {
    const char *model_dir;
    const char *version;           /* the program's, for the report */
    lm_engine_config base;         /* --config/--set: everything the sweep does not set */
    const char *const *lines;      /* the corpus: non-blank lines */
    int n_lines;
    char corpus[256];              /* how it was made, for the report */
    const char *given;             /* the settings given besides the sweep's, as flags, for the report */
    bool cpu, cuda;                /* devices to sweep */
    int precisions[4], n_precisions;           /* 0: what each device runs */
    int beams[LM_BENCH_MAX_LIST], n_beams;     /* 0: 1 and the model's default */
    int budgets[LM_BENCH_MAX_LIST], n_budgets; /* 0: 512 to 16384 (CPU), 1024 to 65536 (GPU) */
    bool threads;                  /* the CPU thread and worker variants */
    double seconds;                /* the whole sweep's time limit */
    const volatile int *cancel;    /* stops it between chunks */
    bool bar;                      /* progress as a redrawn bar (else one line per setting) */
    bool quiet;                    /* no progress */
} lm_bench_opts;

typedef enum { LM_BENCH_RAN, LM_BENCH_FAILED, LM_BENCH_NOT_RUN } lm_bench_status;

typedef struct {
    char device[24];               /* "cpu", "cuda:0", or "cuda" for a row saying why there is none */
    lm_precision precision;
    int beams, budget, threads, workers;
    lm_bench_status status;
    char note[LM_ERR_LEN + 64];     /* why not run or failed */
    long lines, tokens;            /* translated, generated */
    double seconds;                /* of its chunks */
    double peak_mb;
    long same, same_of;            /* lines identical to fp32's at the same beam, of those compared */
    long as_default, default_of;   /* identical to the default output (fp32, the model's beam) */
} lm_bench_row;

typedef struct {
    lm_bench_row *rows;
    int n_rows;
    int default_beams;             /* the model's */
    char model[512];               /* model_dir, and what it is */
    char machine[1024];
    char version[512];
    char corpus[320];
    char given[512];               /* the settings given besides the sweep's (--config, --set, ...), for the YAML */
    double seconds_limit, seconds_used;
    bool peak_is_process;          /* the peak could not be reset per setting */
    bool stopped;                  /* by the cancel flag: rows after it are not run */
} lm_bench;

/* Runs the sweep: 0 done (rows that could not run say why), 1 stopped by
 * o->cancel, -1 when nothing can run (the model does not load), err says why. */
int  lm_bench_run(const lm_bench_opts *o, lm_bench *b, lm_err *err);
void lm_bench_free(lm_bench *b);

/* The fastest row that ran whose translations equal the default output on at
 * least min_share of its compared lines; -1 when none. */
int lm_bench_pick(const lm_bench *b, double min_share);

/* Reports; -1 with err when the stream fails. */
int lm_bench_markdown(const lm_bench *b, int pick, double min_share, FILE *f, lm_err *err);
int lm_bench_json(const lm_bench *b, int pick, double min_share, FILE *f, lm_err *err);
/* The picked row as engine settings that --config reads. */
int lm_bench_yaml(const lm_bench *b, int pick, double min_share, FILE *f, lm_err *err);
/* The gnuplot script that draws lines/s against the budget, one line per
 * device, precision and beam, into out_path (svg, or png). */
int lm_bench_plot_script(const lm_bench *b, const char *out_path, bool png, FILE *f, lm_err *err);

/* Seeded lyric-like English lines (verses of 4 to 16 words, a tail to 30,
 * repeated hooks), malloc'd into lines[0..n). */
int lm_bench_lyrics(int n, uint64_t seed, char ***lines, lm_err *err);

#endif
