/* bench_report: lyricmt bench's table as Markdown and JSON, its plot as a
 * gnuplot script, and its pick as YAML engine settings (bench.h). */
#include "tools/bench.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static double rate(const lm_bench_row *r, long count) { return r->seconds > 0 ? count / r->seconds : 0; }

static void share(char *buf, size_t cap, long n, long of) {
    if (of) snprintf(buf, cap, "%.1f%%", 100.0 * n / of);
    else snprintf(buf, cap, "-");
}

static void threads_text(char *buf, size_t cap, const lm_bench_row *r) {
    if (!strncmp(r->device, "cuda", 4)) snprintf(buf, cap, "-");
    else if (r->workers > 1) snprintf(buf, cap, "%d as %d workers", r->threads, r->workers);
    else snprintf(buf, cap, "%d", r->threads);
}

static const char *status_name(lm_bench_status s) { return s == LM_BENCH_RAN ? "ran" : s == LM_BENCH_FAILED ? "failed" : "not run"; }

static int stream_ok(FILE *f, lm_err *err) {
    return ferror(f) ? lm_fail(err, "cannot write the report: %s", strerror(errno)) : 0;
}

/* One line of text with the setting a row is, for the pick's mention. */
static void setting_text(char *buf, size_t cap, const lm_bench_row *r) {
    char th[48];
    threads_text(th, sizeof th, r);
    snprintf(buf, cap, "%s %s, beam %d, batch.max_tokens %d%s%s", r->device, lm_precision_name(r->precision), r->beams, r->budget,
             strcmp(th, "-") ? ", threads " : "", strcmp(th, "-") ? th : "");
}

int lm_bench_markdown(const lm_bench *b, int pick, double min_share, FILE *f, lm_err *err) {
    fprintf(f, "# lyricmt bench\n\n");
    fprintf(f, "- model: %s\n- machine: %s\n- program: %s\n- corpus: %s\n", b->model, b->machine, b->version, b->corpus);
    fprintf(f, "- time: %.0f s used of a %.0f s limit%s; each setting translates the corpus from its first line (round again after "
               "the last) in chunks of about two full batches until its share of the time is spent; repeated lines are translated "
               "each time\n",
            b->seconds_used, b->seconds_limit, b->stopped ? ", stopped early" : "");
    fprintf(f, "- peak MB: the process's peak resident memory while the setting ran%s; same as fp32: lines (of the first round) "
               "identical to fp32's at the same beam; same as default: identical to the default output (fp32, beam %d)\n\n",
            b->peak_is_process ? " (here: since the process started, /proc/self/clear_refs is not writable)" : ", the model included",
            b->default_beams);
    fprintf(f, "| device | precision | beam | batch.max_tokens | threads | lines/s | tokens/s | peak MB | same as fp32 | same as default | lines | note |\n");
    fprintf(f, "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---|\n");
    for (int i = 0; i < b->n_rows; i++) {
        const lm_bench_row *r = &b->rows[i];
        char th[48], same[16], def[16];
        threads_text(th, sizeof th, r);
        if (!strcmp(r->device, "cuda")) {
            fprintf(f, "| cuda | - | - | - | - | - | - | - | - | - | - | not run: %s |\n", r->note);
            continue;
        }
        if (r->status != LM_BENCH_RAN) {
            char budget[16] = "-";
            if (r->budget) snprintf(budget, sizeof budget, "%d", r->budget);
            fprintf(f, "| %s | %s | %d | %s | %s | - | - | - | - | - | - | %s: %s |\n", r->device, lm_precision_name(r->precision), r->beams,
                    budget, th, status_name(r->status), r->note);
            continue;
        }
        share(same, sizeof same, r->same, r->same_of);
        share(def, sizeof def, r->as_default, r->default_of);
        fprintf(f, "| %s | %s | %d | %d | %s | %.1f | %.0f | %.1f | %s | %s | %ld | %s |\n", r->device, lm_precision_name(r->precision),
                r->beams, r->budget, th, rate(r, r->lines), rate(r, r->tokens), r->peak_mb, same, def, r->lines, i == pick ? "**fastest**" : "");
    }
    char what[200];
    if (pick >= 0) {
        setting_text(what, sizeof what, &b->rows[pick]);
        fprintf(f, "\nFastest with at least %.0f%% of its lines the same as the default output: %s, %.1f lines/s.\n", 100 * min_share, what,
                rate(&b->rows[pick], b->rows[pick].lines));
    } else {
        fprintf(f, "\nNo setting ran with at least %.0f%% of its lines the same as the default output.\n", 100 * min_share);
    }
    return stream_ok(f, err);
}

