/* mpi_link: see mpi_link.h. */
#include "engine/mpi_link.h"

#include <stdlib.h>

#ifndef LM_WITH_MPI

int lm_mpi_init(lm_mpi *m, lm_err *err) {
    (void)err;
    *m = (lm_mpi){0, 1, false, NULL};
    /* under a launcher, a build without MPI would run N separate whole jobs on one output */
    if (getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK")) {
        const char *n = getenv("OMPI_COMM_WORLD_SIZE") ? getenv("OMPI_COMM_WORLD_SIZE") : getenv("PMI_SIZE");
        if (!n || atoi(n) > 1)
            return lm_fail(err, "started by an MPI launcher, but this lyricmt was built without MPI (mpicc was not found at build time)");
    }
    return 0;
}
int lm_mpi_serve(lm_mpi *m, lm_translator *t, lm_err *err) { (void)m; (void)t; return lm_fail(err, "built without MPI"); }
int lm_mpi_feed_start(lm_mpi *m, lm_translator *t, lm_err *err) { (void)m; (void)t; return lm_fail(err, "built without MPI"); }
int lm_mpi_feed_stop(lm_mpi *m, bool summary) { (void)m; (void)summary; return 0; }
void lm_mpi_finish(lm_mpi *m, bool abort_all, int code) { (void)m; (void)abort_all; (void)code; }
const char *lm_mpi_build(void) { return "not built"; }

#else

#include "engine/worker_pool.h"

#include <mpi.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

enum { TAG_ASK = 1, TAG_BATCH, TAG_RESULT, TAG_STOP, TAG_DONE, TAG_ALIVE };

/* ---- the wire: batches out, translations back, as flat bytes ---- */

typedef struct {
    const char *p;
    size_t left;
    bool bad;
} reader;

static void take(reader *r, void *dst, size_t n) {
    if (r->bad || n > r->left) { r->bad = true; memset(dst, 0, n); return; }
    memcpy(dst, r->p, n);
    r->p += n;
    r->left -= n;
}

static int32_t take_i32(reader *r) { int32_t v; take(r, &v, sizeof v); return v; }

static int put(lm_strbuf *b, const void *src, size_t n) { return lm_strbuf_add(b, src, n); }
static int put_i32(lm_strbuf *b, int32_t v) { return put(b, &v, sizeof v); }

/* id, n, lens[n], tokens */
static int pack_batch(lm_strbuf *b, int32_t id, const lm_batch *bt) {
    int total = 0;
    for (int i = 0; i < bt->n; i++) total += bt->lens[i];
    if (put_i32(b, id) || put_i32(b, bt->n) || put(b, bt->lens, (size_t)bt->n * sizeof *bt->lens) ||
        put(b, bt->tokens, (size_t)total * sizeof *bt->tokens))
        return -1;
    return 0;
}

static lm_batch *unpack_batch(const char *data, size_t len, int32_t *id, lm_err *err) {
    reader r = {data, len, false};
    *id = take_i32(&r);
    int n = take_i32(&r);
    if (r.bad || n <= 0 || (size_t)n > r.left / sizeof(int32_t)) { lm_fail(err, "MPI: a malformed batch from rank 0"); return NULL; }
    int32_t *lens = malloc((size_t)n * sizeof *lens);
    if (!lens) { lm_fail(err, "out of memory"); return NULL; }
    take(&r, lens, (size_t)n * sizeof *lens);
    long total = 0;
    for (int i = 0; i < n; i++) total += lens[i] > 0 ? lens[i] : 1 << 30;
    lm_batch *b = total * sizeof(int32_t) == r.left ? lm_batch_new(n, (int)total, err) : NULL;
    if (!b) {
        if (total * sizeof(int32_t) != r.left) lm_fail(err, "MPI: a malformed batch from rank 0");
        free(lens);
        return NULL;
    }
    memcpy(b->lens, lens, (size_t)n * sizeof *lens);
    take(&r, b->tokens, (size_t)total * sizeof *b->tokens);
    free(lens);
    for (int i = 0; i < n; i++) b->index[i] = i;
    return b;
}

/* id, rc; rc 0: tokens_out, then per source n_hyps, n_tokens, scores, the
 * sample indexes (a flag, then n_hyps of them: augmentation's), texts
 * (length + bytes); rc -1: the error message */
