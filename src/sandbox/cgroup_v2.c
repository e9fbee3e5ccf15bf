/*
 * cgroup v2 side of a run's group: enabling the memory and pids controllers
 * down to it through cgroup.subtree_control, memory.max (with
 * memory.swap.max at 0) and pids.max, and the counters read back.
 *
 * CPU time comes from cpu.stat, whose usage_usec the kernel keeps in every
 * v2 group whether or not the cpu controller is enabled, so the cpu
 * controller is never enabled here: nothing throttles CPU time.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sandbox/cgroup_internal.h"

/* v2 controller of each resource; NULL when no controller is needed. */
static const char *const v2_controllers[AN__CGROUP_RESOURCE_COUNT] = {"memory", "pids", NULL};

/* Size for cgroup.controllers and cgroup.subtree_control, whose longest
 * content is about "cpuset cpu io memory hugetlb pids rdma misc". */
#define LIST_MAX 256


/* Writes why enabling name in dir/cgroup.subtree_control failed with error. */
static void explain_enable_error(const char *dir, const char *name, int error, char *reason,
                                 size_t reason_len)
{
    if (error == EBUSY)
        an__sbx_cgroup_format(
            reason, reason_len,
            "cannot enable the cgroup v2 %s controller in %s/cgroup.subtree_control "
            "because the group has processes of its own (%s), and cgroup v2 passes "
            "controllers to children only from groups without processes",
            name, dir, strerror(error));
    else if (error == EACCES || error == EPERM || error == EROFS)
        an__sbx_cgroup_format(reason, reason_len,
                              "cgroup v2 %s/cgroup.subtree_control is not writable by uid %u (%s)",
                              dir, (unsigned)geteuid(), strerror(error));
    else
        an__sbx_cgroup_format(
            reason, reason_len,
            "cannot enable the cgroup v2 %s controller in %s/cgroup.subtree_control (%s)", name,
            dir, strerror(error));
}


/*
 * Enables, in dir/cgroup.subtree_control, the controllers of the resources
 * in *requested that are not enabled yet. A resource whose controller cannot be
 * enabled is cleared from *requested, with the reason in reasons.
 */
static void enable_controllers(const char *dir, unsigned *requested,
                               char reasons[][AN__CGROUP_NOTE_MAX])
{
    char enabled[LIST_MAX];
    int rc = an__sbx_cgroup_read(dir, "cgroup.subtree_control", enabled, sizeof(enabled));

    for (int r = 0; r < AN__CGROUP_RESOURCE_COUNT; r++) {
        const char *name = v2_controllers[r];
        if (!(*requested & (1u << r)) || !name)
            continue;
        if (rc != 0) {
            an__sbx_cgroup_format(reasons[r], AN__CGROUP_NOTE_MAX,
                                  "cannot read %s/cgroup.subtree_control (%s)", dir, strerror(rc));
            *requested &= ~(1u << r);
            continue;
        }
        if (an__sbx_cgroup_list_has(enabled, name))
            continue;

        /* One controller per write, so one that fails leaves the others enabled. */
        char command[32];
        snprintf(command, sizeof(command), "+%s", name);
        int error = an__sbx_cgroup_write(dir, "cgroup.subtree_control", command);
        if (error != 0) {
            explain_enable_error(dir, name, error, reasons[r], AN__CGROUP_NOTE_MAX);
            *requested &= ~(1u << r);
        }
    }
}


typedef struct {
    unsigned *requested;
    char (*reasons)[AN__CGROUP_NOTE_MAX];
} enable_args_t;


/* Enables the requested controllers in the shared base group, which has no processes. */
static int enable_in_base(const char *base_dir, void *arg)
{
    enable_args_t *args = arg;
    enable_controllers(base_dir, args->requested, args->reasons);
    return 0;
}


