/*
 * Per-run cgroups of the sandbox: finding the hierarchies in mountinfo and
 * /proc/self/cgroup text, and falling back when they are missing or not
 * writable. As root, the live tests check real groups: pids.max, the memory
 * limit with its OOM kill, CPU time, killing a tree and removing the groups.
 *
 * The live tests fail, naming the controller, when the machine offers no
 * writable controller: they need root and a memory, pids and cpuacct (v1)
 * or memory and pids (v2) controller.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "agentnet/common.h"
#include "sandbox/cgroup.h"
#include "sandbox/cgroup_internal.h"

#define MB (1024ull * 1024ull)
/* Maximum wait for a child to report or end, well below the 5 s per test. */
#define CHILD_WAIT_MS 3000
/* The unprivileged uid of the fallback tests (the user "nobody" on Debian). */
#define NOBODY_UID 65534

/* This machine: cgroup v2 without controllers, memory, pids and cpuacct on v1. */
static const char mixed_mountinfo[] =
    "22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw\n"
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
    "33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n"
    "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
    "39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
    "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
    "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
static const char mixed_cgroup[] = "9:name=systemd:/\n"
                                   "8:pids:/\n"
                                   "4:memory:/process_api/713849d3\n"
                                   "2:cpuacct:/\n"
                                   "1:cpu:/\n"
                                   "0::/\n";

/* A systemd host with only cgroup v2, with optional fields before the "-". */
static const char v2_mountinfo[] =
    "25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n"
    "29 25 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 "
    "rw,nsdelegate,memory_recursiveprot\n";
static const char v2_cgroup[] = "0::/user.slice/user-1000.slice/session-2.scope\n";

static char temp_dir[128];


static void make_dir(const char *path, mode_t mode)
{
    if (mkdir(path, mode) != 0)
        fail_msg("cannot create test directory %s: %s", path, strerror(errno));
    chmod(path, mode);
}


static void write_text(const char *path, const char *text)
{
    FILE *file = fopen(path, "w");
    if (!file)
        fail_msg("cannot create test file %s: %s", path, strerror(errno));
    fputs(text, file);
    fclose(file);
}


static void assert_contains(const char *text, const char *part)
{
    if (!text || !strstr(text, part))
        fail_msg("\"%s\" does not contain \"%s\"", text ? text : "(null)", part);
}


static int path_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}


static int setup_temp_dir(void **state)
{
    snprintf(temp_dir, sizeof(temp_dir), "/tmp/an-cgroup-test-XXXXXX");
    if (!mkdtemp(temp_dir))
        return -1;
    /* The unprivileged fallback test runs as NOBODY_UID below it. */
    chmod(temp_dir, 0755);
    return 0;
}


static int teardown_temp_dir(void **state)
{
    char command[256];
    snprintf(command, sizeof(command), "rm -rf '%s'", temp_dir);
    return system(command) == 0 ? 0 : -1;
}


/* ---- discovery from text ---- */

static void find_mixed_layout(void **state)
{
    an__sbx_cgroup_layout_t layout;
    an__sbx_cgroup_find(mixed_mountinfo, mixed_cgroup, "", &layout);

    assert_int_equal(layout.v2.version, 2);
    assert_string_equal(layout.v2.own_dir, "/sys/fs/cgroup/unified");
    assert_int_equal(layout.v1[AN__CGROUP_MEMORY].version, 1);
    assert_string_equal(layout.v1[AN__CGROUP_MEMORY].own_dir,
                        "/sys/fs/cgroup/memory/process_api/713849d3");
    assert_string_equal(layout.v1[AN__CGROUP_MEMORY].mount_dir, "/sys/fs/cgroup/memory");
    assert_int_equal(layout.v1[AN__CGROUP_PIDS].version, 1);
    assert_string_equal(layout.v1[AN__CGROUP_PIDS].own_dir, "/sys/fs/cgroup/pids");
    assert_int_equal(layout.v1[AN__CGROUP_CPU].version, 1);
    assert_string_equal(layout.v1[AN__CGROUP_CPU].own_dir, "/sys/fs/cgroup/cpuacct");
}


