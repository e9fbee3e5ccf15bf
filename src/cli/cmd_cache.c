/* agentnet cache stats|purge: inspect or empty the caches of a data directory. */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "agentnet/cache.h"
#include "agentnet/event.h"
#include "agentnet/log.h"
#include "cli/commands.h"
#include "cli/options.h"

typedef struct {
    const char *data_dir;
    const char *namespace_;
    const char *cache;
    int json;
} cache_settings_t;

static const opt_t cache_options[] = {
    {"--data-dir", "AGENTNET_DATA_DIR", OPT_STRING, offsetof(cache_settings_t, data_dir), "DIR",
     "data directory of the server (default ./var/agentnet)"},
    {"--namespace", NULL, OPT_STRING, offsetof(cache_settings_t, namespace_), "NAME",
     "stats and purge: only entries stored under this X-AgentNet-Cache-Namespace (\"\" = "
     "requests without one; default all). With it, stats prints only entries and bytes, because "
     "hits, misses and the other counters are kept per cache, not per namespace"},
    {"--cache", NULL, OPT_STRING, offsetof(cache_settings_t, cache), "responses|embeddings|all",
     "which cache (default all)"},
    {"--json", NULL, OPT_FLAG, offsetof(cache_settings_t, json), "",
     "stats: print one JSON object instead of a table"},
};

#define CACHE_OPTION_COUNT (sizeof(cache_options) / sizeof(cache_options[0]))

static const char *const cache_names[] = {"responses", "embeddings"};

static int open_cache(const cache_settings_t *s, const char *name, an_cache_t **out)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/cache/%s", s->data_dir, name);
    FILE *probe = NULL;
    char data_file[4200];
    snprintf(data_file, sizeof(data_file), "%s/data.mdb", path);
    probe = fopen(data_file, "rb");
    if (!probe) {
        fprintf(stderr, "agentnet cache: no %s cache in \"%s\"; pass the --data-dir that "
                "agentnet serve uses\n", name, s->data_dir);
        return -1;
    }
    fclose(probe);

    an_cache_options_t o = an_cache_options_default();
    o.backend = AN_CACHE_LMDB;
    o.name = name;
    o.path = path;
    o.max_bytes = 1024ull * 1024 * 1024; /* the server's default; see an_cache_open */
    o.max_entries = 0; /* this command stores nothing, so no bound is enforced here */
    char err[512] = "";
    int rc = an_cache_open(&o, out, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "agentnet cache: %s\n", err[0] ? err : an_strerror(rc));
        return -1;
    }
    return 0;
}

/* Prints text as a JSON string. Bytes from 0x80 up are copied, so UTF-8 stays valid. */
static void print_json_string(const char *text)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

/*
 * stats --namespace: entries and bytes of one namespace per cache. The
 * per-cache counters are left out because no namespace has its own.
 */
static int run_namespace_stats(const cache_settings_t *s)
{
    if (strlen(s->namespace_) >= AN_CACHE_MAX_NAMESPACE) {
        fprintf(stderr, "agentnet cache stats: --namespace is %zu bytes long, more than the "
                "maximum %d; pass the name the server stored entries under\n",
                strlen(s->namespace_), AN_CACHE_MAX_NAMESPACE - 1);
        return 2;
    }

    int printed = 0, failed = 0;
    if (s->json)
        printf("{");
    else
        printf("%-11s %-24s %10s %12s\n", "cache", "namespace", "entries", "bytes");
    for (size_t i = 0; i < 2; i++) {
        if (strcmp(s->cache, "all") != 0 && strcmp(s->cache, cache_names[i]) != 0)
            continue;
        an_cache_t *cache;
        if (open_cache(s, cache_names[i], &cache) != 0) {
            failed = 1;
            continue;
        }
        uint64_t entries = 0, bytes = 0;
        int rc = an_cache_namespace_stats(cache, s->namespace_, &entries, &bytes);
        an_cache_close(cache);
        if (rc != 0) {
            fprintf(stderr, "agentnet cache stats: counting namespace \"%s\" in %s failed: %s\n",
                    s->namespace_, cache_names[i], an_strerror(rc));
            failed = 1;
            continue;
        }

        if (s->json) {
            printf("%s\"%s\":{\"namespace\":", printed ? "," : "", cache_names[i]);
            print_json_string(s->namespace_);
            printf(",\"entries\":%" PRIu64 ",\"bytes\":%" PRIu64 "}", entries, bytes);
        } else {
            /* The server rejects namespaces with parentheses, so none is named "(default)". */
            const char *label = s->namespace_[0] ? s->namespace_ : "(default)";
            printf("%-11s %-24s %10" PRIu64 " %12" PRIu64 "\n", cache_names[i], label, entries,
                   bytes);
        }
        printed++;
    }
    if (s->json)
        printf("}\n");
    return failed ? 1 : 0;
}