int an__sbx_cgroup_v2_make(const char *own_dir, const char *run_id, unsigned *requested,
                           char reasons[][AN__CGROUP_NOTE_MAX], an__sbx_cgroup_group_t *group)
{
    char available[LIST_MAX];
    int rc = an__sbx_cgroup_read(own_dir, "cgroup.controllers", available, sizeof(available));
    if (rc != 0) {
        for (int r = 0; r < AN__CGROUP_RESOURCE_COUNT; r++)
            if (*requested & (1u << r))
                an__sbx_cgroup_format(reasons[r], AN__CGROUP_NOTE_MAX,
                                      "cannot read %s/cgroup.controllers (%s)", own_dir,
                                      strerror(rc));
        *requested = 0;
        return rc;
    }
    for (int r = 0; r < AN__CGROUP_RESOURCE_COUNT; r++) {
        const char *name = v2_controllers[r];
        if ((*requested & (1u << r)) && name && !an__sbx_cgroup_list_has(available, name)) {
            an__sbx_cgroup_format(
                reasons[r], AN__CGROUP_NOTE_MAX,
                "cgroup v2 at %s does not offer the %s controller (cgroup.controllers: \"%.*s\")",
                own_dir, name, (int)strcspn(available, "\n"), available);
            *requested &= ~(1u << r);
        }
    }

    /* The own group may contain processes (the supervisor itself), and then the
     * kernel rejects the write with EBUSY, unless it is the hierarchy's root.
     * NOTE: the supervisor is not moved to a leaf group to make room, so such
     * a host falls back to rlimits, with the reason in the note. */
    enable_controllers(own_dir, requested, reasons);
    if (*requested == 0)
        return 0;

    enable_args_t args = {requested, reasons};
    rc = an__sbx_cgroup_mkdir(own_dir, run_id, enable_in_base, &args, group);
    if (rc != 0) {
        for (int r = 0; r < AN__CGROUP_RESOURCE_COUNT; r++) {
            if (!(*requested & (1u << r)))
                continue;
            if (rc == EACCES || rc == EPERM || rc == EROFS)
                an__sbx_cgroup_format(reasons[r], AN__CGROUP_NOTE_MAX,
                                      "the cgroup v2 group %s is not writable by uid %u (%s)",
                                      own_dir, (unsigned)geteuid(), strerror(rc));
            else
                an__sbx_cgroup_format(reasons[r], AN__CGROUP_NOTE_MAX,
                                      "cannot create the cgroup v2 group %s (%s)", group->dir,
                                      strerror(rc));
        }
        *requested = 0;
        return rc;
    }
    if (*requested == 0)
        an__sbx_cgroup_rmdir(group);
    return 0;
}


int an__sbx_cgroup_v2_setup(const an__sbx_cgroup_group_t *group, an__sbx_cgroup_resource_t resource,
                            uint64_t memory_bytes, uint64_t max_pids, char *reason,
                            size_t reason_len)
{
    const char *file = NULL;
    uint64_t value = 0;
    if (resource == AN__CGROUP_MEMORY && memory_bytes != 0) {
        file = "memory.max";
        value = memory_bytes;
    } else if (resource == AN__CGROUP_PIDS && max_pids != 0) {
        file = "pids.max";
        value = max_pids;
    }
    if (!file)
        return 0;

    char text[32];
    snprintf(text, sizeof(text), "%" PRIu64, value);
    int rc = an__sbx_cgroup_write(group->dir, file, text);
    if (rc != 0) {
        an__sbx_cgroup_format(reason, reason_len, "writing %s to %s/%s failed (%s)", text,
                              group->dir, file, strerror(rc));
        return rc;
    }

    /* Without this, pages over memory.max go to swap instead of ending in
     * the OOM killer. The file is missing on kernels without swap accounting. */
    if (resource == AN__CGROUP_MEMORY) {
        rc = an__sbx_cgroup_write(group->dir, "memory.swap.max", "0");
        if (rc != 0 && rc != ENOENT) {
            an__sbx_cgroup_format(reason, reason_len, "writing 0 to %s/memory.swap.max failed (%s)",
                                  group->dir, strerror(rc));
            return rc;
        }
    }
    return 0;
}


int an__sbx_cgroup_v2_stats(const an__sbx_cgroup_group_t *group, an__sbx_cgroup_resource_t resource,
                            an__sbx_cgroup_stats_t *out)
{
    int rc = 0;
    switch (resource) {
    case AN__CGROUP_MEMORY:
        /* NOTE: memory.peak exists since Linux 5.19; older kernels report no memory stats. */
        rc = an__sbx_cgroup_read_u64(group->dir, "memory.peak", &out->peak_memory_bytes);
        if (rc == 0)
            rc = an__sbx_cgroup_read_key(group->dir, "memory.events", "oom_kill", &out->oom_kills);
        out->has_memory = rc == 0;
        break;
    case AN__CGROUP_PIDS:
        rc = an__sbx_cgroup_read_key(group->dir, "pids.events", "max", &out->pids_max_hits);
        out->has_pids = rc == 0;
        break;
    case AN__CGROUP_CPU:
        rc = an__sbx_cgroup_read_key(group->dir, "cpu.stat", "usage_usec", &out->cpu_usec);
        out->has_cpu = rc == 0;
        break;
    case AN__CGROUP_RESOURCE_COUNT:
        break;
    }
    return rc;
}
