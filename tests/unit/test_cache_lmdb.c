/*
 * The lmdb cache backend: persistence across close and kill -9, LRU eviction
 * within both bounds, hits applied at flush, TTLs on a test clock, counters
 * shared between processes, purge by namespace and concurrent use.
 */
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <lmdb.h>
#include <openssl/evp.h>

#include "agentnet/cache.h"
#include "agentnet/log.h"
#include "cache/lmdb_internal.h"

typedef struct {
    int64_t now_ms;
} test_clock_t;

/* Per-test state: a fresh directory under /tmp, removed afterwards. */
typedef struct {
    char dir[64];
} fixture_t;


static int64_t read_test_clock(void *ctx)
{
    return ((test_clock_t *)ctx)->now_ms;
}


static int remove_path(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}


static int setup_dir(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/agentnet-cache-test-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}


static int teardown_dir(void **state)
{
    fixture_t *f = *state;
    nftw(f->dir, remove_path, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}


static an_cache_key_t key_n(int i)
{
    char text[32];
    int len = snprintf(text, sizeof(text), "%d", i);
    an_cache_key_t key;
    unsigned int out_len = 0;
    EVP_Digest(text, (size_t)len, key.bytes, &out_len, EVP_sha256(), NULL);
    return key;
}


static an_cache_options_t lmdb_options(const char *dir, uint64_t max_entries, uint64_t max_bytes,
                                       uint64_t ttl_s)
{
    an_cache_options_t opts = an_cache_options_default();
    opts.backend = AN_CACHE_LMDB;
    opts.name = "test";
    opts.path = dir;
    opts.max_entries = max_entries;
    opts.max_bytes = max_bytes;
    opts.default_ttl_s = ttl_s;
    return opts;
}


static an_cache_t *open_lmdb(const char *dir, uint64_t max_entries, uint64_t max_bytes,
                             uint64_t ttl_s, test_clock_t *clock)
{
    an_cache_options_t opts = lmdb_options(dir, max_entries, max_bytes, ttl_s);
    an_cache_t *cache = NULL;
    char err[512] = "";
    int rc = an_cache_open(&opts, &cache, err, sizeof(err));
    if (rc != 0)
        fail_msg("an_cache_open(%s) failed: %s", dir, err);
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
        .content_type = "application/json",
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


static void entries_persist_across_reopen(void **state)
{
    fixture_t *f = *state;
    test_clock_t clock = {1700000000000};
    an_cache_t *cache = open_lmdb(f->dir, 100, 1 << 20, 3600, &clock);
    assert_int_equal(put_text(cache, 1, "{\"answer\":42}", "team-a", -1), 0);
    assert_int_equal(put_text(cache, 2, "second", NULL, 0), 0);
    an_cache_close(cache);

    clock.now_ms += 1000;
    cache = open_lmdb(f->dir, 100, 1 << 20, 3600, &clock);
    an_buf_t value = {0};
    an_cache_meta_t meta;
    assert_int_equal(get_n(cache, 1, &value, &meta), 0);
    assert_string_equal(value.data, "{\"answer\":42}");
    assert_int_equal(meta.created_ms, 1700000000000);
    assert_int_equal(meta.expires_ms, 1700003600000);
    assert_int_equal(meta.last_access_ms, 1700000001000);
    assert_int_equal(meta.hits, 1);
    assert_int_equal(meta.size, 13);
    assert_string_equal(meta.content_type, "application/json");
    assert_string_equal(meta.namespace_, "team-a");
    assert_int_equal(get_n(cache, 2, &value, &meta), 0);
    assert_string_equal(value.data, "second");
    assert_int_equal(meta.expires_ms, 0);

    an_cache_stats_t stats = stats_of(cache);
    assert_int_equal(stats.entries, 2);
    assert_int_equal(stats.bytes, an__cache_entry_bytes(13, 16, 6) + an__cache_entry_bytes(6, 16, 0));
    an_buf_free(&value);
    an_cache_close(cache);
}


static void hits_reach_record_after_flush(void **state)
{
    fixture_t *f = *state;
    an_cache_t *cache = open_lmdb(f->dir, 100, 1 << 20, 0, NULL);
    assert_int_equal(put_text(cache, 1, "v", NULL, -1), 0);
    assert_true(present(cache, 1));
    assert_true(present(cache, 1));
    assert_int_equal(an_cache_flush(cache), 0);
    assert_true(present(cache, 1));
    an_cache_close(cache); /* close flushes the third hit */

    cache = open_lmdb(f->dir, 100, 1 << 20, 0, NULL);
    an_cache_meta_t meta;
    assert_int_equal(get_n(cache, 1, NULL, &meta), 0);
    assert_int_equal(meta.hits, 4);
    an_cache_close(cache);
}


/* Hits on one entry take one pending slot, so more hits than the pending cap are all counted. */
static void hot_entry_hits_all_counted(void **state)
{
    fixture_t *f = *state;
    enum { HITS = 100000 };
    an_cache_t *cache = open_lmdb(f->dir, 100, 1 << 20, 0, NULL);
    assert_int_equal(put_text(cache, 1, "hot", NULL, -1), 0);
    for (int i = 0; i < HITS; i++)
        assert_true(present(cache, 1));
    assert_int_equal(an_cache_flush(cache), 0);

    an_cache_meta_t meta;
    assert_int_equal(get_n(cache, 1, NULL, &meta), 0);
    assert_int_equal(meta.hits, HITS + 1);
    an_cache_close(cache);
}


/* A hit recorded before an entry was replaced does not count for the new entry. */
static void replaced_entry_starts_without_hits(void **state)
{
    fixture_t *f = *state;
    test_clock_t clock = {1700000000000};
    an_cache_t *cache = open_lmdb(f->dir, 100, 1 << 20, 0, &clock);
    assert_int_equal(put_text(cache, 1, "old", NULL, -1), 0);
    clock.now_ms += 10;
    assert_true(present(cache, 1));
    clock.now_ms += 10;
    assert_int_equal(put_text(cache, 1, "new", NULL, -1), 0);
    assert_int_equal(an_cache_flush(cache), 0);

    an_cache_meta_t meta;
    assert_int_equal(get_n(cache, 1, NULL, &meta), 0);
    assert_int_equal(meta.hits, 1);
    assert_int_equal(meta.created_ms, 1700000000020);
    an_cache_close(cache);
}


static void counters_persist_across_reopen(void **state)
{
    fixture_t *f = *state;
    an_cache_t *cache = open_lmdb(f->dir, 2, 1 << 20, 0, NULL);
    assert_int_equal(put_text(cache, 1, "a", NULL, -1), 0);
    assert_int_equal(put_text(cache, 2, "b", NULL, -1), 0);
    assert_int_equal(put_text(cache, 3, "c", NULL, -1), 0); /* evicts 1 */
    assert_true(present(cache, 3));
    assert_false(present(cache, 1));
    an_cache_close(cache);

    cache = open_lmdb(f->dir, 2, 1 << 20, 0, NULL);
    an_cache_stats_t stats = stats_of(cache);
    assert_int_equal(stats.hits, 1);
    assert_int_equal(stats.misses, 1);
    assert_int_equal(stats.stores, 3);
    assert_int_equal(stats.evictions, 1);
    assert_int_equal(stats.entries, 2);

    /* Unflushed deltas add to the persisted counters, and a flush does not count them twice. */
    assert_true(present(cache, 2));
    assert_int_equal(stats_of(cache).hits, 2);
    assert_int_equal(an_cache_flush(cache), 0);
    assert_int_equal(stats_of(cache).hits, 2);
    an_cache_close(cache);
}


/* Child process body: store count entries and die by SIGKILL without closing. */
static void store_then_die(const char *dir, int count)
{
    an_cache_options_t opts = lmdb_options(dir, 1000, 1 << 24, 0);
    an_cache_t *cache = NULL;
    if (an_cache_open(&opts, &cache, NULL, 0) != 0)
        _exit(2);
    for (int i = 0; i < count; i++) {
        if (put_text(cache, i, "survives", NULL, -1) != 0)
            _exit(3);
        if (i % 10 == 0 && get_n(cache, i, NULL, NULL) != 0) /* leaves a pooled reader slot */
            _exit(4);
    }
    raise(SIGKILL);
    _exit(5);
}


static void entries_survive_kill_9(void **state)
{
    fixture_t *f = *state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        store_then_die(f->dir, 100);

    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);

    an_cache_t *cache = open_lmdb(f->dir, 1000, 1 << 24, 0, NULL);
    an_buf_t value = {0};
    for (int i = 0; i < 100; i++) {
        if (get_n(cache, i, &value, NULL) != 0)
            fail_msg("entry %d committed before kill -9 is missing", i);
        assert_string_equal(value.data, "survives");
    }
    assert_int_equal(stats_of(cache).entries, 100);
    assert_int_equal(put_text(cache, 1000, "writable", NULL, -1), 0);
    an_buf_free(&value);
    an_cache_close(cache);
}


static void stats_visible_to_other_process(void **state)
{
    fixture_t *f = *state;
    an_cache_t *cache = open_lmdb(f->dir, 100, 1 << 20, 0, NULL);
    assert_int_equal(put_text(cache, 1, "shared", NULL, -1), 0);
    assert_true(present(cache, 1));
    assert_false(present(cache, 2));
    assert_int_equal(an_cache_flush(cache), 0);

    /* The child opens the directory while this process still has it open. */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        an_cache_options_t opts = lmdb_options(f->dir, 100, 1 << 20, 0);
        an_cache_t *other = NULL;
        if (an_cache_open(&opts, &other, NULL, 0) != 0)
            _exit(10);
        an_cache_stats_t stats;
        if (an_cache_stats(other, &stats) != 0)
            _exit(11);
        if (stats.entries != 1 || stats.stores != 1 || stats.hits != 1 || stats.misses != 1)
            _exit(12);
        if (put_text(other, 2, "from child", NULL, -1) != 0)
            _exit(13);
        an_cache_close(other);
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    an_buf_t value = {0};
    assert_int_equal(get_n(cache, 2, &value, NULL), 0);
    assert_string_equal(value.data, "from child");
    an_cache_stats_t stats = stats_of(cache);
    assert_int_equal(stats.entries, 2);
    assert_int_equal(stats.stores, 2);
    an_buf_free(&value);
    an_cache_close(cache);
}


/*
 * Another process that opened the directory with a larger max_bytes, and so
 * a larger map, grows the data file past this process's map. Lookups here
 * must adopt the larger map instead of failing.
 */
static void map_grown_by_other_process_is_adopted(void **state)
{
    fixture_t *f = *state;
    enum { VALUES = 100, VALUE_BYTES = 1 << 20 };
    an_cache_t *cache = open_lmdb(f->dir, 0, 1 << 20, 0, NULL); /* map of about 66 MiB */

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        an_cache_options_t opts = lmdb_options(f->dir, 0, 512u << 20, 0);
        an_cache_t *big = NULL;
        if (an_cache_open(&opts, &big, NULL, 0) != 0)
            _exit(10);
        char *value = malloc(VALUE_BYTES);
        if (!value)
            _exit(11);
        memset(value, 'm', VALUE_BYTES);
        for (int i = 0; i < VALUES; i++) {
            an_cache_key_t key = key_n(i);
            an_cache_entry_t entry = {.value = value, .value_len = VALUE_BYTES, .ttl_s = -1};
            if (an_cache_put(big, &key, &entry) != 0)
                _exit(12);
        }
        free(value);
        an_cache_close(big);
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    an_buf_t value = {0};
    for (int i = 0; i < VALUES; i += 33) {
        assert_int_equal(get_n(cache, i, &value, NULL), 0);
        assert_int_equal(value.len, VALUE_BYTES);
    }
    assert_int_equal(stats_of(cache).entries, VALUES);
    an_buf_free(&value);
    an_cache_close(cache);
}


static void second_open_in_process_is_rejected(void **state)
{
    fixture_t *f = *state;
    an_cache_t *cache = open_lmdb(f->dir, 100, 1 << 20, 0, NULL);
    an_cache_options_t opts = lmdb_options(f->dir, 100, 1 << 20, 0);
    an_cache_t *again = NULL;
    char err[512] = "";
    assert_int_equal(an_cache_open(&opts, &again, err, sizeof(err)), AN_EEXIST);
    assert_null(again);
    assert_non_null(strstr(err, f->dir));
    assert_non_null(strstr(err, "already open"));
    an_cache_close(cache);

    /* Once closed, the directory opens again. */
    cache = open_lmdb(f->dir, 100, 1 << 20, 0, NULL);
    an_cache_close(cache);
}


/* Opens dir and returns 0 when the error names the path, EACCES and --data-dir. */
static int check_unwritable_open(const char *dir)
{
    an_cache_options_t opts = lmdb_options(dir, 100, 1 << 20, 0);
    an_cache_t *cache = NULL;
    char err[512] = "";
    if (an_cache_open(&opts, &cache, err, sizeof(err)) != AN_EIO)
        return 1;
    if (!strstr(err, dir))
        return 2;
    if (!strstr(err, "EACCES"))
        return 3;
    if (!strstr(err, "--data-dir"))
        return 4;
    return 0;
}


static void unwritable_dir_error_names_path_and_fix(void **state)
{
    fixture_t *f = *state;
    char dir[128];
    snprintf(dir, sizeof(dir), "%s/locked", f->dir);
    assert_int_equal(mkdir(dir, 0500), 0);

    if (geteuid() != 0) {
        assert_int_equal(check_unwritable_open(dir), 0);
        chmod(dir, 0700);
        return;
    }

    /* Root writes through permission bits, so the check runs as nobody in a child. */
    assert_int_equal(chmod(f->dir, 0755), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        if (setgid(65534) != 0 || setuid(65534) != 0)
            _exit(10);
        _exit(check_unwritable_open(dir));
    }
    int status = 0;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0); /* 1: no AN_EIO, 2-4: message lacks a part */
    chmod(dir, 0700);
}


