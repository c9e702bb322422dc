/*
 * random_model: a model of SMaLL-100's shapes (d_model 1024, 16 heads of 64,
 * FFN 4096, vocabulary 128,112, relu, tied embeddings) with seeded random
 * weights, made in memory: the CUDA backend's test and the GPU step timer
 * (benchmarks/cuda_steps.c) run it. SMaLL-100 has 12 encoder and 3 decoder
 * layers; fewer keep every shape but take less time.
 */
#ifndef LM_RANDOM_MODEL_H
#define LM_RANDOM_MODEL_H

#include "model/model.h"

typedef struct {
    lm_model m;
    float *pool; /* every weight */
    size_t used, size;
    uint64_t rng;
} lm_random_model;

/* 0, or -1 when memory runs out. */
int lm_random_model_make(lm_random_model *r, int encoder_layers, int decoder_layers);
void lm_random_model_free(lm_random_model *r);

#endif
