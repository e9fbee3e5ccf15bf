/*
 * Per-run cgroups: choosing a hierarchy for each resource, making the
 * groups, attaching the sandbox, reading counters, signalling and removing
 * the groups. Discovery is in cgroup_find.c, each version's control files in
 * cgroup_v1.c and cgroup_v2.c.
 *
 * Each resource uses cgroup v2 when the v2 hierarchy offers its controller,
 * and the v1 hierarchy carrying it otherwise. CPU time comes from the v2
 * group when one is made for memory or pids. Otherwise it comes from v1
 * cpuacct, and only without cpuacct from a v2 group of its own. So a mixed
 * host whose v2 hierarchy has no controllers gets no v2 group.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agentnet/common.h"
#include "agentnet/log.h"
#include "sandbox/cgroup_internal.h"

#define RUN_ID_MAX 64

/* close() waits this long for killed processes to leave the groups, polling. */
#define CLOSE_WAIT_MS 1000
#define CLOSE_POLL_MS 10

static const char *const mechanism_names[2][AN__CGROUP_RESOURCE_COUNT] = {
    {"cgroup v1 memory.limit_in_bytes", "cgroup v1 pids.max", "cgroup v1 cpuacct.usage"},
    {"cgroup v2 memory.max", "cgroup v2 pids.max", "cgroup v2 cpu.stat"},
};

static const char *const v1_controllers[AN__CGROUP_RESOURCE_COUNT] = {"memory", "pids", "cpuacct"};

/* What limits each resource without a cgroup, for the note. */
static const char *const fallbacks[AN__CGROUP_RESOURCE_COUNT] = {
    "Memory limited by RLIMIT_AS only",
    "Processes limited by RLIMIT_NPROC only",
    "CPU time limited by RLIMIT_CPU per process only",
};


static int is_permission_error(int error)
{
    return error == EACCES || error == EPERM || error == EROFS;
}


