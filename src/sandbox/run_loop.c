/*
 * The supervisor's watch over a running sandbox: one poll loop over the
 * output pipes, the seccomp listener, the child's pidfd and the caller's
 * cancel descriptor. Its timeouts come from the run's deadlines: the wall
 * time, the SIGKILL that follows a SIGTERM, and the next cgroup counter
 * read. It enforces the output cap, replies EPERM to denied system calls,
 * and stops the tree when a limit is reached.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agentnet/common.h"
#include "agentnet/log.h"
#include "sandbox/run_state.h"

#define READ_CHUNK 65536

enum { POLL_STDOUT, POLL_STDERR, POLL_LISTENER, POLL_CHILD, POLL_CANCEL, POLL_COUNT };


static void signal_child(an__sbx_run_t *run, int sig)
{
    syscall(SYS_pidfd_send_signal, run->pidfd, sig, NULL, 0);
}


/*
 * Sends sig to every process of the run. An isolated run's init forwards
 * it to its whole pid namespace; an unrestricted run is reached through
 * its cgroup and its process group.
 */
static void signal_tree(an__sbx_run_t *run, int sig)
{
    if (run->plan.isolate) {
        signal_child(run, sig);
        return;
    }
    if (run->cgroup)
        an__sbx_cgroup_signal_all(run->cgroup, sig);
    kill(-run->child, sig);
    signal_child(run, sig);
}


static void kill_tree(an__sbx_run_t *run, uint64_t now)
{
    if (run->kill_sent || run->child_done)
        return;
    run->kill_sent = 1;
    if (run->plan.isolate) {
        /* The init kills everything and still reports; the backstop kills the init. */
        signal_child(run, AN__SBX_KILL_ALL_SIGNAL);
        run->backstop_ns = now + AN__SBX_KILL_GRACE_NS;
    } else {
        signal_tree(run, SIGKILL);
    }
}


void an__sbx_stop(an__sbx_run_t *run, const char *reason, int graceful)
{
    if (!run->report->killed_reason)
        run->report->killed_reason = reason;
    if (run->child_done)
        return;
    uint64_t now = an_mono_ns();
    if (graceful && !run->term_sent && !run->kill_sent) {
        run->term_sent = 1;
        run->kill_deadline_ns = now + AN__SBX_KILL_GRACE_NS;
        signal_tree(run, SIGTERM);
        return;
    }
    kill_tree(run, now);
}


/* Writes all of data to fd; returns 0 or -1 (the reader went away). */
static int write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t put = write(fd, data, len);
        if (put < 0 && errno == EINTR)
            continue;
        if (put < 0)
            return -1;
        data += put;
        len -= (size_t)put;
    }
    return 0;
}


/*
 * Reads the pending output of stream i (0 stdout, 1 stderr). Up to
 * max_output_bytes in all are kept, captured or passed on. The first byte
 * past the cap marks the stream truncated and stops the tree. Later bytes
 * are read and dropped, so the writers do not block on a full pipe while
 * they are being stopped.
 */
