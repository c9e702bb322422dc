/*
 * pytorch_model.bin reader: a restricted unpickler over torch.save's zip.
 *
 * The pickle in <prefix>/data.pkl describes a dict of name -> tensor; tensor
 * bytes live in <prefix>/data/<key>. A real unpickler would import and call
 * whatever the file names, which is how malicious checkpoints run code. This
 * one is a plain stack machine that knows the ~35 opcodes torch.save emits
 * and a six-entry allow-list of globals, and it never calls anything: the
 * allowed globals are recognised by name and their effect (build a dict,
 * describe a tensor) is done here in C. Anything else is refused by name.
 */
#include "model/tensor_file.h"
#include "model/model_files.h"
#include "model/torch_zip.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What unpickling may hold at once. torch.save writes about a dozen values
 * per tensor, so an M2M100 state dict (under 1,000 tensors; 43,000 with
 * the 1,024 + 1,024 layers config.json allows) needs a few MB. Without a
 * byte bound, a 4 MB pickle of one-byte TUPLE1 opcodes held 1 GB. */
#define PICKLE_MAX_VALUES 1000000
#define PICKLE_MAX_BYTES (64u << 20)
#define PICKLE_MAX_MEMO 1000000
#define PICKLE_MAX_STACK 100000

typedef enum { V_NONE, V_BOOL, V_INT, V_FLOAT, V_STR, V_TUPLE, V_LIST, V_DICT, V_GLOBAL, V_STORAGE, V_TENSOR, V_MARK } vkind;

typedef enum { G_ODICT, G_REBUILD_TENSOR, G_REBUILD_PARAM, G_STORAGE_F32, G_STORAGE_F16, G_STORAGE_BF16 } global_id;

static const struct {
    const char *module, *name;
    global_id id;
} allowed_globals[] = {
    {"collections", "OrderedDict", G_ODICT},
    {"torch._utils", "_rebuild_tensor_v2", G_REBUILD_TENSOR},
    {"torch._utils", "_rebuild_parameter", G_REBUILD_PARAM},
    {"torch", "FloatStorage", G_STORAGE_F32},
    {"torch", "HalfStorage", G_STORAGE_F16},
    {"torch", "BFloat16Storage", G_STORAGE_BF16},
};

typedef struct pv pv;
struct pv {
    vkind kind;
    int64_t i;                 /* V_INT, V_BOOL; V_GLOBAL: global_id */
    const char *s;             /* V_STR: points into the pickle, not NUL-terminated */
    uint32_t slen;
    pv **items;                /* V_TUPLE, V_LIST; V_DICT as key,value,key,value... */
    int n, cap;
    lm_dtype dtype;            /* V_STORAGE */
    char key[32];
    uint64_t numel;
    pv *storage;               /* V_TENSOR */
    int64_t offset;
    int ndim;
    int64_t shape[LM_MAX_DIMS], stride[LM_MAX_DIMS];
};

typedef struct {
    const uint8_t *start, *p, *end;
    pv **all;          /* every value, for freeing */
    int n_all, cap_all;
    pv **stack;
    int sp;
    pv **memo;
    int memo_cap;
    int memo_len; /* distinct entries set: MEMOIZE's implicit index */
    size_t bytes; /* held by values, their item arrays and the memo */
    lm_err *err;
} machine;

/* Counts n more bytes against PICKLE_MAX_BYTES before they are allocated. */
static int charge(machine *m, size_t n) {
    if (n > PICKLE_MAX_BYTES - m->bytes)
        return lm_fail(m->err, "pickle needs more than %u MiB to unpickle (%d values so far); a real checkpoint needs a few MB",
                       PICKLE_MAX_BYTES >> 20, m->n_all);
    m->bytes += n;
    return 0;
}

static pv *new_value(machine *m, vkind kind) {
    if (m->n_all >= PICKLE_MAX_VALUES) { lm_fail(m->err, "pickle has more than %d values; a real checkpoint has far fewer", PICKLE_MAX_VALUES); return NULL; }
    if (charge(m, sizeof(pv) + sizeof(pv *)) != 0) return NULL;
    if (m->n_all == m->cap_all) {
        int cap = m->cap_all ? m->cap_all * 2 : 1024;
        pv **a = realloc(m->all, (size_t)cap * sizeof *a);
        if (!a) { lm_fail(m->err, "out of memory"); return NULL; }
        m->all = a;
        m->cap_all = cap;
    }
    pv *v = calloc(1, sizeof *v);
    if (!v) { lm_fail(m->err, "out of memory"); return NULL; }
    v->kind = kind;
    m->all[m->n_all++] = v;
    return v;
}

