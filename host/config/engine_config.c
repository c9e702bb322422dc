/* engine_config: see engine_config.h. */
#include "config/engine_config.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

typedef enum { K_INT, K_FLOAT, K_BOOL } key_kind;

/* decoding keys: transformers' generation names */
static const struct {
    const char *name;
    key_kind kind;
    double lo, hi;
    size_t offset;
} gen_keys[] = {
    {"num_beams", K_INT, 1, 1024, offsetof(lm_gen_config, num_beams)},
    {"max_length", K_INT, 2, 1 << 20, offsetof(lm_gen_config, max_length)},
    {"min_length", K_INT, 0, 1 << 20, offsetof(lm_gen_config, min_length)},
    {"length_penalty", K_FLOAT, -100, 100, offsetof(lm_gen_config, length_penalty)},
    {"early_stopping", K_BOOL, 0, 1, offsetof(lm_gen_config, early_stopping)},
    {"no_repeat_ngram_size", K_INT, 0, 1024, offsetof(lm_gen_config, no_repeat_ngram_size)},
    {"repetition_penalty", K_FLOAT, 1e-6, 1e6, offsetof(lm_gen_config, repetition_penalty)},
    {"num_return_sequences", K_INT, 1, 1024, offsetof(lm_gen_config, num_return_sequences)},
    {"do_sample", K_BOOL, 0, 1, offsetof(lm_gen_config, do_sample)},
    {"temperature", K_FLOAT, 1e-6, 1e6, offsetof(lm_gen_config, temperature)},
    {"top_k", K_INT, 0, 1 << 24, offsetof(lm_gen_config, top_k)},
    {"top_p", K_FLOAT, 0, 1, offsetof(lm_gen_config, top_p)},
};
#define N_GEN_KEYS (int)(sizeof gen_keys / sizeof *gen_keys)

void lm_engine_config_defaults(lm_engine_config *c) {
    memset(c, 0, sizeof *c);
    c->threads = 0;
    c->workers = 1;
    c->rank0_translates = true;
    c->mpi_timeout_s = 600;
    c->precision = LM_PREC_AUTO;
    c->max_batch_sentences = 0; /* auto: lm_engine_config_resolve */
    c->max_batch_tokens = 0;
    c->convention = -1;
    c->window_lines = 0;
    c->cache_lines = 65536;
    c->sort_by_length = true;
    c->inflight = true;
    strcpy(c->id_field, "id");
    strcpy(c->text_field, "text");
    strcpy(c->source_field, "source");
    strcpy(c->target_field, "target");
}

static const char *const format_names[] = {"text", "tsv", "jsonl", "pairs"};
static const char *const utf8_policy_names[] = {"replace", "skip", "fail"};
static const char *const length_policy_names[] = {"truncate", "skip", "fail"};

static const char *const device_names[] = {"cpu", "cuda"};
static const char *const weights_from_names[] = {"disk", "broadcast"};
static const char *const precision_names[] = {"auto", "fp32", "fp16", "bf16", "int8"}; /* from -1: auto */
static const char *const convention_names[] = {"auto", "m2m100", "small100"}; /* from -1: auto */

const char *lm_format_name(lm_format f) { return format_names[f]; }
const char *lm_device_name(lm_device d) { return device_names[d]; }
const char *lm_precision_name(lm_precision p) { return precision_names[p + 1]; }

void lm_engine_config_resolve(lm_engine_config *c, const lm_batch_limits *gpu) {
    bool cuda = c->device == LM_DEVICE_CUDA;
    if (c->precision == LM_PREC_AUTO) c->precision = cuda ? LM_PREC_BF16 : LM_PREC_FP32;
    lm_batch_limits cpu = {LM_CPU_BATCH_SENTENCES, LM_CPU_BATCH_TOKENS, LM_CPU_WINDOW_LINES};
    const lm_batch_limits *d = cuda && gpu ? gpu : &cpu;
    if (c->max_batch_sentences == 0) c->max_batch_sentences = d->max_sentences;
    if (c->max_batch_tokens == 0) c->max_batch_tokens = d->max_tokens;
    if (c->window_lines == 0) c->window_lines = d->window_lines;
}
const char *lm_policy_name(lm_policy p, bool for_length) { return (for_length ? length_policy_names : utf8_policy_names)[p]; }

/* Choices are stored as int through the table, so every enum the table
 * writes must have an int's size. */
