/* sink: see sink.h. */
#include "job/sink.h"

#include "base/outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int lm_sink_init(lm_sink *s, const char *out, bool per_file, const lm_corpus *c, lm_err *err) {
    memset(s, 0, sizeof *s);
    s->cur = -1;
    s->n_outputs = per_file ? c->n_files : 1;
    s->paths = lm_calloc((size_t)s->n_outputs, sizeof *s->paths, err);
    if (!s->paths) return -1;
    for (int i = 0; i < s->n_outputs && out; i++) {
        char path[8192];
        bool direct;
        if (per_file) snprintf(path, sizeof path, "%s/%s", out, c->files[i].name);
        else snprintf(path, sizeof path, "%s", out);
        if (lm_outfile_resolve(path, &s->paths[i], &direct, err) != 0) { lm_sink_free(s); return -1; }
        if (direct && per_file) {
            lm_fail(err, "%s: is a device or FIFO; one output per input file must be regular files", path);
            lm_sink_free(s);
            return -1;
        }
        s->direct = direct;
        for (int j = 0; j < i; j++)
            if (!strcmp(s->paths[j], s->paths[i])) {
                lm_fail(err, "inputs %s and %s would both be written to %s; give them different names", c->files[j].path,
                        c->files[i].path, s->paths[i]);
                lm_sink_free(s);
                return -1;
            }
    }
    return 0;
}

void lm_sink_free(lm_sink *s) {
    if (s->f && s->f != stdout) fclose(s->f);
    for (int i = 0; i < s->n_outputs && s->paths; i++) free(s->paths[i]);
    free(s->paths);
    memset(s, 0, sizeof *s);
}

void lm_sink_partial_path(const lm_sink *s, int index, char *buf, size_t cap) {
    snprintf(buf, cap, "%s%s", s->paths[index] ? s->paths[index] : "<stdout>", s->direct ? "" : ".partial");
}

/* Creates the directories above path, as mkdir -p would. */
static int make_parents(const char *path, lm_err *err) {
    char dir[8400];
    if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir) return lm_fail(err, "%s: path too long", path);
    for (char *p = dir + 1; (p = strchr(p, '/')); p++) {
        *p = '\0';
        if (mkdir(dir, 0777) != 0 && errno != EEXIST) return lm_fail(err, "%s: cannot create directory: %s", dir, strerror(errno));
        *p = '/';
    }
    return 0;
}

/* The .partial is the job's own scratch name, written only under the
 * output's lock: a stale one (from a run that could not be resumed) is
 * removed, never followed if it is a link, and the new one is created
 * exclusively, so nothing but this job's file is ever written there. */
static int open_partial(lm_sink *s, const char *partial, uint64_t keep_bytes, lm_err *err) {
    int fd;
    if (keep_bytes == 0) {
        struct stat st;
        if (lstat(partial, &st) == 0 && (S_ISREG(st.st_mode) || S_ISLNK(st.st_mode)) && unlink(partial) != 0)
            return lm_fail(err, "%s: cannot remove the stale partial output: %s", partial, strerror(errno));
        fd = open(partial, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
        if (fd < 0) return lm_fail(err, "%s: cannot create: %s", partial, strerror(errno));
    } else {
        fd = open(partial, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) return lm_fail(err, "%s: cannot be followed from the journal: %s", partial, strerror(errno));
        struct stat st;
        if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size < keep_bytes) {
            close(fd);
            return lm_fail(err, "%s: holds %lld bytes but the journal vouches for %llu", partial, (long long)st.st_size,
                           (unsigned long long)keep_bytes);
        }
        /* bytes past the journal's mark belong to records that will be redone */
        if (ftruncate(fd, (off_t)keep_bytes) != 0) {
            close(fd);
            return lm_fail(err, "%s: cannot truncate: %s", partial, strerror(errno));
        }
    }
    if (!(s->f = fdopen(fd, keep_bytes ? "ab" : "wb"))) { close(fd); return lm_fail(err, "%s: cannot open: %s", partial, strerror(errno)); }
    s->made_partial = true;
    return 0;
}

int lm_sink_open(lm_sink *s, int index, uint64_t keep_bytes, lm_err *err) {
    s->cur = index;
    s->bytes = keep_bytes;
    s->made_partial = false;
    if (!s->paths[index]) {
        s->f = stdout;
        return 0;
    }
    if (s->direct) return (s->f = lm_open_for_writing(s->paths[index], 0, s->cancel, err)) ? 0 : -1;
    char partial[8300];
    lm_sink_partial_path(s, index, partial, sizeof partial);
    if (make_parents(partial, err) != 0) return -1;
    return open_partial(s, partial, keep_bytes, err);
}

static const char *open_name(const lm_sink *s, char *buf, size_t cap) {
    if (s->f == stdout) return "<stdout>";
    lm_sink_partial_path(s, s->cur, buf, cap);
    return buf;
}

int lm_sink_write(lm_sink *s, const char *data, size_t len, lm_err *err) {
    if (len == 0) return 0; /* an empty buffer's data may be NULL, which fwrite must not be given */
    if (fwrite(data, 1, len, s->f) != len) {
        char name[8300];
        return lm_fail(err, "%s: write error: %s", open_name(s, name, sizeof name), strerror(errno));
    }
    s->bytes += len;
    return 0;
}

int lm_sink_sync(lm_sink *s, lm_err *err) {
    if (!s->f) return 0;
    bool ok = fflush(s->f) == 0 && !ferror(s->f);
    /* devices and pipes have nothing to sync (fsync says EINVAL) */
    if (ok && s->f != stdout && !s->direct) ok = fsync(fileno(s->f)) == 0;
    if (!ok) {
        char name[8300];
        return lm_fail(err, "%s: write error: %s", open_name(s, name, sizeof name), strerror(errno));
    }
    return 0;
}

/* resuming: a missing .partial whose final name exists was renamed before the stop */
static int put_in_place(lm_sink *s, int index, bool resuming, lm_err *err) {
    if (!s->paths[index] || s->direct) return 0;
    char partial[8300];
    lm_sink_partial_path(s, index, partial, sizeof partial);
    if (rename(partial, s->paths[index]) == 0) return 0;
    if (resuming && errno == ENOENT && access(s->paths[index], F_OK) == 0) return 0;
    return lm_fail(err, "cannot rename %s to %s: %s", partial, s->paths[index], strerror(errno));
}

int lm_sink_publish(lm_sink *s, lm_err *err) {
    if (lm_sink_sync(s, err) != 0) return -1;
    if (s->f == stdout) { s->f = NULL; return 0; }
    int closed = fclose(s->f);
    s->f = NULL;
    s->made_partial = false;
    if (closed != 0) return lm_fail(err, "%s: write error: %s", s->paths[s->cur], strerror(errno));
    return put_in_place(s, s->cur, false, err);
}

int lm_sink_republish(lm_sink *s, int index, lm_err *err) { return put_in_place(s, index, true, err); }

void lm_sink_abandon(lm_sink *s) {
    if (s->f && s->f != stdout) fclose(s->f);
    s->f = NULL;
    if (s->made_partial) {
        char partial[8300];
        lm_sink_partial_path(s, s->cur, partial, sizeof partial);
        unlink(partial);
    }
    s->made_partial = false;
}
