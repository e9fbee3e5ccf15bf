/*
 * Stress of the lmdb cache backend under the load the gateway puts on it.
 * Threads read a few hot keys, store new keys, delete and purge, and one
 * thread flushes every 10 to 100 ms. The byte bound and the initial map are
 * small, so that eviction, the full-map path and map growth all run.
 * Between rounds the directory is closed, or the process that loads it is
 * killed with SIGKILL, and then checked through LMDB directly: every record
 * decodes and contains the value its key was stored with, the "entries",
 * "access" and "lru" databases agree entry for entry, and the persisted
 * totals match a full scan.
 *
 * AN_STRESS_SECONDS sets the seconds each test runs (default 3), so that a
 * longer run needs no rebuild: AN_STRESS_SECONDS=60 build/test_cache_lmdb_stress.
 */
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <lmdb.h>
#include <openssl/evp.h>

#include "agentnet/cache.h"
#include "agentnet/log.h"
#include "cache/lmdb_internal.h"

/* Bounds small enough that a few hundred stores evict and fill the map. */
#define STRESS_MAX_BYTES (256u * 1024)
#define STRESS_MAX_ENTRIES 300
#define STRESS_INITIAL_MAP_BYTES (256u * 1024)

/* Values of 64 bytes up to past LMDB's overflow-page threshold, about 2 KiB for 4 KiB pages. */
#define VALUE_MIN_BYTES 64
#define VALUE_SPREAD_BYTES 3000

enum { HOT_KEYS = 4, WORKERS = 3, FIRST_NEW_ID = 1000 };

typedef struct {
    char dir[64];
    int seconds;
} fixture_t;

/* What one load thread did and found wrong. Only that thread writes the fields. */
typedef struct {
    an_cache_t *cache;
    _Atomic int *stop;
    _Atomic uint64_t *next_id;
    unsigned seed;
    uint64_t gets;
    uint64_t hits;
    uint64_t puts;
    uint64_t errors;       /* calls that returned neither 0 nor an expected code */
    uint64_t wrong_values; /* hits whose value is not the one stored under that key */
    uint64_t bound_breaks; /* stats over max_bytes or max_entries */
} load_t;

/* Log lines of this process, counted by count_log_line and reset by each test. */
static _Atomic uint64_t error_lines;
static _Atomic uint64_t map_growths;
static _Atomic uint64_t map_adoptions;
static _Atomic uint64_t repairs;


/* Counts the library's errors, which it also prints, and the map and repair events. */
static void count_log_line(an_log_level_t level, const char *line, void *ctx)
{
    (void)ctx;
    if (level >= AN_LOG_ERROR) {
        atomic_fetch_add(&error_lines, 1);
        fprintf(stderr, "%s\n", line);
    }
    if (strstr(line, "grew the map"))
        atomic_fetch_add(&map_growths, 1);
    if (strstr(line, "adopted a map size"))
        atomic_fetch_add(&map_adoptions, 1);
    if (strstr(line, "repaired the lmdb databases"))
        atomic_fetch_add(&repairs, 1);
}


