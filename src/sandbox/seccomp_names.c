/*
 * Syscall names and numbers for the native architecture: libseccomp's table,
 * plus the few syscalls that are newer than the libseccomp release this
 * project builds against (the table of 2.5.4 ends at cachestat, 451).
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <seccomp.h>

#include "sandbox/seccomp_filter.h"
#include "sandbox/seccomp_internal.h"

/*
 * Syscalls that the rules name but libseccomp 2.5.4 does not know. Since
 * Linux 5.1, a new syscall gets the same number on every architecture but
 * alpha, so one number serves x86_64 and aarch64.
 */
static const struct {
    const char *name;
    int nr;
} newer_syscalls[] = {
    {"open_tree_attr", 467}, /* Linux 6.15: a mount tree clone with mount attributes */
};

/*
 * Names are cached per number because libseccomp returns a copy that the
 * caller must free, and callers of an__sbx_syscall_name keep the pointer.
 * Native syscall numbers stay below 1024 on x86_64 and aarch64.
 */
#define NAME_CACHE_SIZE 1024

static _Atomic(const char *) name_cache[NAME_CACHE_SIZE];

/* Cached for numbers that have no name, so they are resolved only once. */
static const char unknown_name[] = "";


int an__sbx_syscall_number(const char *name)
{
    int nr = seccomp_syscall_resolve_name(name);
    if (nr != __NR_SCMP_ERROR)
        return nr;

    for (size_t i = 0; i < sizeof(newer_syscalls) / sizeof(newer_syscalls[0]); i++) {
        if (strcmp(newer_syscalls[i].name, name) == 0)
            return newer_syscalls[i].nr;
    }
    return __NR_SCMP_ERROR;
}


static const char *newer_syscall_name(int nr)
{
    for (size_t i = 0; i < sizeof(newer_syscalls) / sizeof(newer_syscalls[0]); i++) {
        if (newer_syscalls[i].nr == nr)
            return newer_syscalls[i].name;
    }
    return NULL;
}


/*
 * The strings cached here are never freed: they live as long as the process,
 * one per syscall number that was asked for.
 */
const char *an__sbx_syscall_name(int nr)
{
    if (nr < 0 || nr >= NAME_CACHE_SIZE)
        return NULL;

    const char *cached = atomic_load_explicit(&name_cache[nr], memory_order_acquire);
    if (cached)
        return cached == unknown_name ? NULL : cached;

    char *resolved = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
    const char *name = resolved;
    if (!name)
        name = newer_syscall_name(nr);
    if (!name)
        name = unknown_name;

    /* Two threads may resolve the same number; the first to store wins. */
    const char *expected = NULL;
    if (!atomic_compare_exchange_strong(&name_cache[nr], &expected, name)) {
        free(resolved);
        name = expected;
    }
    return name == unknown_name ? NULL : name;
}
