/*
 * Runs the commands that live in libagentnet-commands.so (serve, cache,
 * embed, model). The module sits next to the agentnet executable, or at the
 * path in AGENTNET_COMMANDS_MODULE. It is opened only when one of its
 * commands runs, so `agentnet sandbox` and `agentnet --version` never load
 * libcurl, libmicrohttpd, LMDB and the other libraries those commands need.
 *
 * The module links its own copy of src/common, so it has its own log
 * settings and event sink. main sets neither before it dispatches, and each
 * command sets them in the image it runs in.
 */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agentnet/dynlib.h"
#include "cli/commands.h"

#define MODULE_FILE "libagentnet-commands.so"

typedef int (*command_fn_t)(int argc, char **argv);

static void print_fix(void)
{
    fprintf(stderr,
            "agentnet: rebuild with make, and keep " MODULE_FILE " in the same directory as "
            "the agentnet executable (or set AGENTNET_COMMANDS_MODULE to its path)\n");
}


int cli_run_module_command(const char *symbol, int argc, char **argv)
{
    char path[PATH_MAX + 64];
    if (an_dl_module_path("AGENTNET_COMMANDS_MODULE", MODULE_FILE, path, sizeof(path)) != 0) {
        fprintf(stderr, "agentnet: cannot find the directory of this executable in "
                        "/proc/self/exe to load " MODULE_FILE "\n");
        print_fix();
        return 2;
    }

    /* The handle stays open until the process exits, like the command's own code. */
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        fprintf(stderr, "agentnet: cannot load the command module \"%s\": %s\n", path,
                dlerror());
        print_fix();
        return 2;
    }

    void *entry = dlsym(handle, symbol);
    if (!entry) {
        fprintf(stderr, "agentnet: the command module \"%s\" has no %s (%s), so it is not the "
                        "module of this agentnet build\n", path, symbol, dlerror());
        print_fix();
        dlclose(handle);
        return 2;
    }

    /* dlsym returns an object pointer, which is copied into a function pointer. */
    command_fn_t command;
    memcpy(&command, &entry, sizeof(command));
    return command(argc, argv);
}
