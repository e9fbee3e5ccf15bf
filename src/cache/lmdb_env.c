/*
 * The lmdb backend's environment: opening a cache directory, the per-process
 * registry of open directories, reusable read transactions, and the write
 * transaction runner that handles a map grown by another process and a full
 * map. What the transactions do lives in lmdb.c and lmdb_lru.c.
 */
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "agentnet/log.h"
#include "cache/lmdb_internal.h"

/*
 * Reader slots in the lock file, shared by every process that opens the
 * directory. Each thread inside a lookup uses one, and each pooled read
 * transaction keeps one, so this bounds server threads plus CLI readers.
 */
#define MAX_READERS 1024

/*
 * Slack over twice max_bytes in the map. Eviction keeps logical bytes under
 * max_bytes, and the map must also hold B-tree pages, free pages that
 * readers still pin, and the "lru" and "meta" databases.
 */
#define MAP_SLACK_BYTES (64ull * 1024 * 1024)

/* Share of entries evicted when LMDB reports a full map despite the byte bound. */
#define MAP_FULL_EVICT_DIVISOR 10

/*
 * Retries of a transaction begin after adopting a map grown by another
 * process or clearing dead readers from a full reader table. More than
 * one, because the other process may grow the map again between the
 * adoption and the retry.
 */
#define MAX_BEGIN_RETRIES 3

/*
 * LMDB forbids opening one environment twice in a process: closing either
 * handle drops the other's file locks. The registry rejects a second open of
 * the same directory. registry_lock guards the list. Each node records the
 * pid that opened it, so that a child after fork() may open the directory
 * with its own environment.
 */
typedef struct registry_node {
    struct registry_node *next;
    const char *real_path; /* owned by the cache's an__lmdb_cache_t */
    pid_t pid;
} registry_node_t;

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static registry_node_t *registry;

/*
 * fork() copies every open environment into the child, where LMDB must not
 * use it. A pooled transaction's abort there would free the parent's reader
 * slot in the shared lock file, and a renew would overwrite it, so the
 * parent's writer could reuse pages that the parent's readers still read.
 * fork_count is incremented in every child by a pthread_atfork handler,
 * and each cache records the count it was opened under.
 */
static _Atomic unsigned fork_count;
static pthread_once_t fork_handler_once = PTHREAD_ONCE_INIT;


static int registry_add(const char *real_path)
{
    pid_t pid = getpid();
    int rc = 0;
    pthread_mutex_lock(&registry_lock);
    for (registry_node_t *n = registry; n; n = n->next) {
        if (n->pid == pid && strcmp(n->real_path, real_path) == 0) {
            rc = AN_EEXIST;
            goto done;
        }
    }
    registry_node_t *node = malloc(sizeof(*node));
    if (!node) {
        rc = AN_ENOMEM;
        goto done;
    }
    node->real_path = real_path;
    node->pid = pid;
    node->next = registry;
    registry = node;
done:
    pthread_mutex_unlock(&registry_lock);
    return rc;
}


static void registry_remove(const char *real_path)
{
    pthread_mutex_lock(&registry_lock);
    for (registry_node_t **link = &registry; *link; link = &(*link)->next) {
        if ((*link)->real_path == real_path) {
            registry_node_t *node = *link;
            *link = node->next;
            free(node);
            break;
        }
    }
    pthread_mutex_unlock(&registry_lock);
}


static void count_fork(void)
{
    atomic_fetch_add(&fork_count, 1);
}


static void install_fork_handler(void)
{
    pthread_atfork(NULL, NULL, count_fork);
}


/* Returns 1 when this process is a child forked after lc was opened. */
int an__lmdb_forked_since_open(const an__lmdb_cache_t *lc)
{
    return atomic_load(&fork_count) != lc->fork_count;
}


/*
 * Returns 1 when this process is a child forked after cache was opened, so
 * that an operation must not touch LMDB, and logs that once per cache.
 */
int an__lmdb_inherited(an_cache_t *cache)
{
    an__lmdb_cache_t *lc = cache->backend;
    if (!an__lmdb_forked_since_open(lc))
        return 0;
    if (!atomic_exchange(&lc->inherited_logged, 1)) {
        char pid[24];
        snprintf(pid, sizeof(pid), "%ld", (long)getpid());
        an_log(AN_LOG_ERROR,
               "cache: lmdb cache used in a process forked after the cache was opened; "
               "open the cache again in the child",
               "cache", cache->name, "path", cache->path, "pid", pid, (const char *)NULL);
    }
    return 1;
}


