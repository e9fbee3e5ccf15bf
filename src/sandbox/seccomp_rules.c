/*
 * The syscall rules of each sandbox level, as tables, and the code that
 * turns them into a libseccomp context. Exporting the context to BPF and
 * installing the program are in seccomp_filter.c.
 *
 *   level       default      listed calls               other ABIs (x32, i386)
 *   sandboxed   allow        denied: user notification  user notification
 *   restricted  allow        denied: user notification  user notification
 *   minimal     kill process allowed                    kill process
 *
 * The supervisor responds to every user notification with EPERM and records
 * the call, so a denied call returns EPERM to the program.
 *
 * clone3 returns ENOSYS at every level, and no record is made. Seccomp
 * cannot read clone3's flags because they sit in a struct in memory, and
 * ENOSYS makes glibc fall back to clone, whose flags the rules can check.
 *
 * On x86_64 the filter lists only the native ABI. libseccomp then sends
 * calls numbered at or above 0x40000000 (x32) to the bad-architecture
 * action, so the filter denies x32 calls even on a kernel built without
 * x32, which returns ENOSYS itself.
 */
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/personality.h>

#include <seccomp.h>

#include "agentnet/common.h"
#include "sandbox/seccomp_internal.h"

/* A rule on one syscall argument: it matches when (arg & mask) == value. */
typedef struct {
    const char *syscall;
    unsigned int arg;
    uint64_t mask;
    uint64_t value;
} arg_rule_t;

/*
 * The kernel reads an ioctl request as a 32-bit int, so only the low 32 bits
 * are compared: TIOCSTI | (1 << 32) is still TIOCSTI.
 */
#define IOCTL_REQUEST_MASK 0xffffffffULL

/*
 * Denied at sandboxed and every tighter deny-list level. These calls reach
 * kernel state shared with the host or with other processes, and several
 * were the entry point of published container escapes. The namespaces and
 * the dropped capabilities already stop many of them, so the filter is a
 * second wall. The list follows the table of significant syscalls that
 * Docker's default profile blocks (docs.docker.com/engine/security/seccomp),
 * io_uring included since Docker 25 (moby pull request 46762). Exceptions:
 * adjtimex, kcmp, move_pages, personality, sysfs and ustat are denied only
 * at restricted. get_mempolicy, set_mempolicy and mbind stay allowed because
 * they act on the caller's own memory and numeric libraries use them.
 *
 * NOTE: a syscall newer than libseccomp's table and missing from the table
 * of newer syscalls in seccomp_names.c passes the deny-list levels.
 */
static const char *const sandboxed_denied[] = {
    /* mounts and the new mount API */
    "mount", "umount", "umount2", "pivot_root", "mount_setattr", "move_mount", "open_tree",
    "open_tree_attr", "fsopen", "fsconfig", "fsmount", "fspick",
    /* namespaces: clone with namespace flags is denied by an argument rule */
    "unshare", "setns",
    /* access to other processes' memory */
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "process_madvise",
    /* kernel programs, tracing and page-fault handling */
    "bpf", "perf_event_open", "userfaultfd",
    /* kernel keyrings, which are not namespaced */
    "keyctl", "add_key", "request_key",
    /* kernel modules, kexec and reboot */
    "init_module", "finit_module", "delete_module", "create_module", "kexec_load",
    "kexec_file_load", "reboot",
    /* file handles bypass the mount tree (the "shocker" container escape) */
    "open_by_handle_at", "name_to_handle_at",
    /* host-wide state: swap, kernel log, accounting, quotas, clocks */
    "swapon", "swapoff", "syslog", "acct", "quotactl", "quotactl_fd", "settimeofday",
    "clock_settime", "clock_adjtime", "stime",
    /* host-wide event streams and profiling */
    "fanotify_init", "lookup_dcookie",
    /* io_uring runs calls in kernel threads that seccomp never inspects */
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    /* raw port I/O, and obsolete calls with a history of bugs */
    "iopl", "ioperm", "uselib", "nfsservctl", "vm86", "vm86old", "_sysctl", "get_kernel_syms",
    "query_module",
};

/*
 * Terminal ioctls, and clone flags that create a namespace, one rule per
 * flag. NOTE: clone's flags are argument 0 on x86_64 and aarch64, but not
 * on s390, where the stack comes first.
 */
