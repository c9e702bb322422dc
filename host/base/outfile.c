/* outfile: see outfile.h. */
#include "base/outfile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- what may not be written ---- */

void lm_protect_free(lm_protect *p) {
    for (int i = 0; i < p->n; i++) { free(p->items[i].name); free(p->items[i].label); }
    free(p->items);
    memset(p, 0, sizeof *p);
}

static int add(lm_protect *p, lm_file_id id, const char *name, const char *label, lm_err *err) {
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 16;
        struct lm_protected *grown = realloc(p->items, (size_t)cap * sizeof *grown);
        if (!grown) return lm_fail(err, "out of memory");
        p->items = grown;
        p->cap = cap;
    }
    struct lm_protected *it = &p->items[p->n];
    it->id = id;
    it->name = name ? strdup(name) : NULL;
    it->label = strdup(label);
    if ((name && !it->name) || !it->label) { free(it->name); free(it->label); return lm_fail(err, "out of memory"); }
    p->n++;
    return 0;
}

int lm_protect_id(lm_protect *p, lm_file_id id, const char *label, lm_err *err) { return add(p, id, NULL, label, err); }

int lm_protect_path(lm_protect *p, const char *path, const char *label, lm_err *err) {
    lm_file_id id;
    return lm_file_id_get(path, &id) ? add(p, id, NULL, label, err) : 0;
}

int lm_protect_dir(lm_protect *p, const char *dir, const char *const *names, const char *label, lm_err *err) {
    char path[PATH_MAX + 256], what[PATH_MAX + 512];
    lm_file_id dir_id;
    if (!lm_file_id_get(dir, &dir_id)) return 0;
    for (int i = 0; names && names[i]; i++) {
        snprintf(what, sizeof what, "%s %s/%s", label, dir, names[i]);
        if (add(p, dir_id, names[i], what, err) != 0) return -1;
    }
    DIR *d = opendir(dir);
    if (!d) return 0; /* unreadable: its files cannot be written either */
    int rc = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(d));) {
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        snprintf(what, sizeof what, "%s %s", label, path);
        rc = add(p, (lm_file_id){(uint64_t)st.st_dev, (uint64_t)st.st_ino}, NULL, what, err);
    }
    closedir(d);
    return rc;
}

/* The directory a path's last component lives in (after links) and that
 * component, for a file that may not exist yet. */
static bool final_place(const char *path, lm_file_id *dir_id, char *base, size_t cap) {
    char *real = realpath(path, NULL), dir[PATH_MAX + 1];
    const char *p = real ? real : path;
    const char *slash = strrchr(p, '/');
    snprintf(base, cap, "%s", slash ? slash + 1 : p);
    if (slash) snprintf(dir, sizeof dir, "%.*s", slash == p ? 1 : (int)(slash - p), p);
    else snprintf(dir, sizeof dir, ".");
    free(real);
    return lm_file_id_get(dir, dir_id);
}

int lm_protect_check(const lm_protect *p, const char *path, lm_err *err) {
    if (!p || !path) return 0;
    lm_file_id id, dir_id;
    char base[NAME_MAX + 1];
    bool exists = lm_file_id_get(path, &id), placed = final_place(path, &dir_id, base, sizeof base);
    for (int i = 0; i < p->n; i++) {
        const struct lm_protected *it = &p->items[i];
        bool hit = it->name ? placed && lm_file_id_eq(it->id, dir_id) && !strcmp(it->name, base) : exists && lm_file_id_eq(it->id, id);
        if (hit)
            return lm_fail(err, "refusing to write %s: it is %s (outputs never replace an input or the model's files)", path, it->label);
    }
    return 0;
}

/* ---- where an output goes ---- */

