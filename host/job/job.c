/* job: see job.h. */
#include "job/job.h"

#include "base/outfile.h"
#include "cpu/cpu_weights.h"
#include "engine/augment.h"
#include "engine/score.h"
#include "engine/worker_pool.h"
#include "job/corpus.h"
#include "job/journal.h"
#include "job/line_cache.h"
#include "job/output.h"
#include "job/sink.h"
#include "model/model_files.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define QUEUE_DEPTH 2 /* windows waiting between two stages */

/* Set by SIGINT/SIGTERM (the signal number) and by a stage that failed (-1):
 * every stage polls it. A signal handler can only reach a global. */
static volatile sig_atomic_t stop_requested;
/* A writer blocked on a pipe or device that nobody reads would hold a stopped
 * job forever (the model stage waits for room in its queue). Such an output
 * has nothing to journal, so a stop arms an alarm, and if the writer is still
 * inside a write when it rings, the process ends with the signal's status. */
static volatile sig_atomic_t stream_output, writing;

typedef struct {
    lm_record rec;
    int32_t *ids;
    int n_ids;
    lm_translation tr;
    const char *warning; /* event kind that touched this line, for TSV/JSONL */
    bool no_model;       /* empty output, model not called: blank, skipped or malformed */
} item;

typedef struct {
    item *items;
    int n;
    int n_write; /* finished prefix to write: n, unless the job was stopped mid-window */
} window;

typedef struct {
    window *slots[QUEUE_DEPTH];
    int head, count;
    bool closed;
    pthread_mutex_t lock;
    pthread_cond_t changed;
} queue;

/* What the job does with a record: translate its text, or score its
 * (source, target) pair (lyricmt score). Every difference between the two
 * kinds of job is a field here. */
typedef struct {
    const char *verb; /* what the model did to a line, for the summary */
    bool pairs;       /* records are pairs: the corpus reads a source and a target field */
    bool (*empty)(const lm_record *r); /* nothing for the model: an empty output record */
    int (*ids)(lm_translator *t, const lm_record *r, int32_t **ids, int *n, bool *cut, lm_err *err);
    int (*format)(lm_format fmt, int n_best, const lm_record *r, const lm_translation *tr, const char *warning, lm_strbuf *b);
} job_kind;

static bool line_empty(const lm_record *r) { return lm_is_blank(r->text, r->len); }
static bool pair_empty(const lm_record *r) { return !r->src; }

static int line_ids(lm_translator *t, const lm_record *r, int32_t **ids, int *n, bool *cut, lm_err *err) {
    return lm_translator_source_ids(t, r->text, r->len, ids, n, cut, err);
}

static int pair_ids(lm_translator *t, const lm_record *r, int32_t **ids, int *n, bool *cut, lm_err *err) {
    return lm_score_pair_ids(t, r->src, r->src_len, r->text, r->len, ids, n, cut, err);
}

static const job_kind translating = {"translated", false, line_empty, line_ids, lm_output_format};
static const job_kind scoring = {"scored", true, pair_empty, pair_ids, lm_output_score};

typedef struct {
    lm_translator *t;
    const job_kind *kind;
    const lm_engine_config *cfg;
    const lm_job_opts *o;
    lm_corpus corpus;
    lm_sink sink;
    lm_journal journal;
    char journal_path[4200], lock_path[4300];
    int lock_fd;               /* held while the job writes its outputs */
    bool journaled;
    lm_line_cache *cache;
    lm_progress progress;
    queue to_model, to_writer;
    long skip;                 /* records an earlier run wrote */
    long vouched;              /* records the journal on disk vouches for; -1 before it is known */
    pthread_mutex_t err_lock;
    lm_err err;
    bool failed;
} job;

/* ---- plumbing ---- */

static void job_fail(job *j, const lm_err *e) {
    pthread_mutex_lock(&j->err_lock);
    if (!j->failed) j->err = *e;
    j->failed = true;
    pthread_mutex_unlock(&j->err_lock);
}

static void queue_init(queue *q) {
    memset(q, 0, sizeof *q);
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->changed, NULL);
}

static void queue_destroy(queue *q) {
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->changed);
}

/* Blocks while full; -1 if the queue was closed (the caller keeps w). */
static int queue_push(queue *q, window *w) {
    pthread_mutex_lock(&q->lock);
    while (q->count == QUEUE_DEPTH && !q->closed) pthread_cond_wait(&q->changed, &q->lock);
    int rc = q->closed ? -1 : 0;
    if (rc == 0) {
        q->slots[(q->head + q->count++) % QUEUE_DEPTH] = w;
        pthread_cond_broadcast(&q->changed);
    }
    pthread_mutex_unlock(&q->lock);
    return rc;
}