static void corrupt_data_file_error_names_fix(void **state)
{
    fixture_t *f = *state;
    char data_file[128];
    snprintf(data_file, sizeof(data_file), "%s/data.mdb", f->dir);
    FILE *file = fopen(data_file, "w");
    assert_non_null(file);
    for (int i = 0; i < 4096; i++)
        fputc('x', file);
    fclose(file);

    an_cache_options_t opts = lmdb_options(f->dir, 100, 1 << 20, 0);
    an_cache_t *cache = NULL;
    char err[512] = "";
    assert_int_equal(an_cache_open(&opts, &cache, err, sizeof(err)), AN_EIO);
    assert_null(cache);
    assert_non_null(strstr(err, f->dir));
    assert_non_null(strstr(err, "move its files away or pass another --data-dir"));
}


/* A directory written by a later format version is rejected, not misread. */
static void newer_format_is_rejected(void **state)
{
    fixture_t *f = *state;
    an_cache_close(open_lmdb(f->dir, 100, 1 << 20, 0, NULL));

    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi meta;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 4), 0);
    assert_int_equal(mdb_env_open(env, f->dir, 0, 0644), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
    uint8_t version[8] = {AN__LMDB_FORMAT_VERSION + 1};
    MDB_val key = {6, "format"}, val = {sizeof(version), version};
    assert_int_equal(mdb_put(txn, meta, &key, &val, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);

    an_cache_options_t opts = lmdb_options(f->dir, 100, 1 << 20, 0);
    an_cache_t *cache = NULL;
    char err[512] = "";
    assert_int_equal(an_cache_open(&opts, &cache, err, sizeof(err)), AN_EIO);
    assert_null(cache);
    char expected[32];
    snprintf(expected, sizeof(expected), "format %d", AN__LMDB_FORMAT_VERSION + 1);
    assert_non_null(strstr(err, expected));
    assert_non_null(strstr(err, "upgrade agentnet"));
}


/* Opens dir with LMDB directly, in a process that has no cache open on it. */
static MDB_env *raw_env_open(const char *dir)
{
    MDB_env *env;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 4), 0);
    assert_int_equal(mdb_env_set_maxreaders(env, 1024), 0);
    int rc = mdb_env_open(env, dir, MDB_NOTLS, 0644);
    if (rc != 0)
        fail_msg("mdb_env_open(%s) failed: %s", dir, mdb_strerror(rc));
    return env;
}


