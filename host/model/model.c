/* model: loading and validating an M2M100 checkpoint; see model.h. */
#include "model/model.h"
#include "model/model_files.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every tensor the config implies, where its pointer goes, and which
 * tensors of the file are accounted for. Binding runs twice: a dry pass
 * that only checks names and shapes (and allocates nothing), then, once the
 * sizes are known to be sane, the pass that sets the pointers. */
typedef struct {
    lm_model *m;
    const lm_tensor_file *tf;
    const char *prefix;  /* "model." for ForConditionalGeneration checkpoints, or "" */
    bool *used;
    bool dry;
    float **widened;     /* by storage_id: the storage as f32, widened once */
    lm_err *err;
} binder;

/* The whole storage behind t as f32, converted once however many tensors
 * view it (a file of views of one storage once cost memory per view). */
static const float *widen_storage(binder *b, const lm_tensor_info *t) {
    float **slot = &b->widened[t->storage_id];
    if (*slot) return *slot;
    size_t esize = lm_dtype_size(t->dtype);
    uint64_t n = t->storage_nbytes / esize;
    float *buf = lm_malloc(n * sizeof(float), b->err);
    if (!buf) return NULL;
    float **owned = realloc(b->m->owned, ((size_t)b->m->n_owned + 1) * sizeof *owned);
    if (!owned) { free(buf); lm_fail(b->err, "out of memory"); return NULL; }
    b->m->owned = owned;
    b->m->owned[b->m->n_owned++] = buf;
    for (uint64_t i = 0; i < n; i++) {
        uint16_t h;
        switch (t->dtype) {
        case LM_F32: memcpy(&buf[i], t->storage + 4 * i, 4); break;
        case LM_F16: memcpy(&h, t->storage + 2 * i, 2); buf[i] = lm_f16_to_f32(h); break;
        case LM_BF16: memcpy(&h, t->storage + 2 * i, 2); buf[i] = lm_bf16_to_f32(h); break;
        }
    }
    *slot = buf;
    return buf;
}

static int fetch(binder *b, const char *name, int64_t d0, int64_t d1, const float **out) {
    char full[LM_MAX_NAME + 16];
    snprintf(full, sizeof full, "%s%s", b->prefix, name);
    const lm_tensor_info *t = lm_tensor_file_find(b->tf, full);
    if (!t) return lm_fail(b->err, "%s: missing tensor '%s'", b->tf->path, full);
    int want_nd = d1 < 0 ? 1 : 2;
    if (t->ndim != want_nd || t->shape[0] != d0 || (want_nd == 2 && t->shape[1] != d1)) {
        char got[96] = "", want[48];
        for (int i = 0; i < t->ndim; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? ", " : "", (long long)t->shape[i]);
        if (want_nd == 1) snprintf(want, sizeof want, "%lld", (long long)d0);
        else snprintf(want, sizeof want, "%lld, %lld", (long long)d0, (long long)d1);
        return lm_fail(b->err, "%s: tensor '%s' has shape [%s], config.json implies [%s]", b->tf->path, full, got, want);
    }
    b->used[t - b->tf->tensors] = true;
    b->m->n_params += lm_tensor_numel(t);
    *out = NULL;
    if (b->dry) return 0;
    if (t->dtype == LM_F32 && ((uintptr_t)t->data % sizeof(float)) == 0) {
        *out = (const float *)t->data;
        return 0;
    }
    /* f16/bf16 (or a misaligned f32 storage): a view into the widened copy */
    const float *base = widen_storage(b, t);
    if (!base) return -1;
    *out = base + (t->data - t->storage) / lm_dtype_size(t->dtype);
    return 0;
}

static int fetch_linear(binder *b, const char *base, int in, int out, lm_linear *l) {
    char name[LM_MAX_NAME];
    l->in = in;
    l->out = out;
    snprintf(name, sizeof name, "%s.weight", base);
    if (fetch(b, name, out, in, &l->w) != 0) return -1;
    snprintf(name, sizeof name, "%s.bias", base);
    return fetch(b, name, out, -1, &l->b);
}

