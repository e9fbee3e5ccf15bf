/*
 * agentnet model pull: options, checks and per-file output of a download
 * from the Hugging Face hub. The hub protocol, resuming and verification
 * are in model_hub.c, model_fetch.c and model_http.c.
 */
#include <curl/curl.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "agentnet/log.h"
#include "cli/commands.h"
#include "cli/model_hub.h"
#include "cli/options.h"

#define DEFAULT_ENDPOINT "https://huggingface.co"
#define MAX_TOKEN_BYTES 4096

typedef struct {
    const char *dir;
    const char *revision;
    const char *endpoint;
    const char *token_file;
    const char *log_format;
    int all;
    unsigned retries;
    uint64_t connect_timeout_s;
    uint64_t stall_timeout_s;
} pull_settings_t;

static const opt_t pull_options[] = {
    {"--dir", NULL, OPT_STRING, offsetof(pull_settings_t, dir), "DIR",
     "model directory, created when missing (default ./models/NAME after the last '/', such "
     "as ./models/all-MiniLM-L6-v2)"},
    {"--revision", NULL, OPT_STRING, offsetof(pull_settings_t, revision), "REV",
     "branch, tag or commit to download (default main)"},
    {"--endpoint", "HF_ENDPOINT", OPT_STRING, offsetof(pull_settings_t, endpoint), "URL",
     "hub base URL (default " DEFAULT_ENDPOINT ")"},
    {"--token-file", NULL, OPT_STRING, offsetof(pull_settings_t, token_file), "FILE",
     "read the hub access token from FILE instead of $HF_TOKEN; sent as a bearer token, "
     "never printed (default none)"},
    {"--all", NULL, OPT_FLAG, offsetof(pull_settings_t, all), "",
     "download every file, other weight formats included"},
    {"--retries", NULL, OPT_UINT32, offsetof(pull_settings_t, retries), "N",
     "extra attempts per request after a 5xx, 429, reset or timeout, 1 s, 2 s, 4 s ... apart "
     "(default 3)"},
    {"--connect-timeout", NULL, OPT_UINT, offsetof(pull_settings_t, connect_timeout_s),
     "SECONDS", "limit on opening a connection (default 15)"},
    {"--stall-timeout", NULL, OPT_UINT, offsetof(pull_settings_t, stall_timeout_s), "SECONDS",
     "abort and retry a transfer slower than 1 KiB/s for this long (default 30)"},
    {"--log-format", NULL, OPT_STRING, offsetof(pull_settings_t, log_format), "json|text",
     "format of the retry and warning lines on stderr (default json)"},
};

#define PULL_OPTION_COUNT (sizeof(pull_options) / sizeof(pull_options[0]))

static const char pull_summary[] =
    "Downloads the files of model NAME (a hub id such as\n"
    "sentence-transformers/all-MiniLM-L6-v2) from the Hugging Face hub into DIR, as a\n"
    "directory that agentnet embed -m DIR reads. Each file is checked against the size\n"
    "and hash in the hub's listing (SHA-256 for LFS files, else the git blob SHA-1).\n"
    "An interrupted download stays in DIR/.partial/ and the next run resumes it; files\n"
    "already in DIR that verify are skipped.\n\n"
    "Without --all, files in weight formats other than safetensors are skipped: names\n"
    "ending in .bin, .h5, .msgpack, .ot, .onnx, .onnx_data, .pt, .pth, .ckpt, .tflite,\n"
    ".gguf or .mlmodel, their .index.json shard indexes, and the top-level folders\n"
    "onnx/, openvino/, coreml/ and tflite/.\n\n"
    "Environment: HF_ENDPOINT (hub base URL), HF_TOKEN (access token for private or\n"
    "gated models). Exit status: 0 when every file is in place, 1 when a download or\n"
    "a verification failed, 2 on a usage error.";

