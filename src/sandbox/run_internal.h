/*
 * Shared by the sandbox runner's files: the plan the supervisor prepares
 * before it clones the sandbox, the messages the two sides exchange, and
 * the helpers each side calls.
 *
 * Everything the sandbox's first process needs is in the plan, built and
 * allocated by the supervisor before the clone. The child side allocates
 * nothing and calls only async-signal-safe functions, because the
 * supervisor may have other threads whose locks the clone copies.
 */
#ifndef AGENTNET_SANDBOX_RUN_INTERNAL_H
#define AGENTNET_SANDBOX_RUN_INTERNAL_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "agentnet/sandbox.h"
#include "sandbox/cgroup.h"
#include "sandbox/seccomp_filter.h"

/*
 * The directory the child assembles the new root in, inside its own mount
 * namespace, before pivot_root. Mounting a tmpfs over it there hides
 * nothing on the host, because the namespace's mounts are made private first.
 */
#define AN__SBX_ASSEMBLY_DIR "/tmp"

/*
 * Inodes in the workdir's tmpfs. The tmpfs default is half the machine's
 * pages, and every inode costs kernel memory that a loop creating empty
 * files could use up.
 */
#define AN__SBX_WORKDIR_INODES 65536

/* Capacity of a plan's mount list: system dirs, /dev, and both policy path lists. */
#define AN__SBX_MAX_MOUNTS (24 + 2 * AN_SANDBOX_MAX_PATHS)

/* One step of building the new root; paths are relative to the new root. */
typedef enum {
    AN__SBX_MOUNT_BIND_RO,    /* bind source (file or directory) read-only */
    AN__SBX_MOUNT_BIND_RW,    /* bind source read-write, nosuid and nodev */
    AN__SBX_MOUNT_BIND_DEV,   /* bind a host device node onto an empty file */
    AN__SBX_MOUNT_SYMLINK,    /* create a symlink whose text is source */
    AN__SBX_MOUNT_PROC,       /* a fresh proc file system */
    AN__SBX_MOUNT_TMPFS,      /* a tmpfs with the options in source */
    AN__SBX_MOUNT_DIR,        /* an empty directory */
} an__sbx_mount_kind_t;

typedef struct {
    an__sbx_mount_kind_t kind;
    int is_dir; /* binds: 1 directory, 0 file, -1 bound over itself and skipped when missing */
    char target[AN_SANDBOX_MAX_PATH_LEN]; /* relative, such as "usr" or "dev/null" */
    char source[AN_SANDBOX_MAX_PATH_LEN];
} an__sbx_mount_t;

/* The rlimits the command gets; RLIM_INFINITY where the policy sets none. */
typedef struct {
    int resource;
    struct rlimit value;
} an__sbx_rlimit_t;

#define AN__SBX_MAX_RLIMITS 7

/*
 * The run as prepared by the supervisor. The child reads it after the
 * clone, so every pointer refers to memory the supervisor allocated before.
 */
typedef struct {
    int isolate;            /* 0 for unrestricted: no namespaces, no new root */
    int setgroups_allowed;  /* the supervisor may clear the child's groups (it is root) */
    int loopback;           /* bring lo up in the network namespace */
    char *const *argv;      /* NULL-terminated */
    char *const *envp;      /* NULL-terminated; PATH is the first entry */
    const char *workdir;    /* the command's cwd, a path in the child's root */
    int copy_workdir;       /* send the workdir's fd to the supervisor and wait */

    size_t mount_count;
    an__sbx_mount_t *mounts; /* AN__SBX_MAX_MOUNTS entries, owned by the supervisor */
    char workdir_options[128]; /* tmpfs options of the workdir */

    void *command_stack;        /* stack of the command's process until its execve */
    size_t command_stack_size;

    size_t rlimit_count;
    an__sbx_rlimit_t rlimits[AN__SBX_MAX_RLIMITS];
    const an__sbx_filter_t *filter; /* NULL: no seccomp filter (unrestricted) */

    /* v1 cgroup "tasks" files the child writes itself into, then closes */
    int cgroup_fds[AN__SBX_CGROUP_SELF_FDS];
    size_t cgroup_fd_count;

    /* The child's ends; the child moves them to the numbers below. */
    int stdin_fd, stdout_fd, stderr_fd;
    int control_fd;  /* SOCK_SEQPACKET socket to the supervisor */
    int status_fd;   /* pipe: the init's final an__sbx_exit_msg_t */
} an__sbx_plan_t;

/*
 * The supervisor's request to kill every process of the sandbox at once.
 * It goes through the init, which survives to reap them and report their
 * usage, where a SIGKILL to the init would lose that report.
 */
#define AN__SBX_KILL_ALL_SIGNAL SIGUSR1

/*
 * Stack of the command's process between its clone and its execve: a
 * few frames and a PATH buffer, with room for sanitizer builds' larger frames.
 */
#define AN__SBX_COMMAND_STACK_BYTES (256 * 1024)

/* Descriptor numbers inside the sandbox's init, after it moved them. */
#define AN__SBX_CONTROL_FD 3
#define AN__SBX_STATUS_FD 4

/* Messages on the control socket. One message per send, SOCK_SEQPACKET. */
typedef enum {
    AN__SBX_MSG_GO = 1,    /* supervisor: id maps written, cgroup attached */
    AN__SBX_MSG_WORKDIR,   /* child: the workdir's directory fd (SCM_RIGHTS) */
    AN__SBX_MSG_COPIED,    /* supervisor: workdir_from is copied in */
    AN__SBX_MSG_READY,     /* command: about to execve; the seccomp listener fd, if any */
    AN__SBX_MSG_ERROR,     /* child or command: a setup step failed */
} an__sbx_msg_type_t;