_Static_assert(sizeof(lm_format) == sizeof(int) && sizeof(lm_policy) == sizeof(int) && sizeof(lm_device) == sizeof(int) &&
                   sizeof(lm_precision) == sizeof(int) && sizeof(lm_weights_from) == sizeof(int),
               "enum settings are written as int");

/* Every engine setting, for YAML and flags alike: its key, how its text is
 * read and checked, and where it goes. The decoding keys (gen_keys) are
 * kept apart: they override the model's own generation_config.json. */
typedef enum { S_INT, S_U64, S_DOUBLE, S_BOOL, S_CHOICE, S_TEXT } setting_kind;

typedef struct {
    const char *key;
    setting_kind kind;
    double lo, hi;             /* S_INT, S_U64, S_DOUBLE */
    size_t offset;             /* into lm_engine_config */
    const char *const *names;  /* S_CHOICE: value base + i is names[i] */
    int n_names, base;
    size_t size;               /* S_TEXT: the field's bytes (1 to size - 1 taken) */
    const char *rule;          /* S_TEXT: what a refused value is told */
    ptrdiff_t given;           /* offset of a bool set when the key is given, or -1 */
} setting;

#define AT(field) offsetof(lm_engine_config, field)
#define INT(k, f, lo, hi) {k, S_INT, lo, hi, AT(f), NULL, 0, 0, 0, NULL, -1}
#define BOOL(k, f) {k, S_BOOL, 0, 1, AT(f), NULL, 0, 0, 0, NULL, -1}
#define CHOICE(k, f, names, n, base) {k, S_CHOICE, 0, 0, AT(f), names, n, base, 0, NULL, -1}
#define TEXT(k, f, rule) {k, S_TEXT, 0, 0, AT(f), NULL, 0, 0, sizeof(((lm_engine_config *)0)->f), rule, -1}
static const setting settings[] = {
    INT("threads", threads, 0, 4096),
    INT("workers", workers, 1, 1024),
    /* the list itself is checked where the devices are opened (translator.c) */
    TEXT("devices", devices, "must be 'all' or a list such as 0,1,2,3"),
    CHOICE("weights_from", weights_from, weights_from_names, 2, 0),
    BOOL("mpi.rank0_translates", rank0_translates),
    INT("mpi.timeout_s", mpi_timeout_s, 0, 1 << 24),
    CHOICE("device", device, device_names, 2, 0),
    CHOICE("precision", precision, precision_names, 5, -1),
    /* 0: auto, sized for the device (lm_engine_config_resolve) */
    INT("batch.max_sentences", max_batch_sentences, 0, 1 << 20),
    INT("batch.max_tokens", max_batch_tokens, 0, 1 << 30),
    {"decoding.seed", S_U64, 0, 9007199254740991.0, AT(seed), NULL, 0, 0, 0, NULL, -1},
    {"seed", S_U64, 0, 9007199254740991.0, AT(seed), NULL, 0, 0, 0, NULL, -1},
    INT("batch.window_lines", window_lines, 0, 1 << 24),
    INT("batch.cache_lines", cache_lines, 0, 1 << 26),
    BOOL("batch.sort_by_length", sort_by_length),
    BOOL("batch.inflight", inflight),
    CHOICE("input.format", input_format, format_names, 3, 0), /* pairs is an output format only */
    CHOICE("output.format", output_format, format_names, 4, 0),
    BOOL("output.dedup_hypotheses", dedup_hypotheses),
    {"output.min_score", S_DOUBLE, -1e9, 0, AT(min_score), NULL, 0, 0, 0, NULL, AT(has_min_score)},
    CHOICE("input.bad_utf8", bad_utf8, utf8_policy_names, 3, 0),
    CHOICE("input.too_long", too_long, length_policy_names, 3, 0),
    TEXT("input.id_field", id_field, "must be a field name of 1 to 63 bytes"),
    TEXT("input.text_field", text_field, "must be a field name of 1 to 63 bytes"),
    TEXT("input.source_field", source_field, "must be a field name of 1 to 63 bytes"),
    TEXT("input.target_field", target_field, "must be a field name of 1 to 63 bytes"),
    CHOICE("tokenizer.convention", convention, convention_names, 3, -1),
    TEXT("tokenizer.src", src_lang, "is not a language code"),
    TEXT("tokenizer.tgt", tgt_lang, "is not a language code"),
};
#undef INT
#undef BOOL
#undef CHOICE
#undef TEXT
#undef AT