/* Blocks while empty; NULL once closed and drained. */
static window *queue_pop(queue *q) {
    pthread_mutex_lock(&q->lock);
    while (q->count == 0 && !q->closed) pthread_cond_wait(&q->changed, &q->lock);
    window *w = NULL;
    if (q->count > 0) {
        w = q->slots[q->head];
        q->head = (q->head + 1) % QUEUE_DEPTH;
        q->count--;
        pthread_cond_broadcast(&q->changed);
    }
    pthread_mutex_unlock(&q->lock);
    return w;
}

static void queue_close(queue *q) {
    pthread_mutex_lock(&q->lock);
    q->closed = true;
    pthread_cond_broadcast(&q->changed);
    pthread_mutex_unlock(&q->lock);
}

static void window_free(window *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) {
        lm_record_free(&w->items[i].rec);
        free(w->items[i].ids);
        lm_translation_free(&w->items[i].tr);
    }
    free(w->items);
    free(w);
}

/* ---- reader: records, policies, tokens ---- */

/* Applies the bad-input policies to one record and tokenises it. -1 stops
 * the job (a "fail" policy, or an error). */
static int prepare(job *j, item *it, lm_err *err) {
    const lm_record *r = &it->rec;
    const char *file = lm_corpus_file_label(&j->corpus, r->file);
    char detail[256];
    if (r->malformed) {
        snprintf(detail, sizeof detail, "unusable %s record (%s); empty output", lm_format_name(j->cfg->input_format), r->malformed);
        lm_progress_event(&j->progress, LM_EVENT_BAD_RECORD, file, r->line, detail);
        it->warning = lm_event_name(LM_EVENT_BAD_RECORD);
        it->no_model = true;
        return 0;
    }
    if (r->note) { /* a doubt, not a refusal: the record is still translated */
        lm_progress_event(&j->progress, LM_EVENT_BAD_RECORD, file, r->line, r->note);
        it->warning = lm_event_name(LM_EVENT_BAD_RECORD);
    }
    if (r->bad_bytes) {
        lm_policy p = j->cfg->bad_utf8;
        snprintf(detail, sizeof detail, "%d invalid UTF-8 or NUL byte(s)%s", r->bad_bytes,
                 p == LM_POLICY_FIX ? " replaced with U+FFFD" : p == LM_POLICY_SKIP ? "; line skipped, empty output" : "; input.bad_utf8 is fail");
        lm_progress_event(&j->progress, LM_EVENT_BAD_UTF8, file, r->line, detail);
        if (p == LM_POLICY_FAIL) return lm_fail(err, "%s:%ld: invalid UTF-8 or NUL byte (input.bad_utf8 is fail)", file, r->line);
        it->warning = lm_event_name(LM_EVENT_BAD_UTF8);
        if (p == LM_POLICY_SKIP) { it->no_model = true; return 0; }
    }
    if (j->kind->empty(r)) { it->no_model = true; return 0; }
    bool cut;
    if (j->kind->ids(j->t, r, &it->ids, &it->n_ids, &cut, err) != 0)
        return lm_fail_prefix(err, "%s:%ld", file, r->line);
    if (cut || r->overlong) {
        lm_policy p = j->cfg->too_long;
        int positions = j->t->model.cfg.model.max_positions;
        char what[96];
        if (cut) snprintf(what, sizeof what, "longer than the model's %d positions", positions);
        else snprintf(what, sizeof what, "longer than %zu bytes, of which only those were read", j->corpus.line_cap);
        snprintf(detail, sizeof detail, "%s; %s", what, p == LM_POLICY_FIX ? "truncated" : p == LM_POLICY_SKIP ? "skipped, empty output" : "input.too_long is fail");
        lm_progress_event(&j->progress, LM_EVENT_TOO_LONG, file, r->line, detail);
        if (p == LM_POLICY_FAIL) return lm_fail(err, "%s:%ld: %s (input.too_long is fail)", file, r->line, what);
        it->warning = lm_event_name(LM_EVENT_TOO_LONG);
        if (p == LM_POLICY_SKIP) {
            free(it->ids);
            it->ids = NULL;
            it->no_model = true;
        }
    }
    return 0;
}