static void reset_log_counts(void)
{
    atomic_store(&error_lines, 0);
    atomic_store(&map_growths, 0);
    atomic_store(&map_adoptions, 0);
    atomic_store(&repairs, 0);
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
    snprintf(f->dir, sizeof(f->dir), "/tmp/agentnet-stress-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    const char *seconds = getenv("AN_STRESS_SECONDS");
    f->seconds = seconds ? atoi(seconds) : 3;
    if (f->seconds < 1)
        f->seconds = 1;
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


static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}


static unsigned next_random(unsigned *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return *seed >> 8;
}


static an_cache_key_t key_of(uint64_t id)
{
    char text[32];
    int len = snprintf(text, sizeof(text), "stress-%llu", (unsigned long long)id);
    an_cache_key_t key;
    unsigned int out_len = 0;
    EVP_Digest(text, (size_t)len, key.bytes, &out_len, EVP_sha256(), NULL);
    return key;
}


/* Writes the value stored under id: its id in text, then bytes derived from it. */
static size_t value_of(uint64_t id, char *out)
{
    size_t len = VALUE_MIN_BYTES + (size_t)((id * 7919u) % VALUE_SPREAD_BYTES);
    int head = snprintf(out, len, "id=%010llu;", (unsigned long long)id);
    for (size_t i = (size_t)head; i < len; i++)
        out[i] = (char)('a' + (id * 31u + i) % 26u);
    return len;
}


/* Returns the id a stored value names, or UINT64_MAX when the value is not one value_of wrote. */
static uint64_t id_of_value(const void *data, size_t len)
{
    char expected[VALUE_MIN_BYTES + VALUE_SPREAD_BYTES];
    char head[16]; /* "id=" and 10 digits, copied because values in the map end in no NUL */
    unsigned long long id = 0;
    if (len < VALUE_MIN_BYTES || len >= sizeof(expected))
        return UINT64_MAX;
    memcpy(head, data, sizeof(head) - 1);
    head[sizeof(head) - 1] = '\0';
    if (sscanf(head, "id=%10llu;", &id) != 1)
        return UINT64_MAX;
    if (value_of(id, expected) != len || memcmp(expected, data, len) != 0)
        return UINT64_MAX;
    return id;
}


static const char *namespace_of(uint64_t id)
{
    static const char *const namespaces[] = {"a", "b", NULL};
    return namespaces[id % 3];
}


static an_cache_t *open_stress_cache(const char *dir)
{
    an_cache_options_t opts = an_cache_options_default();
    opts.backend = AN_CACHE_LMDB;
    opts.name = "stress";
    opts.path = dir;
    opts.max_entries = STRESS_MAX_ENTRIES;
    opts.max_bytes = STRESS_MAX_BYTES;
    opts.default_ttl_s = 0;
    an_cache_t *cache = NULL;
    char err[512] = "";
    if (an_cache_open(&opts, &cache, err, sizeof(err)) != 0)
        return NULL;
    return cache;
}


static int put_id(an_cache_t *cache, uint64_t id, int64_t ttl_s)
{
    char value[VALUE_MIN_BYTES + VALUE_SPREAD_BYTES];
    an_cache_key_t key = key_of(id);
    an_cache_entry_t entry = {
        .value = value,
        .value_len = value_of(id, value),
        .content_type = "application/json",
        .namespace_ = namespace_of(id),
        .ttl_s = ttl_s,
    };
    return an_cache_put(cache, &key, &entry);
}


/* Looks id up and checks the value. Returns 1 on a hit, 0 on a miss and -1 on an error. */
static int get_id(load_t *load, uint64_t id, an_buf_t *value)
{
    an_cache_key_t key = key_of(id);
    load->gets++;
    int rc = an_cache_get(load->cache, &key, value, NULL);
    if (rc == AN_ENOTFOUND)
        return 0;
    if (rc != 0) {
        load->errors++;
        return -1;
    }
    load->hits++;
    if (id_of_value(value->data, value->len) != id)
        load->wrong_values++;
    return 1;
}


/*
 * One load thread. Most operations are hits on the hot keys, which it
 * stores again when they were evicted. The rest are stores of new keys (an
 * eighth with a 1 s TTL), lookups of recent keys, deletes, and now and then
 * a purge of namespace "b".
 */
static void *load_main(void *arg)
{
    load_t *load = arg;
    an_buf_t value = {0};
    while (!atomic_load(load->stop)) {
        unsigned r = next_random(&load->seed) % 1000;
        uint64_t newest = atomic_load(load->next_id);
        if (r < 600) {
            uint64_t id = next_random(&load->seed) % HOT_KEYS;
            if (get_id(load, id, &value) == 0 || r < 6) {
                if (put_id(load->cache, id, 0) != 0)
                    load->errors++;
                else
                    load->puts++;
            }
        } else if (r < 850) {
            uint64_t id = atomic_fetch_add(load->next_id, 1);
            int64_t ttl_s = r % 8 == 0 ? 1 : -1;
            if (put_id(load->cache, id, ttl_s) != 0)
                load->errors++;
            else
                load->puts++;
        } else if (r < 950) {
            get_id(load, newest - 1 - next_random(&load->seed) % 50, &value);
        } else if (r < 999) {
            an_cache_key_t key = key_of(newest - 1 - next_random(&load->seed) % 50);
            int rc = an_cache_delete(load->cache, &key);
            if (rc != 0 && rc != AN_ENOTFOUND)
                load->errors++;
        } else {
            uint64_t removed = 0;
            if (an_cache_purge(load->cache, "b", &removed) != 0)
                load->errors++;
        }
    }
    an_buf_free(&value);
    return NULL;
}


/* A lookup-only thread: hits on the hot keys, which must be present. */
static void *read_main(void *arg)
{
    load_t *load = arg;
    an_buf_t value = {0};
    while (!atomic_load(load->stop)) {
        if (get_id(load, next_random(&load->seed) % HOT_KEYS, &value) == 0)
            load->errors++;
    }
    an_buf_free(&value);
    return NULL;
}


/* The flushing thread: flushes every 10 to 100 ms and checks the bounds in the statistics. */
static void *flush_main(void *arg)
{
    load_t *load = arg;
    while (!atomic_load(load->stop)) {
        sleep_ms(10 + next_random(&load->seed) % 91);
        if (an_cache_flush(load->cache) != 0)
            load->errors++;
        an_cache_stats_t stats;
        if (an_cache_stats(load->cache, &stats) != 0) {
            load->errors++;
            continue;
        }
        if (stats.bytes > STRESS_MAX_BYTES || stats.entries > STRESS_MAX_ENTRIES)
            load->bound_breaks++;
    }
    return NULL;
}


/* Sums the findings of every thread of a run into total. */
static void add_load(load_t *total, const load_t *load)
{
    total->gets += load->gets;
    total->hits += load->hits;
    total->puts += load->puts;
    total->errors += load->errors;
    total->wrong_values += load->wrong_values;
    total->bound_breaks += load->bound_breaks;
}


/* Runs WORKERS load threads and one flushing thread on cache for ms milliseconds. */
static load_t run_load(an_cache_t *cache, _Atomic uint64_t *next_id, unsigned seed, long ms)
{
    _Atomic int stop = 0;
    load_t loads[WORKERS + 1];
    pthread_t threads[WORKERS + 1];
    for (int t = 0; t <= WORKERS; t++) {
        loads[t] = (load_t){.cache = cache, .stop = &stop, .next_id = next_id,
                            .seed = seed * 7919u + (unsigned)t};
        void *(*body)(void *) = t == WORKERS ? flush_main : load_main;
        if (pthread_create(&threads[t], NULL, body, &loads[t]) != 0)
            fail_msg("cannot start load thread %d", t);
    }
    sleep_ms(ms);
    atomic_store(&stop, 1);

    load_t total = {0};
    for (int t = 0; t <= WORKERS; t++) {
        pthread_join(threads[t], NULL);
        add_load(&total, &loads[t]);
    }
    return total;
}


static void assert_load_clean(const load_t *load, const char *when)
{
    if (load->errors || load->wrong_values || load->bound_breaks)
        fail_msg("%s: %llu errors, %llu wrong values, %llu statistics over the bounds "
                 "in %llu lookups and %llu stores",
                 when, (unsigned long long)load->errors, (unsigned long long)load->wrong_values,
                 (unsigned long long)load->bound_breaks, (unsigned long long)load->gets,
                 (unsigned long long)load->puts);
}


/* What check_dir found, for the summary line. */
typedef struct {
    uint64_t entries;
    uint64_t bytes;
} dir_state_t;


static int open_dbi(MDB_txn *txn, const char *name, MDB_dbi *dbi)
{
    int rc = mdb_dbi_open(txn, name, 0, dbi);
    if (rc != 0)
        fail_msg("cannot open database \"%s\": %s", name, mdb_strerror(rc));
    return rc;
}


static uint64_t meta_value(MDB_txn *txn, MDB_dbi meta, int index)
{
    const char *name = an__lmdb_meta_names[index];
    MDB_val key = {strlen(name), (void *)name}, val;
    int rc = mdb_get(txn, meta, &key, &val);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0 || val.mv_size != 8)
        fail_msg("meta \"%s\" cannot be read (%s, %zu bytes)", name, mdb_strerror(rc),
                 rc == 0 ? val.mv_size : 0);
    return an__lmdb_u64_load(val.mv_data);
}


