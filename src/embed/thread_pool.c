/*
 * The encoder's worker pool. A job is published under the mutex with a new
 * generation number, and threads claim its tasks with an atomic counter.
 * The caller waits until every worker has left the job, so a job's context
 * may live on the caller's stack.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include "agentnet/common.h"
#include "embed/thread_pool.h"

/*
 * Polls a waiting thread makes before it blocks: a worker waiting for a
 * job, or the caller waiting for workers to finish one. On a small batch
 * the forward pass runs a job every few tens of microseconds, and waking a
 * blocked thread costs about as much, so both spin briefly first. 2000
 * polls with a pause instruction each is an estimated 10 to 50
 * microseconds on current x86 CPUs; 20000 measured no faster.
 */
#define SPIN_POLLS 2000

struct an__thread_pool {
    pthread_mutex_t lock;
    pthread_cond_t wake;        /* signalled to workers on a new job or on stop */
    pthread_cond_t done;        /* signalled to the caller when the last worker leaves a job */
    pthread_t *workers;
    size_t worker_count;

    atomic_ulong generation;    /* job counter, incremented under lock */
    bool stop;
    an__pool_task_fn fn;
    void *ctx;
    size_t tasks;
    atomic_size_t next_task;
    atomic_size_t busy_workers; /* workers still inside the current job */
};

typedef struct {
    an__thread_pool_t *pool;
    size_t worker;
} worker_arg_t;


static void run_tasks(an__thread_pool_t *pool, size_t worker)
{
    for (;;) {
        size_t task = atomic_fetch_add_explicit(&pool->next_task, 1, memory_order_relaxed);
        if (task >= pool->tasks)
            return;
        pool->fn(pool->ctx, task, worker);
    }
}


static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}


static void *worker_main(void *arg)
{
    worker_arg_t *wa = arg;
    an__thread_pool_t *pool = wa->pool;
    size_t worker = wa->worker;
    unsigned long seen = 0;
    free(wa);

    for (;;) {
        for (int i = 0; i < SPIN_POLLS; i++) {
            if (atomic_load_explicit(&pool->generation, memory_order_relaxed) != seen)
                break;
            cpu_relax();
        }

        pthread_mutex_lock(&pool->lock);
        while (!pool->stop && atomic_load(&pool->generation) == seen)
            pthread_cond_wait(&pool->wake, &pool->lock);
        if (pool->stop) {
            pthread_mutex_unlock(&pool->lock);
            return NULL;
        }
        seen = atomic_load(&pool->generation);
        pthread_mutex_unlock(&pool->lock);

        run_tasks(pool, worker);

        /* The lock orders this signal after the caller's check of busy_workers. */
        if (atomic_fetch_sub(&pool->busy_workers, 1) == 1) {
            pthread_mutex_lock(&pool->lock);
            pthread_cond_signal(&pool->done);
            pthread_mutex_unlock(&pool->lock);
        }
    }
}


int an__thread_pool_create(size_t threads, an__thread_pool_t **out)
{
    *out = NULL;
    an__thread_pool_t *pool = calloc(1, sizeof(*pool));
    if (!pool)
        return AN_ENOMEM;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pthread_cond_init(&pool->done, NULL);
    atomic_init(&pool->generation, 0);
    atomic_init(&pool->next_task, 0);
    atomic_init(&pool->busy_workers, 0);

    size_t worker_target = threads > 1 ? threads - 1 : 0;
    if (worker_target > 0 && !(pool->workers = calloc(worker_target, sizeof(*pool->workers)))) {
        an__thread_pool_free(pool);
        return AN_ENOMEM;
    }
    for (size_t i = 0; i < worker_target; i++) {
        worker_arg_t *wa = malloc(sizeof(*wa));
        if (!wa) {
            an__thread_pool_free(pool);
            return AN_ENOMEM;
        }
        *wa = (worker_arg_t){pool, i + 1};
        if (pthread_create(&pool->workers[i], NULL, worker_main, wa) != 0) {
            free(wa);
            an__thread_pool_free(pool);
            return AN_ENOMEM;
        }
        pool->worker_count++;
    }
    *out = pool;
    return 0;
}


void an__thread_pool_free(an__thread_pool_t *pool)
{
    if (!pool)
        return;
    pthread_mutex_lock(&pool->lock);
    pool->stop = true;
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    for (size_t i = 0; i < pool->worker_count; i++)
        pthread_join(pool->workers[i], NULL);
    free(pool->workers);
    pthread_cond_destroy(&pool->done);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->lock);
    free(pool);
}


size_t an__thread_pool_size(const an__thread_pool_t *pool)
{
    return pool ? pool->worker_count + 1 : 1;
}


void an__thread_pool_run(an__thread_pool_t *pool, size_t tasks, an__pool_task_fn fn, void *ctx)
{
    if (!pool || pool->worker_count == 0 || tasks <= 1) {
        for (size_t t = 0; t < tasks; t++)
            fn(ctx, t, 0);
        return;
    }

    pthread_mutex_lock(&pool->lock);
    pool->fn = fn;
    pool->ctx = ctx;
    pool->tasks = tasks;
    atomic_store(&pool->next_task, 0);
    atomic_store(&pool->busy_workers, pool->worker_count);
    atomic_fetch_add(&pool->generation, 1);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);

    run_tasks(pool, 0);

    for (int i = 0; i < SPIN_POLLS; i++) {
        if (atomic_load_explicit(&pool->busy_workers, memory_order_acquire) == 0)
            return;
        cpu_relax();
    }
    pthread_mutex_lock(&pool->lock);
    while (atomic_load(&pool->busy_workers) > 0)
        pthread_cond_wait(&pool->done, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
}
