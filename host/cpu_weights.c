/* cpu_weights: see cpu_weights.h. */
#include "cpu_weights.h"

#include <stdlib.h>
#include <string.h>

static int pack_one(const lm_model *m, lm_packed *p, const float *w, int n, int k, lm_err *err) {
    if (lm_packed_init(p, w, n, k, err) != 0) return -1;
    lm_mmap_release(&m->file.map, w, (size_t)n * k * sizeof(float));
    return 0;
}

int lm_cpu_weights_init(lm_cpu_weights *w, const lm_model *m, lm_err *err) {
    memset(w, 0, sizeof *w);
    const char *force = getenv("LYRICMT_CPU_GEMM");
    bool want_packed = force && !strcmp(force, "packed"), want_blas = force && !strcmp(force, "blas");
    if (want_packed && !lm_packed_supported()) return lm_fail(err, "LYRICMT_CPU_GEMM=packed needs AVX-512, which this CPU lacks");
    if (want_blas || !lm_packed_supported()) return 0;
    const lm_model_config *mc = &m->cfg.model;
    w->decoder_layers = mc->decoder_layers;
    w->dec = lm_calloc((size_t)mc->decoder_layers * LM_DEC_PRODUCTS, sizeof *w->dec, err);
    if (!w->dec || pack_one(m, &w->head, m->lm_head, mc->vocab_size, mc->d_model, err) != 0) goto fail;
    for (int l = 0; l < mc->decoder_layers; l++) {
        const lm_decoder_layer *L = &m->dec[l];
        const lm_linear *lin[LM_DEC_PRODUCTS] = {&L->q, &L->k, &L->v, &L->o, &L->cq, &L->co, &L->fc1, &L->fc2};
        for (int i = 0; i < LM_DEC_PRODUCTS; i++)
            if (pack_one(m, &w->dec[(size_t)l * LM_DEC_PRODUCTS + i], lin[i]->w, lin[i]->out, lin[i]->in, err) != 0) goto fail;
    }
    return 0;
fail:
    lm_cpu_weights_free(w);
    return -1;
}

void lm_cpu_weights_free(lm_cpu_weights *w) {
    lm_packed_free(&w->head);
    if (w->dec)
        for (int i = 0; i < w->decoder_layers * LM_DEC_PRODUCTS; i++) lm_packed_free(&w->dec[i]);
    free(w->dec);
    memset(w, 0, sizeof *w);
}

const lm_packed *lm_cpu_weights_dec(const lm_cpu_weights *w, int l, int i) {
    return w->dec ? &w->dec[(size_t)l * LM_DEC_PRODUCTS + i] : NULL;
}
