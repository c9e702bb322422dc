/*
 * json_line: reads one JSONL record (a JSON object on one line) for the
 * corpus reader, keeping what a general JSON library throws away:
 *   - the raw text of every value, so an id is written back byte for byte
 *     as the input had it (9007199254740993 stays exact, 0.1 stays 0.1,
 *     null and [1, 2] stay what they were);
 *   - the decoded text's real length, so "\u0000" is a NUL byte the bad
 *     input policy sees rather than the end of the string.
 * RFC 8259 syntax (raw control characters inside strings are let through,
 * as cJSON did), linear time, nesting bounded.
 */
#ifndef LM_JSON_LINE_H
#define LM_JSON_LINE_H

#include <stdbool.h>
#include <stddef.h>

typedef enum { LM_JSON_ABSENT, LM_JSON_STRING, LM_JSON_NUMBER, LM_JSON_OTHER } lm_json_kind;

typedef struct {
    lm_json_kind kind;
    const char *raw;  /* the value's bytes in the line (for a string, quotes included) */
    size_t raw_len;
} lm_json_value;

/* Finds n top-level keys in the object on line[0..len): vals[i] gets the
 * value of keys[i] (ABSENT if missing; two names may be the same key, and
 * both get its value). A key written more than once takes its last value, as
 * Python's json.loads does (and JavaScript's JSON.parse, and jq): most JSONL
 * is written and read back by those, so lyricmt reads the text they see.
 * *dup (may be NULL) is then set to keys[i], else NULL. Returns NULL when the
 * line is one JSON object, else why not. */
const char *lm_json_line_fields(const char *line, size_t len, int n, const char *const *keys, lm_json_value *vals, const char **dup);

/* Decodes a string value's raw text (quotes included) into a malloc'd,
 * NUL-terminated buffer of *len bytes (which may hold NUL bytes, and
 * unpaired surrogates as the invalid 3-byte sequences they encode to, for
 * the UTF-8 policy to find). NULL when out of memory. */
char *lm_json_string_decode(const char *raw, size_t raw_len, size_t *len);

#endif
