/*
 * Dense layers on weights packed once at model load, for CPUs with
 * AVX-512. One pass computes y = x W^T + bias, optionally plus a residual
 * and through GELU. Activations are read in place, and the additions and
 * GELU are applied while the results are still in registers.
 */
#ifndef AGENTNET_EMBED_GEMM_PACKED_H
#define AGENTNET_EMBED_GEMM_PACKED_H

#include <stdbool.h>
#include <stddef.h>

/* Output features per packed panel. */
#define AN_PACK_PANEL 32

/* Returns true when this CPU can run the packed kernel, which needs AVX-512F. */
bool an__gemm_packed_supported(void);

/* Returns the number of panels that n output features fill, the last one partly. */
size_t an__gemm_packed_panels(size_t n);

/* Returns the floats that the packed form of an [n][k] weight matrix takes. */
size_t an__gemm_packed_floats(size_t n, size_t k);

/*
 * Packs w, row-major [n][k] as torch.nn.Linear stores it, into panels of
 * AN_PACK_PANEL output features: panel j contains, for each p < k, the
 * weights w[32 j .. 32 j + 31][p] side by side. Features past n are zero.
 * packed has room for an__gemm_packed_floats(n, k) floats and must not
 * overlap w.
 */
void an__gemm_pack(const float *w, size_t n, size_t k, float *packed);

/* What happens to each output after the product: bias, then residual, then GELU. */
typedef struct {
    const float *bias;      /* [n] */
    const float *residual;  /* rows ldr floats apart, aligned with y, or NULL for none */
    size_t ldr;
    bool gelu;              /* exact (erf) GELU after the additions */
} an__gemm_epilogue_t;

/*
 * Computes y[i][j] = epilogue(sum over p < k of x[i][p] * w[j][p]) for
 * i < m and the columns j below n of panels first_panel to first_panel +
 * panels - 1. packed is an__gemm_pack's output for w, and x and y have row
 * strides ldx and ldy. It runs on the calling thread, so callers split rows
 * or panels over threads. Call it only where an__gemm_packed_supported().
 */
void an__gemm_packed(size_t m, size_t n, size_t k, const float *x, size_t ldx,
                     const float *packed, size_t first_panel, size_t panels,
                     const an__gemm_epilogue_t *epilogue, float *y, size_t ldy);

#endif
