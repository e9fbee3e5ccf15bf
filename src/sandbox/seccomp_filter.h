/*
 * Seccomp filters for the sandbox levels, built with libseccomp.
 *
 * The filter is built and exported to classic BPF in the supervisor before
 * the fork, because building allocates. The child only hands the finished
 * program to the kernel, which is safe after fork in a threaded process.
 *
 *   sandboxed, restricted  deny list; a denied call is sent to the
 *                          supervisor through user notification, which
 *                          replies EPERM and records it
 *   minimal                allow list; any other call kills the process
 *                          with SIGSYS
 *
 * Every level denies calls made through a non-native ABI (x32, i386) in the
 * filter itself, so a test can tell the filter's answer from a kernel that
 * lacks the ABI.
 */
#ifndef AGENTNET_SANDBOX_SECCOMP_FILTER_H
#define AGENTNET_SANDBOX_SECCOMP_FILTER_H

#include <stddef.h>
#include <stdint.h>

#include "agentnet/sandbox.h"

/* A finished filter program. Plain memory: the child reads it after fork. */
typedef struct {
    void *insns;      /* struct sock_filter[count], owned; freed by an__sbx_filter_free */
    uint16_t count;   /* number of instructions */
    int uses_notify;  /* 1 when denied calls go to user notification */
} an__sbx_filter_t;

/*
 * Checks that the kernel offers what level needs (seccomp filters, and user
 * notification for sandboxed and restricted). Returns 0, or AN_EINVAL with
 * the missing kernel feature named in err.
 */
int an__sbx_seccomp_probe(an_sandbox_level_t level, char *err, size_t err_len);

/*
 * Builds level's filter into *out (not for unrestricted). Returns 0, or a
 * negative AN_E* code with the cause in err.
 */
int an__sbx_filter_build(an_sandbox_level_t level, an__sbx_filter_t *out, char *err,
                         size_t err_len);

void an__sbx_filter_free(an__sbx_filter_t *filter);

/*
 * In the child, after PR_SET_NO_NEW_PRIVS and right before execve: installs
 * the filter with the raw seccomp(2) call (async-signal-safe, allocates
 * nothing). Returns the user notification listener fd when the filter uses
 * one, 0 when it does not, or -errno on failure. The caller passes the
 * listener to the supervisor and closes its own copy.
 *
 * The listener is close-on-exec. Until the supervisor holds it, a denied
 * call in the child blocks until the child is killed, so between this call
 * and execve the child makes only allowed calls. Under minimal these are
 * the calls of the allow list (write, close, execve, exit_group and the
 * like). -EBUSY means that a filter already on this process, its own or
 * inherited, has a listener: the kernel allows one per filter chain.
 */
int an__sbx_filter_install(const an__sbx_filter_t *filter);

/*
 * In the supervisor, when the listener is readable: receives one
 * notification, replies EPERM and writes the attempted call into detail
 * ("ptrace", "ioctl TIOCSTI", "unshare"). Returns 1 when a call was refused
 * and recorded, 0 when the notification went stale (the caller died or was
 * interrupted) or nothing was pending, negative AN_E* on error.
 *
 * Other details: "clone CLONE_NEWUSER|CLONE_NEWNET" for clone with namespace
 * flags, "personality 0x400000", and "x32 getpid" or "i386 getpid" for a call
 * through another ABI. On a negative return detail holds the failure
 * instead. With nothing pending it returns 0 at once instead of blocking.
 */
int an__sbx_seccomp_answer(int listener, char *detail, size_t detail_len);

/* The name of a native syscall number ("keyctl"), or NULL when unknown. */
const char *an__sbx_syscall_name(int nr);

#endif