static const char *errno_name(int code)
{
    const char *name = strerrorname_np(code);
    return name ? name : "unknown error";
}


/* Logs an LMDB failure other than MDB_NOTFOUND and returns the matching AN_E* code. */
int an__lmdb_error(const an_cache_t *cache, const char *operation, int rc)
{
    switch (rc) {
    case 0:
        return 0;
    case MDB_NOTFOUND:
        return AN_ENOTFOUND;
    default:
        break;
    }
    an_log(AN_LOG_ERROR, "cache: lmdb operation failed", "cache", cache->name, "path", cache->path,
           "operation", operation, "error", mdb_strerror(rc), (const char *)NULL);
    switch (rc) {
    case MDB_MAP_FULL:
        return AN_EFULL;
    case ENOMEM:
        return AN_ENOMEM;
    default:
        return AN_EIO;
    }
}


/* Remaps to the map size another process grew the environment to. */
static void adopt_map_size(an__lmdb_cache_t *lc, const an_cache_t *cache)
{
    pthread_rwlock_wrlock(&lc->map_lock);
    int rc = mdb_env_set_mapsize(lc->env, 0);
    pthread_rwlock_unlock(&lc->map_lock);
    if (rc == 0)
        an_log(AN_LOG_INFO, "cache: adopted a map size grown by another process", "cache",
               cache->name, "path", cache->path, (const char *)NULL);
    else
        an_log(AN_LOG_ERROR, "cache: failed to adopt a map size grown by another process",
               "cache", cache->name, "path", cache->path, "error", mdb_strerror(rc),
               (const char *)NULL);
}


/*
 * Frees the reader slots of processes that died inside a read transaction.
 * Such a slot pins the snapshot it was reading, so the pages freed since
 * cannot be reused, and a few of them can fill the reader table. Returns
 * the number of slots freed.
 */
static int clear_dead_readers(an__lmdb_cache_t *lc, const an_cache_t *cache)
{
    int dead = 0;
    if (mdb_reader_check(lc->env, &dead) == 0 && dead > 0)
        an_logf(AN_LOG_INFO, "cache: cleared %d reader slots left by dead processes in \"%s\"",
                dead, cache->path);
    return dead;
}


/*
 * Begins a transaction holding map_lock shared; on failure the lock is
 * released. A map grown by another process is adopted and the begin
 * retried, and so is a full reader table once dead readers were cleared.
 */
static int txn_begin(an__lmdb_cache_t *lc, const an_cache_t *cache, unsigned flags, MDB_txn **txn)
{
    for (int attempt = 0;; attempt++) {
        pthread_rwlock_rdlock(&lc->map_lock);
        int rc = mdb_txn_begin(lc->env, NULL, flags, txn);
        if (rc == 0)
            return 0;
        pthread_rwlock_unlock(&lc->map_lock);
        if (attempt >= MAX_BEGIN_RETRIES)
            return rc;
        if (rc == MDB_MAP_RESIZED)
            adopt_map_size(lc, cache);
        else if (rc != MDB_READERS_FULL || clear_dead_readers(lc, cache) == 0)
            return rc;
    }
}


/*
 * Begins a read-only transaction, reusing a pooled one when there is one:
 * with MDB_NOTLS a reset transaction keeps its reader slot, so renewing it
 * skips the lock-file mutex that claiming a new slot takes.
 */
int an__lmdb_read_begin(an_cache_t *cache, MDB_txn **txn)
{
    an__lmdb_cache_t *lc = cache->backend;
    if (an__lmdb_inherited(cache))
        return EPERM;
    MDB_txn *pooled = NULL;
    pthread_mutex_lock(&lc->pool_lock);
    if (lc->pool_len > 0)
        pooled = lc->pool[--lc->pool_len];
    pthread_mutex_unlock(&lc->pool_lock);

    if (pooled) {
        pthread_rwlock_rdlock(&lc->map_lock);
        int rc = mdb_txn_renew(pooled);
        if (rc == 0) {
            *txn = pooled;
            return 0;
        }
        pthread_rwlock_unlock(&lc->map_lock);
        mdb_txn_abort(pooled);
        if (rc != MDB_MAP_RESIZED)
            return rc;
    }
    return txn_begin(lc, cache, MDB_RDONLY, txn);
}


