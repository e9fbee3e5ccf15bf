/*
 * Per-run control groups for the sandbox: memory, pids and CPU accounting
 * for the whole sandboxed tree, on cgroup v2 where its controllers are
 * usable and on the v1 hierarchies otherwise (a host may mix both: v2
 * mounted without controllers, memory, pids and cpuacct on v1).
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

/* What enforces or measures each resource, for the report; NULL = nothing. */
typedef struct {
    const char *memory; /* e.g. "cgroup v2 memory.max", "cgroup v1 memory.limit_in_bytes" */
    const char *pids;   /* e.g. "cgroup v1 pids.max" */
    const char *cpu;    /* CPU time accounting, e.g. "cgroup v1 cpuacct.usage" */
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
 * Returns 0 with *out set even when no controller is usable (note then says
 * why, for the report and the log); negative AN_E* only when something that
 * exists fails unexpectedly. The caller owns *out.
 */
int an__sbx_cgroup_open(const char *run_id, uint64_t memory_bytes, uint64_t max_pids,
                        an__sbx_cgroup_t **out, char *note, size_t note_len);

void an__sbx_cgroup_mechanisms(const an__sbx_cgroup_t *cg, an__sbx_cgroup_mechanisms_t *out);

/* Moves pid (the sandbox's first process, before it execs) into every group. */
int an__sbx_cgroup_attach(an__sbx_cgroup_t *cg, pid_t pid);

int an__sbx_cgroup_stats(an__sbx_cgroup_t *cg, an__sbx_cgroup_stats_t *out);

/* Sends sig to every process in the run's groups; returns how many were signalled. */
int an__sbx_cgroup_signal_all(an__sbx_cgroup_t *cg, int sig);

/*
 * Kills what is left, waits briefly for the groups to empty, removes them
 * and frees cg. NULL is allowed.
 */
void an__sbx_cgroup_close(an__sbx_cgroup_t *cg);

#endif