static void find_pure_v2_layout(void **state)
{
    an__sbx_cgroup_layout_t layout;
    an__sbx_cgroup_find(v2_mountinfo, v2_cgroup, "/tmp/fake", &layout);

    assert_int_equal(layout.v2.version, 2);
    assert_string_equal(layout.v2.own_dir,
                        "/tmp/fake/sys/fs/cgroup/user.slice/user-1000.slice/session-2.scope");
    assert_string_equal(layout.v2.mount_dir, "/tmp/fake/sys/fs/cgroup");
    for (int r = 0; r < AN__CGROUP_RESOURCE_COUNT; r++)
        assert_int_equal(layout.v1[r].version, 0);
}


static void find_no_cgroups(void **state)
{
    an__sbx_cgroup_layout_t layout;
    an__sbx_cgroup_find("22 1 0:21 / /proc rw,relatime - proc proc rw\n"
                        "23 1 0:22 / /sys rw,relatime - sysfs sysfs rw\n",
                        "0::/\n", "", &layout);

    assert_int_equal(layout.v2.version, 0);
    for (int r = 0; r < AN__CGROUP_RESOURCE_COUNT; r++)
        assert_int_equal(layout.v1[r].version, 0);
}


static void find_comounted_subtree_mount(void **state)
{
    /* A container without a cgroup namespace: each hierarchy shows only
     * the container's subtree, cpu and cpuacct share one mount, and the
     * memory mount point has a space in it. */
    an__sbx_cgroup_layout_t layout;
    an__sbx_cgroup_find(
        "50 40 0:40 /docker/abc /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
        "51 40 0:41 /docker/abc /sys/fs/cgroup/mem\\040ory rw - cgroup cgroup rw,memory\n"
        "52 40 0:42 /docker/other /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n",
        "5:pids:/docker/abc/job\n"
        "4:memory:/docker/abc/job\n"
        "3:cpu,cpuacct:/docker/abc\n",
        "", &layout);

    assert_int_equal(layout.v1[AN__CGROUP_CPU].version, 1);
    assert_string_equal(layout.v1[AN__CGROUP_CPU].own_dir, "/sys/fs/cgroup/cpu,cpuacct");
    assert_int_equal(layout.v1[AN__CGROUP_MEMORY].version, 1);
    assert_string_equal(layout.v1[AN__CGROUP_MEMORY].own_dir, "/sys/fs/cgroup/mem ory/job");
    assert_int_equal(layout.v1[AN__CGROUP_PIDS].version, 0);
    assert_contains(layout.v1[AN__CGROUP_PIDS].problem,
                    "/docker/abc/job is outside the subtree /docker/other");
}


static void find_skips_malformed_lines(void **state)
{
    an__sbx_cgroup_layout_t layout;
    an__sbx_cgroup_find("garbage\n"
                        "1 2 3 4 5 6 - cgroup2\n"
                        "41 31 0:38 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
                        "broken line\n0::/a\n", "", &layout);

    assert_int_equal(layout.v2.version, 2);
    assert_string_equal(layout.v2.own_dir, "/sys/fs/cgroup/a");
}


/* ---- fallbacks on made-up layouts ---- */

static void open_without_cgroups_falls_back(void **state)
{
    an__sbx_cgroup_layout_t layout;
    an__sbx_cgroup_find("22 1 0:21 / /proc rw - proc proc rw\n", "0::/\n", "", &layout);

    an__sbx_cgroup_t *cg = NULL;
    char note[1024];
    assert_int_equal(
        an__sbx_cgroup_open_layout(&layout, "run-1", 64 * MB, 8, &cg, note, sizeof(note)), 0);
    assert_non_null(cg);

    an__sbx_cgroup_mechanisms_t mechanisms;
    an__sbx_cgroup_mechanisms(cg, &mechanisms);
    assert_null(mechanisms.memory);
    assert_null(mechanisms.pids);
    assert_null(mechanisms.cpu);
    assert_string_equal(mechanisms.memory_note,
                        "no cgroup v2 hierarchy and no cgroup v1 memory hierarchy is mounted");
    assert_contains(note, "Memory limited by RLIMIT_AS only: no cgroup v2 hierarchy");
    assert_contains(note, "Processes limited by RLIMIT_NPROC only: ");
    assert_contains(note, "CPU time limited by RLIMIT_CPU per process only: ");

    /* Nothing to attach to, kill or count. */
    assert_int_equal(an__sbx_cgroup_attach(cg, getpid()), 0);
    assert_int_equal(an__sbx_cgroup_signal_all(cg, SIGTERM), 0);
    an__sbx_cgroup_stats_t stats;
    assert_int_equal(an__sbx_cgroup_stats(cg, &stats), 0);
    assert_false(stats.has_memory);
    assert_false(stats.has_pids);
    assert_false(stats.has_cpu);
    an__sbx_cgroup_close(cg);
}