static int push_item(machine *m, pv *container, pv *item) {
    if (container->n == container->cap) {
        int cap = container->cap ? container->cap * 2 : 4;
        if (charge(m, (size_t)(cap - container->cap) * sizeof(pv *)) != 0) return -1;
        pv **a = realloc(container->items, (size_t)cap * sizeof *a);
        if (!a) return lm_fail(m->err, "out of memory");
        container->items = a;
        container->cap = cap;
    }
    container->items[container->n++] = item;
    return 0;
}

static int push(machine *m, pv *v) {
    if (!v) return -1;
    if (m->sp >= PICKLE_MAX_STACK) return lm_fail(m->err, "pickle stack too deep");
    m->stack[m->sp++] = v;
    return 0;
}

static pv *pop(machine *m) {
    if (m->sp == 0 || m->stack[m->sp - 1]->kind == V_MARK) { lm_fail(m->err, "pickle stack underflow"); return NULL; }
    return m->stack[--m->sp];
}

static pv *top(machine *m) {
    if (m->sp == 0 || m->stack[m->sp - 1]->kind == V_MARK) { lm_fail(m->err, "pickle stack underflow"); return NULL; }
    return m->stack[m->sp - 1];
}

/* Index of the topmost MARK, or -1. */
static int find_mark(machine *m) {
    for (int i = m->sp - 1; i >= 0; i--)
        if (m->stack[i]->kind == V_MARK) return i;
    lm_fail(m->err, "pickle MARK missing");
    return -1;
}

static int need(machine *m, uint64_t n) {
    if ((uint64_t)(m->end - m->p) < n) return lm_fail(m->err, "pickle truncated");
    return 0;
}

static uint64_t read_le(machine *m, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | m->p[i];
    m->p += n;
    return v;
}

static int memo_put(machine *m, uint64_t idx) {
    if (idx >= PICKLE_MAX_MEMO) return lm_fail(m->err, "pickle memo index %llu too large", (unsigned long long)idx);
    if ((int)idx >= m->memo_cap) {
        int cap = m->memo_cap ? m->memo_cap : 256;
        while (cap <= (int)idx) cap *= 2;
        if (charge(m, (size_t)(cap - m->memo_cap) * sizeof(pv *)) != 0) return -1;
        pv **a = realloc(m->memo, (size_t)cap * sizeof *a);
        if (!a) return lm_fail(m->err, "out of memory");
        memset(a + m->memo_cap, 0, (size_t)(cap - m->memo_cap) * sizeof *a);
        m->memo = a;
        m->memo_cap = cap;
    }
    pv *t = top(m);
    if (!t) return -1;
    if (!m->memo[idx]) m->memo_len++;
    m->memo[idx] = t;
    return 0;
}

static int memo_get(machine *m, uint64_t idx) {
    if (idx >= (uint64_t)m->memo_cap || !m->memo[idx]) return lm_fail(m->err, "pickle memo %llu is empty", (unsigned long long)idx);
    return push(m, m->memo[idx]);
}

static int push_string(machine *m, uint64_t len) {
    if (need(m, len) != 0) return -1;
    pv *v = new_value(m, V_STR);
    if (!v) return -1;
    v->s = (const char *)m->p;
    v->slen = (uint32_t)len;
    m->p += len;
    return push(m, v);
}

static bool str_is(const pv *v, const char *s) {
    return v->kind == V_STR && v->slen == strlen(s) && memcmp(v->s, s, v->slen) == 0;
}

static int op_global(machine *m, const char *module, size_t mlen, const char *name, size_t nlen) {
    for (size_t i = 0; i < sizeof allowed_globals / sizeof *allowed_globals; i++) {
        if (strlen(allowed_globals[i].module) == mlen && memcmp(allowed_globals[i].module, module, mlen) == 0 &&
            strlen(allowed_globals[i].name) == nlen && memcmp(allowed_globals[i].name, name, nlen) == 0) {
            pv *v = new_value(m, V_GLOBAL);
            if (!v) return -1;
            v->i = allowed_globals[i].id;
            return push(m, v);
        }
    }
    return lm_fail(m->err, "pickle refers to '%.*s.%.*s', which is not on the allow-list (refusing to run code from a model file)",
                   (int)(mlen > 100 ? 100 : mlen), module, (int)(nlen > 100 ? 100 : nlen), name);
}

