/* translator: see translator.h. */
#include "engine/translator.h"

#include "cpu/cpu_backend.h"
#include "cuda/cuda_backend.h"
#include "engine/sched.h"

#include <omp.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef LM_WITH_CUDA
/* Without --devices: device 0, or in a job of several processes per machine
 * (a launcher's local rank in the environment: Open MPI, Slurm, MPICH) the
 * local rank's device, so the ranks of one machine do not share device 0. */
static int default_device(lm_err *err) {
    const char *names[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID"}, *local = NULL;
    for (size_t i = 0; i < sizeof names / sizeof *names && !local; i++) local = getenv(names[i]);
    if (!local || atoi(local) <= 0) return 0;
    int n = lm_cuda_device_count(err);
    return n <= 0 ? n : atoi(local) % n; /* no device: 0, for the backend to say so */
}
#endif

/* The CUDA devices of --devices ("0,2", "all"; "" is the default device), into dev. */
static int parse_devices(const char *list, int *dev, int cap, lm_err *err) {
    if (!list[0]) {
#ifdef LM_WITH_CUDA
        if ((dev[0] = default_device(err)) < 0) return -1;
#else
        dev[0] = 0;
#endif
        return 1;
    }
    if (!strcmp(list, "all")) {
#ifdef LM_WITH_CUDA
        int n = lm_cuda_device_count(err);
        if (n < 0) return -1;
        if (n == 0) return lm_fail(err, "--devices all: no CUDA device on this machine");
        for (int i = 0; i < n && i < cap; i++) dev[i] = i;
        return n < cap ? n : cap;
#else
        return lm_fail(err, "this lyricmt was built without CUDA (nvcc was not found at build time): use --device cpu");
#endif
    }
    int n = 0;
    for (const char *p = list; *p;) {
        char *end;
        long d = strtol(p, &end, 10);
        if (end == p || d < 0 || d > 1023 || (*end && *end != ',') || n == cap)
            return lm_fail(err, "--devices: '%s' must be 'all' or a list of device numbers such as 0,1,2,3", list);
        for (int i = 0; i < n; i++)
            if (dev[i] == d) return lm_fail(err, "--devices: device %ld is listed twice in '%s'", d, list);
        dev[n++] = (int)d;
        p = *end ? end + 1 : end;
    }
    return n;
}

/* One backend per worker over the one model (and, on the CPU, the one set of
 * prepared weights): workers never copy the weights in host memory. 0, -1
 * (cannot), -2 (settings that do not fit). */
static int open_backends(lm_translator *t, int reserve_tokens, lm_err *err) {
    const lm_engine_config *e = &t->engine;
    int dev[LM_MAX_DEVICES], n = e->workers;
    (void)reserve_tokens; /* the CUDA backend's, in builds without CUDA unused */
    if (e->device == LM_DEVICE_CUDA) {
        if (e->workers > 1) { lm_fail(err, "--workers is for --device cpu; with --device cuda, name the GPUs with --devices"); return -2; }
        if ((n = parse_devices(e->devices, dev, LM_MAX_DEVICES, err)) < 0) return -2;
    } else if (e->devices[0]) {
        lm_fail(err, "--devices is for --device cuda; with --device cpu, use --workers N");
        return -2;
    } else if (e->weights_from == LM_WEIGHTS_BROADCAST) {
        lm_fail(err, "--weights-from broadcast is for CUDA devices; CPU workers share one copy of the weights");
        return -2;
    }
    t->backends = lm_calloc((size_t)n, sizeof *t->backends, err);
    if (!t->backends) return -1;
    if (e->device == LM_DEVICE_CUDA) {
#ifdef LM_WITH_CUDA
        /* with broadcast only the first device reads host memory; the others get
         * their weights over NCCL once every device has its buffers */
        bool broadcast = e->weights_from == LM_WEIGHTS_BROADCAST;
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        t->worker_threads = cores / n > 0 ? (int)(cores / n) : 1;
        for (int i = 0; i < n; i++) {
            t->backends[i] = lm_cuda_backend_create_on(&t->model, e->precision, reserve_tokens, dev[i], !broadcast || i == 0, err);
            if (!t->backends[i]) return -1;
            t->n_backends++;
        }
        if (broadcast && lm_cuda_broadcast_weights(t->backends, n, err) != 0) return -1;
        for (int i = 0; i < n; i++) {
            size_t free_b, row, sample_row, token;
            if (lm_cuda_backend_memory(t->backends[i], t->search.gen.max_length, &free_b, &row, &sample_row, &token, err) != 0) return -1;
            if (i == 0 || free_b < t->gpu_free) t->gpu_free = free_b;
            t->gpu_row_bytes = row;
            t->gpu_sample_row_bytes = sample_row;
            t->gpu_token_bytes = token;
        }
        t->gpu_sized = true;
#else
        (void)dev;
        return lm_fail(err, "this lyricmt was built without CUDA (nvcc was not found at build time): use --device cpu");
#endif
    } else {
        if (lm_cpu_weights_init_as(&t->cpu_weights, &t->model, e->precision, err) != 0) return -1;
        /* the cores shared out: workers x threads beyond the cores only wait on each other */
        int asked = lm_translator_threads(e->threads), total = asked > 0 ? asked : (int)sysconf(_SC_NPROCESSORS_ONLN);
        t->worker_threads = total / n > 0 ? total / n : 1;
        for (int i = 0; i < n; i++) {
            /* a single worker keeps "threads 0 = all cores" as before */
            t->backends[i] = lm_cpu_backend_create(&t->model, &t->cpu_weights, n == 1 ? asked : t->worker_threads, err);
            if (!t->backends[i]) return -1;
            t->n_backends++;
        }
    }
    t->backend = t->backends[0];
    return 0;
}

int lm_translator_bind_thread(lm_translator *t, int w, lm_err *err) {
    if (t->engine.device == LM_DEVICE_CUDA) {
#ifdef LM_WITH_CUDA
        /* the host's share of a GPU worker's work (search steps, log-softmax
         * of sampled or scored rows) on cores / workers threads, not all cores each */
        omp_set_num_threads(t->worker_threads);
        return lm_cuda_backend_bind(t->backends[w], err);
#else
        (void)w;
        return lm_fail(err, "no CUDA in this build");
#endif
    }
    omp_set_num_threads(t->n_backends == 1 && t->engine.threads <= 0 ? omp_get_num_procs() : t->worker_threads);
    return 0;
}

static int pool_setup(void *ctx, int w, lm_err *err) { return lm_translator_bind_thread(ctx, w, err); }

static void pool_run(void *ctx, int w, lm_batch *b);

int lm_translator_start_pool(lm_translator *t, bool local, lm_err *err) {
    if (t->pool) return 0;
    t->pool = lm_pool_create(local ? t->n_backends : 0, pool_setup, pool_run, t, err);
    return t->pool ? 0 : -1;
}

/* Settings the model or the backends cannot honour: -2, a usage error. */
static int check_fit(const lm_dir_config *cfg, const lm_engine_config *e, const lm_gen_config *g, lm_err *err) {
    if (g->max_length > cfg->model.max_positions)
        lm_fail(err, "max_length %d exceeds the model's %d positions", g->max_length, cfg->model.max_positions);
    else if (!g->do_sample && g->num_return_sequences > g->num_beams)
        lm_fail(err, "num_return_sequences (%d) cannot exceed num_beams (%d)", g->num_return_sequences, g->num_beams);
    else if (e->device == LM_DEVICE_CUDA && e->precision == LM_PREC_INT8)
        lm_fail(err, "precision int8 is for --device cpu; the GPU computes in fp32, fp16 or bf16");
    else if (e->device == LM_DEVICE_CPU && e->precision == LM_PREC_FP16)
        lm_fail(err, "precision fp16 is for --device cuda; the CPU computes in fp32, int8 or bf16");
    else
        return 0;
    return -2;
}

/* Whether a and b open the same backends: what configure cannot change. */
static bool same_backends(const lm_engine_config *a, const lm_engine_config *b) {
    return a->threads == b->threads && a->workers == b->workers && !strcmp(a->devices, b->devices) &&
           a->weights_from == b->weights_from && a->device == b->device && a->precision == b->precision;
}

int lm_translator_configure(lm_translator *t, const lm_engine_config *asked, lm_err *err) {
    lm_engine_config resolved = *asked, *engine = &resolved;
    lm_engine_config_resolve(engine, NULL); /* the precision; the batch limits below, once the beams are known */
    resolved.max_batch_sentences = asked->max_batch_sentences;
    resolved.max_batch_tokens = asked->max_batch_tokens;
    resolved.window_lines = asked->window_lines;
    if (t->backends && !same_backends(&t->engine, engine)) {
        lm_fail(err, "device, precision, threads, workers, devices and weights_from are chosen when the model is opened");
        return -2;
    }
    const lm_dir_config *cfg = &t->model.cfg;
    lm_convention convention = engine->convention >= 0 ? (lm_convention)engine->convention : cfg->tok.convention;
    char src_lang[16], tgt_lang[16];
    snprintf(src_lang, sizeof src_lang, "%.15s", engine->src_lang[0] ? engine->src_lang : cfg->tok.src_lang);
    snprintf(tgt_lang, sizeof tgt_lang, "%.15s", engine->tgt_lang[0] ? engine->tgt_lang : cfg->tok.tgt_lang[0] ? cfg->tok.tgt_lang : "ko");
    int src_id = lm_tokenizer_lang_id(t->tok, src_lang), tgt_id = lm_tokenizer_lang_id(t->tok, tgt_lang);
    if (src_id < 0) return lm_fail(err, "unknown source language '%s' (use an m2m100 code such as en)", src_lang);
    if (tgt_id < 0) return lm_fail(err, "unknown target language '%s' (use an m2m100 code such as ko)", tgt_lang);

    lm_search_opts s = {0};
    s.gen = cfg->gen;
    s.gen.forced_bos_id = convention == LM_CONV_M2M100 ? tgt_id : -1;
    lm_engine_config_apply(engine, &s.gen);
    s.decoder_start_id = cfg->model.decoder_start_id;
    s.eos_id = cfg->model.eos_id;
    s.vocab_size = cfg->model.vocab_size;
    s.seed = engine->seed;
    if (check_fit(cfg, engine, &s.gen, err) != 0) return -2;
    lm_batch_limits gpu;
    /* sampling decodes num_return_sequences rows a sentence, each with the sampler's scratch */
    if (t->gpu_sized)
        lm_budget_for_memory(t->gpu_free, t->gpu_row_bytes + (s.gen.do_sample ? t->gpu_sample_row_bytes : 0), t->gpu_token_bytes,
                             s.gen.do_sample ? s.gen.num_return_sequences : s.gen.num_beams, &gpu);
    lm_engine_config_resolve(engine, t->gpu_sized ? &gpu : NULL);
    t->engine = *engine;
    t->convention = convention;
    memcpy(t->src_lang, src_lang, sizeof src_lang);
    memcpy(t->tgt_lang, tgt_lang, sizeof tgt_lang);
    t->search = s;
    t->src_prefix_id = convention == LM_CONV_M2M100 ? src_id : tgt_id;
    return 0;
}

int lm_translator_open(lm_translator *t, const char *model_dir, const lm_engine_config *engine, lm_err *err) {
    memset(t, 0, sizeof *t);
    t->engine = *engine;
    if (lm_model_load(model_dir, &t->model, err) != 0) return -1;
    if (lm_tokenizer_load(model_dir, t->model.cfg.model.vocab_size, &t->tok, err) != 0) goto fail;
    int set = lm_translator_configure(t, engine, err);
    if (set == -2) goto settings;
    if (set != 0) goto fail;
    int made = open_backends(t, engine->max_batch_tokens, err); /* 0 (auto): buffers grow with the first batches */
    if (made == -2) goto settings;
    if (made != 0) goto fail;
    /* the batch limits the config left to the device, now that its free memory is known */
    if (t->gpu_sized && lm_translator_configure(t, engine, err) != 0) goto fail;
    return 0;
fail:
    lm_translator_close(t);
    return -1;
settings:
    lm_translator_close(t);
    return -2;
}

void lm_translator_describe_limits(const lm_translator *t, const lm_engine_config *asked, FILE *f) {
    const lm_engine_config *e = &t->engine;
    if (!t->gpu_sized) return;
    fprintf(f, "lyricmt: cuda: %s, %.1f GiB free: batch.max_sentences %d%s, max_tokens %d%s, window_lines %d%s\n",
            lm_precision_name(e->precision), t->gpu_free / 1073741824.0, e->max_batch_sentences, asked->max_batch_sentences ? " (set)" : "",
            e->max_batch_tokens, asked->max_batch_tokens ? " (set)" : "", e->window_lines, asked->window_lines ? " (set)" : "");
}

int lm_translator_threads(int asked) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int most = cores > 0 ? 2 * (int)cores : 2;
    if (asked <= most) return asked;
    /* more threads than cores only make them wait on each other (4096 on two
     * cores took minutes for four lines) */
    fprintf(stderr, "lyricmt: note: threads %d is more than twice the %ld CPU cores; using %d\n", asked, cores, most);
    return most;
}