static int pack_result(lm_strbuf *b, int32_t id, const lm_batch *bt) {
    if (put_i32(b, id) || put_i32(b, bt->rc)) return -1;
    if (bt->rc != 0) return put(b, bt->err.msg, strlen(bt->err.msg));
    int64_t tokens = bt->tokens_out;
    if (put(b, &tokens, sizeof tokens)) return -1;
    for (int i = 0; i < bt->n; i++) {
        const lm_translation *tr = &bt->out[i];
        if (put_i32(b, tr->n_hyps) || put_i32(b, tr->n_tokens) || put(b, tr->scores, (size_t)tr->n_hyps * sizeof *tr->scores) ||
            put_i32(b, tr->sample != NULL) || (tr->sample && put(b, tr->sample, (size_t)tr->n_hyps * sizeof *tr->sample)))
            return -1;
        for (int h = 0; h < tr->n_hyps; h++) {
            int32_t len = (int32_t)strlen(tr->texts[h]);
            if (put_i32(b, len) || put(b, tr->texts[h], (size_t)len)) return -1;
        }
    }
    return 0;
}

/* Fills bt (taken from the pool for this rank) from a result; rc and err set. */
static void unpack_result(reader *r, int src, lm_batch *bt) {
    bt->rc = take_i32(r);
    if (bt->rc != 0) {
        size_t n = r->left < LM_ERR_LEN - 40 ? r->left : LM_ERR_LEN - 40;
        lm_fail(&bt->err, "rank %d: %.*s", src, (int)n, r->p);
        bt->rc = -1;
        return;
    }
    int64_t tokens;
    take(r, &tokens, sizeof tokens);
    bt->tokens_out = tokens;
    for (int i = 0; i < bt->n && !r->bad; i++) {
        lm_translation *tr = &bt->out[i];
        int hyps = take_i32(r);
        /* none: augmentation dropped every hypothesis of the line */
        if (hyps < 0 || (size_t)hyps > r->left) { r->bad = true; break; }
        tr->n_tokens = take_i32(r);
        tr->texts = calloc((size_t)hyps + 1, sizeof *tr->texts);
        tr->scores = calloc((size_t)hyps + 1, sizeof *tr->scores);
        if (!tr->texts || !tr->scores) { r->bad = true; break; }
        tr->n_hyps = hyps;
        take(r, tr->scores, (size_t)hyps * sizeof *tr->scores);
        if (take_i32(r)) {
            if (!(tr->sample = calloc((size_t)hyps + 1, sizeof *tr->sample))) { r->bad = true; break; }
            take(r, tr->sample, (size_t)hyps * sizeof *tr->sample);
        }
        for (int h = 0; h < hyps && !r->bad; h++) {
            int32_t len = take_i32(r);
            if (len < 0 || (size_t)len > r->left) { r->bad = true; break; }
            if (!(tr->texts[h] = malloc((size_t)len + 1))) { r->bad = true; break; }
            take(r, tr->texts[h], (size_t)len);
            tr->texts[h][len] = '\0';
        }
    }
    if (r->bad || r->left) {
        for (int i = 0; i < bt->n; i++) lm_translation_free(&bt->out[i]);
        lm_fail(&bt->err, "MPI: a malformed result from rank %d", src);
        bt->rc = -1;
    }
}

/* ---- plumbing ---- */

static int mpi_fail(lm_err *err, int code, const char *what) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(code, msg, &len);
    return lm_fail(err, "MPI: %s: %.*s", what, len, msg);
}

#define MPI_TRY(call, what)                                                                                                       \
    do {                                                                                                                          \
        int c_ = (call);                                                                                                          \
        if (c_ != MPI_SUCCESS) return mpi_fail(err, c_, what);                                                                    \
    } while (0)

/* Polling waits: short while messages flow, up to 5 ms when idle (mpi4py's backoff). */
static void backoff(int *idle) {
    struct timespec ts = {0, (long)(*idle < 50 ? 100 : 5000) * 1000};
    nanosleep(&ts, NULL);
    if (*idle < 1000) (*idle)++;
}

/* Time a rank has been running: MPI_Wtime, less the time this process was
 * stopped (Ctrl-Z, SIGSTOP, a suspended job) as far as it shows as a gap
 * between two readings of more than a second; the loops below read it every
 * few milliseconds. A rank is judged by how long it has had to answer while
 * both were running, not by the wall clock across a suspension. */