static MDB_dbi raw_dbi(MDB_txn *txn, const char *name)
{
    MDB_dbi dbi;
    int rc = mdb_dbi_open(txn, name, MDB_CREATE, &dbi);
    if (rc != 0)
        fail_msg("mdb_dbi_open(%s) failed: %s", name, mdb_strerror(rc));
    return dbi;
}


static void raw_put_meta(MDB_txn *txn, MDB_dbi meta, int index, uint64_t value)
{
    const char *name = an__lmdb_meta_names[index];
    uint8_t bytes[8];
    an__lmdb_u64_store(bytes, value);
    MDB_val key = {strlen(name), (void *)name}, val = {sizeof(bytes), bytes};
    assert_int_equal(mdb_put(txn, meta, &key, &val, 0), 0);
}


static void raw_put_lru_key(MDB_txn *txn, MDB_dbi lru, int64_t at_ms, uint64_t seq, int i)
{
    an_cache_key_t key = key_n(i);
    uint8_t lru_key[AN__LMDB_LRU_KEY_BYTES];
    an__lmdb_lru_key(at_ms, seq, &key, lru_key);
    MDB_val k = {sizeof(lru_key), lru_key}, empty = {0, NULL};
    assert_int_equal(mdb_put(txn, lru, &k, &empty, 0), 0);
}


/* Sizes of the per-entry databases and the persisted format, read with LMDB directly. */
typedef struct {
    size_t entries;
    size_t access;
    size_t lru;
    uint64_t format;
    uint64_t meta_entries;
} raw_counts_t;


