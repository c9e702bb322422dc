/* json_line: see json_line.h. */
#include "job/json_line.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64

typedef struct {
    const char *s;
    size_t n, i;
} cursor;

static void skip_ws(cursor *c) {
    while (c->i < c->n && (c->s[c->i] == ' ' || c->s[c->i] == '\t' || c->s[c->i] == '\r' || c->s[c->i] == '\n')) c->i++;
}

static int hex4(const char *p, uint32_t *out) {
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        char h = p[k];
        int d = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + (uint32_t)d;
    }
    *out = v;
    return 0;
}

/* A string token starting at c->i (the opening quote); checks its escapes. */
static const char *scan_string(cursor *c) {
    if (c->i >= c->n || c->s[c->i] != '"') return "bad JSON: expected a string";
    for (c->i++; c->i < c->n; c->i++) {
        char ch = c->s[c->i];
        if (ch == '"') { c->i++; return NULL; }
        if (ch != '\\') continue;
        if (++c->i >= c->n) break;
        ch = c->s[c->i];
        if (ch == 'u') {
            uint32_t v;
            if (c->i + 4 >= c->n || hex4(c->s + c->i + 1, &v) != 0) return "bad JSON: bad \\u escape";
            c->i += 4;
        } else if (!strchr("\"\\/bfnrt", ch)) {
            return "bad JSON: bad escape in a string";
        }
    }
    return "bad JSON: unterminated string";
}

static const char *scan_number(cursor *c) {
    size_t i = c->i;
    const char *s = c->s;
    if (i < c->n && s[i] == '-') i++;
    if (i < c->n && s[i] == '0') i++;
    else if (i < c->n && s[i] >= '1' && s[i] <= '9') while (i < c->n && s[i] >= '0' && s[i] <= '9') i++;
    else return "bad JSON: bad number";
    if (i < c->n && s[i] == '.') {
        if (++i >= c->n || s[i] < '0' || s[i] > '9') return "bad JSON: bad number";
        while (i < c->n && s[i] >= '0' && s[i] <= '9') i++;
    }
    if (i < c->n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < c->n && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= c->n || s[i] < '0' || s[i] > '9') return "bad JSON: bad number";
        while (i < c->n && s[i] >= '0' && s[i] <= '9') i++;
    }
    c->i = i;
    return NULL;
}

static const char *scan_value(cursor *c, int depth, lm_json_kind *kind);

/* An array or object (c->i at its bracket). */
static const char *scan_container(cursor *c, int depth) {
    char close = c->s[c->i] == '{' ? '}' : ']';
    bool object = close == '}';
    if (depth >= MAX_DEPTH) return "bad JSON: nested too deeply";
    c->i++;
    skip_ws(c);
    if (c->i < c->n && c->s[c->i] == close) { c->i++; return NULL; }
    for (;;) {
        const char *why;
        lm_json_kind k;
        if (object) {
            if ((why = scan_string(c))) return why;
            skip_ws(c);
            if (c->i >= c->n || c->s[c->i] != ':') return "bad JSON: expected ':'";
            c->i++;
            skip_ws(c);
        }
        if ((why = scan_value(c, depth + 1, &k))) return why;
        skip_ws(c);
        if (c->i >= c->n) return "bad JSON: unterminated object or array";
        if (c->s[c->i] == close) { c->i++; return NULL; }
        if (c->s[c->i] != ',') return "bad JSON: expected ',' or a closing bracket";
        c->i++;
        skip_ws(c);
    }
}

static const char *scan_value(cursor *c, int depth, lm_json_kind *kind) {
    if (c->i >= c->n) return "bad JSON: expected a value";
    char ch = c->s[c->i];
    *kind = LM_JSON_OTHER;
    if (ch == '"') { *kind = LM_JSON_STRING; return scan_string(c); }
    if (ch == '-' || (ch >= '0' && ch <= '9')) { *kind = LM_JSON_NUMBER; return scan_number(c); }
    if (ch == '{' || ch == '[') return scan_container(c, depth);
    static const char *const words[] = {"true", "false", "null"};
    for (int w = 0; w < 3; w++) {
        size_t len = strlen(words[w]);
        if (c->n - c->i >= len && !memcmp(c->s + c->i, words[w], len)) { c->i += len; return NULL; }
    }
    return "bad JSON: expected a value";
}