void lm_translator_close(lm_translator *t) {
    lm_pool_free(t->pool); /* joins the workers before their backends go */
    for (int i = 0; i < t->n_backends; i++) t->backends[i]->ops->destroy(t->backends[i]);
    free(t->backends);
    lm_cpu_weights_free(&t->cpu_weights);
    lm_tokenizer_free(t->tok);
    lm_model_free(&t->model);
    memset(t, 0, sizeof *t);
}

int lm_translator_source_ids(lm_translator *t, const char *text, size_t len, int32_t **ids, int *n, bool *truncated, lm_err *err) {
    int32_t *pieces;
    int np;
    if (lm_tokenizer_encode(t->tok, text, len, &pieces, &np, err) != 0) return -1;
    int limit = t->model.cfg.model.max_positions - 2;
    *truncated = np > limit;
    if (*truncated) np = limit;
    int32_t *out = lm_malloc(((size_t)np + 2) * sizeof *out, err);
    if (!out) { free(pieces); return -1; }
    out[0] = t->src_prefix_id;
    if (np > 0) memcpy(out + 1, pieces, (size_t)np * sizeof *out);
    out[np + 1] = t->model.cfg.model.eos_id;
    free(pieces);
    *ids = out;
    *n = np + 2;
    return 0;
}

typedef struct {
    int index;
    int len;
} by_len_entry;

