/*
 * The host ids the sandbox runs as, and its user namespace's id maps.
 *
 * Inside, the command is uid and gid AN_SANDBOX_INNER_ID. On the host an
 * unprivileged caller can map only its own ids, so that is what the
 * sandbox runs as. A root caller maps to an id no account uses instead,
 * because the kernel exempts real uid 0 from RLIMIT_NPROC and root would
 * keep access to root-owned files that are bound in. The id is the
 * smallest from AN__SBX_HOST_ID_BASE up that /etc/passwd and /etc/group do
 * not name and that no range in /etc/subuid or /etc/subgid covers. It stays
 * the same across runs, so a read_write path can be handed to it with chown.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agentnet/common.h"
#include "sandbox/run_internal.h"

/* Account files are read whole up to this size; the rest of a longer file is ignored. */
#define MAX_ACCOUNT_FILE_BYTES (4u << 20)


/*
 * Reads field number `field` (0-based, ':'-separated) of a line as a
 * number. Returns 1 and *out, or 0 when the field is missing or not a number.
 */
static int line_number_field(const char *line, const char *end, int field, uint64_t *out)
{
    const char *p = line;
    for (int i = 0; i < field; i++) {
        p = memchr(p, ':', (size_t)(end - p));
        if (!p)
            return 0;
        p++;
    }
    uint64_t value = 0;
    const char *digits = p;
    while (p < end && *p >= '0' && *p <= '9' && value < (1ull << 40))
        value = value * 10 + (uint64_t)(*p++ - '0');
    if (p == digits || (p < end && *p != ':'))
        return 0;
    *out = value;
    return 1;
}


/*
 * Returns the first id >= id that text does not use: an id named in one of
 * the `fields` of a line, or (with count_field >= 0) inside the range that
 * starts at fields[0] and spans count_field ids.
 */
static uint64_t skip_used(const char *text, const int *fields, size_t field_count,
                          int count_field, uint64_t id)
{
    if (!text)
        return id;
    int moved = 1;
    while (moved) {
        moved = 0;
        for (const char *line = text; *line;) {
            const char *end = strchr(line, '\n');
            if (!end)
                end = line + strlen(line);
            for (size_t f = 0; f < field_count; f++) {
                uint64_t start, count = 1;
                if (!line_number_field(line, end, fields[f], &start))
                    continue;
                if (count_field >= 0 && !line_number_field(line, end, count_field, &count))
                    continue;
                if (id >= start && id < start + count) {
                    id = start + count;
                    moved = 1;
                }
            }
            line = *end ? end + 1 : end;
        }
    }
    return id;
}


int an__sbx_pick_host_id(const char *passwd, const char *group, const char *subuid,
                         const char *subgid, uint32_t *out)
{
    static const int passwd_fields[] = {2, 3}; /* uid, primary gid */
    static const int group_fields[] = {2};
    static const int sub_fields[] = {1};       /* start, with the count in field 2 */

    uint64_t id = AN__SBX_HOST_ID_BASE;
    for (;;) {
        uint64_t before = id;
        id = skip_used(passwd, passwd_fields, 2, -1, id);
        id = skip_used(group, group_fields, 1, -1, id);
        id = skip_used(subuid, sub_fields, 1, 2, id);
        id = skip_used(subgid, sub_fields, 1, 2, id);
        if (id >= AN__SBX_HOST_ID_LIMIT)
            return AN_EFULL;
        if (id == before)
            break;
    }
    *out = (uint32_t)id;
    return 0;
}


