/*
 * Plugin sandbox, policy side: security levels and their default limits,
 * policies and plugin manifests loaded from YAML, and the default-deny
 * decision whether a manifest may run under a policy. Isolated execution
 * (namespaces, seccomp, cgroups) is not part of this header yet.
 */
#ifndef AGENTNET_SANDBOX_H
#define AGENTNET_SANDBOX_H

#include <stddef.h>
#include <stdint.h>

/* Security levels, ordered from loosest to tightest, so a larger value is tighter. */
typedef enum {
    AN_SANDBOX_UNRESTRICTED = 0, /* no isolation: an explicit choice by the policy or caller */
    AN_SANDBOX_SANDBOXED = 1,    /* namespaces, seccomp deny list, limits, read-only system dirs */
    AN_SANDBOX_RESTRICTED = 2,   /* sandboxed, plus no writes outside the workdir, tighter limits */
    AN_SANDBOX_MINIMAL = 3,      /* restricted, plus a syscall allow list for pure computation */
} an_sandbox_level_t;

#define AN_SANDBOX_LEVEL_COUNT 4

/* Network access, ordered from narrowest to widest. */
typedef enum {
    AN_SANDBOX_NET_NONE = 0,     /* a network namespace without interfaces */
    AN_SANDBOX_NET_LOOPBACK = 1, /* a network namespace with only lo up */
    AN_SANDBOX_NET_HOST = 2,     /* the host's network; only the unrestricted level has it */
} an_sandbox_network_t;

/*
 * Capacity of the fixed lists below. Fixed arrays keep a policy a plain value
 * that can be copied and narrowed without an owner; loading a file with more
 * entries, or a longer entry, is an error that names the limit.
 */
#define AN_SANDBOX_MAX_PATHS 32
#define AN_SANDBOX_MAX_PATH_LEN 512
#define AN_SANDBOX_MAX_ENV 32
#define AN_SANDBOX_MAX_ENV_NAME 128

typedef struct {
    size_t count;
    char items[AN_SANDBOX_MAX_PATHS][AN_SANDBOX_MAX_PATH_LEN]; /* absolute, no ".." parts */
} an_sandbox_paths_t;

/*
 * Restrictions for one run. A limit of 0 means no limit, which only the
 * unrestricted level uses; a policy file cannot set 0.
 */
typedef struct {
    an_sandbox_level_t level;
    an_sandbox_level_t min_level; /* floor: manifests asking for a looser level are rejected */
    an_sandbox_network_t network;
    an_sandbox_paths_t read_only;  /* host paths bound read-only, besides the system dirs */
    an_sandbox_paths_t read_write; /* host paths bound read-write */
    uint64_t max_memory_mb;
    uint64_t max_cpu_time_seconds;
    uint64_t max_wall_time_seconds;
    uint64_t max_processes;
    uint64_t max_output_bytes; /* per stream: stdout and stderr each */
    uint64_t max_file_size_mb;
    uint64_t max_open_files;
    size_t env_count;
    char env[AN_SANDBOX_MAX_ENV][AN_SANDBOX_MAX_ENV_NAME]; /* variables passed through */
} an_sandbox_policy_t;

/* The level's name ("sandboxed"), or "unknown" for a value outside the enum. */
const char *an_sandbox_level_name(an_sandbox_level_t level);
/* Parses a level name; returns 0, or AN_EINVAL when name is not one of the four. */
int an_sandbox_level_parse(const char *name, an_sandbox_level_t *out);
const char *an_sandbox_network_name(an_sandbox_network_t network);

/*
 * Fills *policy with the defaults of level, with min_level equal to level.
 * The defaults, one row per level (limits: 0 = none):
 *
 *   level         network  memory  cpu   wall  procs  output/stream  file   open files
 *   unrestricted  host     0       0     0     0      0              0      0
 *   sandboxed     none     512 MB  60 s  300 s 64     1 MiB          64 MB  256
 *   restricted    none     256 MB  30 s  120 s 16     256 KiB        16 MB  64
 *   minimal       none     128 MB  10 s  60 s  1      64 KiB         8 MB   32
 *
 * No level grants host paths or environment variables beyond PATH, HOME and
 * TMPDIR, which the runner sets. Returns AN_EINVAL for an unknown level.
 */
int an_sandbox_level_defaults(an_sandbox_level_t level, an_sandbox_policy_t *policy);

