/*
 * Request keys: the canonical JSON form of a request body and the SHA-256
 * digest over it and the request's scope. The form is part of the on-disk
 * format of persistent caches: changing it silently orphans stored entries.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "cache/cache_internal.h"

/* Domain separator and version of the key material; bump it when the form changes. */
#define KEY_PREFIX "agentnet-cache-v1"
/* Prefix of raw keys, which hash the body bytes as sent (an_cache_key_raw). */
#define RAW_KEY_PREFIX "agentnet-raw-v1"

/*
 * Deepest nesting the writer follows. Jansson's parser stops at 2048 levels,
 * so only a body built in code can be deeper; the limit bounds the recursion.
 */
#define MAX_DEPTH 2048

/* Objects with at most this many members sort their keys in a stack array. */
#define STACK_MEMBERS 32

const char *const an_cache_key_ignored_fields[] = {
    "user", "metadata", "stream_options", "store", "service_tier", "safety_identifier",
    "prompt_cache_key", NULL,
};

/*
 * Where canonical text goes: an an_buf_t, or a SHA-256 context when only the
 * digest is needed. Text gathers in stage first so that hashing a body costs
 * a few digest updates rather than one per token.
 */
typedef struct {
    an_buf_t *buf;
    EVP_MD_CTX *md;
    size_t len;
    int rc;
    char stage[2048];
} canon_out_t;

typedef struct {
    const char *key;
    size_t key_len;
    const json_t *value;
} member_t;


static void out_drain(canon_out_t *out)
{
    if (out->len == 0 || out->rc != 0)
        return;
    if (out->buf) {
        if (an_buf_append(out->buf, out->stage, out->len) != 0)
            out->rc = AN_ENOMEM;
    } else if (EVP_DigestUpdate(out->md, out->stage, out->len) != 1) {
        out->rc = AN_EIO;
    }
    out->len = 0;
}


static void out_write(canon_out_t *out, const void *data, size_t len)
{
    if (len > sizeof(out->stage) - out->len) {
        out_drain(out);
        if (len > sizeof(out->stage)) {
            /* Too large to stage: write it through. */
            if (out->rc != 0)
                return;
            if (out->buf ? an_buf_append(out->buf, data, len) != 0
                         : EVP_DigestUpdate(out->md, data, len) != 1)
                out->rc = out->buf ? AN_ENOMEM : AN_EIO;
            return;
        }
    }
    memcpy(out->stage + out->len, data, len);
    out->len += len;
}


static void out_char(canon_out_t *out, char c)
{
    out_write(out, &c, 1);
}


/*
 * Writes a JSON string literal with one fixed escaping, so each string has
 * exactly one form. Only '"', '\\' and control characters are escaped, in
 * JSON's short form where there is one. Other bytes, non-ASCII UTF-8
 * included, are written as they are.
 */
static void write_string(canon_out_t *out, const char *text, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    out_char(out, '"');
    size_t run = 0; /* start of the bytes not yet written */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;

        out_write(out, text + run, i - run);
        run = i + 1;
        char esc[6] = {'\\', 0};
        size_t esc_len = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 0xf];
            esc_len = 6;
        }
        out_write(out, esc, esc_len);
    }
    out_write(out, text + run, len - run);
    out_char(out, '"');
}


/*
 * Writes a real. An integral value in the int64 range is written as an
 * integer, so 1.0 and 1 agree (and -0.0 becomes 0). Any other value gets
 * the shortest %g form that reads back as the same double, so 0.1 and
 * 0.10 agree too.
 */
static void write_real(canon_out_t *out, double x)
{
    char text[40];
    int n;
    if (!isfinite(x)) {
        /* Jansson refuses to build NaN or infinity, so this is unreachable from parsed JSON. */
        out->rc = AN_EINVAL;
        return;
    }
    if (x == floor(x) && x >= -9223372036854775808.0 && x < 9223372036854775808.0) {
        n = snprintf(text, sizeof(text), "%lld", (long long)x);
    } else {
        /*
         * For a normal double, when 9 digits read back as x, %g's trailing
         * zero stripping already gives the shortest form, because any shorter
         * form that reads back is that same text. Most values (every float32)
         * stop there, which matters for embedding vectors of thousands of
         * numbers. Subnormals carry fewer digits, so they search from 1.
         */
        int precision = fabs(x) < DBL_MIN ? 1 : 9;
        n = snprintf(text, sizeof(text), "%.*g", precision, x);
        while (precision < 17 && strtod(text, NULL) != x) {
            precision++;
            n = snprintf(text, sizeof(text), "%.*g", precision, x);
        }
    }
    out_write(out, text, (size_t)n);
}


static int compare_members(const void *a, const void *b)
{
    const member_t *x = a, *y = b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key, y->key, n);
    if (c != 0)
        return c;
    return (x->key_len > y->key_len) - (x->key_len < y->key_len);
}


static int is_ignored_field(const char *key, size_t key_len)
{
    for (const char *const *f = an_cache_key_ignored_fields; *f; f++) {
        if (strlen(*f) == key_len && memcmp(*f, key, key_len) == 0)
            return 1;
    }
    return 0;
}


static void write_value(canon_out_t *out, const json_t *value, int depth, int skip_ignored);