int lm_outfile_resolve(const char *path, char **final, bool *direct, lm_err *err) {
    struct stat st;
    *final = NULL;
    *direct = false;
    if (!strcmp(path, "-")) return 0;
    if (lstat(path, &st) != 0) {
        if (errno != ENOENT) return lm_fail(err, "%s: %s", path, strerror(errno));
        return (*final = strdup(path)) ? 0 : lm_fail(err, "out of memory");
    }
    char *real = S_ISLNK(st.st_mode) ? realpath(path, NULL) : strdup(path);
    if (!real && stat(path, &st) == 0 && (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode))) {
        *direct = true; /* /dev/stdout onto a pipe: a link to "pipe:[...]", which has no path */
        return (*final = strdup(path)) ? 0 : lm_fail(err, "out of memory");
    }
    if (!real) return lm_fail(err, "%s: is a symbolic link to a missing file (%s); give the target path", path, strerror(errno));
    if (stat(real, &st) != 0) {
        lm_fail(err, "%s: %s", real, strerror(errno));
    } else if (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode)) {
        *direct = true;
        *final = real;
        return 0;
    } else if (S_ISREG(st.st_mode)) {
        *final = real;
        return 0;
    } else {
        lm_fail(err, "%s: exists and is not a regular file, device or FIFO; refusing to write it", path);
    }
    free(real);
    return -1;
}

/* ---- partials the signal handler removes ---- */

#define MAX_SLOTS 8
static char slot_path[MAX_SLOTS][PATH_MAX + 16];
static volatile sig_atomic_t slot_used[MAX_SLOTS];

static int take_slot(const char *partial) {
    for (int i = 0; i < MAX_SLOTS; i++)
        if (!slot_used[i] && strlen(partial) < sizeof slot_path[i]) {
            strcpy(slot_path[i], partial);
            slot_used[i] = 1;
            return i;
        }
    return -1;
}

static void drop_slot(int i) {
    if (i >= 0) slot_used[i] = 0;
}

static void on_signal(int sig) {
    for (int i = 0; i < MAX_SLOTS; i++)
        if (slot_used[i]) unlink(slot_path[i]); /* async-signal-safe */
    signal(sig, SIG_DFL);
    raise(sig);
}

void lm_outfile_on_signals(void) {
    struct sigaction act;
    memset(&act, 0, sizeof act);
    act.sa_handler = on_signal;
    sigemptyset(&act.sa_mask);
    sigaction(SIGINT, &act, NULL);
    sigaction(SIGTERM, &act, NULL);
}

/* ---- one output ---- */

/* The partial is this command's own scratch name: a stale one (from a run
 * that was killed) is removed, never followed if it is a link; one that
 * another lyricmt holds locked is left alone and refused; the new one is
 * created exclusively and locked, so nothing but this command's file is ever
 * written there. */
static int open_partial(lm_outfile *o, lm_err *err) {
    struct stat st;
    int fd = open(o->partial, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC); /* a FIFO there must not block */
    if (fd >= 0) {
        bool busy = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && flock(fd, LOCK_EX | LOCK_NB) != 0;
        close(fd);
        if (busy) return lm_fail(err, "another lyricmt is writing %s (%s is locked)", o->path, o->partial);
    }
    if (lstat(o->partial, &st) == 0) {
        if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode))
            return lm_fail(err, "%s: exists and is not a file this program made; refusing to replace it", o->partial);
        if (unlink(o->partial) != 0) return lm_fail(err, "%s: cannot remove the stale partial output: %s", o->partial, strerror(errno));
    }
    fd = open(o->partial, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd < 0) return lm_fail(err, "%s: cannot create: %s", o->partial, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0 || !(o->f = fdopen(fd, "wb"))) {
        close(fd);
        unlink(o->partial);
        return lm_fail(err, "%s: cannot open: %s", o->partial, strerror(errno));
    }
    o->slot = take_slot(o->partial);
    return 0;
}

