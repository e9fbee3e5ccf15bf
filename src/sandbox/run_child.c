/*
 * The sandbox's side of a run. The first process after the clone sets up
 * its identity, network and root and drops its privileges. It then serves
 * as init of the new pid namespace, while a forked child hardens itself
 * and executes the command. At the unrestricted level the first process
 * executes the command itself.
 *
 * Everything here runs after a clone of a possibly multi-threaded
 * supervisor, so it allocates nothing and calls only async-signal-safe
 * functions (and raw system calls). Errors go to the supervisor as
 * messages on the control socket.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/capability.h>
#include <linux/securebits.h>
#include <sched.h>

#include "sandbox/run_internal.h"

/* Signals the init forwards to every process of the sandbox. */
static const int forwarded_signals[] = {SIGTERM, SIGINT, SIGHUP};


const char *an__sbx_step_name(int step)
{
    switch (step) {
    case AN__SBX_STEP_IDS:
        return "switching to the sandbox's uid and gid";
    case AN__SBX_STEP_MOUNT:
        return "building the sandbox's root";
    case AN__SBX_STEP_PIVOT:
        return "pivot_root into the sandbox's root";
    case AN__SBX_STEP_LOOPBACK:
        return "bringing up the loopback interface";
    case AN__SBX_STEP_CAPS:
        return "dropping capabilities";
    case AN__SBX_STEP_FORK:
        return "forking the command from the sandbox's init";
    case AN__SBX_STEP_RLIMIT:
        return "setting rlimits";
    case AN__SBX_STEP_SECCOMP:
        return "installing the seccomp filter";
    case AN__SBX_STEP_EXEC:
        return "executing the command";
    case AN__SBX_STEP_CHDIR:
        return "entering the workdir";
    case AN__SBX_STEP_CONTROL:
        return "talking to the supervisor";
    case AN__SBX_STEP_CGROUP:
        return "moving into the run's cgroup";
    default:
        return "setting up the sandbox";
    }
}


/* Copies src into dst (dst_len bytes), always NUL-terminated. */
static void copy_text(char *dst, size_t dst_len, const char *src)
{
    size_t i = 0;
    for (; src && src[i] && i + 1 < dst_len; i++)
        dst[i] = src[i];
    dst[i] = '\0';
}


void an__sbx_send_error(int step, int error, const char *detail)
{
    an__sbx_msg_t msg;
    memset(&msg, 0, sizeof(msg));
    msg.type = AN__SBX_MSG_ERROR;
    msg.step = step;
    msg.error = error;
    copy_text(msg.detail, sizeof(msg.detail), detail);
    /* write, not sendmsg: the minimal level's seccomp allow list may lack sendmsg. */
    ssize_t ignored = write(AN__SBX_CONTROL_FD, &msg, sizeof(msg));
    (void)ignored;
}


/* Sends a message with an optional descriptor (SCM_RIGHTS). Returns 0 or -errno. */
static int send_message(int type, int fd)
{
    an__sbx_msg_t msg;
    memset(&msg, 0, sizeof(msg));
    msg.type = type;
    struct iovec iov = {.iov_base = &msg, .iov_len = sizeof(msg)};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof(control));
    struct msghdr hdr = {.msg_iov = &iov, .msg_iovlen = 1};
    if (fd >= 0) {
        hdr.msg_control = control.buf;
        hdr.msg_controllen = sizeof(control.buf);
        struct cmsghdr *cmsg = CMSG_FIRSTHDR(&hdr);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
    }
    while (sendmsg(AN__SBX_CONTROL_FD, &hdr, MSG_NOSIGNAL) < 0) {
        if (errno != EINTR)
            return -errno;
    }
    return 0;
}


/*
 * Waits for a message of the given type from the supervisor. Returns 0, or
 * -1 when the supervisor closed the socket or sent something else, which
 * means it gave up on the run.
 */
static int wait_for(int type)
{
    an__sbx_msg_t msg;
    for (;;) {
        ssize_t got = recv(AN__SBX_CONTROL_FD, &msg, sizeof(msg), 0);
        if (got < 0 && errno == EINTR)
            continue;
        return got == (ssize_t)sizeof(msg) && msg.type == type ? 0 : -1;
    }
}


int an__sbx_wait_copied(void)
{
    return wait_for(AN__SBX_MSG_COPIED);
}