static int by_length(const void *a, const void *b) {
    const by_len_entry *x = a, *y = b;
    if (x->len != y->len) return x->len - y->len;
    return x->index - y->index;
}

/* Detokenises one search result into a translation. */
static int to_translation(lm_translator *t, const lm_search_result *r, lm_translation *tr, lm_err *err) {
    tr->texts = lm_calloc((size_t)r->n_hyps, sizeof *tr->texts, err);
    tr->scores = lm_calloc((size_t)r->n_hyps, sizeof *tr->scores, err);
    if (!tr->texts || !tr->scores) return -1;
    tr->n_hyps = r->n_hyps;
    for (int h = 0; h < r->n_hyps; h++) {
        const lm_hypothesis *hyp = &r->hyps[h];
        if (lm_tokenizer_decode(t->tok, hyp->ids, hyp->n, &tr->texts[h], err) != 0) return -1;
        tr->scores[h] = hyp->score;
        tr->n_tokens += hyp->n - 1; /* the decoder start token is not generated */
    }
    return 0;
}

int lm_translator_search_batch(lm_translator *t, lm_backend *be, lm_batch *b, const lm_search_opts *o, lm_search_result *found,
                               lm_err *err) {
    lm_search_result *res = found ? found : lm_calloc((size_t)b->n, sizeof *res, err);
    int rc = -1;
    if (!res) return -1;
    if (found) memset(found, 0, (size_t)b->n * sizeof *found);
    if (lm_search_run(be, o ? o : &t->search, b->tokens, b->lens, b->n, res, err) != 0) goto done;
    b->tokens_out = 0;
    for (int i = 0; i < b->n; i++) {
        if (to_translation(t, &res[i], &b->out[i], err) != 0) goto done;
        b->tokens_out += b->out[i].n_tokens;
    }
    rc = 0;
done:
    if (found && rc == 0) return 0;
    for (int i = 0; i < b->n; i++) lm_search_result_free(&res[i]);
    if (!found) free(res);
    return rc;
}

