/*
 * The six OpenSSL functions that the sandbox calls to hash a plugin's entry
 * file (an_sandbox_sha256_file), defined in the agentnet executable as
 * forwarders to libcrypto, which they open with dlopen on first use.
 * Linking libcrypto instead made every start of the executable about
 * 0.6 ms slower, because the dynamic loader processes about 20,000
 * relocations in it (an empty main with and without libcrypto 3.0, timed
 * with hyperfine on the 2-CPU machine of docs/BENCHMARKS.md). Only
 * `sandbox check` and `sandbox run --plugin` compute a hash.
 *
 * libagentnet.a and libagentnet-commands.so link libcrypto and never use
 * these. When the sandbox calls another OpenSSL function, linking the
 * executable fails with an undefined reference until it is added here.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/opensslv.h>

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
} crypto = {.once = PTHREAD_ONCE_INIT};

/* Copies dlsym's object pointer into a function pointer. */
static bool find_symbol(void *handle, const char *name, void *fn, size_t fn_size)
{
    void *symbol = dlsym(handle, name);
    if (!symbol)
        return false;
    memcpy(fn, &symbol, fn_size);
    return true;
}


/* Opens libcrypto. On failure it prints why, once, and every forwarder below fails. */
static void load_libcrypto(void)
{
    void *handle = dlopen(LIBCRYPTO_FILE, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        fprintf(stderr, "agentnet: cannot load OpenSSL to compute SHA-256: %s; install it "
                        "with sudo apt-get install libssl3\n", dlerror());
        return;
    }
    if (!find_symbol(handle, "EVP_MD_CTX_new", &crypto.md_ctx_new, sizeof(crypto.md_ctx_new)) ||
        !find_symbol(handle, "EVP_MD_CTX_free", &crypto.md_ctx_free,
                     sizeof(crypto.md_ctx_free)) ||
        !find_symbol(handle, "EVP_sha256", &crypto.sha256, sizeof(crypto.sha256)) ||
        !find_symbol(handle, "EVP_DigestInit_ex", &crypto.digest_init,
                     sizeof(crypto.digest_init)) ||
        !find_symbol(handle, "EVP_DigestUpdate", &crypto.digest_update,
                     sizeof(crypto.digest_update)) ||
        !find_symbol(handle, "EVP_DigestFinal_ex", &crypto.digest_final,
                     sizeof(crypto.digest_final))) {
        fprintf(stderr, "agentnet: " LIBCRYPTO_FILE " lacks an OpenSSL function (%s); "
                        "reinstall libssl3\n", dlerror());
        dlclose(handle);
        return;
    }
    crypto.loaded = true;
}


static bool libcrypto_loaded(void)
{
    pthread_once(&crypto.once, load_libcrypto);
    return crypto.loaded;
}


EVP_MD_CTX *EVP_MD_CTX_new(void)
{
    return libcrypto_loaded() ? crypto.md_ctx_new() : NULL;
}


void EVP_MD_CTX_free(EVP_MD_CTX *ctx)
{
    if (ctx && libcrypto_loaded())
        crypto.md_ctx_free(ctx);
}


const EVP_MD *EVP_sha256(void)
{
    return libcrypto_loaded() ? crypto.sha256() : NULL;
}


int EVP_DigestInit_ex(EVP_MD_CTX *ctx, const EVP_MD *type, ENGINE *impl)
{
    return libcrypto_loaded() ? crypto.digest_init(ctx, type, impl) : 0;
}


int EVP_DigestUpdate(EVP_MD_CTX *ctx, const void *data, size_t count)
{
    return libcrypto_loaded() ? crypto.digest_update(ctx, data, count) : 0;
}


int EVP_DigestFinal_ex(EVP_MD_CTX *ctx, unsigned char *md, unsigned int *size)
{
    return libcrypto_loaded() ? crypto.digest_final(ctx, md, size) : 0;
}
