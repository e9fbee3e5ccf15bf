/*
 * Hugging Face hub client behind agentnet model pull: lists the files of a
 * model repository, chooses which ones a sentence-transformers directory
 * needs, and downloads each one resumably, verified against the listing.
 * It does not know about command-line options or output formatting.
 */
#ifndef AGENTNET_CLI_MODEL_HUB_H
#define AGENTNET_CLI_MODEL_HUB_H

#include <stddef.h>
#include <stdint.h>

#include "agentnet/common.h"

/* Unfinished downloads live under DIR/PARTIAL_DIR/PATH until verified. */
#define HUB_PARTIAL_DIR ".partial"

/* Connection settings shared by every request of one pull. */
typedef struct {
    const char *endpoint;       /* hub base URL without a trailing slash */
    const char *token;          /* bearer token or NULL, never logged or printed */
    const char *repo;           /* "owner/name", already validated */
    const char *revision;       /* branch, tag or commit */
    long connect_timeout_s;
    long stall_timeout_s;       /* abort a transfer below 1 KiB/s for this long */
    unsigned retries;           /* extra attempts after a transient failure */
    int progress;               /* draw a progress line on stderr */
} hub_client_t;

/*
 * One file of the listing. oid is lowercase hex: the SHA-256 of the content
 * for LFS files, else the git blob SHA-1, that is the SHA-1 of
 * "blob SIZE\0" followed by the content.
 */
typedef struct {
    char *path;                 /* '/'-separated, relative, checked for ".." */
    uint64_t size;
    int lfs;
    char oid[65];
} hub_file_t;

typedef struct {
    hub_file_t *files;
    size_t count;
} hub_listing_t;

/*
 * Fetches {endpoint}/api/models/{repo}/tree/{revision}?recursive=true,
 * following rel="next" Link headers, and keeps the file entries. On success
 * *out owns its paths; free it with hub_listing_free(). On failure returns
 * AN_ENOTFOUND (404), AN_EUPSTREAM (other HTTP errors, network), AN_EINVAL
 * (malformed listing) or AN_ENOMEM, with a message for the user in err.
 */
int hub_list_files(const hub_client_t *client, hub_listing_t *out, char *err, size_t err_len);
void hub_listing_free(hub_listing_t *listing);

/*
 * Returns why path is left out of a default pull (a weight format that
 * sentence-transformers does not load from safetensors directories), or
 * NULL when it is downloaded.
 */
const char *hub_excluded_reason(const char *path);

typedef enum {
    HUB_FETCH_DOWNLOADED,       /* fetched from the first byte */
    HUB_FETCH_RESUMED,          /* continued a partial file left by an earlier run */
    HUB_FETCH_SKIPPED,          /* already in place with the right size and hash */
} hub_fetch_kind_t;

typedef struct {
    hub_fetch_kind_t kind;
    uint64_t resumed_from;      /* bytes already in the partial file, for RESUMED */
    unsigned attempts;          /* requests made, retries included */
} hub_fetch_result_t;

/*
 * Makes dir/PATH match the listing entry: skips a verified file already in
 * place, else downloads into dir/.partial/PATH (continuing it with a Range
 * request when it exists), verifies size and hash, and renames it into
 * place. A partial file that fails verification is deleted. Returns 0, or
 * AN_ENOTFOUND, AN_EUPSTREAM, AN_EIO or AN_EINVAL (verification failed)
 * with a message for the user in err.
 */
int hub_fetch_file(const hub_client_t *client, const char *dir, const hub_file_t *file,
                   hub_fetch_result_t *result, char *err, size_t err_len);

/*
 * Internal to the hub client: HTTP transfers shared by the listing and
 * the downloads (model_http.c).
 */

/* One finished request: its HTTP status (0 when none arrived) and curl's verdict. */
typedef struct {
    long status;
    int curl_code;
    char curl_error[256];
} hub_response_t;

/* Receives body bytes; returns 0 to continue or -1 to abort the transfer. */
typedef int (*hub_body_fn)(void *ctx, long status, const char *data, size_t len);
/* Receives each response header line, without the line ending. */
typedef void (*hub_header_fn)(void *ctx, const char *line, size_t len);

typedef struct {
    const char *url;
    uint64_t range_from;        /* send Range: bytes=N- when nonzero */
    hub_body_fn on_body;
    hub_header_fn on_header;
    void *ctx;
    const char *progress_label; /* file name on the progress line, or NULL */
    uint64_t progress_base;     /* bytes before range_from, for the progress line */
    uint64_t progress_total;
} hub_request_t;

/* Performs one GET with the client's token, timeouts and redirects. */
int hub_http_get(const hub_client_t *client, const hub_request_t *request,
                 hub_response_t *response);

/* Whether a failed attempt is worth retrying: 5xx, 429, resets and timeouts. */
int hub_is_transient(const hub_response_t *response);

/* Logs the retry and sleeps 1 s, 2 s, 4 s, ... before attempt (1-based). */
void hub_backoff(const char *url, unsigned attempt, unsigned retries,
                 const hub_response_t *response);

/* Writes "HTTP 404" or curl's error text for response to out. */
void hub_describe_failure(const hub_response_t *response, char *out, size_t len);

/*
 * Writes the user's message for a failed request to err: the URL (which
 * never contains the token), the status or network error, and the fix.
 * file names the download, or is NULL for the listing. Returns the AN_E*
 * code for it: AN_ENOTFOUND for 404, else AN_EUPSTREAM.
 */
int hub_failure_message(const hub_response_t *response, const char *url, unsigned attempts,
                        const hub_client_t *client, const char *file, char *err, size_t err_len);

/* Appends text to url, percent-encoding all but unreserved characters and, with keep_slash, '/'. */
int hub_url_append(an_buf_t *url, const char *text, int keep_slash);

#endif
