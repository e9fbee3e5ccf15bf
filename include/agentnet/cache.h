/*
 * Response and embedding caches. One interface over two backends:
 *
 *   memory  a sharded hash table with an exact global LRU, bounded by both
 *           max_entries and max_bytes; lost when the process exits.
 *   lmdb    a persistent store in a directory, bounded by max_bytes and
 *           max_entries with least-recently-used eviction. It survives a
 *           restart and kill -9; readers never block the writer, and several
 *           processes may open the same directory at once.
 *
 * Keys are 32-byte SHA-256 digests (see an_cache_key_request below). Values
 * are opaque bytes with a content type. Every function is thread-safe; each
 * backend documents its locks next to its structures.
 */
#ifndef AGENTNET_CACHE_H
#define AGENTNET_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "agentnet/common.h"

#define AN_CACHE_KEY_BYTES 32
#define AN_CACHE_MAX_CONTENT_TYPE 128
#define AN_CACHE_MAX_NAMESPACE 128

/* Defaults users carry over from the Python API. */
#define AN_CACHE_DEFAULT_TTL_S 3600
#define AN_CACHE_DEFAULT_MAX_ENTRIES 10000
#define AN_CACHE_DEFAULT_MAX_BYTES (256ull * 1024 * 1024)

typedef struct an_cache an_cache_t;

typedef enum {
    AN_CACHE_MEMORY = 0,
    AN_CACHE_LMDB = 1,
} an_cache_backend_t;

typedef struct {
    an_cache_backend_t backend;
    const char *name;        /* "responses" or "embeddings"; used in logs and metrics */
    const char *path;        /* lmdb: directory, created with its parents when missing */
    uint64_t max_entries;    /* evict beyond this many entries; 0 = no entry bound */
    uint64_t max_bytes;      /* evict beyond this many value+metadata bytes */
    uint64_t default_ttl_s;  /* TTL of entries stored without one; 0 = never expires */
    unsigned shards;         /* memory: hash table shards (rounded up to a power of 2) */
} an_cache_options_t;

an_cache_options_t an_cache_options_default(void);

typedef struct {
    uint8_t bytes[AN_CACHE_KEY_BYTES];
} an_cache_key_t;

/* Metadata kept with every entry. */
typedef struct {
    int64_t created_ms;      /* when stored, Unix epoch ms */
    int64_t expires_ms;      /* when it stops being served; 0 = never */
    int64_t last_access_ms;  /* last hit or store */
    uint64_t hits;           /* lookups that returned it; lmdb: those flushed, plus this one */
    uint64_t size;           /* value bytes */
    char content_type[AN_CACHE_MAX_CONTENT_TYPE];
    char namespace_[AN_CACHE_MAX_NAMESPACE];
} an_cache_meta_t;

/* An entry to store. Borrowed for the duration of the call. */
typedef struct {
    const void *value;
    size_t value_len;
    const char *content_type; /* NULL = "application/octet-stream" */
    const char *namespace_;   /* NULL or "" = default namespace */
    int64_t ttl_s;            /* -1 = the cache's default_ttl_s; 0 = never expires */
} an_cache_entry_t;

typedef struct {
    uint64_t hits;
    uint64_t misses;       /* includes lookups that found an expired entry */
    uint64_t stores;
    uint64_t evictions;    /* entries removed to respect a bound */
    uint64_t expirations;  /* entries removed or skipped because their TTL passed */
    uint64_t entries;      /* entries now stored */
    uint64_t bytes;        /* bytes now stored, values plus metadata */
} an_cache_stats_t;

/*
 * Opens a cache. On failure returns an AN_E* code and writes a message that
 * names the path and the fix into err. The caller owns *out and closes it.
 */
int an_cache_open(const an_cache_options_t *opts, an_cache_t **out, char *err, size_t err_len);

/* Flushes pending access records and statistics, then frees the cache. */
void an_cache_close(an_cache_t *cache);

const char *an_cache_name(const an_cache_t *cache);

/*
 * Looks up key. On a hit returns 0, replaces value's contents with the stored
 * bytes and fills meta (either may be NULL). A missing or expired entry
 * returns AN_ENOTFOUND. An expired entry is never returned.
 */
int an_cache_get(an_cache_t *cache, const an_cache_key_t *key, an_buf_t *value,
                 an_cache_meta_t *meta);