static raw_counts_t raw_counts(const char *dir)
{
    MDB_env *env = raw_env_open(dir);
    MDB_txn *txn;
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    MDB_stat stat;
    raw_counts_t counts = {0};
    assert_int_equal(mdb_stat(txn, raw_dbi(txn, "entries"), &stat), 0);
    counts.entries = stat.ms_entries;
    assert_int_equal(mdb_stat(txn, raw_dbi(txn, "access"), &stat), 0);
    counts.access = stat.ms_entries;
    assert_int_equal(mdb_stat(txn, raw_dbi(txn, "lru"), &stat), 0);
    counts.lru = stat.ms_entries;

    MDB_dbi meta = raw_dbi(txn, "meta");
    MDB_val key = {6, "format"}, val;
    assert_int_equal(mdb_get(txn, meta, &key, &val), 0);
    counts.format = an__lmdb_u64_load(val.mv_data);
    key = (MDB_val){7, "entries"};
    assert_int_equal(mdb_get(txn, meta, &key, &val), 0);
    counts.meta_entries = an__lmdb_u64_load(val.mv_data);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return counts;
}


static void assert_counts_in_step(const char *dir, size_t entries)
{
    raw_counts_t counts = raw_counts(dir);
    if (counts.entries != entries || counts.access != entries || counts.lru != entries ||
        counts.meta_entries != entries)
        fail_msg("expected %zu of each: %zu entries, %zu access values, %zu lru keys, "
                 "total %llu",
                 entries, counts.entries, counts.access, counts.lru,
                 (unsigned long long)counts.meta_entries);
    assert_int_equal(counts.format, AN__LMDB_FORMAT_VERSION);
}


/*
 * A directory last written by a build without the "access" database has
 * format 1 and records with a 56-byte header, under the same record version
 * byte. A build of the current layout read such a record as MDB_CORRUPTED.
 * Opening it now drops the record and its "lru" key, and the key works again
 * after a store.
 */
static void old_layout_record_is_dropped_at_open(void **state)
{
    fixture_t *f = *state;
    const char *type = "application/json", *value = "{\"old\":true}";
    size_t type_len = strlen(type), value_len = strlen(value);
    int64_t created_ms = 1700000000000, last_access_ms = created_ms + 30000;
    uint8_t record[56 + 64] = {1, (uint8_t)type_len, 0};
    an__lmdb_u64_store(record + 8, (uint64_t)created_ms);
    an__lmdb_u64_store(record + 16, (uint64_t)created_ms + 3600000);
    an__lmdb_u64_store(record + 24, (uint64_t)last_access_ms);
    an__lmdb_u64_store(record + 32, 23);    /* lru_seq */
    an__lmdb_u64_store(record + 40, 1000);  /* hits */
    an__lmdb_u64_store(record + 48, value_len);
    memcpy(record + 56, type, type_len);
    memcpy(record + 56 + type_len, value, value_len);

    MDB_env *env = raw_env_open(f->dir);
    MDB_txn *txn;
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    MDB_dbi meta = raw_dbi(txn, "meta"), entries = raw_dbi(txn, "entries");
    MDB_dbi lru = raw_dbi(txn, "lru");
    an_cache_key_t key = key_n(1);
    MDB_val k = {AN_CACHE_KEY_BYTES, key.bytes}, v = {56 + type_len + value_len, record};
    assert_int_equal(mdb_put(txn, entries, &k, &v, 0), 0);
    raw_put_lru_key(txn, lru, last_access_ms, 23, 1);
    raw_put_meta(txn, meta, AN__LMDB_META_FORMAT, 1);
    raw_put_meta(txn, meta, AN__LMDB_META_ENTRIES, 1);
    raw_put_meta(txn, meta, AN__LMDB_META_BYTES, 136 + type_len + value_len);
    raw_put_meta(txn, meta, AN__LMDB_META_LRU_SEQ, 23);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);

    an_cache_t *cache = open_lmdb(f->dir, 100, 1 << 20, 0, NULL);
    an_buf_t got = {0};
    assert_int_equal(get_n(cache, 1, &got, NULL), AN_ENOTFOUND);
    an_cache_stats_t stats = stats_of(cache);
    assert_int_equal(stats.entries, 0);
    assert_int_equal(stats.bytes, 0);
    assert_int_equal(put_text(cache, 1, "new", NULL, -1), 0);
    assert_int_equal(get_n(cache, 1, &got, NULL), 0);
    assert_string_equal(got.data, "new");
    an_buf_free(&got);
    an_cache_close(cache);
    assert_counts_in_step(f->dir, 1);
}


/* Entries written in the current layout under format 1 survive the upgrade to the new format. */
static void current_layout_survives_format_upgrade(void **state)
{
    fixture_t *f = *state;
    an_cache_t *cache = open_lmdb(f->dir, 100, 1 << 20, 0, NULL);
    for (int i = 0; i < 20; i++)
        assert_int_equal(put_text(cache, i, "kept", NULL, -1), 0);
    uint64_t bytes = stats_of(cache).bytes;
    an_cache_close(cache);

    MDB_env *env = raw_env_open(f->dir);
    MDB_txn *txn;
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    raw_put_meta(txn, raw_dbi(txn, "meta"), AN__LMDB_META_FORMAT, 1);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);

    cache = open_lmdb(f->dir, 100, 1 << 20, 0, NULL);
    for (int i = 0; i < 20; i++) {
        if (!present(cache, i))
            fail_msg("entry %d of the current layout was lost in the format upgrade", i);
    }
    an_cache_stats_t stats = stats_of(cache);
    assert_int_equal(stats.entries, 20);
    assert_int_equal(stats.bytes, bytes);
    an_cache_close(cache);
    assert_counts_in_step(f->dir, 20);
}


/*
 * An entry without an access value, a stale "lru" key and a wrong entry
 * total are repaired at open, and eviction then follows the repaired order.
 */