static void *reader_main(void *arg) {
    job *j = arg;
    long skip = j->skip;
    int cap = j->cfg->window_lines;
    lm_err e = {{0}};
    for (bool end = false; !end && !stop_requested;) {
        window *w = calloc(1, sizeof *w);
        if (w) w->items = calloc((size_t)cap, sizeof *w->items);
        if (!w || !w->items) { free(w); lm_fail(&e, "out of memory"); job_fail(j, &e); break; }
        while (w->n < cap && !stop_requested) {
            item *it = &w->items[w->n];
            int got = lm_corpus_next(&j->corpus, &it->rec, &e);
            if (got <= 0) {
                if (got < 0) job_fail(j, &e);
                end = true;
                break;
            }
            if (skip > 0) { /* written by an earlier run */
                skip--;
                lm_record_free(&it->rec);
                continue;
            }
            if (prepare(j, it, &e) != 0) {
                /* the lines before this one are still translated and written */
                free(it->ids);
                lm_record_free(&it->rec);
                memset(it, 0, sizeof *it);
                job_fail(j, &e);
                end = true;
                break;
            }
            w->n++;
        }
        w->n_write = w->n;
        /* a file truncated or rewritten under us would give a short or mixed output */
        if (!end && lm_corpus_check(&j->corpus, &e) != 0) { job_fail(j, &e); end = true; }
        if (w->n == 0 || queue_push(&j->to_model, w) != 0) window_free(w);
    }
    queue_close(&j->to_model);
    return NULL;
}

/* ---- model: repeats, batches ---- */

typedef struct {
    lm_progress *progress;
} batch_ctx;

static void on_batch(void *ctx, int lines, long tokens) {
    lm_progress_add(((batch_ctx *)ctx)->progress, lines, lines, 0, 0, tokens);
}

/* Index of an earlier item in the window with the same ids, or -1 (then
 * records i). A small open-addressing table sized for the window. */
static int window_twin(int *table, int mask, const window *w, int i) {
    const item *it = &w->items[i];
    uint64_t h = lm_hash64(it->ids, (size_t)it->n_ids * sizeof *it->ids, LM_HASH_INIT);
    for (int s = (int)(h & (uint64_t)mask);; s = (s + 1) & mask) {
        if (table[s] < 0) { table[s] = i; return -1; }
        const item *o = &w->items[table[s]];
        if (o->n_ids == it->n_ids && memcmp(o->ids, it->ids, (size_t)it->n_ids * sizeof *it->ids) == 0) return table[s];
    }
}

/* Fills every item's translation; on a stop request, sets n_write to the
 * finished prefix. */
static int translate_window(job *j, window *w, lm_err *err) {
    int n = w->n, m = 0, mask = 1, rc = -1;
    while (mask < 2 * n) mask *= 2;
    int *table = malloc((size_t)mask * sizeof *table), *twin = malloc((size_t)n * sizeof *twin), *uniq = malloc((size_t)n * sizeof *uniq);
    int32_t **ids = malloc((size_t)n * sizeof *ids);
    int *lens = malloc((size_t)n * sizeof *lens);
    lm_translation *res = calloc((size_t)n, sizeof *res);
    if (!table || !twin || !uniq || !ids || !lens || !res) { lm_fail(err, "out of memory"); goto done; }
    for (int s = 0; s < mask; s++) table[s] = -1;
    mask--;
    long empty = 0, reused = 0;
    for (int i = 0; i < n; i++) {
        item *it = &w->items[i];
        twin[i] = -1;
        if (it->no_model) { empty++; continue; }
        int hit = lm_line_cache_get(j->cache, it->ids, it->n_ids, &it->tr);
        if (hit < 0) { lm_fail(err, "out of memory"); goto done; }
        if (hit) { reused++; continue; }
        if ((twin[i] = window_twin(table, mask, w, i)) >= 0) continue;
        uniq[m] = i;
        ids[m] = it->ids;
        lens[m++] = it->n_ids;
    }
    lm_progress_add(&j->progress, empty + reused, 0, reused, empty, 0);
    batch_ctx ctx = {&j->progress};
    lm_run_hooks hooks = {&stop_requested, on_batch, &ctx};
    int ran = lm_translator_run(j->t, ids, lens, m, res, &hooks, err);
    if (ran < 0) goto done;
    for (int k = 0; k < m; k++) {
        item *it = &w->items[uniq[k]];
        it->tr = res[k];
        res[k] = (lm_translation){0};
        if (it->tr.texts && lm_line_cache_put(j->cache, it->ids, it->n_ids, &it->tr) != 0) { lm_fail(err, "out of memory"); goto done; }
    }
    long twins = 0;
    for (int i = 0; i < n; i++) {
        const item *src = twin[i] >= 0 ? &w->items[twin[i]] : NULL;
        if (!src || !src->tr.texts) continue;
        if (lm_translation_copy(&w->items[i].tr, &src->tr) != 0) { lm_fail(err, "out of memory"); goto done; }
        twins++;
    }
    lm_progress_add(&j->progress, twins, 0, twins, 0, 0);
    w->n_write = n;
    if (ran == 1) /* stopped: only the finished prefix can be written in order */
        for (int i = 0; i < n; i++)
            if (!w->items[i].no_model && !w->items[i].tr.texts) { w->n_write = i; break; }
    rc = 0;
done:
    for (int k = 0; res && k < n; k++) lm_translation_free(&res[k]);
    free(table); free(twin); free(uniq); free(ids); free(lens); free(res);
    return rc;
}

