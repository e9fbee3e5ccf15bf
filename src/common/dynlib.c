/* Module paths and symbol lookup for the parts opened with dlopen. */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agentnet/dynlib.h"

int an_dl_module_path(const char *env_var, const char *file, char *out, size_t len)
{
    const char *override = getenv(env_var);
    if (override && *override) {
        snprintf(out, len, "%s", override);
        return 0;
    }

    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return -1;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return -1;
    *slash = '\0';
    snprintf(out, len, "%s/%s", exe, file);
    return 0;
}


int an_dl_symbol(void *handle, const char *name, void *fn, size_t fn_size)
{
    void *symbol = dlsym(handle, name);
    if (!symbol)
        return -1;
    memcpy(fn, &symbol, fn_size);
    return 0;
}
