/*
 * an_sandbox_run: prepares a run (checks, seccomp filter, cgroup, mount
 * plan, environment, rlimits), starts the sandbox with clone3, completes
 * its setup from outside (id maps, cgroup, workdir copy), and finishes the
 * report once run_loop.c has watched the run to its end. The sandbox's own
 * side is in run_child.c and run_mounts.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agentnet/common.h"
#include "agentnet/log.h"
#include "sandbox/run_state.h"

/* The first fields of the kernel's struct clone_args (CLONE_ARGS_SIZE_VER0). */
typedef struct {
    uint64_t flags;
    uint64_t pidfd;
    uint64_t child_tid;
    uint64_t parent_tid;
    uint64_t exit_signal;
    uint64_t stack;
    uint64_t stack_size;
    uint64_t tls;
} clone_args_v0_t;

#define NAMESPACE_FLAGS \
    (CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS)


an_sandbox_run_options_t an_sandbox_run_options_default(void)
{
    an_sandbox_run_options_t options;
    memset(&options, 0, sizeof(options));
    options.capture = 0;
    options.stdin_fd = -1;
    options.stdout_fd = 1;
    options.stderr_fd = 2;
    options.cancel_fd = -1;
    return options;
}


static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}


static void make_run_id(char out[33])
{
    uint8_t bytes[16];
    if (getrandom(bytes, sizeof(bytes), 0) != (ssize_t)sizeof(bytes)) {
        uint64_t t = an_mono_ns() ^ ((uint64_t)getpid() << 32);
        memcpy(bytes, &t, sizeof(t));
        memcpy(bytes + 8, &t, sizeof(t));
    }
    an_hex_encode(bytes, sizeof(bytes), out);
}


static int check_options(const an_sandbox_run_options_t *o, char *err, size_t err_len)
{
    if (!o || !o->policy || !o->argv || !o->argv[0] || !o->argv[0][0]) {
        snprintf(err, err_len, "missing command to run; pass the command after --");
        return AN_EINVAL;
    }
    const an_sandbox_policy_t *p = o->policy;
    if ((unsigned)p->level >= AN_SANDBOX_LEVEL_COUNT) {
        snprintf(err, err_len, "unknown level %d", (int)p->level);
        return AN_EINVAL;
    }
    int isolated = p->level != AN_SANDBOX_UNRESTRICTED;
    if (isolated && p->network == AN_SANDBOX_NET_HOST) {
        snprintf(err, err_len, "the host network is only available at the unrestricted "
                 "level; use network none or loopback at level %s", an_sandbox_level_name(p->level));
        return AN_EINVAL;
    }
    if (!isolated && p->network != AN_SANDBOX_NET_HOST) {
        snprintf(err, err_len, "the unrestricted level runs on the host network and "
                 "cannot restrict it to %s; use level sandboxed for that",
                 an_sandbox_network_name(p->network));
        return AN_EINVAL;
    }
    return 0;
}


static int add_env(an__sbx_run_t *run, size_t *count, const char *name, const char *value)
{
    size_t len = strlen(name) + strlen(value) + 2;
    char *entry = malloc(len);
    if (!entry)
        return AN_ENOMEM;
    snprintf(entry, len, "%s=%s", name, value);
    run->envp[(*count)++] = entry;
    return 0;
}


/* PATH, HOME and TMPDIR set by the runner, then the policy's variables that are set here. */
static int build_env(an__sbx_run_t *run, const char *workdir)
{
    const an_sandbox_policy_t *p = run->policy;
    run->envp = calloc(p->env_count + 4, sizeof(char *));
    if (!run->envp)
        return AN_ENOMEM;
    size_t count = 0;
    char tmpdir[AN_SANDBOX_MAX_PATH_LEN + 8];
    snprintf(tmpdir, sizeof(tmpdir), "%s/tmp", workdir);
    int rc = add_env(run, &count, "PATH", AN_SANDBOX_PATH);
    if (rc == 0)
        rc = add_env(run, &count, "HOME", workdir);
    if (rc == 0)
        rc = add_env(run, &count, "TMPDIR", tmpdir);
    for (size_t i = 0; i < p->env_count && rc == 0; i++) {
        const char *name = p->env[i];
        const char *value = getenv(name);
        if (!value || strcmp(name, "PATH") == 0 || strcmp(name, "HOME") == 0 ||
            strcmp(name, "TMPDIR") == 0)
            continue;
        rc = add_env(run, &count, name, value);
    }
    return rc;
}


static void free_env(an__sbx_run_t *run)
{
    for (size_t i = 0; run->envp && run->envp[i]; i++)
        free(run->envp[i]);
    free(run->envp);
    run->envp = NULL;
}


