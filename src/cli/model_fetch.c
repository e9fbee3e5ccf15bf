/*
 * Downloads of the hub client: one file into DIR/.partial/PATH, resumed
 * with a Range request when a partial file exists, verified against the
 * listing's size and hash, then renamed into place. The listing is in
 * model_hub.c and the HTTP transfer in model_http.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agentnet/log.h"
#include "cli/model_hub.h"

#define HASH_READ_BYTES (1024 * 1024)

/* State of one download attempt, shared by the header and body callbacks. */
typedef struct {
    FILE *file;                 /* the partial file, opened for appending */
    uint64_t offset;            /* bytes on disk when the request was sent */
    int started;                /* the first body bytes arrived */
    int restarted;              /* the server sent 200 to a Range request */
    int bad_range;              /* a 206 whose Content-Range does not start at offset */
    int write_errno;
    int has_content_range;
    uint64_t range_start;
} download_t;

static void on_download_header(void *ctx, const char *line, size_t len)
{
    download_t *d = ctx;
    if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) {
        d->has_content_range = 0;
        return;
    }

    /* Content-Range: bytes START-END/TOTAL */
    static const char name[] = "content-range:";
    if (len < sizeof(name) - 1 || strncasecmp(line, name, sizeof(name) - 1) != 0)
        return;
    char value[128];
    size_t value_len = len - (sizeof(name) - 1);
    if (value_len >= sizeof(value))
        return;
    memcpy(value, line + sizeof(name) - 1, value_len);
    value[value_len] = '\0';
    unsigned long long start;
    if (sscanf(value, " bytes %llu-", &start) == 1) {
        d->has_content_range = 1;
        d->range_start = start;
    }
}

static int on_download_body(void *ctx, long status, const char *data, size_t len)
{
    download_t *d = ctx;
    if (status != 200 && status != 206)
        return 0;

    if (!d->started) {
        d->started = 1;
        if (status == 206 && (!d->has_content_range || d->range_start != d->offset)) {
            d->bad_range = 1;
            return -1;
        }
        /* A 200 to a Range request carries the whole file: start the partial file over. */
        if (status == 200 && d->offset > 0) {
            if (ftruncate(fileno(d->file), 0) != 0) {
                d->write_errno = errno;
                return -1;
            }
            d->restarted = 1;
            d->offset = 0;
        }
    }

    if (fwrite(data, 1, len, d->file) != len) {
        d->write_errno = errno ? errno : EIO;
        return -1;
    }
    return 0;
}

/*
 * Computes the hash the listing gives for file: SHA-256 of the content for
 * LFS files, else the git blob SHA-1 over "blob SIZE\0" and the content.
 */
static int hash_file(const char *path, const hub_file_t *file, uint64_t size, char *hex,
                     size_t hex_len)
{
    FILE *in = fopen(path, "rb");
    if (!in)
        return AN_EIO;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char *chunk = malloc(HASH_READ_BYTES);
    int rc = md && chunk ? 0 : AN_ENOMEM;
    if (rc == 0 && !EVP_DigestInit_ex(md, file->lfs ? EVP_sha256() : EVP_sha1(), NULL))
        rc = AN_EIO;

    if (rc == 0 && !file->lfs) {
        char prefix[48];
        int prefix_len = snprintf(prefix, sizeof(prefix), "blob %" PRIu64, size);
        /* The NUL that ends the git object header is part of the hashed bytes. */
        if (!EVP_DigestUpdate(md, prefix, (size_t)prefix_len + 1))
            rc = AN_EIO;
    }
    while (rc == 0) {
        size_t n = fread(chunk, 1, HASH_READ_BYTES, in);
        if (n > 0 && !EVP_DigestUpdate(md, chunk, n))
            rc = AN_EIO;
        if (n < HASH_READ_BYTES) {
            if (ferror(in))
                rc = AN_EIO;
            break;
        }
    }

    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned digest_len = 0;
    if (rc == 0 && !EVP_DigestFinal_ex(md, digest, &digest_len))
        rc = AN_EIO;
    if (rc == 0 && 2 * (size_t)digest_len < hex_len)
        an_hex_encode(digest, digest_len, hex);
    free(chunk);
    EVP_MD_CTX_free(md);
    fclose(in);
    return rc;
}