/* Does the raw key token (quotes included) spell `name`? */
static bool key_is(const char *raw, size_t raw_len, const char *name) {
    size_t n = strlen(name);
    if (!memchr(raw, '\\', raw_len)) return raw_len == n + 2 && !memcmp(raw + 1, name, n);
    size_t len;
    char *key = lm_json_string_decode(raw, raw_len, &len);
    bool same = key && len == n && !memcmp(key, name, n);
    free(key);
    return same;
}

const char *lm_json_line_fields(const char *line, size_t len, int n, const char *const *keys, lm_json_value *vals, const char **dup) {
    cursor c = {line, len, 0};
    memset(vals, 0, (size_t)n * sizeof *vals);
    if (dup) *dup = NULL;
    skip_ws(&c);
    if (c.i >= c.n || c.s[c.i] != '{') return "not a JSON object";
    c.i++;
    skip_ws(&c);
    if (c.i < c.n && c.s[c.i] == '}') c.i++;
    else
        for (;;) {
            size_t key_at = c.i;
            const char *why = scan_string(&c);
            if (why) return why;
            size_t key_len = c.i - key_at;
            skip_ws(&c);
            if (c.i >= c.n || c.s[c.i] != ':') return "bad JSON: expected ':'";
            c.i++;
            skip_ws(&c);
            size_t value_at = c.i;
            lm_json_kind kind;
            if ((why = scan_value(&c, 1, &kind))) return why;
            lm_json_value v = {kind, line + value_at, c.i - value_at};
            for (int k = 0; k < n; k++) {
                if (!key_is(line + key_at, key_len, keys[k])) continue;
                if (vals[k].kind && dup) *dup = keys[k];
                vals[k] = v;
            }
            skip_ws(&c);
            if (c.i >= c.n) return "bad JSON: unterminated object";
            if (c.s[c.i] == '}') { c.i++; break; }
            if (c.s[c.i] != ',') return "bad JSON: expected ',' or '}'";
            c.i++;
            skip_ws(&c);
        }
    skip_ws(&c);
    return c.i == c.n ? NULL : "bad JSON: text after the object";
}

static size_t put_utf8(char *out, uint32_t cp) {
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) { out[0] = (char)(0xc0 | cp >> 6); out[1] = (char)(0x80 | (cp & 0x3f)); return 2; }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | cp >> 12);
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | cp >> 18);
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

char *lm_json_string_decode(const char *raw, size_t raw_len, size_t *len) {
    /* an escape never decodes to more bytes than it takes (\uXXXX: 6 -> at most 3; a pair: 12 -> 4) */
    char *out = malloc(raw_len + 1);
    if (!out) return NULL;
    size_t o = 0, end = raw_len - 1; /* raw[0] and raw[end] are the quotes (checked by scan_string) */
    for (size_t i = 1; i < end; i++) {
        char ch = raw[i];
        if (ch != '\\') { out[o++] = ch; continue; }
        ch = raw[++i];
        switch (ch) {
        case 'b': out[o++] = '\b'; break;
        case 'f': out[o++] = '\f'; break;
        case 'n': out[o++] = '\n'; break;
        case 'r': out[o++] = '\r'; break;
        case 't': out[o++] = '\t'; break;
        case 'u': {
            uint32_t cp = 0, lo;
            hex4(raw + i + 1, &cp);
            i += 4;
            if (cp >= 0xd800 && cp <= 0xdbff && i + 6 < end && raw[i + 1] == '\\' && raw[i + 2] == 'u' && hex4(raw + i + 3, &lo) == 0 &&
                lo >= 0xdc00 && lo <= 0xdfff) {
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                i += 6;
            }
            o += put_utf8(out + o, cp); /* a lone surrogate stays as its (invalid) 3 bytes */
            break;
        }
        default: out[o++] = ch; /* \" \\ \/ */
        }
    }
    out[o] = '\0';
    *len = o;
    return out;
}
