/* lyricmt: the public library (include/lyricmt.h) over the engine
 * (engine/translator.h) and the bulk job (job/job.h). The only file whose
 * symbols leave the shared library (host/api/lyricmt.map). */
#include "include/lyricmt.h"

#include "config/engine_flags.h"
#include "cpu/cpu_backend.h"
#include "cuda/cuda_backend.h"
#ifdef LM_WITH_CUDA
#include "cuda/cuda_blas.h"
#endif
#include "engine/mpi_link.h"
#include "engine/score.h"
#include "job/corpus.h"
#include "job/job_rules.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(((lyricmt_error *)0)->message) == LM_ERR_LEN, "lyricmt_error holds an lm_err");
_Static_assert(LYRICMT_ERROR_RUNTIME == LM_EXIT_RUNTIME && LYRICMT_ERROR_USAGE == LM_EXIT_USAGE, "statuses are the exit statuses");

struct lyricmt_translator {
    pthread_mutex_t lock; /* one call at a time: the backends hold per-batch state */
    lm_translator t;
    char *model_dir;      /* for a bulk job's journal */
    char **settings;      /* as opened: applied again under every call's own */
    size_t n_settings;
};

/* A bulk job's stop flag and signal handlers are the process's. */
static pthread_mutex_t job_lock = PTHREAD_MUTEX_INITIALIZER;

static int fail(lyricmt_error *out, int status, const lm_err *e) {
    if (out) snprintf(out->message, sizeof out->message, "%s", e->msg);
    return status;
}

static int usage(lyricmt_error *out, const char *msg) {
    if (out) snprintf(out->message, sizeof out->message, "%s", msg);
    return LYRICMT_ERROR_USAGE;
}

/* Applies "key=value" settings, or "config=FILE.yaml", as --set and --config do. */
static int apply_settings(lm_engine_config *e, const char *const *settings, size_t n, lm_err *err) {
    if (n && !settings) return lm_fail(err, "settings is NULL but n_settings is %zu", n);
    for (size_t i = 0; i < n; i++) {
        const char *s = settings[i];
        if (!s) return lm_fail(err, "setting %zu is NULL", i);
        if (!strncmp(s, "config=", 7)) {
            if (lm_engine_config_load_yaml(e, s + 7, err) != 0) return -1;
        } else if (lm_engine_flag(e, LM_FLAGS_TRANSLATE | LM_FLAGS_SCORE, "--set", s, err) < 0) {
            return -1;
        }
    }
    return 0;
}

/* A call's settings: the defaults of its kind, the translator's, then its own. */
static int call_settings(const lyricmt_translator *h, const lyricmt_call *call, bool score_job, lm_engine_config *e, lm_err *err) {
    lm_engine_config_defaults(e);
    lm_job_defaults(e, score_job);
    if (apply_settings(e, (const char *const *)h->settings, h->n_settings, err) != 0) return -1;
    return call ? apply_settings(e, call->settings, call->n_settings, err) : 0;
}

int lyricmt_open(const char *model_dir, const char *const *settings, size_t n_settings, lyricmt_translator **out, lyricmt_error *err) {
    lm_err e = {{0}};
    if (!out) return usage(err, "out is NULL");
    *out = NULL;
    if (!model_dir || !model_dir[0]) return usage(err, "the model directory is NULL or empty");
    lyricmt_translator *h = calloc(1, sizeof *h);
    if (!h) {
        if (err) snprintf(err->message, sizeof err->message, "out of memory");
        return LYRICMT_ERROR_RUNTIME;
    }
    int rc = LYRICMT_ERROR_RUNTIME;
    lm_engine_config engine;
    lm_engine_config_defaults(&engine);
    if (apply_settings(&engine, settings, n_settings, &e) != 0) { rc = fail(err, LYRICMT_ERROR_USAGE, &e); goto undo; }
    if (!(h->model_dir = strdup(model_dir)) || (n_settings && !(h->settings = calloc(n_settings, sizeof *h->settings)))) {
        lm_fail(&e, "out of memory");
        rc = fail(err, LYRICMT_ERROR_RUNTIME, &e);
        goto undo;
    }
    for (; h->n_settings < n_settings; h->n_settings++)
        if (!(h->settings[h->n_settings] = strdup(settings[h->n_settings]))) {
            lm_fail(&e, "out of memory");
            rc = fail(err, LYRICMT_ERROR_RUNTIME, &e);
            goto undo;
        }
    int opened = lm_translator_open(&h->t, model_dir, &engine, &e);
    if (opened != 0) {
        rc = fail(err, opened == -2 ? LYRICMT_ERROR_USAGE : LYRICMT_ERROR_RUNTIME, &e);
        memset(&h->t, 0, sizeof h->t);
        goto undo;
    }
    pthread_mutex_init(&h->lock, NULL);
    *out = h;
    return LYRICMT_OK;
undo:
    for (size_t i = 0; i < h->n_settings; i++) free(h->settings[i]);
    free(h->settings);
    free(h->model_dir);
    free(h);
    return rc;
}