static int int_tuple(machine *m, const pv *t, int64_t *out, int *n, const char *what) {
    if (t->kind != V_TUPLE || t->n > LM_MAX_DIMS) return lm_fail(m->err, "tensor %s is not a tuple of at most %d ints", what, LM_MAX_DIMS);
    for (int i = 0; i < t->n; i++) {
        if (t->items[i]->kind != V_INT || t->items[i]->i < 0) return lm_fail(m->err, "tensor %s has a bad entry", what);
        out[i] = t->items[i]->i;
    }
    *n = t->n;
    return 0;
}

static int op_reduce(machine *m) {
    pv *args = pop(m), *fn = pop(m);
    if (!args || !fn) return -1;
    if (fn->kind != V_GLOBAL || args->kind != V_TUPLE) return lm_fail(m->err, "pickle REDUCE on a non-callable");
    switch ((global_id)fn->i) {
    case G_ODICT:
        return push(m, new_value(m, V_DICT));
    case G_REBUILD_PARAM:
        if (args->n < 1 || args->items[0]->kind != V_TENSOR) return lm_fail(m->err, "bad _rebuild_parameter arguments");
        return push(m, args->items[0]);
    case G_REBUILD_TENSOR: {
        if (args->n < 4 || args->items[0]->kind != V_STORAGE || args->items[1]->kind != V_INT || args->items[1]->i < 0)
            return lm_fail(m->err, "bad _rebuild_tensor_v2 arguments");
        pv *t = new_value(m, V_TENSOR);
        if (!t) return -1;
        t->storage = args->items[0];
        t->offset = args->items[1]->i;
        int nd_stride = 0;
        if (int_tuple(m, args->items[2], t->shape, &t->ndim, "size") != 0 ||
            int_tuple(m, args->items[3], t->stride, &nd_stride, "stride") != 0)
            return -1;
        if (nd_stride != t->ndim) return lm_fail(m->err, "tensor size and stride differ in rank");
        return push(m, t);
    }
    default:
        return lm_fail(m->err, "pickle calls a storage type");
    }
}

/* BINPERSID: ('storage', <storage type>, key, location, numel) */
static int op_persid(machine *m) {
    pv *pid = pop(m);
    if (!pid) return -1;
    if (pid->kind != V_TUPLE || pid->n != 5 || !str_is(pid->items[0], "storage") || pid->items[1]->kind != V_GLOBAL ||
        pid->items[2]->kind != V_STR || pid->items[4]->kind != V_INT || pid->items[4]->i < 0)
        return lm_fail(m->err, "pickle has an unrecognised persistent id");
    pv *s = new_value(m, V_STORAGE);
    if (!s) return -1;
    switch ((global_id)pid->items[1]->i) {
    case G_STORAGE_F32: s->dtype = LM_F32; break;
    case G_STORAGE_F16: s->dtype = LM_F16; break;
    case G_STORAGE_BF16: s->dtype = LM_BF16; break;
    default: return lm_fail(m->err, "persistent id names a non-storage type");
    }
    if (pid->items[2]->slen == 0 || pid->items[2]->slen >= sizeof s->key) return lm_fail(m->err, "storage key too long");
    memcpy(s->key, pid->items[2]->s, pid->items[2]->slen);
    s->numel = (uint64_t)pid->items[4]->i;
    return push(m, s);
}

/* Pops everything above the topmost MARK into container (and the MARK). */
static int collect_to_mark(machine *m, pv *container) {
    int mark = find_mark(m);
    if (mark < 0) return -1;
    for (int i = mark + 1; i < m->sp; i++)
        if (push_item(m, container, m->stack[i]) != 0) return -1;
    m->sp = mark;
    return 0;
}