static int run_id_is_valid(const char *run_id)
{
    size_t len = strlen(run_id);
    if (len == 0 || len > RUN_ID_MAX || run_id[0] == '.')
        return 0;
    return strspn(run_id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") ==
           len;
}


/* Appends text to the reason why resource has no group. */
static void add_reason(an__sbx_cgroup_t *cg, an__sbx_cgroup_resource_t resource, const char *text)
{
    char *reason = cg->reason[resource];
    size_t len = strlen(reason);
    an__sbx_cgroup_format(reason + len, AN__CGROUP_NOTE_MAX - len, "%s%s", len ? ", and " : "",
                          text);
}


/* Removes every group of cg and frees it, without killing anything. */
static void destroy(an__sbx_cgroup_t *cg)
{
    for (size_t i = 0; i < cg->group_count; i++)
        an__sbx_cgroup_rmdir(&cg->groups[i]);
    free(cg);
}


/* Adds group to cg as serving nothing yet; returns its index. */
static int add_group(an__sbx_cgroup_t *cg, const an__sbx_cgroup_group_t *group, int version)
{
    int index = (int)cg->group_count++;
    cg->groups[index] = *group;
    cg->groups[index].version = version;
    cg->groups[index].resources = 0;
    return index;
}


/* Drops the last group when it ended up serving nothing. */
static void drop_if_unused(an__sbx_cgroup_t *cg, int index)
{
    if (index == (int)cg->group_count - 1 && cg->groups[index].resources == 0) {
        an__sbx_cgroup_rmdir(&cg->groups[index]);
        cg->group_count--;
    }
}


/* Writes resource's limit in group index; on success the group serves it. */
static void serve(an__sbx_cgroup_t *cg, int index, an__sbx_cgroup_resource_t resource,
                  uint64_t memory_bytes, uint64_t max_pids)
{
    an__sbx_cgroup_group_t *group = &cg->groups[index];
    char reason[AN__CGROUP_NOTE_MAX];
    int rc = group->version == 2 ? an__sbx_cgroup_v2_setup(group, resource, memory_bytes, max_pids,
                                                           reason, sizeof(reason))
                                 : an__sbx_cgroup_v1_setup(group, resource, memory_bytes, max_pids,
                                                           reason, sizeof(reason));
    if (rc != 0) {
        add_reason(cg, resource, reason);
        return;
    }
    group->resources |= 1u << resource;
    cg->group_of[resource] = index;
    cg->reason[resource][0] = '\0';
}


/* Makes a v2 group for the resources in requested. Returns 0, or AN_EEXIST. */
static int open_v2(an__sbx_cgroup_t *cg, const an__sbx_cgroup_hierarchy_t *v2, const char *run_id,
                   unsigned requested, uint64_t memory_bytes, uint64_t max_pids)
{
    an__sbx_cgroup_group_t group = {0};
    char reasons[AN__CGROUP_RESOURCE_COUNT][AN__CGROUP_NOTE_MAX] = {{0}};
    int rc = an__sbx_cgroup_v2_make(v2->own_dir, run_id, &requested, reasons, &group);
    for (int r = 0; r < AN__CGROUP_RESOURCE_COUNT; r++)
        if (reasons[r][0] != '\0')
            add_reason(cg, (an__sbx_cgroup_resource_t)r, reasons[r]);
    if (rc == EEXIST)
        return AN_EEXIST;
    if (rc != 0 || requested == 0)
        return 0;

    int index = add_group(cg, &group, 2);
    for (int r = 0; r < AN__CGROUP_RESOURCE_COUNT; r++)
        if (requested & (1u << r))
            serve(cg, index, (an__sbx_cgroup_resource_t)r, memory_bytes, max_pids);
    drop_if_unused(cg, index);
    return 0;
}


/* Makes or reuses the v1 group for resource. Returns 0, or AN_EEXIST. */
static int open_v1(an__sbx_cgroup_t *cg, const an__sbx_cgroup_layout_t *layout,
                   an__sbx_cgroup_resource_t resource, const char *run_id, uint64_t memory_bytes,
                   uint64_t max_pids)
{
    const an__sbx_cgroup_hierarchy_t *v1 = &layout->v1[resource];

    /* Controllers mounted together (cpu,cpuacct) share one group. */
    for (int r = 0; r < (int)resource; r++) {
        int index = cg->group_of[r];
        if (index >= 0 && cg->groups[index].version == 1 &&
            strcmp(layout->v1[r].own_dir, v1->own_dir) == 0) {
            serve(cg, index, resource, memory_bytes, max_pids);
            return 0;
        }
    }

    an__sbx_cgroup_group_t group = {0};
    int rc = an__sbx_cgroup_mkdir(v1->own_dir, run_id, NULL, NULL, &group);
    if (rc == EEXIST)
        return AN_EEXIST;
    if (rc != 0) {
        char reason[AN__CGROUP_NOTE_MAX];
        if (is_permission_error(rc))
            an__sbx_cgroup_format(
                reason, sizeof(reason), "the cgroup v1 %s group %s is not writable by uid %u (%s)",
                v1_controllers[resource], v1->own_dir, (unsigned)geteuid(), strerror(rc));
        else
            an__sbx_cgroup_format(reason, sizeof(reason),
                                  "cannot create the cgroup v1 group %s (%s)", group.dir,
                                  strerror(rc));
        add_reason(cg, resource, reason);
        return 0;
    }

    int index = add_group(cg, &group, 1);
    serve(cg, index, resource, memory_bytes, max_pids);
    drop_if_unused(cg, index);
    return 0;
}


/* Adds why resource has no group when no v1 hierarchy carries its controller. */
static void explain_missing(an__sbx_cgroup_t *cg, const an__sbx_cgroup_layout_t *layout,
                            an__sbx_cgroup_resource_t resource)
{
    char text[AN__CGROUP_NOTE_MAX];
    const char *problem = layout->v1[resource].problem;
    if (problem[0] != '\0')
        an__sbx_cgroup_format(text, sizeof(text), "%s", problem);
    else if (cg->reason[resource][0] != '\0')
        an__sbx_cgroup_format(text, sizeof(text), "no cgroup v1 %s hierarchy is mounted",
                              v1_controllers[resource]);
    else if (layout->v2.problem[0] != '\0')
        an__sbx_cgroup_format(text, sizeof(text), "%s, and no cgroup v1 %s hierarchy is mounted",
                              layout->v2.problem, v1_controllers[resource]);
    else
        an__sbx_cgroup_format(text, sizeof(text),
                              "no cgroup v2 hierarchy and no cgroup v1 %s hierarchy is mounted",
                              v1_controllers[resource]);
    add_reason(cg, resource, text);
}


/* Writes one sentence per resource without a group: the fallback, then why. */
static void write_note(const an__sbx_cgroup_t *cg, char *note, size_t note_len)
{
    size_t len = 0;
    for (int r = 0; r < AN__CGROUP_RESOURCE_COUNT && len < note_len; r++) {
        if (cg->group_of[r] >= 0)
            continue;
        int n = snprintf(note + len, note_len - len, "%s%s: %s.", len ? " " : "", fallbacks[r],
                         cg->reason[r]);
        if (n < 0)
            break;
        len += (size_t)n;
    }
}


int an__sbx_cgroup_open_layout(const an__sbx_cgroup_layout_t *layout, const char *run_id,
                               uint64_t memory_bytes, uint64_t max_pids, an__sbx_cgroup_t **out,
                               char *note, size_t note_len)
{
    *out = NULL;
    if (note_len > 0)
        note[0] = '\0';
    if (!run_id_is_valid(run_id)) {
        an__sbx_cgroup_format(note, note_len,
                              "invalid run id \"%s\" for a cgroup name: use 1 to %d characters of "
                              "[A-Za-z0-9._-], not starting with a dot",
                              run_id, RUN_ID_MAX);
        return AN_EINVAL;
    }

    an__sbx_cgroup_t *cg = calloc(1, sizeof(*cg));
    if (!cg) {
        an__sbx_cgroup_format(note, note_len, "out of memory for the run's cgroup state");
        return AN_ENOMEM;
    }
    for (int r = 0; r < AN__CGROUP_RESOURCE_COUNT; r++)
        cg->group_of[r] = -1;

    int rc = 0;
    if (layout->v2.version == 2)
        rc = open_v2(cg, &layout->v2, run_id, (1u << AN__CGROUP_MEMORY) | (1u << AN__CGROUP_PIDS),
                     memory_bytes, max_pids);

    for (int r = 0; r < AN__CGROUP_RESOURCE_COUNT && rc == 0; r++) {
        if (cg->group_of[r] >= 0)
            continue;
        if (r == AN__CGROUP_CPU && cg->group_count > 0 && cg->groups[0].version == 2) {
            serve(cg, 0, AN__CGROUP_CPU, memory_bytes, max_pids);
            continue;
        }
        if (layout->v1[r].version == 1)
            rc = open_v1(cg, layout, (an__sbx_cgroup_resource_t)r, run_id, memory_bytes, max_pids);
    }

    if (rc == 0 && cg->group_of[AN__CGROUP_CPU] < 0 && layout->v2.version == 2)
        rc = open_v2(cg, &layout->v2, run_id, 1u << AN__CGROUP_CPU, memory_bytes, max_pids);

    if (rc != 0) {
        an__sbx_cgroup_format(
            note, note_len,
            "a cgroup for run id \"%s\" exists already; use a new run id, or remove the "
            "group left by an earlier run",
            run_id);
        destroy(cg);
        return rc;
    }

    for (int r = 0; r < AN__CGROUP_RESOURCE_COUNT; r++)
        if (cg->group_of[r] < 0 && layout->v1[r].version != 1)
            explain_missing(cg, layout, (an__sbx_cgroup_resource_t)r);
    write_note(cg, note, note_len);
    *out = cg;
    return 0;
}


int an__sbx_cgroup_open(const char *run_id, uint64_t memory_bytes, uint64_t max_pids,
                        an__sbx_cgroup_t **out, char *note, size_t note_len)
{
    /* About 6 KiB, so it lives on the heap. */
    an__sbx_cgroup_layout_t *layout = malloc(sizeof(*layout));
    if (!layout) {
        *out = NULL;
        an__sbx_cgroup_format(note, note_len, "out of memory for the cgroup layout");
        return AN_ENOMEM;
    }

    char err[AN__CGROUP_NOTE_MAX];
    int rc = an__sbx_cgroup_find_self(layout, err, sizeof(err));
    if (rc == AN_ENOMEM) {
        free(layout);
        *out = NULL;
        an__sbx_cgroup_format(note, note_len, "out of memory reading the cgroup layout");
        return rc;
    }
    if (rc != 0) {
        /* Without /proc the hierarchies cannot be found: every resource falls back. */
        memset(layout, 0, sizeof(*layout));
        an__sbx_cgroup_format(layout->v2.problem, sizeof(layout->v2.problem), "%s", err);
    }

    rc = an__sbx_cgroup_open_layout(layout, run_id, memory_bytes, max_pids, out, note, note_len);
    free(layout);
    return rc;
}


void an__sbx_cgroup_mechanisms(const an__sbx_cgroup_t *cg, an__sbx_cgroup_mechanisms_t *out)
{
    const char **names[AN__CGROUP_RESOURCE_COUNT] = {&out->memory, &out->pids, &out->cpu};
    const char **notes[AN__CGROUP_RESOURCE_COUNT] = {&out->memory_note, &out->pids_note,
                                                     &out->cpu_note};
    memset(out, 0, sizeof(*out));
    if (!cg)
        return;
    for (int r = 0; r < AN__CGROUP_RESOURCE_COUNT; r++) {
        int index = cg->group_of[r];
        if (index >= 0)
            *names[r] = mechanism_names[cg->groups[index].version - 1][r];
        else
            *notes[r] = cg->reason[r];
    }
}


int an__sbx_cgroup_attach(an__sbx_cgroup_t *cg, pid_t pid)
{
    char text[24];
    snprintf(text, sizeof(text), "%d", (int)pid);
    for (size_t i = 0; i < cg->group_count; i++) {
        if (cg->groups[i].self_attach)
            continue;
        int rc = an__sbx_cgroup_write(cg->groups[i].dir, "cgroup.procs", text);
        if (rc != 0) {
            an__sbx_cgroup_format(cg->error, sizeof(cg->error), "moving pid %d into %s failed (%s)",
                                  (int)pid, cg->groups[i].dir, strerror(rc));
            return AN_EIO;
        }
    }
    return 0;
}


int an__sbx_cgroup_self_attach_fds(an__sbx_cgroup_t *cg, int fds[AN__SBX_CGROUP_SELF_FDS])
{
    int count = 0;
    size_t chosen[AN__SBX_CGROUP_SELF_FDS];
    for (size_t i = 0; i < cg->group_count && count < AN__SBX_CGROUP_SELF_FDS; i++) {
        const an__sbx_cgroup_group_t *group = &cg->groups[i];
        if (group->version != 1)
            continue;
        char path[AN__CGROUP_PATH_MAX + 8];
        snprintf(path, sizeof(path), "%s/tasks", group->dir);
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0) {
            an__sbx_cgroup_format(cg->error, sizeof(cg->error), "opening %s failed (%s)", path,
                                  strerror(errno));
            while (count > 0)
                close(fds[--count]);
            return AN_EIO;
        }
        chosen[count] = i;
        fds[count++] = fd;
    }
    /* Marked only now, so a failure above leaves every group to an__sbx_cgroup_attach. */
    for (int c = 0; c < count; c++)
        cg->groups[chosen[c]].self_attach = 1;
    return count;
}


