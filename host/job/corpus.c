/* corpus: see corpus.h. */
#include "job/corpus.h"

#include "job/json_line.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define READ_CHUNK ((size_t)1 << 16)
#define POLL_MS 200          /* how often a wait on a stream looks at the stop flag */
#define MAX_DEPTH 64

/* ---- expanding paths ---- */

static int64_t mtime_ns(const struct stat *st) { return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec; }

static lm_file_id id_of(const struct stat *st) { return (lm_file_id){(uint64_t)st->st_dev, (uint64_t)st->st_ino}; }

static bool stat_is_stream(const struct stat *st) {
    return S_ISFIFO(st->st_mode) || S_ISCHR(st->st_mode) || S_ISSOCK(st->st_mode) || S_ISBLK(st->st_mode);
}

static int add_file(lm_corpus *c, const char *path, const char *name, const struct stat *st, lm_err *err) {
    lm_corpus_file *grown = realloc(c->files, ((size_t)c->n_files + 1) * sizeof *grown);
    if (!grown) return lm_fail(err, "out of memory");
    c->files = grown;
    lm_corpus_file *f = &c->files[c->n_files];
    memset(f, 0, sizeof *f);
    f->path = strdup(path);
    f->name = strdup(name);
    c->n_files++;
    if (!f->path || !f->name) return lm_fail(err, "out of memory");
    f->stream = !st || stat_is_stream(st);
    if (st) f->id = id_of(st);
    c->streamed |= f->stream;
    return 0;
}

static int note_skipped(lm_corpus *c, const char *path, const char *why, lm_err *err) {
    struct lm_corpus_skip *grown = realloc(c->skipped, ((size_t)c->n_skipped + 1) * sizeof *grown);
    if (!grown) return lm_fail(err, "out of memory");
    c->skipped = grown;
    grown[c->n_skipped].why = why;
    if (!(grown[c->n_skipped++].path = strdup(path))) return lm_fail(err, "out of memory");
    return 0;
}

