/*
 * The memory cache backend: exact LRU across shards, both bounds, TTLs on a
 * test clock, statistics, purge by namespace and concurrent use.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "agentnet/cache.h"
#include "agentnet/log.h"
#include "cache/cache_internal.h"

/* A clock the test moves by hand; starts at a fixed date so expiries are exact. */
typedef struct {
    int64_t now_ms;
} test_clock_t;

static int64_t read_test_clock(void *ctx)
{
    return ((test_clock_t *)ctx)->now_ms;
}


/* Returns the key numbered i: the SHA-256 of its decimal form, like a real key. */
static an_cache_key_t key_n(int i)
{
    char text[32];
    int len = snprintf(text, sizeof(text), "%d", i);
    an_cache_key_t key;
    unsigned int out_len = 0;
    EVP_Digest(text, (size_t)len, key.bytes, &out_len, EVP_sha256(), NULL);
    return key;
}


static an_cache_t *open_memory(uint64_t max_entries, uint64_t max_bytes, uint64_t ttl_s,
                               unsigned shards, test_clock_t *clock)
{
    an_cache_options_t opts = an_cache_options_default();
    opts.backend = AN_CACHE_MEMORY;
    opts.name = "test";
    opts.max_entries = max_entries;
    opts.max_bytes = max_bytes;
    opts.default_ttl_s = ttl_s;
    opts.shards = shards;
    an_cache_t *cache = NULL;
    char err[256] = "";
    int rc = an_cache_open(&opts, &cache, err, sizeof(err));
    if (rc != 0)
        fail_msg("an_cache_open failed: %s", err);
    if (clock)
        an__cache_set_clock(cache, read_test_clock, clock);
    return cache;
}


static int put_text(an_cache_t *cache, int i, const char *text, const char *namespace_,
                    int64_t ttl_s)
{
    an_cache_key_t key = key_n(i);
    an_cache_entry_t entry = {
        .value = text,
        .value_len = strlen(text),
        .content_type = "text/plain",
        .namespace_ = namespace_,
        .ttl_s = ttl_s,
    };
    return an_cache_put(cache, &key, &entry);
}


static int get_n(an_cache_t *cache, int i, an_buf_t *value, an_cache_meta_t *meta)
{
    an_cache_key_t key = key_n(i);
    return an_cache_get(cache, &key, value, meta);
}


static int present(an_cache_t *cache, int i)
{
    return get_n(cache, i, NULL, NULL) == 0;
}


static an_cache_stats_t stats_of(an_cache_t *cache)
{
    an_cache_stats_t stats;
    assert_int_equal(an_cache_stats(cache, &stats), 0);
    return stats;
}


static void get_returns_value_and_meta(void **state)
{
    (void)state;
    test_clock_t clock = {1700000000000};
    an_cache_t *cache = open_memory(10, 1 << 20, 60, 4, &clock);
    assert_int_equal(put_text(cache, 1, "hello", "team-a", -1), 0);

    clock.now_ms += 500;
    an_buf_t value = {0};
    an_cache_meta_t meta;
    assert_int_equal(get_n(cache, 1, &value, &meta), 0);
    assert_int_equal(value.len, 5);
    assert_string_equal(value.data, "hello");
    assert_int_equal(meta.created_ms, 1700000000000);
    assert_int_equal(meta.expires_ms, 1700000060000);
    assert_int_equal(meta.last_access_ms, 1700000000500);
    assert_int_equal(meta.hits, 1);
    assert_int_equal(meta.size, 5);
    assert_string_equal(meta.content_type, "text/plain");
    assert_string_equal(meta.namespace_, "team-a");

    assert_int_equal(get_n(cache, 1, &value, &meta), 0);
    assert_int_equal(meta.hits, 2);

    an_buf_free(&value);
    an_cache_close(cache);
}