int an__sbx_cgroup_attach_self(const int *fds, size_t count)
{
    int first_error = 0;
    for (size_t i = 0; i < count; i++) {
        if (write(fds[i], "0", 1) != 1 && first_error == 0)
            first_error = errno;
        close(fds[i]);
    }
    return first_error;
}


int an__sbx_cgroup_stats(an__sbx_cgroup_t *cg, an__sbx_cgroup_stats_t *out)
{
    static const char *const counter_files[2][AN__CGROUP_RESOURCE_COUNT] = {
        {"memory.max_usage_in_bytes or memory.oom_control", "pids.events", "cpuacct.usage"},
        {"memory.peak or memory.events", "pids.events", "cpu.stat"},
    };

    memset(out, 0, sizeof(*out));
    int result = 0;
    for (int r = 0; r < AN__CGROUP_RESOURCE_COUNT; r++) {
        int index = cg->group_of[r];
        if (index < 0)
            continue;
        const an__sbx_cgroup_group_t *group = &cg->groups[index];
        int rc = group->version == 2
                     ? an__sbx_cgroup_v2_stats(group, (an__sbx_cgroup_resource_t)r, out)
                     : an__sbx_cgroup_v1_stats(group, (an__sbx_cgroup_resource_t)r, out);
        if (rc != 0) {
            an__sbx_cgroup_format(cg->error, sizeof(cg->error), "cannot read %s in %s (%s)",
                                  counter_files[group->version - 1][r], group->dir, strerror(rc));
            result = AN_EIO;
        }
    }
    return result;
}