/* Runs batch b on backend be and fills its translations. */
static int run_batch(lm_translator *t, lm_backend *be, lm_batch *b, lm_err *err) {
    if (t->runner.run) return t->runner.run(t->runner.ctx, t, be, b, err);
    return lm_translator_search_batch(t, be, b, NULL, NULL, err);
}

/* In-flight batching: the whole (sorted) list goes to the search, which
 * starts lines as others finish; each line's translation is made as it
 * finishes. */
typedef struct {
    lm_translator *t;
    const by_len_entry *order;
    lm_translation *out;
    const lm_run_hooks *hooks;
} stream_ctx;

static int stream_done(void *ctx, int s, lm_search_result *r, lm_err *err) {
    stream_ctx *c = ctx;
    lm_translation *tr = &c->out[c->order[s].index];
    int rc = to_translation(c->t, r, tr, err);
    lm_search_result_free(r);
    if (rc != 0) lm_translation_free(tr);
    else if (c->hooks && c->hooks->on_batch) c->hooks->on_batch(c->hooks->ctx, 1, tr->n_tokens);
    return rc;
}

static int run_inflight(lm_translator *t, int32_t *const *ids, const by_len_entry *order, int n, lm_translation *out,
                        const lm_run_hooks *hooks, lm_err *err) {
    long total = 0;
    for (int i = 0; i < n; i++) total += order[i].len;
    int32_t *tokens = lm_malloc((size_t)(total ? total : 1) * sizeof *tokens, err), *lens = lm_malloc((size_t)n * sizeof *lens, err);
    lm_search_result *res = lm_calloc((size_t)n, sizeof *res, err);
    int rc = -1;
    if (!tokens || !lens || !res) goto done;
    for (long i = 0, at = 0; i < n; i++) {
        memcpy(tokens + at, ids[order[i].index], (size_t)order[i].len * sizeof *tokens);
        lens[i] = order[i].len;
        at += order[i].len;
    }
    stream_ctx ctx = {t, order, out, hooks};
    lm_search_feed feed = {t->engine.max_batch_sentences, t->engine.max_batch_tokens, hooks ? hooks->cancel : NULL, stream_done, &ctx};
    rc = lm_search_stream(t->backend, &t->search, tokens, lens, n, &feed, res, err);
done:
    if (res)
        for (int i = 0; i < n; i++) lm_search_result_free(&res[i]);
    free(res); free(tokens); free(lens);
    return rc;
}