/* ---- writer: in order, synced, journaled ---- */

static int save_journal(job *j, lm_err *err) {
    if (!j->journaled) return 0;
    j->journal.output = j->sink.cur;
    j->journal.bytes = j->sink.bytes;
    if (lm_journal_save(j->journal_path, &j->journal, err) != 0) return -1;
    j->vouched = j->journal.records;
    return 0;
}

/* Completes outputs until `target` is the open one (target == n_outputs:
 * all complete). The journal moves first, so a kill between the two steps
 * leaves a .partial that the journal calls complete, which a resume renames. */
static int advance_output(job *j, int target, lm_err *err) {
    while (j->sink.cur < target) {
        int next = j->sink.cur + 1;
        if (lm_sink_sync(&j->sink, err) != 0) return -1;
        if (j->journaled) {
            j->journal.output = next;
            j->journal.bytes = 0;
            if (lm_journal_save(j->journal_path, &j->journal, err) != 0) return -1;
            j->vouched = j->journal.records;
        }
        if (lm_sink_publish(&j->sink, err) != 0) return -1;
        if (next == j->sink.n_outputs) { j->sink.cur = next; break; }
        if (lm_sink_open(&j->sink, next, 0, err) != 0) return -1;
    }
    return 0;
}

static int write_window(job *j, const window *w, lm_strbuf *b, lm_err *err) {
    for (int i = 0; i < w->n_write; i++) {
        const item *it = &w->items[i];
        int out = j->sink.n_outputs > 1 ? it->rec.file : 0;
        if (out != j->sink.cur && advance_output(j, out, err) != 0) return -1;
        b->len = 0;
        if (j->kind->format(j->cfg->output_format, j->t->search.gen.num_return_sequences, &it->rec, it->tr.texts ? &it->tr : NULL,
                            it->warning, b) != 0)
            return lm_fail(err, "out of memory");
        if (lm_sink_write(&j->sink, b->data, b->len, err) != 0) return -1;
        j->journal.records++;
    }
    if (lm_sink_sync(&j->sink, err) != 0) return -1;
    return save_journal(j, err);
}

static void *writer_main(void *arg) {
    job *j = arg;
    lm_strbuf b = {0};
    lm_err e = {{0}};
    bool broken = false;
    for (window *w; (w = queue_pop(&j->to_writer)); window_free(w)) {
        if (broken) continue;
        writing = 1;
        int rc = write_window(j, w, &b, &e);
        writing = 0;
        if (rc == 0) continue;
        broken = true; /* keep draining so the model stage never blocks */
        job_fail(j, &e);
        stop_requested = -1;
    }
    free(b.data);
    return NULL;
}

/* ---- identity, for the journal ---- */

static int add_file_hash(lm_journal *id, const char *dir, const lm_model_file *mf) {
    char path[4200];
    char *text;
    size_t len;
    const char *name = mf->name;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (!lm_file_exists(path)) return lm_journal_add(id, "model", name, "absent");
    if (lm_read_file(path, mf->max_bytes, &text, &len, NULL) != 0) return lm_journal_add(id, "model", name, "unreadable");
    int rc = lm_journal_add(id, "model", name, "%016llx", (unsigned long long)lm_hash64(text, len, LM_HASH_INIT));
    free(text);
    return rc;
}

/* The arithmetic the products run: the device, the precision and, on the
 * CPU, the kernels (the same settings on another CPU may round otherwise). */
static void arithmetic(const lm_translator *t, char *buf, size_t cap) {
    if (t->engine.device == LM_DEVICE_CUDA) snprintf(buf, cap, "cuda, %s, cuBLAS", lm_precision_name(t->engine.precision));
    else snprintf(buf, cap, "cpu, %s", lm_cpu_weights_arithmetic(&t->cpu_weights));
}

/* Everything that decides the output bytes: inputs, model, settings. Threads
 * and batch sizes are left out: on row-invariant arithmetic (every CPU form
 * but OpenBLAS) they never change a translation. Inputs are known by their
 * place in the job, their name within it and their content, not by how the
 * command spelled their path, so "./a.txt" resumes a job started on "a.txt". */