static int fetch_norm(binder *b, const char *base, int d, lm_norm *n) {
    char name[LM_MAX_NAME];
    snprintf(name, sizeof name, "%s.weight", base);
    if (fetch(b, name, d, -1, &n->gamma) != 0) return -1;
    snprintf(name, sizeof name, "%s.bias", base);
    return fetch(b, name, d, -1, &n->beta);
}

static int bind_attention(binder *b, const char *base, int d, lm_linear *q, lm_linear *k, lm_linear *v, lm_linear *o) {
    char name[LM_MAX_NAME];
    const char *parts[4] = {"q_proj", "k_proj", "v_proj", "out_proj"};
    lm_linear *dst[4] = {q, k, v, o};
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "%s.%s", base, parts[i]);
        if (fetch_linear(b, name, d, d, dst[i]) != 0) return -1;
    }
    return 0;
}

/* What encoder and decoder layers share: self-attention and its norm, and
 * the feed-forward block with its norm. */
typedef struct {
    lm_linear *q, *k, *v, *o, *fc1, *fc2;
    lm_norm *self_norm, *ffn_norm;
} block_slots;

static int bind_block(binder *b, const char *base, int d, int ffn, block_slots s) {
    char name[LM_MAX_NAME];
    snprintf(name, sizeof name, "%s.self_attn", base);
    if (bind_attention(b, name, d, s.q, s.k, s.v, s.o) != 0) return -1;
    snprintf(name, sizeof name, "%s.self_attn_layer_norm", base);
    if (fetch_norm(b, name, d, s.self_norm) != 0) return -1;
    snprintf(name, sizeof name, "%s.final_layer_norm", base);
    if (fetch_norm(b, name, d, s.ffn_norm) != 0) return -1;
    snprintf(name, sizeof name, "%s.fc1", base);
    if (fetch_linear(b, name, d, ffn, s.fc1) != 0) return -1;
    snprintf(name, sizeof name, "%s.fc2", base);
    return fetch_linear(b, name, ffn, d, s.fc2);
}