static void get_defaults_content_type_and_namespace(void **state)
{
    (void)state;
    an_cache_t *cache = open_memory(10, 1 << 20, 60, 1, NULL);
    an_cache_key_t key = key_n(1);
    an_cache_entry_t entry = {.value = "x", .value_len = 1, .ttl_s = -1};
    assert_int_equal(an_cache_put(cache, &key, &entry), 0);

    an_cache_meta_t meta;
    assert_int_equal(an_cache_get(cache, &key, NULL, &meta), 0);
    assert_string_equal(meta.content_type, "application/octet-stream");
    assert_string_equal(meta.namespace_, "");
    an_cache_close(cache);
}


static void get_reuses_large_enough_buffer(void **state)
{
    (void)state;
    an_cache_t *cache = open_memory(10, 1 << 20, 60, 1, NULL);
    assert_int_equal(put_text(cache, 1, "0123456789", NULL, -1), 0);

    an_buf_t value = {0};
    assert_int_equal(an_buf_reserve(&value, 4096), 0);
    char *data = value.data;
    assert_int_equal(get_n(cache, 1, &value, NULL), 0);
    assert_ptr_equal(value.data, data);
    assert_string_equal(value.data, "0123456789");

    an_buf_free(&value);
    an_cache_close(cache);
}


static void missing_key_is_not_found(void **state)
{
    (void)state;
    an_cache_t *cache = open_memory(10, 1 << 20, 60, 4, NULL);
    an_buf_t value = {0};
    assert_int_equal(get_n(cache, 7, &value, NULL), AN_ENOTFOUND);
    assert_int_equal(stats_of(cache).misses, 1);
    an_cache_close(cache);
}


static void put_replaces_existing_entry(void **state)
{
    (void)state;
    an_cache_t *cache = open_memory(10, 1 << 20, 60, 4, NULL);
    assert_int_equal(put_text(cache, 1, "first", NULL, -1), 0);
    assert_int_equal(put_text(cache, 1, "second value", "ns", -1), 0);

    an_buf_t value = {0};
    an_cache_meta_t meta;
    assert_int_equal(get_n(cache, 1, &value, &meta), 0);
    assert_string_equal(value.data, "second value");
    assert_int_equal(meta.hits, 1);

    an_cache_stats_t stats = stats_of(cache);
    assert_int_equal(stats.entries, 1);
    assert_int_equal(stats.bytes, an__cache_entry_bytes(12, strlen("text/plain"), 2));
    assert_int_equal(stats.stores, 2);
    an_buf_free(&value);
    an_cache_close(cache);
}


static void lru_evicts_least_recent_first(void **state)
{
    (void)state;
    an_cache_t *cache = open_memory(3, 1 << 20, 0, 1, NULL);
    assert_int_equal(put_text(cache, 1, "a", NULL, -1), 0);
    assert_int_equal(put_text(cache, 2, "b", NULL, -1), 0);
    assert_int_equal(put_text(cache, 3, "c", NULL, -1), 0);
    assert_true(present(cache, 1)); /* 1 is now newer than 2 and 3 */

    assert_int_equal(put_text(cache, 4, "d", NULL, -1), 0);
    assert_false(present(cache, 2));
    assert_true(present(cache, 1));
    assert_true(present(cache, 3));
    assert_true(present(cache, 4));
    assert_int_equal(stats_of(cache).evictions, 1);
    an_cache_close(cache);
}


/*
 * Touches 64 entries spread over 16 shards in a shuffled order, then stores
 * 32 more: exactly the first 32 touched must be gone, whatever their shard.
 */
static void lru_order_is_global_across_shards(void **state)
{
    (void)state;
    enum { OLD = 64, NEW = 32 };
    an_cache_t *cache = open_memory(OLD, 1 << 24, 0, 16, NULL);
    for (int i = 0; i < OLD; i++)
        assert_int_equal(put_text(cache, i, "v", NULL, -1), 0);

    int order[OLD];
    for (int i = 0; i < OLD; i++)
        order[i] = (i * 37) % OLD; /* 37 is coprime with 64, so this is a permutation */
    for (int i = 0; i < OLD; i++)
        assert_true(present(cache, order[i]));

    for (int i = 0; i < NEW; i++)
        assert_int_equal(put_text(cache, 1000 + i, "v", NULL, -1), 0);

    for (int i = 0; i < NEW; i++) {
        if (present(cache, order[i]))
            fail_msg("entry %d, touched %dth, survived; the %d least recent should be gone",
                     order[i], i, NEW);
    }
    for (int i = NEW; i < OLD; i++) {
        if (!present(cache, order[i]))
            fail_msg("entry %d, touched %dth, was evicted before older ones", order[i], i);
    }
    assert_int_equal(stats_of(cache).evictions, NEW);
    an_cache_close(cache);
}