int an__sbx_send_workdir(int fd)
{
    return send_message(AN__SBX_MSG_WORKDIR, fd);
}


/* Every disposition back to the default, so no supervisor handler runs here. */
static void reset_signals(void)
{
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &dfl, NULL);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}


static void close_from(int first)
{
    if (close_range((unsigned)first, ~0U, 0) == 0)
        return;
    struct rlimit nofile;
    int last = getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < 65536
                   ? (int)nofile.rlim_cur
                   : 65536;
    for (int fd = first; fd < last; fd++)
        close(fd);
}


/*
 * Moves the plan's descriptors to 0-4 (stdin, stdout, stderr, control,
 * status) and closes every other one the supervisor had open. Returns 0 or
 * -1; no error can be reported before the control socket is in place.
 */
static int move_fds(const an__sbx_plan_t *plan)
{
    const int sources[5] = {plan->stdin_fd, plan->stdout_fd, plan->stderr_fd, plan->control_fd,
                            plan->status_fd};
    int copies[5];
    for (int i = 0; i < 5; i++) {
        copies[i] = sources[i] < 0 ? -1 : fcntl(sources[i], F_DUPFD_CLOEXEC, 5);
        if (sources[i] >= 0 && copies[i] < 0)
            return -1;
    }
    for (int i = 0; i < 5; i++) {
        if (copies[i] < 0) {
            close(i);
            continue;
        }
        /* stdio survives execve; the control and status descriptors do not. */
        if (dup3(copies[i], i, i >= AN__SBX_CONTROL_FD ? O_CLOEXEC : 0) < 0)
            return -1;
    }
    close_from(5);
    return 0;
}


/*
 * Takes on the sandbox's uid and gid while keeping the capabilities the
 * new user namespace granted, which the setup still needs: without
 * SECBIT_NO_SETUID_FIXUP the switch could clear them. A root supervisor
 * lets the child drop the supplementary groups it inherited; others
 * cannot, because their gid map needs setgroups denied.
 */
static int become_sandbox_user(const an__sbx_plan_t *plan)
{
    if (prctl(PR_SET_SECUREBITS, SECBIT_NO_SETUID_FIXUP, 0, 0, 0) != 0)
        return -1;
    /*
     * Raw system calls: glibc's wrappers signal every thread it believes
     * the process has and wait for them, and after the clone the threads
     * of the supervisor are gone.
     */
    if (plan->setgroups_allowed && syscall(SYS_setgroups, 0, NULL) != 0)
        return -1;
    const unsigned id = AN_SANDBOX_INNER_ID;
    if (syscall(SYS_setresgid, id, id, id) != 0 || syscall(SYS_setresuid, id, id, id) != 0)
        return -1;
    return 0;
}


static int bring_up_loopback(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    copy_text(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
    int rc = ioctl(fd, SIOCGIFFLAGS, &ifr);
    if (rc == 0) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
    }
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}


/* Drops every capability: bounding set, ambient, inheritable, permitted, effective. */
static int drop_capabilities(void)
{
    for (int cap = 0; cap <= 63; cap++) {
        if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) < 0)
            break;
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0)
            return -1;
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
        return -1;
    struct __user_cap_header_struct header = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof(data));
    return (int)syscall(SYS_capset, &header, data);
}


static int apply_rlimits(const an__sbx_plan_t *plan)
{
    for (size_t i = 0; i < plan->rlimit_count; i++) {
        if (setrlimit((__rlimit_resource_t)plan->rlimits[i].resource, &plan->rlimits[i].value) !=
            0)
            return -1;
    }
    return 0;
}


/*
 * Executes argv[0], looked up in AN_SANDBOX_PATH when it has no slash, as
 * execvp does but without its shell fallback. Returns the errno to report:
 * EACCES when some candidate was not executable, else the last error.
 */
static int exec_command(const an__sbx_plan_t *plan)
{
    const char *name = plan->argv[0];
    if (strchr(name, '/')) {
        execve(name, plan->argv, plan->envp);
        return errno;
    }

    const char *dirs = AN_SANDBOX_PATH;
    int saw_eacces = 0;
    int last = ENOENT;
    while (*dirs) {
        const char *end = strchr(dirs, ':');
        size_t dir_len = end ? (size_t)(end - dirs) : strlen(dirs);
        char path[PATH_MAX];
        size_t name_len = strlen(name);
        if (dir_len + 1 + name_len < sizeof(path)) {
            memcpy(path, dirs, dir_len);
            path[dir_len] = '/';
            memcpy(path + dir_len + 1, name, name_len + 1);
            execve(path, plan->argv, plan->envp);
            last = errno;
            if (last == EACCES)
                saw_eacces = 1;
            else if (last != ENOENT && last != ENOTDIR)
                return last;
        }
        dirs += dir_len + (end ? 1 : 0);
    }
    return saw_eacces ? EACCES : last;
}