/* Reads a small text file; NULL when it is missing or unreadable. The caller frees it. */
static char *read_text(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t cap = 8192, len = 0;
    char *text = malloc(cap);
    while (text) {
        if (len + 1 >= cap) {
            if (cap >= MAX_ACCOUNT_FILE_BYTES)
                break;
            char *bigger = realloc(text, cap * 2);
            if (!bigger) {
                free(text);
                text = NULL;
                break;
            }
            text = bigger;
            cap *= 2;
        }
        ssize_t got = read(fd, text + len, cap - 1 - len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        len += (size_t)got;
    }
    close(fd);
    if (text)
        text[len] = '\0';
    return text;
}


static pthread_once_t root_id_once = PTHREAD_ONCE_INIT;
static int root_id_rc;
static uint32_t root_id;

/* Picks the root caller's host id once per process: the account files rarely change. */
static void pick_root_id(void)
{
    char *passwd = read_text("/etc/passwd");
    char *group = read_text("/etc/group");
    char *subuid = read_text("/etc/subuid");
    char *subgid = read_text("/etc/subgid");
    root_id_rc = an__sbx_pick_host_id(passwd, group, subuid, subgid, &root_id);
    free(passwd);
    free(group);
    free(subuid);
    free(subgid);
}


int an__sbx_host_ids(uint32_t *uid, uint32_t *gid, int *privileged, char *err, size_t err_len)
{
    if (geteuid() != 0) {
        *uid = (uint32_t)geteuid();
        *gid = (uint32_t)getegid();
        *privileged = 0;
        return 0;
    }
    pthread_once(&root_id_once, pick_root_id);
    if (root_id_rc != 0) {
        snprintf(err, err_len, "no free host id between %u and %u for the sandbox's "
                 "user; the account files name or reserve them all", AN__SBX_HOST_ID_BASE,
                 AN__SBX_HOST_ID_LIMIT);
        return root_id_rc;
    }
    *uid = root_id;
    *gid = root_id;
    *privileged = 1;
    return 0;
}


static int write_proc_file(pid_t pid, const char *name, const char *text, char *err,
                           size_t err_len)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    ssize_t len = (ssize_t)strlen(text);
    if (fd < 0 || write(fd, text, (size_t)len) != len) {
        int error = errno;
        if (fd >= 0)
            close(fd);
        snprintf(err, err_len, "writing \"%.40s\" to %s failed (%s); the kernel did "
                 "not accept the sandbox's user namespace id map", text, path, strerror(error));
        return AN_EIO;
    }
    close(fd);
    return 0;
}


int an__sbx_write_id_maps(pid_t child, uint32_t uid, uint32_t gid, int privileged, char *err,
                          size_t err_len)
{
    char map[64];
    snprintf(map, sizeof(map), "%u %u 1\n", AN_SANDBOX_INNER_ID, uid);
    int rc = write_proc_file(child, "uid_map", map, err, err_len);
    /* An unprivileged gid map needs setgroups denied, so groups cannot be dropped to get access. */
    if (rc == 0 && !privileged)
        rc = write_proc_file(child, "setgroups", "deny", err, err_len);
    snprintf(map, sizeof(map), "%u %u 1\n", AN_SANDBOX_INNER_ID, gid);
    if (rc == 0)
        rc = write_proc_file(child, "gid_map", map, err, err_len);
    return rc;
}


/* Reads a sysctl's first integer; -1 when the file does not exist. */
static long read_sysctl(const char *path)
{
    char *text = read_text(path);
    if (!text)
        return -1;
    long value = strtol(text, NULL, 10);
    free(text);
    return value;
}


void an__sbx_explain_clone_error(int error, char *err, size_t err_len)
{
    const char *hint = "the kernel refused new namespaces";
    char detail[160] = "";
    long max_userns = read_sysctl("/proc/sys/user/max_user_namespaces");
    long unprivileged = read_sysctl("/proc/sys/kernel/unprivileged_userns_clone");
    long apparmor = read_sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns");

    if (max_userns == 0) {
        hint = "user namespaces are disabled";
        snprintf(detail, sizeof(detail), " (user.max_user_namespaces = 0)");
    } else if (error == ENOSPC) {
        hint = "the user namespace limit is reached";
        snprintf(detail, sizeof(detail), " (user.max_user_namespaces = %ld)", max_userns);
    } else if (geteuid() != 0 && unprivileged == 0) {
        hint = "unprivileged user namespaces are disabled";
        snprintf(detail, sizeof(detail), " (kernel.unprivileged_userns_clone = 0)");
    } else if (geteuid() != 0 && apparmor == 1) {
        hint = "AppArmor restricts unprivileged user namespaces";
        snprintf(detail, sizeof(detail), " (kernel.apparmor_restrict_unprivileged_userns = 1)");
    } else if (error == EINVAL) {
        hint = "the kernel lacks one of the user, pid, network, mount, ipc or uts namespaces";
    }
    snprintf(err, err_len, "cannot create the sandbox's namespaces (%s): %s%s; the "
             "sandboxed, restricted and minimal levels need user namespaces, so enable them or "
             "run with --level unrestricted, which isolates nothing", strerror(error), hint,
             detail);
}
