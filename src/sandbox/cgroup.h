/*
 * Per-run control groups for the sandbox: memory, pids and CPU accounting
 * for the whole sandboxed tree. They use cgroup v2 where its controllers
 * are usable and the v1 hierarchies otherwise. A host may mix both, for
 * example v2 mounted without controllers and memory, pids and cpuacct on v1.
 *
 * The run's groups are created below the supervisor's own group in each
 * hierarchy (read from /proc/self/cgroup), found through /proc/self/mountinfo.
 * A controller that is missing or not writable (an unprivileged user, a
 * hierarchy managed by someone else) is not an error: the mechanism stays
 * NULL and the caller falls back to rlimits, saying so in the report.
 */
#ifndef AGENTNET_SANDBOX_CGROUP_H
#define AGENTNET_SANDBOX_CGROUP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct an__sbx_cgroup an__sbx_cgroup_t;

/*
 * The mechanism that enforces or measures each resource, for the report, or
 * NULL for none. Each *_note string gives the reason a mechanism is NULL,
 * and is NULL when it is not. All strings live as long as the cgroup.
 */
typedef struct {
    const char *memory; /* "cgroup v2 memory.max" or "cgroup v1 memory.limit_in_bytes" */
    const char *pids;   /* "cgroup v2 pids.max" or "cgroup v1 pids.max" */
    const char *cpu;    /* CPU time accounting: "cgroup v2 cpu.stat" or "cgroup v1 cpuacct.usage" */
    const char *memory_note;
    const char *pids_note;
    const char *cpu_note;
} an__sbx_cgroup_mechanisms_t;

typedef struct {
    int has_memory;             /* peak_memory_bytes and oom_kills are valid */
    uint64_t peak_memory_bytes; /* memory.peak / memory.max_usage_in_bytes */
    uint64_t oom_kills;         /* processes the OOM killer ended in the group */
    int has_pids;
    uint64_t pids_max_hits;     /* forks refused at pids.max */
    int has_cpu;
    uint64_t cpu_usec;          /* user + system CPU time of every process ever in the group */
} an__sbx_cgroup_stats_t;

/*
 * Creates the groups for one run, named after run_id, with memory_bytes and
 * max_pids as limits (0 = no limit, group still created for accounting).
 * Returns 0 with *out set even when no controller is usable, and then note
 * gives the reason, for the report and the log. Negative AN_E* only for AN_EINVAL
 * (run_id is not 1 to 64 characters of [A-Za-z0-9._-], or starts with a
 * dot), AN_EEXIST (a group for run_id exists already) and AN_ENOMEM, with
 * the message in note. The caller owns *out.
 */
int an__sbx_cgroup_open(const char *run_id, uint64_t memory_bytes, uint64_t max_pids,
                        an__sbx_cgroup_t **out, char *note, size_t note_len);

void an__sbx_cgroup_mechanisms(const an__sbx_cgroup_t *cg, an__sbx_cgroup_mechanisms_t *out);

/*
 * Moves pid (the sandbox's first process, before it execs or forks) into
 * every group that an__sbx_cgroup_self_attach_fds did not hand to the
 * process itself. Returns 0, or AN_EIO with the reason in
 * an__sbx_cgroup_error.
 */
int an__sbx_cgroup_attach(an__sbx_cgroup_t *cg, pid_t pid);

/* Maximum number of descriptors that an__sbx_cgroup_self_attach_fds returns. */
#define AN__SBX_CGROUP_SELF_FDS 4

/*
 * Opens, in the supervisor, the "tasks" file of each v1 group, through
 * which the sandbox's first process moves itself. The kernel moves a
 * thread that writes "0" there without the lock that a write of another
 * process's pid to cgroup.procs takes. That lock waits for an RCU grace
 * period, and the write took 8 to 28 ms after an idle spell on a 2-CPU VM.
 * v2 groups get no file and stay with an__sbx_cgroup_attach. Writes up to
 * AN__SBX_CGROUP_SELF_FDS close-on-exec descriptors into fds and returns
 * their count, or AN_EIO with the reason in an__sbx_cgroup_error. The
 * caller closes them after the clone.
 */
int an__sbx_cgroup_self_attach_fds(an__sbx_cgroup_t *cg, int fds[AN__SBX_CGROUP_SELF_FDS]);

/*
 * In the sandbox's first process: writes "0" to each descriptor and closes
 * it. The kernel checks the opener's credentials, so this works after the
 * process entered its user namespace. Async-signal-safe. Returns 0, or the
 * errno of the first failure.
 */
int an__sbx_cgroup_attach_self(const int *fds, size_t count);

/*
 * Reads the counters. A resource whose counters cannot be read has its has_*
 * flag at 0, and the call then returns AN_EIO with the reason in
 * an__sbx_cgroup_error. The other resources are filled in either case.
 */
int an__sbx_cgroup_stats(an__sbx_cgroup_t *cg, an__sbx_cgroup_stats_t *out);

/*
 * Sends sig to every process in the run's groups; returns how many were
 * signalled, or AN_EIO when a group's cgroup.procs cannot be read. With
 * SIGKILL, a v2 group is also killed through cgroup.kill, which reaches
 * processes forked while the list is read.
 */
int an__sbx_cgroup_signal_all(an__sbx_cgroup_t *cg, int sig);

/* The reason for the last failure of attach, stats or signal_all, or "". */
const char *an__sbx_cgroup_error(const an__sbx_cgroup_t *cg);

/*
 * Kills what is left, waits up to 1 s for the groups to empty, removes them
 * and frees cg. A group that cannot be removed is logged and left behind.
 * NULL is allowed.
 */
void an__sbx_cgroup_close(an__sbx_cgroup_t *cg);

#endif