/*
 * Checks a hub id: "name" or "owner/name", each part of letters, digits,
 * '-', '_' and '.', and neither part "." or "..". Such an id needs no
 * escaping in a URL.
 */
static int repo_id_is_valid(const char *repo)
{
    int parts = 1;
    size_t part_len = 0;
    const char *part = repo;
    for (const char *p = repo;; p++) {
        if (*p == '/' || *p == '\0') {
            if (part_len == 0 || (part_len == 1 && part[0] == '.') ||
                (part_len == 2 && part[0] == '.' && part[1] == '.'))
                return 0;
            if (*p == '\0')
                return 1;
            if (++parts > 2)
                return 0;
            part = p + 1;
            part_len = 0;
            continue;
        }
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.')
            return 0;
        part_len++;
    }
}

/* Reads the token from path into out, without surrounding whitespace. */
static int read_token_file(const char *path, char *out, size_t len)
{
    FILE *in = fopen(path, "rb");
    if (!in) {
        fprintf(stderr, "agentnet model pull: cannot read --token-file \"%s\": %s\n", path,
                strerror(errno));
        return -1;
    }
    size_t n = fread(out, 1, len - 1, in);
    int too_long = n == len - 1 && fgetc(in) != EOF;
    fclose(in);
    out[n] = '\0';
    while (n > 0 && isspace((unsigned char)out[n - 1]))
        out[--n] = '\0';
    size_t start = 0;
    while (out[start] && isspace((unsigned char)out[start]))
        start++;
    memmove(out, out + start, n - start + 1);

    if (too_long || out[0] == '\0' || strpbrk(out, "\r\n")) {
        fprintf(stderr, "agentnet model pull: --token-file \"%s\" must contain one token on "
                "one line (at most %d bytes)\n", path, MAX_TOKEN_BYTES - 1);
        return -1;
    }
    return 0;
}

/*
 * Splits argv into option arguments and positional ones, so that NAME may
 * come before or after the flags. A flag that takes a value keeps the next
 * argument with it.
 */
static int split_positionals(int argc, char **argv, char **flags, int *flag_count,
                             const char **name)
{
    *flag_count = 0;
    *name = NULL;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (arg[0] != '-') {
            if (*name) {
                fprintf(stderr, "agentnet model pull: unexpected argument \"%s\" after NAME "
                        "\"%s\"; pull one model per run\n", arg, *name);
                return -1;
            }
            *name = arg;
            continue;
        }
        flags[(*flag_count)++] = argv[i];
        if (strchr(arg, '='))
            continue;
        for (size_t k = 0; k < PULL_OPTION_COUNT; k++) {
            if (strcmp(pull_options[k].flag, arg) == 0 && pull_options[k].type != OPT_FLAG &&
                i + 1 < argc) {
                flags[(*flag_count)++] = argv[++i];
                break;
            }
        }
    }
    return 0;
}

static int remove_empty_dir(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    if (type == FTW_DP)
        rmdir(path); /* fails, as intended, on a folder that still contains partial files */
    return 0;
}