static void add_rlimit(an__sbx_plan_t *plan, int resource, uint64_t soft, uint64_t hard)
{
    an__sbx_rlimit_t *r = &plan->rlimits[plan->rlimit_count++];
    r->resource = resource;
    r->value.rlim_cur = (rlim_t)soft;
    r->value.rlim_max = (rlim_t)hard;
}


/*
 * The command's rlimits and the report's limit table. Memory falls back to
 * RLIMIT_AS when no cgroup memory controller is usable. That bounds each
 * process's address space, not the tree, and a program that reaches it
 * gets failed allocations instead of being killed. The init counts as one
 * process, so RLIMIT_NPROC and pids.max are one above max_processes.
 */
static void plan_limits(an__sbx_run_t *run)
{
    const an_sandbox_policy_t *p = run->policy;
    an__sbx_plan_t *plan = &run->plan;
    an_sandbox_limit_use_t *limits = run->report->limits;
    const an__sbx_cgroup_mechanisms_t *m = &run->mechanisms;
    const uint64_t mib = 1024 * 1024;
    uint64_t extra = run->plan.isolate ? 1 : 0;

    limits[AN_SANDBOX_LIMIT_MEMORY].value = p->max_memory_mb;
    if (p->max_memory_mb && m->memory) {
        snprintf(limits[AN_SANDBOX_LIMIT_MEMORY].mechanism, sizeof(limits[0].mechanism), "%s",
                 m->memory);
    } else if (p->max_memory_mb) {
        add_rlimit(plan, RLIMIT_AS, p->max_memory_mb * mib, p->max_memory_mb * mib);
        snprintf(limits[AN_SANDBOX_LIMIT_MEMORY].mechanism, sizeof(limits[0].mechanism),
                 "RLIMIT_AS (per process)");
    }

    limits[AN_SANDBOX_LIMIT_CPU_TIME].value = p->max_cpu_time_seconds;
    if (p->max_cpu_time_seconds) {
        /* SIGXCPU at the limit, SIGKILL a second later if the process handles SIGXCPU. */
        add_rlimit(plan, RLIMIT_CPU, p->max_cpu_time_seconds, p->max_cpu_time_seconds + 1);
        snprintf(limits[AN_SANDBOX_LIMIT_CPU_TIME].mechanism, sizeof(limits[0].mechanism),
                 "RLIMIT_CPU (per process)%s%s%s", m->cpu ? "; " : "", m->cpu ? m->cpu : "",
                 m->cpu ? " (whole tree)" : "");
    }

    limits[AN_SANDBOX_LIMIT_WALL_TIME].value = p->max_wall_time_seconds;
    if (p->max_wall_time_seconds)
        snprintf(limits[AN_SANDBOX_LIMIT_WALL_TIME].mechanism, sizeof(limits[0].mechanism),
                 "supervisor timer (SIGTERM, then SIGKILL after 1 s)");

    /*
     * With a pids cgroup, RLIMIT_NPROC is a backstop one above pids.max:
     * the kernel checks the rlimit first, and only a fork the cgroup
     * refuses shows in its counters, which the report relies on.
     */
    limits[AN_SANDBOX_LIMIT_PROCESSES].value = p->max_processes;
    if (p->max_processes) {
        uint64_t nproc = p->max_processes + extra + (m->pids ? 1 : 0);
        add_rlimit(plan, RLIMIT_NPROC, nproc, nproc);
        snprintf(limits[AN_SANDBOX_LIMIT_PROCESSES].mechanism, sizeof(limits[0].mechanism),
                 "%s%sRLIMIT_NPROC%s", m->pids ? m->pids : "", m->pids ? ", " : "",
                 !run->plan.isolate && geteuid() == 0 ? " (root is exempt)" : "");
    }

    limits[AN_SANDBOX_LIMIT_OUTPUT].value = p->max_output_bytes;
    if (p->max_output_bytes)
        snprintf(limits[AN_SANDBOX_LIMIT_OUTPUT].mechanism, sizeof(limits[0].mechanism),
                 "supervisor pipe reader (per stream)");

    limits[AN_SANDBOX_LIMIT_FILE_SIZE].value = p->max_file_size_mb;
    if (p->max_file_size_mb) {
        add_rlimit(plan, RLIMIT_FSIZE, p->max_file_size_mb * mib, p->max_file_size_mb * mib);
        snprintf(limits[AN_SANDBOX_LIMIT_FILE_SIZE].mechanism, sizeof(limits[0].mechanism),
                 "RLIMIT_FSIZE");
    }

    limits[AN_SANDBOX_LIMIT_OPEN_FILES].value = p->max_open_files;
    if (p->max_open_files) {
        add_rlimit(plan, RLIMIT_NOFILE, p->max_open_files, p->max_open_files);
        snprintf(limits[AN_SANDBOX_LIMIT_OPEN_FILES].mechanism, sizeof(limits[0].mechanism),
                 "RLIMIT_NOFILE");
    }

    if (run->plan.isolate)
        add_rlimit(plan, RLIMIT_CORE, 0, 0);
}