typedef struct {
    double last, live;
} live_clock;

static double live_now(live_clock *c) {
    double now = MPI_Wtime();
    if (c->last > 0) c->live += now - c->last < 1.0 ? now - c->last : 1.0;
    c->last = now;
    return c->live;
}

/* Receives the message probed in st into *buf. */
static int receive(MPI_Status *st, lm_strbuf *buf, lm_err *err) {
    int count;
    MPI_TRY(MPI_Get_count(st, MPI_BYTE, &count), "get_count");
    buf->len = 0;
    if ((size_t)count + 1 > buf->cap) {
        char *bigger = realloc(buf->data, (size_t)count + 1);
        if (!bigger) return lm_fail(err, "out of memory");
        buf->data = bigger;
        buf->cap = (size_t)count + 1;
    }
    MPI_TRY(MPI_Recv(buf->data, count, MPI_BYTE, st->MPI_SOURCE, st->MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE), "recv");
    buf->len = (size_t)count;
    return 0;
}

int lm_mpi_init(lm_mpi *m, lm_err *err) {
    *m = (lm_mpi){0, 1, false, NULL};
    if (!getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMI_SIZE") && !getenv("PMIX_RANK")) return 0;
    int provided;
    MPI_TRY(MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided), "init");
    m->active = true;
    /* a failed call comes back as an error code to report, not an abort */
    MPI_TRY(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), "set_errhandler");
    if (provided < MPI_THREAD_SERIALIZED) return lm_fail(err, "MPI: the library offers no MPI_THREAD_SERIALIZED (the link runs on its own thread)");
    MPI_TRY(MPI_Comm_rank(MPI_COMM_WORLD, &m->rank), "comm_rank");
    MPI_TRY(MPI_Comm_size(MPI_COMM_WORLD, &m->size), "comm_size");
    return 0;
}

/* ---- ranks > 0 ---- */

int lm_mpi_serve(lm_mpi *m, lm_translator *t, lm_err *err) {
    (void)m;
    if (lm_translator_start_pool(t, true, err) != 0) return -1;
    lm_pool *pool = t->pool;
    int32_t free_slots = lm_pool_workers(pool), idle = 0, rc = -1, held = 0;
    lm_strbuf in = {0}, out = {0};
    /* while it holds batches a rank says it is alive four times per timeout,
     * so a long batch is not taken for a frozen rank */
    double timeout = t->engine.mpi_timeout_s, beat = timeout / 4 < 0.5 ? 0.5 : timeout / 4, said = 0;
    live_clock clock = {0};
    for (bool stop = false; !stop;) {
        bool busy = false;
        double now = live_now(&clock);
        if (timeout > 0 && held > 0 && now - said >= beat) {
            int32_t none = 0;
            MPI_TRY(MPI_Send(&none, 1, MPI_INT32_T, 0, TAG_ALIVE, MPI_COMM_WORLD), "send");
            said = now;
        }
        if (free_slots > 0) { /* ask for as many batches as workers are free */
            MPI_TRY(MPI_Send(&free_slots, 1, MPI_INT32_T, 0, TAG_ASK, MPI_COMM_WORLD), "send");
            free_slots = 0;
        }
        int flag;
        MPI_Status st;
        MPI_TRY(MPI_Iprobe(0, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st), "iprobe");
        if (flag) {
            busy = true;
            if (receive(&st, &in, err) != 0) goto done;
            if (st.MPI_TAG == TAG_STOP) {
                stop = true;
                MPI_TRY(MPI_Send(&free_slots, 1, MPI_INT32_T, 0, TAG_DONE, MPI_COMM_WORLD), "send");
            } else if (st.MPI_TAG == TAG_BATCH) {
                int32_t id;
                lm_batch *b = unpack_batch(in.data, in.len, &id, err);
                if (!b) goto done;
                b->index[0] = id; /* index is ours to use here: results go back whole, in order */
                lm_pool_submit(pool, b);
                if (held++ == 0) said = live_now(&clock);
            }
        }
        for (lm_batch *b; (b = lm_pool_collect(pool, false));) {
            busy = true;
            out.len = 0;
            int32_t id = b->index[0];
            int packed = pack_result(&out, id, b);
            lm_batch_free(b);
            if (packed != 0) { lm_fail(err, "out of memory"); goto done; }
            MPI_TRY(MPI_Send(out.data, (int)out.len, MPI_BYTE, 0, TAG_RESULT, MPI_COMM_WORLD), "send");
            free_slots++;
            held--;
        }
        if (!stop && lm_pool_error(pool, err) != 0) goto done;
        if (busy) idle = 0;
        else backoff(&idle);
    }
    rc = 0;
done:
    free(in.data);
    free(out.data);
    return rc;
}