/* The setup step an error message names; run_child.c maps each to text. */
typedef enum {
    AN__SBX_STEP_NONE = 0,
    AN__SBX_STEP_IDS,        /* setgroups, setresgid, setresuid */
    AN__SBX_STEP_MOUNT,      /* building the new root; detail is the target */
    AN__SBX_STEP_PIVOT,
    AN__SBX_STEP_LOOPBACK,
    AN__SBX_STEP_CAPS,
    AN__SBX_STEP_FORK,
    AN__SBX_STEP_RLIMIT,
    AN__SBX_STEP_SECCOMP,
    AN__SBX_STEP_EXEC,       /* detail is the command */
    AN__SBX_STEP_CHDIR,
    AN__SBX_STEP_CONTROL,    /* the control socket itself */
    AN__SBX_STEP_CGROUP,     /* moving into the run's v1 cgroups */
} an__sbx_step_t;

typedef struct {
    int type;   /* an__sbx_msg_type_t */
    int step;   /* an__sbx_step_t, for errors */
    int error;  /* errno, for errors */
    char detail[AN_SANDBOX_MAX_PATH_LEN];
} an__sbx_msg_t;

/* The init's last words on the status pipe: how the command ended, and its usage. */
typedef struct {
    int command_status;    /* wait status of the command; -1 when it never started */
    int64_t cpu_us;        /* user + system time of every reaped process */
    int64_t maxrss_kb;     /* largest resident set among them */
} an__sbx_exit_msg_t;

/* run_child.c: the sandbox's first process. Never returns. */
__attribute__((noreturn)) void an__sbx_child_main(const an__sbx_plan_t *plan);

/* run_child.c: the text of a step, for the supervisor's messages. */
const char *an__sbx_step_name(int step);

/* run_mounts.c, supervisor side: fills plan->mounts for the policy. */
int an__sbx_plan_mounts(an__sbx_plan_t *plan, const an_sandbox_policy_t *policy, char *err,
                        size_t err_len);

/*
 * run_mounts.c, child side: builds the new root in AN__SBX_ASSEMBLY_DIR,
 * sends the workdir to the supervisor when plan->copy_workdir is set, and
 * pivots into it. Returns 0, or -1 with an error message already sent on
 * the control socket.
 */
int an__sbx_build_root(const an__sbx_plan_t *plan);

/* run_child.c: sends an error message on the control socket (async-signal-safe). */
void an__sbx_send_error(int step, int error, const char *detail);

/* run_child.c: hands the workdir's fd to the supervisor; returns 0 or -errno. */
int an__sbx_send_workdir(int fd);

/* run_child.c: waits until the supervisor copied workdir_from; returns 0 or -1. */
int an__sbx_wait_copied(void);

/*
 * run_userns.c: picks the host id the sandbox runs as when the supervisor
 * is root. That is the smallest id from AN__SBX_HOST_ID_BASE up that no
 * line of passwd or group names and no range of subuid or subgid covers.
 * The arguments are the texts of those files, NULL for a missing file.
 * Returns 0, or AN_EFULL when no id below AN__SBX_HOST_ID_LIMIT is free.
 */
#define AN__SBX_HOST_ID_BASE 100000u
#define AN__SBX_HOST_ID_LIMIT 2000000000u
int an__sbx_pick_host_id(const char *passwd, const char *group, const char *subuid,
                         const char *subgid, uint32_t *out);

/* run_userns.c: the host ids of this run, read from the account files when root. */
int an__sbx_host_ids(uint32_t *uid, uint32_t *gid, int *privileged, char *err, size_t err_len);

/*
 * run_userns.c: writes the child's uid_map, setgroups and gid_map, so that
 * AN_SANDBOX_INNER_ID maps to uid and gid.
 */
int an__sbx_write_id_maps(pid_t child, uint32_t uid, uint32_t gid, int privileged, char *err,
                          size_t err_len);

/* run_userns.c: explains why clone failed to create the namespaces. */
void an__sbx_explain_clone_error(int error, char *err, size_t err_len);

/*
 * run_copy.c: copies the tree under src_dir into dst_fd (a directory),
 * without following symlinks: they are copied as symlinks. Files are
 * created with fsuid/fsgid set to owner (unless owner is (uint32_t)-1) so
 * the sandbox owns them. Returns 0, or a negative AN_E* code with the path
 * and the cause in err.
 */
int an__sbx_copy_tree(const char *src_dir, int dst_fd, uint32_t owner_uid, uint32_t owner_gid,
                      char *err, size_t err_len);

/* run_copy.c: removes the host directory path and everything under it. */
int an__sbx_remove_tree(const char *path);

/*
 * run_report.c: appends text (len bytes) to out as UTF-8, with each byte
 * that is not part of a valid UTF-8 sequence replaced by U+FFFD.
 */
int an__sbx_utf8_sanitize(const char *text, size_t len, an_buf_t *out);

/* run_report.c: adds a violation, counting those past the list's capacity. */
void an__sbx_add_violation(an_sandbox_report_t *report, const char *kind, const char *detail);

/* run_report.c: adds a note (a fallback taken), also logged at debug level. */
void an__sbx_add_note(an_sandbox_report_t *report, const char *note);

/*
 * run_report.c: emits the run's audit events, one per listed violation and
 * one for the run with its outcome ("ok", "denied" when a limit stopped it,
 * "error" with error set when it could not run).
 */
void an__sbx_emit_events(const an_sandbox_report_t *report, const char *command,
                         const char *outcome, const char *error);

#endif