/* The cgroup for limits and accounting; a missing controller only leaves a note. */
static int open_cgroup(an__sbx_run_t *run)
{
    const an_sandbox_policy_t *p = run->policy;
    char note[512] = "";
    uint64_t pids = 0;
    if (p->max_processes)
        pids = p->max_processes + (run->plan.isolate ? 1 : 0);
    int rc = an__sbx_cgroup_open(run->report->run_id, p->max_memory_mb * 1024 * 1024, pids,
                                 &run->cgroup, note, sizeof(note));
    if (rc != 0) {
        snprintf(run->err, run->err_len, "cannot create the run's cgroup: %s", note);
        return rc;
    }
    an__sbx_cgroup_mechanisms(run->cgroup, &run->mechanisms);

    const an__sbx_cgroup_mechanisms_t *m = &run->mechanisms;
    const char *fallbacks[3][2] = {
        {m->memory ? NULL : m->memory_note, "memory: RLIMIT_AS per process, peak from wait4"},
        {m->pids ? NULL : m->pids_note, "processes: RLIMIT_NPROC only"},
        {m->cpu ? NULL : m->cpu_note, "CPU time: RLIMIT_CPU per process, usage from wait4"},
    };
    for (int i = 0; i < 3; i++) {
        if (!fallbacks[i][0])
            continue;
        char text[sizeof(run->report->notes[0])];
        snprintf(text, sizeof(text), "%s, because %s", fallbacks[i][1], fallbacks[i][0]);
        an__sbx_add_note(run->report, text);
    }
    return 0;
}


/* Unrestricted runs: a fresh host directory as the workdir, with workdir_from copied in. */
static int make_host_workdir(an__sbx_run_t *run)
{
    const char *base = getenv("TMPDIR");
    if (!base || base[0] != '/')
        base = "/tmp";
    snprintf(run->host_workdir, sizeof(run->host_workdir), "%s/agentnet-run-XXXXXX", base);
    if (!mkdtemp(run->host_workdir)) {
        snprintf(run->err, run->err_len, "cannot create a workdir under %s (%s); set "
                 "TMPDIR to a writable directory", base, strerror(errno));
        run->host_workdir[0] = '\0';
        return AN_EIO;
    }
    char tmp[AN_SANDBOX_MAX_PATH_LEN + 8];
    snprintf(tmp, sizeof(tmp), "%s/tmp", run->host_workdir);
    if (mkdir(tmp, 0700) != 0) {
        snprintf(run->err, run->err_len, "cannot create %s (%s)", tmp, strerror(errno));
        return AN_EIO;
    }
    if (!run->options->workdir_from)
        return 0;
    int dir = open(run->host_workdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) {
        snprintf(run->err, run->err_len, "cannot open %s (%s)", run->host_workdir,
                 strerror(errno));
        return AN_EIO;
    }
    int rc = an__sbx_copy_tree(run->options->workdir_from, dir, (uint32_t)-1, (uint32_t)-1,
                               run->err, run->err_len);
    close(dir);
    return rc;
}


/* Isolated levels: the kernel features, the seccomp filter and the root's plan. */
static int prepare_isolation(an__sbx_run_t *run)
{
    const an_sandbox_policy_t *p = run->policy;
    int rc = an__sbx_seccomp_probe(p->level, run->err, run->err_len);
    if (rc != 0)
        return AN_EINVAL;
    rc = an__sbx_filter_build(p->level, &run->filter, run->err, run->err_len);
    if (rc != 0)
        return rc;
    run->has_filter = 1;
    run->plan.filter = &run->filter;

    rc = an__sbx_host_ids(&run->host_uid, &run->host_gid, &run->privileged, run->err,
                          run->err_len);
    if (rc != 0)
        return rc;
    run->plan.setgroups_allowed = run->privileged;
    run->plan.command_stack = malloc(AN__SBX_COMMAND_STACK_BYTES);
    run->plan.command_stack_size = AN__SBX_COMMAND_STACK_BYTES;
    if (!run->plan.command_stack)
        return AN_ENOMEM;
    run->plan.loopback = p->network == AN_SANDBOX_NET_LOOPBACK;
    run->plan.mounts = calloc(AN__SBX_MAX_MOUNTS, sizeof(an__sbx_mount_t));
    if (!run->plan.mounts)
        return AN_ENOMEM;
    rc = an__sbx_plan_mounts(&run->plan, p, run->err, run->err_len);
    if (rc != 0)
        return rc;

    /* The workdir's files are memory, so its size is the memory limit. */
    if (p->max_memory_mb)
        snprintf(run->plan.workdir_options, sizeof(run->plan.workdir_options),
                 "mode=0700,size=%" PRIu64 "m,nr_inodes=%d", p->max_memory_mb,
                 AN__SBX_WORKDIR_INODES);
    else
        snprintf(run->plan.workdir_options, sizeof(run->plan.workdir_options),
                 "mode=0700,nr_inodes=%d", AN__SBX_WORKDIR_INODES);
    run->plan.copy_workdir = run->options->workdir_from != NULL;
    snprintf(run->report->workdir, sizeof(run->report->workdir), "%s", AN_SANDBOX_WORKDIR);
    return 0;
}