void an__lmdb_read_end(an_cache_t *cache, MDB_txn *txn)
{
    an__lmdb_cache_t *lc = cache->backend;
    mdb_txn_reset(txn);
    pthread_rwlock_unlock(&lc->map_lock);

    pthread_mutex_lock(&lc->pool_lock);
    if (lc->pool_len < AN__LMDB_MAX_POOLED_READERS) {
        lc->pool[lc->pool_len++] = txn;
        txn = NULL;
    }
    pthread_mutex_unlock(&lc->pool_lock);
    if (txn)
        mdb_txn_abort(txn);
}


int an__lmdb_meta_read(an__lmdb_cache_t *lc, MDB_txn *txn, uint64_t meta[AN__LMDB_META_COUNT])
{
    for (int i = 0; i < AN__LMDB_META_COUNT; i++) {
        const char *name = an__lmdb_meta_names[i];
        MDB_val key = {strlen(name), (void *)name}, val;
        int rc = mdb_get(txn, lc->meta_dbi, &key, &val);
        if (rc == MDB_NOTFOUND) {
            meta[i] = 0;
            continue;
        }
        if (rc != 0)
            return rc;
        if (val.mv_size != 8)
            return MDB_CORRUPTED;
        meta[i] = an__lmdb_u64_load(val.mv_data);
    }
    return 0;
}


/* Stores the meta values that changed since load. */
static int meta_write(an__lmdb_cache_t *lc, MDB_txn *txn, const uint64_t loaded[AN__LMDB_META_COUNT],
                      const uint64_t meta[AN__LMDB_META_COUNT])
{
    for (int i = 0; i < AN__LMDB_META_COUNT; i++) {
        if (meta[i] == loaded[i])
            continue;
        const char *name = an__lmdb_meta_names[i];
        uint8_t bytes[8];
        an__lmdb_u64_store(bytes, meta[i]);
        MDB_val key = {strlen(name), (void *)name}, val = {sizeof(bytes), bytes};
        int rc = mdb_put(txn, lc->meta_dbi, &key, &val, 0);
        if (rc != 0)
            return rc;
    }
    return 0;
}


/* Runs fn in one write transaction and commits. Returns an LMDB error code. */
static int write_once(an_cache_t *cache, an__lmdb_write_fn fn, void *ctx)
{
    an__lmdb_cache_t *lc = cache->backend;
    an__lmdb_write_t w = {0};
    uint64_t loaded[AN__LMDB_META_COUNT];

    pthread_mutex_lock(&lc->write_lock);
    int rc = txn_begin(lc, cache, 0, &w.txn);
    if (rc != 0) {
        pthread_mutex_unlock(&lc->write_lock);
        return rc;
    }

    rc = an__lmdb_meta_read(lc, w.txn, loaded);
    if (rc == 0) {
        memcpy(w.meta, loaded, sizeof(loaded));
        rc = fn(cache, &w, ctx);
    }
    if (rc == 0)
        rc = meta_write(lc, w.txn, loaded, w.meta);
    if (rc == 0)
        rc = mdb_txn_commit(w.txn);
    else
        mdb_txn_abort(w.txn);

    pthread_rwlock_unlock(&lc->map_lock);
    pthread_mutex_unlock(&lc->write_lock);
    return rc;
}


typedef struct {
    uint64_t target;
    uint64_t evicted;
} evict_share_t;


static int evict_share_fn(an_cache_t *cache, an__lmdb_write_t *w, void *ctx)
{
    evict_share_t *share = ctx;
    share->evicted = 0;
    uint64_t target = w->meta[AN__LMDB_META_ENTRIES] / MAP_FULL_EVICT_DIVISOR;
    share->target = target ? target : 1;
    while (share->evicted < share->target) {
        int rc = an__lmdb_evict_oldest(cache, w, &share->evicted);
        if (rc == MDB_NOTFOUND)
            break; /* the index is empty: nothing is left to evict */
        if (rc != 0)
            return rc;
    }
    return 0;
}


/* Returns the size of the map this process has mapped, in bytes. */
static uint64_t current_map_bytes(an__lmdb_cache_t *lc)
{
    MDB_envinfo info;
    pthread_rwlock_rdlock(&lc->map_lock);
    int rc = mdb_env_info(lc->env, &info);
    pthread_rwlock_unlock(&lc->map_lock);
    return rc == 0 ? (uint64_t)info.me_mapsize : 0;
}


/*
 * Grows the map by a quarter, at least MAP_SLACK_BYTES, unless another
 * thread already grew it past seen_bytes, the size the caller found full.
 * The caller must have no transaction. Other processes adopt the new size
 * through MDB_MAP_RESIZED.
 */
