/*
 * File system attempts: reading and writing host paths, following a
 * symlink to a host path, leaving files and links in the workdir for the
 * cleanup to meet, and opening the executables in /proc for writing.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "probe.h"

/* Enough of a file to show that it was read; the suite's secrets are shorter. */
#define READ_PREVIEW_BYTES 256

static const char probe_line[] = "written by escape_probe\n";


/* The first bytes of fd as a JSON string, with bytes outside printable ASCII as '?'. */
static json_t *read_preview(int fd)
{
    char buffer[READ_PREVIEW_BYTES + 1];
    ssize_t length = read(fd, buffer, READ_PREVIEW_BYTES);
    if (length < 0)
        return NULL;
    for (ssize_t i = 0; i < length; i++) {
        if ((buffer[i] < 0x20 || buffer[i] > 0x7e) && buffer[i] != '\n')
            buffer[i] = '?';
    }
    buffer[length] = '\0';
    return json_string(buffer);
}


/* Opens path for reading; returns {"path", "ok", "errno", "content"}. */
static json_t *try_read(const char *path, int *succeeded)
{
    json_t *result = json_object();
    json_object_set_new(result, "path", json_string(path));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        json_object_update_new(result, probe_attempt(0, errno));
        return result;
    }
    json_t *content = read_preview(fd);
    int err = errno;
    close(fd);
    json_object_update_new(result, probe_attempt(content != NULL, err));
    if (content) {
        json_object_set_new(result, "content", content);
        *succeeded = 1;
    }
    return result;
}


/*
 * Opens path for appending, creating it when missing, and writes one line.
 * Opening counts as success: a file created or opened for writing outside
 * the workdir is already an escape.
 */
static json_t *try_write(const char *path, int *succeeded)
{
    json_t *result = json_object();
    json_object_set_new(result, "path", json_string(path));
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        json_object_update_new(result, probe_attempt(0, errno));
        return result;
    }
    *succeeded = 1;
    json_object_update_new(result, probe_attempt(1, 0));
    ssize_t written = write(fd, probe_line, strlen(probe_line));
    json_object_set_new(result, "written", json_integer(written));
    close(fd);
    return result;
}


int probe_read(int argc, char **argv, json_t *out)
{
    if (argc < 1) {
        json_object_set_new(out, "error", json_string("expected one or more PATHs"));
        return PROBE_USAGE;
    }
    int succeeded = 0;
    json_t *attempts = json_array();
    for (int i = 0; i < argc; i++)
        json_array_append_new(attempts, try_read(argv[i], &succeeded));
    json_object_set_new(out, "attempts", attempts);
    json_object_set_new(out, "ok", json_boolean(succeeded));
    return succeeded ? PROBE_ESCAPED : PROBE_CONTAINED;
}


int probe_write(int argc, char **argv, json_t *out)
{
    if (probe_require_filter(out) != 0)
        return PROBE_USAGE;
    if (argc < 1) {
        json_object_set_new(out, "error", json_string("expected one or more PATHs"));
        return PROBE_USAGE;
    }
    int succeeded = 0;
    json_t *attempts = json_array();
    for (int i = 0; i < argc; i++)
        json_array_append_new(attempts, try_write(argv[i], &succeeded));
    json_object_set_new(out, "attempts", attempts);
    json_object_set_new(out, "ok", json_boolean(succeeded));
    return succeeded ? PROBE_ESCAPED : PROBE_CONTAINED;
}


/*
 * Plants LINK -> TARGET (an existing LINK, planted before the run, is kept)
 * and then reads and writes through LINK.
 */
int probe_symlink(int argc, char **argv, json_t *out)
{
    if (probe_require_filter(out) != 0)
        return PROBE_USAGE;
    if (argc != 2) {
        json_object_set_new(out, "error", json_string("expected LINK TARGET"));
        return PROBE_USAGE;
    }
    const char *link = argv[0];
    const char *target = argv[1];
    int planted = symlink(target, link) == 0;
    int err = errno;
    json_t *plant = probe_attempt(planted || err == EEXIST, err);
    json_object_set_new(plant, "existed", json_boolean(!planted && err == EEXIST));
    json_object_set_new(out, "plant", plant);

    char resolved[PATH_MAX];
    ssize_t length = readlink(link, resolved, sizeof(resolved) - 1);
    resolved[length > 0 ? length : 0] = '\0';
    json_object_set_new(out, "link_target", length > 0 ? json_string(resolved) : json_null());

    int succeeded = 0;
    json_object_set_new(out, "read", try_read(link, &succeeded));
    json_object_set_new(out, "write", try_write(link, &succeeded));
    json_object_set_new(out, "ok", json_boolean(succeeded));
    return succeeded ? PROBE_ESCAPED : PROBE_CONTAINED;
}


