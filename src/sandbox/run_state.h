/*
 * The supervisor's state for one run, shared by run.c (preparing, starting
 * and finishing a run) and run_loop.c (watching it while it runs).
 */
#ifndef AGENTNET_SANDBOX_RUN_STATE_H
#define AGENTNET_SANDBOX_RUN_STATE_H

#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "sandbox/cgroup.h"
#include "sandbox/run_internal.h"
#include "sandbox/seccomp_filter.h"

/* Time a stopped tree gets between SIGTERM and SIGKILL. */
#define AN__SBX_KILL_GRACE_NS 1000000000ull

/*
 * Time the output pipes may stay open after the sandbox's last process
 * ended. Only an unrestricted run can leave a writer behind (a process
 * that escaped the cgroup and the process group); reading stops then.
 */
#define AN__SBX_DRAIN_NS 1000000000ull

/*
 * How often the cgroup's counters are read while a run lasts, for the
 * process limit and the tree's CPU time. A command that ends sooner, the
 * common case, never pays for a read.
 */
#define AN__SBX_WATCH_NS 100000000ull

typedef struct {
    const an_sandbox_run_options_t *options;
    const an_sandbox_policy_t *policy;
    an_sandbox_report_t *report;
    char *err;
    size_t err_len;

    an__sbx_plan_t plan;
    an__sbx_filter_t filter;
    int has_filter;
    an__sbx_cgroup_t *cgroup;
    an__sbx_cgroup_mechanisms_t mechanisms;
    uint32_t host_uid, host_gid;
    int privileged;
    char **envp;                  /* owned, with its strings */
    char host_workdir[AN_SANDBOX_MAX_PATH_LEN]; /* unrestricted runs: the host directory */

    /* Supervisor ends; -1 when closed. */
    int control_fd;
    int status_fd;
    int stdout_fd;
    int stderr_fd;
    int listener_fd;
    int pidfd;
    pid_t child;

    uint64_t start_ns;
    uint64_t wall_deadline_ns;    /* 0 = none */
    uint64_t kill_deadline_ns;    /* after SIGTERM: when SIGKILL follows; 0 = none */
    uint64_t backstop_ns;         /* after the kill request: when the init itself is killed */
    uint64_t watch_ns;            /* next cgroup counter read; 0 = none */
    uint64_t drain_deadline_ns;   /* after the child ended */
    int term_sent;
    int kill_sent;
    uint64_t pids_hits_seen;

    int child_done;
    int child_status;             /* wait status of the child (the init, or the command) */
    struct rusage child_usage;
    int have_exit_msg;
    an__sbx_exit_msg_t exit_msg;
    uint64_t stream_bytes[2];     /* bytes read from stdout and stderr */
    int sink_broken[2];           /* pass-through: writing to the caller's fd failed */
} an__sbx_run_t;

/* run_loop.c: watches the running sandbox until its last process ended. */
int an__sbx_supervise(an__sbx_run_t *run);

/* run_loop.c: stops the tree for reason; graceful sends SIGTERM first. */
void an__sbx_stop(an__sbx_run_t *run, const char *reason, int graceful);

#endif
