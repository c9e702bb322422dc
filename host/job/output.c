/* output: see output.h. */
#include "job/output.h"
#include "base/json_util.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Appends s with line breaks (and tabs, for TSV) turned into spaces. */
static int add_field(lm_strbuf *b, const char *s, bool tabs_too) {
    size_t at = b->len;
    if (lm_strbuf_add(b, s, strlen(s)) != 0) return -1;
    for (char *p = b->data + at; *p; p++)
        if (*p == '\n' || *p == '\r' || (tabs_too && *p == '\t')) *p = ' ';
    return 0;
}

/* Scores rounded to 4 decimals so that files are stable and readable. */
static double rounded(float score) { return round((double)score * 1e4) / 1e4; }

static int format_jsonl(int n_best, const lm_record *r, const lm_translation *tr, const char *warning, lm_strbuf *b) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return -1;
    if (r->id_json) cJSON_AddItemToObject(o, "id", cJSON_CreateRaw(r->id_json)); /* as the input wrote it */
    else cJSON_AddStringToObject(o, "id", r->id);
    cJSON_AddStringToObject(o, "source", r->text);
    cJSON_AddStringToObject(o, "translation", tr ? tr->texts[0] : "");
    if (tr) cJSON_AddNumberToObject(o, "score", rounded(tr->scores[0]));
    else cJSON_AddNullToObject(o, "score");
    if (n_best > 1) {
        cJSON *hyps = cJSON_AddArrayToObject(o, "hypotheses");
        for (int h = 0; hyps && tr && h < tr->n_hyps; h++) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddStringToObject(x, "translation", tr->texts[h]);
            cJSON_AddNumberToObject(x, "score", rounded(tr->scores[h]));
            cJSON_AddItemToArray(hyps, x);
        }
    }
    if (warning) cJSON_AddStringToObject(o, "warning", warning);
    return lm_json_append_line(b, o);
}

/* A ready parallel corpus: one line per hypothesis, none for a line without
 * any (blank, skipped, or every hypothesis filtered out) nor for an empty
 * hypothesis, which is no translation of anything. */
static int format_pairs(const lm_record *r, const lm_translation *tr, lm_strbuf *b) {
    for (int h = 0; tr && h < tr->n_hyps; h++) {
        if (!tr->texts[h][0]) continue;
        cJSON *o = cJSON_CreateObject();
        if (!o) return -1;
        if (r->id_json) cJSON_AddItemToObject(o, "id", cJSON_CreateRaw(r->id_json));
        else cJSON_AddStringToObject(o, "id", r->id);
        cJSON_AddNumberToObject(o, "sample", tr->sample ? tr->sample[h] : h);
        cJSON_AddStringToObject(o, "source", r->text);
        cJSON_AddStringToObject(o, "target", tr->texts[h]);
        char num[32];
        snprintf(num, sizeof num, "%.6f", tr->scores[h]); /* as lyricmt score writes it */
        cJSON_AddItemToObject(o, "score", cJSON_CreateRaw(num));
        if (lm_json_append_line(b, o) != 0) return -1;
    }
    return 0;
}

int lm_output_format(lm_format fmt, int n_best, const lm_record *r, const lm_translation *tr, const char *warning, lm_strbuf *b) {
    char num[32];
    if (fmt == LM_FORMAT_PAIRS) return format_pairs(r, tr, b);
    if (tr && tr->n_hyps == 0) tr = NULL; /* every hypothesis filtered out: an empty record */
    if (fmt == LM_FORMAT_JSONL) return format_jsonl(n_best, r, tr, warning, b);
    if (fmt == LM_FORMAT_TSV) {
        if (add_field(b, r->id, true) != 0) return -1;
        for (int h = 0; h < (tr ? tr->n_hyps : 1); h++) {
            snprintf(num, sizeof num, "\t%.4f", tr ? rounded(tr->scores[h]) : 0.0);
            if (lm_strbuf_add(b, "\t", 1) || (tr && add_field(b, tr->texts[h], true)) || (tr && lm_strbuf_add(b, num, strlen(num)))) return -1;
        }
        if (!tr && lm_strbuf_add(b, "\t", 1) != 0) return -1; /* empty score column */
        return lm_strbuf_add(b, "\n", 1);
    }
    /* text: the best translation; with several hypotheses, all of them tab-separated */
    for (int h = 0; tr && h < tr->n_hyps; h++)
        if ((h && lm_strbuf_add(b, "\t", 1)) || add_field(b, tr->texts[h], tr->n_hyps > 1)) return -1;
    return lm_strbuf_add(b, "\n", 1);
}

/* Scores are written with 6 decimals: stable from run to run (a pair's
 * float is the same alone or batched) and well inside the 1e-4 that
 * transformers agrees with. */
int lm_output_score(lm_format fmt, int n_best, const lm_record *r, const lm_translation *tr, const char *warning, lm_strbuf *b) {
    (void)n_best;
    char num[96];
    if (tr) snprintf(num, sizeof num, "%.6f\t%.6f\t%d", tr->scores[0], tr->scores[0] / tr->n_tokens, tr->n_tokens);
    if (fmt != LM_FORMAT_JSONL) {
        if (add_field(b, r->id, true) != 0) return -1;
        const char *rest = tr ? num : "\t\t";
        return lm_strbuf_add(b, "\t", 1) || lm_strbuf_add(b, rest, strlen(rest)) || lm_strbuf_add(b, "\n", 1) ? -1 : 0;
    }
    cJSON *o = cJSON_CreateObject();
    if (!o) return -1;
    if (r->id_json) cJSON_AddItemToObject(o, "id", cJSON_CreateRaw(r->id_json)); /* as the input wrote it */
    else cJSON_AddStringToObject(o, "id", r->id);
    if (tr) {
        /* the same 6 decimals as TSV */
        snprintf(num, sizeof num, "%.6f", tr->scores[0]);
        cJSON_AddItemToObject(o, "score", cJSON_CreateRaw(num));
        snprintf(num, sizeof num, "%.6f", tr->scores[0] / tr->n_tokens);
        cJSON_AddItemToObject(o, "normalized", cJSON_CreateRaw(num));
        cJSON_AddNumberToObject(o, "tokens", tr->n_tokens);
    } else {
        cJSON_AddNullToObject(o, "score");
        cJSON_AddNullToObject(o, "normalized");
        cJSON_AddNullToObject(o, "tokens");
    }
    if (warning) cJSON_AddStringToObject(o, "warning", warning);
    return lm_json_append_line(b, o);
}