int lm_bench_json(const lm_bench *b, int pick, double min_share, FILE *f, lm_err *err) {
    cJSON *o = cJSON_CreateObject(), *rows = cJSON_AddArrayToObject(o, "rows");
    cJSON_AddStringToObject(o, "model", b->model);
    cJSON_AddStringToObject(o, "machine", b->machine);
    cJSON_AddStringToObject(o, "program", b->version);
    cJSON_AddStringToObject(o, "corpus", b->corpus);
    cJSON_AddNumberToObject(o, "default_beams", b->default_beams);
    cJSON_AddNumberToObject(o, "seconds_limit", b->seconds_limit);
    cJSON_AddNumberToObject(o, "seconds_used", b->seconds_used);
    cJSON_AddBoolToObject(o, "stopped", b->stopped);
    cJSON_AddBoolToObject(o, "peak_since_start", b->peak_is_process);
    cJSON_AddNumberToObject(o, "min_agreement", min_share);
    for (int i = 0; rows && i < b->n_rows; i++) {
        const lm_bench_row *r = &b->rows[i];
        cJSON *x = cJSON_CreateObject();
        cJSON_AddItemToArray(rows, x);
        cJSON_AddStringToObject(x, "device", r->device);
        cJSON_AddStringToObject(x, "status", status_name(r->status));
        if (!strcmp(r->device, "cuda")) { cJSON_AddStringToObject(x, "note", r->note); continue; }
        cJSON_AddStringToObject(x, "precision", lm_precision_name(r->precision));
        cJSON_AddNumberToObject(x, "beams", r->beams);
        cJSON_AddNumberToObject(x, "max_tokens", r->budget);
        if (strncmp(r->device, "cuda", 4)) {
            cJSON_AddNumberToObject(x, "threads", r->threads);
            cJSON_AddNumberToObject(x, "workers", r->workers);
        }
        if (r->note[0]) cJSON_AddStringToObject(x, "note", r->note);
        if (r->status != LM_BENCH_RAN) continue;
        cJSON_AddNumberToObject(x, "lines", r->lines);
        cJSON_AddNumberToObject(x, "seconds", r->seconds);
        cJSON_AddNumberToObject(x, "lines_per_s", rate(r, r->lines));
        cJSON_AddNumberToObject(x, "tokens_per_s", rate(r, r->tokens));
        cJSON_AddNumberToObject(x, "peak_mb", r->peak_mb);
        cJSON_AddNumberToObject(x, "same_as_fp32", r->same);
        cJSON_AddNumberToObject(x, "compared_with_fp32", r->same_of);
        cJSON_AddNumberToObject(x, "same_as_default", r->as_default);
        cJSON_AddNumberToObject(x, "compared_with_default", r->default_of);
    }
    if (pick >= 0) cJSON_AddNumberToObject(o, "fastest_within_agreement", pick);
    else cJSON_AddNullToObject(o, "fastest_within_agreement");
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    if (!text) return lm_fail(err, "out of memory");
    fprintf(f, "%s\n", text);
    free(text);
    return stream_ok(f, err);
}