static void pool_run(void *ctx, int w, lm_batch *b) {
    lm_translator *t = ctx;
    b->rc = run_batch(t, t->backends[w], b, &b->err);
}

/* The next batch of `order` from *start, under the sentence and token limits. */
static lm_batch *next_batch(lm_translator *t, int32_t *const *ids, const by_len_entry *order, int n, int *start, lm_err *err) {
    lm_budget budget = {t->engine.max_batch_sentences, t->engine.max_batch_tokens, t->runner.rows ? t->runner.rows : t->search.gen.num_beams};
    int end = *start, longest = 0, total = 0;
    while (end < n && lm_budget_admits(&budget, end - *start, &longest, order[end].len)) total += order[end++].len;
    lm_batch *b = lm_batch_new(end - *start, total, err);
    if (!b) return NULL;
    for (int i = 0, at = 0; i < b->n; i++) {
        const by_len_entry *o = &order[*start + i];
        memcpy(b->tokens + at, ids[o->index], (size_t)o->len * sizeof *b->tokens);
        b->lens[i] = o->len;
        b->index[i] = o->index;
        at += o->len;
    }
    *start = end;
    return b;
}

/* Moves a finished batch's translations to their places in out. */
static void deliver(lm_batch *b, lm_translation *out, const lm_run_hooks *hooks) {
    for (int i = 0; i < b->n; i++) {
        out[b->index[i]] = b->out[i];
        b->out[i] = (lm_translation){0};
    }
    if (hooks && hooks->on_batch) hooks->on_batch(hooks->ctx, b->n, b->tokens_out);
}

/* One backend: the calling thread runs the batches, each drained before the next. */
static int run_batches(lm_translator *t, int32_t *const *ids, const by_len_entry *order, int n, lm_translation *out,
                       const lm_run_hooks *hooks, lm_err *err) {
    const volatile int *cancel = hooks ? hooks->cancel : NULL;
    int rc = 0;
    for (int start = 0; start < n && rc == 0;) {
        if (cancel && *cancel) { rc = 1; break; }
        lm_batch *b = next_batch(t, ids, order, n, &start, err);
        if (!b || run_batch(t, t->backend, b, err) != 0) rc = -1;
        else deliver(b, out, hooks);
        lm_batch_free(b);
    }
    return rc;
}

/* A pool (several workers, or MPI ranks): every batch queued at once; the
 * first free worker takes the next. */