static void entry_bound_keeps_max_entries(void **state)
{
    (void)state;
    an_cache_t *cache = open_memory(10, 1 << 24, 0, 4, NULL);
    for (int i = 0; i < 25; i++)
        assert_int_equal(put_text(cache, i, "value", NULL, -1), 0);

    an_cache_stats_t stats = stats_of(cache);
    assert_int_equal(stats.entries, 10);
    assert_int_equal(stats.evictions, 15);
    for (int i = 15; i < 25; i++)
        assert_true(present(cache, i));
    an_cache_close(cache);
}


static void byte_bound_keeps_max_bytes(void **state)
{
    (void)state;
    char value[101];
    memset(value, 'x', 100);
    value[100] = '\0';
    uint64_t entry_bytes = an__cache_entry_bytes(100, strlen("text/plain"), 0);
    /* Room for four entries and most of a fifth. */
    an_cache_t *cache = open_memory(0, entry_bytes * 5 - 1, 0, 4, NULL);
    for (int i = 0; i < 12; i++)
        assert_int_equal(put_text(cache, i, value, NULL, -1), 0);

    an_cache_stats_t stats = stats_of(cache);
    assert_int_equal(stats.entries, 4);
    assert_int_equal(stats.bytes, entry_bytes * 4);
    assert_int_equal(stats.evictions, 8);
    for (int i = 8; i < 12; i++)
        assert_true(present(cache, i));

    /* An entry that counts as much as three small ones evicts three of them. */
    size_t big_len = 3 * entry_bytes - an__cache_entry_bytes(0, strlen("text/plain"), 0);
    char *big = malloc(big_len + 1);
    memset(big, 'y', big_len);
    big[big_len] = '\0';
    assert_int_equal(put_text(cache, 100, big, NULL, -1), 0);
    free(big);
    stats = stats_of(cache);
    assert_int_equal(stats.entries, 2);
    assert_true(present(cache, 100));
    assert_true(present(cache, 11));
    an_cache_close(cache);
}


static void put_larger_than_max_bytes_is_too_big(void **state)
{
    (void)state;
    uint64_t max_bytes = an__cache_entry_bytes(100, strlen("text/plain"), 0);
    an_cache_t *cache = open_memory(0, max_bytes, 0, 1, NULL);
    char value[102];
    memset(value, 'x', 101);
    value[101] = '\0';
    assert_int_equal(put_text(cache, 1, value, NULL, -1), AN_ETOOBIG);
    value[100] = '\0';
    assert_int_equal(put_text(cache, 2, value, NULL, -1), 0);
    assert_int_equal(stats_of(cache).entries, 1);
    an_cache_close(cache);
}


static void put_rejects_invalid_entries(void **state)
{
    (void)state;
    an_cache_t *cache = open_memory(10, 1 << 20, 0, 1, NULL);
    an_cache_key_t key = key_n(1);
    char long_text[AN_CACHE_MAX_NAMESPACE + 1];
    memset(long_text, 'n', sizeof(long_text) - 1);
    long_text[sizeof(long_text) - 1] = '\0';

    an_cache_entry_t entry = {.value = "v", .value_len = 1, .ttl_s = -2};
    assert_int_equal(an_cache_put(cache, &key, &entry), AN_EINVAL);
    entry.ttl_s = -1;
    entry.namespace_ = long_text;
    assert_int_equal(an_cache_put(cache, &key, &entry), AN_EINVAL);
    entry.namespace_ = NULL;
    entry.content_type = long_text;
    assert_int_equal(an_cache_put(cache, &key, &entry), AN_EINVAL);
    entry.content_type = NULL;
    entry.value = NULL;
    assert_int_equal(an_cache_put(cache, &key, &entry), AN_EINVAL);
    assert_int_equal(stats_of(cache).stores, 0);
    an_cache_close(cache);
}