static int prepare(an__sbx_run_t *run)
{
    const an_sandbox_policy_t *p = run->policy;
    an_sandbox_report_t *report = run->report;
    run->plan.isolate = p->level != AN_SANDBOX_UNRESTRICTED;
    run->plan.argv = (char *const *)run->options->argv;

    int rc;
    if (run->plan.isolate) {
        rc = prepare_isolation(run);
    } else {
        an_log(AN_LOG_WARN, "sandbox: level unrestricted runs the command on the host without "
               "isolation, an explicit choice", "run_id", report->run_id, (const char *)NULL);
        run->host_uid = (uint32_t)geteuid();
        run->host_gid = (uint32_t)getegid();
        rc = make_host_workdir(run);
        snprintf(report->workdir, sizeof(report->workdir), "%s", run->host_workdir);
    }
    if (rc != 0)
        return rc;
    report->host_uid = run->host_uid;
    report->host_gid = run->host_gid;
    run->plan.workdir = report->workdir;

    rc = build_env(run, report->workdir);
    if (rc == 0)
        rc = open_cgroup(run);
    if (rc != 0)
        return rc;
    run->plan.envp = run->envp;
    plan_limits(run);
    return 0;
}


/* Creates the pipes and sockets; fills the plan with the child's ends. */
static int open_channels(an__sbx_run_t *run, int child_fds[5])
{
    int out[2] = {-1, -1}, errp[2] = {-1, -1}, control[2] = {-1, -1}, status[2] = {-1, -1};
    int in = run->options->stdin_fd;
    int opened_in = -1;
    if (in < 0)
        in = opened_in = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (in < 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(errp, O_CLOEXEC) != 0 ||
        socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, control) != 0 ||
        (run->plan.isolate && pipe2(status, O_CLOEXEC) != 0)) {
        snprintf(run->err, run->err_len, "cannot create the run's pipes (%s)",
                 strerror(errno));
        int all[] = {opened_in, out[0], out[1], errp[0], errp[1], control[0], control[1],
                     status[0], status[1]};
        for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
            close_fd(&all[i]);
        return AN_EIO;
    }
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    fcntl(errp[0], F_SETFL, O_NONBLOCK);
    run->stdout_fd = out[0];
    run->stderr_fd = errp[0];
    run->control_fd = control[0];
    run->status_fd = status[0];

    /* Closed by the caller of open_channels once the child has its copies. */
    child_fds[0] = opened_in;
    child_fds[1] = out[1];
    child_fds[2] = errp[1];
    child_fds[3] = control[1];
    child_fds[4] = status[1];
    run->plan.stdin_fd = in;
    run->plan.stdout_fd = out[1];
    run->plan.stderr_fd = errp[1];
    run->plan.control_fd = control[1];
    run->plan.status_fd = status[1];
    return 0;
}


static int send_control(an__sbx_run_t *run, int type)
{
    an__sbx_msg_t msg;
    memset(&msg, 0, sizeof(msg));
    msg.type = type;
    return send(run->control_fd, &msg, sizeof(msg), MSG_NOSIGNAL) == (ssize_t)sizeof(msg) ? 0
                                                                                          : -1;
}


/*
 * Time limit of the sandbox's own setup (ids, mounts, filter), which
 * normally takes milliseconds. The wall limit starts only after the setup,
 * so without this a setup that hangs would hold the supervisor forever.
 */
#define SETUP_TIMEOUT_MS 30000

/*
 * Waits until the control socket is readable. Returns 1, or 0 when the run
 * was cancelled or the setup timed out, with the reason in run->err.
 */
