/*
 * Plugin sandbox: security levels and their default limits, policies and
 * plugin manifests loaded from YAML, and the default-deny decision whether
 * a manifest may run under a policy. It also runs a command isolated
 * (namespaces, a new root, seccomp, rlimits and cgroups) and reports the run.
 */
#ifndef AGENTNET_SANDBOX_H
#define AGENTNET_SANDBOX_H

#include <stddef.h>
#include <stdint.h>

#include "agentnet/common.h"

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

/*
 * Isolated execution.
 *
 * Inside the sandbox the command runs as uid and gid AN_SANDBOX_INNER_ID in
 * new user, pid, network, mount, ipc, uts and cgroup namespaces. Its root
 * is a read-only tmpfs with read-only binds of the level's system
 * directories and the policy's paths, a fresh /proc, a minimal /dev and a
 * private tmpfs workdir at AN_SANDBOX_WORKDIR. The workdir is the current
 * directory and HOME, and TMPDIR is its tmp subdirectory, where /tmp links.
 * PATH is AN_SANDBOX_PATH, and the environment has no other variables but
 * those the policy's env list names. The workdir's tmpfs is as large as
 * max_memory_mb and disappears with the run's mount namespace.
 *
 * The unrestricted level runs the command on the host instead, in a fresh
 * directory under $TMPDIR (or /tmp) that is removed afterwards, with the
 * same environment rules and only the limits the policy sets.
 */
#define AN_SANDBOX_WORKDIR "/work"
#define AN_SANDBOX_PATH "/usr/local/bin:/usr/bin:/bin"
#define AN_SANDBOX_INNER_ID 1000

typedef struct {
    const an_sandbox_policy_t *policy; /* effective restrictions; required, borrowed */
    const char *const *argv;           /* NULL-terminated command; argv[0] is looked up in PATH */
    const char *workdir_from;          /* host directory copied into the workdir, or NULL */
    int capture;      /* 1: stdout and stderr go into the report; 0: pass through */
    int stdin_fd;     /* the command's stdin; -1 (default): /dev/null */
    int stdout_fd;    /* pass-through targets, default 1 and 2; unused when capturing */
    int stderr_fd;
    int cancel_fd;    /* becomes readable: stop the run ("cancelled"); -1 (default): none */
    const char *plugin_name;    /* named in the report and audit events, or NULL */
    const char *plugin_version;
    /*
     * When both are set, the file verify_file (relative to the workdir) must
     * have this SHA-256 after workdir_from was copied, or the run is refused:
     * the copy, not the host file checked earlier, is what runs.
     */
    const char *verify_file;
    const char *verify_sha256;
} an_sandbox_run_options_t;

an_sandbox_run_options_t an_sandbox_run_options_default(void);

/* The limits a report lists, in the order of the JSON report's "limits". */
typedef enum {
    AN_SANDBOX_LIMIT_MEMORY = 0, /* max_memory_mb */
    AN_SANDBOX_LIMIT_CPU_TIME,   /* max_cpu_time_seconds */
    AN_SANDBOX_LIMIT_WALL_TIME,  /* max_wall_time_seconds */
    AN_SANDBOX_LIMIT_PROCESSES,  /* max_processes */
    AN_SANDBOX_LIMIT_OUTPUT,     /* max_output_bytes */
    AN_SANDBOX_LIMIT_FILE_SIZE,  /* max_file_size_mb */
    AN_SANDBOX_LIMIT_OPEN_FILES, /* max_open_files */
    AN_SANDBOX_LIMIT_COUNT,
} an_sandbox_limit_t;

/* One limit of a run: its value (0 = none) and what enforced it ("" = nothing). */
typedef struct {
    uint64_t value;
    char mechanism[128];
} an_sandbox_limit_use_t;

#define AN_SANDBOX_MAX_VIOLATIONS 64
#define AN_SANDBOX_MAX_NOTES 6

/*
 * Something the command tried that the sandbox refused or stopped. kind is
 * "syscall" (a denied system call), "processes" (a fork refused at the
 * process limit) or "memory" (a process ended by the out-of-memory killer).
 */
typedef struct {
    char kind[16];
    char detail[160];
} an_sandbox_violation_t;