static const arg_rule_t sandboxed_denied_args[] = {
    {"ioctl", 1, IOCTL_REQUEST_MASK, TIOCSTI},   /* pushes input into the terminal */
    {"ioctl", 1, IOCTL_REQUEST_MASK, TIOCLINUX}, /* console control, selection paste */
    {"clone", 0, CLONE_NEWNS, CLONE_NEWNS},
    {"clone", 0, CLONE_NEWCGROUP, CLONE_NEWCGROUP},
    {"clone", 0, CLONE_NEWUTS, CLONE_NEWUTS},
    {"clone", 0, CLONE_NEWIPC, CLONE_NEWIPC},
    {"clone", 0, CLONE_NEWUSER, CLONE_NEWUSER},
    {"clone", 0, CLONE_NEWPID, CLONE_NEWPID},
    {"clone", 0, CLONE_NEWNET, CLONE_NEWNET},
};

/*
 * Denied at restricted, besides the sandboxed list. A program that only
 * computes and does file I/O in its workdir needs none of these:
 *
 *   chroot                        a second way to change the root
 *   setuid ... setgroups          identity changes; nothing in the sandbox
 *                                 has another identity to switch to
 *   sethostname, setdomainname    UTS names
 *   modify_ldt                    x86 segment descriptors, rarely used
 *   kcmp                          compares kernel objects of two processes
 *   adjtimex                      reads and tunes the host clock
 *   vhangup                       hangs up the terminal
 *   migrate_pages, move_pages     move memory of any process between NUMA nodes
 *   ustat, sysfs                  obsolete file system queries
 *   personality flags             see restricted_denied_args
 */
static const char *const restricted_denied[] = {
    "chroot", "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid",
    "setfsuid", "setfsgid", "setgroups", "sethostname", "setdomainname", "modify_ldt",
    "kcmp", "adjtimex", "vhangup", "migrate_pages", "move_pages", "ustat", "sysfs",
};

/*
 * personality() with a flag that the kernel clears on a setuid exec because
 * it weakens memory protections. The mask includes bit 31 so the query
 * personality(0xffffffff), which sets every bit, does not match.
 */
#define PERSONALITY_RULE(flag) {"personality", 0, (flag) | 0x80000000ULL, (flag)}

static const arg_rule_t restricted_denied_args[] = {
    PERSONALITY_RULE(ADDR_NO_RANDOMIZE),
    PERSONALITY_RULE(MMAP_PAGE_ZERO),
    PERSONALITY_RULE(ADDR_COMPAT_LAYOUT),
    PERSONALITY_RULE(READ_IMPLIES_EXEC),
};

/*
 * Allowed at minimal: what a dynamically linked C program, CPython or a
 * threaded runtime needs to start, compute, read files, and write files in
 * its workdir. Opening files is allowed; the read-only mounts, not the
 * filter, stop writes outside the workdir. execve is allowed because the
 * filter is installed before the sandbox's first exec. There is no fork,
 * no socket, no signal to another process and no ptrace.
 */
static const char *const minimal_allowed[] = {
    /* program start and exit */
    "execve", "exit", "exit_group", "arch_prctl", "set_tid_address", "set_robust_list",
    "rseq", "prlimit64", "getrlimit", "uname", "sysinfo", "getrandom", "restart_syscall",
    /* memory */
    "brk", "mmap", "munmap", "mremap", "mprotect", "madvise",
    /* identity and process queries */
    "getpid", "getppid", "gettid", "getuid", "geteuid", "getgid", "getegid", "getgroups",
    "getresuid", "getresgid", "getpgrp", "getsid", "getrusage", "times",
    /* signal handling; tgkill serves raise() and abort() */
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait",
    "sigaltstack", "tgkill",
    /* threads and time; clone is allowed for threads by an argument rule */
    "futex", "sched_yield", "sched_getaffinity", "nanosleep", "clock_nanosleep",
    "clock_gettime", "clock_getres", "gettimeofday", "time", "getcpu",
    /* file descriptors */
    "read", "write", "readv", "writev", "pread64", "pwrite64", "lseek", "close", "dup", "dup2",
    "dup3", "fcntl", "pipe", "pipe2", "poll", "ppoll", "select", "pselect6", "epoll_create",
    "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "eventfd2", "fadvise64",
    "fsync", "fdatasync", "ftruncate", "flock",
    /* paths */
    "open", "openat", "stat", "fstat", "lstat", "newfstatat", "statx", "statfs", "fstatfs",
    "access", "faccessat", "faccessat2", "readlink", "readlinkat", "getdents64", "getcwd",
    "chdir", "fchdir", "mkdir", "mkdirat", "rmdir", "unlink", "unlinkat", "rename",
    "renameat", "renameat2", "chmod", "fchmod", "fchmodat", "utimensat", "umask",
};