static void open_rejects_zero_max_bytes(void **state)
{
    (void)state;
    an_cache_options_t opts = an_cache_options_default();
    opts.max_bytes = 0;
    an_cache_t *cache = NULL;
    char err[256] = "";
    assert_int_equal(an_cache_open(&opts, &cache, err, sizeof(err)), AN_EINVAL);
    assert_null(cache);
    assert_non_null(strstr(err, "max_bytes"));
}


static void ttl_expired_entry_is_miss(void **state)
{
    (void)state;
    test_clock_t clock = {1700000000000};
    an_cache_t *cache = open_memory(10, 1 << 20, 60, 4, &clock);
    assert_int_equal(put_text(cache, 1, "v", NULL, -1), 0);

    clock.now_ms += 59999;
    assert_true(present(cache, 1));
    clock.now_ms += 1;
    assert_false(present(cache, 1));
    assert_false(present(cache, 1));

    an_cache_stats_t stats = stats_of(cache);
    assert_int_equal(stats.hits, 1);
    assert_int_equal(stats.misses, 2);
    assert_int_equal(stats.expirations, 1);
    assert_int_equal(stats.entries, 0);
    assert_int_equal(stats.bytes, 0);
    an_cache_close(cache);
}


static void per_entry_ttl_overrides_default(void **state)
{
    (void)state;
    test_clock_t clock = {1700000000000};
    an_cache_t *cache = open_memory(10, 1 << 20, 3600, 4, &clock);
    assert_int_equal(put_text(cache, 1, "short", NULL, 5), 0);
    assert_int_equal(put_text(cache, 2, "default", NULL, -1), 0);

    an_cache_meta_t meta;
    assert_int_equal(get_n(cache, 1, NULL, &meta), 0);
    assert_int_equal(meta.expires_ms, 1700000005000);

    clock.now_ms += 5000;
    assert_false(present(cache, 1));
    assert_true(present(cache, 2));
    clock.now_ms += 3600 * 1000;
    assert_false(present(cache, 2));
    assert_int_equal(stats_of(cache).expirations, 2);
    an_cache_close(cache);
}


static void ttl_zero_never_expires(void **state)
{
    (void)state;
    test_clock_t clock = {1700000000000};
    an_cache_t *cache = open_memory(10, 1 << 20, 0, 4, &clock);
    assert_int_equal(put_text(cache, 1, "default ttl 0", NULL, -1), 0);
    an_cache_t *with_default = open_memory(10, 1 << 20, 10, 4, &clock);
    assert_int_equal(put_text(with_default, 1, "entry ttl 0", NULL, 0), 0);

    clock.now_ms += 100ll * 365 * 24 * 3600 * 1000;
    an_cache_meta_t meta;
    assert_int_equal(get_n(cache, 1, NULL, &meta), 0);
    assert_int_equal(meta.expires_ms, 0);
    assert_int_equal(get_n(with_default, 1, NULL, &meta), 0);
    assert_int_equal(meta.expires_ms, 0);
    an_cache_close(with_default);
    an_cache_close(cache);
}


static void stats_count_each_operation(void **state)
{
    (void)state;
    test_clock_t clock = {1700000000000};
    an_cache_t *cache = open_memory(2, 1 << 20, 0, 4, &clock);
    assert_int_equal(put_text(cache, 1, "aa", NULL, -1), 0);
    assert_int_equal(put_text(cache, 2, "bbb", NULL, 1), 0);
    assert_true(present(cache, 1));
    assert_true(present(cache, 1));
    assert_false(present(cache, 3));
    clock.now_ms += 1000;
    assert_false(present(cache, 2)); /* expired */
    assert_int_equal(put_text(cache, 3, "c", NULL, -1), 0);
    assert_int_equal(put_text(cache, 4, "d", NULL, -1), 0); /* evicts 1 */

    an_cache_stats_t stats = stats_of(cache);
    assert_int_equal(stats.hits, 2);
    assert_int_equal(stats.misses, 2);
    assert_int_equal(stats.stores, 4);
    assert_int_equal(stats.evictions, 1);
    assert_int_equal(stats.expirations, 1);
    assert_int_equal(stats.entries, 2);
    assert_int_equal(stats.bytes, 2 * an__cache_entry_bytes(1, strlen("text/plain"), 0));
    an_cache_close(cache);
}


