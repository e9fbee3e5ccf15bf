/*
 * Seccomp filters of the sandbox levels: the build, the kernel probe, and
 * the behaviour of each filter in a forked child that sets no_new_privs,
 * installs the filter and then tries calls or execs a program. The test
 * process plays the supervisor: it receives the listener over a socketpair
 * and responds to notifications through an__sbx_seccomp_answer.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/keyctl.h>
#include <linux/sched.h>

#include <cmocka.h>

#include "agentnet/common.h"
#include "agentnet/sandbox.h"
#include "sandbox/seccomp_filter.h"

#define MAX_VALUES 16
#define MAX_DETAILS 16
#define DETAIL_LEN 128
#define OUTPUT_LEN 4096
/* A child that runs longer than this is killed and the test fails. */
#define CHILD_TIMEOUT_MS 20000

#define PYTHON "/usr/bin/python3"

/* What a child did under a filter, as seen by the supervising test. */
typedef struct {
    int exited;      /* 1 when it exited, 0 when a signal killed it */
    int exit_code;   /* exit status when exited */
    int signal;      /* terminating signal when killed */
    long values[MAX_VALUES]; /* numbers the child reported, in order */
    size_t value_count;
    char details[MAX_DETAILS][DETAIL_LEN]; /* denied calls, from an__sbx_seccomp_answer */
    size_t detail_count;
    char output[OUTPUT_LEN]; /* the child's stdout */
    size_t output_len;
} outcome_t;

/* The code a child runs after the filter is installed; report_fd takes numbers. */
typedef void (*child_fn)(int report_fd, void *arg);

static char workdir[256];


static int setup(void **state)
{
    snprintf(workdir, sizeof(workdir), "/tmp/an-seccomp-test-XXXXXX");
    if (!mkdtemp(workdir))
        return -1;
    return 0;
}


static int teardown(void **state)
{
    char command[512];
    snprintf(command, sizeof(command), "rm -rf '%s'", workdir);
    return system(command) == 0 ? 0 : -1;
}


static void report(int fd, long value)
{
    ssize_t written = write(fd, &value, sizeof(value));
    (void)written;
}


/* A failed syscall() result as -errno, a successful one as its value. */
static long result_of(long rc)
{
    return rc < 0 ? -errno : rc;
}


static void send_fd(int socket_fd, int fd)
{
    char byte = 'L';
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        struct cmsghdr header;
        char space[CMSG_SPACE(sizeof(int))];
    } control;
    memset(&control, 0, sizeof(control));
    struct msghdr msg = {
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = control.space,
        .msg_controllen = sizeof(control.space),
    };
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
    if (sendmsg(socket_fd, &msg, 0) != 1)
        _exit(121);
}


static int receive_fd(int socket_fd)
{
    char byte;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        struct cmsghdr header;
        char space[CMSG_SPACE(sizeof(int))];
    } control;
    struct msghdr msg = {
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = control.space,
        .msg_controllen = sizeof(control.space),
    };
    if (recvmsg(socket_fd, &msg, MSG_CMSG_CLOEXEC) != 1)
        return -1;
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    if (!cmsg || cmsg->cmsg_type != SCM_RIGHTS)
        return -1;
    int fd;
    memcpy(&fd, CMSG_DATA(cmsg), sizeof(int));
    return fd;
}


/* In the child: everything between fork and the child's own code. */
static void child_main(const an__sbx_filter_t *filter, int report_fd, int output_fd,
                       child_fn fn, void *arg)
{
    if (dup2(output_fd, STDOUT_FILENO) < 0 || chdir(workdir) < 0)
        _exit(122);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        _exit(123);

    int listener = an__sbx_filter_install(filter);
    if (listener < 0)
        _exit(124);
    if (filter->uses_notify) {
        send_fd(report_fd, listener);
        close(listener);
    }
    fn(report_fd, arg);
    _exit(0);
}


static void read_reports(int fd, outcome_t *out)
{
    long value;
    while (read(fd, &value, sizeof(value)) == (ssize_t)sizeof(value)) {
        if (out->value_count < MAX_VALUES)
            out->values[out->value_count++] = value;
    }
}


