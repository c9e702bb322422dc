/* tokenizer: see tokenizer.h. */
#include "model/tokenizer.h"
#include "model/special_tokens.h"
#include "model/model_files.h"
#include "model/spm_shim.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UNK_ID 3

static const char *const lang_codes[LM_NUM_LANGS] = {
    "af", "am", "ar", "ast", "az", "ba", "be", "bg", "bn", "br", "bs", "ca", "ceb", "cs", "cy", "da", "de", "el", "en", "es",
    "et", "fa", "ff", "fi", "fr", "fy", "ga", "gd", "gl", "gu", "ha", "he", "hi", "hr", "ht", "hu", "hy", "id", "ig", "ilo",
    "is", "it", "ja", "jv", "ka", "kk", "km", "kn", "ko", "lb", "lg", "ln", "lo", "lt", "lv", "mg", "mk", "ml", "mn", "mr",
    "ms", "my", "ne", "nl", "no", "ns", "oc", "or", "pa", "pl", "ps", "pt", "ro", "ru", "sd", "si", "sk", "sl", "so", "sq",
    "sr", "ss", "su", "sv", "sw", "ta", "th", "tl", "tn", "tr", "uk", "ur", "uz", "vi", "wo", "xh", "yi", "yo", "zh", "zu"};

static const char *const base_specials[4] = {"<s>", "<pad>", "</s>", "<unk>"};

struct lm_tokenizer {
    lm_spm *spm;
    char **pieces;        /* id -> piece, for ids < n_vocab (NULL where vocab.json has a gap) */
    int n_vocab;          /* entries in vocab.json */
    int model_vocab;
    /* open-addressing hash of piece -> id */
    int32_t *slots;
    uint32_t n_slots;
    char lang_tokens[LM_NUM_LANGS][12];
    /* What the directory's tokenizer files declare (special_tokens.h): text is
     * split on the added tokens before SentencePiece; per id, whether decoding
     * skips it and whether its text is a special token's (written as is, not
     * through SentencePiece), and the added token's text where one has the id. */
    lm_special_entry *added;
    int n_added;
    uint8_t *id_flags;      /* model_vocab entries: ID_SKIP, ID_LITERAL */
    const char **id_text;   /* model_vocab entries, NULL unless an added token */
};

enum { ID_SKIP = 1, ID_LITERAL = 2 };

