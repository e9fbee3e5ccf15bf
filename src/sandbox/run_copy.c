/*
 * Copying a host directory into a run's workdir, and removing a host
 * workdir after an unrestricted run. Neither follows a symlink it finds:
 * a symlink is copied as a symlink and removed as one, so a link planted in
 * the tree cannot make either touch files outside it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agentnet/common.h"
#include "agentnet/log.h"
#include "sandbox/run_internal.h"

/* Deeper trees are rejected rather than recursed into without bound. */
#define MAX_COPY_DEPTH 64

typedef struct {
    uint32_t uid, gid; /* (uint32_t)-1: create as the caller */
    char *err;
    size_t err_len;
} copy_ctx_t;


/*
 * Creates entries as the sandbox's host user, for a root supervisor: a
 * tmpfs mounted in the sandbox's user namespace accepts only owners it can
 * map, and the files must be the sandbox's to change. fsuid is per thread,
 * so other threads of the supervisor keep root's.
 */
static void become_owner(const copy_ctx_t *ctx)
{
    if (ctx->uid == (uint32_t)-1)
        return;
    setfsgid(ctx->gid);
    setfsuid(ctx->uid);
}


static void become_self(const copy_ctx_t *ctx)
{
    if (ctx->uid == (uint32_t)-1)
        return;
    setfsuid(geteuid());
    setfsgid(getegid());
}


static int copy_failed(const copy_ctx_t *ctx, const char *action, const char *path, int error)
{
    if (error == ENOSPC)
        snprintf(ctx->err, ctx->err_len, "the workdir is full while copying \"%s\"; "
                 "copy less with --workdir-from or raise max_memory_mb, which sizes the workdir",
                 path);
    else
        snprintf(ctx->err, ctx->err_len, "cannot %s \"%s\" while copying it into the "
                 "workdir (%s)", action, path, strerror(error));
    return error == ENOENT ? AN_ENOTFOUND : AN_EIO;
}


static int copy_data(int src, int dst)
{
    for (;;) {
        ssize_t sent = sendfile(dst, src, NULL, 1 << 30);
        if (sent > 0)
            continue;
        if (sent == 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno != EINVAL && errno != ENOSYS)
            return -1;
        break;
    }
    char block[65536];
    for (;;) {
        ssize_t got = read(src, block, sizeof(block));
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return got < 0 ? -1 : 0;
        for (ssize_t off = 0; off < got;) {
            ssize_t put = write(dst, block + off, (size_t)(got - off));
            if (put < 0 && errno == EINTR)
                continue;
            if (put < 0)
                return -1;
            off += put;
        }
    }
}