/*
 * The outcome of one run; every field of the JSON report. Text buffers are
 * owned by the report and freed by an_sandbox_report_free.
 */
typedef struct {
    char run_id[33];           /* 32 hex digits, also in audit events */
    an_sandbox_level_t level;
    an_sandbox_network_t network;
    char plugin_name[AN_SANDBOX_MAX_NAME];    /* "" when the run is not a plugin's */
    char plugin_version[AN_SANDBOX_MAX_NAME];
    int exited;       /* 1: the command exited with exit_code; 0: a signal ended it */
    int exit_code;
    int signal;       /* the signal that ended the command, 0 when it exited */
    /*
     * Reason the run was stopped, or NULL (a static string). "timeout": the wall
     * time ran out. "memory": the cgroup's out-of-memory killer ended a
     * process (under RLIMIT_AS alone allocations fail instead, which is no
     * kill). "cpu": SIGXCPU, or the tree's CPU time passed the limit.
     * "output": a stream passed max_output_bytes. "processes": the pids
     * cgroup refused a fork, and the tree was stopped (under RLIMIT_NPROC
     * alone the fork fails with EAGAIN and the run goes on). "cancelled":
     * the caller's cancel_fd became readable. It stays set when the command
     * still exited on its own after the stop request.
     */
    const char *killed_reason;
    uint64_t wall_ms;     /* from the sandbox's start to the end of its last process */
    uint64_t cpu_ms;      /* user + system time of the sandboxed processes */
    uint64_t peak_rss_kb; /* peak memory of the sandboxed processes */
    char cpu_source[64];    /* what measured cpu_ms: a cgroup file or "wait4 rusage" */
    char memory_source[64]; /* what measured peak_rss_kb */
    int captured;           /* 1: the output below was captured; 0: it was passed through */
    an_buf_t stdout_data;   /* captured output, at most max_output_bytes per stream */
    an_buf_t stderr_data;
    int stdout_truncated;   /* the stream went past max_output_bytes */
    int stderr_truncated;
    size_t violation_count;       /* entries in violations */
    uint64_t violations_total;    /* all violations, also those past the list's capacity */
    an_sandbox_violation_t violations[AN_SANDBOX_MAX_VIOLATIONS];
    an_sandbox_limit_use_t limits[AN_SANDBOX_LIMIT_COUNT];
    uint32_t host_uid;      /* host uid and gid the sandboxed processes run as */
    uint32_t host_gid;
    char workdir[AN_SANDBOX_MAX_PATH_LEN]; /* the command's directory, as it saw it */
    int workdir_removed;    /* 1 once nothing of the workdir is left on the host */
    size_t note_count;      /* fallbacks taken, such as rlimits for a missing cgroup */
    char notes[AN_SANDBOX_MAX_NOTES][512];
    int exec_errno;         /* set when the command could not be started (ENOENT, EACCES) */
} an_sandbox_report_t;

/*
 * Runs options->argv isolated by options->policy and fills *report, which
 * the caller frees with an_sandbox_report_free (also after a failure).
 * Blocks until the command and every process it started have ended.
 *
 * Returns 0 when the command ran, whatever its exit status. Otherwise:
 * AN_EINVAL for invalid options, or a level whose isolation this host
 * cannot provide (no user namespaces, no seccomp; err names the kernel
 * feature); AN_ENOTFOUND when argv[0] is not found (report->exec_errno is
 * ENOENT) or a path to bind is missing; AN_EIO when setting up the sandbox
 * failed or the command could not be executed. The message in err names
 * what failed and what to do.
 *
 * In pass-through mode the caller should ignore SIGPIPE, so that a closed
 * stdout ends the copy instead of the caller.
 */
int an_sandbox_run(const an_sandbox_run_options_t *options, an_sandbox_report_t *report,
                   char *err, size_t err_len);

void an_sandbox_report_free(an_sandbox_report_t *report);

/*
 * Formats the report as one JSON object without a newline. Its fields are
 * those of an_sandbox_report_t. exit_code is null when a signal ended the
 * command, invalid UTF-8 bytes in stdout and stderr become U+FFFD, and
 * limits gives each policy key with its value and mechanism. Returns a string the caller frees with free(), or
 * NULL when out of memory.
 */
char *an_sandbox_report_json(const an_sandbox_report_t *report);

#endif
