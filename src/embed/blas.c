/*
 * The OpenBLAS entry points the encoder uses, resolved with dlopen. The
 * library is the pthread build that pkg-config named at configure time
 * (AN_OPENBLAS_LIBDIR), else whatever "libopenblas.so.0" resolves to.
 */
#include <cblas.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "agentnet/common.h"
#include "agentnet/dynlib.h"
#include "embed/blas.h"

#define BLAS_FILE "libopenblas.so.0"

/* Written once under pthread_once, read-only afterwards. */
static struct {
    pthread_once_t once;
    bool loaded;
    __typeof__(cblas_sgemm) *sgemm;
    __typeof__(openblas_set_num_threads) *set_num_threads;
    char error[768];
} blas = {.once = PTHREAD_ONCE_INIT};

static void load_blas(void)
{
    void *handle = NULL;
#ifdef AN_OPENBLAS_LIBDIR
    handle = dlopen(AN_OPENBLAS_LIBDIR "/" BLAS_FILE, RTLD_NOW | RTLD_LOCAL);
#endif
    if (!handle)
        handle = dlopen(BLAS_FILE, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        snprintf(blas.error, sizeof(blas.error),
                 "embed: cannot load OpenBLAS: %s; install it with "
                 "sudo apt-get install libopenblas0-pthread", dlerror());
        return;
    }
    if (an_dl_symbol(handle, "cblas_sgemm", &blas.sgemm, sizeof(blas.sgemm)) ||
        an_dl_symbol(handle, "openblas_set_num_threads", &blas.set_num_threads,
                     sizeof(blas.set_num_threads))) {
        snprintf(blas.error, sizeof(blas.error),
                 "embed: the loaded " BLAS_FILE " is not OpenBLAS (%s); install "
                 "libopenblas0-pthread", dlerror());
        dlclose(handle);
        return;
    }
    /*
     * The pool splits every product itself. With more OpenBLAS threads, the
     * idle ones polled with sched_yield while the pool ran and took about
     * 15% of the CPU time at 32 sentences of 128 tokens.
     */
    blas.set_num_threads(1);
    blas.loaded = true;
}


int an__blas_load(char *err, size_t err_len)
{
    pthread_once(&blas.once, load_blas);
    if (blas.loaded)
        return 0;
    snprintf(err, err_len, "%s", blas.error);
    return AN_EIO;
}


void an__blas_sgemm_nt(int m, int n, int k, const float *x, int ldx, const float *w, int ldw,
                       float beta, float *y, int ldy)
{
    blas.sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x, ldx, w, ldw, beta, y,
               ldy);
}
