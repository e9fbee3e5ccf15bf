/*
 * The C interface of the CUDA encoder (src/embed/cuda/): device discovery,
 * a copy of a BERT model's float32 weights on one GPU, and the packed
 * forward pass with pooling on that GPU. Choosing between the CPU and a GPU
 * is bert_model.c's business. With AN_HAVE_CUDA these functions load
 * libagentnet-cuda.so on first use (cuda_loader.c); builds without it get
 * stubs that report no device.
 */
#ifndef AGENTNET_EMBED_CUDA_BACKEND_H
#define AGENTNET_EMBED_CUDA_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agentnet/common.h"
#include "embed/bert_forward.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct an__cuda_model an__cuda_model_t;

#ifdef AN_HAVE_CUDA

/*
 * Returns the number of CUDA devices visible to this process, or 0 when
 * there is none, no usable driver, or the CUDA module cannot be loaded. In
 * that case why (when not NULL) receives the reason, such as "no NVIDIA
 * driver or GPU on this machine".
 */
int an__cuda_device_count(char *why, size_t why_len);

/*
 * True when this machine shows a way to reach an NVIDIA driver: one of
 * /dev/nvidiactl, /proc/driver/nvidia/version or WSL 2's /dev/dxg. Unlike
 * an__cuda_device_count it loads nothing, so "auto" on a machine without a
 * GPU never maps the CUDA libraries. When it returns false, reason (when not
 * NULL) receives why.
 */
bool an__cuda_driver_present(char *reason, size_t reason_len);

/*
 * Copies every weight of w to device, and prepares the pooling that the
 * forward pass ends with: pooling_modes (AN__POOL_* bits) and L2
 * normalisation when normalize is set. Returns 0, AN_ENOMEM when the GPU
 * or pinned host memory runs out, or AN_EIO on another CUDA error, with a
 * message naming the device and the failed call in err.
 */
int an__cuda_model_upload(const an__bert_weights_t *w, int device, unsigned pooling_modes,
                          int normalize, an__cuda_model_t **out, char *err, size_t err_len);

/*
 * Runs the encoder and the pooling on count sentences packed as
 * an__bert_forward() takes them, and points *pooled_out at count rows of
 * an__pool_dims() floats in sentence order. The rows live in host memory
 * that the model owns and are valid until the next call. Errors are as for
 * an__cuda_model_upload().
 */
int an__cuda_forward(an__cuda_model_t *model, const int32_t *ids, const size_t *offsets,
                     size_t count, const float **pooled_out, char *err, size_t err_len);

/* Releases the GPU copy and every buffer of model; NULL is allowed. */
void an__cuda_model_free(an__cuda_model_t *model);

#else

#include <stdio.h>

static inline int an__cuda_device_count(char *why, size_t why_len)
{
    if (why)
        snprintf(why, why_len, "this build has no CUDA back end");
    return 0;
}

static inline bool an__cuda_driver_present(char *reason, size_t reason_len)
{
    return an__cuda_device_count(reason, reason_len) > 0;
}

static inline int an__cuda_model_upload(const an__bert_weights_t *w, int device,
                                        unsigned pooling_modes, int normalize,
                                        an__cuda_model_t **out, char *err, size_t err_len)
{
    *out = NULL;
    snprintf(err, err_len, "embed: this build has no CUDA back end");
    return AN_EINVAL;
}

static inline int an__cuda_forward(an__cuda_model_t *model, const int32_t *ids,
                                   const size_t *offsets, size_t count,
                                   const float **pooled_out, char *err, size_t err_len)
{
    snprintf(err, err_len, "embed: this build has no CUDA back end");
    return AN_EINVAL;
}

static inline void an__cuda_model_free(an__cuda_model_t *model) {}

#endif

#ifdef __cplusplus
}
#endif

#endif