static int await_control(an__sbx_run_t *run)
{
    uint64_t deadline = run->start_ns + (uint64_t)SETUP_TIMEOUT_MS * 1000000u;
    int cancel_fd = run->options->cancel_fd;
    for (;;) {
        uint64_t now = an_mono_ns();
        if (now >= deadline) {
            snprintf(run->err, run->err_len, "the sandbox's setup did not finish within %d s; "
                     "it was stopped", SETUP_TIMEOUT_MS / 1000);
            return 0;
        }
        struct pollfd fds[2] = {{.fd = run->control_fd, .events = POLLIN},
                                {.fd = cancel_fd, .events = POLLIN}};
        int timeout_ms = (int)((deadline - now + 999999) / 1000000);
        int ready = poll(fds, cancel_fd >= 0 ? 2 : 1, timeout_ms);
        if (ready < 0 && errno != EINTR)
            return 1; /* recvmsg reports the error */
        if (ready > 0 && cancel_fd >= 0 && (fds[1].revents & POLLIN)) {
            snprintf(run->err, run->err_len, "the run was cancelled during the sandbox's setup");
            return 0;
        }
        if (ready > 0 && fds[0].revents)
            return 1;
    }
}


/*
 * Receives one control message and the descriptor passed with it (*fd, or
 * -1). Returns 1, 0 at the end of the stream, -1 on a read error (errno),
 * or -2 when the run was cancelled or the setup timed out, with the reason
 * in run->err.
 */
static int receive_control(an__sbx_run_t *run, an__sbx_msg_t *msg, int *fd)
{
    *fd = -1;
    if (!await_control(run))
        return -2;
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    struct iovec iov = {.iov_base = msg, .iov_len = sizeof(*msg)};
    struct msghdr hdr = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                         .msg_controllen = sizeof(control.buf)};
    ssize_t got;
    do {
        got = recvmsg(run->control_fd, &hdr, MSG_CMSG_CLOEXEC);
    } while (got < 0 && errno == EINTR);
    if (got <= 0)
        return got == 0 ? 0 : -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&hdr); c; c = CMSG_NXTHDR(&hdr, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
            memcpy(fd, CMSG_DATA(c), sizeof(int));
    }
    return got == (ssize_t)sizeof(*msg) ? 1 : -1;
}


/* Turns a setup error from the sandbox into the caller's message. */
static int setup_error(an__sbx_run_t *run, const an__sbx_msg_t *msg)
{
    if (msg->step == AN__SBX_STEP_EXEC) {
        run->report->exec_errno = msg->error;
        snprintf(run->err, run->err_len, "cannot execute \"%s\" (%s); %s", msg->detail,
                 strerror(msg->error),
                 msg->error == ENOENT ? "the command must exist inside the sandbox, in "
                                        AN_SANDBOX_PATH " or at an absolute path"
                                      : "check that it is an executable file");
        return msg->error == ENOENT ? AN_ENOTFOUND : AN_EIO;
    }
    snprintf(run->err, run->err_len, "%s failed%s%s%s (%s)",
             an__sbx_step_name(msg->step), msg->detail[0] ? " at \"" : "", msg->detail,
             msg->detail[0] ? "\"" : "", strerror(msg->error));
    return AN_EIO;
}


/* Checks the copied entry file against the SHA-256 the caller verified on the host. */
static int verify_copy(an__sbx_run_t *run, int workdir_fd)
{
    const an_sandbox_run_options_t *o = run->options;
    if (!o->verify_file || !o->verify_sha256)
        return 0;
    char path[AN_SANDBOX_MAX_PATH_LEN + 64];
    if (workdir_fd >= 0)
        snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", workdir_fd, o->verify_file);
    else
        snprintf(path, sizeof(path), "%s/%s", run->host_workdir, o->verify_file);
    char hex[65] = "";
    char hash_err[512];
    if (an_sandbox_sha256_file(path, hex, hash_err, sizeof(hash_err)) != 0) {
        snprintf(run->err, run->err_len, "the copy of the entry file \"%s\" in the workdir "
                 "cannot be hashed (%s), so the run is refused", o->verify_file, hash_err);
        return AN_EIO;
    }
    if (strcmp(hex, o->verify_sha256) != 0) {
        snprintf(run->err, run->err_len, "the copy of the entry file \"%s\" in the workdir "
                 "does not match the manifest's SHA-256; it changed after the check, so the run "
                 "is refused", o->verify_file);
        return AN_EINVAL;
    }
    return 0;
}