/* ---- rank 0's link thread ---- */

/* A batch out on another rank. Its message is sent without blocking
 * (MPI_Isend): rank 0 blocked in a send to a rank that is itself blocked
 * sending a result to rank 0 would be a deadlock once messages pass the eager
 * limit (4 KB over shared memory). So rank 0 never blocks, and the other ranks'
 * plain sends always find it receiving. */
typedef struct {
    lm_batch *b;
    int rank;
    lm_strbuf msg;
    MPI_Request req;
    double heard;       /* the live clock when it went out, or its rank last said it was alive */
} out_batch;

struct lm_mpi_feed {
    lm_mpi *m;
    lm_pool *pool;
    pthread_t thread;
    int stop;           /* set by lm_mpi_feed_stop (atomic) */
    int asked_total;
    int *asked;         /* per rank: batches it asked for and has not got */
    out_batch *out;     /* batches out on other ranks; the slot is the id */
    int n_out, cap_out;
    double timeout;     /* seconds a rank may hold a batch without a word (mpi.timeout_s); 0 = no limit */
    live_clock clock;
    long *ran;          /* per rank: batches it translated */
    bool dirty;         /* ended with batches still out */
    lm_err err;
};
typedef struct lm_mpi_feed feed;

static int feed_send(feed *f, int rank, lm_batch *b, lm_err *err) {
    int slot = 0;
    while (slot < f->cap_out && f->out[slot].b) slot++;
    if (slot == f->cap_out) {
        int cap = f->cap_out ? 2 * f->cap_out : 16;
        out_batch *bigger = realloc(f->out, (size_t)cap * sizeof *bigger);
        if (!bigger) return lm_fail(err, "out of memory");
        memset(bigger + f->cap_out, 0, (size_t)(cap - f->cap_out) * sizeof *bigger);
        f->out = bigger;
        f->cap_out = cap;
    }
    out_batch *o = &f->out[slot];
    o->msg.len = 0;
    if (pack_batch(&o->msg, slot, b) != 0) return lm_fail(err, "out of memory");
    MPI_TRY(MPI_Isend(o->msg.data, (int)o->msg.len, MPI_BYTE, rank, TAG_BATCH, MPI_COMM_WORLD, &o->req), "isend");
    o->b = b;
    o->rank = rank;
    o->heard = live_now(&f->clock);
    f->n_out++;
    return 0;
}

static int feed_receive(feed *f, lm_strbuf *buf, MPI_Status *st, lm_err *err) {
    if (receive(st, buf, err) != 0) return -1;
    reader r = {buf->data, buf->len, false};
    if (st->MPI_TAG == TAG_ASK) {
        int32_t n = take_i32(&r);
        if (r.bad || n < 0) return lm_fail(err, "MPI: a malformed request from rank %d", st->MPI_SOURCE);
        f->asked[st->MPI_SOURCE] += n;
        f->asked_total += n;
        return 0;
    }
    if (st->MPI_TAG == TAG_ALIVE) {
        double now = live_now(&f->clock);
        for (int i = 0; i < f->cap_out; i++)
            if (f->out[i].b && f->out[i].rank == st->MPI_SOURCE) f->out[i].heard = now;
        return 0;
    }
    if (st->MPI_TAG != TAG_RESULT) return lm_fail(err, "MPI: unexpected message %d from rank %d", st->MPI_TAG, st->MPI_SOURCE);
    int32_t id = take_i32(&r);
    if (r.bad || id < 0 || id >= f->cap_out || !f->out[id].b || f->out[id].rank != st->MPI_SOURCE)
        return lm_fail(err, "MPI: a result from rank %d for no batch it was given", st->MPI_SOURCE);
    lm_batch *b = f->out[id].b;
    /* its answer came, so the send is done: this only completes the request */
    MPI_TRY(MPI_Wait(&f->out[id].req, MPI_STATUS_IGNORE), "wait");
    f->out[id].b = NULL;
    f->n_out--;
    unpack_result(&r, st->MPI_SOURCE, b);
    if (b->rc == 0) f->ran[st->MPI_SOURCE]++;
    lm_pool_finish(f->pool, b);
    return 0;
}