static void read_output(int fd, outcome_t *out)
{
    ssize_t got;
    while (out->output_len < OUTPUT_LEN - 1 &&
           (got = read(fd, out->output + out->output_len, OUTPUT_LEN - 1 - out->output_len)) > 0)
        out->output_len += (size_t)got;
    out->output[out->output_len] = '\0';
}


static void answer_pending(int listener, outcome_t *out)
{
    char detail[DETAIL_LEN];
    int rc;
    while ((rc = an__sbx_seccomp_answer(listener, detail, sizeof(detail))) == 1) {
        if (out->detail_count < MAX_DETAILS)
            snprintf(out->details[out->detail_count++], DETAIL_LEN, "%s", detail);
    }
    if (rc < 0)
        fail_msg("an__sbx_seccomp_answer failed: %s", detail);
}


static long elapsed_ms(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - start->tv_sec) * 1000 + (now.tv_nsec - start->tv_nsec) / 1000000;
}


/* Responds to the child's notifications until it exits, then collects its results. */
static void supervise(pid_t pid, int listener, int report_fd, int output_fd, outcome_t *out)
{
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    int status = 0;
    for (;;) {
        struct pollfd fds[2] = {{.fd = listener, .events = POLLIN},
                                {.fd = output_fd, .events = POLLIN}};
        poll(fds, 2, 20);
        if (listener >= 0)
            answer_pending(listener, out);
        read_output(output_fd, out);

        pid_t done = waitpid(pid, &status, WNOHANG);
        if (done == pid)
            break;
        if (elapsed_ms(&start) > CHILD_TIMEOUT_MS) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fail_msg("the child did not finish within %d ms", CHILD_TIMEOUT_MS);
        }
    }
    read_output(output_fd, out);
    read_reports(report_fd, out);

    out->exited = WIFEXITED(status);
    out->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    out->signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}


/* Runs fn in a child under level's filter and fills *out with what happened. */
static void run_under(an_sandbox_level_t level, child_fn fn, void *arg, outcome_t *out)
{
    memset(out, 0, sizeof(*out));
    an__sbx_filter_t filter;
    char err[256] = "";
    int rc = an__sbx_filter_build(level, &filter, err, sizeof(err));
    if (rc != 0)
        fail_msg("filter build failed: %s", err);

    int sockets[2], output[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sockets), 0);
    assert_int_equal(pipe2(output, O_CLOEXEC), 0);

    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(sockets[0]);
        close(output[0]);
        child_main(&filter, sockets[1], output[1], fn, arg);
    }
    close(sockets[1]);
    close(output[1]);
    an__sbx_filter_free(&filter);

    int listener = -1;
    if (level != AN_SANDBOX_MINIMAL) {
        listener = receive_fd(sockets[0]);
        if (listener < 0) {
            int status;
            waitpid(pid, &status, 0);
            fail_msg("no listener from the child (wait status 0x%x)", status);
        }
    }
    fcntl(sockets[0], F_SETFL, O_NONBLOCK);
    fcntl(output[0], F_SETFL, O_NONBLOCK);

    supervise(pid, listener, sockets[0], output[0], out);
    if (listener >= 0)
        close(listener);
    close(sockets[0]);
    close(output[0]);
}


static int has_detail(const outcome_t *out, const char *detail)
{
    for (size_t i = 0; i < out->detail_count; i++) {
        if (strcmp(out->details[i], detail) == 0)
            return 1;
    }
    return 0;
}


static void assert_exited_cleanly(const outcome_t *out)
{
    if (!out->exited)
        fail_msg("the child was killed by signal %d", out->signal);
    assert_int_equal(out->exit_code, 0);
}


static void assert_detail(const outcome_t *out, const char *detail)
{
    if (!has_detail(out, detail)) {
        print_message("denied calls recorded: %zu\n", out->detail_count);
        for (size_t i = 0; i < out->detail_count; i++)
            print_message("  %s\n", out->details[i]);
        fail_msg("no denied call recorded as \"%s\"", detail);
    }
}


/* ---- build, probe and names ---- */