static pv *run(machine *m) {
    pv mark_value = {.kind = V_MARK};
    for (;;) {
        if (need(m, 1) != 0) return NULL;
        uint8_t op = *m->p++;
        int rc = 0;
        switch (op) {
        case 0x80: rc = need(m, 1); if (!rc) m->p++; break;                      /* PROTO */
        case 0x95: rc = need(m, 8); if (!rc) m->p += 8; break;                   /* FRAME */
        case '.': {                                                              /* STOP */
            pv *result = pop(m);
            return result;
        }
        case '(': rc = push(m, &mark_value); break;                              /* MARK */
        case '}': rc = push(m, new_value(m, V_DICT)); break;                     /* EMPTY_DICT */
        case ']': rc = push(m, new_value(m, V_LIST)); break;                     /* EMPTY_LIST */
        case ')': rc = push(m, new_value(m, V_TUPLE)); break;                    /* EMPTY_TUPLE */
        case 'N': rc = push(m, new_value(m, V_NONE)); break;                     /* NONE */
        case 0x88: case 0x89: {                                                  /* NEWTRUE, NEWFALSE */
            pv *v = new_value(m, V_BOOL);
            if (v) v->i = op == 0x88;
            rc = push(m, v);
            break;
        }
        case 't': {                                                              /* TUPLE */
            pv *t = new_value(m, V_TUPLE);
            rc = t ? collect_to_mark(m, t) : -1;
            if (!rc) rc = push(m, t);
            break;
        }
        case 0x85: case 0x86: case 0x87: {                                       /* TUPLE1..3 */
            int n = op - 0x84;
            if (m->sp < n) { rc = lm_fail(m->err, "pickle stack underflow"); break; }
            pv *t = new_value(m, V_TUPLE);
            if (!t) { rc = -1; break; }
            for (int i = m->sp - n; i < m->sp && !rc; i++) {
                if (m->stack[i]->kind == V_MARK) rc = lm_fail(m->err, "pickle stack underflow");
                else rc = push_item(m, t, m->stack[i]);
            }
            m->sp -= n;
            if (!rc) rc = push(m, t);
            break;
        }
        case 'q': rc = need(m, 1); if (!rc) rc = memo_put(m, read_le(m, 1)); break;   /* BINPUT */
        case 'r': rc = need(m, 4); if (!rc) rc = memo_put(m, read_le(m, 4)); break;   /* LONG_BINPUT */
        case 0x94: rc = memo_put(m, (uint64_t)m->memo_len); break;                  /* MEMOIZE */
        case 'h': rc = need(m, 1); if (!rc) rc = memo_get(m, read_le(m, 1)); break;   /* BINGET */
        case 'j': rc = need(m, 4); if (!rc) rc = memo_get(m, read_le(m, 4)); break;   /* LONG_BINGET */
        case 'X': rc = need(m, 4); if (!rc) rc = push_string(m, read_le(m, 4)); break; /* BINUNICODE */
        case 0x8c: case 'U': rc = need(m, 1); if (!rc) rc = push_string(m, read_le(m, 1)); break; /* SHORT_BINUNICODE, SHORT_BINSTRING */
        case 'T': rc = need(m, 4); if (!rc) rc = push_string(m, read_le(m, 4)); break; /* BINSTRING */
        case 0x8d: rc = need(m, 8); if (!rc) rc = push_string(m, read_le(m, 8)); break; /* BINUNICODE8 */
        case 'K': case 'M': case 'J': {                                          /* BININT1, BININT2, BININT */
            int n = op == 'K' ? 1 : op == 'M' ? 2 : 4;
            if ((rc = need(m, (uint64_t)n)) != 0) break;
            uint64_t u = read_le(m, n);
            pv *v = new_value(m, V_INT);
            if (v) v->i = op == 'J' ? (int64_t)(int32_t)(uint32_t)u : (int64_t)u;
            rc = push(m, v);
            break;
        }
        case 0x8a: {                                                             /* LONG1 */
            if ((rc = need(m, 1)) != 0) break;
            int n = (int)read_le(m, 1);
            if (n > 8) { rc = lm_fail(m->err, "pickle integer wider than 64 bits"); break; }
            if ((rc = need(m, (uint64_t)n)) != 0) break;
            uint64_t u = n ? read_le(m, n) : 0;
            if (n > 0 && n < 8 && (u >> (8 * n - 1)) & 1) u |= ~0ull << (8 * n); /* sign-extend */
            pv *v = new_value(m, V_INT);
            if (v) v->i = (int64_t)u;
            rc = push(m, v);
            break;
        }
        case 'G': {                                                              /* BINFLOAT */
            if ((rc = need(m, 8)) != 0) break;
            m->p += 8; /* floats only occur in metadata we ignore */
            rc = push(m, new_value(m, V_FLOAT));
            break;
        }
        case 'c': {                                                              /* GLOBAL */
            const uint8_t *a = m->p, *nl1 = memchr(a, '\n', (size_t)(m->end - a));
            const uint8_t *nl2 = nl1 ? memchr(nl1 + 1, '\n', (size_t)(m->end - nl1 - 1)) : NULL;
            if (!nl2) { rc = lm_fail(m->err, "pickle GLOBAL truncated"); break; }
            m->p = nl2 + 1;
            rc = op_global(m, (const char *)a, (size_t)(nl1 - a), (const char *)nl1 + 1, (size_t)(nl2 - nl1 - 1));
            break;
        }
        case 0x93: {                                                             /* STACK_GLOBAL */
            pv *name = pop(m), *module = name ? pop(m) : NULL;
            if (!module) { rc = -1; break; }
            if (name->kind != V_STR || module->kind != V_STR) { rc = lm_fail(m->err, "pickle STACK_GLOBAL needs strings"); break; }
            rc = op_global(m, module->s, module->slen, name->s, name->slen);
            break;
        }
        case 'R': rc = op_reduce(m); break;                                      /* REDUCE */
        case 'Q': rc = op_persid(m); break;                                      /* BINPERSID */
        case 'b': {                                                              /* BUILD: state is metadata, dropped */
            pv *state = pop(m), *obj = state ? top(m) : NULL;
            if (!obj) { rc = -1; break; }
            if (obj->kind != V_DICT && obj->kind != V_TENSOR) rc = lm_fail(m->err, "pickle BUILD on an unsupported object");
            break;
        }
        case 's': {                                                              /* SETITEM */
            pv *v = pop(m), *k = v ? pop(m) : NULL, *d = k ? top(m) : NULL;
            if (!d) { rc = -1; break; }
            if (d->kind != V_DICT) { rc = lm_fail(m->err, "pickle SETITEM on a non-dict"); break; }
            rc = push_item(m, d, k);
            if (!rc) rc = push_item(m, d, v);
            break;
        }
        case 'u': {                                                              /* SETITEMS */
            int mark = find_mark(m);
            if (mark < 1) { rc = lm_fail(m->err, "pickle SETITEMS without a dict"); break; }
            pv *d = m->stack[mark - 1];
            if (d->kind != V_DICT || (m->sp - mark - 1) % 2) { rc = lm_fail(m->err, "pickle SETITEMS malformed"); break; }
            rc = collect_to_mark(m, d);
            break;
        }
        case 'a': {                                                              /* APPEND */
            pv *v = pop(m), *l = v ? top(m) : NULL;
            if (!l) { rc = -1; break; }
            rc = l->kind == V_LIST ? push_item(m, l, v) : lm_fail(m->err, "pickle APPEND on a non-list");
            break;
        }
        case 'e': {                                                              /* APPENDS */
            int mark = find_mark(m);
            if (mark < 1 || m->stack[mark - 1]->kind != V_LIST) { rc = lm_fail(m->err, "pickle APPENDS without a list"); break; }
            rc = collect_to_mark(m, m->stack[mark - 1]);
            break;
        }
        default:
            rc = lm_fail(m->err, "pickle opcode 0x%02x at byte %ld is not allowed", op, (long)(m->p - 1 - m->start));
        }
        if (rc != 0) return NULL;
    }
}

