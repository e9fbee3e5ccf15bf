/* Private helpers shared by the seccomp files of the sandbox module. */
#ifndef AGENTNET_SANDBOX_SECCOMP_INTERNAL_H
#define AGENTNET_SANDBOX_SECCOMP_INTERNAL_H

#include <stddef.h>

#include <seccomp.h>

#include "agentnet/sandbox.h"

/*
 * Creates a libseccomp context with level's default action, bad-architecture
 * action and rules into *out. The caller owns *out and releases it with
 * seccomp_release. Returns 0, or a negative AN_E* code with the cause in err.
 */
int an__sbx_rules_context(an_sandbox_level_t level, scmp_filter_ctx *out, char *err,
                          size_t err_len);

/*
 * Returns the native syscall number of name. The result is negative when the
 * syscall does not exist on this architecture, and __NR_SCMP_ERROR when
 * the name is in neither libseccomp's table nor the table of newer syscalls.
 */
int an__sbx_syscall_number(const char *name);

#endif
