/*
 * test_job_parts: the bulk job's pieces on their own: the line cache's
 * bounds, the journal's round trip and its refusals, record formatting.
 */
#include "testing.h"
#include "job/corpus.h"
#include "job/journal.h"
#include "job/line_cache.h"
#include "job/json_line.h"
#include "job/output.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static lm_translation make_tr(const char *text, float score) {
    lm_translation tr = {0};
    tr.texts = malloc(sizeof *tr.texts);
    tr.scores = malloc(sizeof *tr.scores);
    tr.texts[0] = strdup(text);
    tr.scores[0] = score;
    tr.n_hyps = 1;
    return tr;
}

static void test_cache(void) {
    lm_err err;
    lm_line_cache *c = lm_line_cache_create(3, &err);
    CHECK(c != NULL, "cache created");
    for (int32_t k = 0; k < 5; k++) {
        int32_t ids[3] = {k, k + 1, 2};
        char text[32];
        snprintf(text, sizeof text, "line %d", k);
        lm_translation tr = make_tr(text, -(float)k);
        CHECK(lm_line_cache_put(c, ids, 3, &tr) == 0, "put %d", k);
        lm_translation_free(&tr);
    }
    for (int32_t k = 0; k < 5; k++) {
        int32_t ids[3] = {k, k + 1, 2};
        lm_translation got = {0};
        int hit = lm_line_cache_get(c, ids, 3, &got);
        CHECK(hit == (k >= 2), "entry %d: hit %d (only the newest 3 are kept)", k, hit);
        if (hit) {
            char want[32];
            snprintf(want, sizeof want, "line %d", k);
            CHECK(!strcmp(got.texts[0], want) && got.scores[0] == -(float)k, "entry %d holds its own translation", k);
        }
        lm_translation_free(&got);
    }
    int32_t shorter[2] = {4, 5};
    lm_translation got = {0};
    CHECK(lm_line_cache_get(c, shorter, 2, &got) == 0, "a prefix of a key is a miss");
    lm_line_cache_free(c);
    CHECK(lm_line_cache_create(0, &err) == NULL && lm_line_cache_get(NULL, shorter, 2, &got) == 0, "capacity 0: no cache, always a miss");
}

static void test_journal(void) {
    char path[] = "/tmp/lyricmt-journal-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    lm_journal a = {0}, b = {0}, loaded;
    lm_err err;
    lm_journal_add(&a, "input", "songs/a.txt", "%d bytes", 120);
    lm_journal_add(&a, "setting", "decoding", "num_beams %d", 5);
    a.records = 42; a.output = 1; a.bytes = 977;
    CHECK(lm_journal_save(path, &a, &err) == 0, "save: %s", err.msg);
    CHECK(lm_journal_load(path, &loaded, &err) == 1, "load: %s", err.msg);
    CHECK(loaded.records == 42 && loaded.output == 1 && loaded.bytes == 977, "progress mark round trip");
    CHECK(lm_journal_compare(&loaded, &a, &err) == 0, "same identity compares equal");
    lm_journal_add(&b, "input", "songs/a.txt", "%d bytes", 121);
    lm_journal_add(&b, "setting", "decoding", "num_beams %d", 5);
    CHECK(lm_journal_compare(&loaded, &b, &err) != 0 && strstr(err.msg, "input 'songs/a.txt' changed") && strstr(err.msg, "was '120 bytes', now '121 bytes'"),
          "changed value named: %s", err.msg);
    lm_journal_add(&a, "input", "songs/b.txt", "1 bytes");
    CHECK(lm_journal_compare(&loaded, &a, &err) != 0 && strstr(err.msg, "songs/b.txt' was not part of the job"), "new key named: %s", err.msg);
    lm_journal_free(&loaded);
    /* a journal cut short (disk full, a copy gone wrong) is refused, not half-trusted */
    FILE *f = fopen(path, "r+");
    fseek(f, 0, SEEK_END);
    CHECK(ftruncate(fileno(f), ftell(f) - 4) == 0, "truncate");
    fclose(f);
    CHECK(lm_journal_load(path, &loaded, &err) == -1 && strstr(err.msg, "not a complete lyricmt journal"), "truncated journal refused: %s", err.msg);
    f = fopen(path, "w");
    fputs("lyricmt journal 1\ninput\tsongs/a.txt\t120 bytes\nprogress\t5\t0\t10\nend\n", f);
    fclose(f);
    CHECK(lm_journal_load(path, &loaded, &err) == -1 && strstr(err.msg, "another version of lyricmt (lyricmt journal 1)"),
          "a journal of another version refused, naming it: %s", err.msg);
    unlink(path);
    CHECK(lm_journal_load(path, &loaded, &err) == 0, "no journal: 0");
    lm_journal_free(&a);
    lm_journal_free(&b);
}