/* Picks one of n names; the error lists them. */
static int parse_choice(const char *text, const char *const *names, int n, int *out, const char *key, const char *where, lm_err *err) {
    for (int i = 0; i < n; i++)
        if (!strcmp(text, names[i])) { *out = i; return 0; }
    char list[128] = "";
    for (int i = 0; i < n; i++) snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", names[i]);
    return lm_fail(err, "%s: '%s' must be one of %s, got '%s'", where, key, list, text);
}

static int parse_number(const char *text, key_kind kind, double lo, double hi, double *out, const char *key, const char *where,
                        lm_err *err) {
    if (kind == K_BOOL) {
        if (!strcmp(text, "true") || !strcmp(text, "yes") || !strcmp(text, "1")) { *out = 1; return 0; }
        if (!strcmp(text, "false") || !strcmp(text, "no") || !strcmp(text, "0")) { *out = 0; return 0; }
        return lm_fail(err, "%s: '%s' must be true or false, got '%s'", where, key, text);
    }
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end != '\0' || errno || !isfinite(v))
        return lm_fail(err, "%s: '%s' must be a number, got '%s'", where, key, text);
    /* digits only: 1e3 and 4.0 are numbers, but not what anyone means by a count */
    if (kind == K_INT && (v != floor(v) || strspn(text + (text[0] == '-'), "0123456789") != strlen(text + (text[0] == '-'))))
        return lm_fail(err, "%s: '%s' must be an integer, got '%s'", where, key, text);
    if (v < lo || v > hi) {
        if (kind == K_INT) return lm_fail(err, "%s: '%s' is %s, outside [%.0f, %.0f]", where, key, text, lo, hi);
        return lm_fail(err, "%s: '%s' is %s, outside [%g, %g]", where, key, text, lo, hi);
    }
    *out = v;
    return 0;
}

/* Reads one engine setting's text into c. */
static int set_one(lm_engine_config *c, const setting *st, const char *value, const char *where, lm_err *err) {
    char *field = (char *)c + st->offset;
    double v;
    int choice = 0;
    switch (st->kind) {
    case S_INT:
        if (parse_number(value, K_INT, st->lo, st->hi, &v, st->key, where, err)) return -1;
        *(int *)field = (int)v;
        break;
    case S_U64:
        if (parse_number(value, K_INT, st->lo, st->hi, &v, st->key, where, err)) return -1;
        *(uint64_t *)field = (uint64_t)v;
        break;
    case S_DOUBLE:
        if (parse_number(value, K_FLOAT, st->lo, st->hi, &v, st->key, where, err)) return -1;
        *(double *)field = v;
        break;
    case S_BOOL:
        if (parse_number(value, K_BOOL, 0, 1, &v, st->key, where, err)) return -1;
        *(bool *)field = v != 0;
        break;
    case S_CHOICE:
        if (parse_choice(value, st->names, st->n_names, &choice, st->key, where, err)) return -1;
        *(int *)field = st->base + choice;
        break;
    case S_TEXT:
        if (strlen(value) >= st->size || !value[0]) return lm_fail(err, "%s: '%s' %s", where, st->key, st->rule);
        strcpy(field, value);
        break;
    }
    if (st->given >= 0) *(bool *)((char *)c + st->given) = true;
    return 0;
}

#define N_SETTINGS (int)(sizeof settings / sizeof *settings)

/* Which setting a key names, one number for both tables: a generation key
 * (bare or under decoding.) is its gen_keys index, an engine setting
 * N_GEN_KEYS + its settings index; -1 for no setting. */
static int setting_index(const char *key) {
    const char *bare = strncmp(key, "decoding.", 9) == 0 ? key + 9 : key;
    for (int i = 0; i < N_GEN_KEYS; i++)
        if (!strcmp(bare, gen_keys[i].name)) return i;
    for (int i = 0; i < N_SETTINGS; i++)
        if (!strcmp(key, settings[i].key)) return N_GEN_KEYS + i;
    return -1;
}