/* 1 when path lies inside dir (or is dir); both absolute. */
static int path_is_inside(const char *path, const char *dir)
{
    size_t length = strlen(dir);
    return path && strncmp(path, dir, length) == 0 && (path[length] == '/' || path[length] == '\0');
}


/*
 * Describes the workdir and leaves things in it for the cleanup: a marker
 * file, a directory with a file, and links to HOST_DIR and to a file in it.
 * A cleanup that follows links would then empty HOST_DIR on the host.
 */
int probe_workdir(int argc, char **argv, json_t *out)
{
    if (probe_require_filter(out) != 0)
        return PROBE_USAGE;
    if (argc != 2 || strchr(argv[0], '/')) {
        json_object_set_new(out, "error", json_string("expected MARKER_NAME (no slash) HOST_DIR"));
        return PROBE_USAGE;
    }
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof(cwd))) {
        json_object_set_new(out, "error", json_string("getcwd failed"));
        return PROBE_USAGE;
    }
    json_object_set_new(out, "cwd", json_string(cwd));
    struct statfs fs;
    if (statfs(cwd, &fs) == 0)
        json_object_set_new(out, "tmpfs", json_boolean(fs.f_type == TMPFS_MAGIC));

    const char *home = getenv("HOME");
    const char *tmpdir = getenv("TMPDIR");
    json_object_set_new(out, "home_inside", json_boolean(path_is_inside(home, cwd)));
    json_object_set_new(out, "tmpdir_inside", json_boolean(path_is_inside(tmpdir, cwd)));
    json_object_set_new(out, "path", json_string(getenv("PATH") ? getenv("PATH") : ""));

    int marker_made = 0;
    json_object_set_new(out, "marker", try_write(argv[0], &marker_made));
    int dir_made = mkdir("escape-probe-dir", 0755) == 0;
    json_object_set_new(out, "mkdir", probe_attempt(dir_made, errno));
    int nested_made = 0;
    json_object_set_new(out, "nested", try_write("escape-probe-dir/nested.txt", &nested_made));

    char file_target[PATH_MAX];
    snprintf(file_target, sizeof(file_target), "%s/keep.txt", argv[1]);
    int dir_link = symlink(argv[1], "host-dir-link") == 0;
    json_object_set_new(out, "dir_link", probe_attempt(dir_link, errno));
    int file_link = symlink(file_target, "escape-probe-dir/host-file-link") == 0;
    json_object_set_new(out, "file_link", probe_attempt(file_link, errno));

    /* Success here is the expected outcome: the workdir is the one writable place. */
    json_object_set_new(out, "ok", json_boolean(marker_made && dir_made && nested_made));
    return PROBE_CONTAINED;
}


/*
 * Opens the executables of this process, of the sandbox's init and of the
 * parent for writing (O_WRONLY without O_TRUNC, closed at once, never
 * written), as the runc attack of CVE-2019-5736 did through /proc/self/exe.
 */
int probe_write_proc_exe(int argc, char **argv, json_t *out)
{
    char parent[64];
    snprintf(parent, sizeof(parent), "/proc/%d/exe", (int)getppid());
    const char *paths[] = {"/proc/self/exe", "/proc/1/exe", parent};
    size_t count = getppid() > 0 ? 3 : 2;

    int succeeded = 0;
    json_t *attempts = json_array();
    for (size_t i = 0; i < count; i++) {
        json_t *result = json_object();
        json_object_set_new(result, "path", json_string(paths[i]));
        char target[PATH_MAX];
        ssize_t length = readlink(paths[i], target, sizeof(target) - 1);
        target[length > 0 ? length : 0] = '\0';
        json_object_set_new(result, "target", length > 0 ? json_string(target) : json_null());

        int fd = open(paths[i], O_WRONLY | O_CLOEXEC);
        json_object_update_new(result, probe_attempt(fd >= 0, errno));
        if (fd >= 0) {
            succeeded = 1;
            close(fd);
        }
        json_array_append_new(attempts, result);
    }
    json_object_set_new(out, "attempts", attempts);
    json_object_set_new(out, "ok", json_boolean(succeeded));
    return succeeded ? PROBE_ESCAPED : PROBE_CONTAINED;
}
