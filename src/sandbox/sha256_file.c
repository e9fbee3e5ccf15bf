/*
 * SHA-256 of a plugin's entry file through OpenSSL's EVP interface, with
 * libcrypto opened by dlopen on the first hash. Linked into the agentnet
 * executable, libcrypto made every start about 0.6 ms slower: the dynamic
 * loader processes about 20,000 relocations in it (an empty main with and
 * without libcrypto 3.0, timed with hyperfine on the 2-CPU machine of
 * docs/BENCHMARKS.md). Only `sandbox check` and `sandbox run --plugin` hash.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/opensslv.h>

#include "agentnet/common.h"
#include "agentnet/dynlib.h"
#include "agentnet/sandbox.h"

#define STRINGIFY(x) #x
#define SONAME(version) "libcrypto.so." STRINGIFY(version)
/* The soname of the OpenSSL release whose headers this file was compiled with. */
#define LIBCRYPTO_FILE SONAME(OPENSSL_SHLIB_VERSION)

/* Written once under pthread_once, read-only afterwards. */
static struct {
    pthread_once_t once;
    bool loaded;
    __typeof__(EVP_MD_CTX_new) *md_ctx_new;
    __typeof__(EVP_MD_CTX_free) *md_ctx_free;
    __typeof__(EVP_sha256) *sha256;
    __typeof__(EVP_DigestInit_ex) *digest_init;
    __typeof__(EVP_DigestUpdate) *digest_update;
    __typeof__(EVP_DigestFinal_ex) *digest_final;
    char error[512];
} crypto = {.once = PTHREAD_ONCE_INIT};

static void load_libcrypto(void)
{
    void *handle = dlopen(LIBCRYPTO_FILE, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        snprintf(crypto.error, sizeof(crypto.error),
                 "cannot load OpenSSL to compute SHA-256 (%s); install it with sudo apt-get "
                 "install libssl3", dlerror());
        return;
    }
    if (an_dl_symbol(handle, "EVP_MD_CTX_new", &crypto.md_ctx_new, sizeof(crypto.md_ctx_new)) ||
        an_dl_symbol(handle, "EVP_MD_CTX_free", &crypto.md_ctx_free,
                     sizeof(crypto.md_ctx_free)) ||
        an_dl_symbol(handle, "EVP_sha256", &crypto.sha256, sizeof(crypto.sha256)) ||
        an_dl_symbol(handle, "EVP_DigestInit_ex", &crypto.digest_init,
                     sizeof(crypto.digest_init)) ||
        an_dl_symbol(handle, "EVP_DigestUpdate", &crypto.digest_update,
                     sizeof(crypto.digest_update)) ||
        an_dl_symbol(handle, "EVP_DigestFinal_ex", &crypto.digest_final,
                     sizeof(crypto.digest_final))) {
        snprintf(crypto.error, sizeof(crypto.error),
                 LIBCRYPTO_FILE " lacks an OpenSSL function (%s); reinstall libssl3", dlerror());
        dlclose(handle);
        return;
    }
    crypto.loaded = true;
}


/* Feeds the whole file to an initialised context. Returns 1, or 0 on a read or hash error. */
static int hash_stream(FILE *file, EVP_MD_CTX *ctx)
{
    unsigned char block[65536];
    size_t got;
    while ((got = fread(block, 1, sizeof(block), file)) > 0) {
        if (crypto.digest_update(ctx, block, got) != 1)
            return 0;
    }
    return !ferror(file);
}


int an_sandbox_sha256_file(const char *path, char hex[65], char *err, size_t err_len)
{
    pthread_once(&crypto.once, load_libcrypto);
    if (!crypto.loaded) {
        snprintf(err, err_len, "%s", crypto.error);
        return AN_EIO;
    }
    FILE *file = fopen(path, "rb");
    if (!file) {
        int code = errno == ENOENT ? AN_ENOTFOUND : AN_EIO;
        snprintf(err, err_len, "cannot open \"%s\" (%s)", path, strerror(errno));
        return code;
    }
    EVP_MD_CTX *ctx = crypto.md_ctx_new();
    int ok = ctx && crypto.digest_init(ctx, crypto.sha256(), NULL) == 1 &&
             hash_stream(file, ctx);
    fclose(file);

    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned digest_len = 0;
    ok = ok && crypto.digest_final(ctx, digest, &digest_len) == 1 && digest_len == 32;
    crypto.md_ctx_free(ctx);
    if (!ok) {
        snprintf(err, err_len, "cannot hash \"%s\" (a read error or an OpenSSL failure)", path);
        return AN_EIO;
    }
    an_hex_encode(digest, 32, hex);
    return 0;
}