static void out_of_step_index_is_repaired_at_open(void **state)
{
    fixture_t *f = *state;
    test_clock_t clock = {1700000000000};
    an_cache_t *cache = open_lmdb(f->dir, 3, 1 << 20, 0, &clock);
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(put_text(cache, i, "v", NULL, -1), 0);
        clock.now_ms += 10;
    }
    uint64_t bytes = stats_of(cache).bytes;
    an_cache_close(cache);

    MDB_env *env = raw_env_open(f->dir);
    MDB_txn *txn;
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    an_cache_key_t key = key_n(2);
    MDB_val k = {AN_CACHE_KEY_BYTES, key.bytes};
    assert_int_equal(mdb_del(txn, raw_dbi(txn, "access"), &k, NULL), 0);
    raw_put_lru_key(txn, raw_dbi(txn, "lru"), 0, 0, 3);
    raw_put_meta(txn, raw_dbi(txn, "meta"), AN__LMDB_META_ENTRIES, 7);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);

    cache = open_lmdb(f->dir, 3, 1 << 20, 0, &clock);
    an_cache_stats_t stats = stats_of(cache);
    assert_int_equal(stats.entries, 3);
    assert_int_equal(stats.bytes, bytes);
    assert_int_equal(put_text(cache, 4, "v", NULL, -1), 0);
    assert_false(present(cache, 1));
    assert_true(present(cache, 2));
    assert_true(present(cache, 3));
    assert_true(present(cache, 4));
    an_cache_close(cache);
    assert_counts_in_step(f->dir, 3);
}


/* Child process body: adds a stale "lru" key at time 0 for entry i while the parent has the cache open. */
static void add_stale_lru_key_then_exit(const char *dir, int i)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi lru;
    if (mdb_env_create(&env) != 0 || mdb_env_set_maxdbs(env, 4) != 0 ||
        mdb_env_set_maxreaders(env, 1024) != 0 || mdb_env_open(env, dir, MDB_NOTLS, 0644) != 0)
        _exit(10);
    if (mdb_txn_begin(env, NULL, 0, &txn) != 0 || mdb_dbi_open(txn, "lru", 0, &lru) != 0)
        _exit(11);
    an_cache_key_t key = key_n(i);
    uint8_t lru_key[AN__LMDB_LRU_KEY_BYTES];
    an__lmdb_lru_key(0, 0, &key, lru_key);
    MDB_val k = {sizeof(lru_key), lru_key}, empty = {0, NULL};
    if (mdb_put(txn, lru, &k, &empty, 0) != 0 || mdb_txn_commit(txn) != 0)
        _exit(12);
    mdb_env_close(env);
    _exit(0);
}


/*
 * An "lru" key that its entry's access value does not name is skipped by
 * eviction: the entry keeps its place and is not counted as evicted.
 */
static void stale_lru_key_does_not_evict_early(void **state)
{
    fixture_t *f = *state;
    test_clock_t clock = {1700000000000};
    an_cache_t *cache = open_lmdb(f->dir, 3, 1 << 20, 0, &clock);
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(put_text(cache, i, "v", NULL, -1), 0);
        clock.now_ms += 10;
    }

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        add_stale_lru_key_then_exit(f->dir, 3);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0); /* 10-12: the child could not add the key */

    assert_int_equal(put_text(cache, 4, "v", NULL, -1), 0);
    assert_false(present(cache, 1));
    assert_true(present(cache, 2));
    assert_true(present(cache, 3));
    assert_true(present(cache, 4));
    an_cache_stats_t stats = stats_of(cache);
    assert_int_equal(stats.evictions, 1);
    assert_int_equal(stats.entries, 3);
    an_cache_close(cache);
    assert_counts_in_step(f->dir, 3);
}


/*
 * A child forked while the parent has the cache open must leave the
 * parent's pooled read transactions and their reader slots alone: its
 * lookups fail, and its close frees memory without calling LMDB.
 */
static void forked_child_leaves_parent_readers_alone(void **state)
{
    fixture_t *f = *state;
    an_cache_t *cache = open_lmdb(f->dir, 100, 1 << 20, 0, NULL);
    assert_int_equal(put_text(cache, 1, "parent", NULL, -1), 0);
    assert_true(present(cache, 1)); /* leaves a reset read transaction in the pool */

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        an_cache_key_t key = key_n(1);
        if (an_cache_get(cache, &key, NULL, NULL) == 0)
            _exit(10);
        an_cache_close(cache);
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0); /* 10: the child read through the parent's reader */

    an_buf_t value = {0};
    for (int i = 0; i < 10; i++) {
        assert_int_equal(get_n(cache, 1, &value, NULL), 0);
        assert_string_equal(value.data, "parent");
    }
    assert_int_equal(put_text(cache, 2, "after fork", NULL, -1), 0);
    an_buf_free(&value);
    an_cache_close(cache);
}


/* A record whose lengths reach past its end does not decode, whatever its value length field contains. */
static void record_decode_rejects_overrun_lengths(void **state)
{
    (void)state;
    uint8_t record[40] = {AN__LMDB_RECORD_VERSION, 10, 0};
    an__lmdb_record_t rec;

    /* 32 + 10 content type bytes > 40: the length check must not wrap around. */
    an__lmdb_u64_store(record + 24, (uint64_t)40 - 42);
    assert_int_equal(an__lmdb_record_decode(record, sizeof(record), &rec), AN_EIO);

    record[1] = 0;
    record[2] = 9;
    an__lmdb_u64_store(record + 24, (uint64_t)40 - 41);
    assert_int_equal(an__lmdb_record_decode(record, sizeof(record), &rec), AN_EIO);

    /* The same bytes with consistent lengths decode. */
    record[2] = 3;
    an__lmdb_u64_store(record + 24, 5);
    assert_int_equal(an__lmdb_record_decode(record, sizeof(record), &rec), 0);
    assert_int_equal(rec.namespace_len, 3);
    assert_int_equal(rec.value_len, 5);

    assert_int_equal(an__lmdb_record_decode(record, AN__LMDB_HEADER_BYTES - 1, &rec), AN_EIO);
    record[0] = AN__LMDB_RECORD_VERSION + 1;
    assert_int_equal(an__lmdb_record_decode(record, sizeof(record), &rec), AN_EIO);
}


static void missing_dir_is_created(void **state)
{
    fixture_t *f = *state;
    char dir[128];
    snprintf(dir, sizeof(dir), "%s/a/b/c", f->dir);
    an_cache_t *cache = open_lmdb(dir, 100, 1 << 20, 0, NULL);
    assert_int_equal(put_text(cache, 1, "v", NULL, -1), 0);
    an_cache_close(cache);

    struct stat st;
    char data_file[160];
    snprintf(data_file, sizeof(data_file), "%s/data.mdb", dir);
    assert_int_equal(stat(data_file, &st), 0);
}