static void test_format(void) {
    lm_record r = {.id = "7", .id_json = "7", .text = "say \"hi\"", .len = 8};
    lm_translation tr = make_tr("안녕\nhi\tthere", -0.123456f);
    lm_strbuf b = {0};
    CHECK(lm_output_format(LM_FORMAT_TEXT, 1, &r, &tr, NULL, &b) == 0 && !strcmp(b.data, "안녕 hi\tthere\n"), "text: newline becomes a space: '%s'", b.data);
    b.len = 0;
    CHECK(lm_output_format(LM_FORMAT_TSV, 1, &r, &tr, NULL, &b) == 0 && !strcmp(b.data, "7\t안녕 hi there\t-0.1235\n"), "tsv: '%s'", b.data);
    b.len = 0;
    CHECK(lm_output_format(LM_FORMAT_JSONL, 1, &r, &tr, NULL, &b) == 0 &&
          !strcmp(b.data, "{\"id\":7,\"source\":\"say \\\"hi\\\"\",\"translation\":\"안녕\\nhi\\tthere\",\"score\":-0.1235}\n"), "jsonl: '%s'", b.data);
    b.len = 0;
    lm_record blank = {.id = "x", .text = "", .len = 0};
    CHECK(lm_output_format(LM_FORMAT_JSONL, 1, &blank, NULL, "bad-record", &b) == 0 &&
          !strcmp(b.data, "{\"id\":\"x\",\"source\":\"\",\"translation\":\"\",\"score\":null,\"warning\":\"bad-record\"}\n"), "jsonl empty: '%s'", b.data);
    b.len = 0;
    CHECK(lm_output_format(LM_FORMAT_TEXT, 1, &blank, NULL, NULL, &b) == 0 && !strcmp(b.data, "\n"), "text empty record is an empty line");
    /* issue 26: with n-best above 1 the list is there however many hypotheses
     * survived deduplication (one, or none) */
    b.len = 0;
    CHECK(lm_output_format(LM_FORMAT_JSONL, 3, &r, &tr, NULL, &b) == 0 &&
              strstr(b.data, ",\"hypotheses\":[{\"translation\":\"안녕\\nhi\\tthere\",\"score\":-0.1235}]}"),
          "n-best 3, one hypothesis left: a list of one: '%s'", b.data);
    b.len = 0;
    CHECK(lm_output_format(LM_FORMAT_JSONL, 3, &blank, NULL, NULL, &b) == 0 && strstr(b.data, "\"score\":null,\"hypotheses\":[]}"),
          "n-best 3, none left: an empty list: '%s'", b.data);
    b.len = 0;
    CHECK(lm_output_format(LM_FORMAT_JSONL, 1, &r, &tr, NULL, &b) == 0 && !strstr(b.data, "hypotheses"), "n-best 1: no list");
    free(b.data);
    lm_translation_free(&tr);
}

