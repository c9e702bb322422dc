/*
 * engine_config: engine settings from a YAML file (under configs/) and from
 * command-line flags. Both go through one table of keys, so a flag and a
 * YAML key mean the same thing and are range-checked the same way. Unknown
 * keys and out-of-range values are errors that name the key.
 *
 * YAML layout:
 *   threads: 0                 # 0 = all cores
 *   workers: 1                 # CPU model workers sharing those threads
 *   devices: "0,1"             # CUDA devices, one worker each ("all")
 *   weights_from: disk         # disk | broadcast (NCCL, several GPUs)
 *   mpi: {rank0_translates: true, timeout_s: 600}
 *   batch: {max_sentences: 32, max_tokens: 4096}
 *   tokenizer: {convention: auto, src: en, tgt: ko}
 *   decoding: {num_beams: 5, max_length: 256, ...}   # transformers' names
 *   input: {format: text, id_field: id, text_field: text, bad_utf8: replace, too_long: truncate}
 *   output: {format: text}
 * batch also holds the bulk-job knobs: window_lines, cache_lines (0 = no
 * reuse of repeated lines), and inflight (in-flight batching, on by default).
 */
#ifndef LM_ENGINE_CONFIG_H
#define LM_ENGINE_CONFIG_H

#include "model/model_config.h"

#define LM_MAX_OVERRIDES 32

/* PAIRS is an output format only: one JSONL line per kept hypothesis, a
 * ready parallel corpus (augment.h). */
typedef enum { LM_FORMAT_TEXT, LM_FORMAT_TSV, LM_FORMAT_JSONL, LM_FORMAT_PAIRS } lm_format;

/* What to do with a line that has a problem: bad_utf8 uses FIX (replace with
 * U+FFFD), too_long uses FIX (truncate); SKIP gives an empty output line. */
typedef enum { LM_POLICY_FIX, LM_POLICY_SKIP, LM_POLICY_FAIL } lm_policy;

typedef enum { LM_DEVICE_CPU, LM_DEVICE_CUDA } lm_device;

/* Weights and matrix-product inputs: fp32, fp16 and bf16 on the GPU; fp32,
 * int8 and bf16 on the CPU (cpu_weights.h). AUTO (the default) is resolved
 * when the model is opened (lm_engine_config_resolve): bf16 on the GPU, where
 * 16-bit products are what the tensor cores are for, fp32 on the CPU. */
typedef enum { LM_PREC_AUTO = -1, LM_PREC_FP32, LM_PREC_FP16, LM_PREC_BF16, LM_PREC_INT8 } lm_precision;

/* The batch limits when the config leaves them at 0 (auto): the CPU's fixed
 * ones, or on the GPU those lm_budget_for_memory (engine/sched.c) derives
 * from its free memory. */
#define LM_CPU_BATCH_SENTENCES 32
#define LM_CPU_BATCH_TOKENS 4096
#define LM_CPU_WINDOW_LINES 512

/* Where the second and later GPUs get their weights: read from host memory
 * like the first, or an NCCL broadcast from the first (cuda/cuda_nccl.c). */
typedef enum { LM_WEIGHTS_DISK, LM_WEIGHTS_BROADCAST } lm_weights_from;

#define LM_MAX_DEVICES 64

typedef struct {
    int threads;
    int workers;               /* CPU model workers, sharing the threads (worker_pool.h) */
    char devices[256];         /* CUDA devices, one worker each: "0,1,2,3", "all"; "" = device 0 */
    lm_weights_from weights_from;
    bool rank0_translates;     /* under MPI, rank 0 runs workers too (host/engine/mpi_link.c) */
    int mpi_timeout_s;         /* under MPI, a batch out longer than this on a rank stops the job; 0 = never */
    lm_device device;
    lm_precision precision;
    int max_batch_sentences;   /* 0: auto (see LM_CPU_BATCH_SENTENCES) */
    int max_batch_tokens;      /* 0: auto */
    int convention;            /* -1: from tokenizer_config.json */
    char src_lang[16], tgt_lang[16]; /* "" : from tokenizer_config.json */
    uint64_t seed;
    int window_lines;          /* lines read ahead, sorted and batched together; 0: auto */
    int cache_lines;           /* translations kept for repeated lines; 0 = off */
    bool sort_by_length;       /* batch lines of similar length (off: input order, for comparison) */
    bool inflight;             /* in-flight batching: finished lines' places go to the next lines mid-decode */
    lm_format input_format, output_format;
    char id_field[64], text_field[64]; /* JSONL input field names */
    char source_field[64], target_field[64]; /* JSONL pair fields (lyricmt score) */
    lm_policy bad_utf8, too_long;
    /* augmentation (augment.h): drop a line's repeated hypotheses; drop those
     * whose model score (score.h, length-normalised) is below min_score */
    bool dedup_hypotheses;
    bool has_min_score;
    double min_score;
    /* decoding settings given explicitly; applied over the model's defaults */
    struct {
        int key;
        double value;
    } overrides[LM_MAX_OVERRIDES];
    int n_overrides;
} lm_engine_config;

void lm_engine_config_defaults(lm_engine_config *c);

/* What "auto" means for c's device: precision bf16 on cuda, fp32 on the cpu;
 * batch limits left at 0 take `gpu` (cuda, when given: sizes from the
 * device's free memory) or the CPU's fixed ones. Idempotent. */
typedef struct {
    int max_sentences, max_tokens, window_lines;
} lm_batch_limits;
void lm_engine_config_resolve(lm_engine_config *c, const lm_batch_limits *gpu);

/* Reads a YAML file over c. */
int lm_engine_config_load_yaml(lm_engine_config *c, const char *path, lm_err *err);

/* Sets one key ("section.key" or a bare decoding key such as "num_beams")
 * from text, as a flag would. `where` prefixes error messages. */
int lm_engine_config_set(lm_engine_config *c, const char *key, const char *value, const char *where, lm_err *err);

/* Applies the decoding overrides onto g (the model's defaults). */
void lm_engine_config_apply(const lm_engine_config *c, lm_gen_config *g);

const char *lm_format_name(lm_format f);
const char *lm_device_name(lm_device d);
const char *lm_precision_name(lm_precision p);
const char *lm_policy_name(lm_policy p, bool for_length);

#endif