static int build_identity(job *j, lm_journal *id) {
    const lm_corpus *c = &j->corpus;
    for (int i = 0; i < c->n_files; i++) {
        char key[4200];
        snprintf(key, sizeof key, "%d %s", i + 1, c->files[i].name);
        if (lm_journal_add(id, "input", key, "%llu bytes, hash %016llx", (unsigned long long)c->files[i].size,
                           (unsigned long long)c->files[i].hash) != 0) return -1;
    }
    for (int i = 0; i < LM_N_MODEL_FILES; i++) /* the weights: below */
        if (!lm_model_files[i].weights && add_file_hash(id, j->o->model_dir, &lm_model_files[i]) != 0) return -1;
    struct stat st;
    const char *weights = j->t->model.weights_path;
    if (stat(weights, &st) != 0) return -1;
    /* weights are too big to hash at every start: size and modification time */
    if (lm_journal_add(id, "model", "weights", "%s, %lld bytes, modified %lld.%09ld", strrchr(weights, '/') ? strrchr(weights, '/') + 1 : weights,
                       (long long)st.st_size, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec) != 0) return -1;
    const lm_translator *t = j->t;
    const lm_gen_config *g = &t->search.gen;
    const lm_engine_config *e = j->cfg;
    int rc = 0;
    char arith[128];
    arithmetic(t, arith, sizeof arith);
    rc |= lm_journal_add(id, "setting", "arithmetic", "%s", arith);
    rc |= lm_journal_add(id, "setting", "convention", "%s", t->convention == LM_CONV_M2M100 ? "m2m100" : "small100");
    rc |= lm_journal_add(id, "setting", "languages", "%s -> %s", t->src_lang, t->tgt_lang);
    rc |= lm_journal_add(id, "setting", "decoding", "num_beams %d, max_length %d, min_length %d, length_penalty %g, early_stopping %d, "
                         "no_repeat_ngram_size %d, repetition_penalty %g, num_return_sequences %d",
                         g->num_beams, g->max_length, g->min_length, g->length_penalty, g->early_stopping, g->no_repeat_ngram_size,
                         g->repetition_penalty, g->num_return_sequences);
    rc |= lm_journal_add(id, "setting", "sampling", "do_sample %d, temperature %g, top_k %d, top_p %g, seed %llu", g->do_sample, g->temperature,
                         g->top_k, g->top_p, (unsigned long long)t->search.seed);
    rc |= lm_journal_add(id, "setting", "input", "%s, id field %s, text field %s, bad_utf8 %s, too_long %s", lm_format_name(e->input_format),
                         e->id_field, e->text_field, lm_policy_name(e->bad_utf8, false), lm_policy_name(e->too_long, true));
    if (j->kind->pairs) /* a translation's journal never resumes a scoring job, nor the other way round */
        rc |= lm_journal_add(id, "setting", "score", "pairs: source field %s, target field %s", e->source_field, e->target_field);
    rc |= lm_journal_add(id, "setting", "output", "%s, %s, dedup_hypotheses %d, min_score %s%.9g", lm_format_name(e->output_format),
                         j->o->per_file ? "one file per input" : "one file", e->dedup_hypotheses, e->has_min_score ? "" : "none ",
                         e->has_min_score ? e->min_score : 0.0);
    return rc ? -1 : 0;
}

/* Reads the journal beside the output, if any, and positions the job after
 * what it says is written. */
static int start_or_resume(job *j, lm_err *err) {
    lm_journal saved;
    int loaded = j->o->restart ? 0 : lm_journal_load(j->journal_path, &saved, err);
    if (loaded < 0) return -1;
    if (loaded == 0) {
        j->journal.records = 0;
        if (lm_sink_open(&j->sink, 0, 0, err) != 0) return -1;
        return save_journal(j, err);
    }
    long records = saved.records;
    int output = saved.output;
    uint64_t bytes = saved.bytes;
    /* a journal that vouches for nothing holds nothing to keep: settings may change freely */
    int rc = records == 0 && output == 0 && bytes == 0 ? 0 : lm_journal_compare(&saved, &j->journal, err);
    lm_journal_free(&saved);
    if (rc != 0)
        return lm_fail_prefix(err, "cannot resume from %s (remove it, or pass --restart to start over)", j->journal_path);
    if (output > j->sink.n_outputs || records > lm_corpus_total(&j->corpus))
        return lm_fail(err, "%s: progress mark is past the end of the job; remove it or pass --restart", j->journal_path);
    for (int i = 0; i < output; i++)
        if (lm_sink_republish(&j->sink, i, err) != 0) return -1;
    j->journal.records = j->skip = records;
    if (output == j->sink.n_outputs) j->sink.cur = output; /* all written; only the journal remained */
    else if (lm_sink_open(&j->sink, output, bytes, err) != 0) return -1;
    j->vouched = records; /* only now is "run it again to resume" true */
    return 0;
}