/*
 * Opens dir with LMDB directly, while no cache in this process has it open,
 * and checks every invariant lmdb_internal.h states: each record decodes
 * and contains its key's value, each entry has an "access" value and the one
 * "lru" key that value names, no database has more keys than "entries",
 * and the persisted totals equal a full scan and respect the bounds.
 */
static dir_state_t check_dir(const char *dir, const char *when)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi entries, access, lru, meta;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 4), 0);
    assert_int_equal(mdb_env_set_maxreaders(env, 1024), 0);
    int rc = mdb_env_open(env, dir, MDB_NOTLS, 0644);
    if (rc != 0)
        fail_msg("%s: cannot open \"%s\": %s", when, dir, mdb_strerror(rc));
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    open_dbi(txn, "entries", &entries);
    open_dbi(txn, "access", &access);
    open_dbi(txn, "lru", &lru);
    open_dbi(txn, "meta", &meta);

    dir_state_t state = {0};
    MDB_cursor *cursor;
    assert_int_equal(mdb_cursor_open(txn, entries, &cursor), 0);
    MDB_val k, v;
    for (rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)) {
        an__lmdb_record_t rec;
        if (k.mv_size != AN_CACHE_KEY_BYTES)
            fail_msg("%s: an \"entries\" key has %zu bytes", when, k.mv_size);
        if (an__lmdb_record_decode(v.mv_data, v.mv_size, &rec) != 0)
            fail_msg("%s: the record of entry %llu (%zu bytes) does not decode", when,
                     (unsigned long long)state.entries, v.mv_size);
        uint64_t id = id_of_value(rec.value, rec.value_len);
        an_cache_key_t key;
        memcpy(key.bytes, k.mv_data, AN_CACHE_KEY_BYTES);
        an_cache_key_t expected = key_of(id);
        if (id == UINT64_MAX || memcmp(expected.bytes, key.bytes, AN_CACHE_KEY_BYTES) != 0)
            fail_msg("%s: entry %llu holds a value that was not stored under its key", when,
                     (unsigned long long)state.entries);
        state.entries++;
        state.bytes += an__lmdb_record_bytes(&rec);

        MDB_val access_val;
        an__lmdb_access_rec_t access_rec;
        if (mdb_get(txn, access, &k, &access_val) != 0 ||
            an__lmdb_access_decode(access_val.mv_data, access_val.mv_size, &access_rec) != 0)
            fail_msg("%s: entry of id %llu has no readable \"access\" value", when,
                     (unsigned long long)id);
        uint8_t lru_key[AN__LMDB_LRU_KEY_BYTES];
        an__lmdb_lru_key(access_rec.last_access_ms, access_rec.lru_seq, &key, lru_key);
        MDB_val lru_k = {sizeof(lru_key), lru_key}, lru_v;
        if (mdb_get(txn, lru, &lru_k, &lru_v) != 0)
            fail_msg("%s: entry of id %llu has no \"lru\" key for its access value", when,
                     (unsigned long long)id);
    }
    mdb_cursor_close(cursor);
    if (rc != MDB_NOTFOUND)
        fail_msg("%s: scanning \"entries\" failed: %s", when, mdb_strerror(rc));

    MDB_stat entries_stat, access_stat, lru_stat;
    assert_int_equal(mdb_stat(txn, entries, &entries_stat), 0);
    assert_int_equal(mdb_stat(txn, access, &access_stat), 0);
    assert_int_equal(mdb_stat(txn, lru, &lru_stat), 0);
    if (access_stat.ms_entries != entries_stat.ms_entries ||
        lru_stat.ms_entries != entries_stat.ms_entries)
        fail_msg("%s: %zu entries, %zu access values and %zu lru keys", when,
                 entries_stat.ms_entries, access_stat.ms_entries, lru_stat.ms_entries);

    uint64_t meta_entries = meta_value(txn, meta, AN__LMDB_META_ENTRIES);
    uint64_t meta_bytes = meta_value(txn, meta, AN__LMDB_META_BYTES);
    if (meta_entries != state.entries || meta_bytes != state.bytes)
        fail_msg("%s: totals say %llu entries and %llu bytes, a scan finds %llu and %llu", when,
                 (unsigned long long)meta_entries, (unsigned long long)meta_bytes,
                 (unsigned long long)state.entries, (unsigned long long)state.bytes);
    if (state.bytes > STRESS_MAX_BYTES || state.entries > STRESS_MAX_ENTRIES)
        fail_msg("%s: %llu entries and %llu bytes are over the bounds", when,
                 (unsigned long long)state.entries, (unsigned long long)state.bytes);

    mdb_txn_abort(txn);
    mdb_env_close(env);
    return state;
}