static int grow_map(an_cache_t *cache, uint64_t seen_bytes)
{
    an__lmdb_cache_t *lc = cache->backend;
    pthread_rwlock_wrlock(&lc->map_lock);
    MDB_envinfo info;
    memset(&info, 0, sizeof(info));
    int rc = mdb_env_info(lc->env, &info);
    uint64_t grown = info.me_mapsize;
    if (rc == 0 && info.me_mapsize <= seen_bytes) {
        uint64_t step = info.me_mapsize / 4 > MAP_SLACK_BYTES ? info.me_mapsize / 4
                                                               : MAP_SLACK_BYTES;
        uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
        grown = (info.me_mapsize + step + page - 1) / page * page;
        rc = mdb_env_set_mapsize(lc->env, (size_t)grown);
    }
    pthread_rwlock_unlock(&lc->map_lock);
    if (rc != 0 || grown == info.me_mapsize)
        return rc;

    char from[32], to[32];
    snprintf(from, sizeof(from), "%llu", (unsigned long long)info.me_mapsize);
    snprintf(to, sizeof(to), "%llu", (unsigned long long)grown);
    an_log(AN_LOG_WARN, "cache: lmdb map full; grew the map", "cache", cache->name, "path",
           cache->path, "map_bytes", from, "new_map_bytes", to, (const char *)NULL);
    return 0;
}


/*
 * Runs fn in a write transaction. When LMDB reports a full map, which the
 * byte bound should prevent but fragmentation and readers pinning old pages
 * can still cause, clears the slots of dead readers, evicts a tenth of the
 * entries and retries fn. Deleting also needs free pages, since LMDB copies
 * every page it changes, so when the eviction or the retry finds the map
 * full too, the map grows and that step runs once more. fn may be run up
 * to three times, so it must tolerate a rerun. Returns an LMDB error code.
 */
int an__lmdb_write(an_cache_t *cache, an__lmdb_write_fn fn, void *ctx)
{
    an__lmdb_cache_t *lc = cache->backend;
    if (an__lmdb_inherited(cache))
        return EPERM;
    int rc = write_once(cache, fn, ctx);
    if (rc != MDB_MAP_FULL)
        return rc;

    uint64_t full_bytes = current_map_bytes(lc);
    clear_dead_readers(lc, cache);
    evict_share_t share = {0};
    rc = write_once(cache, evict_share_fn, &share);
    if (rc == MDB_MAP_FULL) {
        rc = grow_map(cache, full_bytes);
        if (rc == 0)
            rc = write_once(cache, evict_share_fn, &share);
    }
    if (rc != 0)
        return rc;

    char evicted[32];
    snprintf(evicted, sizeof(evicted), "%llu", (unsigned long long)share.evicted);
    an_log(AN_LOG_WARN, "cache: lmdb map full; evicted the oldest entries and retrying", "cache",
           cache->name, "path", cache->path, "evicted", evicted, (const char *)NULL);
    atomic_fetch_add(&cache->counters.evictions, share.evicted);

    rc = write_once(cache, fn, ctx);
    if (rc == MDB_MAP_FULL) {
        rc = grow_map(cache, full_bytes);
        if (rc == 0)
            rc = write_once(cache, fn, ctx);
    }
    return rc;
}


int an__cache_lmdb_set_map_bytes(an_cache_t *cache, uint64_t map_bytes)
{
    if (cache->ops != &an__cache_lmdb_ops)
        return AN_EINVAL;
    an__lmdb_cache_t *lc = cache->backend;
    if (an__lmdb_inherited(cache))
        return AN_EINVAL;
    pthread_rwlock_wrlock(&lc->map_lock);
    int rc = mdb_env_set_mapsize(lc->env, (size_t)map_bytes);
    pthread_rwlock_unlock(&lc->map_lock);
    return rc == 0 ? 0 : an__lmdb_error(cache, "set the map size", rc);
}


static uint64_t map_size_for(uint64_t max_bytes)
{
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    uint64_t limit = (uint64_t)SIZE_MAX / 2 - MAP_SLACK_BYTES;
    uint64_t size = max_bytes < limit / 2 ? max_bytes * 2 + MAP_SLACK_BYTES : limit;
    return (size + page - 1) / page * page;
}


typedef struct {
    int newer_format;
} setup_ctx_t;


/*
 * Creates the named databases and rejects a format newer than this build's.
 * an__lmdb_check_fn records the format, in the next transaction, once the
 * handles opened here are committed.
 */