static uint32_t hash_str(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static int lookup(const lm_tokenizer *t, const char *s, size_t n) {
    for (uint32_t i = hash_str(s, n) & (t->n_slots - 1);; i = (i + 1) & (t->n_slots - 1)) {
        int32_t id = t->slots[i];
        if (id < 0) return -1;
        if (strlen(t->pieces[id]) == n && memcmp(t->pieces[id], s, n) == 0) return id;
    }
}

const char *lm_tokenizer_lang_code(int index) { return index >= 0 && index < LM_NUM_LANGS ? lang_codes[index] : NULL; }

int lm_tokenizer_lang_id(const lm_tokenizer *tok, const char *code) {
    for (int i = 0; i < LM_NUM_LANGS; i++)
        if (strcmp(lang_codes[i], code) == 0) return tok->n_vocab + i;
    return -1;
}

int lm_tokenizer_vocab_size(const lm_tokenizer *tok) { return tok->n_vocab; }

static int load_vocab(lm_tokenizer *t, const char *path, lm_err *err) {
    char *text;
    size_t len;
    if (lm_read_file(path, lm_model_files[LM_MF_VOCAB].max_bytes, &text, &len, err) != 0) return -1;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return lm_fail(err, "%s: not a JSON object of piece -> id", path);
    }
    int n = cJSON_GetArraySize(root), rc = -1;
    t->n_vocab = n;
    t->pieces = calloc((size_t)n + 1, sizeof *t->pieces);
    t->n_slots = 16;
    while (t->n_slots < 2u * (uint32_t)n + 16) t->n_slots *= 2;
    t->slots = malloc(t->n_slots * sizeof *t->slots);
    if (!t->pieces || !t->slots) { lm_fail(err, "out of memory"); goto done; }
    memset(t->slots, 0xff, t->n_slots * sizeof *t->slots);
    const cJSON *beyond = NULL; /* the first piece whose id is not below the number of pieces */
    for (const cJSON *it = root->child; it; it = it->next) {
        if (!cJSON_IsNumber(it)) {
            char *v = cJSON_PrintUnformatted(it);
            lm_fail(err, "%s: piece '%.40s' has id %.40s, which is not a number", path, it->string, v ? v : "(?)");
            free(v);
            goto done;
        }
        if (it->valuedouble < 0 || it->valuedouble > INT_MAX || it->valuedouble != floor(it->valuedouble)) {
            lm_fail(err, "%s: piece '%.40s' has id %g, expected a whole number from 0", path, it->string, it->valuedouble);
            goto done;
        }
        int id = (int)it->valuedouble;
        if (id >= n) { /* told below, with the id that is missing */
            if (!beyond) beyond = it;
            continue;
        }
        if (t->pieces[id]) { lm_fail(err, "%s: id %d is used twice ('%.40s' and '%.40s')", path, id, t->pieces[id], it->string); goto done; }
        t->pieces[id] = strdup(it->string);
        if (!t->pieces[id]) { lm_fail(err, "out of memory"); goto done; }
        size_t plen = strlen(it->string);
        uint32_t i = hash_str(it->string, plen) & (t->n_slots - 1);
        while (t->slots[i] >= 0) {
            if (strcmp(t->pieces[t->slots[i]], it->string) == 0) { lm_fail(err, "%s: piece '%.40s' appears twice", path, it->string); goto done; }
            i = (i + 1) & (t->n_slots - 1);
        }
        t->slots[i] = id;
    }
    if (beyond) {
        /* n distinct ids, one of them n or more: some id below n has no piece,
         * and that is what to tell (a piece deleted, not one numbered wrong) */
        int gap = 0;
        while (t->pieces[gap]) gap++;
        if (gap < 4) lm_fail(err, "%s: '%s' is missing (it must have id %d)", path, base_specials[gap], gap);
        else lm_fail(err, "%s: no piece has id %d, yet '%.40s' has id %d: %d pieces must have the ids 0 to %d", path, gap, beyond->string,
                     (int)beyond->valuedouble, n, n - 1);
        goto done;
    }
    for (int i = 0; i < 4; i++) {
        int id = lookup(t, base_specials[i], strlen(base_specials[i]));
        if (id < 0) { lm_fail(err, "%s: '%s' is missing (it must have id %d)", path, base_specials[i], i); goto done; }
        if (id != i) { lm_fail(err, "%s: '%s' must have id %d (it has %d)", path, base_specials[i], i, id); goto done; }
    }
    rc = 0;
done:
    cJSON_Delete(root);
    return rc;
}

static const lm_special_entry *find_added(const lm_tokenizer *t, const char *text) {
    for (int i = 0; i < t->n_added; i++)
        if (strcmp(t->added[i].text, text) == 0) return &t->added[i];
    return NULL;
}

static int push_added(lm_tokenizer *t, const char *text, int32_t id, lm_err *err) {
    lm_special_entry *p = realloc(t->added, (size_t)(t->n_added + 1) * sizeof *p);
    if (!p) return lm_fail(err, "out of memory");
    t->added = p;
    if (!(p[t->n_added].text = strdup(text))) return lm_fail(err, "out of memory");
    p[t->n_added++].id = id;
    return 0;
}

/* Marks the ids whose text is the special token s as written literally. */
static void mark_literal(lm_tokenizer *t, const char *s) {
    const lm_special_entry *a = find_added(t, s);
    if (a && a->id < t->model_vocab) t->id_flags[a->id] |= ID_LITERAL;
    for (int i = 0; i < LM_NUM_LANGS; i++)
        if (strcmp(t->lang_tokens[i], s) == 0 && !t->id_text[t->n_vocab + i]) t->id_flags[t->n_vocab + i] |= ID_LITERAL;
    int v = lookup(t, s, strlen(s));
    if (v >= 0 && !t->id_text[v]) t->id_flags[v] |= ID_LITERAL;
}

/* transformers' rules (special_tokens.h): the added tokens are
 * added_tokens_decoder's (else the four named ones), then each extra special
 * token not among them, with its vocab.json id or else the next new id from
 * len(vocab.json) on; so a full list of the 100 language tokens in fairseq's
 * order lands on the language ids, and a partial list does not. Decoding
 * skips the named tokens and the extra ones. */