static void purge_by_namespace_keeps_others(void **state)
{
    (void)state;
    an_cache_t *cache = open_memory(100, 1 << 20, 0, 4, NULL);
    static const char *const namespaces[] = {"team-a", "team-b", NULL};
    for (int i = 0; i < 30; i++)
        assert_int_equal(put_text(cache, i, "v", namespaces[i % 3], -1), 0);

    uint64_t removed = 0;
    assert_int_equal(an_cache_purge(cache, "team-a", &removed), 0);
    assert_int_equal(removed, 10);
    for (int i = 0; i < 30; i++) {
        if (present(cache, i) != (i % 3 != 0))
            fail_msg("entry %d in namespace %d: presence is wrong after purging team-a", i, i % 3);
    }

    assert_int_equal(an_cache_purge(cache, "", &removed), 0);
    assert_int_equal(removed, 10);
    assert_int_equal(stats_of(cache).entries, 10);

    assert_int_equal(an_cache_purge(cache, NULL, &removed), 0);
    assert_int_equal(removed, 10);
    an_cache_stats_t stats = stats_of(cache);
    assert_int_equal(stats.entries, 0);
    assert_int_equal(stats.bytes, 0);
    an_cache_close(cache);
}


/* Checks the entries and bytes an_cache_namespace_stats returns for namespace_. */
static void assert_namespace_stats(an_cache_t *cache, const char *namespace_,
                                   uint64_t expected_entries, uint64_t expected_bytes)
{
    const char *label = namespace_ ? namespace_ : "(NULL)";
    uint64_t entries = UINT64_MAX, bytes = UINT64_MAX;
    assert_int_equal(an_cache_namespace_stats(cache, namespace_, &entries, &bytes), 0);
    if (entries != expected_entries)
        fail_msg("namespace \"%s\": %llu entries, expected %llu", label,
                 (unsigned long long)entries, (unsigned long long)expected_entries);
    if (bytes != expected_bytes)
        fail_msg("namespace \"%s\": %llu bytes, expected %llu", label,
                 (unsigned long long)bytes, (unsigned long long)expected_bytes);
}


static void namespace_stats_count_only_that_namespace(void **state)
{
    (void)state;
    size_t type_len = strlen("text/plain");
    an_cache_t *cache = open_memory(100, 1 << 20, 0, 4, NULL);
    assert_int_equal(put_text(cache, 1, "one", "a", -1), 0);
    assert_int_equal(put_text(cache, 2, "second", "a", -1), 0);
    assert_int_equal(put_text(cache, 3, "x", "b", -1), 0);
    assert_int_equal(put_text(cache, 4, "default", NULL, -1), 0);
    assert_int_equal(put_text(cache, 5, "empty", "", -1), 0);
    assert_int_equal(put_text(cache, 6, "prefix", "ab", -1), 0); /* "a" must not match it */

    uint64_t a_bytes =
        an__cache_entry_bytes(3, type_len, 1) + an__cache_entry_bytes(6, type_len, 1);
    uint64_t b_bytes = an__cache_entry_bytes(1, type_len, 1);
    uint64_t default_bytes = an__cache_entry_bytes(7, type_len, 0) +
                             an__cache_entry_bytes(5, type_len, 0);
    uint64_t ab_bytes = an__cache_entry_bytes(6, type_len, 2);
    assert_namespace_stats(cache, "a", 2, a_bytes);
    assert_namespace_stats(cache, "b", 1, b_bytes);
    assert_namespace_stats(cache, NULL, 2, default_bytes);
    assert_namespace_stats(cache, "", 2, default_bytes);
    assert_namespace_stats(cache, "ab", 1, ab_bytes);
    assert_namespace_stats(cache, "c", 0, 0);
    assert_int_equal(stats_of(cache).bytes, a_bytes + b_bytes + default_bytes + ab_bytes);

    /* Moving an entry to another namespace moves its bytes too. */
    assert_int_equal(put_text(cache, 2, "second", "b", -1), 0);
    assert_namespace_stats(cache, "a", 1, an__cache_entry_bytes(3, type_len, 1));
    assert_namespace_stats(cache, "b", 2, b_bytes + an__cache_entry_bytes(6, type_len, 1));

    uint64_t removed = 0;
    assert_int_equal(an_cache_purge(cache, "a", &removed), 0);
    assert_int_equal(removed, 1);
    assert_namespace_stats(cache, "a", 0, 0);
    assert_namespace_stats(cache, "b", 2, b_bytes + an__cache_entry_bytes(6, type_len, 1));
    assert_namespace_stats(cache, NULL, 2, default_bytes);
    assert_namespace_stats(cache, "ab", 1, ab_bytes);
    an_cache_close(cache);
}


