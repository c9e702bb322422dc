/* progress: see progress.h. */
#include "job/progress.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/resource.h>

#define WARNINGS_SHOWN 10   /* per kind; the rest are counted (and reported) */
#define BAR_INTERVAL 0.25   /* seconds between redraws on a terminal */
#define PLAIN_INTERVAL 5.0  /* seconds between lines otherwise */

static const char *const event_names[LM_EVENT_KINDS] = {"invalid-utf8", "too-long", "bad-record", "skipped-path"};

const char *lm_event_name(lm_event_kind kind) { return event_names[kind]; }

void lm_progress_init(lm_progress *p, lm_progress_mode mode, bool summary, long total, long resumed) {
    memset(p, 0, sizeof *p);
    pthread_mutex_init(&p->lock, NULL);
    p->mode = mode;
    p->summary = summary;
    p->total = total;
    p->resumed = resumed;
    p->start = p->last_print = lm_now();
    p->interval = mode == LM_PROGRESS_BAR ? BAR_INTERVAL : PLAIN_INTERVAL;
}

void lm_progress_free(lm_progress *p) {
    if (p->report) fclose(p->report);
    pthread_mutex_destroy(&p->lock);
}

int lm_progress_open_report(lm_progress *p, const char *path, lm_err *err) {
    p->report = lm_open_for_writing(path, O_CREAT | O_TRUNC, p->cancel, err);
    if (!p->report) return lm_fail_prefix(err, "the report");
    p->report_path = path;
    fprintf(p->report, "file\tline\tkind\tdetail\n");
    return 0;
}

int lm_progress_close_report(lm_progress *p, lm_err *err) {
    if (!p->report) return 0;
    bool ok = fflush(p->report) == 0 && !ferror(p->report);
    ok = fclose(p->report) == 0 && ok;
    p->report = NULL;
    return ok ? 0 : lm_fail(err, "%s: cannot write the report: %s", p->report_path, strerror(errno));
}

static void clear_bar(lm_progress *p) {
    if (p->bar_shown) fputs("\r\033[K", stderr);
    p->bar_shown = false;
}

void lm_progress_event(lm_progress *p, lm_event_kind kind, const char *file, long line, const char *detail) {
    pthread_mutex_lock(&p->lock);
    long seen = ++p->events[kind];
    if (p->report) fprintf(p->report, "%s\t%ld\t%s\t%s\n", file, line, event_names[kind], detail);
    if (seen <= WARNINGS_SHOWN) {
        clear_bar(p);
        if (line > 0) fprintf(stderr, "lyricmt: warning: %s:%ld: %s\n", file, line, detail);
        else fprintf(stderr, "lyricmt: warning: %s: %s\n", file, detail);
        if (seen == WARNINGS_SHOWN) fprintf(stderr, "lyricmt: further %s warnings are only counted%s\n", event_names[kind], p->report ? " and reported" : "");
    }
    pthread_mutex_unlock(&p->lock);
}

static void format_duration(double s, char *buf, size_t cap) {
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, cap, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60) snprintf(buf, cap, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, cap, "%lds", t);
}

/* Caller holds the lock. */
static void draw(lm_progress *p, double now) {
    double elapsed = now - p->start > 1e-9 ? now - p->start : 1e-9;
    double rate = p->done / elapsed, tok_rate = p->tokens / elapsed;
    long done = p->resumed + p->done;
    char eta[32] = "?", where[64];
    if (p->total >= 0) {
        if (rate > 0) format_duration((p->total - done) / rate, eta, sizeof eta);
        snprintf(where, sizeof where, "%ld/%ld lines (%.1f%%)", done, p->total, p->total ? 100.0 * done / p->total : 100.0);
    } else {
        snprintf(where, sizeof where, "%ld lines", done);
    }
    if (p->mode == LM_PROGRESS_BAR && p->total > 0) {
        char bar[31];
        int filled = (int)(30.0 * done / p->total);
        for (int i = 0; i < 30; i++) bar[i] = i < filled ? '#' : '.';
        bar[30] = '\0';
        fprintf(stderr, "\r\033[K[%s] %s  %.1f lines/s  %.0f tok/s  ETA %s", bar, where, rate, tok_rate, eta);
        p->bar_shown = true;
    } else if (p->mode == LM_PROGRESS_BAR) {
        fprintf(stderr, "\r\033[K%s  %.1f lines/s  %.0f tok/s", where, rate, tok_rate);
        p->bar_shown = true;
    } else {
        fprintf(stderr, "lyricmt: %s, %.1f lines/s, %.0f tok/s, ETA %s\n", where, rate, tok_rate, eta);
    }
    fflush(stderr);
    p->last_print = now;
}

void lm_progress_add(lm_progress *p, long lines, long translated, long reused, long empty, long tokens) {
    pthread_mutex_lock(&p->lock);
    p->done += lines;
    p->translated += translated;
    p->reused += reused;
    p->empty += empty;
    p->tokens += tokens;
    double now = lm_now();
    if (p->mode != LM_PROGRESS_NONE && now - p->last_print >= p->interval) draw(p, now);
    pthread_mutex_unlock(&p->lock);
}

void lm_progress_finish(lm_progress *p, const char *how) {
    pthread_mutex_lock(&p->lock);
    clear_bar(p);
    if (p->summary) {
        double elapsed = lm_now() - p->start;
        double secs = elapsed > 1e-9 ? elapsed : 1e-9;
        long model_lines = p->translated + p->reused;
        fprintf(stderr, "lyricmt: %s: %ld lines in %.1f s (%.1f lines/s, %.0f target tokens/s)", how, p->done, elapsed, p->done / secs,
                p->tokens / secs);
        if (p->resumed) fprintf(stderr, ", after %ld lines written by an earlier run", p->resumed);
        fprintf(stderr, "\nlyricmt: %ld %s by the model, %ld repeats reused (%.1f%% of non-empty lines saved), %ld empty; %ld target tokens\n",
                p->translated, p->model_verb ? p->model_verb : "translated", p->reused, model_lines ? 100.0 * p->reused / model_lines : 0.0, p->empty, p->tokens);
        struct rusage ru;
        if (getrusage(RUSAGE_SELF, &ru) == 0) fprintf(stderr, "lyricmt: peak memory %.1f MB\n", ru.ru_maxrss / 1024.0);
        fprintf(stderr, "lyricmt: warnings:");
        for (int k = 0; k < LM_EVENT_KINDS; k++) fprintf(stderr, " %ld %s%s", p->events[k], event_names[k], k + 1 < LM_EVENT_KINDS ? "," : "\n");
    }
    if (p->report) fflush(p->report);
    pthread_mutex_unlock(&p->lock);
}