int lm_engine_config_set(lm_engine_config *c, const char *key, const char *value, const char *where, lm_err *err) {
    int i = setting_index(key);
    if (i < 0) return lm_fail(err, "%s: unknown key '%s'", where, key);
    if (i >= N_GEN_KEYS) return set_one(c, &settings[i - N_GEN_KEYS], value, where, err);
    double v;
    if (parse_number(value, gen_keys[i].kind, gen_keys[i].lo, gen_keys[i].hi, &v, key, where, err) != 0) return -1;
    for (int j = 0; j < c->n_overrides; j++)
        if (c->overrides[j].key == i) { c->overrides[j].value = v; return 0; }
    if (c->n_overrides == LM_MAX_OVERRIDES) return lm_fail(err, "%s: too many decoding settings", where);
    c->overrides[c->n_overrides].key = i;
    c->overrides[c->n_overrides++].value = v;
    return 0;
}

/* Whether `section` names a YAML section: the part before the dot of some
 * key (decoding holds the generation keys). */
static bool is_section(const char *section) {
    if (!strcmp(section, "decoding")) return true;
    size_t n = strlen(section);
    for (size_t i = 0; i < sizeof settings / sizeof *settings; i++)
        if (!strncmp(settings[i].key, section, n) && settings[i].key[n] == '.') return true;
    return false;
}

void lm_engine_config_apply(const lm_engine_config *c, lm_gen_config *g) {
    for (int i = 0; i < c->n_overrides; i++) {
        double v = c->overrides[i].value;
        char *field = (char *)g + gen_keys[c->overrides[i].key].offset;
        switch (gen_keys[c->overrides[i].key].kind) {
        case K_INT: *(int *)field = (int)v; break;
        case K_FLOAT: *(float *)field = (float)v; break;
        case K_BOOL: *(bool *)field = v != 0; break;
        }
    }
}

/* The line each setting was first given on (0: not yet), so that a setting
 * given twice is refused rather than silently taking one of its values (PyYAML
 * keeps the last; a reader of the file may well see the first). Counted by
 * setting, not by spelling: num_beams and decoding.num_beams are one. */
typedef struct {
    unsigned long line[N_GEN_KEYS + N_SETTINGS];
} seen_keys;

/* Whether the mapping's pairs before p hold key k (a section given twice;
 * the pairs before p are all known sections or settings, so few). */
static unsigned long earlier_key(yaml_document_t *doc, yaml_node_t *map, yaml_node_pair_t *p, const yaml_node_t *k) {
    for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
        yaml_node_t *e = yaml_document_get_node(doc, q->key);
        if (e && e->type == YAML_SCALAR_NODE && !strcmp((const char *)e->data.scalar.value, (const char *)k->data.scalar.value))
            return (unsigned long)e->start_mark.line + 1;
    }
    return 0;
}

/* Walks a mapping; nested mappings give dotted keys ("batch.max_tokens"). */
static int walk(lm_engine_config *c, yaml_document_t *doc, yaml_node_t *map, const char *prefix, const char *path, seen_keys *seen,
                lm_err *err) {
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key), *v = yaml_document_get_node(doc, p->value);
        char where[4200], key[512];
        if (!k || k->type != YAML_SCALAR_NODE) return lm_fail(err, "%s: keys must be plain names", path);
        snprintf(key, sizeof key, "%s%s", prefix, (const char *)k->data.scalar.value);
        snprintf(where, sizeof where, "%s:%lu", path, (unsigned long)k->start_mark.line + 1);
        unsigned long first;
        if (v->type == YAML_MAPPING_NODE) {
            if (prefix[0]) return lm_fail(err, "%s: '%s' nests too deeply", where, key);
            char sub[600];
            snprintf(sub, sizeof sub, "%s.", key);
            if (!is_section(key)) return lm_fail(err, "%s: unknown section '%s'", where, key);
            if ((first = earlier_key(doc, map, p, k)))
                return lm_fail(err, "%s: section '%s' is given twice (first on line %lu); a key may appear once", where, key, first);
            if (walk(c, doc, v, sub, path, seen, err) != 0) return -1;
        } else if (v->type == YAML_SCALAR_NODE) {
            int i = setting_index(key);
            if (i >= 0 && (first = seen->line[i]))
                return lm_fail(err, "%s: '%s' is set twice (first on line %lu); a key may appear once", where, key, first);
            if (i >= 0) seen->line[i] = (unsigned long)k->start_mark.line + 1;
            if (lm_engine_config_set(c, key, (const char *)v->data.scalar.value, where, err) != 0) return -1;
        } else {
            return lm_fail(err, "%s: '%s' must be a value, not a list", where, key);
        }
    }
    return 0;
}

