/*
 * Private contract of the lmdb backend: the handle and its locks, the on-disk
 * formats of its four named databases, and the shared helpers. Those live in
 * lmdb.c (operations), lmdb_env.c (environment and transactions), lmdb_lru.c
 * (LRU index, access records, eviction), lmdb_record.c (record encoding) and
 * lmdb_repair.c (the check and repair at open).
 */
#ifndef AGENTNET_CACHE_LMDB_INTERNAL_H
#define AGENTNET_CACHE_LMDB_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include <lmdb.h>

#include "cache/cache_internal.h"

/*
 * One LMDB environment per cache directory, with four named databases.
 * Integers are little-endian unless marked big-endian.
 *
 * "entries": key = the 32-byte cache key, value = one record that is
 * written once per store and never rewritten:
 *
 *   offset  bytes  field
 *   0       1      format version, AN__LMDB_RECORD_VERSION
 *   1       1      C = content type length, 0..127
 *   2       1      N = namespace length, 0..127 (0 = default namespace)
 *   3       5      reserved, written as 0
 *   8       8      created_ms, Unix epoch ms (signed)
 *   16      8      expires_ms, Unix epoch ms; 0 = never expires
 *   24      8      V = value length
 *   32      C      content type, no NUL
 *   32+C    N      namespace, no NUL
 *   32+C+N  V      value
 *
 * "access": key = the cache key, value = what hits change, kept apart from
 * the record so that applying a hit rewrites 24 bytes instead of the value:
 *
 *   offset  bytes  field
 *   0       8      last_access_ms: time of the store or of the latest flushed hit
 *   8       8      lru_seq: sequence number of this entry's "lru" key
 *   16      8      hits flushed so far
 *
 * "lru": key = last_access_ms (8 bytes, big-endian) + lru_seq (8 bytes,
 * big-endian) + cache key (32 bytes), value empty. Big-endian makes LMDB's
 * byte order the access order, so the first key is the least recently used
 * entry. Every entry has exactly one "lru" key, the one its "access" value
 * names.
 *
 * "meta": key = a name from an__lmdb_meta_names, value = 8-byte unsigned
 * integer: the format version, the totals of entries and bytes, the last
 * lru_seq issued, and the counters of hits, misses, stores, evictions and
 * expirations from every process.
 *
 * Every write transaction keeps the three per-entry databases in step: an
 * entry has a record, an access value and an "lru" key, or none of them.
 *
 * The "format" meta value is the version of this whole layout. Format 1 was
 * also written by builds that had no "access" database and kept the access
 * fields in a 56-byte record header, under the same record version byte 1,
 * so a format 1 environment may hold records of either layout. Opening one
 * runs the repair in lmdb_repair.c, which drops the records that do not
 * decode and rebuilds "access" and "lru" around the rest. Change the
 * layout only together with AN__LMDB_FORMAT_VERSION, so that older builds
 * reject the directory instead of misreading it.
 */
#define AN__LMDB_FORMAT_VERSION 2
#define AN__LMDB_RECORD_VERSION 1
#define AN__LMDB_HEADER_BYTES 32
#define AN__LMDB_ACCESS_BYTES 24
#define AN__LMDB_LRU_KEY_BYTES (16 + AN_CACHE_KEY_BYTES)

/* Indexes into the persisted counters; see an__lmdb_meta_names. */
enum {
    AN__LMDB_META_FORMAT,
    AN__LMDB_META_ENTRIES,
    AN__LMDB_META_BYTES,
    AN__LMDB_META_LRU_SEQ,
    AN__LMDB_META_HITS,
    AN__LMDB_META_MISSES,
    AN__LMDB_META_STORES,
    AN__LMDB_META_EVICTIONS,
    AN__LMDB_META_EXPIRATIONS,
    AN__LMDB_META_COUNT,
};

extern const char *const an__lmdb_meta_names[AN__LMDB_META_COUNT];

/* A decoded "entries" record. The pointers point into the encoded bytes. */
typedef struct {
    int64_t created_ms;
    int64_t expires_ms;
    const char *content_type;
    size_t content_type_len;
    const char *namespace_;
    size_t namespace_len;
    const void *value;
    size_t value_len;
} an__lmdb_record_t;