static int setup_fn(an_cache_t *cache, an__lmdb_write_t *w, void *ctx)
{
    an__lmdb_cache_t *lc = cache->backend;
    setup_ctx_t *setup = ctx;
    int rc = mdb_dbi_open(w->txn, "entries", MDB_CREATE, &lc->entries_dbi);
    if (rc == 0)
        rc = mdb_dbi_open(w->txn, "access", MDB_CREATE, &lc->access_dbi);
    if (rc == 0)
        rc = mdb_dbi_open(w->txn, "lru", MDB_CREATE, &lc->lru_dbi);
    if (rc != 0)
        return rc;

    if (w->meta[AN__LMDB_META_FORMAT] > AN__LMDB_FORMAT_VERSION) {
        setup->newer_format = (int)w->meta[AN__LMDB_META_FORMAT];
        return MDB_INCOMPATIBLE;
    }
    return 0;
}


static int open_meta_dbi(an__lmdb_cache_t *lc)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(lc->env, NULL, 0, &txn);
    if (rc != 0)
        return rc;
    rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &lc->meta_dbi);
    if (rc != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    return mdb_txn_commit(txn);
}


static void describe_open_error(const an_cache_t *cache, int rc, int newer_format, char *err,
                                size_t err_len)
{
    const char *path = cache->path;
    if (rc == EACCES || rc == EPERM || rc == EROFS) {
        an__cache_error(err, err_len,
                        "cache: data dir \"%s\" is not writable (%s); pass --data-dir or fix its "
                        "permissions",
                        path, errno_name(rc));
    } else if (newer_format) {
        an__cache_error(err, err_len,
                        "cache: \"%s\" holds cache format %d, newer than this build's %d; upgrade "
                        "agentnet or pass another --data-dir",
                        path, newer_format, AN__LMDB_FORMAT_VERSION);
    } else if (rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH || rc == MDB_INCOMPATIBLE ||
               rc == MDB_CORRUPTED) {
        an__cache_error(err, err_len,
                        "cache: \"%s\" does not contain an LMDB cache this build can read (%s); "
                        "move its files away or pass another --data-dir",
                        path, mdb_strerror(rc));
    } else if (rc == MDB_READERS_FULL) {
        an__cache_error(err, err_len,
                        "cache: all %d LMDB reader slots of \"%s\" are taken; stop other "
                        "agentnet processes using it and retry",
                        MAX_READERS, path);
    } else {
        an__cache_error(err, err_len, "cache: cannot open the LMDB environment in \"%s\" (%s)",
                        path, mdb_strerror(rc));
    }
}


/* Logs what the open-time repair changed; see lmdb_repair.c. */
static void log_repair(const an_cache_t *cache, const an__lmdb_repair_t *repair)
{
    char format[24], dropped[24], fixes[24], entries_before[24], entries_after[24];
    char bytes_before[24], bytes_after[24];
    snprintf(format, sizeof(format), "%llu", (unsigned long long)repair->stored_format);
    snprintf(dropped, sizeof(dropped), "%llu", (unsigned long long)repair->dropped);
    snprintf(fixes, sizeof(fixes), "%llu", (unsigned long long)repair->index_fixes);
    snprintf(entries_before, sizeof(entries_before), "%llu",
             (unsigned long long)repair->entries_before);
    snprintf(entries_after, sizeof(entries_after), "%llu",
             (unsigned long long)repair->entries_after);
    snprintf(bytes_before, sizeof(bytes_before), "%llu", (unsigned long long)repair->bytes_before);
    snprintf(bytes_after, sizeof(bytes_after), "%llu", (unsigned long long)repair->bytes_after);

    int changed = repair->dropped > 0 || repair->index_fixes > 0 ||
                  repair->entries_before != repair->entries_after ||
                  repair->bytes_before != repair->bytes_after;
    an_log(changed ? AN_LOG_WARN : AN_LOG_INFO,
           changed ? "cache: repaired the lmdb databases at open"
                   : "cache: checked every lmdb entry at open and found all intact",
           "cache", cache->name, "path", cache->path, "stored_format", format,
           "dropped_records", dropped, "index_fixes", fixes, "entries_before", entries_before,
           "entries_after", entries_after, "bytes_before", bytes_before, "bytes_after",
           bytes_after, (const char *)NULL);
}