static bool in_list(lm_file_id id, const lm_file_id *list, int n) {
    for (int i = 0; i < n; i++)
        if (lm_file_id_eq(id, list[i])) return true;
    return false;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

typedef struct {
    const lm_file_id *skip;
    int n_skip;
    lm_file_id above[MAX_DEPTH + 1]; /* the directories being walked, to catch link loops */
    int depth;
} walk;

/* Adds the regular files under dir (skipping hidden names), sorted by name
 * at each level so a job always sees the same order. */
static int add_dir(lm_corpus *c, const char *dir, const char *rel, walk *w, lm_err *err) {
    if (w->depth >= MAX_DEPTH) return lm_fail(err, "%s: directories nest too deeply", dir);
    DIR *d = opendir(dir);
    if (!d) return lm_fail(err, "%s: cannot open directory: %s", dir, strerror(errno));
    char **names = NULL;
    int n = 0, rc = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char **grown = realloc(names, ((size_t)n + 1) * sizeof *names);
        if (!grown || !(grown[n] = strdup(e->d_name))) { names = grown ? grown : names; rc = lm_fail(err, "out of memory"); break; }
        names = grown;
        n++;
    }
    closedir(d);
    if (rc == 0) qsort(names, (size_t)n, sizeof *names, by_name);
    for (int i = 0; i < n && rc == 0; i++) {
        char path[4096], name[4096];
        struct stat st;
        if (snprintf(path, sizeof path, "%s/%s", dir, names[i]) >= (int)sizeof path ||
            snprintf(name, sizeof name, "%s%s%s", rel, rel[0] ? "/" : "", names[i]) >= (int)sizeof name) {
            rc = lm_fail(err, "%s/%s: path too long", dir, names[i]);
        } else if (stat(path, &st) != 0) {
            /* a link to nothing holds no lyrics: passed over, not fatal */
            if (errno == ENOENT || errno == ELOOP) rc = note_skipped(c, path, errno == ELOOP ? "symbolic link loop, skipped" : "dangling symbolic link, skipped", err);
            else rc = lm_fail(err, "%s: %s", path, strerror(errno));
        } else if (in_list(id_of(&st), w->skip, w->n_skip)) {
            continue; /* the job's own output, journal or lock */
        } else if (S_ISDIR(st.st_mode)) {
            if (in_list(id_of(&st), w->above, w->depth + 1)) { rc = note_skipped(c, path, "directory link loop, skipped", err); continue; }
            w->above[++w->depth] = id_of(&st);
            rc = add_dir(c, path, name, w, err);
            w->depth--;
        } else if (S_ISREG(st.st_mode)) {
            rc = add_file(c, path, name, &st, err);
        } else {
            rc = note_skipped(c, path, "not a regular file, skipped", err);
        }
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

int lm_corpus_open(lm_corpus *c, const char *const *paths, int n_paths, const lm_engine_config *cfg, const lm_file_id *skip, int n_skip,
                   lm_err *err) {
    memset(c, 0, sizeof *c);
    c->fd = -1;
    c->format = cfg->input_format;
    c->line_cap = LM_CORPUS_LINE_CAP;
    strcpy(c->id_field, cfg->id_field);
    strcpy(c->text_field, cfg->text_field);
    bool stdin_used = false;
    for (int i = 0; i < n_paths || (i == 0 && n_paths == 0); i++) {
        const char *p = n_paths ? paths[i] : "-";
        struct stat st;
        if (!strcmp(p, "-")) {
            if (stdin_used) { lm_fail(err, "standard input (-) is named twice"); goto fail; }
            stdin_used = true;
            if (add_file(c, "-", "stdin", NULL, err) != 0) goto fail;
            continue;
        }
        if (stat(p, &st) != 0) {
            struct stat lst;
            if (lstat(p, &lst) == 0 && S_ISLNK(lst.st_mode)) lm_fail(err, "%s: symbolic link to nothing (%s)", p, strerror(errno));
            else lm_fail(err, "%s: cannot open: %s", p, strerror(errno));
            goto fail;
        }
        if (in_list(id_of(&st), skip, n_skip)) {
            lm_fail(err, "%s is both an input and this job's output, report, journal or lock; refusing to overwrite it", p);
            goto fail;
        }
        if (S_ISDIR(st.st_mode)) {
            walk w = {.skip = skip, .n_skip = n_skip};
            w.above[0] = id_of(&st);
            if (add_dir(c, p, "", &w, err) != 0) goto fail;
        } else {
            const char *base = strrchr(p, '/');
            if (add_file(c, p, base ? base + 1 : p, &st, err) != 0) goto fail;
        }
    }
    if (c->n_files == 0) { lm_fail(err, "%s: no input files found", paths[0]); goto fail; }
    return 0;
fail:
    lm_corpus_close(c);
    return -1;
}

void lm_corpus_close(lm_corpus *c) {
    if (c->fd >= 0 && c->files && strcmp(c->files[c->cur].path, "-")) close(c->fd); /* a zeroed corpus has fd 0 and no files */
    for (int i = 0; i < c->n_files; i++) { free(c->files[i].path); free(c->files[i].name); }
    free(c->files);
    for (int i = 0; i < c->n_skipped; i++) free(c->skipped[i].path);
    free(c->skipped);
    free(c->rbuf);
    free(c->line.data);
    memset(c, 0, sizeof *c);
    c->fd = -1;
}

/* ---- scanning ---- */

/* Opens without blocking: a path that turned into a FIFO must not hang us. */
static int open_input(const lm_corpus_file *f, struct stat *st, lm_err *err) {
    int fd = open(f->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return lm_fail(err, "%s: cannot open: %s", f->path, strerror(errno));
    if (fstat(fd, st) != 0) { close(fd); return lm_fail(err, "%s: %s", f->path, strerror(errno)); }
    return fd;
}

int lm_corpus_scan(lm_corpus *c, lm_err *err) {
    char *buf = lm_malloc(READ_CHUNK, err);
    if (!buf) return -1;
    int rc = 0;
    for (int i = 0; i < c->n_files && rc == 0; i++) {
        lm_corpus_file *f = &c->files[i];
        if (f->stream) continue;
        struct stat st;
        int fd = open_input(f, &st, err);
        if (fd < 0) { rc = -1; break; }
        if (!S_ISREG(st.st_mode) || !lm_file_id_eq(id_of(&st), f->id)) {
            close(fd);
            rc = lm_fail(err, "%s: was replaced while the job started", f->path);
            break;
        }
        uint64_t h = LM_HASH_INIT, size = 0;
        long lines = 0;
        char last = '\n';
        ssize_t got;
        while ((got = read(fd, buf, READ_CHUNK)) != 0) {
            if (c->cancel && *c->cancel) { rc = lm_fail(err, "%s: stopped while scanning", f->path); break; }
            if (got < 0) {
                if (errno == EINTR) continue;
                rc = lm_fail(err, "%s: read error: %s", f->path, strerror(errno));
                break;
            }
            h = lm_hash64(buf, (size_t)got, h);
            for (char *p = buf; (p = memchr(p, '\n', (size_t)got - (size_t)(p - buf))); p++) lines++;
            size += (uint64_t)got;
            last = buf[got - 1];
        }
        if (rc == 0 && (fstat(fd, &st) != 0 || (uint64_t)st.st_size != size))
            rc = lm_fail(err, "%s: changed while it was being read", f->path);
        close(fd);
        f->size = size;
        f->mtime_ns = mtime_ns(&st);
        f->lines = lines + (last != '\n'); /* a last line without its newline */
        f->hash = h;
    }
    free(buf);
    return rc;
}

long lm_corpus_total(const lm_corpus *c) {
    if (c->streamed) return -1;
    long n = 0;
    for (int i = 0; i < c->n_files; i++) n += c->files[i].lines;
    return n;
}

const char *lm_corpus_file_label(const lm_corpus *c, int file) {
    return strcmp(c->files[file].path, "-") ? c->files[file].path : "<stdin>";
}

/* ---- UTF-8 ---- */

int lm_utf8_count_bad(const char *s, size_t len) {
    int bad = 0;
    for (size_t i = 0, n; i < len; i += n)
        if (!s[i] || !(n = lm_utf8_seq_len(s, len, i))) { bad++; n = 1; }
    return bad;
}

int lm_utf8_repair(char **s, size_t *len) {
    int bad = lm_utf8_count_bad(*s, *len);
    if (bad == 0) return 0;
    char *out = malloc(*len + 2 * (size_t)bad + 1), *o = out;
    if (!out) return -1;
    for (size_t i = 0, n; i < *len; i += n) {
        if ((*s)[i] && (n = lm_utf8_seq_len(*s, *len, i))) {
            memcpy(o, *s + i, n);
            o += n;
        } else {
            memcpy(o, "\xef\xbf\xbd", 3);
            o += 3;
            n = 1;
        }
    }
    *o = '\0';
    free(*s);
    *s = out;
    *len = (size_t)(o - out);
    return bad;
}

/* ---- reading ---- */

static int open_current(lm_corpus *c, lm_err *err) {
    lm_corpus_file *f = &c->files[c->cur];
    c->line_no = 0;
    c->got_bytes = 0;
    c->got_hash = LM_HASH_INIT;
    c->rpos = c->rlen = 0;
    c->eof = false;
    if (!strcmp(f->path, "-")) { c->fd = 0; return 0; }
    struct stat st;
    if ((c->fd = open_input(f, &st, err)) < 0) return -1;
    if (!f->stream && (!S_ISREG(st.st_mode) || !lm_file_id_eq(id_of(&st), f->id) || (uint64_t)st.st_size != f->size ||
                       mtime_ns(&st) != f->mtime_ns))
        return lm_fail(err, "%s: changed since the job started; its output would not match it", f->path);
    return 0;
}

static void close_current(lm_corpus *c) {
    if (c->fd >= 0 && strcmp(c->files[c->cur].path, "-")) close(c->fd); /* standard input is not ours to close */
    c->fd = -1;
}

/* Reads more bytes into rbuf. 1: some; 0: end of file; -1: error; 2: stop requested. */
static int read_more(lm_corpus *c, lm_err *err) {
    const lm_corpus_file *f = &c->files[c->cur];
    for (;;) {
        if (f->stream) {
            if (c->cancel && *c->cancel) return 2;
            struct pollfd p = {.fd = c->fd, .events = POLLIN};
            int ready = poll(&p, 1, POLL_MS);
            if (ready < 0 && errno != EINTR) return lm_fail(err, "%s: %s", lm_corpus_file_label(c, c->cur), strerror(errno));
            if (ready <= 0) continue;
        }
        ssize_t got = read(c->fd, c->rbuf, READ_CHUNK);
        if (got < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            return lm_fail(err, "%s: read error: %s", lm_corpus_file_label(c, c->cur), strerror(errno));
        }
        c->rpos = 0;
        c->rlen = (size_t)got;
        c->got_hash = lm_hash64(c->rbuf, c->rlen, c->got_hash);
        c->got_bytes += c->rlen;
        return got > 0;
    }
}

/* Keeps up to `keep` bytes of the side of the line being read. */
static int side_add(lm_corpus *c, const char *p, size_t n, size_t keep, bool *over) {
    size_t have = c->line.len - c->side_at;
    if (have + n > keep) {
        *over = true;
        n = keep > have ? keep - have : 0;
    }
    return lm_strbuf_add(&c->line, p, n);
}

/* Keeps up to `keep` bytes of the line being assembled; a TSV pair, up to
 * `keep` bytes on each side of its first tab, so that a long source cannot
 * push the tab out of what is kept (the source's overflow shows in its
 * length; *over then speaks for the target, the line's end). */
static int line_add(lm_corpus *c, const char *p, size_t n, size_t keep, bool *over) {
    bool sides = c->pairs && c->format != LM_FORMAT_JSONL;
    if (sides && c->tab_seen) {
        c->extra_tab |= memchr(p, '\t', n) != NULL;
    } else if (sides) {
        const char *tab = memchr(p, '\t', n);
        if (tab) {
            size_t before = (size_t)(tab - p);
            if (side_add(c, p, before, keep, over) != 0 || lm_strbuf_add(&c->line, "\t", 1) != 0) return -1;
            c->tab_seen = true;
            c->side_at = c->line.len;
            *over = false;
            return line_add(c, tab + 1, n - before - 1, keep, over);
        }
    }
    return side_add(c, p, n, keep, over);
}

/* The next raw line of the open file into c->line. 1: a line; 0: end of
 * file (checked against the scan); -1: error; 2: stop requested. */
static int next_line(lm_corpus *c, size_t keep, bool *over, lm_err *err) {
    c->line.len = 0;
    c->side_at = 0;
    c->tab_seen = c->extra_tab = false;
    *over = false;
    bool any = false;
    for (;;) {
        if (c->rpos == c->rlen) {
            int got = c->eof ? 0 : read_more(c, err);
            if (got != 1 && got != 0) return got;
            if (got == 0) {
                c->eof = true;
                if (any) break; /* a last line without its newline */
                const lm_corpus_file *f = &c->files[c->cur];
                if (!f->stream && (c->got_bytes != f->size || c->got_hash != f->hash))
                    return lm_fail(err, "%s: changed while the job was reading it (%llu bytes when the job started, %llu read)",
                                   f->path, (unsigned long long)f->size, (unsigned long long)c->got_bytes);
                return 0;
            }
        }
        any = true;
        const char *start = c->rbuf + c->rpos, *nl = memchr(start, '\n', c->rlen - c->rpos);
        size_t n = nl ? (size_t)(nl - start) : c->rlen - c->rpos;
        if (line_add(c, start, n, keep, over) != 0) return lm_fail(err, "out of memory");
        c->rpos += n + (nl != NULL);
        if (nl) break;
    }
    return lm_strbuf_add(&c->line, "", 0) == 0 ? 1 : lm_fail(err, "out of memory"); /* terminated even when empty */
}

/* Where to cut an over-long line kept to `len` bytes: at the last space in
 * its final stretch (so the words kept tokenise as in the whole line), else
 * before a character that was split. */
static size_t cut_point(const char *s, size_t len) {
    for (size_t i = len; i > 0 && len - i < 256; i--)
        if (s[i - 1] == ' ') return i - 1;
    size_t lead = len;
    while (lead > 0 && len - lead < 4 && ((unsigned char)s[lead - 1] & 0xc0) == 0x80) lead--;
    if (lead == 0 || (unsigned char)s[lead - 1] < 0xc0) return len;
    lead--; /* s[lead] starts the last character: keep it only if it is whole */
    unsigned char c = (unsigned char)s[lead];
    size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
    return len - lead >= need ? len : lead;
}

static int set_text(lm_record *r, const char *text, size_t len) {
    char *copy = malloc(len + 1);
    if (!copy) return -1;
    memcpy(copy, text, len);
    copy[len] = '\0';
    free(r->text);
    r->text = copy;
    r->len = len;
    return 0;
}

/* Repairs r->text's bad bytes in one pass, adding to the record's count.
 * Every policy gets repaired text: a skipped line's source still goes into
 * TSV and JSONL output, which must be valid UTF-8. */
static int check_utf8(lm_record *r) {
    int bad = lm_utf8_repair(&r->text, &r->len);
    if (bad < 0) return -1;
    r->bad_bytes += bad;
    return 0;
}

static void cap_text(const lm_corpus *c, lm_record *r) {
    if (r->len <= c->line_cap) return;
    r->len = cut_point(r->text, c->line_cap);
    r->text[r->len] = '\0';
    r->overlong = true;
}

/* The id of a line that gives none of its own: its line number, with the
 * file's name when the job reads several files (as text input's ids), so
 * that an output record always says which line it came from. */
static int set_line_id(const lm_corpus *c, lm_record *r) {
    char id[4200];
    if (c->n_files > 1) snprintf(id, sizeof id, "%s:%ld", c->files[c->cur].name, r->line);
    else snprintf(id, sizeof id, "%ld", r->line);
    free(r->id);
    free(r->id_json);
    r->id_json = NULL;
    if (!(r->id = strdup(id))) return -1;
    return c->n_files == 1 && !(r->id_json = strdup(id)) ? -1 : 0; /* a JSON number when it is one */
}

/* A line with no usable text and no id that can be trusted. */
static int bad_record(const lm_corpus *c, lm_record *r, const char *why) {
    r->malformed = why;
    return set_line_id(c, r) == 0 ? set_text(r, "", 0) : -1;
}

static int parse_jsonl(lm_corpus *c, lm_record *r, bool over) {
    if (over) return bad_record(c, r, "longer than the JSONL line limit");
    if (check_utf8(r) != 0) return -1;
    if (lm_is_blank(r->text, r->len)) { /* a blank line is an empty record, as in text and TSV */
        r->id = strdup("");
        return r->id ? set_text(r, "", 0) : -1;
    }
    const char *keys[3] = {c->id_field, c->text_field, c->source_field}, *dup;
    lm_json_value v[3];
    const char *why = lm_json_line_fields(r->text, r->len, c->pairs ? 3 : 2, keys, v, &dup);
    if (why) return bad_record(c, r, why);
    lm_json_value id = v[0], text = v[1], src = v[2];
    if (dup) {
        char note[160];
        snprintf(note, sizeof note, "key '%.60s' appears more than once; its last value is used, as Python's json takes it", dup);
        if (!(r->note = strdup(note))) return -1;
    }
    if (text.kind != LM_JSON_STRING) r->malformed = c->pairs ? "no string target field" : "no string text field";
    else if (c->pairs && src.kind != LM_JSON_STRING) r->malformed = "no string source field";
    size_t n;
    if (!id.kind) {
        if (set_line_id(c, r) != 0) return -1;
    } else if (id.kind == LM_JSON_STRING) {
        if (!(r->id = lm_json_string_decode(id.raw, id.raw_len, &n)) || lm_utf8_repair(&r->id, &n) < 0) return -1;
    } else if (!(r->id = strndup(id.raw, id.raw_len))) {
        return -1;
    }
    /* written back exactly as the input spelled it */
    if (id.kind && !(r->id_json = strndup(id.raw, id.raw_len))) return -1;
    if (r->malformed) return set_text(r, "", 0);
    if (c->pairs) {
        if (!(r->src = lm_json_string_decode(src.raw, src.raw_len, &r->src_len))) return -1;
        int bad = lm_utf8_repair(&r->src, &r->src_len);
        if (bad < 0) return -1;
        r->bad_bytes += bad;
        if (r->src_len > c->line_cap) {
            r->src_len = cut_point(r->src, c->line_cap);
            r->src[r->src_len] = '\0';
            r->overlong = true;
        }
    }
    char *decoded = lm_json_string_decode(text.raw, text.raw_len, &n);
    if (!decoded) return -1;
    free(r->text);
    r->text = decoded;
    r->len = n;
    /* escapes can decode to NUL or a lone surrogate: the same policy applies */
    if (check_utf8(r) != 0) return -1;
    cap_text(c, r);
    return 0;
}

/* One side of a TSV pair, cut to line_cap bytes as an over-long line is
 * (before repair: a character split by the cut is not a bad byte), then
 * repaired. */
static int take_side(const lm_corpus *c, lm_record *r, const char *p, size_t n, char **out, size_t *len) {
    if (n > c->line_cap) {
        n = cut_point(p, c->line_cap);
        r->overlong = true;
    }
    if (!(*out = malloc(n + 1))) return -1;
    memcpy(*out, p, n);
    (*out)[n] = '\0';
    *len = n;
    int bad = lm_utf8_repair(out, len);
    if (bad < 0) return -1;
    r->bad_bytes += bad;
    return 0;
}

/* source<TAB>target, numbered as text lines are. Each side was kept to
 * line_cap + 1 bytes (line_add), so a long side goes to --too-long like a
 * long line. A line with a tab is a pair even when a side or both are empty
 * (transformers scores ("", "") as it scores any pair); a line without one
 * is blank or a bad record, and so is a line with two: which tab splits the
 * pair would be a guess. */
static int parse_pair(lm_corpus *c, lm_record *r) {
    if (set_line_id(c, r) != 0) return -1;
    char *tab = memchr(r->text, '\t', r->len);
    if (!tab && lm_is_blank(r->text, r->len)) return set_text(r, "", 0);
    if (!tab) return bad_record(c, r, "no tab between source and target");
    if (c->extra_tab) return bad_record(c, r, "more than one tab; a pair is source<TAB>target");
    size_t src_n = (size_t)(tab - r->text), tgt_n;
    char *tgt = NULL;
    if (take_side(c, r, r->text, src_n, &r->src, &r->src_len) != 0 || take_side(c, r, tab + 1, r->len - src_n - 1, &tgt, &tgt_n) != 0) {
        free(tgt);
        return -1;
    }
    free(r->text);
    r->text = tgt;
    r->len = tgt_n;
    return 0;
}

static int parse_line(lm_corpus *c, lm_record *r, bool over) {
    if (c->format == LM_FORMAT_JSONL) return parse_jsonl(c, r, over);
    if (c->pairs) return parse_pair(c, r);
    if (over) { /* cut first: a character split by the cap is not a bad byte */
        r->len = cut_point(r->text, r->len);
        r->text[r->len] = '\0';
        r->overlong = true;
    }
    if (check_utf8(r) != 0) return -1;
    if (c->format == LM_FORMAT_TEXT) return set_line_id(c, r);
    if (lm_is_blank(r->text, r->len)) {
        r->id = strdup("");
        return r->id ? set_text(r, "", 0) : -1;
    }
    char *tab = memchr(r->text, '\t', r->len);
    if (!tab) return bad_record(c, r, "no tab between id and text");
    if (!(r->id = strndup(r->text, (size_t)(tab - r->text)))) return -1;
    char *rest = tab + 1;
    return set_text(r, rest, r->len - (size_t)(rest - r->text));
}

int lm_corpus_next(lm_corpus *c, lm_record *r, lm_err *err) {
    memset(r, 0, sizeof *r);
    if (!c->rbuf && !(c->rbuf = lm_malloc(READ_CHUNK, err))) return -1;
    /* JSON escapes take room: a JSONL line may be a few times the text it holds;
     * one more byte leaves room for a CRLF line's \r */
    size_t keep = c->format == LM_FORMAT_JSONL ? 4 * c->line_cap + 4096 : c->line_cap + 1;
    bool over;
    for (;;) {
        if (c->cur >= c->n_files) return 0;
        if (c->fd < 0 && open_current(c, err) != 0) { close_current(c); return -1; }
        int got = next_line(c, keep, &over, err);
        if (got == 1) break;
        if (got == 2) return 0; /* stop requested while waiting */
        close_current(c);
        if (got < 0) return -1;
        c->cur++;
    }
    size_t len = c->line.len;
    c->line_no++;
    if (!over && len && c->line.data[len - 1] == '\r') len--;
    if (c->format != LM_FORMAT_JSONL && !c->pairs && len > c->line_cap) { over = true; len = c->line_cap; } /* a pair's sides: parse_pair */
    r->file = c->cur;
    r->line = c->line_no;
    if (set_text(r, c->line.data, len) != 0 || parse_line(c, r, over) != 0) {
        lm_record_free(r);
        return lm_fail(err, "out of memory");
    }
    return 1;
}

int lm_corpus_check(const lm_corpus *c, lm_err *err) {
    if (c->fd < 0 || c->cur >= c->n_files || c->files[c->cur].stream) return 0;
    const lm_corpus_file *f = &c->files[c->cur];
    struct stat st;
    if (fstat(c->fd, &st) != 0 || (uint64_t)st.st_size != f->size || mtime_ns(&st) != f->mtime_ns)
        return lm_fail(err, "%s: changed while the job was reading it; its output would not match it", f->path);
    return 0;
}

void lm_record_free(lm_record *r) {
    free(r->src);
    free(r->note);
    free(r->id);
    free(r->id_json);
    free(r->text);
    memset(r, 0, sizeof *r);
}