/* A decoded "access" value. */
typedef struct {
    int64_t last_access_ms;
    uint64_t lru_seq;
    uint64_t hits;
} an__lmdb_access_rec_t;

/* Hits on one entry not yet written to disk: the key, the latest hit's time and the number of hits. */
typedef struct {
    an_cache_key_t key;
    int64_t at_ms;
    uint64_t count;
} an__lmdb_touch_t;

/*
 * Entries with pending hits at which a put flushes them. A flush updates
 * the "access" value and "lru" key of each such entry, so this bounds the
 * work a put may take on.
 */
#define AN__LMDB_FLUSH_TOUCHES 4096

/* Reset read transactions kept per cache; after a larger burst of readers the excess is aborted. */
#define AN__LMDB_MAX_POOLED_READERS 256

/* An expired entry seen by a lookup, to be deleted at the next flush. */
typedef struct {
    an_cache_key_t key;
    int64_t expires_ms;
} an__lmdb_expired_t;

typedef struct {
    void *items;
    size_t len;
    size_t cap;
} an__lmdb_list_t;

/*
 * Hits and expired entries waiting for a write transaction. Pending hits
 * are kept one per entry: slots is an open-addressing index from key to
 * position in pending, so repeated hits on a hot entry take no more room.
 *
 * touch_lock guards pending, slots, expired and dropped, which lookups and
 * writers share. spare needs no lock: only the thread inside the LMDB write
 * transaction uses it, and LMDB lets one thread at a time in.
 */
typedef struct {
    pthread_mutex_t touch_lock;
    an__lmdb_list_t pending;  /* an__lmdb_touch_t, one per entry */
    uint32_t *slots;          /* 1 + position in pending, or 0 for an empty slot */
    size_t slot_mask;         /* slot count - 1; the count is a power of 2 */
    an__lmdb_list_t expired;  /* an__lmdb_expired_t */
    uint64_t dropped;         /* hits lost because pending was full */
    an__lmdb_list_t spare;    /* the previous pending array, reused */
} an__lmdb_access_t;

/*
 * The lmdb backend state. Handles and dbis are set at open and read-only
 * afterwards. Locks, in the order they are taken: flush_lock, then
 * write_lock, then map_lock, then LMDB's own writer lock, then pool_lock or
 * touch_lock (leaf locks).
 */
typedef struct {
    MDB_env *env;
    MDB_dbi entries_dbi;
    MDB_dbi access_dbi;
    MDB_dbi lru_dbi;
    MDB_dbi meta_dbi;
    char *real_path; /* registry key; see lmdb_env.c */
    unsigned fork_count;          /* forks counted when the cache was opened; see lmdb_env.c */
    _Atomic int inherited_logged; /* 1 once use after a fork was logged */

    /*
     * Held shared by every transaction and exclusive while adopting a map
     * size that another process grew, because LMDB may remap only when no
     * transaction of this process is active.
     */
    pthread_rwlock_t map_lock;

    /* Reset read-only transactions kept for reuse; pool_lock guards pool and pool_len. */
    pthread_mutex_t pool_lock;
    MDB_txn **pool;
    size_t pool_len;

    /*
     * Serializes flushes with each other and with stats, so that stats never
     * counts a delta twice, once persisted and once still pending.
     */
    pthread_mutex_t flush_lock;

    /*
     * Held around every write transaction, so that at most one thread of
     * this process waits on LMDB's writer lock, a robust mutex shared with
     * other processes. When a process dies holding that lock, the kernel
     * wakes one waiter. If it wakes another thread of the dying process, the
     * wakeup is lost, and waiters in live processes sleep until a new writer
     * arrives. test_cache_lmdb_stress hung that way before this lock.
     */
    pthread_mutex_t write_lock;

    an__lmdb_access_t access;
} an__lmdb_cache_t;

/* A write transaction and the meta values it loaded, stored back on commit. */
typedef struct {
    MDB_txn *txn;
    uint64_t meta[AN__LMDB_META_COUNT];
} an__lmdb_write_t;

/* Body of a write transaction; returns 0 or an LMDB error code. */
typedef int (*an__lmdb_write_fn)(an_cache_t *cache, an__lmdb_write_t *w, void *ctx);