static void filter_builds_for_each_level(void **state)
{
    static const struct {
        an_sandbox_level_t level;
        int uses_notify;
    } cases[] = {
        {AN_SANDBOX_SANDBOXED, 1},
        {AN_SANDBOX_RESTRICTED, 1},
        {AN_SANDBOX_MINIMAL, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        an__sbx_filter_t filter;
        char err[256] = "";
        int rc = an__sbx_filter_build(cases[i].level, &filter, err, sizeof(err));
        if (rc != 0)
            fail_msg("level %s: %s", an_sandbox_level_name(cases[i].level), err);
        assert_non_null(filter.insns);
        assert_true(filter.count > 10);
        /* The binary tree keeps each program a few hundred instructions at most. */
        assert_true(filter.count < 400);
        assert_int_equal(filter.uses_notify, cases[i].uses_notify);
        print_message("level %s: %u BPF instructions\n", an_sandbox_level_name(cases[i].level),
                      (unsigned)filter.count);
        an__sbx_filter_free(&filter);
        assert_null(filter.insns);
        assert_int_equal(filter.count, 0);
    }
}


static void filter_build_rejects_unrestricted(void **state)
{
    an__sbx_filter_t filter;
    char err[256] = "";
    assert_int_equal(an__sbx_filter_build(AN_SANDBOX_UNRESTRICTED, &filter, err, sizeof(err)),
                     AN_EINVAL);
    assert_non_null(strstr(err, "has no filter"));
    assert_null(filter.insns);
}


static void restricted_filter_is_longer_than_sandboxed(void **state)
{
    an__sbx_filter_t sandboxed, restricted;
    char err[256] = "";
    assert_int_equal(an__sbx_filter_build(AN_SANDBOX_SANDBOXED, &sandboxed, err, sizeof(err)),
                     0);
    assert_int_equal(an__sbx_filter_build(AN_SANDBOX_RESTRICTED, &restricted, err, sizeof(err)),
                     0);
    assert_true(restricted.count > sandboxed.count);
    an__sbx_filter_free(&sandboxed);
    an__sbx_filter_free(&restricted);
}


static void filter_build_time_is_small(void **state)
{
    enum { ROUNDS = 200 };
    static const an_sandbox_level_t levels[] = {AN_SANDBOX_SANDBOXED, AN_SANDBOX_RESTRICTED,
                                                AN_SANDBOX_MINIMAL};
    for (size_t l = 0; l < sizeof(levels) / sizeof(levels[0]); l++) {
        struct timespec start, end;
        clock_gettime(CLOCK_MONOTONIC, &start);
        for (int i = 0; i < ROUNDS; i++) {
            an__sbx_filter_t filter;
            char err[256];
            assert_int_equal(an__sbx_filter_build(levels[l], &filter, err, sizeof(err)), 0);
            an__sbx_filter_free(&filter);
        }
        clock_gettime(CLOCK_MONOTONIC, &end);
        double total_us = (double)(end.tv_sec - start.tv_sec) * 1e6 +
                          (double)(end.tv_nsec - start.tv_nsec) / 1e3;
        double per_build_us = total_us / ROUNDS;
        print_message("level %s: %.1f us per filter build (mean of %d)\n",
                      an_sandbox_level_name(levels[l]), per_build_us, ROUNDS);
        /* The target is well under 1 ms; the bound leaves room for sanitizer builds. */
        assert_true(per_build_us < 10000.0);
    }
}


static void probe_accepts_each_level(void **state)
{
    for (int level = AN_SANDBOX_UNRESTRICTED; level < AN_SANDBOX_LEVEL_COUNT; level++) {
        char err[256] = "";
        int rc = an__sbx_seccomp_probe((an_sandbox_level_t)level, err, sizeof(err));
        if (rc != 0)
            fail_msg("level %s: %s", an_sandbox_level_name((an_sandbox_level_t)level), err);
    }
}


static void syscall_names_resolve(void **state)
{
    assert_string_equal(an__sbx_syscall_name(SYS_keyctl), "keyctl");
    assert_string_equal(an__sbx_syscall_name(SYS_getpid), "getpid");
    assert_string_equal(an__sbx_syscall_name(SYS_unshare), "unshare");
    assert_string_equal(an__sbx_syscall_name(467), "open_tree_attr");
    assert_ptr_equal(an__sbx_syscall_name(SYS_keyctl), an__sbx_syscall_name(SYS_keyctl));
    assert_null(an__sbx_syscall_name(-1));
    assert_null(an__sbx_syscall_name(1000));
    assert_null(an__sbx_syscall_name(100000));
}


static void answer_without_pending_call_returns_zero(void **state)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    char detail[DETAIL_LEN] = "x";
    assert_int_equal(an__sbx_seccomp_answer(fds[0], detail, sizeof(detail)), 0);
    assert_string_equal(detail, "");
    close(fds[0]);
    close(fds[1]);
}