void lyricmt_close(lyricmt_translator *h) {
    if (!h) return;
    lm_translator_close(&h->t);
    pthread_mutex_destroy(&h->lock);
    for (size_t i = 0; i < h->n_settings; i++) free(h->settings[i]);
    free(h->settings);
    free(h->model_dir);
    free(h);
}

/* Takes h for one call with settings e: on LYRICMT_OK the caller holds h->lock. */
static int take(lyricmt_translator *h, const lm_engine_config *e, lm_err *err) {
    pthread_mutex_lock(&h->lock);
    int set = lm_translator_configure(&h->t, e, err);
    if (set == 0 && lm_translator_bind_thread(&h->t, 0, err) != 0) set = -1;
    if (set == 0) return LYRICMT_OK;
    pthread_mutex_unlock(&h->lock);
    return set == -2 ? LYRICMT_ERROR_USAGE : LYRICMT_ERROR_RUNTIME;
}

/* The lines of one call on their way to the model: the input policies of a
 * bulk job (job.c), applied to strings instead of records. */
typedef struct {
    int32_t **ids;
    int *lens;
    size_t *which;  /* ids[k] is input which[k] */
    int m;
    unsigned *flags;
} prepared;

static void prepared_free(prepared *p) {
    for (int k = 0; k < p->m; k++) free(p->ids[k]);
    free(p->ids);
    free(p->lens);
    free(p->which);
    free(p->flags);
}

/* Repairs or refuses invalid UTF-8 in text (input.bad_utf8). *fixed is a
 * malloc'd repaired copy, or NULL when text is fine as it is. -1 with err:
 * the policy is fail; 1: skip the line. */
static int check_utf8(const lm_engine_config *e, const char *what, size_t i, const char *text, char **fixed, unsigned *flags,
                      lm_err *err) {
    size_t len = strlen(text);
    *fixed = NULL;
    if (lm_utf8_invalid_at(text, len) < 0) return 0;
    if (e->bad_utf8 == LM_POLICY_FAIL) return lm_fail(err, "%s %zu: invalid UTF-8 or NUL byte (input.bad_utf8 is fail)", what, i + 1);
    *flags |= LYRICMT_INVALID_UTF8 | (e->bad_utf8 == LM_POLICY_SKIP ? LYRICMT_SKIPPED : 0);
    if (e->bad_utf8 == LM_POLICY_SKIP) return 1;
    if (!(*fixed = malloc(len + 1))) return lm_fail(err, "out of memory");
    memcpy(*fixed, text, len + 1);
    if (lm_utf8_repair(fixed, &len) < 0) { free(*fixed); *fixed = NULL; return lm_fail(err, "out of memory"); }
    return 0;
}

/* Applies input.too_long to a line the model's positions cut: 1 to skip it. */
static int check_length(const lm_translator *t, const char *what, size_t i, unsigned *flags, lm_err *err) {
    if (t->engine.too_long == LM_POLICY_FAIL)
        return lm_fail(err, "%s %zu: longer than the model's %d positions (input.too_long is fail)", what, i + 1,
                       t->model.cfg.model.max_positions);
    *flags |= LYRICMT_TOO_LONG | (t->engine.too_long == LM_POLICY_SKIP ? LYRICMT_SKIPPED : 0);
    return t->engine.too_long == LM_POLICY_SKIP;
}

/* Tokenises lines (targets NULL) or pairs for the model. */
static int prepare(lm_translator *t, const char *const *lines, const char *const *targets, size_t n, prepared *p, lm_err *err) {
    memset(p, 0, sizeof *p);
    p->ids = calloc(n + 1, sizeof *p->ids);
    p->lens = calloc(n + 1, sizeof *p->lens);
    p->which = calloc(n + 1, sizeof *p->which);
    p->flags = calloc(n + 1, sizeof *p->flags);
    if (!p->ids || !p->lens || !p->which || !p->flags) return lm_fail(err, "out of memory");
    const char *what = targets ? "pair" : "line";
    for (size_t i = 0; i < n; i++) {
        char *src = NULL, *tgt = NULL;
        int skip = check_utf8(&t->engine, what, i, lines[i], &src, &p->flags[i], err);
        if (skip == 0 && targets) skip = check_utf8(&t->engine, what, i, targets[i], &tgt, &p->flags[i], err);
        const char *s = src ? src : lines[i], *g = targets ? (tgt ? tgt : targets[i]) : NULL;
        bool cut = false;
        int rc = skip;
        if (rc == 0 && !targets && lm_is_blank(s, strlen(s))) {
            p->flags[i] |= LYRICMT_BLANK;
            rc = 1;
        }
        if (rc == 0)
            rc = targets ? lm_score_pair_ids(t, s, strlen(s), g, strlen(g), &p->ids[p->m], &p->lens[p->m], &cut, err)
                         : lm_translator_source_ids(t, s, strlen(s), &p->ids[p->m], &p->lens[p->m], &cut, err);
        if (rc == 0 && cut && (rc = check_length(t, what, i, &p->flags[i], err)) != 0) {
            free(p->ids[p->m]);
            p->ids[p->m] = NULL;
        }
        free(src);
        free(tgt);
        if (rc < 0) return -1;
        if (rc == 0) p->which[p->m++] = i;
    }
    return 0;
}

