/*
 * The sandbox's root file system: the supervisor plans it from the policy
 * (an__sbx_plan_mounts), and the sandbox's first process builds it in its
 * own mount namespace and pivots into it (an__sbx_build_root).
 *
 * The new root is a tmpfs that ends read-only. It contains read-only binds
 * of the level's system directories and the policy's paths, a fresh /proc
 * whose kernel tunables are read-only, a /dev tmpfs with five bound device
 * nodes, and the workdir tmpfs at AN_SANDBOX_WORKDIR, the only writable
 * place. A host symlink such as /lib64 -> usr/lib64 is recreated as a
 * symlink, and /tmp and /dev/shm are symlinks into the workdir.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agentnet/common.h"
#include "sandbox/run_internal.h"

/* The root tmpfs holds only mount points and symlinks. */
#define ROOT_TMPFS_OPTIONS "mode=0755,size=1m,nr_inodes=4096"
#define DEV_TMPFS_OPTIONS "mode=0755,size=64k,nr_inodes=64"

static const char *const device_nodes[] = {"null", "zero", "full", "random", "urandom", NULL};

/* /proc entries bound read-only over themselves: kernel tunables and triggers. */
static const char *const proc_protected[] = {"proc/sys", "proc/sysrq-trigger", "proc/irq",
                                             "proc/bus", NULL};

/* Top-level names the sandbox provides itself; policy paths may not lie under them. */
static const char *const reserved_dirs[] = {"/work", "/proc", "/dev", "/tmp", NULL};


static an__sbx_mount_t *add_mount(an__sbx_plan_t *plan, an__sbx_mount_kind_t kind,
                                  const char *target, const char *source, char *err,
                                  size_t err_len)
{
    if (plan->mount_count >= AN__SBX_MAX_MOUNTS) {
        snprintf(err, err_len, "more than %d mounts planned at \"%s\"; bind fewer "
                 "policy paths", AN__SBX_MAX_MOUNTS, target);
        return NULL;
    }
    an__sbx_mount_t *m = &plan->mounts[plan->mount_count++];
    memset(m, 0, sizeof(*m));
    m->kind = kind;
    snprintf(m->target, sizeof(m->target), "%s", target[0] == '/' ? target + 1 : target);
    snprintf(m->source, sizeof(m->source), "%s", source ? source : "");
    return m;
}


/* A system directory: bound when it is a directory, recreated when it is a symlink. */
static int plan_system_dir(an__sbx_plan_t *plan, const char *dir, char *err, size_t err_len)
{
    struct stat st;
    if (lstat(dir, &st) != 0)
        return 0; /* not on this host, such as /lib64 on some architectures */

    if (S_ISLNK(st.st_mode)) {
        char link[AN_SANDBOX_MAX_PATH_LEN];
        ssize_t len = readlink(dir, link, sizeof(link) - 1);
        if (len < 0) {
            snprintf(err, err_len, "cannot read the symlink \"%s\" (%s)", dir,
                     strerror(errno));
            return AN_EIO;
        }
        link[len] = '\0';
        return add_mount(plan, AN__SBX_MOUNT_SYMLINK, dir, link, err, err_len) ? 0 : AN_EINVAL;
    }
    if (!S_ISDIR(st.st_mode))
        return 0;
    an__sbx_mount_t *m = add_mount(plan, AN__SBX_MOUNT_BIND_RO, dir, dir, err, err_len);
    if (!m)
        return AN_EINVAL;
    m->is_dir = 1;
    return 0;
}


static int plan_dev_and_proc(an__sbx_plan_t *plan, char *err, size_t err_len)
{
    if (!add_mount(plan, AN__SBX_MOUNT_TMPFS, "dev", DEV_TMPFS_OPTIONS, err, err_len))
        return AN_EINVAL;
    for (size_t i = 0; device_nodes[i]; i++) {
        char host[64], target[64];
        snprintf(host, sizeof(host), "/dev/%s", device_nodes[i]);
        snprintf(target, sizeof(target), "dev/%s", device_nodes[i]);
        struct stat st;
        if (stat(host, &st) != 0 || !S_ISCHR(st.st_mode)) {
            snprintf(err, err_len, "the host has no character device %s to bind "
                     "into the sandbox's /dev", host);
            return AN_ENOTFOUND;
        }
        if (!add_mount(plan, AN__SBX_MOUNT_BIND_DEV, target, host, err, err_len))
            return AN_EINVAL;
    }

    static const char *const links[][2] = {
        {"dev/fd", "/proc/self/fd"},   {"dev/stdin", "/proc/self/fd/0"},
        {"dev/stdout", "/proc/self/fd/1"}, {"dev/stderr", "/proc/self/fd/2"},
        {"dev/shm", AN_SANDBOX_WORKDIR "/tmp"}, {"tmp", AN_SANDBOX_WORKDIR "/tmp"},
    };
    for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
        if (!add_mount(plan, AN__SBX_MOUNT_SYMLINK, links[i][0], links[i][1], err, err_len))
            return AN_EINVAL;
    }

    if (!add_mount(plan, AN__SBX_MOUNT_PROC, "proc", NULL, err, err_len))
        return AN_EINVAL;
    for (size_t i = 0; proc_protected[i]; i++) {
        /* Bound over themselves once the new /proc is mounted; skipped where missing. */
        an__sbx_mount_t *m = add_mount(plan, AN__SBX_MOUNT_BIND_RO, proc_protected[i],
                                       proc_protected[i], err, err_len);
        if (!m)
            return AN_EINVAL;
        m->is_dir = -1;
    }
    return 0;
}