static void answer_on_closed_fd_fails(void **state)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    close(fds[0]);
    close(fds[1]);
    char detail[DETAIL_LEN] = "";
    assert_true(an__sbx_seccomp_answer(fds[0], detail, sizeof(detail)) < 0);
    assert_non_null(strstr(detail, "poll on the listener failed"));
}


/* ---- child bodies ---- */


static void try_unshare(int report_fd, void *arg)
{
    report(report_fd, result_of(unshare(CLONE_NEWNS)));
    report(report_fd, result_of(unshare(CLONE_NEWUSER)));
}


static void try_terminal_ioctls(int report_fd, void *arg)
{
    int fds[2];
    if (pipe(fds) < 0)
        _exit(125);
    char c = 'x';
    int queued = 0;
    report(report_fd, result_of(ioctl(fds[0], TIOCSTI, &c)));
    /* The kernel reads only the low 32 bits of the request. */
    report(report_fd, result_of(syscall(SYS_ioctl, fds[0], (unsigned long)TIOCSTI | (1UL << 32),
                                        &c)));
    report(report_fd, result_of(ioctl(fds[0], TIOCLINUX, &c)));
    report(report_fd, result_of(ioctl(fds[0], FIONREAD, &queued)));
}


static void try_keyctl(int report_fd, void *arg)
{
    report(report_fd, result_of(syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID,
                                        KEY_SPEC_SESSION_KEYRING, 0)));
    report(report_fd, result_of(syscall(SYS_add_key, "user", "an-test", "x", 1,
                                        KEY_SPEC_PROCESS_KEYRING)));
}


static void try_clone_calls(int report_fd, void *arg)
{
    report(report_fd, result_of(syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0)));
    report(report_fd,
           result_of(syscall(SYS_clone, CLONE_NEWNET | CLONE_NEWPID | SIGCHLD, 0, 0, 0, 0)));

    struct clone_args args;
    memset(&args, 0, sizeof(args));
    args.exit_signal = SIGCHLD;
    report(report_fd, result_of(syscall(SYS_clone3, &args, sizeof(args))));

    /* A plain fork still works: glibc calls clone without namespace flags. */
    pid_t pid = fork();
    if (pid == 0)
        _exit(7);
    int status = 0;
    if (pid > 0)
        waitpid(pid, &status, 0);
    report(report_fd, pid > 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}


static void try_ptrace_and_mount(int report_fd, void *arg)
{
    report(report_fd, result_of(syscall(SYS_ptrace, 0 /* PTRACE_TRACEME */, 0, 0, 0)));
    report(report_fd, result_of(syscall(SYS_mount, "none", "/mnt", "tmpfs", 0, 0)));
    report(report_fd, result_of(syscall(SYS_bpf, 0, 0, 0)));
    report(report_fd, result_of(syscall(SYS_userfaultfd, 0)));
    report(report_fd, result_of(syscall(SYS_io_uring_setup, 1, 0)));
}


#ifdef __x86_64__
/* getpid through the x32 ABI: the syscall number with bit 30 set. */
static void try_x32_getpid(int report_fd, void *arg)
{
    report(report_fd, result_of(syscall(0x40000000L | SYS_getpid)));
}


/* getpid through the i386 ABI (int 0x80, i386 number 20), as a 64-bit process can. */
static long i386_getpid(void)
{
    long rc;
    __asm__ volatile("int $0x80" : "=a"(rc) : "a"(20L) : "memory", "r8", "r9", "r10", "r11");
    return rc;
}


