/*
 * File listing and selection of the hub client: fetches the recursive tree
 * of a model revision, checks each entry, and decides which files a default
 * pull takes. Downloads are in model_fetch.c.
 */
#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/model_hub.h"

/* A listing larger than this is not a model repository this command can handle. */
#define HUB_MAX_LISTING_BYTES (64u * 1024 * 1024)
/* Bounds the listing pages, so that a Link header that points back cannot loop forever. */
#define HUB_MAX_LISTING_PAGES 1000

typedef struct {
    an_buf_t body;
    an_buf_t next_url;          /* target of a rel="next" Link header, or empty */
    int too_big;
} listing_page_t;

static int on_listing_body(void *ctx, long status, const char *data, size_t len)
{
    listing_page_t *page = ctx;
    if (status != 200)
        return 0;
    if (page->body.len + len > HUB_MAX_LISTING_BYTES) {
        page->too_big = 1;
        return -1;
    }
    return an_buf_append(&page->body, data, len) == 0 ? 0 : -1;
}

/* Keeps the URL of a header such as: Link: <https://hub/api/...?cursor=x>; rel="next" */
static void on_listing_header(void *ctx, const char *line, size_t len)
{
    listing_page_t *page = ctx;
    if (len < 5 || strncasecmp(line, "link:", 5) != 0)
        return;

    const char *end = line + len;
    const char *p = line + 5;
    while (p < end) {
        const char *open = memchr(p, '<', (size_t)(end - p));
        if (!open)
            return;
        const char *close = memchr(open, '>', (size_t)(end - open));
        if (!close)
            return;
        const char *next_open = memchr(close, '<', (size_t)(end - close));
        const char *params_end = next_open ? next_open : end;

        /* The parameters of this link run from '>' to the next '<'. */
        size_t params_len = (size_t)(params_end - close);
        char params[256];
        if (params_len >= sizeof(params))
            params_len = sizeof(params) - 1;
        memcpy(params, close, params_len);
        params[params_len] = '\0';
        if (strstr(params, "rel=\"next\"") || strstr(params, "rel=next")) {
            an_buf_reset(&page->next_url);
            an_buf_append(&page->next_url, open + 1, (size_t)(close - open - 1));
            return;
        }
        p = params_end;
    }
}

static int is_hex(const char *text, size_t len)
{
    if (strlen(text) != len)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!isxdigit((unsigned char)text[i]))
            return 0;
    return 1;
}

/*
 * Rejects paths that would land outside the model directory or in the
 * partial-download area: absolute ones, empty, "." or ".." components,
 * backslashes, and a first component equal to HUB_PARTIAL_DIR.
 */
static int path_is_safe(const char *path)
{
    if (!path[0] || path[0] == '/' || strchr(path, '\\'))
        return 0;
    size_t partial_len = strlen(HUB_PARTIAL_DIR);
    if (strncmp(path, HUB_PARTIAL_DIR, partial_len) == 0 &&
        (path[partial_len] == '/' || path[partial_len] == '\0'))
        return 0;

    const char *component = path;
    for (;;) {
        const char *slash = strchr(component, '/');
        size_t len = slash ? (size_t)(slash - component) : strlen(component);
        if (len == 0 || (len == 1 && component[0] == '.') ||
            (len == 2 && component[0] == '.' && component[1] == '.'))
            return 0;
        if (!slash)
            return 1;
        component = slash + 1;
    }
}