/*
 * The host system directories a level binds read-only, as a NULL-terminated
 * list of static strings; NULL for unrestricted, which runs on the host file system.
 */
const char *const *an_sandbox_level_system_dirs(an_sandbox_level_t level);

/*
 * Loads a policy file (YAML): the keys are level, min_level, network,
 * filesystem (read_only and read_write lists), the max_* limits and env.
 * Every key is optional; fields not given keep the defaults of level
 * (sandboxed when no level is given). Unknown keys, wrong types, values that
 * are 0, negative or above a sanity bound, unknown level or network names,
 * relative paths, read_write paths at restricted or minimal, and loopback at
 * minimal are errors: AN_EINVAL (AN_EIO when the file cannot be read) with a
 * message naming the key, the value and the fix in err.
 */
int an_sandbox_policy_load(const char *path, an_sandbox_policy_t *policy, char *err,
                           size_t err_len);

#define AN_SANDBOX_MAX_NAME 64
#define AN_SANDBOX_MAX_ARGS 32
#define AN_SANDBOX_MAX_ARG_LEN 512

/*
 * A plugin manifest. The permissions are requests: can_load grants them only
 * when the policy allows each one. A limit of 0 means "not asked for", so the
 * policy's value applies.
 */
typedef struct {
    char name[AN_SANDBOX_MAX_NAME];
    char version[AN_SANDBOX_MAX_NAME];
    size_t argc;
    char argv[AN_SANDBOX_MAX_ARGS][AN_SANDBOX_MAX_ARG_LEN]; /* entry command */
    char entry_file[AN_SANDBOX_MAX_PATH_LEN]; /* relative to the manifest's directory */
    char sha256[65];                          /* lowercase hex of the entry file */
    int has_level;
    an_sandbox_level_t level; /* level the plugin requests, when has_level */
    an_sandbox_network_t network; /* none unless the manifest requests loopback */
    an_sandbox_paths_t read_only;
    an_sandbox_paths_t read_write;
    uint64_t max_memory_mb;
    uint64_t max_cpu_time_seconds;
    uint64_t max_wall_time_seconds;
    uint64_t max_processes;
    uint64_t max_output_bytes;
    uint64_t max_file_size_mb;
    uint64_t max_open_files;
    size_t env_count;
    char env[AN_SANDBOX_MAX_ENV][AN_SANDBOX_MAX_ENV_NAME];
} an_sandbox_manifest_t;

/*
 * Loads a plugin manifest (YAML): name, version, entry (a command string
 * split on spaces, or a list of arguments), entry_file, sha256, and the
 * optional level and permissions (network, filesystem, env, limits).
 * Returns 0, or AN_EINVAL / AN_EIO with a message naming the key, the value
 * and the fix in err.
 */
int an_sandbox_manifest_load(const char *path, an_sandbox_manifest_t *manifest, char *err,
                             size_t err_len);

#define AN_SANDBOX_MAX_REASONS 32
#define AN_SANDBOX_MAX_REASON_LEN 640

/* Why a manifest was rejected: one sentence per refused request. */
typedef struct {
    size_t count;
    char text[AN_SANDBOX_MAX_REASONS][AN_SANDBOX_MAX_REASON_LEN];
} an_sandbox_reasons_t;

/*
 * Decides, default-deny, whether manifest may run under policy. Each
 * refused request adds one reason: network the policy lacks, a path it does
 * not grant, a limit above its own, an environment variable outside its
 * allow list, a level below its floor, an entry file that is missing or whose
 * SHA-256 differs. manifest_dir is where entry_file is looked up.
 *
 * On success *effective holds the policy narrowed by the manifest: the
 * tighter level, the manifest's network, paths and env (all within the
 * policy's), and each limit the smaller of the two. Nothing the manifest
 * asks for widens the policy. Returns 1 when loadable, 0 when rejected
 * (reasons->count > 0, and *effective is left unspecified).
 */
int an_sandbox_can_load(const an_sandbox_policy_t *policy, const an_sandbox_manifest_t *manifest,
                        const char *manifest_dir, an_sandbox_policy_t *effective,
                        an_sandbox_reasons_t *reasons);

/*
 * Computes the SHA-256 of the file at path into hex (65 bytes). Returns 0,
 * or AN_ENOTFOUND / AN_EIO with the path and the cause in err.
 */
int an_sandbox_sha256_file(const char *path, char hex[65], char *err, size_t err_len);

#endif