static int resolve_specials(lm_tokenizer *t, const char *dir, lm_err *err) {
    lm_special_tokens st;
    if (lm_special_tokens_load(dir, &st, err) != 0) return -1;
    int rc = -1;
    t->id_flags = calloc((size_t)t->model_vocab, 1);
    t->id_text = calloc((size_t)t->model_vocab, sizeof *t->id_text);
    if (!t->id_flags || !t->id_text) { lm_fail(err, "out of memory"); goto done; }
    int32_t next = t->n_vocab;
    for (int i = 0; i < (st.has_decoder ? st.n_decoder : 4); i++) {
        const char *text = st.has_decoder ? st.decoder[i].text : base_specials[i];
        int32_t id = st.has_decoder ? st.decoder[i].id : i;
        if (find_added(t, text)) continue;
        if (push_added(t, text, id, err) != 0) goto done;
        if (id >= next) next = id + 1;
    }
    for (int i = 0; i < st.n_extra; i++) {
        if (find_added(t, st.extra[i].text)) continue;
        int v = lookup(t, st.extra[i].text, strlen(st.extra[i].text));
        if (push_added(t, st.extra[i].text, v >= 0 ? v : next++, err) != 0) goto done;
    }
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].id < t->model_vocab) t->id_text[t->added[i].id] = t->added[i].text;
    for (int i = 0; i < 4; i++) t->id_flags[i] |= ID_SKIP;
    for (int i = 0; i < st.n_extra; i++) {
        const lm_special_entry *a = find_added(t, st.extra[i].text);
        if (a->id < t->model_vocab) t->id_flags[a->id] |= ID_SKIP;
    }
    for (int i = 0; i < 4; i++) mark_literal(t, base_specials[i]);
    for (int i = 0; i < st.n_extra; i++) mark_literal(t, st.extra[i].text);
    rc = 0;
done:
    lm_special_tokens_free(&st);
    return rc;
}

int lm_tokenizer_load(const char *dir, int model_vocab, lm_tokenizer **out, lm_err *err) {
    *out = NULL;
    lm_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return lm_fail(err, "out of memory");
    char path[4096];
    if (lm_path_join(path, sizeof path, dir, lm_model_files[LM_MF_VOCAB].name, err) != 0 || load_vocab(t, path, err) != 0) goto fail;
    if (t->n_vocab + LM_NUM_LANGS > model_vocab) {
        lm_fail(err, "%s: %d pieces + %d language tokens exceed the model's vocab_size %d", path, t->n_vocab, LM_NUM_LANGS, model_vocab);
        goto fail;
    }
    t->model_vocab = model_vocab;
    for (int i = 0; i < LM_NUM_LANGS; i++) snprintf(t->lang_tokens[i], sizeof t->lang_tokens[i], "__%s__", lang_codes[i]);
    if (resolve_specials(t, dir, err) != 0) goto fail;
    if (lm_path_join(path, sizeof path, dir, lm_model_files[LM_MF_SENTENCEPIECE].name, err) != 0) goto fail;
    if (!lm_file_exists(path)) { lm_fail(err, "%s: missing", path); goto fail; }
    /* read here, under its cap, rather than by the library, which would open a FIFO and wait */
    char *proto;
    size_t proto_len;
    if (lm_read_file(path, lm_model_files[LM_MF_SENTENCEPIECE].max_bytes, &proto, &proto_len, err) != 0) goto fail;
    t->spm = lm_spm_load(path, proto, proto_len, err->msg, sizeof err->msg);
    free(proto);
    if (!t->spm) goto fail;
    *out = t;
    return 0;
fail:
    lm_tokenizer_free(t);
    return -1;
}

void lm_tokenizer_free(lm_tokenizer *t) {
    if (!t) return;
    if (t->pieces)
        for (int i = 0; i < t->n_vocab; i++) free(t->pieces[i]);
    free(t->pieces);
    free(t->slots);
    for (int i = 0; i < t->n_added; i++) free(t->added[i].text);
    free(t->added);
    free(t->id_flags);
    free(t->id_text);
    lm_spm_free(t->spm);
    free(t);
}

/* ---- encoding ---- */

typedef struct {
    const lm_tokenizer *tok;
    int32_t *ids;
    int n, cap;
    bool oom;
} id_buf;

static void append_id(id_buf *b, int32_t id) {
    if (b->oom) return;
    if (b->n == b->cap) {
        int cap = b->cap ? b->cap * 2 : 64;
        int32_t *p = realloc(b->ids, (size_t)cap * sizeof *p);
        if (!p) { b->oom = true; return; }
        b->ids = p;
        b->cap = cap;
    }
    b->ids[b->n++] = id;
}