/*
 * Code that runs on the command's own stack is not instrumented by
 * AddressSanitizer. Before a call that does not return, ASan checks the
 * stack against the thread's recorded bounds, so on this separate stack it
 * would print a warning into the command's stderr.
 */
#define ON_COMMAND_STACK __attribute__((no_sanitize_address))

/*
 * The command's last steps: rlimits, the seccomp filter, and execve. The
 * filter comes last because it may deny the calls before it. With user
 * notification the listener goes to the supervisor before the execve, so
 * the supervisor already polls it when the command makes a denied call.
 */
ON_COMMAND_STACK __attribute__((noreturn)) static void run_command(const an__sbx_plan_t *plan)
{
    if (apply_rlimits(plan) != 0) {
        an__sbx_send_error(AN__SBX_STEP_RLIMIT, errno, NULL);
        _exit(127);
    }

    if (plan->filter && plan->filter->uses_notify) {
        int listener = an__sbx_filter_install(plan->filter);
        if (listener <= 0) {
            an__sbx_send_error(AN__SBX_STEP_SECCOMP, listener < 0 ? -listener : EINVAL, NULL);
            _exit(127);
        }
        int rc = send_message(AN__SBX_MSG_READY, listener);
        close(listener);
        if (rc != 0)
            _exit(127);
    } else {
        if (send_message(AN__SBX_MSG_READY, -1) != 0)
            _exit(127);
        int rc = plan->filter ? an__sbx_filter_install(plan->filter) : 0;
        if (rc < 0) {
            an__sbx_send_error(AN__SBX_STEP_SECCOMP, -rc, NULL);
            _exit(127);
        }
    }

    int error = exec_command(plan);
    an__sbx_send_error(AN__SBX_STEP_EXEC, error, plan->argv[0]);
    _exit(127);
}


/* The command's process, from its clone by the init to its execve. */
ON_COMMAND_STACK static int start_command(void *arg)
{
    const an__sbx_plan_t *plan = arg;
    close(AN__SBX_STATUS_FD);
    reset_signals();
    run_command(plan);
}


static void forward_signal(int sig)
{
    int saved = errno;
    kill(-1, sig == AN__SBX_KILL_ALL_SIGNAL ? SIGKILL : sig);
    errno = saved;
}


/* Reports how the command ended and the usage of every process the init reaped. */
static void write_exit_message(int command_status)
{
    an__sbx_exit_msg_t msg;
    memset(&msg, 0, sizeof(msg));
    msg.command_status = command_status;
    struct rusage usage;
    if (getrusage(RUSAGE_CHILDREN, &usage) == 0) {
        msg.cpu_us = (int64_t)usage.ru_utime.tv_sec * 1000000 + usage.ru_utime.tv_usec +
                     (int64_t)usage.ru_stime.tv_sec * 1000000 + usage.ru_stime.tv_usec;
        msg.maxrss_kb = usage.ru_maxrss;
    }
    ssize_t ignored = write(AN__SBX_STATUS_FD, &msg, sizeof(msg));
    (void)ignored;
}


/*
 * pid 1 of the sandbox: forks the command, forwards SIGTERM, SIGINT and
 * SIGHUP to every process (a pid namespace's init receives only signals it
 * handles), kills them all on AN__SBX_KILL_ALL_SIGNAL, and reaps every process.
 * When the command ends, whatever it left running is killed, so the run
 * ends with it. The command's wait status and the reaped processes' usage
 * go to the supervisor on the status pipe.
 */
