/*
 * Syscall attempts that the sandbox's seccomp filter denies: ptrace,
 * mount, unshare, TIOCSTI, keyctl and calls through the x32 and i386 ABIs,
 * plus a signal to a host process and a look at the probe's own identity.
 * Every attempt is harmless when it succeeds: it targets the probe's own
 * children, keyrings, namespaces or a directory in its workdir.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/keyctl.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "probe.h"

#define SIBLING_LIFETIME_SECONDS 3
#define MAX_IDS_SECONDS 30

/* getpid in the x32 ABI: the native number with bit 30 set. */
#define X32_SYSCALL_BIT 0x40000000L
#define X32_NR_GETPID (X32_SYSCALL_BIT | 39L)
/* getpid in the i386 ABI, called through int 0x80. */
#define I386_NR_GETPID 20

/* Paths that do not exist, so that a call that passes the filter fails in the kernel. */
#define MISSING_PATH "/escape-probe-missing"


/* Records one attempt under name in out; *any_ok is set when it succeeded. */
static void record(json_t *out, const char *name, int ok, int err, int *any_ok)
{
    json_object_set_new(out, name, probe_attempt(ok, err));
    *any_ok |= ok;
}


static pid_t start_sibling(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        alarm(SIBLING_LIFETIME_SECONDS);
        for (;;)
            pause();
    }
    return pid;
}


/* Attaches to a sibling with ptrace and reads its memory with process_vm_readv. */
int probe_ptrace_sibling(int argc, char **argv, json_t *out)
{
    static volatile long sibling_value = 0x5a5a;
    pid_t sibling = start_sibling();
    if (sibling < 0) {
        json_object_set_new(out, "error", json_string("fork of the sibling failed"));
        json_object_set_new(out, "fork", probe_attempt(0, errno));
        return PROBE_USAGE;
    }

    int any_ok = 0;
    long rc = ptrace(PTRACE_ATTACH, sibling, NULL, NULL);
    record(out, "ptrace_attach", rc == 0, errno, &any_ok);
    if (rc == 0) {
        waitpid(sibling, NULL, 0);
        ptrace(PTRACE_DETACH, sibling, NULL, NULL);
    }
    rc = ptrace(PTRACE_SEIZE, sibling, NULL, NULL);
    record(out, "ptrace_seize", rc == 0, errno, &any_ok);

    long copy = 0;
    struct iovec local = {.iov_base = &copy, .iov_len = sizeof(copy)};
    struct iovec remote = {.iov_base = (void *)&sibling_value, .iov_len = sizeof(copy)};
    ssize_t n = process_vm_readv(sibling, &local, 1, &remote, 1, 0);
    record(out, "process_vm_readv", n == (ssize_t)sizeof(copy), errno, &any_ok);

    kill(sibling, SIGKILL);
    waitpid(sibling, NULL, 0);
    json_object_set_new(out, "ok", json_boolean(any_ok));
    return any_ok ? PROBE_ESCAPED : PROBE_CONTAINED;
}


/*
 * Mounts a tmpfs on a new directory in the workdir (unmounted at once when
 * that works), and calls umount2 and pivot_root on paths where they can
 * change nothing: a directory that is no mount point, a missing path.
 */
int probe_mount(int argc, char **argv, json_t *out)
{
    if (probe_require_filter(out) != 0)
        return PROBE_USAGE;
    int any_ok = 0;
    const char *target = "escape-probe-mnt";
    mkdir(target, 0755);

    int rc = mount("none", target, "tmpfs", 0, "size=1m");
    record(out, "mount", rc == 0, errno, &any_ok);
    if (rc == 0)
        umount2(target, MNT_DETACH);
    rc = umount2(target, 0);
    record(out, "umount2", rc == 0, errno, &any_ok);
    rc = (int)syscall(SYS_pivot_root, MISSING_PATH, MISSING_PATH);
    record(out, "pivot_root", rc == 0, errno, &any_ok);

    json_object_set_new(out, "ok", json_boolean(any_ok));
    return any_ok ? PROBE_ESCAPED : PROBE_CONTAINED;
}


/*
 * Creates a user namespace through clone instead of unshare; the child exits
 * at once. Returns 1 when the namespace was created.
 */
static int clone_new_user(int *err)
{
    long pid = syscall(SYS_clone, (long)(CLONE_NEWUSER | SIGCHLD), 0L, 0L, 0L, 0L);
    if (pid == 0)
        syscall(SYS_exit, 0);
    *err = errno;
    if (pid < 0)
        return 0;
    waitpid((pid_t)pid, NULL, 0);
    return 1;
}