/* Opens dir, checks that the hot keys still read back, closes it, and returns what it did. */
static load_t reopen_and_read(const char *dir, const char *when)
{
    an_cache_t *cache = open_stress_cache(dir);
    if (!cache)
        fail_msg("%s: the cache does not open again", when);
    load_t load = {.cache = cache};
    an_buf_t value = {0};
    for (uint64_t id = 0; id < HOT_KEYS; id++)
        get_id(&load, id, &value);
    if (put_id(cache, 0, 0) != 0)
        load.errors++;
    an_buf_free(&value);
    an_cache_close(cache);
    assert_load_clean(&load, when);
    return load;
}


/* Prints what a test did. load counts the operations of this process, not of its children. */
static void print_summary(const char *test, int cycles, const load_t *load, dir_state_t state)
{
    printf("[ stress   ] %s: %d cycles; here %llu lookups (%llu hits), %llu stores, "
           "%llu map growths, %llu map adoptions, %llu repairs, %llu errors logged; "
           "last check %llu entries, %llu bytes\n",
           test, cycles, (unsigned long long)load->gets, (unsigned long long)load->hits,
           (unsigned long long)load->puts, (unsigned long long)atomic_load(&map_growths),
           (unsigned long long)atomic_load(&map_adoptions), (unsigned long long)atomic_load(&repairs),
           (unsigned long long)atomic_load(&error_lines), (unsigned long long)state.entries,
           (unsigned long long)state.bytes);
}