__attribute__((noreturn)) static void run_init(const an__sbx_plan_t *plan)
{
    struct sigaction handler;
    memset(&handler, 0, sizeof(handler));
    handler.sa_handler = forward_signal;
    sigfillset(&handler.sa_mask);
    sigset_t handled;
    sigemptyset(&handled);
    for (size_t i = 0; i < sizeof(forwarded_signals) / sizeof(forwarded_signals[0]); i++)
        sigaddset(&handled, forwarded_signals[i]);
    sigaddset(&handled, AN__SBX_KILL_ALL_SIGNAL);

    /* Blocked across the fork, so the command never runs an init handler. */
    sigprocmask(SIG_BLOCK, &handled, NULL);
    for (int sig = 1; sig < NSIG; sig++) {
        if (sigismember(&handled, sig) == 1)
            sigaction(sig, &handler, NULL);
    }

    /*
     * The command shares the init's memory until its execve (as vfork
     * does, with a stack of its own), so the init's pages, a copy of the
     * supervisor's, are not copied once more. The init waits meanwhile.
     */
    char *stack_top = (char *)plan->command_stack + plan->command_stack_size;
    pid_t command = clone(start_command, stack_top, CLONE_VM | CLONE_VFORK | SIGCHLD,
                          (void *)plan);
    if (command < 0) {
        an__sbx_send_error(AN__SBX_STEP_FORK, errno, NULL);
        write_exit_message(-1);
        _exit(1);
    }

    /* From here only the command has the stdio pipes and the control socket open. */
    close(0);
    close(1);
    close(2);
    close(AN__SBX_CONTROL_FD);
    sigprocmask(SIG_UNBLOCK, &handled, NULL);

    int command_status = -1;
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, __WALL);
        if (pid < 0) {
            if (errno == EINTR)
                continue;
            break; /* ECHILD: every process has been reaped */
        }
        if (pid == command) {
            command_status = status;
            kill(-1, SIGKILL);
        }
    }
    write_exit_message(command_status);
    _exit(0);
}


/* The namespaced setup: identity, cgroup namespace, network, root, privileges. */
static void isolate(const an__sbx_plan_t *plan)
{
    if (become_sandbox_user(plan) != 0) {
        an__sbx_send_error(AN__SBX_STEP_IDS, errno, NULL);
        _exit(1);
    }
    /* After the switch, which clears the parent-death signal along with the old ids. */
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);

    /* The supervisor attached this process to the run's cgroup, which becomes its root. */
    if (unshare(CLONE_NEWCGROUP) != 0) {
        an__sbx_send_error(AN__SBX_STEP_MOUNT, errno, "cgroup namespace");
        _exit(1);
    }
    if (sethostname("sandbox", 7) != 0) {
        an__sbx_send_error(AN__SBX_STEP_MOUNT, errno, "hostname");
        _exit(1);
    }
    if (plan->loopback && bring_up_loopback() != 0) {
        an__sbx_send_error(AN__SBX_STEP_LOOPBACK, errno, "lo");
        _exit(1);
    }
    if (an__sbx_build_root(plan) != 0)
        _exit(1);
    if (drop_capabilities() != 0) {
        an__sbx_send_error(AN__SBX_STEP_CAPS, errno, NULL);
        _exit(1);
    }
    /* Not ptrace-able by the command, which runs as the same uid. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}


void an__sbx_child_main(const an__sbx_plan_t *plan)
{
    reset_signals();
    /* Before move_fds, which closes every descriptor above the fixed ones. */
    int cgroup_error = an__sbx_cgroup_attach_self(plan->cgroup_fds, plan->cgroup_fd_count);
    if (move_fds(plan) != 0)
        _exit(1);
    if (cgroup_error != 0) {
        an__sbx_send_error(AN__SBX_STEP_CGROUP, cgroup_error, "tasks");
        _exit(1);
    }
    if (wait_for(AN__SBX_MSG_GO) != 0)
        _exit(1);

    if (plan->isolate) {
        isolate(plan);
    } else {
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        if (plan->copy_workdir && wait_for(AN__SBX_MSG_COPIED) != 0)
            _exit(1);
    }

    if (chdir(plan->workdir) != 0) {
        an__sbx_send_error(AN__SBX_STEP_CHDIR, errno, plan->workdir);
        _exit(1);
    }
    /* A new session has no controlling terminal, so TIOCSTI has nothing to type into. */
    setsid();
    if (plan->filter && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        an__sbx_send_error(AN__SBX_STEP_SECCOMP, errno, "no_new_privs");
        _exit(1);
    }

    if (!plan->isolate) {
        close(AN__SBX_STATUS_FD);
        run_command(plan);
    }
    run_init(plan);
}