/*
 * clone is allowed only for a thread (CLONE_THREAD set) that creates no
 * namespace, so runtimes that start threads work and fork is denied.
 */
#define CLONE_NAMESPACE_FLAGS                                                                  \
    (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |            \
     CLONE_NEWPID | CLONE_NEWNET)

static const arg_rule_t minimal_allowed_args[] = {
    {"clone", 0, CLONE_THREAD | CLONE_NAMESPACE_FLAGS, CLONE_THREAD},
    {"ioctl", 1, IOCTL_REQUEST_MASK, TCGETS},     /* isatty() */
    {"ioctl", 1, IOCTL_REQUEST_MASK, TIOCGWINSZ}, /* terminal size */
    {"ioctl", 1, IOCTL_REQUEST_MASK, TIOCGPGRP},
    {"ioctl", 1, IOCTL_REQUEST_MASK, FIONREAD},
    {"ioctl", 1, IOCTL_REQUEST_MASK, FIONBIO},
    {"ioctl", 1, IOCTL_REQUEST_MASK, FIOCLEX}, /* CPython sets close-on-exec this way */
    {"ioctl", 1, IOCTL_REQUEST_MASK, FIONCLEX},
};

/* clone3 returns ENOSYS at every level, for the reason given at the top of this file. */
static const char *const clone3_names[] = {"clone3"};

#define COUNT_OF(array) (sizeof(array) / sizeof((array)[0]))


/*
 * Resolves name to this architecture's number. Returns 1 when the syscall
 * exists here, and 0 when it exists only on other architectures, so there
 * is nothing to filter. Returns AN_EINVAL for a name missing from every
 * table (a typo, or a syscall newer than libseccomp), so that no rule is
 * dropped silently.
 */
static int resolve(const char *name, int *nr, char *err, size_t err_len)
{
    *nr = an__sbx_syscall_number(name);
    if (*nr == __NR_SCMP_ERROR) {
        snprintf(err, err_len,
                 "seccomp: libseccomp %u.%u does not know syscall \"%s\"; update libseccomp or "
                 "add the syscall to the table of newer syscalls",
                 seccomp_version()->major, seccomp_version()->minor, name);
        return AN_EINVAL;
    }
    return *nr >= 0;
}


static int add_rule_failed(const char *name, int rc, char *err, size_t err_len)
{
    snprintf(err, err_len, "seccomp: libseccomp rejected the rule for \"%s\" (%s)", name,
             strerror(-rc));
    return rc == -ENOMEM ? AN_ENOMEM : AN_EINVAL;
}


static int add_names(scmp_filter_ctx ctx, uint32_t action, const char *const *names,
                     size_t count, char *err, size_t err_len)
{
    for (size_t i = 0; i < count; i++) {
        int nr;
        int found = resolve(names[i], &nr, err, err_len);
        if (found < 0)
            return found;
        if (found == 0)
            continue;

        int rc = seccomp_rule_add_exact(ctx, action, nr, 0);
        if (rc < 0)
            return add_rule_failed(names[i], rc, err, err_len);
    }
    return 0;
}


static int add_arg_rules(scmp_filter_ctx ctx, uint32_t action, const arg_rule_t *rules,
                         size_t count, char *err, size_t err_len)
{
    for (size_t i = 0; i < count; i++) {
        int nr;
        int found = resolve(rules[i].syscall, &nr, err, err_len);
        if (found < 0)
            return found;
        if (found == 0)
            continue;

        struct scmp_arg_cmp cmp = {
            .arg = rules[i].arg,
            .op = SCMP_CMP_MASKED_EQ,
            .datum_a = rules[i].mask,
            .datum_b = rules[i].value,
        };
        int rc = seccomp_rule_add_exact_array(ctx, action, nr, 1, &cmp);
        if (rc < 0)
            return add_rule_failed(rules[i].syscall, rc, err, err_len);
    }
    return 0;
}


