/*
 * Dense layers on weights packed once at model load, for CPUs with
 * AVX-512: y = x W^T + bias, optionally plus a residual and through GELU,
 * in one pass. The weights never need packing again, the activations are
 * read in place, and the bias, residual and GELU are applied while the
 * results are still in registers.
 */
#ifndef AGENTNET_EMBED_GEMM_PACKED_H
#define AGENTNET_EMBED_GEMM_PACKED_H

#include <stdbool.h>
#include <stddef.h>

/* Output features per packed panel. */
#define AN_PACK_PANEL 32

/* True when this CPU runs the packed kernel (AVX-512F). */
bool an__gemm_packed_supported(void);

/* Panels of n output features: n rounded up to whole panels, divided by AN_PACK_PANEL. */
size_t an__gemm_packed_panels(size_t n);

/* Floats that the packed form of an [n][k] weight matrix takes. */
size_t an__gemm_packed_floats(size_t n, size_t k);

/*
 * Packs w, row-major [n][k] as torch.nn.Linear stores it, into panels of
 * AN_PACK_PANEL output features: panel j holds, for each p < k, the
 * weights w[32 j .. 32 j + 31][p] side by side. Features past n are zero.
 * packed holds an__gemm_packed_floats(n, k) floats and must not overlap w.
 */
void an__gemm_pack(const float *w, size_t n, size_t k, float *packed);

/* What happens to each output after the product: bias, then residual, then GELU. */
typedef struct {
    const float *bias;      /* [n] */
    const float *residual;  /* rows ldr floats apart, aligned with y; NULL for none */
    size_t ldr;
    bool gelu;              /* exact (erf) GELU after the additions */
} an__gemm_epilogue_t;

/*
 * y[i][j] = epilogue(sum over p < k of x[i][p] * w[j][p]) for i < m and
 * the columns j of panels first_panel .. first_panel + panels - 1 that are
 * below n. packed is an__gemm_pack's output for w; x and y have row strides
 * ldx and ldy. Single-threaded; callers split rows or panels over threads.
 * Only valid when an__gemm_packed_supported().
 */
void an__gemm_packed(size_t m, size_t n, size_t k, const float *x, size_t ldx,
                     const float *packed, size_t first_panel, size_t panels,
                     const an__gemm_epilogue_t *epilogue, float *y, size_t ldy);

#endif