/* Load, close, check, reopen: the state after a clean close must be exact. */
static void close_reopen_cycles_keep_invariants(void **state)
{
    fixture_t *f = *state;
    _Atomic uint64_t next_id = FIRST_NEW_ID;
    uint64_t deadline_ns = an_mono_ns() + (uint64_t)f->seconds * 1000000000ull;
    load_t total = {0};
    dir_state_t dir_state = {0};
    int cycles = 0;
    reset_log_counts();

    while (cycles == 0 || an_mono_ns() < deadline_ns) {
        an_cache_t *cache = open_stress_cache(f->dir);
        assert_non_null(cache);
        assert_int_equal(an__cache_lmdb_set_map_bytes(cache, STRESS_INITIAL_MAP_BYTES), 0);
        load_t load = run_load(cache, &next_id, (unsigned)cycles + 1, 100 + cycles % 5 * 100);
        an_cache_close(cache);

        char when[64];
        snprintf(when, sizeof(when), "close cycle %d", cycles);
        assert_load_clean(&load, when);
        dir_state = check_dir(f->dir, when);
        add_load(&total, &load);
        cycles++;
    }
    reopen_and_read(f->dir, "after the close cycles");
    print_summary("close/reopen", cycles, &total, dir_state);
    assert_int_equal(atomic_load(&error_lines), 0);
}


/* Child process body: loads dir until the parent kills it, or exits 2 on a wrong value. */
static void load_until_killed(const char *dir, unsigned seed, uint64_t first_id)
{
    an_cache_t *cache = open_stress_cache(dir);
    if (!cache)
        _exit(3);
    if (an__cache_lmdb_set_map_bytes(cache, STRESS_INITIAL_MAP_BYTES) != 0)
        _exit(3);
    _Atomic uint64_t next_id = first_id;
    _Atomic int stop = 0;
    load_t loads[WORKERS + 1];
    pthread_t threads[WORKERS + 1];
    for (int t = 0; t <= WORKERS; t++) {
        loads[t] = (load_t){.cache = cache, .stop = &stop, .next_id = &next_id,
                            .seed = seed * 7919u + (unsigned)t};
        if (pthread_create(&threads[t], NULL, t == WORKERS ? flush_main : load_main, &loads[t]))
            _exit(4);
    }
    for (;;) {
        sleep_ms(5);
        for (int t = 0; t <= WORKERS; t++) {
            if (loads[t].errors || loads[t].wrong_values || loads[t].bound_breaks)
                _exit(2);
        }
    }
}


/* Waits for child and returns its wait status. */
static int wait_child(pid_t child)
{
    int status = 0;
    if (waitpid(child, &status, 0) != child)
        return -1;
    return status;
}