/* ---- the job ---- */

static void on_signal(int sig) {
    stop_requested = sig;
    if (stream_output) alarm(3);
}

static void on_alarm(int sig) {
    (void)sig;
    if (writing) _exit(128 + stop_requested);
    alarm(3);
}

/* How the batches spread over the workers: a worker that took none, or far
 * fewer than the others, shows here. */
static void print_workers(lm_pool *p) {
    char line[1024];
    int at = snprintf(line, sizeof line, "lyricmt: %d worker%s ran", lm_pool_workers(p), lm_pool_workers(p) > 1 ? "s" : "");
    for (int w = 0; w < lm_pool_workers(p) && at < (int)sizeof line - 32; w++)
        at += snprintf(line + at, sizeof line - (size_t)at, "%s %ld", w ? "," : "", lm_pool_batches_run(p, w));
    fprintf(stderr, "%s batches\n", line);
}

/* The model stage: runs on the calling thread until the reader is done or
 * a stop is requested. */
static void model_loop(job *j) {
    lm_err e = {{0}};
    for (window *w; (w = queue_pop(&j->to_model));) {
        if (stop_requested) { window_free(w); continue; } /* drain: the reader is stopping */
        if (translate_window(j, w, &e) != 0) {
            job_fail(j, &e);
            stop_requested = -1;
            window_free(w);
            continue;
        }
        if (queue_push(&j->to_writer, w) != 0) window_free(w);
    }
}

/* Files and directories the job itself writes, as they exist now, so a
 * directory walk does not read them back as input. */
static void own_files(const lm_job_opts *o, lm_file_id *ids, int *n) {
    *n = 0;
    char base[4200], path[4300];
    if (o->report && lm_file_id_get(o->report, &ids[*n])) (*n)++;
    if (!o->output) return;
    if (o->per_file) {
        if (lm_file_id_get(o->output, &ids[*n])) (*n)++;
        return;
    }
    char *real = realpath(o->output, NULL);
    snprintf(base, sizeof base, "%s", real ? real : o->output);
    free(real);
    static const char *const suffixes[] = {"", ".partial", ".journal", ".journal.tmp", ".journal.lock"};
    for (size_t k = 0; k < sizeof suffixes / sizeof *suffixes; k++) {
        snprintf(path, sizeof path, "%s%s", base, suffixes[k]);
        if (lm_file_id_get(path, &ids[*n])) (*n)++;
    }
}

static bool same_file(const char *a, const char *b) {
    lm_file_id x, y;
    return !strcmp(a, b) || (lm_file_id_get(a, &x) && lm_file_id_get(b, &y) && lm_file_id_eq(x, y));
}

/* What no output of the job may be: its input files (standard input too,
 * when it is redirected from a file) and the model's files. */
static int protect_inputs(job *j, lm_protect *p, lm_err *err) {
    const lm_corpus *c = &j->corpus;
    char label[4200];
    for (int f = 0; f < c->n_files; f++) {
        struct stat st;
        snprintf(label, sizeof label, "the input %s", lm_corpus_file_label(c, f));
        if (!strcmp(c->files[f].path, "-")) {
            if (fstat(0, &st) == 0 && S_ISREG(st.st_mode) &&
                lm_protect_id(p, (lm_file_id){(uint64_t)st.st_dev, (uint64_t)st.st_ino}, label, err) != 0)
                return -1;
        } else if (!c->files[f].stream && lm_protect_id(p, c->files[f].id, label, err) != 0) {
            return -1;
        }
    }
    return lm_model_protect(p, j->o->model_dir, err);
}