static int copy_file(const copy_ctx_t *ctx, int src_dir, int dst_dir, const char *name,
                     mode_t mode, const char *path)
{
    int src = openat(src_dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (src < 0)
        return copy_failed(ctx, "open", path, errno);
    become_owner(ctx);
    int dst = openat(dst_dir, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
                     mode & 0777);
    int error = errno;
    become_self(ctx);
    if (dst < 0) {
        close(src);
        return copy_failed(ctx, "create", path, error);
    }
    int rc = copy_data(src, dst);
    error = errno;
    close(src);
    close(dst);
    return rc == 0 ? 0 : copy_failed(ctx, "copy", path, error);
}


static int copy_symlink(const copy_ctx_t *ctx, int src_dir, int dst_dir, const char *name,
                        const char *path)
{
    char target[4096];
    ssize_t len = readlinkat(src_dir, name, target, sizeof(target) - 1);
    if (len < 0)
        return copy_failed(ctx, "read the symlink", path, errno);
    target[len] = '\0';
    become_owner(ctx);
    int rc = symlinkat(target, dst_dir, name);
    int error = errno;
    become_self(ctx);
    return rc == 0 || error == EEXIST ? 0 : copy_failed(ctx, "create the symlink", path, error);
}


static int copy_dir(const copy_ctx_t *ctx, int src_dir, int dst_dir, const char *path, int depth);


static int copy_subdir(const copy_ctx_t *ctx, int src_dir, int dst_dir, const char *name,
                       mode_t mode, const char *path, int depth)
{
    /* Created writable for the copy; the final mode is set once its entries are in. */
    become_owner(ctx);
    int rc = mkdirat(dst_dir, name, 0700);
    int error = errno;
    become_self(ctx);
    if (rc != 0 && error != EEXIST)
        return copy_failed(ctx, "create the directory", path, error);

    int src = openat(src_dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (src < 0)
        return copy_failed(ctx, "open the directory", path, errno);
    int dst = openat(dst_dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dst < 0) {
        error = errno;
        close(src);
        return copy_failed(ctx, "open the copied directory", path, error);
    }
    rc = copy_dir(ctx, src, dst, path, depth + 1);
    if (rc == 0) {
        become_owner(ctx);
        if (fchmod(dst, (mode & 07777) & ~(mode_t)(S_ISUID | S_ISGID)) != 0)
            rc = copy_failed(ctx, "set the mode of", path, errno);
        become_self(ctx);
    }
    close(src);
    close(dst);
    return rc;
}


/* Copies the entries of src_dir (owned by the caller) into dst_dir. */
static int copy_dir(const copy_ctx_t *ctx, int src_dir, int dst_dir, const char *path, int depth)
{
    if (depth > MAX_COPY_DEPTH) {
        snprintf(ctx->err, ctx->err_len, "\"%s\" is more than %d directories deep; "
                 "copy a shallower tree into the workdir", path, MAX_COPY_DEPTH);
        return AN_EINVAL;
    }
    int list_fd = dup(src_dir);
    DIR *dir = list_fd >= 0 ? fdopendir(list_fd) : NULL;
    if (!dir) {
        if (list_fd >= 0)
            close(list_fd);
        return copy_failed(ctx, "list", path, errno);
    }

    int rc = 0;
    struct dirent *entry;
    while (rc == 0 && (entry = readdir(dir))) {
        const char *name = entry->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            continue;
        char child[4096];
        snprintf(child, sizeof(child), "%s/%s", path, name);
        struct stat st;
        if (fstatat(src_dir, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            rc = copy_failed(ctx, "stat", child, errno);
        } else if (S_ISREG(st.st_mode)) {
            rc = copy_file(ctx, src_dir, dst_dir, name, st.st_mode, child);
        } else if (S_ISDIR(st.st_mode)) {
            rc = copy_subdir(ctx, src_dir, dst_dir, name, st.st_mode, child, depth);
        } else if (S_ISLNK(st.st_mode)) {
            rc = copy_symlink(ctx, src_dir, dst_dir, name, child);
        } else {
            an_log(AN_LOG_WARN, "sandbox: skipped a special file (device, FIFO or socket) of "
                   "--workdir-from", "path", child, (const char *)NULL);
        }
    }
    closedir(dir);
    return rc;
}


int an__sbx_copy_tree(const char *src_dir, int dst_fd, uint32_t owner_uid, uint32_t owner_gid,
                      char *err, size_t err_len)
{
    copy_ctx_t ctx = {.uid = owner_uid, .gid = owner_gid, .err = err, .err_len = err_len};
    int src = open(src_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (src < 0) {
        int error = errno;
        snprintf(err, err_len, "cannot open the directory \"%s\" to copy into the "
                 "workdir (%s); pass an existing directory to --workdir-from", src_dir,
                 strerror(error));
        return error == ENOENT ? AN_ENOTFOUND : AN_EIO;
    }
    int rc = copy_dir(&ctx, src, dst_fd, src_dir, 0);
    close(src);
    return rc;
}


/* Removes the entries of the open directory fd; returns 0 or -1 with errno. */
static int remove_entries(int fd, int depth)
{
    if (depth > MAX_COPY_DEPTH * 4) {
        errno = ELOOP;
        return -1;
    }
    /* The command may have left a directory unwritable; it is the caller's, so chmod works. */
    fchmod(fd, 0700);
    int list_fd = dup(fd);
    DIR *dir = list_fd >= 0 ? fdopendir(list_fd) : NULL;
    if (!dir) {
        if (list_fd >= 0)
            close(list_fd);
        return -1;
    }
    int rc = 0;
    struct dirent *entry;
    while ((entry = readdir(dir))) {
        const char *name = entry->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            continue;
        struct stat st;
        if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            int sub = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0 || remove_entries(sub, depth + 1) != 0)
                rc = -1;
            if (sub >= 0)
                close(sub);
            if (unlinkat(fd, name, AT_REMOVEDIR) != 0)
                rc = -1;
        } else if (unlinkat(fd, name, 0) != 0) {
            rc = -1;
        }
    }
    closedir(dir);
    return rc;
}


int an__sbx_remove_tree(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : AN_EIO;
    int rc = remove_entries(fd, 0);
    close(fd);
    if (rmdir(path) != 0)
        rc = -1;
    return rc == 0 ? 0 : AN_EIO;
}