/* Copies workdir_from into the workdir whose descriptor the sandbox sent. */
static int copy_into_sandbox(an__sbx_run_t *run)
{
    an__sbx_msg_t msg;
    int fd;
    int got = receive_control(run, &msg, &fd);
    if (got == -2)
        return AN_ETIMEDOUT;
    if (got <= 0 || msg.type != AN__SBX_MSG_WORKDIR || fd < 0) {
        if (fd >= 0)
            close(fd);
        if (got > 0 && msg.type == AN__SBX_MSG_ERROR)
            return setup_error(run, &msg);
        snprintf(run->err, run->err_len, "the sandbox ended before its workdir was "
                 "ready");
        return AN_EIO;
    }
    uint32_t owner = run->privileged ? run->host_uid : (uint32_t)-1;
    uint32_t group = run->privileged ? run->host_gid : (uint32_t)-1;
    int rc = an__sbx_copy_tree(run->options->workdir_from, fd, owner, group, run->err,
                               run->err_len);
    if (rc == 0)
        rc = verify_copy(run, fd);
    close(fd);
    if (rc == 0 && send_control(run, AN__SBX_MSG_COPIED) != 0) {
        snprintf(run->err, run->err_len, "the sandbox ended during the workdir copy");
        rc = AN_EIO;
    }
    return rc;
}


/*
 * Reads the sandbox's messages until the command executes: READY (with the
 * seccomp listener) and then the end of the stream, which the execve
 * closes. An ERROR message, or an end without READY, fails the run.
 */
static int await_exec(an__sbx_run_t *run)
{
    int ready = 0;
    for (;;) {
        an__sbx_msg_t msg;
        int fd;
        int got = receive_control(run, &msg, &fd);
        if (got == -2)
            return AN_ETIMEDOUT;
        if (got < 0) {
            snprintf(run->err, run->err_len, "reading the sandbox's setup messages "
                     "failed (%s)", strerror(errno));
            return AN_EIO;
        }
        if (got == 0)
            break;
        if (msg.type == AN__SBX_MSG_ERROR) {
            if (fd >= 0)
                close(fd);
            return setup_error(run, &msg);
        }
        if (msg.type == AN__SBX_MSG_READY) {
            ready = 1;
            if (fd >= 0) {
                close_fd(&run->listener_fd);
                run->listener_fd = fd;
            }
        } else if (fd >= 0) {
            close(fd);
        }
    }
    if (!ready) {
        snprintf(run->err, run->err_len, "the sandbox ended during its setup without "
                 "saying why");
        return AN_EIO;
    }
    return 0;
}


static pid_t clone_sandbox(an__sbx_run_t *run)
{
    clone_args_v0_t args;
    memset(&args, 0, sizeof(args));
    args.flags = CLONE_PIDFD | (run->plan.isolate ? NAMESPACE_FLAGS : 0);
    args.pidfd = (uint64_t)(uintptr_t)&run->pidfd;
    args.exit_signal = SIGCHLD;
    pid_t pid = (pid_t)syscall(SYS_clone3, &args, sizeof(args));
    if (pid == 0)
        an__sbx_child_main(&run->plan);
    return pid;
}


/* Kills a child whose setup failed and reaps it. */
static void abandon_child(an__sbx_run_t *run)
{
    if (run->child <= 0)
        return;
    syscall(SYS_pidfd_send_signal, run->pidfd, SIGKILL, NULL, 0);
    int status;
    while (waitpid(run->child, &status, 0) < 0 && errno == EINTR) {
    }
    run->child = -1;
}