/* Everything the job will write is checked before anything is written. */
static int refuse_overwrites(job *j, lm_err *err) {
    const lm_sink *s = &j->sink;
    const char *report = j->o->report;
    lm_protect p = {0};
    int rc = protect_inputs(j, &p, err);
    if (rc == 0 && report) rc = lm_protect_check(&p, report, err);
    for (int i = 0; rc == 0 && i < s->n_outputs && s->paths[i]; i++) {
        char partial[8300];
        lm_sink_partial_path(s, i, partial, sizeof partial);
        rc = lm_protect_check(&p, s->paths[i], err) != 0 || lm_protect_check(&p, partial, err) != 0 ? -1 : 0;
        if (rc == 0 && report && same_file(report, s->paths[i])) rc = lm_fail(err, "--report %s is also the translation output", report);
    }
    if (rc == 0 && s->paths[0] && !s->direct) {
        char base[8300], path[8400];
        if (j->o->per_file) snprintf(base, sizeof base, "%s/.lyricmt-journal", j->o->output);
        else snprintf(base, sizeof base, "%s.journal", s->paths[0]);
        static const char *const suffixes[] = {"", ".tmp", ".lock"};
        for (int k = 0; k < 3 && rc == 0; k++) {
            snprintf(path, sizeof path, "%s%s", base, suffixes[k]);
            rc = lm_protect_check(&p, path, err);
        }
    }
    lm_protect_free(&p);
    return rc;
}