static int is_reserved(const char *path)
{
    for (size_t i = 0; reserved_dirs[i]; i++) {
        size_t len = strlen(reserved_dirs[i]);
        if (strncmp(path, reserved_dirs[i], len) == 0 && (path[len] == '\0' || path[len] == '/'))
            return 1;
    }
    return strcmp(path, "/") == 0;
}


static int plan_policy_path(an__sbx_plan_t *plan, const char *path, int writable, char *err,
                            size_t err_len)
{
    if (is_reserved(path)) {
        snprintf(err, err_len, "the policy path \"%s\" is / or lies in /work, /proc, /dev or "
                 "/tmp, which the sandbox provides itself; bind a path outside them, such as "
                 "one under /var/tmp", path);
        return AN_EINVAL;
    }
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(err, err_len, "the policy path \"%s\" cannot be bound (%s); create it "
                 "or remove it from the policy's filesystem lists", path, strerror(errno));
        return errno == ENOENT ? AN_ENOTFOUND : AN_EIO;
    }
    an__sbx_mount_t *m = add_mount(plan, writable ? AN__SBX_MOUNT_BIND_RW : AN__SBX_MOUNT_BIND_RO,
                                   path, path, err, err_len);
    if (!m)
        return AN_EINVAL;
    m->is_dir = S_ISDIR(st.st_mode) ? 1 : 0;
    return 0;
}


/* Shorter targets first, so a path is bound before the paths inside it. */
static int by_target_length(const void *a, const void *b)
{
    size_t la = strlen(((const an__sbx_mount_t *)a)->target);
    size_t lb = strlen(((const an__sbx_mount_t *)b)->target);
    return la < lb ? -1 : la > lb;
}


int an__sbx_plan_mounts(an__sbx_plan_t *plan, const an_sandbox_policy_t *policy, char *err,
                        size_t err_len)
{
    plan->mount_count = 0;
    const char *const *dirs = an_sandbox_level_system_dirs(policy->level);
    for (size_t i = 0; dirs && dirs[i]; i++) {
        int rc = plan_system_dir(plan, dirs[i], err, err_len);
        if (rc != 0)
            return rc;
    }
    int rc = plan_dev_and_proc(plan, err, err_len);
    if (rc != 0)
        return rc;

    size_t first_policy = plan->mount_count;
    for (size_t i = 0; i < policy->read_only.count && rc == 0; i++)
        rc = plan_policy_path(plan, policy->read_only.items[i], 0, err, err_len);
    for (size_t i = 0; i < policy->read_write.count && rc == 0; i++)
        rc = plan_policy_path(plan, policy->read_write.items[i], 1, err, err_len);
    if (rc != 0)
        return rc;
    qsort(plan->mounts + first_policy, plan->mount_count - first_policy, sizeof(an__sbx_mount_t),
          by_target_length);
    return 0;
}


/* ---- Child side: async-signal-safe from here on. ---- */


static int fail(int step, const char *detail)
{
    an__sbx_send_error(step, errno, detail);
    return -1;
}