static void try_i386_getpid(int report_fd, void *arg)
{
    report(report_fd, i386_getpid());
}
#endif


static void try_restricted_calls(int report_fd, void *arg)
{
    report(report_fd, result_of(chroot("/")));
    report(report_fd, result_of(setuid(getuid())));
    report(report_fd, result_of(syscall(SYS_personality, READ_IMPLIES_EXEC)));
    report(report_fd, result_of(syscall(SYS_personality, 0xffffffffUL)));
    report(report_fd, result_of(syscall(SYS_personality, PER_LINUX)));
    report(report_fd, result_of(unshare(CLONE_NEWNS)));
}


/*
 * Execs argv with the environment the sandbox gives. HOME matters at
 * minimal: without it CPython looks the user up, and glibc's lookup first
 * opens a socket to nscd, which the minimal filter punishes with SIGSYS.
 */
static void exec_program(int report_fd, void *arg)
{
    char *const *argv = arg;
    char home[300];
    snprintf(home, sizeof(home), "HOME=%s", workdir);
    char *envp[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "LC_ALL=C", home, NULL};
    execve(argv[0], argv, envp);
    report(report_fd, -errno);
    _exit(127);
}


static void try_getpid_and_write(int report_fd, void *arg)
{
    report(report_fd, syscall(SYS_getpid));
    ssize_t written = write(STDOUT_FILENO, "ok", 2);
    report(report_fd, written);
}


static void try_socket(int report_fd, void *arg)
{
    report(report_fd, 1);
    syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
    report(report_fd, 2);
}


static void try_fork(int report_fd, void *arg)
{
    report(report_fd, 1);
    syscall(SYS_fork);
    report(report_fd, 2);
}


static void try_minimal_ioctls(int report_fd, void *arg)
{
    int fds[2];
    if (pipe(fds) < 0)
        _exit(125);
    int queued = -1;
    report(report_fd, result_of(ioctl(fds[0], FIONREAD, &queued)));
    report(report_fd, isatty(fds[0]));
    char c = 'x';
    syscall(SYS_ioctl, fds[0], (unsigned long)TIOCSTI | (1UL << 32), &c);
    report(report_fd, 2);
}


static void try_minimal_clone3(int report_fd, void *arg)
{
    struct clone_args args;
    memset(&args, 0, sizeof(args));
    args.exit_signal = SIGCHLD;
    report(report_fd, result_of(syscall(SYS_clone3, &args, sizeof(args))));
}


/* ---- sandboxed and restricted: denied with EPERM and recorded ---- */


static void sandboxed_unshare_denied_and_recorded(void **state)
{
    outcome_t out;
    run_under(AN_SANDBOX_SANDBOXED, try_unshare, NULL, &out);
    assert_exited_cleanly(&out);
    assert_int_equal(out.value_count, 2);
    assert_int_equal(out.values[0], -EPERM);
    assert_int_equal(out.values[1], -EPERM);
    assert_int_equal(out.detail_count, 2);
    assert_detail(&out, "unshare");
}


static void sandboxed_terminal_ioctls_denied(void **state)
{
    outcome_t out;
    run_under(AN_SANDBOX_SANDBOXED, try_terminal_ioctls, NULL, &out);
    assert_exited_cleanly(&out);
    assert_int_equal(out.value_count, 4);
    assert_int_equal(out.values[0], -EPERM);
    assert_int_equal(out.values[1], -EPERM);
    assert_int_equal(out.values[2], -EPERM);
    assert_int_equal(out.values[3], 0); /* FIONREAD passes the filter */
    assert_int_equal(out.detail_count, 3);
    assert_string_equal(out.details[0], "ioctl TIOCSTI");
    assert_string_equal(out.details[1], "ioctl TIOCSTI");
    assert_string_equal(out.details[2], "ioctl TIOCLINUX");
}


static void sandboxed_keyctl_denied(void **state)
{
    outcome_t out;
    run_under(AN_SANDBOX_SANDBOXED, try_keyctl, NULL, &out);
    assert_exited_cleanly(&out);
    assert_int_equal(out.value_count, 2);
    assert_int_equal(out.values[0], -EPERM);
    assert_int_equal(out.values[1], -EPERM);
    assert_detail(&out, "keyctl");
    assert_detail(&out, "add_key");
}