/*
 * Stores or replaces an entry, evicting least-recently-used entries to stay
 * within the bounds. An entry larger than max_bytes returns AN_ETOOBIG.
 */
int an_cache_put(an_cache_t *cache, const an_cache_key_t *key, const an_cache_entry_t *entry);

/* Removes one entry; AN_ENOTFOUND when absent. */
int an_cache_delete(an_cache_t *cache, const an_cache_key_t *key);

/*
 * Removes every entry of namespace_ (NULL = all entries) and stores the
 * number removed in *removed when not NULL.
 */
int an_cache_purge(an_cache_t *cache, const char *namespace_, uint64_t *removed);

/* Fills stats. For lmdb the counters include those of other processes. */
int an_cache_stats(an_cache_t *cache, an_cache_stats_t *stats);

/*
 * Counts the entries stored under namespace_ (NULL or "" = the default
 * namespace) into *entries and their bytes, counted as stats.bytes counts
 * them, into *bytes. Like an_cache_stats it includes expired entries that
 * no lookup or flush has removed yet. Hits, misses and the other counters
 * are kept per cache, so there is no per-namespace form of them. Returns
 * AN_EINVAL for a namespace of AN_CACHE_MAX_NAMESPACE bytes or more, which
 * no entry can have. The count takes one pass over every entry: memory
 * locks one shard at a time, lmdb reads in one read-only transaction.
 */
int an_cache_namespace_stats(an_cache_t *cache, const char *namespace_, uint64_t *entries,
                             uint64_t *bytes);

/*
 * Writes access records and counters kept in memory to persistent storage
 * (lmdb). Called periodically by the server and on close; a no-op for memory.
 */
int an_cache_flush(an_cache_t *cache);

/*
 * Request keys.
 *
 * A key is SHA-256 over a canonical form of the request:
 *
 *   "agentnet-cache-v1" NUL route NUL namespace NUL tenant NUL
 *   sha256(Authorization header) or "" NUL canonical JSON body
 *
 * where a NULL route, namespace or tenant is "", and the Authorization
 * digest is written as 64 lowercase hex digits ("" when the header is NULL
 * or empty).
 *
 * The canonical body is the JSON with object keys sorted by byte order,
 * no insignificant whitespace, and integral floats written as integers
 * (1.0 as 1), so the same request in another key order or spacing gives
 * the same key. These top-level body fields are left out because they
 * cannot change the response:
 *
 *   user, metadata, stream_options, store, service_tier,
 *   safety_identifier, prompt_cache_key
 *
 * (identity, bookkeeping, billing tier and streaming-usage options).
 *
 * Every other field is part of the key, including fields OpenAI does not
 * define (top_k, repetition_penalty, provider options). "stream" is part of
 * the key, so streaming and non-streaming requests are cached apart.
 */

/* A NULL-terminated list of the top-level body fields left out of keys. */
extern const char *const an_cache_key_ignored_fields[];

typedef struct {
    const char *route;         /* "/v1/chat/completions" */
    const char *namespace_;    /* NULL or "" = default */
    const char *tenant;        /* NULL or "" = none */
    const char *authorization; /* the request's Authorization header, or NULL */
} an_cache_key_scope_t;

/*
 * Computes the key of body under scope. body is borrowed and not modified.
 * Returns AN_EINVAL when body is not a JSON object.
 */
int an_cache_key_request(const an_cache_key_scope_t *scope, const json_t *body,
                         an_cache_key_t *out);

/*
 * Computes SHA-256 over the scope and the body bytes exactly as sent, with
 * no canonical form, so only byte-identical requests share it. The gateway
 * uses it to remember the canonical key of a body it has parsed before and
 * skip parsing an exact repeat. It is not a cache key itself.
 */
int an_cache_key_raw(const an_cache_key_scope_t *scope, const void *body, size_t body_len,
                     an_cache_key_t *out);

/*
 * Writes the canonical JSON of value (keys sorted, compact, integral floats
 * as integers) to out, replacing its contents, and leaves out top-level
 * ignored fields when skip_ignored is non-zero and value is an object.
 * Other reals are written in the shortest form that reads back as the same
 * double, and strings escape only '"', '\\' and control characters.
 */
int an_cache_canonical_json(const json_t *value, int skip_ignored, an_buf_t *out);

/* Writes the 64-character hex form of key plus a NUL to out. */
void an_cache_key_hex(const an_cache_key_t *key, char out[2 * AN_CACHE_KEY_BYTES + 1]);

#endif