static int start(an__sbx_run_t *run)
{
    int child_fds[5];
    int rc = open_channels(run, child_fds);
    if (rc != 0)
        return rc;

    int self_fds = run->cgroup ? an__sbx_cgroup_self_attach_fds(run->cgroup,
                                                                run->plan.cgroup_fds)
                               : 0;
    if (self_fds < 0) {
        for (int i = 0; i < 5; i++)
            close_fd(&child_fds[i]);
        snprintf(run->err, run->err_len, "cannot prepare the run's cgroup: %s",
                 an__sbx_cgroup_error(run->cgroup));
        return AN_EIO;
    }
    run->plan.cgroup_fd_count = (size_t)self_fds;

    run->start_ns = an_mono_ns();
    run->child = clone_sandbox(run);
    int clone_errno = errno;
    for (int i = 0; i < 5; i++)
        close_fd(&child_fds[i]);
    for (size_t i = 0; i < run->plan.cgroup_fd_count; i++)
        close(run->plan.cgroup_fds[i]);
    run->plan.cgroup_fd_count = 0;
    if (run->child < 0) {
        if (run->plan.isolate && (clone_errno == EPERM || clone_errno == ENOSPC ||
                                  clone_errno == EINVAL || clone_errno == EUSERS)) {
            an__sbx_explain_clone_error(clone_errno, run->err, run->err_len);
            return AN_EINVAL;
        }
        snprintf(run->err, run->err_len, "clone3 failed (%s)%s", strerror(clone_errno),
                 clone_errno == ENOSYS ? "; the sandbox needs Linux 5.3 or newer" : "");
        return AN_EIO;
    }

    if (run->plan.isolate)
        rc = an__sbx_write_id_maps(run->child, run->host_uid, run->host_gid, run->privileged,
                                   run->err, run->err_len);
    if (rc == 0 && an__sbx_cgroup_attach(run->cgroup, run->child) != 0) {
        snprintf(run->err, run->err_len, "cannot move the sandbox into its cgroup: %s",
                 an__sbx_cgroup_error(run->cgroup));
        rc = AN_EIO;
    }
    if (rc == 0 && send_control(run, AN__SBX_MSG_GO) != 0) {
        snprintf(run->err, run->err_len, "the sandbox ended before its setup");
        rc = AN_EIO;
    }
    if (rc == 0 && run->plan.copy_workdir)
        rc = copy_into_sandbox(run);
    if (rc == 0) {
        if (run->policy->max_wall_time_seconds)
            run->wall_deadline_ns = run->start_ns + run->policy->max_wall_time_seconds *
                                                        1000000000ull;
        rc = await_exec(run);
    }
    if (rc != 0)
        abandon_child(run);
    return rc;
}


/* The reaped child's status as the command's: the init reports the command's own. */
static void set_outcome(an__sbx_run_t *run)
{
    an_sandbox_report_t *report = run->report;
    int status = run->child_status;
    if (run->plan.isolate && run->have_exit_msg && run->exit_msg.command_status >= 0)
        status = run->exit_msg.command_status;
    if (WIFEXITED(status)) {
        report->exited = 1;
        report->exit_code = WEXITSTATUS(status);
        report->signal = 0;
    } else {
        report->exited = 0;
        report->signal = WIFSIGNALED(status) ? WTERMSIG(status) : SIGKILL;
    }
}


/* CPU time and peak memory: the cgroup's counters when it has them, else wait4's. */
static void set_usage(an__sbx_run_t *run, const an__sbx_cgroup_stats_t *stats)
{
    an_sandbox_report_t *report = run->report;
    int64_t cpu_us, rss_kb;
    if (run->plan.isolate && run->have_exit_msg) {
        cpu_us = run->exit_msg.cpu_us;
        rss_kb = run->exit_msg.maxrss_kb;
    } else {
        const struct rusage *u = &run->child_usage;
        cpu_us = (int64_t)u->ru_utime.tv_sec * 1000000 + u->ru_utime.tv_usec +
                 (int64_t)u->ru_stime.tv_sec * 1000000 + u->ru_stime.tv_usec;
        rss_kb = u->ru_maxrss;
    }
    if (stats->has_cpu) {
        report->cpu_ms = stats->cpu_usec / 1000;
        snprintf(report->cpu_source, sizeof(report->cpu_source), "%s", run->mechanisms.cpu);
    } else {
        report->cpu_ms = cpu_us > 0 ? (uint64_t)cpu_us / 1000 : 0;
        snprintf(report->cpu_source, sizeof(report->cpu_source), "wait4 rusage");
    }
    if (stats->has_memory && stats->peak_memory_bytes) {
        /* The group's peak charge: its processes, their tmpfs files and page cache. */
        int v1 = run->mechanisms.memory && strstr(run->mechanisms.memory, "v1");
        report->peak_rss_kb = stats->peak_memory_bytes / 1024;
        snprintf(report->memory_source, sizeof(report->memory_source), "%s",
                 v1 ? "cgroup v1 memory.max_usage_in_bytes" : "cgroup v2 memory.peak");
    } else {
        /*
         * NOTE: ru_maxrss also counts a process's pages before its execve,
         * and the sandbox's processes start as copies of the supervisor, so
         * without a cgroup this peak is at least the supervisor's resident size.
         */
        report->peak_rss_kb = rss_kb > 0 ? (uint64_t)rss_kb : 0;
        snprintf(report->memory_source, sizeof(report->memory_source), "wait4 ru_maxrss");
    }
}