static void write_object(canon_out_t *out, const json_t *object, int depth, int skip_ignored)
{
    member_t stack[STACK_MEMBERS];
    size_t size = json_object_size(object);
    member_t *members = stack;
    if (size > STACK_MEMBERS) {
        members = malloc(size * sizeof(*members));
        if (!members) {
            out->rc = AN_ENOMEM;
            return;
        }
    }

    /* json_object_keylen_foreach takes a non-const object but does not modify it. */
    json_t *mutable_object = (json_t *)object;
    const char *key;
    size_t key_len, count = 0;
    json_t *member;
    json_object_keylen_foreach(mutable_object, key, key_len, member)
    {
        if (skip_ignored && is_ignored_field(key, key_len))
            continue;
        members[count++] = (member_t){key, key_len, member};
    }
    qsort(members, count, sizeof(*members), compare_members);

    out_char(out, '{');
    for (size_t i = 0; i < count && out->rc == 0; i++) {
        if (i > 0)
            out_char(out, ',');
        write_string(out, members[i].key, members[i].key_len);
        out_char(out, ':');
        write_value(out, members[i].value, depth + 1, 0);
    }
    out_char(out, '}');

    if (members != stack)
        free(members);
}


static void write_value(canon_out_t *out, const json_t *value, int depth, int skip_ignored)
{
    if (out->rc != 0)
        return;
    if (depth > MAX_DEPTH) {
        out->rc = AN_EINVAL;
        return;
    }

    char text[24];
    int n;
    switch (json_typeof(value)) {
    case JSON_OBJECT:
        write_object(out, value, depth, skip_ignored);
        break;
    case JSON_ARRAY:
        out_char(out, '[');
        for (size_t i = 0; i < json_array_size(value) && out->rc == 0; i++) {
            if (i > 0)
                out_char(out, ',');
            write_value(out, json_array_get(value, i), depth + 1, 0);
        }
        out_char(out, ']');
        break;
    case JSON_STRING:
        write_string(out, json_string_value(value), json_string_length(value));
        break;
    case JSON_INTEGER:
        n = snprintf(text, sizeof(text), "%" JSON_INTEGER_FORMAT, json_integer_value(value));
        out_write(out, text, (size_t)n);
        break;
    case JSON_REAL:
        write_real(out, json_real_value(value));
        break;
    case JSON_TRUE:
        out_write(out, "true", 4);
        break;
    case JSON_FALSE:
        out_write(out, "false", 5);
        break;
    case JSON_NULL:
        out_write(out, "null", 4);
        break;
    }
}


int an_cache_canonical_json(const json_t *value, int skip_ignored, an_buf_t *out)
{
    if (!value || !out)
        return AN_EINVAL;
    an_buf_reset(out);
    canon_out_t sink = {.buf = out};
    write_value(&sink, value, 0, skip_ignored);
    out_drain(&sink);
    return sink.rc;
}


/* Feeds text and its terminating NUL to the digest; NULL counts as "". */
static int digest_field(EVP_MD_CTX *md, const char *text)
{
    if (!text)
        text = "";
    return EVP_DigestUpdate(md, text, strlen(text) + 1) == 1 ? 0 : AN_EIO;
}


/* Starts a SHA-256 over prefix and the scope members, each NUL-terminated. */
static int digest_scope(EVP_MD_CTX *md, const char *prefix, const an_cache_key_scope_t *scope)
{
    if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        return AN_EIO;

    /* The Authorization header enters as the hex of its own digest, so no secret is hashed raw. */
    char auth_hex[2 * AN_CACHE_KEY_BYTES + 1] = "";
    if (scope->authorization && scope->authorization[0]) {
        unsigned char auth_digest[EVP_MAX_MD_SIZE];
        unsigned int auth_len = 0;
        if (EVP_Digest(scope->authorization, strlen(scope->authorization), auth_digest, &auth_len,
                       EVP_sha256(), NULL) != 1)
            return AN_EIO;
        an_hex_encode(auth_digest, auth_len, auth_hex);
    }

    if (digest_field(md, prefix) != 0 || digest_field(md, scope->route) != 0 ||
        digest_field(md, scope->namespace_) != 0 || digest_field(md, scope->tenant) != 0 ||
        digest_field(md, auth_hex) != 0)
        return AN_EIO;
    return 0;
}


static int digest_final(EVP_MD_CTX *md, an_cache_key_t *out)
{
    unsigned int len = 0;
    return EVP_DigestFinal_ex(md, out->bytes, &len) == 1 && len == AN_CACHE_KEY_BYTES ? 0 : AN_EIO;
}


int an_cache_key_request(const an_cache_key_scope_t *scope, const json_t *body,
                         an_cache_key_t *out)
{
    if (!scope || !out || !json_is_object(body))
        return AN_EINVAL;

    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md)
        return AN_ENOMEM;
    int rc = digest_scope(md, KEY_PREFIX, scope);
    if (rc == 0) {
        canon_out_t sink = {.md = md};
        write_value(&sink, body, 0, 1);
        out_drain(&sink);
        rc = sink.rc;
    }
    if (rc == 0)
        rc = digest_final(md, out);
    EVP_MD_CTX_free(md);
    return rc;
}


int an_cache_key_raw(const an_cache_key_scope_t *scope, const void *body, size_t body_len,
                     an_cache_key_t *out)
{
    if (!scope || !out || (!body && body_len))
        return AN_EINVAL;

    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md)
        return AN_ENOMEM;
    int rc = digest_scope(md, RAW_KEY_PREFIX, scope);
    if (rc == 0 && body_len && EVP_DigestUpdate(md, body, body_len) != 1)
        rc = AN_EIO;
    if (rc == 0)
        rc = digest_final(md, out);
    EVP_MD_CTX_free(md);
    return rc;
}


void an_cache_key_hex(const an_cache_key_t *key, char out[2 * AN_CACHE_KEY_BYTES + 1])
{
    an_hex_encode(key->bytes, AN_CACHE_KEY_BYTES, out);
}