/* Checks one rebuilt tensor against its storage member and fills info. */
static int resolve_tensor(const pv *key, const pv *t, const lm_zip *zip, const char *prefix, const lm_tensor_file *tf,
                          lm_tensor_info *info, lm_err *err) {
    if (key->kind != V_STR || key->slen == 0 || key->slen >= LM_MAX_NAME) return lm_fail(err, "state dict key is not a short string");
    memset(info, 0, sizeof *info);
    memcpy(info->name, key->s, key->slen);
    if (t->kind != V_TENSOR) return lm_fail(err, "entry '%s' is not a tensor", info->name);
    const pv *s = t->storage;
    char member[LM_ZIP_MAX_NAME + 64];
    snprintf(member, sizeof member, "%sdata/%s", prefix, s->key);
    const lm_zip_entry *e = lm_zip_find(zip, member);
    if (!e) return lm_fail(err, "tensor '%s': storage '%s' is missing from the archive", info->name, member);
    size_t esize = lm_dtype_size(s->dtype);
    uint64_t storage_bytes, numel = 1, end;
    if (!lm_mul_u64(s->numel, esize, &storage_bytes) || storage_bytes != e->size)
        return lm_fail(err, "tensor '%s': storage '%s' holds %llu bytes, the pickle says %llu elements of %zu bytes",
                       info->name, s->key, (unsigned long long)e->size, (unsigned long long)s->numel, esize);
    info->dtype = s->dtype;
    info->ndim = t->ndim;
    int64_t expect_stride = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        info->shape[i] = t->shape[i];
        if (t->shape[i] > 1 && t->stride[i] != expect_stride)
            return lm_fail(err, "tensor '%s' is not contiguous", info->name);
        if (!lm_mul_u64(numel, (uint64_t)t->shape[i], &numel) || __builtin_mul_overflow(expect_stride, t->shape[i], &expect_stride))
            return lm_fail(err, "tensor '%s': shape overflows", info->name);
    }
    if (!lm_add_u64((uint64_t)t->offset, numel, &end) || end > s->numel)
        return lm_fail(err, "tensor '%s': elements [%lld, +%llu) lie outside its storage of %llu", info->name,
                       (long long)t->offset, (unsigned long long)numel, (unsigned long long)s->numel);
    info->nbytes = numel * esize;
    info->data = tf->map.data + e->offset + (uint64_t)t->offset * esize;
    info->storage = tf->map.data + e->offset;
    info->storage_nbytes = e->size;
    info->storage_id = (int)(e - zip->entries);
    return 0;
}

