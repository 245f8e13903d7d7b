/* SPDX-License-Identifier: MIT */
/*
 * A character-level n-gram language model and a libswarm engine around it: real CPU inference
 * with no external files. The model is trained at start-up on a text the example ships
 * (ngram_corpus) and samples with the request's temperature, top-p, seed and max tokens,
 * streaming one character (token) per swarm_response_write().
 *
 * Shared by examples/02_ngram_engine.c and the demo.
 */
#ifndef SWARM_EXAMPLE_NGRAM_H
#define SWARM_EXAMPLE_NGRAM_H

#include <stddef.h>
#include <stdint.h>

#include <swarm/swarm.h>

typedef struct ngram_model ngram_model;

/** The built-in training text (NUL-terminated). */
extern const char ngram_corpus[];

/** Train a model of the given order (context length + 1, 2..8) on @p text. 0 or SWARM_E*. */
int ngram_train(ngram_model **out, const char *text, size_t len, int order);

/** Free a model. NULL is a no-op. */
void ngram_free(ngram_model *m);

/**
 * Sample the next byte after @p ctx (the last order-1 bytes are used, backing off to shorter
 * contexts when unseen). temperature 0 is greedy; top_p in (0, 1] keeps the smallest set of
 * most likely bytes whose mass reaches top_p. @p rng is a splitmix64 state. Thread-safe (the
 * model is read-only after training).
 */
int ngram_next(const ngram_model *m, const char *ctx, size_t ctx_len, double temperature,
               double top_p, uint64_t *rng);

/** Number of distinct (context, next) pairs learned; for logs. */
size_t ngram_size(const ngram_model *m);

/**
 * Wrap a trained model into a libswarm engine named "ngram". The engine owns @p m.
 * Default max_tokens: 120. Output units are characters; input units are prompt bytes.
 */
int ngram_engine_create(swarm_engine **out, ngram_model *m);

#endif