/*
 * Enters new user and mount namespaces with unshare, re-enters its own
 * network namespace with setns, and creates a user namespace through
 * clone(CLONE_NEWUSER), which reaches the same kernel code without unshare.
 */
int probe_unshare(int argc, char **argv, json_t *out)
{
    /* clone goes first: a successful unshare would change what it meets. */
    int any_ok = 0;
    int err = 0;
    int cloned = clone_new_user(&err);
    record(out, "clone_newuser", cloned, err, &any_ok);

    int rc = unshare(CLONE_NEWUSER);
    record(out, "unshare_user", rc == 0, errno, &any_ok);
    rc = unshare(CLONE_NEWNS);
    record(out, "unshare_mount", rc == 0, errno, &any_ok);

    int fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        rc = setns(fd, CLONE_NEWNET);
        record(out, "setns", rc == 0, errno, &any_ok);
        close(fd);
    } else {
        json_object_set_new(out, "setns", probe_attempt(0, errno));
    }

    json_object_set_new(out, "ok", json_boolean(any_ok));
    return any_ok ? PROBE_ESCAPED : PROBE_CONTAINED;
}


/*
 * Pushes a character into the input of /dev/null and of fds 0-2 with
 * TIOCSTI, and calls TIOCLINUX on /dev/null. The kernel returns ENOTTY for
 * /dev/null, so EPERM there is the filter's. /dev/tty is only opened, to see
 * whether a controlling terminal is reachable.
 */
int probe_tiocsti(int argc, char **argv, json_t *out)
{
    if (probe_require_filter(out) != 0)
        return PROBE_USAGE;
    int any_ok = 0;
    char c = ' ';
    int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null_fd < 0) {
        json_object_set_new(out, "error", json_string("cannot open /dev/null"));
        return PROBE_USAGE;
    }
    int rc = ioctl(null_fd, TIOCSTI, &c);
    record(out, "tiocsti_dev_null", rc == 0, errno, &any_ok);
    char subcode = 0; /* an invalid TIOCLINUX subcode */
    rc = ioctl(null_fd, TIOCLINUX, &subcode);
    record(out, "tioclinux_dev_null", rc == 0, errno, &any_ok);
    close(null_fd);

    static const char *const fd_names[] = {"tiocsti_fd0", "tiocsti_fd1", "tiocsti_fd2"};
    for (int fd = 0; fd <= 2; fd++) {
        rc = ioctl(fd, TIOCSTI, &c);
        record(out, fd_names[fd], rc == 0, errno, &any_ok);
    }

    int tty = open("/dev/tty", O_RDWR | O_CLOEXEC);
    json_object_set_new(out, "open_dev_tty", probe_attempt(tty >= 0, errno));
    if (tty >= 0)
        close(tty);

    json_object_set_new(out, "ok", json_boolean(any_ok));
    return any_ok ? PROBE_ESCAPED : PROBE_CONTAINED;
}


/* Sends signal 0 and then SIGKILL to PID, a host process the suite started. */
int probe_kill(int argc, char **argv, json_t *out)
{
    if (probe_require_filter(out) != 0)
        return PROBE_USAGE;
    long pid = 0;
    if (argc != 1 || probe_parse_long(argv[0], 2, 1L << 22, &pid) != 0) {
        json_object_set_new(out, "error", json_string("expected a PID above 1"));
        return PROBE_USAGE;
    }
    json_object_set_new(out, "pid", json_integer(pid));

    int any_ok = 0;
    int rc = kill((pid_t)pid, 0);
    record(out, "signal_0", rc == 0, errno, &any_ok);
    rc = kill((pid_t)pid, SIGKILL);
    record(out, "sigkill", rc == 0, errno, &any_ok);

    json_object_set_new(out, "ok", json_boolean(any_ok));
    return any_ok ? PROBE_ESCAPED : PROBE_CONTAINED;
}


/* Reads the session keyring's id and adds and requests a key in the process keyring. */
int probe_keyctl(int argc, char **argv, json_t *out)
{
    int any_ok = 0;
    long rc = syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0);
    record(out, "keyctl", rc >= 0, errno, &any_ok);
    rc = syscall(SYS_add_key, "user", "escape-probe", "x", 1, KEY_SPEC_PROCESS_KEYRING);
    record(out, "add_key", rc >= 0, errno, &any_ok);
    rc = syscall(SYS_request_key, "user", "escape-probe", NULL, KEY_SPEC_PROCESS_KEYRING);
    record(out, "request_key", rc >= 0, errno, &any_ok);

    json_object_set_new(out, "ok", json_boolean(any_ok));
    return any_ok ? PROBE_ESCAPED : PROBE_CONTAINED;
}