/*
 * Checks path against the listing entry. Returns 0 when size and hash
 * match, AN_EINVAL with the mismatch described in err, or AN_EIO.
 */
static int verify_file(const char *path, const hub_file_t *file, char *err, size_t err_len)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(err, err_len, "cannot read \"%s\": %s", path, strerror(errno));
        return AN_EIO;
    }
    if ((uint64_t)st.st_size != file->size) {
        snprintf(err, err_len, "%s: size mismatch: expected %" PRIu64 " bytes, got %" PRIu64,
                 file->path, file->size, (uint64_t)st.st_size);
        return AN_EINVAL;
    }

    char actual[2 * EVP_MAX_MD_SIZE + 1];
    if (hash_file(path, file, file->size, actual, sizeof(actual)) != 0) {
        snprintf(err, err_len, "cannot hash \"%s\": %s", path, strerror(errno));
        return AN_EIO;
    }
    if (strcmp(actual, file->oid) != 0) {
        snprintf(err, err_len, "%s: %s mismatch: expected %s, got %s", file->path,
                 file->lfs ? "SHA-256" : "git blob SHA-1", file->oid, actual);
        return AN_EINVAL;
    }
    return 0;
}

/* Creates the folders above path, which must contain a '/'. */
static int make_parent(const char *path)
{
    char parent[4096];
    snprintf(parent, sizeof(parent), "%s", path);
    char *slash = strrchr(parent, '/');
    if (!slash || slash == parent)
        return 0;
    *slash = '\0';
    return an_mkdir_p(parent);
}

/* Returns the size of the partial file, deleting it when it is longer than the file can be. */
static uint64_t partial_size(const char *partial, const hub_file_t *file)
{
    struct stat st;
    if (stat(partial, &st) != 0)
        return 0;
    if ((uint64_t)st.st_size > file->size) {
        an_log(AN_LOG_WARN, "model pull: deleting a partial file longer than the listed size",
               "file", file->path, NULL);
        unlink(partial);
        return 0;
    }
    return (uint64_t)st.st_size;
}

/*
 * Runs one request for the rest of the partial file. Returns 0 when the
 * request completed with 200, 206 or 416, or a negative code with err set
 * and *transient telling whether another attempt may succeed.
 */
static int download_once(const hub_client_t *client, const char *url, const char *partial,
                         const hub_file_t *file, download_t *d, hub_response_t *response,
                         char *err, size_t err_len)
{
    memset(d, 0, sizeof(*d));
    d->offset = partial_size(partial, file);
    d->file = fopen(partial, "ab");
    if (!d->file) {
        snprintf(err, err_len, "cannot write \"%s\": %s; check that the --dir is writable",
                 partial, strerror(errno));
        return AN_EIO;
    }

    hub_request_t request = {
        .url = url,
        .range_from = d->offset,
        .on_body = on_download_body,
        .on_header = on_download_header,
        .ctx = d,
        .progress_label = file->path,
        .progress_base = d->offset,
        .progress_total = file->size,
    };
    int rc = hub_http_get(client, &request, response);

    /* An empty 200 body never reaches on_download_body, which would have truncated. */
    if (rc == 0 && response->curl_code == 0 && response->status == 200 && !d->started &&
        d->offset > 0 && ftruncate(fileno(d->file), 0) != 0)
        d->write_errno = errno;
    if (fflush(d->file) != 0 || fsync(fileno(d->file)) != 0)
        d->write_errno = d->write_errno ? d->write_errno : errno;
    fclose(d->file);
    d->file = NULL;
    if (rc != 0)
        return rc;

    if (d->write_errno) {
        snprintf(err, err_len, "writing \"%s\" failed: %s; check free space and permissions of "
                 "the --dir", partial, strerror(d->write_errno));
        return AN_EIO;
    }
    if (d->bad_range) {
        unlink(partial);
        snprintf(err, err_len, "GET %s answered a request for bytes %" PRIu64 "- with a 206 "
                 "that starts elsewhere; the partial file was deleted, so run the command again",
                 url, d->offset);
        return AN_EUPSTREAM;
    }
    return 0;
}