static int run_pool(lm_translator *t, int32_t *const *ids, const by_len_entry *order, int n, lm_translation *out,
                    const lm_run_hooks *hooks, lm_err *err) {
    const volatile int *cancel = hooks ? hooks->cancel : NULL;
    int rc = 0, queued = 0, made = 0;
    lm_batch **batches = lm_malloc((size_t)(n ? n : 1) * sizeof *batches, err);
    if (!batches) return -1;
    for (int start = 0; start < n;) {
        if (!(batches[made] = next_batch(t, ids, order, n, &start, err))) { rc = -1; break; }
        made++;
    }
    /* longest first: the window ends when its slowest batch does, so that one
     * starts early and the short ones fill in around it. The batches are the
     * same whatever the order, and so are the translations. */
    lm_pool_set_cancel(t->pool, cancel);
    for (int k = made - 1; k >= 0; k--) {
        if (rc == 0) { lm_pool_submit(t->pool, batches[k]); queued++; }
        else lm_batch_free(batches[k]);
    }
    free(batches);
    /* all of them come back, finished or not, before the window is let go */
    for (; queued > 0; queued--) {
        lm_batch *b = lm_pool_collect(t->pool, true);
        if (!b) { /* a worker failed: batches may still be queued, so the pool is not used again */
            rc = lm_pool_error(t->pool, err);
            t->failed = *err;
            break;
        }
        if (b->rc < 0 && rc >= 0) { *err = b->err; rc = -1; }
        else if (b->rc == 1 && rc == 0) rc = 1;
        else if (b->rc == 0) deliver(b, out, hooks);
        lm_batch_free(b);
    }
    return rc;
}

int lm_translator_run(lm_translator *t, int32_t *const *ids, const int *lens, int n, lm_translation *out,
                      const lm_run_hooks *hooks, lm_err *err) {
    memset(out, 0, (size_t)n * sizeof *out);
    if (t->failed.msg[0]) {
        *err = t->failed;
        return -1;
    }
    by_len_entry *order = lm_malloc((size_t)(n ? n : 1) * sizeof *order, err);
    if (!order) return -1;
    for (int i = 0; i < n; i++) order[i] = (by_len_entry){i, lens[i]};
    /* length-sorted batches: less padding work, similar decode lengths */
    if (t->engine.sort_by_length) qsort(order, (size_t)n, sizeof *order, by_length);
    if (t->n_backends > 1 && lm_translator_start_pool(t, true, err) != 0) { free(order); return -1; }
    /* In flight only on a single worker whose backend can add sentences to a
     * running decode, and on the CPU only when the decoder's products give a row
     * the same numbers whatever rows share the step (not BLAS, whose kernels
     * change with the row count). A batch runner of a job's own keeps whole
     * batches: scoring and augmentation force-decode on the backend, which a
     * running decode cannot share. A pool hands out whole batches. */
    bool inflight = !t->pool && t->engine.inflight && t->backend->ops->encode_more && n > 0 && !t->runner.run &&
                    (t->engine.device != LM_DEVICE_CPU || lm_cpu_weights_row_invariant(&t->cpu_weights));
    int rc = t->pool ? run_pool(t, ids, order, n, out, hooks, err)
             : inflight ? run_inflight(t, ids, order, n, out, hooks, err)
                        : run_batches(t, ids, order, n, out, hooks, err);
    free(order);
    if (rc < 0)
        for (int i = 0; i < n; i++) lm_translation_free(&out[i]);
    return rc;
}

int lm_translator_translate(lm_translator *t, const char *const *lines, int n, char **out, lm_err *err) {
    int32_t **ids = lm_calloc((size_t)n + 1, sizeof *ids, err);
    int *lens = lm_calloc((size_t)n + 1, sizeof *lens, err), *which = lm_calloc((size_t)n + 1, sizeof *which, err);
    lm_translation *res = lm_calloc((size_t)n + 1, sizeof *res, err);
    int m = 0, rc = -1;
    for (int i = 0; i < n; i++) out[i] = NULL;
    if (!ids || !lens || !which || !res) goto done;
    for (int i = 0; i < n; i++) {
        bool cut;
        if (lm_is_blank(lines[i], strlen(lines[i]))) continue;
        if (lm_translator_source_ids(t, lines[i], strlen(lines[i]), &ids[m], &lens[m], &cut, err) != 0) goto done;
        which[m++] = i;
    }
    if (lm_translator_run(t, ids, lens, m, res, NULL, err) != 0) goto done;
    for (int j = 0; j < m; j++) { /* augmentation may have dropped every hypothesis: "" then */
        if (res[j].n_hyps == 0) continue;
        out[which[j]] = res[j].texts[0];
        res[j].texts[0] = NULL;
    }
    rc = 0;
    for (int i = 0; i < n; i++)
        if (!out[i] && !(out[i] = strdup(""))) rc = lm_fail(err, "out of memory");
done:
    for (int j = 0; j < m; j++) { free(ids[j]); if (res) lm_translation_free(&res[j]); }
    free(ids); free(lens); free(which); free(res);
    if (rc != 0)
        for (int i = 0; i < n; i++) { free(out[i]); out[i] = NULL; }
    return rc;
}