static int bind_all(binder *b) {
    lm_model *m = b->m;
    const lm_model_config *c = &m->cfg.model;
    int d = c->d_model;
    char base[64], name[LM_MAX_NAME];

    /* the shared embedding may be stored under any of its tied names */
    static const char *const embed_names[] = {"shared.weight", "encoder.embed_tokens.weight", "decoder.embed_tokens.weight"};
    const float *emb = NULL;
    bool have_emb = false;
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "%s%s", b->prefix, embed_names[i]);
        if (!lm_tensor_file_find(b->tf, name)) continue;
        const float *p;
        uint64_t before = m->n_params;
        if (fetch(b, embed_names[i], c->vocab_size, d, &p) != 0) return -1;
        if (have_emb) { /* a second copy counts once and must be identical */
            m->n_params = before;
            if (!b->dry && p != emb && memcmp(p, emb, (size_t)c->vocab_size * d * sizeof(float)) != 0)
                return lm_fail(b->err, "%s: tensor '%s' differs from the shared embedding it should be tied to", b->tf->path, name);
        } else {
            emb = p;
            have_emb = true;
        }
    }
    if (!have_emb) return lm_fail(b->err, "%s: missing tensor '%sshared.weight' (the token embedding)", b->tf->path, b->prefix);
    m->embed = emb;
    m->lm_head = emb;
    const lm_tensor_info *head = lm_tensor_file_find(b->tf, "lm_head.weight");
    if (head) {
        const char *saved_prefix = b->prefix;
        const float *p;
        uint64_t before = m->n_params;
        b->prefix = "";
        int rc = fetch(b, "lm_head.weight", c->vocab_size, d, &p);
        b->prefix = saved_prefix;
        if (rc != 0) return -1;
        if (c->tie_word_embeddings) {
            m->n_params = before;
            if (!b->dry && p != emb && memcmp(p, emb, (size_t)c->vocab_size * d * sizeof(float)) != 0)
                return lm_fail(b->err, "%s: 'lm_head.weight' differs from the shared embedding but config.json ties them", b->tf->path);
        } else {
            m->lm_head = p;
        }
    } else if (!c->tie_word_embeddings) {
        return lm_fail(b->err, "%s: missing tensor 'lm_head.weight' (config.json unties it)", b->tf->path);
    }

    if (!m->enc) m->enc = calloc((size_t)c->encoder_layers, sizeof *m->enc);
    if (!m->dec) m->dec = calloc((size_t)c->decoder_layers, sizeof *m->dec);
    if (!m->enc || !m->dec) return lm_fail(b->err, "out of memory");
    for (int i = 0; i < c->encoder_layers; i++) {
        lm_encoder_layer *L = &m->enc[i];
        snprintf(base, sizeof base, "encoder.layers.%d", i);
        block_slots slots = {&L->q, &L->k, &L->v, &L->o, &L->fc1, &L->fc2, &L->self_norm, &L->ffn_norm};
        if (bind_block(b, base, d, c->encoder_ffn, slots) != 0) return -1;
    }
    for (int i = 0; i < c->decoder_layers; i++) {
        lm_decoder_layer *L = &m->dec[i];
        snprintf(base, sizeof base, "decoder.layers.%d", i);
        block_slots slots = {&L->q, &L->k, &L->v, &L->o, &L->fc1, &L->fc2, &L->self_norm, &L->ffn_norm};
        if (bind_block(b, base, d, c->decoder_ffn, slots) != 0) return -1;
        snprintf(name, sizeof name, "%s.encoder_attn", base);
        if (bind_attention(b, name, d, &L->cq, &L->ck, &L->cv, &L->co) != 0) return -1;
        snprintf(name, sizeof name, "%s.encoder_attn_layer_norm", base);
        if (fetch_norm(b, name, d, &L->cross_norm) != 0) return -1;
    }
    if (fetch_norm(b, "encoder.layer_norm", d, &m->enc_norm) != 0) return -1;
    if (fetch_norm(b, "decoder.layer_norm", d, &m->dec_norm) != 0) return -1;

    /* Old checkpoints also store the sinusoidal tables and a zero logits
     * bias; they carry nothing we do not compute, so they are accepted. */
    for (int i = 0; i < b->tf->n; i++) {
        const lm_tensor_info *t = &b->tf->tensors[i];
        if (b->used[i]) continue;
        const char *n = t->name;
        size_t pl = strlen(b->prefix);
        if (strncmp(n, b->prefix, pl) == 0 &&
            (strcmp(n + pl, "encoder.embed_positions.weights") == 0 || strcmp(n + pl, "decoder.embed_positions.weights") == 0) &&
            t->ndim == 2 && t->shape[1] == d)
            continue;
        if (strcmp(n, "final_logits_bias") == 0 && t->ndim == 2 && t->shape[1] == c->vocab_size) continue;
        return lm_fail(b->err, "%s: unexpected tensor '%s' (not part of an M2M100 model with this config.json)", b->tf->path, n);
    }
    return 0;
}

void lm_sinusoidal_table(float *out, int rows, int dim, int padding_idx) {
    int half = dim / 2;
    /* transformers: emb = log(10000) / (half - 1); exp(arange(half) * -emb) in float32 */
    double step = half > 1 ? log(10000.0) / (double)(half - 1) : 0.0;
    float neg = (float)-step;
    for (int p = 0; p < rows; p++) {
        for (int k = 0; k < half; k++) {
            float inv = expf((float)k * neg);
            float ang = (float)p * inv;
            out[(size_t)p * dim + k] = sinf(ang);
            out[(size_t)p * dim + half + k] = cosf(ang);
        }
        if (dim % 2) out[(size_t)p * dim + dim - 1] = 0.0f;
    }
    if (padding_idx >= 0 && padding_idx < rows) memset(out + (size_t)padding_idx * dim, 0, (size_t)dim * sizeof(float));
}

static int max_storage_id(const lm_tensor_file *tf) {
    int top = 0;
    for (int i = 0; i < tf->n; i++)
        if (tf->tensors[i].storage_id > top) top = tf->tensors[i].storage_id;
    return top;
}

/* Values the file really stores: each storage once, however many tensors
 * view it. */
static uint64_t stored_values(const lm_tensor_file *tf, lm_err *err) {
    bool *seen = lm_calloc((size_t)max_storage_id(tf) + 1, sizeof *seen, err);
    if (!seen) return UINT64_MAX;
    uint64_t total = 0;
    for (int i = 0; i < tf->n; i++) {
        const lm_tensor_info *t = &tf->tensors[i];
        if (seen[t->storage_id]) continue;
        seen[t->storage_id] = true;
        total += t->storage_nbytes / lm_dtype_size(t->dtype);
    }
    free(seen);
    return total;
}