/* Names the source of a failed non-native call's errno: EPERM is the filter's, ENOSYS the kernel's. */
static const char *errno_source(int err)
{
    if (err == EPERM)
        return "filter";
    if (err == ENOSYS)
        return "kernel";
    return "unknown";
}


/*
 * Calls getpid through the x32 ABI. A kernel built without x32 returns
 * ENOSYS by itself, so only EPERM shows that the filter denied the call.
 */
int probe_x32(int argc, char **argv, json_t *out)
{
    long rc = syscall(X32_NR_GETPID);
    int err = errno;
    json_object_update_new(out, probe_attempt(rc >= 0, err));
    json_object_set_new(out, "result", json_integer(rc));
    json_object_set_new(out, "errno_source", json_string(rc >= 0 ? "kernel" : errno_source(err)));
    return rc >= 0 ? PROBE_ESCAPED : PROBE_CONTAINED;
}


static sigjmp_buf i386_fault;

static void on_i386_fault(int sig)
{
    siglongjmp(i386_fault, 1);
}


/*
 * Calls getpid through the i386 ABI (int 0x80). A kernel without IA32
 * emulation faults (SIGSEGV) or returns ENOSYS; EPERM is the filter's.
 */
int probe_i386(int argc, char **argv, json_t *out)
{
    struct sigaction action = {.sa_handler = on_i386_fault};
    sigaction(SIGSEGV, &action, NULL);
    if (sigsetjmp(i386_fault, 1) != 0) {
        json_object_update_new(out, probe_attempt(0, ENOSYS));
        json_object_set_new(out, "errno_source", json_string("kernel"));
        json_object_set_new(out, "fault", json_true());
        return PROBE_CONTAINED;
    }

    long rc = I386_NR_GETPID;
    __asm__ volatile("int $0x80" : "+a"(rc) : : "r8", "r9", "r10", "r11", "memory");
    int err = rc < 0 ? (int)-rc : 0;
    json_object_update_new(out, probe_attempt(rc >= 0, err));
    json_object_set_new(out, "result", json_integer(rc));
    json_object_set_new(out, "errno_source", json_string(rc >= 0 ? "kernel" : errno_source(err)));
    return rc >= 0 ? PROBE_ESCAPED : PROBE_CONTAINED;
}


/* Copies the value of the /proc/self/status line named key, without the tabs. */
static json_t *status_field(const char *key)
{
    FILE *file = fopen("/proc/self/status", "r");
    if (!file)
        return json_null();
    char line[256];
    size_t key_length = strlen(key);
    json_t *value = json_null();
    while (fgets(line, sizeof(line), file)) {
        if (strncmp(line, key, key_length) == 0 && line[key_length] == ':') {
            char *start = line + key_length + 1;
            start += strspn(start, " \t");
            start[strcspn(start, "\n")] = '\0';
            value = json_string(start);
            break;
        }
    }
    fclose(file);
    return value;
}


/*
 * Describes the probe's identity (ids, capabilities, no_new_privs, seccomp
 * mode, session) and then sleeps SECONDS, so that the suite can look up the
 * host uid of the running process. Reports, never escapes.
 */
int probe_ids(int argc, char **argv, json_t *out)
{
    long seconds = 0;
    if (argc != 1 || probe_parse_long(argv[0], 0, MAX_IDS_SECONDS, &seconds) != 0) {
        json_object_set_new(out, "error", json_string("expected SECONDS in 0..30"));
        return PROBE_USAGE;
    }
    json_object_set_new(out, "uid", json_integer(getuid()));
    json_object_set_new(out, "euid", json_integer(geteuid()));
    json_object_set_new(out, "gid", json_integer(getgid()));
    json_object_set_new(out, "pid", json_integer(getpid()));
    json_object_set_new(out, "ppid", json_integer(getppid()));
    /* 0 when the session's leader lies outside the probe's pid namespace. */
    json_object_set_new(out, "sid", json_integer(getsid(0)));
    json_object_set_new(out, "cap_eff", status_field("CapEff"));
    json_object_set_new(out, "cap_bnd", status_field("CapBnd"));
    json_object_set_new(out, "no_new_privs", status_field("NoNewPrivs"));
    json_object_set_new(out, "seccomp", status_field("Seccomp"));
    json_object_set_new(out, "ok", json_false());
    while (seconds > 0)
        seconds = (long)sleep((unsigned)seconds);
    return PROBE_CONTAINED;
}