static void lru_evicts_least_recent_first(void **state)
{
    fixture_t *f = *state;
    test_clock_t clock = {1700000000000};
    an_cache_t *cache = open_lmdb(f->dir, 3, 1 << 20, 0, &clock);
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(put_text(cache, i, "v", NULL, -1), 0);
        clock.now_ms += 10;
    }
    assert_true(present(cache, 1)); /* 1 is now newer than 2 and 3 */
    clock.now_ms += 10;
    assert_int_equal(an_cache_flush(cache), 0);

    assert_int_equal(put_text(cache, 4, "v", NULL, -1), 0);
    assert_false(present(cache, 2));
    assert_true(present(cache, 1));
    assert_true(present(cache, 3));
    assert_true(present(cache, 4));
    assert_int_equal(stats_of(cache).evictions, 1);
    an_cache_close(cache);
}


/* A put that must evict first applies the hits no flush has written yet. */
static void lru_counts_unflushed_hits(void **state)
{
    fixture_t *f = *state;
    test_clock_t clock = {1700000000000};
    an_cache_t *cache = open_lmdb(f->dir, 3, 1 << 20, 0, &clock);
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(put_text(cache, i, "v", NULL, -1), 0);
        clock.now_ms += 10;
    }
    assert_true(present(cache, 2));
    clock.now_ms += 10;
    assert_true(present(cache, 1));
    clock.now_ms += 10;

    assert_int_equal(put_text(cache, 4, "v", NULL, -1), 0);
    assert_false(present(cache, 3));
    assert_true(present(cache, 1));
    assert_true(present(cache, 2));
    an_cache_close(cache);
}


/* Same-millisecond stores still evict in store order, through the lru sequence number. */
static void lru_orders_same_millisecond_by_sequence(void **state)
{
    fixture_t *f = *state;
    test_clock_t clock = {1700000000000};
    an_cache_t *cache = open_lmdb(f->dir, 5, 1 << 20, 0, &clock);
    for (int i = 0; i < 10; i++)
        assert_int_equal(put_text(cache, i, "v", NULL, -1), 0);
    for (int i = 0; i < 10; i++) {
        if (present(cache, i) != (i >= 5))
            fail_msg("entry %d: presence is wrong; entries 0-4 should be evicted in store order", i);
    }
    an_cache_close(cache);
}


static void byte_bound_keeps_max_bytes(void **state)
{
    fixture_t *f = *state;
    char value[1001];
    memset(value, 'x', 1000);
    value[1000] = '\0';
    uint64_t entry_bytes = an__cache_entry_bytes(1000, strlen("application/json"), 0);
    an_cache_t *cache = open_lmdb(f->dir, 0, entry_bytes * 10 + entry_bytes / 2, 0, NULL);
    for (int i = 0; i < 50; i++)
        assert_int_equal(put_text(cache, i, value, NULL, -1), 0);

    an_cache_stats_t stats = stats_of(cache);
    assert_int_equal(stats.entries, 10);
    assert_int_equal(stats.bytes, entry_bytes * 10);
    assert_int_equal(stats.evictions, 40);
    for (int i = 0; i < 50; i++) {
        if (present(cache, i) != (i >= 40))
            fail_msg("entry %d: presence is wrong; only the newest 10 fit", i);
    }
    an_cache_close(cache);
}


static void entry_bound_keeps_max_entries(void **state)
{
    fixture_t *f = *state;
    an_cache_t *cache = open_lmdb(f->dir, 25, 1 << 24, 0, NULL);
    for (int i = 0; i < 200; i++)
        assert_int_equal(put_text(cache, i, "value", NULL, -1), 0);
    an_cache_stats_t stats = stats_of(cache);
    assert_int_equal(stats.entries, 25);
    assert_int_equal(stats.evictions, 175);
    an_cache_close(cache);

    /* A smaller bound on reopen applies at the next store. */
    cache = open_lmdb(f->dir, 10, 1 << 24, 0, NULL);
    assert_int_equal(put_text(cache, 1000, "value", NULL, -1), 0);
    assert_int_equal(stats_of(cache).entries, 10);
    assert_true(present(cache, 1000));
    assert_true(present(cache, 199));
    assert_false(present(cache, 190));
    an_cache_close(cache);
}


/*
 * A map that fills up before the byte bound is reached makes a put evict a
 * tenth of the entries and retry. A map this small is full even for the
 * eviction, so it also grows the map.
 */
static void full_map_evicts_and_retries(void **state)
{
    fixture_t *f = *state;
    enum { PUTS = 2000 };
    an_cache_t *cache = open_lmdb(f->dir, 0, 1u << 30, 0, NULL);
    assert_int_equal(an__cache_lmdb_set_map_bytes(cache, 1u << 20), 0);

    char value[1024];
    memset(value, 'f', sizeof(value) - 1);
    value[sizeof(value) - 1] = '\0';
    for (int i = 0; i < PUTS; i++) {
        if (put_text(cache, i, value, NULL, -1) != 0)
            fail_msg("put %d failed in a full 1 MiB map", i);
    }

    an_cache_stats_t stats = stats_of(cache);
    assert_true(stats.evictions > 0);
    assert_int_equal(stats.entries + stats.evictions, PUTS);
    assert_int_equal(stats.stores, PUTS);
    assert_true(present(cache, PUTS - 1));
    assert_false(present(cache, 0));
    an_cache_close(cache);
}


static void put_larger_than_max_bytes_is_too_big(void **state)
{
    fixture_t *f = *state;
    uint64_t max_bytes = an__cache_entry_bytes(10, strlen("application/json"), 0);
    an_cache_t *cache = open_lmdb(f->dir, 0, max_bytes, 0, NULL);
    assert_int_equal(put_text(cache, 1, "01234567890", NULL, -1), AN_ETOOBIG);
    assert_int_equal(put_text(cache, 1, "0123456789", NULL, -1), 0);
    assert_int_equal(stats_of(cache).stores, 1);
    an_cache_close(cache);
}