/* Run after the dry binding pass, before anything is widened or packed:
 * memory then follows the config (every view gets its own f32 rows in the
 * compute backend, the position table is max_positions x d_model), so a
 * config must not ask for more parameters than the file holds, nor for a
 * position table larger than the whole model. */
static int check_sizes(const lm_model *m, lm_err *err) {
    const lm_model_config *c = &m->cfg.model;
    uint64_t present = stored_values(&m->file, err);
    if (present == UINT64_MAX) return -1;
    if (m->n_params > present)
        return lm_fail(err, "%s: config.json implies %llu parameters but the file stores only %llu values "
                       "(tensors that should be distinct share storage)", m->weights_path,
                       (unsigned long long)m->n_params, (unsigned long long)present);
    uint64_t table = (uint64_t)(c->max_positions + 2) * (uint64_t)c->d_model;
    if (table > m->n_params)
        return lm_fail(err, "%s: max_position_embeddings %d x d_model %d needs a %llu-value position table, "
                       "more than the model's %llu parameters", m->weights_path, c->max_positions, c->d_model,
                       (unsigned long long)table, (unsigned long long)m->n_params);
    return 0;
}

int lm_model_load(const char *dir, lm_model *m, lm_err *err) {
    memset(m, 0, sizeof *m);
    if (lm_model_dir_check(dir, err) != 0 || lm_dir_config_load(dir, &m->cfg, err) != 0) return -1;
    char st[4096], bin[4096];
    if (lm_path_join(st, sizeof st, dir, lm_model_files[LM_MF_SAFETENSORS].name, err) != 0 ||
        lm_path_join(bin, sizeof bin, dir, lm_model_files[LM_MF_TORCHBIN].name, err) != 0)
        return -1;
    int rc;
    if (lm_file_exists(st)) {
        snprintf(m->weights_path, sizeof m->weights_path, "%s", st);
        rc = lm_safetensors_open(st, &m->file, err);
    } else if (lm_file_exists(bin)) {
        snprintf(m->weights_path, sizeof m->weights_path, "%s", bin);
        rc = lm_torchbin_open(bin, &m->file, err);
    } else {
        return lm_fail(err, "%s: no model.safetensors or pytorch_model.bin", dir);
    }
    if (rc != 0) return -1;
    if (m->file.n == 0) {
        lm_fail(err, "%s: holds no tensors", m->weights_path);
        goto fail;
    }
    m->stored_dtype = m->file.tensors[0].dtype;

    binder b = {.m = m, .tf = &m->file, .prefix = "", .err = err};
    for (int i = 0; i < m->file.n; i++)
        if (strncmp(m->file.tensors[i].name, "model.", 6) == 0) b.prefix = "model.";
    b.used = lm_calloc((size_t)m->file.n, sizeof *b.used, err);
    b.widened = b.used ? lm_calloc((size_t)max_storage_id(&m->file) + 1, sizeof *b.widened, err) : NULL;
    if (!b.widened) {
        rc = -1;
    } else {
        b.dry = true;
        rc = bind_all(&b);
        if (rc == 0) rc = check_sizes(m, err);
        b.dry = false;
        m->n_params = 0;
        if (rc == 0) rc = bind_all(&b);
    }
    free(b.used);
    free(b.widened);
    if (rc != 0) goto fail;

    const lm_model_config *c = &m->cfg.model;
    m->embed_scale = c->scale_embedding ? sqrtf((float)c->d_model) : 1.0f;
    m->n_positions = c->max_positions + 2;
    m->positions = lm_malloc((size_t)m->n_positions * c->d_model * sizeof(float), err);
    if (!m->positions) goto fail;
    lm_sinusoidal_table(m->positions, m->n_positions, c->d_model, c->pad_id);
    return 0;
fail:
    lm_model_free(m);
    return -1;
}

void lm_model_free(lm_model *m) {
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    free(m->enc);
    free(m->dec);
    free(m->positions);
    lm_tensor_file_close(&m->file);
    memset(m, 0, sizeof *m);
}