/* Fails unless status, from wait_child, shows that SIGKILL ended the child. */
static void assert_killed(int status, const char *when)
{
    assert_int_not_equal(status, -1);
    if (WIFEXITED(status))
        fail_msg("%s: the loading child exited with status %d (2: an error or wrong value, "
                 "3: open failed) before it was killed",
                 when, WEXITSTATUS(status));
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
}


/* A process killed by SIGKILL at a random point of the load leaves a consistent directory. */
static void kill_9_cycles_keep_invariants(void **state)
{
    fixture_t *f = *state;
    uint64_t deadline_ns = an_mono_ns() + (uint64_t)f->seconds * 1000000000ull;
    dir_state_t dir_state = {0};
    load_t total = {0};
    int cycles = 0;
    unsigned seed = 12345;
    reset_log_counts();

    while (cycles == 0 || an_mono_ns() < deadline_ns) {
        pid_t child = fork();
        assert_true(child >= 0);
        if (child == 0)
            load_until_killed(f->dir, (unsigned)cycles + 1, FIRST_NEW_ID + 1000000ull * cycles);
        sleep_ms(20 + next_random(&seed) % 400);
        kill(child, SIGKILL);

        char when[64];
        snprintf(when, sizeof(when), "kill -9 cycle %d", cycles);
        assert_killed(wait_child(child), when);
        dir_state = check_dir(f->dir, when);
        load_t load = reopen_and_read(f->dir, when);
        add_load(&total, &load);
        cycles++;
    }
    print_summary("kill -9", cycles, &total, dir_state);
    assert_int_equal(atomic_load(&error_lines), 0);
}


/*
 * This process loads the directory while a child loads it too and is
 * killed mid-load, possibly inside a write transaction or a map growth.
 * The survivor must keep working: LMDB hands it the dead writer's lock.
 */
static void kill_9_beside_live_process(void **state)
{
    fixture_t *f = *state;
    _Atomic uint64_t next_id = FIRST_NEW_ID;
    uint64_t deadline_ns = an_mono_ns() + (uint64_t)f->seconds * 1000000000ull;
    dir_state_t dir_state = {0};
    load_t total = {0};
    int cycles = 0;
    unsigned seed = 777;
    reset_log_counts();

    while (cycles == 0 || an_mono_ns() < deadline_ns) {
        /* Fork before this process starts threads, so the child inherits no held lock. */
        pid_t child = fork();
        assert_true(child >= 0);
        if (child == 0)
            load_until_killed(f->dir, (unsigned)cycles + 101, 50000000ull + 1000000ull * cycles);

        an_cache_t *cache = open_stress_cache(f->dir);
        assert_non_null(cache);
        /* A small map here too, so that this process adopts the maps the child grows. */
        assert_int_equal(an__cache_lmdb_set_map_bytes(cache, STRESS_INITIAL_MAP_BYTES), 0);
        long kill_after_ms = 20 + (long)(next_random(&seed) % 300);
        _Atomic int stop = 0;
        load_t loads[WORKERS + 1];
        pthread_t threads[WORKERS + 1];
        for (int t = 0; t <= WORKERS; t++) {
            loads[t] = (load_t){.cache = cache, .stop = &stop, .next_id = &next_id,
                                .seed = (unsigned)cycles * 7919u + (unsigned)t + 3};
            assert_int_equal(pthread_create(&threads[t], NULL,
                                            t == WORKERS ? flush_main : load_main, &loads[t]),
                             0);
        }
        sleep_ms(kill_after_ms);
        kill(child, SIGKILL);
        int status = wait_child(child);
        sleep_ms(100); /* keep loading after the kill */
        atomic_store(&stop, 1);
        load_t load = {0};
        for (int t = 0; t <= WORKERS; t++) {
            pthread_join(threads[t], NULL);
            add_load(&load, &loads[t]);
        }
        an_cache_close(cache);

        /* Checked only now, so that a failure leaves no thread running on a removed directory. */
        char when[64];
        snprintf(when, sizeof(when), "live beside kill -9, cycle %d", cycles);
        assert_killed(status, when);
        assert_load_clean(&load, when);
        dir_state = check_dir(f->dir, when);
        add_load(&total, &load);
        cycles++;
    }
    print_summary("live beside kill -9", cycles, &total, dir_state);
    assert_int_equal(atomic_load(&error_lines), 0);
}