/* Creates the directories above target (relative), like mkdir -p of its dirname. */
static int make_parents(const char *target)
{
    char path[AN_SANDBOX_MAX_PATH_LEN];
    size_t len = strlen(target);
    if (len >= sizeof(path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(path, target, len + 1);
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return 0;
}


/*
 * Creates the mount point: a directory, or an empty file for a file bind.
 * NOTE: the target is resolved before pivot_root, so an absolute symlink
 * inside a bound host directory leads out of the new root. A policy path
 * below such a link is then mounted outside it and is missing in the sandbox.
 */
static int make_mount_point(const char *target, int is_dir)
{
    struct stat st;
    if (lstat(target, &st) == 0)
        return 0;
    if (make_parents(target) != 0)
        return -1;
    if (is_dir)
        return mkdir(target, 0755) == 0 || errno == EEXIST ? 0 : -1;
    int fd = open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return errno == EEXIST ? 0 : -1;
    close(fd);
    return 0;
}


/*
 * Sets attributes on the bind at target and every mount below it. Without
 * mount_setattr (before Linux 5.12) only the top mount is remounted, with
 * the flags it already has: in a user namespace the flags a mount came
 * with from the host are locked, and a remount that drops one fails.
 */
static int set_bind_attributes(const char *target, int read_only)
{
    struct mount_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (read_only ? MOUNT_ATTR_RDONLY : 0);
    if (syscall(SYS_mount_setattr, AT_FDCWD, target, AT_RECURSIVE, &attr, sizeof(attr)) == 0)
        return 0;
    if (errno != ENOSYS)
        return -1;

    struct statfs fs;
    if (statfs(target, &fs) != 0)
        return -1;
    unsigned long flags = MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV;
    if (read_only)
        flags |= MS_RDONLY;
    if (fs.f_flags & ST_NOEXEC)
        flags |= MS_NOEXEC;
    if (fs.f_flags & ST_NOATIME)
        flags |= MS_NOATIME;
    if (fs.f_flags & ST_NODIRATIME)
        flags |= MS_NODIRATIME;
    if (fs.f_flags & ST_RELATIME)
        flags |= MS_RELATIME;
    return mount(NULL, target, NULL, flags, NULL);
}


static int do_mount(const an__sbx_mount_t *m)
{
    switch (m->kind) {
    case AN__SBX_MOUNT_BIND_RO:
    case AN__SBX_MOUNT_BIND_RW: {
        if (m->is_dir < 0) {
            /* A /proc entry bound over itself; some kernels lack irq or bus. */
            struct stat st;
            if (lstat(m->target, &st) != 0)
                return 0;
        } else if (make_mount_point(m->target, m->is_dir) != 0) {
            return -1;
        }
        if (mount(m->source, m->target, NULL, MS_BIND | MS_REC, NULL) != 0)
            return -1;
        return set_bind_attributes(m->target, m->kind == AN__SBX_MOUNT_BIND_RO);
    }
    case AN__SBX_MOUNT_BIND_DEV:
        if (make_mount_point(m->target, 0) != 0)
            return -1;
        return mount(m->source, m->target, NULL, MS_BIND, NULL);
    case AN__SBX_MOUNT_SYMLINK:
        if (make_parents(m->target) != 0)
            return -1;
        return symlink(m->source, m->target) == 0 || errno == EEXIST ? 0 : -1;
    case AN__SBX_MOUNT_PROC:
        if (make_mount_point(m->target, 1) != 0)
            return -1;
        return mount("proc", m->target, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    case AN__SBX_MOUNT_TMPFS:
        if (make_mount_point(m->target, 1) != 0)
            return -1;
        return mount("tmpfs", m->target, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, m->source);
    case AN__SBX_MOUNT_DIR:
        return make_mount_point(m->target, 1);
    }
    errno = EINVAL;
    return -1;
}


/*
 * The workdir tmpfs, owned by the sandbox's user. When the supervisor has a
 * directory to copy in, it gets the workdir's descriptor and writes into
 * it from the host side, where it can read the caller's files.
 */
static int make_workdir(const an__sbx_plan_t *plan)
{
    const char *target = AN_SANDBOX_WORKDIR + 1;
    if (make_mount_point(target, 1) != 0 ||
        mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, plan->workdir_options) != 0)
        return fail(AN__SBX_STEP_MOUNT, AN_SANDBOX_WORKDIR);
    if (mkdir(AN_SANDBOX_WORKDIR "/tmp" + 1, 0700) != 0)
        return fail(AN__SBX_STEP_MOUNT, AN_SANDBOX_WORKDIR "/tmp");
    if (!plan->copy_workdir)
        return 0;

    int fd = open(target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return fail(AN__SBX_STEP_MOUNT, AN_SANDBOX_WORKDIR);
    int rc = an__sbx_send_workdir(fd);
    close(fd);
    if (rc != 0 || an__sbx_wait_copied() != 0) {
        errno = rc ? -rc : EPIPE;
        return fail(AN__SBX_STEP_CONTROL, "workdir copy");
    }
    return 0;
}


int an__sbx_build_root(const an__sbx_plan_t *plan)
{
    /* Nothing mounted from here on may propagate back to the host. */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
        return fail(AN__SBX_STEP_MOUNT, "making mounts private");
    if (mount("tmpfs", AN__SBX_ASSEMBLY_DIR, "tmpfs", MS_NOSUID | MS_NODEV, ROOT_TMPFS_OPTIONS) !=
            0 ||
        chdir(AN__SBX_ASSEMBLY_DIR) != 0)
        return fail(AN__SBX_STEP_MOUNT, "/ (tmpfs)");

    for (size_t i = 0; i < plan->mount_count; i++) {
        if (do_mount(&plan->mounts[i]) != 0)
            return fail(AN__SBX_STEP_MOUNT, plan->mounts[i].target);
    }
    if (make_workdir(plan) != 0)
        return -1;
    if (mount(NULL, "dev", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV |
                                     MS_NOEXEC, NULL) != 0)
        return fail(AN__SBX_STEP_MOUNT, "dev (read-only)");

    /* pivot_root(".", ".") stacks the old root on the new one; detaching it leaves the new. */
    if (syscall(SYS_pivot_root, ".", ".") != 0)
        return fail(AN__SBX_STEP_PIVOT, AN__SBX_ASSEMBLY_DIR);
    if (umount2(".", MNT_DETACH) != 0 || chdir("/") != 0)
        return fail(AN__SBX_STEP_PIVOT, "detaching the host's root");
    if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) !=
        0)
        return fail(AN__SBX_STEP_MOUNT, "/ (read-only)");
    return 0;
}