static void open_rejects_bad_run_id(void **state)
{
    an__sbx_cgroup_layout_t layout;
    an__sbx_cgroup_find("", "", "", &layout);
    const char *bad[] = {
        "",        "../x",   "a/b",
        ".hidden", "sp ace", "x12345678901234567890123456789012345678901234567890123456789012345"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int sentinel;
        an__sbx_cgroup_t *cg = (an__sbx_cgroup_t *)&sentinel;
        char note[256];
        assert_int_equal(an__sbx_cgroup_open_layout(&layout, bad[i], 0, 0, &cg, note, sizeof(note)),
                         AN_EINVAL);
        assert_null(cg);
        assert_contains(note, "invalid run id");
    }
}


static void setup_failure_removes_group(void **state)
{
    /* A fake v1 memory hierarchy: the group can be made (a plain
     * directory), but it has no memory.limit_in_bytes to write. */
    char path[512];
    snprintf(path, sizeof(path), "%s/setup", temp_dir);
    make_dir(path, 0755);
    snprintf(path, sizeof(path), "%s/setup/mem", temp_dir);
    make_dir(path, 0755);

    char root[256];
    snprintf(root, sizeof(root), "%s/setup", temp_dir);
    an__sbx_cgroup_layout_t layout;
    an__sbx_cgroup_find("35 31 0:32 / /mem rw - cgroup cgroup rw,memory\n", "4:memory:/\n", root,
                        &layout);
    assert_int_equal(layout.v1[AN__CGROUP_MEMORY].version, 1);

    an__sbx_cgroup_t *cg;
    char note[1024];
    assert_int_equal(
        an__sbx_cgroup_open_layout(&layout, "run-2", 64 * MB, 0, &cg, note, sizeof(note)), 0);
    an__sbx_cgroup_mechanisms_t mechanisms;
    an__sbx_cgroup_mechanisms(cg, &mechanisms);
    assert_null(mechanisms.memory);
    assert_contains(mechanisms.memory_note, "memory.limit_in_bytes failed (No such file");

    snprintf(path, sizeof(path), "%s/setup/mem/" AN__CGROUP_BASE_NAME, temp_dir);
    assert_false(path_exists(path));
    an__sbx_cgroup_close(cg);
}


/* Groups left by a killed supervisor go at the next open once an hour old; newer ones stay. */
static void open_sweeps_stale_groups(void **state)
{
    char path[512], base[512];
    snprintf(path, sizeof(path), "%s/sweep", temp_dir);
    make_dir(path, 0755);
    snprintf(path, sizeof(path), "%s/sweep/mem", temp_dir);
    make_dir(path, 0755);
    snprintf(base, sizeof(base), "%s/sweep/mem/" AN__CGROUP_BASE_NAME, temp_dir);
    make_dir(base, 0755);

    char stale[600], fresh[600];
    snprintf(stale, sizeof(stale), "%s/stale-run", base);
    snprintf(fresh, sizeof(fresh), "%s/fresh-run", base);
    make_dir(stale, 0755);
    make_dir(fresh, 0755);
    struct timespec two_hours_ago[2] = {{.tv_sec = time(NULL) - 7200}, {.tv_sec = time(NULL) - 7200}};
    assert_int_equal(utimensat(AT_FDCWD, stale, two_hours_ago, 0), 0);

    char root[256];
    snprintf(root, sizeof(root), "%s/sweep", temp_dir);
    an__sbx_cgroup_layout_t layout;
    an__sbx_cgroup_find("35 31 0:32 / /mem rw - cgroup cgroup rw,memory\n", "4:memory:/\n", root,
                        &layout);
    an__sbx_cgroup_t *cg;
    char note[1024];
    assert_int_equal(
        an__sbx_cgroup_open_layout(&layout, "run-3", 64 * MB, 0, &cg, note, sizeof(note)), 0);
    an__sbx_cgroup_close(cg);

    assert_false(path_exists(stale));
    assert_true(path_exists(fresh));
}


