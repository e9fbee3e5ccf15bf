/*
 * In-process cache benchmark: put and get throughput of the memory and lmdb
 * backends with 1 KiB values, one line per measurement. It measures the
 * cache alone, without HTTP, key hashing or upstream calls.
 *
 * lmdb puts sync to disk at every commit, so the timed put phase may store
 * fewer than ENTRY_COUNT entries. The rest are then stored untimed with the
 * sync turned off, so that every get measurement reads from the same
 * number of entries.
 *
 * Usage: bench_cache [SECONDS]   (time limit per measurement, default 2)
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ftw.h>
#include <openssl/evp.h>

#include "agentnet/cache.h"
#include "agentnet/log.h"
#include "cache/cache_internal.h"

/* Entries stored before the get measurements, unless the put time limit ends first. */
#define ENTRY_COUNT 100000
#define VALUE_BYTES 1024

/* Interval at which the lmdb get measurements flush hits, as the server does periodically. */
#define FLUSH_INTERVAL_MS 100

typedef struct {
    an_cache_t *cache;
    const an_cache_key_t *keys;
    size_t key_count;
    unsigned seed;
    _Atomic int *stop;
    uint64_t ops;
    uint64_t misses;
} get_worker_t;


static double seconds_since(uint64_t start_ns)
{
    return (double)(an_mono_ns() - start_ns) / 1e9;
}


static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}


static int remove_path(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}


/*
 * Stores keys from first on until key_count are stored or limit_s seconds
 * pass (limit_s 0 = no limit). Returns the number of keys stored.
 */
static size_t put_keys(an_cache_t *cache, const char *backend, const an_cache_key_t *keys,
                       size_t first, size_t key_count, double limit_s)
{
    char value[VALUE_BYTES];
    memset(value, 'v', sizeof(value));
    an_cache_entry_t entry = {
        .value = value,
        .value_len = sizeof(value),
        .content_type = "application/json",
        .ttl_s = -1,
    };

    uint64_t start = an_mono_ns();
    size_t stored = first;
    while (stored < key_count) {
        int rc = an_cache_put(cache, &keys[stored], &entry);
        if (rc != 0) {
            fprintf(stderr, "bench_cache: put failed on %s: %s\n", backend, an_strerror(rc));
            break;
        }
        stored++;
        if (limit_s > 0 && stored % 64 == 0 && seconds_since(start) >= limit_s)
            break;
    }
    return stored - first;
}


static size_t measure_put(an_cache_t *cache, const char *backend, const an_cache_key_t *keys,
                          size_t key_count, double limit_s)
{
    uint64_t start = an_mono_ns();
    size_t stored = put_keys(cache, backend, keys, 0, key_count, limit_s);
    double elapsed = seconds_since(start);
    printf("backend=%s op=put threads=1 ops_per_sec=%.0f entries=%zu value_bytes=%d seconds=%.2f\n",
           backend, (double)stored / elapsed, stored, VALUE_BYTES, elapsed);
    fflush(stdout);
    return stored;
}


static void *get_worker_main(void *arg)
{
    get_worker_t *w = arg;
    an_buf_t value = {0};
    unsigned seed = w->seed;
    while (!atomic_load_explicit(w->stop, memory_order_relaxed)) {
        for (int i = 0; i < 1024; i++) {
            seed = seed * 1103515245u + 12345u;
            size_t index = ((size_t)seed >> 4) % w->key_count;
            if (an_cache_get(w->cache, &w->keys[index], &value, NULL) != 0)
                w->misses++;
            w->ops++;
        }
    }
    an_buf_free(&value);
    return NULL;
}


