/*
 * Security levels: their names, their default restrictions and the system
 * directories each binds read-only. Loading files and deciding on manifests
 * live in policy.c, manifest.c and can_load.c.
 */
#include <string.h>

#include "agentnet/common.h"
#include "agentnet/sandbox.h"

static const char *const level_names[AN_SANDBOX_LEVEL_COUNT] = {
    "unrestricted", "sandboxed", "restricted", "minimal"};

/*
 * Directories that dynamically linked programs and python3 load from.
 * sandboxed and restricted also bind /etc for the loader cache and locale
 * data; minimal binds only what a pure computation loads.
 */
static const char *const sandboxed_dirs[] = {"/usr", "/bin", "/sbin", "/lib", "/lib64", "/etc",
                                             NULL};
static const char *const minimal_dirs[] = {"/usr", "/bin", "/lib", "/lib64", NULL};


const char *an_sandbox_level_name(an_sandbox_level_t level)
{
    if ((unsigned)level >= AN_SANDBOX_LEVEL_COUNT)
        return "unknown";
    return level_names[level];
}


int an_sandbox_level_parse(const char *name, an_sandbox_level_t *out)
{
    for (unsigned i = 0; i < AN_SANDBOX_LEVEL_COUNT; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (an_sandbox_level_t)i;
            return 0;
        }
    }
    return AN_EINVAL;
}


const char *an_sandbox_network_name(an_sandbox_network_t network)
{
    switch (network) {
    case AN_SANDBOX_NET_NONE:
        return "none";
    case AN_SANDBOX_NET_LOOPBACK:
        return "loopback";
    case AN_SANDBOX_NET_HOST:
        return "host";
    }
    return "unknown";
}


int an_sandbox_level_defaults(an_sandbox_level_t level, an_sandbox_policy_t *policy)
{
    if ((unsigned)level >= AN_SANDBOX_LEVEL_COUNT)
        return AN_EINVAL;
    memset(policy, 0, sizeof(*policy));
    policy->level = level;
    policy->min_level = level;

    switch (level) {
    case AN_SANDBOX_UNRESTRICTED:
        /* No isolation, so no limit: every field stays 0 and the host network is kept. */
        policy->network = AN_SANDBOX_NET_HOST;
        break;
    case AN_SANDBOX_SANDBOXED:
        policy->network = AN_SANDBOX_NET_NONE;
        policy->max_memory_mb = 512;
        policy->max_cpu_time_seconds = 60;
        policy->max_wall_time_seconds = 300;
        policy->max_processes = 64;
        policy->max_output_bytes = 1024 * 1024;
        policy->max_file_size_mb = 64;
        policy->max_open_files = 256;
        break;
    case AN_SANDBOX_RESTRICTED:
        policy->network = AN_SANDBOX_NET_NONE;
        policy->max_memory_mb = 256;
        policy->max_cpu_time_seconds = 30;
        policy->max_wall_time_seconds = 120;
        policy->max_processes = 16;
        policy->max_output_bytes = 256 * 1024;
        policy->max_file_size_mb = 16;
        policy->max_open_files = 64;
        break;
    case AN_SANDBOX_MINIMAL:
        /* One process: the allow list of this level has no fork, clone or exec. */
        policy->network = AN_SANDBOX_NET_NONE;
        policy->max_memory_mb = 128;
        policy->max_cpu_time_seconds = 10;
        policy->max_wall_time_seconds = 60;
        policy->max_processes = 1;
        policy->max_output_bytes = 64 * 1024;
        policy->max_file_size_mb = 8;
        policy->max_open_files = 32;
        break;
    }
    return 0;
}


const char *const *an_sandbox_level_system_dirs(an_sandbox_level_t level)
{
    switch (level) {
    case AN_SANDBOX_UNRESTRICTED:
        return NULL;
    case AN_SANDBOX_SANDBOXED:
    case AN_SANDBOX_RESTRICTED:
        return sandboxed_dirs;
    case AN_SANDBOX_MINIMAL:
        return minimal_dirs;
    }
    return NULL;
}