/* What the unprivileged child found, sent back through a pipe. */
typedef struct {
    int fake_rc;
    int fake_any_mechanism;
    char fake_memory_note[512];
    char fake_pids_note[512];
    int real_rc;
    int real_any_mechanism;
    char real_note[2048];
} unprivileged_result_t;


static void run_unprivileged(const char *root, int result_fd)
{
    unprivileged_result_t result;
    memset(&result, 0, sizeof(result));
    if (setgroups(0, NULL) != 0 || setgid(NOBODY_UID) != 0 || setuid(NOBODY_UID) != 0)
        _exit(3);

    an__sbx_cgroup_layout_t layout;
    an__sbx_cgroup_find("35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
                        "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n",
                        "4:memory:/own\n0::/\n", root, &layout);
    an__sbx_cgroup_t *cg = NULL;
    char note[2048];
    an__sbx_cgroup_mechanisms_t mechanisms;

    result.fake_rc =
        an__sbx_cgroup_open_layout(&layout, "run-3", 64 * MB, 8, &cg, note, sizeof(note));
    an__sbx_cgroup_mechanisms(cg, &mechanisms);
    result.fake_any_mechanism = mechanisms.memory || mechanisms.pids || mechanisms.cpu;
    snprintf(result.fake_memory_note, sizeof(result.fake_memory_note), "%s",
             mechanisms.memory_note ? mechanisms.memory_note : "(none)");
    snprintf(result.fake_pids_note, sizeof(result.fake_pids_note), "%s",
             mechanisms.pids_note ? mechanisms.pids_note : "(none)");
    an__sbx_cgroup_close(cg);

    result.real_rc =
        an__sbx_cgroup_open("run-4", 64 * MB, 8, &cg, result.real_note, sizeof(result.real_note));
    an__sbx_cgroup_mechanisms(cg, &mechanisms);
    result.real_any_mechanism = mechanisms.memory || mechanisms.pids || mechanisms.cpu;
    an__sbx_cgroup_close(cg);

    ssize_t n = write(result_fd, &result, sizeof(result));
    _exit(n == (ssize_t)sizeof(result) ? 0 : 4);
}


/* Waits up to CHILD_WAIT_MS for pid; kills it and fails the test on timeout. */
static int wait_child(pid_t pid)
{
    for (int waited_ms = 0; waited_ms < CHILD_WAIT_MS; waited_ms += 5) {
        int status;
        pid_t done = waitpid(pid, &status, WNOHANG);
        if (done == pid)
            return status;
        if (done < 0)
            fail_msg("waitpid(%d) failed: %s", (int)pid, strerror(errno));
        usleep(5000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    fail_msg("child %d did not end within %d ms", (int)pid, CHILD_WAIT_MS);
    return -1;
}


/* Reads exactly len bytes from fd within CHILD_WAIT_MS. */
static void read_result(int fd, void *out, size_t len)
{
    size_t got = 0;
    while (got < len) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, CHILD_WAIT_MS) != 1)
            fail_msg("the child sent no result within %d ms", CHILD_WAIT_MS);
        ssize_t n = read(fd, (char *)out + got, len - got);
        if (n <= 0)
            fail_msg("the child ended after sending %zu of %zu result bytes", got, len);
        got += (size_t)n;
    }
}


