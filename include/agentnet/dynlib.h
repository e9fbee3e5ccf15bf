/*
 * Helpers for the parts that agentnet opens with dlopen only when they are
 * used: the command module, the CUDA back end, OpenBLAS and libcrypto.
 */
#ifndef AGENTNET_DYNLIB_H
#define AGENTNET_DYNLIB_H

#include <stddef.h>

/*
 * Writes the path of a module file: the value of the environment variable
 * env_var when it is set and not empty, else file in the directory of the
 * running executable (/proc/self/exe). Returns 0, or -1 when that directory
 * cannot be read.
 */
int an_dl_module_path(const char *env_var, const char *file, char *out, size_t len);

/*
 * Looks up name in handle and stores it in the function pointer at fn,
 * which is fn_size bytes. ISO C cannot convert dlsym's object pointer to a
 * function pointer, so the bytes are copied. Returns 0, or -1 when name is
 * missing (dlerror() then says why).
 */
int an_dl_symbol(void *handle, const char *name, void *fn, size_t fn_size);

#endif