static void namespace_stats_rejects_invalid_arguments(void **state)
{
    (void)state;
    an_cache_t *cache = open_memory(10, 1 << 20, 0, 1, NULL);
    char too_long[AN_CACHE_MAX_NAMESPACE + 1];
    memset(too_long, 'n', AN_CACHE_MAX_NAMESPACE);
    too_long[AN_CACHE_MAX_NAMESPACE] = '\0';
    uint64_t entries = 0, bytes = 0;
    assert_int_equal(an_cache_namespace_stats(cache, too_long, &entries, &bytes), AN_EINVAL);
    assert_int_equal(an_cache_namespace_stats(cache, "a", NULL, &bytes), AN_EINVAL);
    assert_int_equal(an_cache_namespace_stats(cache, "a", &entries, NULL), AN_EINVAL);
    assert_int_equal(an_cache_namespace_stats(NULL, "a", &entries, &bytes), AN_EINVAL);

    too_long[AN_CACHE_MAX_NAMESPACE - 1] = '\0'; /* the maximum length put accepts */
    assert_int_equal(put_text(cache, 1, "v", too_long, -1), 0);
    uint64_t longest_bytes =
        an__cache_entry_bytes(1, strlen("text/plain"), AN_CACHE_MAX_NAMESPACE - 1);
    assert_namespace_stats(cache, too_long, 1, longest_bytes);
    an_cache_close(cache);
}


static void delete_removes_one_entry(void **state)
{
    (void)state;
    an_cache_t *cache = open_memory(10, 1 << 20, 0, 4, NULL);
    assert_int_equal(put_text(cache, 1, "a", NULL, -1), 0);
    assert_int_equal(put_text(cache, 2, "b", NULL, -1), 0);
    an_cache_key_t key = key_n(1);
    assert_int_equal(an_cache_delete(cache, &key), 0);
    assert_int_equal(an_cache_delete(cache, &key), AN_ENOTFOUND);
    assert_false(present(cache, 1));
    assert_true(present(cache, 2));
    assert_int_equal(stats_of(cache).entries, 1);
    an_cache_close(cache);
}


static void table_growth_keeps_every_entry(void **state)
{
    (void)state;
    enum { COUNT = 20000 };
    an_cache_t *cache = open_memory(0, 1ull << 30, 0, 1, NULL);
    char text[16];
    for (int i = 0; i < COUNT; i++) {
        snprintf(text, sizeof(text), "%d", i);
        assert_int_equal(put_text(cache, i, text, NULL, -1), 0);
    }
    an_buf_t value = {0};
    for (int i = 0; i < COUNT; i++) {
        snprintf(text, sizeof(text), "%d", i);
        assert_int_equal(get_n(cache, i, &value, NULL), 0);
        assert_string_equal(value.data, text);
    }
    assert_int_equal(stats_of(cache).entries, COUNT);
    an_buf_free(&value);
    an_cache_close(cache);
}