static void unwritable_hierarchy_falls_back(void **state)
{
    if (geteuid() != 0)
        fail_msg("this test needs root to switch to uid %d", NOBODY_UID);

    /* Fake hierarchies owned by root: a v1 memory group and a v2 root
     * whose subtree_control NOBODY_UID cannot write. */
    char root[256], path[512];
    snprintf(root, sizeof(root), "%s/unwritable", temp_dir);
    make_dir(root, 0755);
    const char *dirs[] = {"sys",
                          "sys/fs",
                          "sys/fs/cgroup",
                          "sys/fs/cgroup/memory",
                          "sys/fs/cgroup/memory/own",
                          "sys/fs/cgroup/unified"};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", root, dirs[i]);
        make_dir(path, 0755);
    }
    snprintf(path, sizeof(path), "%s/sys/fs/cgroup/unified/cgroup.controllers", root);
    write_text(path, "memory pids\n");
    snprintf(path, sizeof(path), "%s/sys/fs/cgroup/unified/cgroup.subtree_control", root);
    write_text(path, "\n");

    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        run_unprivileged(root, fds[1]);
    }
    close(fds[1]);
    unprivileged_result_t result;
    read_result(fds[0], &result, sizeof(result));
    close(fds[0]);
    int status = wait_child(pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    assert_int_equal(result.fake_rc, 0);
    assert_false(result.fake_any_mechanism);
    assert_contains(result.fake_memory_note, "cgroup.subtree_control is not writable by uid 65534");
    assert_contains(result.fake_memory_note, "the cgroup v1 memory group");
    assert_contains(result.fake_memory_note,
                    "/sys/fs/cgroup/memory/own is not writable by uid 65534");
    assert_contains(result.fake_pids_note, "no cgroup v1 pids hierarchy is mounted");

    assert_int_equal(result.real_rc, 0);
    assert_false(result.real_any_mechanism);
    assert_contains(result.real_note, "Memory limited by RLIMIT_AS only: ");
    assert_contains(result.real_note, "not writable by uid 65534");
}


/* ---- live groups on this machine (root) ---- */

static char run_id[64];


static void require(const char *mechanism, const char *controller, const char *why)
{
    if (!mechanism)
        fail_msg("no usable cgroup %s controller (the live tests need root and a writable "
                 "%s controller): %s",
                 controller, controller, why ? why : "");
}


/* Opens the run's groups through /proc/self, requiring all three mechanisms. */
static an__sbx_cgroup_t *open_live(const char *name, uint64_t memory_bytes, uint64_t max_pids)
{
    snprintf(run_id, sizeof(run_id), "test-%s-%d", name, (int)getpid());
    an__sbx_cgroup_t *cg = NULL;
    char note[2048];
    int rc = an__sbx_cgroup_open(run_id, memory_bytes, max_pids, &cg, note, sizeof(note));
    if (rc != 0)
        fail_msg("an__sbx_cgroup_open failed (%s): %s", an_strerror(rc), note);

    an__sbx_cgroup_mechanisms_t mechanisms;
    an__sbx_cgroup_mechanisms(cg, &mechanisms);
    require(mechanisms.memory, "memory", mechanisms.memory_note);
    require(mechanisms.pids, "pids", mechanisms.pids_note);
    require(mechanisms.cpu, "cpuacct (v1) or cpu.stat (v2)", mechanisms.cpu_note);
    return cg;
}


/* Copies the run's group directories, to check after close that they are gone. */
static size_t copy_dirs(const an__sbx_cgroup_t *cg, char dirs[][AN__CGROUP_PATH_MAX])
{
    for (size_t i = 0; i < cg->group_count; i++)
        snprintf(dirs[i], AN__CGROUP_PATH_MAX, "%s", cg->groups[i].dir);
    return cg->group_count;
}


static void close_and_check_removed(an__sbx_cgroup_t *cg)
{
    char dirs[AN__CGROUP_GROUP_MAX][AN__CGROUP_PATH_MAX];
    size_t count = copy_dirs(cg, dirs);
    assert_true(count > 0);
    an__sbx_cgroup_close(cg);
    for (size_t i = 0; i < count; i++)
        if (path_exists(dirs[i]))
            fail_msg("close left the group %s behind", dirs[i]);
}


/* Reaps every child left over (the test is their subreaper), for up to CHILD_WAIT_MS. */
static void reap_all(void)
{
    for (int waited_ms = 0; waited_ms < CHILD_WAIT_MS; waited_ms += 5) {
        pid_t done = waitpid(-1, NULL, WNOHANG);
        if (done < 0 && errno == ECHILD)
            return;
        if (done == 0)
            usleep(5000);
    }
    fail_msg("children were still running %d ms after being killed", CHILD_WAIT_MS);
}