/* Copies one "file" entry of the tree into out, checking every field the download relies on. */
static int parse_entry(json_t *entry, hub_file_t *out, char *err, size_t err_len)
{
    const char *path = json_string_value(json_object_get(entry, "path"));
    if (!path || !path_is_safe(path)) {
        snprintf(err, err_len, "the listing has a file entry with a missing or unsafe path "
                 "\"%s\"", path ? path : "");
        return AN_EINVAL;
    }

    json_t *lfs = json_object_get(entry, "lfs");
    json_t *size = json_object_get(json_is_object(lfs) ? lfs : entry, "size");
    const char *oid = json_string_value(json_object_get(json_is_object(lfs) ? lfs : entry, "oid"));
    size_t oid_len = json_is_object(lfs) ? 64 : 40;
    if (!json_is_integer(size) || json_integer_value(size) < 0 || !oid || !is_hex(oid, oid_len)) {
        snprintf(err, err_len, "the listing entry of \"%s\" lacks a valid %s (size, and a %zu-digit "
                 "hex oid)", path, json_is_object(lfs) ? "lfs object" : "size or oid", oid_len);
        return AN_EINVAL;
    }

    out->path = strdup(path);
    if (!out->path)
        return AN_ENOMEM;
    out->size = (uint64_t)json_integer_value(size);
    out->lfs = json_is_object(lfs);
    for (size_t i = 0; i <= oid_len; i++)
        out->oid[i] = (char)tolower((unsigned char)oid[i]);
    return 0;
}

static int append_entries(const char *text, size_t len, hub_listing_t *listing, char *err,
                          size_t err_len)
{
    json_error_t json_error;
    json_t *root = json_loadb(text, len, 0, &json_error);
    if (!json_is_array(root)) {
        snprintf(err, err_len, "the file listing is not a JSON array (%s)",
                 root ? "another JSON value" : json_error.text);
        json_decref(root);
        return AN_EINVAL;
    }

    size_t index;
    json_t *entry;
    int rc = 0;
    json_array_foreach(root, index, entry) {
        const char *type = json_string_value(json_object_get(entry, "type"));
        if (!type || strcmp(type, "file") != 0)
            continue;
        hub_file_t *grown = realloc(listing->files, (listing->count + 1) * sizeof(*grown));
        if (!grown) {
            rc = AN_ENOMEM;
            break;
        }
        listing->files = grown;
        rc = parse_entry(entry, &listing->files[listing->count], err, err_len);
        if (rc != 0)
            break;
        listing->count++;
    }
    json_decref(root);
    return rc;
}

int hub_list_files(const hub_client_t *client, hub_listing_t *out, char *err, size_t err_len)
{
    memset(out, 0, sizeof(*out));
    an_buf_t url = {0};
    int rc = an_buf_appendf(&url, "%s/api/models/%s/tree/", client->endpoint, client->repo);
    if (rc == 0)
        rc = hub_url_append(&url, client->revision, 0);
    if (rc == 0)
        rc = an_buf_appendf(&url, "?recursive=true");
    if (rc != 0) {
        an_buf_free(&url);
        return rc;
    }

    listing_page_t page = {0};
    for (unsigned pages = 0; rc == 0; pages++) {
        if (pages == HUB_MAX_LISTING_PAGES) {
            snprintf(err, err_len, "the file listing of %s has more than %d pages; the hub's "
                     "Link headers loop", client->repo, HUB_MAX_LISTING_PAGES);
            rc = AN_EUPSTREAM;
            break;
        }

        hub_response_t response;
        hub_request_t request = {.url = url.data, .on_body = on_listing_body,
                                 .on_header = on_listing_header, .ctx = &page};
        unsigned attempt = 0;
        for (;;) {
            an_buf_reset(&page.body);
            an_buf_reset(&page.next_url);
            rc = hub_http_get(client, &request, &response);
            if (rc != 0 || !hub_is_transient(&response) || attempt == client->retries)
                break;
            hub_backoff(url.data, ++attempt, client->retries, &response);
        }
        if (rc != 0)
            break;
        if (page.too_big) {
            snprintf(err, err_len, "GET %s: the file listing exceeds %u bytes", url.data,
                     HUB_MAX_LISTING_BYTES);
            rc = AN_EUPSTREAM;
            break;
        }
        if (response.curl_code != 0 || response.status != 200) {
            rc = hub_failure_message(&response, url.data, attempt + 1, client, NULL, err,
                                     err_len);
            break;
        }

        rc = append_entries(page.body.data ? page.body.data : "", page.body.len, out, err,
                            err_len);
        if (rc != 0 || page.next_url.len == 0)
            break;
        an_buf_reset(&url);
        rc = an_buf_append(&url, page.next_url.data, page.next_url.len);
    }

    an_buf_free(&page.body);
    an_buf_free(&page.next_url);
    an_buf_free(&url);
    if (rc != 0)
        hub_listing_free(out);
    return rc;
}