typedef struct {
    const lyricmt_call *call;
} progress_ctx;

static void on_batch(void *ctx, int lines, long tokens) {
    const lyricmt_call *call = ((progress_ctx *)ctx)->call;
    call->progress(call->progress_ctx, (size_t)lines, tokens);
}

/* Runs the prepared inputs; res[k] receives input p->which[k]'s result. */
static int run(lyricmt_translator *h, const lyricmt_call *call, prepared *p, lm_translation *res, lm_err *err) {
    progress_ctx ctx = {call};
    lm_run_hooks hooks = {call ? call->cancel : NULL, call && call->progress ? on_batch : NULL, &ctx};
    int ran = lm_translator_run(&h->t, p->ids, p->lens, p->m, res, &hooks, err);
    if (ran == 1) {
        for (int k = 0; k < p->m; k++) lm_translation_free(&res[k]);
        lm_fail(err, "stopped by the caller's cancel flag");
        return LYRICMT_STOPPED;
    }
    return ran == 0 ? LYRICMT_OK : LYRICMT_ERROR_RUNTIME;
}

static int check_inputs(const char *const *a, const char *name, size_t n, lyricmt_results **out, lm_err *err) {
    if (!out) return lm_fail(err, "out is NULL");
    *out = NULL;
    if (n > INT_MAX / 2) return lm_fail(err, "%zu inputs in one call; at most %d", n, INT_MAX / 2);
    if (n && !a) return lm_fail(err, "%s is NULL", name);
    for (size_t i = 0; i < n; i++)
        if (!a[i]) return lm_fail(err, "%s[%zu] is NULL", name, i);
    return 0;
}