/* Runs threads readers of random stored keys for limit_s seconds and prints the total rate. */
static void measure_get(an_cache_t *cache, const char *backend, const an_cache_key_t *keys,
                        size_t key_count, int threads, double limit_s, int flush_periodically)
{
    _Atomic int stop = 0;
    get_worker_t workers[8];
    pthread_t ids[8];
    uint64_t start = an_mono_ns();
    for (int t = 0; t < threads; t++) {
        workers[t] = (get_worker_t){cache, keys, key_count, 2654435761u * (unsigned)(t + 1), &stop,
                                    0, 0};
        pthread_create(&ids[t], NULL, get_worker_main, &workers[t]);
    }

    while (seconds_since(start) < limit_s) {
        sleep_ms(FLUSH_INTERVAL_MS);
        if (flush_periodically)
            an_cache_flush(cache);
    }
    atomic_store(&stop, 1);

    uint64_t ops = 0, misses = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(ids[t], NULL);
        ops += workers[t].ops;
        misses += workers[t].misses;
    }
    double elapsed = seconds_since(start);
    printf("backend=%s op=get threads=%d ops_per_sec=%.0f misses=%llu entries=%zu "
           "value_bytes=%d seconds=%.2f\n",
           backend, threads, (double)ops / elapsed, (unsigned long long)misses, key_count,
           VALUE_BYTES, elapsed);
    fflush(stdout);
}


static int run_backend(an_cache_backend_t backend, const an_cache_key_t *keys, double limit_s)
{
    const char *name = backend == AN_CACHE_MEMORY ? "memory" : "lmdb";
    char dir[] = "/tmp/agentnet-bench-cache-XXXXXX";
    if (backend == AN_CACHE_LMDB && !mkdtemp(dir)) {
        perror("bench_cache: mkdtemp");
        return 1;
    }

    an_cache_options_t opts = an_cache_options_default();
    opts.backend = backend;
    opts.name = "bench";
    opts.path = backend == AN_CACHE_LMDB ? dir : NULL;
    opts.max_entries = 2 * ENTRY_COUNT;
    opts.max_bytes = 512ull * 1024 * 1024;
    opts.default_ttl_s = 0;

    an_cache_t *cache = NULL;
    char err[512] = "";
    int rc = an_cache_open(&opts, &cache, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "bench_cache: %s\n", err);
        return 1;
    }

    size_t stored = measure_put(cache, name, keys, ENTRY_COUNT, limit_s);
    if (stored > 0 && stored < ENTRY_COUNT && backend == AN_CACHE_LMDB &&
        an__cache_lmdb_set_durable(cache, 0) == 0) {
        stored += put_keys(cache, name, keys, stored, ENTRY_COUNT, 0);
        an__cache_lmdb_set_durable(cache, 1);
    }
    if (stored > 0) {
        measure_get(cache, name, keys, stored, 1, limit_s, backend == AN_CACHE_LMDB);
        measure_get(cache, name, keys, stored, 2, limit_s, backend == AN_CACHE_LMDB);
    }

    an_cache_close(cache);
    if (backend == AN_CACHE_LMDB)
        nftw(dir, remove_path, 16, FTW_DEPTH | FTW_PHYS);
    return stored > 0 ? 0 : 1;
}


int main(int argc, char **argv)
{
    double limit_s = argc > 1 ? atof(argv[1]) : 2.0;
    if (limit_s <= 0) {
        fprintf(stderr, "usage: bench_cache [SECONDS]  (time limit per measurement, default 2)\n");
        return 2;
    }
    an_log_set_level(AN_LOG_WARN);

    an_cache_key_t *keys = malloc(ENTRY_COUNT * sizeof(*keys));
    if (!keys)
        return 1;
    for (size_t i = 0; i < ENTRY_COUNT; i++) {
        char text[32];
        int len = snprintf(text, sizeof(text), "bench-%zu", i);
        unsigned int out_len = 0;
        EVP_Digest(text, (size_t)len, keys[i].bytes, &out_len, EVP_sha256(), NULL);
    }

    int failed = run_backend(AN_CACHE_MEMORY, keys, limit_s);
    failed |= run_backend(AN_CACHE_LMDB, keys, limit_s);
    free(keys);
    return failed;
}
