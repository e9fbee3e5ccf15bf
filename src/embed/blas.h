/*
 * OpenBLAS, opened with dlopen when the first BERT model is loaded. Linked
 * normally, the pthread build starts its worker threads when agentnet
 * starts, and they poll with sched_yield for about 100 ms on every command,
 * the sandbox's supervisor included.
 */
#ifndef AGENTNET_EMBED_BLAS_H
#define AGENTNET_EMBED_BLAS_H

#include <stddef.h>

/*
 * Loads OpenBLAS once and sets it to one thread, because the encoder's own
 * pool splits every product. Returns 0, or AN_EIO with the library's path,
 * the loader's message and the package to install in err. Thread-safe.
 */
int an__blas_load(char *err, size_t err_len);

/*
 * Computes y = x w^T + beta y for row-major x [m][k], w [n][k] and y [m][n]
 * with row strides ldx, ldw and ldy, on one OpenBLAS thread.
 * an__blas_load must have succeeded.
 */
void an__blas_sgemm_nt(int m, int n, int k, const float *x, int ldx, const float *w, int ldw,
                       float beta, float *y, int ldy);

#endif
