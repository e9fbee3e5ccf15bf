/*
 * The CUDA back end's entry points in the main library. Each one loads
 * libagentnet-cuda.so on first use and calls into it. The module sits next
 * to the agentnet binary (the build directory, or wherever both are
 * installed), or at the path in AGENTNET_CUDA_MODULE. Linking cuBLAS into
 * the binary instead cost every command about 100 ms and 200 MB of
 * resident memory at start, including the sandbox, which never uses a GPU.
 */
#ifdef AN_HAVE_CUDA

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agentnet/dynlib.h"
#include "embed/cuda/module.h"
#include "embed/cuda_backend.h"

#define MODULE_FILE "libagentnet-cuda.so"

/* Written once under pthread_once, read-only afterwards. */
static struct {
    pthread_once_t once;
    void *handle;
    __typeof__(an__cudamod_device_count) *device_count;
    __typeof__(an__cudamod_model_upload) *model_upload;
    __typeof__(an__cudamod_forward) *forward;
    __typeof__(an__cudamod_model_free) *model_free;
    char error[PATH_MAX + 512];
} module = {.once = PTHREAD_ONCE_INIT};

static void load_module(void)
{
    char path[PATH_MAX + 64];
    if (an_dl_module_path("AGENTNET_CUDA_MODULE", MODULE_FILE, path, sizeof(path)) != 0) {
        snprintf(module.error, sizeof(module.error),
                 "cannot locate this program's directory to load %s; set "
                 "AGENTNET_CUDA_MODULE to the module's path", MODULE_FILE);
        return;
    }
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        snprintf(module.error, sizeof(module.error), "cannot load the CUDA back end: %s",
                 dlerror());
        return;
    }
    if (an_dl_symbol(handle, "an__cudamod_device_count", &module.device_count,
                     sizeof(module.device_count)) ||
        an_dl_symbol(handle, "an__cudamod_model_upload", &module.model_upload,
                     sizeof(module.model_upload)) ||
        an_dl_symbol(handle, "an__cudamod_forward", &module.forward, sizeof(module.forward)) ||
        an_dl_symbol(handle, "an__cudamod_model_free", &module.model_free,
                     sizeof(module.model_free))) {
        snprintf(module.error, sizeof(module.error),
                 "%s is not an AgentNet CUDA module of this version (%s); rebuild it with "
                 "agentnet", path, dlerror());
        dlclose(handle);
        return;
    }
    module.handle = handle;
}


static bool module_loaded(void)
{
    pthread_once(&module.once, load_module);
    return module.handle != NULL;
}


bool an__cuda_driver_present(char *reason, size_t reason_len)
{
    static const char *const paths[] = {"/dev/nvidiactl", "/proc/driver/nvidia/version",
                                        "/dev/dxg"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
        if (access(paths[i], F_OK) == 0)
            return true;
    if (reason)
        snprintf(reason, reason_len, "no NVIDIA driver: none of /dev/nvidiactl, "
                 "/proc/driver/nvidia/version and /dev/dxg exists");
    return false;
}


int an__cuda_device_count(char *why, size_t why_len)
{
    if (!module_loaded()) {
        if (why)
            snprintf(why, why_len, "%s", module.error);
        return 0;
    }
    return module.device_count(why, why_len);
}


int an__cuda_model_upload(const an__bert_weights_t *w, int device, unsigned pooling_modes,
                          int normalize, an__cuda_model_t **out, char *err, size_t err_len)
{
    *out = NULL;
    if (!module_loaded()) {
        snprintf(err, err_len, "embed: %s", module.error);
        return AN_EINVAL;
    }
    return module.model_upload(w, device, pooling_modes,
                               an__pool_dims(pooling_modes, w->config.hidden_size), normalize,
                               out, err, err_len);
}


int an__cuda_forward(an__cuda_model_t *model, const int32_t *ids, const size_t *offsets,
                     size_t count, const float **pooled_out, char *err, size_t err_len)
{
    /* A model exists only after a successful upload, so the module is loaded. */
    return module.forward(model, ids, offsets, count, pooled_out, err, err_len);
}


void an__cuda_model_free(an__cuda_model_t *model)
{
    if (model && module.handle)
        module.model_free(model);
}

#else

/* Without AN_HAVE_CUDA, cuda_backend.h defines inline stubs; ISO C wants something here. */
typedef int an__cuda_loader_unused_t;

#endif
