/*
 * Front end of the cache: options, argument checks, TTL and size rules, and
 * dispatch to the memory or lmdb backend. Storage, eviction and locking live
 * in the backends; request keys live in key.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentnet/event.h"
#include "agentnet/log.h"
#include "cache/cache_internal.h"

#define DEFAULT_CONTENT_TYPE "application/octet-stream"

/* Shard count when the options leave it at 0; enough to spread a server thread pool. */
#define DEFAULT_SHARDS 16u

/* Largest shard count accepted, so that an eviction scan over all shards stays cheap. */
#define MAX_SHARDS 1024u


an_cache_options_t an_cache_options_default(void)
{
    an_cache_options_t opts = {
        .backend = AN_CACHE_MEMORY,
        .name = "responses",
        .path = NULL,
        .max_entries = AN_CACHE_DEFAULT_MAX_ENTRIES,
        .max_bytes = AN_CACHE_DEFAULT_MAX_BYTES,
        .default_ttl_s = AN_CACHE_DEFAULT_TTL_S,
        .shards = DEFAULT_SHARDS,
    };
    return opts;
}


void an__cache_error(char *err, size_t err_len, const char *fmt, ...)
{
    if (!err || err_len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}


static int64_t default_clock(void *ctx)
{
    (void)ctx;
    return an_now_ms();
}


int64_t an__cache_now_ms(const an_cache_t *cache)
{
    return cache->clock(cache->clock_ctx);
}


void an__cache_set_clock(an_cache_t *cache, an__cache_clock_fn clock, void *ctx)
{
    cache->clock = clock ? clock : default_clock;
    cache->clock_ctx = clock ? ctx : NULL;
}


int an__cache_copy_value(an_buf_t *buf, const void *data, size_t len)
{
    buf->len = 0;
    if (an_buf_reserve(buf, len) != 0)
        return AN_ENOMEM;
    if (len)
        memcpy(buf->data, data, len);
    buf->len = len;
    buf->data[len] = '\0';
    return 0;
}


void an__cache_copy_text(char *dst, size_t cap, const char *text, size_t len)
{
    if (len >= cap)
        len = cap - 1;
    memcpy(dst, text, len);
    dst[len] = '\0';
}


static unsigned round_up_pow2(unsigned n)
{
    unsigned p = 1;
    while (p < n)
        p <<= 1;
    return p;
}


int an_cache_open(const an_cache_options_t *opts, an_cache_t **out, char *err, size_t err_len)
{
    *out = NULL;
    const char *name = opts->name && opts->name[0] ? opts->name : "cache";

    if (opts->max_bytes == 0) {
        an__cache_error(err, err_len,
                        "cache \"%s\": max_bytes is 0; set a size bound in bytes greater than 0",
                        name);
        return AN_EINVAL;
    }
    if (opts->shards > MAX_SHARDS) {
        an__cache_error(err, err_len,
                        "cache \"%s\": %u shards is more than the maximum %u; lower the shard count",
                        name, opts->shards, MAX_SHARDS);
        return AN_EINVAL;
    }

    const an__cache_ops_t *ops;
    switch (opts->backend) {
    case AN_CACHE_MEMORY:
        ops = &an__cache_memory_ops;
        break;
    case AN_CACHE_LMDB:
        if (!opts->path || !opts->path[0]) {
            an__cache_error(err, err_len,
                            "cache \"%s\": the lmdb backend needs a directory; pass --data-dir",
                            name);
            return AN_EINVAL;
        }
        ops = &an__cache_lmdb_ops;
        break;
    default:
        an__cache_error(err, err_len, "cache \"%s\": unknown backend %d; use memory or lmdb", name,
                        (int)opts->backend);
        return AN_EINVAL;
    }

    an_cache_t *cache = calloc(1, sizeof(*cache));
    if (!cache)
        goto fail_alloc;
    cache->name = strdup(name);
    if (!cache->name)
        goto fail_name;
    if (opts->backend == AN_CACHE_LMDB) {
        cache->path = strdup(opts->path);
        if (!cache->path)
            goto fail_path;
    }

    cache->ops = ops;
    cache->opts = *opts;
    cache->opts.name = cache->name;
    cache->opts.path = cache->path;
    cache->opts.shards = round_up_pow2(opts->shards ? opts->shards : DEFAULT_SHARDS);
    an__cache_set_clock(cache, NULL, NULL);

    int rc = ops->open(cache, err, err_len);
    if (rc != 0) {
        free(cache->path);
        free(cache->name);
        free(cache);
        return rc;
    }

    char max_bytes[32], max_entries[32], ttl[32];
    snprintf(max_bytes, sizeof(max_bytes), "%llu", (unsigned long long)opts->max_bytes);
    snprintf(max_entries, sizeof(max_entries), "%llu", (unsigned long long)opts->max_entries);
    snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)opts->default_ttl_s);
    if (cache->path)
        an_log(AN_LOG_INFO, "cache: opened", "cache", cache->name, "backend", ops->name,
               "max_bytes", max_bytes, "max_entries", max_entries, "default_ttl_s", ttl, "path",
               cache->path, (const char *)NULL);
    else
        an_log(AN_LOG_INFO, "cache: opened", "cache", cache->name, "backend", ops->name,
               "max_bytes", max_bytes, "max_entries", max_entries, "default_ttl_s", ttl,
               (const char *)NULL);
    *out = cache;
    return 0;