int an__lmdb_env_open(an_cache_t *cache, char *err, size_t err_len)
{
    const char *path = cache->path;
    an__lmdb_cache_t *lc = cache->backend;

    if (strlen(path) >= PATH_MAX) {
        an__cache_error(err, err_len, "cache: data dir \"%s\" is longer than %d bytes; pass a "
                        "shorter --data-dir", path, PATH_MAX - 1);
        return AN_EINVAL;
    }
    if (an_mkdir_p(path) != 0) {
        int code = errno;
        const char *fix = "pass another --data-dir";
        if (code == EACCES || code == EPERM || code == EROFS)
            fix = "pass another --data-dir or fix the permissions of its parent";
        else if (code == ENOTDIR || code == EEXIST)
            fix = "a file is in the way: remove it or pass another --data-dir";
        an__cache_error(err, err_len, "cache: cannot create data dir \"%s\" (%s); %s", path,
                        errno_name(code), fix);
        return AN_EIO;
    }
    if (access(path, W_OK | X_OK) != 0) {
        an__cache_error(err, err_len,
                        "cache: data dir \"%s\" is not writable (%s); pass --data-dir or fix its "
                        "permissions",
                        path, errno_name(errno));
        return AN_EIO;
    }

    lc->real_path = realpath(path, NULL);
    if (!lc->real_path) {
        an__cache_error(err, err_len, "cache: cannot resolve data dir \"%s\" (%s)", path,
                        errno_name(errno));
        return AN_EIO;
    }
    int rc = registry_add(lc->real_path);
    if (rc != 0) {
        an__cache_error(err, err_len,
                        rc == AN_EEXIST ? "cache: data dir \"%s\" is already open in this process; "
                                          "give each cache its own directory"
                                        : "cache: out of memory while opening \"%s\"",
                        path);
        goto fail_registry;
    }

    pthread_once(&fork_handler_once, install_fork_handler);
    lc->fork_count = atomic_load(&fork_count);
    rc = mdb_env_create(&lc->env);
    if (rc != 0) {
        describe_open_error(cache, rc, 0, err, err_len);
        rc = AN_EIO;
        goto fail_create;
    }
    rc = mdb_env_set_maxreaders(lc->env, MAX_READERS);
    if (rc == 0)
        rc = mdb_env_set_maxdbs(lc->env, 4);
    if (rc == 0)
        rc = mdb_env_set_mapsize(lc->env, (size_t)map_size_for(cache->opts.max_bytes));
    /*
     * MDB_NOTLS: read transactions are not tied to a thread, so a pool can
     * reuse them across the server's threads. MDB_NOMETASYNC: each commit
     * syncs its data pages and leaves the meta page to the next commit's
     * sync, so kill -9 loses nothing committed and a power cut loses at
     * most the last commit.
     */
    if (rc == 0)
        rc = mdb_env_open(lc->env, path, MDB_NOTLS | MDB_NOMETASYNC, 0644);
    if (rc != 0) {
        describe_open_error(cache, rc, 0, err, err_len);
        rc = AN_EIO;
        goto fail_env;
    }

    /* A process killed inside a read leaves its slot taken until someone clears it. */
    clear_dead_readers(lc, cache);

    rc = open_meta_dbi(lc);
    setup_ctx_t setup = {0};
    if (rc == 0)
        rc = write_once(cache, setup_fn, &setup);
    an__lmdb_repair_t repair = {0};
    if (rc == 0)
        rc = an__lmdb_write(cache, an__lmdb_check_fn, &repair);
    if (rc != 0) {
        describe_open_error(cache, rc, setup.newer_format, err, err_len);
        rc = AN_EIO;
        goto fail_env;
    }
    if (repair.repaired)
        log_repair(cache, &repair);
    return 0;

fail_env:
    mdb_env_close(lc->env);
    lc->env = NULL;
fail_create:
    registry_remove(lc->real_path);
fail_registry:
    free(lc->real_path);
    lc->real_path = NULL;
    return rc;
}


/*
 * Closes the environment. In a child forked after the open, only this
 * process's memory is freed, because LMDB's close and the aborts of pooled
 * transactions write to reader slots that belong to the parent.
 * NOTE: the child then leaks the MDB_env and the pooled MDB_txn structs.
 */
void an__lmdb_env_close(an_cache_t *cache)
{
    an__lmdb_cache_t *lc = cache->backend;
    if (!an__lmdb_forked_since_open(lc)) {
        for (size_t i = 0; i < lc->pool_len; i++)
            mdb_txn_abort(lc->pool[i]);
        mdb_env_close(lc->env);
    }
    lc->pool_len = 0;
    lc->env = NULL;
    registry_remove(lc->real_path);
    free(lc->real_path);
    lc->real_path = NULL;
}