/* Prints one line per file and returns the number of files that failed. */
static size_t pull_files(const hub_client_t *client, const char *dir, const hub_listing_t *listing,
                         int all, size_t *excluded)
{
    size_t failed = 0, downloaded = 0, resumed = 0, skipped = 0, safetensors = 0;
    *excluded = 0;
    for (size_t i = 0; i < listing->count; i++) {
        const hub_file_t *file = &listing->files[i];
        const char *reason = all ? NULL : hub_excluded_reason(file->path);
        if (reason) {
            printf("excluded %s (%s; --all downloads it)\n", file->path, reason);
            (*excluded)++;
            continue;
        }
        size_t len = strlen(file->path);
        if (len > 12 && strcmp(file->path + len - 12, ".safetensors") == 0)
            safetensors++;

        hub_fetch_result_t result;
        char err[2048];
        if (hub_fetch_file(client, dir, file, &result, err, sizeof(err)) != 0) {
            fprintf(stderr, "agentnet model pull: %s\n", err);
            failed++;
            continue;
        }
        switch (result.kind) {
        case HUB_FETCH_DOWNLOADED:
            printf("downloaded %s (%" PRIu64 " bytes)\n", file->path, file->size);
            downloaded++;
            break;
        case HUB_FETCH_RESUMED:
            printf("resumed %s (%" PRIu64 " bytes, %" PRIu64 " of them from an earlier run)\n",
                   file->path, file->size, result.resumed_from);
            resumed++;
            break;
        case HUB_FETCH_SKIPPED:
            printf("skipped %s (%" PRIu64 " bytes, already present and verified)\n", file->path,
                   file->size);
            skipped++;
            break;
        }
        fflush(stdout);
    }

    if (safetensors == 0 && !all)
        fprintf(stderr, "agentnet model pull: note: %s has no .safetensors file, and agentnet "
                "embed reads weights only from model.safetensors\n", client->repo);
    printf("%s (revision %s) in %s: %zu downloaded, %zu resumed, %zu skipped, %zu excluded, "
           "%zu failed\n", client->repo, client->revision, dir, downloaded, resumed, skipped,
           *excluded, failed);
    return failed;
}