fail_path:
    free(cache->name);
fail_name:
    free(cache);
fail_alloc:
    an__cache_error(err, err_len, "cache \"%s\": out of memory while opening", name);
    return AN_ENOMEM;
}


void an_cache_close(an_cache_t *cache)
{
    if (!cache)
        return;
    cache->ops->close(cache);
    an_log(AN_LOG_INFO, "cache: closed", "cache", cache->name, (const char *)NULL);
    free(cache->path);
    free(cache->name);
    free(cache);
}


const char *an_cache_name(const an_cache_t *cache)
{
    return cache->name;
}


int an_cache_get(an_cache_t *cache, const an_cache_key_t *key, an_buf_t *value,
                 an_cache_meta_t *meta)
{
    if (!cache || !key)
        return AN_EINVAL;
    return cache->ops->get(cache, key, an__cache_now_ms(cache), value, meta);
}


/*
 * Turns the caller's entry into an item: applies the default content type
 * and TTL, rejects over-long metadata, and rejects an entry that could never
 * fit under max_bytes even in an empty cache.
 */
static int prepare_item(const an_cache_t *cache, const an_cache_entry_t *entry,
                        an__cache_item_t *item)
{
    if (!entry->value && entry->value_len > 0)
        return AN_EINVAL;
    if (entry->ttl_s < -1)
        return AN_EINVAL;

    item->value = entry->value ? entry->value : "";
    item->value_len = entry->value_len;
    item->content_type = entry->content_type ? entry->content_type : DEFAULT_CONTENT_TYPE;
    item->content_type_len = strlen(item->content_type);
    item->namespace_ = entry->namespace_ ? entry->namespace_ : "";
    item->namespace_len = strlen(item->namespace_);
    if (item->content_type_len >= AN_CACHE_MAX_CONTENT_TYPE ||
        item->namespace_len >= AN_CACHE_MAX_NAMESPACE)
        return AN_EINVAL;

    item->now_ms = an__cache_now_ms(cache);
    uint64_t ttl_s = entry->ttl_s == -1 ? cache->opts.default_ttl_s : (uint64_t)entry->ttl_s;
    /* A TTL past the year 292 million is as good as never expiring. */
    if (ttl_s == 0 || ttl_s > (uint64_t)(INT64_MAX - item->now_ms) / 1000)
        item->expires_ms = 0;
    else
        item->expires_ms = item->now_ms + (int64_t)ttl_s * 1000;

    item->bytes = an__cache_entry_bytes(item->value_len, item->content_type_len,
                                        item->namespace_len);
    if (item->bytes > cache->opts.max_bytes)
        return AN_ETOOBIG;
    return 0;
}


int an_cache_put(an_cache_t *cache, const an_cache_key_t *key, const an_cache_entry_t *entry)
{
    if (!cache || !key || !entry)
        return AN_EINVAL;
    an__cache_item_t item;
    int rc = prepare_item(cache, entry, &item);
    if (rc != 0)
        return rc;
    return cache->ops->put(cache, key, &item);
}


int an_cache_delete(an_cache_t *cache, const an_cache_key_t *key)
{
    if (!cache || !key)
        return AN_EINVAL;
    return cache->ops->del(cache, key);
}


int an_cache_purge(an_cache_t *cache, const char *namespace_, uint64_t *removed)
{
    if (!cache)
        return AN_EINVAL;
    uint64_t count = 0;
    int rc = cache->ops->purge(cache, namespace_, &count);
    if (removed)
        *removed = count;

    /* The audit event carries the namespace and count only, never keys or values. */
    json_t *detail = json_pack("{s:s, s:s?, s:I}", "cache", cache->name, "namespace", namespace_,
                               "removed", (json_int_t)count);
    char *detail_json = detail ? json_dumps(detail, JSON_COMPACT) : NULL;
    an_event_emit("cache", "purge", rc == 0 ? "ok" : "error", detail_json);
    free(detail_json);
    json_decref(detail);

    char count_text[32];
    snprintf(count_text, sizeof(count_text), "%llu", (unsigned long long)count);
    const char *namespace_text = namespace_ ? namespace_ : "(all)";
    if (rc == 0)
        an_log(AN_LOG_INFO, "cache: purged", "cache", cache->name, "namespace", namespace_text,
               "removed", count_text, (const char *)NULL);
    else
        an_log(AN_LOG_ERROR, "cache: purge failed", "cache", cache->name, "namespace",
               namespace_text, "error", an_strerror(rc), (const char *)NULL);
    return rc;
}


int an_cache_stats(an_cache_t *cache, an_cache_stats_t *stats)
{
    if (!cache || !stats)
        return AN_EINVAL;
    memset(stats, 0, sizeof(*stats));
    return cache->ops->stats(cache, stats);
}


int an_cache_namespace_stats(an_cache_t *cache, const char *namespace_, uint64_t *entries,
                             uint64_t *bytes)
{
    if (!cache || !entries || !bytes)
        return AN_EINVAL;
    *entries = 0;
    *bytes = 0;
    const char *name = namespace_ ? namespace_ : "";
    if (strlen(name) >= AN_CACHE_MAX_NAMESPACE)
        return AN_EINVAL;
    return cache->ops->namespace_stats(cache, name, entries, bytes);
}


int an_cache_flush(an_cache_t *cache)
{
    if (!cache)
        return AN_EINVAL;
    return cache->ops->flush(cache);
}
