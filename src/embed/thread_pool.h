/*
 * A fixed set of worker threads that run the encoder's forward pass. The
 * calling thread takes part, so a pool of N threads starts N - 1 workers.
 * Between jobs, workers spin briefly and then block on a condition variable.
 */
#ifndef AGENTNET_EMBED_THREAD_POOL_H
#define AGENTNET_EMBED_THREAD_POOL_H

#include <stddef.h>

typedef struct an__thread_pool an__thread_pool_t;

/* One task of a job: task is in [0, tasks), worker in [0, an__thread_pool_size()). */
typedef void (*an__pool_task_fn)(void *ctx, size_t task, size_t worker);

/*
 * Starts threads - 1 workers (none when threads <= 1). Returns 0, or
 * AN_ENOMEM when memory or a thread could not be allocated; *out is then NULL.
 */
int an__thread_pool_create(size_t threads, an__thread_pool_t **out);

/* Stops and joins the workers. NULL is accepted. */
void an__thread_pool_free(an__thread_pool_t *pool);

/* Returns the number of threads that run tasks, the caller included (1 for NULL). */
size_t an__thread_pool_size(const an__thread_pool_t *pool);

/*
 * Runs fn for every task in [0, tasks) and returns when all have finished.
 * Tasks are handed out in order, one at a time, to whichever thread is
 * free. A NULL pool runs them all on the caller. Only one thread may call
 * this on a given pool at a time.
 */
void an__thread_pool_run(an__thread_pool_t *pool, size_t tasks, an__pool_task_fn fn, void *ctx);

#endif