static int compare_pids(const void *a, const void *b)
{
    pid_t x = *(const pid_t *)a;
    pid_t y = *(const pid_t *)b;
    return (x > y) - (x < y);
}


/*
 * Lists the processes in every group of cg, each once, in *pids (owned by
 * the caller, freed with free). Returns 0, AN_EIO or AN_ENOMEM.
 */
static int list_pids(an__sbx_cgroup_t *cg, pid_t **pids, size_t *count)
{
    *pids = NULL;
    *count = 0;
    size_t cap = 0;

    for (size_t i = 0; i < cg->group_count; i++) {
        an_buf_t text = {0};
        int rc = an__sbx_cgroup_read_all(cg->groups[i].dir, "cgroup.procs", &text);
        if (rc != 0) {
            an__sbx_cgroup_format(cg->error, sizeof(cg->error), "cannot read %s/cgroup.procs (%s)",
                                  cg->groups[i].dir, strerror(rc));
            an_buf_free(&text);
            free(*pids);
            *pids = NULL;
            *count = 0;
            return rc == ENOMEM ? AN_ENOMEM : AN_EIO;
        }

        for (char *p = text.data; p && *p != '\0';) {
            char *end;
            long pid = strtol(p, &end, 10);
            if (end == p)
                break;
            p = end;
            if (pid <= 0)
                continue;
            if (*count == cap) {
                cap = cap ? cap * 2 : 64;
                pid_t *grown = realloc(*pids, cap * sizeof(**pids));
                if (!grown) {
                    an_buf_free(&text);
                    free(*pids);
                    *pids = NULL;
                    *count = 0;
                    return AN_ENOMEM;
                }
                *pids = grown;
            }
            (*pids)[(*count)++] = (pid_t)pid;
        }
        an_buf_free(&text);
    }

    if (*count > 1) {
        qsort(*pids, *count, sizeof(**pids), compare_pids);
        size_t unique = 1;
        for (size_t i = 1; i < *count; i++)
            if ((*pids)[i] != (*pids)[unique - 1])
                (*pids)[unique++] = (*pids)[i];
        *count = unique;
    }
    return 0;
}


