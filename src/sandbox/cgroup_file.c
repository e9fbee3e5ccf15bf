/*
 * Control files and directories of the run's cgroups: reading numbers and
 * keyed values, writing settings, and making and removing the groups. The
 * functions return errno values, because callers decide from them whether a
 * hierarchy is unusable (not writable) or broken.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agentnet/log.h"
#include "sandbox/cgroup_internal.h"

/* Retries for making the run's group when another run removes the shared
 * base directory between our mkdir of it and of the run's group. */
#define MKDIR_ATTEMPTS 4


static int join(char *out, size_t out_len, const char *dir, const char *file)
{
    int n = snprintf(out, out_len, "%s/%s", dir, file);
    return n < 0 || (size_t)n >= out_len ? ENAMETOOLONG : 0;
}


/* Opens dir/file with flags (O_CLOEXEC added) into *fd; returns 0 or an errno value. */
static int open_control(const char *dir, const char *file, int flags, int *fd)
{
    char path[AN__CGROUP_PATH_MAX];
    int rc = join(path, sizeof(path), dir, file);
    if (rc != 0)
        return rc;
    *fd = open(path, flags | O_CLOEXEC);
    return *fd < 0 ? errno : 0;
}


/* Reads up to len bytes, retrying after a signal; returns what read() returns. */
static ssize_t read_retry(int fd, char *buf, size_t len)
{
    ssize_t n;
    do {
        n = read(fd, buf, len);
    } while (n < 0 && errno == EINTR);
    return n;
}