static void sandboxed_clone_namespaces_denied(void **state)
{
    outcome_t out;
    run_under(AN_SANDBOX_SANDBOXED, try_clone_calls, NULL, &out);
    assert_exited_cleanly(&out);
    assert_int_equal(out.value_count, 4);
    assert_int_equal(out.values[0], -EPERM);
    assert_int_equal(out.values[1], -EPERM);
    assert_int_equal(out.values[2], -ENOSYS); /* clone3, so glibc falls back to clone */
    assert_int_equal(out.values[3], 7);       /* the forked child's exit code */
    assert_int_equal(out.detail_count, 2);
    assert_string_equal(out.details[0], "clone CLONE_NEWUSER");
    assert_string_equal(out.details[1], "clone CLONE_NEWPID|CLONE_NEWNET");
}


static void sandboxed_ptrace_mount_bpf_denied(void **state)
{
    outcome_t out;
    run_under(AN_SANDBOX_SANDBOXED, try_ptrace_and_mount, NULL, &out);
    assert_exited_cleanly(&out);
    assert_int_equal(out.value_count, 5);
    for (size_t i = 0; i < out.value_count; i++)
        assert_int_equal(out.values[i], -EPERM);
    assert_detail(&out, "ptrace");
    assert_detail(&out, "mount");
    assert_detail(&out, "bpf");
    assert_detail(&out, "userfaultfd");
    assert_detail(&out, "io_uring_setup");
}


#ifdef __x86_64__
/* Without a filter: ENOSYS on a kernel without x32, the pid on one with it. */
static long unfiltered_x32_getpid(void)
{
    return result_of(syscall(0x40000000L | SYS_getpid));
}


static void sandboxed_x32_denied_by_filter(void **state)
{
    long unfiltered = unfiltered_x32_getpid();
    assert_true(unfiltered == -ENOSYS || unfiltered == getpid());

    outcome_t out;
    run_under(AN_SANDBOX_SANDBOXED, try_x32_getpid, NULL, &out);
    assert_exited_cleanly(&out);
    assert_int_equal(out.value_count, 1);
    /* EPERM, not ENOSYS: the filter denied the call, not the kernel. */
    assert_int_equal(out.values[0], -EPERM);
    assert_int_equal(out.detail_count, 1);
    assert_string_equal(out.details[0], "x32 getpid");
}


static void sandboxed_i386_denied_by_filter(void **state)
{
    if (i386_getpid() != getpid())
        fail_msg("the kernel does not run i386 calls from 64-bit processes "
                 "(CONFIG_IA32_EMULATION or ia32_emulation=0)");

    outcome_t out;
    run_under(AN_SANDBOX_SANDBOXED, try_i386_getpid, NULL, &out);
    assert_exited_cleanly(&out);
    assert_int_equal(out.value_count, 1);
    assert_int_equal(out.values[0], -EPERM);
    assert_int_equal(out.detail_count, 1);
    assert_string_equal(out.details[0], "i386 getpid");
}


static void minimal_x32_kills_with_sigsys(void **state)
{
    outcome_t out;
    run_under(AN_SANDBOX_MINIMAL, try_x32_getpid, NULL, &out);
    assert_false(out.exited);
    assert_int_equal(out.signal, SIGSYS);
    assert_int_equal(out.value_count, 0);
}
#endif


static void sandboxed_runs_bin_true(void **state)
{
    char *argv[] = {"/bin/true", NULL};
    outcome_t out;
    run_under(AN_SANDBOX_SANDBOXED, exec_program, argv, &out);
    assert_exited_cleanly(&out);
    assert_int_equal(out.value_count, 0);
    assert_int_equal(out.detail_count, 0);
}


static void sandboxed_runs_python(void **state)
{
    char *argv[] = {PYTHON, "-c", "import os; print(sum(range(10)), os.getpid() > 0)", NULL};
    outcome_t out;
    run_under(AN_SANDBOX_SANDBOXED, exec_program, argv, &out);
    assert_exited_cleanly(&out);
    assert_string_equal(out.output, "45 True\n");
    assert_int_equal(out.detail_count, 0);
}