/* The shared steps of translate and score; fills r from the engine's results. */
static int translate_or_score(lyricmt_translator *h, const char *const *lines, const char *const *targets, size_t n,
                              const lyricmt_call *call, lyricmt_results **out, lyricmt_error *error) {
    lm_err err = {{0}};
    bool score = targets != NULL;
    if (!h) return usage(error, "the translator is NULL");
    if (check_inputs(lines, score ? "sources" : "lines", n, out, &err) != 0 || (score && check_inputs(targets, "targets", n, out, &err) != 0))
        return fail(error, LYRICMT_ERROR_USAGE, &err);
    lm_engine_config e;
    if (call_settings(h, call, false, &e, &err) != 0) return fail(error, LYRICMT_ERROR_USAGE, &err);
    int rc = take(h, &e, &err);
    if (rc != LYRICMT_OK) return fail(error, rc, &err);
    if (score) lm_score_attach(&h->t);
    else lm_job_attach(&h->t, &(lm_job_opts){0}); /* the search, with augmentation when the settings ask for it */
    prepared p = {0};
    lm_translation *res = NULL;
    lyricmt_results *r = calloc(1, sizeof *r);
    rc = LYRICMT_ERROR_RUNTIME;
    if (!r || prepare(&h->t, lines, targets, n, &p, &err) != 0) goto done;
    if (!(res = calloc((size_t)p.m + 1, sizeof *res))) { lm_fail(&err, "out of memory"); goto done; }
    if ((rc = run(h, call, &p, res, &err)) != LYRICMT_OK) goto done;
    rc = LYRICMT_ERROR_RUNTIME;
    r->n = n;
    if (score ? !(r->scores = calloc(n + 1, sizeof *r->scores)) : !(r->translations = calloc(n + 1, sizeof *r->translations))) {
        lm_fail(&err, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        if (score) r->scores[i].flags = p.flags[i];
        else r->translations[i].flags = p.flags[i];
    for (int k = 0; k < p.m; k++) {
        lm_translation *tr = &res[k];
        size_t i = p.which[k];
        r->tokens += tr->n_tokens;
        if (score) {
            /* as `lyricmt score` writes them: the float sum, over the labels in float */
            r->scores[i].score = tr->scores[0];
            r->scores[i].normalized = tr->scores[0] / tr->n_tokens;
            r->scores[i].tokens = tr->n_tokens;
            continue;
        }
        lyricmt_translation *o = &r->translations[i];
        o->n_hypotheses = (size_t)tr->n_hyps;
        o->texts = tr->texts;
        o->scores = tr->scores;
        o->tokens = tr->n_tokens;
        free(tr->sample);
        memset(tr, 0, sizeof *tr);
    }
    rc = LYRICMT_OK;
done:
    pthread_mutex_unlock(&h->lock);
    if (res)
        for (int k = 0; k < p.m; k++) lm_translation_free(&res[k]);
    free(res);
    prepared_free(&p);
    if (rc != LYRICMT_OK) {
        lyricmt_results_free(r);
        return fail(error, rc, &err);
    }
    *out = r;
    return LYRICMT_OK;
}

int lyricmt_translate(lyricmt_translator *h, const char *const *lines, size_t n, const lyricmt_call *call, lyricmt_results **out,
                      lyricmt_error *err) {
    return translate_or_score(h, lines, NULL, n, call, out, err);
}

int lyricmt_score(lyricmt_translator *h, const char *const *sources, const char *const *targets, size_t n, const lyricmt_call *call,
                  lyricmt_results **out, lyricmt_error *err) {
    if (!targets) {
        if (out) *out = NULL;
        return usage(err, "targets is NULL");
    }
    return translate_or_score(h, sources, targets, n, call, out, err);
}

void lyricmt_results_free(lyricmt_results *r) {
    if (!r) return;
    for (size_t i = 0; r->translations && i < r->n; i++) {
        lyricmt_translation *t = &r->translations[i];
        for (size_t h = 0; h < t->n_hypotheses; h++) free(t->texts[h]);
        free(t->texts);
        free(t->scores);
    }
    free(r->translations);
    free(r->scores);
    free(r);
}

int lyricmt_run_job(lyricmt_translator *h, const lyricmt_job *job, const lyricmt_call *call, lyricmt_error *error) {
    lm_err err = {{0}};
    if (!h) return usage(error, "the translator is NULL");
    if (!job) return usage(error, "the job is NULL");
    if (!job->output || !job->output[0]) return usage(error, "a job needs an output path");
    if (!job->n_inputs || !job->inputs) return usage(error, "a job needs at least one input");
    if (job->n_inputs > INT_MAX / 2) return usage(error, "too many inputs");
    for (size_t i = 0; i < job->n_inputs; i++)
        if (!job->inputs[i] || !job->inputs[i][0]) return usage(error, "an input path is NULL or empty");
    if (job->report && !job->report[0]) return usage(error, "the report path is empty");
    if (job->progress < LYRICMT_PROGRESS_NONE || job->progress > LYRICMT_PROGRESS_BAR) return usage(error, "progress must be LYRICMT_PROGRESS_NONE, _PLAIN or _BAR");
    lm_job_opts o = {
        .inputs = job->inputs,
        .n_inputs = (int)job->n_inputs,
        .output = job->output,
        .report = job->report,
        .model_dir = h->model_dir,
        .progress = job->progress == LYRICMT_PROGRESS_BAR ? LM_PROGRESS_BAR : job->progress == LYRICMT_PROGRESS_PLAIN ? LM_PROGRESS_PLAIN : LM_PROGRESS_NONE,
        .summary = job->summary != 0,
        .restart = job->restart != 0,
        .score = job->score != 0,
    };
    lm_engine_config e;
    if (call_settings(h, call, o.score, &e, &err) != 0 || lm_job_settle(&e, &o, &err) != 0) return fail(error, LYRICMT_ERROR_USAGE, &err);
    pthread_mutex_lock(&job_lock);
    int rc = take(h, &e, &err);
    if (rc == LYRICMT_OK) {
        int ran = lm_job_run(&h->t, &o, &err);
        rc = ran == 0 ? LYRICMT_OK : ran > 0 ? 128 + ran : LYRICMT_ERROR_RUNTIME;
        if (ran > 0) lm_fail(&err, "stopped by signal %d after writing and journaling what was finished", ran);
        pthread_mutex_unlock(&h->lock);
    }
    pthread_mutex_unlock(&job_lock);
    return rc == LYRICMT_OK ? rc : fail(error, rc, &err);
}

static char version_line[2048];

static void describe(void) {
    char nccl[256] = "not built (no CUDA)", cuda[700] = "not built";
#ifdef LM_WITH_CUDA
    char blas[650];
    lm_cuda_nccl_describe(nccl, sizeof nccl);
    snprintf(cuda, sizeof cuda, "built, %s", lm_cuda_cublas_describe(blas, sizeof blas));
#endif
    snprintf(version_line, sizeof version_line, "lyricmt %s (OpenBLAS kernels: %s; CUDA backend: %s; NCCL: %s; MPI: %s)", LYRICMT_VERSION,
             lm_blas_core(), cuda, nccl, lm_mpi_build());
}

const char *lyricmt_version(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, describe);
    return version_line;
}