/* An engine config is a few hundred bytes. The bounds keep hostile files
 * out of libyaml: its document holds the whole file, and its scanner is
 * quadratic in nesting depth (40,000 levels of "[" took 7 s, 200,000 took
 * minutes), so a first pass over the events refuses deep nesting before
 * the document is built. */
#define YAML_MAX_BYTES (1u << 20)
#define YAML_MAX_DEPTH 8

/* Reads all of f (a pipe too) up to YAML_MAX_BYTES. */
static int read_bounded(FILE *f, const char *path, char **out, size_t *len, lm_err *err) {
    size_t cap = 4096, n = 0;
    char *buf = lm_malloc(cap, err);
    if (!buf) return -1;
    for (;;) {
        n += fread(buf + n, 1, cap - n, f);
        if (n > YAML_MAX_BYTES) {
            free(buf);
            return lm_fail(err, "%s: more than %u bytes; an engine config is a few hundred", path, YAML_MAX_BYTES);
        }
        if (n < cap) break;
        char *bigger = realloc(buf, cap * 2);
        if (!bigger) { free(buf); return lm_fail(err, "%s: out of memory", path); }
        buf = bigger;
        cap *= 2;
    }
    if (ferror(f)) { free(buf); return lm_fail(err, "%s: read error: %s", path, strerror(errno)); }
    *out = buf;
    *len = n;
    return 0;
}

/* Refuses nesting deeper than YAML_MAX_DEPTH, and a second document (the
 * load below reads only the first: a "---" and more settings would be
 * ignored); syntax errors are left to the document load, which reports them. */
static int check_shape(const char *text, size_t len, const char *path, lm_err *err) {
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) return lm_fail(err, "%s: cannot start the YAML parser", path);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    int depth = 0, docs = 0, rc = 0;
    for (bool done = false; !done;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) break;
        if (ev.type == YAML_SEQUENCE_START_EVENT || ev.type == YAML_MAPPING_START_EVENT) {
            if (++depth > YAML_MAX_DEPTH) {
                rc = lm_fail(err, "%s:%lu: nested more than %d levels deep", path, (unsigned long)ev.start_mark.line + 1,
                             YAML_MAX_DEPTH);
                done = true;
            }
        } else if (ev.type == YAML_SEQUENCE_END_EVENT || ev.type == YAML_MAPPING_END_EVENT) {
            depth--;
        } else if (ev.type == YAML_DOCUMENT_START_EVENT && ++docs > 1) {
            rc = lm_fail(err, "%s:%lu: a second YAML document; an engine config is one mapping of settings", path,
                         (unsigned long)ev.start_mark.line + 1);
            done = true;
        } else if (ev.type == YAML_STREAM_END_EVENT) {
            done = true;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    return rc;
}

int lm_engine_config_load_yaml(lm_engine_config *c, const char *path, lm_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return lm_fail(err, "%s: cannot open: %s", path, strerror(errno));
    char *text = NULL;
    size_t len = 0;
    int rc = read_bounded(f, path, &text, &len, err);
    fclose(f);
    if (rc != 0) return -1;
    if (check_shape(text, len, path, err) != 0) { free(text); return -1; }
    yaml_parser_t parser;
    yaml_document_t doc;
    rc = -1;
    if (!yaml_parser_initialize(&parser)) {
        free(text);
        return lm_fail(err, "%s: cannot start the YAML parser", path);
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        /* the reader (bad UTF-8, control characters) gives a byte offset, not a mark */
        unsigned long line = (unsigned long)parser.problem_mark.line + 1;
        if (parser.error == YAML_READER_ERROR) {
            line = 1;
            for (size_t i = 0; i < parser.problem_offset && i < len; i++) line += text[i] == '\n';
        }
        lm_fail(err, "%s:%lu: bad YAML: %s", path, line, parser.problem ? parser.problem : "parse error");
        yaml_parser_delete(&parser);
        free(text);
        return -1;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) rc = 0; /* empty file: nothing to change */
    else if (root->type != YAML_MAPPING_NODE) lm_fail(err, "%s: the top level must be a mapping of settings", path);
    else {
        seen_keys seen = {{0}};
        rc = walk(c, &doc, root, "", path, &seen, err);
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    free(text);
    return rc;
}