typedef struct {
    pid_t pid;
    int go_fd;     /* parent writes one byte: the child is attached */
    int result_fd; /* the child's report */
} child_t;


/* Forks a child that waits to be attached, then runs body and exits 0. */
static void start_child(child_t *child, void (*body)(int result_fd))
{
    int go[2], result[2];
    assert_int_equal(pipe(go), 0);
    assert_int_equal(pipe(result), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(go[1]);
        close(result[0]);
        char byte;
        if (read(go[0], &byte, 1) != 1)
            _exit(99);
        body(result[1]);
        _exit(0);
    }
    close(go[0]);
    close(result[1]);
    child->pid = pid;
    child->go_fd = go[1];
    child->result_fd = result[0];
}


static void attach_and_release(an__sbx_cgroup_t *cg, child_t *child)
{
    int rc = an__sbx_cgroup_attach(cg, child->pid);
    if (rc != 0)
        fail_msg("attach failed: %s", an__sbx_cgroup_error(cg));
    assert_int_equal(write(child->go_fd, "g", 1), 1);
    close(child->go_fd);
}


/* Forks until a fork fails or 20 tries; the children sleep until killed. */
static void fork_many(int result_fd)
{
    int result[3] = {0, 0, 0}; /* forks that worked, forks that failed, first errno */
    for (int i = 0; i < 20; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            for (;;)
                pause();
        }
        if (pid > 0) {
            result[0]++;
            continue;
        }
        if (result[1]++ == 0)
            result[2] = errno;
    }
    if (write(result_fd, result, sizeof(result)) != (ssize_t)sizeof(result))
        _exit(4);
    for (;;)
        pause();
}


static void pids_max_stops_fork(void **state)
{
    an__sbx_cgroup_t *cg = open_live("pids", 64 * MB, 8);

    child_t child;
    start_child(&child, fork_many);
    attach_and_release(cg, &child);
    int result[3];
    read_result(child.result_fd, result, sizeof(result));
    close(child.result_fd);

    /* The child itself is one of the 8 processes. */
    assert_int_equal(result[0], 7);
    assert_int_equal(result[1], 13);
    assert_int_equal(result[2], EAGAIN);

    an__sbx_cgroup_stats_t stats;
    assert_int_equal(an__sbx_cgroup_stats(cg, &stats), 0);
    assert_true(stats.has_pids);
    assert_true(stats.pids_max_hits >= 13);

    assert_int_equal(an__sbx_cgroup_signal_all(cg, SIGKILL), 8);
    int status = wait_child(child.pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
    reap_all();
    close_and_check_removed(cg);
}


/* Touches 200 MB, four times the group's limit. */
static void touch_200_mb(int result_fd)
{
    size_t len = 200 * MB;
    char *memory = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED)
        _exit(5);
    for (size_t i = 0; i < len; i += 4096)
        memory[i] = 1;
    _exit(0);
}