/* JSONL records keep their ids byte for byte and their text at its real length. */
/* lm_json_line_fields for an id and a text field, as translate reads them. */
static const char *id_and_text(const char *line, size_t len, lm_json_value *id, lm_json_value *text) {
    static const char *const keys[2] = {"id", "text"};
    lm_json_value v[2];
    const char *why = lm_json_line_fields(line, len, 2, keys, v, NULL);
    *id = v[0];
    *text = v[1];
    return why;
}

static void test_json_line(void) {
    lm_json_value id, text;
    const char *line = "{\"text\": \"a\\u0000b\", \"id\": 9007199254740993, \"x\": [1, {\"y\": null}]}";
    CHECK(id_and_text(line, strlen(line), &id, &text) == NULL, "valid record parses");
    CHECK(id.kind == LM_JSON_NUMBER && id.raw_len == 16 && !memcmp(id.raw, "9007199254740993", 16), "big integer id kept raw");
    size_t n;
    char *t = lm_json_string_decode(text.raw, text.raw_len, &n);
    CHECK(t && n == 3 && t[0] == 'a' && t[1] == '\0' && t[2] == 'b', "\\u0000 decodes to a NUL inside the text (len %zu)", n);
    free(t);
    static const struct { const char *raw, *want; } ids[] = {{"0.1", "0.1"}, {"1e2", "1e2"}, {"null", "null"}, {"[1, 2]", "[1, 2]"}, {"-0", "-0"}};
    for (size_t i = 0; i < sizeof ids / sizeof *ids; i++) {
        char buf[128];
        snprintf(buf, sizeof buf, "{\"id\": %s, \"text\": \"x\"}", ids[i].raw);
        CHECK(id_and_text(buf, strlen(buf), &id, &text) == NULL && id.raw_len == strlen(ids[i].want) &&
                  !memcmp(id.raw, ids[i].want, id.raw_len), "id %s round-trips", ids[i].raw);
    }
    const char *pair = "\"\\ud83c\\udfa4 \\u00e9\\/\"";
    t = lm_json_string_decode(pair, strlen(pair), &n);
    CHECK(t && !strcmp(t, "\xf0\x9f\x8e\xa4 \xc3\xa9/"), "surrogate pair and escapes decode: '%s'", t);
    free(t);
    const char *lone = "\"\\ud800x\"";
    t = lm_json_string_decode(lone, strlen(lone), &n);
    CHECK(t && lm_utf8_invalid_at(t, n) == 0, "a lone surrogate stays invalid for the UTF-8 policy");
    free(t);
    static const char *const bad[] = {"{oops", "{\"id\": 1,}", "{\"id\": 01}", "{\"id\": 1} x", "[1]", "{\"t\": \"\\q\"}", "{\"t\": tru}", "{\"t\": 1.}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK(id_and_text(bad[i], strlen(bad[i]), &id, &text) != NULL, "'%s' refused", bad[i]);
    char deep[300];
    memset(deep, '[', sizeof deep);
    memcpy(deep, "{\"a\":", 5);
    CHECK(id_and_text(deep, sizeof deep, &id, &text) != NULL, "deep nesting refused, not recursed into");
    const char *esc_key = "{\"\\u0069d\": \"k\", \"text\": \"v\"}";
    CHECK(id_and_text(esc_key, strlen(esc_key), &id, &text) == NULL && id.kind == LM_JSON_STRING, "escaped key matches");
}

/* Repair is one pass: every bad byte and NUL becomes U+FFFD, good text is kept. */
static void test_utf8_repair(void) {
    char *s = malloc(16);
    memcpy(s, "a\xff\0b\xe2\x82\xac\xc3", 8);
    size_t len = 8;
    int bad = lm_utf8_repair(&s, &len);
    CHECK(bad == 3 && len == 5 + 9 && !memcmp(s, "a\xef\xbf\xbd\xef\xbf\xbd" "b\xe2\x82\xac\xef\xbf\xbd", len), "repair: %d bad, %zu bytes", bad, len);
    CHECK(lm_utf8_invalid_at(s, len) < 0, "repaired text is valid UTF-8");
    free(s);
    size_t big = (size_t)1 << 20;
    s = malloc(big);
    memset(s, 0xff, big);
    len = big;
    double t0 = lm_now();
    bad = lm_utf8_repair(&s, &len);
    double dt = lm_now() - t0;
    /* the old repair rescanned per byte: minutes for this; one pass is milliseconds */
    CHECK(bad == (int)big && len == 3 * big && dt < 5.0, "1 MB of 0xFF repaired in %.3f s", dt);
    free(s);
}

/* A journal holds a line per input file: comparing two of an archive's size
 * must not be quadratic (50,000 lines: seconds of strncmp before; milliseconds). */
static void test_journal_many_files(void) {
    lm_journal a = {0}, b = {0};
    for (int i = 0; i < 50000; i++) {
        char name[64];
        snprintf(name, sizeof name, "songs/track%05d.txt", (i * 7919) % 50000);
        lm_journal_add(&a, "input", name, "%d bytes", i);
        snprintf(name, sizeof name, "songs/track%05d.txt", (i * 7919) % 50000);
        lm_journal_add(&b, "input", name, "%d bytes", i);
    }
    lm_err err = {{0}};
    double t0 = lm_now();
    int same = lm_journal_compare(&a, &b, &err);
    double dt = lm_now() - t0;
    CHECK(same == 0 && dt < 2.0, "50,000-line journals compared in %.3f s", dt);
    free(b.lines[49999]);
    b.lines[49999] = strdup("input\tsongs/extra.txt\t1 bytes");
    CHECK(lm_journal_compare(&a, &b, &err) != 0 && strstr(err.msg, "no longer is"), "a file missing from a big journal is named: %s", err.msg);
    lm_journal_free(&a);
    lm_journal_free(&b);
}

/* Reads `text` as one input file (in `fmt`, as score's pairs when source_field
 * is set, with --id-field/--text-field id_field/text_field) into recs; returns
 * how many records came. */
static int read_records(const char *text, lm_format fmt, const char *id_field, const char *text_field, const char *source_field,
                        size_t line_cap, lm_record *recs, int max) {
    char path[] = "/tmp/lyricmt-job-parts-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) return -1;
    close(fd);
    lm_engine_config cfg;
    lm_engine_config_defaults(&cfg);
    cfg.input_format = fmt;
    snprintf(cfg.id_field, sizeof cfg.id_field, "%s", id_field);
    snprintf(cfg.text_field, sizeof cfg.text_field, "%s", text_field);
    const char *paths[1] = {path};
    lm_corpus c;
    lm_err err;
    int n = 0;
    if (lm_corpus_open(&c, paths, 1, &cfg, NULL, 0, &err) == 0) {
        if (source_field) {
            c.pairs = true;
            snprintf(c.source_field, sizeof c.source_field, "%s", source_field);
        }
        if (line_cap) c.line_cap = line_cap;
        if (lm_corpus_scan(&c, &err) == 0)
            while (n < max && lm_corpus_next(&c, &recs[n], &err) == 1) n++;
        lm_corpus_close(&c);
    }
    unlink(path);
    return n;
}

static void free_records(lm_record *recs, int n) {
    for (int i = 0; i < n; i++) lm_record_free(&recs[i]);
}

/* Issue 26: what the corpus reader makes of awkward records. */
static void test_corpus_records(void) {
    lm_record r[4];
    /* a key given twice takes its last value, as Python's json does, and says so */
    int n = read_records("{\"id\": 1, \"text\": \"first\", \"text\": \"last\"}\n", LM_FORMAT_JSONL, "id", "text", NULL, 0, r, 4);
    CHECK(n == 1 && !r[0].malformed && !strcmp(r[0].text, "last"), "a duplicate text key takes its last value ('%s')", n ? r[0].text : "");
    CHECK(n == 1 && r[0].note && strstr(r[0].note, "key 'text' appears more than once; its last value is used"), "a duplicate key is noted: %s",
          n && r[0].note ? r[0].note : "(none)");
    free_records(r, n);
    n = read_records("{\"id\": 1, \"text\": \"once\", \"other\": 1, \"other\": 2}\n", LM_FORMAT_JSONL, "id", "text", NULL, 0, r, 4);
    CHECK(n == 1 && !r[0].note, "a duplicate of a key not read is no concern");
    free_records(r, n);
    /* one key for two fields: both get its value */
    n = read_records("{\"text\": \"hello\"}\n", LM_FORMAT_JSONL, "text", "text", NULL, 0, r, 4);
    CHECK(n == 1 && !r[0].malformed && !strcmp(r[0].text, "hello") && !strcmp(r[0].id, "hello"), "--id-field text --text-field text: %s",
          n && r[0].malformed ? r[0].malformed : "");
    free_records(r, n);
    /* a record without an id of its own is known by its line number */
    n = read_records("{\"id\": \"a\", \"text\": \"x\"}\n{oops\n{\"text\": \"no id\"}\n", LM_FORMAT_JSONL, "id", "text", NULL, 0, r, 4);
    CHECK(n == 3 && r[1].malformed && !strcmp(r[1].id, "2") && r[1].id_json && !strcmp(r[1].id_json, "2"), "a bad JSONL record's id is its line number ('%s')",
          n > 1 ? r[1].id : "");
    CHECK(n == 3 && !r[2].malformed && !strcmp(r[2].id, "3"), "a JSONL record without an id field gets its line number ('%s')", n > 2 ? r[2].id : "");
    free_records(r, n);
    n = read_records("a\tx\nno tab\n", LM_FORMAT_TSV, "id", "text", NULL, 0, r, 4);
    CHECK(n == 2 && r[1].malformed && !strcmp(r[1].id, "2"), "a bad TSV record's id is its line number ('%s')", n > 1 ? r[1].id : "");
    free_records(r, n);
    /* score's TSV pairs: each side kept on its own, so a long source keeps its tab */
    char *line = malloc(400);
    memset(line, 'a', 300);
    strcpy(line + 300, "\t\xeb\x8f\x88\r\n");
    n = read_records(line, LM_FORMAT_TSV, "id", "target", "source", 100, r, 4);
    CHECK(n == 1 && !r[0].malformed && r[0].overlong && r[0].src && r[0].src_len == 100 && !strcmp(r[0].text, "\xeb\x8f\x88"),
          "a source over the line cap is cut and flagged too long, not a line without a tab (%s)", n && r[0].malformed ? r[0].malformed : "");
    free_records(r, n);
    memset(line, 'b', 300);
    memcpy(line, "src\t", 4);
    strcpy(line + 300, "\tc\n");
    n = read_records(line, LM_FORMAT_TSV, "id", "target", "source", 100, r, 4);
    CHECK(n == 1 && r[0].malformed && strstr(r[0].malformed, "more than one tab") && !r[0].src, "a third column, even past the cap, is a bad record");
    free_records(r, n);
    free(line);
    n = read_records("a\tb\tc\n\t\n \n", LM_FORMAT_TSV, "id", "target", "source", 0, r, 4);
    CHECK(n == 3 && r[0].malformed && !strcmp(r[0].id, "1"), "three columns: a bad record named by its line");
    CHECK(n == 3 && !r[1].malformed && r[1].src && !r[1].src[0] && !r[1].text[0], "a tab alone is a pair of empty sides, scored as transformers would");
    CHECK(n == 3 && !r[2].malformed && !r[2].src, "a blank line without a tab is an empty record");
    free_records(r, n);
}

int main(void) {
    test_corpus_records();
    test_journal_many_files();
    test_json_line();
    test_utf8_repair();
    test_cache();
    test_journal();
    test_format();
    return lm_test_summary("test_job_parts");
}