int lm_bench_yaml(const lm_bench *b, int pick, double min_share, FILE *f, lm_err *err) {
    if (pick < 0) return lm_fail(err, "no setting ran with at least %.0f%% of its lines the same as the default output", 100 * min_share);
    const lm_bench_row *r = &b->rows[pick];
    char same[16];
    share(same, sizeof same, r->as_default, r->default_of);
    fprintf(f, "# lyricmt bench: the fastest setting whose translations were the default output's (fp32, beam %d)\n", b->default_beams);
    fprintf(f, "# on at least %.0f%% of lines: %.1f lines/s, %.0f target tokens/s, %s of %ld lines the same, peak %.0f MB.\n",
            100 * min_share, rate(r, r->lines), rate(r, r->tokens), same, r->default_of, r->peak_mb);
    fprintf(f, "# Model: %s\n# Machine: %s\n", b->model, b->machine);
    if (b->given[0]) fprintf(f, "# Measured with %s as well: give them again beside this file.\n", b->given);
    fprintf(f, "# Use: lyricmt translate --model DIR --config THIS_FILE -i LYRICS -o OUT\n");
    bool gpu = !strncmp(r->device, "cuda", 4);
    fprintf(f, "device: %s\n", gpu ? "cuda" : "cpu");
    if (gpu) fprintf(f, "devices: \"%s\"\n", r->device + 5);
    fprintf(f, "precision: %s\n", lm_precision_name(r->precision));
    if (!gpu) fprintf(f, "threads: %d\nworkers: %d\n", r->threads, r->workers);
    fprintf(f, "batch:\n  max_tokens: %d\n  max_sentences: %d\n", r->budget, r->budget);
    fprintf(f, "decoding:\n  num_beams: %d\n", r->beams);
    return stream_ok(f, err);
}

/* A title for gnuplot: its quotes and backslashes dropped. */
static void plain(char *out, size_t cap, const char *s) {
    size_t n = 0;
    for (; *s && n + 1 < cap; s++)
        if (*s != '"' && *s != '\\' && *s != '\'' && *s != '\n') out[n++] = *s;
    out[n] = '\0';
}

int lm_bench_plot_script(const lm_bench *b, const char *out_path, bool png, FILE *f, lm_err *err) {
    if (strchr(out_path, '\n')) return lm_fail(err, "%s: a plot path cannot hold a line break", out_path);
    char title[600];
    plain(title, sizeof title, b->model);
    if (png) fprintf(f, "set terminal pngcairo size 1000,600 noenhanced font 'sans,11'\n");
    else fprintf(f, "set terminal svg size 1000,600 dynamic noenhanced font 'sans,11' background rgb 'white'\n");
    fputs("set output '", f);
    for (const char *p = out_path; *p; p++) {
        if (*p == '\'') fputc('\'', f); /* gnuplot's single-quoted strings double a quote */
        fputc(*p, f);
    }
    fputs("'\n", f);
    fprintf(f, "set title \"lyricmt bench: %s\"\nset xlabel 'batch.max_tokens (padded source tokens x beams)'\n", title);
    fprintf(f, "set ylabel 'lines / s'\nset logscale x 2\nset grid\nset key outside right top\nset yrange [0:*]\n");
    /* one series per device, precision and beams: the rows at the device's first thread count, one worker */
    int series = 0;
    lm_strbuf plot = {0};
    for (int i = 0; i < b->n_rows; i++) {
        const lm_bench_row *r = &b->rows[i];
        bool first = r->status == LM_BENCH_RAN && r->workers == 1;
        for (int j = 0; first && j < i; j++) {
            const lm_bench_row *q = &b->rows[j];
            if (q->status == LM_BENCH_RAN && !strcmp(q->device, r->device) && q->precision == r->precision && q->beams == r->beams) first = false;
        }
        if (!first) continue;
        fprintf(f, "$s%d << EOD\n", series);
        for (int j = i; j < b->n_rows; j++) {
            const lm_bench_row *q = &b->rows[j];
            if (q->status == LM_BENCH_RAN && q->workers == 1 && q->threads == r->threads && !strcmp(q->device, r->device) &&
                q->precision == r->precision && q->beams == r->beams)
                fprintf(f, "%d %.3f\n", q->budget, rate(q, q->lines));
        }
        fprintf(f, "EOD\n");
        char item[200];
        /* a colour per precision, a dashed line for a beam other than the default */
        snprintf(item, sizeof item, "%s$s%d with linespoints lw 2 pt 7 ps 0.7 lc %d dt %d title '%s %s, beam %d'", series ? ", " : "plot ",
                 series, 1 + (int)r->precision, r->beams == b->default_beams ? 1 : 2, r->device, lm_precision_name(r->precision), r->beams);
        if (lm_strbuf_add(&plot, item, strlen(item)) != 0) { free(plot.data); return lm_fail(err, "out of memory"); }
        series++;
    }
    if (!series) return lm_fail(err, "no setting ran: nothing to plot");
    fprintf(f, "%s\n", plot.data);
    free(plot.data);
    return stream_ok(f, err);
}