static int run_stats(const cache_settings_t *s)
{
    if (s->namespace_)
        return run_namespace_stats(s);

    int printed = 0, failed = 0;
    if (s->json)
        printf("{");
    else
        printf("%-11s %10s %12s %10s %10s %10s %10s %11s\n", "cache", "entries", "bytes", "hits",
               "misses", "stores", "evictions", "expirations");
    for (size_t i = 0; i < 2; i++) {
        if (strcmp(s->cache, "all") != 0 && strcmp(s->cache, cache_names[i]) != 0)
            continue;
        an_cache_t *cache;
        if (open_cache(s, cache_names[i], &cache) != 0) {
            failed = 1;
            continue;
        }
        an_cache_stats_t st;
        an_cache_stats(cache, &st);
        an_cache_close(cache);
        if (s->json)
            printf("%s\"%s\":{\"entries\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"hits\":%" PRIu64
                   ",\"misses\":%" PRIu64 ",\"stores\":%" PRIu64 ",\"evictions\":%" PRIu64
                   ",\"expirations\":%" PRIu64 "}",
                   printed ? "," : "", cache_names[i], st.entries, st.bytes, st.hits, st.misses,
                   st.stores, st.evictions, st.expirations);
        else
            printf("%-11s %10" PRIu64 " %12" PRIu64 " %10" PRIu64 " %10" PRIu64 " %10" PRIu64
                   " %10" PRIu64 " %11" PRIu64 "\n",
                   cache_names[i], st.entries, st.bytes, st.hits, st.misses, st.stores,
                   st.evictions, st.expirations);
        printed++;
    }
    if (s->json)
        printf("}\n");
    return failed ? 1 : 0;
}

static int run_purge(const cache_settings_t *s)
{
    int failed = 0;
    an_event_sink_t *sink = NULL;
    if (an_event_sink_open_jsonl(s->data_dir, &sink) == 0)
        an_event_set_sink(sink);

    for (size_t i = 0; i < 2; i++) {
        if (strcmp(s->cache, "all") != 0 && strcmp(s->cache, cache_names[i]) != 0)
            continue;
        an_cache_t *cache;
        if (open_cache(s, cache_names[i], &cache) != 0) {
            failed = 1;
            continue;
        }
        uint64_t removed = 0;
        int rc = an_cache_purge(cache, s->namespace_, &removed);
        an_cache_close(cache);
        if (rc != 0) {
            fprintf(stderr, "agentnet cache purge: %s failed: %s\n", cache_names[i],
                    an_strerror(rc));
            failed = 1;
            continue;
        }
        /* an_cache_purge itself records the audit event. */
        printf("%s: removed %" PRIu64 " entries%s%s\n", cache_names[i], removed,
               s->namespace_ ? " in namespace " : "", s->namespace_ ? s->namespace_ : "");
    }
    if (sink) {
        an_event_set_sink(NULL);
        sink->close(sink);
    }
    return failed ? 1 : 0;
}

int cli_cache(int argc, char **argv)
{
    const char *action = argc > 0 ? argv[0] : NULL;
    cache_settings_t s = {.data_dir = "./var/agentnet", .cache = "all"};
    int rc = action && action[0] != '-'
                 ? opt_parse("cache", cache_options, CACHE_OPTION_COUNT, &s, argc - 1, argv + 1,
                             (size_t)-1)
                 : 1;
    if (rc == 1) {
        opt_print_help("cache stats|purge",
                       "Prints the statistics of, or removes entries from, the LMDB caches of a "
                       "data directory. Safe while agentnet serve uses it.",
                       cache_options, CACHE_OPTION_COUNT);
        return action ? 0 : 2;
    }
    if (rc != 0)
        return 2;
    if (strcmp(s.cache, "all") != 0 && strcmp(s.cache, "responses") != 0 &&
        strcmp(s.cache, "embeddings") != 0) {
        fprintf(stderr, "agentnet cache: --cache \"%s\" is invalid; use responses, embeddings or "
                "all\n", s.cache);
        return 2;
    }
    /* Opening a cache logs at info level, which is noise for a one-shot command. */
    an_log_set_level(AN_LOG_WARN);
    char cache_dir[4096];
    snprintf(cache_dir, sizeof(cache_dir), "%s/cache", s.data_dir);
    struct stat st;
    if (stat(cache_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "agentnet cache: no caches in \"%s\"; pass the --data-dir that agentnet "
                "serve uses\n", s.data_dir);
        return 1;
    }

    if (strcmp(action, "stats") == 0)
        return run_stats(&s);
    if (strcmp(action, "purge") == 0)
        return run_purge(&s);
    fprintf(stderr, "agentnet cache: unknown action \"%s\"; use stats or purge\n", action);
    return 2;
}