static void ttl_expired_entry_is_miss(void **state)
{
    fixture_t *f = *state;
    test_clock_t clock = {1700000000000};
    an_cache_t *cache = open_lmdb(f->dir, 100, 1 << 20, 60, &clock);
    assert_int_equal(put_text(cache, 1, "v", NULL, -1), 0);
    assert_int_equal(put_text(cache, 2, "short", NULL, 1), 0);
    assert_int_equal(put_text(cache, 3, "forever", NULL, 0), 0);

    clock.now_ms += 999;
    assert_true(present(cache, 2));
    clock.now_ms += 1;
    assert_false(present(cache, 2));
    clock.now_ms += 59000 - 1000;
    assert_true(present(cache, 1));
    clock.now_ms += 1000;
    assert_false(present(cache, 1));
    assert_false(present(cache, 1));

    an_cache_stats_t stats = stats_of(cache);
    assert_int_equal(stats.expirations, 2);
    assert_int_equal(stats.misses, 3);
    assert_int_equal(stats.entries, 3); /* deleted at the next flush */

    assert_int_equal(an_cache_flush(cache), 0);
    stats = stats_of(cache);
    assert_int_equal(stats.entries, 1);
    assert_int_equal(stats.bytes, an__cache_entry_bytes(7, strlen("application/json"), 0));
    assert_int_equal(stats.expirations, 2);

    clock.now_ms += 100ll * 365 * 24 * 3600 * 1000;
    assert_true(present(cache, 3));
    an_cache_close(cache);
}


static void purge_by_namespace_keeps_others(void **state)
{
    fixture_t *f = *state;
    an_cache_t *cache = open_lmdb(f->dir, 1000, 1 << 22, 0, NULL);
    static const char *const namespaces[] = {"team-a", "team-b", NULL};
    for (int i = 0; i < 300; i++)
        assert_int_equal(put_text(cache, i, "v", namespaces[i % 3], -1), 0);

    uint64_t removed = 0;
    assert_int_equal(an_cache_purge(cache, "team-a", &removed), 0);
    assert_int_equal(removed, 100);
    for (int i = 0; i < 300; i++) {
        if (present(cache, i) != (i % 3 != 0))
            fail_msg("entry %d in namespace %d: presence is wrong after purging team-a", i, i % 3);
    }
    an_cache_stats_t stats = stats_of(cache);
    assert_int_equal(stats.entries, 200);
    assert_int_equal(stats.bytes, 100 * an__cache_entry_bytes(1, 16, 6) +
                                      100 * an__cache_entry_bytes(1, 16, 0));

    assert_int_equal(an_cache_purge(cache, NULL, &removed), 0);
    assert_int_equal(removed, 200);
    stats = stats_of(cache);
    assert_int_equal(stats.entries, 0);
    assert_int_equal(stats.bytes, 0);

    /* The LRU index was emptied too: new entries evict normally. */
    an_cache_close(cache);
    cache = open_lmdb(f->dir, 2, 1 << 22, 0, NULL);
    for (int i = 0; i < 5; i++)
        assert_int_equal(put_text(cache, 1000 + i, "v", NULL, -1), 0);
    assert_int_equal(stats_of(cache).entries, 2);
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


/*
 * 300 entries of 1 to 7 bytes in "a", "b" and the default namespace, enough
 * to spread the scan over several LMDB pages, plus one in "ab" that "a" must
 * not match. The counts must hold after a reopen, which is how agentnet
 * cache stats reads them, and purging "a" must leave the others as they were.
 */
static void namespace_stats_count_only_that_namespace(void **state)
{
    fixture_t *f = *state;
    size_t type_len = strlen("application/json");
    static const char *const namespaces[] = {"a", "b", NULL};
    uint64_t expected_entries[3] = {0}, expected_bytes[3] = {0};
    an_cache_t *cache = open_lmdb(f->dir, 1000, 1 << 22, 0, NULL);
    for (int i = 0; i < 300; i++) {
        char value[8] = "xxxxxxx";
        size_t value_len = (size_t)(i % 7) + 1;
        value[value_len] = '\0';
        const char *namespace_ = namespaces[i % 3];
        assert_int_equal(put_text(cache, i, value, namespace_, -1), 0);
        expected_entries[i % 3]++;
        expected_bytes[i % 3] +=
            an__cache_entry_bytes(value_len, type_len, namespace_ ? strlen(namespace_) : 0);
    }
    assert_int_equal(put_text(cache, 1000, "prefix", "ab", -1), 0);
    uint64_t ab_bytes = an__cache_entry_bytes(6, type_len, 2);

    assert_namespace_stats(cache, "a", expected_entries[0], expected_bytes[0]);
    assert_namespace_stats(cache, "b", expected_entries[1], expected_bytes[1]);
    assert_namespace_stats(cache, NULL, expected_entries[2], expected_bytes[2]);
    assert_namespace_stats(cache, "", expected_entries[2], expected_bytes[2]);
    assert_namespace_stats(cache, "ab", 1, ab_bytes);
    assert_namespace_stats(cache, "c", 0, 0);
    an_cache_stats_t stats = stats_of(cache);
    assert_int_equal(stats.bytes,
                     expected_bytes[0] + expected_bytes[1] + expected_bytes[2] + ab_bytes);
    an_cache_close(cache);

    cache = open_lmdb(f->dir, 1000, 1 << 22, 0, NULL);
    assert_namespace_stats(cache, "a", expected_entries[0], expected_bytes[0]);
    assert_namespace_stats(cache, "b", expected_entries[1], expected_bytes[1]);
    assert_namespace_stats(cache, NULL, expected_entries[2], expected_bytes[2]);

    uint64_t removed = 0;
    assert_int_equal(an_cache_purge(cache, "a", &removed), 0);
    assert_int_equal(removed, expected_entries[0]);
    assert_namespace_stats(cache, "a", 0, 0);
    assert_namespace_stats(cache, "b", expected_entries[1], expected_bytes[1]);
    assert_namespace_stats(cache, NULL, expected_entries[2], expected_bytes[2]);
    assert_namespace_stats(cache, "ab", 1, ab_bytes);
    an_cache_close(cache);
}


/*
 * Replacing an entry under another namespace moves its count and bytes,
 * also when another process replaces it while this one has the cache open.
 */
static void namespace_stats_follow_replaced_entry(void **state)
{
    fixture_t *f = *state;
    size_t type_len = strlen("application/json");
    an_cache_t *cache = open_lmdb(f->dir, 100, 1 << 20, 0, NULL);
    assert_int_equal(put_text(cache, 1, "first", "a", -1), 0);
    assert_namespace_stats(cache, "a", 1, an__cache_entry_bytes(5, type_len, 1));

    assert_int_equal(put_text(cache, 1, "replaced", "b", -1), 0);
    assert_namespace_stats(cache, "a", 0, 0);
    assert_namespace_stats(cache, "b", 1, an__cache_entry_bytes(8, type_len, 1));

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        an_cache_options_t opts = lmdb_options(f->dir, 100, 1 << 20, 0);
        an_cache_t *other = NULL;
        if (an_cache_open(&opts, &other, NULL, 0) != 0)
            _exit(10);
        if (put_text(other, 1, "back", "a", -1) != 0)
            _exit(11);
        an_cache_close(other);
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    assert_namespace_stats(cache, "a", 1, an__cache_entry_bytes(4, type_len, 1));
    assert_namespace_stats(cache, "b", 0, 0);
    an_cache_close(cache);
}


static void delete_removes_one_entry(void **state)
{
    fixture_t *f = *state;
    an_cache_t *cache = open_lmdb(f->dir, 100, 1 << 20, 0, NULL);
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


static void put_replaces_existing_entry(void **state)
{
    fixture_t *f = *state;
    an_cache_t *cache = open_lmdb(f->dir, 2, 1 << 20, 0, NULL);
    assert_int_equal(put_text(cache, 1, "first", NULL, -1), 0);
    assert_int_equal(put_text(cache, 2, "other", NULL, -1), 0);
    assert_int_equal(put_text(cache, 1, "second", NULL, -1), 0);

    an_buf_t value = {0};
    assert_int_equal(get_n(cache, 1, &value, NULL), 0);
    assert_string_equal(value.data, "second");
    an_cache_stats_t stats = stats_of(cache);
    assert_int_equal(stats.entries, 2);
    assert_int_equal(stats.evictions, 0);
    assert_int_equal(stats.bytes, an__cache_entry_bytes(6, 16, 0) + an__cache_entry_bytes(5, 16, 0));
    an_buf_free(&value);
    an_cache_close(cache);
}


typedef struct {
    an_cache_t *cache;
    int thread;
    uint64_t gets;
    uint64_t puts;
    int errors;
    int wrong_values;
} worker_t;

enum { WORKER_OPS = 4000, WORKER_KEYS = 300 };


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
        if ((seed >> 4) % 8 == 0) {
            if (put_text(w->cache, i, text, NULL, -1) == 0)
                w->puts++;
            else
                w->errors++;
        } else {
            w->gets++;
            int rc = get_n(w->cache, i, &value, NULL);
            if (rc == 0 && strcmp(value.data, text) != 0)
                w->wrong_values++;
            else if (rc != 0 && rc != AN_ENOTFOUND)
                w->errors++;
        }
        if (op % 1000 == 999 && w->thread == 0 && an_cache_flush(w->cache) != 0)
            w->errors++;
    }
    an_buf_free(&value);
    return NULL;
}