/* Hands every batch still out back to the pool as not run (rc): the job
 * stops without waiting for ranks that may never answer. */
static void feed_abandon(feed *f, int rc, const lm_err *why) {
    for (int i = 0; i < f->cap_out; i++) {
        if (!f->out[i].b) continue;
        f->out[i].b->rc = rc;
        if (why) f->out[i].b->err = *why;
        lm_pool_finish(f->pool, f->out[i].b);
        f->out[i].b = NULL;
        /* the message may still be in MPI's hands: it stays allocated until MPI_Abort */
        f->out[i].msg = (lm_strbuf){0};
        f->dirty = true;
    }
    f->n_out = 0;
}

/* A rank that died or hangs without its launcher ending the job (a frozen
 * process, a lost node under a launcher that waits) would otherwise hold
 * rank 0 forever: a rank that holds a batch and has said nothing for the
 * timeout, counted while rank 0 itself was running, stops the job. */
static int check_timeout(feed *f, lm_err *err) {
    double now = live_now(&f->clock);
    if (f->timeout <= 0 || f->n_out == 0) return 0;
    for (int i = 0; i < f->cap_out; i++)
        if (f->out[i].b && now - f->out[i].heard > f->timeout)
            return lm_fail(err, "MPI: rank %d has not answered for %.0f s with a batch out (mpi.timeout_s): stopping", f->out[i].rank,
                           f->timeout);
    return 0;
}

static int feed_loop(feed *f, lm_err *err) {
    lm_strbuf buf = {0};
    int idle = 0, rc = -1;
    while (!__atomic_load_n(&f->stop, __ATOMIC_ACQUIRE) || f->n_out > 0) {
        bool busy = false;
        if (lm_pool_cancelled(f->pool) && f->n_out > 0) { feed_abandon(f, 1, NULL); continue; }
        if (check_timeout(f, err) != 0) goto done;
        for (;;) {
            int flag;
            MPI_Status st;
            int c = MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st);
            if (c != MPI_SUCCESS) { mpi_fail(err, c, "iprobe"); goto done; }
            if (!flag) break;
            if (feed_receive(f, &buf, &st, err) != 0) goto done;
            busy = true;
        }
        /* the pool's next batches to the ranks that asked, lowest rank first */
        for (int r = 1; r < f->m->size && f->asked_total > 0 && !__atomic_load_n(&f->stop, __ATOMIC_ACQUIRE); r++) {
            while (f->asked[r] > 0) {
                lm_batch *b = lm_pool_take(f->pool, false);
                if (!b) break;
                if (lm_pool_cancelled(f->pool)) { b->rc = 1; lm_pool_finish(f->pool, b); continue; }
                if (feed_send(f, r, b, err) != 0) { b->rc = -1; b->err = *err; lm_pool_finish(f->pool, b); goto done; }
                f->asked[r]--;
                f->asked_total--;
                busy = true;
            }
        }
        if (busy) idle = 0;
        else backoff(&idle);
    }
    rc = 0;
done:
    free(buf.data);
    return rc;
}

static void *feed_main(void *arg) {
    feed *f = arg;
    if (feed_loop(f, &f->err) == 0) return NULL;
    /* the job hears of it through the batches it waits for: those out, and
     * every one it queues until it stops (rank 0 may have no workers of its own) */
    feed_abandon(f, -1, &f->err);
    f->dirty = true;
    for (int idle = 0; !__atomic_load_n(&f->stop, __ATOMIC_ACQUIRE);) {
        lm_batch *b = lm_pool_take(f->pool, false);
        if (!b) { backoff(&idle); continue; }
        b->rc = -1;
        b->err = f->err;
        lm_pool_finish(f->pool, b);
    }
    return NULL;
}