int hub_fetch_file(const hub_client_t *client, const char *dir, const hub_file_t *file,
                   hub_fetch_result_t *result, char *err, size_t err_len)
{
    memset(result, 0, sizeof(*result));
    char final[4096], partial[4096];
    if ((size_t)snprintf(final, sizeof(final), "%s/%s", dir, file->path) >= sizeof(final) ||
        (size_t)snprintf(partial, sizeof(partial), "%s/%s/%s", dir, HUB_PARTIAL_DIR,
                         file->path) >= sizeof(partial)) {
        snprintf(err, err_len, "%s: the path under \"%s\" is too long", file->path, dir);
        return AN_EINVAL;
    }

    /* A file already in place is kept only when it verifies. */
    struct stat st;
    if (stat(final, &st) == 0 && S_ISREG(st.st_mode)) {
        char why[512];
        if (verify_file(final, file, why, sizeof(why)) == 0) {
            result->kind = HUB_FETCH_SKIPPED;
            return 0;
        }
        an_log(AN_LOG_WARN, "model pull: replacing a file that does not match the listing",
               "file", file->path, "reason", why, NULL);
    }

    if (make_parent(partial) != 0) {
        snprintf(err, err_len, "cannot create the folder for \"%s\": %s; check that the --dir "
                 "is writable", partial, strerror(errno));
        return AN_EIO;
    }
    an_buf_t url = {0};
    int rc = an_buf_appendf(&url, "%s/%s/resolve/", client->endpoint, client->repo);
    if (rc == 0)
        rc = hub_url_append(&url, client->revision, 0);
    if (rc == 0)
        rc = an_buf_append(&url, "/", 1);
    if (rc == 0)
        rc = hub_url_append(&url, file->path, 1);
    if (rc != 0) {
        an_buf_free(&url);
        return rc;
    }

    uint64_t resumed_from = partial_size(partial, file);
    int restarted = 0;
    download_t d;
    hub_response_t response;
    for (unsigned attempt = 0;; attempt++) {
        result->attempts = attempt + 1;
        rc = download_once(client, url.data, partial, file, &d, &response, err, err_len);
        restarted |= d.restarted;
        if (rc != 0)
            break;
        int done = response.curl_code == 0 &&
                   (response.status == 200 || response.status == 206 ||
                    (response.status == 416 && d.offset > 0));
        if (done)
            break;
        if (!hub_is_transient(&response) || attempt == client->retries) {
            rc = hub_failure_message(&response, url.data, attempt + 1, client, file->path, err,
                                     err_len);
            break;
        }
        hub_backoff(url.data, attempt + 1, client->retries, &response);
    }
    if (rc != 0) {
        an_buf_free(&url);
        return rc;
    }
    if (restarted)
        an_log(AN_LOG_WARN, "model pull: the server ignored the Range request; downloaded the "
               "file again from the start", "url", url.data, NULL);

    /* The partial file is verified before it can take the final name. */
    char why[512];
    rc = verify_file(partial, file, why, sizeof(why));
    if (rc != 0) {
        if (rc == AN_EINVAL)
            unlink(partial);
        snprintf(err, err_len, "%s (GET %s)%s", why, url.data,
                 rc == AN_EINVAL ? "; the partial file was deleted, so run the command again to download it afresh" : "");
        an_buf_free(&url);
        return rc;
    }
    an_buf_free(&url);

    if (make_parent(final) != 0 || rename(partial, final) != 0) {
        snprintf(err, err_len, "cannot move \"%s\" to \"%s\": %s", partial, final,
                 strerror(errno));
        return AN_EIO;
    }
    result->kind = resumed_from > 0 && !restarted ? HUB_FETCH_RESUMED : HUB_FETCH_DOWNLOADED;
    result->resumed_from = result->kind == HUB_FETCH_RESUMED ? resumed_from : 0;
    return 0;
}