static int open_job(job *j, lm_err *err) {
    const lm_job_opts *o = j->o;
    lm_file_id own[8], out_dir, in;
    int n_own;
    own_files(o, own, &n_own);
    if (o->per_file && lm_file_id_get(o->output, &out_dir))
        for (int i = 0; i < o->n_inputs; i++) {
            if (lm_file_id_get(o->inputs[i], &in) && lm_file_id_eq(in, out_dir))
                return lm_fail(err, "output directory %s is the input directory %s: the translations would replace the lyrics; choose another",
                               o->output, o->inputs[i]);
        }
    if (lm_corpus_open(&j->corpus, o->inputs, o->n_inputs, j->cfg, own, n_own, err) != 0) return -1;
    if (j->kind->pairs) {
        j->corpus.pairs = true;
        snprintf(j->corpus.source_field, sizeof j->corpus.source_field, "%s", j->cfg->source_field);
        snprintf(j->corpus.text_field, sizeof j->corpus.text_field, "%s", j->cfg->target_field);
    }
    j->corpus.cancel = &stop_requested;
    /* enough text for the model's positions (about 64 bytes each): a longer line is cut
     * while it is read, so memory does not grow with it */
    size_t cap = (size_t)j->t->model.cfg.model.max_positions * 64;
    j->corpus.line_cap = cap < 65536 ? 65536 : cap;
    if (lm_corpus_scan(&j->corpus, err) != 0) return -1;
    if (lm_sink_init(&j->sink, o->output, o->per_file, &j->corpus, err) != 0) return -1;
    j->sink.cancel = &stop_requested;
    stream_output = j->sink.direct || !o->output;
    if (refuse_overwrites(j, err) != 0) return -1;
    /* resumable when both ends are regular files: a stream cannot be read twice,
     * and a device cannot be cut back to a journal's mark */
    j->journaled = o->output && !j->sink.direct && !j->corpus.streamed;
    if (o->output && !j->journaled)
        fprintf(stderr, "lyricmt: note: %s is %s: writing without a journal, so this job cannot be resumed\n",
                j->sink.direct ? o->output : "an input", j->sink.direct ? "a device or FIFO" : "a pipe, device or standard input");
    if (!o->output || j->sink.direct) return lm_sink_open(&j->sink, 0, 0, err);
    if (o->per_file) {
        if (mkdir(o->output, 0777) != 0 && errno != EEXIST) return lm_fail(err, "%s: cannot create directory: %s", o->output, strerror(errno));
        snprintf(j->journal_path, sizeof j->journal_path, "%s/.lyricmt-journal", o->output);
    } else {
        snprintf(j->journal_path, sizeof j->journal_path, "%s.journal", j->sink.paths[0]);
    }
    /* two jobs writing the same output would clobber each other's .partial; the
     * second one is refused, journaled or not */
    snprintf(j->lock_path, sizeof j->lock_path, "%s.lock", j->journal_path);
    j->lock_fd = open(j->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (j->lock_fd < 0) return lm_fail(err, "%s: cannot create: %s", j->lock_path, strerror(errno));
    if (flock(j->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        close(j->lock_fd);
        j->lock_fd = -1;
        return lm_fail(err, "another lyricmt job is writing %s (lock %s is held)", o->output, j->lock_path);
    }
    if (!j->journaled) return lm_sink_open(&j->sink, 0, 0, err);
    if (build_identity(j, &j->journal) != 0) return lm_fail(err, "out of memory building the job's identity");
    return start_or_resume(j, err);
}

void lm_job_attach(lm_translator *t, const lm_job_opts *o) {
    if (o->score) lm_score_attach(t);
    else if (lm_augment_wanted(&t->engine)) lm_augment_attach(t);
    else t->runner = (lm_batch_runner){0};
}

int lm_job_run(lm_translator *t, const lm_job_opts *o, lm_err *err) {
    job *j = lm_calloc(1, sizeof *j, err);
    if (!j) return -1;
    lm_job_attach(t, o);
    j->t = t;
    j->kind = o->score ? &scoring : &translating;
    j->cfg = &t->engine;
    j->o = o;
    j->lock_fd = -1;
    j->vouched = -1;
    stop_requested = 0;
    pthread_mutex_init(&j->err_lock, NULL);
    queue_init(&j->to_model);
    queue_init(&j->to_writer);
    lm_progress_init(&j->progress, o->progress, o->summary, -1, 0);
    j->progress.cancel = &stop_requested;
    j->progress.model_verb = j->kind->verb;
    int rc = -1;
    pthread_t reader, writer;

    /* a first Ctrl-C stops cleanly; a second one (SA_RESETHAND) kills. Set
     * before opening anything: waiting for a FIFO's writer or reader must
     * give way to a stop too. */
    struct sigaction old_int, old_term, old_alrm, act;
    memset(&act, 0, sizeof act);
    act.sa_handler = on_signal;
    act.sa_flags = SA_RESETHAND;
    sigemptyset(&act.sa_mask);
    sigaction(SIGINT, &act, &old_int);
    sigaction(SIGTERM, &act, &old_term);
    act.sa_handler = on_alarm;
    act.sa_flags = 0;
    sigaction(SIGALRM, &act, &old_alrm);
    stream_output = writing = 0;

    if (open_job(j, err) != 0) goto done;
    j->progress.total = lm_corpus_total(&j->corpus);
    j->progress.resumed = j->skip;
    if (o->report && lm_progress_open_report(&j->progress, o->report, err) != 0) goto done;
    for (int i = 0; i < j->corpus.n_skipped; i++)
        lm_progress_event(&j->progress, LM_EVENT_SKIPPED_PATH, j->corpus.skipped[i].path, 0, j->corpus.skipped[i].why);
    if (t->engine.cache_lines > 0 && !(j->cache = lm_line_cache_create(t->engine.cache_lines, err))) goto done;
    if (pthread_create(&reader, NULL, reader_main, j) != 0) { lm_fail(err, "cannot start the reader thread"); goto done; }
    if (pthread_create(&writer, NULL, writer_main, j) != 0) {
        lm_fail(err, "cannot start the writer thread");
        stop_requested = -1;
        queue_close(&j->to_model);
        pthread_join(reader, NULL);
        goto done;
    }
    model_loop(j);
    queue_close(&j->to_model);
    queue_close(&j->to_writer);
    pthread_join(reader, NULL);
    pthread_join(writer, NULL);
    if (j->failed) {
        *err = j->err;
    } else if (stop_requested > 0) {
        rc = stop_requested;
    } else if (advance_output(j, j->sink.n_outputs, err) == 0 && lm_progress_close_report(&j->progress, err) == 0) {
        if (j->journaled && unlink(j->journal_path) != 0 && errno != ENOENT) lm_fail(err, "%s: cannot remove: %s", j->journal_path, strerror(errno));
        else rc = 0;
    }
    if (rc != 0) lm_progress_close_report(&j->progress, NULL);
    lm_progress_finish(&j->progress, rc == 0 ? "done" : rc > 0 ? "interrupted" : "failed");
    if (o->summary && t->pool && lm_pool_workers(t->pool) > 0) print_workers(t->pool);
done:
    alarm(0);
    if (rc < 0 && stop_requested > 0) rc = stop_requested; /* a stop that cut a wait or a read short is still a stop */
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGALRM, &old_alrm, NULL);
    if (rc != 0 && j->journaled && j->vouched > 0) {
        fprintf(stderr, "lyricmt: the journal %s vouches for %ld written lines; run the same command again to resume\n", j->journal_path,
                j->vouched);
    } else if (rc != 0 && (j->vouched == 0 || !j->journaled)) {
        /* nothing a later run could resume from: leave nothing half-done behind */
        lm_sink_abandon(&j->sink);
        if (j->journaled) unlink(j->journal_path);
        if (j->lock_fd >= 0) unlink(j->lock_path);
    }
    if (j->lock_fd >= 0) {
        if (rc == 0) unlink(j->lock_path);
        close(j->lock_fd);
    }
    lm_sink_free(&j->sink);
    lm_corpus_close(&j->corpus);
    lm_journal_free(&j->journal);
    lm_line_cache_free(j->cache);
    lm_progress_free(&j->progress);
    queue_destroy(&j->to_model);
    queue_destroy(&j->to_writer);
    pthread_mutex_destroy(&j->err_lock);
    free(j);
    return rc;
}