static void read_stream(an__sbx_run_t *run, int i)
{
    int *fd = i == 0 ? &run->stdout_fd : &run->stderr_fd;
    char buf[READ_CHUNK];
    ssize_t got = read(*fd, buf, sizeof(buf));
    if (got < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (got <= 0) {
        close(*fd);
        *fd = -1;
        return;
    }

    uint64_t cap = run->policy->max_output_bytes;
    uint64_t before = run->stream_bytes[i];
    run->stream_bytes[i] += (uint64_t)got;
    size_t keep = (size_t)got;
    if (cap && before + (uint64_t)got > cap) {
        keep = before >= cap ? 0 : (size_t)(cap - before);
        int *truncated = i == 0 ? &run->report->stdout_truncated : &run->report->stderr_truncated;
        if (!*truncated) {
            *truncated = 1;
            an__sbx_stop(run, "output", 0);
        }
    }
    if (keep == 0)
        return;

    an_sandbox_report_t *report = run->report;
    if (run->options->capture) {
        an_buf_t *data = i == 0 ? &report->stdout_data : &report->stderr_data;
        if (an_buf_append(data, buf, keep) != 0)
            an__sbx_stop(run, "output", 0);
        return;
    }
    int sink = i == 0 ? run->options->stdout_fd : run->options->stderr_fd;
    if (!run->sink_broken[i] && write_all(sink, buf, keep) != 0)
        run->sink_broken[i] = 1;
}


static void answer_listener(an__sbx_run_t *run, short revents)
{
    if (revents & POLLIN) {
        char detail[160];
        int rc = an__sbx_seccomp_answer(run->listener_fd, detail, sizeof(detail));
        if (rc == 1) {
            an__sbx_add_violation(run->report, "syscall", detail);
            return;
        }
        if (rc >= 0)
            return;
        an_log(AN_LOG_WARN, "sandbox: answering a seccomp notification failed; denied system "
               "calls now fail with ENOSYS", "run_id", run->report->run_id, (const char *)NULL);
    }
    /* No process uses the filter any more, or the listener failed. */
    close(run->listener_fd);
    run->listener_fd = -1;
}


/* Reaps the child when it ended, with its usage and the init's report. */
static void reap_child(an__sbx_run_t *run, uint64_t now)
{
    int status;
    pid_t pid = wait4(run->child, &status, WNOHANG | __WALL, &run->child_usage);
    if (pid != run->child)
        return;
    run->child_done = 1;
    run->child_status = status;
    run->report->wall_ms = (now - run->start_ns) / 1000000;
    run->drain_deadline_ns = now + AN__SBX_DRAIN_NS;

    if (run->plan.isolate) {
        ssize_t got = read(run->status_fd, &run->exit_msg, sizeof(run->exit_msg));
        run->have_exit_msg = got == (ssize_t)sizeof(run->exit_msg);
        return;
    }
    /* The run ends with the command; what it left running on the host is killed. */
    if (run->cgroup)
        an__sbx_cgroup_signal_all(run->cgroup, SIGKILL);
    kill(-run->child, SIGKILL);
}


/* Reads the cgroup's counters: a refused fork or the tree's CPU time stop the run. */
static void watch_cgroup(an__sbx_run_t *run, uint64_t now)
{
    run->watch_ns = now + AN__SBX_WATCH_NS;
    an__sbx_cgroup_stats_t stats;
    memset(&stats, 0, sizeof(stats));
    an__sbx_cgroup_stats(run->cgroup, &stats);
    const an_sandbox_policy_t *p = run->policy;

    if (stats.has_pids && p->max_processes && stats.pids_max_hits > run->pids_hits_seen) {
        char detail[160];
        snprintf(detail, sizeof(detail), "fork refused at max_processes %" PRIu64 " (%s)",
                 p->max_processes, run->mechanisms.pids);
        if (run->pids_hits_seen == 0)
            an__sbx_add_violation(run->report, "processes", detail);
        run->pids_hits_seen = stats.pids_max_hits;
        an__sbx_stop(run, "processes", 0);
    }
    if (stats.has_cpu && p->max_cpu_time_seconds &&
        stats.cpu_usec >= p->max_cpu_time_seconds * 1000000)
        an__sbx_stop(run, "cpu", 0);
}


static void check_deadlines(an__sbx_run_t *run, uint64_t now)
{
    if (run->child_done)
        return;
    if (run->wall_deadline_ns && now >= run->wall_deadline_ns && !run->term_sent &&
        !run->kill_sent)
        an__sbx_stop(run, "timeout", 1);
    if (run->kill_deadline_ns && now >= run->kill_deadline_ns)
        kill_tree(run, now);
    if (run->backstop_ns && now >= run->backstop_ns) {
        run->backstop_ns = 0;
        an_log(AN_LOG_WARN, "sandbox: the sandbox's init did not end its processes in time; "
               "killing it", "run_id", run->report->run_id, (const char *)NULL);
        signal_child(run, SIGKILL);
        if (run->cgroup)
            an__sbx_cgroup_signal_all(run->cgroup, SIGKILL);
    }
    if (run->watch_ns && now >= run->watch_ns)
        watch_cgroup(run, now);
}


/* Milliseconds until the earliest pending deadline, or -1 when there is none. */
static int poll_timeout(const an__sbx_run_t *run, uint64_t now)
{
    uint64_t next = 0;
    uint64_t candidates[] = {
        run->child_done ? 0 : (run->term_sent || run->kill_sent ? 0 : run->wall_deadline_ns),
        run->child_done || run->kill_sent ? 0 : run->kill_deadline_ns,
        run->child_done ? 0 : run->backstop_ns,
        run->child_done ? 0 : run->watch_ns,
        run->child_done ? run->drain_deadline_ns : 0,
    };
    for (size_t i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++) {
        if (candidates[i] && (!next || candidates[i] < next))
            next = candidates[i];
    }
    if (!next)
        return -1;
    if (next <= now)
        return 0;
    uint64_t ms = (next - now + 999999) / 1000000;
    return ms > 60000 ? 60000 : (int)ms;
}


int an__sbx_supervise(an__sbx_run_t *run)
{
    const an_sandbox_policy_t *p = run->policy;
    if (run->cgroup && ((run->mechanisms.pids && p->max_processes) ||
                        (run->mechanisms.cpu && p->max_cpu_time_seconds)))
        run->watch_ns = run->start_ns + AN__SBX_WATCH_NS;
    int cancel_fd = run->options->cancel_fd;

    for (;;) {
        uint64_t now = an_mono_ns();
        check_deadlines(run, now);
        int streams_open = run->stdout_fd >= 0 || run->stderr_fd >= 0;
        if (run->child_done && (!streams_open || now >= run->drain_deadline_ns))
            break;

        struct pollfd fds[POLL_COUNT];
        int ids[POLL_COUNT];
        nfds_t n = 0;
        int wanted[POLL_COUNT] = {
            run->stdout_fd, run->stderr_fd, run->child_done ? -1 : run->listener_fd,
            run->child_done ? -1 : run->pidfd, run->child_done ? -1 : cancel_fd};
        for (int i = 0; i < POLL_COUNT; i++) {
            if (wanted[i] < 0)
                continue;
            fds[n].fd = wanted[i];
            fds[n].events = POLLIN;
            fds[n].revents = 0;
            ids[n++] = i;
        }
        int ready = poll(fds, n, poll_timeout(run, now));
        if (ready < 0 && errno != EINTR) {
            snprintf(run->err, run->err_len, "poll failed (%s)", strerror(errno));
            an__sbx_stop(run, "cancelled", 0);
            return AN_EIO;
        }
        now = an_mono_ns();
        for (nfds_t k = 0; ready > 0 && k < n; k++) {
            if (!fds[k].revents)
                continue;
            switch (ids[k]) {
            case POLL_STDOUT:
                read_stream(run, 0);
                break;
            case POLL_STDERR:
                read_stream(run, 1);
                break;
            case POLL_LISTENER:
                answer_listener(run, fds[k].revents);
                break;
            case POLL_CHILD:
                reap_child(run, now);
                break;
            case POLL_CANCEL:
                cancel_fd = -1;
                an__sbx_stop(run, "cancelled", 1);
                break;
            }
        }
    }
    return 0;
}