int an__sbx_cgroup_read(const char *dir, const char *file, char *buf, size_t buf_len)
{
    int fd;
    int rc = open_control(dir, file, O_RDONLY, &fd);
    if (rc != 0)
        return rc;

    size_t len = 0;
    while (len + 1 < buf_len) {
        ssize_t n = read_retry(fd, buf + len, buf_len - 1 - len);
        if (n < 0) {
            rc = errno;
            close(fd);
            return rc;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    close(fd);
    return 0;
}


int an__sbx_cgroup_write(const char *dir, const char *file, const char *text)
{
    int fd;
    int rc = open_control(dir, file, O_WRONLY, &fd);
    if (rc != 0)
        return rc;

    /* cgroup files take a setting in one write(), so a short write is an error. */
    size_t len = strlen(text);
    ssize_t n;
    do {
        n = write(fd, text, len);
    } while (n < 0 && errno == EINTR);
    rc = n < 0 ? errno : (size_t)n != len ? EIO : 0;
    close(fd);
    return rc;
}


int an__sbx_cgroup_read_all(const char *dir, const char *file, an_buf_t *buf)
{
    int fd;
    int rc = open_control(dir, file, O_RDONLY, &fd);
    if (rc != 0)
        return rc;

    for (;;) {
        if (an_buf_reserve(buf, 4096) != 0) {
            close(fd);
            return ENOMEM;
        }
        buf->data[buf->len] = '\0';
        ssize_t n = read_retry(fd, buf->data + buf->len, buf->cap - buf->len - 1);
        if (n < 0) {
            rc = errno;
            close(fd);
            return rc;
        }
        if (n == 0)
            break;
        buf->len += (size_t)n;
        buf->data[buf->len] = '\0';
    }
    close(fd);
    return 0;
}


static int parse_u64(const char *text, uint64_t *out)
{
    while (*text == ' ' || *text == '\t')
        text++;
    if (strncmp(text, "max", 3) == 0) {
        *out = UINT64_MAX;
        return 0;
    }

    char *end;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (end == text || errno != 0 || (*end != '\0' && *end != '\n' && *end != ' '))
        return EINVAL;
    *out = value;
    return 0;
}


int an__sbx_cgroup_read_u64(const char *dir, const char *file, uint64_t *out)
{
    char text[64];
    int rc = an__sbx_cgroup_read(dir, file, text, sizeof(text));
    if (rc != 0)
        return rc;
    return parse_u64(text, out);
}


int an__sbx_cgroup_read_key(const char *dir, const char *file, const char *key, uint64_t *out)
{
    /* Keyed files are short: cpu.stat, the longest read here, has about 10 lines. */
    char text[2048];
    int rc = an__sbx_cgroup_read(dir, file, text, sizeof(text));
    if (rc != 0)
        return rc;

    size_t key_len = strlen(key);
    for (const char *line = text; *line != '\0';) {
        if (strncmp(line, key, key_len) == 0 && line[key_len] == ' ')
            return parse_u64(line + key_len + 1, out);
        const char *next = strchr(line, '\n');
        if (!next)
            break;
        line = next + 1;
    }
    return ENOENT;
}


void an__sbx_cgroup_format(char *out, size_t out_len, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    vsnprintf(out, out_len, fmt, args);
    va_end(args);
}


int an__sbx_cgroup_list_has(const char *list, const char *word)
{
    size_t word_len = strlen(word);
    const char *p = list;
    while (*p != '\0') {
        while (*p == ' ' || *p == '\n')
            p++;
        size_t len = strcspn(p, " \n");
        if (len == word_len && strncmp(p, word, len) == 0)
            return 1;
        p += len;
    }
    return 0;
}


/*
 * Age after which an empty run group counts as left behind by a supervisor
 * that was killed (SIGKILL gives it no chance to remove its groups).
 * NOTE: a run longer than this whose processes have just ended has an
 * empty group for the few milliseconds before its supervisor reads the
 * counters and removes it, and a sweep in that window would take its
 * counters away. Non-empty groups are never removed: rmdir fails on them.
 */
#define STALE_GROUP_SECONDS 3600

/* Removes the empty run groups in base_dir older than STALE_GROUP_SECONDS, except keep. */
static void sweep_stale_groups(const char *base_dir, const char *keep)
{
    DIR *dir = opendir(base_dir);
    if (!dir)
        return;
    time_t cutoff = time(NULL) - STALE_GROUP_SECONDS;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (entry->d_name[0] == '.' || strcmp(entry->d_name, keep) == 0)
            continue;
        struct stat st;
        if (fstatat(dirfd(dir), entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISDIR(st.st_mode) || st.st_mtime > cutoff)
            continue;
        if (unlinkat(dirfd(dir), entry->d_name, AT_REMOVEDIR) == 0)
            an_log(AN_LOG_DEBUG, "sandbox: removed a stale run cgroup", "dir", base_dir,
                   "run_id", entry->d_name, NULL);
    }
    closedir(dir);
}


int an__sbx_cgroup_mkdir(const char *own_dir, const char *run_id,
                         int (*before_run)(const char *base_dir, void *arg), void *arg,
                         an__sbx_cgroup_group_t *group)
{
    int rc = join(group->base_dir, sizeof(group->base_dir), own_dir, AN__CGROUP_BASE_NAME);
    if (rc == 0)
        rc = join(group->dir, sizeof(group->dir), group->base_dir, run_id);
    if (rc != 0)
        return rc;

    for (int attempt = 0; attempt < MKDIR_ATTEMPTS; attempt++) {
        if (mkdir(group->base_dir, 0755) != 0 && errno != EEXIST)
            return errno;
        if (before_run) {
            rc = before_run(group->base_dir, arg);
            if (rc == ENOENT)
                continue;
            if (rc != 0)
                return rc;
        }
        if (mkdir(group->dir, 0755) == 0) {
            sweep_stale_groups(group->base_dir, run_id);
            return 0;
        }
        if (errno != ENOENT)
            return errno;
    }
    return ENOENT;
}


int an__sbx_cgroup_rmdir(const an__sbx_cgroup_group_t *group)
{
    if (rmdir(group->dir) != 0)
        return errno;
    /* Fails with EBUSY or ENOTEMPTY while another run's group is below it,
     * which is expected: the last run to close removes it. */
    rmdir(group->base_dir);
    return 0;
}