static void memory_limit_oom_kills(void **state)
{
    an__sbx_cgroup_t *cg = open_live("memory", 64 * MB, 0);

    child_t child;
    start_child(&child, touch_200_mb);
    close(child.result_fd);
    attach_and_release(cg, &child);
    int status = wait_child(child.pid);
    if (!WIFSIGNALED(status))
        fail_msg("the child touching 200 MB under a 64 MB limit was not killed (exit %d)",
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    assert_int_equal(WTERMSIG(status), SIGKILL);

    an__sbx_cgroup_stats_t stats;
    assert_int_equal(an__sbx_cgroup_stats(cg, &stats), 0);
    assert_true(stats.has_memory);
    assert_true(stats.oom_kills >= 1);
    if (stats.peak_memory_bytes < 60 * MB || stats.peak_memory_bytes > 64 * MB)
        fail_msg("peak memory %llu bytes is not within 60 to 64 MB",
                 (unsigned long long)stats.peak_memory_bytes);
    close_and_check_removed(cg);
}


/* Spins until it used 300 ms of CPU, or 3 s passed. */
static void spin_300_ms(int result_fd)
{
    struct timespec start, now, cpu;
    clock_gettime(CLOCK_MONOTONIC, &start);
    do {
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while (cpu.tv_sec * 1000 + cpu.tv_nsec / 1000000 < 300 && now.tv_sec - start.tv_sec < 3);
    _exit(0);
}


static void spin_and_check_cpu(an__sbx_cgroup_t *cg)
{
    child_t child;
    start_child(&child, spin_300_ms);
    close(child.result_fd);
    attach_and_release(cg, &child);
    int status = wait_child(child.pid);
    assert_true(WIFEXITED(status));

    an__sbx_cgroup_stats_t stats;
    assert_int_equal(an__sbx_cgroup_stats(cg, &stats), 0);
    assert_true(stats.has_cpu);
    if (stats.cpu_usec < 200000 || stats.cpu_usec > 3500000)
        fail_msg("cpu_usec %llu is not within 0.2 to 3.5 s after a 300 ms spin",
                 (unsigned long long)stats.cpu_usec);
}


static void cpu_time_is_counted(void **state)
{
    an__sbx_cgroup_t *cg = open_live("cpu", 0, 0);
    spin_and_check_cpu(cg);
    close_and_check_removed(cg);
}


/* Forks 3 children that sleep, reports, then sleeps itself. */
static void sleeping_tree(int result_fd)
{
    for (int i = 0; i < 3; i++) {
        if (fork() == 0) {
            for (;;)
                pause();
        }
    }
    if (write(result_fd, "r", 1) != 1)
        _exit(4);
    for (;;)
        pause();
}


static void kill_tree_and_check(an__sbx_cgroup_t *cg)
{
    child_t child;
    start_child(&child, sleeping_tree);
    attach_and_release(cg, &child);
    char ready;
    read_result(child.result_fd, &ready, 1);
    close(child.result_fd);

    assert_int_equal(an__sbx_cgroup_signal_all(cg, SIGKILL), 4);
    int status = wait_child(child.pid);
    assert_true(WIFSIGNALED(status));
    reap_all();
    assert_int_equal(an__sbx_cgroup_signal_all(cg, SIGTERM), 0);
}


static void v2_cpu_stat_alone(void **state)
{
    /* The v2 path on its own: the layout without its v1 hierarchies. A
     * mixed host's v2 hierarchy may have no memory or pids controller, and
     * then it only counts CPU time. On a pure v2 host it serves all three. */
    an__sbx_cgroup_layout_t layout;
    char err[256];
    assert_int_equal(an__sbx_cgroup_find_self(&layout, err, sizeof(err)), 0);
    if (layout.v2.version != 2)
        fail_msg("no cgroup v2 hierarchy is mounted: %s", layout.v2.problem);
    for (int r = 0; r < AN__CGROUP_RESOURCE_COUNT; r++)
        layout.v1[r].version = 0;

    snprintf(run_id, sizeof(run_id), "test-v2-%d", (int)getpid());
    an__sbx_cgroup_t *cg;
    char note[2048];
    assert_int_equal(
        an__sbx_cgroup_open_layout(&layout, run_id, 64 * MB, 8, &cg, note, sizeof(note)), 0);
    an__sbx_cgroup_mechanisms_t mechanisms;
    an__sbx_cgroup_mechanisms(cg, &mechanisms);
    if (!mechanisms.cpu)
        fail_msg("cgroup v2 cpu.stat is not usable: %s", note);
    assert_string_equal(mechanisms.cpu, "cgroup v2 cpu.stat");
    if (!mechanisms.memory)
        assert_contains(mechanisms.memory_note, "does not offer the memory controller");

    spin_and_check_cpu(cg);
    kill_tree_and_check(cg);
    close_and_check_removed(cg);
}


static void signal_all_kills_tree(void **state)
{
    an__sbx_cgroup_t *cg = open_live("kill", 64 * MB, 16);
    kill_tree_and_check(cg);
    close_and_check_removed(cg);
}


static void close_kills_leftovers(void **state)
{
    an__sbx_cgroup_t *cg = open_live("leftover", 64 * MB, 16);
    child_t child;
    start_child(&child, sleeping_tree);
    attach_and_release(cg, &child);
    char ready;
    read_result(child.result_fd, &ready, 1);
    close(child.result_fd);

    /* close() kills the tree itself; the zombies are reaped afterwards. */
    close_and_check_removed(cg);
    int status = wait_child(child.pid);
    assert_true(WIFSIGNALED(status));
    reap_all();
}


static void duplicate_run_id_rejected(void **state)
{
    an__sbx_cgroup_t *cg = open_live("twice", 0, 0);
    an__sbx_cgroup_t *second = NULL;
    char note[1024];
    assert_int_equal(an__sbx_cgroup_open(run_id, 0, 0, &second, note, sizeof(note)), AN_EEXIST);
    assert_null(second);
    assert_contains(note, "exists already");
    close_and_check_removed(cg);
}


static void attach_missing_pid_fails(void **state)
{
    an__sbx_cgroup_t *cg = open_live("nopid", 0, 0);
    /* Above the default pid_max (4194304 at most), so no process has it. */
    assert_int_equal(an__sbx_cgroup_attach(cg, 2000000000), AN_EIO);
    assert_contains(an__sbx_cgroup_error(cg), "moving pid 2000000000 into");
    close_and_check_removed(cg);
}


/* A child moves itself in through the v1 "tasks" files; the supervisor skips those groups. */
static void self_attach_moves_writer(void **state)
{
    an__sbx_cgroup_t *cg = open_live("self", 0, 0);
    size_t v1_groups = 0;
    for (size_t i = 0; i < cg->group_count; i++)
        v1_groups += cg->groups[i].version == 1;

    int fds[AN__SBX_CGROUP_SELF_FDS];
    int count = an__sbx_cgroup_self_attach_fds(cg, fds);
    assert_int_equal(count, (int)v1_groups);

    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int rc = an__sbx_cgroup_attach_self(fds, (size_t)count);
        char byte = rc == 0 ? 'k' : 'e';
        if (write(ready[1], &byte, 1) != 1)
            _exit(3);
        for (;;)
            pause();
    }
    for (int i = 0; i < count; i++)
        close(fds[i]);
    char byte = 0;
    assert_int_equal(read(ready[0], &byte, 1), 1);
    close(ready[0]);
    close(ready[1]);
    assert_int_equal(byte, 'k');

    /* Only the v2 groups are left, and the child is already in every v1 group. */
    assert_int_equal(an__sbx_cgroup_attach(cg, pid), 0);
    char pid_text[24];
    snprintf(pid_text, sizeof(pid_text), "%d\n", (int)pid);
    for (size_t i = 0; i < cg->group_count; i++) {
        char procs[256];
        assert_int_equal(an__sbx_cgroup_read(cg->groups[i].dir, "cgroup.procs", procs,
                                             sizeof(procs)), 0);
        assert_contains(procs, pid_text);
    }

    kill(pid, SIGKILL);
    wait_child(pid);
    close_and_check_removed(cg);
}


int main(void)
{
    /* Grandchildren of the live tests are reparented here, to be reaped. */
    prctl(PR_SET_CHILD_SUBREAPER, 1);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(find_mixed_layout),
        cmocka_unit_test(self_attach_moves_writer),
        cmocka_unit_test(find_pure_v2_layout),
        cmocka_unit_test(find_no_cgroups),
        cmocka_unit_test(find_comounted_subtree_mount),
        cmocka_unit_test(find_skips_malformed_lines),
        cmocka_unit_test(open_without_cgroups_falls_back),
        cmocka_unit_test(open_rejects_bad_run_id),
        cmocka_unit_test(setup_failure_removes_group),
        cmocka_unit_test(open_sweeps_stale_groups),
        cmocka_unit_test(unwritable_hierarchy_falls_back),
        cmocka_unit_test(pids_max_stops_fork),
        cmocka_unit_test(memory_limit_oom_kills),
        cmocka_unit_test(cpu_time_is_counted),
        cmocka_unit_test(v2_cpu_stat_alone),
        cmocka_unit_test(signal_all_kills_tree),
        cmocka_unit_test(close_kills_leftovers),
        cmocka_unit_test(duplicate_run_id_rejected),
        cmocka_unit_test(attach_missing_pid_fails),
    };
    return cmocka_run_group_tests(tests, setup_temp_dir, teardown_temp_dir);
}