static void concurrent_get_put_keeps_bounds(void **state)
{
    fixture_t *f = *state;
    an_cache_t *cache = open_lmdb(f->dir, 100, 1 << 22, 0, NULL);
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
        assert_int_equal(workers[t].errors, 0);
        assert_int_equal(workers[t].wrong_values, 0);
    }

    an_cache_stats_t stats = stats_of(cache);
    assert_int_equal(stats.hits + stats.misses, gets);
    assert_int_equal(stats.stores, puts);
    assert_int_equal(stats.entries, 100);

    /* bytes must equal the sum over the entries still present. */
    uint64_t bytes = 0, entries = 0;
    an_cache_meta_t meta;
    for (int i = 0; i < WORKER_KEYS; i++) {
        if (get_n(cache, i, NULL, &meta) == 0) {
            entries++;
            bytes += an__cache_entry_bytes(meta.size, strlen(meta.content_type), 0);
        }
    }
    assert_int_equal(entries, stats.entries);
    assert_int_equal(bytes, stats.bytes);
    an_cache_close(cache);
}


int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(entries_persist_across_reopen, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(hits_reach_record_after_flush, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(hot_entry_hits_all_counted, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(replaced_entry_starts_without_hits, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(counters_persist_across_reopen, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(entries_survive_kill_9, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(stats_visible_to_other_process, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(map_grown_by_other_process_is_adopted, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(second_open_in_process_is_rejected, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(unwritable_dir_error_names_path_and_fix, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(corrupt_data_file_error_names_fix, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(newer_format_is_rejected, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(old_layout_record_is_dropped_at_open, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(current_layout_survives_format_upgrade, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(out_of_step_index_is_repaired_at_open, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(stale_lru_key_does_not_evict_early, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(forked_child_leaves_parent_readers_alone, setup_dir,
                                        teardown_dir),
        cmocka_unit_test(record_decode_rejects_overrun_lengths),
        cmocka_unit_test_setup_teardown(missing_dir_is_created, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(lru_evicts_least_recent_first, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(lru_counts_unflushed_hits, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(lru_orders_same_millisecond_by_sequence, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(byte_bound_keeps_max_bytes, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(entry_bound_keeps_max_entries, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(full_map_evicts_and_retries, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(put_larger_than_max_bytes_is_too_big, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(ttl_expired_entry_is_miss, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(purge_by_namespace_keeps_others, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(namespace_stats_count_only_that_namespace, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(namespace_stats_follow_replaced_entry, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(delete_removes_one_entry, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(put_replaces_existing_entry, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(concurrent_get_put_keeps_bounds, setup_dir, teardown_dir),
    };
    an_log_set_level(AN_LOG_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