/* Lists the model, downloads what it needs into dir, and returns the exit status. */
static int pull_model(const hub_client_t *client, const char *dir, int all)
{
    hub_listing_t listing;
    char err[2048];
    if (hub_list_files(client, &listing, err, sizeof(err)) != 0) {
        fprintf(stderr, "agentnet model pull: %s\n", err);
        return 1;
    }
    if (listing.count == 0) {
        fprintf(stderr, "agentnet model pull: %s has no files at revision \"%s\"; check the "
                "model name and --revision\n", client->repo, client->revision);
        hub_listing_free(&listing);
        return 1;
    }

    size_t excluded;
    size_t failed = pull_files(client, dir, &listing, all, &excluded);
    size_t listing_count = listing.count;
    hub_listing_free(&listing);
    if (failed) {
        fprintf(stderr, "agentnet model pull: %zu of %zu files failed; run the same command again "
                "to resume\n", failed, listing_count - excluded);
        return 1;
    }

    /* Every file is in place, so only empty folders can remain under .partial. */
    char partial_dir[4200];
    snprintf(partial_dir, sizeof(partial_dir), "%s/%s", dir, HUB_PARTIAL_DIR);
    nftw(partial_dir, remove_empty_dir, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static int run_pull(pull_settings_t *s, const char *name)
{
    if (!name) {
        fprintf(stderr, "agentnet model pull: missing NAME, the model's hub id such as "
                "sentence-transformers/all-MiniLM-L6-v2\n");
        return 2;
    }
    if (!repo_id_is_valid(name)) {
        fprintf(stderr, "agentnet model pull: NAME \"%s\" is invalid; expected owner/name as on "
                "the hub, letters, digits, '-', '_' and '.' only\n", name);
        return 2;
    }
    if (!s->revision[0]) {
        fprintf(stderr, "agentnet model pull: --revision is empty; pass a branch, tag or "
                "commit\n");
        return 2;
    }

    /* The endpoint is a base URL, so a trailing '/' is dropped before paths are appended. */
    char endpoint[2048];
    snprintf(endpoint, sizeof(endpoint), "%s", s->endpoint && s->endpoint[0] ? s->endpoint
                                                                           : DEFAULT_ENDPOINT);
    size_t endpoint_len = strlen(endpoint);
    while (endpoint_len > 0 && endpoint[endpoint_len - 1] == '/')
        endpoint[--endpoint_len] = '\0';
    if (strncmp(endpoint, "http://", 7) != 0 && strncmp(endpoint, "https://", 8) != 0) {
        fprintf(stderr, "agentnet model pull: hub endpoint \"%s\" is invalid; set HF_ENDPOINT "
                "or --endpoint to an http:// or https:// URL\n", endpoint);
        return 2;
    }

    static char token[MAX_TOKEN_BYTES];
    const char *env_token = getenv("HF_TOKEN");
    if (s->token_file) {
        if (read_token_file(s->token_file, token, sizeof(token)) != 0)
            return 2;
    } else if (env_token && env_token[0]) {
        snprintf(token, sizeof(token), "%s", env_token);
    }

    char dir[4096];
    const char *slash = strrchr(name, '/');
    snprintf(dir, sizeof(dir), "%s", s->dir ? s->dir : "");
    if (!s->dir)
        snprintf(dir, sizeof(dir), "models/%s", slash ? slash + 1 : name);
    if (!dir[0]) {
        fprintf(stderr, "agentnet model pull: --dir is empty; pass a directory\n");
        return 2;
    }
    if (an_mkdir_p(dir) != 0) {
        fprintf(stderr, "agentnet model pull: cannot create --dir \"%s\": %s; pass a writable "
                "directory\n", dir, strerror(errno));
        return 1;
    }

    /* Two pulls into one directory would append to the same partial files. */
    int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0 || flock(dir_fd, LOCK_EX | LOCK_NB) != 0) {
        int lock_errno = errno;
        fprintf(stderr, "agentnet model pull: %s \"%s\": %s\n",
                lock_errno == EWOULDBLOCK ? "another agentnet model pull is writing to"
                                          : "cannot lock --dir",
                dir, lock_errno == EWOULDBLOCK ? "wait for it to finish" : strerror(lock_errno));
        if (dir_fd >= 0)
            close(dir_fd);
        return 1;
    }

    hub_client_t client = {
        .endpoint = endpoint,
        .token = token[0] ? token : NULL,
        .repo = name,
        .revision = s->revision,
        .connect_timeout_s = (long)s->connect_timeout_s,
        .stall_timeout_s = (long)s->stall_timeout_s,
        .retries = s->retries,
        .progress = isatty(STDERR_FILENO),
    };
    int rc = pull_model(&client, dir, s->all);
    memset(token, 0, sizeof(token));
    close(dir_fd);
    return rc;
}

int cli_model(int argc, char **argv)
{
    const char *action = argc > 0 ? argv[0] : NULL;
    if (!action || strcmp(action, "--help") == 0 || strcmp(action, "-h") == 0) {
        opt_print_help("model pull NAME", pull_summary, pull_options, PULL_OPTION_COUNT);
        return action ? 0 : 2;
    }
    if (strcmp(action, "pull") != 0) {
        fprintf(stderr, "agentnet model: unknown action \"%s\"; use pull\n", action);
        return 2;
    }

    pull_settings_t s = {.revision = "main", .retries = 3, .connect_timeout_s = 15,
                         .stall_timeout_s = 30};
    char **flags = calloc((size_t)argc, sizeof(*flags));
    if (!flags)
        return 1;
    int flag_count;
    const char *name;
    int rc = split_positionals(argc - 1, argv + 1, flags, &flag_count, &name);
    if (rc == 0)
        rc = opt_parse("model pull", pull_options, PULL_OPTION_COUNT, &s, flag_count, flags,
                       (size_t)-1);
    free(flags);
    if (rc == 1) {
        opt_print_help("model pull NAME", pull_summary, pull_options, PULL_OPTION_COUNT);
        return 0;
    }
    if (rc != 0)
        return 2;

    if (s.log_format && strcmp(s.log_format, "text") == 0) {
        an_log_set_format(AN_LOG_FORMAT_TEXT);
    } else if (s.log_format && strcmp(s.log_format, "json") != 0) {
        fprintf(stderr, "agentnet model pull: --log-format \"%s\" is invalid; use json or "
                "text\n", s.log_format);
        return 2;
    }

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "agentnet model pull: libcurl failed to initialize\n");
        return 1;
    }
    rc = run_pull(&s, name);
    curl_global_cleanup();
    return rc;
}
