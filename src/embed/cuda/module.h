/*
 * The functions that libagentnet-cuda.so exports. The main library does not
 * link them. src/embed/cuda_loader.c opens the module with dlopen on the
 * first use of a CUDA device, so commands that do not use a GPU skip
 * loading the CUDA runtime and cuBLAS (about 100 ms and 200 MB at start).
 * Their meaning is that of the an__cuda_* functions in cuda_backend.h.
 */
#ifndef AGENTNET_EMBED_CUDA_MODULE_H
#define AGENTNET_EMBED_CUDA_MODULE_H

#include <stddef.h>
#include <stdint.h>

#include "agentnet/common.h"
#include "embed/bert_forward.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct an__cuda_model an__cuda_model_t;

int an__cudamod_device_count(char *why, size_t why_len);
int an__cudamod_model_upload(const an__bert_weights_t *w, int device, unsigned pooling_modes,
                             size_t pooled_dims, int normalize, an__cuda_model_t **out,
                             char *err, size_t err_len);
int an__cudamod_forward(an__cuda_model_t *model, const int32_t *ids, const size_t *offsets,
                        size_t count, const float **pooled_out, char *err, size_t err_len);
void an__cudamod_model_free(an__cuda_model_t *model);

#ifdef __cplusplus
}
#endif

#endif