static int add_deny_rules(scmp_filter_ctx ctx, an_sandbox_level_t level, char *err,
                          size_t err_len)
{
    int rc = add_names(ctx, SCMP_ACT_NOTIFY, sandboxed_denied, COUNT_OF(sandboxed_denied), err,
                       err_len);
    if (rc == 0)
        rc = add_arg_rules(ctx, SCMP_ACT_NOTIFY, sandboxed_denied_args,
                           COUNT_OF(sandboxed_denied_args), err, err_len);
    if (rc == 0 && level == AN_SANDBOX_RESTRICTED)
        rc = add_names(ctx, SCMP_ACT_NOTIFY, restricted_denied, COUNT_OF(restricted_denied),
                       err, err_len);
    if (rc == 0 && level == AN_SANDBOX_RESTRICTED)
        rc = add_arg_rules(ctx, SCMP_ACT_NOTIFY, restricted_denied_args,
                           COUNT_OF(restricted_denied_args), err, err_len);
    return rc;
}


static int add_allow_rules(scmp_filter_ctx ctx, char *err, size_t err_len)
{
    int rc = add_names(ctx, SCMP_ACT_ALLOW, minimal_allowed, COUNT_OF(minimal_allowed), err,
                       err_len);
    if (rc == 0)
        rc = add_arg_rules(ctx, SCMP_ACT_ALLOW, minimal_allowed_args,
                           COUNT_OF(minimal_allowed_args), err, err_len);
    return rc;
}


static int set_attribute(scmp_filter_ctx ctx, enum scmp_filter_attr attr, uint32_t value,
                         const char *attr_name, char *err, size_t err_len)
{
    int rc = seccomp_attr_set(ctx, attr, value);
    if (rc < 0) {
        snprintf(err, err_len, "seccomp: libseccomp rejected %s=%u (%s)", attr_name, value,
                 strerror(-rc));
        return AN_EINVAL;
    }
    return 0;
}


int an__sbx_rules_context(an_sandbox_level_t level, scmp_filter_ctx *out, char *err,
                          size_t err_len)
{
    *out = NULL;
    if (level != AN_SANDBOX_SANDBOXED && level != AN_SANDBOX_RESTRICTED &&
        level != AN_SANDBOX_MINIMAL) {
        snprintf(err, err_len, "seccomp: level %d has no filter; pass sandboxed, restricted or "
                 "minimal", (int)level);
        return AN_EINVAL;
    }

    int deny_list = level != AN_SANDBOX_MINIMAL;
    uint32_t default_action = deny_list ? SCMP_ACT_ALLOW : SCMP_ACT_KILL_PROCESS;
    uint32_t badarch_action = deny_list ? SCMP_ACT_NOTIFY : SCMP_ACT_KILL_PROCESS;
    scmp_filter_ctx ctx = seccomp_init(default_action);
    if (!ctx) {
        snprintf(err, err_len, "seccomp: seccomp_init failed (out of memory)");
        return AN_ENOMEM;
    }

    /* A binary search over syscall numbers: fewer instructions run per call. */
    int rc = set_attribute(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2, "SCMP_FLTATR_CTL_OPTIMIZE", err,
                           err_len);
    if (rc == 0)
        rc = set_attribute(ctx, SCMP_FLTATR_ACT_BADARCH, badarch_action,
                           "SCMP_FLTATR_ACT_BADARCH", err, err_len);
    if (rc == 0)
        rc = add_names(ctx, SCMP_ACT_ERRNO(ENOSYS), clone3_names, COUNT_OF(clone3_names), err,
                       err_len);
    if (rc == 0)
        rc = deny_list ? add_deny_rules(ctx, level, err, err_len)
                       : add_allow_rules(ctx, err, err_len);
    if (rc < 0) {
        seccomp_release(ctx);
        return rc;
    }
    *out = ctx;
    return 0;
}