typedef struct {
    an_cache_t *cache;
    int thread;
    uint64_t gets;
    uint64_t puts;
    int wrong_values;
} worker_t;

enum { WORKER_OPS = 20000, WORKER_KEYS = 300 };


static void *worker_main(void *arg)
{
    worker_t *w = arg;
    an_buf_t value = {0};
    unsigned seed = (unsigned)w->thread * 7919u + 1u;
    for (int op = 0; op < WORKER_OPS; op++) {
        seed = seed * 1103515245u + 12345u;
        int i = (int)((seed >> 8) % WORKER_KEYS);
        char text[32];
        snprintf(text, sizeof(text), "value-%d", i);
        if ((seed >> 4) % 4 == 0) {
            if (put_text(w->cache, i, text, NULL, -1) == 0)
                w->puts++;
        } else {
            w->gets++;
            if (get_n(w->cache, i, &value, NULL) == 0 && strcmp(value.data, text) != 0)
                w->wrong_values++;
        }
    }
    an_buf_free(&value);
    return NULL;
}


static void concurrent_get_put_keeps_bounds(void **state)
{
    (void)state;
    an_cache_t *cache = open_memory(100, 1 << 20, 0, 8, NULL);
    worker_t workers[4];
    pthread_t threads[4];
    for (int t = 0; t < 4; t++) {
        workers[t] = (worker_t){.cache = cache, .thread = t};
        assert_int_equal(pthread_create(&threads[t], NULL, worker_main, &workers[t]), 0);
    }
    uint64_t gets = 0, puts = 0;
    for (int t = 0; t < 4; t++) {
        pthread_join(threads[t], NULL);
        gets += workers[t].gets;
        puts += workers[t].puts;
        assert_int_equal(workers[t].wrong_values, 0);
    }

    an_cache_stats_t stats = stats_of(cache);
    assert_int_equal(stats.hits + stats.misses, gets);
    assert_int_equal(stats.stores, puts);
    assert_int_equal(stats.entries, 100);
    assert_true(stats.evictions > 0);

    /* bytes must equal the sum over the entries still present. */
    uint64_t bytes = 0, entries = 0;
    an_cache_meta_t meta;
    for (int i = 0; i < WORKER_KEYS; i++) {
        if (get_n(cache, i, NULL, &meta) == 0) {
            entries++;
            bytes += an__cache_entry_bytes(meta.size, strlen(meta.content_type), 0);
        }
    }
    stats = stats_of(cache);
    assert_int_equal(entries, stats.entries);
    assert_int_equal(bytes, stats.bytes);
    an_cache_close(cache);
}


int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(get_returns_value_and_meta),
        cmocka_unit_test(get_defaults_content_type_and_namespace),
        cmocka_unit_test(get_reuses_large_enough_buffer),
        cmocka_unit_test(missing_key_is_not_found),
        cmocka_unit_test(put_replaces_existing_entry),
        cmocka_unit_test(lru_evicts_least_recent_first),
        cmocka_unit_test(lru_order_is_global_across_shards),
        cmocka_unit_test(entry_bound_keeps_max_entries),
        cmocka_unit_test(byte_bound_keeps_max_bytes),
        cmocka_unit_test(put_larger_than_max_bytes_is_too_big),
        cmocka_unit_test(put_rejects_invalid_entries),
        cmocka_unit_test(open_rejects_zero_max_bytes),
        cmocka_unit_test(ttl_expired_entry_is_miss),
        cmocka_unit_test(per_entry_ttl_overrides_default),
        cmocka_unit_test(ttl_zero_never_expires),
        cmocka_unit_test(stats_count_each_operation),
        cmocka_unit_test(purge_by_namespace_keeps_others),
        cmocka_unit_test(namespace_stats_count_only_that_namespace),
        cmocka_unit_test(namespace_stats_rejects_invalid_arguments),
        cmocka_unit_test(delete_removes_one_entry),
        cmocka_unit_test(table_growth_keeps_every_entry),
        cmocka_unit_test(concurrent_get_put_keeps_bounds),
    };
    an_log_set_level(AN_LOG_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