static void restricted_denies_its_extra_calls(void **state)
{
    outcome_t out;
    run_under(AN_SANDBOX_RESTRICTED, try_restricted_calls, NULL, &out);
    assert_exited_cleanly(&out);
    assert_int_equal(out.value_count, 6);
    assert_int_equal(out.values[0], -EPERM); /* chroot */
    assert_int_equal(out.values[1], -EPERM); /* setuid */
    assert_int_equal(out.values[2], -EPERM); /* personality(READ_IMPLIES_EXEC) */
    assert_true(out.values[3] >= 0);         /* the personality query passes */
    assert_true(out.values[4] >= 0);         /* personality(PER_LINUX) passes */
    assert_int_equal(out.values[5], -EPERM); /* unshare, from the sandboxed list */
    assert_int_equal(out.detail_count, 4);
    assert_string_equal(out.details[0], "chroot");
    assert_string_equal(out.details[1], "setuid");
    assert_string_equal(out.details[2], "personality 0x400000");
    assert_string_equal(out.details[3], "unshare");
}


static void sandboxed_allows_restricted_calls(void **state)
{
    outcome_t out;
    run_under(AN_SANDBOX_SANDBOXED, try_restricted_calls, NULL, &out);
    assert_exited_cleanly(&out);
    assert_int_equal(out.value_count, 6);
    assert_int_not_equal(out.values[1], -EPERM); /* setuid to the own uid succeeds */
    assert_true(out.values[2] >= 0);             /* personality passes the filter */
    assert_int_equal(out.detail_count, 1);
    assert_string_equal(out.details[0], "unshare");
}


/* ---- minimal: an allow list, anything else kills with SIGSYS ---- */


static void minimal_allows_getpid_and_write(void **state)
{
    outcome_t out;
    run_under(AN_SANDBOX_MINIMAL, try_getpid_and_write, NULL, &out);
    assert_exited_cleanly(&out);
    assert_int_equal(out.value_count, 2);
    assert_true(out.values[0] > 0);
    assert_int_equal(out.values[1], 2);
    assert_string_equal(out.output, "ok");
}


static void minimal_socket_kills_with_sigsys(void **state)
{
    outcome_t out;
    run_under(AN_SANDBOX_MINIMAL, try_socket, NULL, &out);
    assert_false(out.exited);
    assert_int_equal(out.signal, SIGSYS);
    assert_int_equal(out.value_count, 1); /* the call after socket() never ran */
}


static void minimal_fork_kills_with_sigsys(void **state)
{
    outcome_t out;
    run_under(AN_SANDBOX_MINIMAL, try_fork, NULL, &out);
    assert_false(out.exited);
    assert_int_equal(out.signal, SIGSYS);
    assert_int_equal(out.value_count, 1);
}


static void minimal_tiocsti_kills_other_ioctls_pass(void **state)
{
    outcome_t out;
    run_under(AN_SANDBOX_MINIMAL, try_minimal_ioctls, NULL, &out);
    assert_false(out.exited);
    assert_int_equal(out.signal, SIGSYS);
    assert_int_equal(out.value_count, 2);
    assert_int_equal(out.values[0], 0); /* FIONREAD */
    assert_int_equal(out.values[1], 0); /* isatty() through TCGETS: not a terminal */
}


static void minimal_clone3_returns_enosys(void **state)
{
    outcome_t out;
    run_under(AN_SANDBOX_MINIMAL, try_minimal_clone3, NULL, &out);
    assert_exited_cleanly(&out);
    assert_int_equal(out.value_count, 1);
    assert_int_equal(out.values[0], -ENOSYS);
}


static void minimal_runs_python(void **state)
{
    char *argv[] = {PYTHON, "-c", "print(sum(range(10)))", NULL};
    outcome_t out;
    run_under(AN_SANDBOX_MINIMAL, exec_program, argv, &out);
    assert_exited_cleanly(&out);
    assert_string_equal(out.output, "45\n");
}