/* Subtracts amount from a meta total, stopping at 0 rather than wrapping. */
static inline void an__lmdb_meta_sub(uint64_t *total, uint64_t amount)
{
    *total = *total > amount ? *total - amount : 0;
}

/* lmdb_record.c */
size_t an__lmdb_record_size(size_t content_type_len, size_t namespace_len, size_t value_len);
void an__lmdb_record_encode(const an__lmdb_record_t *rec, void *out);
int an__lmdb_record_decode(const void *data, size_t len, an__lmdb_record_t *rec);
uint64_t an__lmdb_record_bytes(const an__lmdb_record_t *rec);
void an__lmdb_access_encode(const an__lmdb_access_rec_t *access, uint8_t out[AN__LMDB_ACCESS_BYTES]);
int an__lmdb_access_decode(const void *data, size_t len, an__lmdb_access_rec_t *access);
void an__lmdb_lru_key(int64_t last_access_ms, uint64_t lru_seq, const an_cache_key_t *key,
                      uint8_t out[AN__LMDB_LRU_KEY_BYTES]);
uint64_t an__lmdb_u64_load(const void *p);
void an__lmdb_u64_store(void *p, uint64_t v);

/* lmdb_env.c */
int an__lmdb_env_open(an_cache_t *cache, char *err, size_t err_len);
void an__lmdb_env_close(an_cache_t *cache);
int an__lmdb_forked_since_open(const an__lmdb_cache_t *lc);
int an__lmdb_inherited(an_cache_t *cache);
int an__lmdb_read_begin(an_cache_t *cache, MDB_txn **txn);
void an__lmdb_read_end(an_cache_t *cache, MDB_txn *txn);
int an__lmdb_meta_read(an__lmdb_cache_t *lc, MDB_txn *txn, uint64_t meta[AN__LMDB_META_COUNT]);
int an__lmdb_write(an_cache_t *cache, an__lmdb_write_fn fn, void *ctx);
int an__lmdb_error(const an_cache_t *cache, const char *operation, int rc);

/* What the open-time check of lmdb_repair.c found and changed. */
typedef struct {
    int repaired;            /* 1 when the repair ran */
    uint64_t stored_format;  /* the "format" meta value before the check */
    uint64_t dropped;        /* records that did not decode, deleted */
    uint64_t index_fixes;    /* "access" values and "lru" keys added or deleted */
    uint64_t entries_before; /* the persisted totals before the repair */
    uint64_t bytes_before;
    uint64_t entries_after;  /* and after it, from a full scan */
    uint64_t bytes_after;
} an__lmdb_repair_t;

/* lmdb_repair.c */
int an__lmdb_check_fn(an_cache_t *cache, an__lmdb_write_t *w, void *ctx);

/* lmdb_lru.c */
int an__lmdb_access_init(an__lmdb_access_t *access);
void an__lmdb_access_free(an__lmdb_access_t *access);
void an__lmdb_record_touch(an__lmdb_access_t *access, const an_cache_key_t *key, int64_t at_ms);
int an__lmdb_queue_expired(an__lmdb_access_t *access, const an_cache_key_t *key,
                           int64_t expires_ms);
size_t an__lmdb_pending_touches(an__lmdb_access_t *access);
int an__lmdb_apply_touches(an_cache_t *cache, an__lmdb_write_t *w);
int an__lmdb_delete_expired(an_cache_t *cache, an__lmdb_write_t *w, int64_t now_ms);
int an__lmdb_remove_index(an_cache_t *cache, an__lmdb_write_t *w, const an_cache_key_t *key);
int an__lmdb_remove_entry(an_cache_t *cache, an__lmdb_write_t *w, const an_cache_key_t *key,
                          uint64_t bytes);
uint64_t an__lmdb_stored_bytes(const void *data, size_t len);
int an__lmdb_insert_entry(an_cache_t *cache, an__lmdb_write_t *w, const an_cache_key_t *key,
                          const an__cache_item_t *item);
int an__lmdb_evict_oldest(an_cache_t *cache, an__lmdb_write_t *w, uint64_t *evicted);

#endif