static void emit_piece(void *ctx, const char *piece, size_t len) {
    id_buf *b = ctx;
    int id = lookup(b->tok, piece, len);
    append_id(b, id < 0 ? UNK_ID : id);
}

/* Length of the longest added token starting at s (0 if none) and its id. */
static size_t match_special(const lm_tokenizer *t, const char *s, size_t left, int32_t *id) {
    size_t best = 0;
    for (int i = 0; i < t->n_added; i++) {
        const char *a = t->added[i].text;
        if (a[0] != s[0]) continue;
        size_t n = strlen(a);
        if (n > best && n <= left && memcmp(s, a, n) == 0) { best = n; *id = t->added[i].id; }
    }
    return best;
}

int lm_tokenizer_encode(const lm_tokenizer *tok, const char *text, size_t len, int32_t **ids, int *n, lm_err *err) {
    id_buf b = {.tok = tok};
    size_t chunk = 0;
    for (size_t i = 0; i <= len; i++) {
        int32_t special = -1;
        size_t m = i < len ? match_special(tok, text + i, len - i, &special) : 0;
        if (i < len && m == 0) continue;
        if (i > chunk && lm_spm_encode(tok->spm, text + chunk, i - chunk, emit_piece, &b) != 0) {
            free(b.ids);
            return lm_fail(err, "SentencePiece failed to encode the text");
        }
        if (m) {
            append_id(&b, special);
            i += m - 1;
        }
        chunk = i + 1;
    }
    if (b.oom) {
        free(b.ids);
        return lm_fail(err, "out of memory while tokenizing");
    }
    *ids = b.ids;
    *n = b.n;
    return 0;
}

/* ---- decoding ---- */

typedef struct {
    char *s;
    size_t n, cap;
    bool oom;
} str_buf;

static void str_append(str_buf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) { b->oom = true; return; }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static int flush_pieces(const lm_tokenizer *tok, const char **run, int *n_run, str_buf *out) {
    if (*n_run == 0) return 0;
    char *s = lm_spm_decode_pieces(tok->spm, run, *n_run);
    if (!s) return -1;
    str_append(out, s, strlen(s));
    free(s);
    *n_run = 0;
    return 0;
}

static bool is_py_space(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f); }

int lm_tokenizer_decode(const lm_tokenizer *tok, const int32_t *ids, int n, char **out, lm_err *err) {
    str_buf b = {0};
    const char **run = malloc(((size_t)n + 1) * sizeof *run);
    int n_run = 0;
    if (!run) return lm_fail(err, "out of memory");
    str_append(&b, "", 0);
    for (int i = 0; i < n; i++) {
        int id = ids[i];
        if (id < 0 || id >= tok->model_vocab) { free(run); free(b.s); return lm_fail(err, "token id %d outside the vocabulary", id); }
        if (tok->id_flags[id] & ID_SKIP) continue;
        /* madeup words have no piece: transformers writes the unk token */
        const char *text = tok->id_text[id] ? tok->id_text[id]
                           : id >= tok->n_vocab && id < tok->n_vocab + LM_NUM_LANGS ? tok->lang_tokens[id - tok->n_vocab]
                           : id < tok->n_vocab && tok->pieces[id] ? tok->pieces[id] : "<unk>";
        if (tok->id_flags[id] & ID_LITERAL || (!tok->id_text[id] && id >= tok->n_vocab + LM_NUM_LANGS)) {
            /* a special token's text is written as is, not through SentencePiece */
            if (flush_pieces(tok, run, &n_run, &b) != 0) break;
            str_append(&b, text, strlen(text));
        } else {
            run[n_run++] = text;
        }
    }
    int rc = flush_pieces(tok, run, &n_run, &b);
    free(run);
    if (rc != 0 || b.oom) {
        free(b.s);
        return lm_fail(err, "SentencePiece failed to decode");
    }
    /* Python's str.strip() on the result */
    size_t start = 0, end = b.n;
    while (start < end && is_py_space((unsigned char)b.s[start])) start++;
    while (end > start && is_py_space((unsigned char)b.s[end - 1])) end--;
    memmove(b.s, b.s + start, end - start);
    b.s[end - start] = '\0';
    *out = b.s;
    return 0;
}