static void minimal_runs_python_threads_and_file_io(void **state)
{
    char *argv[] = {PYTHON, "-c",
                    "import threading\n"
                    "out = []\n"
                    "t = threading.Thread(target=lambda: out.append(sum(range(10))))\n"
                    "t.start(); t.join()\n"
                    "open('py.out', 'w').write(str(out[0]))\n"
                    "print(open('py.out').read())\n",
                    NULL};
    outcome_t out;
    run_under(AN_SANDBOX_MINIMAL, exec_program, argv, &out);
    assert_exited_cleanly(&out);
    assert_string_equal(out.output, "45\n");
}


static void minimal_python_subprocess_killed(void **state)
{
    char *argv[] = {PYTHON, "-c", "import os; os.system('true'); print('after')", NULL};
    outcome_t out;
    run_under(AN_SANDBOX_MINIMAL, exec_program, argv, &out);
    assert_false(out.exited);
    assert_int_equal(out.signal, SIGSYS);
    assert_string_equal(out.output, "");
}


static void read_workdir_file(const char *name, char *text, size_t text_len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", workdir, name);
    FILE *file = fopen(path, "r");
    if (!file)
        fail_msg("the program did not create %s", path);
    size_t got = fread(text, 1, text_len - 1, file);
    text[got] = '\0';
    fclose(file);
}


static void minimal_runs_shell_writing_file(void **state)
{
    char *argv[] = {"/bin/sh", "-c", "echo printed; echo written > sh.out", NULL};
    outcome_t out;
    run_under(AN_SANDBOX_MINIMAL, exec_program, argv, &out);
    assert_exited_cleanly(&out);
    assert_string_equal(out.output, "printed\n");

    char text[64];
    read_workdir_file("sh.out", text, sizeof(text));
    assert_string_equal(text, "written\n");
}


static void minimal_runs_dd_writing_file(void **state)
{
    char *argv[] = {"/bin/dd", "if=/dev/zero", "of=dd.out", "bs=512", "count=2",
                    "status=none", NULL};
    outcome_t out;
    run_under(AN_SANDBOX_MINIMAL, exec_program, argv, &out);
    assert_exited_cleanly(&out);

    char path[512];
    snprintf(path, sizeof(path), "%s/dd.out", workdir);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 1024);
}


int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(filter_builds_for_each_level),
        cmocka_unit_test(filter_build_rejects_unrestricted),
        cmocka_unit_test(restricted_filter_is_longer_than_sandboxed),
        cmocka_unit_test(filter_build_time_is_small),
        cmocka_unit_test(probe_accepts_each_level),
        cmocka_unit_test(syscall_names_resolve),
        cmocka_unit_test(answer_without_pending_call_returns_zero),
        cmocka_unit_test(answer_on_closed_fd_fails),
        cmocka_unit_test(sandboxed_unshare_denied_and_recorded),
        cmocka_unit_test(sandboxed_terminal_ioctls_denied),
        cmocka_unit_test(sandboxed_keyctl_denied),
        cmocka_unit_test(sandboxed_clone_namespaces_denied),
        cmocka_unit_test(sandboxed_ptrace_mount_bpf_denied),
#ifdef __x86_64__
        cmocka_unit_test(sandboxed_x32_denied_by_filter),
        cmocka_unit_test(sandboxed_i386_denied_by_filter),
        cmocka_unit_test(minimal_x32_kills_with_sigsys),
#endif
        cmocka_unit_test(sandboxed_runs_bin_true),
        cmocka_unit_test(sandboxed_runs_python),
        cmocka_unit_test(restricted_denies_its_extra_calls),
        cmocka_unit_test(sandboxed_allows_restricted_calls),
        cmocka_unit_test(minimal_allows_getpid_and_write),
        cmocka_unit_test(minimal_socket_kills_with_sigsys),
        cmocka_unit_test(minimal_fork_kills_with_sigsys),
        cmocka_unit_test(minimal_tiocsti_kills_other_ioctls_pass),
        cmocka_unit_test(minimal_clone3_returns_enosys),
        cmocka_unit_test(minimal_runs_python),
        cmocka_unit_test(minimal_runs_python_threads_and_file_io),
        cmocka_unit_test(minimal_python_subprocess_killed),
        cmocka_unit_test(minimal_runs_shell_writing_file),
        cmocka_unit_test(minimal_runs_dd_writing_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