int lm_torchbin_open(const char *path, lm_tensor_file *tf, lm_err *err) {
    memset(tf, 0, sizeof *tf);
    snprintf(tf->path, sizeof tf->path, "%s", path);
    lm_zip zip = {0};
    machine m = {0};
    m.err = err;
    if (lm_mmap_open(path, lm_model_files[LM_MF_TORCHBIN].max_bytes, &tf->map, err) != 0) return -1;
    if (lm_zip_open(tf->map.data, tf->map.size, &zip, err) != 0) goto fail;

    /* the archive's top folder is named after the file torch.save wrote */
    const lm_zip_entry *pkl = NULL;
    char prefix[LM_ZIP_MAX_NAME] = "";
    for (int i = 0; i < zip.n; i++) {
        const char *slash = strchr(zip.entries[i].name, '/');
        if (slash && strcmp(slash, "/data.pkl") == 0) {
            if (pkl) { lm_fail(err, "archive holds more than one data.pkl"); goto fail; }
            pkl = &zip.entries[i];
            memcpy(prefix, pkl->name, (size_t)(slash - pkl->name) + 1);
        }
    }
    if (!pkl) { lm_fail(err, "no data.pkl in the archive (not a torch.save file?)"); goto fail; }
    char member[LM_ZIP_MAX_NAME + 16];
    snprintf(member, sizeof member, "%sbyteorder", prefix);
    const lm_zip_entry *bo = lm_zip_find(&zip, member);
    if (bo && !(bo->size == 6 && memcmp(tf->map.data + bo->offset, "little", 6) == 0)) {
        lm_fail(err, "archive byteorder is not 'little'");
        goto fail;
    }

    m.start = m.p = tf->map.data + pkl->offset;
    m.end = m.p + pkl->size;
    m.stack = malloc(PICKLE_MAX_STACK * sizeof *m.stack);
    if (!m.stack) { lm_fail(err, "out of memory"); goto fail; }
    pv *root = run(&m);
    if (!root) goto fail;
    if (root->kind != V_DICT) { lm_fail(err, "pickle does not hold a dict of tensors"); goto fail; }
    for (int i = 0; i + 1 < root->n; i += 2) {
        lm_tensor_info info;
        if (resolve_tensor(root->items[i], root->items[i + 1], &zip, prefix, tf, &info, err) != 0) goto fail;
        if (lm_tensor_file_add(tf, &info, err) != 0) goto fail;
    }
    int rc = 0;
    goto cleanup;
fail:
    rc = -1;
    lm_fail_prefix(err, "%s", path);
    lm_tensor_file_close(tf);
cleanup:
    for (int i = 0; i < m.n_all; i++) {
        free(m.all[i]->items);
        free(m.all[i]);
    }
    free(m.all);
    free(m.memo);
    free(m.stack);
    lm_zip_free(&zip);
    return rc;
}