int an__sbx_cgroup_signal_all(an__sbx_cgroup_t *cg, int sig)
{
    pid_t *pids;
    size_t count;
    int rc = list_pids(cg, &pids, &count);
    if (rc != 0)
        return rc;

    /* cgroup.kill (Linux 5.14) also reaches processes forked after the list
     * was read. Without it a fork racing with the kill survives this call,
     * and close() catches it by killing again until the groups are empty. */
    if (sig == SIGKILL)
        for (size_t i = 0; i < cg->group_count; i++)
            if (cg->groups[i].version == 2)
                an__sbx_cgroup_write(cg->groups[i].dir, "cgroup.kill", "1");

    /* NOTE: a pid read from cgroup.procs may be reused by an unrelated
     * process before kill() if its process exits and is reaped in between.
     * The window is short, and the kernel hands out pids in increasing order
     * until they wrap at pid_max. */
    int signalled = 0;
    for (size_t i = 0; i < count; i++)
        if (kill(pids[i], sig) == 0)
            signalled++;
    free(pids);
    return signalled;
}


const char *an__sbx_cgroup_error(const an__sbx_cgroup_t *cg)
{
    return cg ? cg->error : "";
}


static void sleep_ms(long ms)
{
    struct timespec delay = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&delay, &delay) != 0 && errno == EINTR) {
    }
}


void an__sbx_cgroup_close(an__sbx_cgroup_t *cg)
{
    if (!cg)
        return;

    /* Kill until the groups are empty, because a process can fork while
     * it is being killed; the new child lands in the same groups. */
    uint64_t deadline = an_mono_ns() + (uint64_t)CLOSE_WAIT_MS * 1000000u;
    for (;;) {
        pid_t *pids;
        size_t count;
        if (list_pids(cg, &pids, &count) != 0)
            break;
        free(pids);
        if (count == 0 || an_mono_ns() >= deadline)
            break;
        an__sbx_cgroup_signal_all(cg, SIGKILL);
        sleep_ms(CLOSE_POLL_MS);
    }

    for (size_t i = 0; i < cg->group_count; i++) {
        int rc = an__sbx_cgroup_rmdir(&cg->groups[i]);
        if (rc != 0)
            an_log(AN_LOG_WARN, "sandbox: cannot remove the run's cgroup; it is left behind", "dir",
                   cg->groups[i].dir, "error", strerror(rc), NULL);
    }
    free(cg);
}