/*
 * Child process body: stores about 2 MiB of new entries under a byte bound
 * that allows them, which grows the data file past the parent's small map,
 * then exits. Commits skip the sync, to keep the test short.
 */
static void grow_file_then_exit(const char *dir, uint64_t first_id)
{
    an_cache_options_t opts = an_cache_options_default();
    opts.backend = AN_CACHE_LMDB;
    opts.name = "grower";
    opts.path = dir;
    opts.max_entries = 0;
    opts.max_bytes = 16u << 20;
    an_cache_t *cache = NULL;
    if (an_cache_open(&opts, &cache, NULL, 0) != 0)
        _exit(3);
    if (an__cache_lmdb_set_durable(cache, 0) != 0)
        _exit(4);
    for (uint64_t id = first_id; id < first_id + 1500; id++) {
        if (put_id(cache, id, -1) != 0)
            _exit(5);
    }
    an_cache_close(cache);
    _exit(0);
}


/*
 * Lookups keep running while another process grows the data file past this
 * process's map, so that threads here must adopt the larger map. The remap
 * may only happen while no transaction of this process is active, because
 * a reader inside the old map during it would read unmapped memory.
 */
static void map_adoption_under_lookup_load(void **state)
{
    fixture_t *f = *state;
    uint64_t deadline_ns = an_mono_ns() + (uint64_t)f->seconds * 1000000000ull;
    dir_state_t dir_state = {0};
    load_t total = {0};
    int cycles = 0;
    reset_log_counts();

    an_cache_t *cache = open_stress_cache(f->dir);
    assert_non_null(cache);
    for (uint64_t id = 0; id < HOT_KEYS; id++)
        assert_int_equal(put_id(cache, id, 0), 0);
    an_cache_close(cache);

    while (cycles == 0 || an_mono_ns() < deadline_ns) {
        pid_t child = fork();
        assert_true(child >= 0);
        if (child == 0)
            grow_file_then_exit(f->dir, 70000000ull + 10000ull * cycles);

        cache = open_stress_cache(f->dir);
        assert_non_null(cache);
        assert_int_equal(an__cache_lmdb_set_map_bytes(cache, STRESS_INITIAL_MAP_BYTES), 0);
        _Atomic int stop = 0;
        load_t loads[WORKERS + 1];
        pthread_t threads[WORKERS + 1];
        for (int t = 0; t <= WORKERS; t++) {
            loads[t] = (load_t){.cache = cache, .stop = &stop, .seed = (unsigned)cycles + 7u * t};
            assert_int_equal(pthread_create(&threads[t], NULL,
                                            t == WORKERS ? flush_main : read_main, &loads[t]),
                             0);
        }
        int status = wait_child(child);
        sleep_ms(50);
        atomic_store(&stop, 1);
        load_t load = {0};
        for (int t = 0; t <= WORKERS; t++) {
            pthread_join(threads[t], NULL);
            add_load(&load, &loads[t]);
        }
        an_cache_close(cache);

        char when[64];
        snprintf(when, sizeof(when), "map adoption cycle %d", cycles);
        if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            fail_msg("%s: the growing child failed with wait status %d (exit 3: open, 4: sync "
                     "mode, 5: a store)",
                     when, status);
        /* The child's entries are over this process's bounds, which statistics report. */
        load.bound_breaks = 0;
        assert_load_clean(&load, when);
        load_t reread = reopen_and_read(f->dir, when); /* its store evicts down to the bounds */
        add_load(&load, &reread);
        dir_state = check_dir(f->dir, when);
        add_load(&total, &load);
        cycles++;
    }
    print_summary("map adoption", cycles, &total, dir_state);
    assert_int_equal(atomic_load(&error_lines), 0);
    if (atomic_load(&map_adoptions) == 0)
        fail_msg("no lookup had to adopt a map grown by the child; the test did not test that");
}


int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(close_reopen_cycles_keep_invariants, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(kill_9_cycles_keep_invariants, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(kill_9_beside_live_process, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(map_adoption_under_lookup_load, setup_dir, teardown_dir),
    };
    an_log_set_writer(count_log_line, NULL);
    an_log_set_level(AN_LOG_INFO);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