/* Tells every rank the job is over and waits for each to answer: MPI_Finalize
 * would wait forever for a rank that froze. Requests still arriving are
 * dropped. -1 (the ranks must be aborted) if one does not answer in time. */
static int say_stop(feed *f) {
    int32_t none = 0, answered = 0, idle = 0, n = f->m->size - 1;
    lm_strbuf buf = {0};
    lm_err err;
    /* not a blocking send either: a first message to a frozen rank waits for
     * it to take the connection */
    MPI_Request *req = calloc((size_t)n, sizeof *req);
    if (!req) return -1;
    for (int r = 1; r <= n; r++)
        if (MPI_Isend(&none, 1, MPI_INT32_T, r, TAG_STOP, MPI_COMM_WORLD, &req[r - 1]) != MPI_SUCCESS) return -1;
    double until = live_now(&f->clock) + (f->timeout > 0 ? f->timeout : 1e30);
    while (answered < n) {
        int flag;
        MPI_Status st;
        if (MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st) != MPI_SUCCESS) break;
        if (!flag) {
            if (live_now(&f->clock) > until) {
                fprintf(stderr, "lyricmt: MPI: %d rank(s) did not answer the end of the job in %.0f s (mpi.timeout_s); ending them\n",
                        n - answered, f->timeout);
                break;
            }
            backoff(&idle);
            continue;
        }
        if (receive(&st, &buf, &err) != 0) break;
        answered += st.MPI_TAG == TAG_DONE;
    }
    free(buf.data);
    /* every rank answered, so every stop was received: this only completes them.
     * Otherwise they stay with MPI until the abort. */
    if (answered == n && MPI_Waitall(n, req, MPI_STATUSES_IGNORE) == MPI_SUCCESS) {
        free(req);
        return 0;
    }
    return -1;
}

static void feed_free(feed *f) {
    free(f->asked);
    free(f->ran);
    for (int i = 0; i < f->cap_out; i++) free(f->out[i].msg.data);
    free(f->out);
    free(f);
}

int lm_mpi_feed_start(lm_mpi *m, lm_translator *t, lm_err *err) {
    feed *f = lm_calloc(1, sizeof *f, err);
    if (!f) return -1;
    f->m = m;
    f->pool = t->pool;
    f->timeout = t->engine.mpi_timeout_s;
    f->asked = lm_calloc((size_t)m->size, sizeof *f->asked, err);
    f->ran = lm_calloc((size_t)m->size, sizeof *f->ran, err);
    if (!f->asked || !f->ran) { feed_free(f); return -1; }
    if (pthread_create(&f->thread, NULL, feed_main, f) != 0) {
        feed_free(f);
        return lm_fail(err, "cannot start the MPI link thread");
    }
    m->feed = f;
    return 0;
}

int lm_mpi_feed_stop(lm_mpi *m, bool summary) {
    feed *f = m->feed;
    if (!f) return 0;
    __atomic_store_n(&f->stop, 1, __ATOMIC_RELEASE);
    pthread_join(f->thread, NULL);
    bool dirty = f->dirty || say_stop(f) != 0;
    if (summary) {
        char line[1024];
        int at = m->size == 2 ? snprintf(line, sizeof line, "lyricmt: MPI rank 1 ran")
                              : snprintf(line, sizeof line, "lyricmt: MPI ranks 1 to %d ran", m->size - 1);
        for (int r = 1; r < m->size && at < (int)sizeof line - 32; r++)
            at += snprintf(line + at, sizeof line - (size_t)at, "%s %ld", r > 1 ? "," : "", f->ran[r]);
        fprintf(stderr, "%s batches\n", line);
    }
    feed_free(f);
    m->feed = NULL;
    return dirty ? -1 : 0;
}

void lm_mpi_finish(lm_mpi *m, bool abort_all, int code) {
    if (!m->active) return;
    if (abort_all) MPI_Abort(MPI_COMM_WORLD, code ? code : 1);
    else MPI_Finalize();
    m->active = false;
}

const char *lm_mpi_build(void) {
#ifdef OMPI_MAJOR_VERSION
    static char text[64];
    snprintf(text, sizeof text, "built (Open MPI %d.%d.%d)", OMPI_MAJOR_VERSION, OMPI_MINOR_VERSION, OMPI_RELEASE_VERSION);
    return text;
#else
    return "built";
#endif
}

#endif