/* Names what killed the command when the supervisor did not stop it itself. */
static void classify_end(an__sbx_run_t *run, const an__sbx_cgroup_stats_t *stats)
{
    an_sandbox_report_t *report = run->report;
    const an_sandbox_policy_t *p = run->policy;
    char detail[160];

    if (stats->has_memory && stats->oom_kills > 0) {
        snprintf(detail, sizeof(detail), "%" PRIu64 " process(es) ended by the out-of-memory "
                 "killer at max_memory_mb %" PRIu64, stats->oom_kills, p->max_memory_mb);
        an__sbx_add_violation(report, "memory", detail);
    }
    if (stats->has_pids && stats->pids_max_hits > 0 && run->pids_hits_seen == 0) {
        snprintf(detail, sizeof(detail), "%" PRIu64 " fork(s) refused at max_processes %" PRIu64,
                 stats->pids_max_hits, p->max_processes);
        an__sbx_add_violation(report, "processes", detail);
    }
    /*
     * A killed_reason set by the supervisor stays even when the command
     * exited on its own after the stop request (a SIGTERM handler, or an
     * exit racing the SIGKILL): the limit still ended the run.
     */
    if (report->exited)
        return;
    if (report->signal == SIGSYS && p->level == AN_SANDBOX_MINIMAL)
        an__sbx_add_violation(report, "syscall", "killed by SIGSYS: a system call outside the "
                              "minimal level's allow list");
    if (report->killed_reason)
        return;
    if (report->signal == SIGXCPU)
        report->killed_reason = "cpu";
    else if (report->signal == SIGKILL && stats->has_memory && stats->oom_kills > 0)
        report->killed_reason = "memory";
    else if (report->signal == SIGKILL && p->max_cpu_time_seconds &&
             report->cpu_ms >= p->max_cpu_time_seconds * 1000)
        report->killed_reason = "cpu";
}


static void finish(an__sbx_run_t *run)
{
    an__sbx_cgroup_stats_t stats;
    memset(&stats, 0, sizeof(stats));
    if (run->cgroup)
        an__sbx_cgroup_stats(run->cgroup, &stats);
    set_outcome(run);
    set_usage(run, &stats);
    classify_end(run, &stats);
}


static void cleanup(an__sbx_run_t *run)
{
    if (!run->child_done)
        abandon_child(run);
    close_fd(&run->listener_fd);
    close_fd(&run->control_fd);
    close_fd(&run->status_fd);
    close_fd(&run->stdout_fd);
    close_fd(&run->stderr_fd);
    close_fd(&run->pidfd);
    an__sbx_cgroup_close(run->cgroup);
    run->cgroup = NULL;
    if (run->has_filter)
        an__sbx_filter_free(&run->filter);
    free(run->plan.mounts);
    free(run->plan.command_stack);
    free_env(run);

    /* An isolated workdir is a tmpfs of the run's mount namespace, gone with its processes. */
    if (run->plan.isolate)
        run->report->workdir_removed = 1;
    else if (run->host_workdir[0])
        run->report->workdir_removed = an__sbx_remove_tree(run->host_workdir) == 0;
}


static void init_report(an_sandbox_report_t *report, const an_sandbox_run_options_t *o)
{
    memset(report, 0, sizeof(*report));
    make_run_id(report->run_id);
    if (!o || !o->policy)
        return;
    report->level = o->policy->level;
    report->network = o->policy->network;
    report->captured = o->capture;
    snprintf(report->plugin_name, sizeof(report->plugin_name), "%s",
             o->plugin_name ? o->plugin_name : "");
    snprintf(report->plugin_version, sizeof(report->plugin_version), "%s",
             o->plugin_version ? o->plugin_version : "");
}


int an_sandbox_run(const an_sandbox_run_options_t *options, an_sandbox_report_t *report,
                   char *err, size_t err_len)
{
    init_report(report, options);
    int rc = check_options(options, err, err_len);
    if (rc != 0)
        return rc;

    an__sbx_run_t run;
    memset(&run, 0, sizeof(run));
    run.options = options;
    run.policy = options->policy;
    run.report = report;
    run.err = err;
    run.err_len = err_len;
    run.control_fd = run.status_fd = run.stdout_fd = run.stderr_fd = -1;
    run.listener_fd = run.pidfd = -1;
    run.child = -1;

    if (options->capture && (an_buf_reserve(&report->stdout_data, 1) != 0 ||
                             an_buf_reserve(&report->stderr_data, 1) != 0))
        rc = AN_ENOMEM;
    if (rc == 0)
        rc = prepare(&run);
    if (rc == 0)
        rc = start(&run);
    if (rc == 0)
        rc = an__sbx_supervise(&run);
    if (rc == 0)
        finish(&run);
    cleanup(&run);

    const char *outcome = "ok";
    if (rc != 0)
        outcome = "error";
    else if (report->killed_reason)
        outcome = "denied";
    an__sbx_emit_events(report, options->argv[0], outcome, rc != 0 ? err : NULL);
    return rc;
}
