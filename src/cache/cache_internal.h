/*
 * Private contract between the cache front end (cache.c) and its backends:
 * the backend operation table, the shared handle, the entry size formula and
 * a clock hook for tests. Nothing outside src/cache and its tests includes it.
 */
#ifndef AGENTNET_CACHE_INTERNAL_H
#define AGENTNET_CACHE_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "agentnet/cache.h"

/*
 * Fixed bytes charged for every entry on top of its value, content type and
 * namespace: what the lmdb backend stores per entry besides those, that is
 * the key and 32-byte header in "entries", the key and 24-byte value in
 * "access", and the 48-byte "lru" key (see lmdb_internal.h). The memory
 * backend charges the same, so one max_bytes means the same number of
 * entries in both backends.
 */
#define AN__CACHE_ENTRY_OVERHEAD_BYTES (32u + 32u + 32u + 24u + 48u)

/* Returns the bytes an entry counts against max_bytes and in stats.bytes. */
static inline uint64_t an__cache_entry_bytes(size_t value_len, size_t content_type_len,
                                             size_t namespace_len)
{
    return AN__CACHE_ENTRY_OVERHEAD_BYTES + (uint64_t)value_len + content_type_len +
           namespace_len;
}

/*
 * An entry ready to store, after cache.c has applied defaults, validated the
 * lengths and computed the expiry. Every pointer is borrowed from the caller.
 */
typedef struct {
    const void *value;
    size_t value_len;
    const char *content_type; /* never NULL */
    size_t content_type_len;  /* < AN_CACHE_MAX_CONTENT_TYPE */
    const char *namespace_;   /* never NULL; "" is the default namespace */
    size_t namespace_len;     /* < AN_CACHE_MAX_NAMESPACE */
    int64_t now_ms;           /* created and last-access time */
    int64_t expires_ms;       /* 0 = never */
    uint64_t bytes;           /* an__cache_entry_bytes() of the above */
} an__cache_item_t;

/*
 * Counters of the lmdb backend's operations in this process, not yet added
 * to the persisted counters. A flush adds them and then subtracts what it
 * added. Atomics, because every thread updates them without a lock. The
 * memory backend keeps its counters per shard instead.
 */
typedef struct {
    _Atomic uint64_t hits;
    _Atomic uint64_t misses;
    _Atomic uint64_t stores;
    _Atomic uint64_t evictions;
    _Atomic uint64_t expirations;
} an__cache_counters_t;

typedef int64_t (*an__cache_clock_fn)(void *ctx);

/*
 * Backend operations. cache.c validates arguments before calling them, so a
 * backend may assume non-NULL keys and items within the documented limits.
 */
typedef struct {
    const char *name;
    int (*open)(an_cache_t *cache, char *err, size_t err_len);
    void (*close)(an_cache_t *cache);
    int (*get)(an_cache_t *cache, const an_cache_key_t *key, int64_t now_ms, an_buf_t *value,
               an_cache_meta_t *meta);
    int (*put)(an_cache_t *cache, const an_cache_key_t *key, const an__cache_item_t *item);
    int (*del)(an_cache_t *cache, const an_cache_key_t *key);
    int (*purge)(an_cache_t *cache, const char *namespace_, uint64_t *removed);
    int (*stats)(an_cache_t *cache, an_cache_stats_t *stats);
    /* namespace_ is never NULL ("" = default); writes both outputs only on success. */
    int (*namespace_stats)(an_cache_t *cache, const char *namespace_, uint64_t *entries,
                           uint64_t *bytes);
    int (*flush)(an_cache_t *cache);
} an__cache_ops_t;

/*
 * The handle behind an_cache_t. an_cache_open writes every field but
 * counters and the backend state once, and they are read-only afterwards,
 * so they need no lock. Each backend documents the locks of its own state.
 */
struct an_cache {
    const an__cache_ops_t *ops;
    an_cache_options_t opts; /* opts.name and opts.path point at name and path */
    char *name;
    char *path;              /* NULL for memory */
    an__cache_clock_fn clock; /* set before the cache is shared between threads */
    void *clock_ctx;
    an__cache_counters_t counters;
    void *backend;
};

extern const an__cache_ops_t an__cache_memory_ops;
extern const an__cache_ops_t an__cache_lmdb_ops;

/* Returns the cache's current time in Unix epoch ms (an_now_ms unless a test set a clock). */
int64_t an__cache_now_ms(const an_cache_t *cache);

/*
 * Replaces the clock of cache, for tests that step time instead of sleeping.
 * Call it before other threads use the cache; clock NULL restores an_now_ms.
 */
void an__cache_set_clock(an_cache_t *cache, an__cache_clock_fn clock, void *ctx);

/*
 * Turns the lmdb backend's sync at every commit off (durable 0) or back on
 * (durable 1, which first syncs what was written meanwhile). Only for bulk
 * loads in benchmarks: with it off, an operating-system crash may lose the
 * last commits or corrupt the environment, as LMDB 0.9 documents for
 * MDB_NOSYNC. Returns AN_EINVAL for a memory cache.
 */
int an__cache_lmdb_set_durable(an_cache_t *cache, int durable);

/*
 * Sets the lmdb map size, for tests that need a full map without writing
 * max_bytes. LMDB raises a size below the data already stored to that
 * size. Call it while no other thread uses the cache. Returns AN_EINVAL
 * for a memory cache.
 */
int an__cache_lmdb_set_map_bytes(an_cache_t *cache, uint64_t map_bytes);

/* Replaces the contents of buf with len bytes from data; allocates only to grow buf. */
int an__cache_copy_value(an_buf_t *buf, const void *data, size_t len);

/* Copies text of len bytes into a NUL-terminated meta field of cap bytes (len < cap). */
void an__cache_copy_text(char *dst, size_t cap, const char *text, size_t len);

/* Writes a printf-style message into err when err is not NULL. */
void an__cache_error(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