void hub_listing_free(hub_listing_t *listing)
{
    for (size_t i = 0; i < listing->count; i++)
        free(listing->files[i].path);
    free(listing->files);
    listing->files = NULL;
    listing->count = 0;
}

int hub_failure_message(const hub_response_t *response, const char *url, unsigned attempts,
                        const hub_client_t *client, const char *file, char *err, size_t err_len)
{
    char attempts_text[48] = "";
    if (attempts > 1)
        snprintf(attempts_text, sizeof(attempts_text), " after %u attempts", attempts);

    if (response->curl_code != 0) {
        snprintf(err, err_len, "GET %s failed%s: %s; check the network and HF_ENDPOINT", url,
                 attempts_text, response->curl_error);
        return AN_EUPSTREAM;
    }
    long status = response->status;
    if (status == 404) {
        if (file)
            snprintf(err, err_len, "GET %s returned 404: not found: %s is listed but cannot be "
                     "downloaded at revision \"%s\"; check the model name and --revision", url,
                     file, client->revision);
        else
            snprintf(err, err_len, "GET %s returned 404: not found: no model \"%s\" with "
                     "revision \"%s\"; check the model name (owner/name as on the hub) and "
                     "--revision", url, client->repo, client->revision);
        return AN_ENOTFOUND;
    }
    if (status == 401 || status == 403) {
        /* The hub returns 401 for private and gated models and for names that do not exist. */
        snprintf(err, err_len, "GET %s returned %ld: %s: the model is private or gated, or does "
                 "not exist; %s, and check the model name", url, status,
                 status == 401 ? "unauthorized" : "forbidden",
                 client->token ? "the token sent cannot read it: use a token with access (gated "
                                 "models need their terms accepted on the hub)"
                               : "set HF_TOKEN (or pass --token-file) to a token with access");
        return AN_EUPSTREAM;
    }
    snprintf(err, err_len, "GET %s returned %ld%s; %s", url, status, attempts_text,
             status >= 500 || status == 429 ? "the hub failed, try again later"
                                            : "check HF_ENDPOINT and the model name");
    return AN_EUPSTREAM;
}

/*
 * Weight formats other than safetensors, which sentence-transformers
 * directories do not need: PyTorch pickles, TensorFlow, Flax, Rust,
 * ONNX, GGUF and their shard indexes.
 */
static const char *const excluded_suffixes[] = {
    ".bin", ".h5", ".msgpack", ".ot", ".onnx", ".onnx_data", ".pt", ".pth", ".ckpt",
    ".tflite", ".gguf", ".mlmodel", ".bin.index.json", ".h5.index.json",
    ".msgpack.index.json",
};

/* Top-level folders of exported runtimes that hold their own copies of the weights. */
static const char *const excluded_folders[] = {"onnx", "openvino", "coreml", "tflite"};

const char *hub_excluded_reason(const char *path)
{
    for (size_t i = 0; i < sizeof(excluded_folders) / sizeof(excluded_folders[0]); i++) {
        size_t len = strlen(excluded_folders[i]);
        if (strncmp(path, excluded_folders[i], len) == 0 && path[len] == '/')
            return "exported runtime folder";
    }

    size_t path_len = strlen(path);
    for (size_t i = 0; i < sizeof(excluded_suffixes) / sizeof(excluded_suffixes[0]); i++) {
        size_t len = strlen(excluded_suffixes[i]);
        if (path_len > len && strcmp(path + path_len - len, excluded_suffixes[i]) == 0)
            return "weight format other than safetensors";
    }
    return NULL;
}