int lm_outfile_open(lm_outfile *o, const char *path, const lm_protect *p, lm_err *err) {
    memset(o, 0, sizeof *o);
    o->slot = -1;
    if (lm_outfile_resolve(path, &o->path, &o->direct, err) != 0) return -1;
    if (!o->path) {
        o->f = stdout;
        return 0;
    }
    if (lm_protect_check(p, o->path, err) != 0) goto fail;
    if (o->direct) {
        if (!(o->f = lm_open_for_writing(o->path, 0, NULL, err))) goto fail;
        return 0;
    }
    size_t n = strlen(o->path) + sizeof ".partial";
    if (!(o->partial = malloc(n))) { lm_fail(err, "out of memory"); goto fail; }
    snprintf(o->partial, n, "%s.partial", o->path);
    if (lm_protect_check(p, o->partial, err) != 0 || open_partial(o, err) != 0) goto fail;
    return 0;
fail:
    free(o->path);
    free(o->partial);
    memset(o, 0, sizeof *o);
    o->slot = -1;
    return -1;
}

static const char *name_of(const lm_outfile *o) { return o->partial ? o->partial : o->path ? o->path : "<stdout>"; }

/* Everything written reaches the file (or device): flushed, synced, closed. */
static int finish(lm_outfile *o, lm_err *err) {
    if (!o->f) return 0;
    bool ok = fflush(o->f) == 0 && !ferror(o->f);
    if (ok && o->partial) ok = fsync(fileno(o->f)) == 0; /* devices and pipes have nothing to sync */
    int e = errno;
    if (o->f == stdout) {
        o->f = NULL;
        return ok ? 0 : lm_fail(err, "<stdout>: write error: %s", strerror(e));
    }
    ok = fclose(o->f) == 0 && ok;
    if (!ok && !e) e = errno;
    o->f = NULL;
    return ok ? 0 : lm_fail(err, "%s: write error: %s", name_of(o), strerror(e));
}

/* Renames o's partial over its final name. An existing final file is kept
 * as a hard link beside it until every output of the command is in place,
 * so that a later failure can put it back. */
static int put_in_place(lm_outfile *o, char *backup, size_t cap, bool *backed_up, lm_err *err) {
    struct stat st;
    *backed_up = false;
    if (lstat(o->path, &st) == 0) {
        if (S_ISDIR(st.st_mode)) return lm_fail(err, "cannot rename %s to %s: it is a directory", o->partial, o->path);
        /* a name of this process's own; link() never replaces anything */
        snprintf(backup, cap, "%s.lyricmt-old-%ld", o->path, (long)getpid());
        *backed_up = link(o->path, backup) == 0;
    }
    if (rename(o->partial, o->path) != 0) {
        int e = errno;
        if (*backed_up) unlink(backup);
        *backed_up = false;
        return lm_fail(err, "cannot rename %s to %s: %s", o->partial, o->path, strerror(e));
    }
    return 0;
}

int lm_outfile_commit(lm_outfile *o, int n, lm_err *err) {
    enum { MOST = 8 };
    int rc = n > MOST ? lm_fail(err, "more than %d outputs at once", MOST) : 0;
    for (int i = 0; i < n && rc == 0; i++) rc = finish(&o[i], err);
    /* nothing takes its final name before every output is complete; a rename
     * that fails puts back what the earlier ones replaced */
    char backup[MOST][PATH_MAX + 48];
    bool backed[MOST] = {false}, placed[MOST] = {false};
    for (int i = 0; i < n && rc == 0; i++) {
        if (!o[i].partial) continue;
        rc = put_in_place(&o[i], backup[i], sizeof backup[i], &backed[i], err);
        placed[i] = rc == 0;
    }
    for (int i = 0; i < n; i++) {
        bool here = i < MOST && placed[i];
        if (rc != 0 && here) { /* put back what this command replaced, or remove what it made */
            if (backed[i]) rename(backup[i], o[i].path);
            else unlink(o[i].path);
        } else if (i < MOST && backed[i]) {
            unlink(backup[i]);
        }
        if (here) { free(o[i].partial); o[i].partial = NULL; }
        lm_outfile_abandon(&o[i]);
    }
    return rc;
}

void lm_outfile_abandon(lm_outfile *o) {
    if (o->f && o->f != stdout) fclose(o->f);
    if (o->partial) unlink(o->partial);
    drop_slot(o->slot);
    free(o->path);
    free(o->partial);
    memset(o, 0, sizeof *o);
    o->slot = -1;
}
